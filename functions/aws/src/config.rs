//! Building the SDK clients (once per process) and the [`Ports`] bundle from the environment.
//!
//! Clients come from the standard AWS config chain (env, profile, container/IMDS credentials,
//! region) with **adaptive retry**. `AWS_ENDPOINT_URL` (and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`) is honoured by that chain, which is how tests point the adapters
//! at `moto_server`; S3 then uses path-style addressing. [`Clients::with_interceptors`] builds the
//! same clients with extra SDK interceptors: the emulator suite (`tests/emulator`) records every
//! call through it.
//!
//! A Lambda builds only the clients of the ports its step declares ([`step_ports`], decided at
//! compile time from [`LambdaStep::STEP`]); every other port of its bundle is
//! [`tenantflow_core::steps::Unavailable`]. Each client needs this crate's feature of the same
//! service (`rds`, `ssm`, `dynamodb`, `ecs`, `sfn`, `s3`, `eventbridge`): a step whose port lacks its feature
//! does not compile.
//!
//! Settings, all optional:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TENANTFLOW_STATE_MACHINE_ARN` | release state machine the trigger starts | unset (trigger fails `Internal`) |
//! | `TENANTFLOW_MIGRATION_PROJECT` | CodeBuild project running Flyway; no Lambda uses it (the definition starts the build itself), it is only parsed | `tenantflow-migrate` |
//! | `TENANTFLOW_TABLE` | DynamoDB table of the tenant records (locks, run journals) and wait tokens | `tenantflow-records` |
//! | `TENANTFLOW_EVENT_BUS` | EventBridge bus for run notifications | `default` |
//! | `TENANTFLOW_DEFAULT_CLUSTER` | ECS cluster of tenants without `/tenantflow/<ns>/service` | `tenantflow` |
//! | `TENANTFLOW_DEFAULT_MAX_CONCURRENCY` | tenant concurrency cap when the manifest sets none | `10` |
//! | `TENANTFLOW_BUILD_CONCURRENCY` | concurrent CodeBuild builds the account allows | `20` |
//! | `TENANTFLOW_NAMESPACE` | the stack namespace: only tenants equal to it or starting with `<it>-` are planned and janitored | unset (every tenant) |

use crate::lambda::LambdaStep;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use std::sync::Arc;
use tenantflow_core::ports::{
    Databases, Events, Objects, Parameters, Records, Services, Workflows,
};
use tenantflow_core::steps::{Port, Ports, Settings};

/// A setting that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Where a bundle's SDK clients come from: the process's [`SdkConfig`] (each client is built
/// when a port needs it) or prebuilt [`Clients`] (tests).
pub trait ClientSource {
    #[cfg(feature = "rds")]
    fn rds(&self) -> aws_sdk_rds::Client;
    #[cfg(feature = "ssm")]
    fn ssm(&self) -> aws_sdk_ssm::Client;
    #[cfg(feature = "dynamodb")]
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client;
    #[cfg(feature = "ecs")]
    fn ecs(&self) -> aws_sdk_ecs::Client;
    #[cfg(feature = "sfn")]
    fn sfn(&self) -> aws_sdk_sfn::Client;
    #[cfg(feature = "s3")]
    fn s3(&self) -> aws_sdk_s3::Client;
    #[cfg(feature = "eventbridge")]
    fn eventbridge(&self) -> aws_sdk_eventbridge::Client;
}

impl ClientSource for SdkConfig {
    #[cfg(feature = "rds")]
    fn rds(&self) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(self)
    }
    #[cfg(feature = "ssm")]
    fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(self)
    }
    #[cfg(feature = "dynamodb")]
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(self)
    }
    #[cfg(feature = "ecs")]
    fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(self)
    }
    #[cfg(feature = "sfn")]
    fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(self)
    }
    #[cfg(feature = "s3")]
    fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(self)
            .force_path_style(self.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
    #[cfg(feature = "eventbridge")]
    fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(self)
    }
}

/// Every SDK client this build of the adapters has (one per enabled service feature).
#[derive(Clone, Debug)]
pub struct Clients {
    #[cfg(feature = "rds")]
    pub rds: aws_sdk_rds::Client,
    #[cfg(feature = "ssm")]
    pub ssm: aws_sdk_ssm::Client,
    #[cfg(feature = "dynamodb")]
    pub dynamodb: aws_sdk_dynamodb::Client,
    #[cfg(feature = "ecs")]
    pub ecs: aws_sdk_ecs::Client,
    #[cfg(feature = "sfn")]
    pub sfn: aws_sdk_sfn::Client,
    #[cfg(feature = "s3")]
    pub s3: aws_sdk_s3::Client,
    #[cfg(feature = "eventbridge")]
    pub eventbridge: aws_sdk_eventbridge::Client,
}

impl Clients {
    /// Builds every client of this build from `conf`.
    pub fn from_conf(conf: &SdkConfig) -> Self {
        Self::with_interceptors(conf, &[])
    }

    /// [`Clients::from_conf`], every client also running `interceptors`. A test hook: the
    /// emulator suite (`tests/emulator`) records each call's operation and request this way.
    pub fn with_interceptors(conf: &SdkConfig, interceptors: &[SharedInterceptor]) -> Self {
        #[allow(unused_macros)]
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
            #[cfg(feature = "rds")]
            rds: client!(aws_sdk_rds),
            #[cfg(feature = "ssm")]
            ssm: client!(aws_sdk_ssm),
            #[cfg(feature = "dynamodb")]
            dynamodb: client!(aws_sdk_dynamodb),
            #[cfg(feature = "ecs")]
            ecs: client!(aws_sdk_ecs),
            #[cfg(feature = "sfn")]
            sfn: client!(aws_sdk_sfn),
            #[cfg(feature = "s3")]
            s3: client!(aws_sdk_s3, force_path_style(conf.endpoint_url().is_some())),
            #[cfg(feature = "eventbridge")]
            eventbridge: client!(aws_sdk_eventbridge),
        }
    }
}

impl ClientSource for Clients {
    #[cfg(feature = "rds")]
    fn rds(&self) -> aws_sdk_rds::Client {
        self.rds.clone()
    }
    #[cfg(feature = "ssm")]
    fn ssm(&self) -> aws_sdk_ssm::Client {
        self.ssm.clone()
    }
    #[cfg(feature = "dynamodb")]
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb.clone()
    }
    #[cfg(feature = "ecs")]
    fn ecs(&self) -> aws_sdk_ecs::Client {
        self.ecs.clone()
    }
    #[cfg(feature = "sfn")]
    fn sfn(&self) -> aws_sdk_sfn::Client {
        self.sfn.clone()
    }
    #[cfg(feature = "s3")]
    fn s3(&self) -> aws_sdk_s3::Client {
        self.s3.clone()
    }
    #[cfg(feature = "eventbridge")]
    fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        self.eventbridge.clone()
    }
}

/// The standard config chain with adaptive retry and [`https_client`].
pub async fn sdk_config() -> SdkConfig {
    config_loader().load().await
}

/// The standard config chain's loader with adaptive retry and [`https_client`]: what every
/// tenantflow process (Lambda, CLI, emulator suite) builds its SDK config from.
pub fn config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(RetryConfig::adaptive())
}

/// The HTTP client of every SDK client: hyper 1 + rustls with ring. The SDK crates' own default
/// (`default-https-client`, rustls with aws-lc-rs) is switched off in the workspace to keep each
/// Lambda small; without this client set, an SDK call would fail with "no HTTP client". Plain
/// `http://` endpoints (moto in the emulator suite) work too.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{tls, Builder};
    Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Non-SDK settings of the adapters and steps (see the module doc for the variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSettings {
    pub state_machine_arn: Option<String>,
    /// Unused since no step calls CodeBuild: the template still sets the variable for every
    /// function. Remove it here when the template stops setting it.
    pub migration_project: String,
    pub event_bus: String,
    /// DynamoDB table of the `Records` port.
    pub table: String,
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
            table: text("TENANTFLOW_TABLE", "tenantflow-records"),
            steps: Settings {
                default_max_concurrency: num(
                    "TENANTFLOW_DEFAULT_MAX_CONCURRENCY",
                    defaults.default_max_concurrency,
                )?,
                build_concurrency: num("TENANTFLOW_BUILD_CONCURRENCY", defaults.build_concurrency)?,
                default_cluster: text("TENANTFLOW_DEFAULT_CLUSTER", &defaults.default_cluster),
                namespace: get("TENANTFLOW_NAMESPACE").filter(|v| !v.trim().is_empty()),
                quota_hint: None,
            },
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// The bundle of the Lambda running step `S`: a client and adapter for each port `S` declares,
/// [`tenantflow_core::steps::Unavailable`] for the others. Which ports are built is decided at
/// compile time, so a binary links no adapter (and no SDK crate) its step does not call.
pub fn step_ports<S: LambdaStep>(clients: &impl ClientSource, settings: AwsSettings) -> Ports {
    let mut ports = Ports::unavailable(S::STEP, settings.steps);
    if let Some(p) = databases::<S>(clients) {
        ports.databases = p;
    }
    if let Some(p) = parameters::<S>(clients) {
        ports.parameters = p;
    }
    if let Some(p) = records::<S>(clients, settings.table) {
        ports.records = p;
    }
    if let Some(p) = services::<S>(clients) {
        ports.services = p;
    }
    if let Some(p) = workflows::<S>(clients, settings.state_machine_arn) {
        ports.workflows = p;
    }
    if let Some(p) = objects::<S>(clients) {
        ports.objects = p;
    }
    if let Some(p) = events::<S>(clients, settings.event_bus) {
        ports.events = p;
    }
    ports
}

/// One port's adapter for step `$S` if it declares the port (a compile-time constant), else
/// `None`. Without the service's feature, a step that declares the port fails to compile.
macro_rules! port_adapter {
    ($name:ident, $port:ident, $feature:literal, $trait:ident, |$c:ident $(, $arg:ident: $ty:ty)*| $build:expr) => {
        #[cfg(feature = $feature)]
        fn $name<S: LambdaStep>($c: &impl ClientSource $(, $arg: $ty)*) -> Option<Arc<dyn $trait>> {
            if const { S::STEP.uses(Port::$port) } {
                Some(Arc::new($build))
            } else {
                None
            }
        }

        #[cfg(not(feature = $feature))]
        fn $name<S: LambdaStep>(_: &impl ClientSource $(, _: $ty)*) -> Option<Arc<dyn $trait>> {
            const {
                assert!(
                    !S::STEP.uses(Port::$port),
                    concat!(
                        "this step declares the ", stringify!($port),
                        " port: enable feature `", $feature, "` of tenantflow-aws"
                    )
                )
            };
            None
        }
    };
}

port_adapter!(databases, Databases, "rds", Databases, |c| {
    crate::rds::RdsDatabases::new(c.rds())
});
port_adapter!(parameters, Parameters, "ssm", Parameters, |c| {
    crate::ssm::SsmParameters::new(c.ssm())
});
port_adapter!(records, Records, "dynamodb", Records, |c, table: String| {
    crate::dynamodb::DynamoRecords::new(c.dynamodb(), table)
});
port_adapter!(services, Services, "ecs", Services, |c| {
    crate::ecs::EcsServices::new(c.ecs())
});
port_adapter!(
    workflows,
    Workflows,
    "sfn",
    Workflows,
    |c, state_machine_arn: Option<String>| crate::sfn::SfnWorkflows::new(
        c.sfn(),
        state_machine_arn
    )
);
port_adapter!(objects, Objects, "s3", Objects, |c| {
    crate::s3::S3Objects::new(c.s3())
});
port_adapter!(events, Events, "eventbridge", Events, |c, bus: String| {
    crate::eventbridge::EventBridgeEvents::new(c.eventbridge(), bus)
});

/// The bundle of every port over `clients` (every service feature on): what the tests run every
/// step on.
#[cfg(all(
    feature = "rds",
    feature = "ssm",
    feature = "dynamodb",
    feature = "ecs",
    feature = "sfn",
    feature = "s3",
    feature = "eventbridge"
))]
pub fn ports(clients: Clients, settings: AwsSettings) -> Ports {
    use crate::{
        DynamoRecords, EcsServices, EventBridgeEvents, RdsDatabases, S3Objects, SfnWorkflows,
        SsmParameters,
    };
    Ports {
        databases: Arc::new(RdsDatabases::new(clients.rds)),
        parameters: Arc::new(SsmParameters::new(clients.ssm)),
        records: Arc::new(DynamoRecords::new(clients.dynamodb, settings.table)),
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

/// The production bundle of step `S`: its clients from the standard chain, settings from the
/// environment.
pub async fn step_ports_from_env<S: LambdaStep>() -> Result<Ports, ConfigError> {
    let settings = AwsSettings::from_env()?;
    let conf = sdk_config().await;
    Ok(step_ports::<S>(&conf, settings))
}
