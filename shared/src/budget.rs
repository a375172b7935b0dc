//! The time an invocation may spend: the Lambda deadline less a safety margin kept for
//! answering (ECS) or reporting (CodeDeploy).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The margin kept before the Lambda deadline: a tenth of the invocation's time, at least
/// one second and at most 30 seconds, and never more than half of it.
pub fn margin_for(total: Duration) -> Duration {
    (total / 10)
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
        .min(total / 2)
}

/// Lambda's longest invocation.
pub const LAMBDA_MAX: Duration = Duration::from_secs(15 * 60);

/// The invocation's deadline from the runtime API's `Lambda-Runtime-Deadline-Ms` value.
/// Lambda sends milliseconds since the epoch; local emulators (`cargo lambda watch`) send
/// the timeout itself, which is read as relative to `now`. Either way the deadline is
/// never later than Lambda's 15-minute maximum.
pub fn lambda_deadline(raw_ms: u64, now: SystemTime) -> SystemTime {
    // 2001-09-09: any real deadline is later; any timeout is (much) smaller.
    const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;
    let deadline = if raw_ms < EPOCH_MS_FLOOR {
        now + Duration::from_millis(raw_ms)
    } else {
        SystemTime::UNIX_EPOCH + Duration::from_millis(raw_ms)
    };
    deadline.min(now + LAMBDA_MAX)
}

/// Environment variable that shortens every invocation: a duration (`"20s"`, `"2m"`). The
/// function then works to the earlier of Lambda's deadline and this long after the
/// invocation starts, to rehearse a short function timeout where the runtime gives a long
/// deadline (`cargo lambda watch` always gives 10 minutes). Unset or empty: no cap.
pub const ENV_MAX_INVOCATION: &str = "GREENLIGHT_MAX_INVOCATION";

/// Reads the value of [`ENV_MAX_INVOCATION`].
pub fn max_invocation(value: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match crate::duration::parse(text) {
        Ok(d) if d.is_zero() => Err(format!("{ENV_MAX_INVOCATION} must be longer than zero")),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(format!("{ENV_MAX_INVOCATION}: {e}")),
    }
}

/// The deadline an invocation works to: Lambda's ([`lambda_deadline`]), or `cap` after
/// `now` when that is earlier.
pub fn invocation_deadline(raw_ms: u64, now: SystemTime, cap: Option<Duration>) -> SystemTime {
    let lambda = lambda_deadline(raw_ms, now);
    cap.map_or(lambda, |c| lambda.min(now + c))
}

/// A point in time after which no more work starts.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    end: Instant,
    deadline: Instant,
}

impl Budget {
    /// The budget of an invocation whose Lambda deadline is `deadline`.
    pub fn until(deadline: SystemTime) -> Budget {
        let total = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let now = Instant::now();
        Budget {
            end: now + (total - margin_for(total)),
            deadline: now + total,
        }
    }

    /// A budget of `d` from now, with the deadline at the same point (for tests and tools).
    pub fn of(d: Duration) -> Budget {
        let end = Instant::now() + d;
        Budget { end, deadline: end }
    }

    pub fn end(&self) -> Instant {
        self.end
    }

    /// Time left for work.
    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// Time left until the Lambda deadline itself (for the final answer or report).
    pub fn until_deadline(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Runs `f`, giving up when the budget ends.
    pub async fn run<F: Future>(&self, f: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.end, f).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_scales_with_the_invocation() {
        assert_eq!(
            margin_for(Duration::from_secs(900)),
            Duration::from_secs(30)
        );
        assert_eq!(margin_for(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(margin_for(Duration::from_secs(3)), Duration::from_secs(1));
        assert_eq!(
            margin_for(Duration::from_millis(800)),
            Duration::from_millis(400)
        );
        assert_eq!(margin_for(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn deadline_absolute_relative_and_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_315_263_000);
        assert_eq!(
            lambda_deadline(1_795_315_323_000, now),
            now + Duration::from_secs(60)
        );
        assert_eq!(
            lambda_deadline(600_000, now),
            now + Duration::from_secs(600)
        );
        assert_eq!(lambda_deadline(1_795_399_999_000, now), now + LAMBDA_MAX);
        assert_eq!(
            lambda_deadline(1_795_315_000_000, now),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_315_000_000)
        );
    }

    #[test]
    fn max_invocation_caps_the_deadline_and_never_extends_it() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_315_263_000);
        let cap = max_invocation(Some("20s")).unwrap();
        assert_eq!(cap, Some(Duration::from_secs(20)));
        // cargo lambda watch's 600000 (ten minutes) is cut to 20 s.
        assert_eq!(
            invocation_deadline(600_000, now, cap),
            now + Duration::from_secs(20)
        );
        // A deadline sooner than the cap stays.
        assert_eq!(
            invocation_deadline(1_795_315_268_000, now, cap),
            now + Duration::from_secs(5)
        );
        assert_eq!(
            invocation_deadline(600_000, now, None),
            now + Duration::from_secs(600)
        );
        assert_eq!(max_invocation(None).unwrap(), None);
        assert_eq!(max_invocation(Some(" ")).unwrap(), None);
        let e = max_invocation(Some("20")).unwrap_err();
        assert!(
            e.starts_with("GREENLIGHT_MAX_INVOCATION: invalid duration \"20\""),
            "{e}"
        );
        let e = max_invocation(Some("0s")).unwrap_err();
        assert_eq!(e, "GREENLIGHT_MAX_INVOCATION must be longer than zero");
    }

    #[tokio::test]
    async fn budget_cuts_off_hung_work() {
        let b = Budget::of(Duration::from_millis(50));
        assert!(b.run(std::future::pending::<()>()).await.is_none());
        assert_eq!(b.run(async { 7 }).await, Some(7));
    }
}
