//! The approval endpoint (the `approvals` function): a Lambda function URL, public by
//! nature, and the target of EventBridge's `ECS Hook State Change` events.
//!
//! Over the function URL:
//!
//! * `GET /?id=…&a=…&c=…&e=…&s=…`, a signed link: shows what the link would do, and a
//!   button that POSTs it (link previews and mail scanners fetch links; they decide
//!   nothing).
//! * `POST /` with the same parameters (and an optional `comment`) as a form: decides.
//! * `POST /slack`: Slack's interaction payload (the Approve and Reject buttons), verified
//!   with the Slack app's signing secret (`v0` HMAC over the timestamp and the raw body,
//!   within five minutes).
//! * `POST /iam`: `{"id", "action", "comment", "sts"}` from `greenlight approve`: the caller's
//!   identity is a presigned STS `GetCallerIdentity` that binds the decision
//!   ([`crate::approval::iam`]).
//!
//! Every request is verified (signature, Slack signature, or STS) before anything is read
//! from the store; bodies are bounded; a wrong method or path, a bad signature, an expired
//! link, an unknown approval or an approver not on the list gets a 4xx and changes
//! nothing; the decision is written once (the store's conditional write), and a second
//! decision is told who made the first.
//!
//! From EventBridge, an `ECS Hook State Change` event for a PAUSE hook awaiting action
//! (`HOOK_AWAITING_ACTION`) writes an approval request and sends it to the notification
//! channels; a decision then calls `ContinueServiceDeployment` (`CONTINUE` or `ROLLBACK`).
//! AWS documents the event's detail-type and name but, as of this writing, not the rest
//! of its `detail`: the handler takes the service deployment's ARN from `resources` or any
//! `serviceDeploymentArn` in `detail`, and reads the paused hook (`hookId`, stage, expiry)
//! from `DescribeServiceDeployments`, whose shape is documented.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::time::Instant;

use crate::approval::store::{Store, Written};
use crate::approval::{
    self, Action, Approver, Decision, PauseHook, Request, Setup, approvers, iam, link,
};
use crate::budget::Budget;
use crate::deployment::{Deployment, Protocol, TrafficDirection, parse_ecs_arn};
use crate::duration::now_ms;
use crate::record::{CheckRecord, DecisionRecord};
use crate::role::Role;
use crate::secrets::{self, SecretRef};
use crate::services::Services;
use crate::stage::Stage;
use crate::verdict::HookStatus;

/// The largest request body read.
pub const MAX_BODY: usize = 16 * 1024;
/// Slack's signing secret (a Secrets Manager ARN).
pub const ENV_SLACK_SIGNING_SECRET: &str = "GREENLIGHT_SLACK_SIGNING_SECRET";
/// A Slack bot token (`usergroups:read`), to resolve user-group approvers.
pub const ENV_SLACK_BOT_TOKEN: &str = "GREENLIGHT_SLACK_BOT_TOKEN";
/// Slack's Web API, for tests: default `https://slack.com/api/`.
pub const ENV_SLACK_API: &str = "GREENLIGHT_SLACK_API_URL";
/// Where a Slack `response_url` may point: default `https://hooks.slack.com/`.
pub const ENV_SLACK_RESPONSE_PREFIX: &str = "GREENLIGHT_SLACK_RESPONSE_URL_PREFIX";
/// How far a Slack request's timestamp may be from now.
pub const SLACK_SKEW: u64 = 300;

/// An HTTP answer.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    fn page(status: u16, title: &str, text: &str) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body: page(title, &format!("<p>{}</p>", html(text))),
        }
    }
    fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string(),
        }
    }
    fn empty() -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
        }
    }
    /// The function URL's response.
    pub fn into_response(self) -> LambdaFunctionUrlResponse {
        let mut r = LambdaFunctionUrlResponse::default();
        r.status_code = i64::from(self.status);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            reqwest::header::HeaderValue::from_static("no-store"),
        );
        headers.insert(
            reqwest::header::HeaderName::from_static("referrer-policy"),
            reqwest::header::HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            reqwest::header::HeaderName::from_static("content-security-policy"),
            reqwest::header::HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
        );
        r.headers = headers;
        r.body = Some(self.body);
        r.is_base64_encoded = false;
        r
    }
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, inner: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\"><title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}button{{font-size:1.1em;padding:.4em 1.2em}}</style></head><body><h1>{t}</h1>{inner}</body></html>",
        t = html(title)
    )
}

/// What the endpoint was sent: a function URL request, an EventBridge event, or neither.
pub async fn handle(services: &Services, payload: &Value, deadline: SystemTime) -> Value {
    let budget = Budget::until(deadline);
    if payload.get("requestContext").is_some() {
        let reply = match serde_json::from_value::<LambdaFunctionUrlRequest>(payload.clone()) {
            Ok(req) => {
                let run: futures::future::BoxFuture<'_, Reply> =
                    Box::pin(http_request(services, &req, &budget));
                let run = std::panic::AssertUnwindSafe(run);
                match futures::FutureExt::catch_unwind(run).await {
                    Ok(r) => r,
                    Err(panic) => {
                        let msg = crate::text::panic_message(&*panic).unwrap_or_default();
                        tracing::error!("approval endpoint: internal error ({msg})");
                        Reply::page(500, "Error", "Internal error; nothing was decided.")
                    }
                }
            }
            Err(e) => {
                tracing::warn!("approval endpoint: not a function URL request: {e}");
                Reply::page(400, "Bad request", "The request could not be read.")
            }
        };
        return serde_json::to_value(reply.into_response()).unwrap_or(Value::Null);
    }
    if payload.get("detail-type").is_some() {
        let pause: futures::future::BoxFuture<'_, Result<Value, String>> =
            Box::pin(pause_event(services, payload, &budget));
        return match pause.await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("pause hook: {e}");
                json!({"handled": false, "reason": e})
            }
        };
    }
    tracing::warn!(
        "approval endpoint: the payload is neither a function URL request nor an EventBridge event"
    );
    json!({"handled": false, "reason": "the payload is neither a function URL request nor an EventBridge event"})
}

/// The request's body as bytes, at most [`MAX_BODY`].
fn body_of(req: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, Reply> {
    let raw = req.body.as_deref().unwrap_or("");
    let bytes = if req.is_base64_encoded {
        if raw.len() > MAX_BODY * 4 / 3 + 4 {
            return Err(Reply::page(
                413,
                "Too large",
                "The request body is too large.",
            ));
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| Reply::page(400, "Bad request", "The body is not valid base64."))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY {
        return Err(Reply::page(
            413,
            "Too large",
            "The request body is too large.",
        ));
    }
    Ok(bytes)
}

fn header<'a>(req: &'a LambdaFunctionUrlRequest, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn http_request(
    services: &Services,
    req: &LambdaFunctionUrlRequest,
    budget: &Budget,
) -> Reply {
    let method = req
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or("")
        .to_ascii_uppercase();
    let path = req.raw_path.as_deref().unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    match (method.as_str(), path) {
        ("GET", "/") | ("POST", "/" | "/slack" | "/iam") => {}
        (_, "/" | "/slack" | "/iam") => {
            return Reply::page(
                405,
                "Method not allowed",
                "This method is not allowed here.",
            );
        }
        _ => return Reply::page(404, "Not found", "There is nothing here."),
    }
    let body = match body_of(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let setup = match Setup::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("approval endpoint misconfigured: {e}");
            return Reply::page(
                503,
                "Not configured",
                "The approval endpoint is not configured; nothing was decided.",
            );
        }
    };
    match (method.as_str(), path) {
        ("GET", "/") => {
            let query = req.raw_query_string.as_deref().unwrap_or("");
            link_page(services, &setup, query, budget).await
        }
        ("POST", "/") => {
            let form = String::from_utf8_lossy(&body).into_owned();
            link_decide(services, &setup, &form, budget).await
        }
        ("POST", "/slack") => slack(services, &setup, req, &body, budget).await,
        ("POST", "/iam") => iam_decide(services, &setup, &body, budget).await,
        (_, "/" | "/slack" | "/iam") => Reply::page(
            405,
            "Method not allowed",
            "This method is not allowed here.",
        ),
        _ => Reply::page(404, "Not found", "There is nothing here."),
    }
}

async fn key(
    services: &Services,
    setup: &Setup,
    budget: &Budget,
) -> Result<secrets::Secret, Reply> {
    secrets::resolve_reserved(services, &setup.key, budget.end())
        .await
        .map_err(|e| {
            tracing::error!("approval endpoint: the signing key could not be read: {e}");
            Reply::page(
                503,
                "Unavailable",
                "The signing key could not be read; nothing was decided. Try again.",
            )
        })
}

/// Verifies a link's parameters; the claims, or the refusal's page.
async fn verified_link(
    services: &Services,
    setup: &Setup,
    params: &str,
    budget: &Budget,
) -> Result<link::Claims, Reply> {
    let secret = key(services, setup, budget).await?;
    let bytes = link::key_bytes(secret.expose()).map_err(|e| {
        tracing::error!("approval endpoint: {e}");
        Reply::page(
            503,
            "Unavailable",
            "The signing key is unusable; nothing was decided.",
        )
    })?;
    link::verify(bytes, params, approval::now_secs()).map_err(|r| {
        tracing::warn!("approval link refused: {r}");
        let status = match r {
            link::Refusal::Malformed(_) => 400,
            link::Refusal::BadSignature => 403,
            link::Refusal::Expired(_) => 410,
        };
        Reply::page(
            status,
            "Link refused",
            &format!("{r}. Nothing was decided."),
        )
    })
}

async fn link_page(services: &Services, setup: &Setup, query: &str, budget: &Budget) -> Reply {
    let claims = match verified_link(services, setup, query, budget).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let store = Store {
        services,
        bucket: &setup.bucket,
    };
    let request = match store.request(&claims.id, budget).await {
        Ok(Some(r)) => r,
        Ok(None) => return Reply::page(404, "Unknown approval", "No such approval is waiting."),
        Err(f) => return unavailable(&f.message),
    };
    if let Ok(Some(d)) = store.decision(&claims.id, budget).await {
        return Reply::page(
            409,
            "Already decided",
            &format!("{}: {}.", request.subject, d.describe()),
        );
    }
    let verb = if claims.action == Action::Approve {
        "Approve"
    } else {
        "Reject"
    };
    let hidden: String = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| matches!(k.as_ref(), "id" | "a" | "c" | "e" | "s"))
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html(&k),
                html(&v)
            )
        })
        .collect();
    let inner = format!(
        "<p><strong>{}</strong></p><p>Expires {}.</p><form method=\"post\" action=\"./\">{hidden}<p><label>Comment (optional)<br><input name=\"comment\" maxlength=\"{}\" size=\"50\"></label></p><p><button type=\"submit\">{verb}</button></p></form>",
        html(&request.subject),
        approval::rfc3339(request.expires_at_ms),
        approval::MAX_COMMENT
    );
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: page(&format!("{verb} this deployment?"), &inner),
    }
}

fn unavailable(why: &str) -> Reply {
    tracing::warn!("approval endpoint: the store could not be used: {why}");
    Reply::page(
        503,
        "Unavailable",
        "The approval store could not be reached; nothing was decided. Try again.",
    )
}

async fn link_decide(services: &Services, setup: &Setup, form: &str, budget: &Budget) -> Reply {
    let claims = match verified_link(services, setup, form, budget).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let comment = form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == "comment")
        .map(|(_, v)| v.into_owned());
    let by = Approver {
        via: "link".into(),
        id: claims.channel.clone(),
        name: None,
    };
    let outcome = decide(
        services,
        setup,
        &claims.id,
        claims.action,
        by,
        comment,
        budget,
        |r| approvers::link_allowed(&r.approvers, &claims.channel),
    )
    .await;
    let title = match &outcome {
        Outcome::Decided(..) => "Recorded",
        Outcome::Already(..) => "Already decided",
        Outcome::Refused(..) => "Not allowed",
        Outcome::Unknown => "Unknown approval",
        Outcome::Expired(..) => "Expired",
        Outcome::Failed(..) => "Unavailable",
    };
    Reply::page(outcome.status(), title, &outcome.sentence())
}

/// What a decision attempt came to.
#[derive(Debug)]
enum Outcome {
    /// Recorded; with what ECS said for a pause hook.
    Decided(Request, Decision, Option<String>),
    Already(Request, Decision),
    Refused(String),
    Unknown,
    Expired(Request),
    Failed(String),
}

impl Outcome {
    /// The HTTP status that says it: 200 recorded, 409 already decided, 403 not an approver,
    /// 404 unknown, 410 expired, 503 the store could not be used.
    fn status(&self) -> u16 {
        match self {
            Outcome::Decided(..) => 200,
            Outcome::Already(..) => 409,
            Outcome::Refused(..) => 403,
            Outcome::Unknown => 404,
            Outcome::Expired(..) => 410,
            Outcome::Failed(..) => 503,
        }
    }

    fn sentence(&self) -> String {
        match self {
            Outcome::Decided(r, d, ecs) => format!(
                "{}: {}.{}",
                r.subject,
                d.describe(),
                ecs.as_deref().map(|e| format!(" {e}")).unwrap_or_default()
            ),
            Outcome::Already(r, d) => {
                format!("{}: already {}; nothing changed.", r.subject, d.describe())
            }
            Outcome::Refused(why) => format!("{why}; nothing was decided."),
            Outcome::Unknown => "No such approval is waiting; nothing was decided.".into(),
            Outcome::Expired(r) => format!(
                "{}: the approval expired at {}; its timeout decides (onTimeout: {}). Nothing changed.",
                r.subject,
                approval::rfc3339(r.expires_at_ms),
                r.on_timeout
            ),
            Outcome::Failed(why) => format!("{why}; nothing was decided. Try again."),
        }
    }
}

/// Records a decision for approval `id` by `by`, once, if `allowed` lets them; for a pause
/// hook, continues or rolls back the deployment.
#[allow(clippy::too_many_arguments)]
async fn decide(
    services: &Services,
    setup: &Setup,
    id: &str,
    action: Action,
    by: Approver,
    comment: Option<String>,
    budget: &Budget,
    allowed: impl FnOnce(&Request) -> bool,
) -> Outcome {
    let store = Store {
        services,
        bucket: &setup.bucket,
    };
    let request = match store.request(id, budget).await {
        Ok(Some(r)) => r,
        Ok(None) => return Outcome::Unknown,
        Err(f) => {
            return Outcome::Failed(format!(
                "the approval store could not be read ({})",
                f.message
            ));
        }
    };
    if !allowed(&request) {
        tracing::warn!(
            approval = id,
            via = %by.via,
            who = %by.id,
            "refused: {} is not among the approvers of {} ({})",
            by.describe(),
            request.subject,
            request.approvers.join(", ")
        );
        return Outcome::Refused(format!("{} may not decide this approval", by.describe()));
    }
    if request.expired(now_ms()) {
        if let Ok(Some(d)) = store.decision(id, budget).await {
            return Outcome::Already(request, d);
        }
        return Outcome::Expired(request);
    }
    let decision = Decision::new(id, action.as_str(), by, comment);
    match store.decide(&decision, budget).await {
        Err(f) => Outcome::Failed(format!(
            "the decision could not be recorded ({})",
            f.message
        )),
        Ok(Written::Existing(d)) => {
            // A pause hook whose continuation failed earlier is continued again.
            if let Some(p) = &request.pause {
                let _ = continue_deployment(services, p, &d, budget).await;
            }
            Outcome::Already(request, d)
        }
        Ok(Written::Created) => {
            tracing::info!(
                approval = id,
                action = %decision.action,
                via = %decision.by.via,
                who = %decision.by.id,
                "{}: {}",
                request.subject,
                decision.describe()
            );
            let ecs = match &request.pause {
                Some(p) => Some(
                    match continue_deployment(services, p, &decision, budget).await {
                        Ok(s) => s,
                        Err(e) => format!("ECS did not take it: {e}"),
                    },
                ),
                None => Some("The deployment's hook reads it at its next check.".into()),
            };
            Outcome::Decided(request, decision, ecs)
        }
    }
}

/// `ContinueServiceDeployment` for a pause hook: `CONTINUE` on approval, `ROLLBACK` otherwise.
async fn continue_deployment(
    services: &Services,
    p: &PauseHook,
    d: &Decision,
    budget: &Budget,
) -> Result<String, String> {
    use aws_sdk_ecs::types::DeploymentLifecycleHookAction as A;
    let action = if d.approved() {
        A::Continue
    } else {
        A::Rollback
    };
    let call = services
        .ecs()
        .await
        .continue_service_deployment()
        .service_deployment_arn(&p.service_deployment_arn)
        .hook_id(&p.hook_id)
        .action(action.clone())
        .send();
    crate::aws::call(
        budget,
        "ECS ContinueServiceDeployment",
        "ecs:ContinueServiceDeployment",
        call,
    )
    .await
    .map(|_| {
        format!(
            "ECS was told to {}.",
            if d.approved() {
                "continue"
            } else {
                "roll back"
            }
        )
    })
    .map_err(|f| {
        tracing::warn!("pause hook {}: {}", p.hook_id, f.message);
        f.message
    })
}

// ---------------------------------------------------------------------------------------
// Slack

fn env_secret(var: &str) -> Option<SecretRef> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|arn| SecretRef::SecretsManager {
            secret_arn: arn.trim().to_string(),
            json_key: None,
        })
}

/// Verifies Slack's `v0` signature over `timestamp` and `body`.
pub fn slack_signature_ok(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_secs: u64,
) -> bool {
    let Ok(ts) = timestamp.parse::<u64>() else {
        return false;
    };
    if now_secs.abs_diff(ts) > SLACK_SKEW {
        return false;
    }
    let Some(hex_sig) = signature.strip_prefix("v0=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac =
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn slack(
    services: &Services,
    setup: &Setup,
    req: &LambdaFunctionUrlRequest,
    body: &[u8],
    budget: &Budget,
) -> Reply {
    let Some(secret_ref) = env_secret(ENV_SLACK_SIGNING_SECRET) else {
        tracing::warn!("Slack interaction refused: {ENV_SLACK_SIGNING_SECRET} is not set");
        return Reply::page(
            403,
            "Not configured",
            "Slack is not configured for this endpoint.",
        );
    };
    let secret = match secrets::resolve_reserved(services, &secret_ref, budget.end()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("Slack signing secret could not be read: {e}");
            return Reply::page(
                503,
                "Unavailable",
                "The Slack signing secret could not be read.",
            );
        }
    };
    let (ts, sig) = (
        header(req, "x-slack-request-timestamp").unwrap_or(""),
        header(req, "x-slack-signature").unwrap_or(""),
    );
    if !slack_signature_ok(
        secret.expose().as_bytes(),
        ts,
        body,
        sig,
        approval::now_secs(),
    ) {
        tracing::warn!(
            "Slack interaction refused: the signature does not verify (or its timestamp is more than {SLACK_SKEW}s off)"
        );
        return Reply::page(
            401,
            "Refused",
            "The request's Slack signature does not verify.",
        );
    }
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .and_then(|(_, v)| serde_json::from_str::<Value>(&v).ok());
    let Some(p) = payload else {
        return Reply::page(400, "Bad request", "No interaction payload.");
    };
    let action = p.pointer("/actions/0");
    let (Some(action_id), Some(id)) = (
        action
            .and_then(|a| a.get("action_id"))
            .and_then(Value::as_str),
        action.and_then(|a| a.get("value")).and_then(Value::as_str),
    ) else {
        return Reply::empty();
    };
    let action = match action_id {
        crate::notify::slack::ACTION_APPROVE => Action::Approve,
        crate::notify::slack::ACTION_REJECT => Action::Reject,
        // A link button: the browser opens the link; nothing to do here.
        _ => return Reply::empty(),
    };
    if !approval::is_id(id) {
        return Reply::page(400, "Bad request", "Not an approval id.");
    }
    let user = p
        .pointer("/user/id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = p
        .pointer("/user/username")
        .or_else(|| p.pointer("/user/name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if user.is_empty() {
        return Reply::page(400, "Bad request", "The interaction names no user.");
    }
    let groups = user_groups(services, setup, id, &user, budget).await;
    let by = Approver {
        via: "slack".into(),
        id: user.clone(),
        name,
    };
    let outcome = decide(services, setup, id, action, by, None, budget, |r| {
        approvers::slack_allowed(&r.approvers, &user, &groups)
    })
    .await;
    let text = match &outcome {
        Outcome::Decided(..) => format!(
            "{} {}",
            if action == Action::Approve {
                "✅"
            } else {
                "⛔"
            },
            outcome.sentence()
        ),
        _ => format!("⚠️ <@{user}>: {}", outcome.sentence()),
    };
    // The message shows who decided (replacing the buttons); a refusal goes to the user alone.
    let replace = matches!(outcome, Outcome::Decided(..) | Outcome::Already(..));
    if let Some(url) = p.get("response_url").and_then(Value::as_str) {
        respond(services, url, &text, replace, budget).await;
    }
    Reply::empty()
}

/// The Slack user groups among the request's approvers that `user` belongs to.
async fn user_groups(
    services: &Services,
    setup: &Setup,
    id: &str,
    user: &str,
    budget: &Budget,
) -> Vec<String> {
    let store = Store {
        services,
        bucket: &setup.bucket,
    };
    let Ok(Some(r)) = store.request(id, budget).await else {
        return Vec::new();
    };
    let groups = approvers::slack_groups(&r.approvers);
    if groups.is_empty() {
        return Vec::new();
    }
    let Some(token_ref) = env_secret(ENV_SLACK_BOT_TOKEN) else {
        tracing::warn!(
            "Slack user groups are approvers, but {ENV_SLACK_BOT_TOKEN} is not set: their members cannot be recognised"
        );
        return Vec::new();
    };
    let Ok(token) = secrets::resolve_reserved(services, &token_ref, budget.end()).await else {
        tracing::warn!("the Slack bot token could not be read: user groups cannot be resolved");
        return Vec::new();
    };
    let api = std::env::var(ENV_SLACK_API).unwrap_or_else(|_| "https://slack.com/api/".into());
    let Ok(http) = crate::metrics::http::client(services) else {
        return Vec::new();
    };
    let mut member_of = Vec::new();
    for g in groups {
        let req = http
            .get(format!(
                "{}/usergroups.users.list?{}",
                api.trim_end_matches('/'),
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("usergroup", &g)
                    .finish()
            ))
            .bearer_auth(token.expose());
        match crate::metrics::http::send(
            req,
            "Slack usergroups.users.list",
            Duration::from_secs(3),
            budget,
        )
        .await
        {
            Ok(a) => {
                let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
                let members = v.get("users").and_then(Value::as_array);
                if v.get("ok") != Some(&Value::Bool(true)) {
                    let why = v.get("error").and_then(|e| e.as_str()).unwrap_or("not ok");
                    tracing::warn!("Slack usergroups.users.list for {g}: {why}");
                } else if members.is_some_and(|m| m.iter().any(|u| u.as_str() == Some(user))) {
                    member_of.push(g);
                }
            }
            Err(f) => tracing::warn!(
                "{}",
                secrets::redact(&f.message, std::slice::from_ref(&token))
            ),
        }
    }
    member_of
}

/// Posts to Slack's `response_url`: replaces the message, or tells the user alone.
async fn respond(services: &Services, url: &str, text: &str, replace: bool, budget: &Budget) {
    let prefix = std::env::var(ENV_SLACK_RESPONSE_PREFIX)
        .unwrap_or_else(|_| "https://hooks.slack.com/".into());
    if !url.starts_with(&prefix) {
        tracing::warn!("Slack response_url is not under {prefix}; not answered");
        return;
    }
    let Ok(http) = crate::metrics::http::client(services) else {
        return;
    };
    let body = if replace {
        json!({"replace_original": true, "text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": crate::notify::slack::escape(text)}}]})
    } else {
        json!({"response_type": "ephemeral", "replace_original": false, "text": text})
    };
    if let Err(f) = crate::metrics::http::send(
        http.post(url).json(&body),
        "Slack response_url",
        Duration::from_secs(3),
        budget,
    )
    .await
    {
        tracing::warn!("the Slack message could not be updated: {}", f.message);
    }
}

// ---------------------------------------------------------------------------------------
// IAM

async fn iam_decide(services: &Services, setup: &Setup, body: &[u8], budget: &Budget) -> Reply {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Reply::json(400, json!({"error": "the body is not JSON"}));
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    let (Some(id), Some(action), Some(query)) = (
        text("id"),
        text("action").and_then(Action::parse),
        text("sts"),
    ) else {
        return Reply::json(
            400,
            json!({"error": "expected {\"id\", \"action\": \"approve\"|\"reject\", \"sts\", \"comment\"?}"}),
        );
    };
    if !approval::is_id(id) {
        return Reply::json(400, json!({"error": "id is not an approval id"}));
    }
    let comment = text("comment").unwrap_or("");
    if let Err(e) = iam::check_query(query, SystemTime::now()) {
        tracing::warn!("IAM decision refused: {e}");
        return Reply::json(400, json!({"error": e}));
    }
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let Ok(http) = crate::metrics::http::client(services) else {
        return Reply::json(503, json!({"error": "no HTTP client"}));
    };
    let binding = iam::binding(id, action, comment);
    let caller = match iam::caller(
        &http,
        &iam::sts_url(&region),
        query,
        &binding,
        Duration::from_secs(5),
    )
    .await
    {
        Ok(arn) => arn,
        Err(e) => {
            tracing::warn!("IAM decision refused: {e}");
            return Reply::json(403, json!({"error": e}));
        }
    };
    let by = Approver {
        via: "iam".into(),
        id: caller.clone(),
        name: None,
    };
    let comment = (!comment.is_empty()).then(|| comment.to_string());
    let outcome = decide(services, setup, id, action, by, comment, budget, |r| {
        iam_may_decide(r, &caller)
    })
    .await;
    let result = match &outcome {
        Outcome::Decided(..) => "decided",
        Outcome::Already(..) => "alreadyDecided",
        Outcome::Refused(..) => "refused",
        Outcome::Unknown => "unknown",
        Outcome::Expired(..) => "expired",
        Outcome::Failed(..) => "unavailable",
    };
    let status = outcome.status();
    let decision = match &outcome {
        Outcome::Decided(_, d, _) | Outcome::Already(_, d) => json!(d),
        _ => Value::Null,
    };
    Reply::json(
        status,
        json!({"result": result, "message": outcome.sentence(), "caller": caller, "decision": decision}),
    )
}

/// Whether the IAM principal STS named may decide `r`: one of its approvers; with none
/// named, a principal of the deployment's own account (any AWS principal can sign a
/// request to STS), and none when that account is not known.
pub fn iam_may_decide(r: &Request, caller: &str) -> bool {
    approvers::iam_allowed(&r.approvers, caller)
        && (!r.approvers.is_empty()
            || r.account
                .as_deref()
                .is_some_and(|a| caller.split(':').nth(4) == Some(a)))
}

// ---------------------------------------------------------------------------------------
// ECS pause hooks

/// The service deployment an `ECS Hook State Change` event is about.
fn service_deployment_arn(event: &Value) -> Option<String> {
    fn find(v: &Value) -> Option<String> {
        match v {
            Value::Object(m) => m
                .get("serviceDeploymentArn")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| m.values().find_map(find)),
            Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    let from_resources = event
        .get("resources")
        .and_then(Value::as_array)
        .and_then(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .find(|a| a.contains(":service-deployment/"))
        })
        .map(str::to_string);
    from_resources.or_else(|| event.get("detail").and_then(find))
}

async fn pause_event(
    services: &Services,
    payload: &Value,
    budget: &Budget,
) -> Result<Value, String> {
    let event: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_value(payload.clone())
            .map_err(|e| format!("not an EventBridge event: {e}"))?;
    if event.source != "aws.ecs" || event.detail_type != "ECS Hook State Change" {
        return Ok(
            json!({"handled": false, "reason": format!("not an ECS hook event ({} / {})", event.source, event.detail_type)}),
        );
    }
    let name = ["eventName", "eventType", "name"]
        .iter()
        .find_map(|k| event.detail.get(*k).and_then(Value::as_str));
    if let Some(n) = name
        && n != "HOOK_AWAITING_ACTION"
    {
        return Ok(json!({"handled": false, "reason": format!("{n}: nothing to do")}));
    }
    let arn = service_deployment_arn(payload).ok_or("the event names no service deployment")?;
    let out = crate::aws::call(
        budget,
        "ECS DescribeServiceDeployments",
        "ecs:DescribeServiceDeployments",
        services
            .ecs()
            .await
            .describe_service_deployments()
            .service_deployment_arns(&arn)
            .send(),
    )
    .await
    .map_err(|f| f.message)?;
    let sd = out
        .service_deployments()
        .iter()
        .find(|s| s.service_deployment_arn() == Some(arn.as_str()))
        .ok_or_else(|| format!("ECS does not know service deployment {arn}"))?;
    let hooks: Vec<_> = sd
        .lifecycle_hook_details()
        .iter()
        .filter(|h| {
            h.target_type().map(|t| t.as_str()) == Some("PAUSE")
                && h.status().map(|s| s.as_str()) == Some("AWAITING_ACTION")
        })
        .collect();
    let Some(hook) = hooks.first() else {
        return Ok(json!({"handled": false, "reason": "no PAUSE hook is awaiting action"}));
    };
    let hook_id = hook
        .hook_id()
        .ok_or("the paused hook has no hookId")?
        .to_string();
    let stage = sd.lifecycle_stage().map(|s| Stage::parse(s.as_str()));
    let parts = parse_ecs_arn(&arn);
    let deployment = Deployment {
        protocol: Protocol::Ecs,
        role: Role::AfterAllowTraffic,
        stage: stage.clone(),
        stage_assumed: false,
        key: arn.clone(),
        region: parts.region.clone(),
        account: parts.account.clone(),
        cluster: parts.cluster.clone(),
        service: parts.service.clone(),
        service_arn: sd.service_arn().map(str::to_string),
        service_deployment_arn: Some(arn.clone()),
        execution_id: None,
        target_revision_arn: sd
            .target_service_revision()
            .and_then(|r| r.arn())
            .map(str::to_string),
        target_revision_id: sd
            .target_service_revision()
            .and_then(|r| r.arn())
            .and_then(|a| parse_ecs_arn(a).id),
        source_revision_arn: sd
            .source_service_revisions()
            .first()
            .and_then(|r| r.arn())
            .map(str::to_string),
        traffic: TrafficDirection::Unknown,
        first_deployment: None,
        codedeploy_deployment_id: None,
        codedeploy: None,
    };
    let config = crate::config::sources::load(services, budget, None, &deployment)
        .await
        .map_err(|e| e.to_string())?;
    let Some((check, settings)) = config.checks.iter().find_map(|c| {
        let a = c
            .kind
            .as_any()
            .downcast_ref::<crate::checks::approval::ApprovalCheck>()?;
        (c.common.enabled && c.runs_at(stage.as_ref())).then(|| (c.name.clone(), a.clone()))
    }) else {
        return Ok(
            json!({"handled": false, "reason": format!("no approval check is configured for {} at {}; the pause hook waits for ContinueServiceDeployment from elsewhere", deployment.service.as_deref().unwrap_or("?"), stage.as_ref().map(|s| s.as_str()).unwrap_or("?"))}),
        );
    };
    let setup = Setup::from_env()?;
    let stage_label = crate::checks::approval::stage_label(&deployment);
    let id = approval::approval_id(&arn, &stage_label, &check);
    let now = now_ms();
    let ecs_expiry = hook
        .expires_at()
        .and_then(|t| u64::try_from(t.to_millis().ok()?).ok());
    let mut expires = now + crate::duration::millis(settings.timeout.get());
    if let Some(e) = ecs_expiry {
        expires = expires.min(e);
    }
    let facts = crate::facts::Facts::new();
    let changes = crate::checks::approval::changes(services, &deployment, &facts, budget).await;
    let fresh = Request {
        v: approval::VERSION,
        id: id.clone(),
        deployment: arn.clone(),
        subject: crate::checks::approval::subject(&deployment, &stage_label),
        stage: stage_label,
        check: check.clone(),
        approvers: settings.approvers.clone(),
        requested_at_ms: now,
        expires_at_ms: expires,
        on_timeout: hook
            .timeout_action()
            .map(|a| a.as_str().to_ascii_lowercase())
            .unwrap_or_else(|| "rollback".into()),
        pause: Some(PauseHook {
            service_deployment_arn: arn.clone(),
            hook_id: hook_id.clone(),
        }),
        region: deployment.region.clone(),
        account: deployment.account.clone(),
    };
    let store = Store {
        services,
        bucket: &setup.bucket,
    };
    let request = store.ask(&fresh, budget).await.map_err(|f| f.message)?;
    if request != fresh {
        return Ok(
            json!({"handled": true, "approval": id, "reason": "the approval was already requested"}),
        );
    }
    // The request goes out as the hook functions send theirs: an `approvalRequested`
    // notification for the pending approval.
    let mut record = DecisionRecord::new(
        "approvals",
        HookStatus::InProgress,
        format!("paused: waiting for approval ({check})"),
        Some(deployment.clone()),
    );
    let observed = json!({"approval": {
        "id": id, "subject": request.subject, "approvers": request.approvers,
        "requestedAt": approval::rfc3339(request.requested_at_ms),
        "expiresAt": approval::rfc3339(request.expires_at_ms), "expiresAtMs": request.expires_at_ms,
        "onTimeout": request.on_timeout, "message": settings.message, "changes": changes,
    }});
    record.checks.push(CheckRecord {
        name: check.clone(),
        kind: "approval".into(),
        verdict: "pending".into(),
        effect: "waiting".into(),
        reason: format!(
            "the ECS PAUSE hook {hook_id} waits for approval until {}",
            approval::rfc3339(request.expires_at_ms)
        ),
        observed,
        expected: Value::Null,
        attempts: 1,
        duration_ms: 0,
        aws_calls: Default::default(),
    });
    let notifications = crate::config::sources::load_notifications(services, budget, None).await?;
    let limit = Instant::now() + budget.remaining();
    let outbox = crate::notify::Outbox::new(
        services,
        &notifications,
        &deployment,
        Some(request.requested_at_ms),
        Vec::new(),
        None,
        limit,
    )
    .with_approvals(crate::checks::approval::pending(&record.checks));
    let due = outbox.due(HookStatus::InProgress, &[]);
    let delivered = outbox.send(&due, &record).await;
    let sent: HashMap<String, bool> = delivered
        .iter()
        .map(|d| (d.channel.clone(), d.ok()))
        .collect();
    tracing::info!(approval = %id, hook = %hook_id, "pause hook at {}: approval requested", request.subject);
    Ok(json!({"handled": true, "approval": id, "hookId": hook_id, "notified": sent}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_signatures_verify_within_five_minutes_only() {
        let body = b"payload=%7B%7D";
        let mut mac =
            <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(b"8f742231b10e8888abcd99yyyzzz85a5")
                .unwrap();
        mac.update(b"v0:1531420618:payload=%7B%7D");
        let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        let key = b"8f742231b10e8888abcd99yyyzzz85a5";
        assert!(slack_signature_ok(
            key,
            "1531420618",
            body,
            &sig,
            1531420618 + 10
        ));
        assert!(!slack_signature_ok(
            key,
            "1531420618",
            body,
            &sig,
            1531420618 + 301
        ));
        assert!(!slack_signature_ok(
            key,
            "1531420618",
            b"payload=%7B%7D ",
            &sig,
            1531420618
        ));
        assert!(!slack_signature_ok(
            b"another secret",
            "1531420618",
            body,
            &sig,
            1531420618
        ));
        assert!(!slack_signature_ok(
            key,
            "1531420619",
            body,
            &sig,
            1531420618
        ));
        assert!(!slack_signature_ok(key, "x", body, &sig, 0));
        assert!(!slack_signature_ok(
            key,
            "1531420618",
            body,
            "v1=00",
            1531420618
        ));
    }

    #[test]
    fn with_no_approvers_only_the_deployments_account_decides_from_a_terminal() {
        let mut r = Request {
            v: 1,
            id: "0".repeat(32),
            deployment: "arn:aws:ecs:us-west-2:123456789012:service-deployment/c/s/d".into(),
            subject: "s".into(),
            stage: "POST_TEST_TRAFFIC_SHIFT".into(),
            check: "go".into(),
            approvers: Vec::new(),
            requested_at_ms: 0,
            expires_at_ms: 1,
            on_timeout: "fail".into(),
            pause: None,
            region: None,
            account: Some("123456789012".into()),
        };
        assert!(iam_may_decide(&r, "arn:aws:iam::123456789012:user/alice"));
        assert!(!iam_may_decide(
            &r,
            "arn:aws:iam::210987654321:user/mallory"
        ));
        r.account = None;
        assert!(!iam_may_decide(&r, "arn:aws:iam::123456789012:user/alice"));
        r.approvers = vec!["arn:aws:iam::210987654321:user/partner".into()];
        assert!(iam_may_decide(&r, "arn:aws:iam::210987654321:user/partner"));
        assert!(!iam_may_decide(&r, "arn:aws:iam::123456789012:user/alice"));
    }

    #[test]
    fn the_deployment_is_found_in_resources_or_detail() {
        let a = "arn:aws:ecs:us-west-2:123456789012:service-deployment/shop/checkout/abc";
        assert_eq!(
            service_deployment_arn(&json!({"resources": [a]})).as_deref(),
            Some(a)
        );
        assert_eq!(
            service_deployment_arn(
                &json!({"resources": [], "detail": {"x": {"serviceDeploymentArn": a}}})
            )
            .as_deref(),
            Some(a)
        );
        assert_eq!(service_deployment_arn(&json!({"detail": {}})), None);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let r = Reply::page(400, "<t>", "a \"b\" <script>");
        assert!(r.body.contains("&lt;script&gt;") && !r.body.contains("<script>"));
        let resp = Reply::json(200, json!({})).into_response();
        assert_eq!(resp.status_code, 200);
        assert_eq!(resp.headers.get("cache-control").unwrap(), "no-store");
    }
}
