//! What the metric kinds (`metricThreshold`, `alarms`, `canary`) share beyond their
//! source: the policy without enough evidence, the bake window carried across
//! invocations, and numbers in reasons.

use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CheckContext;
use crate::duration::HumanDuration;

/// What to do when there is not enough evidence to judge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NoEvidence {
    /// Keep waiting (pending) until there is, or `within` runs out (default).
    #[default]
    Wait,
    /// Pass, saying there was not enough evidence.
    Pass,
    /// Fail.
    Fail,
}

/// The bake window carried between evaluations: when observation started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BakeState {
    pub started_at_ms: u64,
    /// Whether the start is the stage's real start from ECS (else the first evaluation).
    #[serde(default)]
    pub anchored: bool,
    pub evaluations: u32,
}

impl BakeState {
    /// The window carried in the check's state (`s`); on its first evaluation, anchored to the
    /// stage's real start when `anchor` is asked for and ECS tells it
    /// ([`crate::facts::Facts::stage_started_at`]), else now.
    pub async fn begin(mut s: BakeState, ctx: &CheckContext<'_>, anchor: bool) -> BakeState {
        let now = crate::duration::now_ms();
        // A start in the future (forged state) would hold the window open.
        s.started_at_ms = s.started_at_ms.min(now);
        if s.started_at_ms == 0 {
            s.started_at_ms = now;
            if anchor {
                match ctx
                    .facts
                    .stage_started_at(ctx.services, ctx.deployment, &ctx.budget)
                    .await
                {
                    Ok(Some(t)) if t <= now => {
                        s.started_at_ms = t;
                        s.anchored = true;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "the window starts now: the stage's start could not be read ({e})"
                    ),
                }
            }
        }
        s.evaluations = s.evaluations.saturating_add(1);
        s
    }

    pub fn started(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.started_at_ms)
    }

    /// Passes with `summary`, or, while the bake window is still open, stays pending with
    /// what was seen so far, to be evaluated again after `interval` or when the window ends,
    /// whichever comes first.
    pub fn pass_or_keep_baking(
        &self,
        bake_for: Option<HumanDuration>,
        interval: HumanDuration,
        summary: String,
    ) -> crate::verdict::Evaluation {
        match bake_for {
            Some(window) if self.elapsed() < window.get() => {
                let so_far = HumanDuration(Duration::from_secs(self.elapsed().as_secs()));
                crate::verdict::Evaluation::pending(
                    interval
                        .get()
                        .min(window.get().saturating_sub(self.elapsed())),
                    format!("clean for {so_far} of {window}: {summary}"),
                )
            }
            _ => crate::verdict::Evaluation::pass(summary),
        }
    }

    /// How long the window has been observed.
    pub fn elapsed(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.started())
            .unwrap_or_default()
    }
}

/// `1950` → `1,950`; `2.4` stays `2.4`.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        let s = format!("{}", x.abs() as u64);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else {
        let digits = if x.abs() >= 100.0 {
            1
        } else if x.abs() >= 1.0 {
            3
        } else {
            6
        };
        let s = format!("{x:.digits$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bake_window_is_evaluated_again_when_it_ends() {
        let bake = BakeState {
            started_at_ms: crate::duration::now_ms() - 58_500,
            anchored: false,
            evaluations: 1,
        };
        let ev = bake.pass_or_keep_baking(
            Some(HumanDuration::secs(60)),
            HumanDuration::secs(60),
            "clean".into(),
        );
        match ev.outcome {
            crate::verdict::Outcome::Pending { retry_after } => assert!(
                retry_after <= Duration::from_millis(1500) && retry_after >= Duration::from_secs(1),
                "{retry_after:?}"
            ),
            other => panic!("{other:?}"),
        }
        let early = BakeState {
            started_at_ms: crate::duration::now_ms(),
            ..bake
        };
        let ev = early.pass_or_keep_baking(
            Some(HumanDuration::secs(600)),
            HumanDuration::secs(60),
            "clean".into(),
        );
        assert_eq!(
            ev.outcome,
            crate::verdict::Outcome::Pending {
                retry_after: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(number(1950.0), "1,950");
        assert_eq!(number(2.4), "2.4");
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(0.0003), "0.0003");
        assert_eq!(number(12.3456), "12.346");
    }
}
