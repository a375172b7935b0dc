//! CodeDeploy lifecycle event hooks: the event, and the status report sent back through
//! `PutLifecycleEventHookExecutionStatus`.

use std::time::Duration;

use aws_sdk_codedeploy::error::ProvideErrorMetadata;
use aws_sdk_codedeploy::operation::put_lifecycle_event_hook_execution_status::PutLifecycleEventHookExecutionStatusError;
use aws_sdk_codedeploy::types::LifecycleEventStatus;
use serde_json::Value;

use super::{EventError, kind_of};

/// `{"DeploymentId": "d-…", "LifecycleEventHookExecutionId": "…"}`: all CodeDeploy sends.
/// A hook that must wait longer than one invocation re-invokes itself with a
/// [`Continuation`] instead.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeDeployEvent {
    pub deployment_id: String,
    pub execution_id: String,
    pub continuation: Option<Continuation>,
}

/// The key of a continuation event.
pub const CONTINUATION_KEY: &str = "greenlightContinuation";

/// What a hook carries to its next invocation while it waits for a CodeDeploy verdict:
/// `{"greenlightContinuation": {"deploymentId", "lifecycleEventHookExecutionId", "state",
/// "chainStartedAtMs", "hop", "notBeforeMs"}}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Continuation {
    pub deployment_id: String,
    pub lifecycle_event_hook_execution_id: String,
    /// The runner's state ([`crate::engine::runner::RunState`]).
    pub state: Value,
    /// When the first invocation of this hook execution started (ms since the epoch).
    pub chain_started_at_ms: u64,
    /// How many times the hook has re-invoked itself.
    pub hop: u32,
    /// Do not evaluate before this time (ms since the epoch).
    pub not_before_ms: u64,
}

impl Continuation {
    pub fn to_event(&self) -> Value {
        serde_json::json!({ CONTINUATION_KEY: self })
    }
}

/// Parses a continuation event.
pub fn parse_continuation(event: &Value) -> Result<CodeDeployEvent, EventError> {
    let c: Continuation = serde_json::from_value(event[CONTINUATION_KEY].clone())
        .map_err(|e| EventError(format!("{CONTINUATION_KEY}: {e}")))?;
    if c.deployment_id.is_empty() || c.lifecycle_event_hook_execution_id.is_empty() {
        return Err(EventError(format!(
            "{CONTINUATION_KEY}: deploymentId and lifecycleEventHookExecutionId must not be empty"
        )));
    }
    Ok(CodeDeployEvent {
        deployment_id: c.deployment_id.clone(),
        execution_id: c.lifecycle_event_hook_execution_id.clone(),
        continuation: Some(c),
    })
}

pub fn parse(event: &Value) -> Result<CodeDeployEvent, EventError> {
    let field = |name: &str| -> Result<String, EventError> {
        match event.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(EventError(format!(
                "CodeDeploy event: {name} is empty; CodeDeploy always sends it"
            ))),
            Some(other) => Err(EventError(format!(
                "CodeDeploy event: {name} is {}, expected a string",
                kind_of(other)
            ))),
            None => Err(EventError(format!(
                "CodeDeploy event: {name} is missing; a CodeDeploy lifecycle hook event has \
                 DeploymentId and LifecycleEventHookExecutionId"
            ))),
        }
    };
    Ok(CodeDeployEvent {
        deployment_id: field("DeploymentId")?,
        execution_id: field("LifecycleEventHookExecutionId")?,
        continuation: None,
    })
}

/// The two statuses CodeDeploy accepts from a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportStatus {
    Succeeded,
    Failed,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Succeeded => "Succeeded",
            ReportStatus::Failed => "Failed",
        }
    }
}

/// What happened to a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// CodeDeploy took the status.
    Accepted,
    /// An earlier invocation (a retry of the same event) already reported: nothing to do.
    AlreadyCompleted,
}

/// The IAM permission the report needs; named in errors.
pub const REPORT_PERMISSION: &str = "codedeploy:PutLifecycleEventHookExecutionStatus";

/// Sends the status, within `limit`. The SDK retries throttling and 5xx replies with
/// backoff; the limit bounds all of it.
pub async fn report(
    client: &aws_sdk_codedeploy::Client,
    event: &CodeDeployEvent,
    status: ReportStatus,
    limit: Duration,
) -> Result<Reported, String> {
    let call = client
        .put_lifecycle_event_hook_execution_status()
        .deployment_id(&event.deployment_id)
        .lifecycle_event_hook_execution_id(&event.execution_id)
        .status(LifecycleEventStatus::from(status.as_str()))
        .send();
    match tokio::time::timeout(limit, call).await {
        Err(_) => Err(format!(
            "CodeDeploy did not accept the {} report within {} ms",
            status.as_str(),
            limit.as_millis()
        )),
        Ok(Ok(_)) => Ok(Reported::Accepted),
        Ok(Err(err)) => {
            let service = err.as_service_error();
            if matches!(
                service,
                Some(PutLifecycleEventHookExecutionStatusError::LifecycleEventAlreadyCompletedException(_))
            ) {
                return Ok(Reported::AlreadyCompleted);
            }
            let code = err.code().unwrap_or("unknown").to_string();
            let message = err.message().unwrap_or("").to_string();
            if code.contains("AccessDenied") || code.contains("Unauthorized") {
                Err(format!(
                    "the function's role may not report to CodeDeploy: grant {REPORT_PERMISSION} ({code}: {message})"
                ))
            } else if service.is_some() {
                Err(format!(
                    "CodeDeploy refused the {} report: {code}: {message}",
                    status.as_str()
                ))
            } else {
                Err(format!(
                    "the {} report could not be sent to CodeDeploy: {}",
                    status.as_str(),
                    crate::aws::error_text(
                        "CodeDeploy PutLifecycleEventHookExecutionStatus",
                        REPORT_PERMISSION,
                        &err
                    )
                ))
            }
        }
    }
}
