//! The ECS edge: ECS invokes the hook synchronously and reads its answer. The event tells
//! the stage and the revisions; `hookDetails` carries Greenlight's settings, and the state
//! of a decision still pending, from one invocation to the next. ECS calls the
//! `PRE_`/`PRODUCTION_TRAFFIC_SHIFT` hooks once per canary or linear step, so state is
//! carried within one step only.

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::guarded;
use super::protocol::ecs::Weights;
use super::protocol::payload::SetAside;
use super::protocol::{EcsEvent, EcsResponse, Stage};
use crate::budget::Budget;
use crate::config::{DECISION_KEY, STATE_KEY, sources};
use crate::deployment::{Deployment, Protocol, TrafficDirection, parse_ecs_arn};
use crate::engine::runner::{self, RunState};
use crate::engine::{self, Decision, notifications};
use crate::role::Role;
use crate::services::Services;
use crate::verdict::HookStatus;

fn weight_of(w: &Weights, arn: &str) -> Option<f64> {
    w.iter().find(|(a, _)| a == arn).map(|(_, x)| *x)
}

impl Deployment {
    pub fn from_ecs(role: Role, ev: &EcsEvent) -> Deployment {
        let (stage, stage_assumed) = match &ev.lifecycle_stage {
            Some(s) => (s.clone(), false),
            None => (role.assumed_stage(), true),
        };
        let service = parse_ecs_arn(&ev.service_arn);
        let target = parse_ecs_arn(&ev.target_service_revision_arn);
        let target_arn = ev.target_service_revision_arn.as_str();

        // The weight map that moves at this stage.
        let moving = match stage {
            Stage::TestTrafficShift => Some(&ev.test_traffic_weights),
            Stage::ProductionTrafficShift => Some(&ev.production_traffic_weights),
            _ => None,
        };
        let source = ev
            .production_traffic_weights
            .iter()
            .chain(ev.test_traffic_weights.iter())
            .find(|(arn, _)| arn != target_arn)
            .map(|(arn, _)| arn.clone());
        let traffic = match moving {
            Some(w) if !w.is_empty() => {
                let back = weight_of(w, target_arn) == Some(0.0)
                    && w.iter().any(|(a, x)| a != target_arn && *x >= 100.0);
                if back {
                    TrafficDirection::Back
                } else {
                    TrafficDirection::Forward
                }
            }
            _ => TrafficDirection::Unknown,
        };
        let all_weights_known =
            !(ev.test_traffic_weights.is_empty() && ev.production_traffic_weights.is_empty());
        let first_deployment =
            (stage.shifts_traffic() && all_weights_known && source.is_none()).then_some(true);

        Deployment {
            protocol: Protocol::Ecs,
            role,
            stage: Some(stage),
            stage_assumed,
            key: ev
                .resource_arn
                .clone()
                .unwrap_or_else(|| ev.target_service_revision_arn.clone()),
            region: service.region.or(target.region.clone()),
            account: service.account.or(target.account.clone()),
            cluster: service.cluster.or(target.cluster.clone()),
            service: service.service.or(target.service.clone()),
            service_arn: Some(ev.service_arn.clone()),
            service_deployment_arn: ev.resource_arn.clone(),
            execution_id: ev.execution_id.clone(),
            target_revision_arn: Some(ev.target_service_revision_arn.clone()),
            target_revision_id: target.id,
            source_revision_arn: source,
            traffic,
            first_deployment,
            codedeploy_deployment_id: None,
            codedeploy: None,
        }
    }
}

/// Decides, notifies, and answers an ECS event.
pub(super) async fn answer(
    services: &Services,
    role: Role,
    ev: &EcsEvent,
    set_aside: &[SetAside],
    started: Instant,
    budget: Budget,
) -> Result<Value, String> {
    let deployment = Deployment::from_ecs(role, ev);
    // Greenlight's own entries must be read; another tool's are its business.
    let own = set_aside.iter().find(|s| {
        s.hook_details_key()
            .is_some_and(|k| k == crate::config::CONFIG_KEY || k == STATE_KEY)
    });
    let mut d = match own {
        Some(s) => Decision::failed(
            role,
            format!(
                "{}: Greenlight cannot read it; failing closed",
                s.describe()
            ),
            Some(deployment.clone()),
        ),
        None => {
            guarded(
                role,
                &budget,
                Some(deployment.clone()),
                decide(services, role, ev, deployment, budget),
                |d| d,
            )
            .await
        }
    };
    for s in set_aside {
        d.record
            .notes
            .push(format!("{}: {}", s.describe(), super::unread(s)));
    }
    d.stamp(started, &budget);
    notifications::notify(services, &mut d, Some(&ev.hook_details), &budget).await;
    Ok(finish(d, &ev.hook_details))
}

/// The ECS answer: `hookDetails` keeps every key it came with (configuration included, as
/// ECS may replace rather than merge), drops old Greenlight state, and adds the decision
/// and, with `IN_PROGRESS`, the state to carry.
pub(super) fn finish(d: Decision, incoming: &Map<String, Value>) -> Value {
    d.log();
    let mut details = incoming.clone();
    details.shift_remove(STATE_KEY);
    details.shift_remove(DECISION_KEY);
    if d.status() == HookStatus::InProgress
        && let Some(state) = &d.state
    {
        details.insert(
            STATE_KEY.into(),
            serde_json::to_value(state).unwrap_or(Value::Null),
        );
    }
    details.insert(DECISION_KEY.into(), d.record.trimmed());
    EcsResponse {
        hook_status: d.status(),
        call_back_delay: d.record.call_back_delay,
        hook_details: details,
    }
    .to_value()
}

async fn decide(
    services: &Services,
    role: Role,
    ev: &EcsEvent,
    deployment: Deployment,
    budget: Budget,
) -> Decision {
    let mut notes = Vec::new();
    let stage = deployment.stage.clone().unwrap_or(role.assumed_stage());
    if deployment.stage_assumed {
        notes.push(format!("the event has the flat launch-era shape and names no stage; handled as {stage}, the {role} function's stage"));
    }
    if let Stage::Unknown(s) = &stage {
        tracing::warn!(stage = %s, "unknown lifecycle stage; handling it as the {role} function");
        notes.push(format!(
            "unknown lifecycle stage {s}; handled as the {role} function"
        ));
    }
    if deployment.rolling_back() {
        let to = deployment
            .source_revision_arn
            .clone()
            .unwrap_or_else(|| "the previous revision".into());
        let mut d = Decision::new(
            role,
            HookStatus::Succeeded,
            format!(
                "traffic is moving back to {to} at {stage} (rollback); checks never block a rollback"
            ),
            Some(deployment),
        );
        d.record.notes = notes;
        return d;
    }
    let config = match sources::hook_source(&ev.hook_details) {
        Ok(hook) => sources::load(services, &budget, hook, &deployment).await,
        Err(e) => Err(e),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            let mut d = Decision::failed(role, e.to_string(), Some(deployment));
            d.record.notes = notes;
            return d;
        }
    };
    let step = step(&stage, ev, &deployment);
    let prior = carried(ev, &deployment, &step, &mut notes);
    let mut d = engine::decide(
        services,
        role,
        &config,
        Some(&stage),
        deployment,
        prior,
        budget,
    )
    .await;
    d.record.notes.splice(0..0, notes);
    d
}

/// The stage, and for the canary and linear steps of `PRE_`/`PRODUCTION_TRAFFIC_SHIFT`,
/// the new revision's production weight.
fn step(stage: &Stage, ev: &EcsEvent, deployment: &Deployment) -> String {
    match stage {
        Stage::PreProductionTrafficShift | Stage::ProductionTrafficShift => {
            let target = deployment
                .target_revision_arn
                .as_deref()
                .unwrap_or_default();
            let weight = ev
                .production_traffic_weights
                .iter()
                .find(|(a, _)| a == target)
                .map(|(_, w)| *w)
                .unwrap_or(0.0);
            format!("{stage}@{weight}")
        }
        other => other.as_str().to_string(),
    }
}

/// The state carried in `hookDetails` when it belongs to this deployment, version and
/// step; else a fresh one, with a note saying why.
fn carried(
    ev: &EcsEvent,
    deployment: &Deployment,
    step: &str,
    notes: &mut Vec<String>,
) -> RunState {
    let fresh = || {
        let mut s = RunState::fresh(&deployment.key);
        s.step = step.to_string();
        s
    };
    match ev.hook_details.get(STATE_KEY) {
        None => fresh(),
        Some(v) => match serde_json::from_value::<RunState>(v.clone()) {
            Ok(s)
                if s.deployment == deployment.key
                    && s.v == runner::STATE_VERSION
                    && s.step == step =>
            {
                s
            }
            Ok(s) if s.deployment == deployment.key && s.v == runner::STATE_VERSION => {
                notes.push(format!(
                    "new step ({step}; the carried state was for {}): checks start afresh",
                    s.step
                ));
                fresh()
            }
            Ok(_) => {
                notes.push(format!(
                    "ignored {STATE_KEY} from another deployment or version"
                ));
                fresh()
            }
            Err(e) => {
                notes.push(format!("ignored an unreadable {STATE_KEY}: {e}"));
                fresh()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol;
    use super::*;
    use crate::template::{render, validate};

    #[test]
    fn placeholders_fill_from_the_event() {
        let ev = protocol::ecs::parse(&serde_json::json!({
            "executionId": "e", "lifecycleStage": "TEST_TRAFFIC_SHIFT",
            "executionDetails": {
                "serviceArn": "arn:aws:ecs:eu-west-1:111:service/c1/web",
                "targetServiceRevisionArn": "arn:aws:ecs:eu-west-1:111:service-revision/c1/web/42",
                "testTrafficWeights": {"arn:aws:ecs:eu-west-1:111:service-revision/c1/web/42": 100, "arn:aws:ecs:eu-west-1:111:service-revision/c1/web/41": 0}
            }
        }))
        .unwrap();
        let d = Deployment::from_ecs(Role::BeforeAllowTraffic, &ev);
        assert_eq!(
            render("http://${service}.${cluster}.internal/health?rev=${targetRevisionId}&from=${sourceRevisionId}&at=${stage}", &d).unwrap(),
            "http://web.c1.internal/health?rev=42&from=41&at=TEST_TRAFFIC_SHIFT"
        );
        assert!(
            validate("http://${nope}/")
                .unwrap_err()
                .contains("unknown placeholder ${nope}")
        );
        assert!(
            validate("http://${service/")
                .unwrap_err()
                .contains("unclosed")
        );
        assert_eq!(render("plain", &d).unwrap(), "plain");
    }
}
