//! Greenlight: deployment gates for Amazon ECS blue/green and AWS CodeDeploy lifecycle
//! hooks.
//!
//! Four thin Lambda binaries (`before-install`, `after-install`, `before-allow-traffic`,
//! `after-allow-traffic`) call [`run`] with their [`Role`]; this crate does the rest. Its
//! modules form layers, each using only those below it:
//!
//! 1. [`edge`]: the Lambda edge. ECS (parse, carried state, answer) and CodeDeploy
//!    (discovery, continuation, report); every event gets an answer.
//! 2. [`engine`]: the protocol-free decision: which checks run, the runner (concurrency,
//!    polling, policies, time budget), the verdict, the notification step, and the
//!    decision's log line.
//! 3. [`config`]: the configuration: sources, merging, validation, JSON Schema.
//! 4. [`checks`]: one folder per kind behind the [`checks::Check`] interface.
//! 5. [`notify`] (channels, events, notices, delivery) and [`metrics`] (metric sources
//!    behind [`metrics::MetricQuery`]).
//! 6. [`facts`] (ECS look-ups shared by the checks), [`secrets`], and [`emf`] (decisions
//!    as CloudWatch metrics).
//! 7. [`services`] (the process's clients, built once), [`record`] (the decision record),
//!    [`template`] (placeholders).
//! 8. [`aws`] (calls, errors, counting), [`deployment`], [`budget`], [`role`].
//! 9. Foundations: [`verdict`], [`schema`] (strict settings, tagged registries), [`stage`],
//!    [`duration`], [`text`], [`logging`], [`judge`] (the canary statistics, pure).
//!
//! `shared/tests/suite/layers.rs` keeps it so: no module imports, directly or through
//! others, a module that imports it back.

pub mod approval;
pub mod aws;
pub mod budget;
pub mod checks;
pub mod config;
pub mod deployment;
pub mod duration;
pub mod edge;
pub mod emf;
pub mod engine;
pub mod facts;
pub mod judge;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod record;
pub mod role;
pub mod schema;
pub mod secrets;
pub mod services;
pub mod stage;
pub mod template;
pub mod text;
pub mod verdict;

pub use edge::{handle, handle_payload, protocol};

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

use edge::protocol::payload::{Answer, Payload};

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
                edge::handle_payload(&services, role, &event.payload, deadline),
            );
            answer.await.map_err(|message| Diagnostic {
                error_type: ERROR_TYPE.into(),
                error_message: message,
            })
        }
    }))
    .await
}

/// Runs the approval endpoint (`functions/approvals`): function URL requests and
/// EventBridge events, each answered within its deadline. When the stack cannot tell the
/// function its own URL, it reads it once from the SSM parameter
/// `GREENLIGHT_APPROVAL_URL_PARAMETER` names.
pub async fn run_approvals() -> Result<(), Error> {
    logging::init();
    let services = Arc::new(Services::from_env());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let services = Arc::clone(&services);
        async move {
            Box::pin(own_url(&services)).await;
            let deadline =
                budget::lambda_deadline(event.context.deadline, std::time::SystemTime::now());
            let answer: futures::future::BoxFuture<'_, serde_json::Value> =
                Box::pin(edge::approvals::handle(&services, &event.payload, deadline));
            Ok::<_, Error>(answer.await)
        }
    }))
    .await
}

/// Reads the endpoint's URL from its SSM parameter, once, when the environment lacks it.
async fn own_url(services: &Services) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        if std::env::var(approval::ENV_URL).is_ok_and(|v| !v.trim().is_empty()) {
            return;
        }
        let Ok(name) = std::env::var(approval::ENV_URL_PARAMETER) else {
            return;
        };
        let r = secrets::SecretRef::Ssm { parameter: name };
        let limit = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        match secrets::resolve(services, &r, limit).await {
            Ok(url) => approval::set_url(url.expose().trim()),
            Err(e) => tracing::error!("the endpoint's URL could not be read: {e}"),
        }
    })
    .await;
}
