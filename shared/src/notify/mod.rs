//! Notifications: tell the on-call engineer that a deployment started, that a gate failed
//! and why, that ECS is rolling back, and that it succeeded — once each, on Slack,
//! Microsoft Teams, a webhook or SNS.
//!
//! * [`events_for`] decides, from the invocation alone, which events it stands for.
//! * What was sent is remembered so that nothing is sent twice: for ECS in the state
//!   carried through `IN_PROGRESS` invocations (`greenlightState.notified`), and for both
//!   protocols in a per-process cache keyed on the notification's id (best effort for a
//!   CodeDeploy retry, which may land in another execution environment).
//! * [`Outbox`] tells which notifications a verdict calls for and sends them
//!   concurrently, each with its timeout and retries, within the invocation's time. It
//!   returns what it delivered and decides nothing: the engine records the deliveries, and
//!   turns a `required` channel's failure into a verdict
//!   (`crate::engine::notifications`).
//!
//! Secrets (webhook URLs, signing secrets, header values) come from Secrets Manager or SSM,
//! are cached for the life of the process, and never appear in a log, a record, an answer
//! or an error: a channel is named by its name and type only.

mod http;
pub mod notice;
pub mod settings;
pub mod slack;
pub mod sns;
pub mod teams;
pub mod webhook;

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::budget::Budget;
use crate::deployment::{Deployment, Protocol};
use crate::facts::Facts;
use crate::record::{DecisionRecord, NotificationRecord};
use crate::role::Role;
use crate::secrets;
use crate::services::Services;
use crate::stage::Stage;
use crate::verdict::HookStatus;

pub use notice::Notice;
pub use settings::{Channel, ChannelKind, Event, Notifications, SecretRef};

pub use http::Attempted;
use http::Redactor;

/// What the event selection looks at: one invocation's facts and its final answer.
#[derive(Clone, Copy, Debug)]
pub struct Moment<'a> {
    pub protocol: Protocol,
    pub role: Role,
    /// The ECS stage (`None` for CodeDeploy).
    pub stage: Option<&'a Stage>,
    /// Traffic is moving back to the previous revision.
    pub rolling_back: bool,
    /// The answer of this invocation (for CodeDeploy, the report: never `IN_PROGRESS`).
    pub status: HookStatus,
    /// CodeDeploy: the function that announces `started`.
    pub code_deploy_started_by: Role,
    /// An `approval` check is waiting for a person.
    pub awaiting_approval: bool,
}

/// The events an invocation stands for, in the order they are announced.
///
/// * `rolledBack`: traffic is moving back (ECS re-invokes the `TEST_TRAFFIC_SHIFT` and
///   `PRODUCTION_TRAFFIC_SHIFT` hooks); nothing else is announced then.
/// * `started`: ECS, any invocation at `PRE_SCALE_UP` (the first stage of every
///   deployment that takes hooks; what was sent is remembered, so it goes out once);
///   CodeDeploy, the function named by `codeDeployStartedBy`.
/// * `failed`: the answer is `FAILED` / a `Failed` report.
/// * `succeeded`: `SUCCEEDED` at `POST_PRODUCTION_TRAFFIC_SHIFT` (CodeDeploy: the
///   `after-allow-traffic` function, `AfterAllowTraffic`).
/// * `stagePassed`: any other `SUCCEEDED`.
/// * `approvalRequested`: the answer is `IN_PROGRESS` (CodeDeploy: the hook keeps waiting)
///   while an `approval` check waits for a person.
pub fn events_for(m: &Moment<'_>) -> Vec<Event> {
    if m.rolling_back {
        return vec![Event::RolledBack];
    }
    let mut out = Vec::new();
    let first = match m.protocol {
        Protocol::Ecs => m.stage == Some(&Stage::PreScaleUp),
        Protocol::CodeDeploy => m.role == m.code_deploy_started_by,
    };
    if first {
        out.push(Event::Started);
    }
    match m.status {
        HookStatus::Failed => out.push(Event::Failed),
        HookStatus::Succeeded => {
            let last = match m.protocol {
                Protocol::Ecs => m.stage == Some(&Stage::PostProductionTrafficShift),
                Protocol::CodeDeploy => m.role == Role::AfterAllowTraffic,
            };
            out.push(if last {
                Event::Succeeded
            } else {
                Event::StagePassed
            });
        }
        HookStatus::InProgress => {
            if m.awaiting_approval {
                out.push(Event::ApprovalRequested);
            }
        }
    }
    out
}

/// A short stable hash (hex) of `text`.
pub(crate) fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// The notification's id: the same for the same event of the same deployment, so
/// receivers (and SNS FIFO topics) can deduplicate. `stagePassed` is per hook execution
/// (`execution`: the carried state's start for ECS, the execution id for CodeDeploy), as
/// a canary deployment passes the same stage once per step.
pub fn notification_id(d: &Deployment, event: Event, execution: &str) -> String {
    let scope = match event {
        Event::StagePassed => format!("{}|{}|{execution}", notice::stage_label(d), d.role.name()),
        Event::ApprovalRequested => format!("{}|{}", notice::stage_label(d), d.role.name()),
        _ => String::new(),
    };
    short_hash(&format!("{}|{}|{scope}", d.key, event.as_str()))
}

/// The most notification ids a process remembers.
const REMEMBERED: usize = 1024;

/// What lives in the process for notifications ([`Services::local`]): the HTTP client for
/// receivers, and what was sent.
#[derive(Default)]
pub struct ProcessState {
    http: OnceLock<Result<reqwest::Client, String>>,
    sent: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl ProcessState {
    /// Receivers get their own client: redirects are not followed (a POST must not turn
    /// into a GET elsewhere).
    fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(|| {
                crate::services::build_http(
                    reqwest::Client::builder()
                        .connect_timeout(Duration::from_secs(3))
                        .redirect(reqwest::redirect::Policy::none()),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn was_sent(&self, key: &str) -> bool {
        self.sent.lock().map(|s| s.0.contains(key)).unwrap_or(false)
    }

    fn remember(&self, key: String) {
        if let Ok(mut s) = self.sent.lock()
            && s.0.insert(key.clone())
        {
            s.1.push_back(key);
            while s.1.len() > REMEMBERED {
                if let Some(old) = s.1.pop_front() {
                    s.0.remove(&old);
                }
            }
        }
    }
}

/// The latest instant notifications may use. ECS answers from memory, so sends may run
/// until shortly before the deadline; CodeDeploy still has to report, so sends stop where
/// the decision had to (the budget plus half the margin).
pub fn send_limit(budget: &Budget, protocol: Protocol) -> Instant {
    let now = Instant::now();
    let deadline = now + budget.until_deadline();
    let end = budget.end();
    let margin = deadline.saturating_duration_since(end);
    match protocol {
        Protocol::Ecs => deadline - (margin / 4).max(Duration::from_millis(250)).min(margin),
        Protocol::CodeDeploy => end + margin / 2,
    }
}

/// One notification due: an event for a channel.
#[derive(Clone, Copy)]
pub struct Due<'a> {
    pub event: Event,
    pub channel: &'a Channel,
}

/// The result of one delivery.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub event: Event,
    pub channel: String,
    pub kind: &'static str,
    pub attempted: Attempted,
    pub took: Duration,
}

impl Delivered {
    pub fn ok(&self) -> bool {
        self.attempted.result.is_ok()
    }

    /// The delivery's line in the decision record.
    pub fn record(&self) -> NotificationRecord {
        NotificationRecord {
            event: self.event.as_str().to_string(),
            channel: self.channel.clone(),
            kind: self.kind.to_string(),
            delivered: self.ok(),
            attempts: self.attempted.attempts,
            error: self.attempted.result.clone().err(),
            duration_ms: crate::duration::millis(self.took),
        }
    }

    /// What the carried state remembers of a delivery: `<event>:<channel>`.
    pub fn mark(&self) -> String {
        format!("{}:{}", self.event.as_str(), self.channel)
    }
}

/// The notifications of one invocation: what is due for a verdict, and their delivery.
/// It decides nothing: the caller turns what was delivered into the record, and a
/// `required` channel's failure into a verdict.
pub struct Outbox<'a> {
    services: &'a Services,
    settings: &'a Notifications,
    deployment: &'a Deployment,
    /// Stable across the invocations of one hook execution (see [`notification_id`]).
    execution: String,
    /// What earlier invocations of this hook delivered (`<event>:<channel>`).
    carried: Vec<String>,
    /// The target revision, when a check looked it up: its images need no look-up.
    revision: Option<crate::facts::Revision>,
    /// The revision's images, looked up when the first notification is sent.
    images: tokio::sync::OnceCell<Vec<notice::Image>>,
    limit: Instant,
    /// The pending approvals of the decision: (check name, its `approval` evidence).
    approvals: Vec<(String, serde_json::Value)>,
}

impl<'a> Outbox<'a> {
    /// `started_at_ms`: the start of the carried state (ECS), `carried`: what it says was
    /// delivered; `revision`: the target revision, when a check looked it up.
    pub fn new(
        services: &'a Services,
        settings: &'a Notifications,
        deployment: &'a Deployment,
        started_at_ms: Option<u64>,
        carried: Vec<String>,
        revision: Option<crate::facts::Revision>,
        limit: Instant,
    ) -> Outbox<'a> {
        let execution = match deployment.protocol {
            // Stable across the IN_PROGRESS invocations of one hook execution; a decision
            // without state is final at once, so any value unique to it will do.
            Protocol::Ecs => started_at_ms
                .unwrap_or_else(crate::duration::now_ms)
                .to_string(),
            Protocol::CodeDeploy => deployment.execution_id.clone().unwrap_or_default(),
        };
        Outbox {
            services,
            settings,
            deployment,
            execution,
            carried,
            revision,
            images: tokio::sync::OnceCell::new(),
            limit,
            approvals: Vec::new(),
        }
    }

    /// The decision's pending approvals, which call for `approvalRequested`.
    pub fn with_approvals(mut self, approvals: Vec<(String, serde_json::Value)>) -> Self {
        self.approvals = approvals;
        self
    }

    /// The approval request as `channel` shows it: the first pending approval, with links
    /// signed for this channel when its approvers allow them.
    fn approval_ask(
        &self,
        channel: &Channel,
        key: &Result<(crate::approval::Setup, secrets::Secret), String>,
    ) -> Option<notice::ApprovalAsk> {
        use crate::approval::{Action, approvers, link};
        let (check, a) = self.approvals.first()?;
        let text = |k: &str| {
            a.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let list: Vec<String> = a
            .get("approvers")
            .and_then(serde_json::Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let id = text("id")?;
        let mut ask = notice::ApprovalAsk {
            id: id.clone(),
            check: check.clone(),
            expires_at: text("expiresAt").unwrap_or_default(),
            on_timeout: text("onTimeout").unwrap_or_else(|| "fail".into()),
            message: text("message"),
            changes: a.get("changes").cloned().unwrap_or(serde_json::Value::Null),
            slack_buttons: channel.kind.type_name() == "slack" && approvers::slack_offered(&list),
            ..notice::ApprovalAsk::default()
        };
        match key {
            Ok((setup, secret)) => {
                if approvers::iam_offered(&list) {
                    ask.command = Some(format!(
                        "greenlight approve {id} --endpoint {} [--reject] [--comment TEXT]",
                        setup.url
                    ));
                }
                if approvers::link_allowed(&list, &channel.name) {
                    let expires = a
                        .get("expiresAtMs")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                        / 1000;
                    match link::key_bytes(secret.expose()) {
                        Ok(k) => {
                            let make = |action| {
                                link::url(
                                    &setup.url,
                                    k,
                                    &link::Claims {
                                        id: id.clone(),
                                        action,
                                        channel: channel.name.clone(),
                                        expires,
                                    },
                                )
                            };
                            ask.approve_url = Some(make(Action::Approve));
                            ask.reject_url = Some(make(Action::Reject));
                        }
                        Err(e) => ask.unavailable = Some(e),
                    }
                }
            }
            Err(e) => ask.unavailable = Some(e.clone()),
        }
        ask.approvers = list;
        Some(ask)
    }

    fn sent_before(&self, event: Event, channel: &Channel) -> bool {
        let mark = format!("{}:{}", event.as_str(), channel.name);
        let id = notification_id(self.deployment, event, &self.execution);
        self.carried.contains(&mark)
            || self
                .services
                .local::<ProcessState>()
                .was_sent(&format!("{id}:{}", channel.name))
    }

    /// What a verdict of `status` calls for: every channel that takes one of its events,
    /// but for those in `skip` and what was delivered before.
    pub fn due(&self, status: HookStatus, skip: &[String]) -> Vec<Due<'a>> {
        let moment = Moment {
            protocol: self.deployment.protocol,
            role: self.deployment.role,
            stage: self.deployment.stage.as_ref(),
            rolling_back: self.deployment.rolling_back(),
            status,
            code_deploy_started_by: self.settings.code_deploy_started_by,
            awaiting_approval: !self.approvals.is_empty(),
        };
        let settings: &'a Notifications = self.settings;
        let mut due = Vec::new();
        for event in events_for(&moment) {
            for channel in &settings.channels {
                if channel.common.events.contains(&event)
                    && !skip.contains(&channel.name)
                    && !self.sent_before(event, channel)
                {
                    due.push(Due { event, channel });
                }
            }
        }
        due
    }

    /// Delivers `due`, telling what `record` says, and remembers in the process what was
    /// delivered.
    pub async fn send(&self, due: &[Due<'_>], record: &DecisionRecord) -> Vec<Delivered> {
        let images = self
            .images
            .get_or_init(|| async {
                if self.settings.include_images {
                    images(
                        self.services,
                        self.deployment,
                        self.revision.clone(),
                        self.limit,
                    )
                    .await
                } else {
                    Vec::new()
                }
            })
            .await;
        let key = if due.iter().any(|x| x.event == Event::ApprovalRequested) {
            match crate::approval::Setup::from_env() {
                Ok(setup) => secrets::resolve_reserved(self.services, &setup.key, self.limit)
                    .await
                    .map(|s| (setup, s))
                    .map_err(|e| format!("the approval signing key could not be read: {e}")),
                Err(e) => Err(e),
            }
        } else {
            Err(String::new())
        };
        let log = notice::LogLocation::from_env();
        let d = self.deployment;
        let notices: Vec<Notice> = due
            .iter()
            .map(|x| {
                let subject = notice::subject(d);
                let stage = notice::stage_label(d);
                let verdict = record.verdict.label().to_string();
                Notice {
                    event: x.event,
                    id: notification_id(d, x.event, &self.execution),
                    headline: notice::headline(x.event, &subject, d, &stage),
                    subject,
                    reason: record.reason.clone(),
                    checks: record.checks.clone(),
                    notes: record.notes.clone(),
                    function: record.function.clone(),
                    stage,
                    invocation: record.invocation,
                    duration: Duration::from_millis(record.elapsed_ms),
                    deployment: d.clone(),
                    images: images.clone(),
                    links: notice::Links {
                        console: notice::console_link(d),
                        logs: notice::log_stream_link(&log),
                        next_step: notice::next_step(d, x.event, &verdict),
                    },
                    verdict,
                    sent_at: SystemTime::now(),
                    approval: (x.event == Event::ApprovalRequested)
                        .then(|| self.approval_ask(x.channel, &key))
                        .flatten(),
                }
            })
            .collect();
        let delivered = deliver_all(self.services, due, &notices, self.limit).await;
        let state = self.services.local::<ProcessState>();
        for r in &delivered {
            let id = notification_id(d, r.event, &self.execution);
            match &r.attempted.result {
                Ok(()) => {
                    tracing::info!(
                        channel = %r.channel,
                        kind = r.kind,
                        event = r.event.as_str(),
                        attempts = r.attempted.attempts,
                        "notified {} ({}) of {}",
                        r.channel,
                        r.kind,
                        r.event
                    );
                    state.remember(format!("{id}:{}", r.channel));
                }
                Err(e) => tracing::warn!(
                    channel = %r.channel,
                    kind = r.kind,
                    event = r.event.as_str(),
                    attempts = r.attempted.attempts,
                    "could not notify {} ({}) of {}: {e}",
                    r.channel,
                    r.kind,
                    r.event
                ),
            }
        }
        delivered
    }
}

/// The target revision's images, when ECS tells them in time.
/// Uses the revision the checks already looked up in this invocation, if any.
async fn images(
    services: &Services,
    d: &Deployment,
    known: Option<crate::facts::Revision>,
    limit: Instant,
) -> Vec<notice::Image> {
    if d.protocol != Protocol::Ecs || d.target_revision_arn.is_none() {
        return Vec::new();
    }
    let to_images = |rev: crate::facts::Revision| -> Vec<notice::Image> {
        rev.images
            .into_iter()
            .map(|(container, image, digest)| notice::Image {
                container,
                image,
                digest,
            })
            .collect()
    };
    if let Some(rev) = known {
        return to_images(rev);
    }
    let within = limit
        .saturating_duration_since(Instant::now())
        .min(Duration::from_secs(2));
    let facts = Facts::new();
    match facts.revision(services, d, &Budget::of(within)).await {
        Ok(rev) => to_images(rev),
        Err(e) => {
            tracing::info!("notifications go without the revision's images: {e}");
            Vec::new()
        }
    }
}

/// Delivers concurrently across channels; one channel gets its notifications in order
/// (`started` before `failed`).
async fn deliver_all(
    services: &Services,
    due: &[Due<'_>],
    notices: &[Notice],
    limit: Instant,
) -> Vec<Delivered> {
    let mut by_channel: Vec<Vec<usize>> = Vec::new();
    for (i, x) in due.iter().enumerate() {
        match by_channel
            .iter_mut()
            .find(|g| due[g[0]].channel.name == x.channel.name)
        {
            Some(g) => g.push(i),
            None => by_channel.push(vec![i]),
        }
    }
    let lanes =
        by_channel.into_iter().map(|lane| async move {
            let mut out = Vec::new();
            for i in lane {
                let (x, n) = (&due[i], &notices[i]);
                let started = Instant::now();
                let attempted =
                    match tokio::time::timeout_at(limit, deliver(services, x.channel, n, limit))
                        .await
                    {
                        Ok(a) => a,
                        Err(_) => Attempted {
                            result: Err("cut off by the end of the invocation's time".into()),
                            attempts: 1,
                        },
                    };
                out.push(Delivered {
                    event: x.event,
                    channel: x.channel.name.clone(),
                    kind: x.channel.kind.type_name(),
                    attempted,
                    took: started.elapsed(),
                });
            }
            out
        });
    futures::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Resolves `r` and remembers its value for redaction.
async fn secret(
    services: &Services,
    r: &SecretRef,
    what: &str,
    limit: Instant,
    redact: &mut Redactor,
) -> Result<secrets::Secret, String> {
    let s = secrets::resolve(services, r, limit)
        .await
        .map_err(|e| format!("could not read its {what}: {e}"))?;
    redact.add(s.expose());
    Ok(s)
}

async fn url(
    services: &Services,
    r: &SecretRef,
    limit: Instant,
    redact: &mut Redactor,
) -> Result<reqwest::Url, String> {
    let s = secret(services, r, "url", limit, redact).await?;
    settings::check_url(s.expose()).map_err(|m| format!("its url (from {}) {m}", r.describe()))
}

async fn deliver(services: &Services, channel: &Channel, n: &Notice, limit: Instant) -> Attempted {
    let fail = |e: String| Attempted {
        result: Err(e),
        attempts: 0,
    };
    let common = &channel.common;
    let timeout = common.timeout.get();
    let mut redact = Redactor::default();
    let state = services.local::<ProcessState>();
    let client = match state.http() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let (target, body) = match &channel.kind {
        ChannelKind::Slack(s) => match url(services, &s.url, limit, &mut redact).await {
            Ok(u) => (u, slack::payload(n).to_string().into_bytes()),
            Err(e) => return fail(e),
        },
        ChannelKind::Teams(t) => match url(services, &t.url, limit, &mut redact).await {
            Ok(u) => (u, teams::payload(n).to_string().into_bytes()),
            Err(e) => return fail(e),
        },
        ChannelKind::Webhook(w) => {
            let target = match url(services, &w.url, limit, &mut redact).await {
                Ok(u) => u,
                Err(e) => return fail(e),
            };
            let body = n.body().to_string().into_bytes();
            for (name, value) in &w.headers {
                let v = match secret(
                    services,
                    value,
                    &format!("header {name}"),
                    limit,
                    &mut redact,
                )
                .await
                {
                    Ok(v) => v,
                    Err(e) => return fail(e),
                };
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(v.expose()),
                ) else {
                    return fail(format!(
                        "header {name} (from {}) is not a valid HTTP header value",
                        value.describe()
                    ));
                };
                let mut value = value;
                value.set_sensitive(true);
                headers.insert(name, value);
            }
            if let Some(r) = &w.signing_secret {
                let key = match secret(services, r, "signingSecret", limit, &mut redact).await {
                    Ok(k) => k,
                    Err(e) => return fail(e),
                };
                let sig = webhook::signature(key.expose().as_bytes(), &body);
                if let Ok(v) = HeaderValue::from_str(&sig) {
                    headers.insert(webhook::SIGNATURE_HEADER, v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(n.event.as_str()) {
                headers.insert(webhook::EVENT_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&n.id) {
                headers.insert(webhook::DELIVERY_HEADER, v);
            }
            (target, body)
        }
        ChannelKind::Sns(s) => {
            let result = sns::publish(services, s, n, timeout, limit).await;
            return Attempted {
                result,
                attempts: 1,
            };
        }
    };
    let mut attempted = http::post(
        client,
        &target,
        headers,
        body,
        timeout,
        common.retries,
        limit,
        &redact,
    )
    .await;
    attempted.result = attempted.result.map_err(|e| redact.clean(&e));
    attempted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(
        protocol: Protocol,
        role: Role,
        stage: Option<Stage>,
        rolling_back: bool,
        status: HookStatus,
    ) -> Vec<Event> {
        events_for(&Moment {
            protocol,
            role,
            stage: stage.as_ref(),
            rolling_back,
            status,
            code_deploy_started_by: Role::BeforeInstall,
            awaiting_approval: false,
        })
    }

    #[test]
    fn events_per_stage_protocol_and_answer() {
        use Event::*;
        use HookStatus::{Failed as F, InProgress as W, Succeeded as S};
        use Protocol::{CodeDeploy as Cd, Ecs};
        use Role::*;
        type Case = (Protocol, Role, Option<Stage>, bool, HookStatus, Vec<Event>);
        let cases: Vec<Case> = vec![
            (
                Ecs,
                BeforeInstall,
                Some(Stage::PreScaleUp),
                false,
                S,
                vec![Started, StagePassed],
            ),
            (
                Ecs,
                BeforeInstall,
                Some(Stage::PreScaleUp),
                false,
                W,
                vec![Started],
            ),
            (
                Ecs,
                BeforeInstall,
                Some(Stage::PreScaleUp),
                false,
                F,
                vec![Started, Failed],
            ),
            // RECONCILE_SERVICE does not run in every deployment: PRE_SCALE_UP announces.
            (
                Ecs,
                BeforeInstall,
                Some(Stage::ReconcileService),
                false,
                S,
                vec![StagePassed],
            ),
            (
                Ecs,
                AfterInstall,
                Some(Stage::PostScaleUp),
                false,
                W,
                vec![],
            ),
            (
                Ecs,
                AfterInstall,
                Some(Stage::PostScaleUp),
                false,
                F,
                vec![Failed],
            ),
            (
                Ecs,
                BeforeAllowTraffic,
                Some(Stage::TestTrafficShift),
                false,
                S,
                vec![StagePassed],
            ),
            (
                Ecs,
                BeforeAllowTraffic,
                Some(Stage::TestTrafficShift),
                true,
                S,
                vec![RolledBack],
            ),
            (
                Ecs,
                AfterAllowTraffic,
                Some(Stage::ProductionTrafficShift),
                true,
                S,
                vec![RolledBack],
            ),
            (
                Ecs,
                AfterAllowTraffic,
                Some(Stage::ProductionTrafficShift),
                false,
                S,
                vec![StagePassed],
            ),
            (
                Ecs,
                AfterAllowTraffic,
                Some(Stage::PostProductionTrafficShift),
                false,
                S,
                vec![Succeeded],
            ),
            (
                Ecs,
                AfterAllowTraffic,
                Some(Stage::PostProductionTrafficShift),
                false,
                F,
                vec![Failed],
            ),
            // The stage decides, not the function attached to it.
            (
                Ecs,
                AfterInstall,
                Some(Stage::PreScaleUp),
                false,
                S,
                vec![Started, StagePassed],
            ),
            (
                Ecs,
                BeforeAllowTraffic,
                Some(Stage::Unknown("NEW".into())),
                false,
                S,
                vec![StagePassed],
            ),
            (
                Cd,
                BeforeInstall,
                None,
                false,
                S,
                vec![Started, StagePassed],
            ),
            (Cd, BeforeInstall, None, false, F, vec![Started, Failed]),
            (Cd, BeforeAllowTraffic, None, false, S, vec![StagePassed]),
            (Cd, AfterAllowTraffic, None, false, S, vec![Succeeded]),
            (Cd, AfterAllowTraffic, None, false, F, vec![Failed]),
        ];
        for (protocol, role, stage, back, status, expected) in cases {
            assert_eq!(
                at(protocol, role, stage.clone(), back, status),
                expected,
                "{protocol:?} {role} {stage:?} back={back} {status:?}"
            );
        }
        // The Lambda compute platform: before-allow-traffic announces the start.
        let lambda = events_for(&Moment {
            protocol: Protocol::CodeDeploy,
            role: Role::BeforeAllowTraffic,
            stage: None,
            rolling_back: false,
            status: HookStatus::Succeeded,
            code_deploy_started_by: Role::BeforeAllowTraffic,
            awaiting_approval: false,
        });
        assert_eq!(lambda, vec![Event::Started, Event::StagePassed]);
    }

    #[test]
    fn process_memory_is_bounded() {
        let s = ProcessState::default();
        for i in 0..(REMEMBERED + 10) {
            s.remember(format!("k{i}"));
        }
        assert!(!s.was_sent("k0"));
        assert!(s.was_sent(&format!("k{}", REMEMBERED + 9)));
        assert_eq!(s.sent.lock().unwrap().0.len(), REMEMBERED);
    }
}
