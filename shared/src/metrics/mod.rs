//! Metric sources: where series come from, kept apart from how they are judged.
//!
//! A source is a query type implementing [`MetricQuery`]: validated like any setting, and
//! fetched for a time window, all of a check's queries in as few requests as the source
//! allows. The analyses (`metricThreshold`'s M of N, minimum evidence and bake window;
//! `canary`'s judge) are generic over it, so a new source gets them unchanged.
//! [`cloudwatch`] is the first source.

pub mod cloudwatch;

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::budget::Budget;
use crate::deployment::Deployment;
use crate::facts::Facts;
use crate::schema::ConfigError;
use crate::services::Services;
use crate::verdict::Failure;

/// A series: (time in ms since the epoch, value), oldest first.
pub type Series = Vec<(i64, f64)>;

/// The time range a fetch covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
}

/// What a source may use: the deployment (placeholders), the ECS facts looked up once per
/// invocation, the process's clients, and the invocation's budget.
pub struct SourceContext<'a> {
    pub deployment: &'a Deployment,
    pub services: &'a Services,
    pub facts: &'a Facts,
    pub budget: &'a Budget,
}

/// A query of one metric source.
pub trait MetricQuery:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static
{
    /// Rules beyond the types (`at` is the query's field path).
    fn validate(&self, at: &str) -> Result<(), ConfigError>;

    /// The time between its datapoints: how far back N datapoints reach.
    fn period(&self) -> Duration;

    /// What a reason calls the metric when the check sets no label.
    fn label(&self) -> Option<String>;

    /// Fetches the named queries over `window`, in as few requests as the source allows.
    /// Every name is in the answer; a query without data has an empty series.
    fn fetch<'a>(
        queries: &'a [(&'a str, &'a Self)],
        window: Window,
        ctx: &'a SourceContext<'a>,
    ) -> BoxFuture<'a, Result<HashMap<String, Series>, Failure>>;
}
