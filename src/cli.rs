//! The top-level command line (clap) and the dispatcher. Each command's arguments and work are in
//! its module of [`crate::commands`].

use crate::commands::bench::BenchArgs;
use crate::commands::demo::DemoArgs;
use crate::commands::deploy::DeployArgs;
use crate::commands::exit::{EXIT_BUSY, EXIT_CODES_HELP, EXIT_FAILED, EXIT_USAGE};
use crate::commands::init::InitArgs;
use crate::commands::plan::PlanArgs;
use crate::commands::recover::RecoverArgs;
use crate::commands::release::ReleaseCommand;
use crate::commands::retry::RetryArgs;
use crate::commands::runs::RunsArgs;
use crate::commands::sfn::SfnCommand;
use crate::commands::status::StatusArgs;
use crate::commands::{
    bench, demo, deploy, init, plan, recover, release, retry, runs, sfn, status,
};
use anyhow::Result;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "tenantflow",
    version,
    about = "Blue/green-by-snapshot schema deploys for per-tenant databases, on Step Functions or locally",
    long_about = None,
    after_help = EXIT_CODES_HELP
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
    /// What a deploy of a release would do, how long it would take and what it would cost: the
    /// deploy run on a throw-away copy of the fleet (or a synthetic one). Changes nothing.
    Plan(PlanArgs),
    /// Show each tenant's active generation, release, lock and maintenance flag, and orphans
    /// (`--run RUN`: one run's per-tenant table).
    Status(StatusArgs),
    /// Settle the tenants of runs that died: roll each back (or forward), unfreeze, unlock.
    Recover(RecoverArgs),
    /// List the local runs of the state directory.
    Runs(RunsArgs),
    /// Deploy a run's release again to that run's rolled-back and skipped tenants.
    Retry(RetryArgs),
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
    /// Operate a deployed stack: adopt, release push, runs, status, unlock, janitor, retry, recover.
    #[cfg(feature = "aws")]
    Aws(crate::commands::aws::AwsArgs),
}

impl Command {
    /// Whether the command was asked for JSON output (`--json`).
    pub fn json(&self) -> bool {
        match self {
            Command::Init(a) => a.json,
            Command::Deploy(a) => a.json,
            Command::Plan(a) => a.json,
            Command::Status(a) => a.json,
            Command::Recover(a) => a.json,
            Command::Runs(a) => a.json,
            Command::Retry(a) => a.json,
            Command::Bench(a) => a.json,
            #[cfg(feature = "aws")]
            Command::Aws(a) => a.json,
            // `sfn run` reports its own failures (it never returns an error).
            Command::Release(_) | Command::Demo(_) | Command::Sfn(_) => false,
        }
    }
}

/// The whole program: parses `args`, runs the command, reports a failure on stderr (as one JSON
/// object with `--json`) and returns the exit code (`commands::exit`).
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, args.iter().any(|a| a == "--json")),
    };
    let json = cli.command.json();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = error_code(&e);
            let message = format!("{e:#}");
            if json {
                eprintln!("{}", error_json(&message, code));
            } else {
                eprintln!("error: {message}");
            }
            code
        }
    }
}

/// The exit code of a failed command: 4 when another command holds the state directory, else 1.
fn error_code(e: &anyhow::Error) -> u8 {
    let busy = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<tenantflow_local::LocalError>(),
            Some(tenantflow_local::LocalError::Busy { .. })
        )
    });
    if busy {
        EXIT_BUSY
    } else {
        EXIT_FAILED
    }
}

/// clap's answer to arguments it cannot parse: help and version as clap prints them, any other
/// error with exit code 2 (as one JSON object when `--json` was among the arguments).
fn usage_error(e: &clap::Error, json: bool) -> u8 {
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shown || !json {
        let _ = e.print();
        return if e.use_stderr() { EXIT_USAGE } else { 0 };
    }
    let text = e.render().to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    eprintln!("{}", error_json(message, EXIT_USAGE));
    EXIT_USAGE
}

/// `{"error": message, "exitCode": code}`.
pub fn error_json(message: &str, code: u8) -> serde_json::Value {
    serde_json::json!({"error": message, "exitCode": code})
}

/// Runs one command and returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let state = cli.state;
    match cli.command {
        Command::Release(command) => release::run(&command),
        Command::Init(args) => init::run(&state, &args),
        Command::Deploy(args) => deploy::run(&state, &args),
        Command::Plan(args) if args.source.aws => crate::commands::plan_aws::run(&args),
        Command::Plan(args) => plan::run(&state, &args),
        Command::Status(args) => status::run(&state, &args),
        Command::Recover(args) => recover::run(&state, &args),
        Command::Runs(args) => runs::run(&state, &args),
        Command::Retry(args) => retry::run(&state, &args),
        Command::Demo(args) => demo::run(&state, &args),
        Command::Bench(args) => bench::run(&state, &args),
        Command::Sfn(command) => sfn::run(command),
        #[cfg(feature = "aws")]
        Command::Aws(args) => crate::commands::aws::run(&args),
    }
}
