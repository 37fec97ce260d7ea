//! `retry RUN` and `recover`: thin calls into what the core provides.
//!
//! `retry` reads the run's report and selects the tenants that did not deploy (rolled back and
//! skipped: those a new run of the same release can fix; `rollback-failed` tenants need a person
//! and are listed separately). It then starts a run of the same manifest version limited to them
//! through [`start_limited_run`] (the run input carries the tenant list by reference); asked
//! again, it finds that run instead of starting a second one.
//!
//! `recover` finds the tenants whose lock holder is no longer RUNNING (the core janitor's
//! stale-lock rule, in report mode) and shows each one's journal; [`settle`] rolls each back or
//! forward from its journal with the core's recovery (`tenantflow_core::recover`).

use super::runs::{run_arn, status};
use super::{Ops, OpsError, OpsResult};
use crate::errors::service;
use serde::{Deserialize, Serialize};
use tenantflow_core::model::{Outcome, TenantRecord};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::Records;
use tenantflow_core::recover::{settle_all, TenantRecovery};
use tenantflow_core::steps::list_tenants::{run_prefix, RunInput};

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
            Outcome::RolledBack | Outcome::Skipped | Outcome::WouldFail => {
                tenants.push(t.tenant.clone())
            }
            Outcome::RollbackFailed => needs_attention.push(t.tenant.clone()),
            Outcome::Deployed | Outcome::UpToDate | Outcome::Rehearsed => {}
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

/// The retry run [`start_limited_run`] started, or found already started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitedRun {
    pub execution_arn: String,
    /// False: the same retry was started before (same run, same tenants); this is that run.
    pub started: bool,
}

/// Starts the retry run: writes the tenant list to `runs/<run>/retry-tenants.json` in the release
/// bucket (the run input names it by key: 10,000 names inline would approach the 256 KiB input
/// limit), then starts the release state machine on the retried run's input with `tenantList`.
/// The execution name is `<run>-r<7 hex of the list's sha256>`, so the same retry asked for again
/// (a second `retry`, or a crash between the two calls) finds the first execution instead of
/// making a second one: an execution of that name with the same input is returned as found.
pub async fn start_limited_run(ops: &Ops, plan: &RetryPlan) -> OpsResult<LimitedRun> {
    use aws_sdk_s3::types::ChecksumAlgorithm;
    use sha2::{Digest, Sha256};
    if plan.tenants.is_empty() {
        return Err(OpsError::Refused(format!(
            "run {} has no rolled-back or skipped tenant: nothing to retry",
            plan.run
        )));
    }
    let body = serde_json::to_vec(&plan.tenants)
        .map_err(|e| OpsError::Invalid(format!("serialize the tenant list: {e}")))?;
    let key = format!("{}retry-tenants.json", run_prefix(&plan.run));
    let input = RunInput {
        tenant_list: Some(key.clone()),
        ..plan.input.clone()
    };
    let digest = hex::encode(Sha256::digest(&body));
    // Execution names are at most 80 characters.
    let base: String = plan.run.chars().take(80 - 9).collect();
    let name = format!("{base}-r{}", &digest[..7]);
    let arn = run_arn(ops, &name);
    if let Some(found) = existing_retry(ops, &arn, &input).await? {
        return Ok(found);
    }
    ops.clients
        .s3
        .put_object()
        .bucket(&ops.stack.bucket)
        .key(&key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(body.clone().into())
        .send()
        .await
        .map_err(|e| crate::errors::classify("PutObject", e))?;
    let text = serde_json::to_string(&input)
        .map_err(|e| OpsError::Invalid(format!("serialize the run input: {e}")))?;
    let out = ops
        .clients
        .sfn
        .start_execution()
        .state_machine_arn(&ops.stack.state_machine_arn)
        .name(&name)
        .input(text)
        .send()
        .await;
    match out {
        Ok(out) => Ok(LimitedRun {
            execution_arn: out.execution_arn().to_string(),
            started: true,
        }),
        // Started by someone else between the look and the start.
        Err(e) if service(&e).is_some_and(|s| s.is_execution_already_exists()) => {
            existing_retry(ops, &arn, &input)
                .await?
                .ok_or_else(|| OpsError::Refused(format!("{name} exists with another input")))
        }
        Err(e) => Err(crate::errors::classify("StartExecution", e).into()),
    }
}

/// The retry execution `arn` if it exists; refused if it runs another input (another release or
/// tenant list under the same name).
async fn existing_retry(ops: &Ops, arn: &str, input: &RunInput) -> OpsResult<Option<LimitedRun>> {
    let d = ops
        .clients
        .sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await;
    let d = match d {
        Ok(d) => d,
        Err(e) if service(&e).is_some_and(|s| s.is_execution_does_not_exist()) => return Ok(None),
        Err(e) => return Err(crate::errors::classify("DescribeExecution", e).into()),
    };
    let theirs = d
        .input()
        .and_then(|i| serde_json::from_str::<RunInput>(i).ok());
    if theirs.as_ref() != Some(input) {
        return Err(OpsError::Refused(format!(
            "{arn} exists with another input than this retry's ({}): look at it with \
             `tenantflow aws status {arn}`",
            d.input().unwrap_or_default()
        )));
    }
    Ok(Some(LimitedRun {
        execution_arn: arn.to_string(),
        started: false,
    }))
}

/// A tenant whose lock holder is no longer running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Settles the stranded tenants with the core's recovery (`tenantflow_core::recover`), the same
/// logic as the recover Lambda: back with rollback, forward with teardown, then the lock released
/// and the journal marked aborted. A tenant still waiting on RDS comes back `pending`; run again.
pub async fn settle(ops: &Ops, stranded: &[Stranded]) -> OpsResult<Vec<TenantRecovery>> {
    let records = ops.records();
    let services = crate::ecs::EcsServices::new(ops.clients.ecs.clone());
    Ok(settle_all(
        &ops.databases(),
        &ops.parameters(),
        &records,
        &services,
        &ops.stack.default_cluster,
        stranded.iter().map(|s| s.record.clone()).collect(),
        false,
        chrono::Utc::now(),
    )
    .await)
}
