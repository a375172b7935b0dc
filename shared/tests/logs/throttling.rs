//! Throttling is not a verdict: a stand-in for ECS and ELBv2 on loopback, speaking their
//! wire protocols (awsJson for ECS, awsQuery XML for ELBv2), throttles a gate's calls the
//! way AWS does, and the gate keeps observing until its `within` instead of rolling a
//! healthy service back. Each check's AWS calls are counted in the decision record.

use crate::support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use greenlight::Role;
use greenlight::services::{BaseConfig, Services};
use serde_json::{Value, json};

use support::{deadline_in, event, serve, status};

const GREEN: &str =
    "arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/9386398427419951854";
const TG: &str = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/checkout-green/0123456789abcdef";

/// How the stand-in answers each API: throttle the first `throttle` attempts (`u32::MAX`:
/// all), or deny every call.
#[derive(Clone, Copy)]
struct Script {
    throttle_revisions: u32,
    throttle_health: u32,
    deny_health: bool,
}

#[derive(Default)]
struct Seen {
    revisions: AtomicU32,
    health: AtomicU32,
    target_groups: AtomicU32,
    metric_queries: Mutex<Vec<String>>,
}

async fn stand_in(script: Script) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    let router = Router::new().fallback(any(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let seen = counts.clone();
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let form = String::from_utf8_lossy(&body).into_owned();
            if target.ends_with("DescribeServiceRevisions") {
                let n = seen.revisions.fetch_add(1, Ordering::SeqCst);
                if n < script.throttle_revisions {
                    return (
                        StatusCode::BAD_REQUEST,
                        [("x-amzn-requestid", "req-ecs-throttled")],
                        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string(),
                    )
                        .into_response();
                }
                let out = json!({"serviceRevisions": [{
                    "serviceRevisionArn": GREEN,
                    "taskDefinition": "arn:aws:ecs:us-west-2:123456789012:task-definition/checkout:42",
                    "resolvedConfiguration": {"loadBalancers": [{
                        "targetGroupArn": TG,
                        "productionListenerRule": "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
                    }]}
                }], "failures": []});
                return (StatusCode::OK, out.to_string()).into_response();
            }
            if form.contains("Action=DescribeTargetHealth") {
                let n = seen.health.fetch_add(1, Ordering::SeqCst);
                let error = |code: &str, status: StatusCode| {
                    (
                        status,
                        format!(
                            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>stand-in</Message></Error><RequestId>req-elb-{n}</RequestId></ErrorResponse>"
                        ),
                    )
                        .into_response()
                };
                if script.deny_health {
                    return error("AccessDenied", StatusCode::FORBIDDEN);
                }
                if n < script.throttle_health {
                    return error("Throttling", StatusCode::BAD_REQUEST);
                }
                return (
                    StatusCode::OK,
                    r#"<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeTargetHealthResult><TargetHealthDescriptions><member><Target><Id>10.0.3.17</Id><Port>8080</Port></Target><HealthCheckPort>8080</HealthCheckPort><TargetHealth><State>healthy</State></TargetHealth></member></TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>req-ok</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"#.to_string(),
                )
                    .into_response();
            }
            if form.contains("Action=DescribeTargetGroups") {
                seen.target_groups.fetch_add(1, Ordering::SeqCst);
            }
            if uri.path().ends_with("/operation/GetMetricData") {
                seen.metric_queries.lock().unwrap().push(form);
                // RPC v2 CBOR: {"MetricDataResults": [], "Messages": []}
                let mut reply = vec![0xa2, 0x60 + 17];
                reply.extend_from_slice(b"MetricDataResults");
                reply.extend_from_slice(&[0x80, 0x60 + 8]);
                reply.extend_from_slice(b"Messages");
                reply.push(0x80);
                return (
                    StatusCode::OK,
                    [
                        ("content-type", "application/cbor"),
                        ("smithy-protocol", "rpc-v2-cbor"),
                        ("x-amzn-requestid", "req-cw"),
                    ],
                    reply,
                )
                    .into_response();
            }
            (StatusCode::NOT_FOUND, format!("unexpected call {target} {form}")).into_response()
        }
    }));
    (format!("http://{}", serve(router).await), seen)
}

/// The SDK as the functions set it up, but with quick retries (three attempts, 10 ms
/// apart): the SDK's own retry waits are not what these tests are about.
async fn services(endpoint: &str, checks: Value) -> Services {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(10)),
        )
        .timeout_config(greenlight::services::aws_timeouts())
        .load()
        .await;
    let config = json!({ "checks": checks });
    Services::new(Ok(BaseConfig::Inline(config.to_string())), Some(sdk))
}

/// Runs the before-allow-traffic hook on the test-traffic event with a deadline `secs`
/// ahead; returns the answer and the full decision record from the log.
fn gate(endpoint: &str, checks: Value, secs: u64) -> (Value, Value) {
    let (answer, log) = support::with_function_log("info", async || {
        let s = services(endpoint, checks).await;
        greenlight::handle(
            &s,
            Role::BeforeAllowTraffic,
            &event("ecs-test-traffic-shift.json"),
            deadline_in(Duration::from_secs(secs)),
        )
        .await
        .unwrap()
    });
    let record = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["fields"]["decision"].as_str().map(str::to_string))
        .next_back()
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_else(|| panic!("no decision record in the log: {log}"));
    (answer, record)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_throttled_gate_keeps_observing_and_passes_a_healthy_service() {
    let rt = runtime();
    // Every API throttles its first four attempts: the first SDK call of each (three
    // attempts) gives up, the check could not observe yet, and observes again.
    let (endpoint, seen) = rt.block_on(stand_in(Script {
        throttle_revisions: 4,
        throttle_health: 4,
        deny_health: false,
    }));
    let (answer, record) = gate(
        &endpoint,
        json!({"tg": {"type": "targetHealth", "interval": "1s", "within": "1m"}}),
        30,
    );
    assert_eq!(status(&answer), "SUCCEEDED", "{answer}");
    let check = &record["checks"][0];
    assert_eq!(check["verdict"], "pass", "{record}");
    // The failed revision look-up was not kept: ECS was asked again.
    assert!(seen.revisions.load(Ordering::SeqCst) >= 5, "{record}");
    let calls = &check["awsCalls"];
    assert!(
        calls["ECS.DescribeServiceRevisions"]["throttled"].as_u64() >= Some(4),
        "{calls}"
    );
    assert!(
        calls["ELBv2.DescribeTargetHealth"]["throttled"].as_u64() >= Some(1),
        "{calls}"
    );
    for (_, c) in calls.as_object().unwrap() {
        assert!(c["attempts"].as_u64() >= c["calls"].as_u64(), "{calls}");
    }
}

#[test]
fn throttled_throughout_blocks_only_when_within_runs_out() {
    let rt = runtime();
    let (endpoint, _) = rt.block_on(stand_in(Script {
        throttle_revisions: 0,
        throttle_health: u32::MAX,
        deny_health: false,
    }));
    // Within the invocation: still observing when the budget ends, so IN_PROGRESS.
    let (answer, record) = gate(
        &endpoint,
        json!({"tg": {"type": "targetHealth", "interval": "1s", "within": "10m"}}),
        4,
    );
    assert_eq!(status(&answer), "IN_PROGRESS", "{answer}");
    assert_eq!(record["checks"][0]["verdict"], "unobserved", "{record}");
    assert!(
        record["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("throttled"),
        "{record}"
    );

    // With a short `within`, its `onError` decides when it runs out, saying why.
    let started = Instant::now();
    let (answer, record) = gate(
        &endpoint,
        json!({"tg": {"type": "targetHealth", "interval": "1s", "within": "3s"}}),
        30,
    );
    assert_eq!(status(&answer), "FAILED", "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    let reason = record["checks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("could not observe within 3s") && reason.contains("Throttling"),
        "{reason}"
    );

    // onError: pass fails open then, and says so.
    let (answer, _) = gate(
        &endpoint,
        json!({"tg": {"type": "targetHealth", "interval": "1s", "within": "2s", "onError": "pass"}}),
        30,
    );
    assert_eq!(status(&answer), "SUCCEEDED", "{answer}");
    assert!(answer.to_string().contains("failedOpen"), "{answer}");
}

#[test]
fn a_denied_call_blocks_at_once_naming_the_permission() {
    let rt = runtime();
    let (endpoint, seen) = rt.block_on(stand_in(Script {
        throttle_revisions: 0,
        throttle_health: 0,
        deny_health: true,
    }));
    let started = Instant::now();
    let (answer, _) = gate(
        &endpoint,
        json!({"tg": {"type": "targetHealth", "interval": "1s", "within": "1m"}}),
        30,
    );
    assert_eq!(status(&answer), "FAILED", "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        answer
            .to_string()
            .contains("grant elasticloadbalancing:DescribeTargetHealth"),
        "{answer}"
    );
    assert_eq!(
        seen.health.load(Ordering::SeqCst),
        1,
        "no retry of a denial"
    );
}

/// The record line shown in docs/quotas.md is one the functions write: it reads as a check
/// record and writes back the same.
#[test]
fn the_documented_record_line_is_a_check_record() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/quotas.md")).unwrap();
    let blocks: Vec<&str> = text
        .split("```json")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(!blocks.is_empty(), "docs/quotas.md shows a record line");
    for b in blocks {
        let shown: Value = serde_json::from_str(b).unwrap();
        let record: greenlight::record::CheckRecord =
            serde_json::from_value(shown.clone()).unwrap();
        assert_eq!(serde_json::to_value(&record).unwrap(), shown);
    }
}

/// `${loadBalancer}` comes from the revision's production listener rule: no ELBv2 call.
#[test]
fn the_load_balancer_dimension_needs_no_elbv2_call() {
    let rt = runtime();
    let (endpoint, seen) = rt.block_on(stand_in(Script {
        throttle_revisions: 0,
        throttle_health: 0,
        deny_health: false,
    }));
    let (answer, _) = gate(
        &endpoint,
        json!({"errors": {
            "type": "metricThreshold",
            "query": {"metric": {"namespace": "AWS/ApplicationELB", "name": "HTTPCode_Target_5XX_Count",
                "dimensions": {"TargetGroup": "${greenTargetGroup}", "LoadBalancer": "${loadBalancer}"},
                "stat": "Sum", "period": "1m"}},
            "comparison": ">", "threshold": 5
        }}),
        3,
    );
    assert_eq!(
        status(&answer),
        "IN_PROGRESS",
        "no datapoints yet: {answer}"
    );
    let queries = seen.metric_queries.lock().unwrap().clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("app/shop/50dc6c495c0c9188")),
        "{queries:?}"
    );
    assert_eq!(seen.target_groups.load(Ordering::SeqCst), 0);
}
