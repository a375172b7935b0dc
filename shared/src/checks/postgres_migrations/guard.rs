//! The rollback-safety guard: finds statements in pending migrations that the previous
//! revision cannot survive. During a blue/green deployment both revisions run against the
//! same database, and a rollback sends all traffic back to the old one; a migration that
//! drops, renames or tightens what the old code uses breaks it at once.
//!
//! The scan is lexical: comments, string literals and dollar-quoted bodies are removed,
//! statements are split at top-level `;`, and each is matched against a small set of
//! rules. A table created by the same set of pending migrations is new: nothing old uses
//! it, so changes to it are not reported.

use std::collections::HashSet;

use serde::Serialize;

/// The annotation that acknowledges a file's destructive statements.
pub const ALLOW_ANNOTATION: &str = "greenlight:allow-destructive";

/// One statement an older revision cannot survive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The migration file.
    pub migration: String,
    pub version: i64,
    /// `dropTable`, `dropColumn`, `rename`, `setNotNull`, `addColumnNotNull`,
    /// `alterColumnType`, `truncate`, `dropObject`.
    pub rule: &'static str,
    /// The statement, whitespace collapsed, shortened to 200 characters.
    pub statement: String,
    /// Why the previous revision breaks.
    pub why: String,
    /// True when the file carries `-- greenlight:allow-destructive`.
    pub acknowledged: bool,
}

/// The expand/contract advice given with findings.
pub const EXPAND_CONTRACT: &str = "expand/contract: make this release only add (new tables, nullable columns or columns with defaults, new names beside the old ones) and stop using what is to go; remove or tighten it in a later deployment, once no running revision needs it. To accept a statement deliberately, add the comment `-- greenlight:allow-destructive` to its file, or set destructive to warn or allow";

/// A pending migration to scan.
pub struct Pending<'a> {
    pub name: &'a str,
    pub version: i64,
    pub sql: &'a str,
}

/// Scans pending migrations in order.
pub fn scan(pending: &[Pending<'_>]) -> Vec<Finding> {
    let mut created: HashSet<String> = HashSet::new();
    let mut findings = Vec::new();
    for m in pending {
        let acknowledged = m.sql.contains(ALLOW_ANNOTATION);
        for statement in statements(m.sql) {
            let tokens = tokenize(&statement);
            if let Some(name) = created_table(&tokens) {
                created.insert(name);
            }
            for (rule, why) in check(&tokens, &created) {
                findings.push(Finding {
                    migration: m.name.to_string(),
                    version: m.version,
                    rule,
                    statement: shorten(&statement),
                    why,
                    acknowledged,
                });
            }
        }
    }
    findings
}

fn shorten(s: &str) -> String {
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > 200 {
        let cut: String = collapsed.chars().take(199).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

/// Splits SQL into statements with comments removed and literals blanked (`''`).
pub fn statements(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    let mut depth = 0i32;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                cur.push(' ');
                continue;
            }
            '/' if next == Some('*') => {
                let mut nest = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        nest += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                cur.push(' ');
                continue;
            }
            '\'' => {
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    // E'…' strings escape quotes with a backslash.
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                cur.push_str("''");
                continue;
            }
            '"' => {
                cur.push('"');
                i += 1;
                while i < chars.len() {
                    cur.push(chars[i]);
                    if chars[i] == '"' {
                        if chars.get(i + 1) == Some(&'"') {
                            cur.push('"');
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            '$' => {
                // A dollar-quote opener: $$ or $tag$ (tag: letters, digits, underscores, not
                // starting with a digit, so that $1 parameters are not taken for one).
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let tag_ok = j < chars.len()
                    && chars[j] == '$'
                    && chars.get(i + 1).is_none_or(|c| !c.is_ascii_digit());
                if tag_ok {
                    let tag: String = chars[i..=j].iter().collect();
                    let rest: String = chars[j + 1..].iter().collect();
                    match rest.find(&tag) {
                        Some(end) => {
                            i = j + 1 + rest[..end].chars().count() + tag.chars().count();
                        }
                        None => i = chars.len(),
                    }
                    cur.push_str("''");
                    continue;
                }
            }
            '(' => depth += 1,
            ')' => depth -= 1,
            ';' if depth <= 0 => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                depth = 0;
                i += 1;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        i += 1;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A token: a word (unquoted: upper-cased; quoted: as written, with a marker), or a
/// punctuation character.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
}

impl Tok {
    fn is(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w == word)
    }
}

fn tokenize(statement: &str) -> Vec<Tok> {
    let chars: Vec<char> = statement.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        s.push('"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Tok::Quoted(s));
        } else if c.is_alphanumeric() || c == '_' {
            let mut s = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                s.push(chars[i]);
                i += 1;
            }
            out.push(Tok::Word(s.to_uppercase()));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// Reads a possibly qualified name at `i` (`a`, `"A"`, `s.a`); returns it normalised
/// (unquoted names folded to lower case, `public.` dropped) and the index after it.
fn name_at(t: &[Tok], mut i: usize) -> Option<(String, usize)> {
    let mut parts = Vec::new();
    loop {
        match t.get(i)? {
            Tok::Word(w) => parts.push(w.to_lowercase()),
            Tok::Quoted(q) => parts.push(q.clone()),
            Tok::Punct(_) => return None,
        }
        i += 1;
        if matches!(t.get(i), Some(Tok::Punct('.'))) {
            i += 1;
            continue;
        }
        break;
    }
    if parts.len() > 1 && parts[0] == "public" {
        parts.remove(0);
    }
    Some((parts.join("."), i))
}

/// Skips `IF EXISTS` / `IF NOT EXISTS` / `ONLY` at `i`.
fn skip_modifiers(t: &[Tok], mut i: usize) -> usize {
    loop {
        if t.get(i).is_some_and(|x| x.is("IF")) {
            i += 1;
            if t.get(i).is_some_and(|x| x.is("NOT")) {
                i += 1;
            }
            if t.get(i).is_some_and(|x| x.is("EXISTS")) {
                i += 1;
            }
        } else if t.get(i).is_some_and(|x| x.is("ONLY")) {
            i += 1;
        } else {
            return i;
        }
    }
}

/// `CREATE [UNLOGGED|TEMP…] TABLE [IF NOT EXISTS] name` → the table's name.
fn created_table(t: &[Tok]) -> Option<String> {
    if !t.first()?.is("CREATE") {
        return None;
    }
    let pos = t.iter().take(5).position(|x| x.is("TABLE"))?;
    let i = skip_modifiers(t, pos + 1);
    name_at(t, i).map(|(n, _)| n)
}

/// Splits the tokens after `ALTER TABLE name` into actions at top-level commas.
fn actions(t: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, tok) in t.iter().enumerate() {
        match tok {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                out.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&t[start..]);
    out
}

fn has_seq(t: &[Tok], words: &[&str]) -> bool {
    t.windows(words.len())
        .any(|w| w.iter().zip(words).all(|(tok, word)| tok.is(word)))
}

fn check(t: &[Tok], created: &HashSet<String>) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let Some(first) = t.first() else {
        return found;
    };
    if first.is("DROP") {
        let (kind, at) = match t.get(1) {
            Some(x) if x.is("MATERIALIZED") => ("materialized view", 3),
            Some(Tok::Word(w)) => (
                match w.as_str() {
                    "TABLE" => "table",
                    "VIEW" => "view",
                    "SCHEMA" => "schema",
                    "FUNCTION" => "function",
                    "PROCEDURE" => "procedure",
                    "TYPE" => "type",
                    "DOMAIN" => "domain",
                    "SEQUENCE" => "sequence",
                    _ => return found,
                },
                2,
            ),
            _ => return found,
        };
        let i = skip_modifiers(t, at);
        let Some((name, _)) = name_at(t, i) else {
            return found;
        };
        if kind == "table" {
            if !created.contains(&name) {
                found.push((
                    "dropTable",
                    format!("DROP TABLE {name}: the previous revision fails as soon as it reads or writes {name}"),
                ));
            }
        } else {
            found.push((
                "dropObject",
                format!(
                    "DROP {} {name}: the previous revision may still use it",
                    kind.to_uppercase()
                ),
            ));
        }
        return found;
    }
    if first.is("TRUNCATE") {
        let i = skip_modifiers(
            t,
            if t.get(1).is_some_and(|x| x.is("TABLE")) {
                2
            } else {
                1
            },
        );
        if let Some((name, _)) = name_at(t, i)
            && !created.contains(&name)
        {
            found.push((
                "truncate",
                format!("TRUNCATE {name}: deletes data the previous revision serves, and a rollback cannot bring it back"),
            ));
        }
        return found;
    }
    if first.is("ALTER") {
        let Some(Tok::Word(object)) = t.get(1) else {
            return found;
        };
        if object != "TABLE" {
            // ALTER VIEW/SCHEMA/TYPE/FUNCTION/SEQUENCE … RENAME …
            if [
                "VIEW",
                "SCHEMA",
                "TYPE",
                "FUNCTION",
                "SEQUENCE",
                "MATERIALIZED",
            ]
            .contains(&object.as_str())
                && t.iter().any(|x| x.is("RENAME"))
            {
                found.push((
                    "rename",
                    format!(
                        "ALTER {object} … RENAME: the previous revision still uses the old name"
                    ),
                ));
            }
            return found;
        }
        let i = skip_modifiers(t, 2);
        let Some((table, after)) = name_at(t, i) else {
            return found;
        };
        if created.contains(&table) {
            return found;
        }
        for action in actions(&t[after..]) {
            let Some(head) = action.first() else { continue };
            if head.is("DROP") {
                let mut j = 1;
                if action.get(j).is_some_and(|x| x.is("CONSTRAINT")) {
                    continue;
                }
                if action.get(j).is_some_and(|x| x.is("COLUMN")) {
                    j += 1;
                }
                let j = skip_modifiers(action, j);
                let column = name_at(action, j).map(|(n, _)| n).unwrap_or_default();
                found.push((
                    "dropColumn",
                    format!("drops column {table}.{column}: the previous revision fails as soon as it reads or writes it"),
                ));
            } else if head.is("RENAME") {
                if action.get(1).is_some_and(|x| x.is("TO")) {
                    found.push((
                        "rename",
                        format!(
                            "renames table {table}: the previous revision still uses the old name"
                        ),
                    ));
                } else if !action.get(1).is_some_and(|x| x.is("CONSTRAINT")) {
                    let j = if action.get(1).is_some_and(|x| x.is("COLUMN")) {
                        2
                    } else {
                        1
                    };
                    let column = name_at(action, j).map(|(n, _)| n).unwrap_or_default();
                    found.push((
                        "rename",
                        format!("renames column {table}.{column}: the previous revision still uses the old name"),
                    ));
                }
            } else if head.is("ALTER") {
                let j = if action.get(1).is_some_and(|x| x.is("COLUMN")) {
                    2
                } else {
                    1
                };
                let (column, k) = name_at(action, j).unwrap_or_default();
                let rest = &action[k.min(action.len())..];
                if has_seq(rest, &["SET", "NOT", "NULL"]) {
                    found.push((
                        "setNotNull",
                        format!("makes {table}.{column} NOT NULL: the previous revision may insert rows without it"),
                    ));
                }
                if rest.iter().any(|x| x.is("TYPE")) {
                    found.push((
                        "alterColumnType",
                        format!("changes the type of {table}.{column}: the previous revision may read or write the old type (and the table is rewritten under a lock)"),
                    ));
                }
            } else if head.is("ADD") {
                if action.get(1).is_some_and(|x| {
                    x.is("CONSTRAINT")
                        || x.is("PRIMARY")
                        || x.is("UNIQUE")
                        || x.is("FOREIGN")
                        || x.is("CHECK")
                        || x.is("EXCLUDE")
                }) {
                    continue;
                }
                let not_null = has_seq(action, &["NOT", "NULL"]);
                let defaulted = action.iter().any(|x| x.is("DEFAULT") || x.is("GENERATED"));
                if not_null && !defaulted {
                    let j = if action.get(1).is_some_and(|x| x.is("COLUMN")) {
                        2
                    } else {
                        1
                    };
                    let j = skip_modifiers(action, j);
                    let column = name_at(action, j).map(|(n, _)| n).unwrap_or_default();
                    found.push((
                        "addColumnNotNull",
                        format!("adds {table}.{column} NOT NULL without a default: the previous revision's inserts, which do not know the column, fail (and the statement fails on a table with rows)"),
                    ));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<&'static str> {
        scan(&[Pending {
            name: "1_x.sql",
            version: 1,
            sql,
        }])
        .into_iter()
        .map(|f| f.rule)
        .collect()
    }

    #[test]
    fn safe_migrations_are_quiet() {
        assert!(rules("CREATE TABLE a (id int primary key, name text NOT NULL);").is_empty());
        assert!(rules("ALTER TABLE users ADD COLUMN nick text;").is_empty());
        assert!(rules("ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0;").is_empty());
        assert!(rules("ALTER TABLE users ALTER COLUMN email DROP NOT NULL;").is_empty());
        assert!(rules("ALTER TABLE users DROP CONSTRAINT users_email_key;").is_empty());
        assert!(rules("ALTER TABLE users ALTER COLUMN n DROP DEFAULT;").is_empty());
        assert!(rules("CREATE INDEX CONCURRENTLY i ON users (email);").is_empty());
        assert!(rules("DROP INDEX users_nick_idx;").is_empty());
        assert!(
            rules("ALTER TABLE users ADD CONSTRAINT c CHECK (n IS NOT NULL) NOT VALID;").is_empty()
        );
    }

    #[test]
    fn destructive_statements_are_found() {
        assert_eq!(rules("DROP TABLE users;"), ["dropTable"]);
        assert_eq!(
            rules("drop table if exists public.users cascade;"),
            ["dropTable"]
        );
        assert_eq!(
            rules("ALTER TABLE users DROP COLUMN email;"),
            ["dropColumn"]
        );
        assert_eq!(rules("ALTER TABLE ONLY users DROP email;"), ["dropColumn"]);
        assert_eq!(
            rules("ALTER TABLE users RENAME COLUMN email TO mail;"),
            ["rename"]
        );
        assert_eq!(rules("ALTER TABLE users RENAME TO people;"), ["rename"]);
        assert_eq!(
            rules("ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
            ["setNotNull"]
        );
        assert_eq!(
            rules("ALTER TABLE users ALTER email TYPE varchar(10);"),
            ["alterColumnType"]
        );
        assert_eq!(
            rules("ALTER TABLE users ADD COLUMN n int NOT NULL;"),
            ["addColumnNotNull"]
        );
        assert_eq!(rules("TRUNCATE users;"), ["truncate"]);
        assert_eq!(
            rules("ALTER TABLE t ALTER COLUMN type SET NOT NULL;"),
            ["setNotNull"]
        );
        assert_eq!(rules("DROP VIEW v;"), ["dropObject"]);
        assert_eq!(rules("ALTER VIEW v RENAME TO w;"), ["rename"]);
        assert_eq!(
            rules(
                "ALTER TABLE users DROP COLUMN a, ADD COLUMN b int NOT NULL, ALTER c SET NOT NULL;"
            ),
            ["dropColumn", "addColumnNotNull", "setNotNull"]
        );
    }

    #[test]
    fn comments_strings_and_bodies_are_not_statements() {
        assert!(rules("-- DROP TABLE users;\nSELECT 1;").is_empty());
        assert!(rules("/* DROP TABLE users; /* nested */ */ SELECT 1;").is_empty());
        assert!(rules("INSERT INTO notes VALUES ('DROP TABLE users;');").is_empty());
        assert!(rules("INSERT INTO notes VALUES (E'it\\'s; DROP TABLE users');").is_empty());
        assert!(rules(
            "CREATE FUNCTION f() RETURNS void AS $body$ BEGIN DROP TABLE users; END $body$ LANGUAGE plpgsql;"
        )
        .is_empty());
        assert!(rules("DO $$ BEGIN EXECUTE 'x'; END $$;").is_empty());
        assert_eq!(statements("SELECT $1; SELECT 2").len(), 2);
    }

    #[test]
    fn tables_created_by_the_pending_set_are_new() {
        let pending = [
            Pending {
                name: "1_a.sql",
                version: 1,
                sql: "CREATE TABLE IF NOT EXISTS \"Orders\" (id int);",
            },
            Pending {
                name: "2_b.sql",
                version: 2,
                sql: "ALTER TABLE \"Orders\" ADD COLUMN total int NOT NULL; ALTER TABLE \"Orders\" RENAME COLUMN id TO order_id; ALTER TABLE orders DROP COLUMN x;",
            },
        ];
        let found = scan(&pending);
        // "Orders" (quoted) is new; orders (unquoted, folded) is another table.
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].rule, "dropColumn");
        assert!(found[0].why.contains("orders.x"), "{}", found[0].why);
    }

    #[test]
    fn the_annotation_acknowledges_a_file() {
        let found = scan(&[Pending {
            name: "3_drop.sql",
            version: 3,
            sql: "-- greenlight:allow-destructive: nothing reads legacy since release 41\nDROP TABLE legacy;",
        }]);
        assert_eq!(found.len(), 1);
        assert!(found[0].acknowledged);
        assert_eq!(found[0].statement, "DROP TABLE legacy");
    }
}
