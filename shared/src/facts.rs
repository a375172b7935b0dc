//! What ECS and ELBv2 say about the deployment, looked up at most once per invocation and
//! shared by every check that needs it: the target (green) and source (blue) service
//! revisions (target groups, task definition, container images) and the load balancer.
//! A successful look-up is kept for the rest of the invocation; a failed one is not, so
//! that a check observing again (after throttling, say) asks AWS again.

use aws_sdk_elasticloadbalancingv2::types::TargetGroup;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::aws;
use crate::budget::Budget;
use crate::deployment::Deployment;
use crate::services::Services;
use crate::verdict::Failure;

/// A service revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub arn: String,
    pub task_definition: Option<String>,
    /// Target groups the revision's tasks are registered in
    /// (`resolvedConfiguration.loadBalancers[].targetGroupArn`).
    pub target_groups: Vec<String>,
    /// Images as ECS resolved them: (container, image, digest).
    pub images: Vec<(String, String, Option<String>)>,
    /// The production listener rules routing to the target groups
    /// (`resolvedConfiguration.loadBalancers[].productionListenerRule`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listener_rules: Vec<String>,
}

impl Revision {
    /// The `LoadBalancer` dimension (`app/NAME/ID`) named by a production listener rule's
    /// ARN (`…:listener-rule/app/NAME/ID/LISTENER/RULE`), without asking ELBv2.
    pub fn load_balancer_dimension(&self) -> Option<String> {
        self.listener_rules.iter().find_map(|arn| {
            let (_, rest) = arn.split_once(":listener-rule/")?;
            let parts: Vec<&str> = rest.split('/').collect();
            (parts.len() == 5 && parts[..3].iter().all(|p| !p.is_empty()))
                .then(|| parts[..3].join("/"))
        })
    }
}

/// Facts looked up during one invocation.
#[derive(Default)]
pub struct Facts {
    revision: OnceCell<Revision>,
    source: OnceCell<Revision>,
    load_balancer: OnceCell<String>,
    stage_started: OnceCell<Option<u64>>,
}

/// The revision `arn` names, from `cell` or described now (and kept when it succeeds).
async fn once(
    cell: &OnceCell<Revision>,
    services: &Services,
    arn: Result<String, &str>,
    budget: &Budget,
) -> Result<Revision, Failure> {
    let arn = arn.map_err(str::to_string);
    cell.get_or_try_init(|| describe(services, arn, budget))
        .await
        .cloned()
}

impl Facts {
    pub fn new() -> Facts {
        Facts::default()
    }

    /// Preset facts (for tests and tools).
    pub fn with_revision(revision: Revision) -> Facts {
        let f = Facts::default();
        let _ = f.revision.set(revision);
        f
    }

    /// The target revision, if a check already looked it up in this invocation.
    pub fn known_revision(&self) -> Option<Revision> {
        self.revision.get().cloned()
    }

    /// `DescribeServiceRevisions` for the target revision, once.
    pub async fn revision(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
    ) -> Result<Revision, Failure> {
        let arn = deployment.target_revision_arn.clone().ok_or(
            "the deployment names no target service revision: a CodeDeploy event names none, so this check needs an ECS lifecycle hook, or its settings must name what to look at (for targetHealth, targetGroups)",
        );
        once(&self.revision, services, arn, budget).await
    }

    /// `DescribeServiceRevisions` for the source (blue) revision, once.
    pub async fn source_revision(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
    ) -> Result<Revision, Failure> {
        let arn = deployment.source_revision_arn.clone().ok_or(
            "the event names no previous (blue) revision: the traffic weights are empty at this stage, or this is the first deployment",
        );
        once(&self.source, services, arn, budget).await
    }

    /// The target groups of the new (`green`) or previous revision, as ARNs: from the ECS
    /// service revisions, or for CodeDeploy from the deployment's task sets (by name).
    pub async fn target_groups(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
        green: bool,
    ) -> Result<Vec<String>, Failure> {
        if let Some(ecs) = deployment.codedeploy.as_ref().and_then(|c| c.ecs.as_ref()) {
            let set = if green { &ecs.green } else { &ecs.blue };
            let name = set
                .as_ref()
                .and_then(|s| s.target_group.clone())
                .ok_or_else(|| {
                    format!(
                        "the CodeDeploy deployment has no {} task set with a target group",
                        if green { "green" } else { "blue" }
                    )
                })?;
            let groups =
                describe_target_group(services, budget, TargetGroupBy::Name(&name)).await?;
            return Ok(groups
                .iter()
                .filter_map(|t| t.target_group_arn().map(str::to_string))
                .collect());
        }
        let rev = if green {
            self.revision(services, deployment, budget).await?
        } else {
            let arn = deployment.source_revision_arn.clone().ok_or(
                "the event names no previous (blue) revision: the traffic weights are empty at this stage, or this is the first deployment",
            );
            once(&self.source, services, arn, budget).await?
        };
        Ok(rev.target_groups)
    }

    /// When ECS started this hook (and so its stage), in ms since the epoch: the hook's
    /// `expiresAt` in `DescribeServiceDeployments` less its configured timeout (24 hours by
    /// default). `None` when the deployment or this function cannot be identified.
    pub async fn stage_started_at(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
    ) -> Result<Option<u64>, Failure> {
        self.stage_started
            .get_or_try_init(|| async {
                let (Some(arn), Some(own)) = (
                    deployment.service_deployment_arn.clone(),
                    services.own_function(),
                ) else {
                    return Ok(None);
                };
                let mine = |target: &str| {
                    target.ends_with(&format!(":function:{own}"))
                        || target.contains(&format!(":function:{own}:"))
                };
                let call = services
                    .ecs()
                    .await
                    .describe_service_deployments()
                    .service_deployment_arns(&arn)
                    .send();
                let out = aws::call(
                    budget,
                    "ECS DescribeServiceDeployments",
                    "ecs:DescribeServiceDeployments",
                    call,
                )
                .await?;
                let Some(sd) = out.service_deployments().first() else {
                    return Ok(None);
                };
                let hook = sd.lifecycle_hook_details().iter().find(|h| {
                    h.target_arn().is_some_and(mine)
                        && h.status().map(|s| s.as_str()) == Some("IN_PROGRESS")
                });
                let Some(expires) = hook
                    .and_then(|h| h.expires_at())
                    .and_then(|t| t.to_millis().ok())
                else {
                    return Ok(None);
                };
                let minutes = sd
                    .deployment_configuration()
                    .map(|c| c.lifecycle_hooks())
                    .unwrap_or_default()
                    .iter()
                    .find(|h| h.hook_target_arn().is_some_and(mine))
                    .and_then(|h| h.timeout_configuration())
                    .and_then(|t| t.timeout_in_minutes())
                    .unwrap_or(1440);
                Ok(Some(
                    expires
                        .saturating_sub(i64::from(minutes).saturating_mul(60_000))
                        .max(0) as u64,
                ))
            })
            .await
            .cloned()
    }

    /// The `LoadBalancer` dimension (`app/NAME/ID`) of a target group's load balancer.
    pub async fn load_balancer_dimension(
        &self,
        services: &Services,
        target_group: &str,
        budget: &Budget,
    ) -> Result<String, Failure> {
        self.load_balancer
            .get_or_try_init(|| async {
                let groups =
                    describe_target_group(services, budget, TargetGroupBy::Arn(target_group))
                        .await?;
                let lb = groups
                    .first()
                    .and_then(|t| t.load_balancer_arns().first())
                    .ok_or_else(|| {
                        format!("target group {target_group} is not attached to a load balancer")
                    })?;
                Ok::<_, Failure>(
                    lb.split_once(":loadbalancer/")
                        .map(|(_, r)| r.to_string())
                        .unwrap_or_else(|| lb.clone()),
                )
            })
            .await
            .cloned()
    }
}

/// How a target group is named to ELBv2.
enum TargetGroupBy<'a> {
    Name(&'a str),
    Arn(&'a str),
}

/// ELBv2 `DescribeTargetGroups` for one target group.
async fn describe_target_group(
    services: &Services,
    budget: &Budget,
    by: TargetGroupBy<'_>,
) -> Result<Vec<TargetGroup>, Failure> {
    let request = services.elbv2().await.describe_target_groups();
    let call = match by {
        TargetGroupBy::Name(name) => request.names(name),
        TargetGroupBy::Arn(arn) => request.target_group_arns(arn),
    }
    .send();
    let out = aws::call(
        budget,
        "ELBv2 DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetGroups",
        call,
    )
    .await?;
    Ok(out.target_groups().to_vec())
}

async fn describe(
    services: &Services,
    arn: Result<String, String>,
    budget: &Budget,
) -> Result<Revision, Failure> {
    let arn = arn?;
    let call = services
        .ecs()
        .await
        .describe_service_revisions()
        .service_revision_arns(&arn)
        .send();
    let out = aws::call(
        budget,
        "ECS DescribeServiceRevisions",
        "ecs:DescribeServiceRevisions",
        call,
    )
    .await?;
    let rev = out
        .service_revisions()
        .iter()
        .find(|r| r.service_revision_arn() == Some(arn.as_str()));
    let Some(rev) = rev else {
        let why = out
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("not found");
        return Err(format!("ECS does not know service revision {arn}: {why}").into());
    };
    Ok(Revision {
        arn: arn.clone(),
        task_definition: rev.task_definition().map(str::to_string),
        target_groups: rev
            .resolved_configuration()
            .map(|c| {
                c.load_balancers()
                    .iter()
                    .filter_map(|lb| lb.target_group_arn().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        listener_rules: rev
            .resolved_configuration()
            .map(|c| {
                c.load_balancers()
                    .iter()
                    .filter_map(|lb| lb.production_listener_rule().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        images: rev
            .container_images()
            .iter()
            .map(|i| {
                (
                    i.container_name().unwrap_or_default().to_string(),
                    i.image().unwrap_or_default().to_string(),
                    i.image_digest().map(str::to_string),
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_balancer_is_read_from_a_listener_rule() {
        let mut r = Revision::default();
        assert_eq!(r.load_balancer_dimension(), None);
        r.listener_rules = vec![
            "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee".into(),
        ];
        assert_eq!(
            r.load_balancer_dimension().as_deref(),
            Some("app/shop/50dc6c495c0c9188")
        );
        r.listener_rules =
            vec!["arn:aws:elasticloadbalancing:us-west-2:1:listener-rule/app/x".into()];
        assert_eq!(r.load_balancer_dimension(), None);
    }
}
