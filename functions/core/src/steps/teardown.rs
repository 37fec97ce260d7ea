//! `teardown`: after the bake time, retire the old generation and hand the tenant back.
//!
//! Runs only after a COMPLETED rollout of this run's flip (invariant 3; otherwise
//! `InvalidInput`). Then, each part idempotent:
//! 1. clear the write freeze from the pointer if this run set it;
//! 2. delete the old generation (`flip.from`), unless it is what the pointer names now, or it
//!    lacks this tenant's tenantflow tags: those are kept and the reason recorded, never deleted.
//!    Deletion protection is turned off only on that instance, only after those checks. An
//!    instance already gone (or `deleting`) is success. `in-place` has no old generation.
//! 3. prune this tenant's tenantflow-tagged snapshots beyond `release.snapshotRetention`, newest
//!    kept, never one still being created;
//! 4. release the lock in the tenant record if this run holds it.
//!
//! The run journal (`step: teardown`, rollout completed) is written before step 1
//! ([`super::journal`]); a run `recover` settled is `Tenantflow.RunAborted`.

use super::tenant::{check_state, clear_freeze, need, read_pointer, release_lock, tenant_owns};
use super::{journal, parse_input, Ports, StepName};
use crate::error::StepError;
use crate::model::{Outcome, TeardownRecord, TenantResult, TenantState};
use crate::names::{InstanceId, SnapshotId};
use crate::ports::{Databases, Parameters, Records};
use serde_json::Value;

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<TenantResult, StepError> {
    let state: TenantState = parse_input(input)?;
    let (result, _) = teardown(
        &*ports.databases,
        &*ports.parameters,
        &*ports.records,
        state,
    )
    .await?;
    Ok(result)
}

/// Returns the tenant's result (`deployed`) and what was removed.
pub async fn teardown<D: Databases + ?Sized, P: Parameters + ?Sized, R: Records + ?Sized>(
    db: &D,
    params: &P,
    records: &R,
    state: TenantState,
) -> Result<(TenantResult, TeardownRecord), StepError> {
    check_state(&state)?;
    let flip = need(&state.progress.flip, "flip")?.clone();
    let dep = need(&state.progress.deployment, "deployment")?;
    if dep.rollout_state != "COMPLETED" {
        return Err(StepError::invalid(
            "progress.deployment.rolloutState",
            format!(
                "is {:?}: the old generation is deleted only after the rollout COMPLETED",
                dep.rollout_state
            ),
        ));
    }
    journal::enter(records, StepName::Teardown, &state).await?;
    let ns = &state.tenant;
    let mut record = TeardownRecord::default();

    clear_freeze(params, &state).await?;

    let old = &flip.from.instance_id;
    if *old != flip.to.instance_id {
        match retire(db, params, &state, old).await? {
            Ok(()) => record.deleted_instance = Some(old.clone()),
            Err(reason) => {
                tracing::warn!(tenant = %ns, instance = %old, %reason, "old generation kept");
                record.kept = Some(reason);
            }
        }
    }

    record.pruned_snapshots = prune_snapshots(db, &state).await?;
    record.lock_released = release_lock(records, &state).await?;

    let result = TenantResult {
        tenant: ns.to_string(),
        outcome: Outcome::Deployed,
        release: state.release.id.clone(),
        from_generation: Some(flip.from.generation.to_string()),
        to_generation: Some(flip.to.generation.to_string()),
        duration_seconds: None,
        error: None,
        cause: record
            .kept
            .clone()
            .map(|k| format!("old generation kept: {k}")),
    };
    Ok((result, record))
}

/// Deletes `old` if it is safe to. The inner `Err` is a refusal with its reason.
async fn retire<D: Databases + ?Sized, P: Parameters + ?Sized>(
    db: &D,
    params: &P,
    state: &TenantState,
    old: &InstanceId,
) -> Result<Result<(), String>, StepError> {
    let Some(inst) = db.describe_instance(old).await? else {
        return Ok(Ok(()));
    };
    if inst.status == "deleting" {
        return Ok(Ok(()));
    }
    if !tenant_owns(&inst.tags, &state.tenant) {
        return Ok(Err(format!(
            "{old} has no tenantflow tags for {}",
            state.tenant
        )));
    }
    let pointer = read_pointer(params, &state.tenant).await?;
    if pointer.value.instance_id == *old {
        return Ok(Err(format!("{old} is the active generation")));
    }
    if inst.deletion_protection {
        db.set_deletion_protection(old, false).await?;
    }
    db.delete_instance(old).await?;
    tracing::info!(tenant = %state.tenant, instance = %old, "old generation deleted");
    Ok(Ok(()))
}

/// Deletes this tenant's tenantflow snapshots beyond the retention count, oldest first.
async fn prune_snapshots<D: Databases + ?Sized>(
    db: &D,
    state: &TenantState,
) -> Result<Vec<SnapshotId>, StepError> {
    let ns = &state.tenant;
    let mut mine: Vec<_> = db
        .list_snapshots(&format!("{ns}-"))
        .await?
        .into_iter()
        .filter(|s| tenant_owns(&s.tags, ns) && s.status != "creating")
        .filter_map(|s| match s.id.split_generation() {
            Some((n, ts)) if n == *ns => Some((ts, s.id)),
            _ => None,
        })
        .collect();
    mine.sort_by_key(|s| std::cmp::Reverse(s.0));
    let keep = state.release.snapshot_retention as usize;
    let mut pruned = Vec::new();
    for (_, id) in mine.into_iter().skip(keep) {
        db.delete_snapshot(&id).await?;
        pruned.push(id);
    }
    Ok(pruned)
}
