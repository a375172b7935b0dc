//! One HTTP POST to a notification receiver: a timeout per attempt, retries with backoff on
//! 429, 5xx and refused connections, never past the invocation's limit, and errors that
//! never contain the URL or any other secret.

use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// Replaces secret values in text meant for logs, records and error messages.
#[derive(Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Adds a secret, and for a URL also its parts that carry secrets (path, query,
    /// user information). Short fragments are not worth the false positives.
    pub fn add(&mut self, secret: &str) {
        let mut add = |s: &str| {
            let s = s.trim();
            if s.len() >= 6 && !self.secrets.iter().any(|x| x == s) {
                self.secrets.push(s.to_string());
            }
        };
        add(secret);
        // A header value such as `Bearer <token>`: the token alone, too.
        for word in secret.split_whitespace() {
            if word.len() >= 8 {
                add(word);
            }
        }
        if let Ok(url) = reqwest::Url::parse(secret) {
            add(url.path());
            if let Some(q) = url.query() {
                add(q);
            }
            add(url.username());
            if let Some(p) = url.password() {
                add(p);
            }
        }
        // Longest first, so that a URL is replaced whole before its path.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Drops an end of `text` that is the start of a secret: what is left of a secret
    /// that a read cut in two.
    fn drop_cut_secret(&self, text: &mut String) {
        for s in &self.secrets {
            // The longest such start first.
            for (i, _) in s
                .char_indices()
                .skip(1)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                if text.ends_with(&s[..i]) {
                    text.truncate(text.len() - i);
                    break;
                }
            }
        }
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        out
    }
}

/// The result of delivering one notification to one channel.
#[derive(Clone, Debug)]
pub struct Attempted {
    pub result: Result<(), String>,
    pub attempts: u32,
}

/// Backoff before attempt `n + 1` (n ≥ 1): 250 ms, 500 ms, 1 s, … up to 4 s, with up to
/// a quarter more as jitter.
pub fn backoff(n: u32) -> Duration {
    let base = Duration::from_millis(250) * 2u32.saturating_pow(n.saturating_sub(1).min(4));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base / 4 * (nanos % 1000) / 1000
}

/// What a reqwest error says, without the URL (reqwest puts it in its messages).
pub fn describe(err: reqwest::Error, timeout: Duration) -> (String, bool) {
    let err = err.without_url();
    if err.is_timeout() {
        return (
            format!("no answer within {}", humantime::format_duration(timeout)),
            false,
        );
    }
    if err.is_connect() {
        return ("connection refused or unreachable".into(), true);
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    (format!("request failed: {text}"), false)
}

/// The most of an error answer's body that is read, for the error message (which shows
/// 200 characters of it).
pub const ERROR_BODY_BYTES: usize = 4 * 1024;

/// The start of an error answer's body, at most `ERROR_BODY_BYTES`, with no part of a
/// secret in it. Reading stops at the limit, at the end of the body or on an error.
async fn error_text(resp: &mut reqwest::Response, redact: &Redactor) -> String {
    let mut buf: Vec<u8> = Vec::new();
    let mut cut = false;
    while let Ok(Some(chunk)) = resp.chunk().await {
        let take = chunk.len().min(ERROR_BODY_BYTES - buf.len());
        buf.extend_from_slice(&chunk[..take]);
        if buf.len() == ERROR_BODY_BYTES {
            cut = true;
            break;
        }
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if cut {
        redact.drop_cut_secret(&mut text);
    }
    // Redacted before it is clipped, so no part of a secret survives.
    redact.clean(text.trim()).chars().take(200).collect()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// POSTs `body` to `url`: success is any 2xx answer. Every error is passed through
/// `redact`.
#[allow(clippy::too_many_arguments)]
pub async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
    retries: u32,
    limit: Instant,
    redact: &Redactor,
) -> Attempted {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = limit.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(10) {
            let why = if attempts == 1 {
                "no time left in this invocation to send it".to_string()
            } else {
                "the invocation's time ran out before the next attempt".to_string()
            };
            return Attempted {
                result: Err(why),
                attempts: attempts - 1,
            };
        }
        let per = timeout.min(left);
        let request = client
            .post(url.clone())
            .headers(headers.clone())
            .body(body.clone())
            .timeout(per)
            .send();
        let (error, retryable, wait_at_least) =
            match tokio::time::timeout(per + Duration::from_millis(50), request).await {
                Err(_) => (
                    format!("no answer within {}", humantime::format_duration(per)),
                    false,
                    None,
                ),
                Ok(Err(e)) => {
                    let (text, retryable) = describe(e, per);
                    (text, retryable, None)
                }
                Ok(Ok(mut resp)) => {
                    let status = resp.status();
                    if status.is_success() {
                        return Attempted {
                            result: Ok(()),
                            attempts,
                        };
                    }
                    let after = retry_after(resp.headers());
                    let left = limit.saturating_duration_since(Instant::now());
                    let excerpt = tokio::time::timeout(
                        left.min(Duration::from_secs(1)),
                        error_text(&mut resp, redact),
                    )
                    .await
                    .unwrap_or_default();
                    let mut why = format!("answered {}", status.as_u16());
                    if status.is_redirection() {
                        why.push_str(" (redirects are not followed)");
                    }
                    if !excerpt.is_empty() {
                        why.push_str(&format!(": {excerpt}"));
                    }
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    (why, retryable, after)
                }
            };
        let error = redact.clean(&error);
        if !retryable || attempts > retries {
            let error = if attempts > 1 {
                format!("{error} (after {attempts} attempts)")
            } else {
                error
            };
            return Attempted {
                result: Err(error),
                attempts,
            };
        }
        let wait = backoff(attempts).max(wait_at_least.unwrap_or_default());
        if Instant::now()
            .checked_add(wait)
            .is_none_or(|at| at >= limit)
        {
            return Attempted {
                result: Err(format!(
                    "{error} (after {attempts} attempts; the next would pass the invocation's deadline)"
                )),
                attempts,
            };
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_urls_and_their_secret_parts() {
        let mut r = Redactor::default();
        r.add("https://hooks.example/services/T0/B0/SECRET-TOKEN?sig=QUERY-SECRET");
        r.add("short");
        let text = "posting to https://hooks.example/services/T0/B0/SECRET-TOKEN?sig=QUERY-SECRET failed; path /services/T0/B0/SECRET-TOKEN; q sig=QUERY-SECRET; short";
        let clean = r.clean(text);
        assert!(!clean.contains("SECRET"), "{clean}");
        assert!(clean.contains("short"), "{clean}");
        assert!(clean.contains("hooks.example") || clean.contains("<redacted>"));
    }

    #[test]
    fn what_is_left_of_a_secret_cut_in_two_is_dropped() {
        let mut r = Redactor::default();
        r.add("TOKEN-1234567");
        for (text, left) in [
            ("error at TOKEN-12", "error at "),
            ("error at TOK", "error at "),
            ("error at T", "error at "),
            ("error at X", "error at X"),
        ] {
            let mut t = text.to_string();
            r.drop_cut_secret(&mut t);
            assert_eq!(t, left);
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(250) && backoff(1) < Duration::from_millis(320)
        );
        assert!(backoff(2) >= Duration::from_millis(500));
        assert!(backoff(9) <= Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_retry_after_of_any_size_gives_up_before_the_limit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 18446744073709551615\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let url = reqwest::Url::parse(&format!("http://{addr}/hook")).unwrap();
        let sent = post(
            &reqwest::Client::new(),
            &url,
            HeaderMap::new(),
            b"{}".to_vec(),
            Duration::from_secs(2),
            3,
            Instant::now() + Duration::from_secs(5),
            &Redactor::default(),
        )
        .await;
        assert_eq!(sent.attempts, 1);
        let error = sent.result.unwrap_err();
        assert!(
            error.contains("answered 503")
                && error.contains("would pass the invocation's deadline"),
            "{error}"
        );
    }
}
