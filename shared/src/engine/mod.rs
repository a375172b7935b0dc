//! The engine: the decision, free of any protocol.
//!
//! Given the configuration, the stage (ECS; none for CodeDeploy), the deployment, the
//! state carried from earlier invocations and the invocation's budget, [`decide`] runs the
//! checks that apply ([`runner`]) and says what the verdict is and why ([`Decision`]).
//! [`notifications`] then sends what the verdict calls for; it is the one place where a
//! notification can change a verdict (a `required` channel that cannot deliver). The
//! Lambda edge ([`crate::edge`]) puts the decision into the caller's terms.

pub mod notifications;
pub mod runner;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::checks::{CheckContext, FirstDeployment};
use crate::config::{self, CONFIG_KEY, CheckConfig, Config, NoChecksPolicy};
use crate::deployment::{Deployment, Protocol};
use crate::duration::millis;
use crate::emf;
use crate::facts::{Facts, Revision};
use crate::record::DecisionRecord;
use crate::role::Role;
use crate::services::Services;
use crate::stage::Stage;
use crate::verdict::{Evaluation, HookStatus};

use runner::{RunState, RunVerdict};

/// What an invocation decided, before it is put into one protocol's terms. The verdict
/// (status, reason, call-back delay) is held once, in the record.
#[derive(Clone, Debug)]
pub struct Decision {
    pub record: DecisionRecord,
    /// The state to carry to the next invocation of this hook.
    pub state: Option<RunState>,
    /// The target revision, when a check looked it up (notifications reuse it).
    pub revision: Option<Revision>,
}

impl Decision {
    pub fn new(
        role: Role,
        status: HookStatus,
        reason: impl Into<String>,
        deployment: Option<Deployment>,
    ) -> Decision {
        Decision {
            record: DecisionRecord::new(role.name(), status, reason, deployment),
            state: None,
            revision: None,
        }
    }

    pub fn failed(
        role: Role,
        reason: impl Into<String>,
        deployment: Option<Deployment>,
    ) -> Decision {
        Decision::new(role, HookStatus::Failed, reason, deployment)
    }

    pub fn status(&self) -> HookStatus {
        self.record.status()
    }

    /// Writes the record to the log: one line, the full record as JSON in `decision`, and
    /// with it the decision's metrics ([`crate::emf`]); then one line of metrics per
    /// check type.
    pub fn log(&self) {
        let record = &self.record;
        let full = serde_json::to_string(record).unwrap_or_default();
        let verdict = record.verdict.label();
        let namespace = emf::namespace();
        let started = self.state.as_ref().map(|s| s.started_at_ms);
        let metrics = namespace
            .as_deref()
            .map(|ns| Value::Object(emf::decision(ns, record, started)).to_string())
            .unwrap_or_default();
        match record.status() {
            HookStatus::Failed => {
                tracing::warn!(decision = %full, emf = %metrics, "{} {verdict}: {}", record.function, record.reason)
            }
            _ => {
                tracing::info!(decision = %full, emf = %metrics, "{} {verdict}: {}", record.function, record.reason)
            }
        }
        for doc in namespace
            .as_deref()
            .map(|ns| emf::checks(ns, record))
            .unwrap_or_default()
        {
            tracing::info!(target: crate::logging::METRICS_TARGET, emf = %doc, "check verdicts by type");
        }
    }

    /// Stamps the time taken and the budget into the record.
    pub fn stamp(&mut self, started: Instant, budget: &Budget) {
        self.record.elapsed_ms = millis(started.elapsed());
        self.record.budget_ms = millis(budget.end().saturating_duration_since(started));
    }
}

/// Runs the checks that apply and turns the run into a decision.
pub async fn decide(
    services: &Services,
    role: Role,
    config: &Config,
    stage: Option<&Stage>,
    deployment: Deployment,
    prior: RunState,
    budget: Budget,
) -> Decision {
    let first = deployment.first_deployment == Some(true);
    let skipped: Vec<&str> = config
        .checks
        .iter()
        .filter(|c| first && c.common.on_first_deployment == FirstDeployment::Skip)
        .map(|c| c.name.as_str())
        .collect();
    let active: Vec<CheckConfig> = config
        .checks
        .iter()
        .filter(|c| c.runs_at(stage) && !skipped.contains(&c.name.as_str()))
        .cloned()
        .collect();
    let mut notes = Vec::new();
    if !skipped.is_empty() {
        notes.push(format!(
            "first deployment of the service (no previous revision): skipped {} (onFirstDeployment: skip)",
            skipped.join(", ")
        ));
    }
    let at = stage.map(|s| format!(" at {s}")).unwrap_or_default();
    if active.is_empty() {
        let whence = match deployment.protocol {
            Protocol::Ecs => format!(
                "{}, {} or hookDetails.{CONFIG_KEY}",
                config::ENV_INLINE,
                config::ENV_PARAMETER
            ),
            Protocol::CodeDeploy => format!("{} or {}", config::ENV_INLINE, config::ENV_PARAMETER),
        };
        let reason = format!(
            "no checks configured for {role}{at}: nothing was verified. Configure checks in {whence}"
        );
        let mut d = match config.settings.when_no_checks {
            NoChecksPolicy::Pass => {
                tracing::warn!("{reason}");
                Decision::new(role, HookStatus::Succeeded, reason, Some(deployment))
            }
            NoChecksPolicy::Fail => Decision::failed(
                role,
                format!("{reason} (whenNoChecks: fail)"),
                Some(deployment),
            ),
        };
        d.record.notes = notes;
        return d;
    }
    let facts = Facts::new();
    let report = {
        let evaluator = evaluate_with(services, &deployment, &facts);
        runner::run(&active, prior, budget, &evaluator).await
    };
    let (status, delay) = match report.verdict {
        RunVerdict::Succeeded => (HookStatus::Succeeded, None),
        RunVerdict::Failed => (HookStatus::Failed, None),
        RunVerdict::Pending { call_back_after } => (
            HookStatus::InProgress,
            Some(call_back_after.as_secs_f64().ceil() as u64),
        ),
    };
    let mut d = Decision::new(role, status, report.reason, Some(deployment));
    d.revision = facts.known_revision();
    d.record.call_back_delay = delay;
    d.record.checks = report.checks;
    d.record.invocation = report.state.invocations;
    d.record.notes = notes;
    d.state = Some(report.state);
    d
}

/// The production evaluator: real checks with the process's services.
fn evaluate_with<'a>(
    services: &'a Services,
    deployment: &'a Deployment,
    facts: &'a Facts,
) -> impl Fn(&'a CheckConfig, Value, Budget) -> BoxFuture<'a, Evaluation> + Sync + 'a {
    move |check, data, budget| {
        Box::pin(async move {
            let ctx = CheckContext {
                deployment,
                services,
                budget,
                facts,
                name: &check.name,
                dry_run: check.common.dry_run,
            };
            check.kind.evaluate(&ctx, &data).await
        })
    }
}
