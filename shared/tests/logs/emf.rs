//! The decisions as metrics: a function's decision log line carries CloudWatch Embedded
//! Metric Format at its root, with the documented namespace, dimensions and metrics, and
//! one more line per check type; text logs carry none.

use std::time::Duration;

use greenlight::Role;
use serde_json::{Value, json};

use crate::support::{self, app, deadline_in, event, services_with};

/// Runs the before-allow-traffic hook on the test-traffic event with `checks`; returns the
/// log's JSON lines.
fn run(checks: Value, json_log: bool) -> (Value, Vec<Value>, String) {
    let (answer, log) = support::with_function_log_as("info", json_log, async || {
        let healthy = app(200, Duration::ZERO).await;
        let failing = app(503, Duration::ZERO).await;
        let text = checks
            .to_string()
            .replace("HEALTHY", &format!("http://{healthy}/health"))
            .replace("FAILING", &format!("http://{failing}/health"));
        let s = services_with(Some(
            &json!({ "checks": serde_json::from_str::<Value>(&text).unwrap() }).to_string(),
        ));
        greenlight::handle(
            &s,
            Role::BeforeAllowTraffic,
            &event("ecs-test-traffic-shift.json"),
            deadline_in(Duration::from_secs(20)),
        )
        .await
        .unwrap()
    });
    let lines = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    (answer, lines, log)
}

fn metric_names(doc: &Value) -> Vec<String> {
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_decision_line_carries_the_verdict_metrics() {
    let checks = json!({
        "up": {"type": "http", "url": "HEALTHY", "interval": "100ms"},
        "down": {"type": "http", "url": "FAILING", "interval": "100ms", "failureLimit": 0},
    });
    let (answer, lines, log) = run(checks, true);
    assert_eq!(answer["hookStatus"], "FAILED", "{answer:#}");
    let decision = lines
        .iter()
        .find(|l| l["fields"]["decision"].is_string())
        .unwrap_or_else(|| panic!("no decision line: {log}"));
    let aws = &decision["_aws"];
    assert!(
        aws["Timestamp"].as_u64().unwrap() > 1_700_000_000_000,
        "{decision:#}"
    );
    let directive = &aws["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Greenlight");
    assert_eq!(
        directive["Dimensions"],
        json!([["Function", "Stage"], ["Function", "Stage", "Service"]])
    );
    assert_eq!(
        metric_names(decision),
        [
            "Succeeded",
            "Failed",
            "InProgress",
            "Rollback",
            "TimeToVerdict"
        ]
    );
    assert_eq!(decision["Function"], "before-allow-traffic");
    assert_eq!(decision["Stage"], "TEST_TRAFFIC_SHIFT");
    assert!(
        decision["Service"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && s != "unknown")
    );
    assert_eq!(
        (
            &decision["Succeeded"],
            &decision["Failed"],
            &decision["InProgress"],
            &decision["Rollback"]
        ),
        (&json!(0), &json!(1), &json!(0), &json!(0))
    );
    assert!(decision["TimeToVerdict"].as_u64().is_some(), "{decision:#}");
    // No deployment id is a dimension: the set of values stays bounded.
    let text = decision.to_string();
    assert!(!text.contains("\"DeploymentId\""));
    // The record itself is still where the queries read it.
    let record: Value =
        serde_json::from_str(decision["fields"]["decision"].as_str().unwrap()).unwrap();
    assert_eq!(record["verdict"], "FAILED");
    assert!(decision["fields"].get("emf").is_none(), "{decision:#}");

    let by_type: Vec<&Value> = lines
        .iter()
        .filter(|l| l["CheckType"].is_string())
        .collect();
    assert_eq!(by_type.len(), 1, "one line per check type: {log}");
    let http = by_type[0];
    assert_eq!(http["CheckType"], "http");
    assert_eq!(
        http["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Function", "CheckType"]])
    );
    assert_eq!(
        metric_names(http),
        [
            "CheckPassed",
            "CheckFailed",
            "CheckPending",
            "CheckErrors",
            "CheckUnobserved"
        ]
    );
    assert_eq!(
        (&http["CheckPassed"], &http["CheckFailed"]),
        (&json!(1), &json!(1)),
        "{http:#}"
    );
}

#[test]
fn a_pending_decision_counts_in_progress_without_a_time_to_verdict() {
    let checks =
        json!({"slow": {"type": "http", "url": "FAILING", "interval": "30s", "failureLimit": 5}});
    let (answer, lines, log) = run(checks, true);
    assert_eq!(answer["hookStatus"], "IN_PROGRESS", "{answer:#}");
    let decision = lines
        .iter()
        .find(|l| l["fields"]["decision"].is_string())
        .unwrap_or_else(|| panic!("no decision line: {log}"));
    assert_eq!(decision["InProgress"], 1);
    assert!(decision.get("TimeToVerdict").is_none());
    assert!(!metric_names(decision).contains(&"TimeToVerdict".to_string()));
}

#[test]
fn text_logs_carry_no_metrics() {
    let checks = json!({"up": {"type": "http", "url": "HEALTHY", "interval": "100ms"}});
    let (answer, _, log) = run(checks, false);
    assert_eq!(answer["hookStatus"], "SUCCEEDED", "{answer:#}");
    assert!(log.contains("before-allow-traffic SUCCEEDED"), "{log}");
    assert!(
        !log.contains("_aws") && !log.contains("CloudWatchMetrics"),
        "{log}"
    );
    assert!(!log.contains("check verdicts by type"), "{log}");
}
