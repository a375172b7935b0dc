//! ECS native blue/green lifecycle hooks: the event ECS sends, and the answer it reads.
//!
//! ECS invokes the hook synchronously. The answer is exactly
//! `{"hookStatus": "SUCCEEDED" | "FAILED" | "IN_PROGRESS", "callBackDelay": <seconds, only
//! with IN_PROGRESS>, "hookDetails": {…}}`; `hookDetails` returned with `IN_PROGRESS` comes
//! back on the next invocation of the same hook in the same deployment.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{EventError, kind_of};
pub use crate::stage::Stage;
pub use crate::verdict::HookStatus;

/// Keys only the nested (current) event shape has.
pub const NESTED_KEYS: [&str; 4] = [
    "executionDetails",
    "lifecycleStage",
    "executionId",
    "resourceArn",
];
/// Keys of the flat launch-era shape.
pub const FLAT_KEYS: [&str; 4] = [
    "serviceArn",
    "targetServiceRevisionArn",
    "testTrafficWeights",
    "productionTrafficWeights",
];

/// Which of the two documented event shapes arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `executionId`, `lifecycleStage`, `resourceArn`, `executionDetails{…}`, `hookDetails`.
    Nested,
    /// The launch-era documentation's shape: the details at the top level, no stage.
    Flat,
}

/// A traffic weight map: service revision ARN → percentage, in the event's order.
pub type Weights = Vec<(String, f64)>;

/// An ECS lifecycle hook event, either shape.
#[derive(Clone, Debug, PartialEq)]
pub struct EcsEvent {
    pub shape: Shape,
    pub execution_id: Option<String>,
    /// `None` for the flat shape.
    pub lifecycle_stage: Option<Stage>,
    /// The service deployment ARN (`…:service-deployment/cluster/service/id`).
    pub resource_arn: Option<String>,
    pub service_arn: String,
    pub target_service_revision_arn: String,
    pub test_traffic_weights: Weights,
    pub production_traffic_weights: Weights,
    /// `hookDetails` as an object: absent and `null` give an empty one, a string holding a
    /// JSON object is unwrapped.
    pub hook_details: Map<String, Value>,
}

fn text(obj: &Map<String, Value>, at: &str, name: &str) -> Result<Option<String>, EventError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(EventError(format!(
            "ECS event: {at}{name} is an empty string"
        ))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(EventError(format!(
            "ECS event: {at}{name} is {}, expected a string",
            kind_of(other)
        ))),
    }
}

fn required(obj: &Map<String, Value>, at: &str, name: &str) -> Result<String, EventError> {
    text(obj, at, name)?.ok_or_else(|| {
        EventError(format!(
            "ECS event: {at}{name} is missing; ECS sends it with every lifecycle hook event"
        ))
    })
}

fn weights(obj: &Map<String, Value>, at: &str, name: &str) -> Result<Weights, EventError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(arn, w)| match w.as_f64() {
                Some(x) if (0.0..=100.0).contains(&x) => Ok((arn.clone(), x)),
                _ => Err(EventError(format!(
                    "ECS event: {at}{name}[\"{arn}\"] is {w}, expected a percentage from 0 to 100"
                ))),
            })
            .collect(),
        Some(other) => Err(EventError(format!(
            "ECS event: {at}{name} is {}, expected an object of service revision ARN → percentage",
            kind_of(other)
        ))),
    }
}

/// `hookDetails` in any form some tool may send: absent, null, an object, or a string
/// holding a JSON object.
pub fn hook_details(v: Option<&Value>) -> Result<Map<String, Value>, EventError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(EventError(format!(
                "ECS event: hookDetails is a string holding {}, expected a JSON object such as \
                 {{\"greenlight\": {{…}}}}",
                kind_of(&other)
            ))),
            Err(e) => Err(EventError(format!(
                "ECS event: hookDetails is a string that is not valid JSON ({e}); set it to a JSON \
                 object such as {{\"greenlight\": {{…}}}}"
            ))),
        },
        Some(other) => Err(EventError(format!(
            "ECS event: hookDetails is {}, expected a JSON object such as {{\"greenlight\": {{…}}}}",
            kind_of(other)
        ))),
    }
}

/// Parses either shape. Unknown extra fields are ignored.
pub fn parse(event: &Value) -> Result<EcsEvent, EventError> {
    let Value::Object(top) = event else {
        return Err(EventError(format!(
            "ECS event: the event is {}, not an object",
            kind_of(event)
        )));
    };
    let nested = NESTED_KEYS.iter().any(|k| top.contains_key(*k));
    let hook_details = hook_details(top.get("hookDetails"))?;
    if nested {
        let details = match top.get("executionDetails") {
            Some(Value::Object(d)) => d,
            Some(other) => {
                return Err(EventError(format!(
                    "ECS event: executionDetails is {}, expected an object with serviceArn and \
                     targetServiceRevisionArn",
                    kind_of(other)
                )));
            }
            None => {
                return Err(EventError(
                    "ECS event: executionDetails is missing; ECS sends serviceArn and \
                     targetServiceRevisionArn inside it"
                        .into(),
                ));
            }
        };
        let at = "executionDetails.";
        Ok(EcsEvent {
            shape: Shape::Nested,
            execution_id: text(top, "", "executionId")?,
            lifecycle_stage: text(top, "", "lifecycleStage")?.map(|s| Stage::parse(&s)),
            resource_arn: text(top, "", "resourceArn")?,
            service_arn: required(details, at, "serviceArn")?,
            target_service_revision_arn: required(details, at, "targetServiceRevisionArn")?,
            test_traffic_weights: weights(details, at, "testTrafficWeights")?,
            production_traffic_weights: weights(details, at, "productionTrafficWeights")?,
            hook_details,
        })
    } else {
        Ok(EcsEvent {
            shape: Shape::Flat,
            execution_id: None,
            lifecycle_stage: None,
            resource_arn: None,
            service_arn: required(top, "", "serviceArn")?,
            target_service_revision_arn: required(top, "", "targetServiceRevisionArn")?,
            test_traffic_weights: weights(top, "", "testTrafficWeights")?,
            production_traffic_weights: weights(top, "", "productionTrafficWeights")?,
            hook_details,
        })
    }
}

/// The answer, exactly as ECS reads it. Field order is fixed: `hookStatus`,
/// `callBackDelay` (only with `IN_PROGRESS`), `hookDetails`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsResponse {
    pub hook_status: HookStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u64>,
    pub hook_details: Map<String, Value>,
}

impl EcsResponse {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("an ECS response always serialises")
    }
}
