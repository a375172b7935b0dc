//! Greenlight's `after-install` hook: ECS POST_SCALE_UP; CodeDeploy AfterInstall.

#[tokio::main]
async fn main() -> Result<(), greenlight::Error> {
    greenlight::run(greenlight::Role::AfterInstall).await
}
