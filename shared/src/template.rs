//! `${name}` placeholders in check settings (URLs, headers, bodies), filled from the
//! deployment: `${cluster}`, `${service}`, `${region}`, `${account}`, `${stage}`,
//! `${targetRevisionId}`, `${sourceRevisionId}`, `${function}`.

use crate::deployment::Deployment;

/// The names a template may use.
pub const NAMES: [&str; 17] = [
    "cluster",
    "service",
    "region",
    "account",
    "stage",
    "targetRevisionId",
    "sourceRevisionId",
    "function",
    "greenTargetGroup",
    "blueTargetGroup",
    "loadBalancer",
    "application",
    "deploymentGroup",
    "functionName",
    "alias",
    "newVersion",
    "oldVersion",
];

/// Splits a template into literal text and placeholder names.
fn parts(template: &str) -> Result<Vec<(bool, &str)>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push((false, &rest[..start]));
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {template:?}: write ${{name}}"))?;
        out.push((true, &after[..end]));
        rest = &after[end + 1..];
    }
    out.push((false, rest));
    Ok(out)
}

/// Checks that every placeholder is a known name.
pub fn validate(template: &str) -> Result<(), String> {
    for (is_name, name) in parts(template)? {
        if is_name && !NAMES.contains(&name) {
            return Err(format!(
                "unknown placeholder ${{{name}}}; known: {}",
                NAMES.map(|n| format!("${{{n}}}")).join(", ")
            ));
        }
    }
    Ok(())
}

fn lambda(d: &Deployment) -> Option<&crate::deployment::LambdaFacts> {
    d.codedeploy.as_ref().and_then(|c| c.lambda.as_ref())
}

fn value(name: &str, d: &Deployment) -> Option<String> {
    let id_of = |arn: &Option<String>| {
        arn.as_deref()
            .and_then(|a| a.rsplit('/').next())
            .map(str::to_string)
    };
    match name {
        "cluster" => d.cluster.clone(),
        "service" => d.service.clone(),
        "region" => d.region.clone(),
        "account" => d.account.clone(),
        "stage" => d.stage.as_ref().map(|s| s.as_str().to_string()),
        "targetRevisionId" => d.target_revision_id.clone(),
        "sourceRevisionId" => id_of(&d.source_revision_arn),
        "function" => Some(d.role.name().to_string()),
        "application" => d.codedeploy.as_ref().map(|c| c.application.clone()),
        "deploymentGroup" => d.codedeploy.as_ref().map(|c| c.deployment_group.clone()),
        "functionName" => lambda(d).and_then(|l| l.function_name.clone()),
        "alias" => lambda(d).and_then(|l| l.alias.clone()),
        "newVersion" => lambda(d).and_then(|l| l.target_version.clone()),
        "oldVersion" => lambda(d).and_then(|l| l.current_version.clone()),
        _ => None,
    }
}

/// The placeholder names a template uses.
pub fn names(template: &str) -> Vec<String> {
    parts(template)
        .map(|p| {
            p.into_iter()
                .filter(|(n, _)| *n)
                .map(|(_, t)| t.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Fills the placeholders. A placeholder this deployment has no value for is an error.
pub fn render(template: &str, d: &Deployment) -> Result<String, String> {
    render_with(template, d, &|_| None)
}

/// Fills the placeholders, with values looked up by the caller (`extra`) first.
pub fn render_with(
    template: &str,
    d: &Deployment,
    extra: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    render_escaped(template, d, extra, &|v| Ok(v.to_string()))
}

/// Fills the placeholders like [`render_with`], each value passed through `escape` first:
/// a query language's quoting, so that a value can never change the query's meaning.
pub fn render_escaped(
    template: &str,
    d: &Deployment,
    extra: &dyn Fn(&str) -> Option<String>,
    escape: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut s = String::with_capacity(template.len());
    for (is_name, text) in parts(template)? {
        if is_name {
            let v = extra(text)
                .or_else(|| value(text, d))
                .ok_or_else(|| format!("${{{text}}} has no value in this deployment"))?;
            s.push_str(&escape(&v).map_err(|e| format!("${{{text}}}: {e}"))?);
        } else {
            s.push_str(text);
        }
    }
    Ok(s)
}
