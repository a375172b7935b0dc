//! Amazon SNS: the JSON body as the message, a subject, and message attributes (`event`,
//! `service`, `stage`, `verdict`) for subscription filter policies.

use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;
use tokio::time::Instant;

use super::notice::Notice;
use super::settings::SnsSettings;
use crate::deployment::Protocol;
use crate::services::{Services, aws_error};

/// SNS subjects are ASCII, without line breaks, under 100 characters.
pub fn subject(n: &Notice) -> String {
    let text = format!("Greenlight: {}", n.headline);
    let ascii: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    ascii.chars().take(99).collect()
}

/// The message attributes: `event`, `verdict`, `stage` (the ECS stage, or the function for
/// CodeDeploy), and `service` when the event names one.
pub fn attributes(n: &Notice) -> Vec<(&'static str, String)> {
    let stage = match n.deployment.protocol {
        Protocol::Ecs => n.stage.clone(),
        Protocol::CodeDeploy => n.function.clone(),
    };
    let mut out = vec![
        ("event", n.event.as_str().to_string()),
        ("verdict", n.verdict.clone()),
        ("stage", stage),
    ];
    if let Some(s) = &n.deployment.service {
        out.push(("service", s.clone()));
    }
    out
}

fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Publishes `n` to the topic; the SDK retries throttling and 5xx with backoff, and
/// `timeout` bounds the whole call.
pub async fn publish(
    services: &Services,
    s: &SnsSettings,
    n: &Notice,
    timeout: Duration,
    limit: Instant,
) -> Result<(), String> {
    let client = services.sns_for(region_of(&s.topic_arn)).await;
    let body = serde_json::to_string(&n.body()).unwrap_or_default();
    let mut call = client
        .publish()
        .topic_arn(&s.topic_arn)
        .subject(subject(n))
        .message(body);
    for (k, v) in attributes(n) {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(|e| format!("could not build message attribute {k}: {e}"))?;
        call = call.message_attributes(k, value);
    }
    if s.topic_arn.ends_with(".fifo") {
        call = call
            .message_group_id(super::short_hash(&n.deployment.key))
            .message_deduplication_id(&n.id);
    }
    let left = limit.saturating_duration_since(Instant::now());
    let within = timeout.min(left);
    match tokio::time::timeout(within, call.send()).await {
        Err(_) => Err(format!(
            "SNS did not accept the message within {}",
            humantime::format_duration(within)
        )),
        Ok(Err(e)) => Err(aws_error("SNS Publish", "sns:Publish on the topic", &e)),
        Ok(Ok(_)) => Ok(()),
    }
}
