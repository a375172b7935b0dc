//! Fake hook functions behind a local Lambda Invoke API, and a runner for the binary.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const SERVICE_ARN: &str = "arn:aws:ecs:us-west-2:111122223333:service/shop/checkout";
pub const DEPLOYMENT_ARN: &str =
    "arn:aws:ecs:us-west-2:111122223333:service-deployment/shop/checkout/TFX5sH9q9XDboDTOv0rIt";
pub const GREEN: &str =
    "arn:aws:ecs:us-west-2:111122223333:service-revision/shop/checkout/9386398427419951854";
pub const BLUE: &str =
    "arn:aws:ecs:us-west-2:111122223333:service-revision/shop/checkout/4472057284928502176";

/// One invocation the fake functions received.
#[derive(Clone, Debug)]
pub struct Call {
    pub function: String,
    pub event: Value,
    /// 1 for the first invocation of this function.
    pub n: usize,
    pub at: Instant,
}

impl Call {
    pub fn stage(&self) -> &str {
        self.event["lifecycleStage"].as_str().unwrap_or_default()
    }

    pub fn test_weights(&self) -> &Value {
        &self.event["executionDetails"]["testTrafficWeights"]
    }

    pub fn production_weights(&self) -> &Value {
        &self.event["executionDetails"]["productionTrafficWeights"]
    }

    pub fn execution_id(&self) -> &str {
        self.event["executionId"].as_str().unwrap_or_default()
    }

    /// Traffic moving back: the stage's weight map gives the new revision 0 and another 100.
    pub fn rolling_back(&self) -> bool {
        let moving = match self.stage() {
            "TEST_TRAFFIC_SHIFT" => self.test_weights(),
            "PRODUCTION_TRAFFIC_SHIFT" => self.production_weights(),
            _ => return false,
        };
        let target = self.event["executionDetails"]["targetServiceRevisionArn"]
            .as_str()
            .unwrap_or_default();
        moving.get(target) == Some(&json!(0))
            && moving
                .as_object()
                .is_some_and(|m| m.iter().any(|(k, v)| k != target && v == &json!(100)))
    }

    /// `STAGE`, or `STAGE back` in a rollback, with the weights that stage carries.
    pub fn line(&self) -> String {
        format!(
            "{} {}{} test={} prod={}",
            self.function,
            self.stage(),
            if self.rolling_back() { " back" } else { "" },
            short(self.test_weights()),
            short(self.production_weights())
        )
    }
}

/// A weight map with the revision ARNs shortened to `green` / `blue`.
pub fn short(w: &Value) -> String {
    let Some(m) = w.as_object() else {
        return w.to_string();
    };
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            let name = match k.as_str() {
                GREEN => "green",
                BLUE => "blue",
                other => other,
            };
            format!("{name}:{v}")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// What a fake function answers.
pub enum Reply {
    /// HTTP 200 with this JSON payload.
    Json(Value),
    /// HTTP 200 with `X-Amz-Function-Error: Unhandled` and this payload.
    FunctionError(Value),
    /// Another HTTP status with this body.
    Http(u16, String),
}

pub fn succeeded() -> Reply {
    Reply::Json(json!({"hookStatus": "SUCCEEDED"}))
}

pub fn failed(reason: &str) -> Reply {
    Reply::Json(json!({
        "hookStatus": "FAILED",
        "hookDetails": {"greenlightDecision": {
            "function": "gate", "verdict": "FAILED", "reason": reason,
            "checks": [{"name": "health", "type": "http", "verdict": "fail", "effect": "blocked", "reason": reason}],
            "invocation": 1
        }}
    }))
}

type Script = dyn Fn(&Call) -> Reply + Send + Sync;

#[derive(Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Script>,
}

pub struct FakeLambda {
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
}

async fn invoke(State(fake): State<Fake>, Path(name): Path<String>, body: Bytes) -> Response {
    let event: Value = serde_json::from_slice(&body).expect("the event is JSON");
    let call = {
        let mut calls = fake.calls.lock().unwrap();
        let n = calls.iter().filter(|c| c.function == name).count() + 1;
        let call = Call {
            function: name,
            event,
            n,
            at: Instant::now(),
        };
        calls.push(call.clone());
        call
    };
    match (fake.script)(&call) {
        Reply::Json(v) => (StatusCode::OK, v.to_string()).into_response(),
        Reply::FunctionError(v) => {
            let mut h = HeaderMap::new();
            h.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            (StatusCode::OK, h, v.to_string()).into_response()
        }
        Reply::Http(status, body) => (StatusCode::from_u16(status).unwrap(), body).into_response(),
    }
}

impl FakeLambda {
    pub async fn start(script: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> FakeLambda {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            calls: calls.clone(),
            script: Arc::new(script),
        };
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeLambda { addr, calls }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::line).collect()
    }
}

static FILES: AtomicU64 = AtomicU64::new(0);

/// Writes a service file into the temporary directory.
pub fn service_file(service: &Value) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "greenlight-cli-test-{}-{}.json",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, serde_json::to_vec_pretty(service).unwrap()).unwrap();
    path
}

/// A service with `strategy` and the given hooks (function name → stages, hookDetails).
pub fn service(strategy: Value, hooks: &[(&str, &[&str], Option<Value>)]) -> Value {
    let mut dc = strategy;
    dc["lifecycleHooks"] = hooks
        .iter()
        .map(|(f, stages, details)| {
            let mut h = json!({
                "hookTargetArn": format!("arn:aws:lambda:us-west-2:111122223333:function:{f}"),
                "roleArn": "arn:aws:iam::111122223333:role/ecs-hooks",
                "lifecycleStages": stages,
            });
            if let Some(d) = details {
                h["hookDetails"] = d.clone();
            }
            h
        })
        .collect();
    json!({"serviceName": "checkout", "cluster": "shop", "taskDefinition": "checkout:42", "deploymentConfiguration": dc})
}

/// The result of one run of `greenlight rehearse`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` lines.
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.stdout))
            })
            .collect()
    }

    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|v| v["type"] == kind)
            .collect()
    }

    pub fn summary(&self) -> Value {
        let mut s = self.of_type("summary");
        assert_eq!(s.len(), 1, "one summary: {}", self.stdout);
        s.remove(0)
    }
}

/// Runs `greenlight rehearse <service> --endpoint <fake> --time-scale 0 <args>` with the
/// fixed ARNs above.
pub async fn rehearse(fake: &FakeLambda, service: &Value, args: &[&str]) -> Run {
    let mut all: Vec<String> = vec![
        "--endpoint".into(),
        fake.endpoint(),
        "--service-arn".into(),
        SERVICE_ARN.into(),
        "--service-deployment-arn".into(),
        DEPLOYMENT_ARN.into(),
        "--target-revision-arn".into(),
        GREEN.into(),
    ];
    if !args.contains(&"--first-deployment") {
        all.extend(["--source-revision-arn".into(), BLUE.into()]);
    }
    if !args.contains(&"--time-scale") {
        all.extend(["--time-scale".into(), "0".into()]);
    }
    all.extend(args.iter().map(|s| s.to_string()));
    run_raw(service_file(service), all).await
}

pub async fn run_raw(file: PathBuf, args: Vec<String>) -> Run {
    run_env(file, args, vec![]).await
}

/// Runs the binary with extra environment variables.
pub async fn run_env(file: PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> Run {
    let out: Output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
            .arg("rehearse")
            .arg(&file)
            .args(&args)
            .envs(env)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
