//! Configuration: which checks a function runs, and their settings.
//!
//! Sources, merged in this order with JSON Merge Patch (RFC 7386: objects merge key by
//! key, any other value replaces, `null` deletes):
//! 1. built-in defaults (none: every setting has a default of its own);
//! 2. the function's environment: `GREENLIGHT_CONFIG` (inline JSON) or
//!    `GREENLIGHT_CONFIG_PARAMETER` (the name of an SSM parameter holding it);
//! 3. ECS `hookDetails.greenlight`, per service and hook.
//!
//! Besides the checks, the document holds `whenNoChecks` and `notifications`
//! ([`crate::notify::settings`]).
//!
//! Validation is strict inside Greenlight's own settings: an unknown key, a wrong type or
//! an impossible value is an error naming the field path and what is expected. Keys of
//! `hookDetails` outside `greenlight` belong to other tools and are left alone.
//!
//! One job a module: [`keys`] (the names in events and the environment), this module (the
//! validated model), [`document`] (the JSON Schema), [`mod@parse`] (validation), [`merge`]
//! (sources, merging, and which source is at fault), [`sources`] (reading them).
//! Per-kind rules live with each kind ([`crate::checks`]).

pub mod document;
pub mod keys;
pub mod merge;
pub mod parse;
pub mod sources;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checks::{CheckCommon, Kind};
use crate::duration::HumanDuration;
use crate::stage::Stage;

pub use crate::schema::{ConfigError, Source};
pub use document::json_schema;
pub use keys::*;
pub use merge::{Selector, merge_patch, resolve, resolve_for};
pub use parse::parse;

/// What a function does when no check applies at the stage it was called for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NoChecksPolicy {
    /// Answer SUCCEEDED, with "no checks configured" as the decision's reason and a warning
    /// in the log.
    #[default]
    Pass,
    /// Answer FAILED: a hook attached without checks is a mistake.
    Fail,
}

/// One configured check.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub name: String,
    pub common: CheckCommon,
    pub kind: Kind,
}

impl PartialEq for CheckConfig {
    fn eq(&self, other: &CheckConfig) -> bool {
        self.name == other.name && self.common == other.common && *self.kind == *other.kind
    }
}

impl CheckConfig {
    /// Whether the check runs at this ECS stage (`None`: CodeDeploy, always).
    pub fn runs_at(&self, stage: Option<&Stage>) -> bool {
        self.common.runs_at(stage)
    }
}

/// Greenlight's top-level settings other than the checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// What to do when no check applies at the stage: `pass` (default, with a warning) or
    /// `fail`.
    #[serde(default)]
    pub when_no_checks: NoChecksPolicy,
    /// Deployment notifications: channels (Slack, Microsoft Teams, a webhook, SNS) and the
    /// events each one receives. Default: none.
    #[serde(default)]
    pub notifications: crate::notify::Notifications,
    /// CodeDeploy: how long a hook may keep waiting (re-invoking itself) before it reports
    /// Failed as undecided. Below CodeDeploy's one hour. Default `50m`.
    #[serde(default = "default_max_wait")]
    pub code_deploy_max_wait: HumanDuration,
}

fn default_max_wait() -> HumanDuration {
    HumanDuration::secs(50 * 60)
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            when_no_checks: NoChecksPolicy::default(),
            code_deploy_max_wait: default_max_wait(),
            notifications: crate::notify::Notifications::default(),
        }
    }
}

/// The whole configuration, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub settings: Settings,
    pub checks: Vec<CheckConfig>,
}
