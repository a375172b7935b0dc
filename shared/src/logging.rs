//! The functions' logs: the level and format Lambda's advanced logging controls set
//! (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; `AWS_LAMBDA_LOG_FORMAT=JSON`), with
//! the HTTP, TLS, database and AWS client libraries capped at INFO whatever the level: at
//! DEBUG and TRACE they print requests and answers (a webhook URL's host and path, an AWS
//! answer carrying a secret's value, signed headers), and a secret's parts never reach
//! the log.
//!
//! Metrics ride in the log as CloudWatch Embedded Metric Format ([`crate::emf`]): an
//! event's `emf` field (a JSON object, as text) is lifted to the root of its JSON line, as
//! CloudWatch wants it. In text format, where CloudWatch reads no metrics, the field and
//! the metrics-only lines are left out.

use lambda_runtime::tracing::subscriber::filter::{LevelFilter, filter_fn};
use lambda_runtime::tracing::subscriber::fmt::format::Writer;
use lambda_runtime::tracing::subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use lambda_runtime::tracing::subscriber::prelude::*;
use lambda_runtime::tracing::subscriber::registry::LookupSpan;
use lambda_runtime::tracing::subscriber::{EnvFilter, Registry, fmt};
use serde_json::Value;
use tracing::{Event, Level, Subscriber};

/// The target of the events that carry metrics only.
pub const METRICS_TARGET: &str = "greenlight::metrics";

/// The field that carries an event's EMF document.
const EMF_FIELD: &str = "emf";

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
        let format = fmt::format().json().with_target(true).without_time();
        // Span fields as JSON too: the JSON format reads them back as JSON.
        let layer = layer
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(Embedded(format));
        Box::new(Registry::default().with(layer.with_filter(cap).with_filter(env)))
    } else {
        let metrics_only = filter_fn(|m| m.target() != METRICS_TARGET);
        let fields = fmt::format::debug_fn(|w, field, value| match field.name() {
            EMF_FIELD => Ok(()),
            "message" => write!(w, "{value:?} "),
            name => write!(w, "{name}={value:?} "),
        });
        let layer = layer.with_target(false).fmt_fields(fields);
        Box::new(
            Registry::default().with(
                layer
                    .with_filter(cap)
                    .with_filter(metrics_only)
                    .with_filter(env),
            ),
        )
    }
}

/// JSON lines with an event's `emf` document lifted to the root of the line.
struct Embedded<F>(F);

impl<S, N, F> FormatEvent<S, N> for Embedded<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let carries = event.metadata().fields().field(EMF_FIELD).is_some();
        if carries && let Some(lifted) = lift(&line) {
            return writeln!(writer, "{lifted}");
        }
        writer.write_str(&line)
    }
}

/// The JSON line with `fields.emf` (an object, as text) merged into its root.
fn lift(line: &str) -> Option<String> {
    let Value::Object(mut root) = serde_json::from_str::<Value>(line.trim_end()).ok()? else {
        return None;
    };
    let text = root.get_mut("fields")?.as_object_mut()?.remove(EMF_FIELD)?;
    if let Some(Value::Object(doc)) = text.as_str().and_then(|t| serde_json::from_str(t).ok()) {
        for (k, v) in doc {
            root.entry(k).or_insert(v);
        }
    }
    Some(Value::Object(root).to_string())
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

    /// A buffer to write the log to.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = super::subscriber(move || writer.clone(), Some("info"), json);
        tracing::subscriber::with_default(subscriber, || {
            // As the Lambda runtime runs every invocation: inside a span with fields.
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _entered = span.enter();
            tracing::info!(
                decision = "{}",
                emf = r#"{"_aws":{"Timestamp":1},"Failed":1}"#,
                "decided"
            );
            tracing::info!(target: METRICS_TARGET, emf = r#"{"CheckType":"http"}"#, "by type");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_the_metrics_at_their_root_inside_spans() {
        let log = logged(true);
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert_eq!(lines[0]["span"]["requestId"], "req-1", "{log}");
        assert_eq!(lines[0]["_aws"]["Timestamp"], 1);
        assert_eq!(lines[0]["Failed"], 1);
        assert_eq!(lines[0]["fields"]["decision"], "{}");
        assert!(lines[0]["fields"].get("emf").is_none());
        assert_eq!(lines[1]["CheckType"], "http");
    }

    #[test]
    fn text_lines_carry_no_metrics() {
        let log = logged(false);
        assert!(log.contains("decided"), "{log}");
        assert!(!log.contains("_aws") && !log.contains("by type"), "{log}");
    }

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
