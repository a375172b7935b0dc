//! Every file in `events/` parses as intended and gets the documented answer.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use greenlight::Role;
use greenlight::deployment::{Deployment, TrafficDirection};
use greenlight::handle;
use greenlight::protocol::payload::{self, Payload};
use greenlight::protocol::{self, Invocation, Stage};
use support::*;

/// What each sample event is, and what a function answers to it with no configuration.
struct Expect {
    role: Role,
    kind: &'static str,
    stage: Option<&'static str>,
    traffic: TrafficDirection,
    status: &'static str,
    reason: &'static str,
}

fn table() -> BTreeMap<&'static str, Expect> {
    use Role::*;
    use TrafficDirection::*;
    let e = |role, kind, stage, traffic, status, reason| Expect {
        role,
        kind,
        stage,
        traffic,
        status,
        reason,
    };
    BTreeMap::from([
        (
            "ecs-reconcile-service.json",
            e(
                BeforeInstall,
                "ecs",
                Some("RECONCILE_SERVICE"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-pre-scale-up.json",
            e(
                BeforeInstall,
                "ecs",
                Some("PRE_SCALE_UP"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-post-scale-up.json",
            e(
                AfterInstall,
                "ecs",
                Some("POST_SCALE_UP"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-test-traffic-shift.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Forward,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-deep-hook-details.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Forward,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-post-test-traffic-shift.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("POST_TEST_TRAFFIC_SHIFT"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-pre-production-traffic-shift.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("PRE_PRODUCTION_TRAFFIC_SHIFT"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-production-traffic-shift.json",
            e(
                AfterAllowTraffic,
                "ecs",
                Some("PRODUCTION_TRAFFIC_SHIFT"),
                Forward,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-production-traffic-shift-canary-step.json",
            e(
                AfterAllowTraffic,
                "ecs",
                Some("PRODUCTION_TRAFFIC_SHIFT"),
                Forward,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-post-production-traffic-shift.json",
            e(
                AfterAllowTraffic,
                "ecs",
                Some("POST_PRODUCTION_TRAFFIC_SHIFT"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-rollback-test-traffic-shift.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Back,
                "SUCCEEDED",
                "rollback",
            ),
        ),
        (
            "ecs-rollback-production-traffic-shift.json",
            e(
                AfterAllowTraffic,
                "ecs",
                Some("PRODUCTION_TRAFFIC_SHIFT"),
                Back,
                "SUCCEEDED",
                "rollback",
            ),
        ),
        (
            "ecs-first-deployment.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Forward,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-unknown-stage.json",
            e(
                AfterAllowTraffic,
                "ecs",
                Some("POST_SOMETHING_NEW"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-flat-launch-shape.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                None,
                Forward,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-post-scale-up-migrations.json",
            e(
                AfterInstall,
                "ecs",
                Some("POST_SCALE_UP"),
                Unknown,
                "SUCCEEDED",
                "migrate: applied 3 migration(s) to database",
            ),
        ),
        (
            "ecs-http-check.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Forward,
                "SUCCEEDED",
                "health: http://127.0.0.1:",
            ),
        ),
        (
            "ecs-hook-details-string.json",
            e(
                AfterInstall,
                "ecs",
                Some("POST_SCALE_UP"),
                Unknown,
                "SUCCEEDED",
                "no checks configured",
            ),
        ),
        (
            "ecs-no-checks-fail.json",
            e(
                AfterInstall,
                "ecs",
                Some("POST_SCALE_UP"),
                Unknown,
                "FAILED",
                "whenNoChecks: fail",
            ),
        ),
        (
            "codedeploy.json",
            e(AfterAllowTraffic, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-ecs-before-install.json",
            e(BeforeInstall, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-ecs-after-install.json",
            e(AfterInstall, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-ecs-after-allow-test-traffic.json",
            e(BeforeAllowTraffic, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-ecs-before-allow-traffic.json",
            e(BeforeAllowTraffic, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-ecs-after-allow-traffic.json",
            e(AfterAllowTraffic, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-lambda-before-allow-traffic.json",
            e(BeforeAllowTraffic, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-lambda-after-allow-traffic.json",
            e(AfterAllowTraffic, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "codedeploy-continuation.json",
            e(BeforeAllowTraffic, "codedeploy", None, Unknown, "", ""),
        ),
        (
            "malformed-empty-object.json",
            e(
                BeforeInstall,
                "error",
                None,
                Unknown,
                "FAILED",
                "has none of the fields",
            ),
        ),
        (
            "malformed-null.json",
            e(
                BeforeInstall,
                "error",
                None,
                Unknown,
                "FAILED",
                "the event is null",
            ),
        ),
        (
            "malformed-array.json",
            e(
                BeforeInstall,
                "error",
                None,
                Unknown,
                "FAILED",
                "the event is an array",
            ),
        ),
        (
            "malformed-wrong-types.json",
            e(
                BeforeAllowTraffic,
                "error",
                None,
                Unknown,
                "FAILED",
                "executionDetails.serviceArn is a number, expected a string",
            ),
        ),
        (
            "malformed-missing-execution-details.json",
            e(
                BeforeInstall,
                "error",
                None,
                Unknown,
                "FAILED",
                "executionDetails is missing",
            ),
        ),
        (
            "malformed-codedeploy.json",
            e(
                AfterAllowTraffic,
                "error",
                None,
                Unknown,
                "FAILED",
                "LifecycleEventHookExecutionId is missing",
            ),
        ),
        (
            "malformed-hook-details.json",
            e(
                BeforeInstall,
                "error",
                None,
                Unknown,
                "FAILED",
                "hookDetails is a number",
            ),
        ),
        (
            "bad-config-unknown-key.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Forward,
                "FAILED",
                "hookDetails.greenlight at checks.health.timout: unknown key",
            ),
        ),
        (
            "bad-config-duration.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Forward,
                "FAILED",
                "hookDetails.greenlight at checks.health.timeout: invalid duration \"2 fortnights\"",
            ),
        ),
        (
            "bad-config-duration-too-long.json",
            e(
                BeforeAllowTraffic,
                "ecs",
                Some("TEST_TRAFFIC_SHIFT"),
                Forward,
                "FAILED",
                "hookDetails.greenlight at checks.health.interval: duration \"500000000000y\" is longer than the maximum, 24h",
            ),
        ),
    ])
}

/// A sample as the function reads it: raw JSON, with values nested too deeply to read set
/// aside (`support::event` would refuse them).
fn sample(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    payload::read(&Payload::from_json(&text))
        .unwrap_or_else(|e| panic!("events/{name}: {e}"))
        .value
}

#[test]
fn every_event_file_is_described() {
    let table = table();
    let mut files: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let described: Vec<String> = table.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        files, described,
        "events/ and this test's table must list the same files"
    );
}

#[test]
fn every_event_parses_as_intended() {
    for (name, want) in table() {
        let ev = sample(name);
        match (protocol::parse(&ev), want.kind) {
            (Ok(Invocation::Ecs(e)), "ecs") => {
                let d = Deployment::from_ecs(want.role, &e);
                assert_eq!(
                    e.lifecycle_stage.as_ref().map(Stage::as_str),
                    want.stage,
                    "{name}"
                );
                assert_eq!(d.traffic, want.traffic, "{name}");
                assert_eq!(d.cluster.as_deref(), Some("shop-cluster"), "{name}");
                assert_eq!(d.service.as_deref(), Some("checkout"), "{name}");
                assert_eq!(
                    d.target_revision_id.as_deref(),
                    Some("9386398427419951854"),
                    "{name}"
                );
                if name == "ecs-first-deployment.json" {
                    assert_eq!(d.first_deployment, Some(true));
                    assert_eq!(d.source_revision_arn, None);
                } else if want.traffic != TrafficDirection::Unknown {
                    assert!(
                        d.source_revision_arn
                            .as_deref()
                            .unwrap()
                            .ends_with("/4472057284928502176"),
                        "{name}"
                    );
                    assert_eq!(d.first_deployment, None, "{name}");
                }
                if name == "ecs-flat-launch-shape.json" {
                    assert!(d.stage_assumed);
                    assert_eq!(d.stage, Some(Stage::TestTrafficShift));
                }
            }
            (Ok(Invocation::CodeDeploy(c)), "codedeploy") => {
                assert!(c.deployment_id.starts_with("d-"), "{name}");
                assert!(!c.execution_id.is_empty(), "{name}");
                assert_eq!(
                    c.continuation.is_some(),
                    name == "codedeploy-continuation.json",
                    "{name}"
                );
            }
            (Err(e), "error") => assert!(e.0.contains(want.reason), "{name}: {e}"),
            (other, kind) => panic!("{name}: expected {kind}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_ecs_event_gets_the_documented_answer() {
    let healthy = app(200, Duration::ZERO).await;
    let services = services_with(None);
    for (name, want) in table() {
        if want.kind == "codedeploy" {
            continue;
        }
        let mut ev = sample(name);
        if name == "ecs-http-check.json" {
            let url = format!("http://{healthy}/health");
            ev["hookDetails"]["greenlight"]["checks"]["health"]["url"] = url.into();
        }
        if name == "ecs-post-scale-up-migrations.json" {
            // The sample's migrations, into a fresh database of the test server.
            let url = Postgres::get().database("events_sample").await;
            let migrate = &mut ev["hookDetails"]["greenlight"]["checks"]["migrate"];
            migrate["connection"]["url"] = url.into();
            let source =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/migrations");
            migrate["source"] = source.to_str().unwrap().into();
        }
        let answer = handle(
            &services,
            want.role,
            &ev,
            deadline_in(Duration::from_secs(20)),
        )
        .await
        .unwrap();
        assert_eq!(answer["hookStatus"], want.status, "{name}: {answer:#}");
        let reason = answer["hookDetails"]["greenlightDecision"]["reason"]
            .as_str()
            .unwrap();
        assert!(
            reason.contains(want.reason),
            "{name}: reason {reason:?} lacks {:?}",
            want.reason
        );
        let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["hookStatus", "hookDetails"],
            "{name}: only hookStatus and hookDetails at the top"
        );
    }
}

#[tokio::test]
async fn hook_details_keys_of_other_tools_are_echoed_back() {
    let services = services_with(None);
    let answer = handle(
        &services,
        Role::BeforeInstall,
        &event("ecs-pre-scale-up.json"),
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(answer["hookDetails"]["team"], "payments");
    // A string holding JSON is unwrapped, and answered as an object.
    let answer = handle(
        &services,
        Role::AfterInstall,
        &event("ecs-hook-details-string.json"),
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(answer["hookDetails"]["owner"], "platform");
    assert_eq!(answer["hookDetails"]["greenlight"]["whenNoChecks"], "pass");
}

/// Another tool's key nested more than 128 levels deep: not read, given back as it came,
/// with a note.
#[tokio::test]
async fn a_deeply_nested_key_of_another_tool_is_given_back_as_it_came() {
    let text = std::fs::read_to_string(events_dir().join("ecs-deep-hook-details.json")).unwrap();
    let answer = greenlight::handle_payload(
        &services_with(None),
        Role::BeforeAllowTraffic,
        &Payload::from_json(&text),
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(answer.value["hookStatus"], "SUCCEEDED");
    assert_eq!(answer.value["hookDetails"]["team"], "payments");
    let notes = answer.value["hookDetails"]["greenlightDecision"]["notes"].to_string();
    assert!(
        notes.contains("hookDetails.layout is nested more than 128 levels deep: given back unread"),
        "{notes}"
    );
    let layout = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"layout\": "))
        .unwrap();
    let out = serde_json::to_string(&answer).unwrap();
    assert!(
        out.ends_with(&format!(",\"layout\":{layout}}}}}")),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
}

/// Every CodeDeploy sample reads the same through `aws_lambda_events`' type for CodeDeploy's
/// lifecycle event as through Greenlight's parser (which also says which field was wrong
/// when one is, and reads the continuation Greenlight sends itself).
#[test]
fn codedeploy_samples_read_the_same_as_aws_lambda_events_reads_them() {
    use aws_lambda_events::event::codedeploy::CodeDeployLifecycleEvent;
    let mut seen = 0;
    for (name, want) in table() {
        if want.kind != "codedeploy" || name.contains("continuation") {
            continue;
        }
        let ev = sample(name);
        let theirs: CodeDeployLifecycleEvent = serde_json::from_value(ev.clone())
            .unwrap_or_else(|e| panic!("{name}: aws_lambda_events refuses it: {e}"));
        match protocol::parse(&ev) {
            Ok(Invocation::CodeDeploy(ours)) => {
                assert_eq!(ours.deployment_id, theirs.deployment_id, "{name}");
                assert_eq!(
                    ours.execution_id, theirs.lifecycle_event_hook_execution_id,
                    "{name}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        seen += 1;
    }
    assert!(seen >= 7, "{seen} CodeDeploy samples");
}
