//! `report`: tallies each Map of the run from its ResultWriter files, and writes the run report.
//!
//! Tenant results never flow through a state payload. After every Distributed Map the state machine
//! calls `report` with the Map's output (`{MapRunArn, ResultWriterDetails}`) and the run's
//! [`Ledger`], a small record of what has run so far. `report` reads the child results from S3 and
//! returns the updated ledger, which carries the next decision:
//! - `wave`: counts the wave's outcomes; a failure rate (rolled-back + rollback-failed) above
//!   `maxFailurePercent` stops every later wave (`stop`). A skipped (locked) tenant says nothing
//!   about the release and does not count as a failure here; it still fails the run.
//! - `prepare` (all-or-nothing): every tenant prepared → writes the commit list (`commit`); else
//!   writes the list of prepared candidates to discard (`discard`).
//! - `commit`: every tenant committed → writes the teardown list (`teardown`); else writes the
//!   committed tenants to revert (`revert`).
//! - `discard`, `revert`, `teardown`: recorded (`done`).
//! - `final`: every planned tenant's last result goes into `runs/<run>/report.json`, an EventBridge
//!   `Run Completed` event is put, and the summary says whether the run SUCCEEDED.

mod results;

pub use results::{read_map_run, ChildOutcome, MapRunOutput, ObjectLocation};

use super::list_tenants::{run_prefix, ItemsRef, Plan, TenantItem, WavePlan};
use super::{parse_input, Ports};
use crate::error::StepError;
use crate::manifest::{FleetMode, Strategy};
use crate::model::{Outcome, ReleaseRef, RunContext, TenantResult, TenantState};
use crate::ports::{Events, Objects};
use results::read_json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The EventBridge detail-type of the event put at the end of a run.
pub const RUN_COMPLETED: &str = "Run Completed";

/// Which Map was just run (or `final`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Wave,
    Prepare,
    Commit,
    Discard,
    Revert,
    Teardown,
    Final,
}

/// What the state machine does next; its Choice states compare these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Nothing tallied yet.
    #[default]
    None,
    /// Run the next wave, if any.
    Continue,
    /// Stop later waves.
    Stop,
    Commit,
    Discard,
    Revert,
    Teardown,
    /// Go to the run report.
    Done,
}

/// Outcome counts of a Map (or of the whole run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub total: u64,
    pub deployed: u64,
    pub rolled_back: u64,
    pub skipped: u64,
    pub rollback_failed: u64,
    /// all-or-nothing stages.
    #[serde(default)]
    pub prepared: u64,
    #[serde(default)]
    pub committed: u64,
}

impl Counts {
    fn add(&mut self, c: &ChildOutcome) {
        self.total += 1;
        match c {
            ChildOutcome::Final(r) => match r.outcome {
                Outcome::Deployed => self.deployed += 1,
                Outcome::RolledBack => self.rolled_back += 1,
                Outcome::Skipped => self.skipped += 1,
                Outcome::RollbackFailed => self.rollback_failed += 1,
            },
            ChildOutcome::Stage { stage, .. } if stage == "committed" => self.committed += 1,
            ChildOutcome::Stage { .. } => self.prepared += 1,
        }
    }

    /// Tenants whose own deploy failed (not skipped ones).
    pub fn failures(&self) -> u64 {
        self.rolled_back + self.rollback_failed
    }
}

/// One Map of the run, as tallied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRecord {
    pub phase: Phase,
    /// The wave name, or the phase name.
    pub name: String,
    pub map_run: MapRunOutput,
    pub counts: Counts,
    pub failure_percent: f64,
}

/// The run's small running record, carried as `$.ledger`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    /// Index into `plan.waves` of the next wave to run.
    #[serde(default)]
    pub next_wave: u64,
    /// True when a wave's failure rate stopped the later waves.
    #[serde(default)]
    pub stop: bool,
    #[serde(default)]
    pub decision: Decision,
    /// The item list of the next phase Map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<ItemsRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub phases: Vec<PhaseRecord>,
}

/// Input of `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportInput {
    pub phase: Phase,
    pub plan: Plan,
    #[serde(default)]
    pub ledger: Ledger,
    /// The wave just run (phase `wave`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<WavePlan>,
    /// The Map's output (every phase but `final`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_run: Option<MapRunOutput>,
}

/// Where a report lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportLocation {
    pub bucket: String,
    pub key: String,
}

/// `runs/<run>/report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub run: RunContext,
    pub release: ReleaseRef,
    pub fleet: FleetMode,
    pub strategy: Strategy,
    /// SUCCEEDED when every planned tenant deployed, else FAILED.
    pub status: String,
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    pub phases: Vec<PhaseRecord>,
    pub tenants: Vec<TenantResult>,
}

/// The output of the `final` phase (`$.report`), also the execution's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummary {
    pub status: String,
    pub run: String,
    pub release: String,
    pub counts: Counts,
    pub report: ReportLocation,
    /// One line for the console: what did not deploy and where the report is.
    pub cause: String,
}

/// `report`'s output: the updated ledger, or the final summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReportOutput {
    Summary(ReportSummary),
    Ledger(Ledger),
}

/// Entry point used by [`super::dispatch`].
pub async fn run(ports: &Ports, input: Value) -> Result<ReportOutput, StepError> {
    let input: ReportInput = parse_input(input)?;
    report(ports.objects.as_ref(), ports.events.as_ref(), input).await
}

/// See the module doc.
pub async fn report<O, E>(
    objects: &O,
    events: &E,
    input: ReportInput,
) -> Result<ReportOutput, StepError>
where
    O: Objects + ?Sized,
    E: Events + ?Sized,
{
    let ReportInput {
        phase,
        plan,
        mut ledger,
        wave,
        map_run,
    } = input;
    if phase == Phase::Final {
        return finish(objects, events, &plan, &ledger)
            .await
            .map(ReportOutput::Summary);
    }
    let map_run = map_run.ok_or_else(|| StepError::invalid("mapRun", "is required"))?;
    let children = read_map_run(objects, &map_run, &plan.release.id).await?;
    let mut counts = Counts::default();
    children.iter().for_each(|c| counts.add(c));
    let failure_percent = if counts.total == 0 {
        0.0
    } else {
        counts.failures() as f64 * 100.0 / counts.total as f64
    };
    let name = match (phase, &wave) {
        (Phase::Wave, Some(w)) => w.name.clone(),
        (Phase::Wave, None) => return Err(StepError::invalid("wave", "is required")),
        (p, _) => phase_name(p).to_string(),
    };
    ledger.phases.push(PhaseRecord {
        phase,
        name: name.clone(),
        map_run,
        counts,
        failure_percent,
    });
    ledger.next = None;
    let states = |stage: &str| -> Vec<TenantState> {
        children
            .iter()
            .filter_map(|c| match c {
                ChildOutcome::Stage { stage: s, state } if s == stage => Some((**state).clone()),
                _ => None,
            })
            .collect()
    };
    let everyone = |n: usize| n as u64 == counts.total && counts.total == plan.tenant_count;
    ledger.decision = match phase {
        Phase::Wave => {
            ledger.next_wave += 1;
            let exceeded = failure_percent > plan.max_failure_percent;
            if exceeded && ledger.next_wave < plan.wave_count {
                ledger.stop = true;
                ledger.stop_reason = Some(format!(
                    "wave {name}: {} of {} tenants failed ({failure_percent:.1}% > maxFailurePercent {}%), so later waves did not run",
                    counts.failures(),
                    counts.total,
                    plan.max_failure_percent
                ));
                Decision::Stop
            } else {
                Decision::Continue
            }
        }
        Phase::Prepare => {
            let prepared = states("prepared");
            if everyone(prepared.len()) {
                ledger.next = Some(put_states(objects, &plan, "commit", &prepared).await?);
                Decision::Commit
            } else if !prepared.is_empty() {
                ledger.next = Some(put_states(objects, &plan, "discard", &prepared).await?);
                Decision::Discard
            } else {
                Decision::Done
            }
        }
        Phase::Commit => {
            let committed = states("committed");
            if everyone(committed.len()) {
                ledger.next = Some(put_states(objects, &plan, "teardown", &committed).await?);
                Decision::Teardown
            } else if !committed.is_empty() {
                ledger.next = Some(put_states(objects, &plan, "revert", &committed).await?);
                Decision::Revert
            } else {
                Decision::Done
            }
        }
        Phase::Discard | Phase::Revert | Phase::Teardown | Phase::Final => Decision::Done,
    };
    Ok(ReportOutput::Ledger(ledger))
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Wave => "wave",
        Phase::Prepare => "prepare",
        Phase::Commit => "commit",
        Phase::Discard => "discard",
        Phase::Revert => "revert",
        Phase::Teardown => "teardown",
        Phase::Final => "final",
    }
}

/// Writes a phase's item list (`runs/<run>/phases/<phase>.json`), a JSON array of tenant states.
async fn put_states<O: Objects + ?Sized>(
    objects: &O,
    plan: &Plan,
    phase: &str,
    states: &[TenantState],
) -> Result<ItemsRef, StepError> {
    let key = format!("{}phases/{phase}.json", run_prefix(&plan.run.name));
    let body = serde_json::to_vec(states)
        .map_err(|e| StepError::Internal(format!("serialize {phase} list: {e}")))?;
    objects.put(&plan.all_tenants.bucket, &key, &body).await?;
    Ok(ItemsRef {
        bucket: plan.all_tenants.bucket.clone(),
        key,
        count: states.len() as u64,
    })
}

/// Builds every planned tenant's final result, writes the report, puts the event.
async fn finish<O, E>(
    objects: &O,
    events: &E,
    plan: &Plan,
    ledger: &Ledger,
) -> Result<ReportSummary, StepError>
where
    O: Objects + ?Sized,
    E: Events + ?Sized,
{
    let mut last: BTreeMap<String, ChildOutcome> = BTreeMap::new();
    for record in &ledger.phases {
        for child in read_map_run(objects, &record.map_run, &plan.release.id).await? {
            last.insert(child.tenant().to_string(), child);
        }
    }
    let planned: Vec<TenantItem> = if plan.tenant_count == 0 {
        Vec::new()
    } else {
        read_json(objects, &plan.all_tenants.bucket, &plan.all_tenants.key).await?
    };
    let mut tenants: Vec<TenantResult> = Vec::with_capacity(planned.len());
    for item in &planned {
        let name = item.tenant.as_str();
        tenants.push(match last.remove(name) {
            Some(ChildOutcome::Final(r)) => r,
            Some(ChildOutcome::Stage { stage, .. }) => not_done(
                plan,
                name,
                Outcome::RollbackFailed,
                "Run.LeftInStage",
                format!(
                    "the run ended with the tenant {stage}; its candidate and lock need a person"
                ),
            ),
            None => match &ledger.stop_reason {
                Some(reason) => not_done(
                    plan,
                    name,
                    Outcome::Skipped,
                    "Run.WavesStopped",
                    reason.clone(),
                ),
                None => not_done(
                    plan,
                    name,
                    Outcome::Skipped,
                    "Run.NotStarted",
                    "the run ended before this tenant started".to_string(),
                ),
            },
        });
    }
    // Results for tenants outside the plan (should not happen) are still reported.
    tenants.extend(last.into_values().map(|c| match c {
        ChildOutcome::Final(r) => r,
        ChildOutcome::Stage { state, stage } => not_done(
            plan,
            state.tenant.as_str(),
            Outcome::RollbackFailed,
            "Run.LeftInStage",
            format!("the run ended with the tenant {stage}"),
        ),
    }));
    let mut counts = Counts::default();
    for t in &tenants {
        counts.add(&ChildOutcome::Final(t.clone()));
    }
    let status = if counts.deployed == counts.total {
        "SUCCEEDED"
    } else {
        "FAILED"
    }
    .to_string();
    let location = ReportLocation {
        bucket: plan.all_tenants.bucket.clone(),
        key: format!("{}report.json", run_prefix(&plan.run.name)),
    };
    let report = RunReport {
        run: plan.run.clone(),
        release: plan.release.clone(),
        fleet: plan.fleet,
        strategy: plan.release.strategy,
        status: status.clone(),
        counts,
        stop_reason: ledger.stop_reason.clone(),
        phases: ledger.phases.clone(),
        tenants,
    };
    let body = serde_json::to_vec_pretty(&report)
        .map_err(|e| StepError::Internal(format!("serialize report: {e}")))?;
    objects.put(&location.bucket, &location.key, &body).await?;
    let url = format!("s3://{}/{}", location.bucket, location.key);
    let cause = if status == "SUCCEEDED" {
        format!(
            "{} of {} tenants deployed; report {url}",
            counts.deployed, counts.total
        )
    } else {
        format!(
            "{} of {} tenants did not deploy (rolled-back {}, skipped {}, rollback-failed {}); report {url}",
            counts.total - counts.deployed,
            counts.total,
            counts.rolled_back,
            counts.skipped,
            counts.rollback_failed
        )
    };
    events
        .put_event(
            RUN_COMPLETED,
            &json!({
                "run": plan.run.name,
                "executionArn": plan.run.execution_arn,
                "release": plan.release.id,
                "strategy": plan.release.strategy,
                "fleet": plan.fleet,
                "status": status,
                "counts": counts,
                "stopReason": ledger.stop_reason,
                "report": {"bucket": location.bucket, "key": location.key},
            }),
        )
        .await?;
    Ok(ReportSummary {
        status,
        run: plan.run.name.clone(),
        release: plan.release.id.clone(),
        counts,
        report: location,
        cause,
    })
}

fn not_done(
    plan: &Plan,
    tenant: &str,
    outcome: Outcome,
    error: &str,
    cause: String,
) -> TenantResult {
    TenantResult {
        tenant: tenant.to_string(),
        outcome,
        release: plan.release.id.clone(),
        from_generation: None,
        to_generation: None,
        error: Some(error.to_string()),
        cause: Some(cause),
    }
}
