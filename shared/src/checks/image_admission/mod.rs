//! Image admission, before the new revision starts: every container image of the target
//! revision's task definition comes from an allowed repository, is optionally pinned by
//! digest, and optionally has no ECR scan findings at or above a severity.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aws;
use crate::checks::{Check, CheckContext};
use crate::schema::ConfigError;
use crate::verdict::Evaluation;

/// ECR finding severities, lowest first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// Settings of an `imageAdmission` check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageAdmissionCheck {
    /// Repository patterns an image must match (without tag or digest); `*` matches any
    /// run of characters, e.g. `123456789012.dkr.ecr.*.amazonaws.com/*`. Empty: any.
    #[serde(default)]
    pub allowed_repositories: Vec<String>,
    /// Every image must be pinned by digest (`…@sha256:…`) in the task definition.
    #[serde(default)]
    pub require_digest: bool,
    /// Fail when an ECR image has scan findings at or above this severity.
    #[serde(default)]
    pub fail_on_severity: Option<Severity>,
}

impl Check for ImageAdmissionCheck {
    const TYPE: &'static str = "imageAdmission";
    const DESCRIPTION: &'static str = "Admits the green revision's container images: allowed repositories, pinned digests, ECR scan findings.";
    type State = ();

    fn validate(&mut self, at: &str) -> Result<(), ConfigError> {
        let c = self;
        for (i, p) in c.allowed_repositories.iter().enumerate() {
            if p.trim().is_empty() || p.contains('@') || p.contains(':') {
                return Err(ConfigError::new(
                    format!("{at}.allowedRepositories[{i}]"),
                    format!(
                        "{p:?} should be a repository pattern without tag or digest, e.g. \"123456789012.dkr.ecr.*.amazonaws.com/*\""
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn evaluate(&self, ctx: &CheckContext<'_>, _state: ()) -> Evaluation {
        let c = self;
        let revision = match ctx
            .facts
            .revision(ctx.services, ctx.deployment, &ctx.budget)
            .await
        {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        let Some(td_arn) = revision.task_definition.clone() else {
            return Evaluation::error(format!(
                "service revision {} has no task definition",
                revision.arn
            ));
        };
        let ecs = ctx.services.ecs().await;
        let call = ecs
            .describe_task_definition()
            .task_definition(&td_arn)
            .send();
        let td = match aws::call(
            &ctx.budget,
            "ECS DescribeTaskDefinition",
            "ecs:DescribeTaskDefinition",
            call,
        )
        .await
        {
            Err(e) => return e.into(),
            Ok(o) => o,
        };
        let images: Vec<(String, String)> = td
            .task_definition()
            .map(|t| {
                t.container_definitions()
                    .iter()
                    .map(|d| {
                        (
                            d.name().unwrap_or("?").to_string(),
                            d.image().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Digests ECS resolved for the revision, by container.
        let resolved: HashMap<&str, &str> = revision
            .images
            .iter()
            .filter_map(|(name, _, digest)| digest.as_deref().map(|d| (name.as_str(), d)))
            .collect();

        let mut refusals = Vec::new();
        let mut observed = Vec::new();
        for (container, image) in &images {
            let r = split_image(image);
            let mut findings = Value::Null;
            if !c.allowed_repositories.is_empty()
                && !c
                    .allowed_repositories
                    .iter()
                    .any(|p| glob(p, &r.repository))
            {
                refusals.push(format!(
                    "{container}: {} is not from an allowed repository ({})",
                    r.repository,
                    c.allowed_repositories.join(", ")
                ));
            }
            if c.require_digest && r.digest.is_none() {
                refusals.push(format!(
                    "{container}: {image} is not pinned by digest (write it as repository@sha256:…)"
                ));
            }
            if let Some(threshold) = c.fail_on_severity {
                match ecr_parts(&r.repository) {
                    None => refusals.push(format!(
                        "{container}: {} is not an ECR image, so its scan findings cannot be checked",
                        r.repository
                    )),
                    Some((registry, repo)) => {
                        let digest = r
                            .digest
                            .clone()
                            .or_else(|| resolved.get(container.as_str()).map(|d| d.to_string()));
                        let id = match (&digest, &r.tag) {
                            (Some(d), _) => aws_sdk_ecr::types::ImageIdentifier::builder()
                                .image_digest(d)
                                .build(),
                            (None, Some(t)) => aws_sdk_ecr::types::ImageIdentifier::builder()
                                .image_tag(t)
                                .build(),
                            (None, None) => aws_sdk_ecr::types::ImageIdentifier::builder()
                                .image_tag("latest")
                                .build(),
                        };
                        let call = ctx
                            .services
                            .ecr()
                            .await
                            .describe_image_scan_findings()
                            .registry_id(&registry)
                            .repository_name(&repo)
                            .image_id(id)
                            .send();
                        let out = match ctx.budget.run(call).await {
                            None => {
                                return Evaluation::unobserved(
                                    "ECR DescribeImageScanFindings did not answer within the invocation's budget",
                                );
                            }
                            Some(Err(e)) => {
                                use aws_sdk_ecr::error::ProvideErrorMetadata;
                                if e.code() == Some("ScanNotFoundException") {
                                    refusals.push(format!("{container}: {image} has no ECR scan; scan it (or enable scan on push) before deploying"));
                                    continue;
                                }
                                return aws::failure(
                                    "ECR DescribeImageScanFindings",
                                    "ecr:DescribeImageScanFindings",
                                    &e,
                                )
                                .into();
                            }
                            Some(Ok(o)) => o,
                        };
                        let status = out
                            .image_scan_status()
                            .and_then(|s| s.status())
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default();
                        if status == "IN_PROGRESS" || status == "PENDING" {
                            return Evaluation::pending(
                                std::time::Duration::from_secs(15),
                                format!("{container}: the ECR scan of {image} is {status}"),
                            );
                        }
                        let counts: HashMap<String, i32> = out
                            .image_scan_findings()
                            .and_then(|f| f.finding_severity_counts())
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| (k.as_str().to_string(), *v))
                                    .collect()
                            })
                            .unwrap_or_default();
                        findings = json!(counts);
                        let over: Vec<String> = Severity::ALL
                            .iter()
                            .rev()
                            .filter(|s| **s >= threshold)
                            .filter_map(|s| {
                                counts
                                    .get(s.as_str())
                                    .filter(|n| **n > 0)
                                    .map(|n| format!("{n} {}", s.as_str()))
                            })
                            .collect();
                        if !over.is_empty() {
                            refusals.push(format!(
                                "{container}: {image} has scan findings at or above {}: {}",
                                threshold.as_str(),
                                over.join(", ")
                            ));
                        }
                    }
                }
            }
            observed.push(json!({"container": container, "image": image, "repository": r.repository, "digest": r.digest, "findings": findings}));
        }
        let expected = json!({"allowedRepositories": c.allowed_repositories, "requireDigest": c.require_digest, "failOnSeverity": c.fail_on_severity});
        let observed = json!({"taskDefinition": td_arn, "images": observed});
        if refusals.is_empty() {
            Evaluation::pass(format!(
                "{} image(s) of {} admitted",
                images.len(),
                td_arn.rsplit('/').next().unwrap_or(&td_arn)
            ))
            .observed(observed)
            .expected(expected)
        } else {
            Evaluation::fail(format!("image not admitted: {}", refusals.join("; ")))
                .observed(observed)
                .expected(expected)
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// An image reference split into repository, tag and digest.
#[derive(Debug, PartialEq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub fn split_image(image: &str) -> ImageRef {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (image, None),
    };
    // A ':' after the last '/' is a tag; before it, a registry port.
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repository, tag) = match rest[slash..].rfind(':') {
        Some(i) => (
            rest[..slash + i].to_string(),
            Some(rest[slash + i + 1..].to_string()),
        ),
        None => (rest.to_string(), None),
    };
    ImageRef {
        repository,
        tag,
        digest,
    }
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO` → (ACCOUNT, REPO).
fn ecr_parts(repository: &str) -> Option<(String, String)> {
    let (host, repo) = repository.split_once('/')?;
    let labels: Vec<&str> = host.split('.').collect();
    (labels.len() >= 6 && labels[1] == "dkr" && labels[2] == "ecr")
        .then(|| (labels[0].to_string(), repo.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(
            "123.dkr.ecr.*.amazonaws.com/*",
            "123.dkr.ecr.eu-west-1.amazonaws.com/shop/web"
        ));
        assert!(!glob(
            "123.dkr.ecr.*.amazonaws.com/*",
            "docker.io/library/nginx"
        ));
        assert!(glob("public.ecr.aws/acme/web", "public.ecr.aws/acme/web"));
        assert!(!glob("public.ecr.aws/acme/web", "public.ecr.aws/acme/web2"));
        assert!(glob("*", "anything"));
        assert!(!glob("a*b*c", "acb"));
    }

    #[test]
    fn splits_images() {
        assert_eq!(
            split_image("localhost:5000/web:1.2"),
            ImageRef {
                repository: "localhost:5000/web".into(),
                tag: Some("1.2".into()),
                digest: None
            }
        );
        let r = split_image("123.dkr.ecr.us-east-1.amazonaws.com/web@sha256:abc");
        assert_eq!(
            (r.repository.as_str(), r.digest.as_deref()),
            (
                "123.dkr.ecr.us-east-1.amazonaws.com/web",
                Some("sha256:abc")
            )
        );
        assert_eq!(split_image("nginx").repository, "nginx");
        assert_eq!(
            ecr_parts("123.dkr.ecr.us-east-1.amazonaws.com/shop/web"),
            Some(("123".into(), "shop/web".into()))
        );
        assert_eq!(ecr_parts("docker.io/nginx"), None);
    }
}
