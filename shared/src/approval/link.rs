//! Signed approve/reject links: `<endpoint>?id=…&a=approve&c=CHANNEL&e=EXPIRY&s=SIGNATURE`,
//! the signature HMAC-SHA256 under the approval key over the approval id, the action, the
//! channel the link was sent to and its expiry (seconds since the epoch). A link is bound
//! to all four: changing any of them breaks the signature. It is single-use because an
//! approval takes one decision (the store's conditional write), and it expires with the
//! approval.
//!
//! Opening a link (GET) only shows what it would do; the decision is a POST from that page,
//! so that link previews and mail scanners, which fetch links, decide nothing.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::{Action, approvers, is_id};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The shortest key accepted, in bytes.
pub const MIN_KEY: usize = 32;

/// What a link says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub id: String,
    pub action: Action,
    pub channel: String,
    /// Seconds since the epoch.
    pub expires: u64,
}

/// Why a link was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A parameter is missing or malformed.
    Malformed(String),
    /// The signature does not match: altered, or signed with another key.
    BadSignature,
    /// Past its expiry.
    Expired(u64),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(m) => write!(f, "this is not an approval link: {m}"),
            Refusal::BadSignature => f.write_str(
                "this link's signature does not match: it was altered, or it is not from this Greenlight",
            ),
            Refusal::Expired(at) => write!(
                f,
                "this link expired at {}",
                super::rfc3339(at.saturating_mul(1000))
            ),
        }
    }
}

fn message(c: &Claims) -> String {
    format!(
        "greenlight-approval-link/v1\n{}\n{}\n{}\n{}",
        c.id,
        c.action.as_str(),
        c.channel,
        c.expires
    )
}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// The key's bytes, refused when too short to be a key.
pub fn key_bytes(key: &str) -> Result<&[u8], String> {
    if key.len() < MIN_KEY {
        return Err(format!(
            "the approval signing key is shorter than {MIN_KEY} bytes"
        ));
    }
    Ok(key.as_bytes())
}

/// The signature of `c`, in hex.
pub fn sign(key: &[u8], c: &Claims) -> String {
    let mut m = mac(key);
    m.update(message(c).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The link to `base` (the endpoint's URL) for `c`.
pub fn url(base: &str, key: &[u8], c: &Claims) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("id", &c.id)
        .append_pair("a", c.action.as_str())
        .append_pair("c", &c.channel)
        .append_pair("e", &c.expires.to_string())
        .append_pair("s", &sign(key, c))
        .finish();
    format!("{base}?{query}")
}

/// Reads and verifies a link's parameters (a query string, or a form body). The signature
/// is compared in constant time, before the expiry is looked at.
pub fn verify(key: &[u8], params: &str, now_secs: u64) -> Result<Claims, Refusal> {
    let mut id = None;
    let mut action = None;
    let mut channel = None;
    let mut expires = None;
    let mut sig = None;
    for (k, v) in form_urlencoded::parse(params.as_bytes()) {
        let slot = match k.as_ref() {
            "id" => &mut id,
            "a" => &mut action,
            "c" => &mut channel,
            "e" => &mut expires,
            "s" => &mut sig,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Refusal::Malformed(format!("parameter {k} appears twice")));
        }
        *slot = Some(v.into_owned());
    }
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| Refusal::Malformed(format!("parameter {name} is missing")))
    };
    let id = need(id, "id")?;
    let action = need(action, "a")?;
    let channel = need(channel, "c")?;
    let expires = need(expires, "e")?;
    let sig = need(sig, "s")?;
    if !is_id(&id) {
        return Err(Refusal::Malformed("id is not an approval id".into()));
    }
    let action = Action::parse(&action)
        .ok_or_else(|| Refusal::Malformed("a is neither approve nor reject".into()))?;
    if !approvers::channel_name(&channel) {
        return Err(Refusal::Malformed("c is not a channel name".into()));
    }
    if expires.is_empty() || expires.len() > 12 || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed("e is not a time".into()));
    }
    let expires: u64 = expires
        .parse()
        .map_err(|_| Refusal::Malformed("e is not a time".into()))?;
    let sig = hex::decode(&sig).map_err(|_| Refusal::BadSignature)?;
    let claims = Claims {
        id,
        action,
        channel,
        expires,
    };
    let mut m = mac(key);
    m.update(message(&claims).as_bytes());
    m.verify_slice(&sig).map_err(|_| Refusal::BadSignature)?;
    if now_secs >= claims.expires {
        return Err(Refusal::Expired(claims.expires));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> Claims {
        Claims {
            id: "0123456789abcdef0123456789abcdef".into(),
            action: Action::Approve,
            channel: "teams-ops".into(),
            expires: 2_000_000_000,
        }
    }

    fn query(link: &str) -> &str {
        link.split_once('?').unwrap().1
    }

    #[test]
    fn a_link_verifies_and_is_bound_to_every_part() {
        let link = url("https://x.lambda-url.us-west-2.on.aws/", KEY, &claims());
        assert_eq!(verify(KEY, query(&link), 1_900_000_000), Ok(claims()));
        let q = query(&link);
        for (from, to) in [
            ("a=approve", "a=reject"),
            ("c=teams-ops", "c=slack-ops"),
            ("e=2000000000", "e=2000000001"),
            ("id=0123", "id=1123"),
        ] {
            let tampered = q.replace(from, to);
            assert_eq!(
                verify(KEY, &tampered, 1_900_000_000),
                Err(Refusal::BadSignature),
                "{to}"
            );
        }
        assert_eq!(
            verify(b"another key, long enough to be one", q, 1_900_000_000),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(KEY, q, 2_000_000_000),
            Err(Refusal::Expired(2_000_000_000))
        );
    }

    #[test]
    fn malformed_links_say_what_is_wrong() {
        assert!(
            matches!(verify(KEY, "", 0), Err(Refusal::Malformed(m)) if m.contains("id is missing"))
        );
        assert!(matches!(
            verify(KEY, "id=x&a=approve&c=c&e=1&s=00", 0),
            Err(Refusal::Malformed(_))
        ));
        let link = url("https://x/", KEY, &claims());
        let doubled = format!("{}&a=reject", query(&link));
        assert!(
            matches!(verify(KEY, &doubled, 0), Err(Refusal::Malformed(m)) if m.contains("twice"))
        );
        assert!(key_bytes("short").is_err());
    }
}
