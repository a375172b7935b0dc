//! What is being deployed, as every check sees it, whichever protocol called.

use serde::Serialize;

use crate::protocol::ecs::{EcsEvent, Weights};
use crate::protocol::{CodeDeployEvent, Stage};
use crate::role::Role;

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
    #[serde(serialize_with = "ser_stage")]
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
    pub codedeploy: Option<crate::discovery::CodeDeployFacts>,
}

fn ser_role<S: serde::Serializer>(r: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.name())
}

fn ser_stage<S: serde::Serializer>(st: &Option<Stage>, s: S) -> Result<S::Ok, S::Error> {
    match st {
        Some(st) => s.serialize_str(st.as_str()),
        None => s.serialize_none(),
    }
}

fn weight_of(w: &Weights, arn: &str) -> Option<f64> {
    w.iter().find(|(a, _)| a == arn).map(|(_, x)| *x)
}

impl Deployment {
    pub fn from_ecs(role: Role, ev: &EcsEvent) -> Deployment {
        let (stage, stage_assumed) = match &ev.lifecycle_stage {
            Some(s) => (s.clone(), false),
            None => (role.assumed_stage(), true),
        };
        let service = parse_ecs_arn(&ev.service_arn);
        let target = parse_ecs_arn(&ev.target_service_revision_arn);
        let target_arn = ev.target_service_revision_arn.as_str();

        // The weight map that moves at this stage.
        let moving = match stage {
            Stage::TestTrafficShift => Some(&ev.test_traffic_weights),
            Stage::ProductionTrafficShift => Some(&ev.production_traffic_weights),
            _ => None,
        };
        let source = ev
            .production_traffic_weights
            .iter()
            .chain(ev.test_traffic_weights.iter())
            .find(|(arn, _)| arn != target_arn)
            .map(|(arn, _)| arn.clone());
        let traffic = match moving {
            Some(w) if !w.is_empty() => {
                let back = weight_of(w, target_arn) == Some(0.0)
                    && w.iter().any(|(a, x)| a != target_arn && *x >= 100.0);
                if back {
                    TrafficDirection::Back
                } else {
                    TrafficDirection::Forward
                }
            }
            _ => TrafficDirection::Unknown,
        };
        let all_weights_known =
            !(ev.test_traffic_weights.is_empty() && ev.production_traffic_weights.is_empty());
        let first_deployment =
            (stage.shifts_traffic() && all_weights_known && source.is_none()).then_some(true);

        Deployment {
            protocol: Protocol::Ecs,
            role,
            stage: Some(stage),
            stage_assumed,
            key: ev
                .resource_arn
                .clone()
                .unwrap_or_else(|| ev.target_service_revision_arn.clone()),
            region: service.region.or(target.region.clone()),
            account: service.account.or(target.account.clone()),
            cluster: service.cluster.or(target.cluster.clone()),
            service: service.service.or(target.service.clone()),
            service_arn: Some(ev.service_arn.clone()),
            service_deployment_arn: ev.resource_arn.clone(),
            execution_id: ev.execution_id.clone(),
            target_revision_arn: Some(ev.target_service_revision_arn.clone()),
            target_revision_id: target.id,
            source_revision_arn: source,
            traffic,
            first_deployment,
            codedeploy_deployment_id: None,
            codedeploy: None,
        }
    }

    pub fn from_codedeploy(role: Role, ev: &CodeDeployEvent) -> Deployment {
        Deployment {
            protocol: Protocol::CodeDeploy,
            role,
            stage: None,
            stage_assumed: false,
            key: ev.deployment_id.clone(),
            region: std::env::var("AWS_REGION").ok(),
            account: None,
            cluster: None,
            service: None,
            service_arn: None,
            service_deployment_arn: None,
            execution_id: Some(ev.execution_id.clone()),
            target_revision_arn: None,
            target_revision_id: None,
            source_revision_arn: None,
            traffic: TrafficDirection::Unknown,
            first_deployment: None,
            codedeploy_deployment_id: Some(ev.deployment_id.clone()),
            codedeploy: None,
        }
    }

    /// Fills in what CodeDeploy discovery found: the ECS service, or the Lambda function.
    pub fn with_codedeploy(mut self, facts: crate::discovery::CodeDeployFacts) -> Deployment {
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
