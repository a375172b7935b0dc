//! The decision record: one per invocation, saying what each check saw, what it expected,
//! its verdict and why. It goes to the log in full and, trimmed, into the answer.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

use crate::deployment::{Deployment, Protocol};
use crate::text::clip;
use crate::verdict::HookStatus;

/// An invocation's verdict, held in one place: its status, said in the caller's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: HookStatus,
    /// CodeDeploy's words (`Succeeded`, `Failed`) rather than ECS's.
    pub codedeploy: bool,
}

impl Verdict {
    /// `SUCCEEDED`, `FAILED`, `IN_PROGRESS` for ECS; `Succeeded`, `Failed` for CodeDeploy
    /// (`IN_PROGRESS` while its hook keeps waiting in a new invocation).
    pub fn label(&self) -> &'static str {
        match (self.codedeploy, self.status) {
            (true, HookStatus::Succeeded) => "Succeeded",
            (true, HookStatus::Failed) => "Failed",
            (_, s) => s.as_str(),
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// One check's line in the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `pass`, `fail`, `pending`, `error` or `unobserved` (AWS throttled or failed on its
    /// side: nothing is known yet): what the check itself found.
    pub verdict: String,
    /// What the verdict did to the deployment: `passed`, `blocked`, `waiting`,
    /// `failedOpen` (error, `onError: pass`), `retrying` (error, `onError: retry`),
    /// `dryRun` (recorded only), `skipped`.
    pub effect: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub observed: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub expected: Value,
    pub attempts: u32,
    pub duration_ms: u64,
    /// The AWS calls this check made in this invocation, by `Service.Operation`: calls,
    /// HTTP attempts (retries included) and attempts AWS throttled.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aws_calls: std::collections::BTreeMap<String, crate::aws::CallCount>,
}

/// The first `max` checks in short: name, type, verdict, effect, and the reason clipped to
/// `reason_bytes` (the answer's `hookDetails`, a notification's body).
pub fn summaries(checks: &[CheckRecord], max: usize, reason_bytes: usize) -> Vec<Value> {
    checks
        .iter()
        .take(max)
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "verdict": c.verdict,
                "effect": c.effect,
                "reason": clip(&c.reason, reason_bytes),
            })
        })
        .collect()
}

/// One notification sent (or not) by an invocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// `started`, `failed`, `rolledBack`, `succeeded` or `stagePassed`.
    pub event: String,
    /// The channel's name (never its URL).
    pub channel: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub delivered: bool,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The record of one invocation.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub function: String,
    /// `SUCCEEDED`, `FAILED` or `IN_PROGRESS` (CodeDeploy: the report sent is `Succeeded`
    /// or `Failed`).
    pub verdict: Verdict,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    pub checks: Vec<CheckRecord>,
    /// Warnings a person should see (an assumed stage, ignored state, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The notifications this invocation sent, or tried to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationRecord>,
    /// Which invocation of this hook in this deployment (1 for the first).
    pub invocation: u32,
    pub elapsed_ms: u64,
    /// The time this invocation had for checks, after the safety margin.
    pub budget_ms: u64,
}

/// Longest reason kept in the answer's `hookDetails`.
pub const ANSWER_REASON_CHARS: usize = 500;
/// At most this many checks are listed in the answer; the log has them all.
pub const ANSWER_MAX_CHECKS: usize = 20;

impl DecisionRecord {
    /// A record with `status` and `reason`, before any check ran.
    pub fn new(
        function: &str,
        status: HookStatus,
        reason: impl Into<String>,
        deployment: Option<Deployment>,
    ) -> DecisionRecord {
        let codedeploy = deployment
            .as_ref()
            .is_some_and(|d| d.protocol == Protocol::CodeDeploy);
        DecisionRecord {
            function: function.to_string(),
            verdict: Verdict { status, codedeploy },
            reason: reason.into(),
            call_back_delay: None,
            deployment,
            checks: Vec::new(),
            notes: Vec::new(),
            notifications: Vec::new(),
            invocation: 1,
            elapsed_ms: 0,
            budget_ms: 0,
        }
    }

    /// The status of the verdict.
    pub fn status(&self) -> HookStatus {
        self.verdict.status
    }

    /// Changes the verdict and says why; a final verdict asks for no call-back.
    pub fn decide(&mut self, status: HookStatus, reason: impl Into<String>) {
        self.verdict.status = status;
        self.reason = reason.into();
        if status != HookStatus::InProgress {
            self.call_back_delay = None;
        }
    }

    /// The trimmed form carried in the answer: verdicts and reasons, no evidence.
    pub fn trimmed(&self) -> Value {
        let checks = summaries(&self.checks, ANSWER_MAX_CHECKS, ANSWER_REASON_CHARS);
        let mut v = json!({
            "function": self.function,
            "verdict": self.verdict,
            "reason": clip(&self.reason, ANSWER_REASON_CHARS * 2),
            "checks": checks,
            "invocation": self.invocation,
        });
        if let Some(stage) = self.deployment.as_ref().and_then(|d| d.stage.as_ref()) {
            v["stage"] = json!(stage.as_str());
        }
        if self.checks.len() > ANSWER_MAX_CHECKS {
            v["checksOmitted"] = json!(self.checks.len() - ANSWER_MAX_CHECKS);
        }
        if !self.notifications.is_empty() {
            v["notifications"] = json!(
                self.notifications
                    .iter()
                    .map(|n| {
                        let mut e = json!({
                            "event": n.event,
                            "channel": n.channel,
                            "type": n.kind,
                            "delivered": n.delivered,
                        });
                        if let Some(err) = &n.error {
                            e["error"] = json!(clip(err, ANSWER_REASON_CHARS));
                        }
                        e
                    })
                    .collect::<Vec<_>>()
            );
        }
        if !self.notes.is_empty() {
            v["notes"] = json!(
                self.notes
                    .iter()
                    .map(|n| clip(n, ANSWER_REASON_CHARS))
                    .collect::<Vec<_>>()
            );
        }
        v
    }
}
