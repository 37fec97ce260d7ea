//! One module per command (`aws`, feature `aws`: the `tenantflow aws …` commands, one module each), each with its clap arguments and its work; [`exit`] holds the
//! process exit codes they return, and [`lock`] the state directory's lock the commands that
//! change it take.

#[cfg(feature = "aws")]
pub mod aws;
pub mod bench;
pub mod demo;
pub mod deploy;
pub mod exit;
pub mod init;
pub mod lock;
pub mod plan;
pub mod plan_aws;
pub mod plan_source;
pub mod recover;
pub mod release;
pub mod retry;
pub mod runs;
pub mod sfn;
pub mod status;
