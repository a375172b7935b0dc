//! `greenlight explain`: a decision record in words. It reads what a person has at hand: a
//! function's log line (JSON, its `decision` field holding the record), an ECS answer
//! (`hookDetails.greenlightDecision`), a CodeDeploy hook's answer, or the record itself.

use serde_json::Value;

/// An ECS event for `stage`, with placeholder ARNs (`greenlight check` without `--event`).
pub fn sample_event(stage: &str) -> Value {
    let base = "arn:aws:ecs:us-east-1:123456789012";
    serde_json::json!({
        "executionId": "greenlight-check",
        "lifecycleStage": stage,
        "resourceArn": format!("{base}:service-deployment/cluster/service/greenlight-check"),
        "executionDetails": {
            "serviceArn": format!("{base}:service/cluster/service"),
            "targetServiceRevisionArn": format!("{base}:service-revision/cluster/service/1"),
            "testTrafficWeights": {},
            "productionTrafficWeights": {}
        }
    })
}

/// The record inside `value`, wherever it is.
pub fn record_of(value: &Value) -> Option<Value> {
    let unwrap = |v: &Value| -> Option<Value> {
        match v {
            Value::String(s) => serde_json::from_str(s).ok(),
            Value::Object(_) => Some(v.clone()),
            _ => None,
        }
    };
    if value.get("verdict").is_some() && value.get("function").is_some() {
        return Some(value.clone());
    }
    for path in [
        "/decision",
        "/fields/decision",
        "/message/decision",
        "/hookDetails/greenlightDecision",
    ] {
        if let Some(r) = value.pointer(path).and_then(unwrap)
            && r.get("verdict").is_some()
        {
            return Some(r);
        }
    }
    // A JSON log line whose message is itself a JSON document.
    value
        .get("message")
        .and_then(Value::as_str)
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .and_then(|v| record_of(&v))
}

/// Reads `text`: one JSON document, or log lines of which the last holding a record counts.
pub fn read(text: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return record_of(&v).ok_or_else(|| "no decision record in this document (expected a log line with `decision`, an answer with hookDetails.greenlightDecision, or a record)".into());
    }
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find_map(|v| record_of(&v))
        .ok_or_else(|| "no decision record found: give a log line (JSON) or an answer".into())
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The record in words.
pub fn explain(r: &Value) -> String {
    let mut out = String::new();
    let d = r.get("deployment").cloned().unwrap_or(Value::Null);
    let stage = r
        .get("stage")
        .or_else(|| d.get("stage"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let what = [s(&d, "service"), s(&d, "codedeployDeploymentId")]
        .into_iter()
        .find(|x| !x.is_empty())
        .unwrap_or("the deployment");
    let verdict = s(r, "verdict");
    let meaning = match verdict {
        "SUCCEEDED" | "Succeeded" => "the deployment goes on",
        "FAILED" | "Failed" => "the deployment is stopped and rolled back",
        "IN_PROGRESS" => "not decided yet: the hook is asked again",
        _ => "",
    };
    out.push_str(&format!(
        "{} answered {verdict} for {what}{}: {meaning}.\n",
        s(r, "function"),
        if stage.is_empty() {
            String::new()
        } else {
            format!(" at {stage}")
        }
    ));
    out.push_str(&format!("Why: {}\n", s(r, "reason")));
    if let Some(d) = r.get("callBackDelay").and_then(Value::as_u64) {
        out.push_str(&format!("Next invocation in {d}s.\n"));
    }
    if let Some(n) = r.get("invocation").and_then(Value::as_u64) {
        out.push_str(&format!(
            "Invocation {n} of this hook in this deployment.\n"
        ));
    }
    let checks = r
        .get("checks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !checks.is_empty() {
        out.push_str("Checks:\n");
        for c in &checks {
            let effect = match s(c, "effect") {
                "passed" => "passed",
                "blocked" => "blocked the deployment",
                "waiting" => "still waiting",
                "failedOpen" => "could not run, and counted as passed (onError: pass)",
                "retrying" => "could not run; trying again (onError: retry)",
                "dryRun" => "recorded only (dryRun)",
                "skipped" => "skipped",
                other => other,
            };
            out.push_str(&format!(
                "  - {} ({}): {effect}: {}\n",
                s(c, "name"),
                s(c, "type"),
                s(c, "reason")
            ));
            if let Some(dec) = c.pointer("/observed/decision") {
                out.push_str(&format!(
                    "    decided by {} {} at {}\n",
                    s(&dec["by"], "via"),
                    s(&dec["by"], "id"),
                    s(dec, "atMs")
                ));
            }
        }
    }
    for n in r
        .get("notifications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ok = n.get("delivered").and_then(Value::as_bool).unwrap_or(false);
        out.push_str(&format!(
            "Notification {} to {} ({}): {}\n",
            s(n, "event"),
            s(n, "channel"),
            s(n, "type"),
            if ok {
                "delivered".to_string()
            } else {
                format!("not delivered: {}", s(n, "error"))
            }
        ));
    }
    for n in r
        .get("notes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("Note: {}\n", n.as_str().unwrap_or("")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_is_found_in_a_log_line_or_an_answer_and_told() {
        let record = json!({"function": "before-allow-traffic", "verdict": "FAILED", "reason": "blocked by health: answered 503",
            "stage": "TEST_TRAFFIC_SHIFT", "invocation": 2,
            "checks": [{"name": "health", "type": "http", "verdict": "fail", "effect": "blocked", "reason": "answered 503"}]});
        let line = json!({"level": "WARN", "decision": record.to_string()});
        let answer = json!({"hookStatus": "FAILED", "hookDetails": {"greenlightDecision": record}});
        for doc in [
            line.to_string(),
            answer.to_string(),
            format!("noise\n{line}\n"),
        ] {
            let text = explain(&read(&doc).unwrap());
            assert!(text.starts_with("before-allow-traffic answered FAILED for the deployment at TEST_TRAFFIC_SHIFT: the deployment is stopped and rolled back."), "{text}");
            assert!(
                text.contains("  - health (http): blocked the deployment: answered 503"),
                "{text}"
            );
        }
        assert!(read("{}").is_err());
    }
}
