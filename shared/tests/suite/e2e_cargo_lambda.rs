//! End to end: `cargo lambda watch` serves the four real binaries; each is invoked with
//! sample events over the Lambda invoke API (and once through `cargo lambda invoke`, the
//! command the book shows, docs/getting-started.md). A CodeDeploy event reports to a local endpoint speaking
//! CodeDeploy's protocol. The decision record must show in the functions' JSON log.

use crate::support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::*;

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops `cargo lambda watch` and the function processes it started.
pub(crate) struct Watch {
    pub(crate) child: tokio::process::Child,
}

impl Watch {
    /// `cargo lambda watch` on `port`, with `env` (`KEY=VALUE`) passed through an env file
    /// (`--env-var` splits a value at commas, which JSON holds) and its output in `log`;
    /// returns once it listens.
    pub(crate) async fn start(port: u16, env: &[String], log: &std::path::Path) -> Watch {
        let file = std::fs::File::create(log).unwrap();
        let env_file = log.with_extension("env");
        let lines: Vec<String> = env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap();
                assert!(!v.contains('\''), "{k}: a single quote cannot be passed");
                format!("{k}='{v}'")
            })
            .collect();
        std::fs::write(&env_file, lines.join("\n") + "\n").unwrap();
        let mut cmd = tokio::process::Command::new("cargo");
        cmd.current_dir(root())
            .args([
                "lambda",
                "watch",
                "--invoke-address",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .args(["--timeout", "300", "--ignore-changes", "--env-file"])
            .arg(&env_file)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        let watch = Watch {
            child: cmd.spawn().expect("cargo lambda watch starts"),
        };
        let started = std::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "cargo lambda watch did not listen: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        watch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg("--")
                .arg(format!("-{pid}"))
                .status();
        }
    }
}

pub(crate) async fn invoke(port: u16, function: &str, event: &Value) -> Value {
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations");
    let resp = reqwest::Client::new()
        .post(url)
        .json(event)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoking {function}: {e}"));
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{function} answered {text:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn four_functions_under_cargo_lambda_watch() {
    let version = std::process::Command::new("cargo")
        .args(["lambda", "--version"])
        .output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-lambda is needed for this test: `make tools` (or `pip install cargo-lambda`) installs it"
    );
    // Build the four binaries first, so that `cargo lambda watch` (which runs `cargo run` on a
    // function's first invocation) only starts them.
    let built = std::process::Command::new("cargo")
        .current_dir(root())
        .args(["build", "--workspace", "--bins"])
        .status()
        .expect("cargo builds");
    assert!(built.success(), "cargo build --workspace --bins failed");
    let healthy = app(200, Duration::ZERO).await;
    let codedeploy = FakeCodeDeploy::start(vec![]).await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("greenlight-e2e-{port}.log"));
    let env = [
        format!("AWS_ENDPOINT_URL=http://{}", codedeploy.addr),
        "AWS_REGION=us-west-2".into(),
        "AWS_ACCESS_KEY_ID=AKIDTEST".into(),
        "AWS_SECRET_ACCESS_KEY=test".into(),
        "AWS_LAMBDA_LOG_FORMAT=JSON".into(),
        // cargo lambda watch gives every invocation ten minutes; this makes it one.
        "GREENLIGHT_MAX_INVOCATION=60s".into(),
    ];
    let _watch = Watch::start(port, &env, &log).await;

    let cases = [
        ("before-install", "ecs-pre-scale-up.json", "SUCCEEDED"),
        ("before-install", "malformed-empty-object.json", "FAILED"),
        ("after-install", "ecs-post-scale-up.json", "SUCCEEDED"),
        ("after-install", "ecs-no-checks-fail.json", "FAILED"),
        (
            "before-allow-traffic",
            "ecs-test-traffic-shift.json",
            "SUCCEEDED",
        ),
        ("before-allow-traffic", "ecs-http-check.json", "SUCCEEDED"),
        (
            "before-allow-traffic",
            "bad-config-unknown-key.json",
            "FAILED",
        ),
        (
            "before-allow-traffic",
            "ecs-rollback-test-traffic-shift.json",
            "SUCCEEDED",
        ),
        (
            "after-allow-traffic",
            "ecs-post-production-traffic-shift.json",
            "SUCCEEDED",
        ),
        (
            "after-allow-traffic",
            "ecs-flat-launch-shape.json",
            "SUCCEEDED",
        ),
        (
            "after-allow-traffic",
            "malformed-wrong-types.json",
            "FAILED",
        ),
    ];
    for (function, file, status) in cases {
        let mut ev = event(file);
        if file == "ecs-http-check.json" {
            ev["hookDetails"]["greenlight"]["checks"]["health"]["url"] =
                format!("http://{healthy}/health").into();
        }
        let answer = invoke(port, function, &ev).await;
        assert_eq!(
            answer["hookStatus"], status,
            "{function} with {file}: {answer:#}"
        );
        assert!(
            answer["hookDetails"]["greenlightDecision"]["reason"].is_string(),
            "{function} with {file}: {answer:#}"
        );
    }

    // CodeDeploy: the answer is a summary; the status goes to the CodeDeploy API.
    let out = invoke(port, "after-allow-traffic", &event("codedeploy.json")).await;
    assert_eq!(out["reported"], "Succeeded", "{out:#}");
    let calls = codedeploy.reports();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["status"], "Succeeded");
    assert_eq!(calls[0].body["deploymentId"], "d-ABCDEF123");

    // The command docs/getting-started.md shows.
    let cli = tokio::process::Command::new("cargo")
        .current_dir(root())
        .args([
            "lambda",
            "invoke",
            "-P",
            &port.to_string(),
            "--invoke-address",
            "127.0.0.1",
            "before-allow-traffic",
            "--data-file",
            "events/ecs-rollback-production-traffic-shift.json",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let answer: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(answer["hookStatus"], "SUCCEEDED");

    // The decision record is in the log, as JSON.
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v["fields"]["decision"].is_string())
        .collect();
    assert!(
        records.len() >= cases.len(),
        "decision records in the JSON log: {}\n{text}",
        records.len()
    );
    let decision: Value =
        serde_json::from_str(records[0]["fields"]["decision"].as_str().unwrap()).unwrap();
    assert!(decision["verdict"].is_string() && decision["function"].is_string());
    // As a 60 s function: the budget is 60 s less the margin of 6 s (not 9m 30s).
    let budget = decision["budgetMs"].as_u64().unwrap();
    assert!((50_000..=54_000).contains(&budget), "budgetMs {budget}");
}
