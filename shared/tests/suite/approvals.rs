//! Approvals end to end, under `cargo lambda watch`: the hook function with an `approval`
//! check and the `approvals` endpoint served through the function-URL emulation, the store
//! and the signing key in moto (S3 with conditional writes, Secrets Manager), STS played by
//! `standins/sts_identity.py` (which verifies every signature), ECS by a local server
//! speaking its JSON protocol with recorded replies, and the notification and Slack
//! `response_url` receivers by local servers. Approve, reject, expire, replay, tampered
//! link, wrong approver, Slack signature valid and invalid, the terminal command, a
//! concurrent double decision, and an ECS PAUSE hook continued through
//! `ContinueServiceDeployment`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::e2e_cargo_lambda::{Watch, free_port, invoke, root};
use crate::support::*;
use greenlight::approval::{self, Action, link};

const KEY: &str = "k3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const ACCOUNT: &str = "123456789012";

type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// Records every POST: (path or X-Amz-Target, JSON body or the form's `payload`).
async fn recorder(
    State(log): State<Log>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (
    axum::http::StatusCode,
    [(&'static str, &'static str); 1],
    String,
) {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let what = target.clone().unwrap_or_else(|| uri.path().to_string());
    log.lock().unwrap().push((what.clone(), value.clone()));
    let reply = match what.as_str() {
        "DescribeServiceDeployments" => {
            let arn = value["serviceDeploymentArns"][0]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let expires = (approval::now_secs() + 3600) as f64;
            json!({"serviceDeployments": [{
                "serviceDeploymentArn": arn,
                "serviceArn": format!("arn:aws:ecs:us-west-2:{ACCOUNT}:service/shop-cluster/payments"),
                "clusterArn": format!("arn:aws:ecs:us-west-2:{ACCOUNT}:cluster/shop-cluster"),
                "status": "IN_PROGRESS",
                "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
                "targetServiceRevision": {"arn": format!("arn:aws:ecs:us-west-2:{ACCOUNT}:service-revision/shop-cluster/payments/222")},
                "sourceServiceRevisions": [{"arn": format!("arn:aws:ecs:us-west-2:{ACCOUNT}:service-revision/shop-cluster/payments/111")}],
                "lifecycleHookDetails": [
                    {"hookId": "ecs-lambda-1", "targetType": "AWS_LAMBDA", "status": "SUCCEEDED"},
                    {"hookId": "ecs-pause-e7tK9G_WRJqNF", "targetType": "PAUSE", "status": "AWAITING_ACTION", "expiresAt": expires, "timeoutAction": "ROLLBACK"}
                ]
            }], "failures": []})
        }
        "DescribeServiceRevisions" => {
            let revisions: Vec<Value> = value["serviceRevisionArns"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str)
                .map(|arn| {
                    let new = arn.ends_with("222") || arn.ends_with("9386398427419951854");
                    json!({"serviceRevisionArn": arn, "taskDefinition": if new { "arn:td/app:8" } else { "arn:td/app:7" },
                        "containerImages": [{"containerName": "web", "image": if new { "shop/web:1.5.0" } else { "shop/web:1.4.0" }, "imageDigest": "sha256:00"}]})
                })
                .collect();
            json!({"serviceRevisions": revisions, "failures": []})
        }
        "DescribeTaskDefinition" => {
            let new = value["taskDefinition"].as_str() == Some("arn:td/app:8");
            let mut env = vec![json!({"name": "REGION", "value": "us-west-2"})];
            if new {
                env.push(json!({"name": "FEATURE_CHECKOUT_V2", "value": "on"}));
            }
            json!({"taskDefinition": {"family": "app", "containerDefinitions": [{"name": "web", "environment": env}]}})
        }
        "ContinueServiceDeployment" => {
            json!({"serviceDeploymentArn": value["serviceDeploymentArn"]})
        }
        _ => json!({}),
    };
    (
        axum::http::StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        reply.to_string(),
    )
}

/// Records Slack's response_url posts (a JSON body).
fn calls(log: &Log, what: &str) -> Vec<Value> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(w, _)| w == what)
        .map(|(_, v)| v.clone())
        .collect()
}

fn event(deployment: &str) -> Value {
    let base = format!("arn:aws:ecs:us-west-2:{ACCOUNT}");
    json!({
        "executionId": format!("exec-{deployment}"),
        "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
        "resourceArn": format!("{base}:service-deployment/shop-cluster/checkout/{deployment}"),
        "executionDetails": {
            "serviceArn": format!("{base}:service/shop-cluster/checkout"),
            "targetServiceRevisionArn": format!("{base}:service-revision/shop-cluster/checkout/9386398427419951854"),
            "testTrafficWeights": {format!("{base}:service-revision/shop-cluster/checkout/9386398427419951854"): 100},
            "productionTrafficWeights": {format!("{base}:service-revision/shop-cluster/checkout/1111"): 100}
        }
    })
}

fn approval_id(deployment: &str) -> String {
    approval::approval_id(
        &format!(
            "arn:aws:ecs:us-west-2:{ACCOUNT}:service-deployment/shop-cluster/checkout/{deployment}"
        ),
        "POST_TEST_TRAFFIC_SHIFT",
        "go-ahead",
    )
}

fn slack_body(user: &str, action_id: &str, id: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase()},
        "actions": [{"action_id": action_id, "value": id, "type": "button"}],
        "response_url": response_url,
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

fn slack_signature(secret: &str, ts: u64, body: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

struct Env {
    port: u16,
    http: reqwest::Client,
    url: String,
}

impl Env {
    async fn slack(&self, body: &str, signature: Option<String>) -> u16 {
        let ts = approval::now_secs();
        let sig = signature.unwrap_or_else(|| slack_signature(SLACK_SECRET, ts, body));
        self.http
            .post(format!("{}slack", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sig)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn hook(&self, event: &Value) -> Value {
        invoke(self.port, "before-allow-traffic", event).await
    }

    /// `greenlight approve` as `akid`.
    fn approve(
        &self,
        akid: &str,
        secret: &str,
        id: &str,
        reject: bool,
        sts: u16,
    ) -> std::process::Child {
        let mut cmd = std::process::Command::new(root().join("target/debug/greenlight"));
        cmd.args([
            "approve",
            id,
            "--endpoint",
            &self.url,
            "--region",
            "us-west-2",
            "--comment",
            "from the terminal",
        ]);
        if reject {
            cmd.arg("--reject");
        }
        cmd.env("AWS_ACCESS_KEY_ID", akid)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("GREENLIGHT_STS_URL", format!("http://127.0.0.1:{sts}/"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("the greenlight binary runs")
    }
}

fn output(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_under_cargo_lambda_watch() {
    let built = std::process::Command::new("cargo")
        .current_dir(root())
        .args(["build", "--workspace", "--bins"])
        .status()
        .expect("cargo builds");
    assert!(built.success(), "cargo build --workspace --bins failed");

    let moto = Moto::start();
    let seeded = moto.seed(&format!(
        r#"
s3 = boto3.client('s3', **KW)
s3.create_bucket(Bucket='greenlight-approvals', CreateBucketConfiguration={{'LocationConstraint': 'us-west-2'}})
sm = boto3.client('secretsmanager', **KW)
key = sm.create_secret(Name='greenlight/approval-signing-key', SecretString={KEY:?})['ARN']
slack = sm.create_secret(Name='greenlight/slack-signing', SecretString={SLACK_SECRET:?})['ARN']
print(json.dumps({{'key': key, 'slack': slack}}))
"#
    ));
    let (mut sts, sts_port) = start_standin(
        "sts_identity.py",
        &[
            "--region",
            "us-west-2",
            "--identity",
            &format!("AKIDALICE:SECRETALICE:arn:aws:iam::{ACCOUNT}:user/alice"),
            "--identity",
            &format!("AKIDEVE:SECRETEVE:arn:aws:iam::{ACCOUNT}:user/eve"),
        ],
    );
    let log: Log = Arc::default();
    let receivers = serve(
        Router::new()
            .fallback(post(recorder))
            .with_state(log.clone()),
    )
    .await;

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/lambda-url/approvals/");
    let config = json!({
        "checks": {"go-ahead": {"type": "approval", "approvers": ["slack:U0ALICE", format!("arn:aws:iam::{ACCOUNT}:user/alice"), "link:ops-hook"],
            "timeout": "1h", "interval": "2s", "stages": ["POST_TEST_TRAFFIC_SHIFT"], "message": "Look at the canary dashboard first."}},
        "notifications": {"channels": {"ops-hook": {"type": "webhook", "url": format!("http://{receivers}/hook"), "events": ["approvalRequested"]}}}
    });
    let env = [
        format!("AWS_ENDPOINT_URL={}", moto.endpoint),
        format!("AWS_ENDPOINT_URL_ECS=http://{receivers}"),
        "AWS_REGION=us-west-2".into(),
        "AWS_ACCESS_KEY_ID=AKIDTEST".into(),
        "AWS_SECRET_ACCESS_KEY=test".into(),
        "AWS_LAMBDA_LOG_FORMAT=JSON".into(),
        "GREENLIGHT_MAX_INVOCATION=60s".into(),
        "GREENLIGHT_APPROVAL_BUCKET=greenlight-approvals".into(),
        format!(
            "GREENLIGHT_APPROVAL_KEY={}",
            seeded["key"].as_str().unwrap()
        ),
        format!("GREENLIGHT_APPROVAL_URL={url}"),
        format!(
            "GREENLIGHT_SLACK_SIGNING_SECRET={}",
            seeded["slack"].as_str().unwrap()
        ),
        format!("GREENLIGHT_SLACK_RESPONSE_URL_PREFIX=http://{receivers}/"),
        format!("GREENLIGHT_STS_URL=http://127.0.0.1:{sts_port}/"),
        format!("GREENLIGHT_CONFIG={config}"),
    ];
    let watch_log = std::env::temp_dir().join(format!("greenlight-approvals-{port}.log"));
    let _watch = Watch::start(port, &env, &watch_log).await;
    let e = Env {
        port,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        url: url.clone(),
    };
    let watch_text = || std::fs::read_to_string(&watch_log).unwrap_or_default();

    // 1. The hook waits, and the request goes out once with signed links and the changes.
    let first = e.hook(&event("one")).await;
    assert_eq!(status(&first), "IN_PROGRESS", "{first}\n{}", watch_text());
    assert!(
        reason(&first).contains("waiting for approval by slack:U0ALICE"),
        "{first}"
    );
    let hooks = calls(&log, "/hook");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let ask = &hooks[0]["approval"];
    assert_eq!(hooks[0]["event"], "approvalRequested");
    assert_eq!(ask["id"], approval_id("one"));
    assert_eq!(
        ask["changes"]["images"],
        json!(["web: shop/web:1.4.0 → shop/web:1.5.0"]),
        "{ask}"
    );
    assert_eq!(
        ask["changes"]["environment"],
        json!(["web: +FEATURE_CHECKOUT_V2"]),
        "{ask}"
    );
    assert_eq!(ask["message"], "Look at the canary dashboard first.");
    assert!(ask["command"].as_str().unwrap().starts_with(&format!(
        "greenlight approve {} --endpoint {url}",
        approval_id("one")
    )));
    let approve_url = ask["approveUrl"].as_str().unwrap().to_string();
    assert!(
        approve_url.starts_with(&url) && approve_url.contains("c=ops-hook"),
        "{approve_url}"
    );
    assert!(
        !first.to_string().contains(KEY) && !first.to_string().contains(&approve_url),
        "the answer holds no key or link"
    );
    // The next invocation sends nothing again.
    let mut ev = event("one");
    ev["hookDetails"] = first["hookDetails"].clone();
    let again = e.hook(&ev).await;
    assert_eq!(status(&again), "IN_PROGRESS");
    assert_eq!(calls(&log, "/hook").len(), 1);

    // 2. Opening the link shows a confirmation; a tampered link is refused; POST decides once.
    let page = e.http.get(&approve_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Approve this deployment?") && page.contains("method=\"post\""),
        "{page}"
    );
    let query = approve_url.split_once('?').unwrap().1.to_string();
    let tampered = query.replace("a=approve", "a=reject");
    let refused = e
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("signature does not match")
    );
    let expired = link::url(
        &url,
        KEY.as_bytes(),
        &link::Claims {
            id: approval_id("one"),
            action: Action::Reject,
            channel: "ops-hook".into(),
            expires: approval::now_secs() - 1,
        },
    );
    assert_eq!(e.http.get(&expired).send().await.unwrap().status(), 410);
    // A link for a channel the approvers do not name is refused, though correctly signed.
    let other = link::url(
        &url,
        KEY.as_bytes(),
        &link::Claims {
            id: approval_id("one"),
            action: Action::Reject,
            channel: "elsewhere".into(),
            expires: approval::now_secs() + 600,
        },
    );
    let other = e
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(other.split_once('?').unwrap().1.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403, "{}", other.text().await.unwrap());
    let decided = e
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{query}&comment=canary+looks+fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), 200);
    let decided = decided.text().await.unwrap();
    assert!(
        decided.contains("approved by the signed link sent to channel ops-hook"),
        "{decided}"
    );
    let replay = e
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 409);
    assert!(replay.text().await.unwrap().contains("already approved"));
    let mut next = event("one");
    next["hookDetails"] = again["hookDetails"].clone();
    let done = e.hook(&next).await;
    assert_eq!(status(&done), "SUCCEEDED", "{done}");
    assert!(
        reason(&done).contains("approved by the signed link sent to channel ops-hook")
            && reason(&done).contains("canary looks fine"),
        "{done}"
    );

    // 3. Slack: a bad signature and a user not among the approvers change nothing; the
    //    approver's Reject fails the hook, and the message shows who decided.
    let waiting = e.hook(&event("two")).await;
    assert_eq!(status(&waiting), "IN_PROGRESS");
    let id = approval_id("two");
    let respond = format!("http://{receivers}/respond/two");
    let body = slack_body("U0ALICE", "greenlight_reject", &id, &respond);
    assert_eq!(
        e.slack(
            &body,
            Some(slack_signature(
                "not the secret",
                approval::now_secs(),
                &body
            ))
        )
        .await,
        401
    );
    assert_eq!(
        e.slack(
            &body,
            Some(slack_signature(
                SLACK_SECRET,
                approval::now_secs() - 600,
                &body
            ))
        )
        .await,
        401
    );
    assert_eq!(
        e.slack(
            &slack_body("U0EVE", "greenlight_approve", &id, &respond),
            None
        )
        .await,
        200
    );
    let told = calls(&log, "/respond/two");
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["response_type"], "ephemeral");
    assert!(
        told[0]["text"]
            .as_str()
            .unwrap()
            .contains("Slack user U0EVE (u0eve) may not decide"),
        "{told:?}"
    );
    assert_eq!(e.slack(&body, None).await, 200);
    let told = calls(&log, "/respond/two");
    assert_eq!(told.len(), 2);
    assert_eq!(told[1]["replace_original"], true);
    assert!(
        told[1]["text"]
            .as_str()
            .unwrap()
            .contains("rejected by Slack user U0ALICE (u0alice)"),
        "{told:?}"
    );
    let mut next = event("two");
    next["hookDetails"] = waiting["hookDetails"].clone();
    let blocked = e.hook(&next).await;
    assert_eq!(status(&blocked), "FAILED", "{blocked}");
    assert!(
        reason(&blocked).contains("rejected by Slack user U0ALICE"),
        "{blocked}"
    );

    // 4. The terminal: eve is refused; alice approves and rejects at once, one wins.
    let waiting = e.hook(&event("three")).await;
    assert_eq!(status(&waiting), "IN_PROGRESS");
    let id = approval_id("three");
    let (code, text) = output(e.approve("AKIDEVE", "SECRETEVE", &id, false, sts_port));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("arn:aws:iam::{ACCOUNT}:user/eve may not decide")),
        "{text}"
    );
    let (code, text) = output(e.approve("AKIDALICE", "WRONGSECRET", &id, false, sts_port));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    let a = e.approve("AKIDALICE", "SECRETALICE", &id, false, sts_port);
    let b = e.approve("AKIDALICE", "SECRETALICE", &id, true, sts_port);
    let (a, b) = (output(a), output(b));
    let winners: Vec<&(i32, String)> = [&a, &b].into_iter().filter(|(c, _)| *c == 0).collect();
    assert_eq!(winners.len(), 1, "exactly one decision wins: {a:?} {b:?}");
    let loser = if a.0 == 0 { &b } else { &a };
    assert_eq!(loser.0, 1);
    assert!(loser.1.contains("already"), "{loser:?}");
    let approved = winners[0].1.contains("approved by");
    let mut next = event("three");
    next["hookDetails"] = waiting["hookDetails"].clone();
    let after = e.hook(&next).await;
    assert_eq!(
        status(&after),
        if approved { "SUCCEEDED" } else { "FAILED" },
        "{after}"
    );
    assert!(
        reason(&after).contains(&format!("by arn:aws:iam::{ACCOUNT}:user/alice"))
            && reason(&after).contains("from the terminal"),
        "{after}"
    );

    // 5. Expiry: a request whose time is up is decided by onTimeout, and its links say so.
    let id = approval_id("four");
    let past = greenlight::duration::now_ms() - 1000;
    moto.seed(&format!(
        r#"
req = {{"v": 1, "id": {id:?}, "deployment": "d", "subject": "checkout at POST_TEST_TRAFFIC_SHIFT", "stage": "POST_TEST_TRAFFIC_SHIFT", "check": "go-ahead",
       "approvers": [], "requestedAtMs": {past} - 3600000, "expiresAtMs": {past}, "onTimeout": "fail"}}
boto3.client('s3', **KW).put_object(Bucket='greenlight-approvals', Key='approvals/' + {id:?} + '/request.json', Body=json.dumps(req))
print(json.dumps(True))
"#
    ));
    let late = link::url(
        &url,
        KEY.as_bytes(),
        &link::Claims {
            id: id.clone(),
            action: Action::Approve,
            channel: "ops-hook".into(),
            expires: approval::now_secs() + 600,
        },
    );
    let late = e
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(late.split_once('?').unwrap().1.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 410);
    assert!(late.text().await.unwrap().contains("expired"));
    let timed_out = e.hook(&event("four")).await;
    assert_eq!(status(&timed_out), "FAILED", "{timed_out}");
    assert!(
        reason(&timed_out).contains("nobody approved within 1h")
            && reason(&timed_out).contains("onTimeout: fail"),
        "{timed_out}"
    );

    // 6. An ECS PAUSE hook: EventBridge's event writes the request and sends it; the
    //    approver's Slack click continues the deployment through ContinueServiceDeployment.
    let sd =
        format!("arn:aws:ecs:us-west-2:{ACCOUNT}:service-deployment/shop-cluster/payments/PAUSE1");
    let pause_event = json!({
        "version": "0", "id": "5a3e1a2b-0000-4000-8000-000000000001", "detail-type": "ECS Hook State Change", "source": "aws.ecs",
        "account": ACCOUNT, "time": "2026-12-02T10:00:00Z", "region": "us-west-2", "resources": [sd],
        "detail": {"eventName": "HOOK_AWAITING_ACTION"}
    });
    let handled = invoke(port, "approvals", &pause_event).await;
    assert_eq!(handled["handled"], true, "{handled}\n{}", watch_text());
    assert_eq!(handled["hookId"], "ecs-pause-e7tK9G_WRJqNF");
    let pause_id = handled["approval"].as_str().unwrap().to_string();
    let sent = calls(&log, "/hook");
    assert_eq!(
        sent.last().unwrap()["approval"]["id"],
        pause_id.as_str(),
        "{sent:?}"
    );
    // EventBridge may deliver twice: the second changes nothing.
    let twice = invoke(port, "approvals", &pause_event).await;
    assert_eq!(
        twice["reason"], "the approval was already requested",
        "{twice}"
    );
    assert_eq!(calls(&log, "/hook").len(), sent.len());
    let respond = format!("http://{receivers}/respond/pause");
    assert_eq!(
        e.slack(
            &slack_body("U0ALICE", "greenlight_approve", &pause_id, &respond),
            None
        )
        .await,
        200
    );
    let continued = calls(&log, "ContinueServiceDeployment");
    assert_eq!(
        continued,
        vec![
            json!({"serviceDeploymentArn": sd, "hookId": "ecs-pause-e7tK9G_WRJqNF", "action": "CONTINUE"})
        ]
    );
    assert!(
        calls(&log, "/respond/pause")[0]["text"]
            .as_str()
            .unwrap()
            .contains("ECS was told to continue")
    );

    // Nothing secret reached the functions' logs.
    let logs = watch_text();
    for secret in [KEY, SLACK_SECRET, "SECRETALICE", approve_url.as_str()] {
        assert!(
            !logs.contains(secret),
            "the log holds a secret or a signed link"
        );
    }
    let _ = sts.kill();
}

/// The endpoint's samples in `events/approvals/` read as the types AWS's events have, and
/// the endpoint answers each one, unconfigured, without deciding anything.
#[tokio::test]
async fn the_endpoint_samples_read_as_aws_events() {
    use aws_lambda_events::event::eventbridge::EventBridgeEvent;
    use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
    let dir = events_dir().join("approvals");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let pause: EventBridgeEvent<Value> =
        serde_json::from_value(read("ecs-hook-awaiting-action.json")).unwrap();
    assert_eq!(pause.detail_type, "ECS Hook State Change");
    assert_eq!(pause.detail["eventName"], "HOOK_AWAITING_ACTION");
    let link: LambdaFunctionUrlRequest =
        serde_json::from_value(read("function-url-link.json")).unwrap();
    assert_eq!(link.request_context.http.method.as_deref(), Some("GET"));
    let slack: LambdaFunctionUrlRequest =
        serde_json::from_value(read("function-url-slack.json")).unwrap();
    assert!(slack.is_base64_encoded);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ecs-hook-awaiting-action.json",
            "function-url-link.json",
            "function-url-slack.json"
        ]
    );
    let services = services_with(None);
    for name in ["function-url-link.json", "function-url-slack.json"] {
        let answer = greenlight::edge::approvals::handle(
            &services,
            &read(name),
            deadline_in(std::time::Duration::from_secs(5)),
        )
        .await;
        // No approval store is configured in this process: nothing can be decided.
        assert_eq!(answer["statusCode"], 503, "{name}: {answer}");
    }
}
