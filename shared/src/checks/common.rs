//! The settings every check has, whatever its kind, and the rules that tie them to the
//! kind's own (`within` against the bake window and the polling interval).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AnyCheck;
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::stage::Stage;

/// What an error of the check itself (not a bad release: the check could not run) means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// Fail closed: the hook fails (default).
    #[default]
    Fail,
    /// Fail open: the check counts as passed, and the record says it failed open.
    Pass,
    /// Treat as pending and try again, until the check's `within` deadline.
    Retry,
}

/// What a check does on a service's first deployment, when there is no previous revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FirstDeployment {
    /// Run as usual (default).
    #[default]
    Run,
    /// Skip: the check compares with, or needs, a previous revision.
    Skip,
}

fn default_within() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_true() -> bool {
    true
}

/// Settings every check has, whatever its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckCommon {
    /// `false` turns the check off (for one service, through `hookDetails`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// What it means when the check itself cannot run: `fail` (default), `pass`, `retry`.
    #[serde(default)]
    pub on_error: OnError,
    /// Evaluate and record, but never block the deployment.
    #[serde(default)]
    pub dry_run: bool,
    /// ECS lifecycle stages at which the check runs; default: every stage the hook is
    /// attached to. CodeDeploy invocations ignore this.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Stage>>")]
    pub stages: Option<Vec<String>>,
    /// On the first deployment of a service (no previous revision): `run` (default) or
    /// `skip`.
    #[serde(default)]
    pub on_first_deployment: FirstDeployment,
    /// The longest the check may stay undecided (pending, or retrying errors), counted from
    /// its first evaluation in this deployment; then it fails. At least the check's
    /// `interval`. Default `10m`.
    #[serde(default = "default_within")]
    pub within: HumanDuration,
}

impl CheckCommon {
    /// Whether the check runs at this ECS stage (`None`: CodeDeploy, always).
    pub fn runs_at(&self, stage: Option<&Stage>) -> bool {
        match (&self.stages, stage) {
            (Some(stages), Some(stage)) => stages.iter().any(|s| s == stage.as_str()),
            _ => true,
        }
    }

    /// Rules of the common settings alone (`at` is the check's path).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if let Some(stages) = &self.stages {
            for (i, s) in stages.iter().enumerate() {
                if !Stage::KNOWN.iter().any(|k| k.as_str() == s) {
                    let known: Vec<&str> = Stage::KNOWN.iter().map(|k| k.as_str()).collect();
                    return Err(ConfigError::new(
                        format!("{at}.stages[{i}]"),
                        format!("unknown stage {s:?}; expected one of: {}", known.join(", ")),
                    ));
                }
            }
        }
        if self.within.get().is_zero() {
            return Err(ConfigError::new(
                format!("{at}.within"),
                "must be longer than zero",
            ));
        }
        Ok(())
    }

    /// Ties the common settings to the kind's: `within` against the bake window, the
    /// kind's own default and rules, and the polling interval. `within_set` and
    /// `interval_set` say whether the configuration set them.
    pub fn fit(
        &mut self,
        kind: &dyn AnyCheck,
        within_set: bool,
        interval_set: bool,
        at: &str,
    ) -> Result<(), ConfigError> {
        if let Some(bake) = kind.bake_for()
            && self.within.get() <= bake
        {
            return Err(ConfigError::new(
                format!("{at}.within"),
                format!(
                    "is {}, not longer than bakeFor ({}): the check would give up before its window ends; set within to more than bakeFor",
                    self.within,
                    HumanDuration(bake)
                ),
            ));
        }
        if !within_set && let Some(within) = kind.default_within() {
            self.within = HumanDuration(within);
        }
        if let Some((key, interval)) = kind.interval()
            && interval > self.within.get()
        {
            let type_name = kind.type_name();
            let (interval, within) = (HumanDuration(interval), self.within);
            let (path, message) = if interval_set {
                (
                    key,
                    format!(
                        "is {interval}, longer than within ({within}): the check could not be evaluated again before it gives up; set {key} to at most {within}, or within to at least {interval}"
                    ),
                )
            } else {
                (
                    "within",
                    format!(
                        "is {within}, shorter than the {type_name} check's default {key} ({interval}): the check could not be evaluated again before it gives up; set within to at least {interval}, or {key} to at most {within}"
                    ),
                )
            };
            return Err(ConfigError::new(format!("{at}.{path}"), message));
        }
        kind.check_within(self.within, at)
    }
}
