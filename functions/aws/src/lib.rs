//! tenantflow AWS adapters: the port traits of `tenantflow-core` implemented on the AWS SDK, plus
//! the shared `main` of the Lambda binaries.
//!
//! Layout:
//! - one module per port: [`rds`] (`Databases`), [`ssm`] (`Parameters`), [`dynamodb`]
//!   (`Records`: tenant locks and run journals, wait tokens), [`secrets`] (`Secrets`),
//!   [`codebuild`] (`Migrations`), [`ecs`] (`Services`), [`sfn`] (`Workflows`), [`s3`]
//!   (`Objects`), [`eventbridge`] (`Events`);
//! - [`errors`]: classifying SDK errors (typed variants first, then throttling/5xx → `Transient`);
//! - [`time`]: SDK timestamps to `chrono`;
//! - [`config`]: building the clients once (standard chain, adaptive retry, `AWS_ENDPOINT_URL`)
//!   and the `Ports` bundle from environment settings;
//! - [`lambda`]: `run_step`, the body of every `functions/<step>/src/main.rs`;
//! - [`metrics`]: CloudWatch metrics as Embedded Metric Format lines (the janitor's orphan count).

pub mod codebuild;
pub mod config;
pub mod dynamodb;
pub mod ecs;
pub(crate) mod errors;
pub mod eventbridge;
pub mod lambda;
pub mod metrics;
pub mod rds;
pub mod s3;
pub mod secrets;
pub mod sfn;
pub mod ssm;
pub(crate) mod time;

pub use codebuild::CodeBuildMigrations;
pub use config::{ports, ports_from_env, AwsSettings, Clients, ConfigError};
pub use dynamodb::DynamoRecords;
pub use ecs::EcsServices;
pub use eventbridge::EventBridgeEvents;
pub use rds::RdsDatabases;
pub use s3::S3Objects;
pub use secrets::SecretsManagerSecrets;
pub use sfn::SfnWorkflows;
pub use ssm::SsmParameters;
