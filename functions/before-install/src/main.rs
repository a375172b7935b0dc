//! Greenlight's `before-install` hook: ECS PRE_SCALE_UP (and RECONCILE_SERVICE); CodeDeploy BeforeInstall.

#[tokio::main]
async fn main() -> Result<(), greenlight::Error> {
    greenlight::run(greenlight::Role::BeforeInstall).await
}
