//! tenantflow's embedded local backend: every port on SQLite files and folders in one state
//! directory (docs/design.md §7), the engine wiring that runs the real definitions on it, and the
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
//! - [`deploy`](mod@deploy): a local run in small pieces: publish the release, the typed
//!   trigger, the run on the engine, and the typed run report turned into the deploy report;
//! - [`recover`](mod@recover): settling the tenants of dead runs (the local liveness rule, run
//!   status `ABORTED`, partial files);
//! - [`plan`](mod@plan): `tenantflow plan`, the same deploy on a throw-away copy (or a synthetic
//!   fleet, as a simulation without copies), with the usage an estimate prices;
//! - [`bench`](mod@bench): the raw work of a deploy (two copies + migration per tenant), for the
//!   benchmark;
//! - [`state`]: `LocalState` (create/open, tenants, publishing releases); [`state_lock`]: one
//!   command at a time per state directory (an OS lock held for the life of the process);
//!   [`status`](mod@status) (tenants, and orphans by the rule the janitor applies); [`runs`]
//!   (the runs of a state directory, and retrying a run's failed tenants);
//! - [`ports`]: all adapters built together, and the core `Ports` bundle;
//! - [`crash`]: a test hook that crashes the process before its n-th write to the state
//!   (`TENANTFLOW_CRASH_AT`), for the crash campaign;
//! - [`sqlite`]: opening metadata databases and copying databases with the backup API;
//! - [`error`]: `LocalError`, the error type of the local API, and the typed failures of local
//!   copies, heavy jobs, builds and health checks.

pub mod bench;
pub mod clock;
pub mod codebuild;
pub mod crash;
pub mod deploy;
pub mod ecs;
pub mod error;
pub mod events;
pub mod flyway;
pub mod heavy;
pub mod layout;
pub mod plan;
pub mod ports;
pub mod rds;
pub mod records;
pub mod recover;
pub mod runner;
pub mod runs;
pub mod s3;
pub mod secrets;
pub mod sqlite;
pub mod ssm;
pub mod state;
pub mod state_lock;
pub mod status;
pub mod workflows;

pub use deploy::{deploy, deploy_until_stopped, DeployOptions, DeployReport, Stop, TenantRow};
pub use error::LocalError;
pub use layout::{Layout, Limits, StateConfig};
pub use ports::LocalPorts;
pub use recover::{recover, RecoverReport};
pub use state::{LocalState, PublishedRelease};
pub use state_lock::StateLock;
pub use status::{status, StatusReport};
