//! tenantflow's embedded local backend: every port on SQLite files and folders in one state
//! directory (DESIGN §7), the engine wiring that runs the real definitions on it, and the
//! high-level API the CLI uses (`LocalState`, `deploy`, `status`, the raw-work benchmark).
//!
//! Layout:
//! - [`layout`]: the state directory's paths (a public contract) and its settings file;
//! - adapters, one per port: [`rds`] (instances and snapshots as SQLite files), [`ssm`] (the
//!   active pointers), [`records`] (tenant locks and run journals, wait tokens), [`s3`], [`secrets`], [`ecs`] (health-checked rollouts), [`codebuild`] (the Flyway runner as
//!   a build), [`workflows`] (run requests and task-token callbacks), [`events`] (the local
//!   EventBridge bus delivering RDS/ECS events to `resume`);
//! - [`flyway`]: the Flyway-compatible migration runner;
//! - [`clock`]: the clock resources become ready on (the engine's virtual clock during a run);
//! - [`runner`]: the engine `TaskRunner` resolving the definitions' resources locally;
//! - [`deploy`]: publish + trigger + run the definitions on the engine, with a per-tenant report;
//! - [`bench`]: the raw work of a deploy (two copies + migration per tenant), for the benchmark;
//! - [`state`]: `LocalState` (create/open, tenants, publishing releases); [`status`];
//! - [`ports`]: all adapters built together, and the core `Ports` bundle;
//! - [`sqlite`]: opening metadata databases and copying databases with the backup API;
//! - [`error`] defines `LocalError`, the error type of the local API.

pub mod bench;
pub mod clock;
pub mod codebuild;
pub mod deploy;
pub mod ecs;
pub mod error;
pub mod events;
pub mod flyway;
pub mod heavy;
pub mod layout;
pub mod ports;
pub mod rds;
pub mod records;
pub mod runner;
pub mod s3;
pub mod secrets;
pub mod sqlite;
pub mod ssm;
pub mod state;
pub mod status;
pub mod workflows;

pub use deploy::{deploy, DeployOptions, DeployReport, TenantRow};
pub use error::LocalError;
pub use layout::{Layout, StateConfig};
pub use ports::LocalPorts;
pub use state::{LocalState, PublishedRelease};
pub use status::{status, StatusReport};
