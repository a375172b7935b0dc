//! The CodeDeploy edge: CodeDeploy invokes the hook asynchronously with two ids and waits
//! for a status report through its API. The edge discovers what the deployment deploys
//! ([`super::discovery`]), has the engine decide, keeps waiting by re-invoking the function
//! with a continuation while the decision is pending (within `codeDeployMaxWait`), and
//! reports `Succeeded` or `Failed` exactly once.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::discovery;
use super::guarded;
use super::protocol::CodeDeployEvent;
use super::protocol::codedeploy::{self, Continuation, ReportStatus, Reported};
use crate::budget::Budget;
use crate::config::sources;
use crate::deployment::{Deployment, Protocol, TrafficDirection};
use crate::duration::{HumanDuration, millis, now_ms};
use crate::engine::runner::{self, RunState};
use crate::engine::{self, Decision, notifications};
use crate::role::Role;
use crate::services::Services;
use crate::verdict::HookStatus;

impl Deployment {
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
}

/// What follows a CodeDeploy decision.
enum Next {
    /// Report the verdict.
    Report,
    /// A retried invocation after the status was reported: report nothing.
    AlreadyReported,
    /// Keep waiting in a new invocation carrying this.
    Continue(Continuation),
}

/// Decides, notifies, and reports (or keeps waiting) for a CodeDeploy event.
pub(super) async fn answer(
    services: &Services,
    role: Role,
    ev: &CodeDeployEvent,
    started: Instant,
    budget: Budget,
) -> Result<Value, String> {
    let deployment = Deployment::from_codedeploy(role, ev);
    // A continuation waits out the delay its predecessor asked for.
    if let Some(c) = &ev.continuation {
        let wait = Duration::from_millis(c.not_before_ms.saturating_sub(now_ms()));
        tokio::time::sleep(wait.min(budget.remaining() / 2)).await;
    }
    let (mut d, next) = guarded(
        role,
        &budget,
        Some(deployment.clone()),
        decide(services, role, ev, deployment, budget),
        |d| (d, Next::Report),
    )
    .await;
    d.stamp(started, &budget);
    // CodeDeploy is never asked to call back: the delay is the continuation's.
    let delay = d.record.call_back_delay.take();
    match next {
        Next::AlreadyReported => {
            d.log();
            return Ok(json!({"reported": "AlreadyCompleted", "reason": d.record.reason}));
        }
        Next::Continue(mut c) => {
            // An approval waiting for a person is announced now (once: what was sent goes
            // into the state the next invocation carries), not when the hook reports.
            if !crate::checks::approval::pending(&d.record.checks).is_empty() {
                notifications::notify(services, &mut d, None, &budget).await;
                if let Some(state) = &d.state
                    && let Ok(v) = serde_json::to_value(state)
                {
                    c.state = v;
                }
            }
            match continue_later(services, &c, &budget).await {
                Ok(()) => {
                    d.log();
                    return Ok(
                        json!({"continued": true, "hop": c.hop, "callBackDelay": delay, "reason": d.record.reason}),
                    );
                }
                Err(e) => {
                    let reason = format!("{e}; undecided: {}", d.record.reason);
                    d.record.decide(HookStatus::Failed, reason);
                }
            }
        }
        Next::Report => {}
    }
    notifications::notify(services, &mut d, None, &budget).await;
    report(services, ev, d, &budget).await
}

async fn report(
    services: &Services,
    ev: &CodeDeployEvent,
    d: Decision,
    budget: &Budget,
) -> Result<Value, String> {
    // CodeDeploy has no IN_PROGRESS: a decision still pending here is a failure.
    let status = match d.status() {
        HookStatus::Succeeded => ReportStatus::Succeeded,
        HookStatus::Failed | HookStatus::InProgress => ReportStatus::Failed,
    };
    d.log();
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

async fn decide(
    services: &Services,
    role: Role,
    ev: &CodeDeployEvent,
    deployment: Deployment,
    budget: Budget,
) -> (Decision, Next) {
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
                let d = Decision::failed(
                    role,
                    format!("the deployment could not be discovered: {e}"),
                    Some(deployment),
                );
                return (d, Next::Report);
            }
        }
    };
    if ev.continuation.is_none()
        && let Some(why) = facts.already_reported(role.codedeploy_hooks())
    {
        let d = Decision::new(
            role,
            HookStatus::Succeeded,
            format!("nothing to do: {why} (a retried invocation)"),
            Some(deployment.with_codedeploy(facts)),
        );
        return (d, Next::AlreadyReported);
    }
    let deployment = deployment.with_codedeploy(facts);
    let config = match sources::load(services, &budget, None, &deployment).await {
        Ok(c) => c,
        Err(e) => {
            let d = Decision::failed(role, e.to_string(), Some(deployment));
            return (d, Next::Report);
        }
    };
    // A chain start in the future would stretch codeDeployMaxWait.
    let chain_started = ev
        .continuation
        .as_ref()
        .map(|c| c.chain_started_at_ms)
        .unwrap_or(u64::MAX)
        .min(now_ms());
    let hop = ev.continuation.as_ref().map(|c| c.hop).unwrap_or(0);
    let prior = ev
        .continuation
        .as_ref()
        .and_then(|c| serde_json::from_value::<RunState>(c.state.clone()).ok())
        .filter(|s| s.deployment == deployment.key && s.v == runner::STATE_VERSION)
        .unwrap_or_else(|| RunState::fresh(&deployment.key));
    let mut d = engine::decide(services, role, &config, None, deployment, prior, budget).await;
    if d.status() != HookStatus::InProgress {
        return (d, Next::Report);
    }
    // CodeDeploy has no IN_PROGRESS: wait by re-invoking this function, within the limit.
    let waited = Duration::from_millis(now_ms().saturating_sub(chain_started));
    let delay = Duration::from_secs(d.record.call_back_delay.unwrap_or(1));
    let limit = config.settings.code_deploy_max_wait;
    if waited.saturating_add(delay) >= limit.get() {
        let why = format!(
            "undecided after {} (codeDeployMaxWait {limit}): {}",
            HumanDuration(Duration::from_secs(waited.as_secs())),
            d.record.reason
        );
        d.record.decide(HookStatus::Failed, why);
        return (d, Next::Report);
    }
    if services.own_function().is_none() {
        let why = format!(
            "undecided within one invocation, and the function cannot re-invoke itself (AWS_LAMBDA_FUNCTION_NAME is not set): {}",
            d.record.reason
        );
        d.record.decide(HookStatus::Failed, why);
        return (d, Next::Report);
    }
    let continuation = Continuation {
        deployment_id: ev.deployment_id.clone(),
        lifecycle_event_hook_execution_id: ev.execution_id.clone(),
        state: d
            .state
            .as_ref()
            .map(|s| serde_json::to_value(s).unwrap_or_default())
            .unwrap_or_default(),
        chain_started_at_ms: chain_started,
        hop: hop.saturating_add(1),
        not_before_ms: now_ms().saturating_add(millis(delay)),
    };
    (d, Next::Continue(continuation))
}

/// Re-invokes this function asynchronously with the continuation: the same version when
/// it runs a published one.
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
        .set_qualifier(services.own_version())
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
