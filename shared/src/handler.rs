//! The hook runtime: takes any event, decides, and always answers.
//!
//! * ECS: returns `SUCCEEDED`, `FAILED` or `IN_PROGRESS` (with `callBackDelay` and the
//!   state to carry in `hookDetails`).
//! * CodeDeploy: reports `Succeeded` or `Failed` through the CodeDeploy API, exactly once,
//!   and returns a small summary (CodeDeploy ignores it).
//!
//! Every path answers: a malformed event, a broken configuration, an AWS error, a hung
//! dependency (the budget cuts it off) and a panic all end as `FAILED` / `Failed` with a
//! reason.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::budget::Budget;
use crate::checks::{self, CheckContext};
use crate::config::{
    self, CONFIG_KEY, CheckConfig, Config, ConfigError, DECISION_KEY, FirstDeployment,
    NoChecksPolicy, STATE_KEY, Selector, Source,
};
use crate::deployment::{Deployment, Protocol};
use crate::discovery;
use crate::duration::millis;
use crate::facts::Facts;
use crate::notify;
use crate::protocol::codedeploy::Continuation;
use crate::protocol::codedeploy::{self, ReportStatus, Reported};
use crate::protocol::payload::{self, Answer, Payload, SetAside};
use crate::protocol::{
    self, CodeDeployEvent, EcsEvent, EcsResponse, HookStatus, Invocation, Stage,
};
use crate::record::DecisionRecord;
use crate::role::Role;
use crate::runner::{self, RunState, RunVerdict};
use crate::services::Services;
use crate::verdict::Evaluation;

/// What an invocation decided, before it is put into one protocol's terms.
#[derive(Clone, Debug)]
pub struct Decision {
    pub status: HookStatus,
    pub call_back_delay: Option<u64>,
    pub record: DecisionRecord,
    pub state: Option<RunState>,
    /// CodeDeploy: keep waiting in a new invocation carrying this.
    pub continuation: Option<Continuation>,
    /// CodeDeploy: a retried invocation after the status was reported; report nothing.
    pub already_reported: bool,
    /// The target revision, when a check looked it up (notifications reuse it).
    pub revision: Option<crate::facts::Revision>,
}

impl Decision {
    fn new(
        role: Role,
        status: HookStatus,
        reason: impl Into<String>,
        deployment: Option<Deployment>,
    ) -> Decision {
        Decision {
            status,
            call_back_delay: None,
            record: DecisionRecord {
                function: role.name().to_string(),
                verdict: status.as_str().to_string(),
                reason: reason.into(),
                call_back_delay: None,
                deployment,
                checks: Vec::new(),
                notes: Vec::new(),
                notifications: Vec::new(),
                invocation: 1,
                elapsed_ms: 0,
                budget_ms: 0,
            },
            state: None,
            continuation: None,
            already_reported: false,
            revision: None,
        }
    }

    fn failed(role: Role, reason: impl Into<String>, deployment: Option<Deployment>) -> Decision {
        Decision::new(role, HookStatus::Failed, reason, deployment)
    }

    /// The answer in the caller's words: `SUCCEEDED`, `FAILED`, `IN_PROGRESS` for ECS;
    /// `Succeeded`, `Failed` for CodeDeploy.
    pub fn status_label(&self) -> String {
        let codedeploy = self
            .record
            .deployment
            .as_ref()
            .is_some_and(|d| d.protocol == Protocol::CodeDeploy);
        match (codedeploy, self.status) {
            (true, HookStatus::Succeeded) => ReportStatus::Succeeded.as_str().to_string(),
            (true, _) => ReportStatus::Failed.as_str().to_string(),
            (false, s) => s.as_str().to_string(),
        }
    }

    /// Stamps the time taken and the budget into the record.
    fn stamp(&mut self, started: Instant, budget: &Budget) {
        self.record.elapsed_ms = millis(started.elapsed());
        self.record.budget_ms = millis(budget.end().saturating_duration_since(started));
    }
}

/// Answers `event`, invoked with the Lambda `deadline`.
pub async fn handle(
    services: &Services,
    role: Role,
    event: &Value,
    deadline: SystemTime,
) -> Result<Value, String> {
    answer(services, role, protocol::parse(event), &[], deadline).await
}

/// The answer's future is large: boxed, so that callers (the tests among them) do not
/// hold it on their stack.
fn answer<'a>(
    services: &'a Services,
    role: Role,
    parsed: Result<Invocation, protocol::EventError>,
    set_aside: &'a [SetAside],
    deadline: SystemTime,
) -> BoxFuture<'a, Result<Value, String>> {
    Box::pin(decide_and_answer(
        services, role, parsed, set_aside, deadline,
    ))
}

/// The Lambda entry point's body: answers a payload as it arrived, whatever it holds.
/// Entries of `hookDetails` too deeply nested to read are given back as they came.
pub async fn handle_payload(
    services: &Services,
    role: Role,
    payload: &Payload,
    deadline: SystemTime,
) -> Result<Answer, String> {
    match payload::read(payload) {
        Ok(mut event) => {
            for s in &mut event.set_aside {
                // Greenlight's own state and decision are replaced, never given back.
                if s.hook_details_key()
                    .is_some_and(|k| k == STATE_KEY || k == DECISION_KEY)
                {
                    s.verbatim = None;
                }
                tracing::warn!("{}: {}", s.describe(), unread(s));
            }
            let value = answer(
                services,
                role,
                protocol::parse(&event.value),
                &event.set_aside,
                deadline,
            )
            .await?;
            Ok(Answer::new(value, event.set_aside))
        }
        Err(e) => answer(services, role, Err(e), &[], deadline)
            .await
            .map(Answer::from),
    }
}

/// What became of a part of the event that was not read.
fn unread(s: &SetAside) -> &'static str {
    if s.verbatim.is_some() {
        "given back unread"
    } else {
        "left out unread"
    }
}

async fn decide_and_answer(
    services: &Services,
    role: Role,
    parsed: Result<Invocation, protocol::EventError>,
    set_aside: &[SetAside],
    deadline: SystemTime,
) -> Result<Value, String> {
    let started = Instant::now();
    let budget = Budget::until(deadline);
    match parsed {
        Err(e) => {
            let mut reason = format!("the event was not understood: {e}");
            if !set_aside.is_empty() {
                let parts: Vec<String> = set_aside.iter().map(SetAside::describe).collect();
                reason.push_str(&format!(" (not read: {})", parts.join("; ")));
            }
            let mut d = Decision::failed(role, reason, None);
            d.stamp(started, &budget);
            Ok(finish_ecs(d, &Map::new()))
        }
        Ok(Invocation::Ecs(ev)) => {
            let deployment = Deployment::from_ecs(role, &ev);
            // Greenlight's own entries must be read; another tool's are its business.
            let own = set_aside.iter().find(|s| {
                s.hook_details_key()
                    .is_some_and(|k| k == CONFIG_KEY || k == STATE_KEY)
            });
            let mut d = match own {
                Some(s) => Decision::failed(
                    role,
                    format!(
                        "{}: Greenlight cannot read it; failing closed",
                        s.describe()
                    ),
                    Some(deployment.clone()),
                ),
                None => {
                    guarded(
                        role,
                        &budget,
                        Some(deployment.clone()),
                        decide_ecs(services, role, &ev, deployment, budget),
                    )
                    .await
                }
            };
            for s in set_aside {
                d.record
                    .notes
                    .push(format!("{}: {}", s.describe(), unread(s)));
            }
            d.stamp(started, &budget);
            notify::dispatch(
                services,
                &mut d,
                notify::Origin::Ecs(&ev.hook_details),
                &budget,
            )
            .await;
            Ok(finish_ecs(d, &ev.hook_details))
        }
        Ok(Invocation::CodeDeploy(ev)) => {
            let deployment = Deployment::from_codedeploy(role, &ev);
            // A continuation waits out the delay its predecessor asked for.
            if let Some(c) = &ev.continuation {
                let wait = Duration::from_millis(c.not_before_ms.saturating_sub(runner::now_ms()));
                tokio::time::sleep(wait.min(budget.remaining() / 2)).await;
            }
            let mut d = guarded(
                role,
                &budget,
                Some(deployment.clone()),
                decide_codedeploy(services, role, &ev, deployment, budget),
            )
            .await;
            d.stamp(started, &budget);
            if d.already_reported {
                d.record.log();
                return Ok(json!({"reported": "AlreadyCompleted", "reason": d.record.reason}));
            }
            if let Some(c) = d.continuation.clone() {
                match continue_later(services, &c, &budget).await {
                    Ok(()) => {
                        d.record.log();
                        return Ok(
                            json!({"continued": true, "hop": c.hop, "callBackDelay": d.call_back_delay, "reason": d.record.reason}),
                        );
                    }
                    Err(e) => {
                        d.status = HookStatus::Failed;
                        d.record.reason = format!("{e}; undecided: {}", d.record.reason);
                    }
                }
            }
            undecided_is_failed(&mut d);
            notify::dispatch(services, &mut d, notify::Origin::CodeDeploy, &budget).await;
            report_codedeploy(services, &ev, d, &budget).await
        }
    }
}

/// Runs a decision, turning a panic or an overrun of the budget into `FAILED`.
async fn guarded(
    role: Role,
    budget: &Budget,
    deployment: Option<Deployment>,
    decide: impl Future<Output = Decision>,
) -> Decision {
    // The decision may use the budget and half of the margin; the other half is kept for
    // the answer or the report.
    let margin = budget.until_deadline().saturating_sub(budget.remaining());
    let limit = budget.remaining() + margin / 2;
    match tokio::time::timeout(limit, AssertUnwindSafe(decide).catch_unwind()).await {
        Ok(Ok(d)) => d,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Decision::failed(
                role,
                format!("internal error: Greenlight panicked ({msg}); failing closed"),
                deployment,
            )
        }
        Err(_) => Decision::failed(
            role,
            format!(
                "no decision within the invocation's time budget ({} ms); failing closed",
                limit.as_millis()
            ),
            deployment,
        ),
    }
}

/// The ECS answer: `hookDetails` keeps every key it came with (configuration included, as
/// ECS may replace rather than merge), drops old Greenlight state, and adds the decision
/// and, with `IN_PROGRESS`, the state to carry.
fn finish_ecs(mut d: Decision, incoming: &Map<String, Value>) -> Value {
    d.record.call_back_delay = d.call_back_delay;
    d.record.verdict = d.status.as_str().to_string();
    d.record.log();
    let mut details = incoming.clone();
    details.shift_remove(STATE_KEY);
    details.shift_remove(DECISION_KEY);
    if d.status == HookStatus::InProgress
        && let Some(state) = &d.state
    {
        details.insert(
            STATE_KEY.into(),
            serde_json::to_value(state).unwrap_or(Value::Null),
        );
    }
    details.insert(DECISION_KEY.into(), d.record.trimmed());
    EcsResponse {
        hook_status: d.status,
        call_back_delay: d.call_back_delay,
        hook_details: details,
    }
    .to_value()
}

/// CodeDeploy cannot be asked again later: a decision still pending is a failure.
fn undecided_is_failed(d: &mut Decision) {
    if d.status == HookStatus::InProgress {
        d.status = HookStatus::Failed;
        d.call_back_delay = None;
        d.record.reason = format!(
            "undecided when this invocation's time budget ran out: {}",
            d.record.reason
        );
    }
}

async fn report_codedeploy(
    services: &Services,
    ev: &CodeDeployEvent,
    mut d: Decision,
    budget: &Budget,
) -> Result<Value, String> {
    // `handle` has turned a pending decision into a failure already.
    let status = match d.status {
        HookStatus::Succeeded => ReportStatus::Succeeded,
        HookStatus::Failed | HookStatus::InProgress => ReportStatus::Failed,
    };
    d.record.verdict = status.as_str().to_string();
    d.record.log();
    let limit = budget
        .until_deadline()
        .saturating_sub(Duration::from_millis(100))
        .max(Duration::from_millis(100));
    let client = services.codedeploy().await;
    match codedeploy::report(client, ev, status, limit).await {
        Ok(Reported::Accepted) => {
            tracing::info!(deployment = %ev.deployment_id, status = status.as_str(), "reported to CodeDeploy");
            Ok(json!({"reported": status.as_str(), "reason": d.record.reason}))
        }
        Ok(Reported::AlreadyCompleted) => {
            tracing::info!(deployment = %ev.deployment_id, "CodeDeploy already has a status for this hook execution; nothing to do");
            Ok(json!({"reported": "AlreadyCompleted", "reason": d.record.reason}))
        }
        Err(e) => {
            tracing::error!(
                deployment = %ev.deployment_id,
                status = status.as_str(),
                "COULD NOT REPORT TO CODEDEPLOY: {e}. The deployment waits until CodeDeploy's one-hour limit unless a retry of this invocation reports."
            );
            Err(format!(
                "could not report {} to CodeDeploy: {e}",
                status.as_str()
            ))
        }
    }
}

/// Reads Greenlight's settings from `hookDetails.greenlight`.
pub(crate) fn hook_source(details: &Map<String, Value>) -> Result<Option<Source>, ConfigError> {
    let origin = format!("hookDetails.{CONFIG_KEY}");
    match details.get(CONFIG_KEY) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(_)) => Ok(Some(Source {
            origin,
            value: details[CONFIG_KEY].clone(),
        })),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(Some(Source { origin, value: v })),
            _ => Err(ConfigError {
                origin,
                path: String::new(),
                message: "is a string that does not hold a JSON object".into(),
            }),
        },
        Some(other) => Err(ConfigError {
            origin,
            path: String::new(),
            message: format!(
                "is {}, expected an object such as {{\"checks\": {{…}}}}",
                protocol::kind_of(other)
            ),
        }),
    }
}

async fn load_config(
    services: &Services,
    budget: &Budget,
    hook: Option<Source>,
    deployment: &Deployment,
) -> Result<Config, ConfigError> {
    let base: Vec<Source> = services.base_config(budget).await?.into_iter().collect();
    let cd = deployment.codedeploy.as_ref();
    let selector = Selector {
        cluster: deployment.cluster.clone(),
        service: deployment.service.clone(),
        application: cd.map(|c| c.application.clone()),
        deployment_group: cd.map(|c| c.deployment_group.clone()),
    };
    config::resolve_for(&base, hook, &selector)
}

async fn decide_ecs(
    services: &Services,
    role: Role,
    ev: &EcsEvent,
    deployment: Deployment,
    budget: Budget,
) -> Decision {
    let mut notes = Vec::new();
    let stage = deployment.stage.clone().unwrap_or(role.assumed_stage());
    if deployment.stage_assumed {
        notes.push(format!("the event has the flat launch-era shape and names no stage; handled as {stage}, the {role} function's stage"));
    }
    if let Stage::Unknown(s) = &stage {
        tracing::warn!(stage = %s, "unknown lifecycle stage; handling it as the {role} function");
        notes.push(format!(
            "unknown lifecycle stage {s}; handled as the {role} function"
        ));
    }
    if deployment.rolling_back() {
        let to = deployment
            .source_revision_arn
            .clone()
            .unwrap_or_else(|| "the previous revision".into());
        let mut d = Decision::new(
            role,
            HookStatus::Succeeded,
            format!(
                "traffic is moving back to {to} at {stage} (rollback); checks never block a rollback"
            ),
            Some(deployment),
        );
        d.record.notes = notes;
        return d;
    }
    let config = match hook_source(&ev.hook_details) {
        Ok(hook) => load_config(services, &budget, hook, &deployment).await,
        Err(e) => Err(e),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            let mut d = Decision::failed(role, e.to_string(), Some(deployment));
            d.record.notes = notes;
            return d;
        }
    };
    // ECS calls the PRE_/PRODUCTION_TRAFFIC_SHIFT hooks once per canary or linear step within
    // one deployment: state is carried within a step only.
    let step = match &stage {
        Stage::PreProductionTrafficShift | Stage::ProductionTrafficShift => {
            let target = deployment
                .target_revision_arn
                .as_deref()
                .unwrap_or_default();
            let weight = ev
                .production_traffic_weights
                .iter()
                .find(|(a, _)| a == target)
                .map(|(_, w)| *w)
                .unwrap_or(0.0);
            format!("{stage}@{weight}")
        }
        other => other.as_str().to_string(),
    };
    let fresh = || {
        let mut s = RunState::fresh(&deployment.key);
        s.step = step.clone();
        s
    };
    let prior = match ev.hook_details.get(STATE_KEY) {
        None => fresh(),
        Some(v) => match serde_json::from_value::<RunState>(v.clone()) {
            Ok(s)
                if s.deployment == deployment.key
                    && s.v == runner::STATE_VERSION
                    && s.step == step =>
            {
                s
            }
            Ok(s) if s.deployment == deployment.key && s.v == runner::STATE_VERSION => {
                notes.push(format!(
                    "new step ({step}; the carried state was for {}): checks start afresh",
                    s.step
                ));
                fresh()
            }
            Ok(_) => {
                notes.push(format!(
                    "ignored {STATE_KEY} from another deployment or version"
                ));
                fresh()
            }
            Err(e) => {
                notes.push(format!("ignored an unreadable {STATE_KEY}: {e}"));
                fresh()
            }
        },
    };
    let mut d = decide(
        services,
        role,
        &config,
        Some(&stage),
        deployment,
        prior,
        budget,
    )
    .await;
    d.record.notes.splice(0..0, notes);
    d
}

async fn decide_codedeploy(
    services: &Services,
    role: Role,
    ev: &CodeDeployEvent,
    deployment: Deployment,
    budget: Budget,
) -> Decision {
    // Throttling or an AWS server error says nothing about the deployment: look again,
    // with a jittered backoff, while the budget allows.
    let mut tries = 0u32;
    let facts = loop {
        match discovery::discover(services, &ev.deployment_id, &budget).await {
            Ok(f) => break f,
            Err(e) => {
                tries = tries.saturating_add(1);
                let wait = runner::unobserved_backoff(tries);
                if e.transient && budget.remaining() > wait * 2 {
                    tracing::warn!(
                        "the deployment could not be discovered yet, looking again: {e}"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Decision::failed(
                    role,
                    format!("the deployment could not be discovered: {e}"),
                    Some(deployment),
                );
            }
        }
    };
    if ev.continuation.is_none()
        && let Some(why) = facts.already_reported(role.codedeploy_hooks())
    {
        let mut d = Decision::new(
            role,
            HookStatus::Succeeded,
            format!("nothing to do: {why} (a retried invocation)"),
            Some(deployment.with_codedeploy(facts)),
        );
        d.already_reported = true;
        return d;
    }
    let deployment = deployment.with_codedeploy(facts);
    let config = match load_config(services, &budget, None, &deployment).await {
        Ok(c) => c,
        Err(e) => return Decision::failed(role, e.to_string(), Some(deployment)),
    };
    // A chain start in the future would stretch codeDeployMaxWait.
    let chain_started = ev
        .continuation
        .as_ref()
        .map(|c| c.chain_started_at_ms)
        .unwrap_or(u64::MAX)
        .min(runner::now_ms());
    let hop = ev.continuation.as_ref().map(|c| c.hop).unwrap_or(0);
    let prior = ev
        .continuation
        .as_ref()
        .and_then(|c| serde_json::from_value::<RunState>(c.state.clone()).ok())
        .filter(|s| s.deployment == deployment.key && s.v == runner::STATE_VERSION)
        .unwrap_or_else(|| RunState::fresh(&deployment.key));
    let mut d = decide(services, role, &config, None, deployment, prior, budget).await;
    if d.status != HookStatus::InProgress {
        return d;
    }
    // CodeDeploy has no IN_PROGRESS: wait by re-invoking this function, within the limit.
    let waited = Duration::from_millis(runner::now_ms().saturating_sub(chain_started));
    let delay = Duration::from_secs(d.call_back_delay.unwrap_or(1));
    let limit = config.settings.code_deploy_max_wait;
    let undecided = |d: &mut Decision, why: String| {
        d.status = HookStatus::Failed;
        d.call_back_delay = None;
        d.record.reason = why;
    };
    if waited.saturating_add(delay) >= limit.get() {
        let why = format!(
            "undecided after {} (codeDeployMaxWait {limit}): {}",
            crate::duration::HumanDuration(Duration::from_secs(waited.as_secs())),
            d.record.reason
        );
        undecided(&mut d, why);
    } else if services.own_function().is_none() {
        let why = format!(
            "undecided within one invocation, and the function cannot re-invoke itself (AWS_LAMBDA_FUNCTION_NAME is not set): {}",
            d.record.reason
        );
        undecided(&mut d, why);
    } else {
        d.continuation = Some(Continuation {
            deployment_id: ev.deployment_id.clone(),
            lifecycle_event_hook_execution_id: ev.execution_id.clone(),
            state: d
                .state
                .as_ref()
                .map(|s| serde_json::to_value(s).unwrap_or_default())
                .unwrap_or_default(),
            chain_started_at_ms: chain_started,
            hop: hop.saturating_add(1),
            not_before_ms: runner::now_ms().saturating_add(millis(delay)),
        });
    }
    d
}

/// Re-invokes this function asynchronously with the continuation.
async fn continue_later(
    services: &Services,
    c: &Continuation,
    budget: &Budget,
) -> Result<(), String> {
    let function = services.own_function().unwrap_or_default();
    let payload = serde_json::to_vec(&c.to_event()).unwrap_or_default();
    let call = services
        .lambda()
        .await
        .invoke()
        .function_name(&function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload))
        .send();
    let limit = budget
        .until_deadline()
        .saturating_sub(Duration::from_millis(300));
    match tokio::time::timeout(limit, call).await {
        Err(_) => Err("Lambda Invoke (to keep waiting) did not answer in time".into()),
        Ok(Err(e)) => Err(crate::services::aws_error(
            "Lambda Invoke (to keep waiting)",
            "lambda:InvokeFunction on the function itself",
            &e,
        )),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Runs the checks that apply and turns the run into a decision.
async fn decide(
    services: &Services,
    role: Role,
    config: &Config,
    stage: Option<&Stage>,
    deployment: Deployment,
    prior: RunState,
    budget: Budget,
) -> Decision {
    let first = deployment.first_deployment == Some(true);
    let skipped: Vec<&str> = config
        .checks
        .iter()
        .filter(|c| first && c.common.on_first_deployment == FirstDeployment::Skip)
        .map(|c| c.name.as_str())
        .collect();
    let active: Vec<CheckConfig> = config
        .checks
        .iter()
        .filter(|c| c.runs_at(stage) && !skipped.contains(&c.name.as_str()))
        .cloned()
        .collect();
    let mut notes = Vec::new();
    if !skipped.is_empty() {
        notes.push(format!(
            "first deployment of the service (no previous revision): skipped {} (onFirstDeployment: skip)",
            skipped.join(", ")
        ));
    }
    let at = stage.map(|s| format!(" at {s}")).unwrap_or_default();
    if active.is_empty() {
        let whence = match deployment.protocol {
            Protocol::Ecs => format!(
                "{}, {} or hookDetails.{CONFIG_KEY}",
                config::ENV_INLINE,
                config::ENV_PARAMETER
            ),
            Protocol::CodeDeploy => format!("{} or {}", config::ENV_INLINE, config::ENV_PARAMETER),
        };
        let reason = format!(
            "no checks configured for {role}{at}: nothing was verified. Configure checks in {whence}"
        );
        let mut d = match config.settings.when_no_checks {
            NoChecksPolicy::Pass => {
                tracing::warn!("{reason}");
                Decision::new(role, HookStatus::Succeeded, reason, Some(deployment))
            }
            NoChecksPolicy::Fail => Decision::failed(
                role,
                format!("{reason} (whenNoChecks: fail)"),
                Some(deployment),
            ),
        };
        d.record.notes = notes;
        return d;
    }
    let facts = Facts::new();
    let report = {
        let evaluator = evaluate_with(services, &deployment, &facts);
        runner::run(&active, prior, budget, &evaluator).await
    };
    let (status, delay) = match report.verdict {
        RunVerdict::Succeeded => (HookStatus::Succeeded, None),
        RunVerdict::Failed => (HookStatus::Failed, None),
        RunVerdict::Pending { call_back_after } => (
            HookStatus::InProgress,
            Some(call_back_after.as_secs_f64().ceil() as u64),
        ),
    };
    let mut d = Decision::new(role, status, report.reason, Some(deployment));
    d.revision = facts.known_revision();
    d.call_back_delay = delay;
    d.record.checks = report.checks;
    d.record.invocation = report.state.invocations;
    d.record.notes = notes;
    d.state = Some(report.state);
    d
}

/// The production evaluator: real checks with the process's services.
fn evaluate_with<'a>(
    services: &'a Services,
    deployment: &'a Deployment,
    facts: &'a Facts,
) -> impl Fn(&'a CheckConfig, Value, Budget) -> BoxFuture<'a, Evaluation> + Sync + 'a {
    move |check, data, budget| {
        Box::pin(async move {
            let ctx = CheckContext {
                deployment,
                services,
                state: &data,
                budget,
                facts,
                name: &check.name,
                dry_run: check.common.dry_run,
            };
            checks::evaluate(&check.kind, &ctx).await
        })
    }
}
