//! `tenantflow bench`: how much a local deploy of `0002-loyalty-points` costs over the raw work it
//! has to do, both measured in the same run on the same fleet.
//!
//! The raw work of one tenant is what no orchestration can avoid: copy its database twice (the
//! snapshot and the restore, with the SQLite online backup API) and run the release's Flyway
//! migration on the second copy. It runs with the same concurrency as the deploy, on the fleet's
//! `0001` databases, before the deploy; its copies are deleted afterwards.

use crate::cli::{BenchArgs, EXIT_FAILED, EXIT_OK};
use crate::commands::deploy::{deploy_blocking, open_state};
use crate::commands::init::{absolute, create_fleet};
use crate::examples;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tenantflow_core::model::Outcome;
use tenantflow_local::flyway::{load_dir, migrate_path, MigrateOptions};
use tenantflow_local::sqlite::backup_copy;
use tenantflow_local::{DeployOptions, Layout};

/// Copies each database twice and migrates the second copy, `workers` tenants at a time.
/// Returns the wall time in seconds.
pub fn raw_work(
    databases: &[PathBuf],
    release_dir: &Path,
    scratch: &Path,
    workers: usize,
) -> Result<f64> {
    let scripts = load_dir(release_dir)
        .map_err(|e| anyhow!("cannot load the scripts of {}: {e}", release_dir.display()))?;
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(db) = databases.get(i) else { break };
                let snapshot = scratch.join(format!("snapshot-{i}.sqlite"));
                let candidate = scratch.join(format!("candidate-{i}.sqlite"));
                let result = backup_copy(db, &snapshot)
                    .and_then(|()| backup_copy(&snapshot, &candidate))
                    .and_then(|()| {
                        migrate_path(&candidate, &scripts, &MigrateOptions::default())
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = result {
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(format!("{}: {e}", db.display()));
                    }
                    break;
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(scratch);
    if let Some(e) = failure.into_inner().ok().flatten() {
        bail!("raw work failed: {e}");
    }
    Ok(elapsed)
}

pub fn run(_state: &Path, args: &BenchArgs) -> Result<u8> {
    let workers = args.max_concurrency.map(|n| n as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let temp = match &args.dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("tenantflow-bench-")
                .tempdir()
                .context("cannot create a temporary folder for the benchmark")?,
        ),
    };
    let root = match (&args.dir, &temp) {
        (Some(d), _) => absolute(d),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => bail!("no benchmark folder"),
    };
    let state = root.join("state");
    let log = |m: String| {
        if !args.json {
            eprintln!("{m}");
        }
    };

    log(format!(
        "bench: {} tenants × {} rows, concurrency {workers}, in {}",
        args.tenants,
        args.rows,
        root.display()
    ));
    let t = Instant::now();
    let fleet = create_fleet(&state, args.tenants, args.rows, args.seed)?;
    let setup = t.elapsed().as_secs_f64();
    log(format!("  fleet created in {setup:.1}s"));

    let layout = Layout::new(&state);
    let databases: Vec<PathBuf> = fleet
        .tenants
        .iter()
        .map(|(t, _)| layout.instance_file(&format!("{t}-{}", fleet.generation)))
        .collect();
    let release = examples::release(examples::LOYALTY)?;
    let raw = raw_work(&databases, &release, &root.join("raw-work"), workers)?;
    log(format!(
        "  raw work (2 copies + migration per tenant): {raw:.2}s"
    ));

    let local = open_state(&state)?;
    let opts = DeployOptions {
        fleet: None,
        strategy: None,
        // One wave: the canary of the example manifest would only add a barrier.
        canary: Some(0),
        max_failure_percent: None,
        max_concurrency: Some(workers as u32),
        seed: 0,
        source_snapshot: None,
    };
    let t = Instant::now();
    let report = deploy_blocking(&local, &release, opts, true)?;
    let deploy = t.elapsed().as_secs_f64();
    let deployed = report
        .tenants
        .iter()
        .filter(|t| t.outcome == Outcome::Deployed)
        .count();
    let overhead = if raw > 0.0 {
        (deploy - raw) / raw * 100.0
    } else {
        0.0
    };
    if args.json {
        crate::outln!(
            "{}",
            json!({
                "tenants": args.tenants,
                "rows": args.rows,
                "concurrency": workers,
                "setupSeconds": setup,
                "rawWorkSeconds": raw,
                "deploySeconds": deploy,
                "overheadPercent": overhead,
                "deployed": deployed,
                "stateTransitions": report.state_transitions,
                "maxHistoryEvents": report.max_history_events,
            })
        );
    } else {
        crate::outln!(
            "tenants              {} × {} rows (concurrency {workers})",
            args.tenants,
            args.rows
        );
        crate::outln!("raw work             {raw:.2}s   (each database copied twice + Flyway migration of {})", examples::LOYALTY);
        crate::outln!(
            "deploy               {deploy:.2}s   ({deployed}/{} deployed, {} state transitions, max {} history events per execution)",
            report.tenants.len(),
            report.state_transitions,
            report.max_history_events
        );
        crate::outln!("overhead             {overhead:.1}%  (target: at most 25%)");
    }
    if let (true, Some(t)) = (args.keep, temp) {
        eprintln!("kept the benchmark fleet in {}", t.keep().display());
    }
    Ok(
        if deployed == report.tenants.len() && deployed == args.tenants {
            EXIT_OK
        } else {
            EXIT_FAILED
        },
    )
}
