//! The configuration document's JSON Schema, generated from the types: the kinds of checks
//! and channels come from their registries.

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use super::Settings;
use crate::checks;

// The configuration document, for the JSON Schema only; parsing is done by `parse`.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "Greenlight configuration",
    description = "Which checks a Greenlight function runs, and their settings. Set in GREENLIGHT_CONFIG, the SSM parameter named by GREENLIGHT_CONFIG_PARAMETER, or an ECS hook's hookDetails.greenlight."
)]
#[allow(dead_code)]
struct ConfigDocument {
    /// The checks, by name. A name is 1-64 characters of letters, digits, `-` and `_`.
    /// Set a check to `null` (in a later source) to remove it.
    #[serde(default)]
    checks: IndexMap<String, CheckDocument>,
    #[serde(flatten)]
    settings: Settings,
    /// Settings for one ECS service, by `cluster/service` (or `service`), merged over the
    /// rest (and under the hook's hookDetails.greenlight).
    #[serde(default)]
    services: IndexMap<String, OverrideDocument>,
    /// Settings for one CodeDeploy application (`application`) or deployment group
    /// (`application/deploymentGroup`), merged over the rest, the group's last.
    #[serde(default)]
    code_deploy: IndexMap<String, OverrideDocument>,
}

/// A configuration for one service or deployment group (no further nesting).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct OverrideDocument {
    #[serde(default)]
    checks: IndexMap<String, CheckDocument>,
    #[serde(flatten)]
    settings: Settings,
}

#[allow(dead_code)]
struct CheckDocument;

impl JsonSchema for CheckDocument {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Check".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        checks::REGISTRY.schema(generator)
    }
}
/// The configuration's JSON Schema, generated from these types.
pub fn json_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<ConfigDocument>();
    schema.to_value()
}
