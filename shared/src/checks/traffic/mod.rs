//! `traffic`: evidence on demand. Sends synthetic requests to the new revision through the
//! test route (the test listener, or Service Connect's test header), at a bounded rate and
//! concurrency, for a number of requests or a duration, and judges what it saw: the error
//! rate, latency percentiles and, optionally, the same requests through the production
//! route judged with the canary judge ("no worse than production").
//!
//! - A run longer than an invocation continues in the next one: its counters, a latency
//!   histogram and a sample of latencies are carried in the check's state.
//! - Safe by construction: rate, concurrency, body sizes and every request's time are
//!   bounded; requests stop starting before the invocation's budget ends; only idempotent
//!   methods unless others are allowed explicitly; the production route is used only when
//!   `compareWith` names it.

mod histogram;

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::histogram::Histogram;
use crate::checks::http::{
    BodyExpectation, ByteSize, StatusRange, body_mismatch, needs_body, read_body, validate_request,
    validate_url,
};
use crate::checks::{Check, CheckContext, Timing};
use crate::duration::{HumanDuration, now_ms};
use crate::judge::{
    ErrorRateConfig, Labels, RequestCounts, SeriesConfig, Verdict, judge_error_rate, judge_series,
};
use crate::schema::ConfigError;
use crate::template;
use crate::verdict::Evaluation;

const MAX_RATE: f64 = 1000.0;
const MAX_CONCURRENCY: u32 = 64;
const MAX_REQUESTS: u32 = 100_000;
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_BODY: ByteSize = ByteSize(ByteSize::MIB);
const MAX_SCENARIOS: usize = 10;
/// Latencies kept per route for the comparison with production, across invocations.
const SAMPLE: usize = 500;
/// Bad answers kept per scenario, to show.
const BAD_SHOWN: usize = 3;
/// Methods sent without `allowUnsafeMethods`.
const SAFE: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

fn default_concurrency() -> u32 {
    8
}
fn default_max_error_rate() -> f64 {
    1.0
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_max_body_size() -> ByteSize {
    ByteSize(64 * ByteSize::KIB)
}
fn default_method() -> String {
    "GET".into()
}
fn default_status() -> Vec<StatusRange> {
    vec![StatusRange {
        low: 200,
        high: 299,
    }]
}
fn default_weight() -> u32 {
    1
}

/// One kind of request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// `GET` (default), `HEAD` or `OPTIONS`; others need `allowUnsafeMethods`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The new revision through the test route, e.g.
    /// `http://internal-shop-123.us-west-2.elb.amazonaws.com:8080/api/cart`. May use
    /// placeholders.
    pub url: String,
    /// Request headers, e.g. `{"x-amzn-ecs-bluegreen-test": "1"}` for a test-header rule
    /// or Service Connect. Values may use placeholders.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// A request body. May use placeholders.
    #[serde(default)]
    pub body: Option<String>,
    /// Statuses that count as a good answer. Default `["2xx"]`.
    #[serde(default = "default_status")]
    pub expect_status: Vec<StatusRange>,
    /// What a good answer's body must hold, as for the `http` check.
    #[serde(default)]
    pub expect_body: Option<BodyExpectation>,
    /// Its share of the requests, against the other scenarios'. Default `1`.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// Latency limits; each one given must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<HumanDuration>,
}

/// The production route, for a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Production {
    /// The production route's scheme, host and port, e.g. `https://shop.example.com`: each
    /// scenario's request is also sent there, same path and query, alternately with the
    /// new revision's.
    pub base_url: String,
    /// The headers for production instead of the scenarios'. Default: the scenarios'
    /// without `x-amzn-ecs-bluegreen-test`.
    #[serde(default)]
    pub headers: Option<IndexMap<String, String>>,
    /// The latency judge (Mann-Whitney U, Hodges-Lehmann interval): `direction`,
    /// `tolerance`, `confidence`, `allowedIncrease`, `minSamples`.
    #[serde(default)]
    pub latency: Option<SeriesConfig>,
    /// The error-rate judge (two-proportion test): `minRequests`, `tolerance`,
    /// `confidence`.
    #[serde(default)]
    pub errors: Option<ErrorRateConfig>,
}

/// Settings of a `traffic` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficCheck {
    /// The requests to send, by name, taken in turn by weight.
    pub scenarios: IndexMap<String, Scenario>,
    /// Requests per second, all scenarios together, evenly paced (at most 1000). Default:
    /// as many as `concurrency` allows.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Requests in flight at most, 1 to 64. Default `8`.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// The run: this many requests to the new revision (at most 100,000). Default `200`
    /// when `duration` is not given either.
    #[serde(default)]
    pub requests: Option<u32>,
    /// Or: send for this long (at most `1h`), and until `minRequests` at least.
    #[serde(default)]
    pub duration: Option<HumanDuration>,
    /// Requests needed before any verdict. Default `50`, or the run's `requests` when fewer.
    #[serde(default)]
    pub min_requests: Option<u32>,
    /// The largest error rate, in percent. Default `1`.
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Latency limits: `p50`, `p90`, `p99`, `max`.
    #[serde(default)]
    pub latency: LatencyLimits,
    /// Send the same requests through the production route too, and judge the new
    /// revision against it.
    #[serde(default)]
    pub compare_with: Option<Production>,
    /// One request's limit, answer included; a slower one is an error. Default `5s`, at
    /// most `60s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// How much of an answer is read. Default `"64KiB"`, at most `"1MiB"`.
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ByteSize,
    /// Allow methods other than GET, HEAD and OPTIONS: synthetic requests that change data.
    #[serde(default)]
    pub allow_unsafe_methods: bool,
    /// Accept any TLS certificate (self-signed test listeners). Default `false`.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One route's tally, carried across invocations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    pub sent: u32,
    pub errors: u32,
    pub latency: Histogram,
    /// A uniform sample of the latencies (ms), for the comparison.
    pub sample: Vec<f64>,
}

impl Side {
    fn add(&mut self, ok: bool, ms: f64) {
        self.sent = self.sent.saturating_add(1);
        if !ok {
            self.errors = self.errors.saturating_add(1);
        }
        // Reservoir sampling: every latency so far equally likely to be kept.
        if self.sample.len() < SAMPLE {
            self.sample.push(ms);
        } else {
            let j = fastrand::usize(..self.sent as usize);
            if j < SAMPLE {
                self.sample[j] = ms;
            }
        }
    }

    fn error_rate(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * f64::from(self.errors) / f64::from(self.sent)
        }
    }
}

/// Bad answers of one scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bad {
    pub count: u32,
    pub examples: Vec<String>,
}

/// A run, carried across invocations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub started_at_ms: u64,
    pub new: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<Side>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub bad: IndexMap<String, Bad>,
}

impl TrafficCheck {
    fn min_requests(&self) -> u32 {
        self.min_requests
            .unwrap_or(50)
            .min(self.target().unwrap_or(MAX_REQUESTS))
    }

    fn target(&self) -> Option<u32> {
        match (self.requests, self.duration) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(200),
        }
    }
}

impl Check for TrafficCheck {
    const TYPE: &'static str = "traffic";
    const DESCRIPTION: &'static str = "Sends synthetic requests to the new revision through the test route and judges the error rate and latency percentiles, optionally against production with the canary judge.";
    type State = Run;

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        if self.scenarios.is_empty() || self.scenarios.len() > MAX_SCENARIOS {
            return Err(ConfigError::new(
                format!("{at}.scenarios"),
                format!("needs 1 to {MAX_SCENARIOS} scenarios, e.g. {{\"cart\": {{\"url\": \"http://test-listener:8080/api/cart\"}}}}"),
            ));
        }
        for (name, s) in self.scenarios.iter_mut() {
            let at = format!("{at}.scenarios.{name}");
            validate_url(&s.url, &format!("{at}.url"))?;
            validate_request(
                &mut s.method,
                &s.headers,
                s.body.as_deref(),
                &s.expect_status,
                s.expect_body.as_ref(),
                &at,
            )?;
            if !self.allow_unsafe_methods && !SAFE.contains(&s.method.as_str()) {
                return Err(ConfigError::new(
                    format!("{at}.method"),
                    format!(
                        "{} may change data; synthetic traffic sends GET, HEAD or OPTIONS unless allowUnsafeMethods is true",
                        s.method
                    ),
                ));
            }
            if !(1..=100).contains(&s.weight) {
                return Err(ConfigError::new(
                    format!("{at}.weight"),
                    "must be from 1 to 100",
                ));
            }
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
        {
            return Err(ConfigError::new(
                format!("{at}.rate"),
                format!("must be above 0 and at most {MAX_RATE} requests per second"),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConfigError::new(
                format!("{at}.concurrency"),
                format!("must be from 1 to {MAX_CONCURRENCY}"),
            ));
        }
        if let Some(n) = self.requests
            && !(1..=MAX_REQUESTS).contains(&n)
        {
            return Err(ConfigError::new(
                format!("{at}.requests"),
                format!("must be from 1 to {MAX_REQUESTS}"),
            ));
        }
        if let Some(d) = self.duration
            && (d.get() < Duration::from_secs(1) || d.get() > MAX_DURATION)
        {
            return Err(ConfigError::new(
                format!("{at}.duration"),
                "must be from 1s to 1h",
            ));
        }
        if self.requests.is_some() && self.duration.is_some() {
            return Err(ConfigError::new(
                at,
                "has both requests and duration; give one",
            ));
        }
        if let Some(min) = self.min_requests
            && (min == 0 || self.target().is_some_and(|n| n < min))
        {
            return Err(ConfigError::new(
                format!("{at}.minRequests"),
                format!(
                    "must be from 1 to the run's requests ({})",
                    self.target().unwrap_or(MAX_REQUESTS)
                ),
            ));
        }
        if !(self.max_error_rate.is_finite() && (0.0..=100.0).contains(&self.max_error_rate)) {
            return Err(ConfigError::new(
                format!("{at}.maxErrorRate"),
                "must be a percentage from 0 to 100",
            ));
        }
        if self.timeout.get() < Duration::from_millis(10) || self.timeout.get() > MAX_TIMEOUT {
            return Err(ConfigError::new(
                format!("{at}.timeout"),
                "must be from 10ms to 60s",
            ));
        }
        if self.max_body_size.0 == 0 || self.max_body_size > MAX_BODY {
            return Err(ConfigError::new(
                format!("{at}.maxBodySize"),
                format!("must be from 1 byte to {MAX_BODY}"),
            ));
        }
        if let Some(p) = &self.compare_with {
            let url = reqwest::Url::parse(&p.base_url).map_err(|e| {
                ConfigError::new(
                    format!("{at}.compareWith.baseUrl"),
                    format!("is not a URL: {e}"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https")
                || url.path() != "/"
                || url.query().is_some()
            {
                return Err(ConfigError::new(
                    format!("{at}.compareWith.baseUrl"),
                    "must be an http(s) scheme, host and port only, e.g. https://shop.example.com",
                ));
            }
            if let Some(s) = &p.latency {
                s.validate().map_err(|e| {
                    ConfigError::new(format!("{at}.compareWith.latency"), e.to_string())
                })?;
            }
            if let Some(e) = &p.errors {
                e.validate().map_err(|err| {
                    ConfigError::new(format!("{at}.compareWith.errors"), err.to_string())
                })?;
            }
        }
        Ok(())
    }

    fn timing(&self) -> Timing {
        Timing::every(HumanDuration::secs(1))
    }

    fn default_within(&self) -> Option<Duration> {
        self.duration
            .map(|d| d.get().saturating_mul(2) + Duration::from_secs(60))
    }

    fn check_within(&self, within: HumanDuration, at: &str) -> Result<(), ConfigError> {
        match self.duration {
            Some(d) if within.get() <= d.get() => Err(ConfigError::new(
                format!("{at}.within"),
                format!("is {within}, not longer than the run's duration ({d}); set within to more than duration"),
            )),
            _ => Ok(()),
        }
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, state: Self::State) -> Evaluation {
        let mut run = state;
        if run.started_at_ms == 0 {
            run.started_at_ms = now_ms();
        }
        if self.compare_with.is_some() && run.production.is_none() {
            run.production = Some(Side::default());
        }
        let requests = match prepare(self, ctx) {
            Ok(r) => r,
            Err(e) => return Evaluation::error(e).state(json!(run)),
        };
        let client = match if self.insecure_skip_verify {
            ctx.services.http_insecure()
        } else {
            ctx.services.http()
        } {
            Ok(c) => c.clone(),
            Err(e) => return Evaluation::error(e).state(json!(run)),
        };
        let elapsed = Duration::from_millis(now_ms().saturating_sub(run.started_at_ms));
        let to_send = match (self.target(), self.duration) {
            (Some(n), _) => n.saturating_sub(run.new.sent),
            (None, Some(d)) if elapsed < d.get() => MAX_REQUESTS.saturating_sub(run.new.sent),
            (None, _) => self.min_requests().saturating_sub(run.new.sent),
        };
        // Requests start only while each can finish before the budget ends, and, for a
        // duration, while the run lasts.
        let mut stop = ctx.budget.end().checked_sub(self.timeout.get() + Duration::from_millis(250));
        if let (None, Some(d)) = (self.target(), self.duration)
            && elapsed < d.get()
        {
            let end = Instant::now() + (d.get() - elapsed);
            stop = stop.map(|s| s.min(end));
        }
        if let Some(stop) = stop.filter(|s| *s > Instant::now())
            && to_send > 0
        {
            let shots = send(self, &client, &requests, to_send, stop, ctx.budget.end()).await;
            let (mut new_ms, mut production_ms) = (Vec::new(), Vec::new());
            for shot in shots {
                let (side, latencies) = match shot.production {
                    true => (run.production.get_or_insert_default(), &mut production_ms),
                    false => (&mut run.new, &mut new_ms),
                };
                side.add(shot.bad.is_none(), shot.ms);
                latencies.push(shot.ms);
                if let Some(why) = shot.bad {
                    let name = requests.scenarios[shot.scenario].name.clone();
                    let bad = run.bad.entry(name).or_default();
                    bad.count = bad.count.saturating_add(1);
                    let why = crate::text::clip(&why, 200);
                    if bad.examples.len() < BAD_SHOWN && !bad.examples.contains(&why) {
                        bad.examples.push(why);
                    }
                }
            }
            run.new.latency.record_all(&new_ms);
            if let Some(p) = run.production.as_mut() {
                p.latency.record_all(&production_ms);
            }
        }
        judge(self, run)
    }
}

/// A scenario with its placeholders filled.
struct Ready {
    name: String,
    method: reqwest::Method,
    url: String,
    production_url: Option<String>,
    headers: Vec<(String, String)>,
    production_headers: Vec<(String, String)>,
    body: Option<String>,
    expect_status: Vec<StatusRange>,
    expect_body: Option<BodyExpectation>,
}

struct Requests {
    scenarios: Vec<Ready>,
    /// Scenario indexes, each repeated by its weight: request `i` is `order[i % len]`.
    order: Vec<usize>,
}

fn prepare(c: &TrafficCheck, ctx: &CheckContext<'_>) -> Result<Requests, String> {
    let d = ctx.deployment;
    let mut scenarios = Vec::new();
    let mut order = Vec::new();
    for (i, (name, s)) in c.scenarios.iter().enumerate() {
        let url = template::render(&s.url, d)?;
        let headers: Vec<(String, String)> = s
            .headers
            .iter()
            .map(|(k, v)| template::render(v, d).map(|v| (k.clone(), v)))
            .collect::<Result<_, _>>()?;
        let (production_url, production_headers) = match &c.compare_with {
            None => (None, Vec::new()),
            Some(p) => {
                let production = format!("{}{}", p.base_url.trim_end_matches('/'), path_of(&url));
                let headers = match &p.headers {
                    Some(h) => h
                        .iter()
                        .map(|(k, v)| template::render(v, d).map(|v| (k.clone(), v)))
                        .collect::<Result<_, _>>()?,
                    None => headers
                        .iter()
                        .filter(|(k, _)| !k.eq_ignore_ascii_case("x-amzn-ecs-bluegreen-test"))
                        .cloned()
                        .collect(),
                };
                (Some(production), headers)
            }
        };
        scenarios.push(Ready {
            name: name.clone(),
            method: reqwest::Method::from_bytes(s.method.as_bytes()).map_err(|e| e.to_string())?,
            url,
            production_url,
            headers,
            production_headers,
            body: s.body.as_deref().map(|b| template::render(b, d)).transpose()?,
            expect_status: s.expect_status.clone(),
            expect_body: s.expect_body.clone().filter(needs_body),
        });
        order.extend(std::iter::repeat_n(i, s.weight as usize));
    }
    Ok(Requests { scenarios, order })
}

/// One request's outcome.
struct Shot {
    scenario: usize,
    production: bool,
    ms: f64,
    /// Why the answer was bad, when it was.
    bad: Option<String>,
}

/// Sends up to `count` requests to the new revision (and as many to production when
/// comparing, alternately), starting none after `stop`, and waits for those in flight
/// until `end`.
async fn send(
    c: &TrafficCheck,
    client: &reqwest::Client,
    requests: &Requests,
    count: u32,
    stop: Instant,
    end: Instant,
) -> Vec<Shot> {
    let per_slot = if c.compare_with.is_some() { 2 } else { 1 };
    let slots = u64::from(count) * per_slot;
    let gate = Arc::new(Semaphore::new(c.concurrency as usize));
    let mut running = JoinSet::new();
    let mut shots = Vec::with_capacity(slots.min(1 << 16) as usize);
    let started = Instant::now();
    let timeout = c.timeout.get();
    let limit = c.max_body_size;
    for i in 0..slots {
        if let Some(rate) = c.rate {
            let at = started + Duration::from_secs_f64(i as f64 / rate);
            if at >= stop {
                break;
            }
            tokio::time::sleep_until(at).await;
        }
        let permit = tokio::select! {
            p = gate.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = tokio::time::sleep_until(stop) => break,
        };
        if Instant::now() >= stop {
            break;
        }
        while let Some(Ok(shot)) = running.try_join_next() {
            shots.push(shot);
        }
        let production = per_slot == 2 && i % 2 == 1;
        let scenario = requests.order[(i / per_slot) as usize % requests.order.len()];
        let r = &requests.scenarios[scenario];
        let (url, headers) = match (&r.production_url, production) {
            (Some(u), true) => (u.clone(), r.production_headers.clone()),
            _ => (r.url.clone(), r.headers.clone()),
        };
        let mut req = client
            .request(r.method.clone(), &url)
            .timeout(timeout);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        if let Some(b) = &r.body {
            req = req.body(b.clone());
        }
        let expect_status = r.expect_status.clone();
        let expect_body = r.expect_body.clone();
        let what = format!("{} {}", r.method, path_of(&url));
        running.spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let bad = match tokio::time::timeout(timeout, exchange(req, &expect_status, expect_body.as_ref(), limit, timeout)).await {
                Ok(bad) => bad,
                Err(_) => Some(format!("no answer within {}", humantime::format_duration(timeout))),
            };
            Shot {
                scenario,
                production,
                ms: t0.elapsed().as_secs_f64() * 1000.0,
                bad: bad.map(|b| format!("{what}: {b}")),
            }
        });
    }
    while let Ok(Some(joined)) = tokio::time::timeout_at(end, running.join_next()).await {
        if let Ok(shot) = joined {
            shots.push(shot);
        }
    }
    running.abort_all();
    shots
}

/// The path and query of a URL, for messages.
fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..]))
        .unwrap_or("/")
}

/// One request and its answer, read up to `limit`: why it was bad, or `None`.
async fn exchange(
    req: reqwest::RequestBuilder,
    expect_status: &[StatusRange],
    expect_body: Option<&BodyExpectation>,
    limit: ByteSize,
    timeout: Duration,
) -> Option<String> {
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Some(format!("no answer within {}", humantime::format_duration(timeout)));
        }
        Err(e) if e.is_connect() => return Some("connection refused or unreachable".into()),
        Err(e) => return Some(format!("request failed: {}", crate::text::error_chain(&e.without_url()))),
    };
    let status = resp.status().as_u16();
    let body = read_body(&mut resp, limit.bytes(), HumanDuration(timeout), |_, _| false).await;
    if !expect_status.iter().any(|r| r.contains(status)) {
        let excerpt = crate::text::clip(body.text.trim(), 80).replace(['\n', '\r'], " ");
        return Some(if excerpt.is_empty() {
            format!("answered {status}")
        } else {
            format!("answered {status} ({excerpt})")
        });
    }
    if let Some(e) = &body.error {
        return Some(e.clone());
    }
    expect_body.and_then(|b| body_mismatch(b, &body, limit))
}

fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} s", d.as_secs())
    }
}

fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2} ms")
    } else if x < 100.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.0} ms")
    }
}

fn judge(c: &TrafficCheck, run: Run) -> Evaluation {
    let new = &run.new;
    let elapsed = Duration::from_millis(now_ms().saturating_sub(run.started_at_ms));
    let done = match c.target() {
        Some(n) => new.sent >= n,
        None => elapsed >= c.duration.unwrap_or_default().get() && new.sent >= c.min_requests(),
    };
    let quantile = |q: f64| new.latency.quantile(q).unwrap_or(0.0);
    let observed = json!({"requests": new.sent, "errors": new.errors, "errorRate": new.error_rate(),
        "p50Ms": quantile(0.5), "p90Ms": quantile(0.9), "p99Ms": quantile(0.99), "maxMs": new.latency.max_ms(),
        "seconds": elapsed.as_secs_f64(), "bad": run.bad,
        "production": run.production.as_ref().map(|p| json!({"requests": p.sent, "errors": p.errors, "errorRate": p.error_rate(),
            "p50Ms": p.latency.quantile(0.5), "p99Ms": p.latency.quantile(0.99)}))});
    let expected = json!({"requests": c.target(), "duration": c.duration, "minRequests": c.min_requests(),
        "maxErrorRate": c.max_error_rate, "latency": c.latency});
    let state = json!(run);
    if !done {
        let goal = match c.target() {
            Some(n) => format!("{n}"),
            None => format!("{} and {} s", c.min_requests(), c.duration.map(|d| d.get().as_secs()).unwrap_or(0)),
        };
        return Evaluation::pending(
            Duration::from_secs(1),
            format!(
                "not enough evidence yet: {} of {goal} requests sent in {}, {} errors",
                new.sent,
                seconds(elapsed),
                new.errors
            ),
        )
        .observed(observed)
        .expected(expected)
        .state(state);
    }
    let limit = |d: &Option<HumanDuration>| {
        d.map(|d| format!(" (limit {})", ms(d.get().as_secs_f64() * 1000.0)))
            .unwrap_or_default()
    };
    let mut summary = format!(
        "{} requests in {}: {:.1} % errors (limit {} %), p50 {}{}, p90 {}{}, p99 {}{}, max {}{}",
        new.sent,
        seconds(elapsed),
        new.error_rate(),
        crate::checks::evidence::number(c.max_error_rate),
        ms(quantile(0.5)),
        limit(&c.latency.p50),
        ms(quantile(0.9)),
        limit(&c.latency.p90),
        ms(quantile(0.99)),
        limit(&c.latency.p99),
        ms(new.latency.max_ms()),
        limit(&c.latency.max),
    );
    let mut failed = new.error_rate() > c.max_error_rate;
    for (q, l) in [(0.5, c.latency.p50), (0.9, c.latency.p90), (0.99, c.latency.p99)] {
        if let Some(l) = l
            && quantile(q) > l.get().as_secs_f64() * 1000.0
        {
            failed = true;
        }
    }
    if let Some(l) = c.latency.max
        && new.latency.max_ms() > l.get().as_secs_f64() * 1000.0
    {
        failed = true;
    }
    let mut waiting = false;
    if let (Some(p), Some(production)) = (&c.compare_with, &run.production) {
        let labels = Labels {
            metric: "latency",
            unit: "ms",
            canary: "the new revision",
            baseline: "production",
        };
        let latency = judge_series(
            &new.sample,
            &production.sample,
            &p.latency.clone().unwrap_or_default(),
            &labels,
        );
        let error_labels = Labels {
            metric: "error rate",
            ..labels
        };
        let errors = judge_error_rate(
            RequestCounts {
                requests: u64::from(new.sent),
                errors: u64::from(new.errors),
            },
            RequestCounts {
                requests: u64::from(production.sent),
                errors: u64::from(production.errors),
            },
            &p.errors.clone().unwrap_or_default(),
            &error_labels,
        );
        for r in [latency, errors] {
            match r {
                Ok(r) => {
                    summary.push_str(&format!("; versus production: {}", r.reason.trim_end_matches('.')));
                    match r.verdict {
                        Verdict::Fail => failed = true,
                        Verdict::NotEnoughEvidence => waiting = true,
                        Verdict::Pass => {}
                    }
                }
                Err(e) => {
                    return Evaluation::error(format!("the judge could not run: {e}"))
                        .observed(observed)
                        .expected(expected)
                        .state(state);
                }
            }
        }
    }
    for (name, bad) in &run.bad {
        summary.push_str(&format!(
            "; {name}: {} bad, e.g. {}",
            bad.count,
            bad.examples.join(" | ")
        ));
    }
    let ev = if failed {
        Evaluation::fail(summary)
    } else if waiting {
        Evaluation::pending(Duration::from_secs(1), summary)
    } else {
        Evaluation::pass(summary)
    };
    ev.observed(observed).expected(expected).state(state)
}
