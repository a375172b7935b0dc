//! Verdicts and reasons of the judge on hand-made situations.

use greenlight::judge::{
    Direction, ErrorRateConfig, JudgeError, Labels, MAX_PAIRS, Method, RequestCounts, SeriesConfig,
    Verdict, judge_error_rate, judge_series,
};

const LABELS: Labels<'static> = Labels {
    metric: "p99 latency",
    unit: "ms",
    canary: "green",
    baseline: "blue",
};

const ERRORS: Labels<'static> = Labels {
    metric: "5xx rate",
    unit: "",
    canary: "green",
    baseline: "blue",
};

/// `count` values spread evenly over [low, high].
fn spread(count: usize, low: f64, high: f64) -> Vec<f64> {
    (0..count)
        .map(|i| low + (high - low) * i as f64 / (count - 1) as f64)
        .collect()
}

fn series(
    canary: &[f64],
    baseline: &[f64],
    config: &SeriesConfig,
) -> greenlight::judge::JudgeResult {
    let result = judge_series(canary, baseline, config, &LABELS).expect("valid input");
    println!("{:?}: {}", result.verdict, result.reason);
    result
}

#[test]
fn clear_latency_increase_fails_with_the_numbers() {
    let baseline = spread(60, 40.0, 60.0);
    let canary: Vec<f64> = baseline.iter().map(|x| x + 20.0).collect();
    let result = series(&canary, &baseline, &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Fail);
    assert_eq!(result.method, Method::MannWhitneyU);
    assert_eq!(result.hl_estimate, Some(20.0));
    assert_eq!(result.tolerance_bound, Some(12.5));
    assert!(result.ci_low.unwrap() > 12.5);
    assert!(result.p_value.unwrap() < 0.02);
    assert!(
        result
            .reason
            .starts_with("p99 latency of green is 40 % higher than blue")
    );
    assert!(result.reason.contains("HL shift +20 ms, 98 % CI ["));
    assert!(
        result
            .reason
            .contains("allowed shift +12.5 ms = 25 % of blue's median 50 ms")
    );
    assert!(result.reason.contains("60 vs 60 samples"));
}

#[test]
fn small_shift_within_tolerance_passes() {
    let baseline = spread(60, 40.0, 60.0);
    let canary: Vec<f64> = baseline.iter().map(|x| x + 3.0).collect();
    let result = series(&canary, &baseline, &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(result.reason.contains("within tolerance of blue"));
}

#[test]
fn effect_size_gate_keeps_a_significant_shift_from_failing() {
    let baseline = spread(60, 40.0, 60.0);
    let canary: Vec<f64> = baseline.iter().map(|x| x + 20.0).collect();
    let config = SeriesConfig {
        allowed_increase: 1.5,
        ..SeriesConfig::default()
    };
    let result = series(&canary, &baseline, &config);
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(result.reason.contains("within the allowed 1.5×"));
}

#[test]
fn direction_decides_which_change_is_harmful() {
    let baseline = spread(40, 900.0, 1100.0);
    let canary: Vec<f64> = baseline.iter().map(|x| x * 0.5).collect();
    let increase = series(&canary, &baseline, &SeriesConfig::default());
    assert_eq!(increase.verdict, Verdict::Pass);
    assert!(
        increase
            .reason
            .contains("not harmful for this metric (direction: increase)")
    );
    for direction in [Direction::Decrease, Direction::Either] {
        let config = SeriesConfig {
            direction,
            ..SeriesConfig::default()
        };
        let result = series(&canary, &baseline, &config);
        assert_eq!(result.verdict, Verdict::Fail, "{direction:?}");
        assert!(result.reason.contains("50 % lower than blue"));
    }
}

#[test]
fn both_samples_all_zero_pass() {
    let result = series(&[0.0; 30], &[0.0; 30], &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(
        result
            .reason
            .contains("no difference: both samples are all zero")
    );
    assert_eq!(result.mean_ratio, None);
    assert_eq!(result.p_value, Some(1.0));
}

#[test]
fn constant_samples_pass() {
    let result = series(&[7.0; 15], &[7.0; 12], &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(
        result
            .reason
            .contains("every datapoint in both samples is 7 ms")
    );
}

#[test]
fn identical_samples_pass() {
    let baseline = spread(25, 1.0, 9.0);
    let mut canary = baseline.clone();
    canary.reverse();
    let result = series(&canary, &baseline, &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Pass);
    assert_eq!(result.p_value, Some(1.0));
    assert_eq!(result.hl_estimate, Some(0.0));
    assert!(
        result
            .reason
            .contains("the two samples hold the same values")
    );
}

#[test]
fn errors_on_a_baseline_of_zeros_fail_with_an_infinite_ratio() {
    let mut canary = vec![0.0; 40];
    for (i, value) in canary.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        *value = (i % 5 + 1) as f64;
    }
    let result = series(&canary, &[0.0; 40], &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Fail);
    assert_eq!(result.mean_ratio, None);
    assert_eq!(result.ci_low, Some(0.0));
    assert!(
        result
            .reason
            .contains("whose mean is 0 (mean ratio infinite")
    );
    assert!(result.reason.contains("pinned at 0 by tied values"));
}

#[test]
fn a_few_spikes_on_mostly_zero_data_pass() {
    let mut canary = vec![0.0; 60];
    canary[7] = 3.0;
    canary[31] = 1.0;
    let mut baseline = vec![0.0; 60];
    baseline[12] = 2.0;
    let result = series(&canary, &baseline, &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Pass);
}

#[test]
fn non_finite_values_are_dropped_and_counted() {
    let baseline = spread(20, 40.0, 60.0);
    let mut canary: Vec<f64> = baseline.iter().map(|x| x + 1.0).collect();
    canary.extend([f64::NAN, f64::INFINITY]);
    let mut with_gaps = baseline.clone();
    with_gaps.push(f64::NEG_INFINITY);
    let result = series(&canary, &with_gaps, &SeriesConfig::default());
    assert_eq!(result.dropped.canary, 2);
    assert_eq!(result.dropped.baseline, 1);
    assert_eq!((result.n_canary, result.n_baseline), (20, 20));
    assert!(result.reason.contains("3 NaN or infinite values dropped"));
    let clean = series(&canary[..20], &baseline, &SeriesConfig::default());
    assert_eq!(result.p_value, clean.p_value);
    assert_eq!(result.verdict, clean.verdict);
}

#[test]
fn too_few_datapoints_are_not_enough_evidence() {
    let mut canary = vec![f64::NAN; 5];
    canary.extend(spread(8, 1.0, 2.0));
    let result = series(&canary, &spread(30, 1.0, 2.0), &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::NotEnoughEvidence);
    assert!(result.reason.contains("green has 8 usable datapoints"));
    assert!(result.reason.contains("at least 10 are needed"));
    assert_eq!(result.p_value, None);
}

#[test]
fn samples_too_small_for_the_interval_are_not_enough_evidence() {
    let config = SeriesConfig {
        min_samples: 3,
        ..SeriesConfig::default()
    };
    let result = series(&[10.0, 11.0, 12.0], &[1.0, 2.0, 3.0], &config);
    assert_eq!(result.verdict, Verdict::NotEnoughEvidence);
    assert!(
        result
            .reason
            .contains("too few for a 98 % confidence interval")
    );
}

#[test]
fn negative_baseline_mean_compares_means() {
    let baseline = spread(30, -12.0, -8.0);
    let canary: Vec<f64> = baseline.iter().map(|x| x + 6.0).collect();
    let result = series(&canary, &baseline, &SeriesConfig::default());
    assert_eq!(result.verdict, Verdict::Fail);
    assert_eq!(result.mean_ratio, None);
    assert!(
        result
            .reason
            .contains("no ratio for a negative baseline mean")
    );
}

#[test]
fn invalid_settings_are_errors_not_verdicts() {
    let bad = [
        SeriesConfig {
            confidence: 1.0,
            ..SeriesConfig::default()
        },
        SeriesConfig {
            tolerance: -0.1,
            ..SeriesConfig::default()
        },
        SeriesConfig {
            allowed_increase: f64::NAN,
            ..SeriesConfig::default()
        },
        SeriesConfig {
            min_samples: 0,
            ..SeriesConfig::default()
        },
    ];
    for config in bad {
        let error = judge_series(&[1.0; 20], &[2.0; 20], &config, &LABELS).unwrap_err();
        assert!(matches!(error, JudgeError::InvalidConfig { .. }));
        println!("{error}");
    }
}

#[test]
fn too_many_pairs_is_an_error() {
    let side = (MAX_PAIRS as f64).sqrt() as usize + 1;
    let values = spread(side, 1.0, 2.0);
    let error = judge_series(&values, &values, &SeriesConfig::default(), &LABELS).unwrap_err();
    assert!(matches!(error, JudgeError::TooManyPairs { .. }));
    assert!(error.to_string().contains("longer period"));
}

#[test]
fn config_reads_camel_case_json_with_defaults() {
    let config: SeriesConfig =
        serde_json::from_str(r#"{"direction": "either", "allowedIncrease": 1.2}"#).unwrap();
    assert_eq!(config.direction, Direction::Either);
    assert_eq!(config.allowed_increase, 1.2);
    assert_eq!(config.confidence, 0.98);
    assert_eq!(config.min_samples, 10);
    assert!(serde_json::from_str::<SeriesConfig>(r#"{"minSample": 5}"#).is_err());
    let errors: ErrorRateConfig = serde_json::from_str(r#"{"minRequests": 500}"#).unwrap();
    assert_eq!(errors.min_requests, 500);
    assert_eq!(errors.confidence, 0.99);
}

#[test]
fn result_serialises_in_camel_case_without_nan() {
    let mut canary = vec![0.0; 20];
    canary[0] = 5.0;
    let result = judge_series(&canary, &[0.0; 20], &SeriesConfig::default(), &LABELS).unwrap();
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["method"], "mannWhitneyU");
    for key in [
        "verdict",
        "reason",
        "pValue",
        "statistic",
        "hlEstimate",
        "ciLow",
        "ciHigh",
        "toleranceBound",
        "meanRatio",
        "nCanary",
        "nBaseline",
        "dropped",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert_eq!(json["meanRatio"], serde_json::Value::Null);
    let few = judge_series(&[1.0], &[2.0], &SeriesConfig::default(), &LABELS).unwrap();
    assert_eq!(
        serde_json::to_value(few).unwrap()["verdict"],
        "notEnoughEvidence"
    );
}

fn counts(errors: u64, requests: u64) -> RequestCounts {
    RequestCounts { requests, errors }
}

fn error_rate(canary: RequestCounts, baseline: RequestCounts) -> greenlight::judge::JudgeResult {
    let result = judge_error_rate(canary, baseline, &ErrorRateConfig::default(), &ERRORS)
        .expect("valid input");
    println!("{:?}: {}", result.verdict, result.reason);
    result
}

#[test]
fn error_rate_increase_fails() {
    let result = error_rate(counts(60, 5000), counts(20, 5000));
    assert_eq!(result.verdict, Verdict::Fail);
    assert_eq!(result.method, Method::TwoProportionZ);
    assert!(
        result
            .reason
            .starts_with("5xx rate of green is 1.2 % against 0.4 % on blue")
    );
    assert!(
        result
            .reason
            .contains("more than the allowed 0.1 with 99 % confidence")
    );
    assert!(result.ci_low.unwrap() > 0.001);
}

#[test]
fn error_rate_within_tolerance_passes() {
    let result = error_rate(counts(13, 10_000), counts(10, 10_000));
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(
        result
            .reason
            .contains("not significantly more than the allowed")
    );
}

#[test]
fn no_errors_anywhere_pass() {
    let result = error_rate(counts(0, 1000), counts(0, 2000));
    assert_eq!(result.verdict, Verdict::Pass);
    assert_eq!(result.statistic, None);
    assert_eq!(result.p_value, Some(1.0));
    assert!(result.reason.contains("no errors on either green or blue"));
}

#[test]
fn every_request_failing_on_both_sides_passes_with_a_warning() {
    let result = error_rate(counts(400, 400), counts(900, 900));
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(result.reason.contains("every request failed on both"));
}

#[test]
fn errors_only_on_the_canary_fail_with_enough_traffic() {
    let config = ErrorRateConfig {
        tolerance: 0.0,
        confidence: 0.95,
        ..ErrorRateConfig::default()
    };
    let result =
        judge_error_rate(counts(5, 300), counts(0, 300), &config, &ERRORS).expect("valid input");
    assert_eq!(result.verdict, Verdict::Fail);
}

#[test]
fn too_little_traffic_is_not_enough_evidence() {
    let result = error_rate(counts(3, 40), counts(0, 4000));
    assert_eq!(result.verdict, Verdict::NotEnoughEvidence);
    assert!(result.reason.contains("green served 40 requests"));
    let none = error_rate(counts(0, 0), counts(0, 0));
    assert_eq!(none.verdict, Verdict::NotEnoughEvidence);
    assert_eq!(none.canary_error_rate, None);
}

#[test]
fn more_errors_than_requests_is_an_error() {
    let error = judge_error_rate(
        counts(12, 10),
        counts(0, 100),
        &ErrorRateConfig::default(),
        &ERRORS,
    )
    .unwrap_err();
    assert!(matches!(error, JudgeError::InvalidCounts(_)));
    assert!(error.to_string().contains("12 errors out of 10 requests"));
}
