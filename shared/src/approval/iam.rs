//! Deciding from a terminal, as an IAM principal: the caller presigns an STS
//! `GetCallerIdentity` request with its own credentials, binding the decision into the
//! signature through a signed header (`x-greenlight-approval`, a hash of the approval id,
//! the action and the comment), and sends the presigned query to the endpoint. The endpoint
//! sends it to STS itself, with the header it computes from what it was asked to do: STS
//! answers with the caller's ARN only when the signature holds, so the endpoint learns who
//! is deciding, and that they meant this decision, without holding any credential. (The
//! technique of Vault's AWS auth method and aws-iam-authenticator.) STS accepts a presigned
//! request for about 15 minutes whatever its `X-Amz-Expires`, so the endpoint enforces the
//! expiry itself, and the store's single decision makes a replay change nothing.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};

use super::Action;

/// The header that binds the decision into the signature.
pub const HEADER: &str = "x-greenlight-approval";
/// The longest validity a presigned request may ask for.
pub const MAX_EXPIRES: u64 = 300;
/// Where the endpoint sends the presigned request, when set (tests, private endpoints);
/// otherwise `AWS_ENDPOINT_URL_STS`, else the regional STS endpoint.
pub const ENV_STS_URL: &str = "GREENLIGHT_STS_URL";

/// The header's value for a decision.
pub fn binding(id: &str, action: Action, comment: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "greenlight-approval-iam/v1\n{id}\n{}\n{comment}",
        action.as_str()
    )))
}

/// The STS endpoint of `region` (ending in `/`), or the configured one.
pub fn sts_url(region: &str) -> String {
    let configured = [ENV_STS_URL, "AWS_ENDPOINT_URL_STS"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
    let mut url = configured.unwrap_or_else(|| {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://sts.{region}.{suffix}")
    });
    if !url.ends_with('/') {
        url.push('/');
    }
    url
}

/// The query string of a `GetCallerIdentity` request presigned with `credentials` for
/// `sts_url`, valid `expires` (at most [`MAX_EXPIRES`]), binding `binding`.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    sts_url: &str,
    binding: &str,
    expires: Duration,
) -> Result<String, String> {
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires.min(Duration::from_secs(MAX_EXPIRES)));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| format!("the request could not be signed: {e}"))?
        .into();
    let base = format!("{sts_url}?Action=GetCallerIdentity&Version=2011-06-15");
    let signable = SignableRequest::new(
        "GET",
        &base,
        [(HEADER, binding)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| format!("the request could not be signed: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("the request could not be signed: {e}"))?
        .into_parts();
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("Action", "GetCallerIdentity");
    query.append_pair("Version", "2011-06-15");
    for (k, v) in instructions.params() {
        query.append_pair(k, v);
    }
    Ok(query.finish())
}

/// The query parameters a presigned `GetCallerIdentity` may hold.
const ALLOWED: [&str; 9] = [
    "Action",
    "Version",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// Checks a presigned query before it is sent: only `GetCallerIdentity`'s parameters, the
/// binding header signed, the signing time within the last 15 minutes (and not ahead by
/// more than 5), and not past its own `X-Amz-Expires` (at most [`MAX_EXPIRES`]).
pub fn check_query(query: &str, now: SystemTime) -> Result<(), String> {
    if query.len() > 4096 {
        return Err("the signed request is longer than 4096 bytes".into());
    }
    let mut seen = std::collections::BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if !ALLOWED.contains(&k.as_ref()) {
            return Err(format!(
                "the signed request has an unexpected parameter {k:?}"
            ));
        }
        if seen.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the signed request has parameter {k} twice"));
        }
    }
    let get = |k: &str| {
        seen.get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("the signed request has no {k}"))
    };
    if get("Action")? != "GetCallerIdentity" || get("Version")? != "2011-06-15" {
        return Err("the signed request is not STS GetCallerIdentity (Version 2011-06-15)".into());
    }
    if get("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err("the signed request is not signed with AWS4-HMAC-SHA256".into());
    }
    get("X-Amz-Credential")?;
    get("X-Amz-Signature")?;
    let signed: Vec<&str> = get("X-Amz-SignedHeaders")?.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&HEADER) {
        return Err(format!(
            "the signed request does not sign the host and {HEADER} headers"
        ));
    }
    let expires: u64 = get("X-Amz-Expires")?
        .parse()
        .map_err(|_| "X-Amz-Expires is not a number".to_string())?;
    if expires == 0 || expires > MAX_EXPIRES {
        return Err(format!(
            "X-Amz-Expires is {expires}; it must be from 1 to {MAX_EXPIRES} seconds"
        ));
    }
    let date = get("X-Amz-Date")?;
    let signed_at =
        parse_amz_date(date).ok_or_else(|| format!("X-Amz-Date {date:?} is not a time"))?;
    if signed_at > now + Duration::from_secs(300) {
        return Err("the signed request is dated in the future".into());
    }
    if now > signed_at + Duration::from_secs(expires) {
        return Err(format!(
            "the signed request expired ({expires}s after {date}); sign it again"
        ));
    }
    Ok(())
}

/// `20261202T101500Z`.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.ends_with('Z') || s.as_bytes()[8] != b'T' {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    humantime::parse_rfc3339(&rfc).ok()
}

/// Sends the presigned query to STS with the binding header; the caller's ARN, or why not.
pub async fn caller(
    http: &reqwest::Client,
    sts_url: &str,
    query: &str,
    binding: &str,
    timeout: Duration,
) -> Result<String, String> {
    let req = http
        .get(format!("{sts_url}?{query}"))
        .header(HEADER, binding);
    let budget = crate::budget::Budget::of(timeout + Duration::from_millis(100));
    let answer = crate::metrics::http::send(req, "STS", timeout, &budget)
        .await
        .map_err(|f| f.message)?;
    let (status, body) = (answer.status, answer.body);
    let text = String::from_utf8_lossy(&body);
    let tag = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    if status == 200 {
        return tag("Arn")
            .filter(|a| a.starts_with("arn:"))
            .ok_or_else(|| "STS answered without a caller ARN".to_string());
    }
    let code = tag("Code").unwrap_or_else(|| format!("HTTP {status}"));
    let message = tag("Message").unwrap_or_default();
    Err(format!(
        "STS refused the signed request: {code}: {}",
        crate::text::clip(&message, 300)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_query_passes_the_checks_and_tampering_does_not() {
        let c = Credentials::new("AKIDALICE", "SECRETALICE", None, None, "test");
        let q = presign(
            &c,
            "us-west-2",
            "https://sts.us-west-2.amazonaws.com/",
            &binding(&"a".repeat(32), Action::Approve, ""),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            q.contains("X-Amz-SignedHeaders=host%3Bx-greenlight-approval"),
            "{q}"
        );
        assert_eq!(check_query(&q, SystemTime::now()), Ok(()));
        assert!(
            check_query(&q, SystemTime::now() + Duration::from_secs(120))
                .unwrap_err()
                .contains("expired")
        );
        assert!(
            check_query(&format!("{q}&Extra=1"), SystemTime::now())
                .unwrap_err()
                .contains("unexpected parameter")
        );
        assert!(
            check_query(
                &q.replace("GetCallerIdentity", "AssumeRole"),
                SystemTime::now()
            )
            .is_err()
        );
        let unbound = q.replace("host%3Bx-greenlight-approval", "host");
        assert!(
            check_query(&unbound, SystemTime::now())
                .unwrap_err()
                .contains("does not sign")
        );
        assert_ne!(
            binding("x", Action::Approve, ""),
            binding("x", Action::Reject, "")
        );
        assert_ne!(
            binding("x", Action::Approve, ""),
            binding("x", Action::Approve, "c")
        );
    }
}
