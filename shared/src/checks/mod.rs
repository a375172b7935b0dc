//! The check kinds. Each module owns one kind: its settings (strictly validated, with a
//! JSON Schema) and its evaluation, which answers the same question in the same type:
//! what is the verdict now, and why ([`Evaluation`]). Checks never see which protocol
//! called them.

pub mod http;
pub mod image_admission;
pub mod metrics;
pub mod migrations;
pub mod target_health;
pub mod task_health;

use schemars::SchemaGenerator;
use serde_json::Value;

use crate::budget::Budget;
use crate::config::ConfigError;
use crate::deployment::Deployment;
use crate::facts::Facts;
use crate::services::Services;
use crate::verdict::Evaluation;

/// A check's kind-specific settings.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    Http(Box<http::HttpCheck>),
    TargetHealth(target_health::TargetHealthCheck),
    TaskHealth(task_health::TaskHealthCheck),
    ImageAdmission(image_admission::ImageAdmissionCheck),
    MetricThreshold(Box<metrics::threshold::ThresholdCheck>),
    Alarms(metrics::alarms::AlarmsCheck),
    Canary(Box<metrics::canary::CanaryCheck>),
    PostgresMigrations(Box<migrations::postgres::PostgresMigrationsCheck>),
    MigrationTask(Box<migrations::task::MigrationTaskCheck>),
}

impl CheckKind {
    /// The bake window, for checks that observe one.
    pub fn bake_for(&self) -> Option<std::time::Duration> {
        match self {
            CheckKind::MetricThreshold(c) => c.bake_for.map(|d| d.get()),
            CheckKind::Alarms(c) => c.bake_for.map(|d| d.get()),
            CheckKind::Canary(c) => c.bake_for.map(|d| d.get()),
            _ => None,
        }
    }

    /// The key and value of the wait between evaluations, for checks that poll.
    pub fn interval(&self) -> Option<(&'static str, std::time::Duration)> {
        let d = match self {
            CheckKind::Http(c) => c.interval,
            CheckKind::TargetHealth(c) => c.interval,
            CheckKind::TaskHealth(c) => c.interval,
            CheckKind::MetricThreshold(c) => c.interval,
            CheckKind::Alarms(c) => c.interval,
            CheckKind::Canary(c) => c.interval,
            CheckKind::MigrationTask(c) => c.interval,
            CheckKind::PostgresMigrations(c) => {
                return Some(("lockPollInterval", c.lock_poll_interval.get()));
            }
            CheckKind::ImageAdmission(_) => return None,
        };
        Some(("interval", d.get()))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Http(_) => "http",
            CheckKind::TargetHealth(_) => "targetHealth",
            CheckKind::TaskHealth(_) => "taskHealth",
            CheckKind::ImageAdmission(_) => "imageAdmission",
            CheckKind::MetricThreshold(_) => "metricThreshold",
            CheckKind::Alarms(_) => "alarms",
            CheckKind::Canary(_) => "canary",
            CheckKind::PostgresMigrations(_) => "postgresMigrations",
            CheckKind::MigrationTask(_) => "migrationTask",
        }
    }
}

/// What a check may use while it evaluates.
pub struct CheckContext<'a> {
    pub deployment: &'a Deployment,
    pub services: &'a Services,
    /// The state this check returned last time (`null` on the first evaluation).
    pub state: &'a Value,
    pub budget: Budget,
    /// ECS facts looked up once per invocation and shared by the checks.
    pub facts: &'a Facts,
    /// The check's name in the configuration.
    pub name: &'a str,
    /// The check's `dryRun`: checks that change something (migrations) only say what they
    /// would do.
    pub dry_run: bool,
}

/// Evaluates one check once.
pub async fn evaluate(kind: &CheckKind, ctx: &CheckContext<'_>) -> Evaluation {
    match kind {
        CheckKind::Http(c) => http::evaluate(c, ctx).await,
        CheckKind::TargetHealth(c) => target_health::evaluate(c, ctx).await,
        CheckKind::TaskHealth(c) => task_health::evaluate(c, ctx).await,
        CheckKind::ImageAdmission(c) => image_admission::evaluate(c, ctx).await,
        CheckKind::MetricThreshold(c) => metrics::threshold::evaluate(c, ctx).await,
        CheckKind::Alarms(c) => metrics::alarms::evaluate(c, ctx).await,
        CheckKind::Canary(c) => metrics::canary::evaluate(c, ctx).await,
        CheckKind::PostgresMigrations(c) => migrations::postgres::evaluate(c, ctx).await,
        CheckKind::MigrationTask(c) => migrations::task::evaluate(c, ctx).await,
    }
}

/// A registered check kind: its `type` name, its schema and its parser.
pub struct KindInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn(&mut SchemaGenerator) -> Value,
    pub parse: fn(Value, &str) -> Result<CheckKind, ConfigError>,
}

/// Every check kind, in the order the documentation lists them.
pub static KINDS: &[KindInfo] = &[
    KindInfo {
        name: "http",
        description: "Probes an HTTP endpoint (the green revision's health URL) until it answers as expected.",
        schema: |g| crate::config::inline_schema::<http::HttpCheck>(g),
        parse: |v, at| http::parse(v, at).map(|c| CheckKind::Http(Box::new(c))),
    },
    KindInfo {
        name: "targetHealth",
        description: "Waits until every target of the green revision's target groups is healthy (ELBv2 DescribeTargetHealth).",
        schema: |g| crate::config::inline_schema::<target_health::TargetHealthCheck>(g),
        parse: |v, at| target_health::parse(v, at).map(CheckKind::TargetHealth),
    },
    KindInfo {
        name: "taskHealth",
        description: "Waits until the green revision's ECS tasks are RUNNING (and HEALTHY where health checks are defined), as many as desired.",
        schema: |g| crate::config::inline_schema::<task_health::TaskHealthCheck>(g),
        parse: |v, at| task_health::parse(v, at).map(CheckKind::TaskHealth),
    },
    KindInfo {
        name: "imageAdmission",
        description: "Admits the green revision's container images: allowed repositories, pinned digests, ECR scan findings.",
        schema: |g| crate::config::inline_schema::<image_admission::ImageAdmissionCheck>(g),
        parse: |v, at| image_admission::parse(v, at).map(CheckKind::ImageAdmission),
    },
    KindInfo {
        name: "metricThreshold",
        description: "Compares a CloudWatch metric or metric-math expression with a threshold over the latest datapoints (M of N), with minimum evidence and an optional bake window.",
        schema: |g| crate::config::inline_schema::<metrics::threshold::ThresholdCheck>(g),
        parse: |v, at| {
            metrics::threshold::parse(v, at).map(|c| CheckKind::MetricThreshold(Box::new(c)))
        },
    },
    KindInfo {
        name: "alarms",
        description: "Fails when a named CloudWatch alarm (or one with a name prefix) is in ALARM; INSUFFICIENT_DATA follows a policy; optional bake window.",
        schema: |g| crate::config::inline_schema::<metrics::alarms::AlarmsCheck>(g),
        parse: |v, at| metrics::alarms::parse(v, at).map(CheckKind::Alarms),
    },
    KindInfo {
        name: "canary",
        description: "Judges the new revision against a baseline statistically: Mann-Whitney U with a Hodges-Lehmann interval for series, a two-proportion test for error rates.",
        schema: |g| crate::config::inline_schema::<metrics::canary::CanaryCheck>(g),
        parse: |v, at| metrics::canary::parse(v, at).map(|c| CheckKind::Canary(Box::new(c))),
    },
    KindInfo {
        name: "postgresMigrations",
        description: "Applies versioned SQL migrations to PostgreSQL once per deployment: sqlx's ledger and advisory lock, one transaction per migration, checksums of applied files, and a guard against statements the previous revision cannot survive.",
        schema: |g| {
            crate::config::inline_schema::<migrations::postgres::PostgresMigrationsCheck>(g)
        },
        parse: |v, at| {
            migrations::postgres::parse(v, at).map(|c| CheckKind::PostgresMigrations(Box::new(c)))
        },
    },
    KindInfo {
        name: "migrationTask",
        description: "Runs the migration command once per deployment in an ECS task from the new revision (its task definition, the service's network); passes when the container exits 0, stops it after a timeout.",
        schema: |g| crate::config::inline_schema::<migrations::task::MigrationTaskCheck>(g),
        parse: |v, at| {
            migrations::task::parse(v, at).map(|c| CheckKind::MigrationTask(Box::new(c)))
        },
    },
];
