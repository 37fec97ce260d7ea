//! The data that flows through the state machine: the active pointer, the per-tenant state and
//! progress record, and the inputs/outputs of every step (serde, camelCase).
//!
//! The per-tenant child execution carries one [`TenantState`]. Each step reads it and returns an
//! updated [`Progress`] (the definitions write it back with `"ResultPath": "$.progress"`).
//! Rollback undoes exactly what the progress record says was done, in reverse order.

use crate::error::ErrorInfo;
use crate::manifest::{FleetMode, HealthCheck, Strategy};
use crate::names::{GenerationTs, InstanceId, Namespace, SnapshotId};
use serde::{Deserialize, Serialize};

/// The value of `/tenantflow/<ns>/db`: the active generation, as one JSON object so the flip is one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivePointer {
    pub generation: GenerationTs,
    pub instance_id: InstanceId,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub port: u16,
    /// Release the generation is migrated to.
    pub release: String,
}

/// A pointer as read, with the SSM version it had (the flip checks it has not moved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointerRead {
    pub value: ActivePointer,
    pub version: i64,
}

/// What the run knows about itself; the same for every tenant of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunContext {
    /// Execution name of the run (`<release-id>-<16 hex>`).
    pub name: String,
    /// Execution ARN of the run; the lock holds it.
    pub execution_arn: String,
    /// Timestamp of every generation this run creates (the run's start, whole seconds). Fixed for the
    /// whole run so that a retried step derives the same names.
    pub generation: GenerationTs,
}

/// The release as the per-tenant pipeline needs it (from the plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRef {
    pub id: String,
    pub bucket: String,
    /// `releases/<id>/`
    pub prefix: String,
    pub strategy: Strategy,
    pub fleet: FleetMode,
    pub write_freeze: bool,
    pub bake_seconds: u64,
    pub snapshot_retention: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot: Option<SnapshotId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Lowercase hex sha256 of the release's `SHA256SUMS` file as the plan verified it against the
    /// manifest. The migration build gets it (`TENANTFLOW_SHA256SUMS_SHA256`) and refuses any other
    /// file, so the scripts Flyway runs are the ones the plan checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256sums: Option<String>,
}

/// The tenant's ECS service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    pub cluster: String,
    pub service: String,
}

/// The state of one tenant's child execution. Every per-tenant Lambda takes this as input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantState {
    pub tenant: Namespace,
    pub run: RunContext,
    pub release: ReleaseRef,
    #[serde(default)]
    pub progress: Progress,
    /// Set by a `Catch` (`"ResultPath": "$.error"`) before rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// A snapshot this run uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    pub id: SnapshotId,
    /// True when this run created it (rollback may delete it); false for a given source snapshot.
    pub created: bool,
}

/// The candidate generation this run restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateRecord {
    pub instance_id: InstanceId,
    pub generation: GenerationTs,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub port: u16,
    /// Strategy `in-place`: the "candidate" is the active instance itself, migrated where it
    /// stands. Nothing was restored, so nothing may be deleted on rollback or teardown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
}

/// The pointer flip this run made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlipRecord {
    pub from: ActivePointer,
    pub to: ActivePointer,
    /// SSM version written by the flip.
    pub version: i64,
}

/// An ECS deployment this run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub service: ServiceRef,
    pub deployment_id: String,
    /// Last observed rollout state: IN_PROGRESS, COMPLETED or FAILED.
    #[serde(default)]
    pub rollout_state: String,
}

/// What teardown removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TeardownRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_instance: Option<InstanceId>,
    #[serde(default)]
    pub pruned_snapshots: Vec<SnapshotId>,
    pub lock_released: bool,
    /// Why the old generation was kept instead of deleted (it is active, or not tenantflow's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

/// Migration result (CodeBuild build or local Flyway run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRecord {
    pub build_id: String,
    pub status: String,
}

/// The per-tenant progress record: each step adds what it did. Rollback reads it in reverse
/// (deployment → flip → candidate → snapshot → maintenance → lock) and undoes only what is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Holder written into the lock, when this run holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// True when this run set the maintenance (write-freeze) flag.
    #[serde(default)]
    pub maintenance: bool,
    /// The pointer as read at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<PointerRead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip: Option<FlipRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<TeardownRecord>,
}

/// How one tenant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Deployed,
    RolledBack,
    Skipped,
    RollbackFailed,
}

/// The per-tenant result: the output of a child execution and a row of the run report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantResult {
    pub tenant: String,
    pub outcome: Outcome,
    pub release: String,
    #[serde(default)]
    pub from_generation: Option<String>,
    #[serde(default)]
    pub to_generation: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}
