//! The runner with scripted evaluators: panics, hangs, policies, fail-fast, polling.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use greenlight::budget::Budget;
use greenlight::config::{self, CheckConfig, Source};
use greenlight::engine::runner::{self, RunState, RunVerdict};
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
    let cs = checks(
        json!({"checks": {"flaky": http(json!({"onError": "retry", "within": "1s", "interval": "1s"}))}}),
    );
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
    // Called back when `slow` is due.
    let mut prior = first.state;
    prior.checks.get_mut("slow").unwrap().next_at_ms = runner::now_ms();
    let second = run_prior(&cs, prior, Duration::from_secs(1), |_, _| {
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

fn pending_after(r: &runner::RunReport) -> Duration {
    match r.verdict {
        RunVerdict::Pending { call_back_after } => call_back_after,
        ref v => panic!("{v:?}: {}", r.reason),
    }
}

#[tokio::test]
async fn a_call_back_is_never_later_than_within_nor_than_fifteen_minutes() {
    // The check asks for two hours; it must decide within five minutes.
    let r = run_with(
        json!({"checks": {"p": http(json!({"within": "5m"}))}}),
        Duration::from_millis(300),
        |_, _| Box::pin(async { Evaluation::pending(Duration::from_secs(7200), "not yet") }),
    )
    .await;
    let after = pending_after(&r);
    assert!(
        after <= Duration::from_secs(300) && after >= Duration::from_secs(298),
        "{after:?}"
    );
    // Three minutes later (as carried), two are left.
    let cs = checks(json!({"checks": {"p": http(json!({"within": "5m"}))}}));
    let mut prior = r.state.clone();
    let p = prior.checks.get_mut("p").unwrap();
    p.first_at_ms -= 180_000;
    p.next_at_ms = 0;
    let r = run_prior(&cs, prior, Duration::from_millis(300), |_, _| {
        Box::pin(async { Evaluation::pending(Duration::from_secs(7200), "not yet") })
    })
    .await;
    let after = pending_after(&r);
    assert!(
        after <= Duration::from_secs(120) && after >= Duration::from_secs(118),
        "{after:?}"
    );
    // With a day to decide, ECS is still asked to call back within fifteen minutes.
    let r = run_with(
        json!({"checks": {"p": http(json!({"within": "24h"}))}}),
        Duration::from_millis(300),
        |_, _| Box::pin(async { Evaluation::pending(Duration::from_secs(7200), "not yet") }),
    )
    .await;
    assert_eq!(pending_after(&r), runner::MAX_CALL_BACK);
    // At the deadline the check is evaluated a last time, and blocks.
    let cs = checks(json!({"checks": {"p": http(json!({"within": "1s", "interval": "1s"}))}}));
    let r = run_prior(&cs, RunState::fresh("d"), Duration::from_secs(3), |_, _| {
        Box::pin(async { Evaluation::pending(Duration::from_secs(7200), "not yet") })
    })
    .await;
    assert_eq!(r.verdict, RunVerdict::Failed, "{}", r.reason);
    assert!(
        r.reason.contains("still undecided after 1s (within)"),
        "{}",
        r.reason
    );
    assert_eq!(r.state.checks["p"].attempts, 2);
}

/// `slow` stays pending for 20 minutes at a time, counting its evaluations in its state;
/// any other check passes. Every evaluation is counted in `calls`.
fn counting(
    calls: &AtomicU32,
) -> impl for<'b> Fn(&'b CheckConfig, Value) -> BoxFuture<'b, Evaluation> + Sync + Copy + '_ {
    move |c, data| {
        calls.fetch_add(1, Ordering::SeqCst);
        let slow = c.name == "slow";
        Box::pin(async move {
            if slow {
                let n = data.as_u64().unwrap_or(0) + 1;
                Evaluation::pending(
                    Duration::from_secs(1200),
                    format!("failure {n} of 5 tolerated"),
                )
                .state(json!(n))
            } else {
                Evaluation::pass("ok")
            }
        })
    }
}

#[tokio::test]
async fn a_call_back_before_the_next_attempt_is_due_evaluates_nothing() {
    let calls = AtomicU32::new(0);
    let cfg = json!({"checks": {"slow": http(json!({"within": "1h"})), "done": http(json!({}))}});
    let eval = counting(&calls);
    let first = run_with(cfg.clone(), Duration::from_millis(300), eval).await;
    assert!(pending_after(&first) >= Duration::from_secs(899));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let due = first.state.checks["slow"].next_at_ms;
    assert!(due >= runner::now_ms() + 1_199_000, "{due}");
    assert!(due <= runner::now_ms() + 1_321_000, "{due}");

    // Called back early: nothing is evaluated, nothing carried changes.
    let cs = checks(cfg.clone());
    let second = run_prior(&cs, first.state.clone(), Duration::from_millis(300), eval).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no evaluation before it is due"
    );
    let after = pending_after(&second);
    assert_eq!(after, runner::MAX_CALL_BACK);
    let slow = &second.state.checks["slow"];
    assert_eq!(slow.attempts, 1);
    assert_eq!(slow.data, json!(1));
    assert_eq!(slow, &first.state.checks["slow"], "nothing carried changes");
    assert_eq!(second.state.invocations, 2);
    let rec = second.checks.iter().find(|c| c.name == "slow").unwrap();
    assert_eq!(
        (rec.verdict.as_str(), rec.effect.as_str()),
        ("pending", "waiting")
    );
    // Due in 20 minutes, lengthened by up to a tenth at random (jitter).
    assert!(
        second
            .reason
            .starts_with("waiting for slow: next evaluation due in ")
            && ["19m 59s: ", "20m", "21m", "22m: "]
                .iter()
                .any(|d| second.reason.contains(&format!("due in {d}")))
            && second.reason.ends_with("failure 1 of 5 tolerated"),
        "{}",
        second.reason
    );

    // Once it is due, it is evaluated again and its state goes on.
    let mut prior = second.state.clone();
    prior.checks.get_mut("slow").unwrap().next_at_ms = runner::now_ms() - 1;
    let third = run_prior(&cs, prior, Duration::from_millis(300), eval).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(third.state.checks["slow"].attempts, 2);
    assert_eq!(third.state.checks["slow"].data, json!(2));

    // Due within the budget: the runner waits for it in this invocation.
    let mut prior = third.state.clone();
    prior.checks.get_mut("slow").unwrap().next_at_ms = runner::now_ms() + 200;
    let fourth = run_prior(&cs, prior, Duration::from_secs(2), eval).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(fourth.state.checks["slow"].attempts, 3);
}

#[tokio::test]
async fn forged_counters_at_their_maximum_do_not_panic() {
    let cfg =
        json!({"checks": {"p": http(json!({"within": "5m"})), "q": http(json!({"within": "5m"}))}});
    let cs = checks(cfg);
    for (first_at_ms, next_at_ms) in [(u64::MAX, u64::MAX), (0, 0), (u64::MAX, 0), (0, u64::MAX)] {
        let mut prior = RunState::fresh("d");
        prior.invocations = u32::MAX;
        prior.started_at_ms = u64::MAX;
        for name in ["p", "q"] {
            prior.checks.insert(
                name.into(),
                runner::CheckState {
                    status: "pending".into(),
                    effect: "waiting".into(),
                    first_at_ms,
                    attempts: u32::MAX,
                    reason: "forged".into(),
                    unobserved: u32::MAX,
                    data: json!({"attempts": u32::MAX, "startedAtMs": u64::MAX}),
                    next_at_ms,
                },
            );
        }
        let r = run_prior(&cs, prior, Duration::from_millis(300), |c, _| {
            let q = c.name == "q";
            Box::pin(async move {
                if q {
                    Evaluation::pass("ok")
                } else {
                    Evaluation::pending(Duration::MAX, "not yet")
                }
            })
        })
        .await;
        assert_eq!(r.state.invocations, u32::MAX);
        match r.verdict {
            // A start in the future counts as now: five minutes are left at most.
            RunVerdict::Pending { call_back_after } => {
                assert!(
                    call_back_after <= Duration::from_secs(300),
                    "{call_back_after:?}"
                );
                assert!(r.state.checks["p"].first_at_ms <= runner::now_ms());
            }
            // A start long ago: `within` has run out.
            RunVerdict::Failed => assert!(
                r.reason.contains("still undecided after 5m"),
                "{}",
                r.reason
            ),
            RunVerdict::Succeeded => panic!("{}", r.reason),
        }
        for c in r.state.checks.values() {
            assert!(
                c.attempts == u32::MAX && c.next_at_ms <= runner::now_ms() + 300_000,
                "{c:?}"
            );
        }
    }
}
