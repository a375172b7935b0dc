//! Who may decide an approval. Each entry of `approvers` is one of:
//!
//! * `slack:U…` / `slack:W…`: a Slack user; `slack:S…`: a Slack user group (its members
//!   are read with `usergroups.users.list`, which needs the endpoint's Slack bot token);
//! * an IAM principal's ARN: `arn:aws:iam::ACCOUNT:user/NAME`, `arn:aws:iam::ACCOUNT:role/NAME`
//!   (any session of the role), or one role session
//!   `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`;
//! * `link`: whoever holds a signed link, from any channel; `link:CHANNEL`: whoever holds
//!   the link sent to that notification channel.
//!
//! An empty list lets anyone decide who can reach an action: a link, a Slack button in the
//! channel, or any IAM principal of the deployment's own account (the endpoint checks the
//! account; `iam_allowed` alone does not).

/// One entry of `approvers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    SlackUser(String),
    SlackGroup(String),
    IamUser {
        partition: String,
        account: String,
        path_name: String,
    },
    IamRole {
        partition: String,
        account: String,
        name: String,
    },
    RoleSession {
        partition: String,
        account: String,
        role: String,
        session: String,
    },
    Link(Option<String>),
}

fn slack_id(s: &str) -> bool {
    (2..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn iam_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
}

/// A channel name as the notification settings allow it.
pub fn channel_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Parses one entry; the error says what the forms are.
pub fn parse(s: &str) -> Result<Who, String> {
    const FORMS: &str = "expected slack:USER_OR_GROUP_ID (U…, W… or S…), an IAM user or role ARN (arn:aws:iam::ACCOUNT:user/NAME, arn:aws:iam::ACCOUNT:role/NAME), a role session ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), link or link:CHANNEL";
    if let Some(id) = s.strip_prefix("slack:") {
        return match id.as_bytes().first() {
            Some(b'U' | b'W') if slack_id(id) => Ok(Who::SlackUser(id.to_string())),
            Some(b'S') if slack_id(id) => Ok(Who::SlackGroup(id.to_string())),
            _ => Err(format!(
                "{s:?} is not a Slack user (U…, W…) or user group (S…) id; {FORMS}"
            )),
        };
    }
    if s == "link" {
        return Ok(Who::Link(None));
    }
    if let Some(c) = s.strip_prefix("link:") {
        return if channel_name(c) {
            Ok(Who::Link(Some(c.to_string())))
        } else {
            Err(format!("{s:?} does not name a channel; {FORMS}"))
        };
    }
    if s.starts_with("arn:") {
        let f: Vec<&str> = s.splitn(6, ':').collect();
        if f.len() == 6 && f[1].starts_with("aws") && f[3].is_empty() && account(f[4]) {
            let (partition, acct) = (f[1].to_string(), f[4].to_string());
            match (f[2], f[5].split_once('/')) {
                ("iam", Some(("user", rest))) if iam_name(rest) => {
                    return Ok(Who::IamUser {
                        partition,
                        account: acct,
                        path_name: rest.to_string(),
                    });
                }
                ("iam", Some(("role", rest))) if iam_name(rest) => {
                    let name = rest.rsplit('/').next().unwrap_or(rest).to_string();
                    return Ok(Who::IamRole {
                        partition,
                        account: acct,
                        name,
                    });
                }
                ("sts", Some(("assumed-role", rest))) => {
                    if let Some((role, session)) = rest.split_once('/')
                        && iam_name(role)
                        && !role.contains('/')
                        && iam_name(session)
                    {
                        return Ok(Who::RoleSession {
                            partition,
                            account: acct,
                            role: role.to_string(),
                            session: session.to_string(),
                        });
                    }
                }
                _ => {}
            }
        }
        return Err(format!(
            "{s:?} is not an IAM user, role or role session ARN; {FORMS}"
        ));
    }
    Err(format!("{s:?} is not a known approver; {FORMS}"))
}

/// Parses every entry, the error naming its index.
pub fn parse_all(list: &[String]) -> Result<Vec<Who>, (usize, String)> {
    list.iter()
        .enumerate()
        .map(|(i, s)| parse(s).map_err(|e| (i, e)))
        .collect()
}

fn parsed(list: &[String]) -> Vec<Who> {
    list.iter().filter_map(|s| parse(s).ok()).collect()
}

/// Whether the link sent to `channel` may decide.
pub fn link_allowed(list: &[String], channel: &str) -> bool {
    list.is_empty()
        || parsed(list)
            .iter()
            .any(|w| matches!(w, Who::Link(None)) || *w == Who::Link(Some(channel.to_string())))
}

/// Whether links are sent at all (some channel may decide through one).
pub fn links_sent(list: &[String]) -> bool {
    list.is_empty() || parsed(list).iter().any(|w| matches!(w, Who::Link(_)))
}

/// The Slack user groups whose members may decide.
pub fn slack_groups(list: &[String]) -> Vec<String> {
    parsed(list)
        .into_iter()
        .filter_map(|w| match w {
            Who::SlackGroup(g) => Some(g),
            _ => None,
        })
        .collect()
}

/// Whether Slack user `user`, a member of `groups`, may decide.
pub fn slack_allowed(list: &[String], user: &str, groups: &[String]) -> bool {
    list.is_empty()
        || parsed(list).iter().any(|w| match w {
            Who::SlackUser(u) => u == user,
            Who::SlackGroup(g) => groups.contains(g),
            _ => false,
        })
}

/// Whether the caller STS names (`GetCallerIdentity`'s `Arn`) may decide.
pub fn iam_allowed(list: &[String], caller: &str) -> bool {
    if list.is_empty() {
        return true;
    }
    let f: Vec<&str> = caller.splitn(6, ':').collect();
    if f.len() != 6 || f[0] != "arn" {
        return false;
    }
    let (partition, acct, resource) = (f[1], f[4], f[5]);
    parsed(list).iter().any(|w| match w {
        Who::IamUser {
            partition: p,
            account: a,
            path_name,
        } => {
            f[2] == "iam" && p == partition && a == acct && resource == format!("user/{path_name}")
        }
        Who::IamRole {
            partition: p,
            account: a,
            name,
        } => {
            f[2] == "sts"
                && p == partition
                && a == acct
                && resource
                    .strip_prefix("assumed-role/")
                    .and_then(|r| r.split_once('/'))
                    .is_some_and(|(role, _)| role == name)
        }
        Who::RoleSession {
            partition: p,
            account: a,
            role,
            session,
        } => {
            f[2] == "sts"
                && p == partition
                && a == acct
                && resource == format!("assumed-role/{role}/{session}")
        }
        _ => false,
    })
}

/// Whether any entry names IAM principals (the terminal path is offered then, or when the
/// list is empty).
pub fn iam_offered(list: &[String]) -> bool {
    list.is_empty()
        || parsed(list).iter().any(|w| {
            matches!(
                w,
                Who::IamUser { .. } | Who::IamRole { .. } | Who::RoleSession { .. }
            )
        })
}

/// Whether Slack buttons can decide.
pub fn slack_offered(list: &[String]) -> bool {
    list.is_empty()
        || parsed(list)
            .iter()
            .any(|w| matches!(w, Who::SlackUser(_) | Who::SlackGroup(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_form_and_refuses_the_rest() {
        assert_eq!(
            parse("slack:U012AB3CD").unwrap(),
            Who::SlackUser("U012AB3CD".into())
        );
        assert_eq!(
            parse("slack:S0614TZR7").unwrap(),
            Who::SlackGroup("S0614TZR7".into())
        );
        assert_eq!(parse("link").unwrap(), Who::Link(None));
        assert_eq!(
            parse("link:teams-ops").unwrap(),
            Who::Link(Some("teams-ops".into()))
        );
        assert!(
            matches!(parse("arn:aws:iam::123456789012:role/ops/Deployer").unwrap(), Who::IamRole { name, .. } if name == "Deployer")
        );
        assert!(parse("arn:aws:iam::123456789012:user/alice").is_ok());
        assert!(parse("arn:aws:sts::123456789012:assumed-role/Deployer/bob").is_ok());
        for bad in [
            "alice",
            "slack:u1",
            "slack:X1",
            "link:",
            "link:a b",
            "arn:aws:iam::12:user/a",
            "arn:aws:iam::123456789012:group/g",
            "arn:aws:s3:::bucket",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("expected slack:"), "{bad}: {e}");
        }
    }

    #[test]
    fn iam_roles_match_their_sessions_only_in_their_account() {
        let l = list(&[
            "arn:aws:iam::123456789012:role/ops/Deployer",
            "arn:aws:iam::123456789012:user/alice",
        ]);
        assert!(iam_allowed(
            &l,
            "arn:aws:sts::123456789012:assumed-role/Deployer/bob"
        ));
        assert!(iam_allowed(&l, "arn:aws:iam::123456789012:user/alice"));
        assert!(!iam_allowed(
            &l,
            "arn:aws:sts::210987654321:assumed-role/Deployer/bob"
        ));
        assert!(!iam_allowed(
            &l,
            "arn:aws:sts::123456789012:assumed-role/DeployerX/bob"
        ));
        assert!(!iam_allowed(&l, "arn:aws:iam::123456789012:user/alice2"));
        assert!(!iam_allowed(&l, "not an arn"));
        assert!(iam_allowed(&[], "arn:aws:iam::123456789012:user/anyone"));
        let s = list(&["arn:aws:sts::123456789012:assumed-role/Deployer/bob"]);
        assert!(iam_allowed(
            &s,
            "arn:aws:sts::123456789012:assumed-role/Deployer/bob"
        ));
        assert!(!iam_allowed(
            &s,
            "arn:aws:sts::123456789012:assumed-role/Deployer/eve"
        ));
    }

    #[test]
    fn slack_users_groups_and_links() {
        let l = list(&["slack:U1AAA", "slack:S2BBB", "link:teams-ops"]);
        assert!(slack_allowed(&l, "U1AAA", &[]));
        assert!(slack_allowed(&l, "U9ZZZ", &["S2BBB".into()]));
        assert!(!slack_allowed(&l, "U9ZZZ", &["S3CCC".into()]));
        assert!(link_allowed(&l, "teams-ops"));
        assert!(!link_allowed(&l, "slack-ops"));
        assert!(links_sent(&l));
        assert!(!links_sent(&list(&["slack:U1AAA"])));
        assert!(link_allowed(&[], "anything"));
        assert_eq!(slack_groups(&l), vec!["S2BBB".to_string()]);
        assert!(!iam_offered(&l));
        assert!(slack_offered(&l));
    }
}
