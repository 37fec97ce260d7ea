//! `create-db`: restore the snapshot as the candidate generation.
//!
//! - `blue-green` / `promote`: restore `progress.snapshot` as `<ns>-<run generation>`, copying
//!   the active instance's settings, tagged namespace/release/run/role=candidate. An instance with
//!   that id tagged for this run is reused (a retry); one with other tags is `Conflict`; the id of
//!   the active generation itself is `Conflict`.
//! - `in-place`: nothing is restored. The "candidate" is the active instance itself
//!   (`inPlace: true`), so the migrate step (which reads `progress.candidate.instanceId`) migrates
//!   it where it stands. Rollback and teardown never delete an in-place candidate; on failure
//!   rollback restores the safety-net snapshot instead (see [`super::rollback`]).
//!
//! The run journal is written first ([`super::journal`]): `step: create-db` with the input
//! progress, and for `in-place` with the in-place candidate already in it (what the migration
//! acts on next). A run `recover` settled is `Tenantflow.RunAborted`.

use super::tenant::{candidate_id, check_state, need, restore_or_reuse};
use super::{journal, parse_input, Ports, StepName};
use crate::error::StepError;
use crate::manifest::Strategy;
use crate::model::{CandidateRecord, Progress, TenantState};
use crate::ports::{Databases, Records};
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<Progress, StepError> {
    let state: TenantState = parse_input(input)?;
    create_db(&*ports.databases, &*ports.records, state).await
}

pub async fn create_db<D: Databases + ?Sized, R: Records + ?Sized>(
    db: &D,
    records: &R,
    state: TenantState,
) -> Result<Progress, StepError> {
    check_state(&state)?;
    let pointer = need(&state.progress.pointer, "pointer")?.clone();
    let snapshot = need(&state.progress.snapshot, "snapshot")?.clone();
    let mut progress = state.progress.clone();

    if state.release.strategy == Strategy::InPlace {
        let active = &pointer.value;
        progress.candidate = Some(CandidateRecord {
            instance_id: active.instance_id.clone(),
            generation: active.generation,
            endpoint: active.endpoint.clone(),
            port: active.port,
            in_place: true,
        });
        let intent = TenantState {
            progress: progress.clone(),
            ..state.clone()
        };
        journal::enter(records, StepName::CreateDb, &intent).await?;
        return Ok(progress);
    }
    journal::enter(records, StepName::CreateDb, &state).await?;

    let target = candidate_id(&state);
    if target == pointer.value.instance_id {
        return Err(StepError::Conflict(format!(
            "candidate {target} would be the active generation"
        )));
    }
    let (instance, started) = restore_or_reuse(
        db,
        &state,
        &snapshot.id,
        &target,
        &pointer.value.instance_id,
    )
    .await?;
    if started {
        tracing::info!(tenant = %state.tenant, instance = %target, snapshot = %snapshot.id, "restore started");
    } else {
        tracing::info!(tenant = %state.tenant, instance = %target, "reusing this run's candidate");
    }
    progress.candidate = Some(CandidateRecord {
        instance_id: target,
        generation: state.run.generation,
        endpoint: instance.endpoint,
        port: instance.port,
        in_place: false,
    });
    Ok(progress)
}
