//! The `notifications` settings: channels, the events each one receives, and where their
//! secrets come from. Validated as strictly as the checks, with field paths in every
//! message, and never with a URL or a secret in it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::duration::HumanDuration;
use crate::role::Role;
use crate::schema::{
    ConfigError, Entry, Registry, Tagged, inline_schema, kind_of, schema_keys, typed,
};
pub use crate::secrets::SecretRef;

/// Something worth telling the on-call engineer about a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Event {
    /// The deployment's first hook ran (ECS `PRE_SCALE_UP`; CodeDeploy: the function named
    /// by `codeDeployStartedBy`).
    Started,
    /// A gate failed: the answer is `FAILED` (ECS) or a `Failed` report (CodeDeploy).
    Failed,
    /// ECS is moving traffic back to the previous revision.
    RolledBack,
    /// The last gate passed: `after-allow-traffic` at `POST_PRODUCTION_TRAFFIC_SHIFT`
    /// (CodeDeploy: `AfterAllowTraffic`).
    Succeeded,
    /// Any other gate passed.
    StagePassed,
    /// An `approval` check waits for a person: the request, with its actions (signed
    /// links, Slack buttons, the terminal command). Once per deployment, stage and check.
    ApprovalRequested,
}

impl Event {
    pub const ALL: [Event; 6] = [
        Event::Started,
        Event::Failed,
        Event::RolledBack,
        Event::Succeeded,
        Event::StagePassed,
        Event::ApprovalRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Failed => "failed",
            Event::RolledBack => "rolledBack",
            Event::Succeeded => "succeeded",
            Event::StagePassed => "stagePassed",
            Event::ApprovalRequested => "approvalRequested",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_true() -> bool {
    true
}
fn default_events() -> Vec<Event> {
    vec![
        Event::Started,
        Event::Failed,
        Event::RolledBack,
        Event::Succeeded,
        Event::ApprovalRequested,
    ]
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_retries() -> u32 {
    2
}

/// Settings every channel has, whatever its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelCommon {
    /// `false` turns the channel off (for one service, through `hookDetails`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The events this channel receives. Default: `started`, `failed`, `rolledBack`,
    /// `succeeded`.
    #[serde(default = "default_events")]
    pub events: Vec<Event>,
    /// When `true`, a notification this channel cannot deliver fails the hook (never during
    /// a rollback). Default `false`: a failed notification changes nothing but the record.
    #[serde(default)]
    pub required: bool,
    /// How long one attempt may take. Default `5s`; from `100ms` to `60s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Further attempts after a 429, a 5xx or a refused connection, with backoff. Default 2;
    /// at most 5.
    #[serde(default = "default_retries")]
    #[schemars(range(max = 5))]
    pub retries: u32,
}

/// A Slack incoming webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackSettings {
    /// The incoming webhook's URL (`https://hooks.slack.com/services/…`), as a secret
    /// reference.
    pub url: SecretRef,
}

/// A Microsoft Teams channel, through a Workflows ("Post to a channel when a webhook
/// request is received") webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamsSettings {
    /// The workflow's webhook URL, as a secret reference.
    pub url: SecretRef,
}

/// Any HTTP endpoint, receiving Greenlight's documented JSON body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSettings {
    /// The URL the body is POSTed to, as a secret reference.
    pub url: SecretRef,
    /// Extra request headers. A value is a secret reference or a literal string.
    #[serde(default)]
    pub headers: IndexMap<String, SecretRef>,
    /// When set, each request carries `X-Greenlight-Signature: sha256=<hex>`, the
    /// HMAC-SHA256 of the raw body with this secret as the key.
    #[serde(default)]
    pub signing_secret: Option<SecretRef>,
}

/// An Amazon SNS topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnsSettings {
    /// The topic's ARN. The function's role needs sns:Publish on it. A FIFO topic
    /// (`.fifo`) gets a message group (the deployment) and a deduplication id.
    pub topic_arn: String,
}

/// A channel's kind and its own settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChannelKind {
    Slack(SlackSettings),
    Teams(TeamsSettings),
    Webhook(WebhookSettings),
    Sns(SnsSettings),
}

impl ChannelKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Slack(_) => "slack",
            ChannelKind::Teams(_) => "teams",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Sns(_) => "sns",
        }
    }
}

/// One configured channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub name: String,
    pub common: ChannelCommon,
    pub kind: ChannelKind,
}

impl Channel {
    /// How a channel is named in messages, records and logs: its name and type, never its
    /// URL.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.kind.type_name())
    }
}

/// The notification settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Notifications {
    /// Enabled channels, in configuration order.
    pub channels: Vec<Channel>,
    pub include_images: bool,
    pub code_deploy_started_by: Role,
}

/// The configuration's own shape; secret literals are redacted.
impl Serialize for Notifications {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut channels = Map::new();
        for c in &self.channels {
            let mut v = json!({ "type": c.kind.type_name() });
            for part in [
                serde_json::to_value(&c.kind).map_err(serde::ser::Error::custom)?,
                serde_json::to_value(&c.common).map_err(serde::ser::Error::custom)?,
            ] {
                if let (Value::Object(target), Value::Object(part)) = (&mut v, part) {
                    target.extend(part);
                }
            }
            channels.insert(c.name.clone(), v);
        }
        json!({
            "channels": channels,
            "includeImages": self.include_images,
            "codeDeployStartedBy": self.code_deploy_started_by.name(),
        })
        .serialize(s)
    }
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            channels: Vec::new(),
            include_images: true,
            code_deploy_started_by: Role::BeforeInstall,
        }
    }
}

/// Deserialising goes through [`parse`]; `config::parse` calls it directly so that
/// messages carry the full field path.
impl<'de> Deserialize<'de> for Notifications {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        parse(&value).map_err(|e| serde::de::Error::custom(format!("at {}: {}", e.path, e.message)))
    }
}

impl JsonSchema for Notifications {
    fn schema_name() -> Cow<'static, str> {
        "Notifications".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        NotificationsDocument::json_schema(generator)
    }
}

/// A function name (for the schema).
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum FunctionName {
    BeforeInstall,
    AfterInstall,
    BeforeAllowTraffic,
    AfterAllowTraffic,
}

fn default_started_by() -> String {
    Role::BeforeInstall.name().to_string()
}

// The `notifications` document, for the schema and its keys; parsing is done by `parse`.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    description = "Deployment notifications: where they go (Slack, Microsoft Teams, a webhook, SNS) and which events each channel receives."
)]
#[allow(dead_code)]
struct NotificationsDocument {
    /// The channels, by name. A name is 1-64 characters of letters, digits, `-` and `_`.
    /// Set a channel to `null` (in a later source) to remove it.
    #[serde(default)]
    channels: IndexMap<String, ChannelDocument>,
    /// Look up the target revision's container images (ECS DescribeServiceRevisions) to
    /// show them. Default `true`; left out when the lookup fails or is slow.
    #[serde(default = "default_true")]
    include_images: bool,
    /// CodeDeploy only: the function whose invocation announces `started`. Default
    /// `before-install`; for the Lambda compute platform, whose first hook is
    /// BeforeAllowTraffic, `before-allow-traffic`.
    #[serde(default = "default_started_by")]
    #[schemars(with = "FunctionName")]
    code_deploy_started_by: String,
}

#[allow(dead_code)]
struct ChannelDocument;

fn common_schema(generator: &mut SchemaGenerator) -> Value {
    inline_schema::<ChannelCommon>(generator)
}

/// The channel types: name, description, the schema of their own settings, and their
/// parser (one line each).
static CHANNELS: Registry<ChannelKind> = Registry::new(
    "channel",
    "{\"type\": \"slack\", \"url\": {\"secretArn\": \"…\"}}",
    common_schema,
    &[
        Tagged {
            name: "slack",
            description: "A Slack incoming webhook: a Block Kit message.",
            schema: inline_schema::<SlackSettings>,
            parse: |v, at| {
                let s: SlackSettings = typed(v, at)?;
                check_secret_url(&s.url, &format!("{at}.url"))?;
                Ok(ChannelKind::Slack(s))
            },
        },
        Tagged {
            name: "teams",
            description: "Microsoft Teams through a Workflows webhook: an Adaptive Card.",
            schema: inline_schema::<TeamsSettings>,
            parse: |v, at| {
                let s: TeamsSettings = typed(v, at)?;
                check_secret_url(&s.url, &format!("{at}.url"))?;
                Ok(ChannelKind::Teams(s))
            },
        },
        Tagged {
            name: "webhook",
            description: "Any HTTP endpoint: Greenlight's JSON body, optionally signed with HMAC-SHA256.",
            schema: inline_schema::<WebhookSettings>,
            parse: parse_webhook,
        },
        Tagged {
            name: "sns",
            description: "An Amazon SNS topic: the JSON body as the message, with message attributes for subscription filters.",
            schema: inline_schema::<SnsSettings>,
            parse: parse_sns,
        },
    ],
);

impl JsonSchema for ChannelDocument {
    fn schema_name() -> Cow<'static, str> {
        "NotificationChannel".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        CHANNELS.schema(generator)
    }
}

/// The top-level keys of `notifications`, read once from the schema.
static TOP_KEYS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    schema_keys(&inline_schema::<NotificationsDocument>(
        &mut SchemaGenerator::default(),
    ))
});

const AT: &str = "notifications";

/// Header names Greenlight sets itself.
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "x-greenlight-event",
    "x-greenlight-delivery",
    "x-greenlight-signature",
];

/// Checks a URL written into the configuration. The message never repeats it.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|_| "is not a valid URL (the value is not repeated here)".to_string())?;
    match parsed.scheme() {
        "https" | "http" => {}
        other => {
            return Err(format!("uses {other:?}; expected an http or https URL"));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(parsed)
}

fn check_secret_url(r: &SecretRef, at: &str) -> Result<(), ConfigError> {
    if let SecretRef::Literal(url) = r {
        check_url(url).map_err(|m| ConfigError::new(at, m))?;
    }
    Ok(())
}

fn parse_webhook(v: Value, at: &str) -> Result<ChannelKind, ConfigError> {
    let s: WebhookSettings = typed(v, at)?;
    check_secret_url(&s.url, &format!("{at}.url"))?;
    for (h, v) in &s.headers {
        let path = format!("{at}.headers.{h}");
        if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(ConfigError::new(path, "is not a valid HTTP header name"));
        }
        if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::new(
                path,
                "is set by Greenlight and cannot be configured",
            ));
        }
        if let SecretRef::Literal(text) = v
            && reqwest::header::HeaderValue::from_str(text).is_err()
        {
            return Err(ConfigError::new(
                path,
                "is not a valid HTTP header value (the value is not repeated here)",
            ));
        }
    }
    Ok(ChannelKind::Webhook(s))
}

fn parse_sns(v: Value, at: &str) -> Result<ChannelKind, ConfigError> {
    let s: SnsSettings = typed(v, at)?;
    let fields: Vec<&str> = s.topic_arn.splitn(6, ':').collect();
    if fields.len() != 6 || fields[0] != "arn" || fields[2] != "sns" || fields[5].is_empty() {
        return Err(ConfigError::new(
            format!("{at}.topicArn"),
            format!(
                "{:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                s.topic_arn
            ),
        ));
    }
    Ok(ChannelKind::Sns(s))
}

fn parse_channel(
    name: &str,
    at: &str,
    entry: Entry<'_, ChannelKind>,
) -> Result<Channel, ConfigError> {
    let mut common: ChannelCommon = typed(Value::Object(entry.common), at)?;
    let timeout = common.timeout.get();
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
        return Err(ConfigError::new(
            format!("{at}.timeout"),
            "must be from 100ms to 60s",
        ));
    }
    if common.retries > 5 {
        return Err(ConfigError::new(
            format!("{at}.retries"),
            "must be at most 5",
        ));
    }
    let mut seen = Vec::new();
    common.events.retain(|e| {
        let new = !seen.contains(e);
        seen.push(*e);
        new
    });
    let kind = (entry.kind.parse)(Value::Object(entry.own), at)?;
    Ok(Channel {
        name: name.to_string(),
        common,
        kind,
    })
}

/// Validates the `notifications` value.
pub fn parse(value: &Value) -> Result<Notifications, ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::new(
            AT,
            format!(
                "is {}, expected an object such as {{\"channels\": {{…}}}}",
                kind_of(value)
            ),
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !TOP_KEYS.contains(k)) {
        return Err(ConfigError::new(
            format!("{AT}.{unknown}"),
            format!("unknown key; expected one of: {}", TOP_KEYS.join(", ")),
        ));
    }
    let mut n = Notifications::default();
    match map.get("includeImages") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => n.include_images = *b,
        Some(other) => {
            return Err(ConfigError::new(
                format!("{AT}.includeImages"),
                format!("is {}, expected true or false", kind_of(other)),
            ));
        }
    }
    match map.get("codeDeployStartedBy") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if Role::from_name(s).is_some() => {
            n.code_deploy_started_by = Role::from_name(s).expect("checked above");
        }
        Some(other) => {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            return Err(ConfigError::new(
                format!("{AT}.codeDeployStartedBy"),
                format!("is {other}, expected one of: {}", names.join(", ")),
            ));
        }
    }
    CHANNELS.entries(
        map.get("channels"),
        &format!("{AT}.channels"),
        |name, at, entry| {
            let channel = parse_channel(name, at, entry)?;
            if channel.common.enabled {
                n.channels.push(channel);
            }
            Ok(())
        },
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: Value) -> String {
        parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_channel_type_with_defaults() {
        let n = parse(&json!({"channels": {
            "oncall": {"type": "slack", "url": {"secretArn": "arn:aws:secretsmanager:us-west-2:1:secret:s", "jsonKey": "url"}},
            "team": {"type": "teams", "url": {"ssmParameter": "/greenlight/teams"}, "events": ["failed", "failed"]},
            "audit": {"type": "webhook", "url": "https://audit.example/hook", "headers": {"Authorization": {"ssmParameter": "/a"}}, "signingSecret": {"secretArn": "arn:aws:secretsmanager:us-west-2:1:secret:k"}, "required": true, "timeout": "2s", "retries": 0},
            "topic": {"type": "sns", "topicArn": "arn:aws:sns:us-west-2:123456789012:deployments"},
            "off": {"type": "slack", "url": "https://x.example/", "enabled": false},
            "gone": null
        }}))
        .unwrap();
        let names: Vec<&str> = n.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["oncall", "team", "audit", "topic"]);
        assert_eq!(n.channels[0].common.events, default_events());
        assert_eq!(n.channels[0].common.timeout.get(), Duration::from_secs(5));
        assert_eq!(n.channels[0].common.retries, 2);
        assert!(!n.channels[0].common.required);
        assert_eq!(n.channels[1].common.events, [Event::Failed]);
        assert!(n.channels[2].common.required);
        assert!(n.include_images);
        assert_eq!(n.code_deploy_started_by, Role::BeforeInstall);
    }

    #[test]
    fn errors_name_the_field_and_never_repeat_a_literal() {
        let secret = "https://hooks.example/services/SECRET-TOKEN";
        let cases = [
            (
                json!({"channels": {"c": {"type": "slack", "url": secret, "timout": "1s"}}}),
                "at notifications.channels.c.timout: unknown key for a slack channel; expected one of: type, url, enabled, events, required, timeout, retries",
            ),
            (
                json!({"channels": {"c": {"type": "pager", "url": secret}}}),
                "at notifications.channels.c.type: unknown channel type \"pager\"",
            ),
            (
                json!({"channels": {"c": {"type": "slack"}}}),
                "at notifications.channels.c: missing field `url`",
            ),
            (
                json!({"channels": {"c": {"type": "slack", "url": secret, "events": ["deployed"]}}}),
                "at notifications.channels.c.events[0]: unknown variant `deployed`",
            ),
            (
                json!({"channels": {"c": {"type": "slack", "url": "ftp://SECRET-TOKEN@x/"}}}),
                "at notifications.channels.c.url: uses \"ftp\"",
            ),
            (
                json!({"channels": {"c": {"type": "slack", "url": "not a url SECRET-TOKEN"}}}),
                "at notifications.channels.c.url: is not a valid URL",
            ),
            (
                json!({"channels": {"c": {"type": "slack", "url": {"secretArn": "arn:aws:secretsmanager:r:1:secret:s", "ssmParameter": "/x"}}}}),
                "at notifications.channels.c.url: has both secretArn and ssmParameter",
            ),
            (
                json!({"channels": {"c": {"type": "slack", "url": {"arn": "x"}}}}),
                "at notifications.channels.c.url: unknown key \"arn\" in a secret reference",
            ),
            (
                json!({"channels": {"c": {"type": "webhook", "url": secret, "headers": {"X-Greenlight-Signature": "SECRET-TOKEN"}}}}),
                "at notifications.channels.c.headers.X-Greenlight-Signature: is set by Greenlight",
            ),
            (
                json!({"channels": {"c": {"type": "webhook", "url": secret, "headers": {"X-Token": "SECRET-TOKEN\n"}}}}),
                "at notifications.channels.c.headers.X-Token: is not a valid HTTP header value",
            ),
            (
                json!({"channels": {"c": {"type": "slack", "url": secret, "timeout": "10ms"}}}),
                "at notifications.channels.c.timeout: must be from 100ms to 60s",
            ),
            (
                json!({"channels": {"c": {"type": "slack", "url": secret, "retries": 9}}}),
                "at notifications.channels.c.retries: must be at most 5",
            ),
            (
                json!({"channels": {"c": {"type": "sns", "topicArn": "deployments"}}}),
                "at notifications.channels.c.topicArn: \"deployments\" is not an SNS topic ARN",
            ),
            (
                json!({"channels": {"a b": {"type": "sns", "topicArn": "deployments"}}}),
                "at notifications.channels.a b: is not a valid channel name",
            ),
            (
                json!({"chanels": {}}),
                "at notifications.chanels: unknown key; expected one of: channels, includeImages, codeDeployStartedBy",
            ),
            (
                json!({"codeDeployStartedBy": "deployer"}),
                "at notifications.codeDeployStartedBy: is \"deployer\", expected one of: before-install",
            ),
        ];
        for (value, expected) in cases {
            let e = err(value);
            assert!(e.contains(expected), "{e}\nexpected: {expected}");
            assert!(!e.contains("SECRET-TOKEN"), "{e}");
        }
    }

    #[test]
    fn debug_and_serialize_never_show_a_literal() {
        let n = parse(&json!({"channels": {"c": {"type": "webhook", "url": "https://x.example/SECRET-TOKEN", "headers": {"X-Token": "SECRET-TOKEN"}, "signingSecret": "SECRET-TOKEN"}}})).unwrap();
        assert!(!format!("{n:?}").contains("SECRET-TOKEN"));
        assert!(!serde_json::to_string(&n).unwrap().contains("SECRET-TOKEN"));
    }
}
