//! `rollback`: undo what this run did to one tenant, in reverse, and report the outcome.
//!
//! Input: the `TenantState` with `error` set by a `Catch`. The progress record says what earlier
//! steps finished; a step that failed half-way recorded nothing, so rollback also looks for what
//! this run may have made by its deterministic names and run tags (tenant record whose lock holds
//! this run's ARN, freeze in the pointer naming this run,
//! snapshot and candidate `<ns>-<run generation>` tagged with this run, pointer naming the
//! candidate). Everything it touches is checked to be this run's first.
//!
//! `blue-green` / `promote`, in order:
//! 1. if the pointer names this run's candidate, flip it back to the generation read at the start;
//! 2. if it flipped back now, or the deployment this run started is still the service's primary
//!    one, force a new ECS deployment so tasks reconnect to the old generation;
//! 3. delete the candidate (deletion protection off first; never while the pointer names it);
//! 4. delete the snapshot this run took (never a promote source snapshot);
//! 5. clear the write freeze in the pointer and release the lock, if they are this run's.
//!
//! An active pointer that does not parse (this run never writes one) names no candidate: nothing
//! is flipped back and the rest is undone, so a tenant whose pointer was damaged fails cleanly and
//! is not left locked. Only when the damaged value mentions the candidate is the candidate kept
//! (`Conflict`: it may be a damaged flip).
//!
//! `in-place` once the candidate step ran (the active database may be half-migrated): restore
//! the safety-net snapshot as `<ns>-<run generation>`, fail with `NotReady` until it is available
//! (the definition retries), then flip the pointer to it with the old release, force a
//! deployment, clear the freeze and release the lock. The snapshot (now the new generation's
//! source) and the migrated instance (for inspection; the janitor reports it) are kept.
//!
//! Before undoing anything it writes the run journal (`step: rollback`, [`super::journal`]). A run
//! `recover` already settled touches nothing and is reported `skipped` with
//! `Tenantflow.RunAborted` (rollback is where every other step's `RunAborted` is caught).
//! Fleet mode `rehearse` ends every tenant here: without an error (its candidate prepared and is
//! discarded) the outcome is `rehearsed`, with one it is `would-fail`.
//!
//! Outcomes: `skipped` when the error is `Tenantflow.Locked` and the lock is not this run's
//! (nothing is touched), or when the run was aborted by `recover`; `rolled-back`; `rollback-failed` for a non-retryable error. `NotReady` and
//! `Transient` are raised so the definition retries. Running rollback twice equals running it once.
//! The result's `cause` is the caught error's cause in words ([`crate::cause::in_words`]): a
//! failed Lambda's cause is its JSON error payload, a failed build's is the build.

use super::tenant::{
    candidate_id, check_state, clear_freeze, lock_state, need, read_pointer, release_lock,
    restore_or_reuse, run_owns, service_of, snapshot_id, write_pointer, LockState,
};
use super::{journal, parse_input, Ports, StepName};
use crate::cause::in_words;
use crate::error::StepError;
use crate::manifest::{FleetMode, Strategy};
use crate::model::{ActivePointer, Outcome, TenantResult, TenantState};
use crate::names::{InstanceId, Namespace};
use crate::ports::{Databases, Parameters, Records, Services};
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<TenantResult, StepError> {
    let state: TenantState = parse_input(input)?;
    rollback(
        &*ports.databases,
        &*ports.parameters,
        &*ports.records,
        &*ports.services,
        &ports.settings.default_cluster,
        state,
    )
    .await
}

pub async fn rollback<
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
    state: TenantState,
) -> Result<TenantResult, StepError> {
    check_state(&state)?;
    let mut result = TenantResult {
        tenant: state.tenant.to_string(),
        outcome: Outcome::RolledBack,
        release: state.release.id.clone(),
        from_generation: state
            .progress
            .pointer
            .as_ref()
            .map(|p| p.value.generation.to_string()),
        to_generation: state
            .progress
            .candidate
            .as_ref()
            .map(|c| c.generation.to_string()),
        duration_seconds: None,
        error: state.error.as_ref().map(|e| e.error.clone()),
        // In words: a failed Lambda's cause is its JSON error payload, a failed build's the build.
        cause: state.error.as_ref().map(|e| in_words(&e.cause)),
    };

    let locked = result.error.as_deref() == Some("Tenantflow.Locked");
    if locked && lock_state(records, &state).await? != LockState::Ours {
        tracing::info!(tenant = %state.tenant, "locked by another run; skipped");
        result.outcome = Outcome::Skipped;
        return Ok(result);
    }

    match journal::enter(records, StepName::Rollback, &state).await {
        Ok(_) => {}
        Err(aborted @ StepError::RunAborted { .. }) => {
            tracing::info!(tenant = %state.tenant, "run aborted and tenant settled by recover; skipped");
            result.outcome = Outcome::Skipped;
            result.error = Some(aborted.asl_name().to_string());
            result.cause = Some(aborted.to_string());
            return Ok(result);
        }
        Err(e) => return Err(e),
    }

    let in_place = state
        .progress
        .candidate
        .as_ref()
        .is_some_and(|c| c.in_place);
    let undone = if in_place {
        undo_in_place(db, params, records, services, default_cluster, &state).await
    } else {
        undo(db, params, records, services, default_cluster, &state).await
    };
    match undone {
        Ok(note) if state.release.fleet == FleetMode::Rehearse => {
            // A rehearsal discards every candidate: a tenant that got here without an error
            // prepared; one with an error is where the release would fail.
            result.outcome = match &state.error {
                None => Outcome::Rehearsed,
                Some(_) => Outcome::WouldFail,
            };
            if let Some(n) = note {
                let cause = result.cause.take().unwrap_or_default();
                result.cause = Some(format!("{cause} [{n}]").trim().to_string());
            }
            tracing::info!(tenant = %state.tenant, outcome = ?result.outcome, "rehearsal discarded");
            Ok(result)
        }
        Ok(note) => {
            if let Some(n) = note {
                let cause = result.cause.take().unwrap_or_default();
                result.cause = Some(format!("{cause} [{n}]").trim().to_string());
            }
            tracing::info!(tenant = %state.tenant, "rolled back");
            Ok(result)
        }
        Err(e @ (StepError::NotReady { .. } | StepError::Transient(_))) => Err(e),
        Err(e) => {
            tracing::error!(tenant = %state.tenant, error = %e, "rollback failed");
            result.outcome = Outcome::RollbackFailed;
            result.error = Some(e.asl_name().to_string());
            result.cause = Some(format!(
                "rollback failed: {e}; original error: {}",
                state
                    .error
                    .as_ref()
                    .map(|x| format!("{}: {}", x.error, in_words(&x.cause)))
                    .unwrap_or_default()
            ));
            Ok(result)
        }
    }
}

/// Forces a deployment if the pointer was flipped back now, or if the deployment this run
/// started is still the primary one (a crash between flip-back and redeploy; a second rollback
/// finds the rollback's own deployment primary and does nothing).
async fn redeploy<P: Parameters + ?Sized, S: Services + ?Sized>(
    params: &P,
    services: &S,
    default_cluster: &str,
    state: &TenantState,
    flipped_now: bool,
) -> Result<(), StepError> {
    let ours_primary = match &state.progress.deployment {
        Some(d) => services
            .deployment(&d.service, &d.deployment_id)
            .await?
            .is_some_and(|x| x.primary),
        None => false,
    };
    if !(flipped_now || ours_primary) {
        return Ok(());
    }
    let service = match &state.progress.deployment {
        Some(d) => d.service.clone(),
        None => service_of(
            &read_pointer(params, &state.tenant).await?.value,
            &state.tenant,
            default_cluster,
        ),
    };
    let id = services.force_deployment(&service).await?;
    tracing::info!(tenant = %state.tenant, deployment = %id, "deployment forced to reconnect to the old generation");
    Ok(())
}

async fn undo<
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
    state: &TenantState,
) -> Result<Option<String>, StepError> {
    let ns = &state.tenant;
    let cand = state
        .progress
        .candidate
        .as_ref()
        .map(|c| c.instance_id.clone())
        .unwrap_or_else(|| candidate_id(state));

    // 1. Flip back. A pointer that names the candidate is this run's flip (the lock kept others out).
    let mut flipped_now = false;
    match pointer_now(params, ns, &cand).await? {
        PointerNow::Names(now) if now.instance_id == cand => {
            let old = need(&state.progress.pointer, "pointer")?;
            // Keep what the pointer carries now (the ECS service; the freeze is cleared below).
            write_pointer(params, ns, &old.value.keeping(&now)).await?;
            flipped_now = true;
            tracing::info!(tenant = %ns, to = %old.value.instance_id, "pointer flipped back");
        }
        PointerNow::Names(_) | PointerNow::Missing => {}
        // A value this run never wrote: nothing to flip back; still clean up below, so the
        // tenant is not left locked.
        PointerNow::Unreadable { .. } => {
            tracing::warn!(tenant = %ns, "active pointer is not valid; nothing to flip back");
        }
    }

    // 2. Reconnect the app.
    redeploy(params, services, default_cluster, state, flipped_now).await?;

    // 3. Delete the candidate, if it is this run's and not active.
    if let Some(inst) = db.describe_instance(&cand).await? {
        if !run_owns(&inst.tags, state) {
            tracing::warn!(tenant = %ns, instance = %cand, "instance not made by this run; left alone");
        } else if inst.status != "deleting" {
            match pointer_now(params, ns, &cand).await? {
                PointerNow::Names(now) if now.instance_id == cand => {
                    return Err(StepError::Conflict(format!(
                        "candidate {cand} is still the active generation"
                    )));
                }
                PointerNow::Unreadable {
                    mentions_candidate: true,
                } => {
                    return Err(StepError::Conflict(format!(
                        "the active pointer of {ns} is not valid and mentions candidate {cand}: \
                         kept; repair the pointer, then delete whichever generation it does not name"
                    )));
                }
                _ => {}
            }
            if inst.deletion_protection {
                db.set_deletion_protection(&cand, false).await?;
            }
            db.delete_instance(&cand).await?;
            tracing::info!(tenant = %ns, instance = %cand, "candidate deleted");
        }
    }

    // 4. Delete the snapshot this run took.
    if state.release.strategy != Strategy::Promote {
        delete_own_snapshot(db, state).await?;
    }

    // 5. Hand the tenant back.
    clear_freeze(params, state).await?;
    release_lock(records, state).await?;
    Ok(None)
}

/// What the active pointer holds as rollback finds it.
enum PointerNow {
    Missing,
    Names(Box<ActivePointer>),
    /// A value that does not parse (this run never writes one). It names no instance, unless
    /// its text mentions the candidate: then it may be a damaged flip, and the candidate is kept.
    Unreadable {
        mentions_candidate: bool,
    },
}

async fn pointer_now<P: Parameters + ?Sized>(
    params: &P,
    ns: &Namespace,
    cand: &InstanceId,
) -> Result<PointerNow, StepError> {
    let Some(p) = params.get(&ns.paths().pointer).await? else {
        return Ok(PointerNow::Missing);
    };
    Ok(match serde_json::from_str::<ActivePointer>(&p.value) {
        Ok(ptr) => PointerNow::Names(Box::new(ptr)),
        Err(_) => PointerNow::Unreadable {
            mentions_candidate: p.value.contains(cand.as_str()),
        },
    })
}

async fn delete_own_snapshot<D: Databases + ?Sized>(
    db: &D,
    state: &TenantState,
) -> Result<(), StepError> {
    let sid = snapshot_id(state);
    if let Some(s) = db.describe_snapshot(&sid).await? {
        if !run_owns(&s.tags, state) {
            tracing::warn!(tenant = %state.tenant, snapshot = %sid, "snapshot not made by this run; left alone");
        } else if s.status == "creating" {
            // RDS deletes only finished snapshots; the definition retries.
            return Err(StepError::NotReady {
                resource: format!("snapshot {sid}"),
                status: s.status,
            });
        } else {
            db.delete_snapshot(&sid).await?;
            tracing::info!(tenant = %state.tenant, snapshot = %sid, "snapshot deleted");
        }
    }
    Ok(())
}

async fn undo_in_place<
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
    state: &TenantState,
) -> Result<Option<String>, StepError> {
    let ns = &state.tenant;
    let read = need(&state.progress.pointer, "pointer")?;
    let snap = need(&state.progress.snapshot, "snapshot")?;
    let migrated = &read.value.instance_id;
    let target = candidate_id(state);

    let now = read_pointer(params, ns).await?;
    let mut flipped_now = false;
    if now.value.instance_id != target {
        if now.value.instance_id != *migrated {
            return Err(StepError::PointerMoved {
                tenant: ns.to_string(),
                expected: read.version,
                found: now.version,
            });
        }
        let (inst, started) = restore_or_reuse(db, state, &snap.id, &target, migrated).await?;
        if started {
            tracing::info!(tenant = %ns, instance = %target, snapshot = %snap.id, "in-place rollback: restore started");
            return Err(StepError::NotReady {
                resource: format!("instance {target}"),
                status: "creating".into(),
            });
        }
        if !super::wait::instance_usable(&inst.status) {
            if super::wait::INSTANCE_DEAD.contains(&inst.status.as_str()) {
                return Err(StepError::Conflict(format!(
                    "restored instance {target} is {}",
                    inst.status
                )));
            }
            return Err(StepError::NotReady {
                resource: format!("instance {target}"),
                status: inst.status,
            });
        }
        let to = ActivePointer {
            generation: state.run.generation,
            instance_id: target.clone(),
            endpoint: inst.endpoint.clone(),
            port: inst.port,
            release: read.value.release.clone(),
            scripts: read.value.scripts.clone(),
            service: None,
            freeze: None,
        }
        .keeping(&now.value);
        write_pointer(params, ns, &to).await?;
        flipped_now = true;
        if !inst.deletion_protection {
            db.set_deletion_protection(&target, true).await?;
        }
        tracing::info!(tenant = %ns, to = %target, "in-place rollback: pointer flipped to the restored generation");
    }
    redeploy(params, services, default_cluster, state, flipped_now).await?;
    clear_freeze(params, state).await?;
    release_lock(records, state).await?;
    Ok(Some(format!(
        "in-place: restored {} as {target}; {migrated} kept for inspection",
        snap.id
    )))
}
