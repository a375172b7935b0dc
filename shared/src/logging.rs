//! The functions' logs: the level and format Lambda's advanced logging controls set
//! (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; `AWS_LAMBDA_LOG_FORMAT=JSON`), with
//! the HTTP, TLS, database and AWS client libraries capped at INFO whatever the level: at
//! DEBUG and TRACE they print requests and answers (a webhook URL's host and path, an AWS
//! answer carrying a secret's value, signed headers), and a secret's parts never reach
//! the log.

use lambda_runtime::tracing::subscriber::filter::{LevelFilter, filter_fn};
use lambda_runtime::tracing::subscriber::fmt::MakeWriter;
use lambda_runtime::tracing::subscriber::prelude::*;
use lambda_runtime::tracing::subscriber::{EnvFilter, Registry, fmt};
use tracing::{Level, Subscriber};

/// Libraries whose own logs stay at INFO or above (targets, by prefix).
pub const CAPPED: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "tower",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_smithy_json",
    "aws_smithy_xml",
    "aws_smithy_query",
    "aws_sigv4",
    "aws_runtime",
    "aws_config",
    "aws_credential_types",
    "aws_sdk_",
    "sqlx",
];

fn capped(target: &str) -> bool {
    CAPPED.iter().any(|p| {
        target.starts_with(p)
            && (p.ends_with('_') || target.len() == p.len() || target[p.len()..].starts_with("::"))
    })
}

/// The subscriber of a function, writing to `writer` at `level` (a level name; unknown
/// names mean INFO), as JSON lines when `json`.
pub fn subscriber<W>(
    writer: W,
    level: Option<&str>,
    json: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let level: LevelFilter = level
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(LevelFilter::INFO);
    let env = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let cap = filter_fn(|m| *m.level() <= Level::INFO || !capped(m.target()));
    let layer = fmt::layer().without_time().with_writer(writer);
    if json {
        let layer = layer.json().with_target(true);
        Box::new(Registry::default().with(layer.with_filter(cap).with_filter(env)))
    } else {
        let layer = layer.with_target(false);
        Box::new(Registry::default().with(layer.with_filter(cap).with_filter(env)))
    }
}

/// Installs the function's subscriber, reading the level and format from the environment
/// as Lambda sets them.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = tracing::subscriber::set_global_default(subscriber(
        std::io::stdout,
        level.as_deref(),
        json,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_client_libraries_by_target_prefix() {
        assert!(capped("hyper_util::client::legacy::connect::http"));
        assert!(capped("reqwest::connect"));
        assert!(capped("aws_smithy_runtime::client::orchestrator"));
        assert!(capped("aws_sdk_secretsmanager::config"));
        assert!(capped("sqlx::query"));
        assert!(!capped("greenlight::runner"));
        assert!(!capped("hyperion"));
        assert!(!capped("lambda_runtime"));
    }
}
