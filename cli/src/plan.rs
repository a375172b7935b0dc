//! The course of a deployment: the lifecycle stages in order, one pair of production
//! traffic stages per traffic step, and the bake waits.

use serde::Serialize;

use crate::service::{Service, Stage};

/// One production traffic step: the new revision's weight before and after it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// 1 for the first step.
    pub index: usize,
    pub of: usize,
    /// The new revision's production weight before this step.
    pub from: f64,
    /// The new revision's production weight after this step.
    pub to: f64,
}

/// Why a bake wait happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BakeKind {
    /// Between two production traffic steps (CANARY, LINEAR).
    Step,
    /// After the production traffic shift, before the old revision is cleaned up.
    Deployment,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// A lifecycle stage; `step` for PRE_PRODUCTION_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT.
    Stage {
        stage: Stage,
        step: Option<Step>,
    },
    Bake {
        kind: BakeKind,
        minutes: u32,
    },
}

/// The phases of the deployment, in order. RECONCILE_SERVICE is there only when a hook
/// asks for it and a previous revision exists (ECS runs it when a deployment starts with
/// more than one active revision).
pub fn phases(service: &Service, first_deployment: bool) -> Vec<Phase> {
    let mut out = Vec::new();
    let stage = |stage| Phase::Stage { stage, step: None };
    if !first_deployment && !service.hooks_at(Stage::ReconcileService).is_empty() {
        out.push(stage(Stage::ReconcileService));
    }
    for s in [
        Stage::PreScaleUp,
        Stage::PostScaleUp,
        Stage::TestTrafficShift,
        Stage::PostTestTrafficShift,
    ] {
        out.push(stage(s));
    }
    let weights = service.strategy.steps();
    let of = weights.len();
    let mut from = 0.0;
    for (i, to) in weights.into_iter().enumerate() {
        let step = Step {
            index: i + 1,
            of,
            from,
            to,
        };
        if i > 0 && service.strategy.step_bake_minutes() > 0 {
            out.push(Phase::Bake {
                kind: BakeKind::Step,
                minutes: service.strategy.step_bake_minutes(),
            });
        }
        out.push(Phase::Stage {
            stage: Stage::PreProductionTrafficShift,
            step: Some(step),
        });
        out.push(Phase::Stage {
            stage: Stage::ProductionTrafficShift,
            step: Some(step),
        });
        from = to;
    }
    out.push(stage(Stage::PostProductionTrafficShift));
    if service.bake_minutes > 0 {
        out.push(Phase::Bake {
            kind: BakeKind::Deployment,
            minutes: service.bake_minutes,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Hook, Strategy, TimeoutAction};

    fn service(strategy: Strategy, stages: Vec<Stage>) -> Service {
        Service {
            name: "checkout".into(),
            cluster: "shop".into(),
            strategy,
            bake_minutes: 3,
            hooks: vec![Hook {
                index: 0,
                target_arn: "gate".into(),
                role_arn: None,
                stages,
                details: None,
                timeout_minutes: 1440,
                timeout_action: TimeoutAction::Rollback,
            }],
            ignored: vec![],
        }
    }

    fn labels(p: &[Phase]) -> Vec<String> {
        p.iter()
            .map(|p| match p {
                Phase::Stage {
                    stage,
                    step: Some(s),
                } => format!("{stage}@{}->{}", s.from, s.to),
                Phase::Stage { stage, step: None } => stage.to_string(),
                Phase::Bake { kind, minutes } => format!("bake {kind:?} {minutes}"),
            })
            .collect()
    }

    #[test]
    fn canary_plan() {
        let s = service(
            Strategy::Canary {
                percent: 10.0,
                bake_minutes: 5,
            },
            vec![Stage::ReconcileService],
        );
        assert_eq!(
            labels(&phases(&s, false)),
            vec![
                "RECONCILE_SERVICE",
                "PRE_SCALE_UP",
                "POST_SCALE_UP",
                "TEST_TRAFFIC_SHIFT",
                "POST_TEST_TRAFFIC_SHIFT",
                "PRE_PRODUCTION_TRAFFIC_SHIFT@0->10",
                "PRODUCTION_TRAFFIC_SHIFT@0->10",
                "bake Step 5",
                "PRE_PRODUCTION_TRAFFIC_SHIFT@10->100",
                "PRODUCTION_TRAFFIC_SHIFT@10->100",
                "POST_PRODUCTION_TRAFFIC_SHIFT",
                "bake Deployment 3",
            ]
        );
        // A first deployment has a single revision: no reconciliation.
        assert_eq!(labels(&phases(&s, true))[0], "PRE_SCALE_UP");
    }

    #[test]
    fn blue_green_plan_without_reconcile() {
        let s = service(Strategy::BlueGreen, vec![Stage::PostScaleUp]);
        let l = labels(&phases(&s, false));
        assert_eq!(l[0], "PRE_SCALE_UP");
        assert!(l.contains(&"PRODUCTION_TRAFFIC_SHIFT@0->100".to_string()));
        assert_eq!(l.len(), 8);
    }
}
