//! The top-level command line (clap) and the dispatcher. Each command's arguments and work are in
//! its module of [`crate::commands`].

use crate::commands::bench::BenchArgs;
use crate::commands::demo::DemoArgs;
use crate::commands::deploy::DeployArgs;
use crate::commands::init::InitArgs;
use crate::commands::release::ReleaseCommand;
use crate::commands::sfn::SfnCommand;
use crate::commands::status::StatusArgs;
use crate::commands::{bench, demo, deploy, init, release, sfn, status};
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "tenantflow",
    version,
    about = "Blue/green-by-snapshot schema deploys for per-tenant databases, on Step Functions or locally",
    long_about = None
)]
pub struct Cli {
    /// The local state directory (tenant databases, parameters, releases, run histories).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "tenantflow-state",
        env = "TENANTFLOW_STATE"
    )]
    pub state: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a local fleet: N tenants, each with an active generation on release 0001-initial.
    Init(InitArgs),
    /// Deploy a release folder to the local fleet, running the real state machine definitions.
    Deploy(DeployArgs),
    /// Show each tenant's active generation, release, lock and maintenance flag, and orphans.
    Status(StatusArgs),
    /// Work with release folders.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// The whole workflow in one go: a fleet, a release that succeeds, one that fails on some tenants.
    Demo(DemoArgs),
    /// Measure a deploy against the raw work it has to do (copies + migration).
    Bench(BenchArgs),
    /// Run Amazon States Language definitions on the local engine.
    #[command(subcommand)]
    Sfn(SfnCommand),
}

/// Runs one command and returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let state = cli.state;
    match cli.command {
        Command::Release(command) => release::run(&command),
        Command::Init(args) => init::run(&state, &args),
        Command::Deploy(args) => deploy::run(&state, &args),
        Command::Status(args) => status::run(&state, &args),
        Command::Demo(args) => demo::run(&state, &args),
        Command::Bench(args) => bench::run(&state, &args),
        Command::Sfn(command) => sfn::run(command),
    }
}
