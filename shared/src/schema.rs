//! Strict settings, shared by every part of the configuration: errors that name the field
//! path, typed deserialisation with serde's message behind the path, JSON Schema helpers,
//! and [`Registry`], the one mechanism behind every family of tagged kinds (check kinds,
//! notification channel types): their `type` names, their schema, the keys each allows,
//! and the loop over named entries.

use std::fmt;
use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

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

/// A configuration source: a name for messages, and its JSON.
#[derive(Clone, Debug)]
pub struct Source {
    pub origin: String,
    pub value: Value,
}

/// A type's schema as a plain JSON object, with its definitions hoisted into the generator.
pub fn inline_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
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

/// Deserialises with serde's message, but the path in front: `prefix.inner.path`.
pub fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ConfigError> {
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
pub fn type_tag<'a>(
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

/// Keys a schema declares (for unknown-key messages that list what is allowed).
pub fn schema_keys(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// A short description of a JSON value's kind, for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `name` may name an entry (a check, a channel): 1-64 letters, digits, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// One kind of a tagged family: its `type` name, a description, the JSON Schema of its own
/// settings, and its parser (settings without `type` and the common keys; `at` is the
/// entry's field path).
pub struct Tagged<K> {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn(&mut SchemaGenerator) -> Value,
    pub parse: fn(Value, &str) -> Result<K, ConfigError>,
}

/// An entry of a tagged family, told apart: its kind, and its keys split into the common
/// ones and the kind's own.
pub struct Entry<'r, K: 'static> {
    pub kind: &'r Tagged<K>,
    pub common: Map<String, Value>,
    pub own: Map<String, Value>,
}

/// The keys each part allows, read once from the schemas.
struct Keys {
    common: Vec<String>,
    kinds: Vec<Vec<String>>,
}

/// A family of tagged kinds sharing common keys: named entries, each an object whose
/// `type` picks the kind.
pub struct Registry<K: 'static> {
    /// What an entry is called in messages (`check`, `channel`).
    what: &'static str,
    /// An entry in JSON, for the message when an entry is not an object.
    example: &'static str,
    common: fn(&mut SchemaGenerator) -> Value,
    kinds: &'static [Tagged<K>],
    keys: OnceLock<Keys>,
}

impl<K: 'static> Registry<K> {
    pub const fn new(
        what: &'static str,
        example: &'static str,
        common: fn(&mut SchemaGenerator) -> Value,
        kinds: &'static [Tagged<K>],
    ) -> Self {
        Registry {
            what,
            example,
            common,
            kinds,
            keys: OnceLock::new(),
        }
    }

    /// Every kind, in the order the documentation lists them.
    pub fn kinds(&self) -> &'static [Tagged<K>] {
        self.kinds
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name).collect()
    }

    fn keys(&self) -> &Keys {
        self.keys.get_or_init(|| {
            let mut generator = SchemaGenerator::default();
            Keys {
                common: schema_keys(&(self.common)(&mut generator)),
                kinds: self
                    .kinds
                    .iter()
                    .map(|k| schema_keys(&(k.schema)(&mut generator)))
                    .collect(),
            }
        })
    }

    /// The schema of one entry: one of the kinds, each with its `type`, its own keys and
    /// the common ones, and nothing else.
    pub fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        let common = (self.common)(generator);
        let variants: Vec<Value> = self
            .kinds
            .iter()
            .map(|kind| {
                let own = (kind.schema)(generator);
                let mut properties = Map::new();
                properties.insert(
                    "type".into(),
                    json!({"const": kind.name, "description": kind.description}),
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
                json!({
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

    /// Tells one entry apart (`at` is its path): its `type`, and its keys split into the
    /// common ones and the kind's own; an unknown key is an error that lists the allowed.
    pub fn entry(&self, value: &Value, at: &str) -> Result<Entry<'_, K>, ConfigError> {
        let Value::Object(map) = value else {
            return Err(ConfigError::new(
                at,
                format!(
                    "is {}, expected an object such as {}",
                    kind_of(value),
                    self.example
                ),
            ));
        };
        let names = self.names();
        let type_name = type_tag(map, at, self.what, &names)?;
        let index = self
            .kinds
            .iter()
            .position(|k| k.name == type_name)
            .expect("type_tag accepts known names only");
        let keys = self.keys();
        let (common_keys, kind_keys) = (&keys.common, &keys.kinds[index]);
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
                let mut allowed = kind_keys.clone();
                allowed.extend(common_keys.iter().cloned());
                return Err(ConfigError::new(
                    format!("{at}.{k}"),
                    format!(
                        "unknown key for a {type_name} {}; expected one of: type, {}",
                        self.what,
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(Entry {
            kind: &self.kinds[index],
            common,
            own,
        })
    }

    /// Reads a map of named entries at `at` (absent or `null`: none): names are checked,
    /// an entry set to `null` is removed, and each other one is told apart and given to
    /// `each` with its name and path.
    pub fn entries(
        &self,
        value: Option<&Value>,
        at: &str,
        mut each: impl FnMut(&str, &str, Entry<'_, K>) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        match value {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Object(entries)) => {
                for (name, v) in entries {
                    let path = format!("{at}.{name}");
                    if !valid_name(name) {
                        return Err(ConfigError::new(
                            path,
                            format!(
                                "is not a valid {} name: use 1-64 letters, digits, '-' or '_'",
                                self.what
                            ),
                        ));
                    }
                    if v.is_null() {
                        continue;
                    }
                    let entry = self.entry(v, &path)?;
                    each(name, &path, entry)?;
                }
                Ok(())
            }
            Some(other) => Err(ConfigError::new(
                at,
                format!(
                    "is {}, expected an object of {} name → {} settings",
                    kind_of(other),
                    self.what,
                    self.what
                ),
            )),
        }
    }
}
