//! The configuration examples users copy — the README's, and the hookDetails of the
//! ecspresso service definition under cdk/examples — are valid Greenlight configuration.

use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every ```json block of a Markdown file that parses as JSON and has `checks`.
fn json_blocks_with_checks(markdown: &str) -> Vec<Value> {
    markdown
        .split("```json")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|v| v.get("checks").is_some())
        .collect()
}

#[test]
fn the_readme_configuration_example_is_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks = json_blocks_with_checks(&readme);
    assert!(
        !blocks.is_empty(),
        "the README shows a configuration example"
    );
    for b in blocks {
        greenlight::config::parse(&b).unwrap_or_else(|e| panic!("README example {b}: {e}"));
    }
}

#[test]
fn the_ecspresso_example_hook_details_are_valid() {
    let text = std::fs::read_to_string(root().join("cdk/examples/ecs-service-def.json")).unwrap();
    let def: Value = serde_json::from_str(&text).unwrap();
    let hooks = def["deploymentConfiguration"]["lifecycleHooks"]
        .as_array()
        .expect("lifecycleHooks");
    let mut seen = 0;
    for h in hooks {
        if let Some(g) = h.get("hookDetails").and_then(|d| d.get("greenlight")) {
            greenlight::config::parse(g)
                .unwrap_or_else(|e| panic!("{}: {e}", h["lifecycleStages"]));
            seen += 1;
        }
    }
    assert!(seen > 0, "the example configures at least one hook");
}
