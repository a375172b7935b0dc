//! The one-sided two-proportion z-test for error rates, with an allowed increase.

use serde::{Deserialize, Serialize};

use super::normal::{normal_quantile, normal_sf};

/// Requests seen and how many of them failed, for one side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub requests: u64,
    pub errors: u64,
}

/// The result of [`two_proportion_z`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoProportion {
    /// p_c = canary errors / canary requests.
    pub canary_rate: f64,
    /// p_b = baseline errors / baseline requests.
    pub baseline_rate: f64,
    /// p_c − p_b.
    pub difference: f64,
    /// The pooled standard error √(p̄(1 − p̄)(1/n_c + 1/n_b)); 0 when p̄ is 0 or 1.
    pub standard_error: f64,
    /// z = (p_c − p_b − tolerance)/SE; `None` when SE = 0.
    pub z: Option<f64>,
    /// One-sided p-value 1 − Φ(z) of "p_c − p_b ≤ tolerance"; 1 when SE = 0.
    pub p_value: f64,
}

/// The one-sided two-proportion z-test of "the canary's error rate exceeds the baseline's by
/// more than `tolerance`" (an absolute difference: 0.001 is 0.1 percentage points).
///
/// With p̄ = (e_c + e_b)/(n_c + n_b) the pooled error rate,
///
/// z = (p_c − p_b − tolerance) / √(p̄(1 − p̄)(1/n_c + 1/n_b)),  p = 1 − Φ(z).
///
/// The pooled standard error is the one of the classic test of equal rates (Fleiss, Levin and
/// Paik, *Statistical Methods for Rates and Proportions*, 3rd ed. 2003); shifting the
/// numerator by the tolerance keeps it. For the small tolerances used on error rates it is
/// close to the standard error at the boundary of the hypothesis, and slightly larger, so the
/// test errs towards not failing.
///
/// When p̄ is 0 (no errors anywhere) or 1 (every request failed on both sides), both rates are
/// equal, the standard error is 0 and there is no evidence of an increase: `z` is `None` and
/// the p-value is 1.
///
/// Returns `None` when a side has no requests or more errors than requests.
pub fn two_proportion_z(
    canary: RequestCounts,
    baseline: RequestCounts,
    tolerance: f64,
) -> Option<TwoProportion> {
    if canary.requests == 0
        || baseline.requests == 0
        || canary.errors > canary.requests
        || baseline.errors > baseline.requests
    {
        return None;
    }
    let (e_c, n_c) = (canary.errors as f64, canary.requests as f64);
    let (e_b, n_b) = (baseline.errors as f64, baseline.requests as f64);
    let canary_rate = e_c / n_c;
    let baseline_rate = e_b / n_b;
    let difference = canary_rate - baseline_rate;
    let pooled = (e_c + e_b) / (n_c + n_b);
    let variance = pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_b);
    let (standard_error, z, p_value) = if variance > 0.0 {
        let se = variance.sqrt();
        let z = (difference - tolerance) / se;
        (se, Some(z), normal_sf(z))
    } else {
        (0.0, None, 1.0)
    };
    Some(TwoProportion {
        canary_rate,
        baseline_rate,
        difference,
        standard_error,
        z,
        p_value,
    })
}

impl TwoProportion {
    /// The one-sided lower confidence bound of p_c − p_b with the test's standard error:
    /// p_c − p_b − z₁₋α·SE, α = 1 − confidence. The test fails exactly when this bound is
    /// above the tolerance (up to rounding). `None` when SE = 0.
    pub fn lower_bound(&self, confidence: f64) -> Option<f64> {
        (self.standard_error > 0.0)
            .then(|| self.difference + normal_quantile(1.0 - confidence) * self.standard_error)
    }
}
