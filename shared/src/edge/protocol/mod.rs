//! The two callers Greenlight speaks to, and how an incoming event is told apart.
//!
//! * ECS native blue/green lifecycle hooks invoke the function synchronously and read its
//!   return value ([`ecs`]).
//! * CodeDeploy lifecycle event hooks invoke it asynchronously and wait for a status report
//!   through the CodeDeploy API ([`codedeploy`]).
//!
//! The protocol is decided from the event's shape alone. Checks never see which one called.

pub mod codedeploy;
pub mod ecs;
pub mod payload;

use serde_json::Value;

pub use codedeploy::CodeDeployEvent;
pub use ecs::{EcsEvent, EcsResponse, HookStatus, Stage};

/// An event, recognised.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    Ecs(EcsEvent),
    CodeDeploy(CodeDeployEvent),
}

/// Why an event could not be understood. The message names what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

pub use crate::schema::kind_of;

/// Recognises the protocol from the event's shape and parses it.
pub fn parse(event: &Value) -> Result<Invocation, EventError> {
    let Value::Object(map) = event else {
        return Err(EventError(format!(
            "the event is {}, not a JSON object: expected an ECS lifecycle hook event \
             (executionDetails, lifecycleStage, …) or a CodeDeploy one \
             (DeploymentId, LifecycleEventHookExecutionId)",
            kind_of(event)
        )));
    };
    if map.contains_key(codedeploy::CONTINUATION_KEY) {
        return codedeploy::parse_continuation(event).map(Invocation::CodeDeploy);
    }
    if map.contains_key("DeploymentId") || map.contains_key("LifecycleEventHookExecutionId") {
        return codedeploy::parse(event).map(Invocation::CodeDeploy);
    }
    if ecs::NESTED_KEYS.iter().any(|k| map.contains_key(*k))
        || ecs::FLAT_KEYS.iter().any(|k| map.contains_key(*k))
    {
        return ecs::parse(event).map(Invocation::Ecs);
    }
    let mut keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
    if keys.is_empty() {
        keys.push("none");
    }
    Err(EventError(format!(
        "the event has none of the fields of an ECS lifecycle hook event (executionDetails, \
         lifecycleStage, serviceArn, targetServiceRevisionArn) or of a CodeDeploy one \
         (DeploymentId, LifecycleEventHookExecutionId); its keys: {}",
        keys.join(", ")
    )))
}
