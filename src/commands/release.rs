//! `tenantflow release pack DIR`.

use crate::commands::deploy::{FleetArg, StrategyArg};
use crate::commands::exit::EXIT_OK;
use crate::pack::{pack as write_manifest, PackOptions, MANIFEST};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

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

/// Runs a `release` subcommand and returns the process exit code.
pub fn run(command: &ReleaseCommand) -> Result<u8> {
    match command {
        ReleaseCommand::Pack(args) => pack(args),
    }
}

pub fn pack(args: &PackArgs) -> Result<u8> {
    let opts = PackOptions {
        id: args.id.clone(),
        strategy: args.strategy.map(Into::into),
        fleet: args.fleet.map(Into::into),
        description: args.description.clone(),
        health_check: args.health_check.clone(),
    };
    let manifest = write_manifest(&args.dir, &opts)?;
    if args.json {
        crate::outln!("{}", serde_json::to_string(&manifest)?);
    } else {
        crate::outln!(
            "wrote {} for release {} ({} scripts):",
            args.dir.join(MANIFEST).display(),
            manifest.release,
            manifest.scripts.len()
        );
        for s in &manifest.scripts {
            crate::outln!("  {}  {}", s.sha256, s.name);
        }
    }
    Ok(EXIT_OK)
}
