//! `tenantflow bench`: how much a local deploy of `0002-loyalty-points` costs over the raw work it
//! has to do, both measured in the same run on the same fleet.
//!
//! The raw work of one tenant is what no orchestration can avoid: copy its database twice (the
//! snapshot and the restore, with the SQLite online backup API) and run the release's Flyway
//! migration on the second copy (`tenantflow_local::bench::raw_work`). It runs with the same
//! concurrency as the deploy, on the fleet's `0001` databases, before the deploy; its copies are
//! deleted as it goes. The concurrency defaults to the deploy's own default (10).
//!
//! Run times on a shared machine vary by ±10% from one run to the next, so the benchmark runs
//! `--repeat` rounds (3 by default), each on a fresh copy of the fleet, and reports the medians.

use crate::commands::deploy::{deploy_blocking, open_state};
use crate::commands::exit::{EXIT_FAILED, EXIT_OK};
use crate::commands::init::{absolute, create_fleet};
use crate::examples;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::path::Path;
use std::path::PathBuf;
use std::time::Instant;
use tenantflow_core::model::Outcome;
use tenantflow_core::steps::Settings;
use tenantflow_local::bench::raw_work;
use tenantflow_local::DeployOptions;

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
    /// Also deploy the same release a second time in each round (every tenant is then up to
    /// date) and report that no-op redeploy's wall time against the deploy's.
    #[arg(long)]
    pub redeploy: bool,
}

pub fn run(_state: &Path, args: &BenchArgs) -> Result<u8> {
    // The deploy's own default, so the benchmark measures what a user gets.
    let workers = args
        .max_concurrency
        .unwrap_or(Settings::default().default_max_concurrency) as usize;
    let repeat = args.repeat.max(1);
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
    let fleet = root.join("fleet");
    let log = |m: String| {
        if !args.json {
            eprintln!("{m}");
        }
    };

    log(format!(
        "bench: {} tenants × {} rows, concurrency {workers}, {repeat} round(s), in {}",
        args.tenants,
        args.rows,
        root.display()
    ));
    let t = Instant::now();
    create_fleet(&fleet, args.tenants, args.rows, args.seed, false)?;
    let setup = t.elapsed().as_secs_f64();
    log(format!("  fleet created in {setup:.1}s"));

    let release = examples::release(examples::LOYALTY)?;
    let mut rounds: Vec<Round> = Vec::new();
    let mut last_report = None;
    for round in 1..=repeat {
        // Each round deploys a fresh copy of the same fleet.
        let state = root.join(format!("round-{round}"));
        copy_tree(&fleet, &state)?;
        let local = open_state(&state)?;
        let raw_report = raw_work(&local, &release, &root.join("raw-work"), workers)
            .context("the raw-work measurement failed")?;
        let opts = DeployOptions {
            fleet: None,
            strategy: None,
            // One wave: the canary of the example manifest would only add a barrier.
            canary: Some(0),
            max_failure_percent: None,
            max_concurrency: Some(workers as u32),
            seed: 0,
            source_snapshot: None,
            tenant_list: None,
            freeze_drain_seconds: None,
        };
        let t = Instant::now();
        let report = deploy_blocking(&local, &release, opts.clone(), true)?;
        let deploy = t.elapsed().as_secs_f64();
        let deployed = report
            .tenants
            .iter()
            .filter(|t| t.outcome == Outcome::Deployed)
            .count();
        let redeploy = if args.redeploy {
            let t = Instant::now();
            let again = deploy_blocking(&local, &release, opts, true)?;
            let seconds = t.elapsed().as_secs_f64();
            let up_to_date = again
                .tenants
                .iter()
                .filter(|t| t.outcome == Outcome::UpToDate)
                .count();
            log(format!(
                "  round {round}: no-op redeploy {seconds:.2}s ({up_to_date} up to date, {} state transitions), {:.1}% of the deploy",
                again.state_transitions,
                seconds / deploy * 100.0
            ));
            Some((seconds, up_to_date))
        } else {
            None
        };
        let r = Round {
            raw: raw_report.seconds,
            deploy,
            deployed,
            redeploy,
        };
        log(format!(
            "  round {round}: raw work {:.2}s (copying {:.2}s, migrating {:.2}s, summed over threads), deploy {:.2}s, overhead {:.1}%",
            r.raw,
            raw_report.copy_seconds,
            raw_report.migrate_seconds,
            r.deploy,
            r.overhead()
        ));
        rounds.push(r);
        last_report = Some(report);
        drop(local);
        if !args.keep {
            let _ = std::fs::remove_dir_all(&state);
        }
    }
    let Some(report) = last_report else {
        bail!("no benchmark round ran");
    };
    let median = |f: &dyn Fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let raw = median(&|r| r.raw);
    let deploy = median(&|r| r.deploy);
    let overhead = median(&|r| r.overhead());
    let deployed = rounds.iter().map(|r| r.deployed).min().unwrap_or(0);
    let redeploy = args.redeploy.then(|| {
        (
            median(&|r| r.redeploy.map_or(0.0, |x| x.0)),
            median(&|r| r.redeploy_percent().unwrap_or(0.0)),
            rounds
                .iter()
                .map(|r| r.redeploy.map_or(0, |x| x.1))
                .min()
                .unwrap_or(0),
        )
    });
    if args.json {
        crate::outln!(
            "{}",
            json!({
                "tenants": args.tenants,
                "rows": args.rows,
                "concurrency": workers,
                "rounds": rounds.iter().map(|r| json!({
                    "rawWorkSeconds": r.raw,
                    "deploySeconds": r.deploy,
                    "overheadPercent": r.overhead(),
                    "deployed": r.deployed,
                    "redeploySeconds": r.redeploy.map(|x| x.0),
                    "redeployPercent": r.redeploy_percent(),
                    "upToDate": r.redeploy.map(|x| x.1),
                })).collect::<Vec<_>>(),
                "setupSeconds": setup,
                "rawWorkSeconds": raw,
                "deploySeconds": deploy,
                "overheadPercent": overhead,
                "deployed": deployed,
                "stateTransitions": report.state_transitions,
                "maxHistoryEvents": report.max_history_events,
                "redeploySeconds": redeploy.map(|r| r.0),
                "redeployPercent": redeploy.map(|r| r.1),
                "upToDate": redeploy.map(|r| r.2),
            })
        );
    } else {
        crate::outln!(
            "tenants              {} × {} rows (concurrency {workers}, median of {repeat} round(s))",
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
        crate::outln!("overhead             {overhead:.1}%  (median of the rounds' overheads; target: at most 25%)");
        if let Some((seconds, percent, up_to_date)) = redeploy {
            crate::outln!("no-op redeploy       {seconds:.2}s   ({up_to_date}/{} up to date), {percent:.1}% of the deploy (median; target: under 10%)", args.tenants);
        }
    }
    if let (true, Some(t)) = (args.keep, temp) {
        eprintln!("kept the benchmark fleet in {}", t.keep().display());
    }
    let redeployed = redeploy.is_none_or(|r| r.2 == args.tenants);
    Ok(if deployed == args.tenants && redeployed {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// One round: raw work and deploy on the same fresh copy of the fleet.
struct Round {
    raw: f64,
    deploy: f64,
    deployed: usize,
    /// The no-op redeploy's wall time and up-to-date tenants (`--redeploy`).
    redeploy: Option<(f64, usize)>,
}

impl Round {
    fn redeploy_percent(&self) -> Option<f64> {
        self.redeploy
            .filter(|_| self.deploy > 0.0)
            .map(|(s, _)| s / self.deploy * 100.0)
    }

    fn overhead(&self) -> f64 {
        if self.raw > 0.0 {
            (self.deploy - self.raw) / self.raw * 100.0
        } else {
            0.0
        }
    }
}

/// Copies a closed state directory (no connection open on it) file by file.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}
