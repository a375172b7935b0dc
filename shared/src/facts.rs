//! What ECS and ELBv2 say about the deployment, looked up at most once per invocation and
//! shared by every check that needs it: the target (green) and source (blue) service
//! revisions (target groups, task definition, container images) and the load balancer.

use serde::Serialize;
use tokio::sync::OnceCell;

use crate::budget::Budget;
use crate::deployment::Deployment;
use crate::services::{Services, aws_error};

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
}

/// Facts looked up during one invocation.
#[derive(Default)]
pub struct Facts {
    revision: OnceCell<Result<Revision, String>>,
    source: OnceCell<Result<Revision, String>>,
    load_balancer: OnceCell<Result<String, String>>,
    stage_started: OnceCell<Result<Option<u64>, String>>,
}

impl Facts {
    pub fn new() -> Facts {
        Facts::default()
    }

    /// Preset facts (for tests and tools).
    pub fn with_revision(revision: Revision) -> Facts {
        let f = Facts::default();
        let _ = f.revision.set(Ok(revision));
        f
    }

    /// The target revision, if a check already looked it up in this invocation.
    pub fn known_revision(&self) -> Option<Revision> {
        self.revision.get().and_then(|r| r.as_ref().ok().cloned())
    }

    /// `DescribeServiceRevisions` for the target revision, once.
    pub async fn revision(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
    ) -> Result<Revision, String> {
        let arn = deployment.target_revision_arn.clone().ok_or_else(|| {
            "the deployment names no target service revision (CodeDeploy events do not); set the check's resources explicitly".to_string()
        });
        self.revision
            .get_or_init(|| describe(services, arn, budget))
            .await
            .clone()
    }

    /// `DescribeServiceRevisions` for the source (blue) revision, once.
    pub async fn source_revision(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
    ) -> Result<Revision, String> {
        let arn = deployment.source_revision_arn.clone().ok_or_else(|| {
            "the event names no previous (blue) revision: the traffic weights are empty at this stage, or this is the first deployment".to_string()
        });
        self.source
            .get_or_init(|| describe(services, arn, budget))
            .await
            .clone()
    }

    /// The target groups of the new (`green`) or previous revision, as ARNs: from the ECS
    /// service revisions, or for CodeDeploy from the deployment's task sets (by name).
    pub async fn target_groups(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
        green: bool,
    ) -> Result<Vec<String>, String> {
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
            let call = services
                .elbv2()
                .await
                .describe_target_groups()
                .names(&name)
                .send();
            let out = budget
                .run(call)
                .await
                .ok_or_else(|| {
                    "ELBv2 DescribeTargetGroups did not answer within the invocation's budget"
                        .to_string()
                })?
                .map_err(|e| {
                    aws_error(
                        "ELBv2 DescribeTargetGroups",
                        "elasticloadbalancing:DescribeTargetGroups",
                        &e,
                    )
                })?;
            return Ok(out
                .target_groups()
                .iter()
                .filter_map(|t| t.target_group_arn().map(str::to_string))
                .collect());
        }
        let rev = if green {
            self.revision(services, deployment, budget).await?
        } else {
            self.source_revision(services, deployment, budget).await?
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
    ) -> Result<Option<u64>, String> {
        self.stage_started
            .get_or_init(|| async {
                let (Some(arn), Some(own)) = (deployment.service_deployment_arn.clone(), services.own_function()) else {
                    return Ok(None);
                };
                let mine = |target: &str| target.ends_with(&format!(":function:{own}")) || target.contains(&format!(":function:{own}:"));
                let call = services.ecs().await.describe_service_deployments().service_deployment_arns(&arn).send();
                let out = budget
                    .run(call)
                    .await
                    .ok_or_else(|| "ECS DescribeServiceDeployments did not answer within the invocation's budget".to_string())?
                    .map_err(|e| aws_error("ECS DescribeServiceDeployments", "ecs:DescribeServiceDeployments", &e))?;
                let Some(sd) = out.service_deployments().first() else { return Ok(None) };
                let hook = sd
                    .lifecycle_hook_details()
                    .iter()
                    .find(|h| h.target_arn().is_some_and(mine) && h.status().map(|s| s.as_str()) == Some("IN_PROGRESS"));
                let Some(expires) = hook.and_then(|h| h.expires_at()).and_then(|t| t.to_millis().ok()) else { return Ok(None) };
                let minutes = sd
                    .deployment_configuration()
                    .map(|c| c.lifecycle_hooks())
                    .unwrap_or_default()
                    .iter()
                    .find(|h| h.hook_target_arn().is_some_and(mine))
                    .and_then(|h| h.timeout_configuration())
                    .and_then(|t| t.timeout_in_minutes())
                    .unwrap_or(1440);
                Ok(Some(expires.saturating_sub(i64::from(minutes) * 60_000).max(0) as u64))
            })
            .await
            .clone()
    }

    /// The `LoadBalancer` dimension (`app/NAME/ID`) of a target group's load balancer.
    pub async fn load_balancer_dimension(
        &self,
        services: &Services,
        target_group: &str,
        budget: &Budget,
    ) -> Result<String, String> {
        self.load_balancer
            .get_or_init(|| async {
                let call = services
                    .elbv2()
                    .await
                    .describe_target_groups()
                    .target_group_arns(target_group)
                    .send();
                let out = budget
                    .run(call)
                    .await
                    .ok_or_else(|| {
                        "ELBv2 DescribeTargetGroups did not answer within the invocation's budget"
                            .to_string()
                    })?
                    .map_err(|e| {
                        aws_error(
                            "ELBv2 DescribeTargetGroups",
                            "elasticloadbalancing:DescribeTargetGroups",
                            &e,
                        )
                    })?;
                let lb = out
                    .target_groups()
                    .first()
                    .and_then(|t| t.load_balancer_arns().first())
                    .ok_or_else(|| {
                        format!("target group {target_group} is not attached to a load balancer")
                    })?;
                Ok(lb
                    .split_once(":loadbalancer/")
                    .map(|(_, r)| r.to_string())
                    .unwrap_or_else(|| lb.clone()))
            })
            .await
            .clone()
    }
}

async fn describe(
    services: &Services,
    arn: Result<String, String>,
    budget: &Budget,
) -> Result<Revision, String> {
    let arn = arn?;
    let call = services
        .ecs()
        .await
        .describe_service_revisions()
        .service_revision_arns(&arn)
        .send();
    let out = budget
        .run(call)
        .await
        .ok_or_else(|| {
            "ECS DescribeServiceRevisions did not answer within the invocation's budget".to_string()
        })?
        .map_err(|e| {
            aws_error(
                "ECS DescribeServiceRevisions",
                "ecs:DescribeServiceRevisions",
                &e,
            )
        })?;
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
        return Err(format!("ECS does not know service revision {arn}: {why}"));
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
