//! HTTP probe: asks an endpoint (typically the new revision's health URL, through the test
//! listener) until it answers with an expected status.
//!
//! One request per evaluation; the runner evaluates again every `interval` while the
//! invocation's budget allows, and carries the streak across `IN_PROGRESS` invocations.

use std::time::{Duration, Instant};

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::CheckContext;
use crate::config::{ConfigError, typed};
use crate::duration::HumanDuration;
use crate::verdict::Evaluation;

/// An expected status: a code (`200`), a class (`"2xx"`) or a range (`"200-299"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(&self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }

    fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid status {s:?}: write a code (200), a class (\"2xx\") or a range (\"200-299\")"
            )
        };
        let code = |t: &str| -> Result<u16, String> {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(bad)
        };
        let s = s.trim();
        if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            let d = class
                .parse::<u16>()
                .ok()
                .filter(|d| (1..=5).contains(d))
                .ok_or_else(bad)?;
            return Ok(StatusRange {
                low: d * 100,
                high: d * 100 + 99,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            let (low, high) = (code(a)?, code(b)?);
            if low > high {
                return Err(bad());
            }
            return Ok(StatusRange { low, high });
        }
        let c = code(s)?;
        Ok(StatusRange { low: c, high: c })
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else if self.low % 100 == 0 && self.high == self.low + 99 {
            write!(f, "{}xx", self.low / 100)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (100..=599).contains(c))
                .map(|c| StatusRange { low: c, high: c })
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "invalid status {n}: expected a code from 100 to 599"
                    ))
                }),
            Value::String(s) => StatusRange::parse(&s).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "invalid status {other}: write a code (200), a class (\"2xx\") or a range (\"200-299\")"
            ))),
        }
    }
}

impl Serialize for StatusRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.low == self.high {
            s.serialize_u16(self.low)
        } else {
            s.collect_str(self)
        }
    }
}

impl JsonSchema for StatusRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusRange".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An HTTP status code (200), a class (\"2xx\") or a range (\"200-299\").",
            "oneOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^\\s*([1-5]xx|[1-5][0-9][0-9](\\s*-\\s*[1-5][0-9][0-9])?)\\s*$"}
            ]
        })
    }
}

fn default_method() -> String {
    "GET".into()
}
fn default_status() -> Vec<StatusRange> {
    vec![StatusRange {
        low: 200,
        high: 200,
    }]
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_successes() -> u32 {
    1
}
fn default_failure_limit() -> u32 {
    2
}

/// Settings of an `http` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    /// The URL to probe (http or https).
    pub url: String,
    /// The request method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers, e.g. the test-traffic header `x-amzn-ecs-bluegreen-test` that
    /// listener rules and Service Connect route on.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Statuses that count as healthy. Default `[200]`.
    #[serde(default = "default_status")]
    pub expect_status: Vec<StatusRange>,
    /// How long one request may take; a slower answer counts as a failure. Default `5s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Time between attempts. Default `5s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Healthy answers needed in a row before the check passes. Default `1`.
    #[serde(default = "default_successes")]
    #[schemars(range(min = 1))]
    pub consecutive_successes: u32,
    /// Failed attempts tolerated; one more fails the check. Default `2` (the third failure
    /// fails).
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub fn parse(value: Value, at: &str) -> Result<HttpCheck, ConfigError> {
    let mut c: HttpCheck = typed(value, at)?;
    let url = reqwest::Url::parse(&c.url).map_err(|e| {
        ConfigError::new(
            format!("{at}.url"),
            format!("is not a valid URL ({e}); write e.g. \"http://10.0.0.1:8080/health\""),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            format!("{at}.url"),
            format!("uses {:?}; only http and https are probed", url.scheme()),
        ));
    }
    c.method = c.method.to_ascii_uppercase();
    if !METHODS.contains(&c.method.as_str()) {
        return Err(ConfigError::new(
            format!("{at}.method"),
            format!("{:?} is not one of: {}", c.method, METHODS.join(", ")),
        ));
    }
    for (name, value) in &c.headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::new(
                format!("{at}.headers.{name}"),
                "is not a valid header name",
            ));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(ConfigError::new(
                format!("{at}.headers.{name}"),
                "holds characters a header value cannot carry",
            ));
        }
    }
    if c.expect_status.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.expectStatus"),
            "is empty; list at least one status, e.g. [200]",
        ));
    }
    if c.timeout.get() < Duration::from_millis(10) {
        return Err(ConfigError::new(
            format!("{at}.timeout"),
            "must be at least 10ms",
        ));
    }
    if c.interval.get() < Duration::from_millis(100) {
        return Err(ConfigError::new(
            format!("{at}.interval"),
            "must be at least 100ms",
        ));
    }
    if c.consecutive_successes == 0 {
        return Err(ConfigError::new(
            format!("{at}.consecutiveSuccesses"),
            "must be at least 1",
        ));
    }
    Ok(c)
}

/// The streak carried between evaluations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Streak {
    attempts: u32,
    failures: u32,
    successes_in_a_row: u32,
    /// The last few answers, newest last: a status code, or a short error word.
    recent: Vec<String>,
}

/// What one request gave.
struct Answer {
    outcome: Result<u16, String>,
    latency_ms: u64,
    excerpt: String,
}

async fn probe(c: &HttpCheck, ctx: &CheckContext<'_>) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = ctx
        .services
        .http()
        .request(method, &c.url)
        .timeout(c.timeout.get());
    for (k, v) in &c.headers {
        req = req.header(k, v);
    }
    let started = Instant::now();
    let outcome = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = tokio::time::timeout(c.timeout.get(), resp.bytes()).await;
            let excerpt = match body {
                Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned(),
                _ => String::new(),
            };
            return Ok(Answer {
                outcome: Ok(status),
                latency_ms: started.elapsed().as_millis() as u64,
                excerpt,
            });
        }
        Err(e) if e.is_timeout() => Err(format!("no answer within {}", c.timeout)),
        Err(e) if e.is_connect() => Err("connection refused or unreachable".to_string()),
        Err(e) if e.is_builder() => return Err(format!("the request could not be built: {e}")),
        Err(e) => Err(format!("request failed: {}", error_chain(&e))),
    };
    Ok(Answer {
        outcome,
        latency_ms: started.elapsed().as_millis() as u64,
        excerpt: String::new(),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn times(n: u32) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

pub async fn evaluate(c: &HttpCheck, ctx: &CheckContext<'_>) -> Evaluation {
    let mut streak: Streak = serde_json::from_value(ctx.state.clone()).unwrap_or_default();
    let expected: Vec<String> = c.expect_status.iter().map(ToString::to_string).collect();
    let expected_text = expected.join(" or ");
    let answer = match probe(c, ctx).await {
        Ok(a) => a,
        Err(e) => {
            return Evaluation::error(format!("{} {} could not be probed: {e}", c.method, c.url));
        }
    };
    streak.attempts += 1;
    let healthy =
        matches!(answer.outcome, Ok(code) if c.expect_status.iter().any(|r| r.contains(code)));
    let word = match &answer.outcome {
        Ok(code) => code.to_string(),
        Err(e) => e.clone(),
    };
    streak.recent.push(word.clone());
    if streak.recent.len() > 5 {
        streak.recent.remove(0);
    }
    let observed = json!({
        "status": answer.outcome.as_ref().ok(),
        "error": answer.outcome.as_ref().err(),
        "latencyMs": answer.latency_ms,
        "bodyExcerpt": answer.excerpt,
        "attempts": streak.attempts,
        "failures": streak.failures + u32::from(!healthy),
        "recent": streak.recent,
    });
    let expected_v = json!({"status": expected, "consecutiveSuccesses": c.consecutive_successes, "failureLimit": c.failure_limit});
    let verb = if answer.outcome.is_ok() {
        "answered"
    } else {
        "failed:"
    };
    if healthy {
        streak.successes_in_a_row += 1;
        let state = serde_json::to_value(&streak).unwrap_or_default();
        if streak.successes_in_a_row >= c.consecutive_successes {
            return Evaluation::pass(format!(
                "{} answered {word} in {} ms ({} healthy in a row)",
                c.url, answer.latency_ms, streak.successes_in_a_row
            ))
            .observed(observed)
            .expected(expected_v)
            .state(state);
        }
        return Evaluation::pending(
            c.interval.get(),
            format!(
                "{} answered {word}: {} of {} healthy answers in a row so far",
                c.url, streak.successes_in_a_row, c.consecutive_successes
            ),
        )
        .observed(observed)
        .expected(expected_v)
        .state(state);
    }
    streak.failures += 1;
    streak.successes_in_a_row = 0;
    let state = serde_json::to_value(&streak).unwrap_or_default();
    if streak.failures > c.failure_limit {
        let in_a_row = streak
            .recent
            .iter()
            .rev()
            .take_while(|w| **w == word)
            .count() as u32;
        let how = if in_a_row == streak.failures && in_a_row > 1 {
            format!("{} in a row", times(in_a_row))
        } else {
            format!(
                "(failure {} of {} attempts; recent answers: {})",
                streak.failures,
                streak.attempts,
                streak.recent.join(", ")
            )
        };
        return Evaluation::fail(format!(
            "{} {verb} {word} {how}; expected {expected_text}",
            c.url
        ))
        .observed(observed)
        .expected(expected_v)
        .state(state);
    }
    Evaluation::pending(
        c.interval.get(),
        format!(
            "{} {verb} {word} (expected {expected_text}); failure {} of {} tolerated, trying again in {}",
            c.url, streak.failures, c.failure_limit, c.interval
        ),
    )
    .observed(observed)
    .expected(expected_v)
    .state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_forms() {
        assert_eq!(
            StatusRange::parse("2xx").unwrap(),
            StatusRange {
                low: 200,
                high: 299
            }
        );
        assert_eq!(
            StatusRange::parse("200-204").unwrap(),
            StatusRange {
                low: 200,
                high: 204
            }
        );
        assert_eq!(
            StatusRange::parse("418").unwrap(),
            StatusRange {
                low: 418,
                high: 418
            }
        );
        assert!(StatusRange::parse("299-200").is_err());
        assert!(StatusRange::parse("7xx").is_err());
        assert!(StatusRange::parse("600").is_err());
        assert_eq!(StatusRange::parse("3xx").unwrap().to_string(), "3xx");
    }
}
