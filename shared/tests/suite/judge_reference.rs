//! Compares the judge's statistics with reference values computed by SciPy and mpmath
//! (tests/fixtures/gen_fixtures.py writes tests/fixtures/judge_reference.json).

use std::cell::RefCell;
use std::collections::BTreeMap;

use greenlight::judge::{
    ErrorRateConfig, Labels, RequestCounts, SeriesConfig, Verdict, hodges_lehmann,
    judge_error_rate, judge_series, mann_whitney, normal_cdf, normal_quantile, normal_sf,
    two_proportion_z,
};
use serde_json::Value;

/// Relative tolerance for every comparison; values whose reference is 0 are compared
/// absolutely with the same number.
const RELATIVE: f64 = 1e-9;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/judge_reference.json"
    );
    let text =
        std::fs::read_to_string(path).expect("tests/fixtures/judge_reference.json is readable");
    serde_json::from_str(&text).expect("the fixture is valid JSON")
}

fn f(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number in {value}"))
}

fn opt(value: &Value, key: &str) -> Option<f64> {
    value[key].as_f64()
}

fn floats(value: &Value, key: &str) -> Vec<f64> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is an array"))
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// Largest relative error seen per quantity, printed with `--nocapture`.
struct Errors(RefCell<BTreeMap<&'static str, f64>>);

impl Errors {
    fn new() -> Self {
        Errors(RefCell::new(BTreeMap::new()))
    }

    fn check(&self, what: &'static str, case: &str, actual: f64, expected: f64) {
        let error = if expected == 0.0 {
            actual.abs()
        } else {
            ((actual - expected) / expected).abs()
        };
        let mut worst = self.0.borrow_mut();
        let entry = worst.entry(what).or_insert(0.0);
        *entry = entry.max(error);
        assert!(
            error <= RELATIVE,
            "{what} of {case}: {actual:e} against reference {expected:e} (relative error {error:e})"
        );
    }

    fn check_opt(
        &self,
        what: &'static str,
        case: &str,
        actual: Option<f64>,
        expected: Option<f64>,
    ) {
        match (actual, expected) {
            (Some(a), Some(e)) => self.check(what, case, a, e),
            (None, None) => {}
            _ => panic!("{what} of {case}: {actual:?} against reference {expected:?}"),
        }
    }

    fn report(&self, title: &str) {
        for (what, error) in self.0.borrow().iter() {
            println!("{title}: largest relative error of {what}: {error:.2e}");
        }
    }
}

fn verdict(name: &str) -> Verdict {
    match name {
        "pass" => Verdict::Pass,
        "fail" => Verdict::Fail,
        "notEnoughEvidence" => Verdict::NotEnoughEvidence,
        other => panic!("unknown verdict {other}"),
    }
}

#[test]
fn normal_distribution_matches_mpmath() {
    let fixture = fixture();
    let errors = Errors::new();
    for case in fixture["normalCdf"].as_array().expect("normalCdf") {
        let x = f(case, "x");
        let name = format!("x = {x}");
        errors.check("normal_cdf", &name, normal_cdf(x), f(case, "cdf"));
        errors.check("normal_sf", &name, normal_sf(x), f(case, "sf"));
    }
    for case in fixture["normalQuantile"]
        .as_array()
        .expect("normalQuantile")
    {
        let p = f(case, "p");
        errors.check(
            "normal_quantile",
            &format!("p = {p}"),
            normal_quantile(p),
            f(case, "quantile"),
        );
    }
    errors.report("normal");
}

#[test]
fn series_statistics_match_scipy() {
    let fixture = fixture();
    let errors = Errors::new();
    for case in fixture["series"].as_array().expect("series") {
        let name = case["name"].as_str().expect("name");
        let canary = floats(case, "canary");
        let baseline = floats(case, "baseline");

        let test = mann_whitney(&canary, &baseline).expect("non-empty samples");
        errors.check("U", name, test.u, f(case, "u"));
        errors.check("p-value", name, test.p_value, f(case, "pValue"));

        let hl98 = hodges_lehmann(&canary, &baseline, 0.98).expect("non-empty samples");
        assert_eq!(hl98.k, case["k98"].as_i64().expect("k98"), "k of {name}");
        errors.check("HL estimate", name, hl98.estimate, f(case, "hlEstimate"));
        errors.check_opt(
            "CI 98 %",
            name,
            hl98.interval.map(|i| i.0),
            opt(case, "ciLow98"),
        );
        errors.check_opt(
            "CI 98 %",
            name,
            hl98.interval.map(|i| i.1),
            opt(case, "ciHigh98"),
        );
        let hl95 = hodges_lehmann(&canary, &baseline, 0.95).expect("non-empty samples");
        errors.check_opt(
            "CI 95 %",
            name,
            hl95.interval.map(|i| i.0),
            opt(case, "ciLow95"),
        );
        errors.check_opt(
            "CI 95 %",
            name,
            hl95.interval.map(|i| i.1),
            opt(case, "ciHigh95"),
        );

        let result = judge_series(
            &canary,
            &baseline,
            &SeriesConfig::default(),
            &Labels::default(),
        )
        .expect("valid input");
        assert_eq!(
            result.verdict,
            verdict(case["verdictIncrease"].as_str().expect("verdict")),
            "verdict of {name}: {}",
            result.reason
        );
        if result.verdict != Verdict::NotEnoughEvidence {
            errors.check_opt(
                "mean ratio",
                name,
                result.mean_ratio,
                opt(case, "meanRatio"),
            );
            errors.check(
                "tolerance bound",
                name,
                result.tolerance_bound.expect("bound"),
                0.25 * f(case, "baselineMedian").abs(),
            );
        }
    }
    errors.report("series");
}

#[test]
fn error_rate_tests_match_scipy() {
    let fixture = fixture();
    let errors = Errors::new();
    for case in fixture["proportions"].as_array().expect("proportions") {
        let name = case["name"].as_str().expect("name");
        let count = |key: &str| case[key].as_u64().expect("a count");
        let canary = RequestCounts {
            requests: count("canaryRequests"),
            errors: count("canaryErrors"),
        };
        let baseline = RequestCounts {
            requests: count("baselineRequests"),
            errors: count("baselineErrors"),
        };
        let tolerance = f(case, "tolerance");
        let confidence = f(case, "confidence");

        let test = two_proportion_z(canary, baseline, tolerance).expect("valid counts");
        errors.check_opt("z", name, test.z, opt(case, "z"));
        errors.check("p-value", name, test.p_value, f(case, "pValue"));
        errors.check_opt(
            "lower bound",
            name,
            test.lower_bound(confidence),
            opt(case, "ciLow"),
        );

        let config = ErrorRateConfig {
            min_requests: 100,
            tolerance,
            confidence,
        };
        let result =
            judge_error_rate(canary, baseline, &config, &Labels::default()).expect("valid input");
        assert_eq!(
            result.verdict,
            verdict(case["verdict"].as_str().expect("verdict")),
            "verdict of {name}: {}",
            result.reason
        );
    }
    errors.report("proportions");
}
