//! `greenlight approve`: decides an approval from a terminal, as the caller's IAM identity.
//! The command presigns STS `GetCallerIdentity` with the caller's credentials, binding the
//! approval id, the action and the comment into the signature, and sends it to the
//! endpoint's `/iam`; the endpoint learns the caller's ARN from STS and checks it against
//! the approval's `approvers`.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use greenlight::approval::{Action, iam, is_id};
use serde_json::{Value, json};

/// What to decide.
pub struct Request {
    pub id: String,
    pub endpoint: String,
    pub action: Action,
    pub comment: String,
    pub region: Option<String>,
}

/// The region of a function URL (`https://ID.lambda-url.REGION.on.aws/`).
pub fn url_region(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").nth(1)?.split(['/', ':']).next()?;
    let rest = host.split_once(".lambda-url.")?.1;
    let region = rest.strip_suffix(".on.aws")?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
}

/// Decides; the exit code (0 decided, 1 not, 2 usage or setup error) and what to print.
pub async fn run(r: &Request) -> (u8, String) {
    if !is_id(&r.id) {
        return (
            2,
            format!(
                "{:?} is not an approval id (32 hex digits, as the request shows)",
                r.id
            ),
        );
    }
    let mut endpoint = r.endpoint.clone();
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return (2, "--endpoint must be the approval endpoint's URL".into());
    }
    if !endpoint.ends_with('/') {
        endpoint.push('/');
    }
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let region = r
        .region
        .clone()
        .or_else(|| url_region(&endpoint))
        .or_else(|| sdk.region().map(|r| r.to_string()));
    let Some(region) = region else {
        return (
            2,
            "no region: pass --region (the approval endpoint's region)".into(),
        );
    };
    let Some(provider) = sdk.credentials_provider() else {
        return (2, "no AWS credentials are configured".into());
    };
    let credentials = match provider.provide_credentials().await {
        Ok(c) => c,
        Err(e) => return (2, format!("AWS credentials could not be loaded: {e}")),
    };
    let binding = iam::binding(&r.id, r.action, &r.comment);
    let query = match iam::presign(
        &credentials,
        &region,
        &iam::sts_url(&region),
        &binding,
        Duration::from_secs(60),
    ) {
        Ok(q) => q,
        Err(e) => return (2, e),
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => return (2, format!("no HTTP client: {e}")),
    };
    let body = json!({"id": r.id, "action": r.action.as_str(), "comment": r.comment, "sts": query});
    let response = match client
        .post(format!("{endpoint}iam"))
        .json(&body)
        .send()
        .await
    {
        Ok(resp) => resp,
        Err(e) => {
            return (
                2,
                format!("the endpoint could not be reached: {}", e.without_url()),
            );
        }
    };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = answer
        .get("message")
        .or_else(|| answer.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the endpoint answered HTTP {status}"));
    let caller = answer
        .get("caller")
        .and_then(Value::as_str)
        .map(|c| format!(" (as {c})"))
        .unwrap_or_default();
    match status {
        200 => (0, format!("{message}{caller}")),
        400 | 403 | 404 | 409 | 410 => (1, format!("{message}{caller}")),
        _ => (2, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_a_function_url() {
        assert_eq!(
            url_region("https://abc123.lambda-url.eu-west-1.on.aws/").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            url_region("http://127.0.0.1:9000/lambda-url/approvals/"),
            None
        );
    }
}
