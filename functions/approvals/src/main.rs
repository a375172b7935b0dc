//! Greenlight's approval endpoint: a Lambda function URL (signed links, Slack buttons, IAM
//! decisions) and the target of ECS PAUSE hooks' EventBridge events.

#[tokio::main]
async fn main() -> Result<(), greenlight::Error> {
    greenlight::run_approvals().await
}
