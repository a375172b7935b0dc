//! Target health: the green revision's targets, as the load balancer sees them
//! (ELBv2 `DescribeTargetHealth`). Passes when every registered target is healthy and at
//! least `minHealthyTargets` are; the record lists unhealthy targets with their reason codes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aws;
use crate::checks::{Check, CheckContext, Timing, at_least_a_second};
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::verdict::Evaluation;

fn default_min() -> u32 {
    1
}
fn default_interval() -> HumanDuration {
    HumanDuration::secs(10)
}

/// Settings of a `targetHealth` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetHealthCheck {
    /// Target group ARNs to watch. Default: those of the target service revision
    /// (`DescribeServiceRevisions` → `resolvedConfiguration.loadBalancers`).
    #[serde(default)]
    pub target_groups: Vec<String>,
    /// Healthy targets needed in every target group. Default `1`.
    #[serde(default = "default_min")]
    pub min_healthy_targets: u32,
    /// Time between looks. Default `10s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
}

impl Check for TargetHealthCheck {
    const TYPE: &'static str = "targetHealth";
    const DESCRIPTION: &'static str = "Waits until every target of the green revision's target groups is healthy (ELBv2 DescribeTargetHealth).";
    type State = ();

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let c = self;
        for (i, tg) in c.target_groups.iter().enumerate() {
            if !(tg.starts_with("arn:") && tg.contains(":targetgroup/")) {
                return Err(ConfigError::new(
                    format!("{at}.targetGroups[{i}]"),
                    format!(
                        "{tg:?} is not a target group ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)"
                    ),
                ));
            }
        }
        at_least_a_second(c.interval, format!("{at}.interval"))
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval)
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, _state: ()) -> Evaluation {
        let c = self;
        let groups = if c.target_groups.is_empty() {
            match ctx
                .facts
                .target_groups(ctx.services, ctx.deployment, &ctx.budget, true)
                .await
            {
                Ok(g) if g.is_empty() => {
                    return Evaluation::error(
                        "the new revision has no load balancer target groups; set targetGroups, or drop this check for a service without a load balancer",
                    );
                }
                Ok(g) => g,
                Err(e) => return e.into(),
            }
        } else {
            c.target_groups.clone()
        };
        // One DescribeTargetHealth per target group per observation.
        let mut groups = groups;
        let mut seen = std::collections::HashSet::new();
        groups.retain(|tg| seen.insert(tg.clone()));
        let elbv2 = ctx.services.elbv2().await;
        let calls = groups.iter().map(|tg| async move {
            let call = elbv2.describe_target_health().target_group_arn(tg).send();
            aws::call(
                &ctx.budget,
                "ELBv2 DescribeTargetHealth",
                "elasticloadbalancing:DescribeTargetHealth",
                call,
            )
            .await
        });
        let results = futures::future::join_all(calls).await;
        let mut observed = Vec::new();
        let mut waiting = Vec::new();
        let mut healthy_summary = Vec::new();
        for (tg, result) in groups.iter().zip(results) {
            let out = match result {
                Ok(o) => o,
                Err(e) => return e.into(),
            };
            let mut healthy = 0u32;
            let mut bad = Vec::new();
            let mut targets = Vec::new();
            for d in out.target_health_descriptions() {
                let id = d.target().and_then(|t| t.id()).unwrap_or("?");
                let port = d
                    .target()
                    .and_then(|t| t.port())
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default();
                let health = d.target_health();
                let state = health
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into());
                let reason = health
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string());
                targets.push(
                    json!({"target": format!("{id}{port}"), "state": state, "reason": reason,
                    "description": health.and_then(|h| h.description())}),
                );
                if state == "healthy" {
                    healthy += 1;
                } else {
                    bad.push(match &reason {
                        Some(r) => format!("{id}{port} {state} ({r})"),
                        None => format!("{id}{port} {state}"),
                    });
                }
            }
            observed.push(json!({"targetGroup": tg, "healthy": healthy, "targets": targets}));
            let name = short(tg);
            if !bad.is_empty() {
                waiting.push(format!(
                    "target group {name}: {healthy} healthy, not yet: {}",
                    bad.join(", ")
                ));
            } else if healthy < c.min_healthy_targets {
                waiting.push(format!(
                    "target group {name}: {healthy} healthy targets, {} needed",
                    c.min_healthy_targets
                ));
            } else {
                healthy_summary.push(format!("{name}: all {healthy} targets healthy"));
            }
        }
        let expected = json!({"allHealthy": true, "minHealthyTargets": c.min_healthy_targets});
        let ev = if waiting.is_empty() {
            Evaluation::pass(healthy_summary.join("; "))
        } else {
            Evaluation::pending(c.interval.get(), waiting.join("; "))
        };
        ev.observed(Value::from(observed)).expected(expected)
    }
}

/// `targetgroup/NAME/ID` → `NAME`, for short reasons.
fn short(tg: &str) -> &str {
    tg.split(":targetgroup/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(tg)
}
