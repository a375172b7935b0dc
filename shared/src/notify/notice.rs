//! What a notification says, whatever the channel: the event, the deployment, the verdict
//! and its reasons, links, and the next command a person would run. Each channel formats
//! the same [`Notice`]; the webhook and SNS channels send [`Notice::body`] as it is.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use super::settings::Event;
use crate::deployment::{Deployment, Protocol};
use crate::record::CheckRecord;
use crate::stage::Stage;

/// The format version of the JSON body.
pub const BODY_VERSION: u32 = 1;

/// A container image of the target revision.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub container: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The command a person would run next, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextStep {
    pub purpose: String,
    pub command: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Links {
    /// The deployment in the AWS console.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console: Option<String>,
    /// This invocation's log stream in CloudWatch Logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_step: Option<NextStep>,
}

/// Where this invocation logs, from the Lambda environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogLocation {
    pub region: Option<String>,
    pub group: Option<String>,
    pub stream: Option<String>,
}

impl LogLocation {
    pub fn from_env() -> LogLocation {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        LogLocation {
            region: get("AWS_REGION"),
            group: get("AWS_LAMBDA_LOG_GROUP_NAME"),
            stream: get("AWS_LAMBDA_LOG_STREAM_NAME"),
        }
    }
}

/// One notification's content.
#[derive(Clone, Debug)]
pub struct Notice {
    pub event: Event,
    /// Stable for the same event of the same deployment: receivers can deduplicate on it.
    pub id: String,
    /// The service, or the CodeDeploy deployment.
    pub subject: String,
    /// One line: `checkout: gate failed at TEST_TRAFFIC_SHIFT`.
    pub headline: String,
    /// The hook's answer: `SUCCEEDED`, `FAILED`, `IN_PROGRESS` (ECS) or `Succeeded`,
    /// `Failed` (CodeDeploy).
    pub verdict: String,
    pub reason: String,
    pub checks: Vec<CheckRecord>,
    pub notes: Vec<String>,
    pub function: String,
    /// The ECS stage, or the CodeDeploy lifecycle events the function serves.
    pub stage: String,
    pub invocation: u32,
    pub duration: Duration,
    pub deployment: Deployment,
    pub images: Vec<Image>,
    pub links: Links,
    pub sent_at: SystemTime,
    /// `approvalRequested`: what is asked, and this channel's actions.
    pub approval: Option<ApprovalAsk>,
}

/// An approval request as a channel shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalAsk {
    pub id: String,
    /// The `approval` check's name.
    pub check: String,
    /// Who may decide (as configured; empty: anyone who can reach an action).
    pub approvers: Vec<String>,
    pub expires_at: String,
    /// What happens at expiry: `fail` or `pass`.
    pub on_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What changed from the previous revision (images, environment variable names).
    pub changes: Value,
    /// Signed, single-use links for this channel, when the approvers allow them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approve_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_url: Option<String>,
    /// Slack: interactive buttons (the approvers include Slack identities, or anyone).
    #[serde(skip)]
    pub slack_buttons: bool,
    /// The terminal command, acting through the caller's IAM identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Why the links are missing, when they could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl ApprovalAsk {
    /// The lines every channel shows: who, until when, what changed, the message.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &self.message {
            out.push(m.clone());
        }
        let who = if self.approvers.is_empty() {
            "anyone who can reach an action below".to_string()
        } else {
            self.approvers.join(", ")
        };
        out.push(format!("Who may decide: {who}"));
        out.push(format!(
            "Expires: {} (then onTimeout: {})",
            self.expires_at, self.on_timeout
        ));
        let list = |key: &str| -> Vec<String> {
            self.changes
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (images, env) = (list("images"), list("environment"));
        if !images.is_empty() {
            out.push(format!("Images: {}", images.join("; ")));
        }
        if !env.is_empty() {
            out.push(format!("Environment: {}", env.join(", ")));
        }
        if let Some(u) = self.changes.get("unknown").and_then(Value::as_str) {
            out.push(format!("Changes: not compared ({u})"));
        } else if images.is_empty() && env.is_empty() {
            out.push("Changes: same images and environment as the previous revision".into());
        }
        out
    }
}

/// The emoji Slack and Teams show for an event.
pub fn emoji(event: Event) -> &'static str {
    match event {
        Event::Started => "🚀",
        Event::Failed => "❌",
        Event::RolledBack => "↩️",
        Event::Succeeded => "✅",
        Event::StagePassed => "☑️",
        Event::ApprovalRequested => "✋",
    }
}

/// The colour (hex) Slack shows for an event.
pub fn colour(event: Event) -> &'static str {
    match event {
        Event::Started => "#439FE0",
        Event::Failed => "#D00000",
        Event::RolledBack => "#E8A317",
        Event::Succeeded => "#2EB67D",
        Event::StagePassed => "#7CD197",
        Event::ApprovalRequested => "#F2C744",
    }
}

pub use crate::text::clip;

/// `1.2 s`, `350 ms`, `2m 5s`.
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// The stage as people read it: the ECS stage, or CodeDeploy's lifecycle events for the
/// function.
pub fn stage_label(d: &Deployment) -> String {
    match (&d.protocol, &d.stage) {
        (Protocol::Ecs, Some(s)) => s.as_str().to_string(),
        _ => d.role.codedeploy_hooks().join(" or "),
    }
}

fn partition_of(arn: Option<&str>, region: Option<&str>) -> &'static str {
    let from_arn = arn.and_then(|a| a.split(':').nth(1));
    match (from_arn, region) {
        (Some("aws-cn"), _) => "aws-cn",
        (Some("aws-us-gov"), _) => "aws-us-gov",
        (Some(_), _) => "aws",
        (None, Some(r)) if r.starts_with("cn-") => "aws-cn",
        (None, Some(r)) if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    }
}

/// `https://REGION.console.aws.amazon.com` and its counterparts in the other partitions.
fn console_base(partition: &str, region: &str) -> String {
    match partition {
        "aws-cn" => format!("https://{region}.console.amazonaws.cn"),
        "aws-us-gov" => "https://console.amazonaws-us-gov.com".to_string(),
        _ => format!("https://{region}.console.aws.amazon.com"),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The CloudWatch console's link to a log stream. The console's fragment encodes twice,
/// with `$` in place of `%`: `/aws/lambda/f` is `$252Faws$252Flambda$252Ff`.
pub fn log_stream_link(log: &LogLocation) -> Option<String> {
    let (region, group, stream) = (
        log.region.as_ref()?,
        log.group.as_ref()?,
        log.stream.as_ref()?,
    );
    let console = |s: &str| encode(s).replace('%', "$25");
    let base = console_base(partition_of(None, Some(region)), region);
    Some(format!(
        "{base}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}/log-events/{}",
        console(group),
        console(stream)
    ))
}

/// The deployment in the console: ECS, the service's Deployments tab; CodeDeploy, the
/// deployment's page.
pub fn console_link(d: &Deployment) -> Option<String> {
    let region = d.region.as_deref()?;
    match d.protocol {
        Protocol::Ecs => {
            let (cluster, service) = (d.cluster.as_deref()?, d.service.as_deref()?);
            let base = console_base(partition_of(d.service_arn.as_deref(), Some(region)), region);
            Some(format!(
                "{base}/ecs/v2/clusters/{}/services/{}/deployments?region={region}",
                encode(cluster),
                encode(service)
            ))
        }
        Protocol::CodeDeploy => {
            let id = d.codedeploy_deployment_id.as_deref()?;
            let base = console_base(partition_of(None, Some(region)), region);
            Some(format!(
                "{base}/codesuite/codedeploy/deployments/{}?region={region}",
                encode(id)
            ))
        }
    }
}

/// The `aws` command a person would run next: for a failed or rolling-back deployment,
/// look at it; for a gate still waiting (`started` answered `IN_PROGRESS`), how to roll
/// back now instead of waiting.
pub fn next_step(d: &Deployment, event: Event, verdict: &str) -> Option<NextStep> {
    let region = d
        .region
        .as_deref()
        .map(|r| format!(" --region {r}"))
        .unwrap_or_default();
    match d.protocol {
        Protocol::Ecs => {
            let waiting = event == Event::Started && verdict == "IN_PROGRESS";
            match (&d.service_deployment_arn, event) {
                (Some(arn), _) if waiting => Some(NextStep {
                    purpose: "the gate is waiting; to roll back now instead".into(),
                    command: format!(
                        "aws ecs stop-service-deployment --service-deployment-arn {arn} --stop-type ROLLBACK{region}"
                    ),
                }),
                (Some(arn), Event::Failed | Event::RolledBack) => Some(NextStep {
                    purpose: "follow the deployment and its rollback".into(),
                    command: format!(
                        "aws ecs describe-service-deployments --service-deployment-arns {arn}{region}"
                    ),
                }),
                (None, Event::Failed | Event::RolledBack) => {
                    let (cluster, service) = (d.cluster.as_deref()?, d.service.as_deref()?);
                    Some(NextStep {
                        purpose: "see the service's deployments and events".into(),
                        command: format!(
                            "aws ecs describe-services --cluster {cluster} --services {service}{region}"
                        ),
                    })
                }
                _ => None,
            }
        }
        Protocol::CodeDeploy => match event {
            Event::Failed => Some(NextStep {
                purpose: "see the deployment's status and error".into(),
                command: format!(
                    "aws deploy get-deployment --deployment-id {}{region}",
                    d.codedeploy_deployment_id.as_deref()?
                ),
            }),
            _ => None,
        },
    }
}

/// The one-line summary of an event.
pub fn headline(event: Event, subject: &str, d: &Deployment, stage: &str) -> String {
    match event {
        Event::Started => format!("{subject}: deployment started"),
        Event::Failed => format!("{subject}: gate failed at {stage}"),
        Event::RolledBack => {
            let which = match d.stage {
                Some(Stage::TestTrafficShift) => "test traffic",
                Some(Stage::ProductionTrafficShift) => "production traffic",
                _ => "traffic",
            };
            format!("{subject}: rolling back, {which} moving back to the previous revision")
        }
        Event::Succeeded => format!("{subject}: deployment succeeded"),
        Event::StagePassed => format!("{subject}: {stage} passed"),
        Event::ApprovalRequested => format!("{subject}: approval needed at {stage}"),
    }
}

/// What the deployment is called in a headline.
pub fn subject(d: &Deployment) -> String {
    match d.protocol {
        Protocol::Ecs => d
            .service
            .clone()
            .or_else(|| d.target_revision_arn.clone())
            .unwrap_or_else(|| "ECS service".into()),
        Protocol::CodeDeploy => format!(
            "CodeDeploy deployment {}",
            d.codedeploy_deployment_id.as_deref().unwrap_or("(unknown)")
        ),
    }
}

/// The longest reason in a body.
pub const BODY_REASON_BYTES: usize = 4000;
/// At most this many checks in a body.
pub const BODY_MAX_CHECKS: usize = 50;

impl Notice {
    /// The JSON body of the webhook and SNS channels (documented in
    /// docs/configuration.md).
    pub fn body(&self) -> Value {
        let mut deployment = serde_json::to_value(&self.deployment).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut deployment {
            m.insert("images".into(), json!(self.images));
        }
        let checks = crate::record::summaries(&self.checks, BODY_MAX_CHECKS, BODY_REASON_BYTES / 4);
        let mut body = json!({
            "version": BODY_VERSION,
            "id": self.id,
            "event": self.event.as_str(),
            "title": self.headline,
            "verdict": self.verdict,
            "reason": clip(&self.reason, BODY_REASON_BYTES),
            "function": self.function,
            "stage": self.stage,
            "invocation": self.invocation,
            "durationMs": crate::duration::millis(self.duration),
            "deployment": deployment,
            "checks": checks,
            "links": self.links,
            "sentAt": humantime::format_rfc3339_millis(self.sent_at).to_string(),
        });
        if !self.notes.is_empty() {
            body["notes"] = json!(self.notes);
        }
        if let Some(a) = &self.approval {
            body["approval"] = json!(a);
        }
        body
    }

    /// The checks worth showing besides the reason: those that blocked or are waiting
    /// first, then the rest; a check whose reason the reason already gives is left out.
    pub fn other_checks(&self) -> Vec<&CheckRecord> {
        let rank = |c: &CheckRecord| match c.effect.as_str() {
            "blocked" => 0,
            "waiting" | "retrying" => 1,
            "failedOpen" | "dryRun" => 2,
            _ => 3,
        };
        let mut all: Vec<&CheckRecord> = self
            .checks
            .iter()
            .filter(|c| c.reason.is_empty() || !self.reason.contains(&c.reason))
            .collect();
        all.sort_by_key(|c| rank(c));
        all
    }

    /// The revision id, or its ARN.
    pub fn revision(&self) -> Option<String> {
        self.deployment
            .target_revision_id
            .clone()
            .or_else(|| self.deployment.target_revision_arn.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stream_link_uses_the_consoles_encoding() {
        let link = log_stream_link(&LogLocation {
            region: Some("us-west-2".into()),
            group: Some("/aws/lambda/greenlight-before-allow-traffic".into()),
            stream: Some("2025/07/17/[$LATEST]0123abcd".into()),
        })
        .unwrap();
        assert_eq!(
            link,
            "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2#logsV2:log-groups/log-group/$252Faws$252Flambda$252Fgreenlight-before-allow-traffic/log-events/2025$252F07$252F17$252F$255B$2524LATEST$255D0123abcd"
        );
        assert_eq!(log_stream_link(&LogLocation::default()), None);
    }

    #[test]
    fn clips_on_character_boundaries() {
        assert_eq!(clip("abc", 5), "abc");
        let c = clip("ééééé", 6);
        assert!(c.ends_with('…') && c.len() <= 6, "{c}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(350)), "350 ms");
        assert_eq!(human_duration(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m 5s");
    }
}
