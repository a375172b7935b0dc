//! What the documentation shows is what the code does.
//!
//! Every ```json block of README.md, docs/configuration.md and each check kind's README
//! (shared/src/checks/*/README.md) is marked, on the line before it, with what it shows,
//! and is checked as that:
//!
//! * `<!-- example: configuration -->`: a configuration document, which `config::parse`
//!   accepts;
//! * `<!-- example: hookDetails -->`: an ECS hook's `hookDetails`, whose `greenlight` is
//!   accepted as the hook's source; with `, over the configuration above`, merged over the
//!   last configuration example before it, as the function merges its environment and the
//!   hook;
//! * `<!-- example: invalid configuration -->` (as `GREENLIGHT_CONFIG`) and
//!   `<!-- example: invalid hookDetails -->` (as `hookDetails.greenlight`): refused, with the
//!   message of the ```text block that follows, exactly (`…` stands for any text);
//! * `<!-- example: query -->`: a metric query, accepted as a `metricThreshold` check's;
//! * `<!-- example: event -->`: an event `protocol::parse` accepts (a continuation's state
//!   must be the runner's);
//! * `<!-- example: answer -->`: an ECS answer of exactly `hookStatus`, `callBackDelay` and
//!   `hookDetails`, whose echoed configuration is valid;
//! * `<!-- example: notification -->`: the webhook body, format version 1;
//! * `<!-- example: service definition -->`: an ECS service definition whose hooks'
//!   `hookDetails.greenlight` are valid.
//!
//! The hookDetails of the ecspresso service definition under cdk/examples are checked too.

use std::path::Path;
use std::time::Duration;

use greenlight::config::{self, Source};
use greenlight::protocol::{self, Invocation};
use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A ```json block: where it is, its marker, its text, and the ```text block after it.
struct Block {
    line: usize,
    marker: Option<String>,
    text: String,
    message: Option<String>,
}

/// The ```json blocks of a Markdown file, with the marker on the line before each.
fn json_blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let fenced = |start: usize| -> (String, usize) {
        let mut end = start + 1;
        while end < lines.len() && lines[end].trim_end() != "```" {
            end += 1;
        }
        assert!(end < lines.len(), "line {}: unclosed block", start + 1);
        (lines[start + 1..end].join("\n"), end)
    };
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```json" {
            // Skip over other blocks whole: their contents are not Markdown.
            if lines[i].starts_with("```") {
                i = fenced(i).1;
            }
            i += 1;
            continue;
        }
        let marker = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().strip_prefix("<!-- example:"))
            .and_then(|l| l.strip_suffix("-->"))
            .map(|m| m.trim().to_string());
        let (text, end) = fenced(i);
        // The message of an invalid example: the next block, when only blank lines part them.
        let mut next = end + 1;
        while next < lines.len() && lines[next].trim().is_empty() {
            next += 1;
        }
        let message = (next < lines.len()
            && lines[next].starts_with("```")
            && lines[next].trim_end() != "```json")
            .then(|| fenced(next).0);
        blocks.push(Block {
            line: i + 1,
            marker,
            text,
            message,
        });
        i = end + 1;
    }
    blocks
}

/// `text` is `pattern`, where each `…` of the pattern stands for any text.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn source(origin: &str, value: &Value) -> Source {
    Source {
        origin: origin.to_string(),
        value: value.clone(),
    }
}

/// The hook's source from a `hookDetails` example.
fn hook_source(details: &Value) -> Source {
    let greenlight = details
        .get(config::CONFIG_KEY)
        .expect("a hookDetails example holds greenlight");
    source("hookDetails.greenlight", greenlight)
}

fn check_service_definition(def: &Value, what: &str) -> usize {
    let hooks = def["deploymentConfiguration"]["lifecycleHooks"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no deploymentConfiguration.lifecycleHooks"));
    let mut seen = 0;
    for h in hooks {
        if let Some(g) = h.get("hookDetails").and_then(|d| d.get(config::CONFIG_KEY)) {
            config::parse(g)
                .unwrap_or_else(|e| panic!("{what}, hook {}: {e}", h["lifecycleStages"]));
            seen += 1;
        }
    }
    seen
}

/// Checks every ```json block of `file`; returns how many of each kind there were.
fn check_examples(file: &str) -> std::collections::BTreeMap<String, usize> {
    let markdown = read(file);
    let mut kinds = std::collections::BTreeMap::new();
    let mut last_configuration: Option<Value> = None;
    let mut aws_cli_inputs: Vec<(String, String, Value)> = Vec::new();
    for b in json_blocks(&markdown) {
        let at = format!("{file}:{}", b.line);
        let marker = b.marker.unwrap_or_else(|| {
            panic!("{at}: a ```json block needs a marker on the line before it, such as <!-- example: configuration --> (see this test's header)")
        });
        let value: Value = serde_json::from_str(&b.text)
            .unwrap_or_else(|e| panic!("{at}: the example is not JSON: {e}\n{}", b.text));
        let (kind, over_above) = match marker.split_once(',') {
            Some((k, rest)) => {
                assert_eq!(
                    rest.trim(),
                    "over the configuration above",
                    "{at}: unknown marker {marker:?}"
                );
                (k.trim(), true)
            }
            None => (marker.as_str(), false),
        };
        if over_above {
            assert_eq!(
                kind, "hookDetails",
                "{at}: only hookDetails go over a configuration"
            );
        }
        match kind {
            "configuration" => {
                config::parse(&value).unwrap_or_else(|e| panic!("{at}: {e}"));
                last_configuration = Some(value);
            }
            "hookDetails" => {
                let mut sources = Vec::new();
                if over_above {
                    let base = last_configuration
                        .as_ref()
                        .unwrap_or_else(|| panic!("{at}: no configuration example above"));
                    sources.push(source("GREENLIGHT_CONFIG", base));
                }
                sources.push(hook_source(&value));
                config::resolve(&sources).unwrap_or_else(|e| panic!("{at}: {e}"));
            }
            "invalid configuration" | "invalid hookDetails" => {
                let src = if kind == "invalid configuration" {
                    source("GREENLIGHT_CONFIG", &value)
                } else {
                    hook_source(&value)
                };
                let err = match config::resolve(&[src]) {
                    Ok(_) => panic!("{at}: shown as invalid, but it is accepted"),
                    Err(e) => e.to_string(),
                };
                let shown = b.message.unwrap_or_else(|| {
                    panic!(
                        "{at}: an invalid example is followed by a ```text block with its message"
                    )
                });
                assert!(
                    matches_pattern(shown.trim(), &err),
                    "{at}: the message shown is not the one given\nshown: {}\ngiven: {err}",
                    shown.trim()
                );
            }
            "query" => {
                let check = json!({"checks": {"q": {"type": "metricThreshold", "query": value, "comparison": ">", "threshold": 1}}});
                config::parse(&check).unwrap_or_else(|e| panic!("{at}: {e}"));
            }
            "event" => match protocol::parse(&value) {
                Ok(Invocation::CodeDeploy(ev)) => {
                    if let Some(c) = ev.continuation {
                        serde_json::from_value::<greenlight::engine::runner::RunState>(c.state)
                            .unwrap_or_else(|e| panic!("{at}: the carried state: {e}"));
                    }
                }
                Ok(Invocation::Ecs(_)) => {}
                Err(e) => panic!("{at}: {e}"),
            },
            "answer" => {
                let map = value.as_object().expect("an answer is an object");
                for k in map.keys() {
                    assert!(
                        ["hookStatus", "callBackDelay", "hookDetails"].contains(&k.as_str()),
                        "{at}: an answer has no {k}"
                    );
                }
                let status = value["hookStatus"].as_str().unwrap_or_default();
                assert!(
                    ["SUCCEEDED", "FAILED", "IN_PROGRESS"].contains(&status),
                    "{at}: hookStatus {status:?}"
                );
                assert_eq!(
                    value.get("callBackDelay").is_some(),
                    status == "IN_PROGRESS",
                    "{at}: callBackDelay comes with IN_PROGRESS only"
                );
                let details = &value["hookDetails"];
                if let Some(g) = details.get(config::CONFIG_KEY) {
                    config::parse(g)
                        .unwrap_or_else(|e| panic!("{at}: hookDetails.greenlight: {e}"));
                }
                let decision = &details[config::DECISION_KEY];
                assert_eq!(decision["verdict"], status, "{at}");
                assert!(decision["reason"].is_string(), "{at}");
            }
            "notification" => {
                assert_eq!(value["version"], 1, "{at}");
                for k in ["id", "event", "title", "verdict", "reason", "sentAt"] {
                    assert!(value[k].is_string(), "{at}: {k}");
                }
            }
            "service definition" => {
                assert!(
                    check_service_definition(&value, &at) > 0,
                    "{at}: no hook configured"
                );
            }
            "check record" => {
                serde_json::from_value::<greenlight::record::CheckRecord>(value.clone())
                    .unwrap_or_else(|e| panic!("{at}: not a check's record: {e}"));
            }
            k if k.starts_with("aws-cli ") => {
                aws_cli_inputs.push((at.clone(), k.to_string(), value.clone()));
            }
            other => panic!("{at}: unknown kind {other:?}"),
        }
        *kinds.entry(kind.to_string()).or_default() += 1;
    }
    check_aws_cli_inputs(&aws_cli_inputs);
    kinds
}

#[test]
fn every_json_example_of_the_configuration_reference_is_what_it_says() {
    let kinds = check_examples("docs/configuration.md");
    for k in [
        "configuration",
        "hookDetails",
        "invalid configuration",
        "invalid hookDetails",
        "query",
        "event",
        "answer",
        "notification",
    ] {
        assert!(kinds.contains_key(k), "no {k} example: {kinds:?}");
    }
}

#[test]
fn every_json_example_of_the_readme_is_what_it_says() {
    let kinds = check_examples("README.md");
    assert!(kinds.contains_key("configuration"), "{kinds:?}");
}

#[test]
fn the_ecspresso_example_hook_details_are_valid() {
    let text = read("cdk/examples/ecs-service-def.json");
    let def: Value = serde_json::from_str(&text).unwrap();
    let seen = check_service_definition(&def, "cdk/examples/ecs-service-def.json");
    assert!(seen > 0, "the example configures at least one hook");
}

#[test]
fn the_marker_reader_sees_every_block_and_its_message() {
    let md = "text\n\n<!-- example: invalid configuration -->\n```json\n{}\n```\n\n```text\nthe message\n```\n\n```sh\n```json\n```\n\n```json\n[]\n```\n";
    let blocks = json_blocks(md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].marker.as_deref(), Some("invalid configuration"));
    assert_eq!(blocks[0].message.as_deref(), Some("the message"));
    assert_eq!(blocks[1].marker, None);
    assert!(matches_pattern("a … c … e", "a b c d e"));
    assert!(matches_pattern(
        "is not valid JSON: …",
        "is not valid JSON: EOF"
    ));
    assert!(!matches_pattern("a … c", "a b d"));
    assert!(!matches_pattern("exact", "exactly"));
}

/// docs/configuration.md, Validation: the errors of the function's environment.
#[tokio::test]
async fn the_environment_errors_are_as_documented() {
    use greenlight::budget::Budget;
    use greenlight::services::{BaseConfig, Services};
    let doc = read("docs/configuration.md");
    let shown = |given: String| {
        assert!(
            doc.lines()
                .filter(|l| l.starts_with("configuration error"))
                .any(|l| matches_pattern(l, &given)),
            "docs/configuration.md does not show: {given}"
        );
    };
    let both = BaseConfig::from_env_values(Some("{}".into()), Some("/greenlight/config".into()))
        .unwrap_err();
    shown(both.to_string());
    let services = Services::new(Ok(BaseConfig::Inline("{not json".into())), None);
    let err = services
        .base_config(&Budget::of(Duration::from_secs(5)))
        .await
        .unwrap_err();
    shown(err.to_string());
}

const CHILD: &str = "GREENLIGHT_TEST_MIGRATION_SOURCE";

/// docs/configuration.md, the `postgresMigrations` check: a relative directory is taken from
/// `LAMBDA_TASK_ROOT` when it is set, else from the working directory. Each case runs this
/// test again in a process of its own, with its environment and working directory.
#[test]
fn a_relative_migration_directory_is_taken_from_lambda_task_root_else_the_working_directory() {
    if let Ok(expect) = std::env::var(CHILD) {
        return load_migrations_expecting(&expect);
    }
    let root = root().canonicalize().unwrap();
    let elsewhere = std::env::temp_dir();
    let run = |task_root: Option<&Path>, cwd: &Path, expect: &str| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "a_relative_migration_directory_is_taken_from_lambda_task_root_else_the_working_directory",
            "--nocapture",
        ])
        .current_dir(cwd)
        .env(CHILD, expect)
        .env_remove("LAMBDA_TASK_ROOT");
        if let Some(t) = task_root {
            cmd.env("LAMBDA_TASK_ROOT", t);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "LAMBDA_TASK_ROOT={task_root:?}, working directory {cwd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // On Lambda: from the package's root, wherever the process runs.
    run(Some(&root), &elsewhere, "found");
    // Under cargo lambda watch: from where it was started.
    run(None, &root, "found");
    // LAMBDA_TASK_ROOT wins over the working directory.
    run(Some(&elsewhere), &root, "missing");
}

fn load_migrations_expecting(expect: &str) {
    use greenlight::budget::Budget;
    use greenlight::checks::migrations;
    use greenlight::services::{BaseConfig, Services};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let services = Services::new(Ok(BaseConfig::None), None);
    let source = migrations::Source::parse("examples/migrations").unwrap();
    let loaded = rt.block_on(migrations::load(
        &source,
        &services,
        &Budget::of(Duration::from_secs(10)),
    ));
    match (expect, loaded) {
        ("found", Ok(files)) => assert!(files.len() >= 3, "{} files", files.len()),
        ("missing", Err(e)) => assert!(e.starts_with("cannot read the migration directory"), "{e}"),
        (_, other) => panic!("expected {expect}, got {:?}", other.map(|f| f.len())),
    }
}

/// `metricThreshold` → `metric_threshold`: a kind's folder under `shared/src/checks`.
fn folder_of(kind: &str) -> String {
    let mut out = String::new();
    for c in kind.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[test]
fn every_check_kind_has_a_folder_whose_readme_shows_it_configured() {
    let registered: Vec<&str> = greenlight::checks::REGISTRY.names();
    for kind in &registered {
        let readme = format!("shared/src/checks/{}/README.md", folder_of(kind));
        let kinds = check_examples(&readme);
        assert!(kinds.contains_key("configuration"), "{readme}: {kinds:?}");
        let shown = json_blocks(&read(&readme))
            .iter()
            .filter(|b| b.marker.as_deref() == Some("configuration"))
            .any(|b| {
                let doc: Value = serde_json::from_str(&b.text).unwrap();
                doc["checks"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(_, c)| c["type"] == *kind)
            });
        assert!(
            shown,
            "{readme} has no configuration example of a {kind} check"
        );
    }
    // And every folder with a README is a registered kind.
    let dir = root().join("shared/src/checks");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.join("README.md").exists() {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                registered.iter().any(|k| folder_of(k) == name),
                "shared/src/checks/{name} has a README but no registered kind"
            );
        }
    }
}

/// `<!-- example: aws-cli SERVICE OPERATION -->` blocks: the `--cli-input-json` of an AWS
/// CLI command, validated against the operation's input shape in botocore's service model
/// (the AWS CLI's own), with botocore's parameter validator; hookDetails in them must be
/// valid configurations too.
fn check_aws_cli_inputs(inputs: &[(String, String, Value)]) {
    if inputs.is_empty() {
        return;
    }
    for (at, _, value) in inputs {
        if value.get("deploymentConfiguration").is_some() {
            check_service_definition(value, at);
        }
    }
    let script = r#"
import json, sys, re
import botocore.session
from botocore.validate import ParamValidator
session = botocore.session.get_session()
failures = []
for at, kind, value in json.load(sys.stdin):
    _, service, op = kind.split()
    name = "".join(p.capitalize() for p in op.split("-"))
    model = session.get_service_model(service).operation_model(name)
    report = ParamValidator().validate(value, model.input_shape)
    if report.has_errors():
        failures.append(f"{at}: not valid input of {service} {op} ({name}): {report.generate_report()}")
print(json.dumps(failures))
"#;
    // A current botocore of its own (`make tools`), else the one on the path.
    let models = root().join(".tools/botocore");
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", &models)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (make tools puts botocore in .tools/venv)");
    let payload = serde_json::to_vec(
        &inputs
            .iter()
            .map(|(a, k, v)| json!([a, k, v]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &payload).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore's validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failures: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every page of the book (docs/, recursively; the generated reference aside): every JSON
/// example is what its marker says.
#[test]
fn every_json_example_of_the_book_is_what_it_says() {
    fn pages(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "generated") {
                    pages(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    pages(&root().join("docs"), &mut files);
    files.sort();
    assert!(files.len() > 20, "{files:?}");
    let mut all = std::collections::BTreeMap::new();
    for f in &files {
        for (k, n) in check_examples(f) {
            *all.entry(k).or_insert(0) += n;
        }
    }
    for k in ["aws-cli ecs create-service", "aws-cli ecs update-service"] {
        assert!(all.contains_key(k), "no {k} example in the book: {all:?}");
    }
}
