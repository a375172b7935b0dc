//! Plays a deployment through its stages and invokes each stage's hooks as ECS would.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::answer::{self, DEFAULT_CALL_BACK_DELAY, HookStatus};
use crate::event::{self, Revisions};
use crate::invoke::{Invoker, Reply, SetupError};
use crate::plan::{self, Phase, Step};
use crate::report::{
    Failure, Invocation, Outcome, Reporter, StageResult, StageSummary, Status, StepView, Summary,
    human, millis,
};
use crate::service::{Hook, Service, Stage, TimeoutAction};

/// What the next invocation of an `IN_PROGRESS` hook gets as `hookDetails`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnedDetails {
    /// The configured object with the returned keys laid over it (what ECS documents).
    Merge,
    /// The returned value alone.
    Replace,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Factor applied to callBackDelay and bake waits (0 waits not at all).
    pub time_scale: f64,
    /// Invocations of one hook execution after which a hook still `IN_PROGRESS` is taken
    /// as timed out.
    pub max_invocations: u32,
    pub returned_details: ReturnedDetails,
    pub first_deployment: bool,
    /// `--approve` / `--reject`: decide every approval a hook waits for, through this
    /// approval endpoint, as the caller's IAM identity.
    pub decide: Option<(greenlight::approval::Action, String)>,
}

/// The approval a waiting `approval` check names (`…; approval <id>`).
pub fn waiting_approval(checks: &[crate::answer::CheckLine]) -> Option<String> {
    checks
        .iter()
        .filter(|c| c.kind == "approval" && c.effect == "waiting")
        .find_map(|c| {
            let id = c.reason.rsplit("approval ").next()?.trim();
            greenlight::approval::is_id(id).then(|| id.to_string())
        })
}

pub struct Rehearsal<'a> {
    pub service: &'a Service,
    pub revisions: &'a Revisions,
    pub invoker: &'a Invoker,
    pub options: &'a Options,
    pub reporter: &'a Reporter,
    started: Instant,
}

/// How one hook execution ended.
enum HookEnd {
    Succeeded,
    /// The deployment goes on: the hook timed out with action CONTINUE.
    Continued,
    Failed(String),
    /// Another hook at the same stage failed first.
    Cancelled,
}

struct HookRun {
    function: String,
    end: HookEnd,
    invocations: u32,
    in_progress: u32,
    /// Time in ECS: invocations plus callBackDelays at full length.
    deployment_time: Duration,
}

struct StageRun {
    summary: StageSummary,
    /// The first failed hook: its function and why.
    failure: Option<(String, String)>,
    in_progress: u32,
}

/// The hookDetails for the next invocation of a hook that answered IN_PROGRESS.
pub fn next_details(
    configured: Option<&Value>,
    returned: Option<Value>,
    mode: ReturnedDetails,
) -> Option<Value> {
    match (mode, returned) {
        (_, None) => configured.cloned(),
        (ReturnedDetails::Replace, Some(r)) => Some(r),
        (ReturnedDetails::Merge, Some(Value::Object(r))) => match configured {
            Some(Value::Object(c)) => {
                let mut m = c.clone();
                for (k, v) in r {
                    m.insert(k, v);
                }
                Some(Value::Object(m))
            }
            _ => Some(Value::Object(r)),
        },
        (ReturnedDetails::Merge, Some(r)) => Some(r),
    }
}

impl<'a> Rehearsal<'a> {
    pub fn new(
        service: &'a Service,
        revisions: &'a Revisions,
        invoker: &'a Invoker,
        options: &'a Options,
        reporter: &'a Reporter,
    ) -> Rehearsal<'a> {
        Rehearsal {
            service,
            revisions,
            invoker,
            options,
            reporter,
            started: Instant::now(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    fn scaled(&self, d: Duration) -> Duration {
        Duration::try_from_secs_f64(d.as_secs_f64() * self.options.time_scale)
            .unwrap_or(Duration::MAX)
    }

    /// Runs the deployment to its end: completed, or rolled back after a failure.
    pub async fn run(&self) -> Result<Summary, SetupError> {
        let mut stages = Vec::new();
        let mut in_progress = 0;
        let mut deployment_seconds = 0.0;
        let mut test_reached = false;
        let mut production_reached = false;
        let mut failure = None;
        for phase in plan::phases(self.service, self.options.first_deployment) {
            match phase {
                Phase::Bake { kind, minutes } => {
                    let full = Duration::from_secs(u64::from(minutes) * 60);
                    let wait = self.scaled(full);
                    self.reporter.bake(self.elapsed_ms(), kind, minutes, wait);
                    tokio::time::sleep(wait).await;
                    deployment_seconds += full.as_secs_f64();
                }
                Phase::Stage { stage, step } => {
                    match stage {
                        Stage::TestTrafficShift => test_reached = true,
                        Stage::ProductionTrafficShift => production_reached = true,
                        _ => {}
                    }
                    let run = self.stage(stage.clone(), step, false).await?;
                    in_progress += run.in_progress;
                    deployment_seconds += run.summary.deployment_seconds;
                    stages.push(run.summary);
                    if let Some((function, reason)) = run.failure {
                        failure = Some(Failure {
                            stage,
                            step: step.map(StepView::from),
                            function,
                            reason,
                        });
                        break;
                    }
                }
            }
        }
        let outcome = match &failure {
            None => Outcome::Completed,
            Some(f) => {
                let why = format!(
                    "{} failed at {}",
                    f.function,
                    crate::report::stage_label(f.stage.clone(), f.step.as_ref(), false)
                );
                self.rollback(
                    &why,
                    test_reached,
                    production_reached,
                    &mut stages,
                    &mut in_progress,
                    &mut deployment_seconds,
                )
                .await?
            }
        };
        Ok(Summary {
            outcome,
            exit_code: outcome.exit_code(),
            failure,
            invocations: stages.iter().map(|s| s.invocations).sum(),
            stages,
            in_progress,
            elapsed_ms: self.elapsed_ms(),
            deployment_seconds,
            time_scale: self.options.time_scale,
        })
    }

    /// ECS's rollback: production traffic back first, then test traffic, each through the
    /// hooks of the traffic-shift stage the deployment had reached.
    async fn rollback(
        &self,
        why: &str,
        test_reached: bool,
        production_reached: bool,
        stages: &mut Vec<StageSummary>,
        in_progress: &mut u32,
        deployment_seconds: &mut f64,
    ) -> Result<Outcome, SetupError> {
        if self.options.first_deployment {
            self.reporter.note(
                self.elapsed_ms(),
                &format!(
                    "ROLLBACK: {why}; a first deployment has no previous revision to move traffic \
                     back to, so no hook is re-invoked"
                ),
            );
            return Ok(Outcome::Failed);
        }
        let mut back = Vec::new();
        if production_reached {
            back.push(Stage::ProductionTrafficShift);
        }
        if test_reached {
            back.push(Stage::TestTrafficShift);
        }
        self.reporter.rollback(self.elapsed_ms(), why, &back);
        let mut outcome = Outcome::RolledBack;
        for stage in back {
            let run = self.stage(stage, None, true).await?;
            if run.failure.is_some() {
                outcome = Outcome::RollbackFailed;
            }
            *in_progress += run.in_progress;
            *deployment_seconds += run.summary.deployment_seconds;
            stages.push(run.summary);
        }
        Ok(outcome)
    }

    /// Runs every hook of a stage concurrently. Outside a rollback, the first failure stops
    /// the other hooks before their next invocation.
    async fn stage(
        &self,
        stage: Stage,
        step: Option<Step>,
        rollback: bool,
    ) -> Result<StageRun, SetupError> {
        let started = Instant::now();
        let hooks = self.service.hooks_at(stage.clone());
        let (cancel, cancelled) = watch::channel(false);
        let runs = futures::future::join_all(
            hooks
                .iter()
                .map(|h| self.hook(h, stage.clone(), step, rollback, &cancel, cancelled.clone())),
        )
        .await;
        let mut done = Vec::new();
        for r in runs {
            done.push(r?);
        }
        let failure = done.iter().find_map(|r| match &r.end {
            HookEnd::Failed(why) => Some((r.function.clone(), why.clone())),
            _ => None,
        });
        let result = if hooks.is_empty() {
            StageResult::NoHooks
        } else if failure.is_some() {
            StageResult::Failed
        } else {
            StageResult::Succeeded
        };
        Ok(StageRun {
            summary: StageSummary {
                stage: stage.clone(),
                step: step.map(StepView::from),
                rollback,
                functions: done.iter().map(|r| r.function.clone()).collect(),
                invocations: done.iter().map(|r| r.invocations).sum(),
                result,
                elapsed_ms: millis(started.elapsed()),
                deployment_seconds: done
                    .iter()
                    .map(|r| r.deployment_time.as_secs_f64())
                    .fold(0.0, f64::max),
            },
            in_progress: done.iter().map(|r| r.in_progress).sum(),
            failure,
        })
    }

    /// One hook execution: invocations with the same executionId until the hook decides.
    async fn hook(
        &self,
        hook: &Hook,
        stage: Stage,
        step: Option<Step>,
        rollback: bool,
        cancel: &watch::Sender<bool>,
        mut cancelled: watch::Receiver<bool>,
    ) -> Result<HookRun, SetupError> {
        let function = self.invoker.label(&hook.target_arn);
        let execution_id = event::execution_id();
        let weights = event::weights(self.revisions, stage.clone(), step, rollback);
        let mut details = hook.details.clone();
        let mut run = HookRun {
            function: function.clone(),
            end: HookEnd::Cancelled,
            invocations: 0,
            in_progress: 0,
            deployment_time: Duration::ZERO,
        };
        loop {
            if !rollback && *cancelled.borrow() {
                run.end = HookEnd::Cancelled;
                return Ok(run);
            }
            run.invocations += 1;
            let ev = event::build(
                self.revisions,
                stage.clone(),
                &execution_id,
                &weights,
                details.as_ref(),
            );
            let t0 = Instant::now();
            let reply = self.invoker.invoke(&hook.target_arn, &ev).await?;
            let took = t0.elapsed();
            run.deployment_time += took;
            let mut record = Invocation {
                elapsed_ms: self.elapsed_ms(),
                stage: stage.clone(),
                step: step.map(StepView::from),
                rollback,
                function: function.clone(),
                hook_target_arn: hook.target_arn.clone(),
                execution_id: execution_id.clone(),
                invocation: run.invocations,
                duration_ms: millis(took),
                status: Status::InvocationError,
                call_back_delay: None,
                reason: None,
                checks: Vec::new(),
                notes: Vec::new(),
                test_traffic_weights: weights.0.clone(),
                production_traffic_weights: weights.1.clone(),
                answer: None,
            };
            let answer = match reply {
                Reply::FunctionError(why) => {
                    record.status = Status::FunctionError;
                    record.reason = Some(why);
                    None
                }
                Reply::InvocationError(why) => {
                    record.status = Status::InvocationError;
                    record.reason = Some(why);
                    None
                }
                Reply::Payload(bytes) => {
                    let (read, raw) = answer::read(&bytes);
                    record.answer = raw;
                    match read {
                        Err(why) => {
                            record.status = Status::InvalidAnswer;
                            record.reason = Some(why);
                            None
                        }
                        Ok(a) => {
                            record.status = match a.status {
                                HookStatus::Succeeded => Status::Succeeded,
                                HookStatus::Failed => Status::Failed,
                                HookStatus::InProgress(d) => {
                                    record.call_back_delay = Some(d);
                                    Status::InProgress
                                }
                            };
                            if let Some(d) = answer::decision(a.hook_details.as_ref()) {
                                record.reason = d.reason;
                                record.checks = d.checks;
                                record.notes = d.notes;
                            }
                            Some(a)
                        }
                    }
                }
            };
            self.reporter.invocation(&record);
            let Some(answer) = answer else {
                let why = format!(
                    "{}: {}",
                    record.status.as_str(),
                    record.reason.clone().unwrap_or_default()
                );
                return Ok(self.fail(run, why, rollback, cancel));
            };
            let delay = match answer.status {
                HookStatus::Succeeded => {
                    run.end = HookEnd::Succeeded;
                    return Ok(run);
                }
                HookStatus::Failed => {
                    let why = record
                        .reason
                        .clone()
                        .unwrap_or_else(|| "answered FAILED".into());
                    return Ok(self.fail(run, why, rollback, cancel));
                }
                HookStatus::InProgress(d) => {
                    Duration::from_secs(d.unwrap_or(DEFAULT_CALL_BACK_DELAY))
                }
            };
            run.in_progress += 1;
            if let Some((action, endpoint)) = &self.options.decide
                && let Some(id) = waiting_approval(&record.checks)
            {
                let request = crate::approve::Request {
                    id: id.clone(),
                    endpoint: endpoint.clone(),
                    action: *action,
                    comment: "decided by greenlight rehearse".into(),
                    region: None,
                };
                let (code, message) = crate::approve::run(&request).await;
                let what = if code == 0 {
                    message
                } else {
                    format!("could not {} approval {id}: {message}", action.as_str())
                };
                self.reporter.note(self.elapsed_ms(), &what);
            }
            let limit = Duration::from_secs(u64::from(hook.timeout_minutes) * 60);
            let stuck = if run.invocations >= self.options.max_invocations {
                Some(format!(
                    "still IN_PROGRESS after {} invocations (--max-invocations); ECS would keep \
                     invoking it until its {}m timeout",
                    run.invocations, hook.timeout_minutes
                ))
            } else if run.deployment_time.saturating_add(delay) > limit {
                Some(format!(
                    "still IN_PROGRESS after {} of deployment time, and its timeout is {}m",
                    human(run.deployment_time),
                    hook.timeout_minutes
                ))
            } else {
                None
            };
            if let Some(why) = stuck {
                let message = format!(
                    "{function} at {}: {why}; timeoutConfiguration.action {}",
                    crate::report::stage_label(stage.clone(), record.step.as_ref(), rollback),
                    hook.timeout_action.as_str()
                );
                self.reporter.note(self.elapsed_ms(), &message);
                return Ok(match hook.timeout_action {
                    TimeoutAction::Continue => {
                        run.end = HookEnd::Continued;
                        run
                    }
                    TimeoutAction::Rollback => {
                        self.fail(run, format!("timed out: {why}"), rollback, cancel)
                    }
                });
            }
            run.deployment_time = run.deployment_time.saturating_add(delay);
            details = next_details(
                hook.details.as_ref(),
                answer.hook_details,
                self.options.returned_details,
            );
            let wait = self.scaled(delay);
            if let Some(d) = details.as_mut() {
                move_due_times(d, delay.saturating_sub(wait));
            }
            if rollback {
                tokio::time::sleep(wait).await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancelled.wait_for(|c| *c) => {
                        run.end = HookEnd::Cancelled;
                        return Ok(run);
                    }
                }
            }
        }
    }

    fn fail(
        &self,
        mut run: HookRun,
        why: String,
        rollback: bool,
        cancel: &watch::Sender<bool>,
    ) -> HookRun {
        if !rollback {
            let _ = cancel.send(true);
        }
        run.end = HookEnd::Failed(why);
        run
    }
}

/// A scaled wait skips time the functions do not skip: Greenlight's carried due times
/// (`greenlightState.checks.*.nextAtMs`, ms since the epoch) move earlier by as much, so
/// that the next invocation finds its checks due as it would in ECS.
pub fn move_due_times(details: &mut Value, skipped: Duration) {
    let skipped = millis(skipped);
    let Some(checks) = details
        .pointer_mut("/greenlightState/checks")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for check in checks.values_mut() {
        if let Some(at) = check.get("nextAtMs").and_then(Value::as_u64) {
            check["nextAtMs"] = Value::from(at.saturating_sub(skipped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_waiting_approval_is_found_by_its_id() {
        let line = |kind: &str, effect: &str, reason: &str| crate::answer::CheckLine {
            name: "go-ahead".into(),
            kind: kind.into(),
            verdict: "pending".into(),
            effect: effect.into(),
            reason: reason.into(),
        };
        let id = "0123456789abcdef0123456789abcdef";
        let waiting = line(
            "approval",
            "waiting",
            &format!(
                "waiting for approval by anyone with access until 2026-12-02T10:59:37Z (9m 59s left; then onTimeout: fail); approval {id}"
            ),
        );
        assert_eq!(
            waiting_approval(&[line("http", "waiting", "x"), waiting.clone()]).as_deref(),
            Some(id)
        );
        assert_eq!(
            waiting_approval(&[line("approval", "passed", &waiting.reason)]),
            None
        );
        assert_eq!(
            waiting_approval(&[line("approval", "waiting", "approval nothex")]),
            None
        );
    }

    #[test]
    fn due_times_move_by_the_time_skipped() {
        let mut details = json!({"greenlightState": {"checks": {
            "h": {"nextAtMs": 1_000_000, "firstAtMs": 5},
            "p": {"status": "passed"},
            "early": {"nextAtMs": 10}
        }}, "team": "payments"});
        move_due_times(&mut details, Duration::from_millis(999_400));
        assert_eq!(
            details,
            json!({"greenlightState": {"checks": {
                "h": {"nextAtMs": 600, "firstAtMs": 5},
                "p": {"status": "passed"},
                "early": {"nextAtMs": 0}
            }}, "team": "payments"})
        );
        let mut other = json!({"greenlightState": [1, 2]});
        move_due_times(&mut other, Duration::MAX);
        assert_eq!(other, json!({"greenlightState": [1, 2]}));
    }

    #[test]
    fn returned_details() {
        let configured = json!({"greenlight": {"checks": {}}, "team": "payments"});
        let returned = json!({"greenlight": {"checks": {}}, "greenlightState": {"v": 1}});
        assert_eq!(
            next_details(
                Some(&configured),
                Some(returned.clone()),
                ReturnedDetails::Merge
            ),
            Some(
                json!({"greenlight": {"checks": {}}, "team": "payments", "greenlightState": {"v": 1}})
            )
        );
        assert_eq!(
            next_details(
                Some(&configured),
                Some(returned.clone()),
                ReturnedDetails::Replace
            ),
            Some(returned.clone())
        );
        assert_eq!(
            next_details(Some(&configured), None, ReturnedDetails::Replace),
            Some(configured.clone())
        );
        assert_eq!(
            next_details(None, Some(returned.clone()), ReturnedDetails::Merge),
            Some(returned)
        );
    }
}
