//! Rank statistics for two samples: the Mann-Whitney U test (Wilcoxon rank-sum) and the
//! Hodges-Lehmann estimate of the shift with its confidence interval.
//!
//! Both take finite values only; `judge_series` removes NaN and ±∞ before calling them.
//! References: E. L. Lehmann, *Nonparametrics: Statistical Methods Based on Ranks* (1975),
//! chapters 1 and 2; M. Hollander and D. A. Wolfe, *Nonparametric Statistical Methods*,
//! 2nd ed. (1999), chapter 4.

use super::normal::{normal_quantile, normal_sf};

/// The Mann-Whitney U test of a canary sample against a baseline sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the canary: the number of pairs (canary_i, baseline_j) with canary_i > baseline_j,
    /// plus half the number of tied pairs. It lies in [0, n·m]; n·m/2 means no tendency either
    /// way. This is the statistic `scipy.stats.mannwhitneyu(canary, baseline)` reports.
    pub u: f64,
    /// The standardised statistic (U − n·m/2)/σ with the continuity correction of ½ towards
    /// zero: positive when the canary tends to be higher.
    pub z: f64,
    /// Two-sided p-value of the normal approximation, 2·(1 − Φ(|z|)), capped at 1.
    pub p_value: f64,
    /// σ, the standard deviation of U under "same distribution", with the tie correction.
    pub sigma: f64,
}

/// The Mann-Whitney U test (normal approximation with tie and continuity corrections).
///
/// With N = n + m values ranked together (tied values get the mean of their ranks) and R the
/// canary's rank sum, U = R − n(n + 1)/2. Under the hypothesis that both samples come from
/// the same distribution, U has mean n·m/2 and variance
///
/// σ² = n·m/12 · ((N + 1) − Σ(t³ − t)/(N(N − 1)))
///
/// where t runs over the sizes of the groups of tied values. The two-sided p-value is
/// 2·(1 − Φ((|U − n·m/2| − ½)/σ)), capped at 1 — the same as SciPy's
/// `mannwhitneyu(..., method='asymptotic', use_continuity=True)`. When every value is equal,
/// σ = 0 and there is no evidence of a difference: z = 0 and p = 1.
///
/// Returns `None` when either sample is empty.
pub fn mann_whitney(canary: &[f64], baseline: &[f64]) -> Option<MannWhitney> {
    if canary.is_empty() || baseline.is_empty() {
        return None;
    }
    let n = canary.len() as f64;
    let m = baseline.len() as f64;
    let mut all: Vec<(f64, bool)> = canary
        .iter()
        .map(|&x| (x, true))
        .chain(baseline.iter().map(|&x| (x, false)))
        .collect();
    all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));

    // Ranks are 1-based; the tied values at sorted positions i..j share rank (i + 1 + j)/2.
    // Every quantity here is a multiple of ½ and stays exact in f64.
    let mut canary_rank_sum = 0.0;
    let mut tie_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let in_canary = all[i..j].iter().filter(|e| e.1).count() as f64;
        canary_rank_sum += in_canary * (i + 1 + j) as f64 / 2.0;
        let t = (j - i) as f64;
        tie_sum += t * t * t - t;
        i = j;
    }
    let u = canary_rank_sum - n * (n + 1.0) / 2.0;

    let total = n + m;
    let mean = n * m / 2.0;
    let variance = n * m / 12.0 * ((total + 1.0) - tie_sum / (total * (total - 1.0)));
    if variance <= 0.0 {
        return Some(MannWhitney {
            u,
            z: 0.0,
            p_value: 1.0,
            sigma: 0.0,
        });
    }
    let sigma = variance.sqrt();
    let distance = (u - mean).abs() - 0.5;
    let p_value = (2.0 * normal_sf(distance / sigma)).min(1.0);
    let z = if distance <= 0.0 {
        0.0
    } else {
        (u - mean).signum() * distance / sigma
    };
    Some(MannWhitney {
        u,
        z,
        p_value,
        sigma,
    })
}

/// The Hodges-Lehmann estimate of the shift of the canary against the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HodgesLehmann {
    /// The median of the n·m differences canary_i − baseline_j (the mean of the two middle
    /// ones when n·m is even).
    pub estimate: f64,
    /// The confidence interval of the shift, `None` when the samples are too small for the
    /// requested confidence (k < 1 below).
    pub interval: Option<(f64, f64)>,
    /// The order statistic k the interval is built from: [D₍ₖ₎, D₍ₙₘ₊₁₋ₖ₎].
    pub k: i64,
}

/// The Hodges-Lehmann shift estimate and its confidence interval (order-statistic method).
///
/// Let D₍₁₎ ≤ … ≤ D₍ₙₘ₎ be the sorted differences canary_i − baseline_j. The interval
/// [D₍ₖ₎, D₍ₙₘ₊₁₋ₖ₎] covers the true shift with probability at least `confidence` when k − 1 is
/// the lower (1 − confidence)/2 critical value of U (Lehmann 1975, chapter 2; Hollander and
/// Wolfe, chapter 4). With U approximated by a normal distribution with continuity correction,
///
/// k = ⌊n·m/2 + ½ − z·σ₀⌋, z = Φ⁻¹(1 − (1 − confidence)/2), σ₀ = √(n·m(n + m + 1)/12).
///
/// σ₀ is U's standard deviation without tie correction: the interval is distribution-free for
/// continuous data and, with ties, wider (more cautious) than the tie-corrected one. Because
/// σ₀ ≥ the tie-corrected σ of [`mann_whitney`], an interval that excludes 0 implies a
/// two-sided Mann-Whitney p-value ≤ 1 − confidence.
///
/// Returns `None` when either sample is empty. Costs O(n·m) time and memory.
pub fn hodges_lehmann(canary: &[f64], baseline: &[f64], confidence: f64) -> Option<HodgesLehmann> {
    if canary.is_empty() || baseline.is_empty() {
        return None;
    }
    let pairs = canary.len() * baseline.len();
    let mut diffs: Vec<f64> = Vec::with_capacity(pairs);
    for &c in canary {
        diffs.extend(baseline.iter().map(|&b| c - b));
    }

    let n = canary.len() as f64;
    let m = baseline.len() as f64;
    let nm = n * m;
    let z = -normal_quantile((1.0 - confidence) / 2.0);
    let sigma0 = (nm * (n + m + 1.0) / 12.0).sqrt();
    let k = (nm / 2.0 + 0.5 - z * sigma0).floor() as i64;

    // Zero-based positions of the order statistics needed, in increasing order.
    let mid_low = (pairs - 1) / 2;
    let mid_high = pairs / 2;
    let interval_positions = (k >= 1).then(|| (k as usize - 1, pairs - k as usize));
    let mut positions = vec![mid_low, mid_high];
    if let Some((low, high)) = interval_positions {
        positions.extend([low, high]);
    }
    positions.sort_unstable();
    positions.dedup();
    let values = order_statistics(&mut diffs, &positions);
    let at = |position: usize| values[positions.binary_search(&position).expect("selected")];

    let estimate = at(mid_low) / 2.0 + at(mid_high) / 2.0;
    let interval = interval_positions.map(|(low, high)| (at(low), at(high)));
    Some(HodgesLehmann {
        estimate,
        interval,
        k,
    })
}

/// The values at the given zero-based positions (strictly increasing) of `values` in sorted
/// order, by successive selection in O(len) expected time. Reorders `values`.
fn order_statistics(values: &mut [f64], positions: &[usize]) -> Vec<f64> {
    let mut found = Vec::with_capacity(positions.len());
    let mut rest = values;
    let mut offset = 0;
    for &position in positions {
        let (_, value, above) = rest.select_nth_unstable_by(position - offset, f64::total_cmp);
        found.push(*value);
        offset = position + 1;
        rest = above;
    }
    found
}
