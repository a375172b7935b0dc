//! The `traffic` check against local servers with a controllable error rate and latency
//! (seeded, so every run sends the same answers): a clean run, too many errors, a slow p99,
//! too few requests, production compared, a hanging server, the budget, a run carried
//! across invocations.

use crate::support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use greenlight::services::BaseConfig;
use serde_json::{Value, json};
use support::*;

/// How a test server answers: `errors` of the requests fail with 500; `slow` of them take
/// `slow_ms`, the others `base_ms` plus up to 2 ms; `hang` never answers.
#[derive(Clone, Copy, Default)]
struct Behaviour {
    errors: f64,
    base_ms: u64,
    slow: f64,
    slow_ms: u64,
    hang: bool,
}

#[derive(Clone)]
struct App {
    rng: Arc<Mutex<fastrand::Rng>>,
    how: Behaviour,
    served: Arc<AtomicU32>,
}

async fn answer(State(app): State<App>) -> (StatusCode, &'static str) {
    let (fail, delay) = {
        let mut r = app.rng.lock().unwrap();
        let fail = r.f64() < app.how.errors;
        let delay = if r.f64() < app.how.slow {
            app.how.slow_ms
        } else {
            app.how.base_ms + r.u64(0..3)
        };
        (fail, delay)
    };
    if app.how.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    tokio::time::sleep(Duration::from_millis(delay)).await;
    app.served.fetch_add(1, Ordering::SeqCst);
    if fail {
        (StatusCode::INTERNAL_SERVER_ERROR, "boom")
    } else {
        (StatusCode::OK, r#"{"ok": true}"#)
    }
}

async fn server(how: Behaviour) -> (String, Arc<AtomicU32>) {
    let app = App {
        rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(7))),
        how,
        served: Arc::default(),
    };
    let served = app.served.clone();
    let addr = serve(
        Router::new()
            .route("/api/cart", get(answer))
            .with_state(app),
    )
    .await;
    (format!("http://{addr}"), served)
}

fn check(base: &str, extra: Value) -> Value {
    let mut c = json!({"type": "traffic",
        "scenarios": {"cart": {"url": format!("{base}/api/cart?user=${{service}}"),
            "headers": {"x-amzn-ecs-bluegreen-test": "1"}, "expectBody": {"jsonPointer": "/ok", "equals": true}}},
        "requests": 100, "concurrency": 8, "timeout": "1s"});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "load": c })
}

fn event_with(checks: Value) -> Value {
    let mut ev = event("ecs-test-traffic-shift.json");
    ev["hookDetails"] = json!({"greenlight": {"checks": checks}});
    ev
}

async fn run(ev: &Value, secs: u64) -> Value {
    let services = Services::new(
        Ok(BaseConfig::None),
        Some(sdk_config_for("http://127.0.0.1:9").await),
    );
    handle(
        &services,
        Role::BeforeAllowTraffic,
        ev,
        deadline_in(Duration::from_secs(secs)),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_clean_run_passes_with_its_numbers() {
    let (base, served) = server(Behaviour {
        base_ms: 2,
        ..Default::default()
    })
    .await;
    let a = run(
        &event_with(check(&base, json!({"latency": {"p99": "500ms"}}))),
        20,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("100 requests in ") && r.contains(": 0.0 % errors (limit 1 %), p50 "),
        "{r}"
    );
    assert!(r.contains("(limit 500 ms)"), "{r}");
    assert_eq!(served.load(Ordering::SeqCst), 100);
}

#[tokio::test]
async fn errors_above_the_limit_fail_with_the_rate_and_examples() {
    let (base, _) = server(Behaviour {
        errors: 0.2,
        base_ms: 1,
        ..Default::default()
    })
    .await;
    let a = run(&event_with(check(&base, json!({"maxErrorRate": 5}))), 20).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(r.contains("% errors (limit 5 %)"), "{r}");
    assert!(
        r.contains("cart: ") && r.contains("GET /api/cart?user=checkout: answered 500 (boom)"),
        "{r}"
    );
}

#[tokio::test]
async fn a_slow_p99_fails() {
    let (base, _) = server(Behaviour {
        base_ms: 1,
        slow: 0.05,
        slow_ms: 150,
        ..Default::default()
    })
    .await;
    let a = run(
        &event_with(check(
            &base,
            json!({"requests": 200, "concurrency": 16, "latency": {"p50": "50ms", "p99": "100ms"}}),
        )),
        20,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(r.contains("(limit 100 ms)") && r.contains("p99 15"), "{r}");
}

#[tokio::test]
async fn too_few_requests_is_no_verdict_and_the_run_carries_on_in_the_next_invocation() {
    let (base, served) = server(Behaviour {
        base_ms: 1,
        ..Default::default()
    })
    .await;
    let ev = event_with(check(
        &base,
        json!({"requests": 60, "rate": 15, "minRequests": 60}),
    ));
    let first = run(&ev, 4).await;
    assert_eq!(first["hookStatus"], "IN_PROGRESS", "{first:#}");
    let r = reason(&first);
    assert!(
        r.contains("not enough evidence yet: ") && r.contains(" of 60 requests sent"),
        "{r}"
    );
    let sent_first = served.load(Ordering::SeqCst);
    assert!((10..60).contains(&sent_first), "{sent_first}");

    let mut next = ev.clone();
    next["hookDetails"] = first["hookDetails"].clone();
    let second = run(&next, 20).await;
    assert_eq!(second["hookStatus"], "SUCCEEDED", "{second:#}");
    assert!(
        reason(&second).contains("60 requests in "),
        "{}",
        reason(&second)
    );
    assert_eq!(
        served.load(Ordering::SeqCst),
        60,
        "the second invocation sent only the rest"
    );
}

#[tokio::test]
async fn production_compared_flags_a_slower_new_revision_and_passes_an_equal_one() {
    let (production, prod_served) = server(Behaviour {
        base_ms: 5,
        ..Default::default()
    })
    .await;
    let (equal, _) = server(Behaviour {
        base_ms: 5,
        ..Default::default()
    })
    .await;
    let (slower, _) = server(Behaviour {
        base_ms: 40,
        ..Default::default()
    })
    .await;
    let compare = |base: &str| {
        check(
            base,
            json!({"requests": 150, "concurrency": 8, "compareWith": {"baseUrl": production}}),
        )
    };
    let a = run(&event_with(compare(&equal)), 30).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(reason(&a).contains("versus production: "), "{}", reason(&a));
    assert_eq!(
        prod_served.load(Ordering::SeqCst),
        150,
        "as many to production"
    );

    let a = run(&event_with(compare(&slower)), 30).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("versus production: latency of the new revision"),
        "{r}"
    );
}

#[tokio::test]
async fn a_hanging_server_is_bounded_by_the_timeouts_and_the_budget() {
    let (base, _) = server(Behaviour {
        hang: true,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let a = run(
        &event_with(check(
            &base,
            json!({"requests": 20, "timeout": "200ms", "concurrency": 4}),
        )),
        10,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("no answer within 200ms"),
        "{}",
        reason(&a)
    );

    // A run longer than the invocation stops starting requests before its budget ends.
    let (base, _) = server(Behaviour {
        base_ms: 1,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let a = run(
        &event_with(check(
            &base,
            json!({"requests": null, "duration": "2m", "rate": 50, "within": "10m"}),
        )),
        4,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a["hookStatus"], "IN_PROGRESS", "{a:#}");
}

#[tokio::test]
async fn methods_that_change_data_must_be_allowed() {
    let (base, served) = server(Behaviour::default()).await;
    let mut c = check(&base, json!({}));
    c["load"]["scenarios"]["cart"]["method"] = json!("POST");
    let a = run(&event_with(c), 10).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(reason(&a).contains("allowUnsafeMethods"), "{}", reason(&a));
    assert_eq!(served.load(Ordering::SeqCst), 0);
}
