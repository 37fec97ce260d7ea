//! Helpers shared by the per-tenant steps: input checks, tags and ownership, the active
//! pointer, the lock and the maintenance flag.
//!
//! Ownership rule: a resource belongs to this run when its `tenantflow:namespace` tag names the
//! tenant and its `tenantflow:run` tag holds the run's execution ARN. Steps only ever reuse or
//! delete resources that belong to the run (or, for teardown, to the tenant).

use crate::error::StepError;
use crate::manifest::{release_prefix, validate_release_id, Strategy};
use crate::model::{ActivePointer, PointerRead, ServiceRef, TenantState};
use crate::names::{tags, InstanceId, Namespace, SnapshotId};
use crate::ports::{Databases, DbInstance, Parameters, RestoreRequest, Tags};
use serde::{Deserialize, Serialize};

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

pub async fn lock_state<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
) -> Result<LockState, StepError> {
    Ok(match params.get(&state.tenant.paths().lock).await? {
        None => LockState::Free,
        Some(p) if p.value == state.run.execution_arn => LockState::Ours,
        Some(p) => LockState::Other(p.value),
    })
}

/// Takes the lock (create-if-absent). Held by this run already is fine (a retry); held by
/// another run is `Locked`.
pub async fn acquire_lock<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
) -> Result<(), StepError> {
    let path = state.tenant.paths().lock;
    // Two rounds: the lock may be released between a failed create and the read.
    for _ in 0..2 {
        if params
            .create(&path, &state.run.execution_arn)
            .await?
            .is_some()
        {
            return Ok(());
        }
        match lock_state(params, state).await? {
            LockState::Ours => return Ok(()),
            LockState::Other(holder) => {
                return Err(StepError::Locked {
                    tenant: state.tenant.to_string(),
                    holder,
                })
            }
            LockState::Free => continue,
        }
    }
    Err(StepError::Transient(format!(
        "lock {path} changed hands while being taken"
    )))
}

/// Releases the lock if this run holds it. Returns true when the lock is no longer ours (released
/// now or before); false when another run holds it (left alone).
pub async fn release_lock<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
) -> Result<bool, StepError> {
    match lock_state(params, state).await? {
        LockState::Ours => {
            params.delete(&state.tenant.paths().lock).await?;
            Ok(true)
        }
        LockState::Free => Ok(true),
        LockState::Other(holder) => {
            tracing::warn!(tenant = %state.tenant, %holder, "lock held by another run; left alone");
            Ok(false)
        }
    }
}

/// The value of the maintenance (write-freeze) flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceFlag {
    /// Execution ARN of the run that set it.
    pub run: String,
    pub release: String,
}

/// Sets the maintenance flag if absent. Returns true when the flag is this run's (set now or by
/// an earlier attempt), false when someone else set it (it is then not ours to clear).
pub async fn set_maintenance<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
) -> Result<bool, StepError> {
    let path = state.tenant.paths().maintenance;
    let flag = MaintenanceFlag {
        run: state.run.execution_arn.clone(),
        release: state.release.id.clone(),
    };
    let body = serde_json::to_string(&flag)
        .map_err(|e| StepError::Internal(format!("serialize maintenance flag: {e}")))?;
    if params.create(&path, &body).await?.is_some() {
        return Ok(true);
    }
    maintenance_is_ours(params, state).await
}

async fn maintenance_is_ours<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
) -> Result<bool, StepError> {
    Ok(params
        .get(&state.tenant.paths().maintenance)
        .await?
        .and_then(|p| serde_json::from_str::<MaintenanceFlag>(&p.value).ok())
        .is_some_and(|f| f.run == state.run.execution_arn))
}

/// Clears the maintenance flag if this run set it. Returns true if it was cleared now.
pub async fn clear_maintenance<P: Parameters + ?Sized>(
    params: &P,
    state: &TenantState,
) -> Result<bool, StepError> {
    if maintenance_is_ours(params, state).await? {
        params.delete(&state.tenant.paths().maintenance).await?;
        return Ok(true);
    }
    Ok(false)
}

/// The tenant's ECS service: `/tenantflow/<ns>/service` (JSON `{"cluster","service"}`) or the
/// default cluster with a service named like the tenant.
pub async fn service_of<P: Parameters + ?Sized>(
    params: &P,
    ns: &Namespace,
    default_cluster: &str,
) -> Result<ServiceRef, StepError> {
    let path = ns.paths().service;
    match params.get(&path).await? {
        Some(p) => serde_json::from_str(&p.value).map_err(|e| {
            StepError::Conflict(format!(
                "{path} must be {{\"cluster\",\"service\"}} JSON: {e}"
            ))
        }),
        None => Ok(ServiceRef {
            cluster: default_cluster.to_string(),
            service: ns.to_string(),
        }),
    }
}
