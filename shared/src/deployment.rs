//! What is being deployed, as every check sees it, whichever protocol called.

use serde::Serialize;

use crate::role::Role;
use crate::stage::Stage;

/// Which caller invoked the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    Ecs,
    CodeDeploy,
}

/// Which way traffic is moving at a traffic-shift stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TrafficDirection {
    /// Towards the new (target) revision: the normal course of a deployment.
    Forward,
    /// Back to the previous revision: ECS is rolling back. The target revision has weight 0
    /// and another revision 100 at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT.
    Back,
    /// Not a traffic-shift stage, or nothing to tell.
    Unknown,
}

/// The parts of an ECS ARN a check may need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArnParts {
    pub region: Option<String>,
    pub account: Option<String>,
    pub cluster: Option<String>,
    pub service: Option<String>,
    /// The last path element of a service-revision or service-deployment ARN.
    pub id: Option<String>,
}

/// Splits `arn:aws:ecs:REGION:ACCOUNT:KIND/CLUSTER/SERVICE[/ID]` (also the old
/// `service/SERVICE` form without a cluster).
pub fn parse_ecs_arn(arn: &str) -> ArnParts {
    let mut parts = ArnParts::default();
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    if fields.len() != 6 || fields[0] != "arn" {
        return parts;
    }
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    parts.region = non_empty(fields[3]);
    parts.account = non_empty(fields[4]);
    let path: Vec<&str> = fields[5].split('/').collect();
    match (path.first().copied(), path.len()) {
        (Some("service"), 2) => parts.service = non_empty(path[1]),
        (Some("service"), 3) => {
            parts.cluster = non_empty(path[1]);
            parts.service = non_empty(path[2]);
        }
        (Some("service-revision" | "service-deployment"), 4) => {
            parts.cluster = non_empty(path[1]);
            parts.service = non_empty(path[2]);
            parts.id = non_empty(path[3]);
        }
        _ => {}
    }
    parts
}

/// The facts of one deployment that every check can use.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub protocol: Protocol,
    #[serde(serialize_with = "ser_role")]
    pub role: Role,
    /// The ECS lifecycle stage (from the event, or the role's stage for the flat shape).
    pub stage: Option<Stage>,
    /// True when the stage came from the role rather than the event.
    pub stage_assumed: bool,
    /// What identifies this deployment across re-invocations: the ECS service deployment
    /// ARN (or, without one, the target revision ARN), or the CodeDeploy deployment id.
    pub key: String,
    pub region: Option<String>,
    pub account: Option<String>,
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub service_arn: Option<String>,
    pub service_deployment_arn: Option<String>,
    pub execution_id: Option<String>,
    pub target_revision_arn: Option<String>,
    pub target_revision_id: Option<String>,
    /// The revision traffic comes from (blue), when the weights name one.
    pub source_revision_arn: Option<String>,
    pub traffic: TrafficDirection,
    /// `Some(true)` when the event shows no previous revision at a traffic-shift stage.
    pub first_deployment: Option<bool>,
    pub codedeploy_deployment_id: Option<String>,
    /// What CodeDeploy says the deployment deploys (CodeDeploy invocations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codedeploy: Option<CodeDeployFacts>,
}

fn ser_role<S: serde::Serializer>(r: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.name())
}

impl Deployment {
    /// Fills in what CodeDeploy discovery found: the ECS service, or the Lambda function.
    pub fn with_codedeploy(mut self, facts: CodeDeployFacts) -> Deployment {
        if let Some(ecs) = &facts.ecs {
            let arn = ecs
                .service_arn
                .as_deref()
                .map(parse_ecs_arn)
                .unwrap_or_default();
            self.cluster = ecs.cluster.clone().or(arn.cluster);
            self.service = ecs.service.clone().or(arn.service);
            self.region = arn.region.or(self.region);
            self.account = arn.account;
            self.service_arn = ecs.service_arn.clone();
        }
        if let Some(f) = &facts.lambda {
            let parts: Vec<&str> = f
                .function_name
                .as_deref()
                .unwrap_or_default()
                .split(':')
                .collect();
            if parts.len() >= 5 && parts[0] == "arn" {
                self.region = Some(parts[3].to_string());
                self.account = Some(parts[4].to_string());
            }
        }
        self.codedeploy = Some(facts);
        self
    }

    /// True while ECS is moving traffic back to the previous revision.
    pub fn rolling_back(&self) -> bool {
        self.traffic == TrafficDirection::Back
    }
}

/// A task set of a CodeDeploy ECS deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSet {
    pub id: String,
    /// The target group's name.
    pub target_group: Option<String>,
    pub traffic_weight: f64,
    pub running: i64,
    pub desired: i64,
    pub status: Option<String>,
}

/// The ECS side of a CodeDeploy deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsFacts {
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub service_arn: Option<String>,
    pub green: Option<TaskSet>,
    pub blue: Option<TaskSet>,
    pub production_listeners: Vec<String>,
    pub test_listeners: Vec<String>,
}

/// The Lambda side of a CodeDeploy deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaFacts {
    pub function_name: Option<String>,
    pub alias: Option<String>,
    pub current_version: Option<String>,
    pub target_version: Option<String>,
    pub target_version_weight: f64,
}

/// A CodeDeploy deployment, discovered.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeDeployFacts {
    pub deployment_id: String,
    /// `ECS`, `Lambda` or `Server`.
    pub compute_platform: String,
    pub application: String,
    pub deployment_group: String,
    pub ecs: Option<EcsFacts>,
    pub lambda: Option<LambdaFacts>,
    /// The target's lifecycle events: (name, status).
    pub lifecycle_events: Vec<(String, String)>,
}

impl CodeDeployFacts {
    /// `application/deploymentGroup`, the key of per-deployment-group settings.
    pub fn group_key(&self) -> String {
        format!("{}/{}", self.application, self.deployment_group)
    }

    /// Whether one of `hooks` already has a final status and none is running: a retried
    /// invocation after the status was reported.
    pub fn already_reported(&self, hooks: &[&str]) -> Option<String> {
        let mine: Vec<&(String, String)> = self
            .lifecycle_events
            .iter()
            .filter(|(n, _)| hooks.contains(&n.as_str()))
            .collect();
        let running = mine.iter().any(|(_, s)| s == "InProgress");
        let done = mine.iter().find(|(_, s)| s == "Succeeded" || s == "Failed");
        match (running, done) {
            (false, Some((name, status))) => Some(format!("{name} is already {status}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_arns() {
        let p = parse_ecs_arn("arn:aws:ecs:us-west-2:123456789012:service-revision/c1/s1/9386");
        assert_eq!(p.region.as_deref(), Some("us-west-2"));
        assert_eq!(p.account.as_deref(), Some("123456789012"));
        assert_eq!(p.cluster.as_deref(), Some("c1"));
        assert_eq!(p.service.as_deref(), Some("s1"));
        assert_eq!(p.id.as_deref(), Some("9386"));
        let old = parse_ecs_arn("arn:aws:ecs:eu-west-1:1:service/only-service");
        assert_eq!(old.service.as_deref(), Some("only-service"));
        assert_eq!(old.cluster, None);
        assert_eq!(parse_ecs_arn("not an arn"), ArnParts::default());
    }
}
