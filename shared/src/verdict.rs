//! What a check answers: pass, fail, pending, error (the check itself could not run) or
//! unobserved, with the evidence behind it; why a call failed ([`Failure`]); and the
//! hook's status ([`HookStatus`]), which the engine decides and the edge says in the
//! caller's words.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// The four outcomes of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The release passed this check.
    Pass,
    /// The release is bad: block the deployment.
    Fail,
    /// Not decided yet: ask again after `retry_after`.
    Pending { retry_after: Duration },
    /// The check itself could not run (a missing permission, an unreachable API, a
    /// template that does not resolve). The check's `onError` policy decides.
    Error,
    /// Nothing could be observed yet, through no fault of the release: AWS throttled the
    /// calls, answered with a server error, or did not answer in time. The check stays
    /// pending and observes again with a jittered backoff until its `within`; only then
    /// does its `onError` policy decide.
    Unobserved,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Pending { .. } => "pending",
            Outcome::Error => "error",
            Outcome::Unobserved => "unobserved",
        }
    }
}

/// One evaluation of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub outcome: Outcome,
    /// A sentence a person on call can act on.
    pub reason: String,
    /// What the check saw (status codes, latencies, datapoints, …).
    pub observed: Value,
    /// What it wanted to see.
    pub expected: Value,
    /// Check-specific state carried to the next evaluation (a streak, a task ARN, …).
    pub state: Value,
    /// Unobserved: the source asked not to be asked again sooner (a rate limit's reset).
    pub not_before: Option<Duration>,
    /// Pending: the hook should answer now rather than wait within this invocation, so
    /// that what the answer carries (an approval request's notification) goes out at once.
    pub hand_back: bool,
}

impl Evaluation {
    fn new(outcome: Outcome, reason: impl Into<String>) -> Self {
        Evaluation {
            outcome,
            reason: reason.into(),
            observed: Value::Null,
            expected: Value::Null,
            state: Value::Null,
            not_before: None,
            hand_back: false,
        }
    }
    pub fn pass(reason: impl Into<String>) -> Self {
        Self::new(Outcome::Pass, reason)
    }
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::new(Outcome::Fail, reason)
    }
    pub fn pending(retry_after: Duration, reason: impl Into<String>) -> Self {
        Self::new(Outcome::Pending { retry_after }, reason)
    }
    pub fn error(reason: impl Into<String>) -> Self {
        Self::new(Outcome::Error, reason)
    }
    pub fn unobserved(reason: impl Into<String>) -> Self {
        Self::new(Outcome::Unobserved, reason)
    }
    pub fn observed(mut self, v: Value) -> Self {
        self.observed = v;
        self
    }
    pub fn expected(mut self, v: Value) -> Self {
        self.expected = v;
        self
    }
    pub fn state(mut self, v: Value) -> Self {
        self.state = v;
        self
    }
    /// Asks the hook to answer after this evaluation (see [`Evaluation::hand_back`]).
    pub fn handing_back(mut self) -> Self {
        self.hand_back = true;
        self
    }
}

/// Why a check could not look: a sentence, and whether looking again later may work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// Throttling, a server error or a timeout: nothing is known about the release yet.
    pub transient: bool,
    /// Transient: when the source said to look again (a rate limit's reset).
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure that looking again will not cure (a missing permission, a bad setting).
    pub fn error(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: false,
            retry_after: None,
        }
    }

    /// A failure that says nothing about the release (throttled, a 5xx, a timeout).
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: true,
            retry_after: None,
        }
    }

    /// A transient failure whose source said when to look again.
    pub fn throttled_for(message: impl Into<String>, retry_after: Duration) -> Failure {
        Failure {
            retry_after: Some(retry_after),
            ..Failure::transient(message)
        }
    }

    /// The same failure with its sentence rewritten (context added).
    pub fn map(self, f: impl FnOnce(String) -> String) -> Failure {
        Failure {
            message: f(self.message),
            ..self
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::error(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::error(message)
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        f.message
    }
}

impl From<Failure> for Evaluation {
    /// `unobserved` for a transient failure, `error` otherwise.
    fn from(f: Failure) -> Evaluation {
        if f.transient {
            Evaluation {
                not_before: f.retry_after,
                ..Evaluation::unobserved(f.message)
            }
        } else {
            Evaluation::error(f.message)
        }
    }
}

/// The three answers ECS understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    Succeeded,
    Failed,
    InProgress,
}

impl HookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Succeeded => "SUCCEEDED",
            HookStatus::Failed => "FAILED",
            HookStatus::InProgress => "IN_PROGRESS",
        }
    }
}
