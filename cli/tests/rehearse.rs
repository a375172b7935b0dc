//! `greenlight rehearse` against fake hook functions served over the Lambda Invoke API:
//! the events they receive (stage, weights, ids, hookDetails), in order, and the exit
//! status, timeline and summary.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn blue_green() -> Value {
    json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
}

fn canary(percent: f64, bake: u32) -> Value {
    json!({"strategy": "CANARY", "bakeTimeInMinutes": 0,
           "canaryConfiguration": {"canaryPercent": percent, "canaryBakeTimeInMinutes": bake}})
}

fn linear(step: f64, bake: u32) -> Value {
    json!({"strategy": "LINEAR", "bakeTimeInMinutes": 0,
           "linearConfiguration": {"stepPercent": step, "stepBakeTimeInMinutes": bake}})
}

const ALL_BUT_RECONCILE: &[&str] = &[
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

/// One function `gate` at every stage but RECONCILE_SERVICE.
fn gate(strategy: Value) -> Value {
    service(strategy, &[("gate", ALL_BUT_RECONCILE, None)])
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_stages_weights_and_events() {
    let fake = FakeLambda::start(|_| succeeded()).await;
    let details = json!({"greenlight": {"whenNoChecks": "pass"}, "team": "payments"});
    let svc = service(
        blue_green(),
        &[
            ("before-install", &["PRE_SCALE_UP"], None),
            ("after-install", &["POST_SCALE_UP"], Some(details.clone())),
            (
                "before-allow-traffic",
                &[
                    "TEST_TRAFFIC_SHIFT",
                    "POST_TEST_TRAFFIC_SHIFT",
                    "PRE_PRODUCTION_TRAFFIC_SHIFT",
                ],
                None,
            ),
            (
                "after-allow-traffic",
                &["PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"],
                None,
            ),
        ],
    );
    let run = rehearse(&fake, &svc, &["--json"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        fake.lines(),
        lines(&[
            "before-install PRE_SCALE_UP test={} prod={}",
            "after-install POST_SCALE_UP test={} prod={}",
            "before-allow-traffic TEST_TRAFFIC_SHIFT test={green:100,blue:0} prod={}",
            "before-allow-traffic POST_TEST_TRAFFIC_SHIFT test={} prod={}",
            "before-allow-traffic PRE_PRODUCTION_TRAFFIC_SHIFT test={} prod={green:0,blue:100}",
            "after-allow-traffic PRODUCTION_TRAFFIC_SHIFT test={} prod={green:100,blue:0}",
            "after-allow-traffic POST_PRODUCTION_TRAFFIC_SHIFT test={} prod={}",
        ])
    );
    let calls = fake.calls();
    let mut ids: Vec<&str> = calls.iter().map(|c| c.execution_id()).collect();
    for c in &calls {
        let e = &c.event;
        assert_eq!(e["resourceArn"], DEPLOYMENT_ARN);
        assert_eq!(e["executionDetails"]["serviceArn"], SERVICE_ARN);
        assert_eq!(e["executionDetails"]["targetServiceRevisionArn"], GREEN);
        // hookDetails exactly as configured, and absent where nothing is configured.
        if c.function == "after-install" {
            assert_eq!(e["hookDetails"], details);
        } else {
            assert!(e.get("hookDetails").is_none(), "{e}");
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "a fresh executionId per hook execution");

    let summary = run.summary();
    assert_eq!(summary["outcome"], "completed");
    assert_eq!(summary["exitCode"], 0);
    assert_eq!(summary["invocations"], 7);
    let stages: Vec<&str> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ALL_BUT_RECONCILE);
    let inv = run.of_type("invocation");
    assert_eq!(inv.len(), 7);
    assert_eq!(inv[2]["stage"], "TEST_TRAFFIC_SHIFT");
    assert_eq!(inv[2]["testTrafficWeights"], json!({GREEN: 100, BLUE: 0}));
    assert_eq!(inv[2]["status"], "SUCCEEDED");
    assert_eq!(inv[2]["function"], "before-allow-traffic");
}

/// The events have the shape of the sample events the functions' tests use (events/):
/// the same keys at every level, of the same JSON types.
#[tokio::test(flavor = "multi_thread")]
async fn events_have_the_shape_of_the_samples() {
    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        // Weight maps: only that values are numbers.
                        if k.ends_with("TrafficWeights") {
                            (k.clone(), json!("weights"))
                        } else {
                            (k.clone(), shape(v))
                        }
                    })
                    .collect(),
            ),
            Value::String(_) => json!("string"),
            Value::Number(_) => json!("number"),
            other => other.clone(),
        }
    }
    let fake = FakeLambda::start(|_| succeeded()).await;
    let svc = service(
        canary(10.0, 0),
        &[(
            "gate",
            &[
                "RECONCILE_SERVICE",
                "PRE_SCALE_UP",
                "POST_SCALE_UP",
                "TEST_TRAFFIC_SHIFT",
                "POST_TEST_TRAFFIC_SHIFT",
                "PRE_PRODUCTION_TRAFFIC_SHIFT",
                "PRODUCTION_TRAFFIC_SHIFT",
                "POST_PRODUCTION_TRAFFIC_SHIFT",
            ],
            None,
        )],
    );
    assert_eq!(rehearse(&fake, &svc, &[]).await.code, 0);
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    for c in fake.calls() {
        let file = samples.join(format!(
            "ecs-{}.json",
            c.stage().to_lowercase().replace('_', "-")
        ));
        let sample: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let mut sample_shape = shape(&sample);
        // Some samples carry hookDetails; the hook here has none, so ECS sends none.
        sample_shape.as_object_mut().unwrap().remove("hookDetails");
        assert_eq!(shape(&c.event), sample_shape, "{}", file.display());
        for w in [c.test_weights(), c.production_weights()] {
            assert!(
                w.as_object()
                    .unwrap()
                    .values()
                    .all(|x| x.as_u64().is_some_and(|x| x <= 100)),
                "{w}"
            );
        }
    }
    // The sample production-traffic-shift events are the ones the functions read as
    // forward and as a rollback: the same weights as this tool sends.
    let sample = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(samples.join(f)).unwrap()).unwrap()
    };
    let calls = fake.calls();
    let prod: Vec<&Call> = calls
        .iter()
        .filter(|c| c.stage() == "PRODUCTION_TRAFFIC_SHIFT")
        .collect();
    let canary_sample = sample("ecs-production-traffic-shift-canary-step.json");
    let sample_weights: Vec<u64> = canary_sample["executionDetails"]["productionTrafficWeights"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let sent: Vec<u64> = prod[0]
        .production_weights()
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(sent, sample_weights, "green first, then blue: 10, 90");
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_steps_and_bake_times() {
    let fake = FakeLambda::start(|_| succeeded()).await;
    let mut strategy = canary(10.0, 2);
    strategy["bakeTimeInMinutes"] = json!(1);
    let run = rehearse(&fake, &gate(strategy), &["--json", "--time-scale", "0.001"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let lines = fake.lines();
    assert_eq!(
        lines[4..],
        self::lines(&[
            "gate PRE_PRODUCTION_TRAFFIC_SHIFT test={} prod={green:0,blue:100}",
            "gate PRODUCTION_TRAFFIC_SHIFT test={} prod={green:10,blue:90}",
            "gate PRE_PRODUCTION_TRAFFIC_SHIFT test={} prod={green:10,blue:90}",
            "gate PRODUCTION_TRAFFIC_SHIFT test={} prod={green:100,blue:0}",
            "gate POST_PRODUCTION_TRAFFIC_SHIFT test={} prod={}",
        ])
    );
    // The canary bake (2 min) between the steps, the deployment bake (1 min) at the end.
    let timeline: Vec<String> = run
        .json()
        .iter()
        .filter(|v| v["type"] == "invocation" || v["type"] == "bake")
        .map(|v| {
            if v["type"] == "bake" {
                format!("bake {} {}m {}ms", v["kind"], v["minutes"], v["waitMs"])
            } else {
                v["stage"].as_str().unwrap().to_string()
            }
        })
        .collect();
    assert_eq!(
        timeline[4..],
        self::lines(&[
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "bake \"step\" 2m 120ms",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            "bake \"deployment\" 1m 60ms",
        ])
    );
    let calls = fake.calls();
    assert!(calls[6].at.duration_since(calls[5].at) >= Duration::from_millis(115));
    let summary = run.summary();
    assert_eq!(
        summary["stages"][5]["step"],
        json!({"index": 1, "of": 2, "productionWeight": 10})
    );
    assert_eq!(
        summary["deploymentSeconds"].as_f64().unwrap().round(),
        180.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn linear_steps() {
    let fake = FakeLambda::start(|_| succeeded()).await;
    let run = rehearse(&fake, &gate(linear(30.0, 0)), &[]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let production: Vec<String> = fake
        .calls()
        .iter()
        .filter(|c| {
            c.stage().contains("PRODUCTION_TRAFFIC_SHIFT") && !c.stage().starts_with("POST")
        })
        .map(|c| format!("{} {}", c.stage(), short(c.production_weights())))
        .collect();
    assert_eq!(
        production,
        lines(&[
            "PRE_PRODUCTION_TRAFFIC_SHIFT {green:0,blue:100}",
            "PRODUCTION_TRAFFIC_SHIFT {green:30,blue:70}",
            "PRE_PRODUCTION_TRAFFIC_SHIFT {green:30,blue:70}",
            "PRODUCTION_TRAFFIC_SHIFT {green:60,blue:40}",
            "PRE_PRODUCTION_TRAFFIC_SHIFT {green:60,blue:40}",
            "PRODUCTION_TRAFFIC_SHIFT {green:90,blue:10}",
            "PRE_PRODUCTION_TRAFFIC_SHIFT {green:90,blue:10}",
            "PRODUCTION_TRAFFIC_SHIFT {green:100,blue:0}",
        ])
    );
    // The human timeline names the steps.
    assert!(
        run.stdout
            .contains("PRODUCTION_TRAFFIC_SHIFT [step 2/4 → 60%]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Outcome: completed"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_service_only_when_a_hook_lists_it() {
    let fake = FakeLambda::start(|_| succeeded()).await;
    // Not listed: never sent.
    assert_eq!(rehearse(&fake, &gate(blue_green()), &[]).await.code, 0);
    assert!(
        fake.calls()
            .iter()
            .all(|c| c.stage() != "RECONCILE_SERVICE")
    );
    assert_eq!(fake.calls()[0].stage(), "PRE_SCALE_UP");

    // Listed: first, with empty weight maps.
    let fake = FakeLambda::start(|_| succeeded()).await;
    let svc = service(
        blue_green(),
        &[
            ("reconciler", &["RECONCILE_SERVICE"], None),
            ("gate", ALL_BUT_RECONCILE, None),
        ],
    );
    assert_eq!(rehearse(&fake, &svc, &[]).await.code, 0);
    let l = fake.lines();
    assert_eq!(l[0], "reconciler RECONCILE_SERVICE test={} prod={}");
    assert_eq!(l[1], "gate PRE_SCALE_UP test={} prod={}");
    assert_eq!(l.len(), 8);

    // A first deployment has only one revision: no reconciliation.
    let fake = FakeLambda::start(|_| succeeded()).await;
    assert_eq!(rehearse(&fake, &svc, &["--first-deployment"]).await.code, 0);
    assert!(fake.calls().iter().all(|c| c.function != "reconciler"));
}

/// A Greenlight-like answer: IN_PROGRESS carrying state, echoing the configured keys.
fn in_progress(call: &Call, delay: Option<u64>) -> Reply {
    let mut details = call.event.get("hookDetails").cloned().unwrap_or(json!({}));
    let seen = details["greenlightState"]["invocations"]
        .as_u64()
        .unwrap_or(0);
    details["greenlightState"] = json!({"invocations": seen + 1});
    details["greenlightDecision"] =
        json!({"reason": format!("waiting for health: attempt {}", seen + 1), "checks": []});
    let mut answer = json!({"hookStatus": "IN_PROGRESS", "hookDetails": details});
    if let Some(d) = delay {
        answer["callBackDelay"] = json!(d);
    }
    Reply::Json(answer)
}

#[tokio::test(flavor = "multi_thread")]
async fn in_progress_is_invoked_again_with_the_returned_hook_details() {
    let fake = FakeLambda::start(|c| match (c.function.as_str(), c.n) {
        ("waiter", 1) => in_progress(c, None),
        ("waiter", 2) => in_progress(c, Some(2)),
        ("waiter", 3) => Reply::Json(json!({"hookStatus": "SUCCEEDED", "hookDetails": {"greenlightDecision": {"reason": "1 of 1 checks passed"}}})),
        _ => succeeded(),
    })
    .await;
    let configured = json!({"greenlight": {"checks": {}}, "team": "payments"});
    let svc = service(
        blue_green(),
        &[
            ("gate", ALL_BUT_RECONCILE, None),
            (
                "waiter",
                &["POST_TEST_TRAFFIC_SHIFT"],
                Some(configured.clone()),
            ),
        ],
    );
    let run = rehearse(&fake, &svc, &["--json", "--time-scale", "0.01"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let calls: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| c.function == "waiter")
        .collect();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.stage() == "POST_TEST_TRAFFIC_SHIFT"));
    // One hook execution: one executionId.
    assert!(
        calls
            .iter()
            .all(|c| c.execution_id() == calls[0].execution_id())
    );
    assert_eq!(calls[0].event["hookDetails"], configured);
    assert_eq!(
        calls[1].event["hookDetails"]["greenlightState"],
        json!({"invocations": 1})
    );
    assert_eq!(calls[1].event["hookDetails"]["team"], "payments");
    assert_eq!(
        calls[2].event["hookDetails"]["greenlightState"],
        json!({"invocations": 2})
    );
    assert_eq!(
        calls[2].event["hookDetails"]["greenlight"],
        json!({"checks": {}})
    );
    // No callBackDelay: ECS's 30 s (0.3 s at this scale); then callBackDelay 2 (0.02 s).
    assert!(calls[1].at.duration_since(calls[0].at) >= Duration::from_millis(290));
    assert!(calls[2].at.duration_since(calls[1].at) >= Duration::from_millis(19));
    assert!(calls[2].at.duration_since(calls[1].at) < Duration::from_millis(280));

    let inv: Vec<Value> = run
        .of_type("invocation")
        .into_iter()
        .filter(|v| v["function"] == "waiter")
        .collect();
    let seen: Vec<(u64, &str, Value)> = inv
        .iter()
        .map(|v| {
            (
                v["invocation"].as_u64().unwrap(),
                v["status"].as_str().unwrap(),
                v["callBackDelay"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "IN_PROGRESS", Value::Null),
            (2, "IN_PROGRESS", json!(2)),
            (3, "SUCCEEDED", Value::Null)
        ]
    );
    assert!(inv[0].as_object().unwrap().contains_key("callBackDelay"));
    assert_eq!(inv[1]["reason"], "waiting for health: attempt 2");
    let summary = run.summary();
    assert_eq!(summary["invocations"], 10);
    assert_eq!(summary["inProgress"], 2);
    assert_eq!(summary["stages"][3]["stage"], "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(summary["stages"][3]["invocations"], 4);
    assert_eq!(summary["stages"][3]["functions"], json!(["gate", "waiter"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shortened_wait_moves_the_carried_due_times_earlier() {
    let svc = service(
        blue_green(),
        &[("waiter", &["POST_TEST_TRAFFIC_SHIFT"], None)],
    );
    for (scale, due) in [("0", 3_800_000), ("0.001", 3_801_200)] {
        let fake = FakeLambda::start(|c| match (c.function.as_str(), c.n) {
            ("waiter", 1) => {
                Reply::Json(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 1200,
                "hookDetails": {"greenlightState": {"checks": {
                    "h": {"status": "pending", "attempts": 1, "nextAtMs": 5_000_000},
                    "p": {"status": "passed", "attempts": 1}}}}}))
            }
            _ => succeeded(),
        })
        .await;
        let run = rehearse(&fake, &svc, &["--time-scale", scale]).await;
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        let calls: Vec<Call> = fake
            .calls()
            .into_iter()
            .filter(|c| c.function == "waiter")
            .collect();
        assert_eq!(calls.len(), 2);
        let checks = &calls[1].event["hookDetails"]["greenlightState"]["checks"];
        // 1200 s waited as 1.2 s (or not at all): the due time is as much earlier.
        let at = checks["h"]["nextAtMs"].as_u64().unwrap();
        assert!(at.abs_diff(due) <= 1, "{scale}: {at}");
        assert_eq!(checks["h"]["attempts"], 1);
        assert_eq!(checks["p"], json!({"status": "passed", "attempts": 1}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_back_delay_of_any_size_times_the_hook_out() {
    // A second's wait first, then the largest delay an answer can give.
    let fake = FakeLambda::start(|c| match (c.function.as_str(), c.n) {
        ("stuck", 1) => Reply::Json(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 1})),
        ("stuck", _) => {
            Reply::Json(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": u64::MAX}))
        }
        _ => succeeded(),
    })
    .await;
    let svc = service(
        blue_green(),
        &[
            ("gate", ALL_BUT_RECONCILE, None),
            ("stuck", &["POST_TEST_TRAFFIC_SHIFT"], None),
        ],
    );
    let run = rehearse(&fake, &svc, &[]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("stuck at POST_TEST_TRAFFIC_SHIFT: still IN_PROGRESS after")
            && run.stdout.contains("its timeout is 1440m"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn returned_hook_details_can_replace_the_configured_ones() {
    let fake = FakeLambda::start(|c| match c.n {
        1 => Reply::Json(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 1, "hookDetails": {"greenlightState": {"n": 1}}})),
        _ => succeeded(),
    })
    .await;
    let configured = json!({"greenlight": {"checks": {}}});
    let svc = service(
        blue_green(),
        &[("waiter", &["POST_SCALE_UP"], Some(configured.clone()))],
    );
    assert_eq!(rehearse(&fake, &svc, &[]).await.code, 0);
    assert_eq!(
        fake.calls()[1].event["hookDetails"],
        json!({"greenlight": {"checks": {}}, "greenlightState": {"n": 1}})
    );
    let fake = FakeLambda::start(|c| match c.n {
        1 => Reply::Json(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 1, "hookDetails": {"greenlightState": {"n": 1}}})),
        _ => succeeded(),
    })
    .await;
    assert_eq!(
        rehearse(&fake, &svc, &["--returned-details", "replace"])
            .await
            .code,
        0
    );
    assert_eq!(
        fake.calls()[1].event["hookDetails"],
        json!({"greenlightState": {"n": 1}})
    );
}

/// Fails the first time `stage` is reached (moving forward), succeeds otherwise.
fn fail_at(stage: &'static str, nth: usize) -> impl Fn(&Call) -> Reply + Send + Sync {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    move |c: &Call| {
        if c.stage() == stage && !c.rolling_back() {
            let k = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if k == nth {
                return failed("blocked by health: answered 503");
            }
        }
        succeeded()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_at_each_stage_rolls_back_the_traffic_already_moved() {
    let test_back = "gate TEST_TRAFFIC_SHIFT back test={green:0,blue:100} prod={}";
    let prod_back = "gate PRODUCTION_TRAFFIC_SHIFT back test={} prod={green:0,blue:100}";
    let cases: &[(&str, &[&str])] = &[
        ("RECONCILE_SERVICE", &[]),
        ("PRE_SCALE_UP", &[]),
        ("POST_SCALE_UP", &[]),
        ("TEST_TRAFFIC_SHIFT", &[test_back]),
        ("POST_TEST_TRAFFIC_SHIFT", &[test_back]),
        ("PRE_PRODUCTION_TRAFFIC_SHIFT", &[test_back]),
        ("PRODUCTION_TRAFFIC_SHIFT", &[prod_back, test_back]),
        ("POST_PRODUCTION_TRAFFIC_SHIFT", &[prod_back, test_back]),
    ];
    let mut all = vec!["RECONCILE_SERVICE"];
    all.extend_from_slice(ALL_BUT_RECONCILE);
    let svc = service(blue_green(), &[("gate", &all, None)]);
    for (stage, rollback) in cases {
        let fake = FakeLambda::start(fail_at(stage, 1)).await;
        let run = rehearse(&fake, &svc, &["--json"]).await;
        assert_eq!(run.code, 1, "{stage}: {}{}", run.stdout, run.stderr);
        let l = fake.lines();
        let at = all.iter().position(|s| s == stage).unwrap();
        // Every stage up to the failing one, in order, then the rollback.
        let forward: Vec<&str> = l[..=at]
            .iter()
            .map(|x| x.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(forward, all[..=at], "{stage}");
        assert_eq!(l[at + 1..], lines(rollback), "{stage}");
        let summary = run.summary();
        assert_eq!(summary["outcome"], "rolledBack", "{stage}");
        assert_eq!(summary["failure"]["stage"], *stage);
        assert_eq!(summary["failure"]["function"], "gate");
        assert_eq!(
            summary["failure"]["reason"],
            "blocked by health: answered 503"
        );
        let rb = run.of_type("rollback");
        assert_eq!(rb.len(), 1);
        let back: Vec<&str> = rollback
            .iter()
            .map(|x| x.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(rb[0]["stages"], json!(back));
        // The rollback invocations are new hook executions.
        let calls = fake.calls();
        for c in &calls[at + 1..] {
            assert!(
                calls[..=at]
                    .iter()
                    .all(|f| f.execution_id() != c.execution_id())
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_failures_roll_back_from_the_step_reached() {
    let svc = gate(canary(10.0, 0));
    // At the second step's PRE_PRODUCTION_TRAFFIC_SHIFT, 10 % of production is on green.
    let fake = FakeLambda::start(fail_at("PRE_PRODUCTION_TRAFFIC_SHIFT", 2)).await;
    let run = rehearse(&fake, &svc, &["--json"]).await;
    assert_eq!(run.code, 1);
    let l = fake.lines();
    assert_eq!(
        l[6..],
        lines(&[
            "gate PRE_PRODUCTION_TRAFFIC_SHIFT test={} prod={green:10,blue:90}",
            "gate PRODUCTION_TRAFFIC_SHIFT back test={} prod={green:0,blue:100}",
            "gate TEST_TRAFFIC_SHIFT back test={green:0,blue:100} prod={}",
        ])
    );
    assert_eq!(
        run.summary()["failure"]["step"],
        json!({"index": 2, "of": 2, "productionWeight": 100})
    );
    // At the first step's PRE_PRODUCTION_TRAFFIC_SHIFT, production has not moved.
    let fake = FakeLambda::start(fail_at("PRE_PRODUCTION_TRAFFIC_SHIFT", 1)).await;
    assert_eq!(rehearse(&fake, &svc, &[]).await.code, 1);
    assert_eq!(
        fake.lines().last().unwrap(),
        "gate TEST_TRAFFIC_SHIFT back test={green:0,blue:100} prod={}"
    );
    assert_eq!(fake.lines().len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_hooks_at_the_traffic_shift_stages_are_re_invoked() {
    // The failing hook is not at a traffic-shift stage; the traffic-shift hooks are
    // re-invoked; the others are not.
    let fake = FakeLambda::start(|c| {
        if c.function == "after-allow-traffic" {
            failed("blocked by errors: 5xx rate 12% > 1%")
        } else {
            succeeded()
        }
    })
    .await;
    let svc = service(
        blue_green(),
        &[
            ("before-install", &["PRE_SCALE_UP"], None),
            ("before-allow-traffic", &["TEST_TRAFFIC_SHIFT"], None),
            ("shifter", &["PRODUCTION_TRAFFIC_SHIFT"], None),
            (
                "after-allow-traffic",
                &["POST_PRODUCTION_TRAFFIC_SHIFT"],
                None,
            ),
        ],
    );
    let run = rehearse(&fake, &svc, &[]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        fake.lines(),
        lines(&[
            "before-install PRE_SCALE_UP test={} prod={}",
            "before-allow-traffic TEST_TRAFFIC_SHIFT test={green:100,blue:0} prod={}",
            "shifter PRODUCTION_TRAFFIC_SHIFT test={} prod={green:100,blue:0}",
            "after-allow-traffic POST_PRODUCTION_TRAFFIC_SHIFT test={} prod={}",
            "shifter PRODUCTION_TRAFFIC_SHIFT back test={} prod={green:0,blue:100}",
            "before-allow-traffic TEST_TRAFFIC_SHIFT back test={green:0,blue:100} prod={}",
        ])
    );
    // The human timeline: the failure's reason and its checks, the rollback, the outcome.
    let out = &run.stdout;
    assert!(
        out.contains("after-allow-traffic")
            && out.contains("FAILED  blocked by errors: 5xx rate 12% > 1%"),
        "{out}"
    );
    assert!(
        out.contains("· health (http): blocked: blocked by errors"),
        "{out}"
    );
    assert!(
        out.contains("ROLLBACK: after-allow-traffic failed at POST_PRODUCTION_TRAFFIC_SHIFT"),
        "{out}"
    );
    assert!(out.contains("PRODUCTION_TRAFFIC_SHIFT [rollback]"), "{out}");
    assert!(out.contains("Outcome: rolled back"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_failing_during_the_rollback() {
    let fake = FakeLambda::start(|c| {
        if c.stage() == "POST_PRODUCTION_TRAFFIC_SHIFT" || c.rolling_back() {
            failed("no")
        } else {
            succeeded()
        }
    })
    .await;
    let run = rehearse(&fake, &gate(blue_green()), &["--json"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.summary()["outcome"], "rollbackFailed");
    // Both rollback stages are still invoked.
    assert_eq!(fake.lines().len(), 9);
}

type MakeReply = Box<dyn Fn() -> Reply + Send + Sync>;

#[tokio::test(flavor = "multi_thread")]
async fn function_errors_invalid_answers_and_invocation_errors_are_failures() {
    let cases: Vec<(&str, MakeReply, &str, &str)> = vec![
        (
            "POST_TEST_TRAFFIC_SHIFT",
            Box::new(|| {
                Reply::FunctionError(
                    json!({"errorType": "Runtime.ExitError", "errorMessage": "panicked"}),
                )
            }),
            "FUNCTION_ERROR",
            "function error (Unhandled): Runtime.ExitError: panicked",
        ),
        (
            "POST_SCALE_UP",
            Box::new(|| Reply::Json(json!({"status": "OK"}))),
            "INVALID_ANSWER",
            "the answer has no hookStatus",
        ),
        (
            "POST_SCALE_UP",
            Box::new(|| Reply::Json(json!({"hookStatus": "DONE"}))),
            "INVALID_ANSWER",
            "hookStatus is \"DONE\"",
        ),
        (
            "PRODUCTION_TRAFFIC_SHIFT",
            Box::new(|| Reply::Http(404, "Function not found: gate".into())),
            "INVOCATION_ERROR",
            "HTTP 404 Not Found: Function not found: gate",
        ),
        (
            // A SUCCEEDED answer past Lambda's 6 MB limit is not read whole.
            "PRODUCTION_TRAFFIC_SHIFT",
            Box::new(|| {
                Reply::Json(
                    json!({"hookStatus": "SUCCEEDED", "hookDetails": {"pad": "x".repeat(7 << 20)}}),
                )
            }),
            "INVOCATION_ERROR",
            "is larger than 6 MiB",
        ),
    ];
    for (stage, reply, status, reason) in cases {
        let fake = FakeLambda::start(move |c| {
            if c.stage() == stage && !c.rolling_back() {
                reply()
            } else {
                succeeded()
            }
        })
        .await;
        let run = rehearse(&fake, &gate(blue_green()), &["--json"]).await;
        assert_eq!(run.code, 1, "{stage}: {}{}", run.stdout, run.stderr);
        let inv = run.of_type("invocation");
        let bad = inv.iter().find(|v| v["status"] == status).unwrap();
        assert_eq!(bad["stage"], stage);
        assert!(
            bad["reason"].as_str().unwrap().contains(reason),
            "{}",
            bad["reason"]
        );
        let summary = run.summary();
        assert_eq!(summary["outcome"], "rolledBack");
        assert!(
            summary["failure"]["reason"]
                .as_str()
                .unwrap()
                .starts_with(status),
            "{}",
            summary["failure"]
        );
        let rolled_back = fake.calls().iter().filter(|c| c.rolling_back()).count();
        let expected = match stage {
            "POST_SCALE_UP" => 0,
            "POST_TEST_TRAFFIC_SHIFT" => 1,
            _ => 2,
        };
        assert_eq!(rolled_back, expected, "{stage}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn first_deployment() {
    let fake = FakeLambda::start(|_| succeeded()).await;
    let run = rehearse(
        &fake,
        &gate(canary(20.0, 0)),
        &["--first-deployment", "--json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The weights name only the new revision.
    assert_eq!(
        fake.lines(),
        lines(&[
            "gate PRE_SCALE_UP test={} prod={}",
            "gate POST_SCALE_UP test={} prod={}",
            "gate TEST_TRAFFIC_SHIFT test={green:100} prod={}",
            "gate POST_TEST_TRAFFIC_SHIFT test={} prod={}",
            "gate PRE_PRODUCTION_TRAFFIC_SHIFT test={} prod={green:0}",
            "gate PRODUCTION_TRAFFIC_SHIFT test={} prod={green:20}",
            "gate PRE_PRODUCTION_TRAFFIC_SHIFT test={} prod={green:20}",
            "gate PRODUCTION_TRAFFIC_SHIFT test={} prod={green:100}",
            "gate POST_PRODUCTION_TRAFFIC_SHIFT test={} prod={}",
        ])
    );
    assert_eq!(
        run.of_type("start")[0]["sourceServiceRevisionArn"],
        Value::Null
    );
    // A failure has nothing to roll back to: no hook is re-invoked.
    let fake = FakeLambda::start(fail_at("POST_PRODUCTION_TRAFFIC_SHIFT", 1)).await;
    let run = rehearse(
        &fake,
        &gate(blue_green()),
        &["--first-deployment", "--json"],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(fake.calls().len(), 7);
    assert_eq!(run.summary()["outcome"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_hook_times_out() {
    let always = |c: &Call| {
        if c.function == "stuck" {
            Reply::Json(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 40}))
        } else {
            succeeded()
        }
    };
    // --max-invocations: the hook's timeout action (ROLLBACK by default) applies.
    let fake = FakeLambda::start(always).await;
    let svc = service(
        blue_green(),
        &[
            ("gate", ALL_BUT_RECONCILE, None),
            ("stuck", &["POST_TEST_TRAFFIC_SHIFT"], None),
        ],
    );
    let run = rehearse(&fake, &svc, &["--max-invocations", "3"]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.function == "stuck")
            .count(),
        3
    );
    assert!(
        run.stdout.contains(
            "stuck at POST_TEST_TRAFFIC_SHIFT: still IN_PROGRESS after 3 invocations (--max-invocations)"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        fake.lines().last().unwrap(),
        "gate TEST_TRAFFIC_SHIFT back test={green:0,blue:100} prod={}"
    );

    // The hook's own timeout, counted in deployment time (40 s + 40 s > 1 min), with
    // action CONTINUE: the deployment goes on.
    let fake = FakeLambda::start(always).await;
    let mut svc = svc.clone();
    svc["deploymentConfiguration"]["lifecycleHooks"][1]["timeoutConfiguration"] =
        json!({"timeoutInMinutes": 1, "action": "CONTINUE"});
    let run = rehearse(&fake, &svc, &["--json"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.function == "stuck")
            .count(),
        2
    );
    let notes = run.of_type("note");
    assert!(
        notes[0]["message"]
            .as_str()
            .unwrap()
            .contains("its timeout is 1m; timeoutConfiguration.action CONTINUE"),
        "{notes:?}"
    );
    assert_eq!(
        fake.calls().last().unwrap().stage(),
        "POST_PRODUCTION_TRAFFIC_SHIFT"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_at_one_stage_run_together_and_a_failure_stops_the_others() {
    let fake = FakeLambda::start(|c| match c.function.as_str() {
        "slow" => Reply::Json(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 30})),
        "quick" => {
            std::thread::sleep(Duration::from_millis(100));
            failed("no")
        }
        _ => succeeded(),
    })
    .await;
    let svc = service(
        blue_green(),
        &[
            ("slow", &["POST_SCALE_UP"], None),
            ("quick", &["POST_SCALE_UP"], None),
        ],
    );
    let run = rehearse(&fake, &svc, &["--json", "--time-scale", "1"]).await;
    assert_eq!(run.code, 1);
    // `slow` was invoked once, and not again 30 s later: the stage had failed.
    let calls = fake.calls();
    assert_eq!(calls.iter().filter(|c| c.function == "slow").count(), 1);
    assert_eq!(calls.iter().filter(|c| c.function == "quick").count(), 1);
    assert!(run.summary()["elapsedMs"].as_u64().unwrap() < 10_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_and_setup_errors_exit_with_2() {
    // Nothing listens at the endpoint.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = service_file(&gate(blue_green()));
    let run = run_raw(
        file.clone(),
        vec!["--endpoint".into(), format!("http://127.0.0.1:{port}")],
    )
    .await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("cargo lambda watch"), "{}", run.stderr);

    // A service file ECS would refuse.
    let bad = service_file(
        &json!({"serviceName": "checkout", "deploymentConfiguration": {"strategy": "CANARY"}}),
    );
    let run = run_raw(bad, vec![]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("canaryConfiguration"), "{}", run.stderr);

    let run = run_raw(
        std::env::temp_dir().join("greenlight-cli-test-missing.json"),
        vec![],
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);

    let run = run_raw(file.clone(), vec!["--time-scale".into(), "-1".into()]).await;
    assert_eq!(run.code, 2);
    let run = run_raw(
        file,
        vec![
            "--first-deployment".into(),
            "--source-revision-arn".into(),
            BLUE.into(),
        ],
    )
    .await;
    assert_eq!(run.code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn function_names_can_be_mapped_to_local_names() {
    let fake = FakeLambda::start(|_| succeeded()).await;
    let svc = service(
        blue_green(),
        &[("greenlight-after-install", &["POST_SCALE_UP"], None)],
    );
    let run = rehearse(
        &fake,
        &svc,
        &["--function", "greenlight-after-install=after-install"],
    )
    .await;
    assert_eq!(run.code, 0);
    assert_eq!(fake.calls()[0].function, "after-install");
}

/// `--aws` goes through the AWS SDK's Lambda Invoke, here pointed at the fake functions:
/// the function is named by its whole ARN, and a function error is a failure.
#[tokio::test(flavor = "multi_thread")]
async fn through_the_lambda_invoke_api_of_the_aws_sdk() {
    let fake = FakeLambda::start(|c| {
        if c.stage() == "POST_TEST_TRAFFIC_SHIFT" {
            Reply::FunctionError(json!({"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 300.00 seconds"}))
        } else {
            succeeded()
        }
    })
    .await;
    let file = service_file(&service(
        blue_green(),
        &[(
            "greenlight-before-allow-traffic",
            &["TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT"],
            None,
        )],
    ));
    let env = [
        ("AWS_ENDPOINT_URL", fake.endpoint()),
        ("AWS_ACCESS_KEY_ID", "AKIDTEST".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_CONFIG_FILE", "/nonexistent/config".into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/credentials".into(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let run = run_env(
        file,
        vec![
            "--aws".into(),
            "--time-scale".into(),
            "0".into(),
            "--json".into(),
        ],
        env,
    )
    .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let calls = fake.calls();
    assert_eq!(
        calls[0].function,
        "arn:aws:lambda:us-west-2:111122223333:function:greenlight-before-allow-traffic"
    );
    assert_eq!(
        calls.iter().map(Call::stage).collect::<Vec<_>>(),
        [
            "TEST_TRAFFIC_SHIFT",
            "POST_TEST_TRAFFIC_SHIFT",
            "TEST_TRAFFIC_SHIFT"
        ]
    );
    assert!(calls[2].rolling_back());
    let inv = run.of_type("invocation");
    assert_eq!(inv[1]["status"], "FUNCTION_ERROR");
    assert_eq!(
        inv[1]["reason"],
        "function error (Unhandled): Sandbox.Timedout: Task timed out after 300.00 seconds"
    );
    assert_eq!(inv[1]["function"], "greenlight-before-allow-traffic");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_service_file() {
    let fake = FakeLambda::start(|_| succeeded()).await;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/service.json");
    let run = run_raw(
        file,
        vec![
            "--endpoint".into(),
            fake.endpoint(),
            "--time-scale".into(),
            "0".into(),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let stages: Vec<String> = fake
        .calls()
        .iter()
        .map(|c| format!("{} {}", c.function, c.stage()))
        .collect();
    assert!(
        stages.contains(&"before-allow-traffic TEST_TRAFFIC_SHIFT".to_string()),
        "{stages:?}"
    );
    // Generated ARNs: the hooks' region and account, the service's cluster and name.
    let e = &fake.calls()[0].event;
    assert_eq!(
        e["executionDetails"]["serviceArn"],
        "arn:aws:ecs:us-east-1:123456789012:service/shop/checkout"
    );
    assert!(
        e["resourceArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/checkout/")
    );
}
