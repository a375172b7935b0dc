//! What lives for the whole process: the HTTP client, the AWS configuration and clients,
//! the function's own configuration source, and what other modules keep for the life of
//! the process ([`Services::local`]: cached secrets, notifications sent). Built once, on
//! first use, never per invocation.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::budget::Budget;
use crate::schema::{ConfigError, Source};

/// Environment variable holding the configuration as inline JSON.
pub const ENV_INLINE: &str = "GREENLIGHT_CONFIG";
/// Environment variable naming an SSM parameter that holds the configuration.
pub const ENV_PARAMETER: &str = "GREENLIGHT_CONFIG_PARAMETER";

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

/// The AWS clients, each built from the process's AWS configuration on first use, with
/// Greenlight's call counter; and for each a setter that puts a ready client in its place
/// (recorded replies in tests, tools).
macro_rules! clients {
    ($($name:ident, $set:ident: $sdk:ident;)*) => {
        #[derive(Default)]
        struct Clients {
            $($name: OnceCell<$sdk::Client>,)*
            s3: OnceCell<aws_sdk_s3::Client>,
        }

        impl Services {
            $(
                pub async fn $name(&self) -> &$sdk::Client {
                    let sdk = self.sdk_config().await;
                    self.clients
                        .$name
                        .get_or_init(|| async { client!($sdk, sdk) })
                        .await
                }

                pub fn $set(&self, client: $sdk::Client) {
                    let _ = self.clients.$name.set(client);
                }
            )*
        }
    };
}

clients! {
    codedeploy, set_codedeploy: aws_sdk_codedeploy;
    ssm, set_ssm: aws_sdk_ssm;
    ecs, set_ecs: aws_sdk_ecs;
    elbv2, set_elbv2: aws_sdk_elasticloadbalancingv2;
    ecr, set_ecr: aws_sdk_ecr;
    cloudwatch, set_cloudwatch: aws_sdk_cloudwatch;
    lambda, set_lambda: aws_sdk_lambda;
    secretsmanager, set_secretsmanager: aws_sdk_secretsmanager;
    logs, set_logs: aws_sdk_cloudwatchlogs;
    sns, set_sns: aws_sdk_sns;
}

/// The process-wide services.
pub struct Services {
    base: Result<BaseConfig, ConfigError>,
    base_loaded: OnceCell<Option<Source>>,
    sdk: OnceCell<SdkConfig>,
    preset_sdk: Option<SdkConfig>,
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    http_insecure: std::sync::OnceLock<Result<reqwest::Client, String>>,
    clients: Clients,
    own_function: Mutex<Option<String>>,
    own_version: Mutex<Option<String>>,
    sns_regions: Mutex<HashMap<String, aws_sdk_sns::Client>>,
    locals: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
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
            format!(
                "the HTTP client could not be set up: {} (are the system's CA certificates installed? SSL_CERT_FILE and SSL_CERT_DIR name them)",
                crate::text::error_chain(&e)
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
            clients: Clients::default(),
            own_function: Mutex::new(std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok()),
            own_version: Mutex::new(std::env::var("AWS_LAMBDA_FUNCTION_VERSION").ok()),
            sns_regions: Mutex::new(HashMap::new()),
            locals: Mutex::new(HashMap::new()),
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

    /// The version this process runs (`AWS_LAMBDA_FUNCTION_VERSION`), when it is a
    /// published one: a continuation re-invokes the same version, so a hook that started
    /// on a pinned version finishes on it. `None` for `$LATEST`.
    pub fn own_version(&self) -> Option<String> {
        self.own_version
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
            .filter(|v| !v.is_empty() && v != "$LATEST")
    }

    /// Sets the version to re-invoke (tests and tools).
    pub fn set_own_version(&self, version: Option<String>) {
        if let Ok(mut v) = self.own_version.lock() {
            *v = version;
        }
    }

    /// An S3 client; path-style addressing when a custom endpoint is configured (an
    /// emulator on localhost has no per-bucket host names).
    pub async fn s3(&self) -> &aws_sdk_s3::Client {
        let sdk = self.sdk_config().await;
        self.clients
            .s3
            .get_or_init(|| async {
                let config = aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(sdk.endpoint_url().is_some())
                    .interceptor(crate::aws::CallCounter)
                    .build();
                aws_sdk_s3::Client::from_conf(config)
            })
            .await
    }

    /// An SNS client for `region` (a topic is published to in its own region), or for the
    /// process's region when `None`; built once per region. A client set with
    /// [`Services::set_sns`] serves every region.
    pub async fn sns_for(&self, region: Option<&str>) -> aws_sdk_sns::Client {
        if let Some(preset) = self.clients.sns.get() {
            return preset.clone();
        }
        let sdk = self.sdk_config().await;
        let region = region
            .map(str::to_string)
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_default();
        let mut clients = self
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

    /// What a module keeps for the life of the process (secrets read, notifications
    /// sent), one value of each type, made on first use.
    pub fn local<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut locals = self
            .locals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = locals
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        Arc::clone(entry)
            .downcast::<T>()
            .expect("a local is stored under its own type")
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
