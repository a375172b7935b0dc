//! HTTP for the metric sources outside the AWS SDK: one client that never follows a
//! redirect (a signed or keyed request is never replayed to another host), and answers read
//! up to a limit within the request's timeout and the invocation's budget.

use std::sync::OnceLock;
use std::time::Duration;

use crate::budget::Budget;
use crate::services::{Services, build_http};
use crate::verdict::Failure;

/// The most of an answer that is read: a range query of a few series at a one-minute step
/// is a few kilobytes; anything near this is a query that selects far too much.
pub const MAX_ANSWER: usize = 8 << 20;

/// An answer, read whole (up to [`MAX_ANSWER`]).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body's start, for a message: at most 300 bytes, on one line.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        crate::text::clip(text.trim(), 300).replace(['\n', '\r'], " ")
    }
}

#[derive(Default)]
struct Client(OnceLock<Result<reqwest::Client, String>>);

/// The metric sources' client, built on first use.
pub fn client(services: &Services) -> Result<reqwest::Client, Failure> {
    services
        .local::<Client>()
        .0
        .get_or_init(|| {
            build_http(
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .redirect(reqwest::redirect::Policy::none()),
            )
        })
        .clone()
        .map_err(Failure::error)
}

/// Sends `req` and reads its answer, within `timeout` and the budget. Not reaching the
/// server, or no answer in time, is transient: nothing is known about the release.
pub async fn send(
    req: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
    budget: &Budget,
) -> Result<Answer, Failure> {
    let exchange = async {
        let mut resp = req.send().await.map_err(|e| e.without_url())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url())? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Ok(Err(()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<_, reqwest::Error>(Ok(Answer {
            status,
            headers,
            body,
        }))
    };
    match budget.run(tokio::time::timeout(timeout, exchange)).await {
        None => Err(Failure::transient(format!(
            "{what} did not answer within the invocation's budget"
        ))),
        Some(Err(_)) => Err(Failure::transient(format!(
            "{what} did not answer within {}",
            humantime::format_duration(timeout)
        ))),
        Some(Ok(Err(e))) if e.is_builder() => Err(Failure::error(format!(
            "the request to {what} could not be built: {}",
            crate::text::error_chain(&e)
        ))),
        Some(Ok(Err(e))) => Err(Failure::transient(format!(
            "{what} could not be reached: {}",
            crate::text::error_chain(&e)
        ))),
        Some(Ok(Ok(Err(())))) => Err(Failure::error(format!(
            "{what} answered with more than {} MiB; narrow the query",
            MAX_ANSWER >> 20
        ))),
        Some(Ok(Ok(Ok(answer)))) => Ok(answer),
    }
}
