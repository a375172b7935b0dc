//! Greenlight's `before-allow-traffic` hook: ECS TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION_TRAFFIC_SHIFT; CodeDeploy AfterAllowTestTraffic, BeforeAllowTraffic.

#[tokio::main]
async fn main() -> Result<(), greenlight::Error> {
    greenlight::run(greenlight::Role::BeforeAllowTraffic).await
}
