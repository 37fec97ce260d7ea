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
//!   `Run Completed` event is put, and the summary says whether the run SUCCEEDED. The tenants the
//!   plan settled without a child (`settled.json`: up to date, newer) are reported too; an
//!   up-to-date tenant counts as a success.

mod results;

pub use results::{
    read_map_run, read_map_run_timed, ChildOutcome, ChildSpan, MapRunOutput, ObjectLocation,
};

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
    /// Fleet mode `rehearse`: the one Map, prepare then discard, per tenant.
    Rehearse,
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
    /// Tenants already on the release (settled by the plan): a success, never a failure.
    #[serde(default)]
    pub up_to_date: u64,
    /// all-or-nothing stages.
    #[serde(default)]
    pub prepared: u64,
    #[serde(default)]
    pub committed: u64,
    /// Fleet mode `rehearse`.
    #[serde(default)]
    pub rehearsed: u64,
    #[serde(default)]
    pub would_fail: u64,
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
                Outcome::UpToDate => self.up_to_date += 1,
                Outcome::Rehearsed => self.rehearsed += 1,
                Outcome::WouldFail => self.would_fail += 1,
            },
            ChildOutcome::Stage { stage, .. } if stage == "committed" => self.committed += 1,
            ChildOutcome::Stage { .. } => self.prepared += 1,
        }
    }

    /// Tenants whose own deploy failed (not skipped ones).
    pub fn failures(&self) -> u64 {
        self.rolled_back + self.rollback_failed + self.would_fail
    }

    /// Tenants that ended as the run meant: deployed, already up to date, or rehearsed in a
    /// rehearsal.
    pub fn succeeded(&self) -> u64 {
        self.deployed + self.up_to_date + self.rehearsed
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
    /// SUCCEEDED when every planned tenant deployed or was already up to date, else FAILED.
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
        Phase::Discard | Phase::Revert | Phase::Teardown | Phase::Rehearse | Phase::Final => {
            Decision::Done
        }
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
        Phase::Rehearse => "rehearse",
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
    let mut spans: BTreeMap<String, ChildSpan> = BTreeMap::new();
    for record in &ledger.phases {
        for (child, span) in read_map_run_timed(objects, &record.map_run, &plan.release.id).await? {
            if let Some(s) = span {
                let t = spans.entry(child.tenant().to_string()).or_insert(s);
                t.start = t.start.min(s.start);
                t.stop = t.stop.max(s.stop);
            }
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
        let seconds = spans
            .get(name)
            .and_then(|s| u64::try_from((s.stop - s.start).num_seconds()).ok());
        tenants.push(match last.remove(name) {
            Some(ChildOutcome::Final(r)) => TenantResult {
                duration_seconds: seconds,
                ..r
            },
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
    // Tenants the plan settled without a child (up to date, newer).
    if let Some(settled) = &plan.settled {
        let results: Vec<TenantResult> = read_json(objects, &settled.bucket, &settled.key).await?;
        tenants.extend(results);
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
    let status = if counts.succeeded() == counts.total {
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
    let cause = if plan.fleet == FleetMode::Rehearse {
        format!(
            "rehearsal: {} of {} tenants rehearsed, {} would fail (skipped {}, rollback-failed {}); report {url}",
            counts.rehearsed, counts.total, counts.would_fail, counts.skipped, counts.rollback_failed
        )
    } else if status == "SUCCEEDED" {
        format!(
            "{} of {} tenants deployed, {} already up to date; report {url}",
            counts.deployed, counts.total, counts.up_to_date
        )
    } else {
        format!(
            "{} of {} tenants did not deploy (rolled-back {}, skipped {}, rollback-failed {}); report {url}",
            counts.total - counts.succeeded(),
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
        duration_seconds: None,
        error: Some(error.to_string()),
        cause: Some(cause),
    }
}

#[cfg(test)]
mod tests {
    use super::super::list_tenants::fixtures::{planned, tenant, world, BUCKET, RUN};
    use super::*;
    use crate::testing::FakeWorld;
    use serde_json::json;

    fn result(t: &str, outcome: &str, error: Option<&str>) -> Value {
        json!({"tenant": t, "outcome": outcome, "release": "r1", "fromGeneration": "20260101000000",
               "toGeneration": if outcome == "deployed" { json!("20261103101500") } else { Value::Null },
               "error": error, "cause": error.map(|e| format!("because {e}"))})
    }

    fn stage(plan: &Plan, t: &str, stage: &str) -> Value {
        let state = json!({"tenant": t, "run": plan.run, "release": plan.release, "progress": {"lock": plan.run.execution_arn}});
        json!({"stage": stage, "tenant": t, "state": state})
    }

    /// Writes a Map Run's ResultWriter output the way Step Functions does; returns the Map output.
    fn map_run(
        w: &FakeWorld,
        id: &str,
        succeeded: &[Value],
        failed: &[(&str, &str)],
    ) -> MapRunOutput {
        let base = format!("runs/{RUN}/results/{id}");
        // Maps "p", "c" and "r" (the all-or-nothing phases) carry child dates, as AWS writes them.
        let dates = match id {
            "p" => Some(("2026-11-03T10:00:00.000Z", "2026-11-03T10:10:00.000Z")),
            "c" => Some(("2026-11-03T10:20:00.000Z", "2026-11-03T10:25:00.500Z")),
            "r" => Some(("2026-11-03T10:30:00.000Z", "2026-11-03T10:31:00.000Z")),
            _ => None,
        };
        let ok: Vec<Value> = succeeded
            .iter()
            .map(|o| {
                let mut e = json!({"Status": "SUCCEEDED", "Input": "{}", "Output": o.to_string(), "ExecutionArn": "arn:x"});
                if let Some((start, stop)) = dates {
                    e["StartDate"] = json!(start);
                    e["StopDate"] = json!(stop);
                }
                e
            })
            .collect();
        let bad: Vec<Value> = failed
            .iter()
            .map(|(t, e)| json!({"Status": "FAILED", "Input": json!({"tenant": t}).to_string(), "Error": e, "Cause": "boom", "ExecutionArn": format!("arn:child:{t}")}))
            .collect();
        w.objects.seed(
            BUCKET,
            &format!("{base}/SUCCEEDED_0.json"),
            Value::Array(ok).to_string().as_bytes(),
        );
        w.objects.seed(
            BUCKET,
            &format!("{base}/FAILED_0.json"),
            Value::Array(bad).to_string().as_bytes(),
        );
        let manifest = json!({"DestinationBucket": BUCKET, "MapRunArn": format!("arn:maprun:{id}"), "ResultFiles": {
            "SUCCEEDED": [{"Key": format!("{base}/SUCCEEDED_0.json"), "Size": 1}],
            "FAILED": [{"Key": format!("{base}/FAILED_0.json"), "Size": 1}],
            "PENDING": []}});
        w.objects.seed(
            BUCKET,
            &format!("{base}/manifest.json"),
            manifest.to_string().as_bytes(),
        );
        MapRunOutput {
            map_run_arn: format!("arn:maprun:{id}"),
            result_writer_details: ObjectLocation {
                bucket: BUCKET.into(),
                key: format!("{base}/manifest.json"),
            },
        }
    }

    async fn tally(
        w: &FakeWorld,
        phase: Phase,
        plan: &Plan,
        ledger: Ledger,
        wave: Option<usize>,
        run: MapRunOutput,
    ) -> Ledger {
        let input = ReportInput {
            phase,
            plan: plan.clone(),
            ledger,
            wave: wave.map(|i| plan.waves[i].clone()),
            map_run: Some(run),
        };
        match report(&*w.objects, &*w.events, input).await.unwrap() {
            ReportOutput::Ledger(l) => l,
            other => panic!("{other:?}"),
        }
    }

    async fn finish(w: &FakeWorld, plan: &Plan, ledger: Ledger) -> (ReportSummary, RunReport) {
        let input = ReportInput {
            phase: Phase::Final,
            plan: plan.clone(),
            ledger,
            wave: None,
            map_run: None,
        };
        let summary = match report(&*w.objects, &*w.events, input).await.unwrap() {
            ReportOutput::Summary(s) => s,
            other => panic!("{other:?}"),
        };
        let body = w.objects.body(BUCKET, &summary.report.key).unwrap();
        (summary, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_canary_over_the_failure_limit_stops_later_waves_and_the_report_says_so() {
        let w = world(
            4,
            json!({"waves": {"canaryCount": 2, "maxFailurePercent": 25}}),
        );
        let plan = planned(&w, json!({})).await;
        let run = map_run(
            &w,
            "canary",
            &[
                result(&tenant(0), "deployed", None),
                result(&tenant(1), "rolled-back", Some("States.TaskFailed")),
            ],
            &[],
        );
        let ledger = tally(&w, Phase::Wave, &plan, Ledger::default(), Some(0), run).await;
        assert_eq!(
            (ledger.decision, ledger.stop, ledger.next_wave),
            (Decision::Stop, true, 1)
        );
        assert!(ledger
            .stop_reason
            .as_deref()
            .unwrap()
            .contains("50.0% > maxFailurePercent 25%"));

        let (summary, rep) = finish(&w, &plan, ledger).await;
        assert_eq!(summary.status, "FAILED");
        assert_eq!(rep.tenants.len(), 4);
        let outcome = |t: &str| {
            rep.tenants
                .iter()
                .find(|r| r.tenant == t)
                .map(|r| (r.outcome, r.error.clone()))
                .unwrap()
        };
        assert_eq!(outcome(&tenant(0)), (Outcome::Deployed, None));
        assert_eq!(
            outcome(&tenant(1)),
            (Outcome::RolledBack, Some("States.TaskFailed".into()))
        );
        assert_eq!(
            outcome(&tenant(3)),
            (Outcome::Skipped, Some("Run.WavesStopped".into()))
        );
        assert_eq!(
            (
                rep.counts.deployed,
                rep.counts.rolled_back,
                rep.counts.skipped
            ),
            (1, 1, 2)
        );
        assert!(
            summary.cause.starts_with("3 of 4 tenants did not deploy"),
            "{}",
            summary.cause
        );
        let events = w.events.events.lock().unwrap().clone();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, RUN_COMPLETED);
        assert_eq!(events[0].1["status"], "FAILED");
        assert_eq!(
            events[0].1["report"]["key"],
            format!("runs/{RUN}/report.json")
        );
    }

    #[tokio::test]
    async fn within_the_limit_and_skipped_tenants_do_not_stop_waves() {
        let w = world(
            4,
            json!({"waves": {"canaryCount": 2, "maxFailurePercent": 50}}),
        );
        let plan = planned(&w, json!({})).await;
        let run = map_run(
            &w,
            "canary",
            &[
                result(&tenant(0), "skipped", Some("Tenantflow.Locked")),
                result(&tenant(1), "rolled-back", Some("X")),
            ],
            &[],
        );
        let ledger = tally(&w, Phase::Wave, &plan, Ledger::default(), Some(0), run).await;
        assert_eq!((ledger.decision, ledger.stop), (Decision::Continue, false));
        let run = map_run(
            &w,
            "main",
            &[
                result(&tenant(2), "deployed", None),
                result(&tenant(3), "deployed", None),
            ],
            &[],
        );
        let ledger = tally(&w, Phase::Wave, &plan, ledger, Some(1), run).await;
        assert_eq!((ledger.next_wave, ledger.phases.len()), (2, 2));
        let (summary, rep) = finish(&w, &plan, ledger).await;
        assert_eq!(summary.status, "FAILED");
        assert_eq!(rep.counts.deployed, 2);
    }

    /// The causes the definition hands on as Step Functions recorded them (a failed Lambda's JSON
    /// error payload, also inside `Record failed undo`'s text; a failed build's JSON) are
    /// reported in words.
    #[tokio::test]
    async fn causes_are_reported_in_words() {
        let w = world(4, json!({}));
        let plan = planned(&w, json!({})).await;
        let lambda = crate::cause::lambda_cause("Tenantflow.Locked", "held by run arn:other");
        let build = json!({"Build": {"Id": "p:1", "BuildStatus": "FAILED", "Phases": [
            {"PhaseType": "BUILD", "PhaseStatus": "FAILED", "Contexts": [{"Message": "migration V2__x.sql failed: boom"}]}]}})
        .to_string();
        let with_cause = |t: &str, outcome: &str, error: &str, cause: &str| {
            let mut r = result(t, outcome, Some(error));
            r["cause"] = json!(cause);
            r
        };
        let undo = crate::cause::lambda_cause("Tenantflow.Internal", "ssm said no");
        let run = map_run(
            &w,
            "main",
            &[
                with_cause(&tenant(0), "skipped", "Tenantflow.Locked", &lambda),
                with_cause(&tenant(1), "rolled-back", "States.TaskFailed", &build),
                with_cause(
                    &tenant(2),
                    "rollback-failed",
                    "Tenantflow.Internal",
                    &format!("undo after Tenantflow.RolloutFailed failed: {undo}"),
                ),
            ],
            &[],
        );
        let ledger = tally(&w, Phase::Wave, &plan, Ledger::default(), Some(0), run).await;
        let (_, rep) = finish(&w, &plan, ledger).await;
        let cause = |i: usize| {
            rep.tenants
                .iter()
                .find(|r| r.tenant == tenant(i))
                .and_then(|r| r.cause.clone())
                .unwrap_or_default()
        };
        assert_eq!(cause(0), "held by run arn:other");
        assert_eq!(cause(1), "migration V2__x.sql failed: boom");
        assert_eq!(
            cause(2),
            "undo after Tenantflow.RolloutFailed failed: ssm said no"
        );
    }

    #[tokio::test]
    async fn a_crashed_child_is_rollback_failed_and_every_deploy_succeeds_the_run() {
        let w = world(2, json!({}));
        let plan = planned(&w, json!({})).await;
        let run = map_run(
            &w,
            "main",
            &[result(&tenant(0), "deployed", None)],
            &[(&tenant(1), "States.Runtime")],
        );
        let ledger = tally(&w, Phase::Wave, &plan, Ledger::default(), Some(0), run).await;
        let (_, rep) = finish(&w, &plan, ledger).await;
        let crashed = rep.tenants.iter().find(|r| r.tenant == tenant(1)).unwrap();
        assert_eq!(crashed.outcome, Outcome::RollbackFailed);
        assert_eq!(crashed.error.as_deref(), Some("States.Runtime"));
        assert!(crashed.cause.as_deref().unwrap().contains("arn:child:"));

        let w = world(2, json!({}));
        let plan = planned(&w, json!({})).await;
        let run = map_run(
            &w,
            "main",
            &[
                result(&tenant(0), "deployed", None),
                result(&tenant(1), "deployed", None),
            ],
            &[],
        );
        let ledger = tally(&w, Phase::Wave, &plan, Ledger::default(), Some(0), run).await;
        let (summary, _) = finish(&w, &plan, ledger).await;
        assert_eq!(summary.status, "SUCCEEDED");
        assert_eq!(summary.counts.deployed, 2);
    }

    #[tokio::test]
    async fn all_or_nothing_prepare_and_commit_decisions() {
        let w = world(3, json!({"fleet": "all-or-nothing"}));
        let plan = planned(&w, json!({})).await;
        let states = |stage_name: &str| -> Vec<Value> {
            (0..3)
                .map(|i| stage(&plan, &tenant(i), stage_name))
                .collect()
        };

        // Everyone prepared → the commit list holds every tenant's state.
        let ledger = tally(
            &w,
            Phase::Prepare,
            &plan,
            Ledger::default(),
            None,
            map_run(&w, "p1", &states("prepared"), &[]),
        )
        .await;
        assert_eq!(ledger.decision, Decision::Commit);
        let next = ledger.next.clone().unwrap();
        assert_eq!(
            (next.key.as_str(), next.count),
            (format!("runs/{RUN}/phases/commit.json").as_str(), 3)
        );
        let listed: Vec<TenantState> =
            serde_json::from_slice(&w.objects.body(BUCKET, &next.key).unwrap()).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(
            listed[0].progress.lock.as_deref(),
            Some(plan.run.execution_arn.as_str())
        );

        // One failed to prepare → only the prepared candidates are discarded.
        let mut mixed = states("prepared");
        mixed[1] = result(&tenant(1), "rolled-back", Some("States.TaskFailed"));
        let ledger = tally(
            &w,
            Phase::Prepare,
            &plan,
            Ledger::default(),
            None,
            map_run(&w, "p2", &mixed, &[]),
        )
        .await;
        assert_eq!(ledger.decision, Decision::Discard);
        assert_eq!(ledger.next.as_ref().map(|n| n.count), Some(2));

        // Nobody prepared → nothing to discard.
        let none: Vec<Value> = (0..3)
            .map(|i| result(&tenant(i), "skipped", Some("Tenantflow.Locked")))
            .collect();
        let ledger = tally(
            &w,
            Phase::Prepare,
            &plan,
            Ledger::default(),
            None,
            map_run(&w, "p3", &none, &[]),
        )
        .await;
        assert_eq!(
            (ledger.decision, ledger.next.is_none()),
            (Decision::Done, true)
        );

        // Commit: all → teardown; one failed → revert the committed ones.
        let ledger = tally(
            &w,
            Phase::Commit,
            &plan,
            Ledger::default(),
            None,
            map_run(&w, "c1", &states("committed"), &[]),
        )
        .await;
        assert_eq!(ledger.decision, Decision::Teardown);
        let mut mixed = states("committed");
        mixed[2] = result(&tenant(2), "rolled-back", Some("Tenantflow.RolloutFailed"));
        let ledger = tally(
            &w,
            Phase::Commit,
            &plan,
            Ledger::default(),
            None,
            map_run(&w, "c2", &mixed, &[]),
        )
        .await;
        assert_eq!(ledger.decision, Decision::Revert);
        assert_eq!(
            ledger.next.as_ref().map(|n| n.key.ends_with("revert.json")),
            Some(true)
        );
    }

    #[tokio::test]
    async fn the_final_report_takes_each_tenants_last_phase() {
        let w = world(2, json!({"fleet": "all-or-nothing"}));
        let plan = planned(&w, json!({})).await;
        let prepared: Vec<Value> = (0..2)
            .map(|i| stage(&plan, &tenant(i), "prepared"))
            .collect();
        let ledger = tally(
            &w,
            Phase::Prepare,
            &plan,
            Ledger::default(),
            None,
            map_run(&w, "p", &prepared, &[]),
        )
        .await;
        let committed = vec![
            stage(&plan, &tenant(0), "committed"),
            result(&tenant(1), "rolled-back", Some("Tenantflow.RolloutFailed")),
        ];
        let ledger = tally(
            &w,
            Phase::Commit,
            &plan,
            ledger,
            None,
            map_run(&w, "c", &committed, &[]),
        )
        .await;
        assert_eq!(ledger.decision, Decision::Revert);
        let reverted = vec![result(
            &tenant(0),
            "rolled-back",
            Some("AllOrNothing.Reverted"),
        )];
        let ledger = tally(
            &w,
            Phase::Revert,
            &plan,
            ledger,
            None,
            map_run(&w, "r", &reverted, &[]),
        )
        .await;
        assert_eq!(ledger.decision, Decision::Done);
        let (summary, rep) = finish(&w, &plan, ledger).await;
        assert_eq!(summary.status, "FAILED");
        let errors: Vec<Option<String>> = rep.tenants.iter().map(|r| r.error.clone()).collect();
        assert_eq!(
            errors,
            [
                Some("AllOrNothing.Reverted".into()),
                Some("Tenantflow.RolloutFailed".into())
            ]
        );
        assert_eq!(rep.counts.rolled_back, 2);
        let names: Vec<&str> = rep.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["prepare", "commit", "revert"]);
        // Each tenant's duration: its first child's start to its last child's stop, across phases.
        let durations: Vec<Option<u64>> = rep.tenants.iter().map(|r| r.duration_seconds).collect();
        assert_eq!(durations, [Some(1860), Some(1500)]);
    }

    #[tokio::test]
    async fn a_tally_without_its_map_output_is_invalid_input() {
        let w = world(1, json!({}));
        let plan = planned(&w, json!({})).await;
        let input = ReportInput {
            phase: Phase::Wave,
            plan,
            ledger: Ledger::default(),
            wave: None,
            map_run: None,
        };
        let e = report(&*w.objects, &*w.events, input).await.unwrap_err();
        assert_eq!(e.asl_name(), "Tenantflow.InvalidInput");
    }

    /// Tenants the plan settled (up to date) are in the report as successes: a run whose other
    /// tenants deployed SUCCEEDED, and they count toward no wave's failure rate.
    #[tokio::test]
    async fn up_to_date_tenants_are_reported_as_successes() {
        let w = world(3, json!({"waves": {"maxFailurePercent": 0}}));
        let digest = {
            let body = w.objects.body(BUCKET, "releases/r1/manifest.json").unwrap();
            crate::manifest::Manifest::parse(&body)
                .unwrap()
                .script_set_digest()
                .unwrap()
        };
        for i in [1, 2] {
            let path = format!("/tenantflow/{}/db", tenant(i));
            let mut v: Value = serde_json::from_str(&w.params.value(&path).unwrap()).unwrap();
            v["release"] = json!("r1");
            v["scripts"] = json!(digest);
            w.params.seed(&path, &v.to_string());
        }
        let plan = planned(&w, json!({})).await;
        assert_eq!(plan.tenant_count, 1);
        let run = map_run(&w, "main", &[result(&tenant(0), "deployed", None)], &[]);
        let ledger = tally(&w, Phase::Wave, &plan, Ledger::default(), Some(0), run).await;
        assert_eq!(ledger.phases[0].counts.total, 1);
        let (summary, rep) = finish(&w, &plan, ledger).await;
        assert_eq!(summary.status, "SUCCEEDED", "{}", summary.cause);
        assert_eq!(
            (rep.counts.total, rep.counts.deployed, rep.counts.up_to_date),
            (3, 1, 2)
        );
        assert_eq!(rep.tenants.len(), 3);
        assert!(
            summary.cause.contains("2 already up to date"),
            "{}",
            summary.cause
        );
    }
}
