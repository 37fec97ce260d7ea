//! Port traits: the narrow, async view of the outside world the step logic needs.
//!
//! `functions/aws` implements them on the AWS SDK, `functions/local` on SQLite files and folders.
//! Every method returns [`StepError`] with the failure already classified (transient, not found,
//! conflict, …), so the step logic never sees an SDK error.

use crate::error::StepError;
use crate::model::{Journal, ResourceKind, ServiceRef, TenantRecord, WaitRecord};
use crate::names::{tags, InstanceId, Namespace, SnapshotId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Tags = BTreeMap<String, String>;

/// The reuse rule of [`Databases::create_snapshot`] and [`Databases::restore_instance`]: an
/// existing resource is "this run's" when `wanted` names a tenant and a run and `existing` carries
/// the same two tags. Without them in `wanted`, nothing proves ownership.
pub fn same_run(existing: &Tags, wanted: &Tags) -> bool {
    [tags::NAMESPACE, tags::RUN]
        .into_iter()
        .all(|k| wanted.get(k).is_some_and(|v| existing.get(k) == Some(v)))
}

/// An RDS DB instance as the steps see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbInstance {
    pub id: InstanceId,
    /// RDS status string: `creating`, `available`, `deleting`, `failed`, …
    pub status: String,
    pub endpoint: String,
    pub port: u16,
    pub deletion_protection: bool,
    pub tags: Tags,
}

/// An RDS manual snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbSnapshot {
    pub id: SnapshotId,
    pub source_instance: String,
    /// `creating`, `available`, `failed`, …
    pub status: String,
    /// RFC 3339 creation time, when known.
    pub created_at: Option<String>,
    pub tags: Tags,
}

/// Restore `snapshot` as a new instance `target`, copying settings from `template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    pub snapshot: SnapshotId,
    pub target: InstanceId,
    /// The active instance whose class, subnet group, security groups, parameter/option groups,
    /// Multi-AZ, storage type and IOPS the candidate copies. Never publicly accessible.
    pub template: InstanceId,
    pub tags: Tags,
}

/// Quota headroom: how many more instances / manual snapshots / builds fit right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Headroom {
    pub instances: u32,
    pub snapshots: u32,
}

/// RDS (instances and snapshots).
#[async_trait]
pub trait Databases: Send + Sync {
    async fn describe_instance(&self, id: &InstanceId) -> Result<Option<DbInstance>, StepError>;
    async fn describe_snapshot(&self, id: &SnapshotId) -> Result<Option<DbSnapshot>, StepError>;
    /// Starts a manual snapshot. If one with this id exists, returns it when it is the same run's
    /// ([`same_run`] with `tags`), else `Conflict`.
    async fn create_snapshot(
        &self,
        source: &InstanceId,
        id: &SnapshotId,
        tags: &Tags,
    ) -> Result<DbSnapshot, StepError>;
    /// Starts a restore. If the target exists, returns it when it is the same run's ([`same_run`]),
    /// else `Conflict`.
    async fn restore_instance(&self, req: &RestoreRequest) -> Result<DbInstance, StepError>;
    async fn set_deletion_protection(&self, id: &InstanceId, on: bool) -> Result<(), StepError>;
    /// Deletes an instance without a final snapshot. Absent is success.
    async fn delete_instance(&self, id: &InstanceId) -> Result<(), StepError>;
    /// Deletes a manual snapshot. Absent is success.
    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<(), StepError>;
    /// Instances whose identifier starts with `prefix`.
    async fn list_instances(&self, prefix: &str) -> Result<Vec<DbInstance>, StepError>;
    /// Manual snapshots whose identifier starts with `prefix`.
    async fn list_snapshots(&self, prefix: &str) -> Result<Vec<DbSnapshot>, StepError>;
    async fn headroom(&self) -> Result<Headroom, StepError>;
}

/// One SSM parameter value with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    pub name: String,
    pub value: String,
    pub version: i64,
}

/// A parameter's current version together with when SSM wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatedParameter {
    pub parameter: Parameter,
    /// When SSM last wrote the current version (`GetParameter` returns it as
    /// `Parameter.LastModifiedDate`); `None` when the implementation cannot tell.
    pub modified_at: Option<DateTime<Utc>>,
}

/// SSM Parameter Store. tenantflow keeps one parameter per tenant: the active pointer.
#[async_trait]
pub trait Parameters: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<Parameter>, StepError>;
    /// [`Parameters::get`] plus when the current version was written (`GetParameter`'s
    /// `Parameter.LastModifiedDate`). The default, for implementations that cannot tell, calls
    /// `get` and reports `modified_at: None`; callers must treat that as "unknown".
    async fn get_dated(&self, name: &str) -> Result<Option<DatedParameter>, StepError> {
        Ok(self.get(name).await?.map(|parameter| DatedParameter {
            parameter,
            modified_at: None,
        }))
    }
    /// Create-if-absent (`Overwrite=false`). `Ok(None)` means the parameter already existed.
    /// Not a compare-and-swap: nothing that races uses it (locks live in [`Records`]).
    async fn create(&self, name: &str, value: &str) -> Result<Option<i64>, StepError>;
    /// Overwrite; returns the new version.
    async fn put(&self, name: &str, value: &str) -> Result<i64, StepError>;
    /// Absent is success.
    async fn delete(&self, name: &str) -> Result<(), StepError>;
    /// Every parameter under `path` (recursive).
    async fn list(&self, path: &str) -> Result<Vec<Parameter>, StepError>;
}

/// What [`Records::acquire`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum LockTake {
    /// The lock was free and now holds the requested holder (the record as written).
    Taken(TenantRecord),
    /// Someone holds the lock, possibly the requested holder itself (a retry): the record as it
    /// is, untouched.
    Held(TenantRecord),
}

/// The high-churn per-tenant records that do not belong in SSM: the tenant record (lock and run
/// journal, one per tenant) and the task tokens of waits, keyed by resource. On AWS a DynamoDB
/// table; locally `<state>/records.sqlite`.
///
/// Every write that can race is conditional, so it is a true compare-and-swap.
#[async_trait]
pub trait Records: Send + Sync {
    /// Takes `tenant`'s lock for `holder` on behalf of `run`, only if no one holds it (one
    /// conditional write; it creates the record if absent, resets the journal and bumps the
    /// version). Never changes a held lock, not even one `holder` holds.
    async fn acquire(
        &self,
        tenant: &Namespace,
        holder: &str,
        run: &str,
    ) -> Result<LockTake, StepError>;
    /// Releases `tenant`'s lock only if `holder` holds it (conditional). `Ok(true)`: released now;
    /// `Ok(false)`: `holder` did not hold it (free, absent or someone else's), nothing written.
    async fn release(&self, tenant: &Namespace, holder: &str) -> Result<bool, StepError>;
    /// Replaces `tenant`'s run journal, only if the record is still at `expected_version` (one
    /// conditional write; it bumps the version and leaves holder, run and phase as they are).
    /// The version grows with every write, so the condition also proves the holder the caller
    /// read still holds the lock. `Ok(Some(record))`: written (the record as it is now);
    /// `Ok(None)`: the record changed or is absent, nothing written.
    async fn write_journal(
        &self,
        tenant: &Namespace,
        expected_version: i64,
        journal: &Journal,
    ) -> Result<Option<TenantRecord>, StepError>;
    /// The tenant's record (a strongly consistent read); `None` if it never had one.
    async fn get_tenant(&self, tenant: &Namespace) -> Result<Option<TenantRecord>, StepError>;
    /// Every tenant record whose lock is held (the janitor's stale-lock sweep).
    async fn list_held(&self) -> Result<Vec<TenantRecord>, StepError>;
    /// Every tenant record of `run` (the by-run index; `recover` reads a run's tenants with it).
    async fn list_run(&self, run: &str) -> Result<Vec<TenantRecord>, StepError>;
    /// Stores (overwrites) the token waiting on `resource`, with a time to live of
    /// [`crate::model::WAIT_TOKEN_TTL_SECONDS`].
    async fn put_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        wait: &WaitRecord,
    ) -> Result<(), StepError>;
    /// The token waiting on `resource` (a strongly consistent read), if any.
    async fn get_token(
        &self,
        kind: ResourceKind,
        resource: &str,
    ) -> Result<Option<WaitRecord>, StepError>;
    /// Deletes the token record of `resource` only if it still holds `token` (conditional):
    /// a newer token stored meanwhile survives. `Ok(true)` when deleted now.
    async fn delete_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        token: &str,
    ) -> Result<bool, StepError>;
}

/// One ECS deployment as the steps judge it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub id: String,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub rollout_state: String,
    pub running: u32,
    pub desired: u32,
    /// True when this deployment is still the PRIMARY one.
    pub primary: bool,
}

/// The deployment ECS currently rolls the service towards, and when it was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryDeployment {
    pub id: String,
    /// The deployment's `createdAt`: its tasks started at or after this time.
    pub created_at: DateTime<Utc>,
}

/// ECS services.
#[async_trait]
pub trait Services: Send + Sync {
    /// `UpdateService(forceNewDeployment)`; returns the id of the new PRIMARY deployment.
    async fn force_deployment(&self, service: &ServiceRef) -> Result<String, StepError>;
    /// The service's current PRIMARY deployment with its creation time (`DescribeServices`:
    /// the deployment with `status == "PRIMARY"` and its `createdAt`). `Ok(None)` when the service
    /// lists no PRIMARY deployment or does not say when it was created; a missing service is
    /// `NotFound`. The default, for implementations that cannot tell, is `Ok(None)`, which makes
    /// `roll-ecs` force a new deployment.
    async fn primary_deployment(
        &self,
        _service: &ServiceRef,
    ) -> Result<Option<PrimaryDeployment>, StepError> {
        Ok(None)
    }
    /// The deployment `id` of `service`; `Ok(None)` if ECS no longer lists it.
    async fn deployment(
        &self,
        service: &ServiceRef,
        id: &str,
    ) -> Result<Option<DeploymentStatus>, StepError>;
}

/// Outcome of `StartExecution`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub execution_arn: String,
    /// True when an execution with this name and input already existed (duplicate delivery).
    pub duplicate: bool,
}

/// Status of an execution, Step Functions' words: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
pub type ExecutionState = String;

/// Step Functions (starting runs, task-token callbacks, execution status).
#[async_trait]
pub trait Workflows: Send + Sync {
    /// Starts `name` with `input`. Same name and same input: `duplicate = true`. Same name, other
    /// input: `Conflict`.
    async fn start_execution(&self, name: &str, input: &str) -> Result<Started, StepError>;
    async fn send_task_success(&self, token: &str, output: &str) -> Result<(), StepError>;
    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), StepError>;
    /// `None` when the execution does not exist.
    async fn execution_status(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionState>, StepError>;
}

/// S3.
#[async_trait]
pub trait Objects: Send + Sync {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StepError>;
    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), StepError>;
    /// Keys under `prefix`.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StepError>;
}

/// EventBridge (run notifications).
#[async_trait]
pub trait Events: Send + Sync {
    async fn put_event(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StepError>;
}
