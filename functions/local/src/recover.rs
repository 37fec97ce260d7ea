//! Local recovery (`tenantflow recover`, and the start of every local `deploy`): settle the
//! tenants of runs that died (a killed or interrupted process) with the core logic
//! ([`tenantflow_core::recover`]).
//!
//! The caller holds the state directory's OS lock ([`crate::StateLock`]); only one command runs
//! per state directory, so every run recorded `RUNNING` is dead, and so is every run named by a
//! held tenant lock (the local liveness rule). Then:
//! 1. resources a dead process left `creating` (their copy died with it) become `failed`, so the
//!    undo can delete them; then every tenant record that needs it is settled from its journal (back or forward), the lock
//!    released and the journal marked aborted; a tenant still waiting on a resource is retried a
//!    few times and otherwise reported `pending`;
//! 2. each dead run's `runs/<run>/status` becomes `ABORTED` and `runs/<run>/recover-report.json`
//!    lists its tenants;
//! 3. partial `*.tmp-*` files (written by a dead process's atomic writes and copies) are removed.
//!
//! `dry_run` reports what would be done and changes nothing.

use crate::clock::Clock;
use crate::error::LocalError;
use crate::layout::write_atomic;
use crate::state::LocalState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tenantflow_core::recover::{needs_recovery, settle_all, RecoveryOutcome, TenantRecovery};

/// How many passes a recovery makes over tenants still `pending` (local resources settle fast).
const PASSES: usize = 5;

/// A dead run found in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecovery {
    /// The run's name (`runs/<name>/`).
    pub name: String,
    /// The status it was left with (`RUNNING`).
    pub previous_status: String,
    /// `ABORTED` (or, with `dryRun`, what it would become).
    pub status: String,
}

/// What a recovery did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoverReport {
    pub dry_run: bool,
    pub runs: Vec<RunRecovery>,
    pub tenants: Vec<TenantRecovery>,
    /// Partial `*.tmp-*` files removed (or found, with `dryRun`), relative to the state directory.
    pub tmp_files: Vec<String>,
    /// Instances and snapshots a dead process left `creating`, now `failed` (the undo deletes
    /// those of its run). Empty with `dryRun`.
    pub abandoned: Vec<String>,
}

impl RecoverReport {
    /// Nothing was (or would be) done.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
            && self.tenants.is_empty()
            && self.tmp_files.is_empty()
            && self.abandoned.is_empty()
    }

    pub fn count(&self, outcome: RecoveryOutcome) -> usize {
        self.tenants.iter().filter(|t| t.outcome == outcome).count()
    }
}

/// See the module doc. The caller must hold the state directory's lock.
pub async fn recover(state: &LocalState, dry_run: bool) -> Result<RecoverReport, LocalError> {
    let ports = state.ports()?;
    let start = crate::deploy::start::start_time(&ports)?;
    ports
        .clock
        .set(Arc::new(crate::deploy::start::FixedClock(start)));
    let layout = state.layout();

    let dead_runs = running_runs(&layout.runs_dir());
    let abandoned = if dry_run {
        Vec::new()
    } else {
        ports.databases.fail_abandoned()?
    };
    let mut tenants: Vec<TenantRecovery> = Vec::new();
    for pass in 0..PASSES {
        let candidates: Vec<_> = ports
            .records
            .all_sync()?
            .into_iter()
            .filter(needs_recovery)
            .collect();
        if candidates.is_empty() {
            break;
        }
        let rows = settle_all(
            &*ports.databases,
            &*ports.parameters,
            &*ports.records,
            &*ports.services,
            &ports.settings.default_cluster,
            candidates,
            dry_run,
            ports.clock.now(),
        )
        .await;
        merge(&mut tenants, rows);
        let pending = tenants
            .iter()
            .any(|t| t.outcome == RecoveryOutcome::Pending);
        if dry_run || !pending || pass + 1 == PASSES {
            break;
        }
        // Let what the undo started (an in-place restore copies in the background) finish: its
        // simulated time passes at once on this clock, its copy takes real time.
        ports.clock.set(Arc::new(crate::deploy::start::FixedClock(
            ports.clock.now() + chrono::Duration::seconds(60),
        )));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let mut runs = Vec::new();
    for (name, previous) in dead_runs {
        if !dry_run {
            let dir = layout.run_dir(&name);
            let mine: Vec<&TenantRecovery> = tenants
                .iter()
                .filter(|t| t.run.rsplit(':').next() == Some(name.as_str()))
                .collect();
            let body = serde_json::to_vec_pretty(&mine)
                .map_err(LocalError::serialize("recover report"))?;
            let report = dir.join("recover-report.json");
            write_atomic(&report, &body).map_err(|e| LocalError::io(&report, e))?;
            ports.workflows.set_status(&name, "ABORTED");
        }
        runs.push(RunRecovery {
            name,
            previous_status: previous,
            status: "ABORTED".into(),
        });
    }

    let mut tmp_files = Vec::new();
    collect_tmp(layout.root(), layout.root(), &mut tmp_files);
    tmp_files.sort();
    if !dry_run {
        for f in &tmp_files {
            let path = layout.root().join(f);
            std::fs::remove_file(&path).map_err(|e| LocalError::io(&path, e))?;
        }
    }
    Ok(RecoverReport {
        dry_run,
        runs,
        tenants,
        tmp_files,
        abandoned,
    })
}

/// Keeps one row per tenant: a later pass replaces an earlier one.
fn merge(all: &mut Vec<TenantRecovery>, rows: Vec<TenantRecovery>) {
    for row in rows {
        match all.iter_mut().find(|t| t.tenant == row.tenant) {
            Some(t) => *t = row,
            None => all.push(row),
        }
    }
}

/// Every run directory whose `status` says RUNNING, by name.
fn running_runs(runs: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(runs) else {
        return out;
    };
    for e in entries.flatten() {
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let status = status.trim();
        if status == "RUNNING" {
            if let Some(name) = e.file_name().to_str() {
                out.push((name.to_string(), status.to_string()));
            }
        }
    }
    out.sort();
    out
}

/// Files named `*.tmp-*` under `dir`, relative to `root`.
fn collect_tmp(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path: PathBuf = e.path();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            collect_tmp(root, &path, out);
        } else if e.file_name().to_string_lossy().contains(".tmp-") {
            if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
}
