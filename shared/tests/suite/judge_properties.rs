//! Properties the series judge must have whatever the data.

use greenlight::judge::{Direction, JudgeResult, Labels, SeriesConfig, Verdict, judge_series};
use proptest::prelude::*;

/// Metric-like values: quarter units in [-500, 1000), with many zeros and ties, so that
/// multiplying by a factor in [0.001, 1000] keeps every order and every tie.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => Just(0.0),
        6 => (0i32..4000).prop_map(|k| f64::from(k) / 4.0),
        1 => (-2000i32..0).prop_map(|k| f64::from(k) / 4.0),
    ]
}

fn sample() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(value(), 10..60)
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::Increase),
        Just(Direction::Decrease),
        Just(Direction::Either),
    ]
}

fn config() -> impl Strategy<Value = SeriesConfig> {
    (direction(), 0.0f64..0.5, 0.8f64..0.999, 0.8f64..1.3).prop_map(
        |(direction, tolerance, confidence, allowed)| SeriesConfig {
            direction,
            tolerance,
            confidence,
            allowed_increase: allowed,
            allowed_decrease: allowed,
            min_samples: 10,
        },
    )
}

/// A canary shifted from a sample by 0, a little, or a lot.
fn shifted_pair() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    let shift = prop_oneof![Just(0.0), 0.0f64..20.0, 20.0f64..2000.0];
    (sample(), sample(), shift).prop_map(|(canary, baseline, shift)| {
        (canary.into_iter().map(|x| x + shift).collect(), baseline)
    })
}

/// Drawn from the baseline itself: a canary with the baseline's distribution.
fn resampled() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    sample().prop_flat_map(|baseline| {
        let len = baseline.len();
        (prop::collection::vec(0..len, 10..60), Just(baseline)).prop_map(|(picks, baseline)| {
            (picks.into_iter().map(|i| baseline[i]).collect(), baseline)
        })
    })
}

fn judge(canary: &[f64], baseline: &[f64], config: &SeriesConfig) -> JudgeResult {
    judge_series(canary, baseline, config, &Labels::default()).expect("valid settings")
}

fn negated(x: Option<f64>) -> Option<f64> {
    x.map(|v| -v)
}

proptest! {
    #[test]
    fn swapping_the_samples_mirrors_the_test((canary, baseline) in shifted_pair()) {
        let either = SeriesConfig { direction: Direction::Either, ..SeriesConfig::default() };
        let forward = judge(&canary, &baseline, &either);
        let backward = judge(&baseline, &canary, &either);
        prop_assert_eq!(forward.p_value, backward.p_value);
        let pairs = (canary.len() * baseline.len()) as f64;
        prop_assert_eq!(forward.statistic.map(|u| pairs - u), backward.statistic);
        prop_assert_eq!(negated(forward.hl_estimate), backward.hl_estimate);
        prop_assert_eq!(negated(forward.ci_high), backward.ci_low);
        prop_assert_eq!(negated(forward.ci_low), backward.ci_high);
    }

    #[test]
    fn a_failed_increase_is_not_failed_the_other_way((canary, baseline) in shifted_pair()) {
        let increase = SeriesConfig::default();
        if judge(&canary, &baseline, &increase).verdict == Verdict::Fail {
            prop_assert_ne!(judge(&baseline, &canary, &increase).verdict, Verdict::Fail);
        }
    }

    #[test]
    fn identical_samples_pass(baseline in sample(), config in config(), rotate in 0usize..60) {
        let mut canary = baseline.clone();
        let by = rotate % canary.len();
        canary.rotate_left(by);
        let result = judge(&canary, &baseline, &config);
        prop_assert_eq!(result.verdict, Verdict::Pass);
        prop_assert_eq!(result.p_value, Some(1.0));
    }

    #[test]
    fn the_unit_does_not_matter(
        (canary, baseline) in shifted_pair(),
        config in config(),
        factor in prop_oneof![0.001f64..1.0, 1.0f64..1000.0],
    ) {
        let original = judge(&canary, &baseline, &config);
        let scale = |values: &[f64]| values.iter().map(|x| x * factor).collect::<Vec<_>>();
        let scaled = judge(&scale(&canary), &scale(&baseline), &config);
        prop_assert_eq!(original.verdict, scaled.verdict, "{} / {}", original.reason, scaled.reason);
        prop_assert_eq!(original.p_value, scaled.p_value);
        prop_assert_eq!(original.statistic, scaled.statistic);
    }

    /// The shift is 10 times the baseline's range plus its largest magnitude (the tolerance is
    /// relative to the median, which the range alone does not bound), plus 1 for a constant
    /// baseline of zeros.
    #[test]
    fn a_large_shift_is_always_caught((canary, baseline) in resampled()) {
        let low = baseline.iter().copied().fold(f64::INFINITY, f64::min);
        let high = baseline.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let magnitude = baseline.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let shift = 10.0 * (high - low + magnitude) + 1.0;
        let up: Vec<f64> = canary.iter().map(|x| x + shift).collect();
        let down: Vec<f64> = canary.iter().map(|x| x - shift).collect();
        for direction in [Direction::Increase, Direction::Either] {
            let config = SeriesConfig { direction, ..SeriesConfig::default() };
            let result = judge(&up, &baseline, &config);
            prop_assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
        }
        for direction in [Direction::Decrease, Direction::Either] {
            let config = SeriesConfig { direction, ..SeriesConfig::default() };
            let result = judge(&down, &baseline, &config);
            prop_assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
        }
    }

    #[test]
    fn a_fail_is_always_significant((canary, baseline) in shifted_pair(), config in config()) {
        let result = judge(&canary, &baseline, &config);
        if result.verdict == Verdict::Fail {
            let p = result.p_value.expect("a p-value");
            prop_assert!(p <= (1.0 - config.confidence) * (1.0 + 1e-12), "p = {}", p);
        }
    }

    #[test]
    fn non_finite_values_change_nothing_but_the_count(
        (canary, baseline) in shifted_pair(),
        gaps in prop::collection::vec(
            (prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)], any::<bool>(), 0usize..60),
            0..8,
        ),
    ) {
        let (mut dirty_canary, mut dirty_baseline) = (canary.clone(), baseline.clone());
        for (gap, in_canary, at) in &gaps {
            let side = if *in_canary { &mut dirty_canary } else { &mut dirty_baseline };
            let at = at % (side.len() + 1);
            side.insert(at, *gap);
        }
        let config = SeriesConfig::default();
        let clean = judge(&canary, &baseline, &config);
        let dirty = judge(&dirty_canary, &dirty_baseline, &config);
        prop_assert_eq!(dirty.dropped.total(), gaps.len());
        prop_assert_eq!(clean.verdict, dirty.verdict);
        prop_assert_eq!(clean.p_value, dirty.p_value);
        prop_assert_eq!(clean.hl_estimate, dirty.hl_estimate);
        prop_assert_eq!(clean.ci_low, dirty.ci_low);
    }
}
