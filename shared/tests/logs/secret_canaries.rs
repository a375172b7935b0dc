//! No secret reaches an answer, a record, an error or a log when AWS answers with something
//! the SDK cannot read: a stand-in for Secrets Manager and SSM answers every read with a
//! cut-off or proxy-mangled body that carries a recognisable secret (a canary), and every
//! path that reads a secret (the function's configuration parameter, a notification
//! channel's URL, a migration's connection) is driven through the hook, with the
//! functions' own log subscriber at TRACE. The HTTP and AWS client libraries stay capped
//! at INFO whatever the level.

use crate::support;

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use greenlight::Role;
use greenlight::services::{BaseConfig, Services};
use serde_json::{Value, json};

use support::{deadline_in, event, sdk_config_for, serve};

const CANARY: &str = "CANARY-7f3e91";

/// How the stand-in mangles its answers.
#[derive(Clone, Copy, Debug)]
enum Mangle {
    /// HTTP 200 with the JSON cut off after the secret's value.
    Truncated,
    /// HTTP 502 with a proxy's HTML page that quotes the upstream answer.
    ProxyPage,
    /// HTTP 200 with the right JSON but a wrong content type and trailing garbage.
    Garbage,
}

async fn stand_in(mangle: Mangle) -> String {
    let router = Router::new().fallback(any(move |headers: HeaderMap, _body: Bytes| async move {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = if target.ends_with("GetSecretValue") {
            format!(
                r#"{{"ARN":"arn:aws:secretsmanager:us-west-2:123456789012:secret:greenlight/x","Name":"greenlight/x","SecretString":"{{\"url\":\"https://hooks.example/{CANARY}\",\"password\":\"{CANARY}\",\"host\":\"127.0.0.1\",\"port\":5432,\"username\":\"app\",\"dbname\":\"app\"}}","#
            )
        } else {
            format!(
                r#"{{"Parameter":{{"Name":"greenlight/config","Type":"SecureString","Value":"{{\"checks\":{{\"db\":{{\"password\":\"{CANARY}\"}}}}}}","#
            )
        };
        match mangle {
            Mangle::Truncated => (StatusCode::OK, body).into_response(),
            Mangle::ProxyPage => (
                StatusCode::BAD_GATEWAY,
                format!("<html><body><h1>502 Bad Gateway</h1><pre>{body}</pre></body></html>"),
            )
                .into_response(),
            Mangle::Garbage => (StatusCode::OK, format!("{body}}}<<{CANARY}>>")).into_response(),
        }
    }));
    format!("http://{}", serve(router).await)
}

/// Runs `f` with the functions' own log subscriber at TRACE; returns its value and the log.
fn with_trace_log<T>(f: impl AsyncFnOnce() -> T) -> (T, String) {
    support::with_function_log("trace", f)
}

async fn answer(services: &Services, role: Role, ev: &Value) -> String {
    match greenlight::handle(services, role, ev, deadline_in(Duration::from_secs(60))).await {
        Ok(v) => v.to_string(),
        Err(e) => e,
    }
}

async fn services(base: BaseConfig, endpoint: &str) -> Services {
    Services::new(Ok(base), Some(sdk_config_for(endpoint).await))
}

/// Three paths read a secret; each is driven against each way of mangling the answer.
async fn every_path(mangle: Mangle) -> Vec<String> {
    let endpoint = stand_in(mangle).await;
    let mut answers = Vec::new();

    // The function's configuration, from an SSM SecureString.
    let s = services(BaseConfig::Parameter("greenlight/config".into()), &endpoint).await;
    let a = answer(
        &s,
        Role::BeforeAllowTraffic,
        &event("ecs-test-traffic-shift.json"),
    )
    .await;
    assert!(a.contains("FAILED"), "{a}");
    assert!(
        a.contains("SSM parameter greenlight/config") && a.contains("could not be read"),
        "the reason names the parameter: {a}"
    );
    assert!(!a.contains("unknown error"), "{a}");
    answers.push(a);

    // A notification channel's URL, from Secrets Manager; the gate fails (no checks,
    // whenNoChecks: fail) so the channel is used.
    let config = json!({
        "whenNoChecks": "fail",
        "notifications": {"channels": {"oncall": {
            "type": "webhook",
            "url": {"secretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:greenlight/x", "jsonKey": "url"},
            "events": ["failed"]
        }}}
    });
    let s = services(BaseConfig::Inline(config.to_string()), &endpoint).await;
    let a = answer(
        &s,
        Role::BeforeAllowTraffic,
        &event("ecs-test-traffic-shift.json"),
    )
    .await;
    assert!(a.contains("FAILED") && a.contains("oncall"), "{a}");
    assert!(a.contains("\"delivered\":false"), "the channel failed: {a}");
    answers.push(a);

    // A migration's connection, from Secrets Manager.
    let dir = support::scratch_dir("secret-canaries");
    std::fs::write(dir.join("1_init.sql"), "CREATE TABLE t (id int);").unwrap();
    let config = json!({"checks": {"db": {
        "type": "postgresMigrations",
        "source": dir.to_string_lossy(),
        "connection": {"secret": {"secretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:greenlight/x"}}
    }}});
    let s = services(BaseConfig::Inline(config.to_string()), &endpoint).await;
    let a = answer(&s, Role::AfterInstall, &event("ecs-post-scale-up.json")).await;
    assert!(a.contains("FAILED"), "{a}");
    assert!(
        a.contains("GetSecretValue"),
        "the reason names the call: {a}"
    );
    answers.push(a);
    answers
}

#[test]
fn an_unreadable_aws_answer_carrying_a_secret_reaches_no_answer_and_no_log() {
    for mangle in [Mangle::Truncated, Mangle::ProxyPage, Mangle::Garbage] {
        let (answers, log) = with_trace_log(async || every_path(mangle).await);
        assert!(
            log.contains("decision"),
            "{mangle:?}: the decision records were not captured"
        );
        for a in &answers {
            assert!(
                !a.contains(CANARY),
                "{mangle:?}: the canary in an answer: {a}"
            );
        }
        for line in log.lines() {
            assert!(
                !line.contains(CANARY),
                "{mangle:?}: the canary in a log line: {line}"
            );
        }
    }
}

#[test]
fn the_client_libraries_stay_quiet_at_trace() {
    let (_, log) = with_trace_log(async || {
        let app = support::app(200, Duration::ZERO).await;
        let config =
            json!({"checks": {"health": {"type": "http", "url": format!("http://{app}/health")}}});
        let s = support::services_with(Some(&config.to_string()));
        tracing::trace!("trace is on");
        answer(
            &s,
            Role::BeforeAllowTraffic,
            &event("ecs-test-traffic-shift.json"),
        )
        .await
    });
    assert!(log.contains("SUCCEEDED"), "{log}");
    assert!(log.contains("trace is on"), "TRACE lines are logged: {log}");
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_default();
        let level = v["level"].as_str().unwrap_or_default();
        let target = v["target"].as_str().unwrap_or_default();
        if level == "DEBUG" || level == "TRACE" {
            assert!(
                !greenlight::logging::CAPPED
                    .iter()
                    .any(|p| target.starts_with(p)),
                "a client library logged at {level}: {line}"
            );
        }
    }
}
