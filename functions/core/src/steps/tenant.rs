//! Helpers shared by the per-tenant steps: input checks, tags and ownership, the active
//! pointer (with the write freeze and the ECS service inside it), and the tenant lock.
//!
//! Ownership rule: a resource belongs to this run when its `tenantflow:namespace` tag names the
//! tenant and its `tenantflow:run` tag holds the run's execution ARN. Steps only ever reuse or
//! delete resources that belong to the run (or, for teardown, to the tenant).

use crate::error::StepError;
use crate::manifest::{release_prefix, validate_release_id, Strategy};
use crate::model::{
    ActivePointer, PointerRead, ServiceRef, TenantRecord, TenantState, WriteFreeze,
};
use crate::names::{tags, InstanceId, Namespace, SnapshotId};
use crate::ports::{Databases, DbInstance, LockTake, Parameters, Records, RestoreRequest, Tags};

/// Checks what serde cannot: release id, prefix, strategy needs, run identity. Called by every
/// per-tenant step before its first port call (invariant 7).
pub fn check_state(state: &TenantState) -> Result<(), StepError> {
    validate_release_id("release.id", &state.release.id)?;
    if state.release.prefix != release_prefix(&state.release.id) {
        return Err(StepError::invalid(
            "release.prefix",
            format!(
                "{:?} must be {:?}",
                state.release.prefix,
                release_prefix(&state.release.id)
            ),
        ));
    }
    if state.release.strategy == Strategy::Promote && state.release.source_snapshot.is_none() {
        return Err(StepError::invalid(
            "release.sourceSnapshot",
            "strategy `promote` needs the snapshot to restore",
        ));
    }
    if !state.run.execution_arn.starts_with("arn:") {
        return Err(StepError::invalid(
            "run.executionArn",
            format!("{:?} is not an execution ARN", state.run.execution_arn),
        ));
    }
    if state.run.name.is_empty() {
        return Err(StepError::invalid("run.name", "must not be empty"));
    }
    Ok(())
}

/// A required progress entry, or `InvalidInput` naming it.
pub fn need<'a, T>(v: &'a Option<T>, field: &str) -> Result<&'a T, StepError> {
    v.as_ref().ok_or_else(|| {
        StepError::invalid(
            format!("progress.{field}"),
            "missing: the step that records it has not run",
        )
    })
}

/// Tags of everything this run creates for the tenant.
pub fn run_tags(state: &TenantState, role: &str) -> Tags {
    [
        (tags::NAMESPACE, state.tenant.as_str()),
        (tags::RELEASE, state.release.id.as_str()),
        (tags::RUN, state.run.execution_arn.as_str()),
        (tags::ROLE, role),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// True when `t` marks a resource of tenant `ns`.
pub fn tenant_owns(t: &Tags, ns: &Namespace) -> bool {
    t.get(tags::NAMESPACE).map(String::as_str) == Some(ns.as_str())
}

/// True when `t` marks a resource this run made for the tenant.
pub fn run_owns(t: &Tags, state: &TenantState) -> bool {
    tenant_owns(t, &state.tenant)
        && t.get(tags::RUN).map(String::as_str) == Some(state.run.execution_arn.as_str())
}

/// The generation this run creates (blue-green and promote restore into it; in-place rollback
/// restores the safety-net snapshot into it).
pub fn candidate_id(state: &TenantState) -> InstanceId {
    InstanceId::generation(&state.tenant, state.run.generation)
}

/// The snapshot this run takes of the active generation.
pub fn snapshot_id(state: &TenantState) -> SnapshotId {
    SnapshotId::for_generation(&state.tenant, state.run.generation)
}

/// Restores `snapshot` as `target`, copying `template`'s settings, tagged as this run's
/// candidate. An instance with that id made by this run is returned as it is (a retry); one made
/// by anyone else is `Conflict`. The flag is true when the restore was started now.
pub async fn restore_or_reuse<D: Databases + ?Sized>(
    db: &D,
    state: &TenantState,
    snapshot: &SnapshotId,
    target: &InstanceId,
    template: &InstanceId,
) -> Result<(DbInstance, bool), StepError> {
    match db.describe_instance(target).await? {
        Some(i) if run_owns(&i.tags, state) => Ok((i, false)),
        Some(_) => Err(StepError::Conflict(format!(
            "instance {target} exists but was not made by this run"
        ))),
        None => {
            let req = RestoreRequest {
                snapshot: snapshot.clone(),
                target: target.clone(),
                template: template.clone(),
                tags: run_tags(state, tags::ROLE_CANDIDATE),
            };
            Ok((db.restore_instance(&req).await?, true))
        }
    }
}

/// Reads and parses the active pointer. Absent is `NotFound`: a tenant without a pointer is not
/// a tenant.
pub async fn read_pointer<P: Parameters + ?Sized>(
    params: &P,
    ns: &Namespace,
) -> Result<PointerRead, StepError> {
    let path = ns.paths().pointer;
    let p = params
        .get(&path)
        .await?
        .ok_or_else(|| StepError::NotFound(format!("active pointer {path}")))?;
    let value: ActivePointer = serde_json::from_str(&p.value)
        .map_err(|e| StepError::Conflict(format!("active pointer {path} is not valid: {e}")))?;
    Ok(PointerRead {
        value,
        version: p.version,
    })
}

/// Writes the active pointer (one overwrite: the flip is atomic). Returns the new version.
/// Callers that move the tenant to another generation pass `target.keeping(&now)`, so the
/// service and freeze in the pointer are carried over, never dropped by a flip.
pub async fn write_pointer<P: Parameters + ?Sized>(
    params: &P,
    ns: &Namespace,
    value: &ActivePointer,
) -> Result<i64, StepError> {
    let body = serde_json::to_string(value)
        .map_err(|e| StepError::Internal(format!("serialize pointer: {e}")))?;
    params.put(&ns.paths().pointer, &body).await
}

/// What the lock holds now, seen from this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Ours,
    Free,
    Other(String),
}

/// The holder the tenant record's lock takes for this run.
fn holder(state: &TenantState) -> &str {
    &state.run.execution_arn
}

/// Reads the tenant record and says whose the lock is.
pub async fn lock_state<R: Records + ?Sized>(
    records: &R,
    state: &TenantState,
) -> Result<LockState, StepError> {
    Ok(
        match records
            .get_tenant(&state.tenant)
            .await?
            .and_then(|r| r.holder)
        {
            None => LockState::Free,
            Some(h) if h == holder(state) => LockState::Ours,
            Some(h) => LockState::Other(h),
        },
    )
}

/// Takes the lock: one conditional write on the tenant record. Held by this run already is fine
/// (a retry); held by another run is `Locked`. Returns the record as it is now.
pub async fn acquire_lock<R: Records + ?Sized>(
    records: &R,
    state: &TenantState,
) -> Result<TenantRecord, StepError> {
    match records
        .acquire(&state.tenant, holder(state), &state.run.execution_arn)
        .await?
    {
        LockTake::Taken(r) => Ok(r),
        LockTake::Held(r) => match r.holder.clone() {
            Some(h) if h == holder(state) => Ok(r),
            Some(h) => Err(StepError::Locked {
                tenant: state.tenant.to_string(),
                holder: h,
            }),
            // An adapter reports `Held` only for a held lock; this would be its bug.
            None => Err(StepError::Internal(format!(
                "lock of {} reported held without a holder",
                state.tenant
            ))),
        },
    }
}

/// Releases the lock if this run holds it (a read, then a write conditional on this run still
/// holding it). Returns true when the lock is no longer ours (released now or before); false when
/// another run holds it (left alone).
pub async fn release_lock<R: Records + ?Sized>(
    records: &R,
    state: &TenantState,
) -> Result<bool, StepError> {
    match lock_state(records, state).await? {
        LockState::Ours => {
            records.release(&state.tenant, holder(state)).await?;
            Ok(true)
        }
        LockState::Free => Ok(true),
        LockState::Other(holder) => {
            tracing::warn!(tenant = %state.tenant, %holder, "lock held by another run; left alone");
            Ok(false)
        }
    }
}

/// Sets this run's write freeze in the pointer if it has none. Returns whether the freeze is this
/// run's (set now or by an earlier attempt; one set by someone else is left alone and is not ours
/// to clear) and the pointer as it stands after, with its version: the version the flip checks.
/// SSM cannot compare-and-swap; the tenant lock keeps other tenantflow runs out of the gap.
pub async fn set_freeze<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
    read: PointerRead,
) -> Result<(bool, PointerRead), StepError> {
    match &read.value.freeze {
        Some(f) => Ok((f.run == state.run.execution_arn, read)),
        None => {
            let value = ActivePointer {
                freeze: Some(WriteFreeze {
                    run: state.run.execution_arn.clone(),
                    release: state.release.id.clone(),
                }),
                ..read.value
            };
            let version = write_pointer(params, &state.tenant, &value).await?;
            tracing::info!(tenant = %state.tenant, version, "writes frozen");
            Ok((true, PointerRead { value, version }))
        }
    }
}

/// Clears the write freeze from the pointer if this run set it. Returns true if it was cleared now.
pub async fn clear_freeze<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
) -> Result<bool, StepError> {
    let now = match read_pointer(params, &state.tenant).await {
        Ok(p) => p,
        // No pointer, no freeze.
        Err(StepError::NotFound(_)) => return Ok(false),
        // A pointer that does not parse is no value this run wrote, so it carries no freeze of
        // ours; it is left as it is for a person (rollback and status report it).
        Err(StepError::Conflict(why)) => {
            tracing::warn!(tenant = %state.tenant, %why, "pointer not valid: no freeze of this run to clear");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let ours = now
        .value
        .freeze
        .as_ref()
        .is_some_and(|f| f.run == state.run.execution_arn);
    if !ours {
        return Ok(false);
    }
    let value = ActivePointer {
        freeze: None,
        ..now.value
    };
    let version = write_pointer(params, &state.tenant, &value).await?;
    tracing::info!(tenant = %state.tenant, version, "write freeze cleared");
    Ok(true)
}

/// The tenant's ECS service as the pointer names it, or the default cluster with a service named
/// like the tenant.
pub fn service_of(pointer: &ActivePointer, ns: &Namespace, default_cluster: &str) -> ServiceRef {
    pointer.service.clone().unwrap_or_else(|| ServiceRef {
        cluster: default_cluster.to_string(),
        service: ns.to_string(),
    })
}
