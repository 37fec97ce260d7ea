//! `tenantflow plan RELEASE_DIR`: what a deploy of the release would do, how long it would take
//! and what it would cost, before anything changes.
//!
//! The plan runs the deploy itself (the same definition, `list-tenants`, overrides and seed) on a
//! throw-away copy of the fleet (`tenantflow_local::plan`), or on a synthetic fleet of `--tenants
//! N` for a what-if, and reads off each tenant's action, the waves, the concurrency and which
//! limit binds it, the virtual wall time and the usage; `estimate` prices the usage. The state
//! directory is only read.

use crate::commands::deploy::{
    human_duration, open_state, outcome_name, parse_concurrency, tenant_error, FleetArg,
    OverrideArgs,
};
use crate::commands::exit::EXIT_OK;
use crate::estimate::{self, Assumptions, Estimate, PriceTable};
use crate::table;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tenantflow_core::manifest::FleetMode;
use tenantflow_core::model::Outcome;
use tenantflow_local::deploy::{DeployOptions, TenantRow, NOT_DEPLOYABLE};
use tenantflow_local::layout::{Durations, Limits};
use tenantflow_local::plan::{Fleet, PlanOptions, Simulation};
use tenantflow_local::{Layout, StateLock};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The release folder: Flyway scripts plus manifest.json.
    pub release_dir: PathBuf,
    /// Override the manifest's fleet mode (as `deploy --fleet`).
    #[arg(long, value_enum)]
    pub fleet: Option<FleetArg>,
    /// Plan a rehearsal (the same as `--fleet rehearse`).
    #[arg(long, conflicts_with = "fleet")]
    pub rehearse: bool,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Copy every tenant database and run the real migrations and health checks (small fleets);
    /// without it no database is copied and every migration and health check is assumed to pass.
    #[arg(long, conflicts_with = "tenants")]
    pub copy_data: bool,
    /// Plan on a synthetic fleet of N tenants instead of the state directory (a what-if).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub tenants: Option<u32>,
    /// Simulated durations, JSON `{"snapshotSeconds", "restoreSeconds", "rolloutSeconds",
    /// "buildSeconds"}` (default: the state directory's; the flags below override single ones).
    #[arg(long, value_name = "FILE")]
    pub durations_from: Option<PathBuf>,
    #[arg(long, value_name = "S")]
    pub snapshot_seconds: Option<u64>,
    #[arg(long, value_name = "S")]
    pub restore_seconds: Option<u64>,
    #[arg(long, value_name = "S")]
    pub rollout_seconds: Option<u64>,
    #[arg(long, value_name = "S")]
    pub build_seconds: Option<u64>,
    /// DB instance quota of the account (the fleet's own instances count against it).
    #[arg(long, value_name = "N")]
    pub instance_quota: Option<u32>,
    /// Manual snapshot quota of the account (retained snapshots count against it).
    #[arg(long, value_name = "N")]
    pub snapshot_quota: Option<u32>,
    /// Concurrent migration builds.
    #[arg(long, value_name = "N")]
    pub build_limit: Option<u32>,
    /// The tenants' RDS instance class, for the price of the candidates' overlap.
    #[arg(long, default_value = "db.t4g.medium")]
    pub instance_class: String,
    /// Billed seconds of one Lambda invocation (an assumption; the handlers make a few API calls).
    #[arg(long, value_name = "S", default_value_t = 0.2)]
    pub lambda_seconds: f64,
    /// A price table of the shape of infra/prices.json (default: the one compiled in).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: crate::commands::plan_source::AwsSource,
}

pub(crate) fn options(args: &PlanArgs) -> DeployOptions {
    let fleet = match (args.rehearse, args.fleet) {
        (true, _) => Some(FleetMode::Rehearse),
        (false, f) => f.map(Into::into),
    };
    args.overrides.options(fleet)
}

/// The durations to simulate with, and where they come from.
pub(crate) fn durations(args: &PlanArgs, base: Durations) -> Result<(Durations, String)> {
    let (mut d, mut from) = (base, "the state directory's settings".to_string());
    if args.tenants.is_some() {
        from = "the local defaults".into();
    }
    if args.source.aws {
        from = crate::commands::plan_source::DURATIONS_FROM.into();
    }
    if let Some(f) = &args.durations_from {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read durations from {}", f.display()))?;
        d = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not {{\"snapshotSeconds\", \"restoreSeconds\", \"rolloutSeconds\", \"buildSeconds\"}}",
                f.display()
            )
        })?;
        from = f.display().to_string();
    }
    let mut flagged = false;
    for (flag, slot) in [
        (args.snapshot_seconds, &mut d.snapshot_seconds),
        (args.restore_seconds, &mut d.restore_seconds),
        (args.rollout_seconds, &mut d.rollout_seconds),
        (args.build_seconds, &mut d.build_seconds),
    ] {
        if let Some(v) = flag {
            *slot = v;
            flagged = true;
        }
    }
    if flagged {
        from.push_str(", with flags");
    }
    Ok((d, from))
}

/// Runs the plan.
pub fn simulate(state: &Path, args: &PlanArgs) -> Result<Simulation> {
    let (base, fleet) = match args.tenants {
        Some(n) => (
            tenantflow_local::StateConfig::default(),
            Fleet::Synthetic {
                tenants: n,
                release: "0000-synthetic".into(),
            },
        ),
        None => {
            let local = open_state(state)?;
            if let Some(holder) = StateLock::running(&Layout::new(state)) {
                let who = holder.map(|h| format!(" (pid {}, `{}`)", h.pid, h.command));
                bail!(
                    "another tenantflow command{} is changing {}; plan once it is done",
                    who.unwrap_or_default(),
                    state.display()
                );
            }
            (
                local.config().clone(),
                Fleet::Copy {
                    state: state.to_path_buf(),
                    copy_data: args.copy_data,
                },
            )
        }
    };
    let (durations, _) = durations(args, base.durations)?;
    let limits = Limits {
        instances: args.instance_quota.unwrap_or(base.limits.instances),
        snapshots: args.snapshot_quota.unwrap_or(base.limits.snapshots),
        builds: args.build_limit.unwrap_or(base.limits.builds),
    };
    let opts = PlanOptions {
        fleet,
        deploy: options(args),
        durations: Some(durations),
        limits: Some(limits),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime
        .block_on(tenantflow_local::plan::plan(&args.release_dir, opts))
        .with_context(|| format!("cannot plan {}", args.release_dir.display()))
}

/// What the deploy would do to the tenant, from its simulated outcome.
pub fn action(t: &TenantRow) -> String {
    match t.outcome {
        Outcome::Deployed => "deploy".into(),
        Outcome::Rehearsed => "rehearse".into(),
        Outcome::WouldFail | Outcome::RolledBack => "would fail".into(),
        Outcome::Skipped if t.error.as_deref() == Some(NOT_DEPLOYABLE) => "not adoptable".into(),
        Outcome::Skipped if t.error.as_deref() == Some("Tenantflow.Locked") => {
            locked_by(t).map_or_else(|| "locked".into(), |run| format!("locked by {run}"))
        }
        other => outcome_name(other).to_string(),
    }
}

/// The run holding a locked tenant's lock: the last part of the holder's execution ARN, from
/// `Tenantflow.Locked`'s message ("tenant … is locked by <holder>").
fn locked_by(t: &TenantRow) -> Option<String> {
    let words = tenantflow_core::cause::in_words(t.cause.as_deref()?);
    let holder = words
        .split(" is locked by ")
        .nth(1)?
        .split_whitespace()
        .next()?;
    holder.rsplit(':').next().map(str::to_string)
}

pub(crate) fn assumptions(args: &PlanArgs) -> Assumptions {
    Assumptions {
        lambda_seconds: args.lambda_seconds,
        instance_class: args.instance_class.clone(),
        build_compute_type: estimate::build_compute_type(),
    }
}

pub(crate) fn prices(args: &PlanArgs) -> Result<(PriceTable, String)> {
    match &args.prices {
        None => Ok((
            PriceTable::builtin(),
            "infra/prices.json (compiled in)".into(),
        )),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the price table {}", f.display()))?;
            Ok((PriceTable::parse(&text)?, f.display().to_string()))
        }
    }
}

/// Everything the plan says, as the `--json` object.
pub fn plan_json(sim: &Simulation, est: &Estimate, a: &Assumptions, args: &PlanArgs) -> Value {
    let (_, durations_from) =
        durations(args, sim.durations).unwrap_or((sim.durations, String::new()));
    let tenants: Vec<Value> = sim
        .report
        .tenants
        .iter()
        .map(|t| {
            json!({
                "tenant": t.tenant,
                "action": action(t),
                "outcome": outcome_name(t.outcome),
                "error": tenant_error(t),
                "durationSeconds": t.duration_seconds,
            })
        })
        .collect();
    let waves: Vec<Value> = sim
        .plan
        .iter()
        .flat_map(|p| p.waves.iter())
        .map(|w| json!({"name": w.name, "tenants": w.count}))
        .collect();
    json!({
        "release": sim.report.release,
        "run": sim.report.run,
        "fleet": sim.plan.as_ref().map(|p| p.fleet),
        "status": sim.report.status,
        "error": sim.report.error,
        "cause": sim.report.cause.as_deref().map(tenantflow_core::cause::in_words),
        "tenants": tenants,
        "waves": waves,
        "maxConcurrency": sim.plan.as_ref().map(|p| p.max_concurrency),
        "concurrency": sim.plan.as_ref().and_then(|p| p.concurrency.clone()),
        "peakConcurrency": sim.usage.peak_concurrency,
        "estimate": est,
        "usage": sim.usage,
        "assumptions": {
            "simulated": sim.simulated,
            "tenantsInFleet": sim.tenants_in_fleet,
            "durations": sim.durations,
            "durationsFrom": durations_from,
            "limits": sim.limits,
            "lambdaSeconds": a.lambda_seconds,
            "instanceClass": a.instance_class,
            "buildComputeType": a.build_compute_type,
            "lambdaMemoryFrom": "infra/template.yaml",
        },
    })
}

fn usd(x: f64) -> String {
    if x >= 100.0 {
        format!("${x:.0}")
    } else if x >= 1.0 {
        format!("${x:.2}")
    } else {
        format!("${x:.4}")
    }
}

/// The tables and the estimate with its assumptions.
pub fn render(
    sim: &Simulation,
    est: &Estimate,
    a: &Assumptions,
    args: &PlanArgs,
    prices_from: &str,
) -> String {
    let mut out = String::new();
    let r = &sim.report;
    const SHOWN: usize = 50;
    let rows: Vec<Vec<String>> = r
        .tenants
        .iter()
        .take(SHOWN)
        .map(|t| {
            vec![
                t.tenant.clone(),
                action(t),
                t.duration_seconds
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                tenant_error(t).unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["tenant", "action", "duration (virtual)", "why"],
        &rows,
    ));
    if r.tenants.len() > SHOWN {
        out.push_str(&format!(
            "… and {} more tenants (--json lists every one)\n",
            r.tenants.len() - SHOWN
        ));
    }
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for t in &r.tenants {
        *counts.entry(action(t)).or_default() += 1;
    }
    let counted: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    out.push_str(&format!(
        "\nplan of {}: {} tenants: {}\n",
        r.release,
        r.tenants.len(),
        counted.join(", ")
    ));
    if let Some(p) = &sim.plan {
        let waves: Vec<String> = p
            .waves
            .iter()
            .map(|w| format!("{} {}", w.name, w.count))
            .collect();
        out.push_str(&format!(
            "fleet mode {}; waves: {}\n",
            serde_json::to_value(p.fleet)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            if waves.is_empty() {
                "one phase over every tenant".to_string()
            } else {
                waves.join(", ")
            }
        ));
        if let Some(c) = &p.concurrency {
            let snapshots = match c.snapshots {
                Some(s) => format!(
                    ", free manual snapshots {s} of which this run keeps {} for good",
                    c.snapshots_kept
                ),
                None => String::new(),
            };
            out.push_str(&format!(
                "concurrency {}: the smallest of cap {}, builds {}, free DB instances {}{snapshots}; bound by {}\n",
                p.max_concurrency, c.cap, c.builds, c.instances, c.binding
            ));
        } else {
            out.push_str(&format!("concurrency {}\n", p.max_concurrency));
        }
    } else {
        let why = match (&r.error, &r.cause) {
            (Some(e), Some(c)) => format!("{e}: {}", tenantflow_core::cause::in_words(c)),
            (Some(e), None) => e.clone(),
            _ => "no plan was made".into(),
        };
        out.push_str(&format!("the deploy would fail at its plan step: {why}\n"));
    }
    out.push_str(&format!(
        "\nestimate: wall time {} (virtual), {} state transitions, peak {} tenants at once\n",
        human_duration(est.wall_seconds),
        est.state_transitions,
        sim.usage.peak_concurrency
    ));
    let lines: Vec<Vec<String>> = est
        .lines
        .iter()
        .map(|l| {
            vec![
                l.item.clone(),
                format!("{:.2}", l.quantity),
                format!(
                    "{}{}",
                    l.unit_usd,
                    if l.assumed { " (assumed)" } else { "" }
                ),
                usd(l.usd),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["cost", "quantity", "unit price USD", "USD"],
        &lines,
    ));
    out.push_str(&format!("total {}\n", usd(est.total_usd)));
    let (_, durations_from) =
        durations(args, sim.durations).unwrap_or((sim.durations, String::new()));
    let d = &sim.durations;
    out.push_str("\nassumptions:\n");
    if sim.simulated {
        out.push_str("- simulation: no database copied; every snapshot, restore, migration and health check takes its simulated time and succeeds (--copy-data runs them on copies)\n");
    } else {
        out.push_str("- tenant databases copied; migrations and health checks ran on the copies\n");
    }
    out.push_str(&format!(
        "- durations (from {durations_from}): snapshot {} s, restore {} s, rollout {} s, build {} s\n",
        d.snapshot_seconds, d.restore_seconds, d.rollout_seconds, d.build_seconds
    ));
    out.push_str(&format!(
        "- quotas: DB instances {}, manual snapshots {}, concurrent builds {} ({} tenants in the fleet)\n",
        sim.limits.instances, sim.limits.snapshots, sim.limits.builds, sim.tenants_in_fleet
    ));
    out.push_str(&format!(
        "- Lambda: {} invocations × {} s each (assumed) × memory from infra/template.yaml = {:.1} GB-s\n",
        est.lambda_invocations, a.lambda_seconds, est.lambda_gb_seconds
    ));
    out.push_str(&format!(
        "- CodeBuild: {} builds × {} started minutes on {}\n",
        est.builds,
        sim.durations.build_seconds.div_ceil(60).max(1),
        a.build_compute_type
    ));
    out.push_str(&format!(
        "- RDS: {:.2} instance-hours of {} while a candidate and the old generation both exist (from the candidate being available, when RDS starts billing it, to the tenant's end); storage and snapshot storage not counted\n",
        est.candidate_instance_hours, a.instance_class
    ));
    out.push_str(&format!(
        "- prices: {prices_from}; each line's source and date in --json\n"
    ));
    out
}

pub fn run(state: &Path, args: &PlanArgs) -> Result<u8> {
    let (prices, prices_from) = prices(args)?;
    let a = assumptions(args);
    let sim = simulate(state, args)?;
    let est = estimate::estimate(&sim, &prices, &a)?;
    if args.json {
        crate::outln!("{}", plan_json(&sim, &est, &a, args));
    } else {
        crate::out!("{}", render(&sim, &est, &a, args, &prices_from));
    }
    Ok(EXIT_OK)
}
