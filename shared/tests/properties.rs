//! Arbitrary JSON never panics the event or configuration parsers, and always gets a valid
//! answer.

mod support;

use std::time::Duration;

use greenlight::Role;
use greenlight::handler::handle;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 _:/.-]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("TEST_TRAFFIC_SHIFT"),
            Just("http"),
            Just("30s"),
            Just("http://127.0.0.1:9/"),
            Just("greenlight"),
            Just("arn:aws:ecs:us-west-2:1:service-revision/c/s/1"),
        ]
        .prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("executionId".to_string()),
        Just("lifecycleStage".to_string()),
        Just("resourceArn".to_string()),
        Just("executionDetails".to_string()),
        Just("serviceArn".to_string()),
        Just("targetServiceRevisionArn".to_string()),
        Just("testTrafficWeights".to_string()),
        Just("productionTrafficWeights".to_string()),
        Just("hookDetails".to_string()),
        Just("greenlight".to_string()),
        Just("checks".to_string()),
        Just("type".to_string()),
        Just("url".to_string()),
        Just("timeout".to_string()),
        Just("DeploymentId".to_string()),
        Just("greenlightState".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((keys.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn valid(answer: &Value) {
    let status = answer["hookStatus"].as_str().unwrap();
    assert!(
        ["SUCCEEDED", "FAILED", "IN_PROGRESS"].contains(&status),
        "{answer}"
    );
    assert!(answer["hookDetails"].is_object());
    assert_eq!(
        answer.get("callBackDelay").is_some(),
        status == "IN_PROGRESS"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_events_get_a_valid_answer(event in arb_json()) {
        // CodeDeploy-looking events would try to report; those are covered elsewhere.
        prop_assume!(event.get("DeploymentId").is_none() && event.get("LifecycleEventHookExecutionId").is_none());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let services = support::services_with(None);
        let answer = rt.block_on(handle(&services, Role::BeforeAllowTraffic, &event, support::deadline_in(Duration::from_secs(2)))).unwrap();
        valid(&answer);
    }

    #[test]
    fn arbitrary_hook_configurations_get_a_valid_answer(config in arb_json()) {
        let mut event = support::event("ecs-test-traffic-shift.json");
        event["hookDetails"] = json!({"greenlight": config});
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let services = support::services_with(None);
        let answer = rt.block_on(handle(&services, Role::BeforeAllowTraffic, &event, support::deadline_in(Duration::from_secs(2)))).unwrap();
        valid(&answer);
    }

    #[test]
    fn arbitrary_documents_never_panic_the_config_parser(config in arb_json()) {
        let _ = greenlight::config::parse(&config);
    }
}
