//! Command-line definitions (clap) and the dispatcher. Each command's work is in [`crate::commands`].

use crate::commands;
use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tenantflow_core::manifest::{FleetMode, Strategy};

/// Exit code: everything went as asked.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command (or the run itself) failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of `deploy`: the run finished, but some tenants were rolled back or skipped.
pub const EXIT_PARTIAL: u8 = 2;

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

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Number of tenants.
    #[arg(long, default_value_t = 8)]
    pub tenants: usize,
    /// Customers and orders per tenant.
    #[arg(long, default_value_t = 200)]
    pub rows: usize,
    /// Seed of the data generator (also picks which tenants hold duplicate emails).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the created tenants as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--fleet` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetArg {
    Independent,
    AllOrNothing,
}

impl From<FleetArg> for FleetMode {
    fn from(f: FleetArg) -> Self {
        match f {
            FleetArg::Independent => FleetMode::Independent,
            FleetArg::AllOrNothing => FleetMode::AllOrNothing,
        }
    }
}

/// `--strategy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    BlueGreen,
    InPlace,
    Promote,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::BlueGreen => Strategy::BlueGreen,
            StrategyArg::InPlace => Strategy::InPlace,
            StrategyArg::Promote => Strategy::Promote,
        }
    }
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The release folder: Flyway scripts plus manifest.json (see `release pack`).
    pub release_dir: PathBuf,
    /// Override the manifest's fleet mode.
    #[arg(long, value_enum)]
    pub fleet: Option<FleetArg>,
    /// Override the manifest's strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Tenants in the canary wave.
    #[arg(long, value_name = "N")]
    pub canary: Option<u32>,
    /// A wave whose failure percentage exceeds this stops all later waves.
    #[arg(long, value_name = "P")]
    pub max_failure_percent: Option<f64>,
    /// At most this many tenants at once.
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u32>,
    /// For strategy promote: the snapshot to restore.
    #[arg(long, value_name = "SNAPSHOT_ID")]
    pub source_snapshot: Option<String>,
    /// Seed of the engine's random choices (retry jitter).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Write DIR/manifest.json for the Flyway scripts in DIR, with their sha256s.
    Pack(PackArgs),
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The release folder.
    pub dir: PathBuf,
    /// Release id (default: the existing manifest's, else the folder name).
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    #[arg(long, value_enum)]
    pub fleet: Option<FleetArg>,
    /// One-line description of the release.
    #[arg(long)]
    pub description: Option<String>,
    /// SQL the app's health check runs; the rollout fails if it errors.
    #[arg(long, value_name = "SQL")]
    pub health_check: Option<String>,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of tenants.
    #[arg(long, default_value_t = 8)]
    pub tenants: usize,
    /// Customers and orders per tenant.
    #[arg(long, default_value_t = 200)]
    pub rows: usize,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Number of tenants.
    #[arg(long, default_value_t = 200)]
    pub tenants: usize,
    /// Customers and orders per tenant.
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// Tenants deployed at once, in the deploy and in the raw work (default: the deploy's own
    /// default, 10).
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u32>,
    /// Rounds to run, each on a fresh copy of the fleet; the median is reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub repeat: usize,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where to build the benchmark fleet (default: a new temporary folder, removed afterwards).
    /// The benchmark never touches --state.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the benchmark fleet afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SfnCommand {
    /// Run a definition on the local engine (virtual time).
    Run(commands::sfn::SfnRunArgs),
}

/// Runs one command and returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let state = cli.state;
    match cli.command {
        Command::Release(ReleaseCommand::Pack(args)) => commands::release::pack(&args),
        Command::Init(args) => commands::init::run(&state, &args),
        Command::Deploy(args) => commands::deploy::run(&state, &args),
        Command::Status(args) => commands::status::run(&state, &args),
        Command::Demo(args) => commands::demo::run(&state, &args),
        Command::Bench(args) => commands::bench::run(&state, &args),
        Command::Sfn(SfnCommand::Run(args)) => commands::sfn::run(args),
    }
}
