//! The check kinds. Each module owns one kind: its settings (strictly validated, with a
//! JSON Schema) and its evaluation, which answers the same question in the same type:
//! what is the verdict now, and why ([`Evaluation`]). Checks never see which protocol
//! called them.

pub mod http;

use schemars::SchemaGenerator;
use serde_json::Value;

use crate::budget::Budget;
use crate::config::ConfigError;
use crate::deployment::Deployment;
use crate::services::Services;
use crate::verdict::Evaluation;

/// A check's kind-specific settings.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    Http(http::HttpCheck),
}

impl CheckKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Http(_) => "http",
        }
    }
}

/// What a check may use while it evaluates.
pub struct CheckContext<'a> {
    pub deployment: &'a Deployment,
    pub services: &'a Services,
    /// The state this check returned last time (`null` on the first evaluation).
    pub state: &'a Value,
    pub budget: Budget,
}

/// Evaluates one check once.
pub async fn evaluate(kind: &CheckKind, ctx: &CheckContext<'_>) -> Evaluation {
    match kind {
        CheckKind::Http(c) => http::evaluate(c, ctx).await,
    }
}

/// A registered check kind: its `type` name, its schema and its parser.
pub struct KindInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn(&mut SchemaGenerator) -> Value,
    pub parse: fn(Value, &str) -> Result<CheckKind, ConfigError>,
}

/// Every check kind, in the order the documentation lists them.
pub static KINDS: &[KindInfo] = &[KindInfo {
    name: "http",
    description: "Probes an HTTP endpoint (the green revision's health URL) until it answers as expected.",
    schema: |g| crate::config::inline_schema::<http::HttpCheck>(g),
    parse: |v, at| http::parse(v, at).map(CheckKind::Http),
}];
