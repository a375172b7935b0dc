//! Test support: real local HTTP servers and a local endpoint speaking CodeDeploy's JSON
//! protocol, so the real SDK client is exercised end to end.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use greenlight::Services;
use greenlight::config::ConfigError;
use greenlight::services::BaseConfig;
use serde_json::Value;

/// Serves `router` on a free loopback port until the test ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// An app whose `/health` answers `status` after `delay`.
pub async fn app(status: u16, delay: Duration) -> SocketAddr {
    serve(Router::new().route(
        "/health",
        any(move || async move {
            tokio::time::sleep(delay).await;
            (StatusCode::from_u16(status).unwrap(), "{\"status\":\"ok\"}")
        }),
    ))
    .await
}

/// An app that answers `before` until `after_secs` have passed since it started, then 200.
pub async fn app_turning_healthy(before: u16, after: Duration) -> SocketAddr {
    let start = std::time::Instant::now();
    serve(Router::new().route(
        "/health",
        any(move || async move {
            let code = if start.elapsed() >= after {
                200
            } else {
                before
            };
            (StatusCode::from_u16(code).unwrap(), "health")
        }),
    ))
    .await
}

/// A deadline `d` from now, as Lambda gives it.
pub fn deadline_in(d: Duration) -> SystemTime {
    SystemTime::now() + d
}

pub fn services_with(config: Option<&str>) -> Services {
    let base = match config {
        Some(json) => BaseConfig::Inline(json.to_string()),
        None => BaseConfig::None,
    };
    Services::new(Ok(base), None)
}

pub fn services_with_base(base: Result<BaseConfig, ConfigError>) -> Services {
    Services::new(base, None)
}

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

pub fn event(name: &str) -> Value {
    let text = std::fs::read_to_string(events_dir().join(name))
        .unwrap_or_else(|e| panic!("events/{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

/// One request the fake CodeDeploy endpoint received.
#[derive(Clone, Debug)]
pub struct Call {
    pub target: String,
    pub body: Value,
}

/// How the fake CodeDeploy endpoint answers `PutLifecycleEventHookExecutionStatus`.
#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    /// An error with this `__type` and HTTP status.
    Error(&'static str, u16),
    /// Never answers.
    Hang,
}

/// A local endpoint speaking CodeDeploy's awsJson1_1 protocol. `script` is consumed one
/// reply per request; when it is empty, `Reply::Ok`.
#[derive(Clone)]
pub struct FakeCodeDeploy {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<Vec<Reply>>>,
    /// `ECS` or `Lambda`: what the discovery calls describe.
    pub platform: Arc<Mutex<&'static str>>,
    /// The status every lifecycle event of the target has (`InProgress`, `Succeeded`, …).
    pub hook_status: Arc<Mutex<&'static str>>,
}

const PUT: &str = "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus";

/// CodeDeploy's answers to the discovery calls, for an ECS or a Lambda deployment.
fn discovery_reply(target: &str, platform: &str, status: &str) -> String {
    let events: Vec<Value> = [
        "BeforeInstall",
        "AfterInstall",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    ]
    .iter()
    .map(|n| serde_json::json!({"lifecycleEventName": n, "status": status}))
    .collect();
    let v = match target.rsplit('.').next().unwrap_or_default() {
        "GetDeployment" => {
            serde_json::json!({"deploymentInfo": {"applicationName": "shop", "deploymentGroupName": "checkout-dg",
            "deploymentId": "d-ABCDEF123", "computePlatform": platform, "status": "InProgress"}})
        }
        "ListDeploymentTargets" => {
            serde_json::json!({"targetIds": [if platform == "ECS" { "shop-cluster:checkout" } else { "checkout-fn:Prod" }]})
        }
        "GetDeploymentTarget" if platform == "ECS" => {
            serde_json::json!({"deploymentTarget": {"deploymentTargetType": "ECSTarget", "ecsTarget": {
            "deploymentId": "d-ABCDEF123", "targetId": "shop-cluster:checkout",
            "targetArn": "arn:aws:ecs:us-west-2:123456789012:service/shop-cluster/checkout", "status": "InProgress", "lifecycleEvents": events,
            "taskSetsInfo": [
                {"identifer": "ecs-svc/1111", "desiredCount": 2, "pendingCount": 0, "runningCount": 2, "status": "ACTIVE", "trafficWeight": 0.0,
                 "targetGroup": {"name": "checkout-green"}, "taskSetLabel": "Green"},
                {"identifer": "ecs-svc/2222", "desiredCount": 2, "pendingCount": 0, "runningCount": 2, "status": "PRIMARY", "trafficWeight": 100.0,
                 "targetGroup": {"name": "checkout-blue"}, "taskSetLabel": "Blue"}]}}})
        }
        "GetDeploymentTarget" => {
            serde_json::json!({"deploymentTarget": {"deploymentTargetType": "LambdaTarget", "lambdaTarget": {
            "deploymentId": "d-ABCDEF123", "targetId": "checkout-fn:Prod", "targetArn": "arn:aws:lambda:us-west-2:123456789012:function:checkout-fn:Prod",
            "status": "InProgress", "lifecycleEvents": events,
            "lambdaFunctionInfo": {"functionName": "checkout-fn", "functionAlias": "Prod", "currentVersion": "7", "targetVersion": "8", "targetVersionWeight": 0.0}}}})
        }
        "GetDeploymentGroup" => {
            serde_json::json!({"deploymentGroupInfo": {"applicationName": "shop", "deploymentGroupName": "checkout-dg",
            "ecsServices": [{"serviceName": "checkout", "clusterName": "shop-cluster"}],
            "loadBalancerInfo": {"targetGroupPairInfoList": [{"targetGroups": [{"name": "checkout-blue"}, {"name": "checkout-green"}],
                "prodTrafficRoute": {"listenerArns": ["arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/shop/1/prod"]},
                "testTrafficRoute": {"listenerArns": ["arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/shop/1/test"]}}]}}})
        }
        _ => serde_json::json!({}),
    };
    v.to_string()
}

impl FakeCodeDeploy {
    pub async fn start(script: Vec<Reply>) -> FakeCodeDeploy {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let platform = Arc::new(Mutex::new("ECS"));
        let hook_status = Arc::new(Mutex::new("InProgress"));
        let (c, s, pf, hs) = (
            calls.clone(),
            script.clone(),
            platform.clone(),
            hook_status.clone(),
        );
        let router = Router::new().route(
            "/",
            any(move |headers: HeaderMap, body: Bytes| {
                let (c, s, pf, hs) = (c.clone(), s.clone(), pf.clone(), hs.clone());
                async move {
                    let target = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    c.lock().unwrap().push(Call {
                        target: target.clone(),
                        body,
                    });
                    if target != PUT {
                        let (p, h) = (*pf.lock().unwrap(), *hs.lock().unwrap());
                        return (
                            StatusCode::OK,
                            [("content-type", "application/x-amz-json-1.1")],
                            discovery_reply(&target, p, h),
                        )
                            .into_response();
                    }
                    let reply = {
                        let mut s = s.lock().unwrap();
                        if s.is_empty() { Reply::Ok } else { s.remove(0) }
                    };
                    match reply {
                        Reply::Ok => (
                            StatusCode::OK,
                            [("content-type", "application/x-amz-json-1.1")],
                            "{\"lifecycleEventHookExecutionId\":\"exec\"}".to_string(),
                        )
                            .into_response(),
                        Reply::Error(kind, status) => (
                            StatusCode::from_u16(status).unwrap(),
                            [("content-type", "application/x-amz-json-1.1")],
                            format!("{{\"__type\":\"{kind}\",\"message\":\"scripted {kind}\"}}"),
                        )
                            .into_response(),
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            StatusCode::OK.into_response()
                        }
                    }
                }
            }),
        );
        let addr = serve(router).await;
        FakeCodeDeploy {
            addr,
            calls,
            script,
            platform,
            hook_status,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The status reports (PutLifecycleEventHookExecutionStatus) received.
    pub fn reports(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.target == PUT)
            .collect()
    }

    /// AWS settings pointing the SDK at this endpoint, with test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&format!("http://{}", self.addr)).await
    }

    pub async fn services(&self, config: Option<&str>) -> Services {
        let base = match config {
            Some(json) => BaseConfig::Inline(json.to_string()),
            None => BaseConfig::None,
        };
        Services::new(Ok(base), Some(self.sdk_config().await))
    }
}

/// AWS settings pointing the SDK at `endpoint`, with test credentials.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_codedeploy::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .retry_config(greenlight::services::aws_retry())
        .timeout_config(greenlight::services::aws_timeouts())
        .load()
        .await
}

/// A moto server (the AWS emulator from PyPI, `moto[server]`) on a free loopback port,
/// stopped when dropped. `make tools` installs it.
///
/// CloudWatch's SDK speaks Smithy RPC v2 CBOR, which moto does not: `cloudwatch` is the
/// endpoint of a CBOR front for it (`standins/cloudwatch_cbor.py`), moto keeping the data.
pub struct Moto {
    pub endpoint: String,
    pub cloudwatch: String,
    child: std::process::Child,
    front: std::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stand-in of `standins/` (run with `python3`, as `make tools` puts its venv first on
/// PATH), listening on a free port passed as `--port`; returns the process and the port.
pub fn start_standin(script: &str, args: &[&str]) -> (std::process::Child, u16) {
    let port = free_port();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../standins")
        .join(script);
    let child = std::process::Command::new("python3")
        .arg(path)
        .args(args)
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 {script}: {e}"));
    wait_for_port(port, script);
    (child, port)
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server is needed for this test: `make tools` installs it (pip install 'moto[server]')");
        let endpoint = format!("http://127.0.0.1:{port}");
        let (front, front_port) = start_standin("cloudwatch_cbor.py", &["--upstream", &endpoint]);
        wait_for_port(port, "moto_server");
        Moto {
            endpoint,
            cloudwatch: format!("http://127.0.0.1:{front_port}"),
            child,
            front,
        }
    }

    /// Runs a Python (boto3) script against the server; `ENDPOINT` and `KW` (client
    /// keyword arguments) are defined for it. The last line it prints is read as JSON.
    pub fn seed(&self, script: &str) -> Value {
        let prelude = format!(
            "import boto3, json\nENDPOINT={:?}\nKW=dict(endpoint_url=ENDPOINT, region_name='us-west-2', aws_access_key_id='AKIDTEST', aws_secret_access_key='secret')\n",
            self.endpoint
        );
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(prelude + script)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "seed script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim().lines().last().unwrap_or("null")).unwrap()
    }

    pub async fn services(&self) -> Services {
        let services = Services::new(
            Ok(BaseConfig::None),
            Some(sdk_config_for(&self.endpoint).await),
        );
        services.set_cloudwatch(aws_sdk_cloudwatch::Client::new(
            &sdk_config_for(&self.cloudwatch).await,
        ));
        services
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        for child in [&mut self.child, &mut self.front] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A throwaway PostgreSQL server for the tests of one test binary: started on first use on
/// a free loopback port, with password authentication, and stopped (its directory removed)
/// when the test process ends. `GREENLIGHT_TEST_POSTGRES_URL` (an admin URL) uses a server
/// of your own instead. `make tools` installs Debian's `postgresql` package when no server
/// binaries are found.
pub struct Postgres {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

pub const PG_PASSWORD: &str = "gl-test-Pa55word-4c1d";

static POSTGRES: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();

/// Where Debian keeps the server binaries (the newest version), or `PG_BIN`.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).expect(
        "PostgreSQL server binaries are needed for this test: `make tools` installs Debian's postgresql package (or set PG_BIN, or GREENLIGHT_TEST_POSTGRES_URL)",
    )
}

impl Postgres {
    pub fn get() -> &'static Postgres {
        POSTGRES.get_or_init(|| {
            if let Ok(url) = std::env::var("GREENLIGHT_TEST_POSTGRES_URL") {
                let rest = url.split_once("://").map(|x| x.1).unwrap_or(&url);
                let (userinfo, hostpart) = rest.rsplit_once('@').expect("user@host in the URL");
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let hostport = hostpart.split('/').next().unwrap();
                let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
                return Postgres {
                    host: host.into(),
                    port: port.parse().unwrap(),
                    user: user.into(),
                    password: password.into(),
                };
            }
            Postgres::start()
        })
    }

    fn start() -> Postgres {
        let bin = pg_bin();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("greenlight-pg-{}-{port}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), PG_PASSWORD).unwrap();
        // PostgreSQL refuses to run as root: run it as the `postgres` user then.
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let as_owner = |program: &str| {
            let mut c = if root {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--", program]);
                c
            } else {
                std::process::Command::new(program)
            };
            c.stdout(std::process::Stdio::null());
            c
        };
        if root {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the PostgreSQL test directory failed");
        }
        let out = as_owner(bin.join("initdb").to_str().unwrap())
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--auth=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", dir.join("pw").display()))
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The server lives as long as this test process: a watcher stops it (and removes
        // its directory) once the process is gone. The watcher outlives the process, so it
        // is not waited for.
        let script = r#"parent=$1; bin=$2; data=$3; port=$4; dir=$5
"$bin/postgres" -D "$data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >"$dir/log" 2>&1 &
pg=$!
while [ -d "/proc/$parent" ] && kill -0 "$pg" 2>/dev/null; do sleep 0.5; done
kill -INT "$pg" 2>/dev/null; wait "$pg" 2>/dev/null; rm -rf "$dir""#;
        #[allow(clippy::zombie_processes)]
        as_owner("sh")
            .args(["-c", script, "sh"])
            .arg(std::process::id().to_string())
            .arg(&bin)
            .arg(&data)
            .arg(port.to_string())
            .arg(&dir)
            .spawn()
            .expect("the PostgreSQL server starts");
        let started = std::time::Instant::now();
        loop {
            let ready = std::process::Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Postgres {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            password: PG_PASSWORD.into(),
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{database}",
            self.user, self.password, self.host, self.port
        )
    }

    /// A fresh, empty database for one test; its URL.
    pub async fn database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        self.url(name)
    }
}

/// A fresh directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("greenlight-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Moto's ECS task replies give a container's `cpu` (and `memory`) as JSON numbers where
/// ECS gives strings, which the SDK rejects. This proxy in front of moto turns them into
/// strings and passes everything else through unchanged; the services it returns talk to
/// moto through it.
pub async fn moto_services_with_ecs_fix(moto: &Moto) -> Services {
    use axum::extract::State;
    use axum::http::{Method, Uri};

    fn fix(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(cs)) = m.get_mut("containers") {
                    for c in cs.iter_mut() {
                        for k in ["cpu", "memory", "memoryReservation"] {
                            if let Some(n @ Value::Number(_)) = c.get_mut(k) {
                                *n = Value::String(n.to_string());
                            }
                        }
                    }
                }
                for x in m.values_mut() {
                    fix(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(fix),
            _ => {}
        }
    }

    async fn forward(
        State(upstream): State<String>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        let ecs = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("AmazonEC2ContainerService"));
        let (status, ct, mut bytes) = forward_to(&upstream, method, &uri, &headers, body).await;
        if ecs && let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
            fix(&mut v);
            bytes = serde_json::to_vec(&v).unwrap();
        }
        (status, [("content-type", ct)], bytes)
    }

    let addr = serve(
        Router::new()
            .fallback(forward)
            .with_state(moto.endpoint.clone()),
    )
    .await;
    Services::new(
        Ok(BaseConfig::None),
        Some(sdk_config_for(&format!("http://{addr}")).await),
    )
}

/// Sends a request received by a test proxy on to `upstream`; the answer's status, content
/// type and body.
pub async fn forward_to(
    upstream: &str,
    method: axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = reqwest::Client::new().request(
        method,
        format!(
            "{upstream}{}",
            uri.path_and_query().map(|x| x.as_str()).unwrap_or("/")
        ),
    );
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let resp = req.body(body).send().await.unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/xml")
        .to_string();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

/// An ECS answer's `hookStatus`.
pub fn status(answer: &Value) -> &str {
    answer["hookStatus"].as_str().unwrap_or_default()
}

/// Runs `f` on a current-thread runtime of its own, logging through the functions' own
/// subscriber ([`greenlight::logging::subscriber`], JSON lines) at `level` into a buffer;
/// returns what `f` gave and the log.
pub fn with_function_log<T>(level: &str, f: impl AsyncFnOnce() -> T) -> (T, String) {
    with_function_log_as(level, true, f)
}

/// [`with_function_log`] with the log as JSON lines (`json`) or as text.
pub fn with_function_log_as<T>(level: &str, json: bool, f: impl AsyncFnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = greenlight::logging::subscriber(move || writer.clone(), Some(level), json);
    let out = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    });
    let log = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (out, log)
}

/// Starts a stand-in of `standins/` (or any `program`) on a free port for the rest of this
/// test process: servers shared by a binary's tests. A watcher stops it once the process is
/// gone; its output goes to `<temp>/greenlight-<pid>-<name>.log`.
pub fn serve_for_process(name: &str, program: &str, args: &[String]) -> u16 {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("greenlight-{}-{name}.log", std::process::id()));
    let program = match program.strip_prefix("standins/") {
        Some(script) => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../standins")
            .join(script)
            .to_string_lossy()
            .into_owned(),
        None => program.to_string(),
    };
    let script = r#"parent=$1; log=$2; shift 2
"$@" >"$log" 2>&1 &
child=$!
while [ -d "/proc/$parent" ] && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill "$child" 2>/dev/null; wait "$child" 2>/dev/null"#;
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", script, "sh"])
        .arg(std::process::id().to_string())
        .arg(&log);
    if program.ends_with(".py") {
        command.arg("python3");
    }
    #[allow(clippy::zombie_processes)]
    let mut watcher = command
        .arg(&program)
        .args(args)
        .args(["--port".to_string(), port.to_string()])
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    // Fail at once when the server exits instead of listening (a missing binary).
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = watcher.try_wait() {
            panic!(
                "{name} exited ({status}) without listening: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{name} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    port
}

/// The decision's reason in an ECS answer.
pub fn reason(a: &Value) -> String {
    a["hookDetails"]["greenlightDecision"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
