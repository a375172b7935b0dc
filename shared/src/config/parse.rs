//! Validation of a configuration document: strict keys, types with their field path, the
//! rules of each check kind and of the common keys, and per-service settings validated as
//! documents of their own.

use serde_json::Value;

use super::{CheckConfig, Config, Settings, json_schema};
use crate::checks::{self, CheckCommon, Kind};
use crate::notify::{self, Notifications};
use crate::schema::{ConfigError, Entry, kind_of, schema_keys, typed};

/// The top-level keys of the document, read once from the schema.
static TOP_KEYS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| schema_keys(&json_schema()));

fn parse_check(name: &str, at: &str, entry: Entry<'_, Kind>) -> Result<CheckConfig, ConfigError> {
    let within_set = entry.common.contains_key("within");
    let mut common: CheckCommon = typed(Value::Object(entry.common), at)?;
    common.validate(at)?;
    let kind = (entry.kind.parse)(Value::Object(entry.own.clone()), at)?;
    let interval_set = kind
        .interval()
        .is_some_and(|(key, _)| entry.own.contains_key(key));
    common.fit(kind.as_ref(), within_set, interval_set, at)?;
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
    let allowed = &*TOP_KEYS;
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
        None | Some(Value::Null) => Notifications::default(),
        Some(v) => notify::settings::parse(&v)?,
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
    checks::REGISTRY.entries(checks_value.as_ref(), "checks", |name, at, entry| {
        let check = parse_check(name, at, entry)?;
        if check.common.enabled {
            checks.push(check);
        }
        Ok(())
    })?;
    Ok(Config { settings, checks })
}
