//! The canary versus baseline judge: is the new service revision (the canary) worse than the
//! one it replaces (the baseline) on a metric, and why?
//!
//! Two kinds of metric are judged, both by pure functions of their inputs:
//!
//! - **Error rates** ([`judge_error_rate`]): errors out of requests on each side, compared by a
//!   one-sided two-proportion z-test with an absolute `tolerance` on the increase.
//! - **Series** ([`judge_series`]), such as latency datapoints: compared by the Mann-Whitney U
//!   test with the Hodges-Lehmann estimate of the shift and its confidence interval, a relative
//!   `tolerance` and an effect-size gate on the ratio of means, in the manner of Spinnaker
//!   Kayenta's Mann-Whitney classifier.
//!
//! Each returns a [`JudgeResult`]: a [`Verdict`], a sentence a person on call can act on, and the
//! numbers behind it. Too little data gives [`Verdict::NotEnoughEvidence`], never a guess.
//! A configuration or input that makes the check itself meaningless gives a [`JudgeError`],
//! which is kept apart from a verdict on the release.

mod normal;
mod proportion;
mod rank;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use normal::{erfc, normal_cdf, normal_quantile, normal_sf};
pub use proportion::{RequestCounts, TwoProportion, two_proportion_z};
pub use rank::{HodgesLehmann, MannWhitney, hodges_lehmann, mann_whitney};

/// The largest number of canary × baseline pairs a series may have: the Hodges-Lehmann
/// interval holds every pairwise difference in memory (8 bytes each, 32 MiB at this limit).
pub const MAX_PAIRS: usize = 1 << 22;

/// Relative size, against the largest magnitude in the data, below which two numbers compared
/// at the tolerance boundary are treated as equal, so that the verdict does not depend on the
/// unit the metric is expressed in (ms or s) through floating-point rounding.
const BOUNDARY_EPSILON: f64 = 1e-9;

/// The judge's decision on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// No evidence that the canary is worse beyond what is allowed.
    Pass,
    /// The canary is worse than the baseline beyond what is allowed, with the configured
    /// confidence.
    Fail,
    /// Too little data to decide either way.
    NotEnoughEvidence,
}

/// Which way a change of the metric is harmful.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher is worse (latency, CPU).
    #[default]
    Increase,
    /// Lower is worse (throughput, cache hit ratio).
    Decrease,
    /// Any change is suspect.
    Either,
}

/// The statistical method behind a [`JudgeResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    /// One-sided two-proportion z-test ([`two_proportion_z`]).
    TwoProportionZ,
    /// Mann-Whitney U test with a Hodges-Lehmann interval ([`mann_whitney`],
    /// [`hodges_lehmann`]).
    MannWhitneyU,
}

/// Names used in the verdict's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels<'a> {
    /// What is measured, e.g. "p99 latency" or "5xx rate".
    pub metric: &'a str,
    /// Unit of a series' values, e.g. "ms"; empty for none. Unused for error rates.
    pub unit: &'a str,
    /// The canary, e.g. the green service revision.
    pub canary: &'a str,
    /// The baseline, e.g. the blue service revision.
    pub baseline: &'a str,
}

impl Default for Labels<'static> {
    fn default() -> Self {
        Labels {
            metric: "metric",
            unit: "",
            canary: "canary",
            baseline: "baseline",
        }
    }
}

/// Settings for [`judge_error_rate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ErrorRateConfig {
    /// Requests needed on each side before judging (default 100).
    pub min_requests: u64,
    /// Allowed absolute increase of the error rate: 0.001 allows 0.1 percentage points
    /// (default 0.001). In [0, 1).
    pub tolerance: f64,
    /// Confidence of a Fail (default 0.99): the test fails when its one-sided p-value is
    /// below 1 − confidence. In (0, 1).
    pub confidence: f64,
}

impl Default for ErrorRateConfig {
    fn default() -> Self {
        ErrorRateConfig {
            min_requests: 100,
            tolerance: 0.001,
            confidence: 0.99,
        }
    }
}

impl ErrorRateConfig {
    /// Checks that every setting is in range.
    pub fn validate(&self) -> Result<(), JudgeError> {
        check_confidence(self.confidence)?;
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(JudgeError::invalid_config(
                "tolerance",
                format!(
                    "must be an absolute error-rate increase in [0, 1), such as 0.001 for 0.1 \
                     percentage points (got {})",
                    self.tolerance
                ),
            ));
        }
        if self.min_requests == 0 {
            return Err(JudgeError::invalid_config(
                "minRequests",
                "must be at least 1".to_string(),
            ));
        }
        Ok(())
    }
}

/// Settings for [`judge_series`]. The defaults are Kayenta's where it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SeriesConfig {
    /// Which way a change is harmful (default increase).
    pub direction: Direction,
    /// Allowed shift relative to the baseline's median: 0.25 allows the canary to be shifted
    /// by up to 25 % of the baseline median (default 0.25). At least 0.
    pub tolerance: f64,
    /// Confidence of the two-sided Hodges-Lehmann interval (default 0.98). In (0, 1).
    pub confidence: f64,
    /// Effect-size gate for an increase: a Fail needs mean(canary)/mean(baseline) above this
    /// (default 1.0). Greater than 0.
    pub allowed_increase: f64,
    /// Effect-size gate for a decrease: a Fail needs mean(canary)/mean(baseline) below this
    /// (default 1.0). Greater than 0.
    pub allowed_decrease: f64,
    /// Finite datapoints needed on each side before judging (default 10). At least 1.
    pub min_samples: usize,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            direction: Direction::Increase,
            tolerance: 0.25,
            confidence: 0.98,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            min_samples: 10,
        }
    }
}

impl SeriesConfig {
    /// Checks that every setting is in range.
    pub fn validate(&self) -> Result<(), JudgeError> {
        check_confidence(self.confidence)?;
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(JudgeError::invalid_config(
                "tolerance",
                format!(
                    "must be a fraction of the baseline median, at least 0, such as 0.25 \
                     (got {})",
                    self.tolerance
                ),
            ));
        }
        for (field, value) in [
            ("allowedIncrease", self.allowed_increase),
            ("allowedDecrease", self.allowed_decrease),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(JudgeError::invalid_config(
                    field,
                    format!("must be a ratio of means greater than 0, such as 1.0 (got {value})"),
                ));
            }
        }
        if self.min_samples == 0 {
            return Err(JudgeError::invalid_config(
                "minSamples",
                "must be at least 1".to_string(),
            ));
        }
        Ok(())
    }
}

fn check_confidence(confidence: f64) -> Result<(), JudgeError> {
    if confidence.is_finite() && confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(JudgeError::invalid_config(
            "confidence",
            format!("must be strictly between 0 and 1, such as 0.98 (got {confidence})"),
        ))
    }
}

/// Values left out of a series because they were NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dropped {
    pub canary: usize,
    pub baseline: usize,
}

impl Dropped {
    /// Both sides together.
    pub fn total(&self) -> usize {
        self.canary + self.baseline
    }
}

/// A verdict, the reason for it in words, and the numbers behind it.
///
/// Numbers that do not apply to the method, or could not be computed, are `None` (`null` in
/// JSON); no field is NaN or infinite as long as the values are below about 1e307 in
/// magnitude, so that their pairwise differences are finite.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JudgeResult {
    pub verdict: Verdict,
    /// One sentence saying what was found and on which numbers.
    pub reason: String,
    pub method: Method,
    /// Mann-Whitney: the two-sided p-value of "no difference". Error rates: the one-sided
    /// p-value of "the increase is within the tolerance".
    pub p_value: Option<f64>,
    /// Mann-Whitney: U of the canary. Error rates: z.
    pub statistic: Option<f64>,
    /// Series: the Hodges-Lehmann shift of the canary against the baseline.
    pub hl_estimate: Option<f64>,
    /// Series: the lower end of the Hodges-Lehmann interval. Error rates: the one-sided lower
    /// confidence bound of the rate difference.
    pub ci_low: Option<f64>,
    /// Series: the upper end of the Hodges-Lehmann interval.
    pub ci_high: Option<f64>,
    /// The largest shift (series, in the metric's unit) or rate increase (error rates)
    /// allowed.
    pub tolerance_bound: Option<f64>,
    /// Series: mean(canary)/mean(baseline); `None` when the baseline mean is 0 or negative.
    pub mean_ratio: Option<f64>,
    /// Error rates: the canary's errors/requests.
    pub canary_error_rate: Option<f64>,
    /// Error rates: the baseline's errors/requests.
    pub baseline_error_rate: Option<f64>,
    /// Series: finite datapoints used. Error rates: requests.
    pub n_canary: u64,
    /// Series: finite datapoints used. Error rates: requests.
    pub n_baseline: u64,
    /// Series: values dropped as NaN or infinite.
    pub dropped: Dropped,
}

impl JudgeResult {
    fn new(method: Method, n_canary: u64, n_baseline: u64, dropped: Dropped) -> Self {
        JudgeResult {
            verdict: Verdict::NotEnoughEvidence,
            reason: String::new(),
            method,
            p_value: None,
            statistic: None,
            hl_estimate: None,
            ci_low: None,
            ci_high: None,
            tolerance_bound: None,
            mean_ratio: None,
            canary_error_rate: None,
            baseline_error_rate: None,
            n_canary,
            n_baseline,
            dropped,
        }
    }

    fn decide(mut self, verdict: Verdict, reason: String) -> Self {
        self.verdict = verdict;
        self.reason = reason;
        self
    }
}

/// Why the judge could not run: the check is broken, which says nothing about the release.
#[derive(Debug, Clone, PartialEq)]
pub enum JudgeError {
    /// A setting is out of range.
    InvalidConfig {
        field: &'static str,
        message: String,
    },
    /// Request counts that cannot be right, such as more errors than requests.
    InvalidCounts(String),
    /// A series too long for the Hodges-Lehmann interval (see [`MAX_PAIRS`]).
    TooManyPairs {
        canary: usize,
        baseline: usize,
        limit: usize,
    },
}

impl JudgeError {
    fn invalid_config(field: &'static str, message: String) -> Self {
        JudgeError::InvalidConfig { field, message }
    }
}

impl fmt::Display for JudgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JudgeError::InvalidConfig { field, message } => {
                write!(f, "judge setting {field} {message}")
            }
            JudgeError::InvalidCounts(message) => f.write_str(message),
            JudgeError::TooManyPairs {
                canary,
                baseline,
                limit,
            } => write!(
                f,
                "{canary} canary and {baseline} baseline datapoints make {} pairs, more than \
                 the {limit} the judge compares; query the metric with a longer period so \
                 each side has fewer datapoints",
                canary.saturating_mul(*baseline)
            ),
        }
    }
}

impl std::error::Error for JudgeError {}

/// Judges the canary's error rate against the baseline's.
///
/// Verdict rule: NotEnoughEvidence when either side has fewer than `minRequests` requests.
/// Otherwise Fail when the one-sided two-proportion z-test ([`two_proportion_z`]) rejects
/// "p_canary − p_baseline ≤ tolerance" at level 1 − confidence (p < 1 − confidence), and Pass
/// when it does not. No errors on either side, or every request failing on both, is a Pass
/// with a reason saying so: the rates are equal and the test has no variance to work with.
pub fn judge_error_rate(
    canary: RequestCounts,
    baseline: RequestCounts,
    config: &ErrorRateConfig,
    labels: &Labels<'_>,
) -> Result<JudgeResult, JudgeError> {
    config.validate()?;
    for (name, counts) in [(labels.canary, canary), (labels.baseline, baseline)] {
        if counts.errors > counts.requests {
            return Err(JudgeError::InvalidCounts(format!(
                "{} of {name} counts {} errors out of {} requests; errors cannot exceed \
                 requests, so check that both queries cover the same target group and period",
                labels.metric, counts.errors, counts.requests
            )));
        }
    }
    let mut result = JudgeResult::new(
        Method::TwoProportionZ,
        canary.requests,
        baseline.requests,
        Dropped::default(),
    );
    let rate = |c: RequestCounts| (c.requests > 0).then(|| c.errors as f64 / c.requests as f64);
    result.canary_error_rate = rate(canary);
    result.baseline_error_rate = rate(baseline);
    result.tolerance_bound = Some(config.tolerance);
    let requests = format!("{} vs {} requests", canary.requests, baseline.requests);

    if canary.requests < config.min_requests || baseline.requests < config.min_requests {
        let reason = format!(
            "Not enough evidence on {}: {} served {} requests and {} served {}; at least {} \
             are needed on each side, so wait for more traffic or lower minRequests.",
            labels.metric,
            labels.canary,
            canary.requests,
            labels.baseline,
            baseline.requests,
            config.min_requests
        );
        return Ok(result.decide(Verdict::NotEnoughEvidence, reason));
    }

    let test = two_proportion_z(canary, baseline, config.tolerance)
        .expect("requests are at least minRequests ≥ 1 and errors ≤ requests");
    result.p_value = Some(test.p_value);
    result.statistic = test.z;
    result.ci_low = test.lower_bound(config.confidence);

    let Some(z) = test.z else {
        let reason = if canary.errors == 0 {
            format!(
                "{} shows no errors on either {} or {} ({requests}).",
                labels.metric, labels.canary, labels.baseline
            )
        } else {
            format!(
                "{} is 100 % on both {} and {} ({requests}): every request failed on both, so \
                 this comparison cannot tell them apart; rely on an absolute error-rate alarm \
                 to stop this deployment.",
                labels.metric, labels.canary, labels.baseline
            )
        };
        return Ok(result.decide(Verdict::Pass, reason));
    };

    let failed = test.p_value < 1.0 - config.confidence;
    let judgement = if failed {
        "more than the allowed"
    } else {
        "not significantly more than the allowed"
    };
    let reason = format!(
        "{} of {} is {} against {} on {}: {} percentage points, {judgement} {} with {} % \
         confidence (one-sided z = {}, p = {}, {requests}).",
        labels.metric,
        labels.canary,
        percent(test.canary_rate),
        percent(test.baseline_rate),
        labels.baseline,
        signed(test.difference * 100.0),
        number(config.tolerance * 100.0, 3),
        number(config.confidence * 100.0, 4),
        signed(z),
        p_text(test.p_value)
    );
    let verdict = if failed { Verdict::Fail } else { Verdict::Pass };
    Ok(result.decide(verdict, reason))
}

/// Judges a series of the canary (such as latency datapoints) against the baseline's.
///
/// NaN and ±∞ are dropped from both samples and counted in [`JudgeResult::dropped`]. Then:
///
/// 1. **NotEnoughEvidence** when either sample has fewer than `minSamples` values, or when the
///    samples are too small for a Hodges-Lehmann interval at the configured confidence.
/// 2. **Pass** when every value of both samples is the same (for instance all zero), or when
///    both samples hold the same values.
/// 3. **Fail** when the canary is shifted beyond the tolerance in a harmful direction *and*
///    the effect-size gate is exceeded; **Pass** otherwise. With the allowed shift
///    b = tolerance × |median(baseline)|, the interval [lo, hi] of [`hodges_lehmann`] at
///    `confidence` and the ratio of means r = mean(canary)/mean(baseline):
///    - an increase is beyond the tolerance when lo > b, and the gate is exceeded when
///      r > allowedIncrease;
///    - a decrease is beyond the tolerance when hi < −b, and the gate is exceeded when
///      r < allowedDecrease.
///
///    Because the interval is two-sided, each direction is tested at the one-sided level
///    (1 − confidence)/2, and a Fail always has a Mann-Whitney p-value ≤ 1 − confidence.
///
/// Special cases, each explained in the reason:
/// - When b = 0 (tolerance 0, or a baseline median of 0 as with sparse counts of errors),
///   over half the pairwise differences can be tied at exactly 0, which pins the interval to
///   0 whatever the data says. The shift is then also beyond the tolerance when the
///   Mann-Whitney test itself, which accounts for ties, has p < 1 − confidence with U on the
///   harmful side. Without ties the two criteria coincide.
/// - When the baseline mean is 0 or negative the ratio of means is undefined (infinite for a
///   baseline of zeros); the gate then compares the means themselves: mean(canary) above
///   mean(baseline) for an increase, below it for a decrease.
/// - Comparisons at the boundaries ignore differences below 1e-9 of the largest magnitude in
///   the data, so that the verdict does not depend on the unit of the metric.
///
/// Differs from Kayenta, which scales the tolerance by the Hodges-Lehmann estimate itself
/// rather than by the baseline median, counts a ratio equal to `allowedIncrease` as exceeded,
/// and sets the ratio to 1 (no effect) when the baseline mean is 0.
pub fn judge_series(
    canary: &[f64],
    baseline: &[f64],
    config: &SeriesConfig,
    labels: &Labels<'_>,
) -> Result<JudgeResult, JudgeError> {
    config.validate()?;
    let (canary, dropped_canary) = finite_values(canary);
    let (baseline, dropped_baseline) = finite_values(baseline);
    let dropped = Dropped {
        canary: dropped_canary,
        baseline: dropped_baseline,
    };
    let (n, m) = (canary.len(), baseline.len());
    let mut result = JudgeResult::new(Method::MannWhitneyU, n as u64, m as u64, dropped);
    let words = Words::new(labels);
    let samples = words.samples(n, m, dropped);

    if n < config.min_samples || m < config.min_samples {
        let reason = format!(
            "Not enough evidence on {}: {} has {n} usable datapoints and {} has {m}{}; at \
             least {} are needed on each side, so wait for more datapoints or lower \
             minSamples.",
            labels.metric,
            labels.canary,
            labels.baseline,
            words.dropped_note(dropped),
            config.min_samples
        );
        return Ok(result.decide(Verdict::NotEnoughEvidence, reason));
    }
    if n.saturating_mul(m) > MAX_PAIRS {
        return Err(JudgeError::TooManyPairs {
            canary: n,
            baseline: m,
            limit: MAX_PAIRS,
        });
    }

    let test = mann_whitney(&canary, &baseline).expect("both samples hold at least one value");
    let hl = hodges_lehmann(&canary, &baseline, config.confidence)
        .expect("both samples hold at least one value");
    let summary = Summary::of(&canary, &baseline);
    let bound = config.tolerance * summary.baseline_median.abs();
    result.p_value = Some(test.p_value);
    result.statistic = Some(test.u);
    result.hl_estimate = Some(hl.estimate);
    result.ci_low = hl.interval.map(|(low, _)| low);
    result.ci_high = hl.interval.map(|(_, high)| high);
    result.tolerance_bound = Some(bound);
    result.mean_ratio = summary.mean_ratio();

    if summary.min == summary.max {
        let reason = if summary.max == 0.0 {
            format!(
                "{} of {} and {} shows no difference: both samples are all zero ({samples}).",
                labels.metric, labels.canary, labels.baseline
            )
        } else {
            format!(
                "{} of {} and {} shows no difference: every datapoint in both samples is {} \
                 ({samples}).",
                labels.metric,
                labels.canary,
                labels.baseline,
                words.value(summary.max)
            )
        };
        return Ok(result.decide(Verdict::Pass, reason));
    }
    if same_values(&canary, &baseline) {
        let reason = format!(
            "{} of {} and {} shows no difference: the two samples hold the same values \
             ({samples}).",
            labels.metric, labels.canary, labels.baseline
        );
        return Ok(result.decide(Verdict::Pass, reason));
    }
    let Some((low, high)) = hl.interval else {
        let reason = format!(
            "Not enough evidence on {}: {samples} are too few for a {} % confidence interval \
             of the shift; collect more datapoints or lower the confidence.",
            labels.metric,
            number(config.confidence * 100.0, 4)
        );
        return Ok(result.decide(Verdict::NotEnoughEvidence, reason));
    };

    // The rule documented above.
    let alpha = 1.0 - config.confidence;
    let slack = BOUNDARY_EPSILON * summary.scale;
    let centre = (n * m) as f64 / 2.0;
    let zero_bound_test = bound == 0.0 && test.p_value < alpha;
    let interval_up = low - bound > slack;
    let interval_down = -bound - high > slack;
    let higher = interval_up || (zero_bound_test && test.u > centre);
    let lower = interval_down || (zero_bound_test && test.u < centre);
    let increase_harmful = config.direction != Direction::Decrease;
    let decrease_harmful = config.direction != Direction::Increase;
    let gate_up = summary.exceeds_increase(config.allowed_increase, slack);
    let gate_down = summary.exceeds_decrease(config.allowed_decrease, slack);

    let facts = Facts {
        words: &words,
        config,
        test: &test,
        hl_estimate: hl.estimate,
        interval: (low, high),
        interval_beyond: (interval_up, interval_down),
        bound,
        summary: &summary,
        samples: &samples,
    };
    let (verdict, reason) = if higher && increase_harmful && gate_up {
        (Verdict::Fail, facts.shifted(true))
    } else if lower && decrease_harmful && gate_down {
        (Verdict::Fail, facts.shifted(false))
    } else if higher && increase_harmful {
        (Verdict::Pass, facts.effect_too_small(true))
    } else if lower && decrease_harmful {
        (Verdict::Pass, facts.effect_too_small(false))
    } else if higher || lower {
        (Verdict::Pass, facts.harmless(higher))
    } else {
        (Verdict::Pass, facts.within_tolerance())
    };
    Ok(result.decide(verdict, reason))
}

/// The finite values of `values` (with −0 made +0) and how many were not finite.
fn finite_values(values: &[f64]) -> (Vec<f64>, usize) {
    let kept: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| x + 0.0)
        .collect();
    let dropped = values.len() - kept.len();
    (kept, dropped)
}

/// Whether both samples hold the same values in some order.
fn same_values(canary: &[f64], baseline: &[f64]) -> bool {
    if canary.len() != baseline.len() {
        return false;
    }
    let mut a = canary.to_vec();
    let mut b = baseline.to_vec();
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    a == b
}

/// Plain summaries of both samples.
struct Summary {
    baseline_median: f64,
    canary_mean: f64,
    baseline_mean: f64,
    min: f64,
    max: f64,
    /// The largest magnitude in either sample.
    scale: f64,
}

impl Summary {
    fn of(canary: &[f64], baseline: &[f64]) -> Self {
        let all = canary.iter().chain(baseline);
        let min = all.clone().copied().fold(f64::INFINITY, f64::min);
        let max = all.clone().copied().fold(f64::NEG_INFINITY, f64::max);
        let scale = all.map(|x| x.abs()).fold(0.0, f64::max);
        Summary {
            baseline_median: median(baseline),
            canary_mean: mean(canary),
            baseline_mean: mean(baseline),
            min,
            max,
            scale,
        }
    }

    fn mean_ratio(&self) -> Option<f64> {
        let ratio = self.canary_mean / self.baseline_mean;
        (self.baseline_mean > 0.0 && ratio.is_finite()).then_some(ratio)
    }

    fn exceeds_increase(&self, allowed: f64, slack: f64) -> bool {
        if self.baseline_mean > 0.0 {
            self.canary_mean / self.baseline_mean - allowed > BOUNDARY_EPSILON * allowed
        } else {
            self.canary_mean - self.baseline_mean > slack
        }
    }

    fn exceeds_decrease(&self, allowed: f64, slack: f64) -> bool {
        if self.baseline_mean > 0.0 {
            allowed - self.canary_mean / self.baseline_mean > BOUNDARY_EPSILON * allowed
        } else {
            self.baseline_mean - self.canary_mean > slack
        }
    }
}

/// Mean as Σ(xᵢ/n), which cannot overflow for finite values.
fn mean(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    values.iter().map(|x| x / n).sum()
}

/// Median (mean of the two middle values for an even count); 0 for no values.
fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let half = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[half]
    } else {
        sorted[half - 1] / 2.0 + sorted[half] / 2.0
    }
}

/// Everything a series' reason is made of.
struct Facts<'a> {
    words: &'a Words<'a>,
    config: &'a SeriesConfig,
    test: &'a MannWhitney,
    hl_estimate: f64,
    interval: (f64, f64),
    /// Whether the interval alone lies beyond the allowed shift (upwards, downwards).
    interval_beyond: (bool, bool),
    bound: f64,
    summary: &'a Summary,
    samples: &'a str,
}

impl Facts<'_> {
    fn labels(&self) -> &Labels<'_> {
        self.words.labels
    }

    /// "HL shift +41 ms, 98 % CI [+30, +52] ms"
    fn shift(&self) -> String {
        let unit = self.words.unit_suffix();
        format!(
            "HL shift {}{unit}, {} % CI [{}, {}]{unit}",
            signed(self.hl_estimate),
            number(self.config.confidence * 100.0, 4),
            signed(self.interval.0),
            signed(self.interval.1)
        )
    }

    /// "allowed shift +12 ms = 25 % of blue's median 48 ms"
    fn allowance(&self) -> String {
        let sign = match self.config.direction {
            Direction::Increase => "+",
            Direction::Decrease => "-",
            Direction::Either => "±",
        };
        let labels = self.labels();
        if self.bound == 0.0 {
            let why = if self.config.tolerance == 0.0 {
                "tolerance 0".to_string()
            } else {
                format!("{}'s median is 0", labels.baseline)
            };
            format!("allowed shift 0 ({why})")
        } else {
            format!(
                "allowed shift {sign}{} = {} % of {}'s median {}",
                self.words.value(self.bound),
                number(self.config.tolerance * 100.0, 3),
                labels.baseline,
                self.words.value(self.summary.baseline_median)
            )
        }
    }

    /// "Mann-Whitney p = 0.0004, 60 vs 60 samples"
    fn evidence(&self) -> String {
        format!(
            "Mann-Whitney p = {}, {}",
            p_text(self.test.p_value),
            self.samples
        )
    }

    /// "38 % higher than blue", or the means when their ratio is undefined.
    fn how_much(&self, up: bool) -> String {
        let labels = self.labels();
        let way = if up { "higher" } else { "lower" };
        let s = self.summary;
        match s.mean_ratio() {
            Some(ratio) if (up && ratio > 1.0) || (!up && ratio < 1.0) => format!(
                "{} % {way} than {} on average",
                number((ratio - 1.0).abs() * 100.0, 2),
                labels.baseline
            ),
            Some(ratio) => format!(
                "{way} than {} (mean ratio {})",
                labels.baseline,
                number(ratio, 3)
            ),
            None if s.baseline_mean < 0.0 => format!(
                "{way} than {} (means {} against {}; no ratio for a negative baseline mean)",
                labels.baseline,
                self.words.value(s.canary_mean),
                self.words.value(s.baseline_mean)
            ),
            None => format!(
                "{way} than {}, whose mean is {} (mean ratio infinite; means {} against {})",
                labels.baseline,
                number(s.baseline_mean, 3),
                self.words.value(s.canary_mean),
                self.words.value(s.baseline_mean)
            ),
        }
    }

    /// A note when the decision came from the Mann-Whitney test because of ties at zero.
    fn tie_note(&self, up: bool) -> String {
        let beyond_by_interval = if up {
            self.interval_beyond.0
        } else {
            self.interval_beyond.1
        };
        if beyond_by_interval {
            String::new()
        } else {
            format!(
                "; the interval is pinned at 0 by tied values, and the Mann-Whitney test, \
                 which accounts for ties, is significant at {} %",
                number(self.config.confidence * 100.0, 4)
            )
        }
    }

    fn shifted(&self, up: bool) -> String {
        let labels = self.labels();
        format!(
            "{} of {} is {} ({}, {}{}; {}).",
            labels.metric,
            labels.canary,
            self.how_much(up),
            self.shift(),
            self.allowance(),
            self.tie_note(up),
            self.evidence()
        )
    }

    fn effect_too_small(&self, up: bool) -> String {
        let labels = self.labels();
        let s = self.summary;
        let (way, gate) = if up {
            ("above", self.config.allowed_increase)
        } else {
            ("below", self.config.allowed_decrease)
        };
        let effect = match s.mean_ratio() {
            Some(ratio) => format!(
                "its mean is {}× {}'s, within the allowed {}×",
                number(ratio, 3),
                labels.baseline,
                number(gate, 3)
            ),
            None => format!(
                "its mean {} is not {way} {}'s {}",
                self.words.value(s.canary_mean),
                labels.baseline,
                self.words.value(s.baseline_mean)
            ),
        };
        format!(
            "{} of {} is shifted {way} {} ({}, {}{}) but {effect}, so the effect is too \
             small to fail ({}).",
            labels.metric,
            labels.canary,
            labels.baseline,
            self.shift(),
            self.allowance(),
            self.tie_note(up),
            self.evidence()
        )
    }

    fn harmless(&self, up: bool) -> String {
        let labels = self.labels();
        let direction = match self.config.direction {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
            Direction::Either => "either",
        };
        format!(
            "{} of {} is {} ({}; {}), which is not harmful for this metric (direction: \
             {direction}).",
            labels.metric,
            labels.canary,
            self.how_much(up),
            self.shift(),
            self.evidence()
        )
    }

    fn within_tolerance(&self) -> String {
        let labels = self.labels();
        format!(
            "{} of {} is within tolerance of {} ({}, {}; {}).",
            labels.metric,
            labels.canary,
            labels.baseline,
            self.shift(),
            self.allowance(),
            self.evidence()
        )
    }
}

/// Wording helpers bound to the labels.
struct Words<'a> {
    labels: &'a Labels<'a>,
}

impl<'a> Words<'a> {
    fn new(labels: &'a Labels<'a>) -> Self {
        Words { labels }
    }

    fn unit_suffix(&self) -> String {
        if self.labels.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.labels.unit)
        }
    }

    /// A value with its unit: "48 ms".
    fn value(&self, x: f64) -> String {
        format!("{}{}", number(x, 3), self.unit_suffix())
    }

    /// "60 vs 58 samples, 2 NaN or infinite values dropped"
    fn samples(&self, n: usize, m: usize, dropped: Dropped) -> String {
        let mut text = format!("{n} vs {m} samples");
        if dropped.total() > 0 {
            text.push_str(&format!(
                ", {} NaN or infinite values dropped ({} from {}, {} from {})",
                dropped.total(),
                dropped.canary,
                self.labels.canary,
                dropped.baseline,
                self.labels.baseline
            ));
        }
        text
    }

    /// " (3 NaN or infinite values dropped: ...)" or nothing.
    fn dropped_note(&self, dropped: Dropped) -> String {
        if dropped.total() == 0 {
            String::new()
        } else {
            format!(
                " after dropping {} NaN or infinite values ({} from {}, {} from {})",
                dropped.total(),
                dropped.canary,
                self.labels.canary,
                dropped.baseline,
                self.labels.baseline
            )
        }
    }
}

/// `x` with `digits` significant digits, without trailing zeros; scientific notation outside
/// [0.001, 10⁶).
fn number(x: f64, digits: usize) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    let magnitude = x.abs();
    if !(1e-3..1e6).contains(&magnitude) {
        let text = format!("{:.*e}", digits.saturating_sub(1), x);
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    fixed(x, digits)
}

/// `x` with `digits` significant digits in positional notation, without trailing zeros.
fn fixed(x: f64, digits: usize) -> String {
    let exponent = x.abs().log10().floor() as i64;
    let decimals = (digits as i64 - 1 - exponent).max(0) as usize;
    let text = trim_zeros(&format!("{x:.decimals$}"));
    if text == "-0" { "0".to_string() } else { text }
}

/// "41.50" → "41.5", "41.0" → "41"; integers are left alone.
fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// `x` with a sign: "+41", "-3", "0".
fn signed(x: f64) -> String {
    let text = number(x, 3);
    if text == "0" || text.starts_with('-') {
        text
    } else {
        format!("+{text}")
    }
}

/// A rate as a percentage: "1.2 %".
fn percent(rate: f64) -> String {
    format!("{} %", number(rate * 100.0, 3))
}

/// A p-value: two significant digits, scientific below 0.0001.
fn p_text(p: f64) -> String {
    if p == 0.0 {
        "0".to_string()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        fixed(p, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(41.0, 3), "41");
        assert_eq!(number(41.26, 3), "41.3");
        assert_eq!(number(0.012345, 3), "0.0123");
        assert_eq!(number(1234.4, 3), "1234");
        assert_eq!(number(2.5e-7, 2), "2.5e-7");
        assert_eq!(number(1e-17, 3), "1e-17");
        assert_eq!(number(3.0e7, 3), "3e7");
        assert_eq!(signed(-3.0), "-3");
        assert_eq!(signed(30.0), "+30");
        assert_eq!(signed(-0.0), "0");
        assert_eq!(percent(0.004), "0.4 %");
        assert_eq!(p_text(0.000_42), "0.00042");
        assert_eq!(p_text(4.2e-7), "4.2e-7");
        assert_eq!(p_text(1.0), "1");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
