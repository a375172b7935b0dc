//! `migrationTask`: a one-off ECS task from the new revision, once per deployment. Against
//! the moto server (RunTask, ListTasks, DescribeTasks, StopTask, CloudWatch Logs), and with
//! recorded ECS replies for what moto lacks (DescribeServiceRevisions, exit codes other
//! than 0, placement failures).

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use greenlight::Services;
use greenlight::handle;
use greenlight::role::Role;
use serde_json::{Value, json};
use support::*;

const GREEN: &str =
    "arn:aws:ecs:us-west-2:123456789012:service-revision/shop-cluster/checkout/9386398427419951854";
const DEPLOYMENT: &str = "arn:aws:ecs:us-west-2:123456789012:service-deployment/shop-cluster/checkout/TFX5sH9q9XDboDTOv0rIt";

fn post_scale_up(check: Value) -> Value {
    let mut ev = event("ecs-post-scale-up.json");
    ev["hookDetails"] = json!({"greenlight": {"checks": {"migrate": check}}});
    ev
}

async fn run(services: &Services, ev: &Value, secs: u64) -> Value {
    handle(
        services,
        Role::AfterInstall,
        ev,
        deadline_in(Duration::from_secs(secs)),
    )
    .await
    .unwrap()
}

/// Sets how moto moves ECS tasks along: one status per `times` DescribeTasks.
fn task_transition(moto: &Moto, times: u64) {
    moto.seed(&format!(
        r#"
import urllib.request
req = urllib.request.Request(ENDPOINT + '/moto-api/state-manager/set-transition', data=json.dumps({{"model_name": "ecs::task", "transition": {{"progression": "manual", "times": {times}}}}}).encode(), method='POST')
urllib.request.urlopen(req).read()
print('null')
"#
    ));
}

const SEED: &str = r#"
ec2 = boto3.client('ec2', **KW)
vpc = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock='10.0.1.0/24')['Subnet']['SubnetId']
sg = ec2.create_security_group(GroupName='app', Description='app', VpcId=vpc)['GroupId']
ecs = boto3.client('ecs', **KW)
ecs.create_cluster(clusterName='shop-cluster')
td = ecs.register_task_definition(
    family='checkout', networkMode='bridge',
    containerDefinitions=[{'name': 'app', 'image': '123456789012.dkr.ecr.us-west-2.amazonaws.com/checkout:1.5.0', 'essential': True, 'memoryReservation': 512,
        'logConfiguration': {'logDriver': 'awslogs', 'options': {'awslogs-group': '/ecs/checkout', 'awslogs-region': 'us-west-2', 'awslogs-stream-prefix': 'ecs'}}}],
)['taskDefinition']['taskDefinitionArn']
ecs.create_service(cluster='shop-cluster', serviceName='checkout', taskDefinition=td, desiredCount=0, launchType='FARGATE',
    networkConfiguration={'awsvpcConfiguration': {'subnets': [subnet], 'securityGroups': [sg], 'assignPublicIp': 'DISABLED'}})
print(json.dumps({'taskDefinition': td, 'subnet': subnet}))
"#;

fn list_tasks(moto: &Moto, started_by: &str) -> Value {
    moto.seed(&format!(
        r#"
ecs = boto3.client('ecs', **KW)
arns = []
for status in ['RUNNING', 'STOPPED']:
    arns += [a for a in ecs.list_tasks(cluster='shop-cluster', startedBy={started_by:?}, desiredStatus=status)['taskArns'] if a not in arns]
tasks = ecs.describe_tasks(cluster='shop-cluster', tasks=arns)['tasks'] if arns else []
print(json.dumps([{{'arn': t['taskArn'], 'lastStatus': t['lastStatus'], 'stoppedReason': t.get('stoppedReason', ''), 'overrides': t.get('overrides', {{}}), 'attachments': t.get('attachments', []), 'launchType': t.get('launchType', '')}} for t in tasks]))
"#
    ))
}

#[tokio::test]
async fn concurrent_invocations_start_exactly_one_task_and_a_retry_adopts_it() {
    let moto = Moto::start();
    let seeded = moto.seed(SEED);
    task_transition(&moto, 1);
    let services = moto_services_with_ecs_fix(&moto).await;
    let ev = post_scale_up(json!({
        "type": "migrationTask",
        "taskDefinition": seeded["taskDefinition"],
        "command": ["bin/migrate", "up"],
        "environment": {"MIGRATE_LOCK": "on"},
        "interval": "200ms",
    }));
    let answers = futures::future::join_all((0..10).map(|_| run(&services, &ev, 60))).await;
    for a in &answers {
        assert_eq!(status(a), "SUCCEEDED", "{a:#}");
        assert!(
            reason(a).contains("container app) exited 0"),
            "{}",
            reason(a)
        );
    }

    let marker = greenlight::checks::migration_task::marker(DEPLOYMENT, "migrate");
    let tasks = list_tasks(&moto, &marker);
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 1, "one task for ten invocations: {tasks:#?}");
    let t = &tasks[0];
    assert_eq!(t["launchType"], "FARGATE", "the service's launch type");
    let over = &t["overrides"]["containerOverrides"][0];
    assert_eq!(over["name"], "app");
    assert_eq!(over["command"], json!(["bin/migrate", "up"]));
    assert_eq!(
        over["environment"],
        json!([{"name": "MIGRATE_LOCK", "value": "on"}])
    );
    // (moto cannot create awsvpc tasks, so the network is checked with recorded replies.)

    // A later invocation of the same deployment (a retry) adopts the finished task.
    let again = run(&services, &ev, 30).await;
    assert_eq!(status(&again), "SUCCEEDED", "{again:#}");
    assert_eq!(list_tasks(&moto, &marker).as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_task_over_its_timeout_is_stopped_and_fails() {
    let moto = Moto::start();
    let seeded = moto.seed(SEED);
    task_transition(&moto, 1_000_000);
    let services = moto_services_with_ecs_fix(&moto).await;
    let ev = post_scale_up(json!({
        "type": "migrationTask",
        "taskDefinition": seeded["taskDefinition"],
        "timeout": "1s",
        "interval": "300ms",
        "logLines": 0,
    }));
    let a = run(&services, &ev, 60).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("was still RUNNING after") && r.contains("(timeout 1s); stopped it"),
        "{r}"
    );
    let marker = greenlight::checks::migration_task::marker(DEPLOYMENT, "migrate");
    let tasks = list_tasks(&moto, &marker);
    assert_eq!(tasks[0]["lastStatus"], "STOPPED", "{tasks:#}");
    assert!(
        tasks[0]["stoppedReason"]
            .as_str()
            .unwrap()
            .contains("timeout (1s)"),
        "{tasks:#}"
    );
}

#[tokio::test]
async fn a_long_task_answers_in_progress_and_carries_the_task_to_the_next_invocation() {
    let moto = Moto::start();
    let seeded = moto.seed(SEED);
    task_transition(&moto, 1_000_000);
    let services = moto_services_with_ecs_fix(&moto).await;
    let ev = post_scale_up(json!({
        "type": "migrationTask",
        "taskDefinition": seeded["taskDefinition"],
        "interval": "15s",
    }));
    let a = run(&services, &ev, 3).await;
    assert_eq!(status(&a), "IN_PROGRESS", "{a:#}");
    assert!(a["callBackDelay"].as_u64().unwrap() >= 1, "{a:#}");
    assert!(reason(&a).contains("is RUNNING"), "{}", reason(&a));
    let state = &a["hookDetails"]["greenlightState"]["checks"]["migrate"]["data"];
    let arn = state["taskArn"].as_str().unwrap().to_string();

    // ECS calls again with the hookDetails it was given; the task is followed, not restarted.
    task_transition(&moto, 1);
    let mut next = ev.clone();
    next["hookDetails"] = a["hookDetails"].clone();
    let mut b = run(&services, &next, 30).await;
    for _ in 0..5 {
        if status(&b) != "IN_PROGRESS" {
            break;
        }
        next["hookDetails"] = b["hookDetails"].clone();
        b = run(&services, &next, 30).await;
    }
    assert_eq!(status(&b), "SUCCEEDED", "{b:#}");
    let marker = greenlight::checks::migration_task::marker(DEPLOYMENT, "migrate");
    let tasks = list_tasks(&moto, &marker);
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    assert_eq!(tasks[0]["arn"], arn);
}

// ------------------------------------------------------------ recorded ECS replies

const TD: &str = "arn:aws:ecs:us-west-2:123456789012:task-definition/checkout:42";
const TASK: &str =
    "arn:aws:ecs:us-west-2:123456789012:task/shop-cluster/0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// ECS as recorded: the revision's task definition, the service (Fargate with capacity
/// providers, a network, a platform version), and RunTask/DescribeTasks as given.
fn ecs_recorded(run_task: aws_smithy_mocks::Rule, describe: Vec<ecs::Task>) -> aws_sdk_ecs::Client {
    use aws_sdk_ecs::operation::*;
    let revision = mock!(aws_sdk_ecs::Client::describe_service_revisions)
        .match_requests(|r| r.service_revision_arns() == [GREEN.to_string()])
        .then_output(|| {
            describe_service_revisions::DescribeServiceRevisionsOutput::builder()
                .service_revisions(
                    ecs::ServiceRevision::builder()
                        .service_revision_arn(GREEN)
                        .task_definition(TD)
                        .build(),
                )
                .build()
        });
    let service = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| {
            describe_services::DescribeServicesOutput::builder()
                .services(
                    ecs::Service::builder()
                        .service_name("checkout")
                        .capacity_provider_strategy(
                            ecs::CapacityProviderStrategyItem::builder()
                                .capacity_provider("FARGATE_SPOT")
                                .weight(1)
                                .build()
                                .unwrap(),
                        )
                        .platform_version("1.4.0")
                        .network_configuration(
                            ecs::NetworkConfiguration::builder()
                                .awsvpc_configuration(
                                    ecs::AwsVpcConfiguration::builder()
                                        .subnets("subnet-0a1b2c")
                                        .security_groups("sg-0d1e2f")
                                        .build()
                                        .unwrap(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition)
        .sequence()
        .output(|| {
            describe_task_definition::DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    ecs::TaskDefinition::builder()
                        .task_definition_arn(TD)
                        .container_definitions(
                            ecs::ContainerDefinition::builder()
                                .name("envoy")
                                .essential(false)
                                .build(),
                        )
                        .container_definitions(
                            ecs::ContainerDefinition::builder()
                                .name("app")
                                .essential(true)
                                .log_configuration(
                                    ecs::LogConfiguration::builder()
                                        .log_driver(ecs::LogDriver::Awslogs)
                                        .options("awslogs-group", "/ecs/checkout")
                                        .options("awslogs-stream-prefix", "ecs")
                                        .build()
                                        .unwrap(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .sequence()
        .output(|| list_tasks::ListTasksOutput::builder().build())
        .repeatedly()
        .build();
    let tasks = describe.clone();
    let describe_rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .output(move || {
            describe_tasks::DescribeTasksOutput::builder()
                .set_tasks(Some(tasks.clone()))
                .build()
        })
        .repeatedly()
        .build();
    mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        &[&revision, &service, &td, &list, &run_task, &describe_rule]
    )
}

fn task(
    status: &str,
    exit: Option<i32>,
    stopped: &str,
    container_reason: Option<&str>,
) -> ecs::Task {
    let mut c = ecs::Container::builder().name("app").last_status(status);
    if let Some(code) = exit {
        c = c.exit_code(code);
    }
    if let Some(r) = container_reason {
        c = c.reason(r);
    }
    let mut t = ecs::Task::builder()
        .task_arn(TASK)
        .task_definition_arn(TD)
        .last_status(status)
        .containers(c.build());
    if !stopped.is_empty() {
        t = t
            .stopped_reason(stopped)
            .stop_code(ecs::TaskStopCode::EssentialContainerExited);
    }
    t.build()
}

#[tokio::test]
async fn exit_code_1_fails_with_the_reason_and_the_last_log_lines() {
    let moto = Moto::start();
    moto.seed(
        r#"
logs = boto3.client('logs', **KW)
logs.create_log_group(logGroupName='/ecs/checkout')
logs.create_log_stream(logGroupName='/ecs/checkout', logStreamName='ecs/app/0f1e2d3c4b5a69788796a5b4c3d2e1f0')
import time
now = int(time.time() * 1000)
logs.put_log_events(logGroupName='/ecs/checkout', logStreamName='ecs/app/0f1e2d3c4b5a69788796a5b4c3d2e1f0', logEvents=[
    {'timestamp': now, 'message': 'applying 3 migrations'},
    {'timestamp': now + 1, 'message': 'ERROR: column "sku" of relation "orders" does not exist'},
])
print('null')
"#,
    );
    let requests: Arc<Mutex<Vec<aws_sdk_ecs::operation::run_task::RunTaskInput>>> = Arc::default();
    let seen = requests.clone();
    let run_task = mock!(aws_sdk_ecs::Client::run_task)
        .match_requests(move |r| {
            seen.lock().unwrap().push(r.clone());
            true
        })
        .sequence()
        .output(|| {
            aws_sdk_ecs::operation::run_task::RunTaskOutput::builder()
                .tasks(task("PROVISIONING", None, "", None))
                .build()
        })
        .repeatedly()
        .build();
    let services = moto.services().await;
    services.set_ecs(ecs_recorded(
        run_task,
        vec![task(
            "STOPPED",
            Some(1),
            "Essential container in task exited",
            None,
        )],
    ));
    let ev = post_scale_up(
        json!({"type": "migrationTask", "command": ["bin/migrate"], "interval": "100ms"}),
    );
    let a = run(&services, &ev, 30).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("checkout:42, container app) exited with code 1"),
        "{r}"
    );
    assert!(
        r.contains("stopped reason: Essential container in task exited"),
        "{r}"
    );
    assert!(
        r.contains(r#"last log line: ERROR: column "sku" of relation "orders" does not exist"#),
        "{r}"
    );

    // RunTask was asked for the new revision's task definition, once, idempotently, with
    // the service's capacity providers, network and platform version.
    let reqs = requests.lock().unwrap();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    let marker = greenlight::checks::migration_task::marker(DEPLOYMENT, "migrate");
    assert_eq!(req.task_definition(), Some(TD));
    assert_eq!(req.started_by(), Some(marker.as_str()));
    assert_eq!(req.client_token(), Some(marker.as_str()));
    assert_eq!(req.cluster(), Some("shop-cluster"));
    assert_eq!(
        req.capacity_provider_strategy()[0].capacity_provider(),
        "FARGATE_SPOT"
    );
    assert_eq!(req.launch_type(), None);
    assert_eq!(
        req.platform_version(),
        None,
        "a platform version goes with FARGATE only when the service names the launch type"
    );
    let net = req
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    assert_eq!(net.subnets(), ["subnet-0a1b2c"]);
    let over = &req.overrides().unwrap().container_overrides()[0];
    assert_eq!(over.name(), Some("app"), "the first essential container");
    assert_eq!(over.command(), ["bin/migrate"]);
}

#[tokio::test]
async fn a_task_that_cannot_start_fails_with_why() {
    // RunTask places nothing.
    let no_capacity = mock!(aws_sdk_ecs::Client::run_task)
        .sequence()
        .output(|| {
            aws_sdk_ecs::operation::run_task::RunTaskOutput::builder()
                .failures(
                    ecs::Failure::builder()
                        .arn(TD)
                        .reason("RESOURCE:MEMORY")
                        .detail("no container instance has 2048 MiB free")
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let services = services_with(None);
    services.set_ecs(ecs_recorded(no_capacity, vec![]));
    let ev = post_scale_up(json!({"type": "migrationTask"}));
    let a = run(&services, &ev, 30).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    assert!(
        reason(&a)
            .contains("could not start: RESOURCE:MEMORY (no container instance has 2048 MiB free)"),
        "{}",
        reason(&a)
    );

    // The image cannot be pulled: the task stops without an exit code.
    let started = mock!(aws_sdk_ecs::Client::run_task)
        .sequence()
        .output(|| {
            aws_sdk_ecs::operation::run_task::RunTaskOutput::builder()
                .tasks(task("PROVISIONING", None, "", None))
                .build()
        })
        .repeatedly()
        .build();
    let services = services_with(None);
    services.set_ecs(ecs_recorded(
        started,
        vec![task(
            "STOPPED",
            None,
            "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
            Some("CannotPullContainerError: checkout:1.5.0 not found"),
        )],
    ));
    let ev = post_scale_up(json!({"type": "migrationTask", "interval": "100ms", "logLines": 0}));
    let a = run(&services, &ev, 30).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("stopped before its container ran to completion"),
        "{r}"
    );
    assert!(
        r.contains("CannotPullContainerError: pull image manifest"),
        "{r}"
    );
    assert!(
        r.contains("container: CannotPullContainerError: checkout:1.5.0 not found"),
        "{r}"
    );

    // A missing permission is named, and fails closed.
    let denied = mock!(aws_sdk_ecs::Client::run_task).then_error(|| {
        aws_sdk_ecs::operation::run_task::RunTaskError::AccessDeniedException(
            ecs::error::AccessDeniedException::builder()
                .message("not authorized to perform: ecs:RunTask")
                .build(),
        )
    });
    let services = services_with(None);
    services.set_ecs(ecs_recorded(denied, vec![]));
    let a = run(
        &services,
        &post_scale_up(json!({"type": "migrationTask"})),
        30,
    )
    .await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    assert!(
        reason(&a).contains("ECS RunTask was denied: grant ecs:RunTask"),
        "{}",
        reason(&a)
    );
}

#[tokio::test]
async fn dry_run_says_what_would_run_and_starts_nothing() {
    let never = mock!(aws_sdk_ecs::Client::run_task)
        .match_requests(|_| panic!("a dry run must not start a task"))
        .then_output(|| aws_sdk_ecs::operation::run_task::RunTaskOutput::builder().build());
    let services = services_with(None);
    services.set_ecs(ecs_recorded(never, vec![]));
    let ev = post_scale_up(
        json!({"type": "migrationTask", "container": "app", "command": ["bin/migrate"], "dryRun": true}),
    );
    let a = run(&services, &ev, 30).await;
    assert_eq!(status(&a), "SUCCEEDED", "{a:#}");
    assert!(reason(&a).contains("dry run: would run checkout:42 container app with command [\"bin/migrate\"] in cluster shop-cluster"), "{}", reason(&a));
}

#[tokio::test]
async fn within_shorter_than_the_timeout_is_a_configuration_error() {
    let services = services_with(None);
    let a = run(
        &services,
        &post_scale_up(json!({"type": "migrationTask", "timeout": "20m", "within": "10m"})),
        10,
    )
    .await;
    assert_eq!(status(&a), "FAILED");
    assert!(
        reason(&a).contains("checks.migrate.within"),
        "{}",
        reason(&a)
    );
    let b = run(
        &services,
        &post_scale_up(
            json!({"type": "migrationTask", "container": "app", "launchType": "LAMBDA"}),
        ),
        10,
    )
    .await;
    assert!(
        reason(&b).contains("checks.migrate.launchType"),
        "{}",
        reason(&b)
    );
}
