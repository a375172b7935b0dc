//! Prometheus: a PromQL range query (`POST /api/v1/query_range`, form body) against any
//! Prometheus HTTP API, one request per query and evaluation.
//!
//! - Amazon Managed Prometheus (service `aps`) and CloudWatch's PromQL API (service
//!   `monitoring`) are signed with SigV4: the function's credentials, or a role's assumed
//!   first (`roleArn`, for a workspace in another account). Service and region are read from
//!   the URL's host when it is AWS's.
//! - Self-hosted Prometheus, Mimir, Thanos or Grafana Cloud: bearer or basic
//!   authentication from a secret, and headers such as `X-Scope-OrgID`.
//! - Placeholders in PromQL are filled escaped for PromQL's double-quoted strings, so a
//!   value can never change the query.
//! - The query must select one series: none (or only `NaN`s) is no evidence; several are an
//!   error that says to aggregate them.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{self, Answer};
use super::{Series, SourceContext, Window, cloudwatch, sigv4};
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::secrets::{self, Secret, SecretRef};
use crate::template;
use crate::verdict::Failure;

fn default_step() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

/// Prometheus answers at most this many points per series.
const MAX_POINTS: u64 = 11_000;
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEADERS: usize = 20;

/// A PromQL query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "PrometheusQuery")]
pub struct Query {
    /// The API's base URL, before `/api/v1/…`: an Amazon Managed Prometheus workspace
    /// (`https://aps-workspaces.REGION.amazonaws.com/workspaces/WORKSPACE_ID`), CloudWatch's
    /// PromQL API (`https://monitoring.REGION.amazonaws.com`), or a Prometheus server
    /// (`http://prometheus.internal:9090`, Grafana Cloud's `…/api/prom`). No credentials,
    /// query string or fragment in it.
    pub url: String,
    /// PromQL selecting one series, e.g.
    /// `sum(rate(http_requests_total{service="${service}",code=~"5.."}[1m])) / sum(rate(http_requests_total{service="${service}"}[1m]))`.
    /// Placeholders go inside double-quoted strings; their values are escaped for them.
    pub query: String,
    /// The range query's resolution: the time between datapoints. Default `1m`.
    #[serde(default = "default_step")]
    pub step: HumanDuration,
    /// Sign requests with AWS SigV4 (Amazon Managed Prometheus, CloudWatch's PromQL API).
    /// `{}` reads service and region from the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<SigV4>,
    /// Bearer or basic authentication, for servers outside AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Extra request headers, e.g. `{"X-Scope-OrgID": "team-a"}` for Mimir or Cortex.
    /// Values may use placeholders.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// How long one request may take. Default `10s`, at most `60s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

/// AWS SigV4 signing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigV4 {
    /// `aps` (Amazon Managed Prometheus) or `monitoring` (CloudWatch's PromQL API).
    /// Default: from the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Default: from the URL's host, else the function's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A role to assume and sign as, e.g. for a workspace in another account. The
    /// function's role needs `sts:AssumeRole` on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// Authentication for a server outside AWS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Auth {
    /// `Authorization: Bearer <token>`, the token from a secret.
    Bearer(SecretRef),
    /// `Authorization: Basic …`, the password (or Grafana Cloud API token) from a secret.
    Basic {
        username: String,
        password: SecretRef,
    },
}

/// AWS's service and region for a host of theirs: `aps-workspaces.REGION.amazonaws.com`
/// or `monitoring.REGION.amazonaws.com`.
fn aws_host(host: &str) -> Option<(&'static str, &str)> {
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let (name, region) = rest.split_once('.')?;
    let service = match name {
        "aps-workspaces" => "aps",
        "monitoring" => "monitoring",
        _ => return None,
    };
    (!region.is_empty() && !region.contains('.')).then_some((service, region))
}

fn word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A value escaped for a PromQL double-quoted string.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

impl Query {
    fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    fn host(&self) -> String {
        reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The service and region to sign for, when signing.
    fn signing(&self) -> Option<(String, Option<String>)> {
        let s = self.sigv4.as_ref()?;
        let host = self.host();
        let inferred = aws_host(&host);
        let service = s
            .service
            .clone()
            .or_else(|| inferred.map(|(s, _)| s.to_string()))?;
        let region = s
            .region
            .clone()
            .or_else(|| inferred.map(|(_, r)| r.to_string()));
        Some((service, region))
    }

    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ConfigError::new(format!("{at}.url"), format!("is not a URL: {e}")))?;
        if !["http", "https"].contains(&url.scheme()) {
            return Err(ConfigError::new(
                format!("{at}.url"),
                "must be an http:// or https:// URL",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::new(
                format!("{at}.url"),
                "has credentials in it; put them in auth (from a secret) instead",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(
                format!("{at}.url"),
                "must not have a query string or fragment: give the API's base URL",
            ));
        }
        if self.query.trim().is_empty() {
            return Err(ConfigError::new(format!("{at}.query"), "is empty"));
        }
        template::validate(&self.query).map_err(|e| ConfigError::new(format!("{at}.query"), e))?;
        if self.step.get() < Duration::from_secs(1) || self.step.get().subsec_nanos() != 0 {
            return Err(ConfigError::new(
                format!("{at}.step"),
                "must be whole seconds, at least 1s",
            ));
        }
        if self.timeout.get() < Duration::from_secs(1) || self.timeout.get() > MAX_TIMEOUT {
            return Err(ConfigError::new(
                format!("{at}.timeout"),
                "must be from 1s to 60s",
            ));
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(ConfigError::new(
                format!("{at}.headers"),
                format!("has more than {MAX_HEADERS} headers"),
            ));
        }
        for (k, v) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ConfigError::new(format!("{at}.headers.{k}"), "is not a valid header name")
            })?;
            if [
                reqwest::header::AUTHORIZATION,
                reqwest::header::HOST,
                reqwest::header::CONTENT_TYPE,
                reqwest::header::CONTENT_LENGTH,
            ]
            .contains(&name)
                || k.to_ascii_lowercase().starts_with("x-amz-")
            {
                return Err(ConfigError::new(
                    format!("{at}.headers.{k}"),
                    "is set by the request itself (use auth or sigv4 for credentials)",
                ));
            }
            template::validate(v).map_err(|e| ConfigError::new(format!("{at}.headers.{k}"), e))?;
        }
        let host = url.host_str().unwrap_or_default();
        match &self.sigv4 {
            None if aws_host(host).is_some() => {
                return Err(ConfigError::new(
                    format!("{at}.sigv4"),
                    format!(
                        "is missing: {host} accepts only SigV4-signed requests; add \"sigv4\": {{}}"
                    ),
                ));
            }
            None => {}
            Some(s) => {
                if self.auth.is_some() {
                    return Err(ConfigError::new(
                        format!("{at}.auth"),
                        "goes with servers outside AWS; with sigv4 the request is signed instead",
                    ));
                }
                match &s.service {
                    Some(service) if !word(service) => {
                        return Err(ConfigError::new(
                            format!("{at}.sigv4.service"),
                            "must be a signing name such as aps or monitoring",
                        ));
                    }
                    None if aws_host(host).is_none() => {
                        return Err(ConfigError::new(
                            format!("{at}.sigv4.service"),
                            format!(
                                "is missing: {host} is not an AWS host it could be read from; give aps (Amazon Managed Prometheus) or monitoring (CloudWatch's PromQL API)"
                            ),
                        ));
                    }
                    _ => {}
                }
                if let Some(r) = &s.region
                    && !word(r)
                {
                    return Err(ConfigError::new(
                        format!("{at}.sigv4.region"),
                        "is not a region name such as us-east-1",
                    ));
                }
                if let Some(r) = &s.role_arn
                    && !(r.starts_with("arn:") && r.contains(":role/"))
                {
                    return Err(ConfigError::new(
                        format!("{at}.sigv4.roleArn"),
                        "is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                    ));
                }
            }
        }
        if let Some(Auth::Basic { username, .. }) = &self.auth
            && (username.is_empty() || username.contains(':'))
        {
            return Err(ConfigError::new(
                format!("{at}.auth.basic.username"),
                "must be non-empty, without ':'",
            ));
        }
        Ok(())
    }

    /// The series over `window`: one range query.
    pub(super) async fn fetch(
        &self,
        window: Window,
        ctx: &SourceContext<'_>,
    ) -> Result<Series, Failure> {
        let mut names = template::names(&self.query);
        names.extend(self.headers.values().flat_map(|v| template::names(v)));
        let extra: HashMap<&str, String> = cloudwatch::extra_values(ctx, &names).await?;
        let lookup = |n: &str| extra.get(n).cloned();
        let promql =
            template::render_escaped(&self.query, ctx.deployment, &lookup, &|v| Ok(escape(v)))
                .map_err(|e| Failure::error(format!("the PromQL query: {e}")))?;
        let secs = |t: std::time::SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        let (start, end) = (secs(window.start), secs(window.end));
        let step = self.step.get().as_secs().max(1);
        if ((end - start).max(0.0) as u64) / step >= MAX_POINTS {
            return Err(Failure::error(format!(
                "a step of {} over {} would ask for more than {MAX_POINTS} points; use a longer step",
                self.step,
                humantime::format_duration(Duration::from_secs((end - start).max(0.0) as u64))
            )));
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", &promql)
            .append_pair("start", &format!("{start:.3}"))
            .append_pair("end", &format!("{end:.3}"))
            .append_pair("step", &step.to_string())
            .finish();
        let url = format!("{}/api/v1/query_range", self.base());
        let mut headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("accept".to_string(), "application/json".to_string()),
        ];
        for (k, v) in &self.headers {
            let v = template::render_with(v, ctx.deployment, &lookup)
                .map_err(|e| Failure::error(format!("header {k}: {e}")))?;
            headers.push((k.to_ascii_lowercase(), v));
        }
        let what = format!("Prometheus at {}", self.host());
        let mut req = http::client(ctx.services)?.post(&url);
        // Credentials a server's answer could echo, kept out of every message.
        let mut hide = Vec::new();
        if let Some((service, region)) = self.signing() {
            let region = match region {
                Some(r) => r,
                None => ctx
                    .services
                    .sdk_config()
                    .await
                    .region()
                    .map(|r| r.to_string())
                    .ok_or_else(|| {
                        Failure::error(
                            "sigv4 has no region and the function's region is unknown; set sigv4.region",
                        )
                    })?,
            };
            let role = self.sigv4.as_ref().and_then(|s| s.role_arn.as_deref());
            let creds = sigv4::credentials(ctx.services, role, ctx.budget).await?;
            hide.extend(creds.session_token().map(Secret::from_value));
            let signed = sigv4::sign_request(
                &creds,
                &service,
                &region,
                "POST",
                &url,
                &headers,
                body.as_bytes(),
            )?;
            headers.extend(signed);
        }
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        req = match &self.auth {
            None => req,
            Some(Auth::Bearer(r)) => {
                let token = secrets::resolve(ctx.services, r, ctx.budget.end())
                    .await
                    .map_err(Failure::error)?;
                let req = req.bearer_auth(token.expose());
                hide.push(token);
                req
            }
            Some(Auth::Basic { username, password }) => {
                let p = secrets::resolve(ctx.services, password, ctx.budget.end())
                    .await
                    .map_err(Failure::error)?;
                let req = req.basic_auth(username, Some(p.expose()));
                hide.push(p);
                req
            }
        };
        let answer = http::send(req.body(body), &what, self.timeout.get(), ctx.budget).await?;
        self.interpret(&answer, &what, &promql)
            .map_err(|f| f.map(|m| secrets::redact(&m, &hide)))
    }

    fn interpret(&self, a: &Answer, what: &str, promql: &str) -> Result<Series, Failure> {
        let reply: Option<Value> = serde_json::from_slice(&a.body).ok();
        let field = |k: &str| {
            reply
                .as_ref()
                .and_then(|r| r.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let status = field("status");
        if a.status == 200 && status.as_deref() == Some("success") {
            return matrix(reply.as_ref().and_then(|r| r.get("data")), what, promql);
        }
        if status.as_deref() == Some("error") {
            let kind = field("errorType").unwrap_or_default();
            let error = crate::text::clip(&field("error").unwrap_or_default(), 400);
            let message = format!("{what} could not run {promql:?} ({kind}): {error}");
            return Err(match kind.as_str() {
                "timeout" | "canceled" | "unavailable" | "internal" => Failure::transient(message),
                _ if a.status >= 500 || a.status == 429 => Failure::transient(message),
                _ => Failure::error(message),
            });
        }
        let shown = format!("{} {}", a.status, a.excerpt());
        let message = match (a.status, self.signing(), &self.auth) {
            (401 | 403, Some((service, _)), _) => {
                let role = self
                    .sigv4
                    .as_ref()
                    .and_then(|s| s.role_arn.as_deref())
                    .map(|r| format!("role {r}"))
                    .unwrap_or_else(|| "the function's role".into());
                let permission = match service.as_str() {
                    "aps" => "aps:QueryMetrics on the workspace".to_string(),
                    // docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-PromQL.html#CloudWatch-PromQL-IAM
                    "monitoring" => {
                        "cloudwatch:GetMetricData and cloudwatch:ListMetrics".to_string()
                    }
                    other => format!("permission to query {other}"),
                };
                format!(
                    "{what} refused the SigV4-signed request ({shown}): {role} needs {permission}, and the signing service ({service}) and region must be the workspace's"
                )
            }
            (401 | 403, None, None) => format!(
                "{what} refused the request ({shown}): it needs credentials; Amazon Managed Prometheus and CloudWatch's PromQL API need \"sigv4\", other servers \"auth\""
            ),
            (401 | 403, None, Some(auth)) => {
                let from = match auth {
                    Auth::Bearer(r) => r.describe(),
                    Auth::Basic { password, .. } => password.describe(),
                };
                format!("{what} refused the credentials from {from} ({shown})")
            }
            (404, _, _) => format!(
                "{what} has no {}/api/v1/query_range ({shown}); url must be the API's base URL",
                self.base()
            ),
            _ => format!("{what} answered {shown}"),
        };
        Err(if a.status == 429 || a.status >= 500 {
            Failure::transient(message)
        } else {
            Failure::error(message)
        })
    }
}

/// The one series of a range query's matrix: empty when there is none, `NaN` points left out.
fn matrix(data: Option<&Value>, what: &str, promql: &str) -> Result<Series, Failure> {
    let kind = data
        .and_then(|d| d.get("resultType"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "matrix" {
        return Err(Failure::error(format!(
            "{what} answered {promql:?} with a {kind:?} result, not a matrix"
        )));
    }
    let result = data
        .and_then(|d| d.get("result"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match result {
        [] => Ok(Series::new()),
        [one] => {
            let mut series = Series::new();
            for point in one
                .get("values")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let (Some(t), Some(v)) = (
                    point.get(0).and_then(Value::as_f64),
                    point
                        .get(1)
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<f64>().ok()),
                ) else {
                    return Err(Failure::error(format!(
                        "{what} answered with a point that is not [time, \"value\"]: {}",
                        crate::text::clip(&point.to_string(), 100)
                    )));
                };
                if !v.is_nan() {
                    series.push(((t * 1000.0).round() as i64, v));
                }
            }
            Ok(series)
        }
        many => {
            let labels: Vec<String> = many
                .iter()
                .map(|s| s.get("metric").cloned().unwrap_or_default().to_string())
                .collect();
            Err(super::several_series(
                &format!("{promql:?}"),
                &labels,
                "aggregate them, e.g. sum(…) or max(…)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_for_double_quoted_strings() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(
            escape("arn:aws:ecs:us-west-2:1:service-revision/c/s/1"),
            "arn:aws:ecs:us-west-2:1:service-revision/c/s/1"
        );
    }

    #[test]
    fn reads_aws_hosts() {
        assert_eq!(
            aws_host("aps-workspaces.eu-west-1.amazonaws.com"),
            Some(("aps", "eu-west-1"))
        );
        assert_eq!(
            aws_host("monitoring.us-east-1.amazonaws.com"),
            Some(("monitoring", "us-east-1"))
        );
        assert_eq!(aws_host("prometheus.internal"), None);
        assert_eq!(aws_host("evil.monitoring.us-east-1.amazonaws.com"), None);
    }

    #[test]
    fn one_series_nan_left_out_several_refused() {
        let data = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1700000000, "1.5"], [1700000060, "NaN"], [1700000120.5, "+Inf"]]}
        ]});
        let s = matrix(Some(&data), "P", "q").unwrap();
        assert_eq!(
            s,
            vec![(1_700_000_000_000, 1.5), (1_700_000_120_500, f64::INFINITY)]
        );
        let empty = serde_json::json!({"resultType": "matrix", "result": []});
        assert!(matrix(Some(&empty), "P", "q").unwrap().is_empty());
        let two = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"code": "500"}, "values": []}, {"metric": {"code": "502"}, "values": []}
        ]});
        let e = matrix(Some(&two), "P", "q").unwrap_err();
        assert!(e.message.contains("selects 2 series"), "{e}");
        assert!(e.message.contains("aggregate"), "{e}");
        let vector = serde_json::json!({"resultType": "vector", "result": []});
        assert!(matrix(Some(&vector), "P", "q").is_err());
    }
}
