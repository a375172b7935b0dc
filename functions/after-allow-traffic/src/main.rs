//! Greenlight's `after-allow-traffic` hook: ECS PRODUCTION_TRAFFIC_SHIFT, POST_PRODUCTION_TRAFFIC_SHIFT; CodeDeploy AfterAllowTraffic.

#[tokio::main]
async fn main() -> Result<(), greenlight::Error> {
    greenlight::run(greenlight::Role::AfterAllowTraffic).await
}
