//! `canary`: the new revision against a baseline, judged statistically
//! ([`crate::judge`]): green vs blue target group at the same time (canary and linear
//! steps), green now vs the window before observation started (all-at-once blue/green), or
//! new vs old Lambda version (`ExecutedVersion` dimension).

use std::time::SystemTime;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::checks::evidence::{BakeState, NoEvidence};
use crate::checks::{Check, CheckContext, Timing, at_least_a_second};
use crate::duration::HumanDuration;
use crate::judge::{
    ErrorRateConfig, Labels, RequestCounts, SeriesConfig, Verdict, judge_error_rate, judge_series,
};
use crate::metrics;
use crate::metrics::{MetricQuery, Series, Window};
use crate::schema::ConfigError;
use crate::verdict::Evaluation;

/// What is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Compare {
    /// Two series of values (latency, CPU): Mann-Whitney U with a Hodges-Lehmann interval.
    #[default]
    Series,
    /// Errors out of requests: a two-proportion test.
    ErrorRate,
}

/// Which time the baseline is taken from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BaselineWindow {
    /// The same `window` as the canary (both serve traffic at once).
    #[default]
    SameTime,
    /// The `window` before observation started (the baseline served everything then).
    BeforeShift,
}

fn default_window() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_unit() -> String {
    String::new()
}

/// Settings of a `canary` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(deserialize = "Q: DeserializeOwned")
)]
#[schemars(rename = "CanaryCheck")]
pub struct CanaryCheck<Q = metrics::Query> {
    /// What the reason calls the metric, e.g. `p99 latency`.
    #[serde(default)]
    pub label: Option<String>,
    /// The unit of series values, e.g. `ms`.
    #[serde(default = "default_unit")]
    pub unit: String,
    /// `series` (default) or `errorRate`.
    #[serde(default)]
    pub compare: Compare,
    /// Without enough evidence: `wait` (default), `pass` or `fail`.
    #[serde(default)]
    pub when_no_evidence: NoEvidence,
    /// Series: the canary's query (e.g. with `${greenTargetGroup}`).
    #[serde(default)]
    #[schemars(extend("default" = null))]
    pub canary: Option<Q>,
    /// Series: the baseline's query (e.g. with `${blueTargetGroup}`).
    #[serde(default)]
    #[schemars(extend("default" = null))]
    pub baseline: Option<Q>,
    /// Error rate: the canary's error count query (stat `Sum`).
    #[serde(default)]
    #[schemars(extend("default" = null))]
    pub canary_errors: Option<Q>,
    /// Error rate: the canary's request count query (stat `Sum`).
    #[serde(default)]
    #[schemars(extend("default" = null))]
    pub canary_requests: Option<Q>,
    #[serde(default)]
    #[schemars(extend("default" = null))]
    pub baseline_errors: Option<Q>,
    #[serde(default)]
    #[schemars(extend("default" = null))]
    pub baseline_requests: Option<Q>,
    /// `sameTime` (default) or `beforeShift`.
    #[serde(default)]
    pub baseline_window: BaselineWindow,
    /// How much data each side is judged on. Default `10m`.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
    /// The series judge: `direction`, `tolerance`, `confidence`, `allowedIncrease`,
    /// `allowedDecrease`, `minSamples`.
    #[serde(default)]
    pub series: Option<SeriesConfig>,
    /// The error-rate judge: `minRequests`, `tolerance`, `confidence`.
    #[serde(default)]
    pub error_rate: Option<ErrorRateConfig>,
    /// Time between evaluations. Default `1m`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Observe for this long: fail on the first significant regression, pass when the
    /// window has passed clean.
    #[serde(default)]
    pub bake_for: Option<HumanDuration>,
}

impl<Q: MetricQuery> Check for CanaryCheck<Q> {
    const TYPE: &'static str = "canary";
    const DESCRIPTION: &'static str = "Judges the new revision against a baseline statistically: Mann-Whitney U with a Hodges-Lehmann interval for series, a two-proportion test for error rates.";
    type State = BakeState;

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let need = |q: &Option<Q>, key: &str| -> Result<(), ConfigError> {
            match q {
                Some(q) => q.validate(&format!("{at}.{key}")),
                None => Err(ConfigError::new(
                    format!("{at}.{key}"),
                    format!("is missing; compare: {:?} needs it", self.compare),
                )),
            }
        };
        match self.compare {
            Compare::Series => {
                need(&self.canary, "canary")?;
                need(&self.baseline, "baseline")?;
            }
            Compare::ErrorRate => {
                need(&self.canary_errors, "canaryErrors")?;
                need(&self.canary_requests, "canaryRequests")?;
                need(&self.baseline_errors, "baselineErrors")?;
                need(&self.baseline_requests, "baselineRequests")?;
            }
        }
        if let Some(s) = &self.series {
            s.validate()
                .map_err(|e| ConfigError::new(format!("{at}.series"), e.to_string()))?;
        }
        if let Some(e) = &self.error_rate {
            e.validate()
                .map_err(|err| ConfigError::new(format!("{at}.errorRate"), err.to_string()))?;
        }
        at_least_a_second(self.interval, format!("{at}.interval"))
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval).baking(self.bake_for)
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, state: Self::State) -> Evaluation {
        let c = self;
        let bake = BakeState::begin(
            state,
            ctx,
            c.bake_for.is_some() || c.baseline_window == BaselineWindow::BeforeShift,
        )
        .await;
        let now = SystemTime::now();
        let (start, cut) = match c.baseline_window {
            BaselineWindow::SameTime => (now - c.window.get(), None),
            BaselineWindow::BeforeShift => (
                bake.started() - c.window.get(),
                Some(bake.started_at_ms as i64),
            ),
        };
        let queries: Vec<(&str, &Q)> = [
            ("canary", &c.canary),
            ("baseline", &c.baseline),
            ("canaryErrors", &c.canary_errors),
            ("canaryRequests", &c.canary_requests),
            ("baselineErrors", &c.baseline_errors),
            ("baselineRequests", &c.baseline_requests),
        ]
        .into_iter()
        .filter_map(|(n, q)| q.as_ref().map(|q| (n, q)))
        .collect();
        let window = Window { start, end: now };
        let data = match Q::fetch(&queries, window, &ctx.sources()).await {
            Ok(d) => d,
            Err(e) => return Evaluation::from(e).state(json!(bake)),
        };
        // With a baseline before the shift, each side keeps only its own part of the time range.
        let side = |name: &str, canary: bool| -> Vec<f64> {
            let s = &data[name];
            match cut {
                Some(at) => split(s, at, !canary),
                None => s.iter().map(|(_, v)| *v).collect(),
            }
        };
        let label = c.label.clone().unwrap_or_else(|| "the metric".into());
        let labels = Labels {
            metric: &label,
            unit: &c.unit,
            canary: "green",
            baseline: "blue",
        };
        let result = match c.compare {
            Compare::Series => judge_series(
                &side("canary", true),
                &side("baseline", false),
                &c.series.clone().unwrap_or_default(),
                &labels,
            ),
            Compare::ErrorRate => {
                let sum = |v: Vec<f64>| {
                    v.iter()
                        .filter(|x| x.is_finite() && **x > 0.0)
                        .sum::<f64>()
                        .round() as u64
                };
                let canary = RequestCounts {
                    requests: sum(side("canaryRequests", true)),
                    errors: sum(side("canaryErrors", true)),
                };
                let baseline = RequestCounts {
                    requests: sum(side("baselineRequests", false)),
                    errors: sum(side("baselineErrors", false)),
                };
                judge_error_rate(
                    canary,
                    baseline,
                    &c.error_rate.clone().unwrap_or_default(),
                    &labels,
                )
            }
        };
        let state = json!(bake);
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                return Evaluation::error(format!("the judge could not run: {e}")).state(state);
            }
        };
        let observed = serde_json::to_value(&result).unwrap_or_default();
        let expected = json!({"compare": c.compare, "baselineWindow": c.baseline_window, "series": c.series, "errorRate": c.error_rate});
        let ev = match result.verdict {
            Verdict::Fail => Evaluation::fail(result.reason.clone()),
            Verdict::NotEnoughEvidence => match c.when_no_evidence {
                NoEvidence::Wait => Evaluation::pending(c.interval.get(), result.reason.clone()),
                NoEvidence::Pass => {
                    Evaluation::pass(format!("{} (whenNoEvidence: pass)", result.reason))
                }
                NoEvidence::Fail => {
                    Evaluation::fail(format!("{} (whenNoEvidence: fail)", result.reason))
                }
            },
            Verdict::Pass => {
                bake.pass_or_keep_baking(c.bake_for, c.interval, result.reason.clone())
            }
        };
        ev.observed(observed).expected(expected).state(state)
    }
}

fn split(series: &Series, at_ms: i64, before: bool) -> Vec<f64> {
    series
        .iter()
        .filter(|(t, _)| (*t < at_ms) == before)
        .map(|(_, v)| *v)
        .collect()
}
