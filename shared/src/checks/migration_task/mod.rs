//! `migrationTask`: runs the migration command in a one-off ECS task from the new
//! revision: its task definition, a configured container and command, and the service's
//! own network configuration, launch type or capacity providers and platform version.
//!
//! Exactly once per deployment: the task carries a `startedBy` marker derived from the
//! deployment and the check, RunTask is called with the same value as its idempotency
//! token (`clientToken`), and a task already started with the marker (by an earlier
//! invocation, a retried one, or a concurrent one) is adopted instead of starting another.
//! Within one process, concurrent invocations are also serialised on the marker.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride,
    DesiredStatus, KeyValuePair, LaunchType, NetworkConfiguration, Task, TaskOverride,
};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::checks::{Check, CheckContext, Timing};
use crate::duration::HumanDuration;
use crate::duration::now_ms;
use crate::schema::ConfigError;
use crate::services::aws_error;
use crate::verdict::Evaluation;

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(15 * 60)
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_log_lines() -> u32 {
    20
}

/// `awsvpc` network settings for the task, as in an ECS service definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskNetwork {
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// `ENABLED` or `DISABLED` (default).
    #[serde(default)]
    pub assign_public_ip: Option<String>,
}

/// One capacity provider of a strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityProvider {
    pub capacity_provider: String,
    #[serde(default)]
    pub weight: i32,
    #[serde(default)]
    pub base: i32,
}

/// Settings of a `migrationTask` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationTaskCheck {
    /// The container that runs the migration; its exit code is the verdict. Default: the
    /// task definition's first essential container.
    #[serde(default)]
    pub container: Option<String>,
    /// The command, as in a container definition (`["bin/migrate", "up"]`). Default: the
    /// container's own.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Environment variables added to the container.
    #[serde(default)]
    pub environment: IndexMap<String, String>,
    /// The task definition to run. Default: the new revision's (the target service
    /// revision's for ECS, the green task set's for CodeDeploy).
    #[serde(default)]
    pub task_definition: Option<String>,
    /// The cluster. Default: the service's.
    #[serde(default)]
    pub cluster: Option<String>,
    /// `FARGATE`, `EC2` or `EXTERNAL`. Default: the service's launch type or capacity
    /// provider strategy.
    #[serde(default)]
    pub launch_type: Option<String>,
    /// Default: the service's.
    #[serde(default)]
    pub capacity_provider_strategy: Option<Vec<CapacityProvider>>,
    /// Fargate platform version. Default: the service's.
    #[serde(default)]
    pub platform_version: Option<String>,
    /// Default: the service's network configuration.
    #[serde(default)]
    pub network_configuration: Option<TaskNetwork>,
    /// The longest the task may run; then it is stopped and the check fails. Default
    /// `15m`. The check's `within` must be longer.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Time between looks at the task. Default `10s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Lines of the container's CloudWatch log (awslogs) put in the record when the task
    /// fails. Default 20; 0 reads none.
    #[serde(default = "default_log_lines")]
    pub log_lines: u32,
}

impl Check for MigrationTaskCheck {
    const TYPE: &'static str = "migrationTask";
    const DESCRIPTION: &'static str = "Runs the migration command once per deployment in an ECS task from the new revision (its task definition, the service's network); passes when the container exits 0, stops it after a timeout.";
    type State = Option<State>;

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let c = self;
        if let Some(lt) = &c.launch_type
            && !["FARGATE", "EC2", "EXTERNAL"].contains(&lt.as_str())
        {
            return Err(ConfigError::new(
                format!("{at}.launchType"),
                format!("{lt:?} is not one of FARGATE, EC2, EXTERNAL"),
            ));
        }
        if c.launch_type.is_some() && c.capacity_provider_strategy.is_some() {
            return Err(ConfigError::new(
                format!("{at}.capacityProviderStrategy"),
                "cannot be set together with launchType; keep one",
            ));
        }
        if let Some(n) = &c.network_configuration {
            if n.subnets.is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.networkConfiguration.subnets"),
                    "is empty; name at least one subnet",
                ));
            }
            if let Some(p) = &n.assign_public_ip
                && p != "ENABLED"
                && p != "DISABLED"
            {
                return Err(ConfigError::new(
                    format!("{at}.networkConfiguration.assignPublicIp"),
                    format!("{p:?} is not ENABLED or DISABLED"),
                ));
            }
        }
        if c.command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(ConfigError::new(
                format!("{at}.command"),
                "is empty; leave it out to run the container's own command",
            ));
        }
        if c.interval.get() < Duration::from_millis(100) {
            return Err(ConfigError::new(
                format!("{at}.interval"),
                "must be at least 100ms",
            ));
        }
        if c.timeout.get() < Duration::from_secs(1) {
            return Err(ConfigError::new(
                format!("{at}.timeout"),
                "must be at least 1s",
            ));
        }
        Ok(())
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval)
    }

    /// The task's timeout bounds the wait; by default the check waits for it.
    fn default_within(&self) -> Option<Duration> {
        Some(self.timeout.get() + Duration::from_secs(60))
    }

    fn check_within(&self, within: HumanDuration, at: &str) -> Result<(), ConfigError> {
        if within.get() <= self.timeout.get() {
            return Err(ConfigError::new(
                format!("{at}.within"),
                format!(
                    "is {within}, not longer than the task's timeout ({}): the check would give up while the task still runs; set within to more than timeout",
                    self.timeout
                ),
            ));
        }
        Ok(())
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, state: Self::State) -> Evaluation {
        let c = self;
        match run(c, ctx, state).await {
            Ok(ev) | Err(ev) => ev,
        }
    }
}

/// The `startedBy` marker (and idempotency token) of this check in this deployment.
pub fn marker(deployment_key: &str, check: &str) -> String {
    let digest = Sha256::digest(format!("{deployment_key}\n{check}").as_bytes());
    format!("greenlight-{}", &hex::encode(digest)[..32])
}

/// Per-marker locks, so that concurrent invocations in one process start one task.
static STARTING: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn lock_for(marker: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(marker.to_string()).or_default().clone()
}

/// What the check carries between evaluations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    task_arn: String,
    container: String,
    task_definition: String,
    /// When the check first saw the task (ms since the epoch).
    seen_at_ms: u64,
}

macro_rules! call {
    ($ctx:expr, $what:expr, $perm:literal, $fut:expr) => {
        match $ctx.budget.run($fut).await {
            None => {
                return Err(Evaluation::error(format!(
                    "{} did not answer within the invocation's budget",
                    $what
                )))
            }
            Some(Err(e)) => return Err(Evaluation::error(aws_error(&$what, $perm, &e))),
            Some(Ok(out)) => out,
        }
    };
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

async fn run(
    c: &MigrationTaskCheck,
    ctx: &CheckContext<'_>,
    carried: Option<State>,
) -> Result<Evaluation, Evaluation> {
    let d = ctx.deployment;
    let cluster = c
        .cluster
        .clone()
        .or_else(|| d.cluster.clone())
        .ok_or_else(|| {
            Evaluation::error("no ECS cluster: the deployment names none; set the check's cluster")
        })?;
    let marker = marker(&d.key, ctx.name);

    let (task, state) = match carried {
        Some(s) if !s.task_arn.is_empty() => {
            let task = describe(ctx, &cluster, &s.task_arn).await?;
            (task, s)
        }
        _ => {
            // Serialise concurrent invocations of this process; across processes the
            // marker lookup and the idempotency token keep it to one task.
            let lock = lock_for(&marker);
            let _guard = lock.lock().await;
            match adopt(ctx, &cluster, &marker).await? {
                Some(task) => {
                    let td = task.task_definition_arn().unwrap_or_default().to_string();
                    let container = match &c.container {
                        Some(n) => n.clone(),
                        None => task
                            .containers()
                            .first()
                            .and_then(|x| x.name())
                            .unwrap_or_default()
                            .to_string(),
                    };
                    let state = State {
                        task_arn: task.task_arn().unwrap_or_default().to_string(),
                        container,
                        task_definition: td,
                        seen_at_ms: now_ms(),
                    };
                    (task, state)
                }
                None => match start(c, ctx, &cluster, &marker).await? {
                    Started::Task(task, state) => (*task, state),
                    Started::DryRun(ev) => return Ok(ev),
                },
            }
        }
    };
    judge(c, ctx, &cluster, task, state).await
}

async fn describe(ctx: &CheckContext<'_>, cluster: &str, arn: &str) -> Result<Task, Evaluation> {
    let out = call!(
        ctx,
        "ECS DescribeTasks",
        "ecs:DescribeTasks",
        ctx.services
            .ecs()
            .await
            .describe_tasks()
            .cluster(cluster)
            .tasks(arn)
            .send()
    );
    out.tasks().first().cloned().ok_or_else(|| {
        let why = out
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("not found");
        Evaluation::error(format!(
            "ECS no longer knows migration task {} in cluster {cluster} ({why}); stopped tasks are kept for about an hour",
            short(arn)
        ))
    })
}

/// A task already started for this deployment and check, if any.
async fn adopt(
    ctx: &CheckContext<'_>,
    cluster: &str,
    marker: &str,
) -> Result<Option<Task>, Evaluation> {
    let ecs = ctx.services.ecs().await;
    let mut arns = Vec::new();
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let out = call!(
            ctx,
            "ECS ListTasks",
            "ecs:ListTasks",
            ecs.list_tasks()
                .cluster(cluster)
                .started_by(marker)
                .desired_status(status)
                .send()
        );
        for a in out.task_arns() {
            if !arns.contains(a) {
                arns.push(a.clone());
            }
        }
    }
    if arns.is_empty() {
        return Ok(None);
    }
    let out = call!(
        ctx,
        "ECS DescribeTasks",
        "ecs:DescribeTasks",
        ecs.describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns))
            .send()
    );
    // A running one first, else the latest.
    let mut tasks = out.tasks().to_vec();
    tasks.sort_by_key(|t| {
        (
            t.last_status() != Some("STOPPED"),
            t.created_at().map(|d| d.secs()).unwrap_or(0),
        )
    });
    Ok(tasks.pop())
}

enum Started {
    Task(Box<Task>, State),
    DryRun(Evaluation),
}

/// The new revision's task definition.
async fn task_definition(
    c: &MigrationTaskCheck,
    ctx: &CheckContext<'_>,
    cluster: &str,
) -> Result<String, Evaluation> {
    if let Some(td) = &c.task_definition {
        return Ok(td.clone());
    }
    let d = ctx.deployment;
    if let Some(ecs_facts) = d.codedeploy.as_ref().and_then(|f| f.ecs.as_ref()) {
        let green = ecs_facts.green.as_ref().ok_or_else(|| {
            Evaluation::error("the CodeDeploy deployment has no green task set yet; set the check's taskDefinition")
        })?;
        let service = d.service.clone().unwrap_or_default();
        let out = call!(
            ctx,
            "ECS DescribeTaskSets",
            "ecs:DescribeTaskSets",
            ctx.services
                .ecs()
                .await
                .describe_task_sets()
                .cluster(cluster)
                .service(&service)
                .task_sets(&green.id)
                .send()
        );
        return out
            .task_sets()
            .first()
            .and_then(|t| t.task_definition())
            .map(str::to_string)
            .ok_or_else(|| {
                Evaluation::error(format!("ECS does not know the green task set {}", green.id))
            });
    }
    let revision = ctx
        .facts
        .revision(ctx.services, d, &ctx.budget)
        .await
        .map_err(Evaluation::error)?;
    revision.task_definition.ok_or_else(|| {
        Evaluation::error(format!(
            "service revision {} has no task definition",
            revision.arn
        ))
    })
}

async fn start(
    c: &MigrationTaskCheck,
    ctx: &CheckContext<'_>,
    cluster: &str,
    marker: &str,
) -> Result<Started, Evaluation> {
    let ecs = ctx.services.ecs().await;
    let td_arn = task_definition(c, ctx, cluster).await?;

    // The container: named, or the first essential one.
    let td = call!(
        ctx,
        "ECS DescribeTaskDefinition",
        "ecs:DescribeTaskDefinition",
        ecs.describe_task_definition()
            .task_definition(&td_arn)
            .send()
    );
    let defs = td
        .task_definition()
        .map(|t| t.container_definitions())
        .unwrap_or_default();
    let container = match &c.container {
        Some(name) => {
            if !defs.iter().any(|x| x.name() == Some(name.as_str())) {
                let names: Vec<&str> = defs.iter().filter_map(|x| x.name()).collect();
                return Err(Evaluation::error(format!(
                    "task definition {} has no container {name:?} (it has: {})",
                    short(&td_arn),
                    names.join(", ")
                )));
            }
            name.clone()
        }
        None => defs
            .iter()
            .find(|x| x.essential().unwrap_or(true))
            .or(defs.first())
            .and_then(|x| x.name())
            .map(str::to_string)
            .ok_or_else(|| {
                Evaluation::error(format!(
                    "task definition {} has no containers",
                    short(&td_arn)
                ))
            })?,
    };

    // Placement and network: configured, else the service's.
    let mut launch_type = c.launch_type.clone();
    let mut strategy: Option<Vec<CapacityProviderStrategyItem>> =
        c.capacity_provider_strategy.as_ref().map(|s| {
            s.iter()
                .map(|p| {
                    CapacityProviderStrategyItem::builder()
                        .capacity_provider(&p.capacity_provider)
                        .weight(p.weight)
                        .base(p.base)
                        .build()
                        .expect("capacity provider is set")
                })
                .collect()
        });
    let mut platform = c.platform_version.clone();
    let mut network: Option<NetworkConfiguration> = c.network_configuration.as_ref().map(|n| {
        NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(n.subnets.clone()))
                    .set_security_groups(Some(n.security_groups.clone()))
                    .assign_public_ip(AssignPublicIp::from(
                        n.assign_public_ip.as_deref().unwrap_or("DISABLED"),
                    ))
                    .build()
                    .expect("subnets are set"),
            )
            .build()
    });
    let need_service =
        network.is_none() || (launch_type.is_none() && strategy.is_none()) || platform.is_none();
    if need_service && let Some(service) = ctx.deployment.service.clone() {
        let out = call!(
            ctx,
            "ECS DescribeServices",
            "ecs:DescribeServices",
            ecs.describe_services()
                .cluster(cluster)
                .services(&service)
                .send()
        );
        if let Some(s) = out.services().first() {
            if network.is_none() {
                network = s.network_configuration().cloned();
            }
            if launch_type.is_none() && strategy.is_none() {
                if !s.capacity_provider_strategy().is_empty() {
                    strategy = Some(s.capacity_provider_strategy().to_vec());
                } else {
                    launch_type = s.launch_type().map(|l| l.as_str().to_string());
                }
            }
            if platform.is_none() && launch_type.as_deref() == Some("FARGATE") {
                platform = s.platform_version().map(str::to_string);
            }
        }
    }

    let mut over = ContainerOverride::builder().name(&container);
    if let Some(cmd) = &c.command {
        over = over.set_command(Some(cmd.clone()));
    }
    for (k, v) in &c.environment {
        over = over.environment(KeyValuePair::builder().name(k).value(v).build());
    }
    let overrides = TaskOverride::builder()
        .container_overrides(over.build())
        .build();

    if ctx.dry_run {
        return Ok(Started::DryRun(
            Evaluation::pass(format!(
                "dry run: would run {} container {container}{} in cluster {cluster}",
                short(&td_arn),
                c.command.as_ref().map(|x| format!(" with command {x:?}")).unwrap_or_default()
            ))
            .observed(json!({
                "taskDefinition": td_arn,
                "container": container,
                "command": c.command,
                "launchType": launch_type,
                "capacityProviderStrategy": strategy.as_ref().map(|s| s.iter().map(|p| p.capacity_provider().to_string()).collect::<Vec<_>>()),
                "platformVersion": platform,
                "subnets": network.as_ref().and_then(|n| n.awsvpc_configuration()).map(|a| a.subnets().to_vec()),
                "startedBy": marker,
            })),
        ));
    }

    let mut req = ecs
        .run_task()
        .cluster(cluster)
        .task_definition(&td_arn)
        .count(1)
        .started_by(marker)
        .client_token(marker)
        .overrides(overrides)
        .set_network_configuration(network)
        .set_platform_version(platform)
        .set_capacity_provider_strategy(strategy);
    if let Some(lt) = &launch_type {
        req = req.launch_type(LaunchType::from(lt.as_str()));
    }
    if let Some(g) = &ctx.deployment.service {
        req = req.group(format!("greenlight:{g}"));
    }
    let out = call!(
        ctx,
        "ECS RunTask",
        "ecs:RunTask (and iam:PassRole on the task's roles)",
        req.send()
    );
    let Some(task) = out.tasks().first().cloned() else {
        let failures: Vec<String> = out
            .failures()
            .iter()
            .map(|f| {
                format!(
                    "{}{}",
                    f.reason().unwrap_or("unknown reason"),
                    f.detail().map(|d| format!(" ({d})")).unwrap_or_default()
                )
            })
            .collect();
        return Err(Evaluation::fail(format!(
            "the migration task could not start: {}",
            if failures.is_empty() {
                "RunTask started no task and gave no reason".to_string()
            } else {
                failures.join("; ")
            }
        ))
        .observed(json!({"taskDefinition": td_arn, "failures": failures})));
    };
    let state = State {
        task_arn: task.task_arn().unwrap_or_default().to_string(),
        container,
        task_definition: td_arn,
        seen_at_ms: now_ms(),
    };
    Ok(Started::Task(Box::new(task), state))
}

async fn judge(
    c: &MigrationTaskCheck,
    ctx: &CheckContext<'_>,
    cluster: &str,
    task: Task,
    state: State,
) -> Result<Evaluation, Evaluation> {
    let id = short(&state.task_arn).to_string();
    let status = task.last_status().unwrap_or("UNKNOWN").to_string();
    let started_ms = task
        .created_at()
        .map(|d| d.to_millis().unwrap_or(0).max(0) as u64)
        .filter(|&ms| ms > 0)
        .map(|ms| ms.min(state.seen_at_ms))
        .unwrap_or(state.seen_at_ms)
        .min(now_ms());
    let ran_for = Duration::from_millis(now_ms().saturating_sub(started_ms));
    let container = task
        .containers()
        .iter()
        .find(|x| x.name() == Some(state.container.as_str()))
        .cloned();
    let mut observed = json!({
        "task": state.task_arn,
        "taskDefinition": state.task_definition,
        "container": state.container,
        "lastStatus": status,
        "ranForMs": crate::duration::millis(ran_for),
    });
    let carried = serde_json::to_value(&state).unwrap_or(Value::Null);

    if status != "STOPPED" {
        if ran_for >= c.timeout.get() {
            let reason = format!(
                "Greenlight: the migration ran longer than its timeout ({})",
                c.timeout
            );
            let stop = ctx
                .budget
                .run(
                    ctx.services
                        .ecs()
                        .await
                        .stop_task()
                        .cluster(cluster)
                        .task(&state.task_arn)
                        .reason(&reason)
                        .send(),
                )
                .await;
            let stopped = match stop {
                Some(Ok(_)) => "stopped it".to_string(),
                Some(Err(e)) => format!(
                    "could not stop it: {}",
                    aws_error("ECS StopTask", "ecs:StopTask", &e)
                ),
                None => "could not stop it: ECS StopTask did not answer in time".to_string(),
            };
            let logs = log_tail(c, ctx, &state).await;
            observed["logTail"] = json!(logs.lines);
            return Ok(Evaluation::fail(format!(
                "migration task {id} was still {status} after {} (timeout {}); {stopped}{}",
                humantime::format_duration(Duration::from_secs(ran_for.as_secs())),
                c.timeout,
                logs.summary()
            ))
            .observed(observed)
            .state(carried));
        }
        return Ok(Evaluation::pending(
            c.interval.get(),
            format!(
                "migration task {id} ({}, container {}) is {status} after {}",
                short(&state.task_definition),
                state.container,
                humantime::format_duration(Duration::from_secs(ran_for.as_secs()))
            ),
        )
        .observed(observed)
        .state(carried));
    }

    let exit = container.as_ref().and_then(|x| x.exit_code());
    let stopped_reason = task.stopped_reason().unwrap_or_default().to_string();
    let stop_code = task.stop_code().map(|s| s.as_str().to_string());
    let container_reason = container
        .as_ref()
        .and_then(|x| x.reason())
        .unwrap_or_default()
        .to_string();
    observed["exitCode"] = json!(exit);
    observed["stoppedReason"] = json!(stopped_reason);
    observed["stopCode"] = json!(stop_code);
    if !container_reason.is_empty() {
        observed["containerReason"] = json!(container_reason);
    }
    if exit == Some(0) {
        return Ok(Evaluation::pass(format!(
            "migration task {id} ({}, container {}) exited 0 after {}",
            short(&state.task_definition),
            state.container,
            humantime::format_duration(Duration::from_secs(ran_for.as_secs()))
        ))
        .observed(observed)
        .expected(json!({"exitCode": 0}))
        .state(carried));
    }
    let logs = log_tail(c, ctx, &state).await;
    observed["logTail"] = json!(logs.lines);
    let mut why = match exit {
        Some(code) => format!("exited with code {code}"),
        None => "stopped before its container ran to completion".to_string(),
    };
    if !stopped_reason.is_empty() {
        why.push_str(&format!("; stopped reason: {stopped_reason}"));
    }
    if !container_reason.is_empty() {
        why.push_str(&format!("; container: {container_reason}"));
    }
    Ok(Evaluation::fail(format!(
        "migration task {id} ({}, container {}) {why}{}",
        short(&state.task_definition),
        state.container,
        logs.summary()
    ))
    .observed(observed)
    .expected(json!({"exitCode": 0}))
    .state(carried))
}

struct LogTail {
    lines: Vec<String>,
    note: Option<String>,
}

impl LogTail {
    fn summary(&self) -> String {
        match (&self.note, self.lines.last()) {
            (Some(note), _) => format!(" (log: {note})"),
            (None, Some(last)) => format!("; last log line: {last}"),
            (None, None) => String::new(),
        }
    }
}

/// The last lines of the container's awslogs stream: `<prefix>/<container>/<task id>`.
async fn log_tail(c: &MigrationTaskCheck, ctx: &CheckContext<'_>, state: &State) -> LogTail {
    let none = |note: String| LogTail {
        lines: Vec::new(),
        note: Some(note),
    };
    if c.log_lines == 0 {
        return LogTail {
            lines: Vec::new(),
            note: None,
        };
    }
    let td = match ctx
        .budget
        .run(
            ctx.services
                .ecs()
                .await
                .describe_task_definition()
                .task_definition(&state.task_definition)
                .send(),
        )
        .await
    {
        Some(Ok(td)) => td,
        Some(Err(e)) => {
            return none(aws_error(
                "ECS DescribeTaskDefinition",
                "ecs:DescribeTaskDefinition",
                &e,
            ));
        }
        None => return none("ECS DescribeTaskDefinition did not answer in time".into()),
    };
    let Some(def) = td
        .task_definition()
        .map(|t| t.container_definitions())
        .unwrap_or_default()
        .iter()
        .find(|x| x.name() == Some(state.container.as_str()))
        .cloned()
    else {
        return none(format!(
            "no container {} in the task definition",
            state.container
        ));
    };
    let Some(lc) = def.log_configuration() else {
        return none("the container has no log configuration".into());
    };
    if lc.log_driver().as_str() != "awslogs" {
        return none(format!(
            "the container logs with {}, not awslogs",
            lc.log_driver().as_str()
        ));
    }
    let opts: HashMap<String, String> = lc.options().cloned().unwrap_or_default();
    let (Some(group), Some(prefix)) =
        (opts.get("awslogs-group"), opts.get("awslogs-stream-prefix"))
    else {
        return none(
            "awslogs needs awslogs-group and awslogs-stream-prefix to name the task's stream"
                .into(),
        );
    };
    let stream = format!("{prefix}/{}/{}", state.container, short(&state.task_arn));
    let out = ctx
        .budget
        .run(
            ctx.services
                .logs()
                .await
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(&stream)
                .limit(c.log_lines as i32)
                .start_from_head(false)
                .send(),
        )
        .await;
    match out {
        Some(Ok(out)) => LogTail {
            lines: out
                .events()
                .iter()
                .filter_map(|e| e.message())
                .map(|m| m.trim_end().to_string())
                .collect(),
            note: None,
        },
        Some(Err(e)) => none(aws_error(
            &format!("CloudWatch Logs GetLogEvents of {group} {stream}"),
            "logs:GetLogEvents on the log group",
            &e,
        )),
        None => none("CloudWatch Logs did not answer in time".into()),
    }
}
