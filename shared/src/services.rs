//! What lives for the whole process: the HTTP client, the AWS configuration and clients,
//! and the function's own configuration source. Built once, on first use, never per
//! invocation.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::budget::Budget;
use crate::config::{ConfigError, ENV_INLINE, ENV_PARAMETER, Source};

/// Where the function's own configuration comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BaseConfig {
    /// Neither variable is set.
    #[default]
    None,
    /// `GREENLIGHT_CONFIG`: inline JSON.
    Inline(String),
    /// `GREENLIGHT_CONFIG_PARAMETER`: an SSM parameter name (String or SecureString).
    Parameter(String),
}

impl BaseConfig {
    pub fn from_env() -> Result<BaseConfig, ConfigError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        BaseConfig::from_env_values(get(ENV_INLINE), get(ENV_PARAMETER))
    }

    /// From the values of `GREENLIGHT_CONFIG` and `GREENLIGHT_CONFIG_PARAMETER`.
    pub fn from_env_values(
        inline: Option<String>,
        parameter: Option<String>,
    ) -> Result<BaseConfig, ConfigError> {
        match (inline, parameter) {
            (Some(_), Some(_)) => Err(ConfigError {
                origin: "the function's environment".into(),
                path: String::new(),
                message: format!("both {ENV_INLINE} and {ENV_PARAMETER} are set; keep one"),
            }),
            (Some(json), None) => Ok(BaseConfig::Inline(json)),
            (None, Some(name)) => Ok(BaseConfig::Parameter(name)),
            (None, None) => Ok(BaseConfig::None),
        }
    }
}

/// A client of `$sdk` built from `$config`, with Greenlight's call counter.
macro_rules! client {
    ($sdk:ident, $config:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .interceptor(crate::aws::CallCounter)
                .build(),
        )
    };
}

/// The process-wide services.
pub struct Services {
    base: Result<BaseConfig, ConfigError>,
    base_loaded: OnceCell<Option<Source>>,
    sdk: OnceCell<SdkConfig>,
    preset_sdk: Option<SdkConfig>,
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    http_insecure: std::sync::OnceLock<Result<reqwest::Client, String>>,
    codedeploy: OnceCell<aws_sdk_codedeploy::Client>,
    ssm: OnceCell<aws_sdk_ssm::Client>,
    ecs: OnceCell<aws_sdk_ecs::Client>,
    elbv2: OnceCell<aws_sdk_elasticloadbalancingv2::Client>,
    ecr: OnceCell<aws_sdk_ecr::Client>,
    cloudwatch: OnceCell<aws_sdk_cloudwatch::Client>,
    lambda: OnceCell<aws_sdk_lambda::Client>,
    own_function: std::sync::Mutex<Option<String>>,
    secretsmanager: OnceCell<aws_sdk_secretsmanager::Client>,
    sns: OnceCell<aws_sdk_sns::Client>,
    s3: OnceCell<aws_sdk_s3::Client>,
    logs: OnceCell<aws_sdk_cloudwatchlogs::Client>,
    notify: crate::notify::ProcessState,
}

/// Describes a failed AWS call in words (code, message and request id only), naming the
/// IAM permission when access was denied. See [`crate::aws::failure`].
pub fn aws_error<E>(
    call: &str,
    permission: &str,
    err: &aws_sdk_ecs::error::SdkError<E, crate::aws::HttpResponse>,
) -> String
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error,
{
    crate::aws::error_text(call, permission, err)
}

/// Retries and timeouts for every AWS call, suited to a gate that shares the account's
/// API quotas with many others: standard retry mode (exponential backoff with full
/// jitter on throttling, 5xx and timeouts), up to six attempts, backoff from 500 ms up to
/// 8 s between them. The invocation's budget bounds the whole call on top of this; a call
/// the budget cuts off, like one that stays throttled, could not observe yet, and the
/// check observes again later.
pub fn aws_retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(8))
}

pub fn aws_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .build()
}

/// Builds an HTTP client. It fails only when TLS cannot be set up (no CA certificates on
/// the system): the checks and notifications that need it then fail with this message,
/// and the hook still answers.
pub(crate) fn build_http(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        .user_agent(concat!("greenlight/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            format!(
                "the HTTP client could not be set up: {text} (are the system's CA certificates installed? SSL_CERT_FILE and SSL_CERT_DIR name them)"
            )
        })
}

impl Services {
    /// For a Lambda process: configuration from the environment, AWS settings from the
    /// standard chain (`AWS_REGION`, the function's role, `AWS_ENDPOINT_URL`, …).
    pub fn from_env() -> Services {
        Services::new(BaseConfig::from_env(), None)
    }

    /// With an explicit configuration source and, optionally, a ready AWS configuration.
    pub fn new(base: Result<BaseConfig, ConfigError>, sdk: Option<SdkConfig>) -> Services {
        Services {
            base,
            base_loaded: OnceCell::new(),
            sdk: OnceCell::new(),
            preset_sdk: sdk,
            http: std::sync::OnceLock::new(),
            http_insecure: std::sync::OnceLock::new(),
            codedeploy: OnceCell::new(),
            ssm: OnceCell::new(),
            ecs: OnceCell::new(),
            elbv2: OnceCell::new(),
            ecr: OnceCell::new(),
            cloudwatch: OnceCell::new(),
            lambda: OnceCell::new(),
            own_function: std::sync::Mutex::new(std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok()),
            secretsmanager: OnceCell::new(),
            sns: OnceCell::new(),
            s3: OnceCell::new(),
            logs: OnceCell::new(),
            notify: crate::notify::ProcessState::default(),
        }
    }

    /// The client of the `http` check, built on first use (loading the CA certificates is
    /// most of a cold start's work otherwise).
    pub fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(|| {
                build_http(
                    reqwest::Client::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .redirect(reqwest::redirect::Policy::limited(5)),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A client that accepts any TLS certificate, for checks that ask for it.
    pub fn http_insecure(&self) -> Result<&reqwest::Client, String> {
        self.http_insecure
            .get_or_init(|| {
                build_http(
                    reqwest::Client::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .redirect(reqwest::redirect::Policy::limited(5))
                        .danger_accept_invalid_certs(true),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub async fn ecs(&self) -> &aws_sdk_ecs::Client {
        let sdk = self.sdk_config().await;
        self.ecs
            .get_or_init(|| async { client!(aws_sdk_ecs, sdk) })
            .await
    }

    pub async fn elbv2(&self) -> &aws_sdk_elasticloadbalancingv2::Client {
        let sdk = self.sdk_config().await;
        self.elbv2
            .get_or_init(|| async { client!(aws_sdk_elasticloadbalancingv2, sdk) })
            .await
    }

    pub async fn ecr(&self) -> &aws_sdk_ecr::Client {
        let sdk = self.sdk_config().await;
        self.ecr
            .get_or_init(|| async { client!(aws_sdk_ecr, sdk) })
            .await
    }

    pub async fn cloudwatch(&self) -> &aws_sdk_cloudwatch::Client {
        let sdk = self.sdk_config().await;
        self.cloudwatch
            .get_or_init(|| async { client!(aws_sdk_cloudwatch, sdk) })
            .await
    }

    pub async fn lambda(&self) -> &aws_sdk_lambda::Client {
        let sdk = self.sdk_config().await;
        self.lambda
            .get_or_init(|| async { client!(aws_sdk_lambda, sdk) })
            .await
    }

    /// Uses `client` for Lambda calls.
    pub fn set_lambda(&self, client: aws_sdk_lambda::Client) {
        let _ = self.lambda.set(client);
    }

    /// The function this process runs as (`AWS_LAMBDA_FUNCTION_NAME`), which a CodeDeploy
    /// hook re-invokes to wait beyond one invocation.
    pub fn own_function(&self) -> Option<String> {
        self.own_function
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// Sets the function to re-invoke (tests and tools).
    pub fn set_own_function(&self, name: Option<String>) {
        if let Ok(mut f) = self.own_function.lock() {
            *f = name;
        }
    }

    /// Uses `client` for CloudWatch calls.
    pub fn set_cloudwatch(&self, client: aws_sdk_cloudwatch::Client) {
        let _ = self.cloudwatch.set(client);
    }

    /// Uses `client` for ECS calls (tests with recorded replies).
    pub fn set_ecs(&self, client: aws_sdk_ecs::Client) {
        let _ = self.ecs.set(client);
    }

    /// Uses `client` for ELBv2 calls.
    pub fn set_elbv2(&self, client: aws_sdk_elasticloadbalancingv2::Client) {
        let _ = self.elbv2.set(client);
    }

    /// Uses `client` for ECR calls.
    pub fn set_ecr(&self, client: aws_sdk_ecr::Client) {
        let _ = self.ecr.set(client);
    }

    /// Uses `client` for Secrets Manager calls.
    pub fn set_secretsmanager(&self, client: aws_sdk_secretsmanager::Client) {
        let _ = self.secretsmanager.set(client);
    }

    /// Uses `client` for SNS calls (every region).
    pub fn set_sns(&self, client: aws_sdk_sns::Client) {
        let _ = self.sns.set(client);
    }

    /// An S3 client; path-style addressing when a custom endpoint is configured (an
    /// emulator on localhost has no per-bucket host names).
    pub async fn s3(&self) -> &aws_sdk_s3::Client {
        let sdk = self.sdk_config().await;
        self.s3
            .get_or_init(|| async {
                let config = aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(sdk.endpoint_url().is_some())
                    .interceptor(crate::aws::CallCounter)
                    .build();
                aws_sdk_s3::Client::from_conf(config)
            })
            .await
    }

    /// A CloudWatch Logs client (a migration task's log lines).
    pub async fn logs(&self) -> &aws_sdk_cloudwatchlogs::Client {
        let sdk = self.sdk_config().await;
        self.logs
            .get_or_init(|| async { client!(aws_sdk_cloudwatchlogs, sdk) })
            .await
    }

    pub async fn secretsmanager(&self) -> &aws_sdk_secretsmanager::Client {
        let sdk = self.sdk_config().await;
        self.secretsmanager
            .get_or_init(|| async { client!(aws_sdk_secretsmanager, sdk) })
            .await
    }

    /// An SNS client for `region` (a topic is published to in its own region), or for the
    /// process's region when `None`; built once per region. A client set with
    /// [`Services::set_sns`] serves every region.
    pub async fn sns_for(&self, region: Option<&str>) -> aws_sdk_sns::Client {
        if let Some(preset) = self.sns.get() {
            return preset.clone();
        }
        let sdk = self.sdk_config().await;
        let region = region
            .map(str::to_string)
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_default();
        let mut clients = self
            .notify
            .sns_regions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let mut config =
                    aws_sdk_sns::config::Builder::from(sdk).interceptor(crate::aws::CallCounter);
                if !region.is_empty() {
                    config = config.region(aws_config::Region::new(region));
                }
                aws_sdk_sns::Client::from_conf(config.build())
            })
            .clone()
    }

    /// Notification state kept for the life of the process: secrets read, what was sent.
    pub(crate) fn notify_state(&self) -> &crate::notify::ProcessState {
        &self.notify
    }

    pub async fn sdk_config(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                if let Some(preset) = &self.preset_sdk {
                    return preset.clone();
                }
                aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(aws_retry())
                    .timeout_config(aws_timeouts())
                    .load()
                    .await
            })
            .await
    }

    pub async fn codedeploy(&self) -> &aws_sdk_codedeploy::Client {
        let sdk = self.sdk_config().await;
        self.codedeploy
            .get_or_init(|| async { client!(aws_sdk_codedeploy, sdk) })
            .await
    }

    pub async fn ssm(&self) -> &aws_sdk_ssm::Client {
        let sdk = self.sdk_config().await;
        self.ssm
            .get_or_init(|| async { client!(aws_sdk_ssm, sdk) })
            .await
    }

    /// The function's own configuration (from its environment), loaded once. A failed
    /// SSM read is not cached: the next invocation tries again.
    pub async fn base_config(&self, budget: &Budget) -> Result<Option<Source>, ConfigError> {
        let base = self.base.as_ref().map_err(Clone::clone)?;
        self.base_loaded
            .get_or_try_init(|| async {
                match base {
                    BaseConfig::None => Ok(None),
                    BaseConfig::Inline(json) => parse_json(ENV_INLINE, json).map(Some),
                    BaseConfig::Parameter(name) => {
                        let origin = format!("SSM parameter {name} ({ENV_PARAMETER})");
                        let call = self
                            .ssm()
                            .await
                            .get_parameter()
                            .name(name)
                            .with_decryption(true)
                            .send();
                        let read = crate::aws::call(
                            budget,
                            "SSM GetParameter",
                            "ssm:GetParameter on it (and kms:Decrypt for a SecureString)",
                            call,
                        )
                        .await;
                        let text = match read {
                            Err(f) => {
                                let hint = if f.message.contains("ParameterNotFound") {
                                    " (check the name and the region)"
                                } else {
                                    ""
                                };
                                return Err(ConfigError {
                                    origin,
                                    path: String::new(),
                                    message: format!("could not be read: {}{hint}", f.message),
                                });
                            }
                            Ok(out) => out.parameter.and_then(|p| p.value).unwrap_or_default(),
                        };
                        parse_json(&origin, &text).map(Some)
                    }
                }
            })
            .await
            .cloned()
    }
}

fn parse_json(origin: &str, text: &str) -> Result<Source, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError {
        origin: origin.to_string(),
        path: String::new(),
        message: format!("is not valid JSON: {e}"),
    })?;
    Ok(Source {
        origin: origin.to_string(),
        value,
    })
}
