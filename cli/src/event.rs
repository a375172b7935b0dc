//! The event ECS sends a Lambda lifecycle hook, in its current (nested) shape.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::plan::Step;
use crate::service::{Service, Stage};

/// The ARNs a deployment's events carry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revisions {
    pub service_arn: String,
    /// The service deployment ARN, sent as `resourceArn`.
    pub service_deployment_arn: String,
    /// The new (green) revision.
    pub target_service_revision_arn: String,
    /// The revision traffic comes from (blue); `None` on a service's first deployment.
    pub source_service_revision_arn: Option<String>,
}

/// ARNs given on the command line; the others are generated.
#[derive(Clone, Debug, Default)]
pub struct RevisionArgs {
    pub region: Option<String>,
    pub account: Option<String>,
    pub service_arn: Option<String>,
    pub service_deployment_arn: Option<String>,
    pub target_revision_arn: Option<String>,
    pub source_revision_arn: Option<String>,
    pub first_deployment: bool,
}

impl Revisions {
    pub fn new(service: &Service, args: &RevisionArgs) -> Revisions {
        let (hook_region, hook_account) = service
            .hook_region_account()
            .unwrap_or_else(|| ("us-east-1".into(), "123456789012".into()));
        let region = args.region.clone().unwrap_or(hook_region);
        let account = args.account.clone().unwrap_or(hook_account);
        let base = format!("arn:aws:ecs:{region}:{account}");
        let path = format!("{}/{}", service.cluster, service.name);
        let revision = || format!("{base}:service-revision/{path}/{}", revision_id());
        Revisions {
            service_arn: args
                .service_arn
                .clone()
                .unwrap_or_else(|| format!("{base}:service/{path}")),
            service_deployment_arn: args
                .service_deployment_arn
                .clone()
                .unwrap_or_else(|| format!("{base}:service-deployment/{path}/{}", deployment_id())),
            target_service_revision_arn: args.target_revision_arn.clone().unwrap_or_else(revision),
            source_service_revision_arn: if args.first_deployment {
                None
            } else {
                Some(args.source_revision_arn.clone().unwrap_or_else(revision))
            },
        }
    }

    /// A weight map giving the new revision `green` percent and the old one the rest. On
    /// a first deployment it names the new revision only.
    pub fn split(&self, green: f64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(self.target_service_revision_arn.clone(), pct(green));
        if let Some(source) = &self.source_service_revision_arn {
            m.insert(source.clone(), pct(100.0 - green));
        }
        m
    }
}

/// A percentage as ECS writes it: an integer when it is whole.
pub fn pct(x: f64) -> Value {
    let x = crate::service::round_pct(x);
    if x.fract() == 0.0 {
        json!(x as u64)
    } else {
        json!(x)
    }
}

/// The traffic weights an event carries: `(testTrafficWeights, productionTrafficWeights)`.
///
/// Test traffic moves to the new revision at TEST_TRAFFIC_SHIFT; production traffic at
/// PRODUCTION_TRAFFIC_SHIFT, to the step's weight; PRE_PRODUCTION_TRAFFIC_SHIFT shows the
/// weights before the step. In a rollback, the stage's map gives the new revision 0 and
/// the old one 100. Every other stage carries two empty maps.
pub fn weights(
    revisions: &Revisions,
    stage: Stage,
    step: Option<Step>,
    rollback: bool,
) -> (Map<String, Value>, Map<String, Value>) {
    let none = Map::new;
    match (stage, rollback) {
        (Stage::TestTrafficShift, true) => (revisions.split(0.0), none()),
        (Stage::ProductionTrafficShift, true) => (none(), revisions.split(0.0)),
        (Stage::TestTrafficShift, false) => (revisions.split(100.0), none()),
        (Stage::PreProductionTrafficShift, false) => {
            (none(), revisions.split(step.map(|s| s.from).unwrap_or(0.0)))
        }
        (Stage::ProductionTrafficShift, false) => {
            (none(), revisions.split(step.map(|s| s.to).unwrap_or(100.0)))
        }
        _ => (none(), none()),
    }
}

/// The event: `executionId`, `lifecycleStage`, `resourceArn`, `executionDetails` and,
/// when there are any, `hookDetails`.
pub fn build(
    revisions: &Revisions,
    stage: Stage,
    execution_id: &str,
    weights: &(Map<String, Value>, Map<String, Value>),
    hook_details: Option<&Value>,
) -> Value {
    let mut event = json!({
        "executionId": execution_id,
        "lifecycleStage": stage.as_str(),
        "resourceArn": revisions.service_deployment_arn,
        "executionDetails": {
            "serviceArn": revisions.service_arn,
            "targetServiceRevisionArn": revisions.target_service_revision_arn,
            "testTrafficWeights": weights.0,
            "productionTrafficWeights": weights.1,
        },
    });
    if let Some(d) = hook_details {
        event["hookDetails"] = d.clone();
    }
    event
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 64 random bits (not for cryptography: ids only).
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A random (version 4) UUID, as ECS uses for `executionId`.
pub fn execution_id() -> String {
    let hi = random_u64();
    let lo = random_u64();
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0xC << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// A service revision id: 19 digits, as in `…:service-revision/cluster/service/9386398427419951854`.
fn revision_id() -> String {
    format!(
        "{}",
        1_000_000_000_000_000_000 + random_u64() % 8_000_000_000_000_000_000
    )
}

/// A service deployment id: 21 letters and digits.
fn deployment_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(21);
    let mut bits = random_u64();
    for i in 0..21 {
        if i % 10 == 0 {
            bits = random_u64();
        }
        out.push(ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char);
        bits /= ALPHABET.len() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revisions(first: bool) -> Revisions {
        Revisions {
            service_arn: "arn:aws:ecs:us-west-2:1:service/c/s".into(),
            service_deployment_arn: "arn:aws:ecs:us-west-2:1:service-deployment/c/s/d".into(),
            target_service_revision_arn: "green".into(),
            source_service_revision_arn: (!first).then(|| "blue".to_string()),
        }
    }

    #[test]
    fn ids_look_like_ecs_ids() {
        let a = execution_id();
        let b = execution_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_eq!(revision_id().len(), 19);
        assert_eq!(deployment_id().len(), 21);
    }

    #[test]
    fn weights_per_stage() {
        let r = revisions(false);
        let step = Step {
            index: 2,
            of: 2,
            from: 10.0,
            to: 100.0,
        };
        let (t, p) = weights(&r, Stage::TestTrafficShift, None, false);
        assert_eq!(Value::Object(t), json!({"green": 100, "blue": 0}));
        assert!(p.is_empty());
        let (t, p) = weights(&r, Stage::PreProductionTrafficShift, Some(step), false);
        assert!(t.is_empty());
        assert_eq!(Value::Object(p), json!({"green": 10, "blue": 90}));
        let (_, p) = weights(&r, Stage::ProductionTrafficShift, Some(step), false);
        assert_eq!(Value::Object(p), json!({"green": 100, "blue": 0}));
        let (_, p) = weights(&r, Stage::ProductionTrafficShift, None, true);
        assert_eq!(Value::Object(p), json!({"green": 0, "blue": 100}));
        let (t, p) = weights(&r, Stage::PostScaleUp, None, false);
        assert!(t.is_empty() && p.is_empty());
        let (t, _) = weights(&revisions(true), Stage::TestTrafficShift, None, false);
        assert_eq!(Value::Object(t), json!({"green": 100}));
        assert_eq!(pct(12.5), json!(12.5));
    }
}
