//! The deploy report: the run report the core `report` step wrote (`runs/<run>/report.json` in
//! the release bucket), typed, with the engine's figures and each tenant's virtual duration.
//! Written to `<state>/runs/<run>/deploy-report.json`.
//!
//! Two things only the local backend can add:
//! - the tenants the plan skipped (`runs/<run>/skipped.json`: a damaged pointer, no pointer) are
//!   rows with outcome `skipped`, error `Run.NotDeployable` and the plan's reason, so a tenant
//!   that could not be deployed to is never silently missing;
//! - a failed rollout's cause gets the health check's own error (the local ECS keeps each
//!   deployment's reason; the port's deployment status has no field for it).

use super::execute::Executed;
use crate::error::LocalError;
use crate::layout::{write_atomic, RELEASE_BUCKET};
use crate::ports::LocalPorts;
use serde::{Deserialize, Serialize};
use tenantflow_core::model::Outcome;
use tenantflow_core::steps::list_tenants::{run_prefix, SkippedTenant};
use tenantflow_core::steps::report::RunReport;

/// The error of a tenant row for a tenant the plan skipped.
pub const NOT_DEPLOYABLE: &str = "Run.NotDeployable";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    pub run: String,
    pub release: String,
    /// SUCCEEDED | FAILED | ABORTED (the execution's status; ABORTED: stopped by an interrupt).
    pub status: String,
    pub tenants: Vec<TenantRow>,
    pub state_transitions: u64,
    pub max_history_events: u64,
    pub wall_seconds: f64,
    /// The execution's error and cause when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Virtual-clock start and end of the run.
    pub started_at: String,
    pub stopped_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRow {
    pub tenant: String,
    pub outcome: Outcome,
    pub from_generation: Option<String>,
    pub to_generation: Option<String>,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Virtual seconds from the tenant's first child execution start to its last end.
    pub duration_seconds: Option<f64>,
}

impl DeployReport {
    /// True when every tenant deployed (or was already up to date; in a rehearsal: rehearsed) and
    /// the run succeeded.
    pub fn all_deployed(&self) -> bool {
        self.status == "SUCCEEDED" && self.tenants.iter().all(|t| t.outcome.is_success())
    }
}

/// The run report of `run`, if the run got as far as writing one.
pub(super) fn run_report(ports: &LocalPorts, run: &str) -> Result<Option<RunReport>, LocalError> {
    let key = format!("{}report.json", run_prefix(run));
    let Some(bytes) = ports.objects.get_sync(RELEASE_BUCKET, &key)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(report) => Ok(Some(report)),
        Err(e) => {
            tracing::warn!(run, error = %e, "the run report does not parse; no tenant rows");
            Ok(None)
        }
    }
}

/// The tenants the plan of `run` skipped, with why.
pub(super) fn plan_skipped(ports: &LocalPorts, run: &str) -> Vec<SkippedTenant> {
    let key = format!("{}skipped.json", run_prefix(run));
    match ports.objects.get_sync(RELEASE_BUCKET, &key) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(run, error = %e, "skipped.json does not parse");
            vec![]
        }),
        _ => vec![],
    }
}

/// The deploy report of a finished execution.
pub(super) fn deploy_report(
    ports: &LocalPorts,
    run: &str,
    release: &str,
    executed: &Executed,
    report: Option<RunReport>,
    wall_seconds: f64,
) -> DeployReport {
    let result = &executed.result;
    let since = result.started_at.to_rfc3339();
    let mut tenants: Vec<TenantRow> = report
        .map(|r| r.tenants)
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let mut cause = t.cause;
            if t.error.as_deref() == Some("Tenantflow.RolloutFailed") {
                let reason = ports.services.failed_rollout_reason(&t.tenant, &since);
                if let Ok(Some(reason)) = reason {
                    // The health check's error first: it is what the table has room for.
                    cause = Some(match cause {
                        Some(c) if !c.is_empty() => format!("{reason} ({c})"),
                        _ => reason,
                    });
                }
            }
            TenantRow {
                duration_seconds: executed.spans.seconds(&t.tenant),
                tenant: t.tenant,
                outcome: t.outcome,
                from_generation: t.from_generation,
                to_generation: t.to_generation,
                error: t.error,
                cause,
            }
        })
        .collect();
    for s in plan_skipped(ports, run) {
        if tenants.iter().all(|t| t.tenant != s.tenant.as_str()) {
            tenants.push(TenantRow {
                tenant: s.tenant.to_string(),
                outcome: Outcome::Skipped,
                from_generation: None,
                to_generation: None,
                error: Some(NOT_DEPLOYABLE.to_string()),
                cause: Some(s.reason),
                duration_seconds: None,
            });
        }
    }
    tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    DeployReport {
        run: run.to_string(),
        release: release.to_string(),
        status: result.status.as_str().to_string(),
        tenants,
        state_transitions: result.state_transitions,
        max_history_events: result.max_history_events,
        wall_seconds,
        error: result.error.clone(),
        cause: result.cause.clone(),
        started_at: result.started_at.to_rfc3339(),
        stopped_at: result.stopped_at.to_rfc3339(),
    }
}

/// Writes `report` to `<state>/runs/<run>/deploy-report.json`.
pub(super) fn write(ports: &LocalPorts, report: &DeployReport) -> Result<(), LocalError> {
    let f = ports.layout.run_dir(&report.run).join("deploy-report.json");
    let text = serde_json::to_string_pretty(report).map_err(LocalError::serialize("report"))?;
    write_atomic(&f, text.as_bytes()).map_err(|e| LocalError::io(&f, e))
}
