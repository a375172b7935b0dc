//! Reading a hook's answer the way ECS does, and the decision record Greenlight's
//! functions put in it.

use greenlight::schema::kind_of;
use serde::Serialize;
use serde_json::Value;

use crate::invoke::clip;

/// ECS waits this long before invoking again after `IN_PROGRESS` without `callBackDelay`.
pub const DEFAULT_CALL_BACK_DELAY: u64 = 30;

/// A valid answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookStatus {
    Succeeded,
    Failed,
    /// `callBackDelay` in seconds, when the answer has one.
    InProgress(Option<u64>),
}

/// A valid answer and the `hookDetails` it carried (`None` when absent or `null`).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: HookStatus,
    pub hook_details: Option<Value>,
}

/// Reads a payload as ECS reads it: a JSON object with `hookStatus` `SUCCEEDED`, `FAILED`
/// or `IN_PROGRESS` (an optional `callBackDelay` in whole seconds with `IN_PROGRESS`). Anything
/// else is an invalid answer, which ECS treats as a failure. The error says why.
pub fn read(payload: &[u8]) -> (Result<Answer, String>, Option<Value>) {
    let value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            let text = String::from_utf8_lossy(payload);
            return (
                Err(format!(
                    "the answer is not JSON ({e}): {:?}",
                    clip(text.trim(), 200)
                )),
                None,
            );
        }
    };
    let result = check(&value);
    (result, Some(value))
}

fn check(value: &Value) -> Result<Answer, String> {
    let Value::Object(obj) = value else {
        return Err(format!(
            "the answer is {}, not an object with hookStatus",
            kind_of(value)
        ));
    };
    let status = match obj.get("hookStatus") {
        None | Some(Value::Null) => return Err("the answer has no hookStatus".into()),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                "hookStatus is {}, expected \"SUCCEEDED\", \"FAILED\" or \"IN_PROGRESS\"",
                kind_of(other)
            ));
        }
    };
    let status = match status {
        "SUCCEEDED" => HookStatus::Succeeded,
        "FAILED" => HookStatus::Failed,
        "IN_PROGRESS" => {
            let delay = match obj.get("callBackDelay") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
                Some(other) => {
                    return Err(format!(
                        "callBackDelay is {other}, expected a whole number of seconds"
                    ));
                }
            };
            HookStatus::InProgress(delay)
        }
        other => {
            return Err(format!(
                "hookStatus is {other:?}, expected \"SUCCEEDED\", \"FAILED\" or \"IN_PROGRESS\""
            ));
        }
    };
    Ok(Answer {
        status,
        hook_details: obj.get("hookDetails").filter(|v| !v.is_null()).cloned(),
    })
}

/// One check's line in a decision record.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckLine {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub verdict: String,
    pub effect: String,
    pub reason: String,
}

/// What the timeline shows of `hookDetails.greenlightDecision`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub reason: Option<String>,
    pub checks: Vec<CheckLine>,
    pub notes: Vec<String>,
}

/// The trimmed decision record in an answer's `hookDetails`, when there is one.
pub fn decision(hook_details: Option<&Value>) -> Option<Decision> {
    let d = hook_details?.get("greenlightDecision")?;
    if !d.is_object() {
        return None;
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let checks = d
        .get("checks")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| CheckLine {
                    name: text(c, "name").unwrap_or_default(),
                    kind: text(c, "type").unwrap_or_default(),
                    verdict: text(c, "verdict").unwrap_or_default(),
                    effect: text(c, "effect").unwrap_or_default(),
                    reason: text(c, "reason").unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let notes = d
        .get("notes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Decision {
        reason: text(d, "reason"),
        checks,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: Value) -> Result<HookStatus, String> {
        read(v.to_string().as_bytes()).0.map(|a| a.status)
    }

    #[test]
    fn reads_answers() {
        assert_eq!(
            status(json!({"hookStatus": "SUCCEEDED"})),
            Ok(HookStatus::Succeeded)
        );
        assert_eq!(
            status(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 5})),
            Ok(HookStatus::InProgress(Some(5)))
        );
        assert_eq!(
            status(json!({"hookStatus": "IN_PROGRESS"})),
            Ok(HookStatus::InProgress(None))
        );
        assert!(
            status(json!({"hookStatus": "succeeded"}))
                .unwrap_err()
                .contains("\"succeeded\"")
        );
        assert!(
            status(json!({"status": "SUCCEEDED"}))
                .unwrap_err()
                .contains("no hookStatus")
        );
        assert!(
            status(json!({"hookStatus": "IN_PROGRESS", "callBackDelay": "30"}))
                .unwrap_err()
                .contains("callBackDelay")
        );
        assert!(status(json!("SUCCEEDED")).unwrap_err().contains("a string"));
        let (r, raw) = read(b"not json");
        assert!(r.unwrap_err().contains("not JSON"));
        assert_eq!(raw, None);
    }

    #[test]
    fn reads_the_decision() {
        let details = json!({"greenlightDecision": {
            "function": "before-allow-traffic", "verdict": "FAILED",
            "reason": "blocked by health: answered 503",
            "checks": [{"name": "health", "type": "http", "verdict": "fail", "effect": "blocked", "reason": "answered 503"}],
            "notes": ["a note"], "invocation": 1}});
        let d = decision(Some(&details)).unwrap();
        assert_eq!(d.reason.as_deref(), Some("blocked by health: answered 503"));
        assert_eq!(d.checks[0].effect, "blocked");
        assert_eq!(d.notes, vec!["a note"]);
        assert_eq!(decision(Some(&json!({"team": "payments"}))), None);
    }
}
