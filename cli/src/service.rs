//! The service file: the part of an ECS `CreateService` / `UpdateService` request that
//! decides how a blue/green deployment runs, in the JSON form users write it.

use serde::Deserialize;
use serde_json::Value;

pub use greenlight::stage::Stage;

/// How production traffic moves to the new revision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// All production traffic at once.
    BlueGreen,
    /// `percent` first, then the rest after `bake_minutes`.
    Canary { percent: f64, bake_minutes: u32 },
    /// `step_percent` more at each step, `step_bake_minutes` between steps.
    Linear {
        step_percent: f64,
        step_bake_minutes: u32,
    },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::BlueGreen => "BLUE_GREEN",
            Strategy::Canary { .. } => "CANARY",
            Strategy::Linear { .. } => "LINEAR",
        }
    }

    /// The production weights of the new revision after each traffic step, ending at 100.
    pub fn steps(&self) -> Vec<f64> {
        match *self {
            Strategy::BlueGreen => vec![100.0],
            Strategy::Canary { percent, .. } if percent >= 100.0 => vec![100.0],
            Strategy::Canary { percent, .. } => vec![round_pct(percent), 100.0],
            Strategy::Linear { step_percent, .. } => {
                let mut steps = Vec::new();
                let mut k = 1.0;
                loop {
                    let w = round_pct(step_percent * k);
                    if w >= 100.0 {
                        steps.push(100.0);
                        return steps;
                    }
                    steps.push(w);
                    k += 1.0;
                }
            }
        }
    }

    /// Minutes ECS waits between two production traffic steps.
    pub fn step_bake_minutes(&self) -> u32 {
        match *self {
            Strategy::BlueGreen => 0,
            Strategy::Canary { bake_minutes, .. } => bake_minutes,
            Strategy::Linear {
                step_bake_minutes, ..
            } => step_bake_minutes,
        }
    }
}

/// Percentages are kept to three decimals, so that 3.3 × 3 is 9.9.
pub fn round_pct(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What ECS does when a hook has not decided within its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutAction {
    Rollback,
    Continue,
}

impl TimeoutAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutAction::Rollback => "ROLLBACK",
            TimeoutAction::Continue => "CONTINUE",
        }
    }
}

/// A Lambda lifecycle hook.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    /// Position in `lifecycleHooks`.
    pub index: usize,
    pub target_arn: String,
    pub role_arn: Option<String>,
    pub stages: Vec<Stage>,
    /// `hookDetails` as configured; `None` when the hook has none (ECS then sends none).
    pub details: Option<Value>,
    pub timeout_minutes: u32,
    pub timeout_action: TimeoutAction,
}

impl Hook {
    /// The function's name: the part after `function:` in a Lambda ARN (a qualifier
    /// after it is dropped), or the whole value when it is a plain name.
    pub fn function_name(&self) -> &str {
        function_name(&self.target_arn)
    }
}

pub fn function_name(target: &str) -> &str {
    let parts: Vec<&str> = target.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) if target.starts_with("arn:") && i + 1 < parts.len() => parts[i + 1],
        _ => parts.last().copied().unwrap_or(target),
    }
}

/// The service as the rehearsal needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    pub cluster: String,
    pub strategy: Strategy,
    pub bake_minutes: u32,
    pub hooks: Vec<Hook>,
    /// Hooks that are not Lambda functions (`PAUSE`), left out of the rehearsal.
    pub ignored: Vec<String>,
}

impl Service {
    pub fn hooks_at(&self, stage: Stage) -> Vec<&Hook> {
        self.hooks
            .iter()
            .filter(|h| h.stages.contains(&stage))
            .collect()
    }

    /// The region and account of the first hook that is a Lambda ARN.
    pub fn hook_region_account(&self) -> Option<(String, String)> {
        self.hooks.iter().find_map(|h| {
            let f: Vec<&str> = h.target_arn.splitn(7, ':').collect();
            (f.len() >= 6 && f[0] == "arn" && !f[3].is_empty() && !f[4].is_empty())
                .then(|| (f[3].to_string(), f[4].to_string()))
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawService {
    service_name: Option<String>,
    /// `UpdateService` names the service `service`.
    service: Option<String>,
    cluster: Option<String>,
    deployment_controller: Option<RawController>,
    deployment_configuration: Option<RawDeploymentConfiguration>,
}

#[derive(Deserialize)]
struct RawController {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDeploymentConfiguration {
    strategy: Option<String>,
    bake_time_in_minutes: Option<u32>,
    canary_configuration: Option<RawCanary>,
    linear_configuration: Option<RawLinear>,
    #[serde(default)]
    lifecycle_hooks: Vec<RawHook>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCanary {
    canary_percent: Option<f64>,
    canary_bake_time_in_minutes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLinear {
    step_percent: Option<f64>,
    step_bake_time_in_minutes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHook {
    hook_target_arn: Option<String>,
    role_arn: Option<String>,
    #[serde(default)]
    lifecycle_stages: Vec<String>,
    /// Any JSON value; `null` is the same as absent.
    #[serde(default)]
    hook_details: Option<Value>,
    target_type: Option<String>,
    timeout_configuration: Option<RawTimeout>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimeout {
    timeout_in_minutes: Option<u32>,
    action: Option<String>,
}

/// ECS's default hook timeout: 24 hours.
pub const DEFAULT_HOOK_TIMEOUT_MINUTES: u32 = 1440;

fn stage_names() -> String {
    Stage::KNOWN
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a service file's text. Keys other than the ones a blue/green deployment uses
/// (task definition, load balancers, …) are ignored.
pub fn parse(text: &str) -> Result<Service, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let raw: RawService = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        if at == "." || at.is_empty() {
            format!("{}", e.inner())
        } else {
            format!("at {at}: {}", e.inner())
        }
    })?;
    let name = raw
        .service_name
        .or(raw.service)
        .filter(|s| !s.trim().is_empty())
        .ok_or("serviceName is missing (or `service`, as UpdateService names it)")?;
    let name = name.rsplit('/').next().unwrap_or(&name).to_string();
    let cluster = raw
        .cluster
        .filter(|s| !s.trim().is_empty())
        .map(|c| c.rsplit('/').next().unwrap_or(&c).to_string())
        .unwrap_or_else(|| "default".to_string());
    if let Some(kind) = raw.deployment_controller.and_then(|c| c.kind)
        && kind != "ECS"
    {
        return Err(format!(
            "deploymentController.type is {kind}: ECS lifecycle hooks run only with the ECS \
             deployment controller"
        ));
    }
    let dc = raw.deployment_configuration.ok_or(
        "deploymentConfiguration is missing: it holds the strategy and the lifecycleHooks",
    )?;
    let strategy = match dc.strategy.as_deref() {
        Some("BLUE_GREEN") => Strategy::BlueGreen,
        Some("CANARY") => {
            let c = dc.canary_configuration.ok_or(
                "deploymentConfiguration.canaryConfiguration is missing; a CANARY deployment \
                 needs canaryPercent and canaryBakeTimeInMinutes",
            )?;
            let percent = c
                .canary_percent
                .ok_or("deploymentConfiguration.canaryConfiguration.canaryPercent is missing")?;
            if !(percent > 0.0 && percent <= 100.0) {
                return Err(format!(
                    "deploymentConfiguration.canaryConfiguration.canaryPercent is {percent}, \
                     expected more than 0 and at most 100"
                ));
            }
            Strategy::Canary {
                percent,
                bake_minutes: c.canary_bake_time_in_minutes.unwrap_or(0),
            }
        }
        Some("LINEAR") => {
            let c = dc.linear_configuration.ok_or(
                "deploymentConfiguration.linearConfiguration is missing; a LINEAR deployment \
                 needs stepPercent and stepBakeTimeInMinutes",
            )?;
            let step_percent = c
                .step_percent
                .ok_or("deploymentConfiguration.linearConfiguration.stepPercent is missing")?;
            if !(3.0..=100.0).contains(&step_percent) {
                return Err(format!(
                    "deploymentConfiguration.linearConfiguration.stepPercent is {step_percent}, \
                     expected 3.0 to 100.0"
                ));
            }
            Strategy::Linear {
                step_percent,
                step_bake_minutes: c.step_bake_time_in_minutes.unwrap_or(0),
            }
        }
        Some("ROLLING") => {
            return Err(
                "deploymentConfiguration.strategy is ROLLING, which runs no lifecycle hooks; \
                 set BLUE_GREEN, CANARY or LINEAR"
                    .into(),
            );
        }
        Some(other) => {
            return Err(format!(
                "deploymentConfiguration.strategy is {other:?}, expected BLUE_GREEN, CANARY or LINEAR"
            ));
        }
        None => {
            return Err(
                "deploymentConfiguration.strategy is missing; ECS then deploys ROLLING, which \
                 runs no lifecycle hooks; set BLUE_GREEN, CANARY or LINEAR"
                    .into(),
            );
        }
    };
    let bake_minutes = dc.bake_time_in_minutes.unwrap_or(0);
    if bake_minutes > 1440 {
        return Err(format!(
            "deploymentConfiguration.bakeTimeInMinutes is {bake_minutes}, expected 0 to 1440"
        ));
    }
    let mut hooks = Vec::new();
    let mut ignored = Vec::new();
    for (i, h) in dc.lifecycle_hooks.into_iter().enumerate() {
        let at = format!("deploymentConfiguration.lifecycleHooks[{i}]");
        let kind = h.target_type.as_deref().unwrap_or("AWS_LAMBDA");
        match kind {
            "AWS_LAMBDA" => {}
            "PAUSE" => {
                ignored.push(format!(
                    "{at} is a PAUSE hook (it waits for ContinueServiceDeployment); not rehearsed"
                ));
                continue;
            }
            other => {
                return Err(format!(
                    "{at}.targetType is {other:?}, expected AWS_LAMBDA or PAUSE"
                ));
            }
        }
        let target_arn = h
            .hook_target_arn
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("{at}.hookTargetArn is missing"))?;
        if h.lifecycle_stages.is_empty() {
            return Err(format!(
                "{at}.lifecycleStages is missing or empty; choose from {}",
                stage_names()
            ));
        }
        let mut stages = Vec::new();
        for (j, s) in h.lifecycle_stages.iter().enumerate() {
            let stage = Stage::known(s).ok_or_else(|| {
                format!(
                    "{at}.lifecycleStages[{j}] is {s:?}, expected one of {}",
                    stage_names()
                )
            })?;
            if !stages.contains(&stage) {
                stages.push(stage);
            }
        }
        let (timeout_minutes, timeout_action) = match h.timeout_configuration {
            None => (DEFAULT_HOOK_TIMEOUT_MINUTES, TimeoutAction::Rollback),
            Some(t) => {
                let minutes = t.timeout_in_minutes.unwrap_or(DEFAULT_HOOK_TIMEOUT_MINUTES);
                if !(1..=1440).contains(&minutes) {
                    return Err(format!(
                        "{at}.timeoutConfiguration.timeoutInMinutes is {minutes}, expected 1 to 1440"
                    ));
                }
                let action = match t.action.as_deref() {
                    None | Some("ROLLBACK") => TimeoutAction::Rollback,
                    Some("CONTINUE") => TimeoutAction::Continue,
                    Some(other) => {
                        return Err(format!(
                            "{at}.timeoutConfiguration.action is {other:?}, expected ROLLBACK or CONTINUE"
                        ));
                    }
                };
                (minutes, action)
            }
        };
        hooks.push(Hook {
            index: i,
            target_arn,
            role_arn: h.role_arn,
            stages,
            details: h.hook_details.filter(|v| !v.is_null()),
            timeout_minutes,
            timeout_action,
        });
    }
    if hooks.is_empty() {
        return Err(
            "deploymentConfiguration.lifecycleHooks has no AWS_LAMBDA hook: there is nothing to rehearse"
                .into(),
        );
    }
    Ok(Service {
        name,
        cluster,
        strategy,
        bake_minutes,
        hooks,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(dc: &str) -> Result<Service, String> {
        parse(&format!(
            r#"{{"serviceName": "checkout", "cluster": "shop", "deploymentConfiguration": {dc}}}"#
        ))
    }

    const HOOK: &str = r#"[{"hookTargetArn": "arn:aws:lambda:us-west-2:111122223333:function:after-install", "lifecycleStages": ["POST_SCALE_UP"]}]"#;

    #[test]
    fn linear_steps_end_at_100() {
        let s = Strategy::Linear {
            step_percent: 30.0,
            step_bake_minutes: 1,
        };
        assert_eq!(s.steps(), vec![30.0, 60.0, 90.0, 100.0]);
        let s = Strategy::Linear {
            step_percent: 25.0,
            step_bake_minutes: 1,
        };
        assert_eq!(s.steps(), vec![25.0, 50.0, 75.0, 100.0]);
        let s = Strategy::Linear {
            step_percent: 3.3,
            step_bake_minutes: 0,
        };
        let steps = s.steps();
        assert_eq!(steps.len(), 31);
        assert_eq!(steps[2], 9.9);
        assert_eq!(*steps.last().unwrap(), 100.0);
    }

    #[test]
    fn canary_steps() {
        let s = Strategy::Canary {
            percent: 10.0,
            bake_minutes: 5,
        };
        assert_eq!(s.steps(), vec![10.0, 100.0]);
        assert_eq!(s.step_bake_minutes(), 5);
        assert_eq!(Strategy::BlueGreen.steps(), vec![100.0]);
    }

    #[test]
    fn function_names() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:before-allow-traffic"),
            "before-allow-traffic"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:gate:live"),
            "gate"
        );
        assert_eq!(function_name("after-install"), "after-install");
    }

    #[test]
    fn reads_a_service() {
        let s = parse(
            r#"{"serviceName": "checkout", "cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/shop",
                "taskDefinition": "checkout:12",
                "deploymentConfiguration": {"strategy": "CANARY", "bakeTimeInMinutes": 10,
                  "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 5},
                  "lifecycleHooks": [
                    {"hookTargetArn": "arn:aws:lambda:us-west-2:111122223333:function:after-install",
                     "roleArn": "arn:aws:iam::111122223333:role/hooks",
                     "lifecycleStages": ["POST_SCALE_UP", "POST_SCALE_UP"],
                     "hookDetails": {"greenlight": {"whenNoChecks": "pass"}},
                     "timeoutConfiguration": {"timeoutInMinutes": 30, "action": "CONTINUE"}},
                    {"targetType": "PAUSE", "lifecycleStages": ["PRE_SCALE_UP"]}
                  ]}}"#,
        )
        .unwrap();
        assert_eq!(s.cluster, "shop");
        assert_eq!(s.bake_minutes, 10);
        assert_eq!(
            s.strategy,
            Strategy::Canary {
                percent: 10.0,
                bake_minutes: 5
            }
        );
        assert_eq!(s.hooks.len(), 1);
        assert_eq!(s.hooks[0].stages, vec![Stage::PostScaleUp]);
        assert_eq!(s.hooks[0].timeout_minutes, 30);
        assert_eq!(s.hooks[0].timeout_action, TimeoutAction::Continue);
        assert_eq!(s.ignored.len(), 1);
        assert_eq!(
            s.hook_region_account(),
            Some(("us-west-2".into(), "111122223333".into()))
        );
    }

    #[test]
    fn clear_errors() {
        let e = service(r#"{"strategy": "ROLLING"}"#).unwrap_err();
        assert!(e.contains("ROLLING"), "{e}");
        let e = service(r#"{"strategy": "CANARY", "lifecycleHooks": []}"#).unwrap_err();
        assert!(e.contains("canaryConfiguration"), "{e}");
        let e = service(&format!(
            r#"{{"strategy": "BLUE_GREEN", "lifecycleHooks": {}}}"#,
            HOOK.replace("POST_SCALE_UP", "POST_SCALEUP")
        ))
        .unwrap_err();
        assert!(
            e.contains("lifecycleHooks[0].lifecycleStages[0]") && e.contains("POST_SCALE_UP"),
            "{e}"
        );
        let e = service(r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": "ten"}"#).unwrap_err();
        assert!(
            e.contains("deploymentConfiguration.bakeTimeInMinutes"),
            "{e}"
        );
        let e = service(r#"{"strategy": "BLUE_GREEN"}"#).unwrap_err();
        assert!(e.contains("no AWS_LAMBDA hook"), "{e}");
        let ok = service(&format!(
            r#"{{"strategy": "BLUE_GREEN", "lifecycleHooks": {HOOK}}}"#
        ))
        .unwrap();
        assert_eq!(ok.hooks[0].details, None);
        assert_eq!(ok.bake_minutes, 0);
    }
}
