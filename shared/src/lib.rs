//! Greenlight: deployment gates for Amazon ECS blue/green and AWS CodeDeploy lifecycle
//! hooks.
//!
//! Four thin Lambda binaries (`before-install`, `after-install`, `before-allow-traffic`,
//! `after-allow-traffic`) call [`run`] with their [`Role`]; this crate does the rest:
//!
//! * [`protocol`]: the ECS and CodeDeploy contracts, in and out;
//! * [`deployment`]: the facts of the deployment every check can use;
//! * [`config`]: the configuration, its sources, strict validation, and its JSON Schema;
//! * [`checks`]: one module per check kind;
//! * [`judge`]: the canary-versus-baseline statistics (pure);
//! * [`runner`]: concurrent checks inside a time budget, polling, policies, the verdict;
//! * [`record`]: the decision record;
//! * [`notify`]: notifications to Slack, Microsoft Teams, a webhook or SNS;
//! * [`handler`]: the hook runtime that always answers.

pub mod aws;
pub mod budget;
pub mod checks;
pub mod config;
pub mod deployment;
pub mod discovery;

pub mod duration;
pub mod facts;
pub mod handler;
pub mod judge;
pub mod logging;
pub mod notify;
pub mod protocol;
pub mod record;
pub mod role;
pub mod runner;
pub mod services;
pub mod template;
pub mod text;
pub mod verdict;

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

use protocol::payload::{Answer, Payload};

pub use lambda_runtime::Error;
pub use role::Role;
pub use services::Services;

/// The `errorType` of an invocation error (the only one: a CodeDeploy status that could
/// not be reported); its `errorMessage` says what happened.
pub const ERROR_TYPE: &str = "GreenlightError";

/// Runs the Lambda function for `role`: sets up logging (JSON when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`), builds the process-wide services once, and serves
/// invocations. A `GREENLIGHT_MAX_INVOCATION` that is not a duration stops it at start.
/// Every payload reaches the handler: it is taken as raw JSON (or as text that is not
/// JSON) and read there.
pub async fn run(role: Role) -> Result<(), Error> {
    logging::init();
    let cap = budget::max_invocation(std::env::var(budget::ENV_MAX_INVOCATION).ok().as_deref())?;
    let services = Arc::new(Services::from_env());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| {
        let services = Arc::clone(&services);
        async move {
            let deadline = budget::invocation_deadline(
                event.context.deadline,
                std::time::SystemTime::now(),
                cap,
            );
            // Boxed: the hook's future is deep, and a box keeps the binaries' type layout
            // shallow.
            let answer: futures::future::BoxFuture<'_, Result<Answer, String>> = Box::pin(
                handler::handle_payload(&services, role, &event.payload, deadline),
            );
            answer.await.map_err(|message| Diagnostic {
                error_type: ERROR_TYPE.into(),
                error_message: message,
            })
        }
    }))
    .await
}
