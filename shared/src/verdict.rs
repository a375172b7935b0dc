//! What a check answers: pass, fail, pending, or error (the check itself could not run),
//! with the evidence behind it.

use std::time::Duration;

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
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Pending { .. } => "pending",
            Outcome::Error => "error",
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
}

impl Evaluation {
    fn new(outcome: Outcome, reason: impl Into<String>) -> Self {
        Evaluation {
            outcome,
            reason: reason.into(),
            observed: Value::Null,
            expected: Value::Null,
            state: Value::Null,
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
}
