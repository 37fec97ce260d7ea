//! `tenantflow aws runs` and `tenantflow aws status [RUN]`.

use super::json::print_json;
use super::watch::{Progress, SLEEPER};
use crate::commands::exit::{EXIT_FAILED, EXIT_OK, EXIT_PARTIAL};
use anyhow::Result;
use clap::Args;
use std::time::Duration;
use tenantflow_aws::ops::runs::{list_runs, status as run_status, RunStatus};
use tenantflow_aws::ops::watch::watch;
use tenantflow_aws::ops::Ops;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run's name (as `runs` and `release push` print it) or execution ARN; default: newest.
    pub run: Option<String>,
    /// Poll until the run ends, with a progress bar per wave or phase, then print the final
    /// table (with --json: only the final document).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls with --watch.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub interval: u64,
}

pub async fn list(ops: &Ops, json: bool) -> Result<u8> {
    let runs = list_runs(ops).await?;
    if json {
        print_json(&runs)?;
        return Ok(EXIT_OK);
    }
    let fmt = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.status.clone(),
                fmt(&r.start),
                fmt(&r.stop),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        crate::table::render(&["run", "status", "started", "stopped"], &rows)
    );
    Ok(EXIT_OK)
}

/// Exit code: 0 running or every tenant deployed, 3 ended with tenants not deployed, 1 the
/// execution failed without a report.
pub async fn status(ops: &Ops, args: &StatusArgs, json: bool) -> Result<u8> {
    let st = if args.watch {
        follow(
            ops,
            args.run.as_deref(),
            Duration::from_secs(args.interval.max(1)),
        )
        .await?
    } else {
        run_status(ops, args.run.as_deref()).await?
    };
    if json {
        print_json(&st)?;
    } else {
        print(&st);
    }
    Ok(exit_code(&st))
}

/// Polls `run` until it ends, drawing its progress; returns the final status.
pub async fn follow(ops: &Ops, run: Option<&str>, interval: Duration) -> Result<RunStatus> {
    let mut progress = Progress::on_stderr();
    let st = watch(ops, run, interval, &SLEEPER, &mut |st| progress.update(st)).await;
    progress.finish();
    Ok(st?)
}

/// See [`status`].
pub fn exit_code(st: &RunStatus) -> u8 {
    match (&st.report, st.run.status.as_str()) {
        (_, "RUNNING") => EXIT_OK,
        (Some(r), _) if r.counts.deployed == r.counts.total && r.status == "SUCCEEDED" => EXIT_OK,
        (Some(_), _) => EXIT_PARTIAL,
        (None, "SUCCEEDED") => EXIT_OK,
        (None, _) => EXIT_FAILED,
    }
}

fn bar(done: i64, total: i64) -> String {
    const W: i64 = 30;
    let filled = if total > 0 { done * W / total } else { 0 };
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled as usize),
        "-".repeat((W - filled) as usize)
    )
}

pub fn print(st: &RunStatus) {
    crate::outln!("run {}: {}", st.run.name, st.run.status);
    if let Some(n) = st.planned {
        crate::outln!("planned tenants: {n}");
    }
    for s in &st.skipped {
        crate::outln!("skipped by the plan: {} ({})", s.tenant, s.reason);
    }
    for m in &st.maps {
        let done = m.succeeded + m.failed + m.timed_out + m.aborted;
        let name = m.map_run_arn.rsplit(':').next().unwrap_or(&m.map_run_arn);
        crate::outln!(
            "{name} {}: {} running {}, failed {}",
            m.status,
            bar(done, m.total),
            m.running,
            m.failed
        );
    }
    if let Some(r) = &st.report {
        for p in &r.phases {
            crate::outln!(
                "{} {}: deployed {}, rolled back {}, skipped {}, rollback failed {} ({:.0}% failed)",
                serde_json::to_value(p.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                p.name,
                p.counts.deployed,
                p.counts.rolled_back,
                p.counts.skipped,
                p.counts.rollback_failed,
                p.failure_percent
            );
        }
        let rows: Vec<Vec<String>> = r
            .tenants
            .iter()
            .map(|t| {
                vec![
                    t.tenant.clone(),
                    serde_json::to_value(t.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    t.from_generation.clone().unwrap_or_default(),
                    t.to_generation.clone().unwrap_or_default(),
                    t.duration_seconds
                        .map(|s| crate::commands::deploy::human_duration(s as f64))
                        .unwrap_or_default(),
                    t.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        crate::out!(
            "{}",
            crate::table::render(
                &["tenant", "outcome", "from", "to", "duration", "error"],
                &rows
            )
        );
        crate::outln!(
            "release {}: {} of {} deployed, {} rolled back, {} skipped, {} rollback failed{}",
            r.release.id,
            r.counts.deployed,
            r.counts.total,
            r.counts.rolled_back,
            r.counts.skipped,
            r.counts.rollback_failed,
            r.stop_reason
                .as_ref()
                .map(|s| format!(" (stopped: {s})"))
                .unwrap_or_default()
        );
    } else if let (Some(e), Some(c)) = (&st.error, &st.cause) {
        crate::outln!("error {e}: {c}");
    }
    for h in &st.held {
        crate::outln!("still locked: {} by {} ({})", h.tenant, h.holder, h.phase);
    }
}
