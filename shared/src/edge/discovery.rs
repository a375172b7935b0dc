//! What a CodeDeploy deployment is deploying. CodeDeploy's event carries only the
//! deployment id: `GetDeployment`, `ListDeploymentTargets`, `GetDeploymentTarget` and
//! `GetDeploymentGroup` give the same facts the ECS path has — the cluster and service with
//! the blue and green task sets, their target groups, traffic weights and listeners, or the
//! Lambda function, alias and versions — so every check works unchanged.

use crate::budget::Budget;
use crate::deployment::{CodeDeployFacts, EcsFacts, LambdaFacts, TaskSet};
use crate::services::Services;
use crate::verdict::Failure;

macro_rules! call {
    ($budget:expr, $what:literal, $perm:literal, $fut:expr) => {
        crate::aws::call($budget, concat!("CodeDeploy ", $what), $perm, $fut).await?
    };
}

/// Discovers what deployment `deployment_id` deploys.
pub async fn discover(
    services: &Services,
    deployment_id: &str,
    budget: &Budget,
) -> Result<CodeDeployFacts, Failure> {
    let cd = services.codedeploy().await;
    let out = call!(
        budget,
        "GetDeployment",
        "codedeploy:GetDeployment",
        cd.get_deployment().deployment_id(deployment_id).send()
    );
    let info = out
        .deployment_info()
        .ok_or_else(|| format!("CodeDeploy knows no deployment {deployment_id}"))?;
    let mut facts = CodeDeployFacts {
        deployment_id: deployment_id.to_string(),
        compute_platform: info
            .compute_platform()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        application: info.application_name().unwrap_or_default().to_string(),
        deployment_group: info.deployment_group_name().unwrap_or_default().to_string(),
        ..CodeDeployFacts::default()
    };
    let targets = call!(
        budget,
        "ListDeploymentTargets",
        "codedeploy:ListDeploymentTargets",
        cd.list_deployment_targets()
            .deployment_id(deployment_id)
            .send()
    );
    if let Some(target_id) = targets.target_ids().first() {
        let t = call!(
            budget,
            "GetDeploymentTarget",
            "codedeploy:GetDeploymentTarget",
            cd.get_deployment_target()
                .deployment_id(deployment_id)
                .target_id(target_id)
                .send()
        );
        let events = |evs: &[aws_sdk_codedeploy::types::LifecycleEvent]| -> Vec<(String, String)> {
            evs.iter()
                .map(|e| {
                    (
                        e.lifecycle_event_name().unwrap_or_default().to_string(),
                        e.status()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        };
        if let Some(target) = t.deployment_target() {
            if let Some(ecs) = target.ecs_target() {
                facts.lifecycle_events = events(ecs.lifecycle_events());
                let mut e = EcsFacts {
                    service_arn: ecs.target_arn().map(str::to_string),
                    ..EcsFacts::default()
                };
                for ts in ecs.task_sets_info() {
                    let set = TaskSet {
                        id: ts.identifer().unwrap_or_default().to_string(),
                        target_group: ts.target_group().and_then(|g| g.name()).map(str::to_string),
                        traffic_weight: ts.traffic_weight(),
                        running: ts.running_count(),
                        desired: ts.desired_count(),
                        status: ts.status().map(str::to_string),
                    };
                    match ts.task_set_label().map(|l| l.as_str()) {
                        Some("Green") | Some("GREEN") => e.green = Some(set),
                        Some("Blue") | Some("BLUE") => e.blue = Some(set),
                        _ => {}
                    }
                }
                facts.ecs = Some(e);
            }
            if let Some(lambda) = target.lambda_target() {
                facts.lifecycle_events = events(lambda.lifecycle_events());
                let f = lambda.lambda_function_info();
                facts.lambda = Some(LambdaFacts {
                    function_name: f.and_then(|f| f.function_name()).map(str::to_string),
                    alias: f.and_then(|f| f.function_alias()).map(str::to_string),
                    current_version: f.and_then(|f| f.current_version()).map(str::to_string),
                    target_version: f.and_then(|f| f.target_version()).map(str::to_string),
                    target_version_weight: f.map(|f| f.target_version_weight()).unwrap_or(0.0),
                });
            }
        }
    }
    if let Some(ecs) = facts.ecs.as_mut() {
        let g = call!(
            budget,
            "GetDeploymentGroup",
            "codedeploy:GetDeploymentGroup",
            cd.get_deployment_group()
                .application_name(&facts.application)
                .deployment_group_name(&facts.deployment_group)
                .send()
        );
        if let Some(info) = g.deployment_group_info() {
            if let Some(s) = info.ecs_services().first() {
                ecs.cluster = s.cluster_name().map(str::to_string);
                ecs.service = s.service_name().map(str::to_string);
            }
            for pair in info
                .load_balancer_info()
                .map(|l| l.target_group_pair_info_list())
                .unwrap_or_default()
            {
                ecs.production_listeners.extend(
                    pair.prod_traffic_route()
                        .map(|r| r.listener_arns().to_vec())
                        .unwrap_or_default(),
                );
                ecs.test_listeners.extend(
                    pair.test_traffic_route()
                        .map(|r| r.listener_arns().to_vec())
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(facts)
}
