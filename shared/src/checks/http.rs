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
use crate::template;
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
        } else if self.low.is_multiple_of(100) && self.high == self.low + 99 {
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

/// What the body of a healthy answer must hold. All given conditions must be met.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodyExpectation {
    /// The body contains this text.
    #[serde(default)]
    pub contains: Option<String>,
    /// The body matches this regular expression (Rust `regex` syntax).
    #[serde(default)]
    pub regex: Option<String>,
    /// A JSON pointer (RFC 6901, e.g. `/status`) that must exist in the JSON body.
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// With `jsonPointer`: the value it must equal, e.g. `"UP"`.
    #[serde(default)]
    pub equals: Option<Value>,
}

/// Settings of an `http` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    /// The URL to probe (http or https). May use `${cluster}`, `${service}`,
    /// `${targetRevisionId}` and the other deployment placeholders.
    #[serde(default)]
    pub url: Option<String>,
    /// More URLs, probed concurrently; the check passes when every one does.
    #[serde(default)]
    pub urls: Vec<String>,
    /// The request method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers, e.g. the test-traffic header `x-amzn-ecs-bluegreen-test` that
    /// listener rules and Service Connect route on. Values may use placeholders.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// A request body (for POST and PUT probes). May use placeholders.
    #[serde(default)]
    pub body: Option<String>,
    /// Statuses that count as healthy. Default `[200]`.
    #[serde(default = "default_status")]
    pub expect_status: Vec<StatusRange>,
    /// What a healthy answer's body must hold.
    #[serde(default)]
    pub expect_body: Option<BodyExpectation>,
    /// How long one request may take; a slower answer counts as a failure. Default `5s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Time between attempts. Default `5s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Healthy answers needed in a row (per URL) before the check passes. Default `1`.
    #[serde(default = "default_successes")]
    #[schemars(range(min = 1))]
    pub consecutive_successes: u32,
    /// Failed attempts tolerated per URL; one more fails the check. Default `2` (the third
    /// failure fails).
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,
    /// Accept any TLS certificate (self-signed test endpoints). Default `false`: TLS is
    /// verified against the system's trusted roots.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl HttpCheck {
    /// Every URL template, `url` first.
    pub fn all_urls(&self) -> Vec<&str> {
        self.url
            .iter()
            .map(String::as_str)
            .chain(self.urls.iter().map(String::as_str))
            .collect()
    }
}

pub fn parse(value: Value, at: &str) -> Result<HttpCheck, ConfigError> {
    let mut c: HttpCheck = typed(value, at)?;
    if c.url.is_none() && c.urls.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.url"),
            "is missing; set url (or urls) to the endpoint to probe, e.g. \"http://10.0.0.1:8080/health\"",
        ));
    }
    for (i, u) in c.all_urls().into_iter().enumerate() {
        let path = if c.url.is_some() && i == 0 {
            format!("{at}.url")
        } else {
            format!("{at}.urls[{}]", i - usize::from(c.url.is_some()))
        };
        template::validate(u).map_err(|e| ConfigError::new(&path, e))?;
        // Placeholders stand in for host names or path segments: check the rest.
        let sample = u.replace("${", "x").replace('}', "");
        let url = reqwest::Url::parse(&sample).map_err(|e| {
            ConfigError::new(
                &path,
                format!("is not a valid URL ({e}); write e.g. \"http://10.0.0.1:8080/health\""),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                &path,
                format!("uses {:?}; only http and https are probed", url.scheme()),
            ));
        }
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
        template::validate(value)
            .map_err(|e| ConfigError::new(format!("{at}.headers.{name}"), e))?;
    }
    if let Some(body) = &c.body {
        template::validate(body).map_err(|e| ConfigError::new(format!("{at}.body"), e))?;
    }
    if let Some(b) = &c.expect_body {
        if let Some(r) = &b.regex {
            regex::Regex::new(r).map_err(|e| {
                ConfigError::new(
                    format!("{at}.expectBody.regex"),
                    format!("is not a valid regular expression: {e}"),
                )
            })?;
        }
        if let Some(p) = &b.json_pointer
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(ConfigError::new(
                format!("{at}.expectBody.jsonPointer"),
                "must start with '/', e.g. \"/status\"",
            ));
        }
        if b.equals.is_some() && b.json_pointer.is_none() {
            return Err(ConfigError::new(
                format!("{at}.expectBody.equals"),
                "needs jsonPointer: the place in the JSON body to compare",
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

/// One URL's streak, carried between evaluations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Streak {
    attempts: u32,
    failures: u32,
    successes_in_a_row: u32,
    passed: bool,
    /// The last few answers, newest last: a status code, or a short error word.
    recent: Vec<String>,
    last_reason: String,
}

/// What one request gave.
struct Answer {
    /// The status, or why there was none.
    status: Result<u16, String>,
    latency_ms: u64,
    body: String,
}

async fn probe(
    c: &HttpCheck,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
    ctx: &CheckContext<'_>,
) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).map_err(|e| e.to_string())?;
    let client = if c.insecure_skip_verify {
        ctx.services.http_insecure()?
    } else {
        ctx.services.http()?
    };
    let mut req = client.request(method, url).timeout(c.timeout.get());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let started = Instant::now();
    let status = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = match tokio::time::timeout(c.timeout.get(), resp.bytes()).await {
                Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned(),
                _ => String::new(),
            };
            return Ok(Answer {
                status: Ok(status),
                latency_ms: crate::duration::millis(started.elapsed()),
                body,
            });
        }
        Err(e) if e.is_timeout() => Err(format!("no answer within {}", c.timeout)),
        Err(e) if e.is_builder() => return Err(format!("the request could not be built: {e}")),
        Err(e) => {
            let chain = error_chain(&e);
            if chain.contains("certificate") || chain.contains("Certificate") {
                Err(format!("TLS verification failed ({chain})"))
            } else if e.is_connect() {
                Err("connection refused or unreachable".to_string())
            } else {
                Err(format!("request failed: {chain}"))
            }
        }
    };
    Ok(Answer {
        status,
        latency_ms: crate::duration::millis(started.elapsed()),
        body: String::new(),
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

fn excerpt(body: &str) -> String {
    let mut end = body.len().min(200);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

/// Why a body does not meet the expectation, if it does not.
fn body_mismatch(b: &BodyExpectation, body: &str) -> Option<String> {
    if let Some(text) = &b.contains
        && !body.contains(text.as_str())
    {
        return Some(format!("the body does not contain {text:?}"));
    }
    if let Some(r) = &b.regex
        && let Ok(re) = regex::Regex::new(r)
        && !re.is_match(body)
    {
        return Some(format!("the body does not match /{r}/"));
    }
    if let Some(p) = &b.json_pointer {
        let Ok(json) = serde_json::from_str::<Value>(body) else {
            return Some("the body is not JSON".to_string());
        };
        match (json.pointer(p), &b.equals) {
            (None, _) => return Some(format!("the JSON body has nothing at {p}")),
            (Some(v), Some(want)) if v != want => {
                return Some(format!("{p} is {v}, expected {want}"));
            }
            _ => {}
        }
    }
    None
}

/// The outcome of one URL in one evaluation.
enum UrlVerdict {
    Passed,
    Waiting,
    Failed,
}

async fn evaluate_url(
    c: &HttpCheck,
    url: &str,
    streak: &mut Streak,
    ctx: &CheckContext<'_>,
) -> Result<(UrlVerdict, Value), String> {
    let d = ctx.deployment;
    let headers: Vec<(String, String)> = c
        .headers
        .iter()
        .map(|(k, v)| template::render(v, d).map(|v| (k.clone(), v)))
        .collect::<Result<_, _>>()?;
    let body = c
        .body
        .as_deref()
        .map(|b| template::render(b, d))
        .transpose()?;
    let answer = probe(c, url, &headers, body.as_deref(), ctx).await?;
    streak.attempts = streak.attempts.saturating_add(1);
    let expected: Vec<String> = c.expect_status.iter().map(ToString::to_string).collect();
    let expected_text = expected.join(" or ");
    let (healthy, word, why) = match &answer.status {
        Ok(code) if !c.expect_status.iter().any(|r| r.contains(*code)) => {
            (false, code.to_string(), format!("answered {code}"))
        }
        Ok(code) => match c
            .expect_body
            .as_ref()
            .and_then(|b| body_mismatch(b, &answer.body))
        {
            Some(m) => (
                false,
                format!("{code}: {m}"),
                format!("answered {code} but {m}"),
            ),
            None => (true, code.to_string(), format!("answered {code}")),
        },
        Err(e) => (false, e.clone(), format!("failed: {e}")),
    };
    streak.recent.push(word.clone());
    if streak.recent.len() > 5 {
        streak.recent = streak.recent.split_off(streak.recent.len() - 5);
    }
    if healthy {
        streak.successes_in_a_row = streak.successes_in_a_row.saturating_add(1);
    } else {
        streak.failures = streak.failures.saturating_add(1);
        streak.successes_in_a_row = 0;
    }
    let observed = json!({
        "url": url,
        "status": answer.status.as_ref().ok(),
        "error": answer.status.as_ref().err(),
        "latencyMs": answer.latency_ms,
        "bodyExcerpt": excerpt(&answer.body),
        "attempts": streak.attempts,
        "failures": streak.failures,
        "recent": streak.recent,
    });
    let verdict = if healthy && streak.successes_in_a_row >= c.consecutive_successes {
        streak.passed = true;
        streak.last_reason = format!(
            "{url} {why} in {} ms ({} healthy in a row)",
            answer.latency_ms, streak.successes_in_a_row
        );
        UrlVerdict::Passed
    } else if healthy {
        streak.last_reason = format!(
            "{url} {why}: {} of {} healthy answers in a row so far",
            streak.successes_in_a_row, c.consecutive_successes
        );
        UrlVerdict::Waiting
    } else if streak.failures > c.failure_limit {
        let in_a_row = streak
            .recent
            .iter()
            .rev()
            .take_while(|w| **w == word)
            .count() as u32;
        // failureLimit counts failures in total: say how many, out of how many attempts.
        let how = if in_a_row == streak.failures && in_a_row > 1 {
            format!("on {} of {} attempts", streak.failures, streak.attempts)
        } else {
            format!(
                "(failure {} of {} attempts; recent answers: {})",
                streak.failures,
                streak.attempts,
                streak.recent.join(", ")
            )
        };
        streak.last_reason = format!("{url} {why} {how}; expected {expected_text}");
        UrlVerdict::Failed
    } else {
        streak.last_reason = format!(
            "{url} {why} (expected {expected_text}); failure {} of {} tolerated, trying again in {}",
            streak.failures, c.failure_limit, c.interval
        );
        UrlVerdict::Waiting
    };
    Ok((verdict, observed))
}

pub async fn evaluate(c: &HttpCheck, ctx: &CheckContext<'_>) -> Evaluation {
    let mut streaks: IndexMap<String, Streak> =
        serde_json::from_value(ctx.state.clone()).unwrap_or_default();
    let urls = match c
        .all_urls()
        .into_iter()
        .map(|u| template::render(u, ctx.deployment))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(u) => u,
        Err(e) => return Evaluation::error(format!("the URL could not be filled in: {e}")),
    };
    let expected = json!({
        "status": c.expect_status.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "body": c.expect_body,
        "consecutiveSuccesses": c.consecutive_successes,
        "failureLimit": c.failure_limit,
    });
    // Probe every URL that has not passed yet, concurrently.
    let mut todo: Vec<(String, Streak)> = urls
        .iter()
        .map(|u| (u.clone(), streaks.get(u).cloned().unwrap_or_default()))
        .filter(|(_, s)| !s.passed)
        .collect();
    let results =
        futures::future::join_all(todo.iter_mut().map(|(u, s)| evaluate_url(c, u, s, ctx))).await;
    let mut observed = Vec::new();
    let (mut failed, mut waiting, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for ((url, streak), result) in todo.into_iter().zip(results) {
        match result {
            Ok((verdict, obs)) => {
                observed.push(obs);
                match verdict {
                    UrlVerdict::Failed => failed.push(streak.last_reason.clone()),
                    UrlVerdict::Waiting => waiting.push(streak.last_reason.clone()),
                    UrlVerdict::Passed => {}
                }
            }
            Err(e) => errors.push(format!("{} {url} could not be probed: {e}", c.method)),
        }
        streaks.insert(url, streak);
    }
    let state = serde_json::to_value(&streaks).unwrap_or_default();
    let observed = if observed.len() == 1 {
        observed.remove(0)
    } else {
        Value::from(observed)
    };
    let ev = if !failed.is_empty() {
        Evaluation::fail(failed.join("; "))
    } else if !errors.is_empty() {
        Evaluation::error(errors.join("; "))
    } else if !waiting.is_empty() {
        Evaluation::pending(c.interval.get(), waiting.join("; "))
    } else {
        let reasons: Vec<&str> = urls
            .iter()
            .filter_map(|u| streaks.get(u))
            .map(|s| s.last_reason.as_str())
            .collect();
        Evaluation::pass(reasons.join("; "))
    };
    ev.observed(observed).expected(expected).state(state)
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
