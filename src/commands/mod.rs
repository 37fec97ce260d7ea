//! One module per command.

pub mod bench;
pub mod demo;
pub mod deploy;
pub mod init;
pub mod release;
pub mod sfn;
pub mod status;
