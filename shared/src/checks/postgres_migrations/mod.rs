//! `postgresMigrations`: applies versioned SQL files to PostgreSQL with sqlx's migrator
//! conventions: the ledger table `_sqlx_migrations` (compatible with `sqlx migrate run`),
//! the same advisory lock, each migration in its own transaction together with its ledger
//! row, and a checksum check of what was applied before.
//!
//! Concurrent invocations (ECS re-invocations, CodeDeploy retries) apply each migration
//! once: the one that holds the advisory lock applies, the others wait (pending) and then
//! find nothing left to do. A migration that fails is rolled back whole. The guard
//! ([`guard`]) looks at pending migrations before anything is applied.

use std::str::FromStr;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::ConnectOptions as _;
use sqlx::Connection as _;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgErrorPosition, PgSslMode};

pub mod guard;

use crate::checks::migrations::{self, MigrationFile, Source};
use crate::checks::{Check, CheckContext, Timing};
use crate::duration::HumanDuration;
use crate::schema::ConfigError;
use crate::secrets::{self, Secret, SecretRef, redact};
use crate::verdict::Evaluation;
use guard::{EXPAND_CONTRACT, Finding, Pending};

/// TLS towards the database (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TlsMode {
    /// No TLS (a database on the same host or a private test network only).
    Disable,
    /// TLS when the server offers it, without certificate checks.
    Prefer,
    /// TLS always, without certificate checks (default; RDS and Aurora accept it).
    #[default]
    Require,
    /// TLS, with the server's certificate checked against `rootCertificate` (or the public
    /// web roots).
    VerifyCa,
    /// As `verifyCa`, and the host name must match the certificate.
    VerifyFull,
}

/// What to do with statements an older revision cannot survive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DestructivePolicy {
    /// Apply nothing and fail, listing the statements (default). Statements in a file
    /// carrying `-- greenlight:allow-destructive` are accepted.
    #[default]
    Fail,
    /// Apply, and list the statements in the record and the reason.
    Warn,
    /// Apply; the statements are listed in the record only.
    Allow,
}

/// How to reach the database. One of `secret` and `url`; the other fields override parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection {
    /// A Secrets Manager secret in the RDS form: a JSON object with `host`, `port`,
    /// `username`, `password` and `dbname` (as RDS and `rds.DatabaseSecret` create them).
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// A `postgres://user:password@host:port/database` URL, best held in an SSM
    /// SecureString (`{"ssmParameter": "/app/database-url"}`).
    #[serde(default)]
    pub url: Option<SecretRef>,
    /// Overrides the host (e.g. an RDS Proxy endpoint).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    /// Overrides the database name.
    #[serde(default)]
    pub database: Option<String>,
    /// Overrides the user name.
    #[serde(default)]
    pub username: Option<String>,
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_lock_poll() -> HumanDuration {
    HumanDuration::secs(2)
}
fn default_ledger() -> String {
    "_sqlx_migrations".into()
}

/// Settings of a `postgresMigrations` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresMigrationsCheck {
    /// Where the migration files are: a directory in the function's package (relative to
    /// its root, e.g. `migrations`) or an S3 prefix (`s3://bucket/app/migrations/`). Files
    /// are named as for `sqlx migrate`: `<VERSION>_<DESCRIPTION>.sql` (or `.up.sql`).
    pub source: String,
    pub connection: Connection,
    /// TLS mode: `disable`, `prefer`, `require` (default), `verifyCa`, `verifyFull`.
    #[serde(default)]
    pub tls: TlsMode,
    /// A PEM file in the function's package with the certificate authorities to trust
    /// (for RDS: the region's bundle from truststore.pki.rds.amazonaws.com), for
    /// `verifyCa` and `verifyFull`.
    #[serde(default)]
    pub root_certificate: Option<String>,
    /// How long connecting may take. Default `10s`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Statements an older revision cannot survive (DROP TABLE, DROP COLUMN, RENAME, SET
    /// NOT NULL, …): `fail` (default), `warn`, `allow`.
    #[serde(default)]
    pub destructive: DestructivePolicy,
    /// The ledger table. Default `_sqlx_migrations` (shared with `sqlx migrate run`).
    #[serde(default = "default_ledger")]
    pub ledger_table: String,
    /// PostgreSQL `statement_timeout` for each migration statement. Default: the server's.
    #[serde(default)]
    pub statement_timeout: Option<HumanDuration>,
    /// How often to look again while another invocation holds the migration lock.
    /// Default `2s`.
    #[serde(default = "default_lock_poll")]
    pub lock_poll_interval: HumanDuration,
}

impl Check for PostgresMigrationsCheck {
    const TYPE: &'static str = "postgresMigrations";
    const DESCRIPTION: &'static str = "Applies versioned SQL migrations to PostgreSQL once per deployment: sqlx's ledger and advisory lock, one transaction per migration, checksums of applied files, and a guard against statements the previous revision cannot survive.";
    type State = ();

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let c = self;
        Source::parse(&c.source).map_err(|e| ConfigError::new(format!("{at}.source"), e))?;
        match (&c.connection.secret, &c.connection.url) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    format!("{at}.connection"),
                    "has both secret and url; keep one",
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    format!("{at}.connection"),
                    "names no database: set secret (an RDS-style Secrets Manager secret) or url (e.g. {\"ssmParameter\": \"/app/database-url\"})",
                ));
            }
            _ => {}
        }
        if let Some(SecretRef::Literal(url)) = &c.connection.url {
            postgres_url(url).map_err(|e| ConfigError::new(format!("{at}.connection.url"), e))?;
        }
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        };
        let parts: Vec<&str> = c.ledger_table.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|p| ident(p)) {
            return Err(ConfigError::new(
                format!("{at}.ledgerTable"),
                format!(
                    "{:?} is not a plain table name (letters, digits and _, optionally schema.table)",
                    c.ledger_table
                ),
            ));
        }
        if c.tls == TlsMode::Disable && c.root_certificate.is_some() {
            return Err(ConfigError::new(
                format!("{at}.rootCertificate"),
                "is set but tls is disable; use verifyFull (or remove rootCertificate)",
            ));
        }
        if c.lock_poll_interval.get() < Duration::from_millis(100) {
            return Err(ConfigError::new(
                format!("{at}.lockPollInterval"),
                "must be at least 100ms",
            ));
        }
        Ok(())
    }

    fn timing(&self) -> Timing {
        Timing::every_by("lockPollInterval", self.lock_poll_interval)
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, _state: ()) -> Evaluation {
        let c = self;
        let source = match Source::parse(&c.source) {
            Ok(s) => s,
            Err(e) => return Evaluation::error(format!("source {e}")),
        };
        let files = match migrations::load(&source, ctx.services, &ctx.budget).await {
            Ok(f) => f,
            Err(e) => return Evaluation::error(e),
        };
        let (mut conn, target) = match connect(c, ctx).await {
            Ok(x) => x,
            Err(e) => return Evaluation::error(e),
        };
        let outcome = run(c, ctx, &files, &source, &mut conn, &target).await;
        let _ = conn.close().await;
        outcome
    }
}

/// Whether `url` is a PostgreSQL URL (`postgres://` or `postgresql://`): any other is
/// refused rather than tried as PostgreSQL. The message shows the scheme only.
fn postgres_url(url: &str) -> Result<(), String> {
    const EXAMPLE: &str = "postgres://user:password@host:5432/database";
    match url.trim().split_once("://") {
        Some((scheme, _))
            if scheme.eq_ignore_ascii_case("postgres")
                || scheme.eq_ignore_ascii_case("postgresql") =>
        {
            Ok(())
        }
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.len() <= 16
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!(
                "is a {scheme}:// URL; postgresMigrations applies migrations to PostgreSQL only: write a postgres:// or postgresql:// URL, e.g. {EXAMPLE}"
            ))
        }
        _ => Err(format!(
            "is not a postgres:// or postgresql:// URL; write e.g. {EXAMPLE}"
        )),
    }
}

/// The database as the messages name it (no credentials).
struct Target {
    options: PgConnectOptions,
    label: String,
    /// Values that must never appear in a message.
    secrets: Vec<Secret>,
}

/// The options to connect with, from the secret or URL and the overrides.
async fn target(c: &PostgresMigrationsCheck, ctx: &CheckContext<'_>) -> Result<Target, String> {
    let conn = &c.connection;
    let limit = ctx.budget.end();
    let mut secrets = Vec::new();
    let mut options = PgConnectOptions::new_without_pgpass();
    if let Some(r) = &conn.secret {
        let secret = secrets::resolve(ctx.services, r, limit).await?;
        let doc: Value = serde_json::from_str(secret.expose()).map_err(|_| {
            format!(
                "{} is not a JSON object; expected the RDS form {{\"host\", \"port\", \"username\", \"password\", \"dbname\"}}",
                r.describe()
            )
        })?;
        let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
        let password =
            field("password").ok_or_else(|| format!("{} has no \"password\"", r.describe()))?;
        if let Some(h) = field("host") {
            options = options.host(&h);
        }
        let port = match doc.get("port") {
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        if let Some(p) = port {
            options = options.port(p);
        }
        if let Some(u) = field("username") {
            options = options.username(&u);
        }
        if let Some(d) = field("dbname").or_else(|| field("database")) {
            options = options.database(&d);
        }
        options = options.password(&password);
        secrets.push(secret);
    } else if let Some(r) = &conn.url {
        let url = secrets::resolve(ctx.services, r, limit).await?;
        postgres_url(url.expose())
            .map_err(|e| format!("checks.{}.connection.url: {} {e}", ctx.name, r.describe()))?;
        options = PgConnectOptions::from_str(url.expose()).map_err(|_| {
            format!(
                "{} does not hold a valid PostgreSQL URL (postgres://user:password@host:port/database)",
                r.describe()
            )
        })?;
        // The password inside the URL is a secret too.
        if let Some((_, rest)) = url.expose().split_once("://")
            && let Some((userinfo, _)) = rest.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
            && !password.is_empty()
        {
            secrets.push(Secret::from_value(password));
        }
        secrets.push(url);
    }
    if let Some(h) = &conn.host {
        options = options.host(h);
    }
    if let Some(p) = conn.port {
        options = options.port(p);
    }
    if let Some(d) = &conn.database {
        options = options.database(d);
    }
    if let Some(u) = &conn.username {
        options = options.username(u);
    }
    options = options
        .ssl_mode(match c.tls {
            TlsMode::Disable => PgSslMode::Disable,
            TlsMode::Prefer => PgSslMode::Prefer,
            TlsMode::Require => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        })
        .application_name("greenlight-migrations")
        .disable_statement_logging();
    if let Some(path) = &c.root_certificate {
        let path = match std::env::var_os("LAMBDA_TASK_ROOT") {
            Some(root) if !path.starts_with('/') => std::path::PathBuf::from(root).join(path),
            _ => std::path::PathBuf::from(path),
        };
        options = options.ssl_root_cert(path);
    }
    if let Some(t) = c.statement_timeout {
        options = options.options([("statement_timeout", format!("{}", t.get().as_millis()))]);
    }
    let label = format!(
        "database {} on {}:{} as {}",
        options.get_database().unwrap_or("(default)"),
        options.get_host(),
        options.get_port(),
        options.get_username()
    );
    Ok(Target {
        options,
        label,
        secrets,
    })
}

/// Connects, reading the secret again once when the database refuses the credentials
/// (a rotated password the process had cached).
async fn connect(
    c: &PostgresMigrationsCheck,
    ctx: &CheckContext<'_>,
) -> Result<(PgConnection, Target), String> {
    let mut retried = false;
    loop {
        let t = target(c, ctx).await?;
        let attempt = tokio::time::timeout(c.connect_timeout.get(), t.options.connect()).await;
        match attempt {
            Ok(Ok(conn)) => return Ok((conn, t)),
            Err(_) => {
                return Err(format!(
                    "connecting to {} did not succeed within {} (connectTimeout): check the host, the security groups and that the function runs in the database's VPC",
                    t.label, c.connect_timeout
                ));
            }
            Ok(Err(e)) => {
                let refused = matches!(&e, sqlx::Error::Database(d) if d.code().is_some_and(|code| code == "28P01" || code == "28000"));
                if refused && !retried {
                    retried = true;
                    for r in [&c.connection.secret, &c.connection.url]
                        .into_iter()
                        .flatten()
                    {
                        secrets::forget(ctx.services, r);
                    }
                    continue;
                }
                let what = if refused {
                    "refused the credentials"
                } else {
                    "could not be reached"
                };
                return Err(redact(&format!("{} {what}: {e}", t.label), &t.secrets));
            }
        }
    }
}

/// sqlx's advisory lock key for a database (the same lock `sqlx migrate run` takes).
pub fn lock_id(database: &str) -> i64 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    0x3d32ad9e * (CRC.checksum(database.as_bytes()) as i64)
}

fn to_migration(f: &MigrationFile) -> Migration {
    Migration::new(
        f.version,
        f.description.clone().into(),
        if f.reversible {
            MigrationType::ReversibleUp
        } else {
            MigrationType::Simple
        },
        sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(f.sql.clone())),
        f.no_tx,
    )
}

/// A migration's SQL error in the file's terms: PostgreSQL's message, and the line and
/// column in the file where PostgreSQL points. (sqlx's `at line N` is the line of
/// PostgreSQL's own source code that raised the error: left out.)
fn sql_error(e: &sqlx::Error, sql: &str) -> String {
    let Some(db) = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<PgDatabaseError>())
    else {
        return e.to_string();
    };
    let mut text = db.message().to_string();
    match db.position() {
        Some(PgErrorPosition::Original(p)) => {
            if let Some((line, column)) = line_and_column(sql, p) {
                text.push_str(&format!(" at line {line}, column {column}"));
            }
        }
        Some(PgErrorPosition::Internal { position, query }) => {
            let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let clipped: String = query.chars().take(120).collect();
            let more = if clipped.len() < query.len() {
                "…"
            } else {
                ""
            };
            text.push_str(&format!(
                " (at character {position} of the statement it ran: {clipped}{more})"
            ));
        }
        None => {}
    }
    text
}

/// The 1-based line and column (in characters) of the `position`-th character of `text`
/// (1-based, as PostgreSQL counts).
fn line_and_column(text: &str, position: usize) -> Option<(usize, usize)> {
    let (mut line, mut column) = (1, 1);
    for (i, c) in text.chars().enumerate() {
        if i + 1 == position {
            return Some((line, column));
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    None
}

fn short_hex(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(6)])
}

fn label(f: &MigrationFile) -> String {
    format!("{} ({})", f.version, f.description)
}

async fn run(
    c: &PostgresMigrationsCheck,
    ctx: &CheckContext<'_>,
    files: &[MigrationFile],
    source: &Source,
    conn: &mut PgConnection,
    target: &Target,
) -> Evaluation {
    let db_error = |what: &str, e: &dyn std::fmt::Display| {
        Evaluation::error(redact(
            &format!("{what} on {} failed: {e}", target.label),
            &target.secrets,
        ))
    };
    let table = c.ledger_table.as_str();
    let database = target
        .options
        .get_database()
        .unwrap_or_default()
        .to_string();
    let database = if database.is_empty() {
        target.options.get_username().to_string()
    } else {
        database
    };

    // Only one invocation migrates at a time; the others wait for it and then find
    // nothing left to do.
    if !ctx.dry_run {
        let locked: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_id(&database))
            .fetch_one(&mut *conn)
            .await;
        match locked {
            Err(e) => return db_error("taking the migration lock", &e),
            Ok(false) => {
                return Evaluation::pending(
                    c.lock_poll_interval.get(),
                    format!(
                        "another process is applying migrations to {} (it holds advisory lock {}); waiting for it",
                        target.label,
                        lock_id(&database)
                    ),
                )
                .observed(json!({"lockHeld": true, "lockId": lock_id(&database)}));
            }
            Ok(true) => {}
        }
    }

    // The ledger: created when missing (not in a dry run).
    let exists: Result<Option<String>, _> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(table)
        .fetch_one(&mut *conn)
        .await;
    let exists = match exists {
        Ok(x) => x.is_some(),
        Err(e) => return db_error("looking for the ledger table", &e),
    };
    if !exists
        && !ctx.dry_run
        && let Err(e) = conn.ensure_migrations_table(table).await
    {
        return db_error(&format!("creating the ledger table {table}"), &e);
    }
    let applied = if exists || !ctx.dry_run {
        match conn.dirty_version(table).await {
            Ok(Some(v)) => {
                return Evaluation::fail(format!(
                    "migration {v} is marked as failed in {table} (partly applied outside a transaction): repair it by hand, then delete its row from {table}"
                ));
            }
            Ok(None) => {}
            Err(e) => return db_error(&format!("reading {table}"), &e),
        }
        match conn.list_applied_migrations(table).await {
            Ok(a) => a,
            Err(e) => return db_error(&format!("reading {table}"), &e),
        }
    } else {
        Vec::new()
    };

    // Applied migrations must not have changed.
    for a in &applied {
        if let Some(f) = files.iter().find(|f| f.version == a.version) {
            let now = to_migration(f);
            if now.checksum != a.checksum {
                return Evaluation::fail(format!(
                    "migration {} was applied with checksum {}… but {} now has checksum {}…: an applied migration must not change; restore the file as it was and put the change in a new migration",
                    label(f),
                    short_hex(&a.checksum),
                    f.name,
                    short_hex(&now.checksum)
                ))
                .observed(json!({"version": f.version, "file": f.name, "appliedChecksum": hex::encode(&a.checksum), "fileChecksum": hex::encode(&now.checksum)}));
            }
        }
    }
    let unknown: Vec<i64> = applied
        .iter()
        .filter(|a| !files.iter().any(|f| f.version == a.version))
        .map(|a| a.version)
        .collect();
    let pending: Vec<&MigrationFile> = files
        .iter()
        .filter(|f| !applied.iter().any(|a| a.version == f.version))
        .collect();

    let findings: Vec<Finding> = guard::scan(
        &pending
            .iter()
            .map(|f| Pending {
                name: &f.name,
                version: f.version,
                sql: &f.sql,
            })
            .collect::<Vec<_>>(),
    );
    let blocking: Vec<&Finding> = findings.iter().filter(|f| !f.acknowledged).collect();
    let mut observed = json!({
        "database": target.label,
        "ledgerTable": table,
        "source": source.describe(),
        "alreadyApplied": applied.len(),
        "pending": pending.iter().map(|f| json!({"version": f.version, "description": f.description, "file": f.name, "transaction": !f.no_tx})).collect::<Vec<_>>(),
        "destructive": findings,
    });
    if !unknown.is_empty() {
        observed["appliedNotInSource"] = json!(unknown);
    }
    let expected = json!({"destructive": c.destructive, "dryRun": ctx.dry_run});
    let ahead = if unknown.is_empty() {
        String::new()
    } else {
        format!(
            "; the database is ahead of this revision (applied, not in its files: {}), which is expected when an older revision is deployed again",
            unknown
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let list_findings = |fs: &[&Finding]| {
        fs.iter()
            .map(|f| format!("{}: {}", f.migration, f.why))
            .collect::<Vec<_>>()
            .join("; ")
    };

    if pending.is_empty() {
        return Evaluation::pass(format!(
            "{} is up to date: {} migrations applied, none pending{ahead}",
            target.label,
            applied.len()
        ))
        .observed(observed)
        .expected(expected);
    }
    let names = pending
        .iter()
        .map(|f| label(f))
        .collect::<Vec<_>>()
        .join(", ");

    if !blocking.is_empty() && c.destructive == DestructivePolicy::Fail && !ctx.dry_run {
        return Evaluation::fail(format!(
            "nothing applied: {} statement(s) the previous revision cannot survive: {}. Instead use {EXPAND_CONTRACT}",
            blocking.len(),
            list_findings(&blocking)
        ))
        .observed(observed)
        .expected(expected);
    }
    if ctx.dry_run {
        let mut reason = format!(
            "dry run: would apply {} migration(s) to {}: {names}",
            pending.len(),
            target.label
        );
        if !blocking.is_empty() {
            reason.push_str(&format!(
                "; destructive (destructive: {}): {}",
                serde_json::to_value(c.destructive)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or(""),
                list_findings(&blocking)
            ));
        }
        return Evaluation::pass(reason + &ahead)
            .observed(observed)
            .expected(expected);
    }

    // Apply, one transaction per migration; stop early (and carry on in the next
    // invocation) rather than be cut off by the Lambda deadline.
    let started = Instant::now();
    let mut done = Vec::new();
    for f in &pending {
        let slowest = done
            .iter()
            .map(|(_, ms): &(String, u64)| Duration::from_millis(*ms))
            .max()
            .unwrap_or(Duration::ZERO);
        if !done.is_empty() && ctx.budget.remaining() < slowest * 2 + Duration::from_secs(1) {
            observed["applied"] = json!(
                done.iter()
                    .map(|(n, ms)| json!({"migration": n, "ms": ms}))
                    .collect::<Vec<_>>()
            );
            return Evaluation::pending(
                Duration::from_secs(1),
                format!(
                    "applied {} of {} migrations; the rest continue in the next invocation (little time left in this one)",
                    done.len(),
                    pending.len()
                ),
            )
            .observed(observed)
            .expected(expected);
        }
        let m = to_migration(f);
        match conn.apply(table, &m).await {
            Ok(took) => done.push((label(f), crate::duration::millis(took))),
            Err(e) => {
                let detail = match &e {
                    MigrateError::ExecuteMigration(inner, _) => sql_error(inner, &f.sql),
                    other => other.to_string(),
                };
                let before = if done.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; applied before it: {}",
                        done.iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let rollback = if f.no_tx {
                    "it ran outside a transaction (-- no-transaction), so part of it may be applied"
                } else {
                    "its transaction was rolled back, nothing of it is applied"
                };
                observed["applied"] = json!(
                    done.iter()
                        .map(|(n, ms)| json!({"migration": n, "ms": ms}))
                        .collect::<Vec<_>>()
                );
                observed["failed"] = json!({"migration": f.name, "version": f.version, "error": redact(&detail, &target.secrets)});
                return Evaluation::fail(redact(
                    &format!(
                        "migration {} ({}) failed: {detail}; {rollback}{before}",
                        label(f),
                        f.name
                    ),
                    &target.secrets,
                ))
                .observed(observed)
                .expected(expected);
            }
        }
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock_id(&database))
        .execute(&mut *conn)
        .await;
    observed["applied"] = json!(
        done.iter()
            .map(|(n, ms)| json!({"migration": n, "ms": ms}))
            .collect::<Vec<_>>()
    );
    let mut reason = format!(
        "applied {} migration(s) to {} in {} ms: {names}",
        done.len(),
        target.label,
        started.elapsed().as_millis()
    );
    if !findings.is_empty() && c.destructive == DestructivePolicy::Warn {
        let all: Vec<&Finding> = findings.iter().collect();
        reason.push_str(&format!(
            "; warning, the previous revision may not survive: {}",
            list_findings(&all)
        ));
    }
    Evaluation::pass(reason + &ahead)
        .observed(observed)
        .expected(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_lines_and_columns_in_characters() {
        let sql = "-- été\nSELECT 1;\n  SELEC";
        assert_eq!(line_and_column(sql, 1), Some((1, 1)));
        assert_eq!(line_and_column(sql, 7), Some((1, 7)));
        assert_eq!(line_and_column(sql, 8), Some((2, 1)));
        assert_eq!(line_and_column(sql, 20), Some((3, 3)));
        assert_eq!(line_and_column(sql, 0), None);
        assert_eq!(line_and_column(sql, 99), None);
    }

    #[test]
    fn only_postgres_urls() {
        assert!(postgres_url("postgres://u:p@h/d").is_ok());
        assert!(postgres_url("PostgreSQL://u:p@h/d").is_ok());
        let e = postgres_url("mysql://u:secret@h/d").unwrap_err();
        assert!(
            e.starts_with("is a mysql:// URL") && !e.contains("secret"),
            "{e}"
        );
        let e = postgres_url("secret-password").unwrap_err();
        assert!(
            e.starts_with("is not a postgres://") && !e.contains("secret-password"),
            "{e}"
        );
    }
}
