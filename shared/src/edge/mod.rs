//! The Lambda edge: takes any event, has the engine decide, and always answers.
//!
//! * ECS ([`ecs`]): reads the event and the state it carries, and returns `SUCCEEDED`,
//!   `FAILED` or `IN_PROGRESS` (with `callBackDelay` and the state to carry in
//!   `hookDetails`).
//! * CodeDeploy ([`codedeploy`]): discovers what the deployment deploys, keeps waiting by
//!   re-invoking itself, and reports `Succeeded` or `Failed` through the CodeDeploy API,
//!   exactly once; it returns a small summary (CodeDeploy ignores it).
//!
//! Every path answers: a malformed event, a broken configuration, an AWS error, a hung
//! dependency (the budget cuts it off) and a panic all end as `FAILED` / `Failed` with a
//! reason.

pub mod approvals;
pub mod codedeploy;
pub mod discovery;
pub mod ecs;
pub mod protocol;

use std::panic::AssertUnwindSafe;
use std::time::SystemTime;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::budget::Budget;
use crate::config::{DECISION_KEY, STATE_KEY};
use crate::deployment::Deployment;
use crate::engine::Decision;
use crate::role::Role;
use crate::services::Services;
use protocol::payload::{self, Answer, Payload, SetAside};
use protocol::{EventError, Invocation};

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
    parsed: Result<Invocation, EventError>,
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
    parsed: Result<Invocation, EventError>,
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
            Ok(ecs::finish(d, &Map::new()))
        }
        Ok(Invocation::Ecs(ev)) => {
            ecs::answer(services, role, &ev, set_aside, started, budget).await
        }
        Ok(Invocation::CodeDeploy(ev)) => {
            codedeploy::answer(services, role, &ev, started, budget).await
        }
    }
}

/// Runs a decision, turning a panic or an overrun of the budget into `FAILED`.
async fn guarded<T>(
    role: Role,
    budget: &Budget,
    deployment: Option<Deployment>,
    decide: impl Future<Output = T>,
    failed: impl FnOnce(Decision) -> T,
) -> T {
    // The decision may use the budget and half of the margin; the other half is kept for
    // the answer or the report.
    let margin = budget.until_deadline().saturating_sub(budget.remaining());
    let limit = budget.remaining() + margin / 2;
    match tokio::time::timeout(limit, AssertUnwindSafe(decide).catch_unwind()).await {
        Ok(Ok(d)) => d,
        Ok(Err(panic)) => {
            let msg = crate::text::panic_message(&*panic).unwrap_or_else(|| "no message".into());
            failed(Decision::failed(
                role,
                format!("internal error: Greenlight panicked ({msg}); failing closed"),
                deployment,
            ))
        }
        Err(_) => failed(Decision::failed(
            role,
            format!(
                "no decision within the invocation's time budget ({} ms); failing closed",
                limit.as_millis()
            ),
            deployment,
        )),
    }
}
