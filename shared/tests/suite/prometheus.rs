//! The `prometheus` metric source against a real Prometheus server (Debian's
//! `prometheus`, which `make tools` installs) scraping an app every second
//! (`standins/metrics_app.py`: request counters by revision and status code, latency
//! histograms), and, for SigV4, through a gate that recomputes every signature with
//! botocore's signer (`standins/sigv4_gate.py`) and accepts moto's STS credentials.
//!
//! The app's revisions are the event's: the new one (`${targetRevisionId}`) fails 30 % of
//! its requests and answers in 200 ms; the current one (`${sourceRevisionId}`) fails none
//! and answers in 40 ms; `twin` behaves like the current one.

use crate::support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use serde_json::{Value, json};
use support::*;

const GREEN: &str = "9386398427419951854";
const BLUE: &str = "4472057284928502176";
const EVENT: &str = "ecs-production-traffic-shift-canary-step.json";

struct Stack {
    prometheus: String,
    gate: String,
    gate_log: std::path::PathBuf,
    moto: String,
}

/// The servers, started once for the test binary: the app, Prometheus scraping it, moto
/// (STS) and the SigV4 gate in front of Prometheus. Returns once Prometheus holds 15 s of
/// samples.
fn stack() -> &'static Stack {
    static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
    // Started once: a failure to start is every test's failure, not a new attempt each.
    STACK
        .get_or_init(|| {
            std::panic::catch_unwind(start_stack)
                .map_err(|p| greenlight::text::panic_message(&*p).unwrap_or_default())
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("the Prometheus stack did not start: {e}"))
}

fn start_stack() -> Stack {
    {
        let s = |v: &str| v.to_string();
        let app = serve_for_process(
            "metrics-app",
            "standins/metrics_app.py",
            &[
                s("--revision"),
                format!("{GREEN}=0.3,200"),
                s("--revision"),
                format!("{BLUE}=0,40"),
                s("--revision"),
                s("twin=0,40"),
                s("--rps"),
                s("40"),
            ],
        );
        let data = std::env::temp_dir().join(format!("greenlight-prom-{}", std::process::id()));
        let prom = serve_for_process(
            "prometheus",
            "standins/prometheus_server.py",
            &[
                s("--target"),
                format!("127.0.0.1:{app}"),
                s("--data-dir"),
                data.to_string_lossy().into_owned(),
            ],
        );
        let moto = serve_for_process("moto", "moto_server", &[s("-H"), s("127.0.0.1")]);
        let prometheus = format!("http://127.0.0.1:{prom}");
        let moto = format!("http://127.0.0.1:{moto}");
        let gate_log =
            std::env::temp_dir().join(format!("greenlight-{}-gate.jsonl", std::process::id()));
        let gate = serve_for_process(
            "sigv4-gate",
            "standins/sigv4_gate.py",
            &[
                s("--upstream"),
                prometheus.clone(),
                s("--region"),
                s("us-west-2"),
                s("--service"),
                s("aps"),
                s("--service"),
                s("monitoring"),
                s("--credential"),
                s("AKIDTEST:secret"),
                s("--moto"),
                moto.clone(),
                s("--strip-prefix"),
                s("^/workspaces/[^/]+"),
                s("--log"),
                gate_log.to_string_lossy().into_owned(),
            ],
        );
        // Enough history for rate() over 5 s and ten one-second samples.
        let enough = format!(
            "{prometheus}/api/v1/query?query=count_over_time(http_requests_total%7Bcode%3D%22200%22%2Crevision%3D%22{BLUE}%22%7D%5B1m%5D)"
        );
        let started = std::time::Instant::now();
        loop {
            let samples = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import json,sys,urllib.request\ntry:\n r=json.load(urllib.request.urlopen(sys.argv[1], timeout=2))['data']['result']\n print(int(r[0]['value'][1]) if r else 0)\nexcept Exception:\n print(0)",
                    &enough,
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().unwrap_or(0))
                .unwrap_or(0);
            if samples >= 15 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "Prometheus holds no samples of the app after 2 minutes"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Stack {
            prometheus,
            gate: format!("http://127.0.0.1:{gate}"),
            gate_log,
            moto,
        }
    }
}

async fn run(checks: Value) -> Value {
    let mut ev = event(EVENT);
    ev["hookDetails"] = json!({"greenlight": {"checks": checks}});
    let services = Services::new(
        Ok(BaseConfig::None),
        Some(sdk_config_for(&stack().moto).await),
    );
    handle(
        &services,
        Role::AfterAllowTraffic,
        &ev,
        deadline_in(Duration::from_secs(20)),
    )
    .await
    .unwrap()
}

fn prom(query: &str, extra: Value) -> Value {
    let mut q = json!({"url": stack().prometheus, "query": query, "step": "1s"});
    q.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "prometheus": q })
}

fn threshold(label: &str, query: Value, threshold: f64) -> Value {
    json!({"type": "metricThreshold", "label": label, "query": query, "comparison": ">",
        "threshold": threshold, "datapoints": 5, "toBreach": 2, "interval": "1s"})
}

fn error_rate(revision: &str) -> String {
    format!(
        r#"sum(rate(http_requests_total{{revision="{revision}",code="500"}}[5s])) / sum(rate(http_requests_total{{revision="{revision}"}}[5s]))"#
    )
}

fn p50(revision: &str) -> String {
    format!(
        r#"histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{revision="{revision}"}}[5s])))"#
    )
}

fn gate_lines() -> Vec<Value> {
    std::fs::read_to_string(&stack().gate_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn threshold_on_an_error_rate_passes_the_clean_revision_and_fails_the_bad_one() {
    let a = run(json!({"errors": threshold("error rate of blue",
        prom(&error_rate("${sourceRevisionId}"), json!({})), 0.1)}))
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(
        reason(&a).contains("error rate of blue was 0 (0 of 5 datapoints above 0.1)"),
        "{}",
        reason(&a)
    );
    let a = run(json!({"errors": threshold("error rate of green",
        prom(&error_rate("${targetRevisionId}"), json!({})), 0.1)}))
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("error rate of green was 0.")
            && reason(&a).contains("datapoints above 0.1"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn threshold_on_a_histogram_quantile() {
    let a = run(json!({"latency": threshold("median latency of green",
        prom(&p50("${targetRevisionId}"), json!({})), 0.1)}))
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("median latency of green was 0.1")
            || reason(&a).contains("median latency of green was 0.2"),
        "{}",
        reason(&a)
    );
    let a = run(json!({"latency": threshold("median latency of blue",
        prom(&p50("${sourceRevisionId}"), json!({})), 0.1)}))
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
}

#[tokio::test]
async fn canary_judges_the_new_revision_against_the_baseline_by_label() {
    let series = |canary: &str, baseline: &str| {
        json!({"latency": {"type": "canary", "label": "median latency", "unit": "s", "window": "1m",
            "canary": prom(&p50(canary), json!({})), "baseline": prom(&p50(baseline), json!({})),
            "series": {"direction": "increase"}, "interval": "1s"}})
    };
    let a = run(series("${targetRevisionId}", "${sourceRevisionId}")).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(reason(&a).contains("median latency"), "{}", reason(&a));
    let a = run(series("twin", "${sourceRevisionId}")).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");

    let count = |revision: &str, code: &str| {
        prom(
            &format!(r#"sum(increase(http_requests_total{{revision="{revision}"{code}}}[5s]))"#),
            json!({"step": "5s"}),
        )
    };
    let errors = json!({"errors": {"type": "canary", "label": "error rate", "compare": "errorRate", "window": "1m",
        "canaryErrors": count("${targetRevisionId}", r#",code="500""#), "canaryRequests": count("${targetRevisionId}", ""),
        "baselineErrors": count("${sourceRevisionId}", r#",code="500""#), "baselineRequests": count("${sourceRevisionId}", ""),
        "interval": "1s"}});
    let a = run(errors).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(reason(&a).contains("error rate"), "{}", reason(&a));
}

#[tokio::test]
async fn an_empty_result_is_no_evidence() {
    let a = run(json!({"errors": threshold("error rate of a quiet revision",
        prom(&error_rate("absent"), json!({})), 0.1)}))
    .await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS", "{a:#}");
    assert!(
        reason(&a).contains(
            "not enough evidence for error rate of a quiet revision yet: 0 datapoint(s), 3 needed"
        ),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn a_promql_error_and_several_series_say_what_to_fix() {
    let a = run(
        json!({"bad": threshold("x", prom("sum(rate(http_requests_total[5s])", json!({})), 1.0)}),
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("bad_data") && r.contains("sum(rate(http_requests_total[5s])"),
        "{r}"
    );

    let a =
        run(json!({"many": threshold("x", prom("rate(http_requests_total[5s])", json!({})), 1.0)}))
            .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("series") && reason(&a).contains("aggregate"),
        "{}",
        reason(&a)
    );
}

/// PromQL full of characters that need encoding in the form body: braces, quotes, `=~`,
/// `|`, brackets, `+`, spaces and non-ASCII.
fn encoded_query() -> String {
    r#"sum(rate(http_requests_total{revision="${targetRevisionId}",code=~"5..|4.."}[5s])) / sum(rate(http_requests_total{revision="${targetRevisionId}"}[5s])) + 0 * count(up{job=~"app|ünïcödé"} or vector(1))"#.to_string()
}

#[tokio::test]
async fn sigv4_for_aps_and_monitoring_is_verified_by_an_independent_signer() {
    let gate = &stack().gate;
    for (url, service) in [
        (format!("{gate}/workspaces/ws-12345678-abcd"), "aps"),
        (gate.clone(), "monitoring"),
    ] {
        let before = gate_lines().len();
        let query = json!({"prometheus": {"url": url, "query": encoded_query(), "step": "1s",
            "sigv4": {"service": service, "region": "us-west-2"}}});
        let a = run(json!({"errors": threshold("error rate of green", query, 0.1)})).await;
        assert_eq!(a["hookStatus"], "FAILED", "{service}: {a:#}");
        assert!(
            reason(&a).contains("error rate of green was 0."),
            "{service}: {}",
            reason(&a)
        );
        let seen = gate_lines();
        let mine: Vec<&Value> = seen[before..]
            .iter()
            .filter(|l| l["service"] == service)
            .collect();
        assert!(
            !mine.is_empty(),
            "{service}: no request reached the gate: {seen:?}"
        );
        assert!(
            mine.iter().all(|l| l["verified"] == true),
            "{service}: {mine:?}"
        );
    }

    // Signed for the wrong region: refused, and the reason says what to check.
    let query = json!({"prometheus": {"url": format!("{gate}/workspaces/ws-1"), "query": "up", "step": "1s",
        "sigv4": {"service": "aps", "region": "eu-west-1"}}});
    let a = run(json!({"errors": threshold("x", query, 0.1)})).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("refused the SigV4-signed request (403") && r.contains("aps:QueryMetrics"),
        "{r}"
    );

    // Not signed at all.
    let query = json!({"prometheus": {"url": format!("{gate}/workspaces/ws-1"), "query": "up", "step": "1s"}});
    let a = run(json!({"errors": threshold("x", query, 0.1)})).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("Missing Authentication Token") && r.contains("\"sigv4\""),
        "{r}"
    );
}

#[tokio::test]
async fn a_role_is_assumed_through_sts_to_sign() {
    let before = gate_lines().len();
    let query = json!({"prometheus": {"url": format!("{}/workspaces/ws-other-account", stack().gate),
        "query": error_rate("${sourceRevisionId}"), "step": "1s",
        "sigv4": {"service": "aps", "region": "us-west-2", "roleArn": "arn:aws:iam::210987654321:role/metrics-reader"}}});
    let a = run(json!({"errors": threshold("error rate of blue", query, 0.1)})).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    let seen = gate_lines();
    let assumed: Vec<&Value> = seen[before..]
        .iter()
        .filter(|l| l["accessKeyId"] != "AKIDTEST")
        .collect();
    assert!(!assumed.is_empty(), "{seen:?}");
    assert!(
        assumed
            .iter()
            .all(|l| l["verified"] == true && l["sessionToken"] == true),
        "{assumed:?}"
    );
}

#[tokio::test]
async fn bearer_token_and_headers_reach_a_server_outside_aws() {
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let record = seen.clone();
    let addr = serve(
        Router::new()
            .route(
                // A proxy that refuses the request and echoes what it got.
                "/echo/api/v1/query_range",
                post(|headers: HeaderMap| async move {
                    let got = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        format!("bad credentials: {got}"),
                    )
                }),
            )
            .route(
                "/api/prom/api/v1/query_range",
                post(move |headers: HeaderMap, body: String| {
                    let record = record.clone();
                    async move {
                        let h = |k: &str| {
                            headers
                                .get(k)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        record
                            .lock()
                            .unwrap()
                            .push((h("authorization"), h("x-scope-orgid"), body));
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let values: Vec<Value> =
                            (0..5).map(|i| json!([now - 5 + i, "0.5"])).collect();
                        axum::Json(json!({"status": "success", "data": {"resultType": "matrix",
                    "result": [{"metric": {}, "values": values}]}}))
                    }
                }),
            ),
    )
    .await;
    let query = json!({"prometheus": {"url": format!("http://{addr}/api/prom"), "query": "up{service=\"${service}\"}",
        "step": "1s", "auth": {"bearer": "glc_token-with-secret-value"}, "headers": {"X-Scope-OrgID": "team-${service}"}}});
    let a = run(json!({"errors": threshold("availability", query, 1.0)})).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "Bearer glc_token-with-secret-value");
    assert_eq!(seen[0].1, "team-checkout");
    assert!(
        seen[0].2.contains("query=up%7Bservice%3D%22checkout%22%7D"),
        "{}",
        seen[0].2
    );
    // The answer echoes the event's own hookDetails; what Greenlight adds never has the token.
    assert!(
        !a["hookDetails"]["greenlightDecision"]
            .to_string()
            .contains("glc_token-with-secret-value")
    );

    // A server that echoes the token in its refusal: the reason quotes it redacted.
    let query = json!({"prometheus": {"url": format!("http://{addr}/echo"), "query": "up",
        "step": "1s", "auth": {"bearer": "glc_token-with-secret-value"}}});
    let a = run(json!({"errors": threshold("availability", query, 1.0)})).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("refused the credentials") && r.contains("bad credentials: Bearer ***"),
        "{r}"
    );
    assert!(
        !a["hookDetails"]["greenlightDecision"]
            .to_string()
            .contains("glc_token-with-secret-value")
    );
}
