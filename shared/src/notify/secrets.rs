//! Secret references resolved through Secrets Manager or SSM, cached for the life of the
//! process. A value never goes into a message: errors say where a value was to come from,
//! never what it is.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use tokio::time::Instant;

use super::settings::SecretRef;
use crate::services::{Services, aws_error};

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
    services.notify_state().secrets.forget(r);
}

/// The value of `r`, from the process's cache or read now (within `limit`).
pub async fn resolve(services: &Services, r: &SecretRef, limit: Instant) -> Result<Secret, String> {
    if let SecretRef::Literal(s) = r {
        return Ok(Secret(s.clone()));
    }
    let cache = &services.notify_state().secrets;
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
