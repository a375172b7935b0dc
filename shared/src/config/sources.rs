//! Reading the sources: the function's own configuration (`GREENLIGHT_CONFIG`, or the SSM
//! parameter `GREENLIGHT_CONFIG_PARAMETER` names, read once per process through
//! [`Services`]), and an ECS hook's `hookDetails.greenlight`.

use serde_json::{Map, Value, json};

use super::{CONFIG_KEY, Config, Selector, resolve, resolve_for};
use crate::budget::Budget;
use crate::deployment::Deployment;
use crate::notify::Notifications;
use crate::schema::{ConfigError, Source, kind_of};
use crate::services::Services;

/// Reads Greenlight's settings from `hookDetails.greenlight`.
pub fn hook_source(details: &Map<String, Value>) -> Result<Option<Source>, ConfigError> {
    let origin = format!("hookDetails.{CONFIG_KEY}");
    match details.get(CONFIG_KEY) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(_)) => Ok(Some(Source {
            origin,
            value: details[CONFIG_KEY].clone(),
        })),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(Some(Source { origin, value: v })),
            _ => Err(ConfigError {
                origin,
                path: String::new(),
                message: "is a string that does not hold a JSON object".into(),
            }),
        },
        Some(other) => Err(ConfigError {
            origin,
            path: String::new(),
            message: format!(
                "is {}, expected an object such as {{\"checks\": {{…}}}}",
                kind_of(other)
            ),
        }),
    }
}

/// The configuration for `deployment`: the function's own, the settings it holds for the
/// deployment's service or deployment group, then `hook`; validated.
pub async fn load(
    services: &Services,
    budget: &Budget,
    hook: Option<Source>,
    deployment: &Deployment,
) -> Result<Config, ConfigError> {
    let base: Vec<Source> = services.base_config(budget).await?.into_iter().collect();
    let cd = deployment.codedeploy.as_ref();
    let selector = Selector {
        cluster: deployment.cluster.clone(),
        service: deployment.service.clone(),
        application: cd.map(|c| c.application.clone()),
        deployment_group: cd.map(|c| c.deployment_group.clone()),
    };
    resolve_for(&base, hook, &selector)
}

/// The `notifications` settings from the same sources as the checks (`hook_details`: the
/// ECS hook's, if any). Only the `notifications` key is read, so a broken check still gets
/// its failure announced.
pub async fn load_notifications(
    services: &Services,
    budget: &Budget,
    hook_details: Option<&Map<String, Value>>,
) -> Result<Notifications, String> {
    let mut sources: Vec<Source> = Vec::new();
    sources.extend(
        services
            .base_config(budget)
            .await
            .map_err(|e| e.to_string())?,
    );
    if let Some(details) = hook_details {
        sources.extend(hook_source(details).map_err(|e| e.to_string())?);
    }
    let only: Vec<Source> = sources
        .into_iter()
        .filter_map(|s| {
            let v = s.value.get("notifications")?.clone();
            Some(Source {
                origin: s.origin,
                value: json!({ "notifications": v }),
            })
        })
        .collect();
    if only.is_empty() {
        return Ok(Notifications::default());
    }
    resolve(&only)
        .map(|c| c.settings.notifications)
        .map_err(|e| e.to_string())
}
