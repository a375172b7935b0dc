//! The real `before-allow-traffic` binary under a local Lambda Runtime API (a small axum
//! server speaking the Runtime API's routes), one process per test: hostile inputs still
//! get an answer, through the same runtime path Lambda uses.
//!
//! * Answers with a 1 GiB body and with an endless one are cut at `maxBodySize`, a
//!   webhook failing with an endless body is read no further than its start, and the
//!   function's peak memory (the kernel's `VmHWM` of its process) stays bounded.
//! * An event whose `hookDetails` nests another tool's value 10,000 (and 1,000,000)
//!   levels deep is answered, and the value given back as it came.
//! * An invocation error names a short `errorType`, not a Rust type path.

use crate::support;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use support::*;

const FUNCTION: &str = "before-allow-traffic";

/// What the function sent back for one invocation.
#[derive(Clone, Debug)]
enum Outcome {
    Response(Vec<u8>),
    Error(Value),
}

#[derive(Default)]
struct Api {
    queue: Mutex<VecDeque<(String, Vec<u8>)>>,
    queued: tokio::sync::Notify,
    outcomes: Mutex<Vec<(String, Outcome)>>,
    init_errors: Mutex<Vec<String>>,
    answered: tokio::sync::Notify,
}

/// A local Lambda Runtime API: `GET …/invocation/next` hands out queued events (and waits
/// while there are none), `POST …/response` and `…/error` record what came back.
struct RuntimeApi {
    addr: std::net::SocketAddr,
    api: Arc<Api>,
    next_id: Mutex<u32>,
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    loop {
        let item = api.queue.lock().unwrap().pop_front();
        if let Some((id, body)) = item {
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 120_000;
            return (
                StatusCode::OK,
                [
                    ("content-type", "application/json".to_string()),
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        format!("arn:aws:lambda:us-west-2:123456789012:function:{FUNCTION}"),
                    ),
                ],
                body,
            )
                .into_response();
        }
        api.queued.notified().await;
    }
}

async fn response(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    api.outcomes
        .lock()
        .unwrap()
        .push((id, Outcome::Response(body.to_vec())));
    api.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn error(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    api.outcomes.lock().unwrap().push((id, Outcome::Error(v)));
    api.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Arc<Api>>, body: Bytes) -> StatusCode {
    api.init_errors
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    api.answered.notify_waiters();
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let api = Arc::new(Api::default());
        let base = "/2018-06-01/runtime";
        let router = Router::new()
            .route(&format!("{base}/invocation/next"), get(next))
            .route(
                &format!("{base}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{base}/invocation/{{id}}/error"), post(error))
            .route(&format!("{base}/init/error"), post(init_error))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(api.clone());
        RuntimeApi {
            addr: serve(router).await,
            api,
            next_id: Mutex::new(0),
        }
    }

    /// Invokes the function with `event` (raw JSON) and waits for what it sends back.
    async fn invoke(&self, f: &Function, event: impl Into<Vec<u8>>) -> Outcome {
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("request-{n}")
        };
        self.api
            .queue
            .lock()
            .unwrap()
            .push_back((id.clone(), event.into()));
        self.api.queued.notify_one();
        let wait = async {
            loop {
                let answered = self.api.answered.notified();
                if let Some((_, o)) = self
                    .api
                    .outcomes
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(i, _)| *i == id)
                {
                    return o.clone();
                }
                let init = self.api.init_errors.lock().unwrap().clone();
                assert!(init.is_empty(), "the function failed to start: {init:?}");
                answered.await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(120), wait).await {
            Ok(o) => o,
            Err(_) => panic!("no answer to {id} within 120 s; log:\n{}", f.log()),
        }
    }
}

/// The function binary, built once per test process into the target directory this test
/// runs from.
fn binary() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target = profile_dir.parent().unwrap();
        let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
        cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["build", "-p", FUNCTION, "--target-dir"])
            .arg(target);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build -p {FUNCTION} failed");
        profile_dir.join(FUNCTION)
    })
}

/// A function process, killed when dropped.
struct Function {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

impl Function {
    /// Starts the function against `api`, with the environment Lambda gives it (and
    /// `env`). Its address space is capped at 4 GiB (`ulimit -v`) so that a regression
    /// fails the test rather than exhausting the machine.
    fn start(api: &RuntimeApi, name: &str, env: &[(&str, String)]) -> Function {
        let log = scratch_dir(&format!("runtime-api-{name}")).join("function.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.args(["-c", "ulimit -v 4194304 && exec \"$0\""])
            .arg(binary())
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-west-2")
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the function starts");
        let pid = child.id().unwrap();
        Function { child, pid, log }
    }

    /// The peak resident memory of the process so far (`VmHWM`), in KiB.
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|e| panic!("the function exited ({e}); log:\n{}", self.log()));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text[text.floor_char_boundary(start)..].to_string()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn answer(o: &Outcome) -> Value {
    match o {
        Outcome::Response(b) => {
            serde_json::from_slice(b).unwrap_or_else(|e| panic!("the answer is not JSON ({e})"))
        }
        Outcome::Error(e) => panic!("an invocation error instead of an answer: {e}"),
    }
}

fn with_checks(checks: Value) -> Vec<u8> {
    let mut ev = event("ecs-http-check.json");
    ev["hookDetails"] = json!({"greenlight": {"checks": checks}});
    serde_json::to_vec(&ev).unwrap()
}

/// Bodies for the probes: small, 1 GiB with a Content-Length, and endless (chunked).
/// The big ones are made on the fly from one 64 KiB block, never held whole.
async fn body_server() -> std::net::SocketAddr {
    const BLOCK: usize = 64 << 10;
    let block = Bytes::from(vec![b'x'; BLOCK]);
    let huge = {
        let block = block.clone();
        move || async move {
            let chunks = futures::stream::repeat(block)
                .take((1 << 30) / BLOCK)
                .map(Ok::<_, std::io::Error>);
            (
                [("content-length", (1u64 << 30).to_string())],
                Body::from_stream(chunks),
            )
        }
    };
    let endless = move || async move {
        let head = Bytes::from_static(b"{\"status\":\"UP\",\"padding\":\"");
        let chunks = futures::stream::once(async { head })
            .chain(futures::stream::repeat(block))
            .map(Ok::<_, std::io::Error>);
        Body::from_stream(chunks)
    };
    let failing = move || async move {
        let head = Bytes::from_static(b"upstream failed: ");
        let chunks = futures::stream::once(async { head })
            .chain(futures::stream::repeat(Bytes::from(vec![b'x'; BLOCK])))
            .map(Ok::<_, std::io::Error>);
        (StatusCode::INTERNAL_SERVER_ERROR, Body::from_stream(chunks))
    };
    serve(
        Router::new()
            .route("/small", get(|| async { "{\"status\":\"UP\"}" }))
            .route("/huge", get(huge))
            .route("/endless", get(endless))
            .route("/hook", post(failing)),
    )
    .await
}

fn probe(addr: std::net::SocketAddr, path: &str, extra: Value) -> Value {
    let mut c = json!({
        "type": "http",
        "url": format!("http://{addr}{path}"),
        "timeout": "30s",
        "failureLimit": 0,
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "probe": c })
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_endless_bodies_are_cut_and_memory_stays_bounded() {
    let bodies = body_server().await;
    let api = RuntimeApi::start().await;
    // Every answer is also announced to a webhook that fails with an endless body.
    let notifications = json!({"notifications": {"channels": {"hook": {
        "type": "webhook", "url": format!("http://{bodies}/hook"),
        "events": ["stagePassed", "failed"], "retries": 1
    }}, "includeImages": false}});
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let f = Function::start(
        &api,
        "bodies",
        &[
            ("GREENLIGHT_CONFIG", notifications.to_string()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://{}", nothing.local_addr().unwrap()),
            ),
        ],
    );

    // A first invocation, for the baseline: the runtime, the clients, one small body.
    let a = answer(
        &api.invoke(
            &f,
            with_checks(probe(
                bodies,
                "/small",
                json!({"expectBody": {"contains": "UP"}}),
            )),
        )
        .await,
    );
    assert_eq!(status(&a), "SUCCEEDED", "{a:#}");
    let notes = a["hookDetails"]["greenlightDecision"]["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "failed: answered 500: upstream failed: {} (after 2 attempts)",
            "x".repeat(183)
        )),
        "{notes}"
    );
    let baseline = f.peak_kib();

    let run = |path: &'static str, extra: Value, want: &'static str, why: &'static str| {
        let (api, f) = (&api, &f);
        async move {
            let started = std::time::Instant::now();
            let a = answer(
                &api.invoke(f, with_checks(probe(bodies, path, extra.clone())))
                    .await,
            );
            assert_eq!(status(&a), want, "{path} {extra}: {a:#}");
            assert!(reason(&a).contains(why), "{path} {extra}: {}", reason(&a));
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{path} {extra} took {:?}",
                started.elapsed()
            );
        }
    };
    // 1 GiB: the text is not in the first 1 MiB.
    run(
        "/huge",
        json!({"expectBody": {"contains": "UP"}}),
        "FAILED",
        "the body does not contain \"UP\" in its first 1 MiB (the body was cut at 1 MiB, maxBodySize)",
    )
    .await;
    // Endless: a match before the cut settles it.
    run(
        "/endless",
        json!({"expectBody": {"regex": "\"status\":\"UP\""}}),
        "SUCCEEDED",
        "the body was cut at 1 MiB",
    )
    .await;
    // Endless JSON never ends.
    run(
        "/endless",
        json!({"expectBody": {"jsonPointer": "/status", "equals": "UP"}}),
        "FAILED",
        "the body was cut at 1 MiB (maxBodySize) before its JSON ended",
    )
    .await;
    // No expectation: only the excerpt is read.
    run("/endless", json!({}), "SUCCEEDED", "answered 200").await;
    run("/huge", json!({}), "SUCCEEDED", "answered 200").await;
    let peak_default = f.peak_kib();
    // The largest limit there is.
    run(
        "/huge",
        json!({"expectBody": {"regex": "UP"}, "maxBodySize": "16MiB"}),
        "FAILED",
        "the body was cut at 16 MiB",
    )
    .await;
    let peak = f.peak_kib();
    eprintln!(
        "VmHWM of {FUNCTION}: {baseline} KiB after a small body; {peak_default} KiB after 1 GiB and endless bodies at the default maxBodySize (+{} KiB); {peak} KiB after one cut at 16 MiB (+{} KiB)",
        peak_default.saturating_sub(baseline),
        peak.saturating_sub(baseline)
    );
    // At the default 1 MiB: the body (the buffer never grows past the limit, and valid
    // UTF-8 becomes text without a copy), the connection's buffers, the webhook's 4 KiB,
    // and the allocator's slack: under 8 MiB. At 16 MiB, the same with 16 MiB of body:
    // under 32 MiB. Reading the 1 GiB body whole would add a gigabyte.
    assert!(
        peak_default.saturating_sub(baseline) < 8 * 1024,
        "the peak memory grew from {baseline} KiB to {peak_default} KiB"
    );
    assert!(
        peak.saturating_sub(baseline) < 32 * 1024,
        "the peak memory grew from {baseline} KiB to {peak} KiB"
    );
    // And the whole process stays far below the function's 256 MB.
    assert!(peak < 128 * 1024, "peak memory {peak} KiB");
}

/// `depth` levels of `{"a": [ … ]}` alternating, innermost `true`.
fn nested(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 6);
    for i in 0..depth {
        s.push_str(if i % 2 == 0 { "{\"a\":" } else { "[" });
    }
    s.push_str("true");
    for i in (0..depth).rev() {
        s.push(if i % 2 == 0 { '}' } else { ']' });
    }
    s
}

/// Replaces the `"__DEEP__"` placeholder of a serialised event with raw JSON.
fn with_raw(event: &Value, raw: &str) -> Vec<u8> {
    let text = serde_json::to_string(event).unwrap();
    assert!(text.contains("\"__DEEP__\""));
    text.replacen("\"__DEEP__\"", raw, 1).into_bytes()
}

/// The raw text of `hookDetails.<key>` in an answer (too deep for a `Value`).
fn raw_hook_detail(answer: &[u8], key: &str) -> Option<String> {
    let top: indexmap::IndexMap<String, Box<RawValue>> = serde_json::from_slice(answer).unwrap();
    let details: indexmap::IndexMap<String, Box<RawValue>> =
        serde_json::from_str(top.get("hookDetails")?.get()).unwrap();
    details.get(key).map(|r| r.get().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deeply_nested_hook_details_value_is_answered_and_given_back() {
    let app = app(200, Duration::ZERO).await;
    let codedeploy = FakeCodeDeploy::start(vec![]).await;
    let api = RuntimeApi::start().await;
    let f = Function::start(
        &api,
        "deep",
        &[("AWS_ENDPOINT_URL", format!("http://{}", codedeploy.addr))],
    );
    let checks = json!({"health": {"type": "http", "url": format!("http://{app}/health"), "failureLimit": 0}});

    for depth in [10_000, 1_000_000] {
        let deep = nested(depth);
        let mut ev = event("ecs-http-check.json");
        ev["hookDetails"] = json!({"otherTool": "__DEEP__", "greenlight": {"checks": checks}});
        let out = api.invoke(&f, with_raw(&ev, &deep)).await;
        let Outcome::Response(body) = &out else {
            panic!(
                "depth {depth}: an invocation error instead of an answer: {out:?}; log:\n{}",
                f.log()
            );
        };
        let top: indexmap::IndexMap<String, Box<RawValue>> = serde_json::from_slice(body).unwrap();
        assert_eq!(top["hookStatus"].get(), "\"SUCCEEDED\"", "depth {depth}");
        // Given back as it came, for the tool it belongs to.
        assert!(
            raw_hook_detail(body, "otherTool").as_deref() == Some(deep.as_str()),
            "depth {depth}: hookDetails.otherTool was not given back"
        );
        let decision: Value =
            serde_json::from_str(&raw_hook_detail(body, "greenlightDecision").unwrap()).unwrap();
        let notes = decision["notes"].to_string();
        assert!(
            notes.contains("hookDetails.otherTool is nested more than 128 levels deep"),
            "{notes}"
        );
    }

    // Greenlight's own settings nested too deeply: FAILED, saying so (and given back as
    // they came, as every key of hookDetails but Greenlight's state and decision).
    let mut ev = event("ecs-http-check.json");
    ev["hookDetails"] = json!({"greenlight": "__DEEP__"});
    let settings = format!("{{\"checks\": {}}}", nested(10_000));
    let out = api.invoke(&f, with_raw(&ev, &settings)).await;
    let Outcome::Response(body) = &out else {
        panic!("an invocation error instead of an answer: {out:?}");
    };
    let top: indexmap::IndexMap<String, Box<RawValue>> = serde_json::from_slice(body).unwrap();
    assert_eq!(top["hookStatus"].get(), "\"FAILED\"");
    let decision: Value =
        serde_json::from_str(&raw_hook_detail(body, "greenlightDecision").unwrap()).unwrap();
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .contains("hookDetails.greenlight is nested more than 128 levels deep: Greenlight cannot read it; failing closed"),
        "{decision}"
    );
    assert_eq!(
        raw_hook_detail(body, "greenlight").as_deref(),
        Some(settings.as_str())
    );

    // A CodeDeploy event with a deep extra field still reports.
    let mut ev = event("codedeploy-ecs-before-allow-traffic.json");
    ev["extra"] = json!("__DEEP__");
    let out = api.invoke(&f, with_raw(&ev, &nested(10_000))).await;
    assert!(matches!(out, Outcome::Response(_)), "{out:?}");
    let reports = codedeploy.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].body["status"], "Succeeded", "{reports:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_error_names_a_short_error_type() {
    // CodeDeploy refuses the report: the invocation ends in an error (Lambda retries it).
    let codedeploy =
        FakeCodeDeploy::start(vec![Reply::Error("AccessDeniedException", 400); 5]).await;
    let api = RuntimeApi::start().await;
    let f = Function::start(
        &api,
        "error-type",
        &[("AWS_ENDPOINT_URL", format!("http://{}", codedeploy.addr))],
    );
    let ev = serde_json::to_vec(&event("codedeploy-ecs-before-allow-traffic.json")).unwrap();
    let Outcome::Error(e) = api.invoke(&f, ev).await else {
        panic!("expected an invocation error; log:\n{}", f.log());
    };
    assert_eq!(e["errorType"], "GreenlightError", "{e}");
    let message = e["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("could not report Succeeded to CodeDeploy")
            && message.contains("codedeploy:PutLifecycleEventHookExecutionStatus"),
        "{message}"
    );
}
