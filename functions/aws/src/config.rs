//! Building the SDK clients (once per process) and the [`Ports`] bundle from the environment.
//!
//! Clients come from the standard AWS config chain (env, profile, container/IMDS credentials,
//! region) with **adaptive retry**. `AWS_ENDPOINT_URL` (and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`) is honoured by that chain, which is how tests point the adapters
//! at `moto_server`; S3 then uses path-style addressing. [`Clients::with_interceptors`] builds the
//! same clients with extra SDK interceptors: the emulator suite (`tests/emulator`) records every
//! call through it.
//!
//! Settings, all optional:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TENANTFLOW_STATE_MACHINE_ARN` | release state machine the trigger starts | unset (trigger fails `Internal`) |
//! | `TENANTFLOW_MIGRATION_PROJECT` | CodeBuild project running Flyway | `tenantflow-migrate` |
//! | `TENANTFLOW_EVENT_BUS` | EventBridge bus for run notifications | `default` |
//! | `TENANTFLOW_DEFAULT_CLUSTER` | ECS cluster of tenants without `/tenantflow/<ns>/service` | `tenantflow` |
//! | `TENANTFLOW_DEFAULT_MAX_CONCURRENCY` | tenant concurrency cap when the manifest sets none | `10` |
//! | `TENANTFLOW_BUILD_CONCURRENCY` | concurrent CodeBuild builds the account allows | `20` |
//! | `TENANTFLOW_NAMESPACE` | the stack namespace: only tenants equal to it or starting with `<it>-` are planned and janitored | unset (every tenant) |

use crate::{
    CodeBuildMigrations, EcsServices, EventBridgeEvents, RdsDatabases, S3Objects,
    SecretsManagerSecrets, SfnWorkflows, SsmParameters,
};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use std::sync::Arc;
use tenantflow_core::steps::{Ports, Settings};

/// A setting that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Every SDK client the adapters use, built once from one [`SdkConfig`].
#[derive(Clone, Debug)]
pub struct Clients {
    pub rds: aws_sdk_rds::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub s3: aws_sdk_s3::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
}

impl Clients {
    /// Builds every client from `conf`.
    pub fn from_conf(conf: &SdkConfig) -> Self {
        Self::with_interceptors(conf, &[])
    }

    /// [`Clients::from_conf`], every client also running `interceptors`. A test hook: the
    /// emulator suite (`tests/emulator`) records each call's operation and request this way.
    pub fn with_interceptors(conf: &SdkConfig, interceptors: &[SharedInterceptor]) -> Self {
        macro_rules! client {
            ($sdk:ident $(, $extra:ident($arg:expr))?) => {{
                let mut b = $sdk::config::Builder::from(conf);
                for i in interceptors {
                    b.push_interceptor(i.clone());
                }
                $sdk::Client::from_conf(b$(.$extra($arg))?.build())
            }};
        }
        Clients {
            rds: client!(aws_sdk_rds),
            ssm: client!(aws_sdk_ssm),
            secrets: client!(aws_sdk_secretsmanager),
            codebuild: client!(aws_sdk_codebuild),
            ecs: client!(aws_sdk_ecs),
            sfn: client!(aws_sdk_sfn),
            s3: client!(aws_sdk_s3, force_path_style(conf.endpoint_url().is_some())),
            eventbridge: client!(aws_sdk_eventbridge),
        }
    }
}

/// The standard config chain with adaptive retry.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::adaptive())
        .load()
        .await
}

/// Non-SDK settings of the adapters and steps (see the module doc for the variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSettings {
    pub state_machine_arn: Option<String>,
    pub migration_project: String,
    pub event_bus: String,
    pub steps: Settings,
}

impl AwsSettings {
    /// Reads the settings through `get` (`std::env::var` in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Settings::default();
        let num = |name: &str, default: u32| -> Result<u32, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(ConfigError {
                        name: name.to_string(),
                        value: v,
                        reason: "must be a whole number ≥ 1".to_string(),
                    }),
                },
            }
        };
        let text = |name: &str, default: &str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Ok(AwsSettings {
            state_machine_arn: get("TENANTFLOW_STATE_MACHINE_ARN").filter(|v| !v.is_empty()),
            migration_project: text("TENANTFLOW_MIGRATION_PROJECT", "tenantflow-migrate"),
            event_bus: text("TENANTFLOW_EVENT_BUS", "default"),
            steps: Settings {
                default_max_concurrency: num(
                    "TENANTFLOW_DEFAULT_MAX_CONCURRENCY",
                    defaults.default_max_concurrency,
                )?,
                build_concurrency: num("TENANTFLOW_BUILD_CONCURRENCY", defaults.build_concurrency)?,
                default_cluster: text("TENANTFLOW_DEFAULT_CLUSTER", &defaults.default_cluster),
                namespace: get("TENANTFLOW_NAMESPACE").filter(|v| !v.trim().is_empty()),
            },
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// The [`Ports`] bundle over the given clients.
pub fn ports(clients: Clients, settings: AwsSettings) -> Ports {
    Ports {
        databases: Arc::new(RdsDatabases::new(clients.rds)),
        parameters: Arc::new(SsmParameters::new(clients.ssm)),
        secrets: Arc::new(SecretsManagerSecrets::new(clients.secrets)),
        migrations: Arc::new(CodeBuildMigrations::new(
            clients.codebuild,
            settings.migration_project,
        )),
        services: Arc::new(EcsServices::new(clients.ecs)),
        workflows: Arc::new(SfnWorkflows::new(clients.sfn, settings.state_machine_arn)),
        objects: Arc::new(S3Objects::new(clients.s3)),
        events: Arc::new(EventBridgeEvents::new(
            clients.eventbridge,
            settings.event_bus,
        )),
        settings: settings.steps,
    }
}

/// The production bundle: clients from the standard chain, settings from the environment.
pub async fn ports_from_env() -> Result<Ports, ConfigError> {
    let settings = AwsSettings::from_env()?;
    let conf = sdk_config().await;
    Ok(ports(Clients::from_conf(&conf), settings))
}
