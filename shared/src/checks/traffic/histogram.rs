//! Latencies as a compact histogram that can be carried across invocations: logarithmic
//! buckets 1 % wide (a percentile is off by at most half a percent of its value), kept
//! sparse, with the exact maximum.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Each bucket is this factor wider than the one below.
const GROWTH: f64 = 1.01;

/// Latencies in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// `[bucket, count]`, by bucket; bucket `b` holds latencies of about `GROWTH^b` µs.
    buckets: Vec<(i32, u32)>,
    count: u64,
    max_ms: f64,
}

fn bucket(ms: f64) -> i32 {
    let us = (ms * 1000.0).max(1.0);
    (us.ln() / GROWTH.ln()).floor() as i32
}

/// The middle (geometric) of a bucket, in ms.
fn middle(b: i32) -> f64 {
    GROWTH.powf(b as f64 + 0.5) / 1000.0
}

impl Histogram {
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_ms(&self) -> f64 {
        self.max_ms
    }

    /// Adds latencies (ms).
    pub fn record_all(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        let mut map: BTreeMap<i32, u32> = self.buckets.iter().copied().collect();
        for &v in values.iter().filter(|v| v.is_finite() && **v >= 0.0) {
            let e = map.entry(bucket(v)).or_default();
            *e = e.saturating_add(1);
            self.count += 1;
            self.max_ms = self.max_ms.max(v);
        }
        self.buckets = map.into_iter().collect();
    }

    /// The `q` quantile (0 to 1) in ms: the middle of the bucket holding it, never above
    /// the maximum, and the maximum itself for the last rank. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            return Some(self.max_ms);
        }
        let mut seen = 0u64;
        for &(b, n) in &self.buckets {
            seen += u64::from(n);
            if seen >= rank {
                return Some(middle(b).min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_half_a_percent() {
        let values: Vec<f64> = (1..=1000).map(|i| i as f64 * 0.37).collect();
        let mut h = Histogram::default();
        h.record_all(&values[..500]);
        h.record_all(&values[500..]);
        assert_eq!(h.count(), 1000);
        for (q, exact) in [(0.5, 500.0 * 0.37), (0.9, 900.0 * 0.37), (0.99, 990.0 * 0.37)] {
            let got = h.quantile(q).unwrap();
            assert!((got - exact).abs() <= exact * 0.006, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0).unwrap(), 370.0);
        assert_eq!(h.max_ms(), 370.0);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn survives_a_round_trip_and_stays_small() {
        let mut h = Histogram::default();
        let values: Vec<f64> = (0..10_000).map(|i| 5.0 + (i % 400) as f64 * 0.5).collect();
        h.record_all(&values);
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.len() < 4_000, "{} bytes", json.len());
        let back: Histogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
    }
}
