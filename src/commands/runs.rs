//! `tenantflow runs`: the local runs of a state directory, oldest first, with their release,
//! status and outcome counts (`<state>/runs/<run>/`). `status --run RUN` shows one run's tenants;
//! `retry RUN` deploys its rolled-back and skipped tenants again.

use crate::commands::deploy::open_state;
use crate::commands::exit::EXIT_OK;
use crate::table;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::path::Path;
use tenantflow_local::runs::RunSummary;

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The runs as a table: run, release, status, start (virtual clock) and outcome counts.
pub fn render(runs: &[RunSummary]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let outcomes = r
                .outcomes
                .iter()
                .map(|(o, n)| format!("{n} {o}"))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                r.run.clone(),
                r.release.clone().unwrap_or_else(|| "-".into()),
                r.status.clone().unwrap_or_else(|| "-".into()),
                r.started_at.clone().unwrap_or_else(|| "-".into()),
                if r.tenant_list.is_some() {
                    "listed"
                } else {
                    "selection"
                }
                .to_string(),
                if outcomes.is_empty() {
                    "-".into()
                } else {
                    outcomes
                },
            ]
        })
        .collect();
    table::render(
        &[
            "run",
            "release",
            "status",
            "started (virtual)",
            "tenants",
            "outcomes",
        ],
        &rows,
    )
}

pub fn run(state: &Path, args: &RunsArgs) -> Result<u8> {
    let local = open_state(state)?;
    let runs = tenantflow_local::runs::list(&local)
        .with_context(|| format!("cannot list the runs of {}", state.display()))?;
    if args.json {
        crate::outln!("{}", json!({ "runs": runs }));
    } else if runs.is_empty() {
        crate::outln!("no runs in {}", state.display());
    } else {
        crate::out!("{}", render(&runs));
    }
    Ok(EXIT_OK)
}
