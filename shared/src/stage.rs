//! The ECS lifecycle stages: the one list of them, their names, and what each means for
//! traffic. The configuration (`stages`), the events and the tools all use this list.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

/// The ECS lifecycle stages that accept hooks, in the order a deployment reaches them,
/// plus any stage a future ECS may add.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    ReconcileService,
    PreScaleUp,
    PostScaleUp,
    TestTrafficShift,
    PostTestTrafficShift,
    PreProductionTrafficShift,
    ProductionTrafficShift,
    PostProductionTrafficShift,
    /// A stage this version does not know; the function's role decides what to do.
    Unknown(String),
}

impl Stage {
    pub const KNOWN: [Stage; 8] = [
        Stage::ReconcileService,
        Stage::PreScaleUp,
        Stage::PostScaleUp,
        Stage::TestTrafficShift,
        Stage::PostTestTrafficShift,
        Stage::PreProductionTrafficShift,
        Stage::ProductionTrafficShift,
        Stage::PostProductionTrafficShift,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Stage::ReconcileService => "RECONCILE_SERVICE",
            Stage::PreScaleUp => "PRE_SCALE_UP",
            Stage::PostScaleUp => "POST_SCALE_UP",
            Stage::TestTrafficShift => "TEST_TRAFFIC_SHIFT",
            Stage::PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
            Stage::PreProductionTrafficShift => "PRE_PRODUCTION_TRAFFIC_SHIFT",
            Stage::ProductionTrafficShift => "PRODUCTION_TRAFFIC_SHIFT",
            Stage::PostProductionTrafficShift => "POST_PRODUCTION_TRAFFIC_SHIFT",
            Stage::Unknown(s) => s,
        }
    }

    /// The known stage named `s`, if it is one.
    pub fn known(s: &str) -> Option<Stage> {
        Stage::KNOWN.into_iter().find(|k| k.as_str() == s)
    }

    /// The stage named `s`; a name this version does not know is [`Stage::Unknown`].
    pub fn parse(s: &str) -> Stage {
        Stage::known(s).unwrap_or_else(|| Stage::Unknown(s.to_string()))
    }

    /// Stages where traffic moves, and where ECS re-invokes the hook during a rollback.
    pub fn shifts_traffic(&self) -> bool {
        matches!(
            self,
            Stage::TestTrafficShift | Stage::ProductionTrafficShift
        )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// In the JSON Schema: one of the known stage names.
impl JsonSchema for Stage {
    fn schema_name() -> Cow<'static, str> {
        "StageName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Stage::KNOWN.iter().map(Stage::as_str).collect();
        json_schema!({
            "description": "An ECS lifecycle stage that accepts hooks (for the schema).",
            "type": "string",
            "enum": names
        })
    }
}
