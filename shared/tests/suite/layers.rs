//! The library's top-level modules form layers: none imports, directly or through others,
//! a module that imports it back, and the lower layers never reach up into the Lambda
//! edge, the engine or the configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names as `crate::…` (comments and
/// documentation links are not imports).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel.components().next().unwrap().as_os_str();
            let top = first.to_string_lossy().trim_end_matches(".rs").to_string();
            if top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let named = graph.entry(top.clone()).or_default();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        named.insert(name);
                    }
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = vec![from];
    while let Some(m) = todo.pop() {
        for next in graph.get(m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next);
            }
        }
    }
    seen
}

#[test]
fn no_module_reaches_itself() {
    let graph = imports();
    assert!(graph.len() > 10, "the modules were read: {graph:?}");
    for module in graph.keys() {
        let reached = reaches(&graph, module);
        assert!(
            !reached.contains(module),
            "{module} imports (through {:?}) a module that imports it back",
            graph[module]
        );
    }
}

#[test]
fn lower_layers_never_reach_up() {
    let graph = imports();
    let upper = ["edge", "engine", "config"];
    for module in [
        "checks",
        "notify",
        "metrics",
        "facts",
        "judge",
        "services",
        "aws",
        "secrets",
        "template",
        "deployment",
        "record",
        "verdict",
        "schema",
        "stage",
        "role",
    ] {
        let reached = reaches(&graph, module);
        for up in upper {
            assert!(!reached.contains(up), "{module} reaches {up}: {reached:?}");
        }
    }
    // Checks and notifications are siblings: neither uses the other.
    assert!(!reaches(&graph, "checks").contains("notify"));
    assert!(!reaches(&graph, "notify").contains("checks"));
    // The engine never speaks a protocol.
    assert!(!reaches(&graph, "engine").contains("edge"));
}
