//! The answer's exact shape, configuration errors, and the HTTP check driving the runtime
//! against real local servers.

use crate::support;

use std::time::Duration;

use greenlight::Role;
use greenlight::handle;
use greenlight::protocol::{EcsResponse, HookStatus};
use serde_json::{Map, Value, json};
use support::*;

#[test]
fn response_json_is_byte_for_byte_the_documented_shape() {
    let mut details = Map::new();
    details.insert("k".into(), json!(1));
    let ok = EcsResponse {
        hook_status: HookStatus::Succeeded,
        call_back_delay: None,
        hook_details: details.clone(),
    };
    assert_eq!(
        serde_json::to_string(&ok).unwrap(),
        r#"{"hookStatus":"SUCCEEDED","hookDetails":{"k":1}}"#
    );
    let wait = EcsResponse {
        hook_status: HookStatus::InProgress,
        call_back_delay: Some(30),
        hook_details: details.clone(),
    };
    assert_eq!(
        serde_json::to_string(&wait).unwrap(),
        r#"{"hookStatus":"IN_PROGRESS","callBackDelay":30,"hookDetails":{"k":1}}"#
    );
    let failed = EcsResponse {
        hook_status: HookStatus::Failed,
        call_back_delay: None,
        hook_details: Map::new(),
    };
    assert_eq!(
        serde_json::to_string(&failed).unwrap(),
        r#"{"hookStatus":"FAILED","hookDetails":{}}"#
    );
}

fn with_checks(mut ev: Value, greenlight: Value) -> Value {
    ev["hookDetails"] = json!({ "greenlight": greenlight, "owner": "team-a" });
    ev
}

async fn answer(role: Role, ev: &Value, secs: u64) -> Value {
    handle(
        &services_with(None),
        role,
        ev,
        deadline_in(Duration::from_secs(secs)),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn invalid_configurations_fail_closed_naming_the_field() {
    let base = event("ecs-test-traffic-shift.json");
    let cases = [
        (
            json!({"checks": {"h": {"type": "http"}}}),
            "hookDetails.greenlight at checks.h.url: is missing; set url (or urls)",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "ftp://x/"}}}),
            "at checks.h.url: uses \"ftp\"",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "not a url"}}}),
            "at checks.h.url: is not a valid URL",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "expectStatus": [700]}}}),
            "at checks.h.expectStatus[0]: invalid status 700",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "consecutiveSuccesses": 0}}}),
            "at checks.h.consecutiveSuccesses: must be at least 1",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "failureLimit": -1}}}),
            "at checks.h.failureLimit: invalid value: integer `-1`",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "onError": "ignore"}}}),
            "at checks.h.onError: unknown variant `ignore`",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "stages": ["TEST_TRAFIC_SHIFT"]}}}),
            "at checks.h.stages[0]: unknown stage \"TEST_TRAFIC_SHIFT\"",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "within": "0s"}}}),
            "at checks.h.within: must be longer than zero",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "interval": "500000000000y"}}}),
            "at checks.h.interval: duration \"500000000000y\" is longer than the maximum, 24h",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "interval": "99999999999h"}}}),
            "at checks.h.interval: duration \"99999999999h\" is longer than the maximum, 24h",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "within": "24h 1s"}}}),
            "at checks.h.within: duration \"24h 1s\" is longer than the maximum, 24h",
        ),
        (
            json!({"checks": {"c": {"type": "canary", "window": "500000000000y",
                "canary": {"metric": {"namespace": "A", "name": "L"}}, "baseline": {"metric": {"namespace": "A", "name": "L"}}}}}),
            "at checks.c.window: duration \"500000000000y\" is longer than the maximum, 24h",
        ),
        (
            json!({"codeDeployMaxWait": "500000000000y"}),
            "at codeDeployMaxWait: duration \"500000000000y\" is longer than the maximum, 24h",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "interval": "2h", "within": "5m"}}}),
            "at checks.h.interval: is 2h, longer than within (5m): the check could not be evaluated again before it gives up",
        ),
        (
            json!({"checks": {"c": {"type": "canary", "within": "30s",
                "canary": {"metric": {"namespace": "A", "name": "L"}}, "baseline": {"metric": {"namespace": "A", "name": "L"}}}}}),
            "at checks.c.within: is 30s, shorter than the canary check's default interval (1m)",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "method": "BREW"}}}),
            "at checks.h.method: \"BREW\" is not one of",
        ),
        (
            json!({"checks": {"h": {"type": "http", "url": "http://x/", "timeout": 5}}}),
            "at checks.h.timeout: invalid type: integer `5`, expected a duration string",
        ),
        (
            json!({"checks": {"h": {"type": "smoke"}}}),
            "at checks.h.type: unknown check type \"smoke\"; expected one of: http",
        ),
        (
            json!({"checks": {"h": {"url": "http://x/"}}}),
            "at checks.h.type: is missing",
        ),
        (
            json!({"checks": {"bad name!": {"type": "http", "url": "http://x/"}}}),
            "is not a valid check name",
        ),
        (
            json!({"checks": [{"type": "http"}]}),
            "at checks: is an array, expected an object",
        ),
        (
            json!({"chekcs": {}}),
            "at chekcs: unknown key; expected one of: checks, whenNoChecks",
        ),
        (
            json!({"whenNoChecks": "maybe"}),
            "at whenNoChecks: unknown variant `maybe`",
        ),
        (
            json!("checks"),
            "hookDetails.greenlight: is a string that does not hold a JSON object",
        ),
        (json!(42), "hookDetails.greenlight: is a number"),
    ];
    for (config, want) in cases {
        let a = answer(
            Role::BeforeAllowTraffic,
            &with_checks(base.clone(), config.clone()),
            5,
        )
        .await;
        assert_eq!(a["hookStatus"], "FAILED", "{config}");
        assert!(
            reason(&a).contains(want),
            "{config}: {:?} lacks {want:?}",
            reason(&a)
        );
        assert_eq!(
            a["hookDetails"]["owner"], "team-a",
            "other tools' keys are echoed back"
        );
    }
}

#[tokio::test]
async fn broken_function_environment_config_fails_closed() {
    use greenlight::services::BaseConfig;
    let ev = event("ecs-post-scale-up.json");
    let services = services_with_base(Ok(BaseConfig::Inline("{not json".into())));
    let a = handle(
        &services,
        Role::AfterInstall,
        &ev,
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("configuration error in GREENLIGHT_CONFIG: is not valid JSON"),
        "{}",
        reason(&a)
    );
    let services = services_with(Some(
        r#"{"checks": {"h": {"type": "http", "url": "http://x/", "interval": "1ms"}}}"#,
    ));
    let a = handle(
        &services,
        Role::AfterInstall,
        &ev,
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert!(
        reason(&a).contains("GREENLIGHT_CONFIG at checks.h.interval: must be at least 100ms"),
        "{}",
        reason(&a)
    );
    let both = BaseConfig::from_env_values(Some("{}".into()), Some("/p".into()));
    let services = services_with_base(both);
    let a = handle(
        &services,
        Role::AfterInstall,
        &ev,
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert!(
        reason(&a).contains("both GREENLIGHT_CONFIG and GREENLIGHT_CONFIG_PARAMETER are set"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn environment_defaults_and_hook_details_merge_per_service() {
    let healthy = app(200, Duration::ZERO).await;
    let broken = app(503, Duration::ZERO).await;
    // The function's environment defines the check; one service overrides its URL.
    let env = format!(
        r#"{{"checks": {{"health": {{"type": "http", "url": "http://{broken}/health", "interval": "100ms"}}}}}}"#
    );
    let services = services_with(Some(&env));
    let ev = event("ecs-test-traffic-shift.json");
    let a = handle(
        &services,
        Role::BeforeAllowTraffic,
        &ev,
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("answered 503 on 3 of 3 attempts; expected 200"),
        "{}",
        reason(&a)
    );
    let ev = with_checks(
        ev,
        json!({"checks": {"health": {"url": format!("http://{healthy}/health")}}}),
    );
    let a = handle(
        &services,
        Role::BeforeAllowTraffic,
        &ev,
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
}

#[tokio::test]
async fn http_check_polls_inside_the_invocation_until_healthy() {
    let addr = app_turning_healthy(503, Duration::from_millis(1500)).await;
    let ev = with_checks(
        event("ecs-test-traffic-shift.json"),
        json!({"checks": {"health": {"type": "http", "url": format!("http://{addr}/health"), "interval": "250ms", "failureLimit": 20}}}),
    );
    let a = answer(Role::BeforeAllowTraffic, &ev, 30).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    let check = &a["hookDetails"]["greenlightDecision"]["checks"][0];
    assert_eq!(check["verdict"], "pass");
    assert!(
        a["hookDetails"].get("greenlightState").is_none(),
        "no state once decided"
    );
}

#[tokio::test]
async fn http_check_answers_in_progress_and_resumes_with_the_carried_streak() {
    let addr = app_turning_healthy(503, Duration::from_secs(4)).await;
    let ev = with_checks(
        event("ecs-test-traffic-shift.json"),
        json!({"checks": {"health": {"type": "http", "url": format!("http://{addr}/health"), "interval": "500ms", "failureLimit": 50, "consecutiveSuccesses": 2}}}),
    );
    // A 2 s invocation cannot wait 4 s: IN_PROGRESS with the streak carried.
    let first = answer(Role::BeforeAllowTraffic, &ev, 2).await;
    assert_eq!(first["hookStatus"], "IN_PROGRESS", "{first:#}");
    assert!(first["callBackDelay"].as_u64().unwrap() >= 1);
    let state = &first["hookDetails"]["greenlightState"];
    assert!(state["checks"]["health"]["attempts"].as_u64().unwrap() >= 1);
    assert_eq!(
        first["hookDetails"]["greenlight"]["checks"]["health"]["type"], "http",
        "configuration is echoed back"
    );
    assert_eq!(first["hookDetails"]["owner"], "team-a");
    // ECS calls again with the hookDetails it got; after the app turned healthy, it passes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut again = ev.clone();
    again["hookDetails"] = first["hookDetails"].clone();
    let second = answer(Role::BeforeAllowTraffic, &again, 10).await;
    assert_eq!(second["hookStatus"], "SUCCEEDED", "{second:#}");
    assert!(
        second["hookDetails"]["greenlightDecision"]["invocation"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[tokio::test]
async fn a_hanging_server_is_a_counted_timeout_not_a_hang() {
    let addr = app(200, Duration::from_secs(600)).await;
    let ev = with_checks(
        event("ecs-test-traffic-shift.json"),
        json!({"checks": {"health": {"type": "http", "url": format!("http://{addr}/health"), "timeout": "200ms", "interval": "100ms"}}}),
    );
    let started = std::time::Instant::now();
    let a = answer(Role::BeforeAllowTraffic, &ev, 20).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("no answer within 200ms"),
        "{}",
        reason(&a)
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_check_cut_off_by_the_budget_fails_closed_before_the_deadline() {
    // Requests of up to 60 s, an invocation of 3 s: the budget ends the request.
    let addr = app(200, Duration::from_secs(600)).await;
    let ev = with_checks(
        event("ecs-test-traffic-shift.json"),
        json!({"checks": {"health": {"type": "http", "url": format!("http://{addr}/health"), "timeout": "60s"}}}),
    );
    let started = std::time::Instant::now();
    let a = answer(Role::BeforeAllowTraffic, &ev, 3).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered before the Lambda deadline"
    );
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("did not finish within the time left in this invocation"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn on_error_and_dry_run_policies() {
    // Connection refused to a closed port: a failure of the release (counted), not an error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let broken = app(500, Duration::ZERO).await;
    let ev = with_checks(
        event("ecs-test-traffic-shift.json"),
        json!({"checks": {
            "down": {"type": "http", "url": format!("http://{closed}/"), "interval": "100ms", "failureLimit": 0},
        }}),
    );
    let a = answer(Role::BeforeAllowTraffic, &ev, 10).await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(reason(&a).contains("connection refused"), "{}", reason(&a));
    let ev = with_checks(
        event("ecs-test-traffic-shift.json"),
        json!({"checks": {
            "shadow": {"type": "http", "url": format!("http://{broken}/health"), "interval": "100ms", "failureLimit": 0, "dryRun": true},
        }}),
    );
    let a = answer(Role::BeforeAllowTraffic, &ev, 10).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "a dry-run check never blocks");
    let c = &a["hookDetails"]["greenlightDecision"]["checks"][0];
    assert_eq!(
        (c["verdict"].as_str(), c["effect"].as_str()),
        (Some("fail"), Some("dryRun"))
    );
    assert!(
        reason(&a).contains("dry run, not blocking"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn checks_filtered_by_stage_and_none_left() {
    let broken = app(500, Duration::ZERO).await;
    let ev = with_checks(
        event("ecs-post-test-traffic-shift.json"),
        json!({"checks": {"h": {"type": "http", "url": format!("http://{broken}/health"), "stages": ["TEST_TRAFFIC_SHIFT"]}}}),
    );
    let a = answer(Role::BeforeAllowTraffic, &ev, 5).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    assert!(
        reason(&a)
            .contains("no checks configured for before-allow-traffic at POST_TEST_TRAFFIC_SHIFT"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn a_rollback_is_never_blocked_even_with_a_broken_configuration() {
    let ev = with_checks(
        event("ecs-rollback-test-traffic-shift.json"),
        json!({"checks": {"h": {"type": "nonsense"}}}),
    );
    let a = answer(Role::BeforeAllowTraffic, &ev, 5).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    assert!(reason(&a).contains("moving back to arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/4472057284928502176"), "{}", reason(&a));
}

#[tokio::test]
async fn state_from_another_deployment_is_ignored() {
    let broken = app(500, Duration::ZERO).await;
    let mut ev = with_checks(
        event("ecs-test-traffic-shift.json"),
        json!({"checks": {"h": {"type": "http", "url": format!("http://{broken}/health"), "failureLimit": 0}}}),
    );
    ev["hookDetails"]["greenlightState"] = json!({"v": 1, "deployment": "arn:other", "invocations": 3, "startedAtMs": 0,
        "checks": {"h": {"status": "passed", "firstAtMs": 0, "attempts": 1, "reason": "ok", "data": null}}});
    let a = answer(Role::BeforeAllowTraffic, &ev, 5).await;
    assert_eq!(
        a["hookStatus"], "FAILED",
        "a pass from another deployment must not carry over"
    );
    let notes = a["hookDetails"]["greenlightDecision"]["notes"].to_string();
    assert!(notes.contains("another deployment"), "{notes}");
}

#[test]
fn json_schema_is_current() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/greenlight.schema.json");
    let fresh = serde_json::to_string_pretty(&greenlight::config::json_schema()).unwrap() + "\n";
    if std::env::var_os("GREENLIGHT_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == fresh,
        "docs/greenlight.schema.json is stale: run `GREENLIGHT_UPDATE_SCHEMA=1 cargo test -p greenlight --test suite json_schema` and commit it"
    );
}

/// docs/generated/configuration-keys.md: every key of the configuration, from the JSON
/// Schema (regenerated with the schema: `GREENLIGHT_UPDATE_SCHEMA=1`).
#[test]
fn configuration_keys_page_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/generated/configuration-keys.md");
    let fresh = keys_markdown(&greenlight::config::json_schema());
    if std::env::var_os("GREENLIGHT_UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == fresh,
        "docs/generated/configuration-keys.md is stale: run `GREENLIGHT_UPDATE_SCHEMA=1 cargo test -p greenlight --test suite json_schema configuration_keys` and commit it"
    );
}

fn type_of(p: &Value) -> String {
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(c) = p.get("const") {
        return format!("`{c}`");
    }
    if let Some(e) = p.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
    }
    for k in ["oneOf", "anyOf"] {
        if let Some(v) = p.get(k).and_then(Value::as_array) {
            return v.iter().map(type_of).collect::<Vec<_>>().join(" or ");
        }
    }
    let base = match p.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    };
    match (base.as_str(), p.get("items"), p.get("additionalProperties")) {
        ("array", Some(items), _) => format!("array of {}", type_of(items)),
        ("object", _, Some(v @ Value::Object(_))) => format!("map of {}", type_of(v)),
        _ => base,
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn table(props: &serde_json::Map<String, Value>) -> String {
    let mut out =
        String::from("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n");
    for (k, p) in props {
        let default = p
            .get("default")
            .map(|d| format!("`{d}`"))
            .unwrap_or_default();
        let desc = p.get("description").and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!(
            "| `{k}` | {} | {} | {} |\n",
            cell(&type_of(p)),
            cell(&default),
            cell(desc)
        ));
    }
    out
}

fn keys_markdown(schema: &Value) -> String {
    let mut out = String::from(
        "<!-- Generated from the configuration's JSON Schema (docs/greenlight.schema.json) by shared/tests/suite/answers.rs; do not edit. -->\n\n## Top-level keys\n\n",
    );
    out.push_str(&table(schema["properties"].as_object().unwrap()));
    let defs = schema["$defs"].as_object().unwrap();
    for (name, def) in defs {
        out.push_str(&format!("\n## {name}\n\n"));
        if let Some(d) = def.get("description").and_then(Value::as_str) {
            out.push_str(&format!("{}\n\n", d.replace('\n', " ")));
        }
        if let Some(variants) = def
            .get("oneOf")
            .and_then(Value::as_array)
            .filter(|v| v.iter().all(|x| x.get("properties").is_some()))
        {
            for v in variants {
                let title = v.get("title").and_then(Value::as_str).unwrap_or("variant");
                out.push_str(&format!("### `{title}`\n\n"));
                if let Some(d) = v.get("description").and_then(Value::as_str) {
                    out.push_str(&format!("{}\n\n", d.replace('\n', " ")));
                }
                out.push_str(&table(v["properties"].as_object().unwrap()));
                out.push('\n');
            }
        } else if let Some(props) = def.get("properties").and_then(Value::as_object) {
            out.push_str(&table(props));
        } else {
            out.push_str(&format!("Type: {}\n", cell(&type_of(def))));
        }
    }
    out
}
