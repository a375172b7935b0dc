//! `greenlight validate`: configurations checked offline with the functions' own parser and
//! messages. A file is read as what it holds:
//!
//! * a CloudFormation template (`Resources`): every `AWS::ECS::Service`'s lifecycle hooks'
//!   `HookDetails`, and every Lambda function's `GREENLIGHT_CONFIG` variable;
//! * an ECS service definition (`CreateService` / `UpdateService` input, or ecspresso's
//!   service definition): every lifecycle hook's `hookDetails`;
//! * an ECS hook's `hookDetails` (an object with a `greenlight` key);
//! * otherwise, a configuration document (as `GREENLIGHT_CONFIG` holds it).
//!
//! A hook's settings are merged as the function would merge them: the environment's
//! configuration (`--config`), its settings for the service, then `hookDetails.greenlight`.

use greenlight::config::{self, Selector, Source};
use serde::Serialize;
use serde_json::{Map, Value};

/// One configuration found in a file, and whether it is valid.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub file: String,
    /// Where in the file: `.` for the whole document, else a path.
    pub location: String,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The checks the configuration runs (valid ones).
    pub checks: Vec<String>,
    /// Something worth knowing that is not an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn finding(file: &str, location: String, result: Result<config::Config, String>) -> Finding {
    match result {
        Ok(c) => {
            let checks: Vec<String> = c.checks.iter().map(|c| c.name.clone()).collect();
            let note = checks
                .is_empty()
                .then(|| "no checks: the hook answers as whenNoChecks says".to_string());
            Finding {
                file: file.into(),
                location,
                valid: true,
                error: None,
                checks,
                note,
            }
        }
        Err(e) => Finding {
            file: file.into(),
            location,
            valid: false,
            error: Some(e),
            checks: Vec::new(),
            note: None,
        },
    }
}

/// The environment's configuration (`--config FILE`), as a source.
pub fn environment_source(file: &str, text: &str) -> Result<Source, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("{file}: not JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!("{file}: a configuration is a JSON object"));
    }
    Ok(Source {
        origin: config::ENV_INLINE.to_string(),
        value,
    })
}

/// Validates what `text` (the contents of `file`) holds.
pub fn validate(file: &str, text: &str, env: Option<&Source>) -> Result<Vec<Finding>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "{file}: not JSON ({e}); YAML is not read: convert it first, e.g. `yq -o json {file}`"
        )
    })?;
    let Value::Object(doc) = &value else {
        return Err(format!("{file}: expected a JSON object"));
    };
    let base: Vec<Source> = env.cloned().into_iter().collect();
    if let Some(Value::Object(resources)) = doc.get("Resources") {
        return Ok(template(file, resources, &base));
    }
    if doc.contains_key("deploymentConfiguration") {
        return Ok(service(
            file,
            doc,
            ".",
            &base,
            "deploymentConfiguration",
            "lifecycleHooks",
            "hookDetails",
        ));
    }
    if let Some(Value::Object(details)) = doc.get("hookDetails") {
        return Ok(vec![hook(
            file,
            ".hookDetails".into(),
            details,
            &base,
            &Selector::default(),
        )]);
    }
    if doc.contains_key(config::CONFIG_KEY) && !doc.contains_key("checks") {
        return Ok(vec![hook(
            file,
            ".".into(),
            doc,
            &base,
            &Selector::default(),
        )]);
    }
    let mut sources = base;
    sources.push(Source {
        origin: file.to_string(),
        value: value.clone(),
    });
    Ok(vec![finding(
        file,
        ".".into(),
        config::resolve(&sources).map_err(|e| e.to_string()),
    )])
}

fn hook(
    file: &str,
    location: String,
    details: &Map<String, Value>,
    base: &[Source],
    selector: &Selector,
) -> Finding {
    let result = config::sources::hook_source(details)
        .and_then(|hook| config::resolve_for(base, hook, selector))
        .map_err(|e| e.to_string());
    finding(file, location, result)
}

/// An ECS service definition's hooks (camelCase or, in a template, PascalCase keys).
fn service(
    file: &str,
    doc: &Map<String, Value>,
    at: &str,
    base: &[Source],
    dc: &str,
    hooks: &str,
    details: &str,
) -> Vec<Finding> {
    let text = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
    };
    let selector = Selector {
        cluster: text("cluster").or_else(|| text("Cluster")),
        service: text("serviceName")
            .or_else(|| text("service"))
            .or_else(|| text("ServiceName")),
        ..Selector::default()
    };
    let list = doc
        .get(dc)
        .and_then(|d| d.get(hooks))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, h) in list.iter().enumerate() {
        let location = format!("{at}{dc}.{hooks}[{i}].{details}").replacen("..", ".", 1);
        let details = match h.get(details) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => {
                    out.push(Finding {
                        file: file.into(),
                        location,
                        valid: false,
                        error: Some("is a string that does not hold a JSON object".into()),
                        checks: Vec::new(),
                        note: None,
                    });
                    continue;
                }
            },
            Some(_) => {
                out.push(Finding {
                    file: file.into(),
                    location,
                    valid: true,
                    error: None,
                    checks: Vec::new(),
                    note: Some("not a literal (an intrinsic function): not validated".into()),
                });
                continue;
            }
        };
        out.push(hook(file, location, &details, base, &selector));
    }
    if out.is_empty() {
        out.push(Finding {
            file: file.into(),
            location: format!("{at}{dc}"),
            valid: true,
            error: None,
            checks: Vec::new(),
            note: Some("no lifecycle hooks".into()),
        });
    }
    out
}

fn template(file: &str, resources: &Map<String, Value>, base: &[Source]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, r) in resources {
        let props = r.get("Properties").and_then(Value::as_object);
        match (r.get("Type").and_then(Value::as_str), props) {
            (Some("AWS::ECS::Service"), Some(p)) => {
                out.extend(service(
                    file,
                    p,
                    &format!("Resources.{name}.Properties."),
                    base,
                    "DeploymentConfiguration",
                    "LifecycleHooks",
                    "HookDetails",
                ));
            }
            (Some("AWS::Lambda::Function"), Some(p)) => {
                if let Some(v) = p
                    .get("Environment")
                    .and_then(|e| e.pointer("/Variables/GREENLIGHT_CONFIG"))
                {
                    let location = format!(
                        "Resources.{name}.Properties.Environment.Variables.GREENLIGHT_CONFIG"
                    );
                    match v.as_str().map(serde_json::from_str::<Value>) {
                        Some(Ok(value)) => {
                            let result = config::resolve(&[Source {
                                origin: config::ENV_INLINE.into(),
                                value,
                            }])
                            .map_err(|e| e.to_string());
                            out.push(finding(file, location, result));
                        }
                        Some(Err(e)) => out.push(Finding {
                            file: file.into(),
                            location,
                            valid: false,
                            error: Some(format!("not JSON: {e}")),
                            checks: Vec::new(),
                            note: None,
                        }),
                        None => out.push(Finding {
                            file: file.into(),
                            location,
                            valid: true,
                            error: None,
                            checks: Vec::new(),
                            note: Some(
                                "not a literal (an intrinsic function): not validated".into(),
                            ),
                        }),
                    }
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out.push(Finding {
            file: file.into(),
            location: "Resources".into(),
            valid: true,
            error: None,
            checks: Vec::new(),
            note: Some("no ECS service with lifecycle hooks and no Greenlight function".into()),
        });
    }
    out
}

/// The findings in words, one line each.
pub fn text(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let what = match (&f.error, f.checks.is_empty()) {
                (Some(e), _) => format!("invalid: {e}"),
                (None, false) => format!("valid (checks: {})", f.checks.join(", ")),
                (None, true) => format!("valid ({})", f.note.as_deref().unwrap_or("no checks")),
            };
            format!("{}: {}: {what}\n", f.file, f.location)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_document_is_validated_with_the_functions_messages() {
        let ok = validate(
            "c.json",
            r#"{"checks": {"go": {"type": "approval", "timeout": "2h"}}}"#,
            None,
        )
        .unwrap();
        assert!(ok[0].valid && ok[0].checks == ["go"], "{ok:?}");
        let bad = validate(
            "c.json",
            r#"{"checks": {"go": {"type": "approval", "approvers": ["alice"]}}}"#,
            None,
        )
        .unwrap();
        assert!(!bad[0].valid);
        assert!(bad[0].error.as_deref().unwrap().starts_with("configuration error in c.json at checks.go.approvers[0]: \"alice\" is not a known approver"), "{bad:?}");
    }

    #[test]
    fn every_hook_of_a_service_definition_and_a_template_is_found() {
        let env = environment_source(
            "env.json",
            r#"{"checks": {"health": {"type": "http", "url": "http://x/health"}}}"#,
        )
        .unwrap();
        let svc = r#"{"cluster": "shop", "serviceName": "checkout", "deploymentConfiguration": {"lifecycleHooks": [
            {"hookDetails": {"greenlight": {"checks": {"health": {"timeout": "10s"}}}}},
            {"hookDetails": {"greenlight": {"checks": {"x": {"type": "nope"}}}}}]}}"#;
        let f = validate("svc.json", svc, Some(&env)).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].valid && f[0].checks == ["health"], "{f:?}");
        assert!(
            !f[1].valid
                && f[1].location == ".deploymentConfiguration.lifecycleHooks[1].hookDetails",
            "{f:?}"
        );
        let cfn = r#"{"Resources": {"Svc": {"Type": "AWS::ECS::Service", "Properties": {"DeploymentConfiguration": {"LifecycleHooks": [
            {"HookDetails": "{\"greenlight\": {\"checks\": {\"h\": {\"type\": \"http\"}}}}"}]}}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Environment": {"Variables": {"GREENLIGHT_CONFIG": "{\"checks\": {}}"}}}}}}"#;
        let f = validate("t.json", cfn, None).unwrap();
        assert_eq!(f.len(), 2, "{f:?}");
        let hook = f
            .iter()
            .find(|x| x.location.contains("LifecycleHooks[0]"))
            .unwrap();
        assert!(
            !hook.valid && hook.error.as_deref().unwrap().contains("checks.h.url"),
            "{hook:?}"
        );
        assert!(
            validate("y.yaml", "a: b", None)
                .unwrap_err()
                .contains("YAML is not read")
        );
    }
}
