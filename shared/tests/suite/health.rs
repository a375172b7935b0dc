//! Health and admission checks: HTTP probes against real local servers (TLS included),
//! target health against the moto AWS emulator, task health and image admission against
//! recorded ECS and ECR replies (moto lacks DescribeServiceRevisions).

use crate::support;

use std::time::Duration;

use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use axum::Router;
use axum::routing::get;
use greenlight::Role;
use greenlight::Services;
use greenlight::handle;
use serde_json::{Value, json};
use support::*;

const GREEN: &str =
    "arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/9386398427419951854";

fn with_checks(file: &str, checks: Value) -> Value {
    let mut ev = event(file);
    ev["hookDetails"] = json!({"greenlight": {"checks": checks}});
    ev
}

async fn run(services: &Services, role: Role, ev: &Value, secs: u64) -> Value {
    handle(services, role, ev, deadline_in(Duration::from_secs(secs)))
        .await
        .unwrap()
}

// ---------------------------------------------------------------- HTTP probes

#[tokio::test]
async fn several_urls_templates_and_body_expectations() {
    let addr = serve(
        Router::new()
            .route(
                "/checkout/health",
                get(|| async {
                    axum::Json(json!({"status": "UP", "version": "9386398427419951854"}))
                }),
            )
            .route("/checkout/ready", get(|| async { "ready: yes" })),
    )
    .await;
    let checks = json!({
        "probe": {
            "type": "http",
            "urls": [format!("http://{addr}/${{service}}/health"), format!("http://{addr}/${{service}}/ready")],
            "expectBody": {"regex": "UP|ready"},
            "interval": "100ms"
        },
        "version": {
            "type": "http",
            "url": format!("http://{addr}/checkout/health"),
            "expectBody": {"jsonPointer": "/version", "equals": "9386398427419951854", "contains": "UP"}
        }
    });
    let a = run(
        &services_with(None),
        Role::BeforeAllowTraffic,
        &with_checks("ecs-test-traffic-shift.json", checks),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(
        reason(&a).contains("/checkout/ready answered 200"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn a_wrong_body_fails_with_the_mismatch() {
    let addr = serve(Router::new().route(
        "/health",
        get(|| async { axum::Json(json!({"status": "DOWN"})) }),
    ))
    .await;
    let checks = json!({"h": {"type": "http", "url": format!("http://{addr}/health"), "expectBody": {"jsonPointer": "/status", "equals": "UP"}, "interval": "100ms"}});
    let a = run(
        &services_with(None),
        Role::BeforeAllowTraffic,
        &with_checks("ecs-test-traffic-shift.json", checks),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("answered 200 but /status is \"DOWN\", expected \"UP\""),
        "{}",
        reason(&a)
    );
}

/// An app whose `/health` answers 503 and counts the requests.
async fn failing_app() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU32>,
) {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = n.clone();
    let addr = serve(Router::new().route(
        "/health",
        get(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { axum::http::StatusCode::SERVICE_UNAVAILABLE }
        }),
    ))
    .await;
    (addr, n)
}

/// The next invocation of an IN_PROGRESS hook: the same event with the returned hookDetails.
fn called_back(ev: &Value, answer: &Value) -> Value {
    let mut next = ev.clone();
    next["hookDetails"] = answer["hookDetails"].clone();
    next
}

#[tokio::test]
async fn an_early_call_back_probes_nothing_and_answers_with_the_time_left() {
    for (interval, first_delay) in [("10m", 600), ("20m", 900)] {
        let (addr, requests) = failing_app().await;
        let checks = json!({"h": {"type": "http", "url": format!("http://{addr}/health"),
            "interval": interval, "failureLimit": 5, "within": "1h"}});
        let ev = with_checks("ecs-test-traffic-shift.json", checks);
        let services = services_with(None);
        let first = run(&services, Role::BeforeAllowTraffic, &ev, 3).await;
        assert_eq!(first["hookStatus"], "IN_PROGRESS", "{first:#}");
        // The interval, lengthened by up to a tenth at random (jitter), at most 15 minutes.
        let delay = first["callBackDelay"].as_u64().unwrap();
        assert!(
            (first_delay..=(first_delay + first_delay / 10 + 1).min(900)).contains(&delay),
            "{first:#}"
        );
        assert!(
            reason(&first).contains("failure 1 of 5 tolerated"),
            "{}",
            reason(&first)
        );
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);

        tokio::time::sleep(Duration::from_secs(2)).await;
        let second = run(
            &services,
            Role::BeforeAllowTraffic,
            &called_back(&ev, &first),
            3,
        )
        .await;
        assert_eq!(second["hookStatus"], "IN_PROGRESS", "{second:#}");
        assert_eq!(
            requests.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "a call-back before the next attempt is due sends no request"
        );
        let delay = second["callBackDelay"].as_u64().unwrap();
        if interval == "10m" {
            assert!((590..=658).contains(&delay), "{second:#}");
        } else {
            assert_eq!(delay, 900, "at most 15 minutes: {second:#}");
        }
        let waits: &[&str] = if interval == "10m" {
            &["9m 5", "10m"]
        } else {
            &["19m 5", "20m", "21m", "22m"]
        };
        assert!(
            waits.iter().any(|w| reason(&second)
                .starts_with(&format!("waiting for h: next evaluation due in {w}")))
                && reason(&second).contains("failure 1 of 5 tolerated"),
            "{}",
            reason(&second)
        );
        let state = &second["hookDetails"]["greenlightState"];
        assert_eq!(state["invocations"], 2);
        assert_eq!(state["checks"]["h"]["attempts"], 1);
        assert_eq!(
            state["checks"]["h"], first["hookDetails"]["greenlightState"]["checks"]["h"],
            "the check's carried state is untouched"
        );
    }
}

#[tokio::test]
async fn a_call_back_comes_before_within_runs_out() {
    let (addr, requests) = failing_app().await;
    let checks = json!({"h": {"type": "http", "url": format!("http://{addr}/health"),
        "interval": "5m", "failureLimit": 5, "within": "5m"}});
    let ev = with_checks("ecs-test-traffic-shift.json", checks);
    let services = services_with(None);
    let first = run(&services, Role::BeforeAllowTraffic, &ev, 3).await;
    assert_eq!(first["callBackDelay"], 300, "{first:#}");
    // Called back when the attempt is due, three minutes into the five: the next is at
    // the deadline, two minutes away, not five.
    let mut next = called_back(&ev, &first);
    let h = &mut next["hookDetails"]["greenlightState"]["checks"]["h"];
    h["firstAtMs"] = json!(h["firstAtMs"].as_u64().unwrap() - 180_000);
    h["nextAtMs"] = json!(0);
    let second = run(&services, Role::BeforeAllowTraffic, &next, 3).await;
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(second["hookStatus"], "IN_PROGRESS", "{second:#}");
    let delay = second["callBackDelay"].as_u64().unwrap();
    assert!((118..=120).contains(&delay), "{second:#}");
}

#[tokio::test]
async fn forged_streak_counters_at_their_maximum_do_not_panic() {
    let (addr, requests) = failing_app().await;
    let url = format!("http://{addr}/health");
    let checks =
        json!({"h": {"type": "http", "url": url, "failureLimit": 5, "consecutiveSuccesses": 3}});
    let ev = with_checks("ecs-test-traffic-shift.json", checks);
    let services = services_with(None);
    let first = run(&services, Role::BeforeAllowTraffic, &ev, 3).await;
    assert_eq!(first["hookStatus"], "IN_PROGRESS", "{first:#}");
    let mut next = called_back(&ev, &first);
    let state = &mut next["hookDetails"]["greenlightState"];
    state["invocations"] = json!(u32::MAX);
    state["startedAtMs"] = json!(u64::MAX);
    let recent: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    state["checks"]["h"] = json!({"status": "pending", "firstAtMs": u64::MAX, "attempts": u32::MAX,
        "reason": "forged", "nextAtMs": 0,
        "data": {url.clone(): {"attempts": u32::MAX, "failures": 2, "successesInARow": u32::MAX,
            "passed": false, "recent": recent, "lastReason": ""}}});
    let second = run(&services, Role::BeforeAllowTraffic, &next, 3).await;
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(second["hookStatus"], "IN_PROGRESS", "{second:#}");
    let carried = &second["hookDetails"]["greenlightState"];
    assert_eq!(carried["invocations"], u32::MAX);
    assert_eq!(carried["checks"]["h"]["attempts"], u32::MAX);
    let streak = &carried["checks"]["h"]["data"][&url];
    assert_eq!(streak["attempts"], u32::MAX);
    assert_eq!(streak["failures"], 3);
    assert_eq!(streak["recent"].as_array().unwrap().len(), 5);
    assert!(
        carried["checks"]["h"]["firstAtMs"].as_u64().unwrap() <= greenlight::duration::now_ms()
    );

    // At the failure limit, with every counter at its maximum: the check fails.
    let mut next = called_back(&ev, &second);
    let h = &mut next["hookDetails"]["greenlightState"]["checks"]["h"];
    h["nextAtMs"] = json!(0);
    h["data"][&url]["failures"] = json!(u32::MAX);
    let third = run(&services, Role::BeforeAllowTraffic, &next, 3).await;
    assert_eq!(third["hookStatus"], "FAILED", "{third:#}");
    assert!(
        reason(&third).contains("answered 503"),
        "{}",
        reason(&third)
    );
}

#[tokio::test]
async fn a_flapping_target_is_caught_by_the_failure_limit() {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let addr = serve(Router::new().route(
        "/health",
        get(move || {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if k.is_multiple_of(2) {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::BAD_GATEWAY
                }
            }
        }),
    ))
    .await;
    // Two healthy answers in a row are needed; the flapping target never gives them.
    let checks = json!({"h": {"type": "http", "url": format!("http://{addr}/health"), "consecutiveSuccesses": 2, "failureLimit": 2, "interval": "100ms"}});
    let a = run(
        &services_with(None),
        Role::BeforeAllowTraffic,
        &with_checks("ecs-test-traffic-shift.json", checks),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("answered 502 (failure 3 of 6 attempts; recent answers: 502, 200, 502, 200, 502); expected 200"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn a_slow_target_within_the_timeout_passes_and_its_latency_is_recorded() {
    let addr = app(200, Duration::from_millis(300)).await;
    let checks =
        json!({"h": {"type": "http", "url": format!("http://{addr}/health"), "timeout": "2s"}});
    let a = run(
        &services_with(None),
        Role::BeforeAllowTraffic,
        &with_checks("ecs-test-traffic-shift.json", checks),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    assert!(reason(&a).contains("answered 200 in 3"), "{}", reason(&a));
}

#[tokio::test]
async fn a_placeholder_without_a_value_is_an_error_of_the_check() {
    let checks = json!({"h": {"type": "http", "url": "http://${functionName}.internal/health"}});
    let services = services_with(Some(&json!({"checks": checks}).to_string()));
    let cd = FakeCodeDeploy::start(vec![]).await;
    let services_cd = cd
        .services(Some(&json!({"checks": checks}).to_string()))
        .await;
    let out = handle(
        &services_cd,
        Role::BeforeAllowTraffic,
        &event("codedeploy.json"),
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(out["reported"], "Failed");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("${functionName} has no value in this deployment"),
        "{out}"
    );
    // An unknown name is refused with the configuration.
    let bad = with_checks(
        "ecs-test-traffic-shift.json",
        json!({"h": {"type": "http", "url": "http://${nonsense}/"}}),
    );
    let a = run(&services, Role::BeforeAllowTraffic, &bad, 5).await;
    assert!(
        reason(&a).contains("unknown placeholder ${nonsense}"),
        "{}",
        reason(&a)
    );
}

/// An HTTPS server with a self-signed certificate, served by Python's standard library.
struct TlsServer {
    port: u16,
    child: std::process::Child,
    _dir: std::path::PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_server() -> TlsServer {
    let dir = std::env::temp_dir().join(format!("greenlight-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl makes a self-signed certificate");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "import http.server, ssl\n\
         class H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n    def log_message(self, *a): pass\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), H)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain({:?}, {:?})\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string()
    );
    let child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the TLS server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    TlsServer {
        port,
        child,
        _dir: dir,
    }
}

#[tokio::test]
async fn tls_is_verified_by_default_and_can_be_relaxed_per_check() {
    let server = tls_server();
    let url = format!("https://localhost:{}/health", server.port);
    let strict = with_checks(
        "ecs-test-traffic-shift.json",
        json!({"h": {"type": "http", "url": url, "failureLimit": 0}}),
    );
    let a = run(&services_with(None), Role::BeforeAllowTraffic, &strict, 10).await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("TLS verification failed"),
        "{}",
        reason(&a)
    );
    let relaxed = with_checks(
        "ecs-test-traffic-shift.json",
        json!({"h": {"type": "http", "url": url, "insecureSkipVerify": true}}),
    );
    let a = run(&services_with(None), Role::BeforeAllowTraffic, &relaxed, 10).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
}

// ---------------------------------------------------------------- target health (moto)

const SEED_TARGETS: &str = r#"
ec2 = boto3.client('ec2', **KW); elb = boto3.client('elbv2', **KW)
vpc = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']
green = elb.create_target_group(Name='checkout-green', Protocol='HTTP', Port=80, VpcId=vpc, TargetType='ip')['TargetGroups'][0]['TargetGroupArn']
elb.register_targets(TargetGroupArn=green, Targets=[{'Id': '10.0.1.5', 'Port': 8080}, {'Id': '10.0.1.6', 'Port': 8080}])
broken = elb.create_target_group(Name='checkout-broken', Protocol='HTTP', Port=80, VpcId=vpc, TargetType='instance')['TargetGroups'][0]['TargetGroupArn']
inst = ec2.run_instances(ImageId='ami-12345678', MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']
elb.register_targets(TargetGroupArn=broken, Targets=[{'Id': inst}])
ec2.stop_instances(InstanceIds=[inst])
empty = elb.create_target_group(Name='checkout-empty', Protocol='HTTP', Port=80, VpcId=vpc, TargetType='ip')['TargetGroups'][0]['TargetGroupArn']
print(json.dumps({'green': green, 'broken': broken, 'empty': empty}))
"#;

fn revision_rule(target_group: String) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_ecs::Client::describe_service_revisions)
        .match_requests(|r| r.service_revision_arns() == [GREEN.to_string()])
        .sequence()
        .output(move || {
            aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput::builder()
                .service_revisions(
                    ecs::ServiceRevision::builder()
                        .service_revision_arn(GREEN)
                        .task_definition("arn:aws:ecs:us-west-2:123456789012:task-definition/checkout:42")
                        .resolved_configuration(
                            ecs::ResolvedConfiguration::builder()
                                .load_balancers(ecs::ServiceRevisionLoadBalancer::builder().target_group_arn(target_group.clone()).build())
                                .build(),
                        )
                        .container_images(
                            ecs::ContainerImage::builder()
                                .container_name("web")
                                .image("123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:1.4.2")
                                .image_digest("sha256:aaaa")
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build()
}

#[tokio::test]
async fn target_health_against_moto() {
    let moto = Moto::start();
    let tgs = moto.seed(SEED_TARGETS);
    let (green, broken, empty) = (
        tgs["green"].as_str().unwrap(),
        tgs["broken"].as_str().unwrap(),
        tgs["empty"].as_str().unwrap(),
    );

    // Discovered from the target service revision (recorded ECS reply), checked in moto.
    let services = moto.services().await;
    services.set_ecs(mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        &[&revision_rule(green.to_string())]
    ));
    let a = run(
        &services,
        Role::BeforeAllowTraffic,
        &with_checks(
            "ecs-test-traffic-shift.json",
            json!({"tg": {"type": "targetHealth", "minHealthyTargets": 2}}),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(
        reason(&a).contains("checkout-green: all 2 targets healthy"),
        "{}",
        reason(&a)
    );

    // Too few targets: waits, then fails after `within`, naming the shortfall.
    let services = moto.services().await;
    let ev = with_checks(
        "ecs-test-traffic-shift.json",
        json!({"tg": {"type": "targetHealth", "targetGroups": [green], "minHealthyTargets": 3, "interval": "1s", "within": "2s"}}),
    );
    let a = run(&services, Role::BeforeAllowTraffic, &ev, 20).await;
    assert_eq!(a["hookStatus"], "FAILED", "{a:#}");
    assert!(reason(&a).contains("still undecided after 2s (within): target group checkout-green: 2 healthy targets, 3 needed"), "{}", reason(&a));

    // An unhealthy target is listed with its reason code.
    let ev = with_checks(
        "ecs-test-traffic-shift.json",
        json!({"tg": {"type": "targetHealth", "targetGroups": [broken], "interval": "1s", "within": "2s"}}),
    );
    let a = run(&services, Role::BeforeAllowTraffic, &ev, 20).await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("unused (Target.InvalidState)"),
        "{}",
        reason(&a)
    );

    // A short invocation answers IN_PROGRESS with the reason; ECS calls back.
    let ev = with_checks(
        "ecs-test-traffic-shift.json",
        json!({"tg": {"type": "targetHealth", "targetGroups": [empty], "interval": "30s"}}),
    );
    let a = run(&services, Role::BeforeAllowTraffic, &ev, 5).await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS");
    assert!(a["callBackDelay"].as_u64().unwrap() >= 25);
    assert!(
        reason(&a).contains("checkout-empty: 0 healthy targets, 1 needed"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn a_missing_permission_is_named_and_on_error_decides() {
    let denied = mock!(aws_sdk_ecs::Client::describe_service_revisions).then_error(|| {
        aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsError::AccessDeniedException(
            ecs::error::AccessDeniedException::builder().message("not authorized").build(),
        )
    });
    let services = services_with(None);
    services.set_ecs(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[&denied]));
    let a = run(
        &services,
        Role::BeforeAllowTraffic,
        &with_checks(
            "ecs-test-traffic-shift.json",
            json!({"tg": {"type": "targetHealth"}}),
        ),
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("grant ecs:DescribeServiceRevisions to the function's role"),
        "{}",
        reason(&a)
    );
}

// ---------------------------------------------------------------- task health (recorded replies)

fn task(id: &str, td: &str, status: &str, web_health: &str) -> ecs::Task {
    ecs::Task::builder()
        .task_arn(format!(
            "arn:aws:ecs:us-west-2:123456789012:task/shop-cluster/{id}"
        ))
        .task_definition_arn(td)
        .last_status(status)
        .containers(
            ecs::Container::builder()
                .name("web")
                .health_status(ecs::HealthStatus::from(web_health))
                .build(),
        )
        .containers(
            ecs::Container::builder()
                .name("log-router")
                .health_status(ecs::HealthStatus::from("UNKNOWN"))
                .build(),
        )
        .build()
}

fn task_mocks(tasks: Vec<ecs::Task>) -> aws_sdk_ecs::Client {
    use aws_sdk_ecs::operation::*;
    let services_rule = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| {
            describe_services::DescribeServicesOutput::builder()
                .services(
                    ecs::Service::builder()
                        .service_name("checkout")
                        .desired_count(2)
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let td_rule = mock!(aws_sdk_ecs::Client::describe_task_definition)
        .sequence()
        .output(|| {
            describe_task_definition::DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    ecs::TaskDefinition::builder()
                        .container_definitions(
                            ecs::ContainerDefinition::builder()
                                .name("web")
                                .image(
                                    "123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:1.4.2",
                                )
                                .health_check(
                                    ecs::HealthCheck::builder()
                                        .command("CMD-SHELL")
                                        .command("curl -f localhost/health")
                                        .build()
                                        .unwrap(),
                                )
                                .build(),
                        )
                        .container_definitions(
                            ecs::ContainerDefinition::builder()
                                .name("log-router")
                                .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:stable")
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let arns: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_string))
        .collect();
    let list_rule = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| {
            r.cluster() == Some("shop-cluster") && r.service_name() == Some("checkout")
        })
        .sequence()
        .output(move || {
            list_tasks::ListTasksOutput::builder()
                .set_task_arns(Some(arns.clone()))
                .build()
        })
        .repeatedly()
        .build();
    let describe_rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .output(move || {
            describe_tasks::DescribeTasksOutput::builder()
                .set_tasks(Some(tasks.clone()))
                .build()
        })
        .repeatedly()
        .build();
    let revision =
        revision_rule("arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/g/1".into());
    mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        &[
            &revision,
            &services_rule,
            &td_rule,
            &list_rule,
            &describe_rule
        ]
    )
}

const TD: &str = "arn:aws:ecs:us-west-2:123456789012:task-definition/checkout:42";
const OLD_TD: &str = "arn:aws:ecs:us-west-2:123456789012:task-definition/checkout:41";

#[tokio::test]
async fn task_health_counts_only_the_green_revision_and_its_health_checks() {
    let ev = with_checks(
        "ecs-post-scale-up.json",
        json!({"tasks": {"type": "taskHealth", "interval": "1s", "within": "2s"}}),
    );
    let services = services_with(None);
    services.set_ecs(task_mocks(vec![
        task("a1", TD, "RUNNING", "HEALTHY"),
        task("a2", TD, "RUNNING", "HEALTHY"),
        task("b1", OLD_TD, "RUNNING", "UNHEALTHY"),
    ]));
    let a = run(&services, Role::AfterInstall, &ev, 10).await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");
    assert!(
        reason(&a).contains("2 of 2 tasks of checkout (checkout:42) are RUNNING and HEALTHY"),
        "{}",
        reason(&a)
    );

    let services = services_with(None);
    services.set_ecs(task_mocks(vec![
        task("a1", TD, "RUNNING", "HEALTHY"),
        task("a2", TD, "RUNNING", "UNHEALTHY"),
    ]));
    let a = run(&services, Role::AfterInstall, &ev, 10).await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(reason(&a).contains("1 of 2 tasks of checkout (checkout:42) are RUNNING and HEALTHY; not yet: a2 RUNNING but web UNHEALTHY"), "{}", reason(&a));

    let services = services_with(None);
    services.set_ecs(task_mocks(vec![task("a1", TD, "PENDING", "UNKNOWN")]));
    let a = run(
        &services,
        Role::AfterInstall,
        &with_checks(
            "ecs-post-scale-up.json",
            json!({"tasks": {"type": "taskHealth", "interval": "20s"}}),
        ),
        4,
    )
    .await;
    assert_eq!(a["hookStatus"], "IN_PROGRESS");
    assert!(reason(&a).contains("not yet: a1 PENDING"), "{}", reason(&a));
}

// ---------------------------------------------------------------- image admission (recorded replies)

fn admission_services(image: &'static str, findings: Option<Vec<(&'static str, i32)>>) -> Services {
    use aws_sdk_ecs::operation::*;
    let td_rule = mock!(aws_sdk_ecs::Client::describe_task_definition)
        .sequence()
        .output(move || {
            describe_task_definition::DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    ecs::TaskDefinition::builder()
                        .container_definitions(
                            ecs::ContainerDefinition::builder()
                                .name("web")
                                .image(image)
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let revision =
        revision_rule("arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/g/1".into());
    let services = services_with(None);
    services.set_ecs(mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        &[&revision, &td_rule]
    ));
    let scan = mock!(aws_sdk_ecr::Client::describe_image_scan_findings)
        .match_requests(|r| r.repository_name() == Some("checkout") && r.registry_id() == Some("123456789012"))
        .sequence()
        .output(move || {
            use aws_sdk_ecr::types::*;
            let mut f = ImageScanFindings::builder();
            for (sev, n) in findings.clone().unwrap_or_default() {
                f = f.finding_severity_counts(FindingSeverity::from(sev), n);
            }
            aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput::builder()
                .image_scan_status(ImageScanStatus::builder().status(ScanStatus::Complete).build())
                .image_scan_findings(f.build())
                .build()
        })
        .repeatedly()
        .build();
    services.set_ecr(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, &[&scan]));
    services
}

#[tokio::test]
async fn image_admission_allows_refuses_and_reads_scan_findings() {
    let policy = json!({"admit": {"type": "imageAdmission", "allowedRepositories": ["123456789012.dkr.ecr.*.amazonaws.com/*"], "requireDigest": true, "failOnSeverity": "HIGH"}});
    let ev = with_checks("ecs-pre-scale-up.json", policy.clone());
    let pinned = "123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout@sha256:aaaa";

    let a = run(
        &admission_services(pinned, Some(vec![("LOW", 3), ("MEDIUM", 1)])),
        Role::BeforeInstall,
        &ev,
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED", "{a:#}");

    let a = run(&admission_services("docker.io/library/nginx@sha256:bbbb", None), Role::BeforeInstall, &with_checks("ecs-pre-scale-up.json", json!({"admit": {"type": "imageAdmission", "allowedRepositories": ["123456789012.dkr.ecr.*.amazonaws.com/*"]}})), 10).await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("web: docker.io/library/nginx is not from an allowed repository"),
        "{}",
        reason(&a)
    );

    let a = run(
        &admission_services(
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:latest",
            Some(vec![]),
        ),
        Role::BeforeInstall,
        &ev,
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("is not pinned by digest"),
        "{}",
        reason(&a)
    );

    let a = run(
        &admission_services(pinned, Some(vec![("CRITICAL", 1), ("HIGH", 4), ("LOW", 9)])),
        Role::BeforeInstall,
        &ev,
        10,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
    assert!(
        reason(&a).contains("has scan findings at or above HIGH: 1 CRITICAL, 4 HIGH"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn first_deployment_can_skip_a_check() {
    let broken = app(500, Duration::ZERO).await;
    let checks = json!({"h": {"type": "http", "url": format!("http://{broken}/health"), "failureLimit": 0, "onFirstDeployment": "skip"}});
    let a = run(
        &services_with(None),
        Role::BeforeAllowTraffic,
        &with_checks("ecs-first-deployment.json", checks.clone()),
        5,
    )
    .await;
    assert_eq!(a["hookStatus"], "SUCCEEDED");
    assert!(
        reason(&a).contains("no checks configured"),
        "{}",
        reason(&a)
    );
    let notes = a["hookDetails"]["greenlightDecision"]["notes"].to_string();
    assert!(notes.contains("first deployment"), "{notes}");
    // The same configuration on a normal deployment runs the check.
    let a = run(
        &services_with(None),
        Role::BeforeAllowTraffic,
        &with_checks("ecs-test-traffic-shift.json", checks),
        5,
    )
    .await;
    assert_eq!(a["hookStatus"], "FAILED");
}

/// A body past `maxBodySize` is judged on what was read only where that settles it, and
/// the reason says where it was cut; the limit is validated naming the field.
#[tokio::test]
async fn a_body_past_max_body_size_is_cut_and_said_so() {
    // 2 MiB of "x" then "END"; and one of exactly 1 MiB.
    let big = format!("{}END", "x".repeat(2 << 20));
    let exact = "y".repeat(1 << 20);
    let addr = serve(
        Router::new()
            .route("/big", get(move || async move { big }))
            .route("/exact", get(move || async move { exact })),
    )
    .await;
    let probe = |path: &str, extra: Value| {
        let mut c =
            json!({"type": "http", "url": format!("http://{addr}{path}"), "failureLimit": 0});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "h": c })
    };
    let cases = [
        // `x$` matches the first 1 MiB but not the body: a match at the cut proves nothing.
        (
            "/big",
            json!({"expectBody": {"regex": "x$"}}),
            "FAILED",
            "answered 200 but the body does not match /x$/ in its first 1 MiB (the body was cut at 1 MiB, maxBodySize)",
        ),
        (
            "/big",
            json!({"expectBody": {"contains": "END"}}),
            "FAILED",
            "the body does not contain \"END\" in its first 1 MiB (the body was cut at 1 MiB, maxBodySize)",
        ),
        // A match before the cut does settle it.
        (
            "/big",
            json!({"expectBody": {"regex": "^x{1000}"}}),
            "SUCCEEDED",
            "answered 200 (the body was cut at 1 MiB, maxBodySize; what was read settles it)",
        ),
        // Read whole under a larger limit.
        (
            "/big",
            json!({"expectBody": {"regex": "xEND$"}, "maxBodySize": "4MiB"}),
            "SUCCEEDED",
            "answered 200 in",
        ),
        (
            "/big",
            json!({"expectBody": {"jsonPointer": "/a"}, "maxBodySize": 65536}),
            "FAILED",
            "the body was cut at 64 KiB (maxBodySize) before its JSON ended, so /a cannot be read",
        ),
        // Exactly the limit is not cut.
        (
            "/exact",
            json!({"expectBody": {"regex": "y$"}}),
            "SUCCEEDED",
            "answered 200 in",
        ),
    ];
    for (path, extra, want, why) in cases {
        let a = run(
            &services_with(None),
            Role::BeforeAllowTraffic,
            &with_checks("ecs-test-traffic-shift.json", probe(path, extra.clone())),
            10,
        )
        .await;
        assert_eq!(a["hookStatus"], want, "{extra}: {a:#}");
        assert!(reason(&a).contains(why), "{extra}: {}", reason(&a));
    }
    for (size, said) in [
        (
            json!("32MiB"),
            "is 32 MiB; it must be from 1 byte to 16 MiB",
        ),
        (json!(0), "is 0 bytes; it must be from 1 byte to 16 MiB"),
        (json!("1GB"), "invalid size \"1GB\""),
    ] {
        let a = run(
            &services_with(None),
            Role::BeforeAllowTraffic,
            &with_checks(
                "ecs-test-traffic-shift.json",
                probe("/exact", json!({"maxBodySize": size})),
            ),
            10,
        )
        .await;
        assert_eq!(a["hookStatus"], "FAILED");
        let r = reason(&a);
        assert!(
            r.contains("checks.h.maxBodySize") && r.contains(said),
            "{r}"
        );
    }
}
