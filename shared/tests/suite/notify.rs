//! Notifications end to end: real local HTTP receivers capture what Slack, Teams and a
//! webhook would get; SNS, Secrets Manager and SSM run in the moto AWS emulator. Every
//! scenario uses recognisable secret values, and one test runs them all and scans every
//! log line, record, answer and error for those values.

use crate::support;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use support::*;

/// Recognisable secrets: the token in every webhook URL, the signing key, a header value.
const TOKEN: &str = "SECRET-TOKEN-6f1c";
const SIGNING_KEY: &str = "HMAC-KEY-93ab";
const HEADER_SECRET: &str = "BEARER-77e2";

const GREEN: &str =
    "arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/9386398427419951854";
const DEPLOYMENT: &str = "arn:aws:ecs:us-west-2:123456789012:service-deployment/shop-cluster/checkout/TFX5sH9q9XDboDTOv0rIt";

// ---------------------------------------------------------------- captured logs

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every test of this file logs, at TRACE and for every crate, into one buffer.
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------- receivers

#[derive(Clone, Debug)]
struct Captured {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Captured {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How a receiver answers one request.
#[derive(Clone, Debug)]
enum Answer {
    Status(u16),
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// After a delay.
    Slow(Duration),
    /// 500, with a body echoing the request's path and headers (as some proxies do).
    EchoError,
}

/// A local HTTP receiver: records every request, answers from `script` in order, then 200.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Captured>>>,
}

impl Receiver {
    async fn start(script: Vec<Answer>) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let (g, s) = (got.clone(), script.clone());
        let router = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                let headers: HashMap<String, String> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                g.lock().unwrap().push(Captured {
                    path: uri.path().to_string(),
                    headers: headers.clone(),
                    body: body.to_vec(),
                });
                let answer = {
                    let mut s = s.lock().unwrap();
                    if s.is_empty() {
                        Answer::Status(200)
                    } else {
                        s.remove(0)
                    }
                };
                match answer {
                    Answer::Status(code) => {
                        (StatusCode::from_u16(code).unwrap(), "ok").into_response()
                    }
                    Answer::TooMany => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response(),
                    Answer::Slow(d) => {
                        tokio::time::sleep(d).await;
                        (StatusCode::OK, "late").into_response()
                    }
                    Answer::EchoError => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot deliver to {} with {headers:?}", uri.path()),
                    )
                        .into_response(),
                }
            }
        });
        Receiver {
            addr: serve(router).await,
            got,
        }
    }

    /// A URL on this receiver whose path carries the secret token.
    fn url(&self, kind: &str) -> String {
        format!("http://{}/hooks/{TOKEN}/{kind}", self.addr)
    }

    fn got(&self) -> Vec<Captured> {
        self.got.lock().unwrap().clone()
    }

    /// The events received, from the bodies (any channel format).
    fn events(&self) -> Vec<String> {
        self.got()
            .iter()
            .map(|c| {
                let v = c.json();
                if let Some(e) = v["event"].as_str() {
                    e.to_string()
                } else if let Some(t) = v["text"].as_str() {
                    t.to_string()
                } else {
                    v["attachments"][0]["content"]["body"][0]["items"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                }
            })
            .collect()
    }
}

/// A loopback port with nothing listening.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------- helpers

fn ecs_event(file: &str, checks: Value) -> Value {
    let mut ev = event(file);
    ev["hookDetails"] = json!({"team": "payments", "greenlight": {"checks": checks}});
    ev
}

/// Services whose environment configuration holds `notifications` (as a deployed function's
/// GREENLIGHT_CONFIG would), with recorded ECS replies naming the target revision's image.
fn services(notifications: Value) -> Services {
    let config = json!({ "notifications": notifications }).to_string();
    let s = Services::new(Ok(BaseConfig::Inline(config)), None);
    s.set_ecs(revision_mock());
    s
}

fn revision_mock() -> aws_sdk_ecs::Client {
    let rule = mock!(aws_sdk_ecs::Client::describe_service_revisions)
        .sequence()
        .output(|| {
            aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput::builder()
                .service_revisions(
                    ecs::ServiceRevision::builder()
                        .service_revision_arn(GREEN)
                        .container_images(
                            ecs::ContainerImage::builder()
                                .container_name("web")
                                .image("123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:1.4.2")
                                .image_digest("sha256:aaaa")
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[&rule])
}

async fn answer(services: &Services, role: Role, ev: &Value, secs: u64) -> Value {
    handle(services, role, ev, deadline_in(Duration::from_secs(secs)))
        .await
        .unwrap()
}

fn decision(a: &Value) -> &Value {
    &a["hookDetails"]["greenlightDecision"]
}

fn reason(a: &Value) -> String {
    decision(a)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn notes(a: &Value) -> String {
    decision(a)["notes"].to_string()
}

fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&hex::decode(hex_sig).unwrap()).is_ok()
}

/// What a scenario produced, for the secret scan.
#[derive(Default)]
struct Outputs(Vec<String>);

impl Outputs {
    fn add(&mut self, v: impl ToString) {
        self.0.push(v.to_string());
    }
}

// ---------------------------------------------------------------- scenarios

/// A gate fails at TEST_TRAFFIC_SHIFT: Slack, Teams and a signed webhook each get one
/// `failed` notification with the service, the reasons and the links.
async fn scenario_failed_gate(out: &mut Outputs) {
    let slack = Receiver::start(vec![]).await;
    let teams = Receiver::start(vec![Answer::Status(202)]).await;
    let hook = Receiver::start(vec![]).await;
    let broken = app(503, Duration::ZERO).await;
    let s = services(json!({"channels": {
        "oncall": {"type": "slack", "url": slack.url("slack")},
        "team": {"type": "teams", "url": teams.url("teams")},
        "audit": {"type": "webhook", "url": hook.url("webhook"), "signingSecret": SIGNING_KEY, "headers": {"Authorization": format!("Bearer {HEADER_SECRET}"), "X-Team": "payments"}, "events": ["started", "failed", "rolledBack", "succeeded", "stagePassed"]}
    }}));
    let ev = ecs_event(
        "ecs-test-traffic-shift.json",
        json!({
            "health": {"type": "http", "url": format!("http://{broken}/health"), "failureLimit": 0},
            "version": {"type": "http", "url": format!("http://{broken}/health"), "expectStatus": [503], "timeout": "2s"}
        }),
    );
    let a = answer(&s, Role::BeforeAllowTraffic, &ev, 10).await;
    out.add(&a);
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let sent = decision(&a)["notifications"].as_array().unwrap().clone();
    assert_eq!(sent.len(), 3, "{a:#}");
    assert!(
        sent.iter()
            .all(|n| n["delivered"] == true && n["event"] == "failed"),
        "{a:#}"
    );

    // Slack: Block Kit, a header with the emoji, coloured details, reasons, links.
    let got = slack.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, format!("/hooks/{TOKEN}/slack"));
    let m = got[0].json();
    assert_eq!(m["blocks"][0]["type"], "header");
    assert_eq!(
        m["blocks"][0]["text"]["text"],
        "❌ checkout: gate failed at TEST_TRAFFIC_SHIFT"
    );
    assert_eq!(m["attachments"][0]["color"], "#D00000");
    let details = m["attachments"][0]["blocks"].to_string();
    for expected in [
        "*Service*\\ncheckout",
        "*Cluster*\\nshop-cluster",
        "*Stage*\\nTEST_TRAFFIC_SHIFT",
        "*Verdict*\\nFAILED",
        "*Revision*\\n9386398427419951854",
        "web: 123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:1.4.2",
        "*Duration*",
        "answered 503",
        "*Checks*\\n• *version* (",
        "aws ecs describe-service-deployments --service-deployment-arns arn:aws:ecs:us-west-2:123456789012:service-deployment/shop-cluster/checkout/TFX5sH9q9XDboDTOv0rIt --region us-west-2",
        "<https://us-west-2.console.aws.amazon.com/ecs/v2/clusters/shop-cluster/services/checkout/deployments?region=us-west-2|Deployment in the console>",
    ] {
        assert!(details.contains(expected), "{expected} not in {details}");
    }

    // Teams: an Adaptive Card in the Workflows envelope.
    let card = teams.got()[0].json();
    assert_eq!(card["type"], "message");
    assert_eq!(
        card["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let content = &card["attachments"][0]["content"];
    assert_eq!(content["type"], "AdaptiveCard");
    assert_eq!(content["version"], "1.4");
    assert_eq!(content["body"][0]["style"], "attention");
    let facts = content["body"][1]["facts"].to_string();
    assert!(
        facts.contains("{\"title\":\"Service\",\"value\":\"checkout\"}"),
        "{facts}"
    );
    assert!(content["body"].to_string().contains("answered 503"));
    assert_eq!(content["actions"][0]["type"], "Action.OpenUrl");

    // Webhook: the documented body, headers, and a signature the receiver can verify.
    let got = hook.got();
    assert_eq!(got.len(), 1);
    let w = &got[0];
    assert_eq!(w.headers["content-type"], "application/json");
    assert_eq!(w.headers["x-greenlight-event"], "failed");
    assert_eq!(
        w.headers["authorization"],
        format!("Bearer {HEADER_SECRET}")
    );
    assert_eq!(w.headers["x-team"], "payments");
    assert!(
        verify(SIGNING_KEY, &w.body, &w.headers["x-greenlight-signature"]),
        "signature does not verify"
    );
    assert!(!verify(
        "another key",
        &w.body,
        &w.headers["x-greenlight-signature"]
    ));
    let body = w.json();
    assert_eq!(
        w.headers["x-greenlight-delivery"],
        body["id"].as_str().unwrap()
    );
    assert_eq!(body["version"], 1);
    assert_eq!(body["event"], "failed");
    assert_eq!(body["verdict"], "FAILED");
    assert_eq!(body["function"], "before-allow-traffic");
    assert_eq!(body["stage"], "TEST_TRAFFIC_SHIFT");
    assert_eq!(body["deployment"]["service"], "checkout");
    assert_eq!(body["deployment"]["serviceDeploymentArn"], DEPLOYMENT);
    assert_eq!(body["deployment"]["images"][0]["digest"], "sha256:aaaa");
    assert_eq!(body["checks"][0]["name"], "health");
    assert_eq!(body["checks"][0]["effect"], "blocked");
    assert!(body["reason"].as_str().unwrap().contains("answered 503"));
    assert!(
        body["links"]["nextStep"]["command"]
            .as_str()
            .unwrap()
            .starts_with("aws ecs describe-service-deployments --service-deployment-arns ")
    );
    assert!(body["sentAt"].as_str().unwrap().ends_with('Z'));
}

/// ECS calls back on IN_PROGRESS: `started` goes out on the first invocation only, and
/// `stagePassed` once at the end, however often the hook is re-invoked (each time in a new
/// execution environment, so only the carried state can prevent a repeat).
async fn scenario_in_progress_once(out: &mut Outputs) {
    let slack = Receiver::start(vec![]).await;
    let hook = Receiver::start(vec![]).await;
    let config = json!({"channels": {
        "oncall": {"type": "slack", "url": slack.url("slack"), "events": ["started", "stagePassed", "failed"]},
        "audit": {"type": "webhook", "url": hook.url("webhook"), "signingSecret": SIGNING_KEY, "events": ["started", "stagePassed"]}
    }, "includeImages": false});
    let target = app_turning_healthy(503, Duration::from_millis(2500)).await;
    let mut ev = ecs_event(
        "ecs-pre-scale-up.json",
        json!({"health": {"type": "http", "url": format!("http://{target}/health"), "interval": "200ms", "failureLimit": 100}}),
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let a = answer(&services(config.clone()), Role::BeforeInstall, &ev, 2).await;
        out.add(&a);
        statuses.push(a["hookStatus"].as_str().unwrap().to_string());
        if a["hookStatus"] != "IN_PROGRESS" {
            assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
            break;
        }
        // What was sent travels in the state ECS hands back.
        let notified = &a["hookDetails"]["greenlightState"]["notified"];
        assert_eq!(
            *notified,
            json!(["started:oncall", "started:audit"]),
            "{a:#}"
        );
        ev["hookDetails"] = a["hookDetails"].clone();
    }
    assert!(statuses.len() >= 2, "{statuses:?}");
    assert_eq!(statuses[0], "IN_PROGRESS");
    let events = hook.events();
    assert_eq!(events, ["started", "stagePassed"], "{statuses:?}");
    let slack_events = slack.events();
    assert_eq!(slack_events.len(), 2, "{slack_events:?}");
    assert!(slack_events[0].starts_with("🚀 checkout: deployment started"));
    assert!(slack_events[1].starts_with("☑️ checkout: PRE_SCALE_UP passed"));
    // The started notification of a waiting gate says how to roll back instead.
    let first = hook.got()[0].json();
    assert_eq!(first["verdict"], "IN_PROGRESS");
    assert_eq!(
        first["links"]["nextStep"]["command"],
        format!(
            "aws ecs stop-service-deployment --service-deployment-arn {DEPLOYMENT} --stop-type ROLLBACK --region us-west-2"
        )
    );
    // The id is stable per event and deployment: receivers can deduplicate on it.
    let again = ecs_event("ecs-pre-scale-up.json", json!({}));
    let fresh = Receiver::start(vec![]).await;
    let s = services(
        json!({"channels": {"audit": {"type": "webhook", "url": fresh.url("webhook"), "events": ["started"]}}, "includeImages": false}),
    );
    out.add(answer(&s, Role::BeforeInstall, &again, 5).await);
    assert_eq!(fresh.got()[0].json()["id"], first["id"]);
}

/// A receiver that is down, slow, or answers 500 changes nothing in the verdict; the record
/// names each failed delivery by channel. A 429 is retried after its Retry-After.
async fn scenario_receivers_failing(out: &mut Outputs) {
    let ok = Receiver::start(vec![]).await;
    let slow = Receiver::start(vec![Answer::Slow(Duration::from_secs(5))]).await;
    let broken = Receiver::start(vec![Answer::Status(500); 10]).await;
    let busy = Receiver::start(vec![Answer::TooMany]).await;
    let echo = Receiver::start(vec![Answer::EchoError]).await;
    let down = closed_port();
    let all = [
        "started",
        "failed",
        "rolledBack",
        "succeeded",
        "stagePassed",
    ];
    let s = services(json!({"channels": {
        "ok": {"type": "slack", "url": ok.url("slack"), "events": all},
        "down": {"type": "webhook", "url": format!("http://{down}/hooks/{TOKEN}"), "events": all, "retries": 1},
        "slow": {"type": "teams", "url": slow.url("teams"), "events": all, "timeout": "500ms"},
        "broken": {"type": "webhook", "url": broken.url("webhook"), "events": all},
        "busy": {"type": "webhook", "url": busy.url("webhook"), "events": all},
        "echo": {"type": "webhook", "url": echo.url("webhook"), "events": all, "retries": 0, "headers": {"Authorization": HEADER_SECRET}, "signingSecret": SIGNING_KEY}
    }, "includeImages": false}));
    let started = std::time::Instant::now();
    let a = answer(
        &s,
        Role::BeforeAllowTraffic,
        &ecs_event("ecs-test-traffic-shift.json", json!({})),
        15,
    )
    .await;
    out.add(&a);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(
        reason(&a).starts_with("no checks configured"),
        "{}",
        reason(&a)
    );
    let n = notes(&a);
    for expected in [
        "notification stagePassed to down (webhook) failed: connection refused or unreachable (after 2 attempts)",
        "notification stagePassed to slow (teams) failed: no answer within 500ms",
        "notification stagePassed to broken (webhook) failed: answered 500: ok (after 3 attempts)",
        "notification stagePassed to echo (webhook) failed: answered 500: cannot deliver to <redacted>",
    ] {
        assert!(n.contains(expected), "{expected} not in {n}");
    }
    assert!(!n.contains(TOKEN) && !n.contains(HEADER_SECRET), "{n}");
    assert_eq!(ok.got().len(), 1);
    assert_eq!(broken.got().len(), 3);
    assert_eq!(busy.got().len(), 2);
    let sent = decision(&a)["notifications"].as_array().unwrap().clone();
    let delivered: Vec<&str> = sent
        .iter()
        .filter(|n| n["delivered"] == true)
        .map(|n| n["channel"].as_str().unwrap())
        .collect();
    assert_eq!(delivered, ["ok", "busy"], "{sent:#?}");
}

/// A `required` channel that cannot deliver fails the hook, naming the channel; the other
/// channels hear of the failure, not of a success. A rollback is never blocked.
async fn scenario_required(out: &mut Outputs) {
    let pager = Receiver::start(vec![Answer::Status(500); 10]).await;
    let chat = Receiver::start(vec![]).await;
    let config = json!({"channels": {
        "pager": {"type": "webhook", "url": pager.url("webhook"), "required": true, "retries": 0, "events": ["failed", "stagePassed", "rolledBack"]},
        "chat": {"type": "slack", "url": chat.url("slack"), "events": ["failed", "stagePassed", "rolledBack"]}
    }, "includeImages": false});
    let a = answer(
        &services(config.clone()),
        Role::BeforeAllowTraffic,
        &ecs_event("ecs-test-traffic-shift.json", json!({})),
        10,
    )
    .await;
    out.add(&a);
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.starts_with("notification channel pager (webhook) is required and could not deliver the stagePassed notification: answered 500"),
        "{r}"
    );
    assert!(
        r.contains("the checks alone answered SUCCEEDED (no checks configured"),
        "{r}"
    );
    assert!(!r.contains(TOKEN), "{r}");
    assert_eq!(pager.got().len(), 1);
    let chat_events = chat.events();
    assert_eq!(chat_events.len(), 1, "{chat_events:?}");
    assert!(
        chat_events[0].starts_with("❌ checkout: gate failed"),
        "{chat_events:?}"
    );

    // During a rollback the same failure changes nothing.
    let a = answer(
        &services(config),
        Role::BeforeAllowTraffic,
        &event("ecs-rollback-test-traffic-shift.json"),
        10,
    )
    .await;
    out.add(&a);
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(reason(&a).contains("(rollback)"));
    let chat_events = chat.events();
    assert_eq!(chat_events.len(), 2, "{chat_events:?}");
    assert!(
        chat_events[1].starts_with("↩️ checkout: rolling back, test traffic moving back"),
        "{chat_events:?}"
    );
    assert!(notes(&a).contains("notification rolledBack to pager (webhook) failed"));
}

/// ECS re-invokes both traffic-shift hooks when it rolls back; one process announces the
/// rollback once, and every rollback notice carries the same id.
async fn scenario_rollback_once(out: &mut Outputs) {
    let hook = Receiver::start(vec![]).await;
    let s = services(
        json!({"channels": {"audit": {"type": "webhook", "url": hook.url("webhook")}}, "includeImages": false}),
    );
    let test = event("ecs-rollback-test-traffic-shift.json");
    let production = event("ecs-rollback-production-traffic-shift.json");
    out.add(answer(&s, Role::BeforeAllowTraffic, &test, 5).await);
    out.add(answer(&s, Role::BeforeAllowTraffic, &production, 5).await);
    assert_eq!(hook.events(), ["rolledBack"]);
    let other = Receiver::start(vec![]).await;
    let s2 = services(
        json!({"channels": {"audit": {"type": "webhook", "url": other.url("webhook")}}, "includeImages": false}),
    );
    out.add(answer(&s2, Role::AfterAllowTraffic, &production, 5).await);
    let first = hook.got()[0].json();
    let second = other.got()[0].json();
    assert_eq!(first["id"], second["id"]);
    assert!(
        second["title"]
            .as_str()
            .unwrap()
            .contains("production traffic moving back")
    );
}

/// CodeDeploy: the notification goes out before the report; a retry of the same
/// invocation in the same process does not send it again.
async fn scenario_codedeploy(out: &mut Outputs) {
    let hook = Receiver::start(vec![]).await;
    let attempts = greenlight::services::aws_retry().max_attempts() as usize;
    let cd = FakeCodeDeploy::start(vec![
        support::Reply::Error("InternalFailure", 500);
        attempts
    ])
    .await;
    let config = json!({
        "notifications": {"channels": {"audit": {"type": "webhook", "url": hook.url("webhook"), "signingSecret": SIGNING_KEY}}}
    });
    let s = cd.services(Some(&config.to_string())).await;
    // The report fails (a 500 to every attempt the SDK makes): the invocation ends in an
    // error, and Lambda retries it.
    let err = handle(
        &s,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap_err();
    out.add(&err);
    assert!(err.contains("could not report Succeeded"), "{err}");
    let retry = handle(
        &s,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    out.add(&retry);
    assert_eq!(retry["reported"], "Succeeded");
    assert_eq!(hook.events(), ["succeeded"]);
    let body = hook.got()[0].json();
    assert_eq!(body["deployment"]["codedeployDeploymentId"], "d-ABCDEF123");
    assert_eq!(body["stage"], "AfterAllowTraffic");
    assert_eq!(body["verdict"], "Succeeded");

    // A failing gate in the first hook: `started` and `failed`, with the CLI command.
    let broken = app(503, Duration::ZERO).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let config = json!({
        "checks": {"h": {"type": "http", "url": format!("http://{broken}/health"), "failureLimit": 0}},
        "notifications": {"channels": {"audit": {"type": "webhook", "url": hook.url("webhook")}}}
    });
    let s = cd.services(Some(&config.to_string())).await;
    let done = handle(
        &s,
        Role::BeforeInstall,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    out.add(&done);
    assert_eq!(done["reported"], "Failed");
    assert_eq!(hook.events(), ["succeeded", "started", "failed"]);
    let failed = hook.got()[2].json();
    assert_eq!(failed["verdict"], "Failed");
    assert!(
        failed["links"]["nextStep"]["command"]
            .as_str()
            .unwrap()
            .starts_with("aws deploy get-deployment --deployment-id d-ABCDEF123")
    );
}

const SEED_SECRETS: &str = r#"
import sys
slack_url, webhook_url, signing = sys.argv[1], sys.argv[2], sys.argv[3]
sm = boto3.client('secretsmanager', **KW); ssm = boto3.client('ssm', **KW)
sns = boto3.client('sns', **KW); sqs = boto3.client('sqs', **KW)
secret = sm.create_secret(Name='greenlight/notify', SecretString=json.dumps({'slack': slack_url, 'signing': signing}))['ARN']
ssm.put_parameter(Name='/greenlight/webhook-url', Value=webhook_url, Type='SecureString')
topic = sns.create_topic(Name='deployments')['TopicArn']
queue = sqs.create_queue(QueueName='deployments')['QueueUrl']
queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=['QueueArn'])['Attributes']['QueueArn']
sns.subscribe(TopicArn=topic, Protocol='sqs', Endpoint=queue_arn)
print(json.dumps({'secret': secret, 'topic': topic, 'queue': queue}))
"#;

const READ_QUEUE: &str = r#"
import sys
sqs = boto3.client('sqs', **KW)
out = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, WaitTimeSeconds=2)
print(json.dumps([json.loads(m['Body']) for m in out.get('Messages', [])]))
"#;

const FORGET_SECRETS: &str = r#"
import sys
boto3.client('secretsmanager', **KW).delete_secret(SecretId=sys.argv[1], ForceDeleteWithoutRecovery=True)
boto3.client('ssm', **KW).delete_parameter(Name='/greenlight/webhook-url')
print('null')
"#;

/// Runs `script` with arguments (the seed helper takes none).
fn moto_run(moto: &Moto, script: &str, args: &[&str]) -> Value {
    let quoted: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    moto.seed(&format!(
        "import sys\nsys.argv = ['seed', {}]\n{script}",
        quoted.join(", ")
    ))
}

/// Secrets from moto's Secrets Manager (a JSON key) and SSM (a SecureString), read once per
/// process; SNS publishes to a topic whose SQS subscription gets the message and its
/// attributes.
async fn scenario_secrets_and_sns(out: &mut Outputs) {
    let moto = Moto::start();
    let slack = Receiver::start(vec![]).await;
    let hook = Receiver::start(vec![]).await;
    let seeded = moto_run(
        &moto,
        SEED_SECRETS,
        &[&slack.url("slack"), &hook.url("webhook"), SIGNING_KEY],
    );
    let (secret, topic, queue) = (
        seeded["secret"].as_str().unwrap(),
        seeded["topic"].as_str().unwrap(),
        seeded["queue"].as_str().unwrap(),
    );
    let config = json!({"notifications": {"channels": {
        "oncall": {"type": "slack", "url": {"secretArn": secret, "jsonKey": "slack"}},
        "audit": {"type": "webhook", "url": {"ssmParameter": "/greenlight/webhook-url"}, "signingSecret": {"secretArn": secret, "jsonKey": "signing"}},
        "bus": {"type": "sns", "topicArn": topic, "events": ["started", "failed"]}
    }}});
    let s = Services::new(
        Ok(BaseConfig::Inline(config.to_string())),
        Some(sdk_config_for(&moto.endpoint).await),
    );
    s.set_ecs(revision_mock());
    let broken = app(503, Duration::ZERO).await;
    let a = answer(
        &s,
        Role::BeforeAllowTraffic,
        &ecs_event(
            "ecs-test-traffic-shift.json",
            json!({"health": {"type": "http", "url": format!("http://{broken}/health"), "failureLimit": 0}}),
        ),
        15,
    )
    .await;
    out.add(&a);
    assert_eq!(a["hookStatus"], "FAILED");
    let sent = decision(&a)["notifications"].to_string();
    assert!(!sent.contains("\"delivered\":false"), "{a:#}");
    assert_eq!(slack.got().len(), 1);
    assert_eq!(slack.got()[0].path, format!("/hooks/{TOKEN}/slack"));
    let w = &hook.got()[0];
    assert!(verify(
        SIGNING_KEY,
        &w.body,
        &w.headers["x-greenlight-signature"]
    ));

    let messages = moto_run(&moto, READ_QUEUE, &[queue]);
    let messages = messages.as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let m = &messages[0];
    assert_eq!(
        m["Subject"],
        "Greenlight: checkout: gate failed at TEST_TRAFFIC_SHIFT"
    );
    let attributes = &m["MessageAttributes"];
    assert_eq!(attributes["service"]["Value"], "checkout");
    assert_eq!(attributes["stage"]["Value"], "TEST_TRAFFIC_SHIFT");
    assert_eq!(attributes["verdict"]["Value"], "FAILED");
    assert_eq!(attributes["event"]["Value"], "failed");
    assert_eq!(attributes["service"]["Type"], "String");
    let body: Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body["event"], "failed");
    assert_eq!(body["deployment"]["cluster"], "shop-cluster");

    // Cached for the life of the process: gone from AWS, still known here.
    moto_run(&moto, FORGET_SECRETS, &[secret]);
    let a = answer(
        &s,
        Role::BeforeInstall,
        &ecs_event("ecs-pre-scale-up.json", json!({})),
        10,
    )
    .await;
    out.add(&a);
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    assert_eq!(slack.got().len(), 2);
    assert_eq!(hook.got().len(), 2);
    assert!(!notes(&a).contains("failed"), "{}", notes(&a));
    let messages = moto_run(&moto, READ_QUEUE, &[queue]);
    assert_eq!(
        messages[0]["MessageAttributes"]["event"]["Value"],
        "started"
    );

    // A fresh process cannot read them any more, and says where from, not what.
    let s = Services::new(
        Ok(BaseConfig::Inline(config.to_string())),
        Some(sdk_config_for(&moto.endpoint).await),
    );
    s.set_ecs(revision_mock());
    let a = answer(
        &s,
        Role::BeforeInstall,
        &ecs_event("ecs-pre-scale-up.json", json!({})),
        10,
    )
    .await;
    out.add(&a);
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    let n = notes(&a);
    assert!(
        n.contains(&format!(
            "notification started to oncall (slack) failed: could not read its url: Secrets Manager GetSecretValue of {secret} failed: ResourceNotFoundException"
        )),
        "{n}"
    );
    assert!(
        n.contains("notification started to audit (webhook) failed: could not read its url: SSM GetParameter of /greenlight/webhook-url failed: ParameterNotFound"),
        "{n}"
    );
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_failed_gate_reaches_slack_teams_and_a_signed_webhook_once_each() {
    capture_logs();
    scenario_failed_gate(&mut Outputs::default()).await;
}

#[tokio::test]
async fn repeated_in_progress_invocations_send_each_event_once() {
    capture_logs();
    scenario_in_progress_once(&mut Outputs::default()).await;
}

#[tokio::test]
async fn receivers_down_slow_or_failing_change_nothing_in_the_verdict() {
    capture_logs();
    scenario_receivers_failing(&mut Outputs::default()).await;
}

#[tokio::test]
async fn a_required_channel_fails_the_hook_but_never_a_rollback() {
    capture_logs();
    scenario_required(&mut Outputs::default()).await;
}

#[tokio::test]
async fn a_rollback_is_announced_once_per_process_with_one_id() {
    capture_logs();
    scenario_rollback_once(&mut Outputs::default()).await;
}

#[tokio::test]
async fn codedeploy_notifies_before_reporting_and_not_again_on_a_retry() {
    capture_logs();
    scenario_codedeploy(&mut Outputs::default()).await;
}

#[tokio::test]
async fn secrets_from_secrets_manager_and_ssm_and_sns_through_moto() {
    capture_logs();
    scenario_secrets_and_sns(&mut Outputs::default()).await;
}

#[tokio::test]
async fn an_invalid_notification_setting_fails_closed_without_repeating_a_secret() {
    capture_logs();
    let s = services(
        json!({"channels": {"oncall": {"type": "slack", "url": format!("htp://hooks.example/{TOKEN}")}}}),
    );
    let a = answer(
        &s,
        Role::BeforeAllowTraffic,
        &ecs_event("ecs-test-traffic-shift.json", json!({})),
        5,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert_eq!(
        reason(&a),
        "configuration error in GREENLIGHT_CONFIG at notifications.channels.oncall.url: uses \"htp\"; expected an http or https URL"
    );
    // Per service, through hookDetails: a channel turned off, another's events narrowed.
    let hook = Receiver::start(vec![]).await;
    let s = services(json!({"channels": {
        "a": {"type": "webhook", "url": hook.url("a")},
        "b": {"type": "webhook", "url": hook.url("b"), "events": ["started", "stagePassed"]}
    }, "includeImages": false}));
    let mut ev = ecs_event("ecs-pre-scale-up.json", json!({}));
    ev["hookDetails"]["greenlight"]["notifications"] =
        json!({"channels": {"a": {"enabled": false}, "b": {"events": ["stagePassed"]}}});
    let a = answer(&s, Role::BeforeInstall, &ev, 5).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    let paths: Vec<String> = hook.got().iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths, [format!("/hooks/{TOKEN}/b")]);
    assert_eq!(hook.events(), ["stagePassed"]);
}

/// Runs every scenario with the recognisable secrets, then scans every captured log line
/// (TRACE, every crate), decision record, answer and error for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_a_record_an_answer_or_an_error() {
    capture_logs();
    let mut out = Outputs::default();
    scenario_failed_gate(&mut out).await;
    scenario_in_progress_once(&mut out).await;
    scenario_receivers_failing(&mut out).await;
    scenario_required(&mut out).await;
    scenario_rollback_once(&mut out).await;
    scenario_codedeploy(&mut out).await;
    scenario_secrets_and_sns(&mut out).await;
    let logs = logs();
    assert!(
        logs.contains("decision="),
        "the decision records were not captured"
    );
    assert!(logs.contains("notified oncall (slack) of failed"));
    // The HTTP and AWS stacks' own TRACE lines are in the scan too.
    assert!(
        logs.contains("TRACE hyper_util::client"),
        "hyper's logs were not captured"
    );
    assert!(
        logs.contains("Secrets Manager.GetSecretValue"),
        "the SDK's logs were not captured"
    );
    for secret in [TOKEN, SIGNING_KEY, HEADER_SECRET] {
        for line in logs.lines() {
            assert!(!line.contains(secret), "{secret} in a log line: {line}");
        }
        for o in &out.0 {
            assert!(!o.contains(secret), "{secret} in an answer or error: {o}");
        }
    }
}

/// A check that read the target revision shares it with the notification: one
/// DescribeServiceRevisions call per invocation, and the images still reach the receiver.
#[tokio::test]
async fn notifications_reuse_the_revision_the_checks_read() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let hook = Receiver::start(vec![]).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let revisions = mock!(aws_sdk_ecs::Client::describe_service_revisions)
        .match_requests(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            true
        })
        .sequence()
        .output(|| {
            aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput::builder()
                .service_revisions(
                    ecs::ServiceRevision::builder()
                        .service_revision_arn(GREEN)
                        .task_definition("arn:aws:ecs:us-west-2:123456789012:task-definition/checkout:42")
                        .container_images(
                            ecs::ContainerImage::builder()
                                .container_name("web")
                                .image("123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:1.4.2")
                                .image_digest("sha256:aaaa")
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let task_definition = mock!(aws_sdk_ecs::Client::describe_task_definition)
        .sequence()
        .output(|| {
            aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput::builder(
            )
            .task_definition(
                ecs::TaskDefinition::builder()
                    .container_definitions(
                        ecs::ContainerDefinition::builder()
                            .name("web")
                            .image("123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:1.4.2")
                            .build(),
                    )
                    .build(),
            )
            .build()
        })
        .repeatedly()
        .build();
    let s2 = Services::new(
        Ok(BaseConfig::Inline(
            json!({"notifications": {"channels": {"audit": {"type": "webhook",
        "url": hook.url("webhook"), "events": ["started", "stagePassed"]}}}})
            .to_string(),
        )),
        None,
    );
    s2.set_ecs(mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        &[&revisions, &task_definition]
    ));
    let ev = ecs_event(
        "ecs-pre-scale-up.json",
        json!({"admit": {"type": "imageAdmission"}}),
    );
    let a = answer(&s2, Role::BeforeInstall, &ev, 10).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the notification reused the checks' look-up"
    );
    let bodies: Vec<String> = hook
        .got()
        .iter()
        .map(|c| String::from_utf8_lossy(&c.body).into_owned())
        .collect();
    assert!(!bodies.is_empty());
    assert!(
        bodies.iter().all(|b| b.contains("checkout:1.4.2")),
        "{bodies:?}"
    );
}

/// A receiver that fails with an endless body: only its start is read (4 KiB at most),
/// and the error shows it. (Reading it whole used to run into the one-second cap on each
/// attempt, holding what had arrived, and show nothing.)
#[tokio::test]
async fn an_endless_error_body_is_read_no_further_than_its_start() {
    use futures::StreamExt;
    let endless = serve(Router::new().fallback(|| async {
        let head = futures::stream::once(async { Bytes::from_static(b"upstream failed: ") });
        let rest = futures::stream::repeat(Bytes::from(vec![b'x'; 64 << 10]));
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::body::Body::from_stream(head.chain(rest).map(Ok::<_, std::io::Error>)),
        )
    }))
    .await;
    let s = services(json!({"channels": {
        "hook": {"type": "webhook", "url": format!("http://{endless}/hooks/{TOKEN}"), "events": ["stagePassed"], "retries": 1, "timeout": "5s"}
    }, "includeImages": false}));
    let a = answer(
        &s,
        Role::BeforeAllowTraffic,
        &ecs_event("ecs-test-traffic-shift.json", json!({})),
        30,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    let n = notes(&a);
    let excerpt = format!("answered 500: upstream failed: {}", "x".repeat(183));
    assert!(n.contains(&format!("{excerpt} (after 2 attempts)")), "{n}");
}
