//! The check kinds, behind one interface.
//!
//! A kind is a settings type that implements [`Check`]: its `type` name and description,
//! its settings (deserialised strictly, with their JSON Schema), its own validation, its
//! bake window and polling interval, the typed state it carries across invocations, and
//! `evaluate`, which answers the same question in the same type for every kind: what is the
//! verdict now, and why ([`Evaluation`]). Checks never see which protocol called them.
//!
//! Every kind lives in a folder of its own (code, tests, a README) and is registered with
//! one line in the `kinds!` list below, which declares its module and adds it to
//! [`REGISTRY`]; the configuration, its JSON Schema and the runner know kinds only through
//! the registry.

pub mod common;
pub mod evidence;
pub mod migrations;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::budget::Budget;
use crate::deployment::Deployment;
use crate::duration::HumanDuration;
use crate::facts::Facts;
use crate::metrics::SourceContext;
use crate::schema::{self, ConfigError, Registry, Tagged};
use crate::services::Services;
use crate::verdict::Evaluation;

pub use common::{CheckCommon, FirstDeployment, OnError};

/// What a check may use while it evaluates.
pub struct CheckContext<'a> {
    pub deployment: &'a Deployment,
    pub services: &'a Services,
    pub budget: Budget,
    /// ECS facts looked up once per invocation and shared by the checks.
    pub facts: &'a Facts,
    /// The check's name in the configuration.
    pub name: &'a str,
    /// The check's `dryRun`: checks that change something (migrations) only say what they
    /// would do.
    pub dry_run: bool,
}

impl CheckContext<'_> {
    /// What a metric source may use, from this context.
    pub fn sources(&self) -> SourceContext<'_> {
        SourceContext {
            deployment: self.deployment,
            services: self.services,
            facts: self.facts,
            budget: &self.budget,
        }
    }
}

/// How a check paces itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// The key and value of the wait between evaluations, for checks that poll.
    pub interval: Option<(&'static str, Duration)>,
    /// The bake window, for checks that observe one.
    pub bake_for: Option<Duration>,
}

impl Timing {
    /// Evaluated again every `interval` (the `interval` key) while pending.
    pub fn every(interval: HumanDuration) -> Timing {
        Timing::every_by("interval", interval)
    }

    /// Evaluated again every `interval`, set by the `key` key.
    pub fn every_by(key: &'static str, interval: HumanDuration) -> Timing {
        Timing {
            interval: Some((key, interval.get())),
            bake_for: None,
        }
    }

    /// Observed for `bake_for`, when set.
    pub fn baking(self, bake_for: Option<HumanDuration>) -> Timing {
        Timing {
            bake_for: bake_for.map(HumanDuration::get),
            ..self
        }
    }
}

/// A check kind. The settings type is the check: it is read strictly from the
/// configuration (`deny_unknown_fields`), described by its JSON Schema, and evaluated.
pub trait Check:
    Clone + Debug + PartialEq + DeserializeOwned + JsonSchema + Send + Sync + 'static
{
    /// The `type` that selects the kind in the configuration.
    const TYPE: &'static str;
    /// One sentence for the schema and the documentation.
    const DESCRIPTION: &'static str;
    /// What the check carries from one evaluation to the next, across invocations (`()`
    /// for none). Unreadable carried state starts afresh from the default.
    type State: Serialize + DeserializeOwned + Default + Send + Sync;

    /// Rules beyond the types, and normal forms (`at` is the check's field path).
    fn validate(&mut self, _at: &str) -> Result<(), ConfigError> {
        Ok(())
    }

    /// How the check paces itself: the wait between evaluations and the bake window.
    fn timing(&self) -> Timing {
        Timing::default()
    }

    /// The `within` this check needs when the configuration sets none.
    fn default_within(&self) -> Option<Duration> {
        None
    }

    /// Rules that tie `within` to the kind's own settings.
    fn check_within(&self, _within: HumanDuration, _at: &str) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Evaluates once, from the state the last evaluation carried.
    fn evaluate<'a>(
        &'a self,
        ctx: &'a CheckContext<'a>,
        state: Self::State,
    ) -> impl Future<Output = Evaluation> + Send + 'a;
}

/// A configured check of any kind: what the configuration holds and the runner calls.
pub trait AnyCheck: Debug + Send + Sync {
    fn type_name(&self) -> &'static str;
    fn bake_for(&self) -> Option<Duration>;
    fn interval(&self) -> Option<(&'static str, Duration)>;
    fn default_within(&self) -> Option<Duration>;
    fn check_within(&self, within: HumanDuration, at: &str) -> Result<(), ConfigError>;
    /// Evaluates once; `state` is what the last evaluation carried (`null` at first).
    fn evaluate<'a>(
        &'a self,
        ctx: &'a CheckContext<'a>,
        state: &Value,
    ) -> BoxFuture<'a, Evaluation>;
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` is the same kind with the same settings.
    fn same(&self, other: &dyn AnyCheck) -> bool;
}

impl<T: Check> AnyCheck for T {
    fn type_name(&self) -> &'static str {
        T::TYPE
    }
    fn bake_for(&self) -> Option<Duration> {
        self.timing().bake_for
    }
    fn interval(&self) -> Option<(&'static str, Duration)> {
        self.timing().interval
    }
    fn default_within(&self) -> Option<Duration> {
        Check::default_within(self)
    }
    fn check_within(&self, within: HumanDuration, at: &str) -> Result<(), ConfigError> {
        Check::check_within(self, within, at)
    }
    fn evaluate<'a>(
        &'a self,
        ctx: &'a CheckContext<'a>,
        state: &Value,
    ) -> BoxFuture<'a, Evaluation> {
        let state = serde_json::from_value(state.clone()).unwrap_or_default();
        Box::pin(Check::evaluate(self, ctx, state))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same(&self, other: &dyn AnyCheck) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

impl PartialEq for dyn AnyCheck {
    fn eq(&self, other: &dyn AnyCheck) -> bool {
        self.same(other)
    }
}

/// A parsed check, shared by the configuration and the runner.
pub type Kind = Arc<dyn AnyCheck>;

/// The registry entry of `T`.
pub const fn register<T: Check>() -> Tagged<Kind> {
    Tagged {
        name: T::TYPE,
        description: T::DESCRIPTION,
        schema: schema::inline_schema::<T>,
        parse: parse::<T>,
    }
}

fn parse<T: Check>(value: Value, at: &str) -> Result<Kind, ConfigError> {
    let mut check: T = schema::typed(value, at)?;
    check.validate(at)?;
    Ok(Arc::new(check))
}

fn common_schema(generator: &mut SchemaGenerator) -> Value {
    schema::inline_schema::<CheckCommon>(generator)
}

/// Declares each kind's module and registers its check type, in order.
macro_rules! kinds {
    ($($module:ident::$check:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every check kind, in the order the documentation lists them.
        pub static REGISTRY: Registry<Kind> = Registry::new(
            "check",
            "{\"type\": \"http\", \"url\": \"…\"}",
            common_schema,
            &[$(register::<$module::$check>()),*],
        );
    };
}

// One line per kind: its folder and its check type.
kinds! {
    http::HttpCheck,
    target_health::TargetHealthCheck,
    task_health::TaskHealthCheck,
    image_admission::ImageAdmissionCheck,
    metric_threshold::ThresholdCheck,
    alarms::AlarmsCheck,
    canary::CanaryCheck,
    postgres_migrations::PostgresMigrationsCheck,
    migration_task::MigrationTaskCheck,
    traffic::TrafficCheck,
    approval::ApprovalCheck,
}

/// "Every interval must be at least 1s", for the kinds that poll.
pub fn at_least_a_second(interval: HumanDuration, path: String) -> Result<(), ConfigError> {
    if interval.get() < Duration::from_secs(1) {
        return Err(ConfigError::new(path, "must be at least 1s"));
    }
    Ok(())
}
