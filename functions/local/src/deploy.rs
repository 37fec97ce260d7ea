//! `deploy`: a local run, end to end, in the order it happens:
//! 1. `release`: read and validate the release directory, then `preflight`: check the options
//!    against it and the state (bad input changes nothing);
//! 2. `start`: pick the run's start on the virtual clock, then publish the release into local
//!    S3 at that instant;
//! 3. `trigger`: the core `trigger` step turns the manifest's S3 event into a run, whose input
//!    gets the CLI's overrides (`<state>/runs/<run>/input.json`);
//! 4. `execute`: run the real definition (`statemachine/deploy.asl.json`) on the engine with the
//!    local ports; `spans` times each tenant on the virtual clock;
//! 5. `report`: the core report step's run report (`runs/<run>/report.json` in the release
//!    bucket), typed, becomes the deploy report (`<state>/runs/<run>/deploy-report.json`).
//!
//! The engine's virtual clock starts one second after the newest timestamp in the state (any
//! generation, snapshot or earlier run's end), so back-to-back runs never collide on generation
//! names. History goes to `<state>/runs/<run>/history/`.

mod execute;
mod preflight;
mod release;
mod report;
mod spans;
pub(crate) mod start;
mod trigger;

pub use report::{DeployReport, TenantRow, NOT_DEPLOYABLE};
pub use statemachine::Stop;

use crate::error::LocalError;
use crate::layout::write_atomic;
use crate::runner::substitutions;
use crate::state::LocalState;
use statemachine::{Definition, Observer};
use std::path::Path;
use std::sync::Arc;
use tenantflow_core::manifest::{FleetMode, Strategy};

/// Per-run overrides of the manifest (the CLI flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeployOptions {
    pub fleet: Option<FleetMode>,
    pub strategy: Option<Strategy>,
    pub canary: Option<u32>,
    pub max_failure_percent: Option<f64>,
    pub max_concurrency: Option<u32>,
    /// Engine seed (jitter, task tokens).
    pub seed: u64,
    /// For strategy `promote`: the snapshot to restore (written into the published manifest).
    pub source_snapshot: Option<String>,
    /// Limits the run to the tenants listed in this object of the release bucket (a JSON array
    /// of names; the run input's `tenantList`). `tenantflow retry` sets it.
    pub tenant_list: Option<String>,
    /// Seconds between the write freeze and the snapshot, instead of the manifest's.
    pub freeze_drain_seconds: Option<u64>,
}

/// Publishes `release_dir`, triggers the run from its S3 event and runs the definitions.
pub async fn deploy(
    state: &LocalState,
    release_dir: &Path,
    opts: DeployOptions,
    observer: Option<Arc<dyn Observer>>,
) -> Result<DeployReport, LocalError> {
    deploy_until_stopped(state, release_dir, opts, observer, Stop::new()).await
}

/// [`deploy`], stopped gracefully when `stop` is requested (Ctrl-C): no tenant starts after
/// that, steps in flight finish, and the run ends `ABORTED` (its report has no tenant rows). The
/// tenants it had started are left as their last finished step left them, for recovery to settle.
pub async fn deploy_until_stopped(
    state: &LocalState,
    release_dir: &Path,
    opts: DeployOptions,
    observer: Option<Arc<dyn Observer>>,
    stop: Stop,
) -> Result<DeployReport, LocalError> {
    let wall = std::time::Instant::now();
    preflight::check_options(&opts)?;
    let release = release::prepare(release_dir, opts.source_snapshot.as_deref())?;
    let ports = state.ports()?;
    preflight::check(&ports, &release, &opts).await?;
    let start = start::start_time(&ports)?;
    ports.clock.set(Arc::new(start::FixedClock(start)));

    let published = state.publish_validated(&ports, &release)?;
    let run = trigger::trigger(&ports, &published, start, &opts).await?;
    let input = serde_json::to_value(&run.input).map_err(LocalError::serialize("run input"))?;
    let input_file = state.layout().run_dir(&run.name).join("input.json");
    write_atomic(&input_file, input.to_string().as_bytes())
        .map_err(|e| LocalError::io(&input_file, e))?;

    let executed = execute::execute(
        &ports,
        &definition()?,
        execute::Execution {
            run: &run.name,
            input,
            start,
            seed: opts.seed,
            observer,
            stop,
        },
    )
    .await;

    let run_report = report::run_report(&ports, &run.name)?;
    let out = report::deploy_report(
        &ports,
        &run.name,
        &release.manifest.release,
        &executed,
        run_report,
        wall.elapsed().as_secs_f64(),
    );
    report::write(&ports, &out)?;
    Ok(out)
}

/// The release definition with the local resources substituted in.
fn definition() -> Result<Definition, LocalError> {
    let text = statemachine::substitute(&workflow::definition_text(), &substitutions())
        .map_err(LocalError::Substitution)?;
    Definition::from_json(&text).map_err(LocalError::Definition)
}
