//! Arbitrary JSON never panics the event or configuration parsers, and always gets a valid
//! answer; durations parse to at most the maximum or fail with a message; forged carried
//! state (counters and times at any value) runs through the runner and the HTTP check
//! without a panic and gets a valid answer.
//!
//! Each property runs twice: a few hundred cases (or fewer, for the ones that invoke the
//! whole handler) in the default suite, and many more in its `#[ignore]`d `long_` twin:
//! `make fuzz-long`, or `cargo test -p greenlight --test properties -- --ignored`, with
//! `PROPTEST_CASES` cases (default 10,000).

use crate::support;

use std::time::Duration;

use greenlight::Role;
use greenlight::budget::Budget;
use greenlight::config::{self, CheckConfig, Source};
use greenlight::engine::runner::{self, CheckState, RunState, RunVerdict};
use greenlight::handle;
use greenlight::verdict::Evaluation;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 _:/.-]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("TEST_TRAFFIC_SHIFT"),
            Just("http"),
            Just("30s"),
            Just("http://127.0.0.1:9/"),
            Just("greenlight"),
            Just("arn:aws:ecs:us-west-2:1:service-revision/c/s/1"),
        ]
        .prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("executionId".to_string()),
        Just("lifecycleStage".to_string()),
        Just("resourceArn".to_string()),
        Just("executionDetails".to_string()),
        Just("serviceArn".to_string()),
        Just("targetServiceRevisionArn".to_string()),
        Just("testTrafficWeights".to_string()),
        Just("productionTrafficWeights".to_string()),
        Just("hookDetails".to_string()),
        Just("greenlight".to_string()),
        Just("checks".to_string()),
        Just("type".to_string()),
        Just("url".to_string()),
        Just("timeout".to_string()),
        Just("DeploymentId".to_string()),
        Just("greenlightState".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((keys.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Duration strings: numbers of any size with any unit humantime knows, combined, and
/// arbitrary text.
fn arb_duration() -> impl Strategy<Value = String> {
    let unit = prop_oneof![
        Just(""),
        Just("ns"),
        Just("us"),
        Just("ms"),
        Just("s"),
        Just("sec"),
        Just("m"),
        Just("min"),
        Just("h"),
        Just("hours"),
        Just("d"),
        Just("days"),
        Just("w"),
        Just("M"),
        Just("y"),
        Just("years"),
        Just("parsecs"),
    ];
    let number = prop_oneof![
        (0u64..100).prop_map(|n| n.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{20,30}",
    ];
    let part = (number, " ?", unit).prop_map(|(n, s, u)| format!("{n}{s}{u}"));
    prop_oneof![
        4 => prop::collection::vec(part, 1..4).prop_map(|p| p.join(" ")),
        1 => "\\PC{0,16}",
    ]
}

/// Times as a carried state may hold them: extremes, around now, and anything.
fn arb_ms() -> impl Strategy<Value = u64> {
    let now = runner::now_ms();
    prop_oneof![
        Just(0),
        Just(u64::MAX),
        (0u64..3_600_000).prop_map(move |d| now - d),
        (0u64..3_600_000).prop_map(move |d| now + d),
        any::<u64>(),
    ]
}

fn arb_count() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(u32::MAX), 0u32..10, any::<u32>()]
}

fn arb_check_state() -> impl Strategy<Value = CheckState> {
    (
        prop_oneof![Just("pending"), Just("passed"), Just("blocked"), Just("")],
        prop_oneof![Just("waiting"), Just("retrying"), Just("dryRun"), Just("")],
        arb_ms(),
        arb_count(),
        arb_ms(),
        arb_count(),
    )
        .prop_map(
            |(status, effect, first_at_ms, attempts, next_at_ms, n)| CheckState {
                status: status.into(),
                effect: effect.into(),
                first_at_ms,
                attempts,
                reason: "forged".into(),
                unobserved: n,
                data: json!({"attempts": n, "failures": n, "successesInARow": n, "startedAtMs": first_at_ms, "evaluations": n}),
                next_at_ms,
            },
        )
}

/// What a scripted check answers: pass, fail, pending for any wait, or an error.
fn arb_evaluation() -> impl Strategy<Value = Evaluation> {
    prop_oneof![
        Just(Evaluation::pass("ok")),
        Just(Evaluation::fail("bad")),
        Just(Evaluation::unobserved("throttled")),
        any::<u64>().prop_map(|s| Evaluation::pending(Duration::from_secs(s), "not yet")),
        (0u64..5_000).prop_map(|ms| Evaluation::pending(Duration::from_millis(ms), "soon")),
        Just(Evaluation::error("could not run")),
    ]
}

fn arb_common() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("fail"), Just("pass"), Just("retry")],
        any::<bool>(),
        prop_oneof![Just("1s"), Just("5m"), Just("24h")],
    )
        .prop_map(|(on_error, dry_run, within)| {
            json!({"type": "http", "url": "http://127.0.0.1:9/", "interval": "1s",
                "onError": on_error, "dryRun": dry_run, "within": within})
        })
}

fn valid(answer: &Value) {
    let status = answer["hookStatus"].as_str().unwrap();
    assert!(
        ["SUCCEEDED", "FAILED", "IN_PROGRESS"].contains(&status),
        "{answer}"
    );
    assert!(answer["hookDetails"].is_object());
    assert_eq!(
        answer.get("callBackDelay").is_some(),
        status == "IN_PROGRESS"
    );
    if let Some(d) = answer.get("callBackDelay") {
        let d = d.as_u64().unwrap();
        assert!((1..=900).contains(&d), "callBackDelay {d}: {answer}");
    }
}

fn answer_to(event: &Value) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let services = support::services_with(None);
    rt.block_on(handle(
        &services,
        Role::BeforeAllowTraffic,
        event,
        support::deadline_in(Duration::from_secs(2)),
    ))
    .unwrap()
}

fn arbitrary_event(event: Value) {
    // CodeDeploy-looking events would try to report; those are covered elsewhere.
    if event.get("DeploymentId").is_some() || event.get("LifecycleEventHookExecutionId").is_some() {
        return;
    }
    valid(&answer_to(&event));
}

fn arbitrary_hook_configuration(config: Value) {
    let mut event = support::event("ecs-test-traffic-shift.json");
    event["hookDetails"] = json!({"greenlight": config});
    valid(&answer_to(&event));
}

fn duration_text(s: String) {
    match greenlight::duration::parse(&s) {
        Ok(d) => assert!(d <= greenlight::duration::MAX, "{s:?}: {d:?}"),
        Err(e) => assert!(e.contains(&format!("{s:?}")), "{s:?}: {e}"),
    }
    let doc = json!({"checks": {"h": {"type": "http", "url": "http://x/", "interval": s, "within": "24h"}}});
    match config::parse(&doc) {
        Ok(c) => {
            let (_, interval) = c.checks[0].kind.interval().unwrap();
            assert!(interval <= greenlight::duration::MAX, "{s:?}: {interval:?}");
        }
        Err(e) => {
            assert_eq!(e.path, "checks.h.interval", "{s:?}: {e}");
            assert!(!e.message.is_empty());
        }
    }
}

fn forged_run_state(
    invocations: u32,
    started_at_ms: u64,
    states: Vec<CheckState>,
    answers: Vec<Evaluation>,
    commons: Vec<Value>,
) {
    let names = ["a", "b", "c"];
    let checks_doc: Map<String, Value> = names
        .iter()
        .zip(commons)
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    let checks: Vec<CheckConfig> = config::resolve(&[Source {
        origin: "property".into(),
        value: json!({ "checks": checks_doc }),
    }])
    .unwrap()
    .checks;
    let mut prior = RunState::fresh("d");
    prior.invocations = invocations;
    prior.started_at_ms = started_at_ms;
    for (n, s) in names.iter().zip(states) {
        prior.checks.insert(n.to_string(), s);
    }
    let before = prior.clone();
    let answers = &answers;
    let f: &runner::Evaluator<'_> = &move |c, _, _| {
        let i = names.iter().position(|n| *n == c.name).unwrap_or(0);
        let ev = answers[i % answers.len()].clone();
        Box::pin(async move { ev })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(runner::run(
        &checks,
        prior,
        Budget::of(Duration::from_millis(30)),
        f,
    ));
    let now = runner::now_ms();
    assert_eq!(r.state.invocations, invocations.saturating_add(1));
    if let RunVerdict::Pending { call_back_after } = r.verdict {
        assert!(
            call_back_after >= runner::MIN_CALL_BACK && call_back_after <= runner::MAX_CALL_BACK,
            "{call_back_after:?}"
        );
        let earliest = checks
            .iter()
            .filter(|c| r.state.checks[&c.name].status != "passed")
            .map(|c| c.common.within.get())
            .min()
            .unwrap();
        assert!(
            call_back_after <= earliest.max(runner::MIN_CALL_BACK),
            "{call_back_after:?} > within {earliest:?}"
        );
    }
    for c in &checks {
        let s = &r.state.checks[&c.name];
        assert!(s.first_at_ms <= now, "{s:?}");
        assert!(s.attempts >= before.checks[&c.name].attempts, "{s:?}");
    }
}

fn forged_hook_state(state: Value) {
    let mut event = support::event("ecs-test-traffic-shift.json");
    let checks =
        json!({"h": {"type": "http", "url": "http://127.0.0.1:9/health", "failureLimit": 5}});
    event["hookDetails"] = json!({"greenlight": {"checks": checks}, "greenlightState": state});
    let answer = answer_to(&event);
    valid(&answer);
}

fn arb_hook_state() -> impl Strategy<Value = Value> {
    let deployment = support::event("ecs-test-traffic-shift.json")["resourceArn"].clone();
    (
        arb_count(),
        arb_ms(),
        arb_check_state(),
        (arb_count(), arb_count(), arb_count(), 0usize..50),
    )
        .prop_map(move |(invocations, started, mut check, (a, f, s, recent))| {
            let recent: Vec<String> = (0..recent).map(|i| format!("{}", 500 + i)).collect();
            check.data = json!({"http://127.0.0.1:9/health": {"attempts": a, "failures": f,
                "successesInARow": s, "passed": false, "recent": recent, "lastReason": ""}});
            json!({"v": runner::STATE_VERSION, "deployment": deployment, "invocations": invocations,
                "step": "TEST_TRAFFIC_SHIFT", "startedAtMs": started, "checks": {"h": check}})
        })
}

/// The case count of the long runs: `PROPTEST_CASES`, default 10,000.
fn long() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_events_get_a_valid_answer(event in arb_json()) {
        arbitrary_event(event);
    }

    #[test]
    fn arbitrary_hook_configurations_get_a_valid_answer(config in arb_json()) {
        arbitrary_hook_configuration(config);
    }

    #[test]
    fn arbitrary_documents_never_panic_the_config_parser(config in arb_json()) {
        let _ = config::parse(&config);
    }

    #[test]
    fn durations_are_at_most_the_maximum_or_fail_with_a_message(s in arb_duration()) {
        duration_text(s);
    }

    #[test]
    fn forged_run_state_never_panics_the_runner(
        invocations in arb_count(),
        started in arb_ms(),
        states in prop::collection::vec(arb_check_state(), 3),
        answers in prop::collection::vec(arb_evaluation(), 3),
        commons in prop::collection::vec(arb_common(), 3),
    ) {
        forged_run_state(invocations, started, states, answers, commons);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    #[test]
    fn forged_hook_state_gets_a_valid_answer(state in arb_hook_state()) {
        forged_hook_state(state);
    }
}

proptest! {
    #![proptest_config(long())]

    #[test]
    #[ignore = "long: make fuzz-long"]
    fn long_arbitrary_events_get_a_valid_answer(event in arb_json()) {
        arbitrary_event(event);
    }

    #[test]
    #[ignore = "long: make fuzz-long"]
    fn long_arbitrary_hook_configurations_get_a_valid_answer(config in arb_json()) {
        arbitrary_hook_configuration(config);
    }

    #[test]
    #[ignore = "long: make fuzz-long"]
    fn long_arbitrary_documents_never_panic_the_config_parser(config in arb_json()) {
        let _ = config::parse(&config);
    }

    #[test]
    #[ignore = "long: make fuzz-long"]
    fn long_durations_are_at_most_the_maximum_or_fail_with_a_message(s in arb_duration()) {
        duration_text(s);
    }

    #[test]
    #[ignore = "long: make fuzz-long"]
    fn long_forged_run_state_never_panics_the_runner(
        invocations in arb_count(),
        started in arb_ms(),
        states in prop::collection::vec(arb_check_state(), 3),
        answers in prop::collection::vec(arb_evaluation(), 3),
        commons in prop::collection::vec(arb_common(), 3),
    ) {
        forged_run_state(invocations, started, states, answers, commons);
    }

    #[test]
    #[ignore = "long: make fuzz-long"]
    fn long_forged_hook_state_gets_a_valid_answer(state in arb_hook_state()) {
        forged_hook_state(state);
    }
}

/// A function-URL request with arbitrary method, path, query, headers and body (plain or
/// base64), or an arbitrary document carrying `requestContext` or `detail-type`.
fn arb_endpoint_payload() -> impl Strategy<Value = Value> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "", "get", "OPTIONS"]);
    let path = prop::sample::select(vec![
        "/", "", "/slack", "/iam", "/x", "//", "/slack/", "/%2e%2e",
    ]);
    let request = (
        method,
        path,
        ".{0,200}",
        ".{0,300}",
        any::<bool>(),
        prop::collection::vec((".{0,20}", ".{0,40}"), 0..4),
    )
        .prop_map(|(m, p, q, body, b64, headers)| {
            let headers: Map<String, Value> =
                headers.into_iter().map(|(k, v)| (k, json!(v))).collect();
            json!({
                "version": "2.0", "rawPath": p, "rawQueryString": q, "headers": headers,
                "requestContext": {"http": {"method": m, "path": p}, "timeEpoch": 0},
                "body": if b64 { base64_of(&body) } else { body }, "isBase64Encoded": b64,
            })
        });
    prop_oneof![
        request,
        arb_json().prop_map(|v| json!({"requestContext": v})),
        arb_json().prop_map(|v| json!({"detail-type": v, "source": "aws.ecs", "detail": v})),
        arb_json(),
    ]
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The endpoint answers every payload: a function URL request gets an HTTP response with a
/// status and a body, anything else an object; nothing panics, and nothing is decided
/// (this process has no approval store configured).
fn arbitrary_endpoint_payload(payload: Value) {
    let services = support::services_with(None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(greenlight::edge::approvals::handle(
        &services,
        &payload,
        support::deadline_in(Duration::from_secs(5)),
    ));
    assert!(answer.is_object(), "{answer}");
    if payload.get("requestContext").is_some() {
        let status = answer["statusCode"].as_i64().unwrap_or(0);
        assert!((400..600).contains(&status), "{payload} → {answer}");
        assert!(answer["body"].is_string(), "{answer}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_endpoint_requests_get_an_answer(payload in arb_endpoint_payload()) {
        arbitrary_endpoint_payload(payload);
    }

    #[test]
    fn arbitrary_link_parameters_never_verify(params in ".{0,300}") {
        let key = b"0123456789abcdef0123456789abcdef";
        prop_assert!(greenlight::approval::link::verify(key, &params, 0).is_err());
        let _ = greenlight::approval::iam::check_query(&params, std::time::SystemTime::now());
        prop_assert!(!greenlight::edge::approvals::slack_signature_ok(key, &params, params.as_bytes(), &params, 0));
    }
}

proptest! {
    #![proptest_config(long())]

    #[test]
    #[ignore = "long: make fuzz-long"]
    fn long_arbitrary_endpoint_requests_get_an_answer(payload in arb_endpoint_payload()) {
        arbitrary_endpoint_payload(payload);
    }
}
