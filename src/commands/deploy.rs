//! `tenantflow deploy RELEASE_DIR`: publish the release into the local S3, run the real state
//! machine definitions on the local backend, and report per tenant.

use crate::commands::exit::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL};
use crate::progress::RunProgress;
use crate::table;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use statemachine::ExecutionStatus;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use tenantflow_core::cause::in_words;
use tenantflow_core::manifest::{FleetMode, Strategy};
use tenantflow_core::model::Outcome;
use tenantflow_local::{DeployOptions, DeployReport, LocalState, Stop, TenantRow};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// `--fleet` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetArg {
    Independent,
    AllOrNothing,
    /// Prepare every tenant, then discard every candidate: which tenants would fail.
    Rehearse,
}

impl From<FleetArg> for FleetMode {
    fn from(f: FleetArg) -> Self {
        match f {
            FleetArg::Independent => FleetMode::Independent,
            FleetArg::AllOrNothing => FleetMode::AllOrNothing,
            FleetArg::Rehearse => FleetMode::Rehearse,
        }
    }
}

/// `--strategy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    BlueGreen,
    InPlace,
    Promote,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::BlueGreen => Strategy::BlueGreen,
            StrategyArg::InPlace => Strategy::InPlace,
            StrategyArg::Promote => Strategy::Promote,
        }
    }
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The release folder: Flyway scripts plus manifest.json (see `release pack`).
    pub release_dir: PathBuf,
    /// Override the manifest's fleet mode.
    #[arg(long, value_enum)]
    pub fleet: Option<FleetArg>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// When another command is using the state directory, wait for it instead of exiting 4.
    #[arg(long)]
    pub wait: bool,
}

/// The run settings `deploy` and `plan` both take: each overrides the manifest's (or, for the seed,
/// the engine's) default, so a plan predicts the deploy given the same flags.
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Override the manifest's strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Tenants in the canary wave (0 or more).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_canary)]
    pub canary: Option<u32>,
    /// A wave whose failure percentage exceeds this stops all later waves (0 to 100).
    #[arg(long, value_name = "P", allow_hyphen_values = true, value_parser = parse_percent)]
    pub max_failure_percent: Option<f64>,
    /// At most this many tenants at once (1 or more).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_concurrency)]
    pub max_concurrency: Option<u32>,
    /// Seconds between freezing a tenant's writes and taking its snapshot (0 to 3600), instead of
    /// the manifest's `freezeDrainSeconds`: at least how long the app caches the pointer.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = parse_drain)]
    pub freeze_drain_seconds: Option<u64>,
    /// For strategy promote: the snapshot to restore.
    #[arg(long, value_name = "SNAPSHOT_ID", value_parser = parse_snapshot)]
    pub source_snapshot: Option<String>,
    /// Seed of the engine's random choices (retry jitter).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl OverrideArgs {
    /// The deploy options these flags give, with `fleet` (each command decides its own).
    pub fn options(&self, fleet: Option<FleetMode>) -> DeployOptions {
        DeployOptions {
            fleet,
            strategy: self.strategy.map(Into::into),
            canary: self.canary,
            max_failure_percent: self.max_failure_percent,
            max_concurrency: self.max_concurrency,
            seed: self.seed,
            source_snapshot: self.source_snapshot.clone(),
            tenant_list: None,
            freeze_drain_seconds: self.freeze_drain_seconds,
        }
    }
}

/// `--max-failure-percent`: a number from 0 to 100. Rust's float parser accepts `NaN` and `inf`;
/// they are refused here.
pub(crate) fn parse_percent(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number; give a percentage from 0 to 100"))?;
    if !p.is_finite() || !(0.0..=100.0).contains(&p) {
        return Err(format!(
            "{s} is not a percentage from 0 to 100 (0: any failed tenant stops later waves)"
        ));
    }
    Ok(p)
}

/// A whole number of tenants, with a message that says which range `flag` takes.
fn parse_count(s: &str, min: i64, what: &str) -> Result<u32, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number; {what}"))?;
    if n < min || n > i64::from(u32::MAX) {
        return Err(format!("{n} is out of range; {what}"));
    }
    Ok(n as u32)
}

pub(crate) fn parse_canary(s: &str) -> Result<u32, String> {
    parse_count(s, 0, "the canary wave takes 0 or more tenants")
}

pub(crate) fn parse_concurrency(s: &str) -> Result<u32, String> {
    parse_count(s, 1, "give at least 1 tenant at once")
}

pub(crate) fn parse_drain(s: &str) -> Result<u64, String> {
    let max = tenantflow_core::manifest::MAX_FREEZE_DRAIN_SECONDS;
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of seconds (0 to {max})"))?;
    if n < 0 || n as u64 > max {
        return Err(format!("{n} is out of range; give 0 to {max} seconds"));
    }
    Ok(n as u64)
}

pub(crate) fn parse_snapshot(s: &str) -> Result<String, String> {
    tenantflow_core::names::SnapshotId::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Opens an existing state directory, with an error that says what to do.
pub fn open_state(state: &Path) -> Result<LocalState> {
    LocalState::open(state)
        .with_context(|| format!("cannot use {} as the state directory", state.display()))
}

pub fn options(args: &DeployArgs) -> DeployOptions {
    args.overrides.options(args.fleet.map(Into::into))
}

/// Runs one deploy on a fresh tokio runtime, with progress bars on a terminal unless `quiet`.
pub fn deploy_blocking(
    local: &LocalState,
    release_dir: &Path,
    opts: DeployOptions,
    quiet: bool,
) -> Result<DeployReport> {
    run_deploy(local, release_dir, opts, quiet, false).map(|(report, _)| report)
}

/// [`deploy_blocking`] that an interrupt stops gracefully: the first Ctrl-C or SIGTERM starts no
/// further tenant and lets the steps in flight finish (the run ends `ABORTED`); a second one
/// exits at once with code 130 ([`EXIT_INTERRUPTED`]).
///
/// Returns the report and, for a run an interrupt stopped, whether [`settle_interrupted_run`]
/// settled every tenant it left unfinished. The settling happens while the interrupt handler still
/// listens, so a second Ctrl-C during it also exits at once.
pub fn deploy_interruptible(
    local: &LocalState,
    release_dir: &Path,
    opts: DeployOptions,
    quiet: bool,
) -> Result<(DeployReport, Option<bool>)> {
    run_deploy(local, release_dir, opts, quiet, true)
}

fn run_deploy(
    local: &LocalState,
    release_dir: &Path,
    opts: DeployOptions,
    quiet: bool,
    interruptible: bool,
) -> Result<(DeployReport, Option<bool>)> {
    let progress = if quiet {
        None
    } else {
        RunProgress::on_terminal().map(Arc::new)
    };
    let observer = progress
        .clone()
        .map(|p| p as Arc<dyn statemachine::Observer>);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let stop = Stop::new();
    let watcher = if interruptible {
        // The handlers are installed before the run starts, so no interrupt is missed.
        let signals = {
            let _in_runtime = runtime.enter();
            interrupt_signals().context("cannot listen for Ctrl-C and SIGTERM")?
        };
        Some(runtime.spawn(watch_interrupts(signals, stop.clone(), progress.clone())))
    } else {
        None
    };
    let result = runtime.block_on(tenantflow_local::deploy_until_stopped(
        local,
        release_dir,
        opts,
        observer,
        stop,
    ));
    if let Some(p) = &progress {
        p.finish();
    }
    let settled = match &result {
        Ok(report) if interruptible && report.status == ExecutionStatus::Aborted.as_str() => {
            Some(settle_interrupted_run(local, report))
        }
        _ => None,
    };
    if let Some(w) = watcher {
        w.abort();
    }
    let settled = settled.transpose()?;
    result.map(|report| (report, settled)).map_err(|e| {
        let what = if e.changed_nothing() {
            format!(
                "refused to deploy {}; nothing changed",
                release_dir.display()
            )
        } else {
            format!("deploy of {} failed", release_dir.display())
        };
        anyhow::Error::new(e).context(what)
    })
}

/// SIGINT and SIGTERM, as streams.
fn interrupt_signals() -> std::io::Result<(Signal, Signal)> {
    Ok((
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    ))
}

/// The first interrupt asks the run to stop gracefully; the second exits at once (130), leaving
/// the tenants in flight to `tenantflow recover`.
async fn watch_interrupts(
    (mut int, mut term): (Signal, Signal),
    stop: Stop,
    progress: Option<Arc<RunProgress>>,
) {
    let say = |text: &str| match &progress {
        Some(p) => p.println(text),
        None => eprintln!("{text}"),
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tenantflow_local::crash::interrupt_handled();
    say("interrupted: no further tenant starts; the steps in flight finish, then the run stops (interrupt again to exit at once)");
    stop.request();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tenantflow_local::crash::interrupt_handled();
    say("interrupted again: exiting now; run `tenantflow recover` (or this deploy again) to settle the tenants in flight");
    std::process::exit(i32::from(EXIT_INTERRUPTED));
}

/// Settles the tenants a run stopped by an interrupt left unfinished (locked, write-frozen, a
/// candidate or a flip not yet rolled out) with the recovery `tenantflow recover` runs; true when
/// every tenant of the run is settled. The run is ABORTED already, so recovery treats it as dead.
pub fn settle_interrupted_run(local: &LocalState, report: &DeployReport) -> Result<bool> {
    debug_assert_eq!(report.status, ExecutionStatus::Aborted.as_str());
    let recovered = crate::commands::recover::recover_blocking(local, false)?;
    if !recovered.is_empty() {
        eprint!("{}", crate::commands::recover::render(&recovered));
    }
    Ok(crate::commands::recover::exit_code(&recovered) == EXIT_OK)
}

/// The exit code a report maps to: 0 every tenant deployed (or was already up to date; a rehearsal:
/// rehearsed), 3 the run finished but some tenants did not, 1 the run itself failed, 130 it was
/// interrupted.
pub fn exit_code(report: &DeployReport) -> u8 {
    if report.status == ExecutionStatus::Aborted.as_str() {
        return EXIT_INTERRUPTED;
    }
    let deployed = report
        .tenants
        .iter()
        .filter(|t| t.outcome.is_success())
        .count();
    if report.tenants.is_empty() {
        EXIT_FAILED
    } else if deployed == report.tenants.len() {
        if report.status == "SUCCEEDED" {
            EXIT_OK
        } else {
            // Every tenant deployed, yet the run failed: something after the tenants broke.
            EXIT_FAILED
        }
    } else {
        EXIT_PARTIAL
    }
}

pub fn outcome_name(o: Outcome) -> &'static str {
    o.as_str()
}

/// What went wrong for a tenant, in words: the error name plus its cause read in words (a Lambda's
/// JSON error payload gives its `errorMessage`, a failed CodeBuild build its failing phase's
/// message; `tenantflow_core::cause::in_words`).
pub fn tenant_error(t: &TenantRow) -> Option<String> {
    let error = t.error.as_deref()?;
    let detail = t.cause.as_deref().map(in_words);
    Some(match detail {
        Some(d) if !d.is_empty() && d != error => format!("{error}: {d}"),
        _ => error.to_string(),
    })
}

/// The `--json` object.
pub fn report_json(r: &DeployReport) -> Value {
    let tenants: Vec<Value> = r
        .tenants
        .iter()
        .map(|t| {
            json!({
                "tenant": t.tenant,
                "outcome": outcome_name(t.outcome),
                "fromGeneration": t.from_generation,
                "toGeneration": t.to_generation,
                "error": tenant_error(t),
            })
        })
        .collect();
    json!({
        "run": r.run,
        "release": r.release,
        "status": r.status,
        "tenants": tenants,
        "stateTransitions": r.state_transitions,
        "maxHistoryEvents": r.max_history_events,
    })
}

fn short(e: &str, max: usize) -> String {
    let one_line = e.lines().next().unwrap_or("").trim();
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max - 3).collect();
        format!("{cut}...")
    } else {
        one_line.to_string()
    }
}

/// `31m00s`, `45s`, `2h05m`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The per-tenant table and a summary.
pub fn render_report(r: &DeployReport) -> String {
    let rows: Vec<Vec<String>> = r
        .tenants
        .iter()
        .map(|t| {
            let from = t.from_generation.clone().unwrap_or_else(|| "-".into());
            let generation = match (t.outcome, &t.to_generation) {
                (Outcome::Deployed, Some(to)) => format!("{from} → {to}"),
                (_, Some(to)) if Some(to) != t.from_generation.as_ref() => {
                    format!("{from} (stays; {to} discarded)")
                }
                _ => format!("{from} (stays)"),
            };
            vec![
                t.tenant.clone(),
                outcome_name(t.outcome).to_string(),
                generation,
                t.duration_seconds
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                tenant_error(t).map(|e| short(&e, 110)).unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "tenant",
            "outcome",
            "generation",
            "duration (virtual)",
            "error",
        ],
        &rows,
    );
    let count = |o: Outcome| r.tenants.iter().filter(|t| t.outcome == o).count();
    if count(Outcome::Rehearsed) + count(Outcome::WouldFail) > 0 {
        out.push_str(&format!(
            "\nrehearsal {}: {} rehearsed, {} would fail, {} skipped, {} rollback failed (pointers, active databases and write freezes unchanged)\n",
            r.run,
            count(Outcome::Rehearsed),
            count(Outcome::WouldFail),
            count(Outcome::Skipped),
            count(Outcome::RollbackFailed),
        ));
    } else {
        out.push_str(&format!(
            "\nrun {}: {} deployed, {} up to date, {} rolled back, {} skipped, {} rollback failed\n",
            r.run,
            count(Outcome::Deployed),
            count(Outcome::UpToDate),
            count(Outcome::RolledBack),
            count(Outcome::Skipped),
            count(Outcome::RollbackFailed),
        ));
    }
    if r.status != "SUCCEEDED" {
        let why = match (&r.error, &r.cause) {
            (Some(e), Some(c)) => format!("{e}: {}", in_words(c)),
            (Some(e), None) => e.clone(),
            _ => String::new(),
        };
        out.push_str(&format!("run status {}: {}\n", r.status, short(&why, 300)));
    }
    out.push_str(&format!(
        "{} state transitions, at most {} history events in one execution; the run took {:.2}s\n",
        r.state_transitions, r.max_history_events, r.wall_seconds
    ));
    out
}

pub fn run(state: &Path, args: &DeployArgs) -> Result<u8> {
    let local = open_state(state)?;
    let _lock = crate::commands::lock::lock_state(state, args.wait)?;
    // Holding the lock, every run recorded RUNNING is dead: settle what it left first.
    crate::commands::recover::settle_before_deploy(&local)?;
    let (report, settled) =
        deploy_interruptible(&local, &args.release_dir, options(args), args.json)?;
    let interrupted = settled.is_some();
    let settled = settled == Some(true);
    if args.json {
        crate::outln!("{}", report_json(&report));
    } else {
        crate::out!("{}", render_report(&report));
    }
    if interrupted {
        if settled {
            eprintln!(
                "deploy interrupted: run {} stopped; its unfinished tenants were rolled back",
                report.run
            );
        } else {
            eprintln!(
                "deploy interrupted: run {} stopped after its steps in flight; tenants it had started may still be locked or write-frozen. Run `tenantflow recover --state {}` (or this deploy again) to settle them",
                report.run,
                state.display()
            );
        }
    }
    Ok(exit_code(&report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantflow_core::cause::lambda_cause;

    fn row(error: &str, cause: &str) -> TenantRow {
        TenantRow {
            tenant: "ab-0001-prod".into(),
            outcome: Outcome::RolledBack,
            from_generation: None,
            to_generation: None,
            error: Some(error.into()),
            cause: Some(cause.into()),
            duration_seconds: None,
        }
    }

    /// An interrupted run exits 130 whatever its tenants did; the other codes are unchanged.
    #[test]
    fn an_interrupted_run_exits_130() {
        let report = |status: &str, tenants: Vec<TenantRow>| DeployReport {
            run: "r".into(),
            release: "0002".into(),
            status: status.into(),
            tenants,
            state_transitions: 0,
            max_history_events: 0,
            wall_seconds: 0.0,
            error: None,
            cause: None,
            started_at: String::new(),
            stopped_at: String::new(),
        };
        let deployed = TenantRow {
            outcome: Outcome::Deployed,
            ..row("e", "c")
        };
        assert_eq!(exit_code(&report("ABORTED", vec![])), EXIT_INTERRUPTED);
        assert_eq!(
            exit_code(&report("ABORTED", vec![deployed.clone()])),
            EXIT_INTERRUPTED
        );
        assert_eq!(exit_code(&report("SUCCEEDED", vec![deployed])), EXIT_OK);
        assert_eq!(exit_code(&report("FAILED", vec![])), EXIT_FAILED);
        assert_eq!(
            exit_code(&report("FAILED", vec![row("e", "c")])),
            EXIT_PARTIAL
        );
    }

    /// The error column says what went wrong in words, whatever form the cause has on AWS.
    #[test]
    fn the_error_column_reads_every_cause_in_words() {
        let build = json!({"Build": {"Id": "p:1", "BuildStatus": "FAILED", "Phases": [
            {"PhaseType": "BUILD", "PhaseStatus": "FAILED", "Contexts": [
                {"Message": "migration V3__unique_customer_email.sql failed: UNIQUE constraint failed: customers.email"}]}]}});
        assert_eq!(
            tenant_error(&row("States.TaskFailed", &build.to_string())).as_deref(),
            Some("States.TaskFailed: migration V3__unique_customer_email.sql failed: UNIQUE constraint failed: customers.email")
        );
        let lambda = lambda_cause("Tenantflow.PointerMoved", "the pointer moved");
        assert_eq!(
            tenant_error(&row("Tenantflow.PointerMoved", &lambda)).as_deref(),
            Some("Tenantflow.PointerMoved: the pointer moved")
        );
        assert_eq!(
            tenant_error(&row(
                "Tenantflow.Internal",
                &format!("undo after Tenantflow.PointerMoved failed: {lambda}")
            ))
            .as_deref(),
            Some(
                "Tenantflow.Internal: undo after Tenantflow.PointerMoved failed: the pointer moved"
            )
        );
        assert_eq!(
            tenant_error(&row("States.Timeout", "timed out")).as_deref(),
            Some("States.Timeout: timed out")
        );
    }
}
