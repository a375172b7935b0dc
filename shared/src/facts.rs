//! What ECS says about the deployment's target service revision, looked up at most once
//! per invocation and shared by every check that needs it (target groups, task
//! definition, container images).

use serde::Serialize;
use tokio::sync::OnceCell;

use crate::budget::Budget;
use crate::deployment::Deployment;
use crate::services::{Services, aws_error};

/// The target (green) service revision.
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

    /// `DescribeServiceRevisions` for the target revision, once.
    pub async fn revision(
        &self,
        services: &Services,
        deployment: &Deployment,
        budget: &Budget,
    ) -> Result<Revision, String> {
        self.revision
            .get_or_init(|| async {
                let arn = deployment.target_revision_arn.clone().ok_or_else(|| {
                    "the deployment names no target service revision (CodeDeploy events do not); set the check's resources explicitly".to_string()
                })?;
                let call = services.ecs().await.describe_service_revisions().service_revision_arns(&arn).send();
                let out = budget
                    .run(call)
                    .await
                    .ok_or_else(|| "ECS DescribeServiceRevisions did not answer within the invocation's budget".to_string())?
                    .map_err(|e| aws_error("ECS DescribeServiceRevisions", "ecs:DescribeServiceRevisions", &e))?;
                let rev = out.service_revisions().iter().find(|r| r.service_revision_arn() == Some(arn.as_str()));
                let Some(rev) = rev else {
                    let why = out.failures().first().and_then(|f| f.reason()).unwrap_or("not found");
                    return Err(format!("ECS does not know service revision {arn}: {why}"));
                };
                Ok(Revision {
                    arn: arn.clone(),
                    task_definition: rev.task_definition().map(str::to_string),
                    target_groups: rev
                        .resolved_configuration()
                        .map(|c| c.load_balancers().iter().filter_map(|lb| lb.target_group_arn().map(str::to_string)).collect())
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
            })
            .await
            .clone()
    }
}
