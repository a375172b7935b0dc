//! `metricThreshold`: a metric query compared with a threshold over the last N
//! datapoints, with a minimum of evidence, and optionally observed for a bake window.
//! Generic over the metric source ([`MetricQuery`]): CloudWatch, Prometheus or Datadog.

use std::time::SystemTime;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::checks::evidence::{BakeState, NoEvidence, number};
use crate::checks::{Check, CheckContext, Timing, at_least_a_second};
use crate::duration::HumanDuration;
use crate::metrics;
use crate::metrics::{MetricQuery, Window};
use crate::schema::ConfigError;
use crate::verdict::Evaluation;

/// How a datapoint breaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparison {
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
}

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Greater => value > threshold,
            Comparison::GreaterOrEqual => value >= threshold,
            Comparison::Less => value < threshold,
            Comparison::LessOrEqual => value <= threshold,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Comparison::Greater => "above",
            Comparison::GreaterOrEqual => "at or above",
            Comparison::Less => "below",
            Comparison::LessOrEqual => "at or below",
        }
    }
}

/// A companion query that must reach a minimum sum before the metric is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "MinRequests")]
pub struct MinRequests<Q = metrics::Query> {
    /// e.g. `RequestCountPerTarget` or `RequestCount` of the green target group, stat `Sum`.
    pub query: Q,
    /// The sum over the evaluated datapoints' time span that counts as enough evidence.
    pub min: f64,
}

fn default_datapoints() -> u32 {
    5
}
fn default_to_breach() -> u32 {
    2
}
fn default_min_datapoints() -> u32 {
    3
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(60)
}

/// Settings of a `metricThreshold` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(deserialize = "Q: DeserializeOwned")
)]
pub struct ThresholdCheck<Q = metrics::Query> {
    /// What the reason calls the metric, e.g. `5xx rate of green`.
    #[serde(default)]
    pub label: Option<String>,
    pub query: Q,
    /// `>`, `>=`, `<` or `<=`: a datapoint breaches when `value <comparison> threshold`.
    pub comparison: Comparison,
    pub threshold: f64,
    /// How many of the latest datapoints are evaluated (N). Default `5`.
    #[serde(default = "default_datapoints")]
    pub datapoints: u32,
    /// How many of them must breach to fail (M of N; 1 = any, N = all). Default `2`.
    #[serde(default = "default_to_breach")]
    pub to_breach: u32,
    /// Datapoints needed before judging. Default `3`.
    #[serde(default = "default_min_datapoints")]
    pub min_datapoints: u32,
    /// A request count that must be reached before judging.
    #[serde(default)]
    #[schemars(extend("default" = null))]
    pub min_requests: Option<MinRequests<Q>>,
    /// Without enough evidence: `wait` (default), `pass` or `fail`.
    #[serde(default)]
    pub when_no_evidence: NoEvidence,
    /// Time between evaluations. Default `1m`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Observe for this long: evaluate every `interval`, fail on the first breach, pass only
    /// when the window has passed clean. The window starts at the check's first evaluation
    /// in this deployment (or this canary/linear step); each evaluation judges the latest
    /// `datapoints`.
    #[serde(default)]
    pub bake_for: Option<HumanDuration>,
}

impl<Q: MetricQuery> Check for ThresholdCheck<Q> {
    const TYPE: &'static str = "metricThreshold";
    const DESCRIPTION: &'static str = "Compares a metric query (CloudWatch, Prometheus or Datadog) with a threshold over the latest datapoints (M of N), with minimum evidence and an optional bake window.";
    type State = BakeState;

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        self.query.validate(&format!("{at}.query"))?;
        if let Some(m) = &self.min_requests {
            m.query.validate(&format!("{at}.minRequests.query"))?;
        }
        if !self.threshold.is_finite() {
            return Err(ConfigError::new(
                format!("{at}.threshold"),
                "must be a finite number",
            ));
        }
        if self.datapoints == 0 {
            return Err(ConfigError::new(
                format!("{at}.datapoints"),
                "must be at least 1",
            ));
        }
        if self.to_breach == 0 || self.to_breach > self.datapoints {
            return Err(ConfigError::new(
                format!("{at}.toBreach"),
                format!("must be from 1 to datapoints ({})", self.datapoints),
            ));
        }
        at_least_a_second(self.interval, format!("{at}.interval"))
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval).baking(self.bake_for)
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, state: Self::State) -> Evaluation {
        let c = self;
        let bake = BakeState::begin(state, ctx, c.bake_for.is_some()).await;
        let period = c.query.period();
        let now = SystemTime::now();
        let span = period.saturating_mul(c.datapoints.saturating_add(1));
        let start = now.checked_sub(span).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut queries = vec![("value", &c.query)];
        if let Some(m) = &c.min_requests {
            queries.push(("requests", &m.query));
        }
        let window = Window { start, end: now };
        let data = match Q::fetch(&queries, window, &ctx.sources()).await {
            Ok(d) => d,
            Err(e) => return Evaluation::from(e).state(json!(bake)),
        };
        let label = c
            .label
            .clone()
            .or_else(|| c.query.label())
            .unwrap_or_else(|| "the metric".into());
        let series = &data["value"];
        let latest: Vec<f64> = series
            .iter()
            .rev()
            .take(c.datapoints as usize)
            .rev()
            .map(|(_, v)| *v)
            .collect();
        let requests: Option<f64> = c
            .min_requests
            .as_ref()
            .map(|_| data["requests"].iter().map(|(_, v)| v).sum());
        let observed = json!({"datapoints": latest, "requests": requests, "bakeStartedAtMs": bake.started_at_ms});
        let expected = json!({"comparison": c.comparison, "threshold": c.threshold, "toBreach": c.to_breach, "datapoints": c.datapoints,
            "minDatapoints": c.min_datapoints, "minRequests": c.min_requests.as_ref().map(|m| m.min)});
        let state = json!(bake);
        let seen = requests
            .map(|r| format!(", {} requests seen", number(r)))
            .unwrap_or_default();

        let mut missing = Vec::new();
        if (latest.len() as u32) < c.min_datapoints {
            missing.push(format!(
                "{} datapoint(s), {} needed",
                latest.len(),
                c.min_datapoints
            ));
        }
        if let (Some(m), Some(r)) = (&c.min_requests, requests)
            && r < m.min
        {
            missing.push(format!("{} requests, {} needed", number(r), number(m.min)));
        }
        if !missing.is_empty() {
            let why = format!(
                "not enough evidence for {label} yet: {}",
                missing.join("; ")
            );
            let ev = match c.when_no_evidence {
                NoEvidence::Wait => Evaluation::pending(c.interval.get(), why),
                NoEvidence::Pass => Evaluation::pass(format!("{why} (whenNoEvidence: pass)")),
                NoEvidence::Fail => Evaluation::fail(format!("{why} (whenNoEvidence: fail)")),
            };
            return ev.observed(observed).expected(expected).state(state);
        }
        let breaching = latest
            .iter()
            .filter(|v| c.comparison.breaches(**v, c.threshold))
            .count() as u32;
        let last = latest.last().copied().unwrap_or(f64::NAN);
        let summary = format!(
            "{label} was {} ({breaching} of {} datapoints {} {}){seen}",
            number(last),
            latest.len(),
            c.comparison.words(),
            number(c.threshold)
        );
        if breaching >= c.to_breach {
            return Evaluation::fail(summary)
                .observed(observed)
                .expected(expected)
                .state(state);
        }
        bake.pass_or_keep_baking(c.bake_for, c.interval, summary)
            .observed(observed)
            .expected(expected)
            .state(state)
    }
}
