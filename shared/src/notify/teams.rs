//! Microsoft Teams: a Workflows webhook ("When a Teams webhook request is received") with
//! an Adaptive Card 1.4 in the message envelope the workflow expects.

use serde_json::{Value, json};

use super::notice::{Notice, clip, emoji, human_duration};
use super::settings::Event;

fn style(event: Event) -> (&'static str, &'static str) {
    // (Container style, TextBlock colour)
    match event {
        Event::Started => ("accent", "Accent"),
        Event::Failed => ("attention", "Attention"),
        Event::RolledBack => ("warning", "Warning"),
        Event::Succeeded | Event::StagePassed => ("good", "Good"),
        Event::ApprovalRequested => ("warning", "Warning"),
    }
}

fn fact(title: &str, value: &str) -> Value {
    json!({"title": title, "value": clip(value, 1000)})
}

/// The adaptive card.
pub fn card(n: &Notice) -> Value {
    let d = &n.deployment;
    let (container, colour) = style(n.event);
    let mut facts = Vec::new();
    if let Some(s) = &d.service {
        facts.push(fact("Service", s));
    }
    if let Some(c) = &d.cluster {
        facts.push(fact("Cluster", c));
    }
    if let Some(id) = &d.codedeploy_deployment_id {
        facts.push(fact("Deployment", id));
    }
    facts.push(fact("Stage", &n.stage));
    facts.push(fact("Verdict", &n.verdict));
    if let Some(r) = n.revision() {
        facts.push(fact("Revision", &r));
    }
    for i in n.images.iter().take(3) {
        facts.push(fact("Image", &format!("{}: {}", i.container, i.image)));
    }
    facts.push(fact("Duration", &human_duration(n.duration)));

    let mut body = vec![
        json!({
            "type": "Container",
            "style": container,
            "bleed": true,
            "items": [{"type": "TextBlock", "text": format!("{} {}", emoji(n.event), n.headline), "weight": "Bolder", "size": "Medium", "color": colour, "wrap": true}]
        }),
        json!({"type": "FactSet", "facts": facts}),
        json!({"type": "TextBlock", "text": "Reason", "weight": "Bolder", "spacing": "Medium", "wrap": true}),
        json!({"type": "TextBlock", "text": clip(&n.reason, 2800), "wrap": true}),
    ];
    let worth = n.other_checks();
    let top = &worth[..worth.len().min(5)];
    if !top.is_empty() {
        let mut lines: Vec<String> = top
            .iter()
            .map(|c| format!("- **{}** ({}): {}", c.name, c.effect, clip(&c.reason, 400)))
            .collect();
        if worth.len() > top.len() {
            lines.push(format!("- …and {} more", worth.len() - top.len()));
        }
        body.push(json!({"type": "TextBlock", "text": "Checks", "weight": "Bolder", "spacing": "Medium", "wrap": true}));
        body.push(json!({"type": "TextBlock", "text": lines.join("\n"), "wrap": true}));
    }
    if let Some(a) = &n.approval {
        body.push(json!({"type": "TextBlock", "text": "Approval", "weight": "Bolder", "spacing": "Medium", "wrap": true}));
        body.push(
            json!({"type": "TextBlock", "text": clip(&a.lines().join("\n\n"), 2800), "wrap": true}),
        );
        if let Some(c) = &a.command {
            body.push(json!({"type": "TextBlock", "text": clip(c, 1000), "fontType": "Monospace", "wrap": true}));
        }
    }
    if let Some(step) = &n.links.next_step {
        body.push(json!({"type": "TextBlock", "text": format!("Next step ({})", step.purpose), "weight": "Bolder", "spacing": "Medium", "wrap": true}));
        body.push(json!({"type": "TextBlock", "text": step.command, "fontType": "Monospace", "wrap": true}));
    }
    body.push(json!({"type": "TextBlock", "text": format!("{} · invocation {} · id {}", n.function, n.invocation, n.id), "isSubtle": true, "size": "Small", "wrap": true}));

    let mut actions = Vec::new();
    if let Some(a) = &n.approval {
        if let Some(url) = &a.approve_url {
            actions.push(json!({"type": "Action.OpenUrl", "title": "Approve", "url": url, "style": "positive"}));
        }
        if let Some(url) = &a.reject_url {
            actions.push(json!({"type": "Action.OpenUrl", "title": "Reject", "url": url, "style": "destructive"}));
        }
    }
    if let Some(url) = &n.links.console {
        actions.push(
            json!({"type": "Action.OpenUrl", "title": "Deployment in the console", "url": url}),
        );
    }
    if let Some(url) = &n.links.logs {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Log stream", "url": url}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body
    });
    if !actions.is_empty() {
        card["actions"] = json!(actions);
    }
    card
}

/// The request body: the card in the envelope Teams workflows read.
pub fn payload(n: &Notice) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card(n)
        }]
    })
}
