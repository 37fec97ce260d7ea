//! tenantflow AWS adapters: the port traits of `tenantflow-core` implemented on the AWS SDK, plus
//! the shared `main` of the Lambda binaries.
//!
//! Layout:
//! - one module per port, each behind the cargo feature of its service: [`rds`] (`Databases`,
//!   feature `rds`), [`ssm`] (`Parameters`, `ssm`), [`dynamodb`] (`Records`: tenant locks and run
//!   journals, wait tokens; `dynamodb`), [`ecs`] (`Services`, `ecs`), [`sfn`]
//!   (`Workflows`, `sfn`), [`s3`] (`Objects`, `s3`), [`eventbridge`] (`Events`, `eventbridge`).
//!   Each Lambda crate enables the features of the ports its step declares
//!   (`tenantflow_core::steps::StepName::ports`); the default is every service;
//! - [`errors`]: classifying SDK errors (typed variants first, then throttling/5xx → `Transient`);
//! - [`time`]: SDK timestamps to `chrono`;
//! - [`config`]: building the clients once (standard chain, adaptive retry, `AWS_ENDPOINT_URL`)
//!   and a step's `Ports` bundle (only its declared ports) from environment settings;
//! - [`lambda`]: `run_step`, the body of every `functions/<step>/src/main.rs`, and the
//!   `StepError` → Lambda `Diagnostic` mapping;
//! - [`metrics`]: CloudWatch metrics as Embedded Metric Format lines (the janitor's orphan count);
//! - [`ops`] (feature `ops`): the operator commands `tenantflow aws …` run (adopt, release push,
//!   runs, status, unlock, janitor, retry, recover), on the same adapters and core rules.

// The shared helpers serve whichever adapters this build has; with only some, parts go unused.
#![cfg_attr(
    not(all(
        feature = "rds",
        feature = "ssm",
        feature = "dynamodb",
        feature = "ecs",
        feature = "sfn",
        feature = "s3",
        feature = "eventbridge"
    )),
    allow(dead_code, unused_imports)
)]

pub mod config;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "ecs")]
pub mod ecs;
pub(crate) mod errors;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
pub mod lambda;
pub mod metrics;
#[cfg(feature = "ops")]
pub mod ops;
#[cfg(feature = "rds")]
pub mod rds;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sfn")]
pub mod sfn;
#[cfg(feature = "ssm")]
pub mod ssm;
pub(crate) mod time;

#[cfg(all(
    feature = "rds",
    feature = "ssm",
    feature = "dynamodb",
    feature = "ecs",
    feature = "sfn",
    feature = "s3",
    feature = "eventbridge"
))]
pub use config::ports;
pub use config::{
    config_loader, https_client, step_ports, step_ports_from_env, AwsSettings, ClientSource,
    Clients, ConfigError,
};
#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoRecords;
#[cfg(feature = "ecs")]
pub use ecs::EcsServices;
#[cfg(feature = "eventbridge")]
pub use eventbridge::EventBridgeEvents;
#[cfg(feature = "rds")]
pub use rds::RdsDatabases;
#[cfg(feature = "s3")]
pub use s3::S3Objects;
#[cfg(feature = "sfn")]
pub use sfn::SfnWorkflows;
#[cfg(feature = "ssm")]
pub use ssm::SsmParameters;
