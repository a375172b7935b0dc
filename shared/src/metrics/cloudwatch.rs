//! CloudWatch, the default metric source: a query is a metric or a metric-math expression
//! over named metrics, with deployment placeholders in dimensions. Every evaluation sends
//! all of a check's queries in one `GetMetricData` call (paged as the API requires), never
//! one call per metric.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Query, Series, SourceContext, Window};
use crate::aws;
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::template;
use crate::verdict::Failure;

fn default_stat() -> String {
    "Average".into()
}
fn default_period() -> HumanDuration {
    HumanDuration::secs(60)
}

/// One CloudWatch metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricDef {
    /// e.g. `AWS/ApplicationELB`.
    pub namespace: String,
    /// e.g. `HTTPCode_Target_5XX_Count`.
    pub name: String,
    /// Dimension name → value. Values may use placeholders: `${greenTargetGroup}`,
    /// `${blueTargetGroup}`, `${loadBalancer}` (in CloudWatch's `targetgroup/…` and
    /// `app/…` forms), `${cluster}`, `${service}` and the others.
    #[serde(default)]
    pub dimensions: IndexMap<String, String>,
    /// `Average`, `Sum`, `Minimum`, `Maximum`, `SampleCount`, or a percentile such as `p99`.
    /// Default `Average`.
    #[serde(default = "default_stat")]
    pub stat: String,
    /// Default `1m`. A multiple of 60 s (or 1, 5, 10, 30 s for high-resolution metrics).
    #[serde(default = "default_period")]
    pub period: HumanDuration,
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_metric(m: &MetricDef, at: &str) -> Result<(), ConfigError> {
    let stat_ok = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"]
        .contains(&m.stat.as_str())
        || (m.stat.len() > 1
            && m.stat.starts_with(['p', 'P'])
            && m.stat[1..]
                .parse::<f64>()
                .is_ok_and(|p| (0.0..=100.0).contains(&p)))
        || m.stat.starts_with("tm")
        || m.stat.starts_with("TM");
    if !stat_ok {
        return Err(ConfigError::new(
            format!("{at}.stat"),
            format!(
                "{:?} is not a statistic; use Average, Sum, Minimum, Maximum, SampleCount or a percentile such as p99",
                m.stat
            ),
        ));
    }
    let secs = m.period.get().as_secs();
    if m.period.get().subsec_nanos() != 0
        || !(secs > 0 && (secs.is_multiple_of(60) || [1, 5, 10, 30].contains(&secs)))
    {
        return Err(ConfigError::new(
            format!("{at}.period"),
            "must be a multiple of 60s (or 1s, 5s, 10s, 30s for high-resolution metrics)",
        ));
    }
    for (k, v) in &m.dimensions {
        template::validate(v).map_err(|e| ConfigError::new(format!("{at}.dimensions.{k}"), e))?;
    }
    Ok(())
}

/// Checks a CloudWatch query: a metric, or an expression with the metrics it uses.
pub(super) fn validate(q: &Query, at: &str) -> Result<(), ConfigError> {
    match (&q.metric, &q.expression) {
        (Some(m), None) => {
            if !q.using.is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.using"),
                    "goes with expression, not with metric",
                ));
            }
            validate_metric(m, &format!("{at}.metric"))
        }
        (None, Some(e)) => {
            if q.using.is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.using"),
                    "is empty; an expression needs the metrics it refers to, by id",
                ));
            }
            for (id, m) in &q.using {
                if !valid_id(id) {
                    return Err(ConfigError::new(
                        format!("{at}.using.{id}"),
                        "is not a valid id: start with a lower-case letter, then letters, digits or _",
                    ));
                }
                if !e.contains(id.as_str()) {
                    return Err(ConfigError::new(
                        format!("{at}.using.{id}"),
                        format!("is not used by the expression {e:?}"),
                    ));
                }
                validate_metric(m, &format!("{at}.using.{id}"))?;
            }
            Ok(())
        }
        (Some(_), Some(_)) => Err(ConfigError::new(
            at,
            "has both metric and expression; give one",
        )),
        (None, None) => Err(ConfigError::new(
            at,
            "needs a source: a CloudWatch metric ({namespace, name, dimensions, stat}) or expression, prometheus or datadog",
        )),
    }
}

/// The expression's period, or the longest among its metrics.
pub(super) fn period(q: &Query) -> Duration {
    q.period
        .map(HumanDuration::get)
        .or(q.metric.as_ref().map(|m| m.period.get()))
        .or(q.using.values().map(|m| m.period.get()).max())
        .unwrap_or(Duration::from_secs(60))
}

fn placeholders(q: &Query) -> Vec<String> {
    let metrics: Vec<&MetricDef> = q.metric.iter().chain(q.using.values()).collect();
    metrics
        .iter()
        .flat_map(|m| m.dimensions.values())
        .flat_map(|v| template::names(v))
        .collect()
}

/// Values for the placeholders that need a look-up (`greenTargetGroup`, `blueTargetGroup`,
/// `loadBalancer`, in CloudWatch's dimension forms), looked up only when `names` has them.
pub(super) async fn extra_values(
    ctx: &SourceContext<'_>,
    names: &[String],
) -> Result<HashMap<&'static str, String>, Failure> {
    let mut out = HashMap::new();
    let dim = |arn: &str| {
        arn.split_once(":targetgroup/")
            .map(|(_, r)| format!("targetgroup/{r}"))
    };
    let wants = |n: &str| names.iter().any(|x| x == n);
    if wants("greenTargetGroup") || wants("loadBalancer") {
        let groups = ctx
            .facts
            .target_groups(ctx.services, ctx.deployment, ctx.budget, true)
            .await?;
        let tg = groups
            .first()
            .cloned()
            .ok_or_else(|| "the new revision has no target group".to_string())?;
        if wants("loadBalancer") {
            // The revision's production listener rule names the load balancer; ask ELBv2
            // only when it does not (CodeDeploy, or no listener rule).
            let known = ctx
                .facts
                .known_revision()
                .filter(|_| ctx.deployment.codedeploy.is_none())
                .and_then(|r| r.load_balancer_dimension());
            let lb = match known {
                Some(lb) => lb,
                None => {
                    ctx.facts
                        .load_balancer_dimension(ctx.services, &tg, ctx.budget)
                        .await?
                }
            };
            out.insert("loadBalancer", lb);
        }
        out.insert("greenTargetGroup", dim(&tg).unwrap_or(tg));
    }
    if wants("blueTargetGroup") {
        let groups = ctx
            .facts
            .target_groups(ctx.services, ctx.deployment, ctx.budget, false)
            .await?;
        let tg = groups
            .first()
            .cloned()
            .ok_or_else(|| "the previous revision has no target group".to_string())?;
        out.insert("blueTargetGroup", dim(&tg).unwrap_or(tg));
    }
    Ok(out)
}

fn metric_stat(
    m: &MetricDef,
    values: &dyn Fn(&str) -> Result<String, String>,
) -> Result<MetricStat, String> {
    let mut metric = Metric::builder()
        .namespace(&m.namespace)
        .metric_name(&m.name);
    for (k, v) in &m.dimensions {
        metric = metric.dimensions(Dimension::builder().name(k).value(values(v)?).build());
    }
    Ok(MetricStat::builder()
        .metric(metric.build())
        .stat(&m.stat)
        .period(m.period.get().as_secs() as i32)
        .build())
}

/// Replaces whole-word ids in a metric-math expression.
fn rename_ids(expression: &str, renames: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match renames.iter().find(|(from, _)| from == word) {
            Some((_, to)) => out.push_str(to),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in expression.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Fetches every query over the window in one `GetMetricData` call (following
/// `NextToken`). Returns the series by query name.
pub(super) async fn fetch(
    ctx: &SourceContext<'_>,
    queries: &[(&str, &Query)],
    window: Window,
) -> Result<HashMap<String, Series>, Failure> {
    let Window { start, end } = window;
    let names: Vec<String> = queries.iter().flat_map(|(_, q)| placeholders(q)).collect();
    let extra = extra_values(ctx, &names).await?;
    let values = |v: &str| template::render_with(v, ctx.deployment, &|n| extra.get(n).cloned());
    let mut mdq = Vec::new();
    let mut ids = HashMap::new();
    for (i, (name, q)) in queries.iter().enumerate() {
        let id = format!("q{i}");
        ids.insert(id.clone(), name.to_string());
        if let Some(m) = &q.metric {
            mdq.push(
                MetricDataQuery::builder()
                    .id(&id)
                    .label(*name)
                    .metric_stat(metric_stat(m, &values)?)
                    .return_data(true)
                    .build(),
            );
        } else if let Some(e) = &q.expression {
            let renames: Vec<(String, String)> = q
                .using
                .keys()
                .map(|k| (k.clone(), format!("{id}_{k}")))
                .collect();
            for (k, m) in &q.using {
                mdq.push(
                    MetricDataQuery::builder()
                        .id(format!("{id}_{k}"))
                        .metric_stat(metric_stat(m, &values)?)
                        .return_data(false)
                        .build(),
                );
            }
            let mut b = MetricDataQuery::builder()
                .id(&id)
                .label(*name)
                .expression(rename_ids(e, &renames))
                .return_data(true);
            if let Some(p) = q.period {
                b = b.period(p.get().as_secs() as i32);
            }
            mdq.push(b.build());
        }
    }
    let cw = ctx.services.cloudwatch().await;
    let mut out: HashMap<String, Series> = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let call = cw
            .get_metric_data()
            .set_metric_data_queries(Some(mdq.clone()))
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from(start))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from(end))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(token.clone())
            .send();
        let page = aws::call(
            ctx.budget,
            "CloudWatch GetMetricData",
            "cloudwatch:GetMetricData",
            call,
        )
        .await?;
        for r in page.metric_data_results() {
            let Some(name) = r.id().and_then(|id| ids.get(id)) else {
                continue;
            };
            let series = out.entry(name.clone()).or_default();
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                series.push((t.to_millis().unwrap_or(0), *v));
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for s in out.values_mut() {
        s.sort_by_key(|(t, _)| *t);
        s.dedup_by_key(|(t, _)| *t);
    }
    for (name, _) in queries {
        out.entry(name.to_string()).or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_whole_words_only() {
        let r = vec![
            ("errors".to_string(), "q0_errors".to_string()),
            ("requests".to_string(), "q0_requests".to_string()),
        ];
        assert_eq!(
            rename_ids("100 * errors / requests + FILL(errors2, 0)", &r),
            "100 * q0_errors / q0_requests + FILL(errors2, 0)"
        );
    }
}
