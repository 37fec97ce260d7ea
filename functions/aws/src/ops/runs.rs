//! `runs` and `status [RUN]`: the release state machine's runs, and one run's progress and
//! per-tenant table, from what the run itself writes:
//! - the execution (ListExecutions / DescribeExecution of the run only, never of its children,
//!   which throttles at thousands of tenants);
//! - while it runs, each Distributed Map's item counts (ListMapRuns + DescribeMapRun);
//! - the run's plan objects (`runs/<run>/tenants.json`, `skipped.json`) and, once it ends, its
//!   report (`runs/<run>/report.json`, the core's [`RunReport`]);
//! - the records table's by-run index: the tenants the run still holds.

use super::{Ops, OpsError, OpsResult};
use crate::errors::{classify, service};
use crate::time::to_utc;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantflow_core::ports::{Objects, Records};
use tenantflow_core::steps::list_tenants::{run_prefix, SkippedTenant, TenantItem};
use tenantflow_core::steps::report::RunReport;

/// One run of the release state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub name: String,
    pub execution_arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE.
    pub status: String,
    pub start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<DateTime<Utc>>,
}

/// Every run of the stack's state machine, newest first (ListExecutions, paginated).
pub async fn list_runs(ops: &Ops) -> OpsResult<Vec<RunSummary>> {
    let mut runs = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ops
            .clients
            .sfn
            .list_executions()
            .state_machine_arn(&ops.stack.state_machine_arn)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| classify("ListExecutions", e))?;
        for e in out.executions() {
            runs.push(RunSummary {
                name: e.name().to_string(),
                execution_arn: e.execution_arn().to_string(),
                status: e.status().as_str().to_string(),
                start: to_utc(e.start_date()),
                stop: e.stop_date().and_then(to_utc),
            });
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    runs.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.name.cmp(&b.name)));
    Ok(runs)
}

/// One Distributed Map of a running run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapProgress {
    pub map_run_arn: String,
    pub status: String,
    pub total: i64,
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub timed_out: i64,
    pub aborted: i64,
}

/// A tenant the records table shows locked by this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldTenant {
    pub tenant: String,
    pub holder: String,
    pub phase: String,
    /// The run journal, as recorded (empty until the steps write it).
    pub journal: serde_json::Value,
}

/// One run's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    pub run: RunSummary,
    /// The execution's error and cause when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Tenants the plan selected (`runs/<run>/tenants.json`), once list-tenants ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<u64>,
    /// Tenants the plan skipped and what each lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedTenant>,
    /// Each Map's counts (only while the run is RUNNING; the report has the final figures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<MapProgress>,
    /// The run report, once the run wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RunReport>,
    /// Tenants whose lock this run (or its children) still holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldTenant>,
}

/// A run name or ARN → its execution ARN.
pub fn run_arn(ops: &Ops, run: &str) -> String {
    if run.starts_with("arn:") {
        run.to_string()
    } else {
        super::push::execution_arn(&ops.stack.state_machine_arn, run)
    }
}

/// The status of `run` (a name or an execution ARN); `None`: the newest run.
pub async fn status(ops: &Ops, run: Option<&str>) -> OpsResult<RunStatus> {
    let arn = match run {
        Some(r) => run_arn(ops, r),
        None => list_runs(ops)
            .await?
            .into_iter()
            .next()
            .map(|r| r.execution_arn)
            .ok_or_else(|| OpsError::Invalid("the state machine has no runs yet".to_string()))?,
    };
    let d = ops
        .clients
        .sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await;
    let d = match d {
        Ok(d) => d,
        Err(e) if service(&e).is_some_and(|s| s.is_execution_does_not_exist()) => {
            return Err(OpsError::Invalid(format!(
                "no run {arn}: `tenantflow aws runs` lists them"
            )))
        }
        Err(e) => return Err(classify("DescribeExecution", e).into()),
    };
    let name = d
        .name()
        .map(str::to_string)
        .unwrap_or_else(|| arn.rsplit(':').next().unwrap_or_default().to_string());
    let summary = RunSummary {
        name: name.clone(),
        execution_arn: arn.clone(),
        status: d.status().as_str().to_string(),
        start: to_utc(d.start_date()),
        stop: d.stop_date().and_then(to_utc),
    };
    let bucket = &ops.stack.bucket;
    let objects = ops.objects();
    let prefix = run_prefix(&name);
    // The report's key: the execution output names it; a failed run's is the conventional one.
    let report_key = d
        .output()
        .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
        .and_then(|o| o["report"]["key"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{prefix}report.json"));
    let report = match objects.get(bucket, &report_key).await? {
        Some(b) => Some(serde_json::from_slice::<RunReport>(&b).map_err(|e| {
            OpsError::Invalid(format!(
                "s3://{bucket}/{report_key} is not a run report: {e}"
            ))
        })?),
        None => None,
    };
    let planned = match objects
        .get(bucket, &format!("{prefix}tenants.json"))
        .await?
    {
        Some(b) => serde_json::from_slice::<Vec<TenantItem>>(&b)
            .ok()
            .map(|v| v.len() as u64),
        None => None,
    };
    let skipped = match objects
        .get(bucket, &format!("{prefix}skipped.json"))
        .await?
    {
        Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut maps = Vec::new();
    if summary.status == "RUNNING" {
        maps = map_progress(ops, &arn).await?;
    }
    let mut held = Vec::new();
    for r in ops.records().list_run(&arn).await? {
        if let Some(holder) = r.holder.clone() {
            held.push(HeldTenant {
                tenant: r.tenant.to_string(),
                holder,
                phase: r.phase.as_str().to_string(),
                journal: serde_json::to_value(&r.journal).unwrap_or_default(),
            });
        }
    }
    Ok(RunStatus {
        run: summary,
        error: d.error().map(str::to_string),
        cause: d.cause().map(str::to_string),
        planned,
        skipped,
        maps,
        report,
        held,
    })
}

async fn map_progress(ops: &Ops, arn: &str) -> OpsResult<Vec<MapProgress>> {
    let sfn = &ops.clients.sfn;
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = sfn
            .list_map_runs()
            .execution_arn(arn)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| classify("ListMapRuns", e))?;
        arns.extend(out.map_runs().iter().map(|m| m.map_run_arn().to_string()));
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut maps = Vec::new();
    for m in arns {
        let d = sfn
            .describe_map_run()
            .map_run_arn(&m)
            .send()
            .await
            .map_err(|e| classify("DescribeMapRun", e))?;
        let c = d.item_counts();
        let n = |f: fn(&aws_sdk_sfn::types::MapRunItemCounts) -> i64| c.map(f).unwrap_or(0);
        maps.push(MapProgress {
            map_run_arn: m,
            status: d.status().as_str().to_string(),
            total: n(|c| c.total()),
            pending: n(|c| c.pending()),
            running: n(|c| c.running()),
            succeeded: n(|c| c.succeeded()),
            failed: n(|c| c.failed()),
            timed_out: n(|c| c.timed_out()),
            aborted: n(|c| c.aborted()),
        });
    }
    Ok(maps)
}
