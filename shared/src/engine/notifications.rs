//! The engine's notification step: sends what the decision calls for through
//! [`crate::notify::Outbox`], records every delivery in the decision, remembers what was
//! sent in the carried state, and — in this one place — turns a `required` channel that
//! could not deliver into a `FAILED` verdict naming the channel.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use serde_json::{Map, Value};

use super::Decision;
use crate::budget::Budget;
use crate::config::sources;
use crate::notify::{Delivered, Due, Outbox, send_limit};
use crate::services::Services;
use crate::verdict::HookStatus;

/// Sends what this invocation's decision calls for and records it in the decision: the
/// deliveries (and failures, as notes), what was sent (in the carried state), and — when
/// a `required` channel could not deliver — a `FAILED` answer naming the channel.
/// `hook_details`: the ECS hook's, whose `greenlight` settings count as for the checks.
pub async fn notify(
    services: &Services,
    d: &mut Decision,
    hook_details: Option<&Map<String, Value>>,
    budget: &Budget,
) {
    let run = AssertUnwindSafe(run(services, d, hook_details, budget)).catch_unwind();
    if let Err(panic) = run.await {
        let msg = crate::text::panic_message(&*panic).unwrap_or_else(|| "no message".into());
        tracing::error!("notifications: internal error ({msg}); the verdict is unchanged");
        d.record.notes.push(format!(
            "notifications were not sent: internal error ({msg})"
        ));
    }
}

async fn run(
    services: &Services,
    d: &mut Decision,
    hook_details: Option<&Map<String, Value>>,
    budget: &Budget,
) {
    let Some(deployment) = d.record.deployment.clone() else {
        return;
    };
    let settings = match sources::load_notifications(services, budget, hook_details).await {
        Ok(s) => s,
        Err(e) => {
            // A broken `notifications` setting has already failed the decision, except
            // during a rollback, which never reads the checks.
            tracing::warn!("notifications not sent: {e}");
            if !d.record.reason.contains(&e) {
                d.record.notes.push(format!("notifications not sent: {e}"));
            }
            return;
        }
    };
    if settings.channels.is_empty() {
        return;
    }
    let limit = send_limit(budget, deployment.protocol);
    let carried = d
        .state
        .as_ref()
        .map(|s| s.notified.clone())
        .unwrap_or_default();
    let outbox = Outbox::new(
        services,
        &settings,
        &deployment,
        d.state.as_ref().map(|s| s.started_at_ms),
        carried,
        d.revision.clone(),
        limit,
    )
    .with_approvals(crate::checks::approval::pending(&d.record.checks));
    let due = outbox.due(d.status(), &[]);
    if due.is_empty() {
        return;
    }
    let rolling_back = deployment.rolling_back();

    // Required channels first: when one cannot deliver, the answer becomes FAILED, and
    // the other channels hear of the failure rather than of a success.
    let (required, mut rest): (Vec<Due<'_>>, Vec<Due<'_>>) = due
        .into_iter()
        .partition(|x| x.channel.common.required && !rolling_back);
    let mut results: Vec<Delivered> = Vec::new();
    if !required.is_empty() {
        let first = outbox.send(&required, &d.record).await;
        let failed: Vec<&Delivered> = first.iter().filter(|r| !r.ok()).collect();
        if let Some(f) = failed.first()
            && d.status() != HookStatus::Failed
        {
            let why = f.attempted.result.clone().err().unwrap_or_default();
            let before = format!("{} ({})", d.record.verdict.label(), d.record.reason);
            d.record.decide(
                HookStatus::Failed,
                format!(
                    "notification channel {} ({}) is required and could not deliver the {} notification: {why}; the checks alone answered {before}",
                    f.channel, f.kind, f.event
                ),
            );
            let skip: Vec<String> = failed.iter().map(|r| r.channel.clone()).collect();
            let delivered: Vec<(crate::notify::Event, String)> = first
                .iter()
                .filter(|r| r.ok())
                .map(|r| (r.event, r.channel.clone()))
                .collect();
            rest = outbox
                .due(HookStatus::Failed, &skip)
                .into_iter()
                .filter(|x| !delivered.contains(&(x.event, x.channel.name.clone())))
                .collect();
        }
        results.extend(first);
    }
    if !rest.is_empty() {
        results.extend(outbox.send(&rest, &d.record).await);
    }

    for r in results {
        match &r.attempted.result {
            Ok(()) => {
                if let Some(s) = d.state.as_mut() {
                    s.notified.push(r.mark());
                }
            }
            Err(e) => d.record.notes.push(format!(
                "notification {} to {} ({}) failed: {e}",
                r.event, r.channel, r.kind
            )),
        }
        d.record.notifications.push(r.record());
    }
}
