//! Time to judge one metric: a 60-versus-60 series (Mann-Whitney U, Hodges-Lehmann estimate
//! and interval, verdict and reason) and a two-proportion test of error rates.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use greenlight::judge::{
    ErrorRateConfig, Labels, RequestCounts, SeriesConfig, judge_error_rate, judge_series,
};

/// Latency-like datapoints around `median` ms, from a fixed xorshift sequence.
fn latencies(seed: u64, count: usize, median: f64) -> Vec<f64> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            (median * (0.6 + 0.8 * unit) * 10.0).round() / 10.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let labels = Labels {
        metric: "p99 latency",
        unit: "ms",
        canary: "green",
        baseline: "blue",
    };
    let canary = latencies(0x9e37_79b9_7f4a_7c15, 60, 52.0);
    let baseline = latencies(0xd1b5_4a32_d192_ed03, 60, 48.0);
    let series = SeriesConfig::default();
    c.bench_function("series_60_vs_60", |b| {
        b.iter(|| judge_series(black_box(&canary), black_box(&baseline), &series, &labels))
    });

    let errors = ErrorRateConfig::default();
    let green = RequestCounts {
        requests: 5_000,
        errors: 60,
    };
    let blue = RequestCounts {
        requests: 5_000,
        errors: 20,
    };
    c.bench_function("error_rate_two_proportion", |b| {
        b.iter(|| judge_error_rate(black_box(green), black_box(blue), &errors, &labels))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
