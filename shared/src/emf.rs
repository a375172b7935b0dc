//! The gates' decisions as CloudWatch metrics, without one API call: CloudWatch Embedded
//! Metric Format (EMF) documents carried in the log.
//!
//! * The decision record's log line carries, at its root, `_aws` and the values of
//!   `Succeeded`, `Failed`, `InProgress`, `Rollback` (counts) and, on a final verdict,
//!   `TimeToVerdict` (milliseconds since the step's first evaluation), by `Function` and
//!   `Stage`, and by `Function`, `Stage` and `Service`.
//! * One further line per check type evaluated: `CheckPassed`, `CheckFailed`,
//!   `CheckPending`, `CheckErrors`, `CheckUnobserved`, by `Function` and `CheckType`.
//!
//! Dimensions are bounded by the functions, stages, services and check types: no
//! deployment ids. The namespace is `GREENLIGHT_METRICS_NAMESPACE` (default `Greenlight`);
//! `GREENLIGHT_METRICS=off` turns the metrics off. CloudWatch reads EMF from JSON log lines
//! only: with Lambda's text log format the documents are left out.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::deployment::Protocol;
use crate::duration::now_ms;
use crate::record::DecisionRecord;
use crate::verdict::HookStatus;

/// Environment variable naming the metrics' namespace.
pub const ENV_NAMESPACE: &str = "GREENLIGHT_METRICS_NAMESPACE";
/// Environment variable that turns the metrics off with `off`.
pub const ENV_SWITCH: &str = "GREENLIGHT_METRICS";
/// The namespace when none is set.
pub const DEFAULT_NAMESPACE: &str = "Greenlight";

/// The metrics' namespace, or `None` when they are off.
pub fn namespace() -> Option<String> {
    let off = std::env::var(ENV_SWITCH).is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"));
    if off {
        return None;
    }
    let ns = std::env::var(ENV_NAMESPACE).unwrap_or_default();
    let ns = ns.trim();
    Some(if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }.to_string())
}

/// The `Stage` dimension: the ECS lifecycle stage, or the CodeDeploy hook this function
/// serves (the one running, when discovery tells).
pub fn stage(record: &DecisionRecord) -> String {
    let Some(d) = &record.deployment else {
        return "unknown".into();
    };
    if let Some(stage) = &d.stage {
        return stage.as_str().to_string();
    }
    let hooks = d.role.codedeploy_hooks();
    let running = d.codedeploy.as_ref().and_then(|c| {
        c.lifecycle_events
            .iter()
            .find(|(name, status)| hooks.contains(&name.as_str()) && status == "InProgress")
            .map(|(name, _)| name.clone())
    });
    running.unwrap_or_else(|| hooks.last().copied().unwrap_or_default().to_string())
}

/// The `Service` dimension: the ECS service, or CodeDeploy's `application/deploymentGroup`.
pub fn service(record: &DecisionRecord) -> String {
    let Some(d) = &record.deployment else {
        return "unknown".into();
    };
    let named = match d.protocol {
        Protocol::Ecs => d.service.clone(),
        Protocol::CodeDeploy => d.codedeploy.as_ref().map(|c| c.group_key()),
    };
    named.unwrap_or_else(|| "unknown".into())
}

fn directive(namespace: &str, dimensions: Value, metrics: &[(&str, &str)]) -> Value {
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    json!({
        "Timestamp": now_ms(),
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": dimensions,
            "Metrics": metrics,
        }]
    })
}

/// The EMF members of the decision record's line: `_aws`, the dimensions and the values.
/// `started_at_ms`: when the step's first evaluation was (the carried state's start).
pub fn decision(
    namespace: &str,
    record: &DecisionRecord,
    started_at_ms: Option<u64>,
) -> Map<String, Value> {
    let status = record.status();
    let flag = |s: HookStatus| u8::from(status == s);
    let rollback = record.deployment.as_ref().is_some_and(|d| d.rolling_back());
    let mut metrics = vec![
        ("Succeeded", "Count"),
        ("Failed", "Count"),
        ("InProgress", "Count"),
        ("Rollback", "Count"),
    ];
    let mut out = Map::new();
    if status != HookStatus::InProgress {
        let elapsed = started_at_ms
            .map(|t| now_ms().saturating_sub(t))
            .unwrap_or(record.elapsed_ms);
        metrics.push(("TimeToVerdict", "Milliseconds"));
        out.insert("TimeToVerdict".into(), json!(elapsed));
    }
    let dimensions = json!([["Function", "Stage"], ["Function", "Stage", "Service"]]);
    out.insert("_aws".into(), directive(namespace, dimensions, &metrics));
    out.insert("Function".into(), json!(record.function));
    out.insert("Stage".into(), json!(stage(record)));
    out.insert("Service".into(), json!(service(record)));
    out.insert("Succeeded".into(), json!(flag(HookStatus::Succeeded)));
    out.insert("Failed".into(), json!(flag(HookStatus::Failed)));
    out.insert("InProgress".into(), json!(flag(HookStatus::InProgress)));
    out.insert("Rollback".into(), json!(u8::from(rollback)));
    out
}

/// The metric of a check's own verdict (`pass`, `fail`, …).
fn check_metric(verdict: &str) -> Option<&'static str> {
    Some(match verdict {
        "pass" => "CheckPassed",
        "fail" => "CheckFailed",
        "pending" => "CheckPending",
        "error" => "CheckErrors",
        "unobserved" => "CheckUnobserved",
        _ => return None,
    })
}

const CHECK_METRICS: [&str; 5] = [
    "CheckPassed",
    "CheckFailed",
    "CheckPending",
    "CheckErrors",
    "CheckUnobserved",
];

/// One EMF document per check type the record evaluated, with each verdict counted.
pub fn checks(namespace: &str, record: &DecisionRecord) -> Vec<Value> {
    let mut by_type: BTreeMap<&str, BTreeMap<&str, u32>> = BTreeMap::new();
    for c in &record.checks {
        if let Some(metric) = check_metric(&c.verdict) {
            *by_type
                .entry(c.kind.as_str())
                .or_default()
                .entry(metric)
                .or_default() += 1;
        }
    }
    let metrics: Vec<(&str, &str)> = CHECK_METRICS.iter().map(|m| (*m, "Count")).collect();
    by_type
        .into_iter()
        .map(|(kind, counts)| {
            let mut doc = Map::new();
            doc.insert(
                "_aws".into(),
                directive(namespace, json!([["Function", "CheckType"]]), &metrics),
            );
            doc.insert("Function".into(), json!(record.function));
            doc.insert("CheckType".into(), json!(kind));
            for m in CHECK_METRICS {
                doc.insert(m.into(), json!(counts.get(m).copied().unwrap_or(0)));
            }
            Value::Object(doc)
        })
        .collect()
}
