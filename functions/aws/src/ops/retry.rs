//! `retry RUN` and `recover`: thin calls into what the core provides.
//!
//! `retry` reads the run's report and selects the tenants that did not deploy (rolled back and
//! skipped: those a new run of the same release can fix; `rollback-failed` tenants need a person
//! and are listed separately). It then starts a run of the same manifest version limited to them
//! through [`start_limited_run`]: the one call site that needs the run input to carry a tenant
//! list by reference (issue 12). On a branch without that field it refuses with that message.
//!
//! `recover` finds the tenants whose lock holder is no longer RUNNING (the core janitor's
//! stale-lock rule, in report mode) and shows each one's journal. Settling them (rolling back or
//! forward from the journal) is the core's `recover` logic (issue 11): [`settle`] is its one call
//! site and refuses until that logic is on this branch.

use super::runs::{run_arn, status};
use super::{Ops, OpsError, OpsResult};
use serde::{Deserialize, Serialize};
use tenantflow_core::model::{Outcome, TenantRecord};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::Records;
use tenantflow_core::steps::list_tenants::RunInput;

/// The tenants a retry would deploy, and why others are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPlan {
    pub run: String,
    pub release: String,
    /// The manifest and version the retried run used.
    pub input: RunInput,
    pub tenants: Vec<String>,
    /// rollback-failed tenants: their state needs a person (or `recover`) before any retry.
    pub needs_attention: Vec<String>,
}

/// Which tenants of `run` a retry redeploys (the run must have ended and written its report).
pub async fn retry_plan(ops: &Ops, run: &str) -> OpsResult<RetryPlan> {
    let st = status(ops, Some(run)).await?;
    let report = st.report.ok_or_else(|| {
        OpsError::Invalid(format!(
            "run {} ({}) has no report yet: retry a run once it has ended",
            st.run.name, st.run.status
        ))
    })?;
    let input = ops
        .clients
        .sfn
        .describe_execution()
        .execution_arn(run_arn(ops, run))
        .send()
        .await
        .map_err(|e| crate::errors::classify("DescribeExecution", e))?
        .input()
        .and_then(|i| serde_json::from_str::<RunInput>(i).ok())
        .ok_or_else(|| OpsError::Invalid(format!("run {run} has no release run input")))?;
    let mut tenants = Vec::new();
    let mut needs_attention = Vec::new();
    for t in &report.tenants {
        match t.outcome {
            Outcome::RolledBack | Outcome::Skipped => tenants.push(t.tenant.clone()),
            Outcome::RollbackFailed => needs_attention.push(t.tenant.clone()),
            Outcome::Deployed => {}
        }
    }
    Ok(RetryPlan {
        run: st.run.name,
        release: report.release.id,
        input,
        tenants,
        needs_attention,
    })
}

/// Starts the retry run. THE CALL SITE for issue 12's tenant list by reference: the run input
/// needs a field naming an S3 object with the tenant list (written under `runs/<new run>/`), and
/// list-tenants must select only those tenants. Until `RunInput` has it, this refuses rather than
/// starting a run of the whole fleet.
pub async fn start_limited_run(_ops: &Ops, plan: &RetryPlan) -> OpsResult<String> {
    Err(OpsError::Refused(format!(
        "retrying {} tenant(s) of {} needs the run input's tenant list by reference, which this \
         build's list-tenants does not have yet (issue 12); nothing was started",
        plan.tenants.len(),
        plan.run
    )))
}

/// A tenant whose lock holder is no longer running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stranded {
    pub record: TenantRecord,
    pub holder_status: String,
}

/// Tenants locked by runs that are over (the janitor's stale-lock rule, nothing released).
pub async fn stranded(ops: &Ops) -> OpsResult<Vec<Stranded>> {
    let report = super::locks::janitor(ops, false).await?;
    let records = ops.records();
    let mut out = Vec::new();
    for s in report.stale_locks {
        let ns = Namespace::parse(&s.tenant)?;
        if let Some(record) = records.get_tenant(&ns).await? {
            out.push(Stranded {
                record,
                holder_status: s.status,
            });
        }
    }
    Ok(out)
}

/// Settles the stranded tenants. THE CALL SITE for issue 11's recovery logic in
/// `tenantflow-core` (or a start of the recover state machine/Lambda): refuses until it exists.
pub async fn settle(_ops: &Ops, stranded: &[Stranded]) -> OpsResult<()> {
    if stranded.is_empty() {
        return Ok(());
    }
    Err(OpsError::Refused(format!(
        "{} stranded tenant(s) found; settling them needs the core's recover logic (issue 11), \
         which this build does not have: run with --dry-run to see them, or the janitor \
         (`tenantflow aws janitor --apply`) to release locks whose journal is empty",
        stranded.len()
    )))
}
