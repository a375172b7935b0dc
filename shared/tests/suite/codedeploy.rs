//! CodeDeploy invocations report through the real SDK to a local endpoint speaking
//! CodeDeploy's JSON protocol: pass, fail, throttling, already completed, denied, hung.

use crate::support;

use std::time::Duration;

use greenlight::Role;
use greenlight::handle;
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
    let calls = cd.reports();
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
    assert_eq!(cd.reports()[0].body["status"], "Failed");
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
    assert_eq!(cd.reports().len(), 1);
}

#[tokio::test]
async fn a_check_still_pending_without_its_own_name_to_re_invoke_reports_failed() {
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
            .contains("the function cannot re-invoke itself (AWS_LAMBDA_FUNCTION_NAME is not set)"),
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
    assert_eq!(cd.reports().len(), 3);
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
    assert_eq!(cd.reports().len(), 1);
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

// ---------------------------------------------------------------- discovery and long waits

use std::sync::{Arc, Mutex};

use aws_smithy_mocks::{RuleMode, mock, mock_client};
use axum::Router;
use axum::routing::get;

/// An app that answers 200 on `/{cluster}/{service}` and `/fn/{function}/{version}` only.
async fn path_app() -> std::net::SocketAddr {
    serve(
        Router::new()
            .route("/shop-cluster/checkout", get(|| async { "ok" }))
            .route("/fn/checkout-fn/8", get(|| async { "ok" })),
    )
    .await
}

#[tokio::test]
async fn an_ecs_deployment_is_discovered_and_its_facts_fill_the_checks() {
    let app = path_app().await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let cfg = json!({"checks": {"h": {"type": "http", "url": format!("http://{app}/${{cluster}}/${{service}}"), "failureLimit": 0}}}).to_string();
    let out = handle(
        &cd.services(Some(&cfg)).await,
        Role::BeforeAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Succeeded", "{out}");
    let targets: Vec<String> = cd
        .calls()
        .iter()
        .map(|c| c.target.rsplit('.').next().unwrap().to_string())
        .collect();
    assert_eq!(
        targets,
        [
            "GetDeployment",
            "ListDeploymentTargets",
            "GetDeploymentTarget",
            "GetDeploymentGroup",
            "PutLifecycleEventHookExecutionStatus"
        ]
    );
}

#[tokio::test]
async fn a_lambda_deployment_is_discovered_with_its_versions() {
    let app = path_app().await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    *cd.platform.lock().unwrap() = "Lambda";
    let cfg = json!({"checks": {"h": {"type": "http", "url": format!("http://{app}/fn/${{functionName}}/${{newVersion}}"), "failureLimit": 0}}}).to_string();
    let out = handle(
        &cd.services(Some(&cfg)).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Succeeded", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("/fn/checkout-fn/8 answered 200"),
        "{out}"
    );
}

#[tokio::test]
async fn settings_per_deployment_group_apply_to_their_group_only() {
    let broken = app(503, Duration::ZERO).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let check =
        json!({"type": "http", "url": format!("http://{broken}/health"), "failureLimit": 0});
    let mine = json!({"codeDeploy": {"shop/checkout-dg": {"checks": {"h": check}}}}).to_string();
    let out = handle(
        &cd.services(Some(&mine)).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed", "{out}");
    let other = json!({"codeDeploy": {"shop/another-dg": {"checks": {"h": check}}}}).to_string();
    let out = handle(
        &cd.services(Some(&other)).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Succeeded", "{out}");
    // A broken override names where it is.
    let bad = json!({"codeDeploy": {"shop/checkout-dg": {"checks": {"h": {"type": "http"}}}}})
        .to_string();
    let out = handle(
        &cd.services(Some(&bad)).await,
        Role::AfterAllowTraffic,
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
            .contains("codeDeploy.shop/checkout-dg.checks.h.url: is missing"),
        "{out}"
    );
}

#[tokio::test]
async fn a_panic_inside_a_check_is_reported_failed() {
    // The green target group's look-up (ELBv2 DescribeTargetGroups) panics inside the check.
    let boom = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups)
        .then_output(|| panic!("recorded reply exploded"));
    let cd = FakeCodeDeploy::start(vec![]).await;
    let services = cd
        .services(Some(r#"{"checks": {"tg": {"type": "targetHealth"}}}"#))
        .await;
    services.set_elbv2(mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        &[&boom]
    ));
    let out = handle(
        &services,
        Role::BeforeAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("panicked: recorded reply exploded"),
        "{out}"
    );
    assert_eq!(cd.reports().len(), 1);
}

fn invoke_capture(store: Arc<Mutex<Vec<serde_json::Value>>>) -> aws_sdk_lambda::Client {
    let rule = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(move |r| {
            let payload: serde_json::Value =
                serde_json::from_slice(r.payload().map(|b| b.as_ref()).unwrap_or_default())
                    .unwrap();
            assert_eq!(r.invocation_type().map(|t| t.as_str()), Some("Event"));
            assert_eq!(r.function_name(), Some("greenlight-before-allow-traffic"));
            // The version this invocation runs, not $LATEST.
            assert_eq!(r.qualifier(), Some("7"));
            store.lock().unwrap().push(payload);
            true
        })
        .sequence()
        .output(|| {
            aws_sdk_lambda::operation::invoke::InvokeOutput::builder()
                .status_code(202)
                .build()
        })
        .repeatedly()
        .build();
    mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[&rule])
}

/// The before-allow-traffic hook with configuration `cfg`, able to re-invoke itself: the
/// continuations it sends are captured in the returned list.
async fn re_invoking(
    cd: &FakeCodeDeploy,
    cfg: &str,
) -> (greenlight::Services, Arc<Mutex<Vec<serde_json::Value>>>) {
    let services = cd.services(Some(cfg)).await;
    services.set_own_function(Some("greenlight-before-allow-traffic".into()));
    services.set_own_version(Some("7".into()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    services.set_lambda(invoke_capture(sent.clone()));
    (services, sent)
}

#[tokio::test]
async fn a_check_pending_past_the_budget_re_invokes_with_its_state_then_reports() {
    let slow = app_turning_healthy(503, Duration::from_secs(4)).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let cfg = json!({"checks": {"h": {"type": "http", "url": format!("http://{slow}/health"), "failureLimit": 100, "interval": "1s"}}}).to_string();
    let (services, sent) = re_invoking(&cd, &cfg).await;
    let out = handle(
        &services,
        Role::BeforeAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert_eq!(out["continued"], true, "{out}");
    assert!(cd.reports().is_empty(), "no report while waiting");
    let next = sent.lock().unwrap()[0].clone();
    let c = &next["greenlightContinuation"];
    assert_eq!(c["deploymentId"], "d-ABCDEF123");
    assert_eq!(c["hop"], 1);
    assert!(
        c["state"]["checks"]["h"]["attempts"].as_u64().unwrap() >= 1,
        "{c}"
    );
    // The next invocation, as Lambda delivers the event, carries on and reports.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = handle(
        &services,
        Role::BeforeAllowTraffic,
        &next,
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Succeeded", "{out}");
    assert_eq!(cd.reports().len(), 1);
}

#[tokio::test]
async fn the_wait_is_bounded_below_codedeploys_hour() {
    let down = app(503, Duration::ZERO).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let cfg = json!({"checks": {"h": {"type": "http", "url": format!("http://{down}/health"), "failureLimit": 1000, "interval": "30s", "within": "55m"}}}).to_string();
    let (services, sent) = re_invoking(&cd, &cfg).await;
    let now = greenlight::duration::now_ms();
    let late = json!({"greenlightContinuation": {"deploymentId": "d-ABCDEF123", "lifecycleEventHookExecutionId": "exec-1",
        "state": null, "chainStartedAtMs": now - 49 * 60 * 1000 - 45_000, "hop": 12, "notBeforeMs": now}});
    let out = handle(
        &services,
        Role::BeforeAllowTraffic,
        &late,
        deadline_in(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .starts_with("undecided after 49m 45s (codeDeployMaxWait 50m)"),
        "{out}"
    );
    assert!(sent.lock().unwrap().is_empty(), "no further hop");
}

#[tokio::test]
async fn within_keeps_counting_across_re_invocations() {
    let down = app(503, Duration::ZERO).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let cfg = json!({"checks": {"h": {"type": "http", "url": format!("http://{down}/health"), "failureLimit": 1000, "interval": "1s"}}}).to_string();
    let (services, sent) = re_invoking(&cd, &cfg).await;
    // The check was first evaluated 10m 5s ago, many hops back; `within` is 10m by default.
    let now = greenlight::duration::now_ms();
    let first = now - 10 * 60 * 1000 - 5_000;
    let state = json!({"v": greenlight::engine::runner::STATE_VERSION, "deployment": "d-ABCDEF123", "invocations": 40, "startedAtMs": first,
        "checks": {"h": {"status": "pending", "effect": "waiting", "firstAtMs": first, "attempts": 600, "reason": "answered 503", "data": {}}}});
    let ev = json!({"greenlightContinuation": {"deploymentId": "d-ABCDEF123", "lifecycleEventHookExecutionId": "exec-1",
        "state": state, "chainStartedAtMs": first, "hop": 40, "notBeforeMs": now}});
    let out = handle(
        &services,
        Role::BeforeAllowTraffic,
        &ev,
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("blocked by h: still undecided after 10m (within)"),
        "{out}"
    );
    assert!(sent.lock().unwrap().is_empty(), "no further hop");
    assert_eq!(cd.reports().len(), 1);
}

#[tokio::test]
async fn a_denied_re_invocation_reports_failed_naming_the_permission() {
    let slow = app_turning_healthy(503, Duration::from_secs(60)).await;
    let cd = FakeCodeDeploy::start(vec![]).await;
    let cfg = json!({"checks": {"h": {"type": "http", "url": format!("http://{slow}/health"), "failureLimit": 100, "interval": "1s"}}}).to_string();
    let services = cd.services(Some(&cfg)).await;
    services.set_own_function(Some("greenlight-before-allow-traffic".into()));
    let denied = mock!(aws_sdk_lambda::Client::invoke).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
            aws_smithy_types::body::SdkBody::from(r#"{"Type":"User","message":"not authorized"}"#),
        )
    });
    services.set_lambda(mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[&denied]));
    let out = handle(
        &services,
        Role::BeforeAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("Lambda Invoke (to keep waiting)"),
        "{out}"
    );
}

#[tokio::test]
async fn a_retried_invocation_after_the_report_does_nothing() {
    let cd = FakeCodeDeploy::start(vec![]).await;
    *cd.hook_status.lock().unwrap() = "Succeeded";
    let out = handle(
        &cd.services(None).await,
        Role::AfterAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "AlreadyCompleted", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("AfterAllowTraffic is already Succeeded"),
        "{out}"
    );
    assert!(cd.reports().is_empty());
}
