//! The store: `approvals/<id>/request.json` and `approvals/<id>/decision.json` in the
//! bucket the stack creates. Both are written only if absent (`If-None-Match: *`), so a
//! request is written once and an approval takes exactly one decision: of two concurrent
//! clicks, S3 lets one write win and refuses the other (412), which is then told who
//! decided. Objects are read up to [`MAX_OBJECT`] bytes.

use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Decision, PREFIX, Request};
use crate::aws;
use crate::budget::Budget;
use crate::services::Services;
use crate::verdict::Failure;

/// The largest object read.
pub const MAX_OBJECT: usize = 64 * 1024;

/// The store in `bucket`.
pub struct Store<'a> {
    pub services: &'a Services,
    pub bucket: &'a str,
}

/// The outcome of a conditional write.
#[derive(Debug, PartialEq)]
pub enum Written<T> {
    /// This write created the object.
    Created,
    /// The object existed: what it holds.
    Existing(T),
}

fn key(id: &str, name: &str) -> String {
    format!("{PREFIX}{id}/{name}.json")
}

impl Store<'_> {
    async fn get<T: DeserializeOwned>(
        &self,
        id: &str,
        name: &str,
        budget: &Budget,
    ) -> Result<Option<T>, Failure> {
        let k = key(id, name);
        let what = format!("S3 GetObject of s3://{}/{k}", self.bucket);
        let s3 = self.services.s3().await;
        let out = match budget
            .run(Box::pin(s3.get_object().bucket(self.bucket).key(&k).send()))
            .await
        {
            None => {
                return Err(Failure::transient(format!(
                    "{what} did not answer within the invocation's budget"
                )));
            }
            Some(Err(e)) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return Ok(None);
                }
                return Err(aws::failure(
                    &what,
                    "s3:GetObject on the approval store",
                    &e,
                ));
            }
            Some(Ok(out)) => out,
        };
        if out.content_length().unwrap_or(0) > MAX_OBJECT as i64 {
            return Err(Failure::error(format!(
                "{what}: the object is larger than {MAX_OBJECT} bytes"
            )));
        }
        // Read chunk by chunk, and no further than the limit, whatever the length said.
        let mut stream = out.body;
        let read = async {
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    Failure::transient(format!(
                        "{what}: reading the body failed: {}",
                        crate::text::error_chain(&e)
                    ))
                })?;
                if body.len() + chunk.len() > MAX_OBJECT {
                    return Err(Failure::error(format!(
                        "{what}: the object is larger than {MAX_OBJECT} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        let body = budget.run(read).await.ok_or_else(|| {
            Failure::transient(format!(
                "{what}: the body did not arrive within the invocation's budget"
            ))
        })??;
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            Failure::error(format!("{what}: not a Greenlight approval document ({e})"))
        })
    }

    async fn put_new<T: Serialize + DeserializeOwned>(
        &self,
        id: &str,
        name: &str,
        doc: &T,
        budget: &Budget,
    ) -> Result<Written<T>, Failure> {
        let k = key(id, name);
        let what = format!("S3 PutObject of s3://{}/{k}", self.bucket);
        let body = serde_json::to_vec_pretty(doc).map_err(|e| Failure::error(e.to_string()))?;
        let s3 = self.services.s3().await;
        let put = s3
            .put_object()
            .bucket(self.bucket)
            .key(&k)
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send();
        match budget.run(Box::pin(put)).await {
            None => Err(Failure::transient(format!(
                "{what} did not answer within the invocation's budget"
            ))),
            Some(Ok(_)) => Ok(Written::Created),
            Some(Err(e)) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // 412: the object exists. 409: another conditional write to it is in
                // flight; it will exist once that one lands.
                if matches!(status, Some(412 | 409)) {
                    for _ in 0..5 {
                        if let Some(existing) = self.get(id, name, budget).await? {
                            return Ok(Written::Existing(existing));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    return Err(Failure::transient(format!(
                        "{what}: S3 said the object exists, but it could not be read"
                    )));
                }
                Err(aws::failure(
                    &what,
                    "s3:PutObject on the approval store",
                    &e,
                ))
            }
        }
    }

    pub async fn request(&self, id: &str, budget: &Budget) -> Result<Option<Request>, Failure> {
        self.get(id, "request", budget).await
    }

    pub async fn decision(&self, id: &str, budget: &Budget) -> Result<Option<Decision>, Failure> {
        self.get(id, "decision", budget).await
    }

    /// Writes the request unless one exists; either way, the request in force.
    pub async fn ask(&self, r: &Request, budget: &Budget) -> Result<Request, Failure> {
        match self.put_new(&r.id, "request", r, budget).await? {
            Written::Created => Ok(r.clone()),
            Written::Existing(existing) => Ok(existing),
        }
    }

    /// Writes the decision unless one exists.
    pub async fn decide(
        &self,
        d: &Decision,
        budget: &Budget,
    ) -> Result<Written<Decision>, Failure> {
        self.put_new(&d.id, "decision", d, budget).await
    }
}
