//! Approvals: a person's "go" or "stop" for one deployment at one stage, asked for by the
//! `approval` check (or an ECS PAUSE hook) and given through a signed link, a Slack button
//! or the caller's IAM identity.
//!
//! * [`approvers`]: who may decide (Slack users and user groups, IAM principals, holders of
//!   a signed link), parsed and matched.
//! * [`link`]: single-use, expiring approve/reject links, signed with HMAC-SHA256 under a
//!   key from Secrets Manager, bound to the approval, the action and the channel they were
//!   sent to.
//! * [`store`]: the durable store (an S3 bucket the stack creates): one request and at most
//!   one decision per approval. The decision is written with `If-None-Match: *`, so that of
//!   two clicks exactly one wins and the other is told who decided.
//!
//! The endpoint that serves the links, Slack's interactions and the IAM path is
//! `crate::edge::approvals`; the check is `crate::checks::approval`.

pub mod approvers;
pub mod iam;
pub mod link;
pub mod store;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secrets::SecretRef;

/// The store's bucket.
pub const ENV_BUCKET: &str = "GREENLIGHT_APPROVAL_BUCKET";
/// The signing key: a Secrets Manager secret's ARN or name.
pub const ENV_KEY: &str = "GREENLIGHT_APPROVAL_KEY";
/// The endpoint's public URL (the Lambda function URL), which links point at.
pub const ENV_URL: &str = "GREENLIGHT_APPROVAL_URL";
/// The SSM parameter that holds the endpoint's URL, for the endpoint itself.
pub const ENV_URL_PARAMETER: &str = "GREENLIGHT_APPROVAL_URL_PARAMETER";

static OWN_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the endpoint's URL for this process, when the environment does not hold it.
pub fn set_url(url: &str) {
    let _ = OWN_URL.set(url.to_string());
}

/// The store's objects live under this prefix of the bucket.
pub const PREFIX: &str = "approvals/";
/// The format version of the stored documents.
pub const VERSION: u32 = 1;

/// Where approvals are kept and how links are made, from the environment the stack sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    pub bucket: String,
    pub key: SecretRef,
    /// The endpoint's URL, ending in `/`.
    pub url: String,
}

impl Setup {
    /// Reads the three variables; an error names the first one missing. The endpoint,
    /// which cannot be told its own URL by the stack, reads it at start from the SSM
    /// parameter `GREENLIGHT_APPROVAL_URL_PARAMETER` names ([`set_url`]).
    pub fn from_env() -> Result<Setup, String> {
        Setup::from_values(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| (k == ENV_URL).then(|| OWN_URL.get().cloned()).flatten())
        })
    }

    pub fn from_values(get: impl Fn(&str) -> Option<String>) -> Result<Setup, String> {
        let read = |name: &str| -> Result<String, String> {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{name} is not set: approvals need the approval endpoint, its store and its signing key (the CDK construct's `approvals` option sets {ENV_BUCKET}, {ENV_KEY} and {ENV_URL})"
                    )
                })
        };
        let bucket = read(ENV_BUCKET)?;
        let key = read(ENV_KEY)?;
        let mut url = read(ENV_URL)?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("{ENV_URL} is not an http(s) URL"));
        }
        if url.contains(['?', '#']) {
            return Err(format!("{ENV_URL} must not hold a query or a fragment"));
        }
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(Setup {
            bucket,
            key: SecretRef::SecretsManager {
                secret_arn: key,
                json_key: None,
            },
            url,
        })
    }
}

/// The id of the approval of `check` for one deployment at one stage: the same in every
/// invocation, in every function, and in the endpoint. 32 hex digits.
pub fn approval_id(deployment_key: &str, stage: &str, check: &str) -> String {
    let digest = Sha256::digest(format!(
        "greenlight-approval|{deployment_key}|{stage}|{check}"
    ));
    hex::encode(&digest[..16])
}

/// Whether `s` has the form of an approval id.
pub fn is_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Approve or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Approve,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
        }
    }
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "approve" => Some(Action::Approve),
            "reject" => Some(Action::Reject),
            _ => None,
        }
    }
    /// `approved` / `rejected`.
    pub fn past(self) -> &'static str {
        match self {
            Action::Approve => "approved",
            Action::Reject => "rejected",
        }
    }
}

/// An ECS PAUSE hook the decision continues or rolls back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseHook {
    pub service_deployment_arn: String,
    pub hook_id: String,
}

/// What changed from the previous revision, as far as ECS told.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// `container: old → new` for each container whose image changed or appeared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Environment variable names added, removed or changed (names only, never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Why nothing could be compared, when that is so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// An approval asked for: written once by the gate (or the pause-hook handler), read by
/// the endpoint to know who may decide and until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub v: u32,
    pub id: String,
    /// The deployment's key (ECS service deployment ARN, CodeDeploy deployment id).
    pub deployment: String,
    /// One line: `checkout at POST_TEST_TRAFFIC_SHIFT (revision …)`.
    pub subject: String,
    pub stage: String,
    /// The `approval` check's name (for a PAUSE hook, the check found in the endpoint's
    /// configuration).
    pub check: String,
    /// Who may decide, as configured ([`approvers`]); empty: anyone who can reach an action.
    #[serde(default)]
    pub approvers: Vec<String>,
    pub requested_at_ms: u64,
    pub expires_at_ms: u64,
    /// What happens at expiry: `fail` or `pass` (the check's `onTimeout`); for a PAUSE
    /// hook, the hook's own timeout action, `rollback` or `continue`.
    pub on_timeout: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The deployment's AWS account: with no `approvers`, an IAM caller must be of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Request {
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at_ms
    }
}

/// Who decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approver {
    /// `slack`, `iam`, `link` or `timeout`.
    pub via: String,
    /// The Slack user id, the IAM principal's ARN, the channel a link was sent to.
    pub id: String,
    /// A display name (the Slack user name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Approver {
    pub fn describe(&self) -> String {
        match (self.via.as_str(), &self.name) {
            ("slack", Some(n)) => format!("Slack user {} ({n})", self.id),
            ("slack", None) => format!("Slack user {}", self.id),
            ("iam", _) => self.id.clone(),
            ("link", _) => format!("the signed link sent to channel {}", self.id),
            ("timeout", _) => "the approval's timeout".to_string(),
            (via, _) => format!("{via} {}", self.id),
        }
    }
}

/// A decision: at most one per approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub v: u32,
    pub id: String,
    /// `approve`, `reject`, or `expire` (nobody decided in time).
    pub action: String,
    pub by: Approver,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The longest comment kept, in characters.
pub const MAX_COMMENT: usize = 500;

impl Decision {
    pub fn new(id: &str, action: &str, by: Approver, comment: Option<String>) -> Decision {
        Decision {
            v: VERSION,
            id: id.to_string(),
            action: action.to_string(),
            by,
            at_ms: crate::duration::now_ms(),
            comment: comment.map(|c| clean_comment(&c)).filter(|c| !c.is_empty()),
        }
    }

    pub fn approved(&self) -> bool {
        self.action == "approve"
    }

    /// `approved by Slack user U1 (alice) at 2026-12-02T10:00:00Z: "looks good"`.
    pub fn describe(&self) -> String {
        let verb = match self.action.as_str() {
            "approve" => "approved",
            "reject" => "rejected",
            "expire" => "expired unanswered",
            other => other,
        };
        let by = if self.action == "expire" {
            String::new()
        } else {
            format!(" by {}", self.by.describe())
        };
        let comment = self
            .comment
            .as_deref()
            .map(|c| format!(": {c:?}"))
            .unwrap_or_default();
        format!("{verb}{by} at {}{comment}", rfc3339(self.at_ms))
    }
}

/// A comment as kept: control characters dropped, at most [`MAX_COMMENT`] characters.
pub fn clean_comment(c: &str) -> String {
    c.chars()
        .filter(|ch| !ch.is_control())
        .take(MAX_COMMENT)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `2026-12-02T10:00:00Z`.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = approval_id(
            "arn:aws:ecs:us-west-2:1:service-deployment/c/s/x",
            "POST_TEST_TRAFFIC_SHIFT",
            "approve",
        );
        assert!(is_id(&a));
        assert_eq!(
            a,
            approval_id(
                "arn:aws:ecs:us-west-2:1:service-deployment/c/s/x",
                "POST_TEST_TRAFFIC_SHIFT",
                "approve"
            )
        );
        assert_ne!(
            a,
            approval_id(
                "arn:aws:ecs:us-west-2:1:service-deployment/c/s/x",
                "PRE_PRODUCTION_TRAFFIC_SHIFT",
                "approve"
            )
        );
        assert_ne!(
            a,
            approval_id(
                "arn:aws:ecs:us-west-2:1:service-deployment/c/s/y",
                "POST_TEST_TRAFFIC_SHIFT",
                "approve"
            )
        );
        assert!(!is_id("ABC"));
        assert!(!is_id(&"g".repeat(32)));
    }

    #[test]
    fn setup_names_what_is_missing() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = Setup::from_values(env(&[(ENV_BUCKET, "b")])).unwrap_err();
        assert!(e.starts_with("GREENLIGHT_APPROVAL_KEY is not set"), "{e}");
        let s = Setup::from_values(env(&[
            (ENV_BUCKET, "b"),
            (ENV_KEY, "arn:aws:secretsmanager:us-west-2:1:secret:k"),
            (ENV_URL, "https://abc.lambda-url.us-west-2.on.aws"),
        ]))
        .unwrap();
        assert_eq!(s.url, "https://abc.lambda-url.us-west-2.on.aws/");
        let e = Setup::from_values(env(&[
            (ENV_BUCKET, "b"),
            (ENV_KEY, "k"),
            (ENV_URL, "https://x/?a=1"),
        ]))
        .unwrap_err();
        assert!(e.contains("query"), "{e}");
    }

    #[test]
    fn decisions_read_as_sentences() {
        let mut d = Decision::new(
            &"a".repeat(32),
            "approve",
            Approver {
                via: "slack".into(),
                id: "U1".into(),
                name: Some("alice".into()),
            },
            Some("looks good\u{7}".into()),
        );
        d.at_ms = 1_795_315_200_000;
        assert_eq!(
            d.describe(),
            "approved by Slack user U1 (alice) at 2026-11-22T02:40:00Z: \"looks good\""
        );
        assert_eq!(clean_comment(&"x".repeat(900)).len(), MAX_COMMENT);
    }
}
