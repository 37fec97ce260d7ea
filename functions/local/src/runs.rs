//! The local runs of a state directory (`<state>/runs/<run>/`) and their retries.
//!
//! - [`list`]: every run, oldest first, with its release, status and outcome counts, from its
//!   `input.json`, `status` and `deploy-report.json` (a run killed before its report has none);
//! - [`report`]: one run's deploy report;
//! - [`retry`]: a new run of the same published release limited to the tenants a run rolled back
//!   or skipped. The tenant list travels by reference: it is written to the release bucket
//!   (`runs/<run>/retry-tenants.json`) and the new run's input names its key (`tenantList`),
//!   because ten thousand names would approach the 256 KiB input limit.

use crate::deploy::{deploy, DeployOptions, DeployReport};
use crate::error::LocalError;
use crate::layout::{write_atomic, RELEASE_BUCKET};
use crate::state::LocalState;
use serde::Serialize;
use statemachine::Observer;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tenantflow_core::manifest::release_prefix;
use tenantflow_core::model::Outcome;
use tenantflow_core::steps::list_tenants::{release_id_of_key, run_prefix, RunInput};

/// One run, as `tenantflow runs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run: String,
    pub release: Option<String>,
    /// SUCCEEDED, FAILED, or RUNNING for a run whose process died before it finished.
    pub status: Option<String>,
    /// Virtual-clock start and end, from the deploy report.
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    /// Tenants by outcome (`deployed`, `up-to-date`, …), from the deploy report.
    pub outcomes: BTreeMap<String, usize>,
    /// The tenant list the run was limited to (a retry's), as an object key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_list: Option<String>,
}

/// Every run of the state directory, oldest first (by virtual start, then name).
pub fn list(state: &LocalState) -> Result<Vec<RunSummary>, LocalError> {
    let dir = state.layout().runs_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(LocalError::io(&dir, e)),
    };
    let mut out = vec![];
    for e in entries.filter_map(Result::ok) {
        if !e.path().is_dir() {
            continue;
        }
        let run = e.file_name().to_string_lossy().to_string();
        out.push(summary(state, &run));
    }
    out.sort_by(|a, b| (&a.started_at, &a.run).cmp(&(&b.started_at, &b.run)));
    Ok(out)
}

fn summary(state: &LocalState, run: &str) -> RunSummary {
    let dir = state.layout().run_dir(run);
    let input = read_input(state, run).ok();
    let report = report(state, run).ok();
    let mut outcomes = BTreeMap::new();
    for t in report.iter().flat_map(|r| &r.tenants) {
        *outcomes.entry(t.outcome.as_str().to_string()).or_insert(0) += 1;
    }
    RunSummary {
        run: run.to_string(),
        release: report.as_ref().map(|r| r.release.clone()).or_else(|| {
            input
                .as_ref()
                .and_then(|i| release_id_of_key(&i.key).ok().map(str::to_string))
        }),
        status: report.as_ref().map(|r| r.status.clone()).or_else(|| {
            std::fs::read_to_string(dir.join("status"))
                .ok()
                .map(|s| s.trim().to_string())
        }),
        started_at: report.as_ref().map(|r| r.started_at.clone()),
        stopped_at: report.as_ref().map(|r| r.stopped_at.clone()),
        outcomes,
        tenant_list: input.and_then(|i| i.tenant_list),
    }
}

/// The deploy report of `run` (`<state>/runs/<run>/deploy-report.json`).
pub fn report(state: &LocalState, run: &str) -> Result<DeployReport, LocalError> {
    let f = run_dir(state, run)?.join("deploy-report.json");
    let text = std::fs::read_to_string(&f).map_err(|e| LocalError::io(&f, e))?;
    serde_json::from_str(&text).map_err(|cause| LocalError::InvalidJson {
        name: f.display().to_string(),
        cause,
    })
}

/// The state machine input of `run` (`<state>/runs/<run>/input.json`).
pub fn read_input(state: &LocalState, run: &str) -> Result<RunInput, LocalError> {
    let f = run_dir(state, run)?.join("input.json");
    let text = std::fs::read_to_string(&f).map_err(|e| LocalError::io(&f, e))?;
    serde_json::from_str(&text).map_err(|cause| LocalError::InvalidJson {
        name: f.display().to_string(),
        cause,
    })
}

/// `<state>/runs/<run>`, which must exist; `run` must be a plain name.
fn run_dir(state: &LocalState, run: &str) -> Result<PathBuf, LocalError> {
    let plain = !run.is_empty()
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && run != "."
        && run != "..";
    let dir = state.layout().run_dir(run);
    if !plain || !dir.is_dir() {
        return Err(LocalError::NoSuchRun {
            run: run.to_string(),
            runs: state.layout().runs_dir(),
        });
    }
    Ok(dir)
}

/// The tenants of `report` a retry deploys again: those rolled back or skipped. A tenant whose
/// rollback failed needs a person first, and is left out.
pub fn retry_tenants(report: &DeployReport) -> Vec<String> {
    report
        .tenants
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::RolledBack | Outcome::Skipped))
        .map(|t| t.tenant.clone())
        .collect()
}

/// What a retry would do, before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPlan {
    pub release: String,
    /// The published release folder in local S3, deployed again as it is.
    pub release_dir: PathBuf,
    pub tenants: Vec<String>,
    /// The object key of the tenant list in the release bucket.
    pub tenant_list: String,
    pub options: DeployOptions,
}

/// The retry of `run`: its release as published, its overrides, and its rolled-back and skipped
/// tenants (empty when there is nothing to retry).
pub fn plan_retry(state: &LocalState, run: &str) -> Result<RetryPlan, LocalError> {
    let report = report(state, run)?;
    let input = read_input(state, run)?;
    let release = release_id_of_key(&input.key)
        .map_err(LocalError::Step)?
        .to_string();
    let release_dir = state
        .layout()
        .s3_dir()
        .join(&input.bucket)
        .join(release_prefix(&release));
    let o = input.overrides;
    Ok(RetryPlan {
        release,
        release_dir,
        tenants: retry_tenants(&report),
        tenant_list: format!("{}retry-tenants.json", run_prefix(run)),
        options: DeployOptions {
            fleet: o.fleet,
            strategy: o.strategy,
            canary: o.canary_count,
            max_failure_percent: o.max_failure_percent,
            max_concurrency: o.max_concurrency,
            seed: 0,
            source_snapshot: None,
            tenant_list: None,
            freeze_drain_seconds: o.freeze_drain_seconds,
        },
    })
}

/// Runs `plan` (from [`plan_retry`], with tenants to retry): writes the tenant list, then deploys
/// the published release limited to it.
pub async fn retry(
    state: &LocalState,
    plan: RetryPlan,
    observer: Option<Arc<dyn Observer>>,
) -> Result<DeployReport, LocalError> {
    let f = state
        .layout()
        .s3_dir()
        .join(RELEASE_BUCKET)
        .join(&plan.tenant_list);
    if let Some(parent) = f.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LocalError::io(parent, e))?;
    }
    let body = serde_json::to_vec(&plan.tenants).map_err(LocalError::serialize("tenant list"))?;
    write_atomic(&f, &body).map_err(|e| LocalError::io(&f, e))?;
    let opts = DeployOptions {
        tenant_list: Some(plan.tenant_list),
        ..plan.options
    };
    deploy(state, &plan.release_dir, opts, observer).await
}
