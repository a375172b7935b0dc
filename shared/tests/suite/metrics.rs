//! Metric checks against the moto AWS emulator: series put with PutMetricData (with
//! timestamps), read by the checks with GetMetricData; alarms driven with SetAlarmState.
//! A counting proxy in front of moto asserts one GetMetricData call per evaluation.

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use serde_json::{Value, json};
use support::*;

/// Forwards every request to moto (CloudWatch's, in RPC v2 CBOR, to its CBOR front) and
/// counts them by operation.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    cloudwatch: String,
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let operation = uri
        .path()
        .strip_prefix("/service/GraniteServiceVersion20100801/operation/")
        .map(str::to_string);
    let upstream = match &operation {
        Some(op) => {
            *p.counts.lock().unwrap().entry(op.clone()).or_default() += 1;
            &p.cloudwatch
        }
        None => &p.upstream,
    };
    let (status, ct, bytes) = forward_to(upstream, method, &uri, &headers, body).await;
    (status, [("content-type", ct)], bytes)
}

struct Env {
    moto: Moto,
    proxy: Proxy,
    services: Services,
}

impl Env {
    async fn new() -> Env {
        let moto = Moto::start();
        let proxy = Proxy {
            upstream: moto.endpoint.clone(),
            cloudwatch: moto.cloudwatch.clone(),
            counts: Default::default(),
        };
        let addr = serve(Router::new().fallback(forward).with_state(proxy.clone())).await;
        let services = Services::new(
            Ok(BaseConfig::None),
            Some(sdk_config_for(&format!("http://{addr}")).await),
        );
        Env {
            moto,
            proxy,
            services,
        }
    }

    fn calls(&self, action: &str) -> u32 {
        self.proxy
            .counts
            .lock()
            .unwrap()
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    /// Puts `values` one minute apart, the last one 30 s before the current minute began:
    /// the oldest stays inside a window of datapoints + 1 periods for half a minute after
    /// the put, however late in its minute the test runs.
    fn put(&self, name: &str, dims: Value, values: &[f64]) {
        self.moto.seed(&format!(
            r#"
import datetime
cw = boto3.client('cloudwatch', **KW)
now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
values = {values:?}
dims = [{{'Name': k, 'Value': v}} for k, v in {dims}.items()]
data = [{{'MetricName': {name:?}, 'Dimensions': dims, 'Timestamp': now - datetime.timedelta(minutes=len(values) - i, seconds=-30), 'Value': v}} for i, v in enumerate(values)]
for i in range(0, len(data), 20):
    cw.put_metric_data(Namespace='Shop/Checkout', MetricData=data[i:i + 20])
print(json.dumps(len(data)))
"#
        ));
    }
}

fn metric(name: &str, tg: &str, stat: &str) -> Value {
    json!({"metric": {"namespace": "Shop/Checkout", "name": name, "dimensions": {"TargetGroup": tg}, "stat": stat}})
}

fn with_checks(file: &str, checks: Value) -> Value {
    let mut ev = event(file);
    ev["hookDetails"] = json!({"greenlight": {"checks": checks}});
    ev
}

async fn run(env: &Env, ev: &Value, secs: u64) -> Value {
    handle(
        &env.services,
        Role::AfterAllowTraffic,
        ev,
        deadline_in(Duration::from_secs(secs)),
    )
    .await
    .unwrap()
}

const GREEN_TG: &str = "targetgroup/checkout-green/6d0ecf831eec9f09";
const BLUE_TG: &str = "targetgroup/checkout-blue/1a2b3c4d5e6f7a8b";

fn threshold(extra: Value) -> Value {
    let mut c = json!({
        "type": "metricThreshold",
        "label": "5xx rate of green",
        "query": metric("Error5xxRate", GREEN_TG, "Average"),
        "comparison": ">", "threshold": 1.0,
        "minRequests": {"query": metric("Requests", GREEN_TG, "Sum"), "min": 500}
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

#[tokio::test]
async fn threshold_passes_fails_and_uses_one_call_per_evaluation() {
    let env = Env::new().await;
    env.put(
        "Error5xxRate",
        json!({"TargetGroup": GREEN_TG}),
        &[0.2, 2.4, 0.3, 3.1, 2.4],
    );
    env.put("Requests", json!({"TargetGroup": GREEN_TG}), &[390.0; 5]);

    let a = run(
        &env,
        &with_checks(
            "ecs-post-production-traffic-shift.json",
            json!({"errors": threshold(json!({}))}),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a)
            .contains("5xx rate of green was 2.4 (3 of 5 datapoints above 1), 1,950 requests seen"),
        "{}",
        reason(&a)
    );
    assert_eq!(env.calls("GetMetricData"), 1, "two queries, one call");

    // Three breaches needed: passes.
    let a = run(
        &env,
        &with_checks(
            "ecs-post-production-traffic-shift.json",
            json!({"errors": threshold(json!({"toBreach": 4}))}),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(
        reason(&a).contains("(3 of 5 datapoints above 1)"),
        "{}",
        reason(&a)
    );
    assert_eq!(env.calls("GetMetricData"), 2);
}

#[tokio::test]
async fn too_little_evidence_waits_or_follows_the_policy() {
    let env = Env::new().await;
    env.put(
        "Error5xxRate",
        json!({"TargetGroup": GREEN_TG}),
        &[0.0, 0.0, 0.0],
    );
    env.put(
        "Requests",
        json!({"TargetGroup": GREEN_TG}),
        &[12.0, 9.0, 20.0],
    );
    let quiet = with_checks(
        "ecs-post-production-traffic-shift.json",
        json!({"errors": threshold(json!({"interval": "30s"}))}),
    );
    let a = run(&env, &quiet, 4).await;
    assert_eq!(
        a["hookStatus"], "IN_PROGRESS",
        "a quiet service is neither waved through nor failed: {a:#}"
    );
    assert!(
        reason(&a)
            .contains("not enough evidence for 5xx rate of green yet: 41 requests, 500 needed"),
        "{}",
        reason(&a)
    );
    let a = run(
        &env,
        &with_checks(
            "ecs-post-production-traffic-shift.json",
            json!({"errors": threshold(json!({"whenNoEvidence": "pass"}))}),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    assert!(reason(&a).contains("(whenNoEvidence: pass)"));
    // No data at all (a metric nobody publishes).
    let none = json!({"type": "metricThreshold", "query": metric("Nothing", GREEN_TG, "Sum"), "comparison": ">", "threshold": 0, "whenNoEvidence": "fail"});
    let a = run(
        &env,
        &with_checks("ecs-post-production-traffic-shift.json", json!({"n": none})),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("0 datapoint(s), 3 needed"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn bake_window_passes_clean_and_carries_its_start_across_invocations() {
    let env = Env::new().await;
    env.put(
        "Error5xxRate",
        json!({"TargetGroup": GREEN_TG}),
        &[0.1, 0.2, 0.1, 0.0, 0.1],
    );
    env.put("Requests", json!({"TargetGroup": GREEN_TG}), &[400.0; 5]);
    let ev = with_checks(
        "ecs-post-production-traffic-shift.json",
        json!({"errors": threshold(json!({"bakeFor": "4s", "interval": "1s", "within": "1m"}))}),
    );
    // A short invocation cannot wait the window out: IN_PROGRESS, with the window's start.
    let first = run(&env, &ev, 2).await;
    assert_eq!(first["hookStatus"], "IN_PROGRESS", "{first:#}");
    assert!(reason(&first).contains("clean for"), "{}", reason(&first));
    let started =
        first["hookDetails"]["greenlightState"]["checks"]["errors"]["data"]["startedAtMs"]
            .as_u64()
            .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut again = ev.clone();
    again["hookDetails"] = first["hookDetails"].clone();
    let second = run(&env, &again, 10).await;
    assert_eq!(second["hookStatus"], "SUCCEEDED", "{second:#}");
    assert!(greenlight::duration::now_ms() - started >= 4000);
    // A window start in the future (forged state) counts as now: the window still ends.
    let mut forged = ev.clone();
    forged["hookDetails"] = first["hookDetails"].clone();
    forged["hookDetails"]["greenlightState"]["checks"]["errors"]["data"]["startedAtMs"] =
        json!(u64::MAX);
    let third = run(&env, &forged, 10).await;
    assert_eq!(third["hookStatus"], "SUCCEEDED", "{third:#}");
    // The same check with a breach fails at once, without waiting for the window.
    env.put(
        "Error5xxRate",
        json!({"TargetGroup": GREEN_TG}),
        &[5.0, 6.0],
    );
    let started = std::time::Instant::now();
    let a = run(
        &env,
        &with_checks(
            "ecs-post-production-traffic-shift.json",
            json!({"errors": threshold(json!({"bakeFor": "10m", "within": "20m"}))}),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn alarms_gate() {
    let env = Env::new().await;
    env.moto.seed(
        r#"
cw = boto3.client('cloudwatch', **KW)
for name in ['checkout-5xx', 'checkout-latency', 'checkout-quiet']:
    cw.put_metric_alarm(AlarmName=name, MetricName='M', Namespace='Shop/Checkout', Statistic='Sum', Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator='GreaterThanThreshold')
cw.set_alarm_state(AlarmName='checkout-5xx', StateValue='OK', StateReason='fine')
cw.set_alarm_state(AlarmName='checkout-latency', StateValue='OK', StateReason='fine')
cw.set_alarm_state(AlarmName='checkout-quiet', StateValue='INSUFFICIENT_DATA', StateReason='no data')
print(json.dumps(True))
"#,
    );
    let named =
        json!({"a": {"type": "alarms", "alarmNames": ["checkout-5xx", "checkout-latency"]}});
    let a = run(
        &env,
        &with_checks("ecs-post-production-traffic-shift.json", named.clone()),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    // The prefix also finds the alarm still in INSUFFICIENT_DATA; the policy decides.
    let prefix = |policy: &str| json!({"a": {"type": "alarms", "alarmNamePrefix": "${service}-", "insufficientData": policy}});
    let a = run(
        &env,
        &with_checks("ecs-post-production-traffic-shift.json", prefix("pass")),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    assert!(
        reason(&a).contains(
            "2 alarm(s) OK, 1 in INSUFFICIENT_DATA (insufficientData: pass): checkout-quiet"
        ),
        "{}",
        reason(&a)
    );
    let a = run(
        &env,
        &with_checks("ecs-post-production-traffic-shift.json", prefix("fail")),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    env.moto.seed("boto3.client('cloudwatch', **KW).set_alarm_state(AlarmName='checkout-5xx', StateValue='ALARM', StateReason='Threshold Crossed: 3 datapoints were greater than the threshold (1.0)')\nprint(json.dumps(True))");
    let a = run(
        &env,
        &with_checks("ecs-post-production-traffic-shift.json", named),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("checkout-5xx is in ALARM (Threshold Crossed: 3 datapoints"),
        "{}",
        reason(&a)
    );
    // A named alarm that does not exist is an error of the check: fail closed by default.
    let a = run(
        &env,
        &with_checks(
            "ecs-post-production-traffic-shift.json",
            json!({"a": {"type": "alarms", "alarmNames": ["nope"]}}),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("the check could not run: alarm(s) not found: nope"),
        "{}",
        reason(&a)
    );
}

fn latency(seed: u64, n: usize, base: f64) -> Vec<f64> {
    // A deterministic spread around `base`.
    (0..n)
        .map(|i| base + ((i as u64 * 7919 + seed * 104_729) % 23) as f64)
        .collect()
}

#[tokio::test]
async fn canary_judges_green_against_blue_at_the_same_time() {
    let env = Env::new().await;
    env.put(
        "LatencyP99",
        json!({"TargetGroup": BLUE_TG}),
        &latency(1, 15, 50.0),
    );
    env.put(
        "LatencyP99",
        json!({"TargetGroup": GREEN_TG}),
        &latency(2, 15, 51.0),
    );
    let check = |green: &str| {
        json!({"lat": {"type": "canary", "label": "p99 latency", "unit": "ms", "window": "20m",
            "canary": metric("LatencyP99", green, "Maximum"), "baseline": metric("LatencyP99", BLUE_TG, "Maximum")}})
    };
    let a = run(
        &env,
        &with_checks(
            "ecs-production-traffic-shift-canary-step.json",
            check(GREEN_TG),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert_eq!(env.calls("GetMetricData"), 1);
    let slow_tg = "targetgroup/checkout-slow/0000000000000000";
    env.put(
        "LatencyP99",
        json!({"TargetGroup": slow_tg}),
        &latency(3, 15, 95.0),
    );
    let a = run(
        &env,
        &with_checks(
            "ecs-production-traffic-shift-canary-step.json",
            check(slow_tg),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("p99 latency of green is"),
        "{}",
        reason(&a)
    );
    assert!(reason(&a).contains("Mann-Whitney"), "{}", reason(&a));
}

#[tokio::test]
async fn canary_error_rate_and_placeholders_from_the_revisions() {
    use aws_sdk_ecs::types as ecs;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    let env = Env::new().await;
    env.put(
        "Errors",
        json!({"TargetGroup": GREEN_TG}),
        &[30.0, 28.0, 35.0],
    );
    env.put(
        "Requests",
        json!({"TargetGroup": GREEN_TG}),
        &[1000.0, 1000.0, 1000.0],
    );
    env.put("Errors", json!({"TargetGroup": BLUE_TG}), &[2.0, 1.0, 3.0]);
    env.put(
        "Requests",
        json!({"TargetGroup": BLUE_TG}),
        &[9000.0, 9000.0, 9000.0],
    );
    // The green and blue target groups come from the two service revisions.
    let revisions = mock!(aws_sdk_ecs::Client::describe_service_revisions)
        .sequence()
        .output(|| {
            let rev = |arn: &str, tg: &str| {
                ecs::ServiceRevision::builder()
                    .service_revision_arn(arn)
                    .resolved_configuration(
                        ecs::ResolvedConfiguration::builder()
                            .load_balancers(ecs::ServiceRevisionLoadBalancer::builder().target_group_arn(format!("arn:aws:elasticloadbalancing:us-west-2:123456789012:{tg}")).build())
                            .build(),
                    )
                    .build()
            };
            aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput::builder()
                .service_revisions(rev("arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/9386398427419951854", GREEN_TG))
                .service_revisions(rev("arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/4472057284928502176", BLUE_TG))
                .build()
        })
        .repeatedly()
        .build();
    env.services
        .set_ecs(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[&revisions]));
    let side = |name: &str, tg: &str| json!({"metric": {"namespace": "Shop/Checkout", "name": name, "dimensions": {"TargetGroup": tg}, "stat": "Sum"}});
    let check = json!({"err": {"type": "canary", "compare": "errorRate", "label": "5xx rate", "window": "10m",
        "canaryErrors": side("Errors", "${greenTargetGroup}"), "canaryRequests": side("Requests", "${greenTargetGroup}"),
        "baselineErrors": side("Errors", "${blueTargetGroup}"), "baselineRequests": side("Requests", "${blueTargetGroup}")}});
    let a = run(
        &env,
        &with_checks("ecs-production-traffic-shift-canary-step.json", check),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(reason(&a).contains("5xx rate"), "{}", reason(&a));
    let observed = &a["hookDetails"]["greenlightDecision"];
    assert!(observed.to_string().contains("green"), "{observed}");
    assert_eq!(env.calls("GetMetricData"), 1, "four queries, one call");
}

#[tokio::test]
async fn each_canary_step_is_judged_afresh() {
    let env = Env::new().await;
    env.put("Error5xxRate", json!({"TargetGroup": GREEN_TG}), &[0.1; 5]);
    env.put("Requests", json!({"TargetGroup": GREEN_TG}), &[400.0; 5]);
    let ev = with_checks(
        "ecs-production-traffic-shift-canary-step.json",
        json!({"errors": threshold(json!({"bakeFor": "1h", "interval": "1s", "within": "2h"}))}),
    );
    let step1 = run(&env, &ev, 2).await;
    assert_eq!(step1["hookStatus"], "IN_PROGRESS");
    // ECS's next step: the same hook, the same deployment, more traffic on green.
    let mut step2 = ev.clone();
    step2["hookDetails"] = step1["hookDetails"].clone();
    let green = "arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/9386398427419951854";
    let blue = "arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/4472057284928502176";
    step2["executionDetails"]["productionTrafficWeights"] = json!({green: 50, blue: 50});
    let a = run(&env, &step2, 2).await;
    let notes = a["hookDetails"]["greenlightDecision"]["notes"].to_string();
    assert!(
        notes.contains("new step (PRODUCTION_TRAFFIC_SHIFT@50"),
        "{notes}"
    );
    assert_eq!(a["hookDetails"]["greenlightDecision"]["invocation"], 1);
}

#[tokio::test]
async fn bake_for_must_fit_within() {
    let env = Env::new().await;
    let a = run(
        &env,
        &with_checks(
            "ecs-post-production-traffic-shift.json",
            json!({"errors": threshold(json!({"bakeFor": "10m"}))}),
        ),
        5,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("at checks.errors.within: is 10m, not longer than bakeFor (10m)"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn the_bake_window_is_anchored_to_the_stages_real_start() {
    use aws_sdk_ecs::types as ecs;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    let env = Env::new().await;
    env.put("Error5xxRate", json!({"TargetGroup": GREEN_TG}), &[0.1; 5]);
    env.put("Requests", json!({"TargetGroup": GREEN_TG}), &[400.0; 5]);
    // ECS started this hook three minutes ago; its timeout is 60 minutes.
    let fn_arn = "arn:aws:lambda:us-west-2:123456789012:function:greenlight-after-allow-traffic";
    let expires = std::time::SystemTime::now() + Duration::from_secs(57 * 60);
    let rule = mock!(aws_sdk_ecs::Client::describe_service_deployments)
        .sequence()
        .output(move || {
            aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput::builder()
                .service_deployments(
                    ecs::ServiceDeployment::builder()
                        .lifecycle_hook_details(
                            ecs::DeploymentLifecycleHookDetail::builder()
                                .target_arn(fn_arn)
                                .status(ecs::DeploymentLifecycleHookStatus::from("IN_PROGRESS"))
                                .expires_at(aws_smithy_types::DateTime::from(expires))
                                .build(),
                        )
                        .deployment_configuration(
                            ecs::DeploymentConfiguration::builder()
                                .lifecycle_hooks(
                                    ecs::DeploymentLifecycleHook::builder()
                                        .hook_target_arn(fn_arn)
                                        .timeout_configuration(ecs::DeploymentLifecycleHookTimeoutConfiguration::builder().timeout_in_minutes(60).build())
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    env.services
        .set_ecs(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[&rule]));
    env.services
        .set_own_function(Some("greenlight-after-allow-traffic".into()));
    // A 2-minute window that began with the stage three minutes ago has passed: no waiting.
    let ev = with_checks(
        "ecs-post-production-traffic-shift.json",
        json!({"errors": threshold(json!({"bakeFor": "2m", "within": "10m"}))}),
    );
    let a = run(&env, &ev, 5).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    // Without the anchor, the same check waits out its window from now.
    env.services.set_own_function(None);
    let a = run(&env, &ev, 3).await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS", "{a:#}");
    assert!(reason(&a).contains("clean for 0s of 2m"), "{}", reason(&a));
}
