//! Reading a Distributed Map's ResultWriter output: `<prefix>/<map-run-id>/manifest.json` naming
//! the `SUCCEEDED_n.json` / `FAILED_n.json` / … files, each a JSON array of child executions.
//!
//! A tenant's `cause` is read in words ([`in_words`]): the definition's Pass states hand on a
//! caught cause as Step Functions recorded it (a failed Lambda's is its JSON error payload, which
//! `Record failed undo` embeds in its text), and so does a child that failed outright.

use crate::cause::in_words;
use crate::error::StepError;
use crate::model::{Outcome, TenantResult, TenantState};
use crate::ports::Objects;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The Map state's output when it has a ResultWriter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRunOutput {
    #[serde(rename = "MapRunArn")]
    pub map_run_arn: String,
    #[serde(rename = "ResultWriterDetails")]
    pub result_writer_details: ObjectLocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLocation {
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
}

#[derive(Debug, Deserialize)]
struct ResultManifest {
    #[serde(rename = "ResultFiles", default)]
    result_files: BTreeMap<String, Vec<ResultFile>>,
}

#[derive(Debug, Deserialize)]
struct ResultFile {
    #[serde(rename = "Key")]
    key: String,
}

/// One child execution as ResultWriter records it.
#[derive(Debug, Deserialize)]
struct ChildEntry {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Input", default)]
    input: Option<String>,
    #[serde(rename = "Output", default)]
    output: Option<String>,
    #[serde(rename = "Error", default)]
    error: Option<String>,
    #[serde(rename = "Cause", default)]
    cause: Option<String>,
    #[serde(rename = "ExecutionArn", default)]
    execution_arn: Option<String>,
    /// ISO 8601 with milliseconds, e.g. `2023-03-10T07:32:12.425Z` (the engine writes the same).
    #[serde(rename = "StartDate", default)]
    start_date: Option<String>,
    #[serde(rename = "StopDate", default)]
    stop_date: Option<String>,
}

/// When one child execution started and stopped, as ResultWriter recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSpan {
    pub start: DateTime<Utc>,
    pub stop: DateTime<Utc>,
}

impl ChildEntry {
    fn span(&self) -> Option<ChildSpan> {
        let at = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Some(ChildSpan {
            start: at(&self.start_date)?,
            stop: at(&self.stop_date)?,
        })
    }
}

/// What a child execution ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildOutcome {
    /// A final per-tenant result (`TenantResult`).
    Final(TenantResult),
    /// An all-or-nothing intermediate stage (`prepared`, `committed`) with the tenant's state.
    Stage {
        stage: String,
        state: Box<TenantState>,
    },
}

impl ChildOutcome {
    pub fn tenant(&self) -> &str {
        match self {
            ChildOutcome::Final(r) => &r.tenant,
            ChildOutcome::Stage { state, .. } => state.tenant.as_str(),
        }
    }
}

#[derive(Deserialize)]
struct StageOutput {
    stage: String,
    state: TenantState,
}

/// Every child of one Map Run, in file order.
pub async fn read_map_run<O: Objects + ?Sized>(
    objects: &O,
    run: &MapRunOutput,
    release: &str,
) -> Result<Vec<ChildOutcome>, StepError> {
    Ok(read_map_run_timed(objects, run, release)
        .await?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

/// [`read_map_run`] with each child's span (none when ResultWriter gave no dates).
pub async fn read_map_run_timed<O: Objects + ?Sized>(
    objects: &O,
    run: &MapRunOutput,
    release: &str,
) -> Result<Vec<(ChildOutcome, Option<ChildSpan>)>, StepError> {
    let loc = &run.result_writer_details;
    let manifest: ResultManifest = read_json(objects, &loc.bucket, &loc.key).await?;
    let mut out = Vec::new();
    for files in manifest.result_files.values() {
        for file in files {
            let entries: Vec<ChildEntry> = read_json(objects, &loc.bucket, &file.key).await?;
            for entry in entries {
                let span = entry.span();
                out.push((child_outcome(entry, release)?, span));
            }
        }
    }
    Ok(out)
}

fn child_outcome(entry: ChildEntry, release: &str) -> Result<ChildOutcome, StepError> {
    if entry.status == "SUCCEEDED" {
        let text = entry.output.as_deref().unwrap_or("null");
        let value: Value = serde_json::from_str(text)
            .map_err(|e| StepError::Internal(format!("child output is not JSON: {e}")))?;
        if value.get("stage").is_some() {
            let s: StageOutput = serde_json::from_value(value)
                .map_err(|e| StepError::Internal(format!("child stage output: {e}")))?;
            return Ok(ChildOutcome::Stage {
                stage: s.stage,
                state: Box::new(s.state),
            });
        }
        let mut r: TenantResult = serde_json::from_value(value)
            .map_err(|e| StepError::Internal(format!("child result: {e}")))?;
        r.cause = r.cause.as_deref().map(in_words);
        return Ok(ChildOutcome::Final(r));
    }
    let tenant = entry
        .input
        .as_deref()
        .and_then(|i| serde_json::from_str::<Value>(i).ok())
        .and_then(|v| v.get("tenant").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    if entry.status == "PENDING" {
        return Ok(ChildOutcome::Final(TenantResult {
            tenant,
            outcome: Outcome::Skipped,
            release: release.to_string(),
            from_generation: None,
            to_generation: None,
            duration_seconds: None,
            error: Some("Run.NotStarted".to_string()),
            cause: Some(
                "the Map Run ended before this tenant's child execution started".to_string(),
            ),
        }));
    }
    // FAILED, TIMED_OUT or ABORTED: the child broke outside its own rollback, so nobody knows
    // what it left; the janitor and a person must look.
    let arn = entry.execution_arn.unwrap_or_default();
    Ok(ChildOutcome::Final(TenantResult {
        tenant,
        outcome: Outcome::RollbackFailed,
        release: release.to_string(),
        from_generation: None,
        to_generation: None,
        duration_seconds: None,
        error: Some(
            entry
                .error
                .unwrap_or_else(|| format!("Child.{}", entry.status)),
        ),
        cause: Some(format!(
            "child execution {arn} ended {} without a result: {}",
            entry.status,
            in_words(entry.cause.as_deref().unwrap_or_default())
        )),
    }))
}

pub async fn read_json<T: for<'de> Deserialize<'de>, O: Objects + ?Sized>(
    objects: &O,
    bucket: &str,
    key: &str,
) -> Result<T, StepError> {
    let bytes = objects
        .get(bucket, key)
        .await?
        .ok_or_else(|| StepError::NotFound(format!("s3://{bucket}/{key}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| StepError::Internal(format!("s3://{bucket}/{key}: {e}")))
}
