//! Configuration: which checks a function runs, and their settings.
//!
//! Sources, merged in this order with JSON Merge Patch (RFC 7386: objects merge key by
//! key, any other value replaces, `null` deletes):
//! 1. built-in defaults (none: every setting has a default of its own);
//! 2. the function's environment: `GREENLIGHT_CONFIG` (inline JSON) or
//!    `GREENLIGHT_CONFIG_PARAMETER` (the name of an SSM parameter holding it);
//! 3. ECS `hookDetails.greenlight`, per service and hook.
//!
//! Besides the checks, the document holds `whenNoChecks` and `notifications`
//! ([`crate::notify::settings`]).
//!
//! Validation is strict inside Greenlight's own settings: an unknown key, a wrong type or
//! an impossible value is an error naming the field path and what is expected. Keys of
//! `hookDetails` outside `greenlight` belong to other tools and are left alone.

use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checks::{self, CheckKind};
use crate::duration::HumanDuration;
use crate::protocol::{Stage, kind_of};

/// The `hookDetails` key holding Greenlight's settings.
pub const CONFIG_KEY: &str = "greenlight";
/// The `hookDetails` key holding state carried between `IN_PROGRESS` invocations.
pub const STATE_KEY: &str = "greenlightState";
/// The `hookDetails` key holding the (trimmed) decision record of the answer.
pub const DECISION_KEY: &str = "greenlightDecision";
/// Environment variable holding the configuration as inline JSON.
pub const ENV_INLINE: &str = "GREENLIGHT_CONFIG";
/// Environment variable naming an SSM parameter that holds the configuration.
pub const ENV_PARAMETER: &str = "GREENLIGHT_CONFIG_PARAMETER";

/// A configuration problem: where it is and what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where the faulty value came from (`GREENLIGHT_CONFIG`, `hookDetails.greenlight`, …).
    pub origin: String,
    /// The field path inside it, e.g. `checks.health.timeout` (empty for the whole value).
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(
                f,
                "configuration error in {}: {}",
                self.origin, self.message
            )
        } else {
            write!(
                f,
                "configuration error in {} at {}: {}",
                self.origin, self.path, self.message
            )
        }
    }
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: "configuration".into(),
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What a function does when no check applies at the stage it was called for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NoChecksPolicy {
    /// Answer SUCCEEDED, with "no checks configured" as the decision's reason and a warning
    /// in the log.
    #[default]
    Pass,
    /// Answer FAILED: a hook attached without checks is a mistake.
    Fail,
}

/// What an error of the check itself (not a bad release: the check could not run) means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// Fail closed: the hook fails (default).
    #[default]
    Fail,
    /// Fail open: the check counts as passed, and the record says it failed open.
    Pass,
    /// Treat as pending and try again, until the check's `within` deadline.
    Retry,
}

/// What a check does on a service's first deployment, when there is no previous revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FirstDeployment {
    /// Run as usual (default).
    #[default]
    Run,
    /// Skip: the check compares with, or needs, a previous revision.
    Skip,
}

fn default_within() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_true() -> bool {
    true
}

/// Settings every check has, whatever its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckCommon {
    /// `false` turns the check off (for one service, through `hookDetails`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// What it means when the check itself cannot run: `fail` (default), `pass`, `retry`.
    #[serde(default)]
    pub on_error: OnError,
    /// Evaluate and record, but never block the deployment.
    #[serde(default)]
    pub dry_run: bool,
    /// ECS lifecycle stages at which the check runs; default: every stage the hook is
    /// attached to. CodeDeploy invocations ignore this.
    #[serde(default)]
    #[schemars(with = "Option<Vec<StageName>>")]
    pub stages: Option<Vec<String>>,
    /// On the first deployment of a service (no previous revision): `run` (default) or
    /// `skip`.
    #[serde(default)]
    pub on_first_deployment: FirstDeployment,
    /// The longest the check may stay undecided (pending, or retrying errors), counted from
    /// its first evaluation in this deployment; then it fails. At least the check's
    /// `interval`. Default `10m`.
    #[serde(default = "default_within")]
    pub within: HumanDuration,
}

/// An ECS lifecycle stage that accepts hooks (for the schema).
#[derive(JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
enum StageName {
    ReconcileService,
    PreScaleUp,
    PostScaleUp,
    TestTrafficShift,
    PostTestTrafficShift,
    PreProductionTrafficShift,
    ProductionTrafficShift,
    PostProductionTrafficShift,
}

/// One configured check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckConfig {
    pub name: String,
    pub common: CheckCommon,
    pub kind: CheckKind,
}

impl CheckConfig {
    /// Whether the check runs at this ECS stage (`None`: CodeDeploy, always).
    pub fn runs_at(&self, stage: Option<&Stage>) -> bool {
        match (&self.common.stages, stage) {
            (Some(stages), Some(stage)) => stages.iter().any(|s| s == stage.as_str()),
            _ => true,
        }
    }
}

/// Greenlight's top-level settings other than the checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// What to do when no check applies at the stage: `pass` (default, with a warning) or
    /// `fail`.
    #[serde(default)]
    pub when_no_checks: NoChecksPolicy,
    /// Deployment notifications: channels (Slack, Microsoft Teams, a webhook, SNS) and the
    /// events each one receives. Default: none.
    #[serde(default)]
    pub notifications: crate::notify::Notifications,
    /// CodeDeploy: how long a hook may keep waiting (re-invoking itself) before it reports
    /// Failed as undecided. Below CodeDeploy's one hour. Default `50m`.
    #[serde(default = "default_max_wait")]
    pub code_deploy_max_wait: HumanDuration,
}

fn default_max_wait() -> HumanDuration {
    HumanDuration::secs(50 * 60)
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            when_no_checks: NoChecksPolicy::default(),
            code_deploy_max_wait: default_max_wait(),
            notifications: crate::notify::Notifications::default(),
        }
    }
}

/// The whole configuration, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub settings: Settings,
    pub checks: Vec<CheckConfig>,
}

// The configuration document, for the JSON Schema only; parsing is done by `parse`.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "Greenlight configuration",
    description = "Which checks a Greenlight function runs, and their settings. Set in GREENLIGHT_CONFIG, the SSM parameter named by GREENLIGHT_CONFIG_PARAMETER, or an ECS hook's hookDetails.greenlight."
)]
#[allow(dead_code)]
struct ConfigDocument {
    /// The checks, by name. A name is 1-64 characters of letters, digits, `-` and `_`.
    /// Set a check to `null` (in a later source) to remove it.
    #[serde(default)]
    checks: IndexMap<String, CheckDocument>,
    #[serde(flatten)]
    settings: Settings,
    /// Settings for one ECS service, by `cluster/service` (or `service`), merged over the
    /// rest (and under the hook's hookDetails.greenlight).
    #[serde(default)]
    services: IndexMap<String, OverrideDocument>,
    /// Settings for one CodeDeploy application (`application`) or deployment group
    /// (`application/deploymentGroup`), merged over the rest, the group's last.
    #[serde(default)]
    code_deploy: IndexMap<String, OverrideDocument>,
}

/// A configuration for one service or deployment group (no further nesting).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct OverrideDocument {
    #[serde(default)]
    checks: IndexMap<String, CheckDocument>,
    #[serde(flatten)]
    settings: Settings,
}

#[allow(dead_code)]
struct CheckDocument;

impl JsonSchema for CheckDocument {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Check".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let common = inline_schema::<CheckCommon>(generator);
        let variants: Vec<Value> = checks::KINDS
            .iter()
            .map(|kind| {
                let own = (kind.schema)(generator);
                let mut properties = Map::new();
                properties.insert(
                    "type".into(),
                    serde_json::json!({"const": kind.name, "description": kind.description}),
                );
                for source in [&own, &common] {
                    if let Some(Value::Object(p)) = source.get("properties") {
                        properties.extend(p.clone());
                    }
                }
                let mut required = vec![Value::from("type")];
                if let Some(Value::Array(r)) = own.get("required") {
                    required.extend(r.iter().cloned());
                }
                serde_json::json!({
                    "type": "object",
                    "title": kind.name,
                    "description": kind.description,
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false
                })
            })
            .collect();
        json_schema!({ "oneOf": variants })
    }
}

/// A type's schema as a plain JSON object, with its definitions hoisted into the generator.
pub(crate) fn inline_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    let schema = generator.root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(Value::Object(defs)) = value.as_object_mut().and_then(|m| m.remove("$defs")) {
        let target = generator.definitions_mut();
        for (k, v) in defs {
            target.insert(k, v);
        }
    }
    if let Some(obj) = value.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    value
}

/// The configuration's JSON Schema, generated from these types.
pub fn json_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<ConfigDocument>();
    schema.to_value()
}

/// RFC 7386 JSON Merge Patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Deserialises with serde's message, but the path in front: `prefix.inner.path`.
pub(crate) fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner == ".") {
            (true, _) => inner,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        ConfigError::new(path, e.into_inner().to_string())
    })
}

/// Reads the `type` of a check or channel (`what`): one of `names`.
pub(crate) fn type_tag<'a>(
    map: &'a Map<String, Value>,
    at: &str,
    what: &str,
    names: &[&str],
) -> Result<&'a str, ConfigError> {
    let path = format!("{at}.type");
    match map.get("type") {
        Some(Value::String(t)) if names.contains(&t.as_str()) => Ok(t),
        Some(Value::String(t)) => Err(ConfigError::new(
            path,
            format!(
                "unknown {what} type {t:?}; expected one of: {}",
                names.join(", ")
            ),
        )),
        Some(other) => Err(ConfigError::new(
            path,
            format!(
                "is {}, expected one of: {}",
                kind_of(other),
                names.join(", ")
            ),
        )),
        None => Err(ConfigError::new(
            path,
            format!(
                "is missing; every {what} names its type, one of: {}",
                names.join(", ")
            ),
        )),
    }
}

fn valid_check_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Keys a schema declares (for unknown-key messages that list what is allowed).
pub(crate) fn schema_keys(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The keys each part of the configuration allows, read once from the schema.
struct Keys {
    top: Vec<String>,
    common: Vec<String>,
    kinds: std::collections::HashMap<&'static str, Vec<String>>,
}

static KEYS: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(|| {
    let mut generator = SchemaGenerator::default();
    Keys {
        top: schema_keys(&json_schema()),
        common: schema_keys(&inline_schema::<CheckCommon>(&mut generator)),
        kinds: checks::KINDS
            .iter()
            .map(|k| (k.name, schema_keys(&(k.schema)(&mut generator))))
            .collect(),
    }
});

fn parse_check(name: &str, value: &Value) -> Result<CheckConfig, ConfigError> {
    let at = format!("checks.{name}");
    let Value::Object(map) = value else {
        return Err(ConfigError::new(
            at,
            format!(
                "is {}, expected an object such as {{\"type\": \"http\", \"url\": \"…\"}}",
                kind_of(value)
            ),
        ));
    };
    let names: Vec<&str> = checks::KINDS.iter().map(|k| k.name).collect();
    let type_name = type_tag(map, &at, "check", &names)?;
    let kind = checks::KINDS
        .iter()
        .find(|k| k.name == type_name)
        .expect("type_tag accepts known names only");

    let common_keys = &KEYS.common;
    let kind_keys = &KEYS.kinds[kind.name];
    let mut common = Map::new();
    let mut own = Map::new();
    for (k, v) in map {
        if k == "type" {
            continue;
        }
        if common_keys.contains(k) {
            common.insert(k.clone(), v.clone());
        } else if kind_keys.contains(k) {
            own.insert(k.clone(), v.clone());
        } else {
            let mut allowed = kind_keys.to_vec();
            allowed.extend(common_keys.iter().cloned());
            return Err(ConfigError::new(
                format!("{at}.{k}"),
                format!(
                    "unknown key for a {type_name} check; expected one of: type, {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let within_set = common.contains_key("within");
    let interval_set = own.contains_key("interval") || own.contains_key("lockPollInterval");
    let mut common: CheckCommon = typed(Value::Object(common), &at)?;
    if let Some(stages) = &common.stages {
        for (i, s) in stages.iter().enumerate() {
            if !Stage::KNOWN.iter().any(|k| k.as_str() == s) {
                let known: Vec<&str> = Stage::KNOWN.iter().map(|k| k.as_str()).collect();
                return Err(ConfigError::new(
                    format!("{at}.stages[{i}]"),
                    format!("unknown stage {s:?}; expected one of: {}", known.join(", ")),
                ));
            }
        }
    }
    if common.within.get().is_zero() {
        return Err(ConfigError::new(
            format!("{at}.within"),
            "must be longer than zero",
        ));
    }
    let kind = (kind.parse)(Value::Object(own), &at)?;
    if let Some(bake) = kind.bake_for()
        && common.within.get() <= bake
    {
        return Err(ConfigError::new(
            format!("{at}.within"),
            format!(
                "is {}, not longer than bakeFor ({}): the check would give up before its window ends; set within to more than bakeFor",
                common.within,
                HumanDuration(bake)
            ),
        ));
    }
    if let CheckKind::MigrationTask(task) = &kind {
        // The task's timeout bounds the wait; by default the check waits for it.
        if !within_set {
            common.within = HumanDuration(task.timeout.get() + std::time::Duration::from_secs(60));
        }
    }
    if let Some((key, interval)) = kind.interval()
        && interval > common.within.get()
    {
        let (interval, within) = (HumanDuration(interval), common.within);
        let (path, message) = if interval_set {
            (
                key,
                format!(
                    "is {interval}, longer than within ({within}): the check could not be evaluated again before it gives up; set {key} to at most {within}, or within to at least {interval}"
                ),
            )
        } else {
            (
                "within",
                format!(
                    "is {within}, shorter than the {type_name} check's default {key} ({interval}): the check could not be evaluated again before it gives up; set within to at least {interval}, or {key} to at most {within}"
                ),
            )
        };
        return Err(ConfigError::new(format!("{at}.{path}"), message));
    }
    if let CheckKind::MigrationTask(task) = &kind
        && common.within.get() <= task.timeout.get()
    {
        return Err(ConfigError::new(
            format!("{at}.within"),
            format!(
                "is {}, not longer than the task's timeout ({}): the check would give up while the task still runs; set within to more than timeout",
                common.within, task.timeout
            ),
        ));
    }
    Ok(CheckConfig {
        name: name.to_string(),
        common,
        kind,
    })
}

/// Validates a configuration document.
pub fn parse(value: &Value) -> Result<Config, ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::new(
            "",
            format!(
                "is {}, expected a JSON object such as {{\"checks\": {{…}}}}",
                kind_of(value)
            ),
        ));
    };
    let allowed = &KEYS.top;
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(k)) {
        return Err(ConfigError::new(
            unknown.clone(),
            format!("unknown key; expected one of: {}", allowed.join(", ")),
        ));
    }
    let mut rest = map.clone();
    let checks_value = rest.remove("checks");
    for key in ["services", "codeDeploy"] {
        match rest.remove(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (name, doc) in &entries {
                    if doc.get("services").is_some() || doc.get("codeDeploy").is_some() {
                        return Err(ConfigError::new(
                            format!("{key}.{name}"),
                            "cannot hold services or codeDeploy itself",
                        ));
                    }
                    parse(doc).map_err(|e| {
                        ConfigError::new(
                            format!("{key}.{name}.{}", e.path)
                                .trim_end_matches('.')
                                .to_string(),
                            e.message,
                        )
                    })?;
                }
            }
            Some(other) => {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "is {}, expected an object of name → settings",
                        kind_of(&other)
                    ),
                ));
            }
        }
    }
    let notifications = match rest.remove("notifications") {
        None | Some(Value::Null) => crate::notify::Notifications::default(),
        Some(v) => crate::notify::settings::parse(&v)?,
    };
    let mut settings: Settings = typed(Value::Object(rest), "")?;
    settings.notifications = notifications;
    let wait = settings.code_deploy_max_wait.get();
    if wait.is_zero() || wait >= std::time::Duration::from_secs(3600) {
        return Err(ConfigError::new(
            "codeDeployMaxWait",
            "must be more than zero and less than CodeDeploy's one hour",
        ));
    }
    let mut checks = Vec::new();
    match checks_value {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            for (name, v) in &entries {
                if !valid_check_name(name) {
                    return Err(ConfigError::new(
                        format!("checks.{name}"),
                        "is not a valid check name: use 1-64 letters, digits, '-' or '_'",
                    ));
                }
                if v.is_null() {
                    continue;
                }
                let check = parse_check(name, v)?;
                if check.common.enabled {
                    checks.push(check);
                }
            }
        }
        Some(other) => {
            return Err(ConfigError::new(
                "checks",
                format!(
                    "is {}, expected an object of check name → check settings",
                    kind_of(&other)
                ),
            ));
        }
    }
    Ok(Config { settings, checks })
}

/// A configuration source: a name for messages, and its JSON.
#[derive(Clone, Debug)]
pub struct Source {
    pub origin: String,
    pub value: Value,
}

/// Which per-service or per-deployment-group settings apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// ECS: `cluster` and `service`.
    pub cluster: Option<String>,
    pub service: Option<String>,
    /// CodeDeploy: application and deployment group.
    pub application: Option<String>,
    pub deployment_group: Option<String>,
}

impl Selector {
    /// The keys looked up, least specific first.
    fn keys(&self) -> Vec<(&'static str, String)> {
        let mut k = Vec::new();
        if let Some(s) = &self.service {
            k.push(("services", s.clone()));
            if let Some(c) = &self.cluster {
                k.push(("services", format!("{c}/{s}")));
            }
        }
        if let Some(a) = &self.application {
            k.push(("codeDeploy", a.clone()));
            if let Some(g) = &self.deployment_group {
                k.push(("codeDeploy", format!("{a}/{g}")));
            }
        }
        k
    }
}

/// Merges the function's own sources, then the settings its `services` / `codeDeploy`
/// maps hold for `selector`, then `hook` (ECS hookDetails.greenlight), and validates.
pub fn resolve_for(
    base: &[Source],
    hook: Option<Source>,
    selector: &Selector,
) -> Result<Config, ConfigError> {
    let mut sources: Vec<Source> = base.to_vec();
    for (map, key) in selector.keys() {
        for s in base {
            if let Some(v) = s.value.get(map).and_then(|m| m.get(&key)) {
                sources.push(Source {
                    origin: format!("{} at {map}.{key}", s.origin),
                    value: v.clone(),
                });
            }
        }
    }
    sources.extend(hook);
    resolve(&sources)
}

/// Merges the sources in order and validates the result. An error names the source
/// whose value is at fault: the last one that set the field.
pub fn resolve(sources: &[Source]) -> Result<Config, ConfigError> {
    let mut merged = Value::Object(Map::new());
    for s in sources {
        if !s.value.is_object() {
            return Err(ConfigError {
                origin: s.origin.clone(),
                path: String::new(),
                message: format!(
                    "is {}, expected a JSON object such as {{\"checks\": {{…}}}}",
                    kind_of(&s.value)
                ),
            });
        }
        merge_patch(&mut merged, &s.value);
    }
    parse(&merged).map_err(|mut e| {
        // The last source that set the field, or else the nearest object around it (a
        // missing field belongs to the source that wrote its check).
        let mut path = e.path.as_str();
        e.origin = loop {
            if let Some(s) = sources.iter().rev().find(|s| sets_path(&s.value, path)) {
                break s.origin.clone();
            }
            match path.rfind('.') {
                Some(i) => path = &path[..i],
                None => break "the merged configuration".to_string(),
            }
        };
        e
    })
}

/// Whether `value` has something at the dotted `path` (`checks.health.timeout`,
/// `checks.x.stages[1]`).
fn sets_path(value: &Value, path: &str) -> bool {
    let mut cur = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, index) = match part.find('[') {
            Some(i) => (
                &part[..i],
                part[i + 1..].trim_end_matches(']').parse::<usize>().ok(),
            ),
            None => (part, None),
        };
        match cur.get(key) {
            Some(v) => cur = v,
            None => return false,
        }
        if let Some(i) = index {
            match cur.get(i) {
                Some(v) => cur = v,
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "e": 3}, "d": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 3}, "d": [3]}));
    }

    #[test]
    fn error_names_the_source_that_set_the_field() {
        let env = Source {
            origin: "GREENLIGHT_CONFIG".into(),
            value: json!({"checks": {"web": {"type": "http", "url": "http://x/health"}}}),
        };
        let hook = Source {
            origin: "hookDetails.greenlight".into(),
            value: json!({"checks": {"web": {"timeout": "soon"}}}),
        };
        let e = resolve(&[env.clone(), hook]).unwrap_err();
        assert_eq!(e.origin, "hookDetails.greenlight");
        assert_eq!(e.path, "checks.web.timeout");
        let bad_env = Source {
            origin: "GREENLIGHT_CONFIG".into(),
            value: json!({"checks": {"web": {"type": "tcp"}}}),
        };
        let e = resolve(&[bad_env]).unwrap_err();
        assert_eq!(e.origin, "GREENLIGHT_CONFIG");
        assert!(e.to_string().contains("unknown check type \"tcp\""), "{e}");
    }

    #[test]
    fn later_source_can_remove_or_disable_a_check() {
        let env = Source {
            origin: "env".into(),
            value: json!({"checks": {"a": {"type": "http", "url": "http://x/"}, "b": {"type": "http", "url": "http://y/"}}}),
        };
        let hook = Source {
            origin: "hook".into(),
            value: json!({"checks": {"a": null, "b": {"enabled": false}}}),
        };
        assert!(resolve(&[env, hook]).unwrap().checks.is_empty());
    }
}
