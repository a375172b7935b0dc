//! The `datadog` metric source against a stand-in for Datadog's v2 timeseries API
//! (`standins/datadog.py`: the request and answer shapes Datadog documents, formulas over
//! named queries, `null`s in a partial series, `429` with the rate-limit headers, keys
//! refused, a key without the `timeseries_query` permission, a query that does not parse).

use crate::support;

use std::path::PathBuf;
use std::time::Duration;

use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use serde_json::{Value, json};
use support::*;

const API_KEY: &str = "dd-api-key-0123456789abcdef";
const APP_KEY: &str = "dd-app-key-fedcba9876543210";
const UNSCOPED: &str = "dd-app-key-without-scope-42";

struct Datadog {
    url: String,
    data: PathBuf,
    log: PathBuf,
    child: std::process::Child,
}

impl Drop for Datadog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Datadog {
    fn start(data: Value, extra: &[&str]) -> Datadog {
        let dir = std::env::temp_dir().join(format!(
            "greenlight-dd-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (data_file, log) = (dir.join("data.json"), dir.join("log.jsonl"));
        std::fs::write(&data_file, data.to_string()).unwrap();
        let mut args = vec![
            "--api-key",
            API_KEY,
            "--app-key",
            APP_KEY,
            "--unscoped-app-key",
            UNSCOPED,
        ];
        let (d, l) = (
            data_file.to_string_lossy().into_owned(),
            log.to_string_lossy().into_owned(),
        );
        args.extend(["--data", &d, "--log", &l]);
        args.extend(extra);
        let (child, port) = start_standin("datadog.py", &args);
        Datadog {
            url: format!("http://127.0.0.1:{port}"),
            data: data_file,
            log,
            child,
        }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn query(&self, extra: Value) -> Value {
        let mut q = json!({"url": self.url, "apiKey": API_KEY, "applicationKey": APP_KEY, "interval": "1m"});
        q.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "datadog": q })
    }
}

const ERRORS: &str =
    "sum:trace.http.request.errors{service:checkout,version:9386398427419951854}.as_count()";
const HITS: &str =
    "sum:trace.http.request.hits{service:checkout,version:9386398427419951854}.as_count()";

fn error_rate() -> Value {
    json!({"queries": {
        "errors": "sum:trace.http.request.errors{service:${service},version:${targetRevisionId}}.as_count()",
        "hits": "sum:trace.http.request.hits{service:${service},version:${targetRevisionId}}.as_count()"},
        "formula": "100 * errors / hits"})
}

async fn run(query: Value, threshold: f64) -> Value {
    let mut ev = event("ecs-production-traffic-shift-canary-step.json");
    ev["hookDetails"] = json!({"greenlight": {"checks": {"errors": {
        "type": "metricThreshold", "label": "error rate of green", "query": query,
        "comparison": ">", "threshold": threshold, "datapoints": 5, "toBreach": 2, "interval": "5s"}}}});
    let services = Services::new(
        Ok(BaseConfig::None),
        Some(sdk_config_for("http://127.0.0.1:9").await),
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

#[tokio::test]
async fn a_formula_over_named_queries_is_judged_with_its_numbers() {
    let dd = Datadog::start(
        json!({ERRORS: {"values": [1, 2, 30, 40, 35]}, HITS: {"values": [100, 100, 100, 100, 100]}}),
        &[],
    );
    let a = run(dd.query(error_rate()), 5.0).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("error rate of green was 35 (3 of 5 datapoints above 5)"),
        "{}",
        reason(&a)
    );
    let sent = dd.requests();
    assert_eq!(
        sent.len(),
        1,
        "one request per query and evaluation: {sent:?}"
    );
    let attributes = &sent[0]["body"]["data"]["attributes"];
    assert_eq!(
        attributes["formulas"],
        json!([{"formula": "100 * errors / hits"}])
    );
    assert_eq!(attributes["interval"], 60_000);
    assert_eq!(attributes["queries"][0]["query"], ERRORS);
    assert_eq!(sent[0]["apiKeyPresent"], true);
    assert!(!std::fs::read_to_string(&dd.log).unwrap().contains(API_KEY));

    std::fs::write(
        &dd.data,
        json!({ERRORS: {"values": [1, 2, 3, 4, 1]}, HITS: {"values": [100, 100, 100, 100, 100]}})
            .to_string(),
    )
    .unwrap();
    let a = run(dd.query(error_rate()), 5.0).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
}

#[tokio::test]
async fn nulls_of_a_partial_series_are_not_evidence() {
    let dd = Datadog::start(json!({ERRORS: {"values": [null, 1, null, null, 2]}}), &[]);
    let a = run(dd.query(json!({"query": ERRORS})), 5.0).await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS", "{a:#}");
    assert!(
        reason(&a).contains("2 datapoint(s), 3 needed"),
        "{}",
        reason(&a)
    );
    // No data at all: no evidence either.
    let a = run(dd.query(json!({"query": HITS})), 5.0).await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS", "{a:#}");
    assert!(reason(&a).contains("0 datapoint(s)"), "{}", reason(&a));
}

#[tokio::test]
async fn a_429_is_waited_out_when_the_limit_resets_soon() {
    let dd = Datadog::start(
        json!({ERRORS: {"values": [0, 0, 0, 0, 0]}}),
        &["--throttle-first", "1", "--reset", "1"],
    );
    let a = run(dd.query(json!({"query": ERRORS})), 5.0).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    let statuses: Vec<Value> = dd.requests().iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, vec![json!(429), json!(200)]);
}

#[tokio::test]
async fn a_429_that_resets_later_is_no_verdict() {
    let dd = Datadog::start(
        json!({ERRORS: {"values": [0, 0, 0, 0, 0]}}),
        &["--throttle-first", "100", "--reset", "30"],
    );
    let a = run(dd.query(json!({"query": ERRORS})), 5.0).await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("rate limit") && r.contains("resets in 30 s"),
        "{r}"
    );
    assert_eq!(dd.requests().len(), 1, "no second request before the reset");
}

#[tokio::test]
async fn refused_keys_a_missing_permission_and_a_bad_query_say_what_to_fix() {
    let dd = Datadog::start(json!({ERRORS: {"values": [0, 0, 0, 0, 0]}}), &[]);
    let a = run(
        dd.query(json!({"query": ERRORS, "applicationKey": "not-the-key"})),
        5.0,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(r.contains("refused the keys (403"), "{r}");
    // The answer echoes the event's own hookDetails; what Greenlight adds has no key.
    let decision = a["hookDetails"]["greenlightDecision"].to_string();
    assert!(!decision.contains("not-the-key") && !decision.contains(API_KEY));

    let a = run(
        dd.query(json!({"query": ERRORS, "applicationKey": UNSCOPED})),
        5.0,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("it needs the timeseries_query permission"),
        "{}",
        reason(&a)
    );
    assert!(
        !a["hookDetails"]["greenlightDecision"]
            .to_string()
            .contains(UNSCOPED)
    );

    let a = run(
        dd.query(
            json!({"query": "avg:trace.http.request.duration{service:${service}}.rollup(avg, 60"}),
        ),
        5.0,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("rejected the query") && reason(&a).contains("Error parsing query"),
        "{}",
        reason(&a)
    );
}
