//! Secrets: references to them in the configuration (Secrets Manager, SSM, or a literal
//! for local testing), resolved through Secrets Manager or SSM and cached for the life of
//! the process. Notification channels and database connections use them. A value never
//! goes into a message: errors say where a value was to come from, never what it is, and
//! the `Debug` and `Serialize` forms of a reference never show a literal.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::schema::kind_of;
use crate::services::{Services, aws_error};

/// Where a secret value (a webhook URL, a signing secret, a header value) comes from.
///
/// Its `Debug` and `Serialize` forms never show a literal value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// Written into the configuration itself: for local testing.
    Literal(String),
    /// A Secrets Manager secret's `SecretString`, or one key of it when it holds a JSON
    /// object.
    SecretsManager {
        secret_arn: String,
        json_key: Option<String>,
    },
    /// An SSM parameter (a SecureString is decrypted).
    Ssm { parameter: String },
}

impl SecretRef {
    /// Where the value comes from, in words, without the value.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Literal(_) => "the literal value in the configuration".into(),
            SecretRef::SecretsManager {
                secret_arn,
                json_key: Some(k),
            } => format!("key {k:?} of Secrets Manager secret {secret_arn}"),
            SecretRef::SecretsManager { secret_arn, .. } => {
                format!("Secrets Manager secret {secret_arn}")
            }
            SecretRef::Ssm { parameter } => format!("SSM parameter {parameter}"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Literal(_) => f.write_str("SecretRef::Literal(<redacted>)"),
            other => write!(f, "SecretRef({})", other.describe()),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SecretRef::Literal(_) => s.serialize_str("<redacted>"),
            SecretRef::SecretsManager {
                secret_arn,
                json_key,
            } => {
                let mut m = Map::new();
                m.insert("secretArn".into(), json!(secret_arn));
                if let Some(k) = json_key {
                    m.insert("jsonKey".into(), json!(k));
                }
                Value::Object(m).serialize(s)
            }
            SecretRef::Ssm { parameter } => json!({ "ssmParameter": parameter }).serialize(s),
        }
    }
}

const SECRET_REF_EXPECTED: &str = "expected a secret reference: {\"secretArn\": \"arn:aws:secretsmanager:…\", \"jsonKey\": \"…\"} (jsonKey optional), {\"ssmParameter\": \"/name\"}, or a literal string (for local testing)";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(d)?;
        let text = |v: Option<&Value>, key: &str| -> Result<Option<String>, D::Error> {
            match v {
                None => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(Value::String(_)) => Err(D::Error::custom(format!("{key} is empty"))),
                Some(other) => Err(D::Error::custom(format!(
                    "{key} is {}, expected a string",
                    kind_of(other)
                ))),
            }
        };
        match &value {
            Value::String(s) if s.trim().is_empty() => Err(D::Error::custom(
                "is empty; expected a secret reference or a literal string",
            )),
            Value::String(s) => Ok(SecretRef::Literal(s.clone())),
            Value::Object(m) => {
                if let Some(k) = m
                    .keys()
                    .find(|k| !["secretArn", "jsonKey", "ssmParameter"].contains(&k.as_str()))
                {
                    return Err(D::Error::custom(format!(
                        "unknown key {k:?} in a secret reference; {SECRET_REF_EXPECTED}"
                    )));
                }
                let arn = text(m.get("secretArn"), "secretArn")?;
                let key = text(m.get("jsonKey"), "jsonKey")?;
                let parameter = text(m.get("ssmParameter"), "ssmParameter")?;
                match (arn, key, parameter) {
                    (Some(arn), key, None) => {
                        if !arn.starts_with("arn:") {
                            return Err(D::Error::custom(format!(
                                "secretArn {arn:?} is not an ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"
                            )));
                        }
                        Ok(SecretRef::SecretsManager {
                            secret_arn: arn,
                            json_key: key,
                        })
                    }
                    (None, None, Some(parameter)) => Ok(SecretRef::Ssm { parameter }),
                    (None, Some(_), Some(_)) => Err(D::Error::custom(
                        "jsonKey goes with secretArn only, not with ssmParameter",
                    )),
                    (Some(_), _, Some(_)) => Err(D::Error::custom(
                        "has both secretArn and ssmParameter; keep one",
                    )),
                    (None, _, None) => Err(D::Error::custom(SECRET_REF_EXPECTED)),
                }
            }
            other => Err(D::Error::custom(format!(
                "is {}, {SECRET_REF_EXPECTED}",
                kind_of(other)
            ))),
        }
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretReference".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A secret: a Secrets Manager secret (its SecretString, or one key of it when it holds a JSON object), an SSM parameter (SecureString decrypted), or a literal string for local testing.",
            "oneOf": [
                {
                    "type": "object",
                    "title": "Secrets Manager",
                    "properties": {
                        "secretArn": {"type": "string", "pattern": "^arn:", "description": "The secret's ARN. The function's role needs secretsmanager:GetSecretValue on it (and kms:Decrypt with a customer managed key)."},
                        "jsonKey": {"type": "string", "description": "When the secret holds a JSON object: the key whose string value to use."}
                    },
                    "required": ["secretArn"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "title": "SSM parameter",
                    "properties": {
                        "ssmParameter": {"type": "string", "description": "The parameter's name. The function's role needs ssm:GetParameter on it (and kms:Decrypt for a SecureString)."}
                    },
                    "required": ["ssmParameter"],
                    "additionalProperties": false
                },
                {
                    "type": "string",
                    "title": "literal",
                    "minLength": 1,
                    "description": "The value itself, for local testing: it is then part of the configuration (and, in hookDetails, of the ECS service)."
                }
            ]
        })
    }
}

/// A resolved secret. Its `Debug` form is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read elsewhere (a password inside a URL), so that it is redacted too.
    pub(crate) fn from_value(s: &str) -> Secret {
        Secret(s.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Values read so far, by reference. A failed read is not kept: the next invocation tries
/// again.
#[derive(Default)]
pub struct Cache {
    values: Mutex<HashMap<SecretRef, Secret>>,
}

impl Cache {
    fn get(&self, r: &SecretRef) -> Option<Secret> {
        self.values.lock().ok()?.get(r).cloned()
    }

    /// Drops a value (a rotated password that stopped working), so that the next read
    /// fetches it again.
    pub fn forget(&self, r: &SecretRef) {
        if let Ok(mut m) = self.values.lock() {
            m.remove(r);
        }
    }

    fn put(&self, r: &SecretRef, s: Secret) {
        if let Ok(mut m) = self.values.lock() {
            m.insert(r.clone(), s);
        }
    }
}

/// Forgets the cached value of `r`.
pub fn forget(services: &Services, r: &SecretRef) {
    services.local::<Cache>().forget(r);
}

/// `text` with every secret's value (of 3 characters or more) replaced by `***`: for
/// messages that quote what a server or driver answered, which may echo a credential.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.expose().len() >= 3 {
            out = out.replace(s.expose(), "***");
        }
    }
    out
}

/// The environment variables naming secrets that only the approval endpoint and links
/// may use: a configuration (a notification header, say) cannot name them, so that whoever
/// can set a service's `hookDetails` cannot send them elsewhere.
pub const RESERVED: [&str; 3] = [
    "GREENLIGHT_APPROVAL_KEY",
    "GREENLIGHT_SLACK_SIGNING_SECRET",
    "GREENLIGHT_SLACK_BOT_TOKEN",
];

/// More reserved secrets, comma-separated ARNs: the stack tells the hook functions which
/// secrets are the approval endpoint's own (its Slack signing secret and bot token).
pub const ENV_RESERVED: &str = "GREENLIGHT_RESERVED_SECRETS";

/// Whether `r` names one of the [`RESERVED`] secrets (by ARN, or by name against an ARN
/// with Secrets Manager's random suffix).
pub fn reserved(r: &SecretRef) -> Option<&'static str> {
    reserved_in(r, |k| std::env::var(k).ok())
}

/// [`reserved`], with the environment read through `env`.
pub fn reserved_in(r: &SecretRef, env: impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    let SecretRef::SecretsManager { secret_arn, .. } = r else {
        return None;
    };
    let same = |a: &str, b: &str| {
        a == b
            || a.strip_prefix(b)
                .is_some_and(|rest| rest.starts_with('-') && rest.len() == 7)
            || a.rsplit(':').next().is_some_and(|name| {
                name == b
                    || name
                        .strip_prefix(b)
                        .is_some_and(|rest| rest.starts_with('-') && rest.len() == 7)
            })
    };
    let named = |v: &str| same(v, secret_arn) || same(secret_arn, v);
    RESERVED
        .into_iter()
        .find(|var| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .is_some_and(|v| named(v.trim()))
        })
        .or_else(|| {
            env(ENV_RESERVED)
                .is_some_and(|list| {
                    list.split(',')
                        .map(str::trim)
                        .any(|v| !v.is_empty() && named(v))
                })
                .then_some(ENV_RESERVED)
        })
}

/// The value of `r`, from the process's cache or read now (within `limit`). A secret
/// [`reserved`] for approvals is refused.
pub async fn resolve(services: &Services, r: &SecretRef, limit: Instant) -> Result<Secret, String> {
    if let Some(var) = reserved(r) {
        return Err(format!(
            "{} is reserved for approvals ({var}) and cannot be used by the configuration",
            r.describe()
        ));
    }
    resolve_reserved(services, r, limit).await
}

/// [`resolve`], allowing the [`RESERVED`] secrets: for the approval code only.
pub(crate) async fn resolve_reserved(
    services: &Services,
    r: &SecretRef,
    limit: Instant,
) -> Result<Secret, String> {
    if let SecretRef::Literal(s) = r {
        return Ok(Secret(s.clone()));
    }
    let cache = services.local::<Cache>();
    if let Some(s) = cache.get(r) {
        return Ok(s);
    }
    let read = async {
        match r {
            SecretRef::Literal(s) => Ok(s.clone()),
            SecretRef::SecretsManager {
                secret_arn,
                json_key,
            } => {
                let out = services
                    .secretsmanager()
                    .await
                    .get_secret_value()
                    .secret_id(secret_arn)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_error(
                            &format!("Secrets Manager GetSecretValue of {secret_arn}"),
                            "secretsmanager:GetSecretValue on the secret",
                            &e,
                        )
                    })?;
                let Some(text) = out.secret_string() else {
                    return Err(format!(
                        "Secrets Manager secret {secret_arn} holds no SecretString (a binary secret cannot be used)"
                    ));
                };
                match json_key {
                    None => Ok(text.to_string()),
                    Some(key) => {
                        let v: serde_json::Value = serde_json::from_str(text).map_err(|_| {
                            format!("Secrets Manager secret {secret_arn} is not a JSON object, so it has no key {key:?}")
                        })?;
                        match v.get(key) {
                            Some(serde_json::Value::String(s)) => Ok(s.clone()),
                            Some(_) => Err(format!(
                                "key {key:?} of Secrets Manager secret {secret_arn} is not a string"
                            )),
                            None => Err(format!(
                                "Secrets Manager secret {secret_arn} has no key {key:?}"
                            )),
                        }
                    }
                }
            }
            SecretRef::Ssm { parameter } => {
                let out = services
                    .ssm()
                    .await
                    .get_parameter()
                    .name(parameter)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_error(
                            &format!("SSM GetParameter of {parameter}"),
                            "ssm:GetParameter on the parameter (and kms:Decrypt for a SecureString)",
                            &e,
                        )
                    })?;
                out.parameter()
                    .and_then(|p| p.value())
                    .map(str::to_string)
                    .ok_or_else(|| format!("SSM parameter {parameter} has no value"))
            }
        }
    };
    let value = match tokio::time::timeout_at(limit, read).await {
        Err(_) => {
            return Err(format!(
                "{} could not be read within the invocation's time",
                r.describe()
            ));
        }
        Ok(v) => v?,
    };
    if value.trim().is_empty() {
        return Err(format!("{} is empty", r.describe()));
    }
    let secret = Secret(value);
    cache.put(r, secret.clone());
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(arn: &str) -> SecretRef {
        SecretRef::SecretsManager {
            secret_arn: arn.into(),
            json_key: None,
        }
    }

    #[test]
    fn the_approval_secrets_are_refused_by_arn_or_name() {
        let key = "arn:aws:secretsmanager:us-west-2:123456789012:secret:greenlight/approval-signing-key-AbCdEf";
        let slack = "arn:aws:secretsmanager:us-west-2:123456789012:secret:greenlight/slack-XyZ123";
        let env = |k: &str| match k {
            "GREENLIGHT_APPROVAL_KEY" => Some(key.to_string()),
            ENV_RESERVED => Some(format!(" {slack} ,")),
            _ => None,
        };
        assert_eq!(reserved_in(&sm(key), env), Some("GREENLIGHT_APPROVAL_KEY"));
        assert_eq!(
            reserved_in(&sm("greenlight/approval-signing-key"), env),
            Some("GREENLIGHT_APPROVAL_KEY")
        );
        assert_eq!(reserved_in(&sm(slack), env), Some(ENV_RESERVED));
        assert_eq!(
            reserved_in(&sm("greenlight/slack"), env),
            Some(ENV_RESERVED)
        );
        assert_eq!(reserved_in(&sm("greenlight/notify-AbCdEf"), env), None);
        assert_eq!(reserved_in(&sm(key), |_| None), None);
        assert_eq!(
            reserved_in(
                &SecretRef::Ssm {
                    parameter: "/x".into()
                },
                env
            ),
            None
        );
    }
}
