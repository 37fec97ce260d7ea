//! `tenantflow recover`: settle the tenants of local runs that died (a killed or interrupted
//! `deploy`): each is rolled back, or forward when its rollout had COMPLETED, from its run
//! journal; its lock is released, its write freeze cleared, the run marked `ABORTED` with a
//! `recover-report.json`, and partial `*.tmp-*` files removed ([`tenantflow_local::recover`]).
//! `deploy` runs the same recovery first ([`settle_before_deploy`]).
//!
//! Exit codes: 0 nothing left to recover (or, `--dry-run`, nothing to do); 1 a tenant could not
//! be recovered (the output says why; its lock stays, `status` shows it) or the command failed;
//! 3 a tenant is still waiting on a resource: run `recover` again; 4 another command holds the
//! state directory; 5 `--dry-run` found something to recover.

use crate::commands::exit::{EXIT_ATTENTION, EXIT_FAILED, EXIT_OK, EXIT_PARTIAL};
use crate::table;
use anyhow::{Context, Result};
use clap::Args;
use std::path::Path;
use tenantflow_core::recover::RecoveryOutcome;
use tenantflow_local::{LocalState, RecoverReport};

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Show what would be done per tenant, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// When another command is using the state directory, wait for it instead of exiting 4.
    #[arg(long)]
    pub wait: bool,
}

/// Runs a recovery on a fresh runtime. The caller holds the state directory's lock.
pub fn recover_blocking(local: &LocalState, dry_run: bool) -> Result<RecoverReport> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime
        .block_on(tenantflow_local::recover(local, dry_run))
        .with_context(|| format!("cannot recover {}", local.root().display()))
}

/// The exit code of a report (see the module doc).
pub fn exit_code(r: &RecoverReport) -> u8 {
    if r.dry_run {
        return if r.is_empty() {
            EXIT_OK
        } else {
            EXIT_ATTENTION
        };
    }
    if r.count(RecoveryOutcome::Failed) > 0 {
        EXIT_FAILED
    } else if r.count(RecoveryOutcome::Pending) > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    }
}

/// The human form of a report.
pub fn render(r: &RecoverReport) -> String {
    if r.is_empty() {
        return "nothing to recover: no dead run holds a tenant\n".to_string();
    }
    let verb = if r.dry_run {
        "would recover"
    } else {
        "recovered"
    };
    let rows: Vec<Vec<String>> = r
        .tenants
        .iter()
        .map(|t| {
            vec![
                t.tenant.clone(),
                t.run.rsplit(':').next().unwrap_or(&t.run).to_string(),
                t.step.clone().unwrap_or_else(|| "-".into()),
                t.action.as_str().to_string(),
                format!("{:?}", t.outcome).to_lowercase(),
                t.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&table::render(
            &["tenant", "run", "step", "action", "outcome", "detail"],
            &rows,
        ));
    }
    for run in &r.runs {
        out.push_str(&format!(
            "run {}: {} -> {}\n",
            run.name, run.previous_status, run.status
        ));
    }
    if !r.tmp_files.is_empty() {
        out.push_str(&format!(
            "partial files {}: {}\n",
            if r.dry_run { "found" } else { "removed" },
            r.tmp_files.len()
        ));
    }
    out.push_str(&format!(
        "{verb}: {} tenant(s); pending: {}; failed: {}\n",
        r.tenants.len(),
        r.count(RecoveryOutcome::Pending),
        r.count(RecoveryOutcome::Failed)
    ));
    if r.count(RecoveryOutcome::Pending) > 0 {
        out.push_str("some tenants wait on a resource: run `tenantflow recover` again\n");
    }
    out
}

/// `deploy`'s first step: settle what dead runs left, and say so on stderr. A tenant that
/// cannot be settled stays locked, and the deploy reports it `skipped`.
pub fn settle_before_deploy(local: &LocalState) -> Result<()> {
    let report = recover_blocking(local, false)?;
    if !report.is_empty() {
        eprint!(
            "before deploying, settled what dead runs left:\n{}",
            render(&report)
        );
    }
    Ok(())
}

pub fn run(state: &Path, args: &RecoverArgs) -> Result<u8> {
    // Opened here, not through `deploy` (which calls this module): no import cycle.
    let local = LocalState::open(state)
        .with_context(|| format!("cannot use {} as the state directory", state.display()))?;
    let _lock = crate::commands::lock::lock_state(state, args.wait)?;
    let report = recover_blocking(&local, args.dry_run)?;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_value(&report).context("cannot serialize the report")?
        );
    } else {
        crate::out!("{}", render(&report));
    }
    Ok(exit_code(&report))
}
