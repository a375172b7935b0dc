//! The `greenlight` commands users reach for, run as the binary: `validate` (exit codes,
//! text and JSON), `schema` (the schema the functions use) and `explain`.

use std::process::Command;

use serde_json::Value;

fn greenlight(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("greenlight-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn validate_tells_valid_from_invalid_with_exit_codes() {
    let good = write(
        "good.json",
        r#"{"checks": {"health": {"type": "http", "url": "http://checkout.internal/health"}}}"#,
    );
    let bad = write(
        "bad.json",
        r#"{"checks": {"health": {"type": "http", "url": "http://x/", "timeout": "forever"}}}"#,
    );
    let (code, out, _) = greenlight(&["validate", &good]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, format!("{good}: .: valid (checks: health)\n"));
    let (code, out, _) = greenlight(&["validate", &good, &bad]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "{bad}: .: invalid: configuration error in {bad} at checks.health.timeout:"
        )),
        "{out}"
    );
    let (code, out, _) = greenlight(&["validate", "--format", "json", &bad]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["valid"], false);
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap()
            .contains("checks.health.timeout")
    );
    let (code, _, err) = greenlight(&["validate", "/nonexistent.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /nonexistent.json"), "{err}");
}

#[test]
fn validate_merges_a_service_definitions_hooks_over_the_environment() {
    let env = write(
        "env.json",
        r#"{"checks": {"health": {"type": "http", "url": "http://${service}.internal/health"}}}"#,
    );
    let svc = write(
        "svc.json",
        r#"{"cluster": "shop", "serviceName": "checkout", "deploymentConfiguration": {"strategy": "BLUE_GREEN", "lifecycleHooks": [
            {"hookTargetArn": "arn:aws:lambda:us-west-2:123456789012:function:greenlight-before-allow-traffic", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
             "hookDetails": {"greenlight": {"checks": {"health": {"timeout": "3s"}, "go-ahead": {"type": "approval", "timeout": "2h"}}}}}]}}"#,
    );
    let (code, out, err) = greenlight(&["validate", "--config", &env, &svc]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(".deploymentConfiguration.lifecycleHooks[0].hookDetails: valid (checks: health, go-ahead)"), "{out}");
    // Without the environment, the hook's partial check is incomplete.
    let (code, out, _) = greenlight(&["validate", &svc]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checks.health.type"), "{out}");
}

#[test]
fn schema_is_the_documented_one() {
    let (code, out, _) = greenlight(&["schema"]);
    assert_eq!(code, 0);
    let printed: Value = serde_json::from_str(&out).unwrap();
    let documented: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/greenlight.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, documented);
}

#[test]
fn explain_reads_an_answer() {
    let answer = write(
        "answer.json",
        r#"{"hookStatus": "IN_PROGRESS", "callBackDelay": 30, "hookDetails": {"greenlightDecision": {"function": "before-allow-traffic", "verdict": "IN_PROGRESS",
            "reason": "waiting for go-ahead", "stage": "POST_TEST_TRAFFIC_SHIFT", "invocation": 1,
            "checks": [{"name": "go-ahead", "type": "approval", "verdict": "pending", "effect": "waiting", "reason": "waiting for approval by anyone with access"}]}}}"#,
    );
    let (code, out, _) = greenlight(&["explain", &answer]);
    assert_eq!(code, 0);
    assert!(out.starts_with("before-allow-traffic answered IN_PROGRESS for the deployment at POST_TEST_TRAFFIC_SHIFT: not decided yet"), "{out}");
    assert!(
        out.contains(
            "  - go-ahead (approval): still waiting: waiting for approval by anyone with access"
        ),
        "{out}"
    );
    let (code, _, err) = greenlight(&["explain", &write("none.json", "{}")]);
    assert_eq!(code, 2);
    assert!(err.contains("no decision record"), "{err}");
}

#[test]
fn check_runs_one_gate_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            );
        }
    });
    let config = write(
        "gate.json",
        &format!(
            r#"{{"checks": {{"health": {{"type": "http", "url": "http://127.0.0.1:{port}/health"}}}}}}"#
        ),
    );
    let (code, out, err) = greenlight(&[
        "check",
        "--function",
        "before-allow-traffic",
        "--stage",
        "POST_TEST_TRAFFIC_SHIFT",
        "--config",
        &config,
        "--timeout",
        "20s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("before-allow-traffic answered SUCCEEDED"),
        "{out}"
    );
    assert!(out.contains("\"hookStatus\": \"SUCCEEDED\""), "{out}");
    let broken = write("broken.json", r#"{"checks": {"health": {"type": "http"}}}"#);
    let (code, out, _) = greenlight(&[
        "check",
        "--function",
        "before-allow-traffic",
        "--stage",
        "POST_TEST_TRAFFIC_SHIFT",
        "--config",
        &broken,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checks.health.url"), "{out}");
    let (code, _, err) = greenlight(&[
        "check",
        "--function",
        "nope",
        "--stage",
        "POST_TEST_TRAFFIC_SHIFT",
        "--config",
        &broken,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown function"), "{err}");
}
