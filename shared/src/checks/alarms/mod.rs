//! `alarms`: CloudWatch alarms as a gate. Any alarm in ALARM fails; INSUFFICIENT_DATA
//! follows a policy; optionally observed for a bake window.

use aws_sdk_cloudwatch::types::StateValue;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aws;
use crate::checks::evidence::{BakeState, NoEvidence};
use crate::checks::{Check, CheckContext, Timing, at_least_a_second};
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::verdict::Evaluation;

fn default_interval() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_insufficient() -> NoEvidence {
    NoEvidence::Pass
}

/// Settings of an `alarms` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlarmsCheck {
    /// Alarm names (metric or composite). Each must exist.
    #[serde(default)]
    pub alarm_names: Vec<String>,
    /// Every alarm whose name starts with this, e.g. `checkout-`. May use placeholders.
    #[serde(default)]
    pub alarm_name_prefix: Option<String>,
    /// An alarm in INSUFFICIENT_DATA: `pass` (default), `wait` or `fail`.
    #[serde(default = "default_insufficient")]
    pub insufficient_data: NoEvidence,
    /// Time between looks. Default `30s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Observe for this long: fail on the first ALARM, pass when the window passed clean.
    #[serde(default)]
    pub bake_for: Option<HumanDuration>,
}

impl Check for AlarmsCheck {
    const TYPE: &'static str = "alarms";
    const DESCRIPTION: &'static str = "Fails when a named CloudWatch alarm (or one with a name prefix) is in ALARM; INSUFFICIENT_DATA follows a policy; optional bake window.";
    type State = BakeState;

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let c = self;
        if c.alarm_names.is_empty() && c.alarm_name_prefix.is_none() {
            return Err(ConfigError::new(
                format!("{at}.alarmNames"),
                "is empty; name alarms, or set alarmNamePrefix",
            ));
        }
        if let Some(p) = &c.alarm_name_prefix {
            crate::template::validate(p)
                .map_err(|e| ConfigError::new(format!("{at}.alarmNamePrefix"), e))?;
        }
        at_least_a_second(c.interval, format!("{at}.interval"))
    }

    fn timing(&self) -> Timing {
        Timing::every(self.interval).baking(self.bake_for)
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, state: Self::State) -> Evaluation {
        let c = self;
        let bake = BakeState::begin(state, ctx, c.bake_for.is_some()).await;
        let cw = ctx.services.cloudwatch().await;
        let prefix = match c
            .alarm_name_prefix
            .as_deref()
            .map(|p| crate::template::render(p, ctx.deployment))
            .transpose()
        {
            Ok(p) => p,
            Err(e) => return Evaluation::error(e),
        };
        // (name, state, reason)
        let mut alarms: Vec<(String, String, String)> = Vec::new();
        let mut requests = Vec::new();
        // All named alarms in one DescribeAlarms (it takes up to 100 names).
        for names in c.alarm_names.chunks(100) {
            requests.push(cw.describe_alarms().set_alarm_names(Some(names.to_vec())));
        }
        if let Some(p) = &prefix {
            requests.push(cw.describe_alarms().alarm_name_prefix(p));
        }
        for req in requests {
            let mut token: Option<String> = None;
            loop {
                let call = req.clone().set_next_token(token.clone()).send();
                let out = match aws::call(
                    &ctx.budget,
                    "CloudWatch DescribeAlarms",
                    "cloudwatch:DescribeAlarms",
                    call,
                )
                .await
                {
                    Err(e) => return e.into(),
                    Ok(o) => o,
                };
                let entry = |name: Option<&str>, state: Option<&StateValue>, why: Option<&str>| {
                    let state = state.map(|s| s.as_str().to_string()).unwrap_or_default();
                    let text = |t: Option<&str>| t.unwrap_or_default().to_string();
                    (text(name), state, text(why))
                };
                for a in out.metric_alarms() {
                    alarms.push(entry(a.alarm_name(), a.state_value(), a.state_reason()));
                }
                for a in out.composite_alarms() {
                    alarms.push(entry(a.alarm_name(), a.state_value(), a.state_reason()));
                }
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        alarms.sort();
        alarms.dedup();
        let missing: Vec<&String> = c
            .alarm_names
            .iter()
            .filter(|n| !alarms.iter().any(|(a, _, _)| a == *n))
            .collect();
        if !missing.is_empty() {
            return Evaluation::error(format!(
                "alarm(s) not found: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if alarms.is_empty() {
            return Evaluation::error(format!(
                "no alarm's name starts with {:?}",
                prefix.unwrap_or_default()
            ));
        }
        let observed = json!(
            alarms
                .iter()
                .map(|(n, s, r)| json!({"alarm": n, "state": s, "reason": r}))
                .collect::<Vec<_>>()
        );
        let expected = json!({"state": "OK", "insufficientData": c.insufficient_data});
        let state = json!(bake);
        let firing: Vec<String> = alarms
            .iter()
            .filter(|(_, s, _)| s == "ALARM")
            .map(|(n, _, r)| format!("{n} is in ALARM ({r})"))
            .collect();
        if !firing.is_empty() {
            return Evaluation::fail(firing.join("; "))
                .observed(observed)
                .expected(expected)
                .state(state);
        }
        let unknown: Vec<&str> = alarms
            .iter()
            .filter(|(_, s, _)| s == "INSUFFICIENT_DATA")
            .map(|(n, _, _)| n.as_str())
            .collect();
        let mut summary = format!("{} alarm(s) OK", alarms.len() - unknown.len());
        if !unknown.is_empty() {
            let list = unknown.join(", ");
            match c.insufficient_data {
                NoEvidence::Fail => {
                    return Evaluation::fail(format!(
                        "INSUFFICIENT_DATA (insufficientData: fail): {list}"
                    ))
                    .observed(observed)
                    .expected(expected)
                    .state(state);
                }
                NoEvidence::Wait => {
                    return Evaluation::pending(
                        c.interval.get(),
                        format!("waiting for data: {list} in INSUFFICIENT_DATA"),
                    )
                    .observed(observed)
                    .expected(expected)
                    .state(state);
                }
                NoEvidence::Pass => summary.push_str(&format!(
                    ", {} in INSUFFICIENT_DATA (insufficientData: pass): {list}",
                    unknown.len()
                )),
            }
        }
        bake.pass_or_keep_baking(c.bake_for, c.interval, summary)
            .observed(observed)
            .expected(expected)
            .state(state)
    }
}
