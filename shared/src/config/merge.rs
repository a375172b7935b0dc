//! Merging the sources of a configuration: the function's own, the settings its
//! `services` / `codeDeploy` maps hold for one service or deployment group, and the hook's;
//! and, for an error, the source that set the faulty field.

use serde_json::{Map, Value};

use super::{Config, parse};
use crate::schema::{ConfigError, Source, kind_of};

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
