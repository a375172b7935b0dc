//! CodeDeploy invocations report through the real SDK to a local endpoint speaking
//! CodeDeploy's JSON protocol: pass, fail, throttling, already completed, denied, hung.

mod support;

use std::time::Duration;

use greenlight::Role;
use greenlight::handler::handle;
use serde_json::json;
use support::*;

const TARGET: &str = "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus";

#[tokio::test]
async fn no_checks_reports_succeeded_once() {
    let cd = FakeCodeDeploy::start(vec![]).await;
    let out = handle(
        &cd.services(None).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Succeeded");
    let calls = cd.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].target, TARGET);
    assert_eq!(
        calls[0].body,
        json!({"deploymentId": "d-ABCDEF123", "lifecycleEventHookExecutionId": "eyJlbmNyeXB0ZWREYXRhIjoiZXhhbXBsZSJ9", "status": "Succeeded"})
    );
}

#[tokio::test]
async fn a_failing_check_reports_failed() {
    let broken = app(503, Duration::ZERO).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let cfg = format!(
        r#"{{"checks": {{"h": {{"type": "http", "url": "http://{broken}/health", "failureLimit": 0}}}}}}"#
    );
    let out = handle(
        &cd.services(Some(&cfg)).await,
        Role::BeforeAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("answered 503"));
    assert_eq!(cd.calls()[0].body["status"], "Failed");
}

#[tokio::test]
async fn a_bad_configuration_reports_failed_with_the_field() {
    let cd = FakeCodeDeploy::start(vec![]).await;
    let out = handle(
        &cd.services(Some(r#"{"checks": {"h": {"type": "http"}}}"#))
            .await,
        Role::AfterInstall,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("GREENLIGHT_CONFIG at checks.h.url: is missing"),
        "{out}"
    );
    assert_eq!(cd.calls().len(), 1);
}

#[tokio::test]
async fn a_check_still_pending_when_time_runs_out_reports_failed() {
    let slow = app_turning_healthy(503, Duration::from_secs(60)).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let cfg = format!(
        r#"{{"checks": {{"h": {{"type": "http", "url": "http://{slow}/health", "failureLimit": 100, "interval": "200ms"}}}}}}"#
    );
    let started = std::time::Instant::now();
    let out = handle(
        &cd.services(Some(&cfg)).await,
        Role::BeforeAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(out["reported"], "Failed");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .starts_with("undecided when this invocation's time budget ran out"),
        "{out}"
    );
}

#[tokio::test]
async fn throttling_is_retried_with_backoff() {
    let cd = FakeCodeDeploy::start(vec![
        support::Reply::Error("ThrottlingException", 400),
        support::Reply::Error("InternalFailure", 500),
    ])
    .await;
    let out = handle(
        &cd.services(None).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Succeeded");
    assert_eq!(cd.calls().len(), 3);
}

#[tokio::test]
async fn already_completed_is_done_not_an_error() {
    let cd = FakeCodeDeploy::start(vec![support::Reply::Error(
        "LifecycleEventAlreadyCompletedException",
        400,
    )])
    .await;
    let out = handle(
        &cd.services(None).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "AlreadyCompleted");
    assert_eq!(cd.calls().len(), 1);
}

#[tokio::test]
async fn a_missing_permission_is_named() {
    let cd = FakeCodeDeploy::start(vec![support::Reply::Error("AccessDeniedException", 400)]).await;
    let err = handle(
        &cd.services(None).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("codedeploy:PutLifecycleEventHookExecutionStatus"),
        "{err}"
    );
}

#[tokio::test]
async fn a_hung_codedeploy_endpoint_cannot_hold_the_invocation_past_its_deadline() {
    let cd = FakeCodeDeploy::start(vec![support::Reply::Hang; 8]).await;
    let started = std::time::Instant::now();
    let err = handle(
        &cd.services(None).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(4)),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("could not report Succeeded"), "{err}");
}
