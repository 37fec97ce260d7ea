//! Recovery: settle the tenants of a run that died without finishing (DESIGN §2, run journal).
//!
//! The caller decides which runs are dead (locally: every run recorded RUNNING while `recover`
//! or `deploy` holds the state directory's OS lock; on AWS: an execution that is not RUNNING) and
//! hands their tenant records to [`settle`]. For each record, from its journal:
//!
//! - **back** (anything before a COMPLETED rollout): rebuild the step input from the journal
//!   and run [`crate::steps::rollback`] (flip back if flipped, re-roll the app, delete the
//!   candidate and the run's snapshot, clear the freeze, release the lock);
//! - **forward** (the journal is at `teardown`, or the recorded ECS deployment is COMPLETED when
//!   asked now via `Services::deployment`): run [`crate::steps::teardown`] (clear the freeze,
//!   retire the old generation, prune beyond retention, release the lock). The run's snapshot is
//!   the newest, so retention keeps it;
//! - **released**: a lock with no journal state (the run died between taking the lock and its
//!   first journal write): nothing of the run exists but, at most, a freeze naming it, which is
//!   cleared; then the lock is released.
//!
//! Then the record's journal is marked `aborted`, so every later step of that run fails with
//! `Tenantflow.RunAborted`. Each part is idempotent (rollback and teardown are, and they journal
//! their own progress), so running recovery twice equals running it once, and an interrupted
//! recovery is finished by the next. A rollback that waits on RDS (`NotReady`, e.g. a snapshot
//! still `creating`) leaves the tenant `pending` with its lock held: run recovery again later.

use crate::error::{ErrorInfo, StepError};
use crate::model::{Aborted, Journal, Outcome, ResourceKind, TenantRecord, TenantState};
use crate::ports::{Databases, Parameters, Records, Services};
use crate::steps::{rollback, teardown, tenant};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What recovery does (or would do) to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Undo the run's work: the tenant stays on its old generation.
    RolledBack,
    /// The rollout had COMPLETED: finish with teardown; the tenant stays on the new generation.
    RolledForward,
    /// Nothing of the run to undo: release the lock (and clear a freeze naming the run).
    Released,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RolledBack => "rolled-back",
            Action::RolledForward => "rolled-forward",
            Action::Released => "released",
        }
    }
}

/// How settling one tenant went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryOutcome {
    /// Settled now (or by an earlier recovery whose marking this one finished).
    Recovered,
    /// `--dry-run`: what would be done.
    Planned,
    /// A resource is not ready yet (`NotReady`/`Transient`): the lock stays; run recovery again.
    Pending,
    /// The undo failed for good; the lock stays held so `status` keeps pointing at the tenant.
    Failed,
}

/// One row of a recovery report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecovery {
    pub tenant: String,
    /// The dead run (its execution ARN).
    pub run: String,
    /// The step the journal says was under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub action: Action,
    pub outcome: RecoveryOutcome,
    /// ASL error name when pending or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The error recovery hands rollback and teardown: their journal keeps it, so a recovery
/// interrupted after their release and before its own marking is found again.
pub const RECOVERY_ERROR: &str = "Tenantflow.RunAborted";

/// Whether `record` still needs recovery once its run is known to be dead: its lock is held; or
/// it was released (e.g. by the janitor) in the middle of the run, before `teardown` or
/// `rollback` finished it; or a recovery's rollback/teardown released it and the recovery died
/// before marking it aborted.
pub fn needs_recovery(record: &TenantRecord) -> bool {
    if record.holder.is_some() {
        return true;
    }
    let j = &record.journal;
    let Some(state) = &j.state else {
        return false;
    };
    let by_recovery = state
        .error
        .as_ref()
        .is_some_and(|e| e.error == RECOVERY_ERROR);
    j.aborted.is_none()
        && (by_recovery || !matches!(j.step.as_deref(), Some("teardown") | Some("rollback")))
}

/// The run a record's lock or journal belongs to.
fn run_of(record: &TenantRecord) -> String {
    record
        .holder
        .clone()
        .or_else(|| record.run.clone())
        .unwrap_or_default()
}

/// Decides back or forward from the journal (asking ECS about a recorded rollout).
pub async fn decide<S: Services + ?Sized>(
    services: &S,
    journal: &Journal,
) -> Result<Action, StepError> {
    if let Some(a) = &journal.aborted {
        return Ok(match a.action.as_str() {
            "rolled-forward" => Action::RolledForward,
            "rolled-back" => Action::RolledBack,
            _ => Action::Released,
        });
    }
    let Some(state) = &journal.state else {
        return Ok(Action::Released);
    };
    match journal.step.as_deref() {
        Some("teardown") => return Ok(Action::RolledForward),
        Some("rollback") => return Ok(Action::RolledBack),
        _ => {}
    }
    let Some(dep) = &state.progress.deployment else {
        return Ok(Action::RolledBack);
    };
    if dep.rollout_state == "COMPLETED" {
        return Ok(Action::RolledForward);
    }
    // The rollout's outcome as ECS says now. A deployment ECS no longer lists, or one not
    // COMPLETED, is rolled back: the freeze is still up until teardown, so the new generation
    // took no writes and going back loses none.
    let live = services
        .deployment(&dep.service, &dep.deployment_id)
        .await?;
    Ok(match live {
        Some(d) if d.rollout_state == "COMPLETED" => Action::RolledForward,
        _ => Action::RolledBack,
    })
}

/// Settles one tenant record of a dead run (see the module doc). `at` stamps the abort marker.
#[allow(clippy::too_many_arguments)]
pub async fn settle<
    D: Databases + ?Sized,
    P: Parameters + ?Sized,
    R: Records + ?Sized,
    S: Services + ?Sized,
>(
    db: &D,
    params: &P,
    records: &R,
    services: &S,
    default_cluster: &str,
    record: TenantRecord,
    dry_run: bool,
    at: DateTime<Utc>,
) -> TenantRecovery {
    let mut row = TenantRecovery {
        tenant: record.tenant.to_string(),
        run: run_of(&record),
        step: record.journal.step.clone(),
        action: Action::Released,
        outcome: RecoveryOutcome::Recovered,
        error: None,
        detail: None,
    };
    let action = match decide(services, &record.journal).await {
        Ok(a) => a,
        Err(e) => return pending_or_failed(row, e),
    };
    row.action = action;
    if dry_run {
        row.outcome = RecoveryOutcome::Planned;
        return row;
    }
    let done = if record.journal.aborted.is_some() {
        // An earlier recovery settled it and marked it; only the release may be left.
        finish(records, &record, None, at).await
    } else {
        match act(
            db,
            params,
            records,
            services,
            default_cluster,
            &record,
            action,
        )
        .await
        {
            Ok(detail) => {
                row.detail = detail;
                finish(records, &record, Some(action), at).await
            }
            Err(e) => Err(e),
        }
    };
    match done {
        Ok(()) => {
            tracing::info!(tenant = %row.tenant, run = %row.run, action = action.as_str(), "recovered");
            row
        }
        Err(e) => pending_or_failed(row, e),
    }
}

fn pending_or_failed(mut row: TenantRecovery, e: StepError) -> TenantRecovery {
    row.outcome = match e {
        StepError::NotReady { .. } | StepError::Transient(_) => RecoveryOutcome::Pending,
        _ => RecoveryOutcome::Failed,
    };
    row.error = Some(e.asl_name().to_string());
    row.detail = Some(e.to_string());
    tracing::warn!(tenant = %row.tenant, run = %row.run, error = %e, "not recovered");
    row
}

/// Runs rollback or teardown (or clears a freeze) for `action`. Returns a note for the report.
async fn act<
    D: Databases + ?Sized,
    P: Parameters + ?Sized,
    R: Records + ?Sized,
    S: Services + ?Sized,
>(
    db: &D,
    params: &P,
    records: &R,
    services: &S,
    default_cluster: &str,
    record: &TenantRecord,
    action: Action,
) -> Result<Option<String>, StepError> {
    let run = run_of(record);
    let Some(state) = record.journal.state.as_deref() else {
        // No journal state: the run held the lock and may have set nothing but a freeze.
        let minimal = freeze_only_state(record, &run);
        if let Some(s) = minimal {
            tenant::clear_freeze(params, &s).await?;
        }
        return Ok(None);
    };
    let error = ErrorInfo {
        error: RECOVERY_ERROR.into(),
        cause: format!("run {run} died without finishing; settled by recover"),
    };
    match action {
        Action::RolledBack | Action::Released => {
            let input = TenantState {
                error: Some(error),
                ..state.clone()
            };
            let r =
                rollback::rollback(db, params, records, services, default_cluster, input).await?;
            match r.outcome {
                // A rehearsal's rollback reports what it undid as rehearsed / would-fail.
                Outcome::RolledBack
                | Outcome::Skipped
                | Outcome::Rehearsed
                | Outcome::WouldFail => Ok(r.cause),
                Outcome::RollbackFailed | Outcome::Deployed | Outcome::UpToDate => Err(
                    StepError::Conflict(r.cause.unwrap_or_else(|| "rollback failed".into())),
                ),
            }
        }
        Action::RolledForward => {
            let mut input = state.clone();
            input.error = Some(error);
            if let Some(d) = input.progress.deployment.as_mut() {
                d.rollout_state = "COMPLETED".into();
            }
            let (r, _) = teardown::teardown(db, params, records, input).await?;
            Ok(r.cause)
        }
    }
}

/// A state that lets [`tenant::clear_freeze`] clear a freeze naming `run`, for a record with no
/// journal state (the freeze names the run by its execution ARN only).
fn freeze_only_state(record: &TenantRecord, run: &str) -> Option<TenantState> {
    use crate::manifest::{FleetMode, Strategy};
    use crate::model::{Progress, ReleaseRef, RunContext};
    Some(TenantState {
        tenant: record.tenant.clone(),
        run: RunContext {
            name: run.rsplit(':').next().unwrap_or(run).to_string(),
            execution_arn: run.to_string(),
            generation: crate::names::GenerationTs::parse("20000101000000").ok()?,
        },
        release: ReleaseRef {
            id: String::new(),
            bucket: String::new(),
            prefix: String::new(),
            strategy: Strategy::BlueGreen,
            fleet: FleetMode::Independent,
            write_freeze: true,
            bake_seconds: 0,
            snapshot_retention: 0,
            source_snapshot: None,
            health_check: None,
            sha256sums: None,
            freeze_drain_seconds: 0,
            scripts: None,
        },
        progress: Progress::default(),
        error: None,
    })
}

/// Marks the record's journal aborted (when `action` is given and the record is still the run's)
/// and releases the lock if the run still holds it. Both writes are conditional, so a run that
/// took the tenant meanwhile is left alone.
async fn finish<R: Records + ?Sized>(
    records: &R,
    before: &TenantRecord,
    action: Option<Action>,
    at: DateTime<Utc>,
) -> Result<(), StepError> {
    let run = run_of(before);
    let Some(now) = records.get_tenant(&before.tenant).await? else {
        return Ok(());
    };
    let still_ours = now.run.as_deref() == Some(run.as_str())
        && (now.holder.is_none() || now.holder.as_deref() == Some(run.as_str()));
    if !still_ours {
        return Ok(());
    }
    drop_wait_tokens(records, before).await?;
    let now = match action {
        Some(a) if now.journal.aborted.is_none() => {
            let journal = Journal {
                aborted: Some(Aborted {
                    action: a.as_str().to_string(),
                    at,
                }),
                ..now.journal.clone()
            };
            match records
                .write_journal(&now.tenant, now.version, &journal)
                .await?
            {
                Some(r) => r,
                None => {
                    return Err(StepError::Transient(format!(
                        "tenant record of {} changed while recovery marked it",
                        now.tenant
                    )))
                }
            }
        }
        _ => now,
    };
    if let Some(h) = &now.holder {
        records.release(&now.tenant, h).await?;
    }
    Ok(())
}

/// Deletes the task tokens the dead run left waiting on its snapshot, candidate or rollout (their
/// executions are gone; the resources are settled): only tokens recorded for this tenant, each
/// delete conditional on the token read.
async fn drop_wait_tokens<R: Records + ?Sized>(
    records: &R,
    record: &TenantRecord,
) -> Result<(), StepError> {
    let mut waits: Vec<(ResourceKind, String)> = Vec::new();
    if let Some(state) = record.journal.state.as_deref() {
        waits.push((
            ResourceKind::DbSnapshot,
            tenant::snapshot_id(state).to_string(),
        ));
        waits.push((
            ResourceKind::DbInstance,
            tenant::candidate_id(state).to_string(),
        ));
    }
    if let Some(s) = &record.journal.snapshot {
        waits.push((ResourceKind::DbSnapshot, s.to_string()));
    }
    if let Some(c) = &record.journal.candidate {
        waits.push((ResourceKind::DbInstance, c.to_string()));
    }
    if let Some(d) = &record.journal.deployment_id {
        waits.push((ResourceKind::EcsDeployment, d.clone()));
    }
    waits.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    waits.dedup();
    for (kind, resource) in waits {
        if let Some(w) = records.get_token(kind, &resource).await? {
            if w.tenant == record.tenant {
                records.delete_token(kind, &resource, &w.token).await?;
            }
        }
    }
    Ok(())
}

/// Settles every record of `candidates` that [`needs_recovery`], in order.
#[allow(clippy::too_many_arguments)]
pub async fn settle_all<
    D: Databases + ?Sized,
    P: Parameters + ?Sized,
    R: Records + ?Sized,
    S: Services + ?Sized,
>(
    db: &D,
    params: &P,
    records: &R,
    services: &S,
    default_cluster: &str,
    candidates: Vec<TenantRecord>,
    dry_run: bool,
    at: DateTime<Utc>,
) -> Vec<TenantRecovery> {
    let mut out = Vec::new();
    for r in candidates.into_iter().filter(needs_recovery) {
        out.push(
            settle(
                db,
                params,
                records,
                services,
                default_cluster,
                r,
                dry_run,
                at,
            )
            .await,
        );
    }
    out
}

#[cfg(test)]
mod tests;
