//! Datadog: the v2 timeseries query API (`POST /api/v2/query/timeseries`), one request per
//! query and evaluation: one metric query, or named queries combined by a formula.
//!
//! - The API and application keys come from secrets; they are sent as `DD-API-KEY` and
//!   `DD-APPLICATION-KEY` and never appear in a message.
//! - A `429` is honoured: when the rate limit resets within a few seconds and the budget
//!   allows, the request is sent once more after `X-RateLimit-Reset`; otherwise the check
//!   could not look yet, which is no verdict.
//! - `null` values (a partial series) are left out; no series is no evidence; several
//!   series (a `by {…}` grouping) are an error that says to aggregate.
//! - Placeholders in queries must fill tag values: a value with characters a Datadog tag
//!   cannot hold is refused rather than let it change the query.

use std::time::{Duration, UNIX_EPOCH};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{self, Answer};
use super::{Series, SourceContext, Window};
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::secrets::{self, SecretRef};
use crate::template;
use crate::verdict::Failure;

fn default_site() -> String {
    "datadoghq.com".into()
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

/// The Datadog sites (`https://api.<site>`).
pub const SITES: [&str; 9] = [
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
];

/// The longest `X-RateLimit-Reset` waited for inside one evaluation.
const MAX_RESET_WAIT: Duration = Duration::from_secs(10);
const MAX_QUERIES: usize = 10;

/// A Datadog metric query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "DatadogQuery")]
pub struct Query {
    /// One metric query, e.g. `avg:trace.http.request.duration{service:${service},version:${targetRevisionId}}`.
    /// Or `queries` with a `formula`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Named metric queries for `formula`, e.g.
    /// `{"errors": "sum:trace.http.request.errors{service:${service}}.as_count()", "hits": "sum:trace.http.request.hits{service:${service}}.as_count()"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub queries: IndexMap<String, String>,
    /// How the named queries combine, e.g. `100 * errors / hits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// The Datadog site: `datadoghq.com` (default), `us3.datadoghq.com`,
    /// `us5.datadoghq.com`, `datadoghq.eu`, `ap1.datadoghq.com`, `ap2.datadoghq.com`,
    /// `uk1.datadoghq.com`, `ddog-gov.com` or `us2.ddog-gov.com`.
    #[serde(default = "default_site")]
    pub site: String,
    /// The API key.
    pub api_key: SecretRef,
    /// The application key; it needs the `timeseries_query` permission.
    pub application_key: SecretRef,
    /// The time between datapoints (the rollup interval). Default `1m`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// How long one request may take. Default `10s`, at most `60s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The API's base URL instead of `https://api.<site>`: a proxy in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|c| c.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && n.len() <= 32
}

/// A placeholder's value as a Datadog tag value: refused when it holds anything a tag
/// cannot.
pub fn tag_value(v: &str) -> Result<String, String> {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/'))
    {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{:?} cannot be a Datadog tag value (letters, digits, _ - : . / only)",
            crate::text::clip(v, 80)
        ))
    }
}

/// Whether `formula` uses `name` as a whole word.
fn mentions(formula: &str, name: &str) -> bool {
    formula
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == name)
}

impl Query {
    /// The named queries and the formula over them.
    fn parts(&self) -> (Vec<(&str, &str)>, String) {
        match &self.query {
            Some(q) => (vec![("query1", q.as_str())], "query1".to_string()),
            None => {
                let named: Vec<(&str, &str)> = self
                    .queries
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let formula = self
                    .formula
                    .clone()
                    .or_else(|| named.first().map(|(n, _)| n.to_string()))
                    .unwrap_or_default();
                (named, formula)
            }
        }
    }

    fn base(&self) -> String {
        match &self.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("https://api.{}", self.site),
        }
    }

    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        match (&self.query, self.queries.is_empty()) {
            (Some(_), false) => {
                return Err(ConfigError::new(
                    at,
                    "has both query and queries; give one query, or named queries with a formula",
                ));
            }
            (None, true) => {
                return Err(ConfigError::new(
                    at,
                    "needs a query, or queries with a formula",
                ));
            }
            (Some(q), true) => {
                if self.formula.is_some() {
                    return Err(ConfigError::new(
                        format!("{at}.formula"),
                        "goes with queries (named), not with query",
                    ));
                }
                check_query(q, &format!("{at}.query"))?;
            }
            (None, false) => {
                if self.queries.len() > MAX_QUERIES {
                    return Err(ConfigError::new(
                        format!("{at}.queries"),
                        format!("has more than {MAX_QUERIES} queries"),
                    ));
                }
                if self.formula.is_none() && self.queries.len() > 1 {
                    return Err(ConfigError::new(
                        format!("{at}.formula"),
                        "is missing: several queries need a formula that combines them",
                    ));
                }
                let formula = self.formula.clone().unwrap_or_default();
                for (name, q) in &self.queries {
                    if !valid_name(name) {
                        return Err(ConfigError::new(
                            format!("{at}.queries.{name}"),
                            "is not a valid name: a lower-case letter, then lower-case letters, digits or _",
                        ));
                    }
                    if self.formula.is_some() && !mentions(&formula, name) {
                        return Err(ConfigError::new(
                            format!("{at}.queries.{name}"),
                            format!("is not used by the formula {formula:?}"),
                        ));
                    }
                    check_query(q, &format!("{at}.queries.{name}"))?;
                }
            }
        }
        if !SITES.contains(&self.site.as_str()) {
            return Err(ConfigError::new(
                format!("{at}.site"),
                format!(
                    "{:?} is not a Datadog site; one of {}",
                    self.site,
                    SITES.join(", ")
                ),
            ));
        }
        if self.interval.get() < Duration::from_secs(1) {
            return Err(ConfigError::new(
                format!("{at}.interval"),
                "must be at least 1s",
            ));
        }
        if self.timeout.get() < Duration::from_secs(1)
            || self.timeout.get() > Duration::from_secs(60)
        {
            return Err(ConfigError::new(
                format!("{at}.timeout"),
                "must be from 1s to 60s",
            ));
        }
        if let Some(u) = &self.url {
            let url = reqwest::Url::parse(u)
                .map_err(|e| ConfigError::new(format!("{at}.url"), format!("is not a URL: {e}")))?;
            if !["http", "https"].contains(&url.scheme())
                || !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
            {
                return Err(ConfigError::new(
                    format!("{at}.url"),
                    "must be an http(s) base URL without credentials or query string",
                ));
            }
        }
        Ok(())
    }

    pub(super) async fn fetch(
        &self,
        window: Window,
        ctx: &SourceContext<'_>,
    ) -> Result<Series, Failure> {
        let (named, formula) = self.parts();
        let mut queries = Vec::new();
        for (name, q) in &named {
            let q = template::render_escaped(q, ctx.deployment, &|_| None, &tag_value)
                .map_err(|e| Failure::error(format!("the Datadog query {name}: {e}")))?;
            queries.push(json!({"data_source": "metrics", "query": q, "name": name}));
        }
        let ms = |t: std::time::SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        };
        let body = json!({"data": {"type": "timeseries_request", "attributes": {
            "from": ms(window.start),
            "to": ms(window.end),
            "interval": self.interval.get().as_millis() as u64,
            "queries": queries,
            "formulas": [{"formula": formula}],
        }}});
        let api_key = secrets::resolve(ctx.services, &self.api_key, ctx.budget.end())
            .await
            .map_err(Failure::error)?;
        let app_key = secrets::resolve(ctx.services, &self.application_key, ctx.budget.end())
            .await
            .map_err(Failure::error)?;
        let url = format!("{}/api/v2/query/timeseries", self.base());
        let what = format!("Datadog ({})", self.site);
        let client = http::client(ctx.services)?;
        let request = || {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .header("dd-api-key", api_key.expose())
                .header("dd-application-key", app_key.expose())
                .body(body.to_string())
        };
        let mut answer = http::send(request(), &what, self.timeout.get(), ctx.budget).await?;
        if answer.status == 429 {
            let reset = reset_after(&answer);
            if let Some(wait) = reset.filter(|w| {
                *w <= MAX_RESET_WAIT && ctx.budget.remaining() > *w + self.timeout.get()
            }) {
                tokio::time::sleep(wait).await;
                answer = http::send(request(), &what, self.timeout.get(), ctx.budget).await?;
            }
        }
        // A proxy in between could echo the keys: never in a message.
        self.interpret(&answer, &what, &formula)
            .map_err(|f| f.map(|m| secrets::redact(&m, &[api_key.clone(), app_key.clone()])))
    }

    fn interpret(&self, a: &Answer, what: &str, formula: &str) -> Result<Series, Failure> {
        let reply: Option<Value> = serde_json::from_slice(&a.body).ok();
        let errors = reply
            .as_ref()
            .and_then(|r| r.get("errors"))
            .map(|e| match e {
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .map(|e| crate::text::clip(&e, 400));
        let shown = || errors.clone().unwrap_or_else(|| a.excerpt());
        match a.status {
            200 => {
                let attributes = reply.as_ref().and_then(|r| r.pointer("/data/attributes"));
                series(attributes, what, formula, errors.as_deref())
            }
            429 => {
                let name = a.header("x-ratelimit-name").unwrap_or("query");
                let limit = match (
                    a.header("x-ratelimit-limit"),
                    a.header("x-ratelimit-period"),
                ) {
                    (Some(l), Some(p)) => format!(" of {l} requests per {p} s"),
                    _ => String::new(),
                };
                let message = format!("{what} rate limit {name:?}{limit} is reached");
                Err(match reset_after(a) {
                    Some(d) => Failure::throttled_for(
                        format!("{message}; it resets in {} s", d.as_secs()),
                        d,
                    ),
                    None => Failure::transient(message),
                })
            }
            400 => Err(Failure::error(format!(
                "{what} rejected the query ({}): {}",
                crate::text::clip(formula, 200),
                shown()
            ))),
            401 | 403 => {
                let text = shown();
                let lower = text.to_ascii_lowercase();
                Err(Failure::error(
                    if lower.contains("permission") || lower.contains("scope") {
                        format!(
                            "{what} refused the application key from {} ({} {text}): it needs the timeseries_query permission",
                            self.application_key.describe(),
                            a.status
                        )
                    } else {
                        format!(
                            "{what} refused the keys ({} {text}): check the API key from {} and the application key from {}, and that site is the account's",
                            a.status,
                            self.api_key.describe(),
                            self.application_key.describe()
                        )
                    },
                ))
            }
            s if s >= 500 => Err(Failure::transient(format!(
                "{what} answered {s}: {}",
                shown()
            ))),
            s => Err(Failure::error(format!("{what} answered {s}: {}", shown()))),
        }
    }
}

/// Checks a metric query's shape (`aggregator:metric{scope}…`) and placeholders.
fn check_query(q: &str, at: &str) -> Result<(), ConfigError> {
    let q = q.trim();
    let shaped = q.split_once(':').is_some_and(|(agg, rest)| {
        !agg.is_empty()
            && agg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && rest.contains('{')
            && rest.contains('}')
    });
    if !shaped {
        return Err(ConfigError::new(
            at,
            format!(
                "{:?} is not a Datadog metric query such as avg:trace.http.request.duration{{service:web}}",
                crate::text::clip(q, 100)
            ),
        ));
    }
    template::validate(q).map_err(|e| ConfigError::new(at, e))
}

/// `X-RateLimit-Reset`: seconds until the limit resets.
fn reset_after(a: &Answer) -> Option<Duration> {
    a.header("x-ratelimit-reset")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)))
}

/// The one series of a timeseries response: `times` and the formula's `values`, `null`s
/// left out.
fn series(
    attributes: Option<&Value>,
    what: &str,
    formula: &str,
    errors: Option<&str>,
) -> Result<Series, Failure> {
    let list = |k: &str| {
        attributes
            .and_then(|a| a.get(k))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let found = list("series");
    let times = list("times");
    let values = list("values");
    match found.as_slice() {
        [] => match errors {
            Some(e) if !e.is_empty() => Err(Failure::error(format!(
                "{what} could not compute {formula:?}: {e}"
            ))),
            _ => Ok(Series::new()),
        },
        [_] => {
            let row = values
                .first()
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(times
                .iter()
                .zip(row.iter())
                .filter_map(|(t, v)| Some((t.as_i64()?, v.as_f64().filter(|v| !v.is_nan())?)))
                .collect())
        }
        many => {
            let groups: Vec<String> = many
                .iter()
                .map(|s| s.get("group_tags").cloned().unwrap_or_default().to_string())
                .collect();
            Err(super::several_series(
                &format!("{formula:?}"),
                &groups,
                "drop the `by {…}` grouping or aggregate",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_refuse_what_would_change_a_query() {
        assert_eq!(tag_value("web-api").unwrap(), "web-api");
        assert!(tag_value("arn:aws:ecs:us-west-2:1:service-revision/c/s/1").is_ok());
        for bad in ["a,b", "a}", "a b", "x OR y", "", "a(b)"] {
            assert!(tag_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn partial_series_skips_nulls() {
        let a = json!({"series": [{"group_tags": [], "query_index": 0}], "times": [1000, 2000, 3000], "values": [[1.0, null, 3.5]]});
        assert_eq!(
            series(Some(&a), "D", "f", None).unwrap(),
            vec![(1000, 1.0), (3000, 3.5)]
        );
        let none = json!({"series": [], "times": [], "values": []});
        assert!(series(Some(&none), "D", "f", None).unwrap().is_empty());
        assert!(series(Some(&none), "D", "f", Some("bad metric")).is_err());
        let two = json!({"series": [{"group_tags": ["env:a"]}, {"group_tags": ["env:b"]}], "times": [], "values": [[], []]});
        let e = series(Some(&two), "D", "f", None).unwrap_err();
        assert!(e.message.contains("selects 2 series"), "{e}");
    }

    #[test]
    fn formula_mentions_whole_words() {
        assert!(mentions("100 * errors / hits", "errors"));
        assert!(!mentions("100 * errors2 / hits", "errors"));
    }
}
