//! The `waitForTaskToken` pair's shared parts (docs/design.md §4): where a task token is kept,
//! and how a resource's state is judged.
//!
//! `await-resource` stores `{token, tenant, service?}` in the `Records` store under the resource
//! (kind `db-snapshot`, `db-instance` or `ecs-deployment`, and the resource id), then checks the
//! resource once. `resume` (EventBridge target) finds the record by resource id and checks again.
//! Whoever sees a terminal state sends the result and deletes the record, but only if it still
//! holds the token that was sent: a `States.Timeout` retry may have stored a newer token meanwhile,
//! and that one must survive. Neither trusts an event alone: the state is always re-read from the
//! service.

use crate::error::StepError;
use crate::model::ServiceRef;
pub use crate::model::{ResourceKind, WaitRecord};
use crate::names::{InstanceId, SnapshotId};
use crate::ports::{Databases, Records, Services, Workflows};
use serde_json::json;

/// True when `id` is a resource id tenantflow stores tokens under (ECS deployment ids contain `/`).
pub fn is_safe_resource_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 512
        && !id.contains("//")
        && !id.starts_with('/')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

/// A resource's state as judged for a waiting task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not terminal yet (`status` as the service reports it).
    Pending(String),
    /// Ready: the task succeeds with `{"resource","status"}`.
    Ready(String),
    /// Will never become ready: the task fails with this ASL error name and cause.
    Failed { error: StepError },
}

/// Instance states in which a database serves connections: `available`, and two states a fresh
/// restore may sit in for hours while accepting connections:
/// - `backing-up`: since September 2025 RDS takes a baseline backup right after a restore when
///   backup retention is > 0, before the instance turns `available`
///   (hashicorp/terraform-provider-aws#44104, confirmed there by AWS Support);
/// - `storage-optimization`: after a storage change, "the DB instance is available for use"
///   meanwhile (RDS User Guide, "Viewing Amazon RDS DB instance status",
///   <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html>).
pub const INSTANCE_USABLE: &[&str] = &["available", "backing-up", "storage-optimization"];

/// Whether an instance in `status` serves connections (see [`INSTANCE_USABLE`]).
pub fn instance_usable(status: &str) -> bool {
    INSTANCE_USABLE.contains(&status)
}

/// Instance states that never turn `available` by themselves.
pub const INSTANCE_DEAD: &[&str] = &[
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "inaccessible-encryption-credentials",
    "restore-error",
    "storage-full",
    "deleting",
    "stopped",
];
/// Snapshot states that never turn `available`.
pub const SNAPSHOT_DEAD: &[&str] = &["failed", "error", "deleted", "deleting"];

pub async fn judge_snapshot<D: Databases + ?Sized>(
    db: &D,
    id: &SnapshotId,
) -> Result<Verdict, StepError> {
    Ok(match db.describe_snapshot(id).await? {
        None => Verdict::Failed {
            error: StepError::NotFound(format!("snapshot {id}")),
        },
        Some(s) if s.status == "available" => Verdict::Ready(s.status),
        Some(s) if SNAPSHOT_DEAD.contains(&s.status.as_str()) => Verdict::Failed {
            error: StepError::NotReady {
                resource: format!("snapshot {id}"),
                status: s.status,
            },
        },
        Some(s) => Verdict::Pending(s.status),
    })
}

pub async fn judge_instance<D: Databases + ?Sized>(
    db: &D,
    id: &InstanceId,
) -> Result<Verdict, StepError> {
    Ok(match db.describe_instance(id).await? {
        None => Verdict::Failed {
            error: StepError::NotFound(format!("instance {id}")),
        },
        Some(i) if instance_usable(&i.status) => Verdict::Ready(i.status),
        Some(i) if INSTANCE_DEAD.contains(&i.status.as_str()) => Verdict::Failed {
            error: StepError::NotReady {
                resource: format!("instance {id}"),
                status: i.status,
            },
        },
        Some(i) => Verdict::Pending(i.status),
    })
}

/// Judges deployment `id` only (never the service as a whole): COMPLETED with running ==
/// desired is ready; FAILED, gone, or superseded is `RolloutFailed`.
pub async fn judge_deployment<S: Services + ?Sized>(
    services: &S,
    service: &ServiceRef,
    id: &str,
) -> Result<Verdict, StepError> {
    let failed = |m: String| Verdict::Failed {
        error: StepError::RolloutFailed(m),
    };
    Ok(match services.deployment(service, id).await? {
        None => failed(format!(
            "deployment {id} of {}/{} is no longer listed",
            service.cluster, service.service
        )),
        Some(d) if d.rollout_state == "FAILED" => failed(format!(
            "deployment {id} of {}/{} FAILED",
            service.cluster, service.service
        )),
        Some(d) if !d.primary => failed(format!(
            "deployment {id} of {}/{} was superseded by a newer deployment",
            service.cluster, service.service
        )),
        Some(d) if d.rollout_state == "COMPLETED" && d.running == d.desired => {
            Verdict::Ready(d.rollout_state)
        }
        Some(d) => Verdict::Pending(format!(
            "{} ({}/{} running)",
            d.rollout_state, d.running, d.desired
        )),
    })
}

impl Verdict {
    /// The status reported to the caller: the service's word, or the ASL name of the failure.
    pub fn status(&self) -> String {
        match self {
            Verdict::Pending(s) | Verdict::Ready(s) => s.clone(),
            Verdict::Failed { error } => error.asl_name().to_string(),
        }
    }
}

/// One waited-on resource: what both halves of the pair judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    Snapshot(SnapshotId),
    Instance(InstanceId),
    Deployment { service: ServiceRef, id: String },
}

impl Waited {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Waited::Snapshot(_) => ResourceKind::DbSnapshot,
            Waited::Instance(_) => ResourceKind::DbInstance,
            Waited::Deployment { .. } => ResourceKind::EcsDeployment,
        }
    }

    /// The resource id the token is stored under.
    pub fn id(&self) -> &str {
        match self {
            Waited::Snapshot(id) => id.as_str(),
            Waited::Instance(id) => id.as_str(),
            Waited::Deployment { id, .. } => id,
        }
    }

    /// The service to record with the token (deployments only).
    pub fn service(&self) -> Option<&ServiceRef> {
        match self {
            Waited::Deployment { service, .. } => Some(service),
            _ => None,
        }
    }

    /// Reads the resource's state now and judges it.
    pub async fn judge<D: Databases + ?Sized, S: Services + ?Sized>(
        &self,
        db: &D,
        services: &S,
    ) -> Result<Verdict, StepError> {
        match self {
            Waited::Snapshot(id) => judge_snapshot(db, id).await,
            Waited::Instance(id) => judge_instance(db, id).await,
            Waited::Deployment { service, id } => judge_deployment(services, service, id).await,
        }
    }
}

/// Sends a terminal verdict to the waiting task and deletes the token record if it still holds
/// `token` (a newer token stored by a re-check survives). Returns true when a result was sent. A
/// failed send other than `Transient` means the token is already spent (the other half of the
/// pair got there first, or the wait timed out): that is logged, not raised.
pub async fn settle<W: Workflows + ?Sized, R: Records + ?Sized>(
    workflows: &W,
    records: &R,
    kind: ResourceKind,
    token: &str,
    resource: &str,
    verdict: &Verdict,
) -> Result<bool, StepError> {
    let sent = match verdict {
        Verdict::Pending(_) => return Ok(false),
        Verdict::Ready(status) => {
            let out = json!({"resource": resource, "status": status}).to_string();
            workflows.send_task_success(token, &out).await
        }
        Verdict::Failed { error } => {
            workflows
                .send_task_failure(token, error.asl_name(), &error.to_string())
                .await
        }
    };
    match sent {
        Ok(()) => {}
        Err(e @ StepError::Transient(_)) => return Err(e),
        Err(e) => {
            tracing::warn!(%resource, error = %e, "task token already spent; dropping it");
        }
    }
    if !records.delete_token(kind, resource, token).await? {
        tracing::info!(%resource, kind = kind.as_str(), "a newer token is stored; kept");
    }
    Ok(true)
}
