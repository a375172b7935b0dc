//! Slack: an incoming webhook with a Block Kit message. The header carries the event's
//! emoji; the details sit in an attachment coloured by the event.

use serde_json::{Value, json};

use super::notice::{Notice, clip, colour, emoji, human_duration};

/// The `action_id` of the Approve button; its `value` is the approval id.
pub const ACTION_APPROVE: &str = "greenlight_approve";
/// The `action_id` of the Reject button.
pub const ACTION_REJECT: &str = "greenlight_reject";

/// Escapes text for Slack's `mrkdwn`.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn field(title: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{title}*\n{}", escape(&clip(value, 1900)))})
}

fn link(url: &str, label: &str) -> String {
    format!("<{}|{label}>", url.replace('|', "%7C"))
}

/// The message Slack receives.
pub fn payload(n: &Notice) -> Value {
    let d = &n.deployment;
    let title = format!("{} {}", emoji(n.event), n.headline);
    let mut fields = Vec::new();
    if let Some(s) = &d.service {
        fields.push(field("Service", s));
    }
    if let Some(c) = &d.cluster {
        fields.push(field("Cluster", c));
    }
    if let Some(id) = &d.codedeploy_deployment_id {
        fields.push(field("Deployment", id));
    }
    fields.push(field("Stage", &n.stage));
    fields.push(field("Verdict", &n.verdict));
    if let Some(r) = n.revision() {
        fields.push(field("Revision", &r));
    }
    if !n.images.is_empty() {
        let images: Vec<String> = n
            .images
            .iter()
            .take(3)
            .map(|i| format!("{}: {}", i.container, i.image))
            .collect();
        fields.push(field("Image", &images.join("\n")));
    }
    fields.push(field("Duration", &human_duration(n.duration)));
    fields.truncate(10);

    let mut details = vec![
        json!({"type": "section", "fields": fields}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Reason*\n{}", escape(&clip(&n.reason, 2800)))}}),
    ];
    let worth = n.other_checks();
    let top = &worth[..worth.len().min(5)];
    if !top.is_empty() {
        let mut lines: Vec<String> = top
            .iter()
            .map(|c| {
                format!(
                    "• *{}* ({}): {}",
                    escape(&c.name),
                    c.effect,
                    escape(&clip(&c.reason, 400))
                )
            })
            .collect();
        if worth.len() > top.len() {
            lines.push(format!("…and {} more", worth.len() - top.len()));
        }
        details.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&format!("*Checks*\n{}", lines.join("\n")), 2990)}}));
    }
    if let Some(a) = &n.approval {
        let lines: Vec<String> = a.lines().iter().map(|l| escape(l)).collect();
        details.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&format!("*Approval*\n{}", lines.join("\n")), 2990)}}));
        let mut buttons = Vec::new();
        if a.slack_buttons {
            buttons.push(json!({"type": "button", "action_id": ACTION_APPROVE, "value": a.id, "style": "primary", "text": {"type": "plain_text", "text": "Approve"}}));
            buttons.push(json!({"type": "button", "action_id": ACTION_REJECT, "value": a.id, "style": "danger", "text": {"type": "plain_text", "text": "Reject"},
                "confirm": {"title": {"type": "plain_text", "text": "Reject this deployment?"}, "text": {"type": "plain_text", "text": clip(&format!("{} rolls back.", n.subject), 300)}, "confirm": {"type": "plain_text", "text": "Reject"}, "deny": {"type": "plain_text", "text": "Cancel"}}}));
        } else {
            if let Some(url) = &a.approve_url {
                buttons.push(json!({"type": "button", "action_id": "greenlight_approve_link", "url": url, "style": "primary", "text": {"type": "plain_text", "text": "Approve…"}}));
            }
            if let Some(url) = &a.reject_url {
                buttons.push(json!({"type": "button", "action_id": "greenlight_reject_link", "url": url, "style": "danger", "text": {"type": "plain_text", "text": "Reject…"}}));
            }
        }
        if !buttons.is_empty() {
            details.push(json!({"type": "actions", "block_id": format!("greenlight_approval_{}", a.id), "elements": buttons}));
        }
        if let Some(c) = &a.command {
            details.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&format!("*From a terminal*\n```{}```", escape(c)), 2990)}}));
        }
    }
    if let Some(step) = &n.links.next_step {
        details.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&format!("*Next step* ({})\n```{}```", escape(&step.purpose), escape(&step.command)), 2990)}}));
    }
    let mut context = Vec::new();
    if let Some(url) = &n.links.console {
        context.push(link(url, "Deployment in the console"));
    }
    if let Some(url) = &n.links.logs {
        context.push(link(url, "Log stream"));
    }
    context.push(format!(
        "{} · invocation {} · id {}",
        escape(&n.function),
        n.invocation,
        n.id
    ));
    details.push(
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context.join(" · ")}]}),
    );

    json!({
        "text": clip(&title, 300),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": clip(&title, 150), "emoji": true}}
        ],
        "attachments": [
            {"color": colour(n.event), "fallback": clip(&title, 300), "blocks": details}
        ]
    })
}
