//! `postgresMigrations` against a real PostgreSQL server (started by the test support on a
//! free port), and with its connection read from Secrets Manager and files from S3 in the
//! moto emulator.

use crate::support;

use std::path::Path;
use std::time::Duration;

use greenlight::Services;
use greenlight::handle;
use greenlight::role::Role;
use serde_json::{Value, json};
use sqlx::Connection;
use support::*;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

fn post_scale_up(check: Value) -> Value {
    let mut ev = event("ecs-post-scale-up.json");
    ev["hookDetails"] = json!({"greenlight": {"checks": {"migrate": check}}});
    ev
}

fn check(dir: &Path, url: &str) -> Value {
    json!({
        "type": "postgresMigrations",
        "source": dir.to_str().unwrap(),
        "connection": {"url": url},
        "tls": "disable",
        "lockPollInterval": "200ms"
    })
}

async fn run(services: &Services, ev: &Value) -> Value {
    handle(
        services,
        Role::AfterInstall,
        ev,
        deadline_in(Duration::from_secs(60)),
    )
    .await
    .unwrap()
}

/// One evaluation of the check outside the handler, for its evidence (`observed`), which
/// the answer leaves out.
async fn evaluate(services: &Services, check: Value) -> greenlight::verdict::Evaluation {
    use greenlight::checks::CheckContext;
    let cfg = greenlight::config::parse(&json!({"checks": {"migrate": check}})).unwrap();
    let c = &cfg.checks[0];
    let greenlight::protocol::Invocation::Ecs(e) =
        greenlight::protocol::parse(&event("ecs-post-scale-up.json")).unwrap()
    else {
        unreachable!("an ECS event")
    };
    let deployment = greenlight::deployment::Deployment::from_ecs(Role::AfterInstall, &e);
    let facts = greenlight::facts::Facts::new();
    let ctx = CheckContext {
        deployment: &deployment,
        services,
        budget: greenlight::budget::Budget::of(Duration::from_secs(30)),
        facts: &facts,
        name: &c.name,
        dry_run: c.common.dry_run,
    };
    c.kind.evaluate(&ctx, &Value::Null).await
}

async fn scalar(url: &str, sql: &'static str) -> Option<i64> {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

async fn ledger(url: &str) -> Vec<i64> {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut c)
        .await
        .unwrap_or_default()
}

const CREATE_USERS: &str = "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);";
const ADD_NICK: &str =
    "ALTER TABLE users ADD COLUMN nick text;\nCREATE INDEX users_nick ON users (nick);";
const SEED: &str = "INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com');";

#[tokio::test]
async fn fresh_apply_then_a_rerun_applies_nothing() {
    let url = Postgres::get().database("fresh").await;
    let dir = scratch_dir("fresh");
    write(
        &dir,
        &[
            ("20250101000001_create_users.sql", CREATE_USERS),
            ("20250101000002_add_nick.up.sql", ADD_NICK),
            (
                "20250101000002_add_nick.down.sql",
                "ALTER TABLE users DROP COLUMN nick;",
            ),
            ("20250101000003_seed.sql", SEED),
        ],
    );
    let services = services_with(None);
    let ev = post_scale_up(check(&dir, &url));

    let a = run(&services, &ev).await;
    assert_eq!(status(&a), "SUCCEEDED", "{a:#}");
    assert!(
        reason(&a).contains("applied 3 migration(s)"),
        "{}",
        reason(&a)
    );
    assert_eq!(
        ledger(&url).await,
        [20250101000001, 20250101000002, 20250101000003]
    );
    assert_eq!(scalar(&url, "SELECT count(*) FROM users").await, Some(2));

    let again = run(&services, &ev).await;
    assert_eq!(status(&again), "SUCCEEDED", "{again:#}");
    assert!(
        reason(&again).contains("up to date: 3 migrations applied, none pending"),
        "{}",
        reason(&again)
    );
    assert_eq!(
        scalar(&url, "SELECT count(*) FROM users").await,
        Some(2),
        "the seed ran once"
    );

    // The ledger is sqlx's: `sqlx migrate run` would see the same checksums.
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let (desc, checksum): (String, Vec<u8>) = sqlx::query_as(
        "SELECT description, checksum FROM _sqlx_migrations WHERE version = 20250101000002",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(desc, "add nick");
    use sha2::Digest;
    assert_eq!(checksum, sha2::Sha384::digest(ADD_NICK).to_vec());
}

#[tokio::test]
async fn ten_concurrent_invocations_apply_each_migration_once() {
    let url = Postgres::get().database("concurrent").await;
    let dir = scratch_dir("concurrent");
    write(
        &dir,
        &[
            ("1_create_log.sql", "CREATE TABLE applied_log (n int);"),
            (
                "2_slow_insert.sql",
                "INSERT INTO applied_log VALUES (2); SELECT pg_sleep(0.5);",
            ),
            ("3_insert.sql", "INSERT INTO applied_log VALUES (3);"),
        ],
    );
    let services = services_with(None);
    let ev = post_scale_up(check(&dir, &url));
    let answers = futures::future::join_all((0..10).map(|_| run(&services, &ev))).await;
    for a in &answers {
        assert_eq!(status(a), "SUCCEEDED", "{a:#}");
    }
    assert_eq!(ledger(&url).await, [1, 2, 3]);
    assert_eq!(
        scalar(&url, "SELECT count(*) FROM applied_log").await,
        Some(2)
    );
    let appliers = answers
        .iter()
        .filter(|a| reason(a).contains("applied 3 migration(s)"))
        .count();
    assert_eq!(
        appliers, 1,
        "exactly one invocation applied; the others found nothing to do"
    );
}

#[tokio::test]
async fn a_failing_migration_fails_with_the_sql_error_and_leaves_nothing_half_applied() {
    let url = Postgres::get().database("failing").await;
    let dir = scratch_dir("failing");
    write(
        &dir,
        &[
            ("1_create_users.sql", CREATE_USERS),
            (
                "2_broken.sql",
                "CREATE TABLE half (id int);\nINSERT INTO no_such_table VALUES (1);",
            ),
            ("3_later.sql", "CREATE TABLE later (id int);"),
        ],
    );
    let services = services_with(None);
    let ev = post_scale_up(check(&dir, &url));
    let a = run(&services, &ev).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(r.contains("migration 2 (broken)"), "{r}");
    assert!(
        r.contains("relation \"no_such_table\" does not exist"),
        "{r}"
    );
    assert!(r.contains("rolled back, nothing of it is applied"), "{r}");
    assert!(r.contains("applied before it: 1 (create users)"), "{r}");
    assert_eq!(ledger(&url).await, [1]);
    assert_eq!(
        scalar(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('half', 'later')"
        )
        .await,
        Some(0)
    );

    // Fixed, the next deployment applies the rest.
    write(&dir, &[("2_broken.sql", "CREATE TABLE half (id int);")]);
    let b = run(&services, &ev).await;
    assert_eq!(status(&b), "SUCCEEDED", "{b:#}");
    assert_eq!(ledger(&url).await, [1, 2, 3]);
}

/// PostgreSQL's error position becomes a line and column of the migration file (counted
/// in characters, as PostgreSQL counts); the line of PostgreSQL's own source code that
/// raised the error (sqlx's `at line 1188`) is not shown.
#[tokio::test]
async fn a_syntax_error_names_the_line_and_column_in_the_file() {
    let url = Postgres::get().database("position").await;
    let dir = scratch_dir("position");
    write(
        &dir,
        &[(
            "1_typo.sql",
            "-- créé à l'été\nCREATE TABLE a (id int);\nCREATE TABLE b (id int); SELEC 1;\n",
        )],
    );
    let a = run(&services_with(None), &post_scale_up(check(&dir, &url))).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("failed: syntax error at or near \"SELEC\" at line 3, column 26;"),
        "{r}"
    );
    assert_eq!(r.matches(" at line ").count(), 1, "{r}");
    assert_eq!(ledger(&url).await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_changed_applied_file_fails_with_the_checksum_message() {
    let url = Postgres::get().database("checksum").await;
    let dir = scratch_dir("checksum");
    write(&dir, &[("1_create_users.sql", CREATE_USERS)]);
    let services = services_with(None);
    let ev = post_scale_up(check(&dir, &url));
    assert_eq!(status(&run(&services, &ev).await), "SUCCEEDED");

    write(
        &dir,
        &[
            (
                "1_create_users.sql",
                "CREATE TABLE users (id bigserial PRIMARY KEY, email text);",
            ),
            ("2_more.sql", "CREATE TABLE more (id int);"),
        ],
    );
    let a = run(&services, &ev).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    let r = reason(&a);
    assert!(
        r.contains("migration 1 (create users) was applied with checksum"),
        "{r}"
    );
    assert!(r.contains("an applied migration must not change"), "{r}");
    assert_eq!(ledger(&url).await, [1], "nothing else was applied");
}

#[tokio::test]
async fn the_destructive_statement_guard_in_each_mode() {
    let dir = scratch_dir("guard");
    write(
        &dir,
        &[("1_create_users.sql", CREATE_USERS), ("2_seed.sql", SEED)],
    );
    let services = services_with(None);
    let drop_email = ("3_drop_email.sql", "ALTER TABLE users DROP COLUMN email;");

    for mode in ["fail", "warn", "allow"] {
        let url = Postgres::get().database(&format!("guard_{mode}")).await;
        let d = scratch_dir(&format!("guard-{mode}"));
        write(
            &d,
            &[("1_create_users.sql", CREATE_USERS), ("2_seed.sql", SEED)],
        );
        let mut c = check(&d, &url);
        c["destructive"] = json!(mode);
        let ev = post_scale_up(c.clone());
        assert_eq!(status(&run(&services, &ev).await), "SUCCEEDED");
        write(&d, &[drop_email]);
        let (a, ev_direct) = if mode == "allow" {
            // Through the evaluation, for the evidence the answer leaves out.
            let e = evaluate(&services, c).await;
            (Value::Null, Some(e))
        } else {
            (run(&services, &ev).await, None)
        };
        let r = reason(&a);
        let columns = scalar(
            &url,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'",
        )
        .await;
        match mode {
            "fail" => {
                assert_eq!(status(&a), "FAILED", "{a:#}");
                assert!(r.contains("nothing applied"), "{r}");
                assert!(
                    r.contains("3_drop_email.sql: drops column users.email"),
                    "{r}"
                );
                assert!(r.contains("expand/contract"), "{r}");
                assert_eq!(columns, Some(1));
                assert_eq!(ledger(&url).await, [1, 2]);
            }
            "warn" => {
                assert_eq!(status(&a), "SUCCEEDED", "{a:#}");
                assert!(r.contains("warning, the previous revision may not survive: 3_drop_email.sql: drops column users.email"), "{r}");
                assert_eq!(columns, Some(0));
            }
            _ => {
                let e = ev_direct.unwrap();
                assert_eq!(e.outcome, greenlight::verdict::Outcome::Pass, "{e:?}");
                assert!(!e.reason.contains("warning"), "{}", e.reason);
                assert_eq!(e.observed["destructive"][0]["rule"], "dropColumn");
                assert_eq!(
                    e.observed["destructive"][0]["migration"],
                    "3_drop_email.sql"
                );
                assert_eq!(columns, Some(0));
            }
        }
    }

    // Acknowledged in the file: accepted under the default policy.
    let url = Postgres::get().database("guard_ack").await;
    assert_eq!(
        status(&run(&services, &post_scale_up(check(&dir, &url))).await),
        "SUCCEEDED"
    );
    write(
        &dir,
        &[(
            "3_drop_email.sql",
            "-- greenlight:allow-destructive: no revision reads email since 2025-01\nALTER TABLE users DROP COLUMN email;",
        )],
    );
    let e = evaluate(&services, check(&dir, &url)).await;
    assert_eq!(e.outcome, greenlight::verdict::Outcome::Pass, "{e:?}");
    assert_eq!(e.observed["destructive"][0]["acknowledged"], true);
    assert_eq!(ledger(&url).await, [1, 2, 3]);
}

#[tokio::test]
async fn dry_run_lists_what_would_be_applied_and_changes_nothing() {
    let url = Postgres::get().database("dryrun").await;
    let dir = scratch_dir("dryrun");
    write(
        &dir,
        &[
            ("1_create_users.sql", CREATE_USERS),
            ("2_drop.sql", "DROP TABLE legacy_users;"),
        ],
    );
    let mut c = check(&dir, &url);
    c["dryRun"] = json!(true);
    let a = run(&services_with(None), &post_scale_up(c)).await;
    assert_eq!(status(&a), "SUCCEEDED", "{a:#}");
    let r = reason(&a);
    assert!(r.contains("dry run: would apply 2 migration(s)"), "{r}");
    assert!(r.contains("1 (create users), 2 (drop)"), "{r}");
    assert!(r.contains("DROP TABLE legacy_users"), "{r}");
    assert_eq!(
        scalar(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('users', '_sqlx_migrations')"
        )
        .await,
        Some(0)
    );
}

#[tokio::test]
async fn connection_from_secrets_manager_files_from_s3_and_a_wrong_password_never_shown() {
    let pg = Postgres::get();
    let url = pg.database("secrets").await;
    let moto = Moto::start();
    let wrong = "Wr0ng-Secret-Passw0rd-77";
    let seeded = moto.seed(&format!(
        r#"
sm = boto3.client('secretsmanager', **KW)
good = sm.create_secret(Name='db-good', SecretString=json.dumps({{"engine": "postgres", "host": "{host}", "port": {port}, "username": "{user}", "password": "{password}", "dbname": "secrets"}}))['ARN']
bad = sm.create_secret(Name='db-bad', SecretString=json.dumps({{"engine": "postgres", "host": "{host}", "port": {port}, "username": "{user}", "password": "{wrong}", "dbname": "secrets"}}))['ARN']
s3 = boto3.client('s3', **KW)
s3.create_bucket(Bucket='releases', CreateBucketConfiguration={{'LocationConstraint': 'us-west-2'}})
s3.put_object(Bucket='releases', Key='app/migrations/1_create_users.sql', Body={create:?})
s3.put_object(Bucket='releases', Key='app/migrations/2_seed.sql', Body={seed:?})
s3.put_object(Bucket='releases', Key='app/migrations/README.md', Body='not a migration')
s3.put_object(Bucket='releases', Key='app/migrations/old/9_ignored.sql', Body='SELECT 1/0;')
print(json.dumps({{"good": good, "bad": bad}}))
"#,
        host = pg.host,
        port = pg.port,
        user = pg.user,
        password = pg.password,
        create = CREATE_USERS,
        seed = SEED,
    ));
    let services = moto.services().await;
    let check = |secret: &Value| {
        json!({
            "type": "postgresMigrations",
            "source": "s3://releases/app/migrations",
            "connection": {"secret": {"secretArn": secret}},
            "tls": "disable",
        })
    };

    let bad = run(&services, &post_scale_up(check(&seeded["bad"]))).await;
    assert_eq!(status(&bad), "FAILED", "{bad:#}");
    let r = reason(&bad);
    assert!(r.contains("refused the credentials"), "{r}");
    assert!(r.contains("database secrets on"), "{r}");
    assert!(
        !bad.to_string().contains(wrong),
        "the password appears in the answer: {bad:#}"
    );
    assert!(!bad.to_string().contains(&pg.password));

    let good = run(&services, &post_scale_up(check(&seeded["good"]))).await;
    assert_eq!(status(&good), "SUCCEEDED", "{good:#}");
    assert!(
        reason(&good).contains("applied 2 migration(s)"),
        "{}",
        reason(&good)
    );
    assert_eq!(ledger(&url).await, [1, 2]);
    assert!(!good.to_string().contains(&pg.password));
}

#[tokio::test]
async fn the_tls_mode_is_applied() {
    // The test server has no certificate: `require` cannot connect, `prefer` falls back.
    let url = Postgres::get().database("tls").await;
    let dir = scratch_dir("tls");
    write(&dir, &[("1_create_users.sql", CREATE_USERS)]);
    let services = services_with(None);
    let mut c = check(&dir, &url);
    c["tls"] = json!("require");
    let a = run(&services, &post_scale_up(c.clone())).await;
    assert_eq!(status(&a), "FAILED", "{a:#}");
    assert!(reason(&a).contains("TLS"), "{}", reason(&a));
    assert!(ledger(&url).await.is_empty());
    c["tls"] = json!("prefer");
    let b = run(&services, &post_scale_up(c)).await;
    assert_eq!(status(&b), "SUCCEEDED", "{b:#}");
}

#[tokio::test]
async fn misconfiguration_fails_closed_naming_the_field() {
    let dir = scratch_dir("misconfig");
    let services = services_with(None);
    let mut both = check(&dir, "postgres://x@127.0.0.1:1/db");
    both["connection"]["secret"] = json!({"ssmParameter": "/db"});
    let a = run(&services, &post_scale_up(both)).await;
    assert_eq!(status(&a), "FAILED");
    assert!(
        reason(&a).contains("checks.migrate.connection"),
        "{}",
        reason(&a)
    );

    let mut ledger = check(&dir, "postgres://x@127.0.0.1:1/db");
    ledger["ledgerTable"] = json!("x; DROP TABLE users");
    let a = run(&services, &post_scale_up(ledger)).await;
    assert_eq!(status(&a), "FAILED");
    assert!(
        reason(&a).contains("checks.migrate.ledgerTable"),
        "{}",
        reason(&a)
    );

    // Only PostgreSQL URLs: another database's is refused, not tried as PostgreSQL.
    for (url, said) in [
        ("mysql://app:pw@127.0.0.1:3306/app", "is a mysql:// URL"),
        (
            "127.0.0.1:5432/app",
            "is not a postgres:// or postgresql:// URL",
        ),
    ] {
        let a = run(&services, &post_scale_up(check(&dir, url))).await;
        assert_eq!(status(&a), "FAILED");
        let r = reason(&a);
        assert!(
            r.contains("checks.migrate.connection.url") && r.contains(said),
            "{r}"
        );
        assert!(!r.contains("pw@"), "{r}");
    }
    for url in [
        "postgres://x@127.0.0.1:1/db",
        "postgresql://x@127.0.0.1:1/db",
    ] {
        let cfg = greenlight::config::parse(&json!({"checks": {"migrate": check(&dir, url)}}));
        assert!(cfg.is_ok(), "{url}: {:?}", cfg.err());
    }

    // Unreachable: an error of the check, failing closed by default, with the database named.
    write(&dir, &[("1_a.sql", "SELECT 1;")]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = check(
        &dir,
        &format!("postgres://app:hunter2-secret@127.0.0.1:{port}/app"),
    );
    unreachable["connectTimeout"] = json!("2s");
    let a = run(&services, &post_scale_up(unreachable)).await;
    assert_eq!(status(&a), "FAILED");
    let r = reason(&a);
    assert!(
        r.contains("could not run") && r.contains("database app on 127.0.0.1"),
        "{r}"
    );
    assert!(!r.contains("hunter2-secret"), "{r}");
}

/// Migration files from S3 are read into memory: a file past the bound is refused, read no
/// further than the bound.
#[tokio::test]
async fn an_oversized_migration_file_in_s3_is_refused() {
    let moto = Moto::start();
    moto.seed(
        r#"
s3 = boto3.client('s3', **KW)
s3.create_bucket(Bucket='big', CreateBucketConfiguration={'LocationConstraint': 'us-west-2'})
s3.put_object(Bucket='big', Key='m/1_small.sql', Body='SELECT 1;')
s3.put_object(Bucket='big', Key='m/2_huge.sql', Body=b'-' * (17 << 20))
print(json.dumps(None))
"#,
    );
    let services = moto.services().await;
    let ev = evaluate(
        &services,
        json!({
            "type": "postgresMigrations",
            "source": "s3://big/m/",
            "connection": {"url": "postgres://x@127.0.0.1:1/db"},
            "tls": "disable",
        }),
    )
    .await;
    assert_eq!(ev.outcome, greenlight::verdict::Outcome::Error, "{ev:?}");
    assert!(
        ev.reason
            .contains("s3://big/m/2_huge.sql is larger than 16 MiB: migration files are read into the function's memory"),
        "{}",
        ev.reason
    );
}
