//! The timeline and the summary: human-readable lines, or one JSON object per line.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::answer::CheckLine;
use crate::event::{Revisions, pct};
use crate::plan::{BakeKind, Step};
use crate::service::{Service, Stage, Strategy};

/// The outcome of an invocation, as the timeline shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Succeeded,
    Failed,
    InProgress,
    /// The function raised an error or timed out.
    FunctionError,
    /// The function returned something ECS cannot read.
    InvalidAnswer,
    /// Lambda could not run the function.
    InvocationError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::InProgress => "IN_PROGRESS",
            Status::FunctionError => "FUNCTION_ERROR",
            Status::InvalidAnswer => "INVALID_ANSWER",
            Status::InvocationError => "INVOCATION_ERROR",
        }
    }
}

/// A traffic step as the timeline shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub index: usize,
    pub of: usize,
    /// The new revision's production weight after this step.
    pub production_weight: Value,
}

impl From<Step> for StepView {
    fn from(s: Step) -> StepView {
        StepView {
            index: s.index,
            of: s.of,
            production_weight: pct(s.to),
        }
    }
}

/// One invocation of a hook function.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// Milliseconds since the rehearsal started, when the answer arrived.
    pub elapsed_ms: u64,
    pub stage: Stage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepView>,
    pub rollback: bool,
    pub function: String,
    pub hook_target_arn: String,
    pub execution_id: String,
    /// 1 for the first invocation of this hook execution.
    pub invocation: u32,
    pub duration_ms: u64,
    pub status: Status,
    /// With IN_PROGRESS: the callBackDelay answered (`null` when the answer had none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<Option<u64>>,
    /// The decision's reason, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckLine>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub test_traffic_weights: Map<String, Value>,
    pub production_traffic_weights: Map<String, Value>,
    /// The answer as returned, when it was JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Value>,
}

/// How a stage (or a rollback stage) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StageResult {
    Succeeded,
    Failed,
    /// No hook is attached to the stage.
    NoHooks,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageSummary {
    pub stage: Stage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepView>,
    pub rollback: bool,
    pub functions: Vec<String>,
    pub invocations: u32,
    pub result: StageResult,
    pub elapsed_ms: u64,
    /// How long the stage would take in ECS: invocations plus callBackDelays at full length.
    pub deployment_seconds: f64,
}

/// How the rehearsal ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Every stage passed: the deployment completes.
    Completed,
    /// A hook failed; traffic went back to the previous revision.
    RolledBack,
    /// A hook failed, and a hook failed again during the rollback.
    RollbackFailed,
    /// A hook failed on a first deployment: there is no previous revision to go back to.
    Failed,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Completed => 0,
            _ => 1,
        }
    }
}

/// The invocation that stopped the deployment.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub stage: Stage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepView>,
    pub function: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub outcome: Outcome,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub stages: Vec<StageSummary>,
    pub invocations: u32,
    /// Invocations answered IN_PROGRESS.
    pub in_progress: u32,
    pub elapsed_ms: u64,
    /// How long the deployment's hooks and waits would take in ECS (invocations, callBackDelays
    /// and bake times at full length; scaling up and clean-up not counted).
    pub deployment_seconds: f64,
    pub time_scale: f64,
}

/// Writes the timeline as it happens.
pub struct Reporter {
    json: bool,
    out: Mutex<Box<dyn Write + Send>>,
}

fn elapsed(ms: u64) -> String {
    let tenths = ms / 100;
    let (h, m, s, t) = (
        tenths / 36000,
        tenths / 600 % 60,
        tenths / 10 % 60,
        tenths % 10,
    );
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{t}")
    } else {
        format!("{m:02}:{s:02}.{t}")
    }
}

/// Whole milliseconds, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `1h 2m 3s`, `4m 5s`, `6.2s`, `0.25s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{:.2}s", d.as_secs_f64())
        };
    }
    if secs < 60 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

fn weight_text(w: &Value) -> String {
    format!("{w}%")
}

/// `PRODUCTION_TRAFFIC_SHIFT [step 1/2 → 10%]`, `TEST_TRAFFIC_SHIFT [rollback]`.
pub fn stage_label(stage: Stage, step: Option<&StepView>, rollback: bool) -> String {
    match (step, rollback) {
        (_, true) => format!("{stage} [rollback]"),
        (Some(s), false) if s.of > 1 => format!(
            "{stage} [step {}/{} → {}]",
            s.index,
            s.of,
            weight_text(&s.production_weight)
        ),
        _ => stage.to_string(),
    }
}

fn strategy_text(s: &Strategy) -> String {
    match *s {
        Strategy::BlueGreen => "BLUE_GREEN".into(),
        Strategy::Canary {
            percent,
            bake_minutes,
        } => format!(
            "CANARY: {} then 100%, {bake_minutes}m between",
            weight_text(&pct(percent))
        ),
        Strategy::Linear {
            step_percent,
            step_bake_minutes,
        } => format!(
            "LINEAR: {} more per step ({} steps), {step_bake_minutes}m between",
            weight_text(&pct(step_percent)),
            s.steps().len()
        ),
    }
}

impl Reporter {
    pub fn new(json: bool, out: Box<dyn Write + Send>) -> Reporter {
        Reporter {
            json,
            out: Mutex::new(out),
        }
    }

    pub fn stdout(json: bool) -> Reporter {
        Reporter::new(json, Box::new(std::io::stdout()))
    }

    fn write(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn json_line(&self, kind: &str, value: impl Serialize) {
        let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.shift_insert(0, "type".into(), json!(kind));
        }
        self.write(&format!("{v}\n"));
    }

    pub fn start(
        &self,
        service: &Service,
        revisions: &Revisions,
        first_deployment: bool,
        time_scale: f64,
        invoker: &str,
    ) {
        if self.json {
            let hooks: Vec<Value> = service
                .hooks
                .iter()
                .map(|h| {
                    json!({
                        "hookTargetArn": h.target_arn,
                        "lifecycleStages": h.stages.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                        "timeoutInMinutes": h.timeout_minutes,
                        "timeoutAction": h.timeout_action.as_str(),
                    })
                })
                .collect();
            self.json_line(
                "start",
                json!({
                    "service": service.name,
                    "cluster": service.cluster,
                    "strategy": service.strategy.name(),
                    "productionSteps": service.strategy.steps().into_iter().map(pct).collect::<Vec<_>>(),
                    "stepBakeTimeInMinutes": service.strategy.step_bake_minutes(),
                    "bakeTimeInMinutes": service.bake_minutes,
                    "serviceArn": revisions.service_arn,
                    "serviceDeploymentArn": revisions.service_deployment_arn,
                    "targetServiceRevisionArn": revisions.target_service_revision_arn,
                    "sourceServiceRevisionArn": revisions.source_service_revision_arn,
                    "firstDeployment": first_deployment,
                    "timeScale": time_scale,
                    "invoke": invoker,
                    "hooks": hooks,
                    "ignored": service.ignored,
                }),
            );
            return;
        }
        let mut t = format!(
            "Rehearsing a deployment of {} in {}: {}, bake time {}m\n",
            service.name,
            service.cluster,
            strategy_text(&service.strategy),
            service.bake_minutes
        );
        t += &format!("  deployment  {}\n", revisions.service_deployment_arn);
        t += &format!("  target      {}\n", revisions.target_service_revision_arn);
        match &revisions.source_service_revision_arn {
            Some(s) => t += &format!("  source      {s}\n"),
            None => t += "  source      none: first deployment\n",
        }
        for h in &service.hooks {
            t += &format!(
                "  hook        {} at {}\n",
                h.target_arn,
                h.stages
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for i in &service.ignored {
            t += &format!("  ignored     {i}\n");
        }
        t += &format!("  invoking    {invoker}");
        if time_scale != 1.0 {
            t += &format!("; waits scaled by {time_scale}");
        }
        t += "\n\n";
        self.write(&t);
    }

    pub fn invocation(&self, inv: &Invocation) {
        if self.json {
            self.json_line("invocation", inv);
            return;
        }
        let status = match (inv.status, inv.call_back_delay) {
            (Status::InProgress, Some(Some(d))) => format!("IN_PROGRESS (callBackDelay {d}s)"),
            (Status::InProgress, _) => "IN_PROGRESS (no callBackDelay: 30s)".to_string(),
            (s, _) => s.as_str().to_string(),
        };
        let mut t = format!(
            "{:>9}  {:<46} {:<22} {}",
            elapsed(inv.elapsed_ms),
            stage_label(inv.stage.clone(), inv.step.as_ref(), inv.rollback),
            inv.function,
            status
        );
        if let Some(r) = &inv.reason {
            t += &format!("  {r}");
        }
        t.push('\n');
        for c in &inv.checks {
            t += &format!(
                "{:>11}· {} ({}): {}: {}\n",
                "", c.name, c.kind, c.effect, c.reason
            );
        }
        for n in &inv.notes {
            t += &format!("{:>11}· note: {n}\n", "");
        }
        self.write(&t);
    }

    pub fn bake(&self, elapsed_ms: u64, kind: BakeKind, minutes: u32, wait: Duration) {
        if self.json {
            self.json_line(
                "bake",
                json!({"elapsedMs": elapsed_ms, "kind": kind, "minutes": minutes, "waitMs": millis(wait)}),
            );
            return;
        }
        let what = match kind {
            BakeKind::Step => "step bake time",
            BakeKind::Deployment => "bake time",
        };
        let scaled = if wait == Duration::from_secs(u64::from(minutes) * 60) {
            String::new()
        } else {
            format!(" (waiting {})", human(wait))
        };
        self.write(&format!(
            "{:>9}  {what}: {minutes}m{scaled}\n",
            elapsed(elapsed_ms)
        ));
    }

    pub fn note(&self, elapsed_ms: u64, message: &str) {
        if self.json {
            self.json_line("note", json!({"elapsedMs": elapsed_ms, "message": message}));
            return;
        }
        self.write(&format!("{:>9}  {message}\n", elapsed(elapsed_ms)));
    }

    pub fn rollback(&self, elapsed_ms: u64, reason: &str, stages: &[Stage]) {
        if self.json {
            self.json_line(
                "rollback",
                json!({"elapsedMs": elapsed_ms, "reason": reason, "stages": stages}),
            );
            return;
        }
        let what = if stages.is_empty() {
            "no traffic has moved yet: no hook is invoked".to_string()
        } else {
            format!(
                "re-invoking the {} hooks with traffic moving back",
                stages
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        self.write(&format!(
            "{:>9}  ROLLBACK: {reason}; {what}\n",
            elapsed(elapsed_ms)
        ));
    }

    pub fn error(&self, message: &str) {
        if self.json {
            self.json_line("error", json!({"message": message}));
        }
    }

    pub fn summary(&self, s: &Summary) {
        if self.json {
            self.json_line("summary", s);
            return;
        }
        let headline = match s.outcome {
            Outcome::Completed => "completed: the deployment goes through".to_string(),
            Outcome::RolledBack => "rolled back".to_string(),
            Outcome::RollbackFailed => {
                "rolled back, and a hook failed during the rollback".to_string()
            }
            Outcome::Failed => {
                "failed: a first deployment has no previous revision to roll back to".to_string()
            }
        };
        let mut t = format!("\nOutcome: {headline}\n");
        if let Some(f) = &s.failure {
            t += &format!(
                "  stopped by {} at {}: {}\n",
                f.function,
                stage_label(f.stage.clone(), f.step.as_ref(), false),
                f.reason
            );
        }
        t += &format!(
            "\n  {:<46} {:<22} {:>11}  {:<10} {:>9}\n",
            "stage", "functions", "invocations", "result", "time"
        );
        for st in &s.stages {
            let functions = if st.functions.is_empty() {
                "-".to_string()
            } else {
                st.functions.join(", ")
            };
            let result = match st.result {
                StageResult::Succeeded => "SUCCEEDED",
                StageResult::Failed => "FAILED",
                StageResult::NoHooks => "no hooks",
            };
            t += &format!(
                "  {:<46} {:<22} {:>11}  {:<10} {:>9}\n",
                stage_label(st.stage.clone(), st.step.as_ref(), st.rollback),
                functions,
                st.invocations,
                result,
                human(Duration::from_millis(st.elapsed_ms))
            );
        }
        let with_hooks = s
            .stages
            .iter()
            .filter(|st| st.result != StageResult::NoHooks)
            .count();
        t += &format!(
            "\n  {} stages ({} with hooks), {} invocations ({} IN_PROGRESS)\n",
            s.stages.len(),
            with_hooks,
            s.invocations,
            s.in_progress
        );
        t += &format!(
            "  took {}; in ECS the hooks and waits would take about {}\n",
            human(Duration::from_millis(s.elapsed_ms)),
            human(Duration::from_secs_f64(s.deployment_seconds))
        );
        self.write(&t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(elapsed(0), "00:00.0");
        assert_eq!(elapsed(61_250), "01:01.2");
        assert_eq!(elapsed(3_723_000), "1:02:03.0");
        assert_eq!(human(Duration::from_secs(3723)), "1h 2m 3s");
        assert_eq!(human(Duration::from_secs(120)), "2m");
        assert_eq!(human(Duration::from_millis(250)), "0.25s");
        assert_eq!(human(Duration::from_millis(6_240)), "6.2s");
        assert_eq!(human(Duration::ZERO), "0s");
        let step = StepView {
            index: 1,
            of: 2,
            production_weight: json!(10),
        };
        assert_eq!(
            stage_label(Stage::ProductionTrafficShift, Some(&step), false),
            "PRODUCTION_TRAFFIC_SHIFT [step 1/2 → 10%]"
        );
        assert_eq!(
            stage_label(Stage::TestTrafficShift, None, true),
            "TEST_TRAFFIC_SHIFT [rollback]"
        );
    }
}
