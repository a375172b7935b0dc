//! Metric sources: where series come from, kept apart from how they are judged.
//!
//! A source is a query type implementing [`MetricQuery`]: validated like any setting, and
//! fetched for a time window, all of a check's queries in as few requests as the source
//! allows. The analyses (`metricThreshold`'s M of N, minimum evidence and bake window;
//! `canary`'s judge) are generic over it, so a new source gets them unchanged.
//!
//! [`Query`] is the query the checks take: CloudWatch ([`cloudwatch`]) by default, or a
//! `prometheus` ([`prometheus`]: any Prometheus HTTP API, SigV4-signed for Amazon Managed
//! Prometheus and CloudWatch's PromQL API) or `datadog` ([`datadog`]: the v2 timeseries
//! API) query. Switching a check's source is changing its `query`; the verdict's
//! semantics stay the same.

pub mod cloudwatch;
pub mod datadog;
pub(crate) mod http;
pub mod prometheus;
mod sigv4;

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::deployment::Deployment;
use crate::duration::HumanDuration;
use crate::facts::Facts;
use crate::schema::ConfigError;
use crate::services::Services;
use crate::verdict::Failure;

/// A series: (time in ms since the epoch, value), oldest first.
pub type Series = Vec<(i64, f64)>;

/// The error of a query that selects several series: a check judges one. `labels` are
/// how the source names them; the first three are shown.
fn several_series(query: &str, labels: &[String], advice: &str) -> Failure {
    Failure::error(format!(
        "{} selects {} series ({}{}); a check judges one: {advice}",
        crate::text::clip(query, 300),
        labels.len(),
        labels
            .iter()
            .take(3)
            .map(|l| crate::text::clip(l, 120))
            .collect::<Vec<_>>()
            .join(", "),
        if labels.len() > 3 { ", …" } else { "" }
    ))
}

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

/// A metric query: CloudWatch (`metric`, or `expression` with `using`), `prometheus` or
/// `datadog`. One of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    /// CloudWatch: one metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<cloudwatch::MetricDef>,
    /// CloudWatch: a metric-math expression, e.g. `100 * errors / requests`, over the
    /// metrics in `using`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// CloudWatch: the metrics an expression refers to, by id (`[a-z][a-zA-Z0-9_]*`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub using: IndexMap<String, cloudwatch::MetricDef>,
    /// CloudWatch: the expression's period. Default: the period of its metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<HumanDuration>,
    /// A PromQL query against a Prometheus HTTP API: Amazon Managed Prometheus or
    /// CloudWatch's PromQL API (SigV4-signed), or a self-hosted Prometheus, Mimir, Thanos
    /// or Grafana Cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<prometheus::Query>,
    /// A Datadog metric query (v2 timeseries API, with formulas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadog: Option<datadog::Query>,
}

/// The source a [`Query`] names.
enum Source<'a> {
    CloudWatch,
    Prometheus(&'a prometheus::Query),
    Datadog(&'a datadog::Query),
}

impl Query {
    fn source(&self) -> Source<'_> {
        match (&self.prometheus, &self.datadog) {
            (Some(p), _) => Source::Prometheus(p),
            (None, Some(d)) => Source::Datadog(d),
            (None, None) => Source::CloudWatch,
        }
    }

    /// Whether any CloudWatch key is set.
    fn has_cloudwatch(&self) -> bool {
        self.metric.is_some()
            || self.expression.is_some()
            || !self.using.is_empty()
            || self.period.is_some()
    }
}

impl MetricQuery for Query {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let sources = [
            self.has_cloudwatch()
                .then_some("CloudWatch (metric, expression)"),
            self.prometheus.as_ref().map(|_| "prometheus"),
            self.datadog.as_ref().map(|_| "datadog"),
        ];
        let named: Vec<&str> = sources.into_iter().flatten().collect();
        if named.len() > 1 {
            return Err(ConfigError::new(
                at,
                format!("names {}; a query has one source", named.join(" and ")),
            ));
        }
        match self.source() {
            Source::CloudWatch => cloudwatch::validate(self, at),
            Source::Prometheus(p) => p.validate(&format!("{at}.prometheus")),
            Source::Datadog(d) => d.validate(&format!("{at}.datadog")),
        }
    }

    fn period(&self) -> Duration {
        match self.source() {
            Source::CloudWatch => cloudwatch::period(self),
            Source::Prometheus(p) => p.step.get(),
            Source::Datadog(d) => d.interval.get(),
        }
    }

    fn label(&self) -> Option<String> {
        match self.source() {
            Source::CloudWatch => self.metric.as_ref().map(|m| m.name.clone()),
            Source::Prometheus(_) | Source::Datadog(_) => None,
        }
    }

    fn fetch<'a>(
        queries: &'a [(&'a str, &'a Self)],
        window: Window,
        ctx: &'a SourceContext<'a>,
    ) -> BoxFuture<'a, Result<HashMap<String, Series>, Failure>> {
        Box::pin(async move {
            // CloudWatch's queries in one GetMetricData call; the others one request
            // each, all at once.
            let cloudwatch: Vec<(&str, &Query)> = queries
                .iter()
                .filter(|(_, q)| matches!(q.source(), Source::CloudWatch))
                .copied()
                .collect();
            let others = queries.iter().filter_map(|(name, q)| match q.source() {
                Source::CloudWatch => None,
                Source::Prometheus(p) => Some(Box::pin(async move {
                    Ok::<_, Failure>((name.to_string(), p.fetch(window, ctx).await?))
                })
                    as BoxFuture<'a, Result<(String, Series), Failure>>),
                Source::Datadog(d) => Some(Box::pin(async move {
                    Ok::<_, Failure>((name.to_string(), d.fetch(window, ctx).await?))
                })
                    as BoxFuture<'a, Result<(String, Series), Failure>>),
            });
            let (from_cloudwatch, from_others) = futures::join!(
                async {
                    if cloudwatch.is_empty() {
                        Ok(HashMap::new())
                    } else {
                        cloudwatch::fetch(ctx, &cloudwatch, window).await
                    }
                },
                futures::future::join_all(others)
            );
            let mut out = from_cloudwatch?;
            for r in from_others {
                let (name, series) = r?;
                out.insert(name, series);
            }
            Ok(out)
        })
    }
}
