//! The `approval` check: pending until a person approves or rejects the deployment at this
//! stage, or until its `timeout` (then `onTimeout` decides). The first evaluation writes
//! the approval request to the store; the engine's notification step sends it (with
//! signed links, Slack buttons and the terminal command) once per deployment and stage;
//! every evaluation looks for the decision in the store. See `crate::approval`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::approval::store::{Store, Written};
use crate::approval::{self, Approver, Changes, Decision, Request, Setup, approvers};
use crate::aws;
use crate::budget::Budget;
use crate::checks::{Check, CheckContext, Timing};
use crate::deployment::{Deployment, Protocol};
use crate::duration::{HumanDuration, now_ms};
use crate::facts::Facts;
use crate::schema::ConfigError;
use crate::services::Services;
use crate::verdict::Evaluation;

/// What an approval nobody decided in time does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnTimeout {
    /// The check fails: the deployment rolls back (default).
    #[default]
    Fail,
    /// The check passes: silence is consent.
    Pass,
}

impl OnTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Fail => "fail",
            OnTimeout::Pass => "pass",
        }
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(3600)
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(30)
}

/// Settings of an `approval` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalCheck {
    /// Who may decide: `slack:U…` (user), `slack:S…` (user group), IAM user, role or role
    /// session ARNs, `link` (whoever holds a signed link) or `link:CHANNEL` (the link sent
    /// to that channel). Empty (default): anyone who can reach an action.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How long to wait for a decision, from the request; then `onTimeout` decides. At most
    /// `23h`. Default `1h`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// `fail` (default) or `pass` when nobody decided within `timeout`.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// How often the hook looks for the decision (ECS `callBackDelay`). Default `30s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// A line for the approvers, shown in the request (what to look at before deciding).
    #[serde(default)]
    pub message: Option<String>,
}

/// The longest `timeout`: an ECS Lambda hook waits at most 24 hours, and the check must
/// answer before that.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(23 * 3600);
/// The most approvers listed.
pub const MAX_APPROVERS: usize = 50;

/// What the check carries across invocations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The request in force (written, or found, in the store).
    #[serde(default)]
    request: Option<Request>,
    #[serde(default)]
    changes: Option<Changes>,
}

impl Check for ApprovalCheck {
    const TYPE: &'static str = "approval";
    const DESCRIPTION: &'static str = "Waits for a person to approve or reject, from a signed link, a Slack button or the terminal (IAM), until a timeout.";
    type State = State;

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        if self.approvers.len() > MAX_APPROVERS {
            return Err(ConfigError::new(
                format!("{at}.approvers"),
                format!("lists {} approvers; at most {MAX_APPROVERS}: name a Slack user group or an IAM role instead", self.approvers.len()),
            ));
        }
        if let Err((i, e)) = approvers::parse_all(&self.approvers) {
            return Err(ConfigError::new(format!("{at}.approvers[{i}]"), e));
        }
        if self.timeout.get() < Duration::from_secs(60) || self.timeout.get() > MAX_TIMEOUT {
            return Err(ConfigError::new(
                format!("{at}.timeout"),
                format!("is {}; must be from 1m to 23h (an ECS Lambda hook waits 24 hours at most)", self.timeout),
            ));
        }
        crate::checks::at_least_a_second(self.interval, format!("{at}.interval"))?;
        if self.interval.get() > Duration::from_secs(900) {
            return Err(ConfigError::new(format!("{at}.interval"), "must be at most 15m"));
        }
        if let Some(m) = &self.message
            && m.chars().count() > 500
        {
            return Err(ConfigError::new(format!("{at}.message"), "is longer than 500 characters"));
        }
        Ok(())
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval)
    }

    /// Long enough for the timeout to decide, rather than `within`.
    fn default_within(&self) -> Option<Duration> {
        Some((self.timeout.get() + Duration::from_secs(300)).min(crate::duration::MAX))
    }

    fn check_within(&self, within: HumanDuration, at: &str) -> Result<(), ConfigError> {
        if within.get() < self.timeout.get() {
            return Err(ConfigError::new(
                format!("{at}.within"),
                format!("is {within}, shorter than timeout ({}): the check would give up before the approvers' time ends; set within to at least {}", self.timeout, self.timeout),
            ));
        }
        Ok(())
    }

    async fn evaluate<'a>(&'a self, ctx: &'a CheckContext<'a>, state: State) -> Evaluation {
        let setup = match Setup::from_env() {
            Ok(s) => s,
            Err(e) => return Evaluation::error(format!("cannot ask for approval: {e}")),
        };
        let d = ctx.deployment;
        let stage = stage_label(d);
        let id = approval::approval_id(&d.key, &stage, ctx.name);
        let store = Store { services: ctx.services, bucket: &setup.bucket };
        let budget = &ctx.budget;

        match store.decision(&id, budget).await {
            Err(f) => return f.map(|m| format!("could not read the approval's decision: {m}")).into(),
            Ok(Some(decision)) => return self.decided(&decision),
            Ok(None) => {}
        }

        let fresh_request = !matches!(&state.request, Some(r) if r.id == id);
        let (request, changes) = match state.request.clone() {
            Some(r) if r.id == id => (r, state.changes.clone().unwrap_or_default()),
            _ => {
                let changes = changes(ctx.services, d, ctx.facts, budget).await;
                let now = now_ms();
                let fresh = Request {
                    v: approval::VERSION,
                    id: id.clone(),
                    deployment: d.key.clone(),
                    subject: subject(d, &stage),
                    stage: stage.clone(),
                    check: ctx.name.to_string(),
                    approvers: self.approvers.clone(),
                    requested_at_ms: now,
                    expires_at_ms: now + crate::duration::millis(self.timeout.get()),
                    on_timeout: self.on_timeout.as_str().to_string(),
                    pause: None,
                    region: d.region.clone(),
                    account: d.account.clone(),
                };
                match store.ask(&fresh, budget).await {
                    Ok(r) => (r, changes),
                    Err(f) => return f.map(|m| format!("could not write the approval request: {m}")).into(),
                }
            }
        };
        let carried = json!({"request": request, "changes": changes});
        let now = now_ms();
        if request.expired(now) {
            let expiry = Decision::new(
                &id,
                "expire",
                Approver { via: "timeout".into(), id: "timeout".into(), name: None },
                None,
            );
            return match store.decide(&expiry, budget).await {
                Ok(Written::Created) => self.decided(&expiry).state(carried),
                Ok(Written::Existing(other)) => self.decided(&other).state(carried),
                Err(f) => f.map(|m| format!("could not record the approval's expiry: {m}")).into(),
            };
        }
        let left = Duration::from_millis(request.expires_at_ms - now);
        let who = if self.approvers.is_empty() {
            "anyone with access".to_string()
        } else {
            self.approvers.join(", ")
        };
        let retry = self.interval.get().min(left.max(Duration::from_secs(1)));
        let pending = Evaluation::pending(
            retry,
            format!(
                "waiting for approval by {who} until {} ({} left; then onTimeout: {}); approval {id}",
                approval::rfc3339(request.expires_at_ms),
                HumanDuration(Duration::from_secs(left.as_secs())),
                self.on_timeout.as_str()
            ),
        )
        .observed(json!({"approval": {
            "id": id,
            "subject": request.subject,
            "approvers": request.approvers,
            "requestedAt": approval::rfc3339(request.requested_at_ms),
            "expiresAt": approval::rfc3339(request.expires_at_ms),
            "expiresAtMs": request.expires_at_ms,
            "onTimeout": request.on_timeout,
            "message": self.message,
            "changes": changes,
        }}))
        .state(carried);
        // The first time, the hook answers at once, so that the request goes out now; then
        // it waits within its invocations as any check does.
        if fresh_request {
            pending.handing_back()
        } else {
            pending
        }
    }
}

impl ApprovalCheck {
    fn decided(&self, decision: &Decision) -> Evaluation {
        let observed = json!({"decision": decision});
        let what = decision.describe();
        match decision.action.as_str() {
            "approve" => Evaluation::pass(what).observed(observed),
            "reject" => Evaluation::fail(what).observed(observed),
            _ => match self.on_timeout {
                OnTimeout::Pass => Evaluation::pass(format!(
                    "nobody decided within {} ({what}); onTimeout: pass",
                    self.timeout
                ))
                .observed(observed),
                OnTimeout::Fail => Evaluation::fail(format!(
                    "nobody approved within {} ({what}); onTimeout: fail",
                    self.timeout
                ))
                .observed(observed),
            },
        }
    }
}

/// The stage an approval is for: the ECS stage, or the CodeDeploy lifecycle hook's function.
pub fn stage_label(d: &Deployment) -> String {
    match (&d.stage, d.protocol) {
        (Some(s), Protocol::Ecs) => s.as_str().to_string(),
        _ => d.role.name().to_string(),
    }
}

/// `checkout (cluster shop) at POST_TEST_TRAFFIC_SHIFT, revision 9386`.
pub fn subject(d: &Deployment, stage: &str) -> String {
    let what = d
        .service
        .clone()
        .or_else(|| d.codedeploy_deployment_id.clone())
        .unwrap_or_else(|| d.key.clone());
    let cluster = d.cluster.as_deref().map(|c| format!(" (cluster {c})")).unwrap_or_default();
    let revision = d
        .target_revision_id
        .as_deref()
        .map(|r| format!(", revision {r}"))
        .unwrap_or_default();
    format!("{what}{cluster} at {stage}{revision}")
}

/// What changed from the previous revision: container images (from the service
/// revisions) and environment variable names (from their task definitions). A look-up
/// that fails says so instead.
pub async fn changes(
    services: &Services,
    d: &Deployment,
    facts: &Facts,
    budget: &Budget,
) -> Changes {
    if d.protocol != Protocol::Ecs || d.target_revision_arn.is_none() {
        return Changes {
            unknown: Some("the event names no ECS service revision to compare".into()),
            ..Changes::default()
        };
    }
    let new = match facts.revision(services, d, budget).await {
        Ok(r) => r,
        Err(f) => return Changes { unknown: Some(f.message), ..Changes::default() },
    };
    let old = match facts.source_revision(services, d, budget).await {
        Ok(r) => r,
        Err(f) => {
            return Changes {
                images: new.images.iter().map(|(c, i, _)| format!("{c}: {i} (new)")).collect(),
                unknown: Some(format!("no previous revision to compare: {}", f.message)),
                ..Changes::default()
            };
        }
    };
    let before: BTreeMap<&str, &str> = old.images.iter().map(|(c, i, _)| (c.as_str(), i.as_str())).collect();
    let mut images = Vec::new();
    for (c, i, _) in &new.images {
        match before.get(c.as_str()) {
            Some(prev) if *prev == i => {}
            Some(prev) => images.push(format!("{c}: {prev} → {i}")),
            None => images.push(format!("{c}: {i} (new container)")),
        }
    }
    for c in before.keys() {
        if !new.images.iter().any(|(n, _, _)| n == c) {
            images.push(format!("{c}: removed"));
        }
    }
    let environment = match (&old.task_definition, &new.task_definition) {
        (Some(a), Some(b)) if a == b => Ok(Vec::new()),
        (Some(a), Some(b)) => {
            let (ea, eb) = futures::join!(env_of(services, a, budget), env_of(services, b, budget));
            match (ea, eb) {
                (Ok(ea), Ok(eb)) => Ok(env_diff(&ea, &eb)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        _ => Err("ECS named no task definition for a revision".to_string()),
    };
    match environment {
        Ok(environment) => Changes { images, environment, unknown: None },
        Err(e) => Changes { images, environment: Vec::new(), unknown: Some(e) },
    }
}

/// Container → variable name → a hash of its value (environment and secrets' sources),
/// so that a change shows without the value.
type Env = BTreeMap<String, BTreeMap<String, String>>;

async fn env_of(services: &Services, task_definition: &str, budget: &Budget) -> Result<Env, String> {
    let call = services.ecs().await.describe_task_definition().task_definition(task_definition).send();
    let out = aws::call(budget, "ECS DescribeTaskDefinition", "ecs:DescribeTaskDefinition", call)
        .await
        .map_err(|f| f.message)?;
    let mut env = Env::new();
    for c in out.task_definition().map(|t| t.container_definitions()).unwrap_or_default() {
        let vars = env.entry(c.name().unwrap_or("?").to_string()).or_default();
        for kv in c.environment() {
            if let Some(n) = kv.name() {
                vars.insert(n.to_string(), value_hash(kv.value().unwrap_or("")));
            }
        }
        for s in c.secrets() {
            vars.insert(s.name().to_string(), value_hash(s.value_from()));
        }
    }
    Ok(env)
}

/// A short hash of a value: enough to tell that it changed, nothing of what it is.
fn value_hash(v: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(v.as_bytes())[..8])
}

/// `web: +NEW`, `web: -GONE`, `web: ~CHANGED` (names only).
pub fn env_diff(old: &Env, new: &Env) -> Vec<String> {
    let containers: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for c in containers {
        let (a, b) = (old.get(c).unwrap_or(&empty), new.get(c).unwrap_or(&empty));
        for (k, v) in b {
            match a.get(k) {
                None => out.push(format!("{c}: +{k}")),
                Some(prev) if prev != v => out.push(format!("{c}: ~{k}")),
                _ => {}
            }
        }
        for k in a.keys() {
            if !b.contains_key(k) {
                out.push(format!("{c}: -{k}"));
            }
        }
    }
    out
}

/// The pending approvals a decision record shows: the `approval` object of each pending
/// `approval` check.
pub fn pending(checks: &[crate::record::CheckRecord]) -> Vec<(String, Value)> {
    checks
        .iter()
        .filter(|c| c.kind == ApprovalCheck::TYPE && c.verdict == "pending")
        .filter_map(|c| c.observed.get("approval").map(|a| (c.name.clone(), a.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_diff_names_without_values() {
        let mk = |v: &[(&str, &str, &str)]| {
            let mut e = Env::new();
            for (c, k, h) in v {
                e.entry(c.to_string()).or_default().insert(k.to_string(), h.to_string());
            }
            e
        };
        let old = mk(&[("web", "A", "1"), ("web", "B", "2")]);
        let new = mk(&[("web", "A", "1"), ("web", "B", "3"), ("web", "C", "4"), ("side", "X", "5")]);
        assert_eq!(env_diff(&old, &new), ["side: +X", "web: ~B", "web: +C"]);
        assert_eq!(env_diff(&new, &old), ["side: -X", "web: ~B", "web: -C"]);
    }
}
