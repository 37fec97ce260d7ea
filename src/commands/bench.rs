//! `tenantflow bench`: how much a local deploy of `0002-loyalty-points` costs over the raw work it
//! has to do, both measured in the same run on the same fleet.
//!
//! The raw work of one tenant is what no orchestration can avoid: copy its database twice (the
//! snapshot and the restore, with the SQLite online backup API) and run the release's Flyway
//! migration on the second copy (`tenantflow_local::bench::raw_work`). It runs with the same
//! concurrency as the deploy, on the fleet's `0001` databases, before the deploy; its copies are
//! deleted as it goes.

use crate::cli::{BenchArgs, EXIT_FAILED, EXIT_OK};
use crate::commands::deploy::{deploy_blocking, open_state};
use crate::commands::init::{absolute, create_fleet};
use crate::examples;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use tenantflow_core::model::Outcome;
use tenantflow_local::bench::raw_work;
use tenantflow_local::DeployOptions;

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
    create_fleet(&state, args.tenants, args.rows, args.seed)?;
    let setup = t.elapsed().as_secs_f64();
    log(format!("  fleet created in {setup:.1}s"));

    let local = open_state(&state)?;
    let release = examples::release(examples::LOYALTY)?;
    let raw_report = raw_work(&local, &release, &root.join("raw-work"), workers)
        .context("the raw-work measurement failed")?;
    let raw = raw_report.seconds;
    log(format!(
        "  raw work (2 copies + migration per tenant): {raw:.2}s (summed over threads: copying {:.2}s, migrating {:.2}s)",
        raw_report.copy_seconds, raw_report.migrate_seconds
    ));
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
                "rawCopySeconds": raw_report.copy_seconds,
                "rawMigrateSeconds": raw_report.migrate_seconds,
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
