//! The runner with scripted evaluators: panics, hangs, policies, fail-fast, polling.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use greenlight::budget::Budget;
use greenlight::config::{self, CheckConfig, Source};
use greenlight::runner::{self, RunState, RunVerdict};
use greenlight::verdict::Evaluation;
use serde_json::{Value, json};

fn checks(v: Value) -> Vec<CheckConfig> {
    config::resolve(&[Source {
        origin: "test".into(),
        value: v,
    }])
    .unwrap()
    .checks
}

fn http(extra: Value) -> Value {
    let mut c = json!({"type": "http", "url": "http://127.0.0.1:9/"});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

async fn run_with<F>(cfg: Value, budget: Duration, f: F) -> runner::RunReport
where
    F: for<'a> Fn(&'a CheckConfig, Value) -> BoxFuture<'a, Evaluation> + Sync,
{
    let cs = checks(cfg);
    let eval = adapt(&f);
    runner::run(&cs, RunState::fresh("d"), Budget::of(budget), &eval).await
}

async fn run_prior<F>(
    cs: &[CheckConfig],
    prior: RunState,
    budget: Duration,
    f: F,
) -> runner::RunReport
where
    F: for<'a> Fn(&'a CheckConfig, Value) -> BoxFuture<'a, Evaluation> + Sync,
{
    let eval = adapt(&f);
    runner::run(cs, prior, Budget::of(budget), &eval).await
}

fn adapt<'a, F>(
    f: &'a F,
) -> impl Fn(&'a CheckConfig, Value, Budget) -> BoxFuture<'a, Evaluation> + Sync + 'a
where
    F: for<'b> Fn(&'b CheckConfig, Value) -> BoxFuture<'b, Evaluation> + Sync,
{
    move |c, d, _| f(c, d)
}

#[tokio::test]
async fn a_panicking_check_fails_closed_with_the_panic_message() {
    let r = run_with(
        json!({"checks": {"boom": http(json!({}))}}),
        Duration::from_secs(5),
        |_, _| Box::pin(async { panic!("index out of bounds") }),
    )
    .await;
    assert_eq!(r.verdict, RunVerdict::Failed);
    assert!(
        r.reason
            .contains("boom: the check could not run: the check panicked: index out of bounds"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn a_panic_fails_open_when_the_check_says_so() {
    let r = run_with(
        json!({"checks": {"boom": http(json!({"onError": "pass"}))}}),
        Duration::from_secs(5),
        |_, _| Box::pin(async { panic!("bug") }),
    )
    .await;
    assert_eq!(r.verdict, RunVerdict::Succeeded);
    assert_eq!(r.checks[0].effect, "failedOpen");
}

#[tokio::test]
async fn a_hung_check_is_cut_off_by_the_budget() {
    let started = std::time::Instant::now();
    let r = run_with(
        json!({"checks": {"hang": http(json!({}))}}),
        Duration::from_millis(300),
        |_, _| Box::pin(std::future::pending()),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.verdict, RunVerdict::Failed);
    assert!(
        r.reason.contains("did not finish within the time left"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn retry_policy_waits_then_answers_pending_and_gives_up_after_within() {
    let r = run_with(
        json!({"checks": {"flaky": http(json!({"onError": "retry"}))}}),
        Duration::from_millis(500),
        |_, _| Box::pin(async { Evaluation::error("AccessDenied") }),
    )
    .await;
    assert!(
        matches!(r.verdict, RunVerdict::Pending { .. }),
        "{:?}",
        r.verdict
    );
    assert_eq!(r.checks[0].effect, "retrying");
    // Past `within`, the same error blocks.
    let cs =
        checks(json!({"checks": {"flaky": http(json!({"onError": "retry", "within": "1s"}))}}));
    let mut prior = r.state.clone();
    prior.checks.get_mut("flaky").unwrap().first_at_ms -= 5_000;
    let r = run_prior(&cs, prior, Duration::from_secs(1), |_, _| {
        Box::pin(async { Evaluation::error("AccessDenied") })
    })
    .await;
    assert_eq!(r.verdict, RunVerdict::Failed);
    assert!(
        r.reason.contains("still could not run after 1s"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn fail_fast_cancels_the_others_and_records_them() {
    let r = run_with(
        json!({"checks": {"slow": http(json!({})), "bad": http(json!({}))}}),
        Duration::from_secs(10),
        |c, _| {
            let slow = c.name == "slow";
            Box::pin(async move {
                if slow {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Evaluation::pass("late")
                } else {
                    Evaluation::fail("bad release")
                }
            })
        },
    )
    .await;
    assert_eq!(r.verdict, RunVerdict::Failed);
    let slow = r.checks.iter().find(|c| c.name == "slow").unwrap();
    assert_eq!(slow.effect, "skipped");
    assert!(slow.reason.contains("another check blocked"));
}

#[tokio::test]
async fn pending_checks_are_polled_and_passed_ones_are_not_rerun() {
    let calls = AtomicU32::new(0);
    let r = run_with(
        json!({"checks": {"once": http(json!({})), "poll": http(json!({}))}}),
        Duration::from_secs(10),
        |c, data| {
            let n = if c.name == "poll" {
                calls.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                0
            };
            Box::pin(async move {
                if n == 0 {
                    return Evaluation::pass("ok");
                }
                let seen = data.as_u64().unwrap_or(0) + 1;
                if seen >= 3 {
                    Evaluation::pass(format!("ready after {seen}"))
                } else {
                    Evaluation::pending(Duration::from_millis(100), "not yet").state(json!(seen))
                }
            })
        },
    )
    .await;
    assert_eq!(r.verdict, RunVerdict::Succeeded);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        r.state.checks["once"].attempts, 1,
        "a passed check is not evaluated again"
    );
}

#[tokio::test]
async fn a_pending_check_that_cannot_be_polled_in_time_asks_to_be_called_back() {
    let r = run_with(
        json!({"checks": {"p": http(json!({}))}}),
        Duration::from_secs(1),
        |_, _| {
            Box::pin(async { Evaluation::pending(Duration::from_secs(45), "waiting for targets") })
        },
    )
    .await;
    match r.verdict {
        RunVerdict::Pending { call_back_after } => {
            assert!(call_back_after >= Duration::from_secs(44))
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(r.state.checks["p"].status, "pending");
    assert!(
        r.reason.starts_with("waiting for p: waiting for targets"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn a_dry_run_failure_keeps_its_effect_in_later_invocations() {
    let cfg = json!({"checks": {"shadow": http(json!({"dryRun": true})), "slow": http(json!({}))}});
    let first = run_with(cfg.clone(), Duration::from_millis(300), |c, _| {
        let shadow = c.name == "shadow";
        Box::pin(async move {
            if shadow {
                Evaluation::fail("p99 too high")
            } else {
                Evaluation::pending(Duration::from_secs(30), "not yet")
            }
        })
    })
    .await;
    assert!(matches!(first.verdict, RunVerdict::Pending { .. }));
    let cs = checks(cfg);
    let second = run_prior(&cs, first.state, Duration::from_secs(1), |_, _| {
        Box::pin(async { Evaluation::pass("ready") })
    })
    .await;
    assert_eq!(second.verdict, RunVerdict::Succeeded);
    let shadow = second.checks.iter().find(|c| c.name == "shadow").unwrap();
    assert_eq!(shadow.effect, "dryRun");
    assert!(
        second.reason.contains("dry run, not blocking: shadow"),
        "{}",
        second.reason
    );
}
