//! Metric checks on CloudWatch: the query model shared by [`threshold`], [`alarms`] and
//! [`canary`], the one-call fetch, deployment placeholders in dimensions, and the bake
//! window.
//!
//! Every evaluation sends all of a check's queries in one `GetMetricData` call (paged as
//! the API requires), never one call per metric.

pub mod alarms;
pub mod canary;
pub mod threshold;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CheckContext;
use crate::aws;
use crate::config::ConfigError;
use crate::duration::HumanDuration;
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

/// A query: a metric, or a metric-math expression over named metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    #[serde(default)]
    pub metric: Option<MetricDef>,
    /// A metric-math expression, e.g. `100 * errors / requests`, over the metrics in `using`.
    #[serde(default)]
    pub expression: Option<String>,
    /// The metrics an expression refers to, by id (`[a-z][a-zA-Z0-9_]*`).
    #[serde(default)]
    pub using: IndexMap<String, MetricDef>,
    /// The expression's period. Default: the period of its metrics.
    #[serde(default)]
    pub period: Option<HumanDuration>,
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

impl Query {
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        match (&self.metric, &self.expression) {
            (Some(m), None) => {
                if !self.using.is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.using"),
                        "goes with expression, not with metric",
                    ));
                }
                validate_metric(m, &format!("{at}.metric"))
            }
            (None, Some(e)) => {
                if self.using.is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.using"),
                        "is empty; an expression needs the metrics it refers to, by id",
                    ));
                }
                for (id, m) in &self.using {
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
                "needs a metric ({namespace, name, dimensions, stat}) or an expression",
            )),
        }
    }

    /// The longest period among its metrics.
    pub fn period(&self) -> Duration {
        self.period
            .map(HumanDuration::get)
            .or(self.metric.as_ref().map(|m| m.period.get()))
            .or(self.using.values().map(|m| m.period.get()).max())
            .unwrap_or(Duration::from_secs(60))
    }

    fn placeholders(&self) -> Vec<String> {
        let metrics: Vec<&MetricDef> = self.metric.iter().chain(self.using.values()).collect();
        metrics
            .iter()
            .flat_map(|m| m.dimensions.values())
            .flat_map(|v| template::names(v))
            .collect()
    }
}

/// A series: (time in ms since the epoch, value), oldest first.
pub type Series = Vec<(i64, f64)>;

/// Values for the placeholders only metric dimensions use, looked up when needed.
async fn extra_values(
    ctx: &CheckContext<'_>,
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
            .target_groups(ctx.services, ctx.deployment, &ctx.budget, true)
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
                        .load_balancer_dimension(ctx.services, &tg, &ctx.budget)
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
            .target_groups(ctx.services, ctx.deployment, &ctx.budget, false)
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

/// Fetches every query over `[start, end]` in one `GetMetricData` call (following
/// `NextToken`). Returns the series by query name.
pub async fn fetch(
    ctx: &CheckContext<'_>,
    queries: &[(&str, &Query)],
    start: SystemTime,
    end: SystemTime,
) -> Result<HashMap<String, Series>, Failure> {
    let names: Vec<String> = queries.iter().flat_map(|(_, q)| q.placeholders()).collect();
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
            &ctx.budget,
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

/// What to do when there is not enough evidence to judge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NoEvidence {
    /// Keep waiting (pending) until there is, or `within` runs out (default).
    #[default]
    Wait,
    /// Pass, saying there was not enough evidence.
    Pass,
    /// Fail.
    Fail,
}

/// The bake window carried between evaluations: when observation started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BakeState {
    pub started_at_ms: u64,
    /// Whether the start is the stage's real start from ECS (else the first evaluation).
    #[serde(default)]
    pub anchored: bool,
    pub evaluations: u32,
}

impl BakeState {
    /// The window carried in the check's state; on its first evaluation, anchored to the
    /// stage's real start when `anchor` is asked for and ECS tells it
    /// ([`crate::facts::Facts::stage_started_at`]), else now.
    pub async fn begin(ctx: &CheckContext<'_>, anchor: bool) -> BakeState {
        let mut s: BakeState = serde_json::from_value(ctx.state.clone()).unwrap_or_default();
        let now = crate::runner::now_ms();
        // A start in the future (forged state) would hold the window open.
        s.started_at_ms = s.started_at_ms.min(now);
        if s.started_at_ms == 0 {
            s.started_at_ms = now;
            if anchor {
                match ctx
                    .facts
                    .stage_started_at(ctx.services, ctx.deployment, &ctx.budget)
                    .await
                {
                    Ok(Some(t)) if t <= now => {
                        s.started_at_ms = t;
                        s.anchored = true;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "the window starts now: the stage's start could not be read ({e})"
                    ),
                }
            }
        }
        s.evaluations = s.evaluations.saturating_add(1);
        s
    }

    pub fn started(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.started_at_ms)
    }

    /// Passes with `summary`, or, while the bake window is still open, stays pending with
    /// what was seen so far, to be evaluated again after `interval` or when the window ends,
    /// whichever comes first.
    pub fn pass_or_keep_baking(
        &self,
        bake_for: Option<HumanDuration>,
        interval: HumanDuration,
        summary: String,
    ) -> crate::verdict::Evaluation {
        match bake_for {
            Some(window) if self.elapsed() < window.get() => {
                let so_far = HumanDuration(Duration::from_secs(self.elapsed().as_secs()));
                crate::verdict::Evaluation::pending(
                    interval
                        .get()
                        .min(window.get().saturating_sub(self.elapsed())),
                    format!("clean for {so_far} of {window}: {summary}"),
                )
            }
            _ => crate::verdict::Evaluation::pass(summary),
        }
    }

    /// How long the window has been observed.
    pub fn elapsed(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.started())
            .unwrap_or_default()
    }
}

/// `1950` → `1,950`; `2.4` stays `2.4`.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        let s = format!("{}", x.abs() as u64);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else {
        let digits = if x.abs() >= 100.0 {
            1
        } else if x.abs() >= 1.0 {
            3
        } else {
            6
        };
        let s = format!("{x:.digits$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
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

    #[test]
    fn a_bake_window_is_evaluated_again_when_it_ends() {
        let bake = BakeState {
            started_at_ms: crate::runner::now_ms() - 58_500,
            anchored: false,
            evaluations: 1,
        };
        let ev = bake.pass_or_keep_baking(
            Some(HumanDuration::secs(60)),
            HumanDuration::secs(60),
            "clean".into(),
        );
        match ev.outcome {
            crate::verdict::Outcome::Pending { retry_after } => assert!(
                retry_after <= Duration::from_millis(1500) && retry_after >= Duration::from_secs(1),
                "{retry_after:?}"
            ),
            other => panic!("{other:?}"),
        }
        let early = BakeState {
            started_at_ms: crate::runner::now_ms(),
            ..bake
        };
        let ev = early.pass_or_keep_baking(
            Some(HumanDuration::secs(600)),
            HumanDuration::secs(60),
            "clean".into(),
        );
        assert_eq!(
            ev.outcome,
            crate::verdict::Outcome::Pending {
                retry_after: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(number(1950.0), "1,950");
        assert_eq!(number(2.4), "2.4");
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(0.0003), "0.0003");
        assert_eq!(number(12.3456), "12.346");
    }
}
