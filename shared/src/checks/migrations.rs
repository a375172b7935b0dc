//! What the two migration kinds share: the migration files, read from a directory or an
//! S3 prefix. Migrations are a deployment step, run by the after-install hook: SQL files
//! applied to PostgreSQL ([`super::postgres_migrations`]), or a one-off ECS task from the
//! new revision ([`super::migration_task`]). Both run once per deployment however often
//! the hook is invoked.

use std::path::{Path, PathBuf};

use crate::budget::Budget;
use crate::services::{Services, aws_error};

/// One versioned migration file, named as `sqlx migrate` names them:
/// `<VERSION>_<DESCRIPTION>.sql` or `<VERSION>_<DESCRIPTION>.up.sql` (`.down.sql` files
/// are not applied by a deployment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationFile {
    pub version: i64,
    /// The description as sqlx records it: the name's words, `_` read as a space.
    pub description: String,
    /// The file name.
    pub name: String,
    pub sql: String,
    /// `.up.sql` (a reversible migration's up half).
    pub reversible: bool,
    /// The file opts out of the per-migration transaction (`-- no-transaction` first).
    pub no_tx: bool,
}

/// Where the migration files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A directory: absolute, or relative to the function's package (`LAMBDA_TASK_ROOT`,
    /// else the working directory).
    Dir(PathBuf),
    /// The `.sql` objects directly under an S3 prefix.
    S3 { bucket: String, prefix: String },
}

impl Source {
    pub fn parse(text: &str) -> Result<Source, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is empty; expected a directory (e.g. \"migrations\") or an S3 prefix (\"s3://bucket/prefix/\")".into());
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "{text:?} names no bucket; expected s3://bucket/prefix/"
                ));
            }
            let mut prefix = prefix.to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            return Ok(Source::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if text.contains("://") {
            return Err(format!(
                "{text:?} is neither a directory nor an s3:// prefix"
            ));
        }
        Ok(Source::Dir(PathBuf::from(text)))
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Dir(p) => format!("directory {}", resolve_dir(p).display()),
            Source::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

fn resolve_dir(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::var_os("LAMBDA_TASK_ROOT") {
        Some(root) => PathBuf::from(root).join(p),
        None => p.to_path_buf(),
    }
}

/// Reads the migrations, sorted by version.
pub async fn load(
    source: &Source,
    services: &Services,
    budget: &Budget,
) -> Result<Vec<MigrationFile>, String> {
    let files = match source {
        Source::Dir(p) => {
            let dir = resolve_dir(p);
            let read = tokio::task::spawn_blocking(move || read_dir(&dir))
                .await
                .map_err(|e| format!("reading the migration directory failed: {e}"))?;
            read?
        }
        Source::S3 { bucket, prefix } => {
            match budget.run(read_s3(services, bucket, prefix)).await {
                Some(r) => r?,
                None => {
                    return Err(format!(
                        "reading s3://{bucket}/{prefix} did not finish within the invocation's budget"
                    ));
                }
            }
        }
    };
    parse_files(files, &source.describe())
}

fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read the migration directory {}: {e} (a relative path is taken from the function's package root)",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".sql") {
            continue;
        }
        let sql = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        files.push((name, sql));
    }
    Ok(files)
}

/// The largest migration file read from S3.
pub const MAX_S3_FILE_BYTES: usize = 16 << 20;
/// The most read from S3 for one evaluation, all files together.
pub const MAX_S3_TOTAL_BYTES: usize = 64 << 20;

async fn read_s3(
    services: &Services,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, String> {
    let s3 = services.s3().await;
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    &format!("S3 ListObjectsV2 of s3://{bucket}/{prefix}"),
                    "s3:ListBucket on the bucket",
                    &e,
                )
            })?;
        for o in out.contents() {
            if let Some(key) = o.key() {
                let rest = &key[prefix.len().min(key.len())..];
                if !rest.contains('/') && rest.ends_with(".sql") {
                    keys.push(key.to_string());
                }
            }
        }
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut files = Vec::new();
    let mut total = 0usize;
    for key in keys {
        let mut out = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    &format!("S3 GetObject of s3://{bucket}/{key}"),
                    "s3:GetObject on the prefix",
                    &e,
                )
            })?;
        // Files are held in memory: each and all of them together are bounded, and read
        // no further than the bound.
        let too_big = |what: String| {
            format!(
                "{what}: migration files are read into the function's memory, at most {} MiB each and {} MiB in all; split the migration or apply it outside the deployment",
                MAX_S3_FILE_BYTES >> 20,
                MAX_S3_TOTAL_BYTES >> 20
            )
        };
        let room = MAX_S3_FILE_BYTES.min(MAX_S3_TOTAL_BYTES - total);
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk.map_err(|e| format!("reading s3://{bucket}/{key} failed: {e}"))?;
            if bytes.len() + chunk.len() > room {
                return Err(too_big(if room == MAX_S3_FILE_BYTES {
                    format!("s3://{bucket}/{key} is larger than {} MiB", room >> 20)
                } else {
                    format!(
                        "the files under s3://{bucket}/{prefix} come to more than {} MiB",
                        MAX_S3_TOTAL_BYTES >> 20
                    )
                }));
            }
            bytes.extend_from_slice(&chunk);
        }
        total += bytes.len();
        let sql = String::from_utf8(bytes)
            .map_err(|_| format!("s3://{bucket}/{key} is not UTF-8 text"))?;
        let name = key.rsplit('/').next().unwrap_or(&key).to_string();
        files.push((name, sql));
    }
    Ok(files)
}

/// Names and contents → migrations, sorted by version; the same rules as `sqlx migrate`.
pub fn parse_files(files: Vec<(String, String)>, from: &str) -> Result<Vec<MigrationFile>, String> {
    let mut out: Vec<MigrationFile> = Vec::new();
    for (name, sql) in files {
        if name.ends_with(".down.sql") {
            continue;
        }
        let Some((version, rest)) = name.split_once('_') else {
            continue;
        };
        if !rest.ends_with(".sql") {
            continue;
        }
        let version: i64 = version.parse().map_err(|_| {
            format!(
                "migration file {name:?} in {from} does not start with a version number (expected e.g. 20250101120000_create_users.sql)"
            )
        })?;
        let reversible = rest.ends_with(".up.sql");
        let description = rest
            .trim_end_matches(if reversible { ".up.sql" } else { ".sql" })
            .replace('_', " ");
        if let Some(other) = out.iter().find(|m| m.version == version) {
            return Err(format!(
                "migration files {:?} and {name:?} in {from} have the same version {version}",
                other.name
            ));
        }
        out.push(MigrationFile {
            version,
            description,
            no_tx: sql.starts_with("-- no-transaction"),
            name,
            sql,
            reversible,
        });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse("s3://b/p").unwrap(),
            Source::S3 {
                bucket: "b".into(),
                prefix: "p/".into()
            }
        );
        assert_eq!(
            Source::parse("s3://b").unwrap(),
            Source::S3 {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Source::parse("migrations").unwrap(),
            Source::Dir("migrations".into())
        );
        assert!(Source::parse("s3:///p").is_err());
        assert!(Source::parse("https://x/y").is_err());
        assert!(Source::parse(" ").is_err());
    }

    #[test]
    fn files_are_named_as_sqlx_names_them() {
        let files = vec![
            (
                "2_add_nick.up.sql".to_string(),
                "ALTER TABLE u ADD nick text;".to_string(),
            ),
            (
                "2_add_nick.down.sql".to_string(),
                "ALTER TABLE u DROP nick;".to_string(),
            ),
            (
                "1_create_users.sql".to_string(),
                "-- no-transaction\nCREATE TABLE u();".to_string(),
            ),
            ("README.sql".to_string(), "".to_string()),
        ];
        let m = parse_files(files, "test").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].version, m[0].description.as_str(), m[0].no_tx),
            (1, "create users", true)
        );
        assert_eq!(
            (m[1].version, m[1].description.as_str(), m[1].reversible),
            (2, "add nick", true)
        );
        let bad = parse_files(vec![("v1_x.sql".into(), "".into())], "test").unwrap_err();
        assert!(bad.contains("v1_x.sql"), "{bad}");
        let dup = parse_files(
            vec![
                ("1_a.sql".into(), "".into()),
                ("01_b.sql".into(), "".into()),
            ],
            "test",
        )
        .unwrap_err();
        assert!(dup.contains("same version 1"), "{dup}");
    }
}
