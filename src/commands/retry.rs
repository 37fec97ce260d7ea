//! `tenantflow retry RUN`: a new run of RUN's release, as published, with RUN's overrides,
//! limited to the tenants RUN rolled back or skipped. The tenant list goes into the release bucket
//! and the new run's input names it by key (`tenantList`), never inline.

use crate::commands::deploy::{exit_code, open_state, render_report, report_json};
use crate::commands::exit::EXIT_OK;
use crate::progress::RunProgress;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The run to retry (`tenantflow runs` lists them).
    pub run: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// When another command is using the state directory, wait for it instead of exiting 4.
    #[arg(long)]
    pub wait: bool,
}

pub fn run(state: &Path, args: &RetryArgs) -> Result<u8> {
    let local = open_state(state)?;
    let _lock = crate::commands::lock::lock_state(state, args.wait)?;
    // Holding the lock, every run recorded RUNNING is dead: settle what it left first.
    crate::commands::recover::settle_before_deploy(&local)?;
    let plan = tenantflow_local::runs::plan_retry(&local, &args.run)
        .with_context(|| format!("cannot retry run {}", args.run))?;
    if plan.tenants.is_empty() {
        if args.json {
            crate::outln!(
                "{}",
                json!({"run": null, "retryOf": args.run, "release": plan.release, "tenants": []})
            );
        } else {
            crate::outln!(
                "run {} has no rolled-back or skipped tenant: nothing to retry",
                args.run
            );
        }
        return Ok(EXIT_OK);
    }
    let progress = if args.json {
        None
    } else {
        RunProgress::on_terminal().map(Arc::new)
    };
    let observer = progress
        .clone()
        .map(|p| p as Arc<dyn statemachine::Observer>);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let count = plan.tenants.len();
    let result = runtime.block_on(tenantflow_local::runs::retry(&local, plan, observer));
    if let Some(p) = &progress {
        p.finish();
    }
    let report = result.with_context(|| format!("retry of run {} failed", args.run))?;
    if args.json {
        let mut v = report_json(&report);
        v["retryOf"] = json!(args.run);
        crate::outln!("{v}");
    } else {
        crate::outln!("retrying {count} tenants of run {}", args.run);
        crate::out!("{}", render_report(&report));
    }
    Ok(exit_code(&report))
}
