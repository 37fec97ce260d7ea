//! One module per command, each with its clap arguments and its work; [`exit`] holds the
//! process exit codes they return.

pub mod bench;
pub mod demo;
pub mod deploy;
pub mod exit;
pub mod init;
pub mod release;
pub mod sfn;
pub mod status;
