//! AWS Signature Version 4 for metric APIs outside the SDK (Amazon Managed Prometheus,
//! CloudWatch's PromQL API): the function's credentials, or a role's assumed through STS
//! (cross-account workspaces), kept by the process until they are about to expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::budget::Budget;
use crate::services::Services;
use crate::verdict::Failure;

/// Assumed roles' credentials, by role ARN.
#[derive(Default)]
struct Assumed(Mutex<HashMap<String, Credentials>>);

/// Credentials closer than this to their expiry are renewed first.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

fn fresh(c: &Credentials) -> bool {
    c.expiry()
        .is_none_or(|e| e > SystemTime::now() + RENEW_BEFORE)
}

fn failure(what: &str, e: &CredentialsError) -> Failure {
    let text = crate::text::clip(&DisplayErrorContext(e).to_string(), 400);
    let message = format!("{what}: {text}");
    let transient = matches!(e, CredentialsError::ProviderTimedOut(_))
        || [
            "Throttl",
            "throttl",
            "timeout",
            "timed out",
            "dispatch failure",
        ]
        .iter()
        .any(|w| text.contains(w));
    if transient {
        Failure::transient(message)
    } else {
        Failure::error(message)
    }
}

/// The credentials to sign with: the function's, or `role_arn`'s.
pub async fn credentials(
    services: &Services,
    role_arn: Option<&str>,
    budget: &Budget,
) -> Result<Credentials, Failure> {
    let sdk = services.sdk_config().await;
    let Some(arn) = role_arn else {
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Failure::error("no AWS credentials are configured to sign with"))?;
        return match budget.run(provider.provide_credentials()).await {
            None => Err(Failure::transient(
                "the function's AWS credentials were not loaded within the invocation's budget",
            )),
            Some(Err(e)) => Err(failure(
                "the function's AWS credentials could not be loaded",
                &e,
            )),
            Some(Ok(c)) => Ok(c),
        };
    };
    let cache = services.local::<Assumed>();
    if let Some(c) = cache
        .0
        .lock()
        .ok()
        .and_then(|m| m.get(arn).cloned())
        .filter(fresh)
    {
        return Ok(c);
    }
    let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
        .session_name("greenlight-metrics")
        .configure(sdk)
        .build()
        .await;
    let c = match budget.run(provider.provide_credentials()).await {
        None => {
            return Err(Failure::transient(format!(
                "assuming role {arn} did not finish within the invocation's budget"
            )));
        }
        Some(Err(e)) => {
            return Err(failure(
                &format!(
                    "role {arn} could not be assumed (the function's role needs sts:AssumeRole on it, and the role must trust it)"
                ),
                &e,
            ));
        }
        Some(Ok(c)) => c,
    };
    if let Ok(mut m) = cache.0.lock() {
        m.insert(arn.to_string(), c.clone());
    }
    Ok(c)
}

/// The headers that sign a request (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` with temporary credentials). `headers` are the request's
/// other headers, all signed; the host is taken from `url`.
pub fn sign_request(
    credentials: &Credentials,
    service: &str,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<(String, String)>, Failure> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Failure::error(format!("the request could not be signed: {e}")))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| Failure::error(format!("the request could not be signed: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| Failure::error(format!("the request could not be signed: {e}")))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}
