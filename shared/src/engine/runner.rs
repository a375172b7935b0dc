//! The runner: evaluates a function's checks concurrently inside the invocation's time
//! budget, polls pending ones while the budget allows, applies each check's `onError` and
//! `dryRun` policy, and turns the results into one verdict.
//!
//! Across invocations (ECS `IN_PROGRESS`), what each check has established travels in
//! [`RunState`]; a check that passed is not run again.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use std::collections::BTreeMap;

use crate::aws::{CallCount, Calls, add_counts};
use crate::budget::Budget;
use crate::checks::OnError;
use crate::config::CheckConfig;
use crate::duration::{self, HumanDuration, millis};
use crate::record::CheckRecord;
use crate::verdict::{Evaluation, Outcome};

/// The state format version carried in `hookDetails`.
pub const STATE_VERSION: u32 = 1;

/// What a check has established so far in this deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckState {
    /// `passed` or `pending`.
    pub status: String,
    /// The effect recorded when it was decided (`passed`, `failedOpen`, `dryRun`, …).
    #[serde(default)]
    pub effect: String,
    /// When the check was first evaluated in this deployment (ms since the epoch).
    pub first_at_ms: u64,
    pub attempts: u32,
    pub reason: String,
    /// Observations in a row that AWS throttled or failed on its side (see
    /// [`Outcome::Unobserved`]); the next one backs off longer.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub unobserved: u32,
    /// The check's own state.
    #[serde(default)]
    pub data: Value,
    /// When the next evaluation is due (ms since the epoch; 0: at once). A call-back before
    /// then evaluates nothing and answers with the time still to wait.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_at_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// State carried between invocations of one hook in one deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub v: u32,
    /// The deployment this state belongs to ([`crate::deployment::Deployment::key`]).
    pub deployment: String,
    pub invocations: u32,
    /// The stage (and, for canary and linear steps, the traffic step) this state is for.
    #[serde(default)]
    pub step: String,
    pub started_at_ms: u64,
    pub checks: IndexMap<String, CheckState>,
    /// Notifications already delivered by this hook in this deployment, as
    /// `<event>:<channel>`, so that a re-invocation does not send them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified: Vec<String>,
}

impl RunState {
    pub fn fresh(deployment: &str) -> RunState {
        RunState {
            v: STATE_VERSION,
            deployment: deployment.to_string(),
            invocations: 0,
            step: String::new(),
            started_at_ms: now_ms(),
            checks: IndexMap::new(),
            notified: Vec::new(),
        }
    }
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

pub use crate::duration::now_ms;

/// The verdict of a run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunVerdict {
    Succeeded,
    Failed,
    /// Still undecided when the budget ran out: ask again after this long.
    Pending {
        call_back_after: Duration,
    },
}

/// The result of a run: the verdict, why, each check's record and the state to carry.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub verdict: RunVerdict,
    pub reason: String,
    pub checks: Vec<CheckRecord>,
    pub state: RunState,
}

/// Evaluates one check once, given its carried state and the budget.
pub type Evaluator<'a> =
    dyn Fn(&'a CheckConfig, Value, Budget) -> BoxFuture<'a, Evaluation> + Sync + 'a;

/// The shortest wait between two evaluations of a pending check.
pub const MIN_RETRY: Duration = Duration::from_millis(100);

/// How long an error retried under `onError: retry` waits before the next try (plus up
/// to a tenth more, at random).
pub const ERROR_RETRY: Duration = Duration::from_secs(10);

/// The first wait after an observation that AWS throttled (or failed on its side); it
/// doubles with each such observation in a row, up to [`UNOBSERVED_MAX_WAIT`].
pub const UNOBSERVED_FIRST_WAIT: Duration = Duration::from_secs(1);

/// The longest wait between two observations that AWS throttled.
pub const UNOBSERVED_MAX_WAIT: Duration = Duration::from_secs(20);

/// The most a gate's first observations in a deployment are delayed, at random, so that
/// gates started together do not call AWS in step.
pub const FIRST_OBSERVATION_JITTER: Duration = Duration::from_millis(250);

/// A polling wait with jitter: `d` plus up to a tenth more, at random, so that gates that
/// started together drift apart instead of polling AWS in waves. Never shorter than `d`.
pub fn jittered(d: Duration) -> Duration {
    d.saturating_add(d.mul_f64(fastrand::f64() / 10.0))
}

/// The wait after the `n`-th observation in a row that could not observe: exponential
/// from [`UNOBSERVED_FIRST_WAIT`] up to [`UNOBSERVED_MAX_WAIT`], with "equal jitter" (half
/// fixed, half random).
pub fn unobserved_backoff(n: u32) -> Duration {
    let exp = UNOBSERVED_FIRST_WAIT
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(UNOBSERVED_MAX_WAIT);
    exp / 2 + (exp / 2).mul_f64(fastrand::f64())
}

/// The range of `callBackDelay`. ECS documents no maximum; a call-back before any check is
/// due costs one short invocation that evaluates nothing, so the wait is capped.
pub const MIN_CALL_BACK: Duration = Duration::from_secs(1);
pub const MAX_CALL_BACK: Duration = Duration::from_secs(15 * 60);

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    crate::text::panic_message(p).unwrap_or_else(|| "a panic without a message".to_string())
}

enum Decided {
    Passed,
    Blocked,
    Waiting(Duration),
}

struct Live<'a> {
    check: &'a CheckConfig,
    state: CheckState,
    decided: Option<Decided>,
    next_at: Instant,
    /// When `within` runs out: the next evaluation is never later.
    deadline: Instant,
    record: Option<CheckRecord>,
    /// The AWS calls its evaluations made in this invocation.
    calls: BTreeMap<String, CallCount>,
}

fn record(
    check: &CheckConfig,
    ev: &Evaluation,
    effect: &str,
    reason: String,
    attempts: u32,
    took: Duration,
) -> CheckRecord {
    CheckRecord {
        name: check.name.clone(),
        kind: check.kind.type_name().to_string(),
        verdict: ev.outcome.label().to_string(),
        effect: effect.to_string(),
        reason,
        observed: ev.observed.clone(),
        expected: ev.expected.clone(),
        attempts,
        duration_ms: millis(took),
        aws_calls: BTreeMap::new(),
    }
}

/// Applies a check's policies to one evaluation.
fn judge(live: &mut Live<'_>, ev: Evaluation, took: Duration) {
    let check = live.check;
    let common = &check.common;
    live.state.attempts = live.state.attempts.saturating_add(1);
    live.state.data = ev.state.clone();
    let elapsed = Duration::from_millis(now_ms().saturating_sub(live.state.first_at_ms));
    let overdue = elapsed >= common.within.get();
    let attempts = live.state.attempts;
    live.state.unobserved = match ev.outcome {
        Outcome::Unobserved => live.state.unobserved.saturating_add(1),
        _ => 0,
    };

    let (decided, effect, reason) = match &ev.outcome {
        Outcome::Pass => (Decided::Passed, "passed", ev.reason.clone()),
        Outcome::Fail => (Decided::Blocked, "blocked", ev.reason.clone()),
        Outcome::Error => match common.on_error {
            OnError::Fail => (
                Decided::Blocked,
                "blocked",
                format!("the check could not run: {}", ev.reason),
            ),
            OnError::Pass => (
                Decided::Passed,
                "failedOpen",
                format!(
                    "the check could not run (failing open, onError: pass): {}",
                    ev.reason
                ),
            ),
            OnError::Retry if overdue => (
                Decided::Blocked,
                "blocked",
                format!(
                    "the check still could not run after {} (onError: retry): {}",
                    common.within, ev.reason
                ),
            ),
            OnError::Retry => (
                Decided::Waiting(jittered(ERROR_RETRY)),
                "retrying",
                format!(
                    "the check could not run, retrying (onError: retry): {}",
                    ev.reason
                ),
            ),
        },
        Outcome::Unobserved if overdue => {
            let why = format!(
                "could not observe within {} (within): AWS throttled or failed the last {} observation(s): {}",
                common.within, live.state.unobserved, ev.reason
            );
            match common.on_error {
                OnError::Pass => (
                    Decided::Passed,
                    "failedOpen",
                    format!("{why} (failing open, onError: pass)"),
                ),
                OnError::Fail | OnError::Retry => (Decided::Blocked, "blocked", why),
            }
        }
        Outcome::Unobserved => (
            Decided::Waiting(
                unobserved_backoff(live.state.unobserved).max(ev.not_before.unwrap_or_default()),
            ),
            "waiting",
            format!(
                "could not observe yet, observing again ({} in a row): {}",
                live.state.unobserved, ev.reason
            ),
        ),
        Outcome::Pending { .. } if overdue => (
            Decided::Blocked,
            "blocked",
            format!(
                "still undecided after {} (within): {}",
                common.within, ev.reason
            ),
        ),
        Outcome::Pending { retry_after } => (
            Decided::Waiting(jittered((*retry_after).max(MIN_RETRY))),
            "waiting",
            ev.reason.clone(),
        ),
    };
    let (decided, effect) = match (common.dry_run, decided) {
        (true, Decided::Passed) => (Decided::Passed, effect),
        (true, _) => (Decided::Passed, "dryRun"),
        (false, d) => (d, effect),
    };
    live.state.status = if matches!(decided, Decided::Passed) {
        "passed"
    } else {
        "pending"
    }
    .to_string();
    live.state.effect = effect.to_string();
    live.state.reason = reason.clone();
    live.record = Some(record(check, &ev, effect, reason, attempts, took));
    live.decided = Some(decided);
}

/// Runs the checks. `prior` is the state from the previous invocation (or fresh).
pub async fn run<'a>(
    checks: &'a [CheckConfig],
    prior: RunState,
    budget: Budget,
    evaluate: &Evaluator<'a>,
) -> RunReport {
    let mut state = prior;
    state.invocations = state.invocations.saturating_add(1);
    let start_ms = now_ms();
    let now = Instant::now();
    // The gate's first observations in a deployment start together after a short random
    // delay, so that gates started together do not call AWS in step.
    let first_at = if state.invocations == 1 {
        now + FIRST_OBSERVATION_JITTER
            .min(budget.remaining() / 20)
            .mul_f64(fastrand::f64())
    } else {
        now
    };
    // A time carried in the state, as an instant of this invocation (at most a day away).
    let at = |ms: u64| now + Duration::from_millis(ms.saturating_sub(start_ms)).min(duration::MAX);
    let mut lives: Vec<Live<'a>> = checks
        .iter()
        .map(|check| {
            let carried = state.checks.get(&check.name).cloned();
            let passed_before = carried.as_ref().is_some_and(|c| c.status == "passed");
            let mut cs = carried.unwrap_or(CheckState {
                status: "pending".into(),
                effect: String::new(),
                first_at_ms: start_ms,
                attempts: 0,
                reason: String::new(),
                unobserved: 0,
                data: Value::Null,
                next_at_ms: 0,
            });
            // A start in the future would stretch `within`; no wait goes past it.
            cs.first_at_ms = cs.first_at_ms.min(start_ms);
            let deadline_ms = cs
                .first_at_ms
                .saturating_add(millis(check.common.within.get()));
            cs.next_at_ms = cs.next_at_ms.min(deadline_ms);
            let (deadline, next_at) = (at(deadline_ms), at(cs.next_at_ms));
            let not_due = (!passed_before && next_at > now).then(|| CheckRecord {
                name: check.name.clone(),
                kind: check.kind.type_name().to_string(),
                verdict: "pending".into(),
                effect: if cs.effect == "retrying" {
                    "retrying"
                } else {
                    "waiting"
                }
                .into(),
                reason: format!(
                    "next evaluation due in {}: {}",
                    HumanDuration(Duration::from_secs(
                        next_at.saturating_duration_since(now).as_secs_f64().ceil() as u64,
                    )),
                    cs.reason
                ),
                observed: Value::Null,
                expected: Value::Null,
                attempts: cs.attempts,
                duration_ms: 0,
                aws_calls: BTreeMap::new(),
            });
            let record = passed_before.then(|| CheckRecord {
                name: check.name.clone(),
                kind: check.kind.type_name().to_string(),
                verdict: "pass".into(),
                effect: if cs.effect.is_empty() {
                    "passed".into()
                } else {
                    cs.effect.clone()
                },
                reason: format!("decided in an earlier invocation: {}", cs.reason),
                observed: Value::Null,
                expected: Value::Null,
                attempts: cs.attempts,
                duration_ms: 0,
                aws_calls: BTreeMap::new(),
            });
            Live {
                check,
                decided: passed_before.then_some(Decided::Passed),
                state: cs,
                next_at: next_at.max(first_at),
                deadline,
                record: record.or(not_due),
                calls: BTreeMap::new(),
            }
        })
        .collect();

    let mut slowest = Duration::ZERO;
    let verdict = loop {
        // Evaluate every undecided check that is due.
        let now = Instant::now();
        let due: Vec<usize> = (0..lives.len())
            .filter(|&i| {
                !matches!(
                    lives[i].decided,
                    Some(Decided::Passed) | Some(Decided::Blocked)
                ) && lives[i].next_at <= now
            })
            .collect();
        let mut round: FuturesUnordered<_> = due
            .iter()
            .map(|&i| {
                let check = lives[i].check;
                let data = lives[i].state.data.clone();
                async move {
                    let started = Instant::now();
                    let calls = Calls::new();
                    let fut = AssertUnwindSafe(evaluate(check, data, budget)).catch_unwind();
                    let ev = match calls.scope(budget.run(fut)).await {
                        Some(Ok(ev)) => ev,
                        Some(Err(panic)) => Evaluation::error(format!(
                            "the check panicked: {}",
                            panic_message(&*panic)
                        )),
                        None => Evaluation::error(format!(
                            "it did not finish within the time left in this invocation ({} ms)",
                            started.elapsed().as_millis()
                        )),
                    };
                    (i, ev, started.elapsed(), calls.snapshot())
                }
            })
            .collect();
        let mut blocked = false;
        let mut hand_back = false;
        while let Some((i, ev, took, calls)) = round.next().await {
            slowest = slowest.max(took);
            hand_back |= ev.hand_back && matches!(ev.outcome, Outcome::Pending { .. });
            add_counts(&mut lives[i].calls, &calls);
            judge(&mut lives[i], ev, took);
            if matches!(lives[i].decided, Some(Decided::Blocked)) {
                blocked = true;
                break; // fail fast: the rest are dropped (cancelled)
            }
        }
        drop(round);
        if blocked {
            break RunVerdict::Failed;
        }
        let waits: Vec<(usize, Duration)> = lives
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match l.decided {
                Some(Decided::Waiting(d)) => Some((i, d)),
                None => Some((i, Duration::ZERO)),
                _ => None,
            })
            .collect();
        if waits.is_empty() {
            break RunVerdict::Succeeded;
        }
        let now = Instant::now();
        for &(i, d) in &waits {
            if due.contains(&i) {
                let l = &mut lives[i];
                l.next_at = (now + d.min(duration::MAX))
                    .min(l.deadline)
                    .max(now + MIN_RETRY);
                let wait = l.next_at.saturating_duration_since(now);
                l.state.next_at_ms = now_ms().saturating_add(millis(wait));
            }
        }
        let next = waits
            .iter()
            .map(|&(i, _)| lives[i].next_at)
            .min()
            .unwrap_or(now);
        if next + slowest < budget.end() && !hand_back {
            tokio::time::sleep_until(next).await;
            continue;
        }
        let after = next
            .saturating_duration_since(Instant::now())
            .clamp(MIN_CALL_BACK, MAX_CALL_BACK);
        break RunVerdict::Pending {
            call_back_after: after,
        };
    };

    let mut records = Vec::new();
    for l in &mut lives {
        if l.state.status == "passed" {
            l.state.next_at_ms = 0;
        }
        let mut r = l.record.clone().unwrap_or_else(|| CheckRecord {
            name: l.check.name.clone(),
            kind: l.check.kind.type_name().to_string(),
            verdict: "pending".into(),
            effect: "skipped".into(),
            reason: "not finished: another check blocked the deployment first".into(),
            observed: Value::Null,
            expected: Value::Null,
            attempts: l.state.attempts,
            duration_ms: 0,
            aws_calls: BTreeMap::new(),
        });
        r.aws_calls = l.calls.clone();
        records.push(r);
        state.checks.insert(l.check.name.clone(), l.state.clone());
    }
    let reason = summarise(&verdict, &records);
    RunReport {
        verdict,
        reason,
        checks: records,
        state,
    }
}

fn summarise(verdict: &RunVerdict, records: &[CheckRecord]) -> String {
    let by = |effect: &str| {
        records
            .iter()
            .filter(|r| r.effect == effect)
            .collect::<Vec<_>>()
    };
    let list = |rs: Vec<&CheckRecord>| {
        rs.iter()
            .map(|r| format!("{}: {}", r.name, r.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match verdict {
        RunVerdict::Failed => format!("blocked by {}", list(by("blocked"))),
        RunVerdict::Pending { .. } => {
            let mut waiting = by("waiting");
            waiting.extend(by("retrying"));
            format!("waiting for {}", list(waiting))
        }
        RunVerdict::Succeeded => {
            let passed = by("passed");
            let mut s = format!(
                "{} of {} checks passed: {}",
                passed.len(),
                records.len(),
                list(passed)
            );
            let open = by("failedOpen");
            if !open.is_empty() {
                s.push_str(&format!("; failed open: {}", list(open)));
            }
            let dry = by("dryRun");
            if !dry.is_empty() {
                s.push_str(&format!("; dry run, not blocking: {}", list(dry)));
            }
            s
        }
    }
}

#[cfg(test)]
mod jitter_tests {
    use super::*;

    #[test]
    fn jitter_lengthens_a_wait_by_at_most_a_tenth() {
        let d = Duration::from_secs(30);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(d)).collect();
        assert!(waits.iter().all(|w| *w >= d && *w <= d + d / 10));
        assert!(waits.iter().any(|w| *w != waits[0]), "the waits are spread");
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn unobserved_backoff_doubles_up_to_its_cap_with_half_of_it_random() {
        for (n, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 20), (40, 20)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let w = unobserved_backoff(n);
                assert!(w >= full / 2 && w <= full, "{n}: {w:?}");
            }
        }
        assert!(unobserved_backoff(u32::MAX) <= UNOBSERVED_MAX_WAIT);
        assert!(unobserved_backoff(0) <= UNOBSERVED_FIRST_WAIT);
    }
}
