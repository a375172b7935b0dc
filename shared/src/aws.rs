//! AWS calls as a gate sees them.
//!
//! * A failed call is rendered as its code, message and request id only, never with the
//!   SDK's full error context, which carries the raw HTTP answer (and so, for an
//!   unreadable Secrets Manager or SSM answer, the secret itself).
//! * A failure is classified: throttling, a server error, a timeout or an unreadable answer
//!   mean the gate could not observe *yet* ([`Failure::transient`]); a denied or refused
//!   call is an error at once.
//! * Every call a check makes is counted, by API, with its attempts and how many of them
//!   AWS throttled ([`CallCounter`], [`Calls`]), for the decision record.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::operation::RequestId;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::verdict::Failure;

/// The HTTP response type of every SDK client.
pub type HttpResponse = aws_smithy_runtime_api::http::Response;

/// Error codes AWS services use when they throttle a caller.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes of failures on AWS's side that a later call may not meet.
const SERVER_SIDE: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceErrorException",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether `code` is one of AWS's throttling error codes.
pub fn is_throttling(code: &str) -> bool {
    THROTTLING.contains(&code)
}

fn denied(code: &str) -> bool {
    code.contains("AccessDenied") || code.contains("Unauthorized")
}

/// `Code: message (request id …)`, each part only when AWS gave it.
fn detail(code: Option<&str>, message: Option<&str>, request_id: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(code) = code {
        s.push_str(code);
    }
    if let Some(m) = message.map(str::trim).filter(|m| !m.is_empty()) {
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&crate::text::clip(m, 300));
    }
    if let Some(id) = request_id {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&format!("(request id {id})"));
    }
    s
}

/// Describes a failed AWS call in words (code, message and request id only), naming the
/// IAM permission when access was denied, and says whether it is worth looking again.
pub fn failure<E>(call: &str, permission: &str, err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            // The code AWS sent; without one (an error built by a test double, say), the
            // modelled error's own name and message (never the raw answer).
            let modelled = err
                .code()
                .is_none()
                .then(|| service.err().to_string())
                .filter(|m| !m.starts_with("unhandled error"));
            let code = err.code().or_else(|| {
                modelled
                    .as_deref()
                    .and_then(|m| m.split(|c: char| !c.is_alphanumeric()).next())
                    .filter(|name| !name.is_empty())
            });
            let message = err.message().or_else(|| {
                modelled
                    .as_deref()
                    .and_then(|m| m.split_once(": "))
                    .map(|(_, m)| m)
            });
            let about = detail(code, message, err.request_id());
            let about = if about.is_empty() {
                format!("HTTP {status}")
            } else {
                about
            };
            if code.is_some_and(denied) || (code.is_none() && status == 403) {
                Failure::error(format!(
                    "{call} was denied: grant {permission} to the function's role ({about})"
                ))
            } else if code.is_some_and(is_throttling) || status == 429 {
                Failure::transient(format!("{call} was throttled by AWS ({about})"))
            } else if status >= 500 || code.is_some_and(|c| SERVER_SIDE.contains(&c)) {
                Failure::transient(format!("{call} failed on AWS's side ({about})"))
            } else {
                Failure::error(format!("{call} failed: {about}"))
            }
        }
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            let id = err
                .request_id()
                .map(|id| format!(", request id {id}"))
                .unwrap_or_default();
            Failure::transient(format!(
                "{call}: the answer could not be read (HTTP {status}{id}); a proxy or a cut connection may be in the way"
            ))
        }
        SdkError::TimeoutError(_) => Failure::transient(format!("{call} timed out")),
        SdkError::DispatchFailure(dispatch) => {
            if dispatch.is_timeout() {
                Failure::transient(format!("{call} timed out connecting to AWS"))
            } else if dispatch.is_user() {
                Failure::error(format!(
                    "{call} could not be sent (the request or the client's settings are invalid)"
                ))
            } else {
                Failure::transient(format!(
                    "{call} could not reach AWS (a network error; check the function's network access to the AWS endpoint)"
                ))
            }
        }
        SdkError::ConstructionFailure(_) => Failure::error(format!(
            "{call} could not be built (a missing or invalid parameter)"
        )),
        _ => Failure::error(format!("{call} failed")),
    }
}

/// [`failure`] as a sentence (for paths that do not distinguish transient failures).
pub fn error_text<E>(call: &str, permission: &str, err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error,
{
    failure(call, permission, err).message
}

/// Sends one AWS call within the invocation's budget. A call still running when the
/// budget ends could not observe yet.
pub async fn call<T, E>(
    budget: &Budget,
    what: &str,
    permission: &str,
    fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, Failure>
where
    E: ProvideErrorMetadata + std::error::Error,
{
    // Boxed: an SDK call's future is large, and it would otherwise be copied into every
    // caller's state.
    match budget.run(Box::pin(fut)).await {
        None => Err(Failure::transient(format!(
            "{what} did not answer within the invocation's budget"
        ))),
        Some(Err(e)) => Err(failure(what, permission, &e)),
        Some(Ok(out)) => Ok(out),
    }
}

/// One API's calls, as a check made them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCount {
    /// Calls made (each may have taken several attempts).
    pub calls: u32,
    /// HTTP attempts, retries included.
    pub attempts: u32,
    /// Attempts AWS answered with a throttling error.
    pub throttled: u32,
}

/// The AWS calls made inside one scope (one evaluation of one check), by
/// `Service.Operation` (`ECS.DescribeServiceRevisions`, `ELBv2.DescribeTargetHealth`,
/// `CloudWatch.GetMetricData`, …).
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<String, CallCount>>>);

tokio::task_local! {
    static CALLS: Calls;
}

impl Calls {
    pub fn new() -> Calls {
        Calls::default()
    }

    /// Runs `fut`, counting the AWS calls it makes in `self`.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        CALLS.scope(self.clone(), fut).await
    }

    /// What was counted so far.
    pub fn snapshot(&self) -> BTreeMap<String, CallCount> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn bump(cfg: &ConfigBag, f: impl FnOnce(&mut CallCount)) {
        let Some(meta) = cfg.load::<Metadata>() else {
            return;
        };
        let _ = CALLS.try_with(|calls| {
            if let Ok(mut map) = calls.0.lock() {
                let service = match meta.service() {
                    "Elastic Load Balancing v2" => "ELBv2".to_string(),
                    other => other.replace(' ', ""),
                };
                let key = format!("{service}.{}", meta.name());
                f(map.entry(key).or_default());
            }
        });
    }
}

/// Adds counts `b` into `a`.
pub fn add_counts(a: &mut BTreeMap<String, CallCount>, b: &BTreeMap<String, CallCount>) {
    for (api, c) in b {
        let e = a.entry(api.clone()).or_default();
        e.calls = e.calls.saturating_add(c.calls);
        e.attempts = e.attempts.saturating_add(c.attempts);
        e.throttled = e.throttled.saturating_add(c.throttled);
    }
}

/// An SDK interceptor that counts calls, attempts and throttled attempts into the
/// [`Calls`] of the evaluation that made them (outside one, it counts nothing).
#[derive(Debug, Default)]
pub struct CallCounter;

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "greenlight.CallCounter"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Calls::bump(cfg, |c| c.calls = c.calls.saturating_add(1));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Calls::bump(cfg, |c| c.attempts = c.attempts.saturating_add(1));
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = ctx.response();
        let status = response.status().as_u16();
        let throttled = status == 429
            || (status == 400
                && response
                    .body()
                    .bytes()
                    .is_some_and(|b| names_throttling(&b[..b.len().min(4096)])));
        if throttled {
            Calls::bump(cfg, |c| c.throttled = c.throttled.saturating_add(1));
        }
        Ok(())
    }
}

/// Whether an error body (JSON or XML) names a throttling code.
fn names_throttling(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    THROTTLING.iter().any(|code| {
        text.contains(&format!("\"{code}\""))
            || text.contains(&format!("#{code}\""))
            || text.contains(&format!("<Code>{code}</Code>"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_bodies_of_every_protocol() {
        assert!(names_throttling(
            br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#
        ));
        assert!(names_throttling(
            br#"{"__type":"com.amazonaws.ecs#ThrottlingException","message":"Rate exceeded"}"#
        ));
        assert!(names_throttling(
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"
        ));
        assert!(!names_throttling(
            br#"{"__type":"ClientException","message":"Throttling is not the issue"}"#
        ));
    }

    #[test]
    fn detail_has_only_what_aws_gave() {
        assert_eq!(
            detail(
                Some("ThrottlingException"),
                Some("Rate exceeded"),
                Some("abc")
            ),
            "ThrottlingException: Rate exceeded (request id abc)"
        );
        assert_eq!(detail(None, None, Some("abc")), "(request id abc)");
        assert_eq!(detail(Some("X"), Some("  "), None), "X");
    }
}
