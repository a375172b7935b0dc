//! Task health: the green revision's ECS tasks are RUNNING, their health status is HEALTHY
//! where the task definition defines container health checks, and there are as many as
//! the service wants.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aws;
use crate::checks::{Check, CheckContext, Timing, at_least_a_second};
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::verdict::Evaluation;

fn default_interval() -> HumanDuration {
    HumanDuration::secs(10)
}

/// Settings of a `taskHealth` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskHealthCheck {
    /// Tasks needed. Default: the service's desired count (`DescribeServices`).
    #[serde(default)]
    pub desired_count: Option<u32>,
    /// Time between looks. Default `10s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
}

macro_rules! call {
    ($ctx:expr, $what:literal, $perm:literal, $fut:expr) => {
        match aws::call(&$ctx.budget, $what, $perm, $fut).await {
            Err(e) => return e.into(),
            Ok(out) => out,
        }
    };
}

impl Check for TaskHealthCheck {
    const TYPE: &'static str = "taskHealth";
    const DESCRIPTION: &'static str = "Waits until the green revision's ECS tasks are RUNNING (and HEALTHY where health checks are defined), as many as desired.";
    type State = ();

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let c = self;
        at_least_a_second(c.interval, format!("{at}.interval"))
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval)
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, _state: ()) -> Evaluation {
        let c = self;
        let d = ctx.deployment;
        let (Some(cluster), Some(service)) = (d.cluster.clone(), d.service.clone()) else {
            return Evaluation::error(
                "the deployment names no ECS cluster and service (CodeDeploy events do not)",
            );
        };
        let revision = match ctx.facts.revision(ctx.services, d, &ctx.budget).await {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        let Some(task_def) = revision.task_definition.clone() else {
            return Evaluation::error(format!(
                "service revision {} has no task definition",
                revision.arn
            ));
        };
        let ecs = ctx.services.ecs().await;

        let desired = match c.desired_count {
            Some(n) => n,
            None => {
                let out = call!(
                    ctx,
                    "ECS DescribeServices",
                    "ecs:DescribeServices",
                    ecs.describe_services()
                        .cluster(&cluster)
                        .services(&service)
                        .send()
                );
                match out.services().first() {
                    Some(s) => s.desired_count().max(0) as u32,
                    None => {
                        return Evaluation::error(format!(
                            "ECS does not know service {service} in cluster {cluster}"
                        ));
                    }
                }
            }
        };
        let td = call!(
            ctx,
            "ECS DescribeTaskDefinition",
            "ecs:DescribeTaskDefinition",
            ecs.describe_task_definition()
                .task_definition(&task_def)
                .send()
        );
        let checked: Vec<String> = td
            .task_definition()
            .map(|t| {
                t.container_definitions()
                    .iter()
                    .filter(|c| c.health_check().is_some())
                    .filter_map(|c| c.name().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();

        let listed = call!(
            ctx,
            "ECS ListTasks",
            "ecs:ListTasks",
            ecs.list_tasks()
                .cluster(&cluster)
                .service_name(&service)
                .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
                .send()
        );
        let arns = listed.task_arns().to_vec();
        let tasks = if arns.is_empty() {
            Vec::new()
        } else {
            let out = call!(
                ctx,
                "ECS DescribeTasks",
                "ecs:DescribeTasks",
                ecs.describe_tasks()
                    .cluster(&cluster)
                    .set_tasks(Some(arns))
                    .send()
            );
            out.tasks().to_vec()
        };

        let mut ready = 0u32;
        let mut not_ready = Vec::new();
        let mut observed = Vec::new();
        for t in tasks
            .iter()
            .filter(|t| t.task_definition_arn() == Some(task_def.as_str()))
        {
            let id = t
                .task_arn()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("?");
            let status = t.last_status().unwrap_or("UNKNOWN");
            let health = t.health_status().map(|h| h.as_str()).unwrap_or("UNKNOWN");
            let unhealthy: Vec<String> = t
                .containers()
                .iter()
                .filter(|c| c.name().is_some_and(|n| checked.iter().any(|x| x == n)))
                .filter(|c| c.health_status().map(|h| h.as_str()) != Some("HEALTHY"))
                .map(|c| {
                    format!(
                        "{} {}",
                        c.name().unwrap_or("?"),
                        c.health_status().map(|h| h.as_str()).unwrap_or("UNKNOWN")
                    )
                })
                .collect();
            observed.push(json!({"task": id, "lastStatus": status, "healthStatus": health, "unhealthyContainers": unhealthy}));
            if status == "RUNNING" && unhealthy.is_empty() {
                ready += 1;
            } else if status != "RUNNING" {
                not_ready.push(format!("{id} {status}"));
            } else {
                not_ready.push(format!("{id} RUNNING but {}", unhealthy.join(", ")));
            }
        }
        let what = if checked.is_empty() {
            "RUNNING"
        } else {
            "RUNNING and HEALTHY"
        };
        let observed = json!({"taskDefinition": task_def, "desiredCount": desired, "ready": ready, "tasks": observed, "containersWithHealthChecks": checked});
        let expected = json!({"ready": desired, "status": what});
        if ready >= desired {
            return Evaluation::pass(format!(
                "{ready} of {desired} tasks of {service} ({}) are {what}",
                short_td(&task_def)
            ))
            .observed(observed)
            .expected(expected);
        }
        let mut reason = format!(
            "{ready} of {desired} tasks of {service} ({}) are {what}",
            short_td(&task_def)
        );
        if !not_ready.is_empty() {
            reason.push_str(&format!("; not yet: {}", not_ready.join(", ")));
        }
        Evaluation::pending(c.interval.get(), reason)
            .observed(observed)
            .expected(expected)
    }
}

/// `…:task-definition/web:42` → `web:42`.
fn short_td(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
