//! `snapshot`: lock the tenant, read the active pointer, freeze writes, take the snapshot.
//!
//! 0. A run that `recover` already settled for this tenant is `Tenantflow.RunAborted`.
//! 1. Lock: take the tenant record's lock for the run's execution ARN, a conditional write
//!    ([`crate::ports::Records::acquire`]). Held by this run already (a retry) is fine; held by
//!    another run is `Tenantflow.Locked`.
//! 2. Read the pointer and its SSM version. The active instance must exist and be `available`
//!    (else `NotReady`, retried).
//! 3. If the release freezes writes, write this run's freeze into the pointer (a freeze someone
//!    else set is left alone and not recorded as ours). The version recorded in
//!    `progress.pointer` is the one after that write: the flip checks the pointer has not moved
//!    since.
//! 4. `blue-green` and `in-place`: snapshot the active instance as
//!    `<ns>-<run generation>`. A snapshot with that id tagged for this run is reused; one with
//!    other tags is `Conflict`. `promote`: the release's source snapshot must exist; nothing is
//!    created (`created = false`).
//!
//! The run journal (`step: snapshot`, with the lock in the progress) is written right after the
//! lock is taken, before the freeze and the snapshot ([`super::journal`]).

use super::tenant::{acquire_lock, check_state, read_pointer, run_tags, set_freeze, snapshot_id};
use super::{journal, parse_input, Ports, StepName};
use crate::error::StepError;
use crate::manifest::Strategy;
use crate::model::{Journal, Progress, SnapshotRecord, TenantState};
use crate::names::tags;
use crate::ports::{Databases, Parameters, Records};
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<Progress, StepError> {
    let state: TenantState = parse_input(input)?;
    snapshot(
        &*ports.databases,
        &*ports.parameters,
        &*ports.records,
        state,
    )
    .await
}

pub async fn snapshot<D: Databases + ?Sized, P: Parameters + ?Sized, R: Records + ?Sized>(
    db: &D,
    params: &P,
    records: &R,
    state: TenantState,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    let ns = &state.tenant;

    // Before the lock: once `recover` settled the tenant its lock is free, and taking it would
    // reset the journal that says so.
    journal::check_not_aborted(records.get_tenant(ns).await?.as_ref(), &state)?;
    let record = acquire_lock(records, &state).await?;
    let mut progress = state.progress.clone();
    progress.lock = Some(state.run.execution_arn.clone());
    let intent = TenantState {
        progress: progress.clone(),
        ..state.clone()
    };
    journal::write(
        records,
        record,
        Journal::at(StepName::Snapshot.as_str(), &intent),
    )
    .await?;

    let pointer = read_pointer(params, ns).await?;
    let active = db
        .describe_instance(&pointer.value.instance_id)
        .await?
        .ok_or_else(|| {
            StepError::NotFound(format!(
                "active instance {} named by the pointer of {ns}",
                pointer.value.instance_id
            ))
        })?;
    if !super::wait::instance_usable(&active.status) {
        return Err(StepError::NotReady {
            resource: format!("instance {}", active.id),
            status: active.status,
        });
    }
    let pointer = if state.release.write_freeze {
        let (ours, after) = set_freeze(params, &state, pointer).await?;
        progress.maintenance = ours;
        after
    } else {
        pointer
    };
    progress.pointer = Some(pointer.clone());

    let record = match state.release.strategy {
        Strategy::Promote => {
            let id = state
                .release
                .source_snapshot
                .clone()
                .ok_or_else(|| StepError::invalid("release.sourceSnapshot", "missing"))?;
            if db.describe_snapshot(&id).await?.is_none() {
                return Err(StepError::NotFound(format!("source snapshot {id}")));
            }
            SnapshotRecord { id, created: false }
        }
        Strategy::BlueGreen | Strategy::InPlace => {
            let id = snapshot_id(&state);
            let tags = run_tags(&state, tags::ROLE_SNAPSHOT);
            match db.describe_snapshot(&id).await? {
                Some(s) if super::tenant::run_owns(&s.tags, &state) => {
                    tracing::info!(tenant = %ns, snapshot = %id, "reusing this run's snapshot");
                }
                Some(_) => {
                    return Err(StepError::Conflict(format!(
                        "snapshot {id} exists but was not made by this run"
                    )))
                }
                None => {
                    db.create_snapshot(&pointer.value.instance_id, &id, &tags)
                        .await?;
                    tracing::info!(tenant = %ns, snapshot = %id, source = %pointer.value.instance_id, "snapshot started");
                }
            }
            SnapshotRecord { id, created: true }
        }
    };
    progress.snapshot = Some(record);
    Ok(progress)
}
