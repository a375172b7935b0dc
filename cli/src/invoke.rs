//! Invoking a hook function synchronously (`RequestResponse`), as ECS does: through a
//! local Lambda Invoke API (`cargo lambda watch`) or the real one.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_lambda::error::{DisplayErrorContext, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;

use crate::service::function_name;

/// What came back from one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The function returned; its payload, unparsed.
    Payload(Vec<u8>),
    /// The function ran and raised an error (`X-Amz-Function-Error`), or timed out.
    FunctionError(String),
    /// Lambda did not run the function: unknown function, throttling, no answer in time…
    InvocationError(String),
}

/// The invocation could not be attempted at all: nothing listens at the endpoint, no
/// credentials. The rehearsal stops (exit status 2) instead of rolling back.
#[derive(Clone, Debug, PartialEq)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub enum Invoker {
    /// `POST {endpoint}/2015-03-31/functions/{name}/invocations`.
    Local {
        client: reqwest::Client,
        endpoint: String,
        /// Function name as in `hookTargetArn` → name served locally.
        names: HashMap<String, String>,
    },
    /// The Lambda Invoke API, with the default credential chain; the function is named by
    /// its full `hookTargetArn`.
    Aws { client: aws_sdk_lambda::Client },
}

impl Invoker {
    pub fn local(endpoint: &str, names: HashMap<String, String>, timeout: Duration) -> Invoker {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client with timeouts builds");
        Invoker::Local {
            client,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            names,
        }
    }

    pub async fn aws(
        region: Option<String>,
        fallback_region: Option<String>,
        timeout: Duration,
    ) -> Invoker {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout)
                    .connect_timeout(Duration::from_secs(10))
                    .build(),
            );
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r));
        }
        let mut config = loader.load().await;
        if config.region().is_none()
            && let Some(r) = fallback_region
        {
            config = config
                .into_builder()
                .region(aws_config::Region::new(r))
                .build();
        }
        Invoker::Aws {
            client: aws_sdk_lambda::Client::new(&config),
        }
    }

    /// The name the timeline shows for a hook target.
    pub fn label(&self, target: &str) -> String {
        match self {
            Invoker::Local { names, .. } => self::local_name(names, target).to_string(),
            Invoker::Aws { .. } => function_name(target).to_string(),
        }
    }

    pub async fn invoke(&self, target: &str, event: &Value) -> Result<Reply, SetupError> {
        let body = serde_json::to_vec(event).expect("an event serialises");
        match self {
            Invoker::Local {
                client,
                endpoint,
                names,
            } => {
                let name = local_name(names, target);
                let url = format!("{endpoint}/2015-03-31/functions/{name}/invocations");
                invoke_local(client, &url, body).await
            }
            Invoker::Aws { client } => invoke_aws(client, target, body).await,
        }
    }
}

fn local_name<'a>(names: &'a HashMap<String, String>, target: &'a str) -> &'a str {
    let name = function_name(target);
    names
        .get(target)
        .or_else(|| names.get(name))
        .map(String::as_str)
        .unwrap_or(name)
}

/// The largest answer read from a local Invoke API: Lambda's limit for the response of a
/// synchronous invocation (6 MB).
pub const MAX_ANSWER_BYTES: usize = 6 * 1024 * 1024;

/// `errorType: errorMessage` from a function error's payload, or the payload itself.
pub fn describe_function_error(kind: &str, payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let parsed: Option<Value> = serde_json::from_slice(payload).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match (field("errorType"), field("errorMessage")) {
        (Some(t), Some(m)) => format!("function error ({kind}): {t}: {m}"),
        (None, Some(m)) => format!("function error ({kind}): {m}"),
        _ if text.trim().is_empty() => format!("function error ({kind})"),
        _ => format!("function error ({kind}): {}", clip(text.trim(), 300)),
    }
}

pub use greenlight::text::clip;

async fn invoke_local(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<Reply, SetupError> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return Err(SetupError(format!(
                "nothing answers at {url}: {e}. Start the functions with `cargo lambda watch` \
                 (port 9000), or point --endpoint at the Lambda Invoke API that serves them"
            )));
        }
        Err(e) if e.is_timeout() => {
            return Ok(Reply::InvocationError(format!(
                "no answer from {url} in time (--invoke-timeout)"
            )));
        }
        Err(e) => return Ok(Reply::InvocationError(format!("invoking {url}: {e}"))),
    };
    let status = resp.status();
    let function_error = resp
        .headers()
        .get("x-amz-function-error")
        .map(|v| v.to_str().unwrap_or("Unhandled").to_string());
    let mut payload: Vec<u8> = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) if payload.len() + chunk.len() > MAX_ANSWER_BYTES => {
                return Ok(Reply::InvocationError(format!(
                    "the answer of {url} is larger than {} MiB, Lambda's limit for the answer of a synchronous invocation; it was not read further",
                    MAX_ANSWER_BYTES / (1024 * 1024)
                )));
            }
            Ok(Some(chunk)) => payload.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Ok(Reply::InvocationError(format!(
                    "no answer from {url} in time (--invoke-timeout)"
                )));
            }
            Err(e) => {
                return Ok(Reply::InvocationError(format!(
                    "reading the answer of {url}: {e}"
                )));
            }
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&payload);
        return Ok(Reply::InvocationError(format!(
            "the Lambda Invoke API answered HTTP {status}{}",
            if text.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", clip(text.trim(), 300))
            }
        )));
    }
    Ok(match function_error {
        Some(kind) => Reply::FunctionError(describe_function_error(&kind, &payload)),
        None => Reply::Payload(payload),
    })
}

async fn invoke_aws(
    client: &aws_sdk_lambda::Client,
    target: &str,
    body: Vec<u8>,
) -> Result<Reply, SetupError> {
    let result = client
        .invoke()
        .function_name(target)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(body))
        .send()
        .await;
    match result {
        Ok(out) => {
            let payload = out
                .payload()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default();
            Ok(match out.function_error() {
                Some(kind) => Reply::FunctionError(describe_function_error(kind, &payload)),
                None => Reply::Payload(payload),
            })
        }
        Err(e @ (SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_))) => {
            Err(SetupError(format!(
                "could not call the Lambda Invoke API for {target}: {}. Check the AWS credentials and \
             region (the default credential chain: AWS_PROFILE, AWS_REGION, …)",
                DisplayErrorContext(&e)
            )))
        }
        Err(e) => Ok(Reply::InvocationError(format!(
            "Lambda Invoke of {target} failed: {}",
            DisplayErrorContext(&e)
        ))),
    }
}
