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

use crate::checks::{Check, CheckContext, Timing};
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
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

/// A size in bytes: a whole number (`65536`) or a number with a unit, `B`, `KiB` or `MiB`
/// (`"64KiB"`, `"1 MiB"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;

    /// Bytes, as a `usize` for buffers (saturating on targets where it is narrower).
    pub fn bytes(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid size {s:?}: write a number of bytes (65536) or a number with a unit, B, KiB or MiB (\"64KiB\", \"1MiB\")"
            )
        };
        let t = s.trim();
        let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = t[..digits].parse().map_err(|_| bad())?;
        let unit = match t[digits..].trim() {
            "" | "B" => 1,
            "KiB" => Self::KIB,
            "MiB" => Self::MIB,
            _ => return Err(bad()),
        };
        n.checked_mul(unit).map(ByteSize).ok_or_else(bad)
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        if b >= Self::MIB && b.is_multiple_of(Self::MIB) {
            write!(f, "{} MiB", b / Self::MIB)
        } else if b >= Self::KIB && b.is_multiple_of(Self::KIB) {
            write!(f, "{} KiB", b / Self::KIB)
        } else if b == 1 {
            f.write_str("1 byte")
        } else {
            write!(f, "{b} bytes")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64().map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {n}: expected a whole number of bytes"
                ))
            }),
            Value::String(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "invalid size {other}: write a number of bytes (65536) or a number with a unit (\"64KiB\", \"1MiB\")"
            ))),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 > 0 && self.0.is_multiple_of(Self::KIB) {
            s.collect_str(&self.to_string().replace(' ', ""))
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a number of bytes (65536) or a number with a unit, B, KiB or MiB (\"64KiB\", \"1MiB\").",
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_BODY_SIZE.0},
                {"type": "string", "pattern": "^\\s*[0-9]+\\s*(B|KiB|MiB)?\\s*$"}
            ]
        })
    }
}

/// The largest `maxBodySize`: bodies are held in memory, several URLs are probed at once,
/// and the function has 256 MB.
pub const MAX_BODY_SIZE: ByteSize = ByteSize(16 * ByteSize::MIB);
/// How much of a body is read when no `expectBody` needs it: the excerpt in the record.
const EXCERPT_BYTES: usize = 200;

fn default_max_body_size() -> ByteSize {
    ByteSize(ByteSize::MIB)
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
    /// How much of an answer's body `expectBody` may read: more is not read, and the
    /// body counts as cut there. Default `"1MiB"`, at most `"16MiB"`.
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ByteSize,
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

/// Checks a URL template: its placeholders, and the rest as an http(s) URL.
pub(crate) fn validate_url(u: &str, path: &str) -> Result<(), ConfigError> {
    template::validate(u).map_err(|e| ConfigError::new(path, e))?;
    // Placeholders stand in for host names or path segments: check the rest.
    let sample = u.replace("${", "x").replace('}', "");
    let url = reqwest::Url::parse(&sample).map_err(|e| {
        ConfigError::new(
            path,
            format!("is not a valid URL ({e}); write e.g. \"http://10.0.0.1:8080/health\""),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            path,
            format!("uses {:?}; only http and https are probed", url.scheme()),
        ));
    }
    Ok(())
}

/// Checks a request's method (upper-cased in place), headers and body templates, and what
/// its answer must be.
pub(crate) fn validate_request(
    method: &mut String,
    headers: &IndexMap<String, String>,
    body: Option<&str>,
    expect_status: &[StatusRange],
    expect_body: Option<&BodyExpectation>,
    at: &str,
) -> Result<(), ConfigError> {
    *method = method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(ConfigError::new(
            format!("{at}.method"),
            format!("{method:?} is not one of: {}", METHODS.join(", ")),
        ));
    }
    for (name, value) in headers {
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
    if let Some(body) = body {
        template::validate(body).map_err(|e| ConfigError::new(format!("{at}.body"), e))?;
    }
    if let Some(b) = expect_body {
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
    if expect_status.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.expectStatus"),
            "is empty; list at least one status, e.g. [200]",
        ));
    }
    Ok(())
}

impl Check for HttpCheck {
    const TYPE: &'static str = "http";
    const DESCRIPTION: &'static str =
        "Probes an HTTP endpoint (the green revision's health URL) until it answers as expected.";
    type State = IndexMap<String, Streak>;

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let c = self;
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
            validate_url(u, &path)?;
        }
        validate_request(
            &mut c.method,
            &c.headers,
            c.body.as_deref(),
            &c.expect_status,
            c.expect_body.as_ref(),
            at,
        )?;
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
        if c.max_body_size.0 == 0 || c.max_body_size > MAX_BODY_SIZE {
            return Err(ConfigError::new(
                format!("{at}.maxBodySize"),
                format!(
                    "is {}; it must be from 1 byte to {MAX_BODY_SIZE} (bodies are held in memory)",
                    c.max_body_size
                ),
            ));
        }
        if c.consecutive_successes == 0 {
            return Err(ConfigError::new(
                format!("{at}.consecutiveSuccesses"),
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval)
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, state: Self::State) -> Evaluation {
        let c = self;
        let mut streaks = state;
        let urls = match c
            .all_urls()
            .into_iter()
            .map(|u| template::render(u, ctx.deployment))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(u) => u,
            Err(e) => return Evaluation::error(format!("the URL could not be filled in: {e}")),
        };
        let mut expected = json!({
            "status": c.expect_status.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "body": c.expect_body,
            "consecutiveSuccesses": c.consecutive_successes,
            "failureLimit": c.failure_limit,
        });
        if c.expect_body.as_ref().is_some_and(needs_body) {
            expected["maxBodySize"] = json!(c.max_body_size);
        }
        // Probe every URL that has not passed yet, concurrently.
        let mut todo: Vec<(String, Streak)> = urls
            .iter()
            .map(|u| (u.clone(), streaks.get(u).cloned().unwrap_or_default()))
            .filter(|(_, s)| !s.passed)
            .collect();
        let results =
            futures::future::join_all(todo.iter_mut().map(|(u, s)| evaluate_url(c, u, s, ctx)))
                .await;
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
}

/// One URL's streak, carried between evaluations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Streak {
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
    body: Body,
}

/// What was read of a body: never more than a limit.
#[derive(Default)]
pub(crate) struct Body {
    pub(crate) text: String,
    /// The body went on past the limit, which was not read.
    pub(crate) cut: bool,
    /// Reading stopped on an error (a timeout, a reset connection) before the body ended.
    pub(crate) error: Option<String>,
}

/// Whether a body expectation has anything to judge, and so needs more than the excerpt.
pub(crate) fn needs_body(b: &BodyExpectation) -> bool {
    b.contains.is_some() || b.regex.is_some() || b.json_pointer.is_some()
}

/// Reads `resp`'s body chunk by chunk, keeping at most `limit` bytes: `cut` when more
/// followed. Stops early once `enough` says what was read settles the question; `enough`
/// gets the bytes so far and where the newest chunk starts.
pub(crate) async fn read_body(
    resp: &mut reqwest::Response,
    limit: usize,
    timeout: HumanDuration,
    enough: impl Fn(&[u8], usize) -> bool,
) -> Body {
    let mut buf: Vec<u8> = Vec::new();
    let mut body = Body::default();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - buf.len();
                let take = chunk.len().min(room);
                if buf.len() + take > buf.capacity() {
                    // Grow by doubling, but never past the limit.
                    let target = (buf.capacity() * 2).max(buf.len() + take).min(limit);
                    buf.reserve_exact(target - buf.len());
                }
                let from = buf.len();
                buf.extend_from_slice(&chunk[..take]);
                if take < chunk.len() {
                    body.cut = true;
                    break;
                }
                if enough(&buf, from) {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                body.error = Some(format!("the body did not arrive within {timeout}"));
                break;
            }
            Err(e) => {
                body.error = Some(format!("reading the body failed: {}", crate::text::error_chain(&e)));
                break;
            }
        }
    }
    body.text = match String::from_utf8(buf) {
        Ok(t) => t,
        Err(e) => {
            let mut bytes = e.into_bytes();
            // A cut can split a character: drop its first bytes rather than show U+FFFD.
            if let Err(u) = std::str::from_utf8(&bytes)
                && u.error_len().is_none()
            {
                bytes.truncate(u.valid_up_to());
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    body
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
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            // Only what the expectation needs is read: the excerpt for the record when
            // the body is not judged, at most `maxBodySize` when it is, and for `contains`
            // alone, only until the text shows up.
            let expectation = c.expect_body.as_ref().filter(|b| needs_body(b));
            let limit = match expectation {
                Some(_) => c.max_body_size.bytes(),
                None => EXCERPT_BYTES,
            };
            let needle = expectation
                .filter(|b| b.regex.is_none() && b.json_pointer.is_none())
                .and_then(|b| b.contains.as_deref())
                .map(str::as_bytes);
            let enough = |buf: &[u8], from: usize| match needle {
                Some(n) if !n.is_empty() => buf[from.saturating_sub(n.len() - 1)..]
                    .windows(n.len())
                    .any(|w| w == n),
                _ => false,
            };
            let body = match tokio::time::timeout(
                c.timeout.get(),
                read_body(&mut resp, limit, c.timeout, enough),
            )
            .await
            {
                Ok(b) => b,
                Err(_) => Body {
                    error: Some(format!("the body did not arrive within {}", c.timeout)),
                    ..Body::default()
                },
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
            let chain = crate::text::error_chain(&e);
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
        body: Body::default(),
    })
}

fn excerpt(body: &str) -> String {
    let mut end = body.len().min(EXCERPT_BYTES);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

/// `s`, clipped to about 200 bytes (a body's value quoted in a reason).
fn clip(s: &str) -> String {
    if s.len() <= EXCERPT_BYTES {
        return s.to_string();
    }
    format!("{}…", excerpt(s))
}

/// Why a body does not meet the expectation, if it does not. A cut body (`limit` reached)
/// is judged on what was read, and only where that settles it: text found, or a regex
/// match that ends before the cut.
pub(crate) fn body_mismatch(b: &BodyExpectation, body: &Body, limit: ByteSize) -> Option<String> {
    if let Some(e) = &body.error {
        return Some(e.clone());
    }
    let text = body.text.as_str();
    let cut = |m: String| {
        if body.cut {
            format!("{m} in its first {limit} (the body was cut at {limit}, maxBodySize)")
        } else {
            m
        }
    };
    if let Some(want) = &b.contains
        && !text.contains(want.as_str())
    {
        return Some(cut(format!("the body does not contain {:?}", clip(want))));
    }
    if let Some(r) = &b.regex
        && let Ok(re) = regex::Regex::new(r)
    {
        // On a cut body a match must end before the cut: `$` or `\b` at the cut
        // could fail on the rest.
        let matched = if body.cut {
            re.shortest_match(text).is_some_and(|end| end < text.len())
        } else {
            re.is_match(text)
        };
        if !matched {
            return Some(cut(format!("the body does not match /{}/", clip(r))));
        }
    }
    if let Some(p) = &b.json_pointer {
        if body.cut {
            return Some(format!(
                "the body was cut at {limit} (maxBodySize) before its JSON ended, so {p} cannot be read"
            ));
        }
        let Ok(json) = serde_json::from_str::<Value>(text) else {
            return Some("the body is not JSON".to_string());
        };
        match (json.pointer(p), &b.equals) {
            (None, _) => return Some(format!("the JSON body has nothing at {p}")),
            (Some(v), Some(want)) if v != want => {
                return Some(format!(
                    "{p} is {}, expected {}",
                    clip(&v.to_string()),
                    clip(&want.to_string())
                ));
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
            .filter(|b| needs_body(b))
            .and_then(|b| body_mismatch(b, &answer.body, c.max_body_size))
        {
            Some(m) => (
                false,
                format!("{code}: {m}"),
                format!("answered {code} but {m}"),
            ),
            None if answer.body.cut && c.expect_body.as_ref().is_some_and(needs_body) => (
                true,
                code.to_string(),
                format!(
                    "answered {code} (the body was cut at {}, maxBodySize; what was read settles it)",
                    c.max_body_size
                ),
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
    let mut observed = json!({
        "url": url,
        "status": answer.status.as_ref().ok(),
        "error": answer.status.as_ref().err(),
        "latencyMs": answer.latency_ms,
        "bodyExcerpt": excerpt(&answer.body.text),
        "attempts": streak.attempts,
        "failures": streak.failures,
        "recent": streak.recent,
    });
    if answer.body.cut && c.expect_body.as_ref().is_some_and(needs_body) {
        observed["bodyCutAt"] = json!(c.max_body_size.0);
    }
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

    #[test]
    fn size_forms() {
        assert_eq!(ByteSize::parse("1MiB").unwrap(), ByteSize(1 << 20));
        assert_eq!(ByteSize::parse(" 64 KiB ").unwrap(), ByteSize(64 << 10));
        assert_eq!(ByteSize::parse("1000B").unwrap(), ByteSize(1000));
        assert_eq!(ByteSize::parse("1000").unwrap(), ByteSize(1000));
        for bad in [
            "",
            "MiB",
            "1GB",
            "1 mb",
            "-1",
            "1.5MiB",
            "99999999999999999999MiB",
        ] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ByteSize(1 << 20).to_string(), "1 MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536 bytes");
        assert_eq!(ByteSize(2048).to_string(), "2 KiB");
        assert_eq!(
            serde_json::to_value(ByteSize(1 << 20)).unwrap(),
            json!("1MiB")
        );
        assert_eq!(serde_json::to_value(ByteSize(1000)).unwrap(), json!(1000));
        let back: ByteSize = serde_json::from_value(json!("1MiB")).unwrap();
        assert_eq!(back, ByteSize(1 << 20));
    }

    fn body(text: &str, cut: bool) -> Body {
        Body {
            text: text.into(),
            cut,
            error: None,
        }
    }

    #[test]
    fn a_cut_body_is_judged_only_where_what_was_read_settles_it() {
        let limit = ByteSize(8);
        let expect = |contains: Option<&str>, regex: Option<&str>| BodyExpectation {
            contains: contains.map(Into::into),
            regex: regex.map(Into::into),
            ..BodyExpectation::default()
        };
        // Found in what was read: found in the body.
        assert_eq!(
            body_mismatch(&expect(Some("UP"), None), &body("xxUPxxxx", true), limit),
            None
        );
        // A regex match that ends at the cut might not hold for the whole body.
        assert!(body_mismatch(&expect(None, Some("x$")), &body("xxxxxxxx", true), limit).is_some());
        assert!(
            body_mismatch(&expect(None, Some(r"UP\b")), &body("xxxxxxUP", true), limit).is_some()
        );
        assert_eq!(
            body_mismatch(&expect(None, Some(r"UP\b")), &body("xxUP xxx", true), limit),
            None
        );
        assert_eq!(
            body_mismatch(&expect(None, Some("x$")), &body("xxxxxxxx", false), limit),
            None
        );
        let m = body_mismatch(&expect(Some("DOWN"), None), &body("xxxxxxxx", true), limit).unwrap();
        assert_eq!(
            m,
            "the body does not contain \"DOWN\" in its first 8 bytes (the body was cut at 8 bytes, maxBodySize)"
        );
    }

    #[test]
    fn a_value_quoted_from_the_body_is_clipped() {
        let b = BodyExpectation {
            json_pointer: Some("/status".into()),
            equals: Some(json!("UP")),
            ..BodyExpectation::default()
        };
        let long = json!({"status": "D".repeat(100_000)}).to_string();
        let m = body_mismatch(&b, &body(&long, false), ByteSize(1 << 20)).unwrap();
        assert!(m.len() < 300, "{}", m.len());
        assert!(
            m.starts_with("/status is \"DDD") && m.ends_with("…, expected \"UP\""),
            "{m}"
        );
    }
}
