//! The data that flows through the state machine: the active pointer, the per-tenant state and
//! progress record, and the inputs/outputs of every step (serde, camelCase).
//!
//! The per-tenant child execution carries one [`TenantState`]. Each step reads it and returns an
//! updated [`Progress`] (the definitions write it back with `"ResultPath": "$.progress"`).
//! Rollback undoes exactly what the progress record says was done, in reverse order.
//!
//! It also holds the two records of the `Records` port: the per-tenant [`TenantRecord`] (lock and
//! run journal, one item per tenant) and the [`WaitRecord`] of a task token.

use crate::error::ErrorInfo;
use crate::manifest::{FleetMode, HealthCheck, Strategy};
use crate::names::{GenerationTs, InstanceId, Namespace, SnapshotId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The value of `/tenantflow/<ns>/db`, the tenant's one SSM parameter: the active generation, the
/// tenant's ECS service and the write freeze, as one JSON object so the flip is one write and the
/// app reads one parameter for all three.
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
    /// Digest of that release's script set ([`crate::manifest::Manifest::script_set_digest`]),
    /// written by the flip. With `release` it says the tenant is up to date; the release's
    /// manifest (immutable in the release bucket) says which versioned scripts it holds. Absent on
    /// a pointer tenantflow did not flip (an adopted or `init` tenant): such a tenant is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts: Option<String>,
    /// The tenant's ECS service. Absent: the default cluster and a service named like the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Present while a run freezes the tenant's writes (DESIGN §2, write-loss guard): the app
    /// must refuse writes while it reads a pointer with a freeze.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<WriteFreeze>,
}

impl ActivePointer {
    /// This pointer's generation (generation, instance, endpoint, port, release) with the service
    /// and freeze of `now`: a flip changes where the tenant points, never its service or freeze.
    pub fn keeping(&self, now: &ActivePointer) -> ActivePointer {
        ActivePointer {
            service: now.service.clone(),
            freeze: now.freeze.clone(),
            ..self.clone()
        }
    }
}

/// The write freeze inside the active pointer: which run set it, for which release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFreeze {
    /// Execution ARN of the run that set it (only that run clears it).
    pub run: String,
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
    /// Seconds between the write freeze and the snapshot (the manifest's, or the run's override).
    #[serde(default)]
    pub freeze_drain_seconds: u64,
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
    /// Digest of the release's script set ([`crate::manifest::Manifest::script_set_digest`]); the
    /// flip writes it into the pointer (`scripts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts: Option<String>,
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
    /// Holder written into the tenant record's lock, when this run holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// True when this run set the write freeze (the pointer's `freeze`).
    #[serde(default)]
    pub maintenance: bool,
    /// The pointer as this run left it before the flip: as read at the start, with this run's
    /// freeze when it set one, and the SSM version after that write (the flip checks it).
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
    /// The tenant's pointer already names this release with the same script set: nothing was
    /// done (no lock, snapshot, copy or freeze). Counts as a success.
    UpToDate,
    /// Fleet mode `rehearse`: the tenant prepared, and its candidate was discarded.
    Rehearsed,
    /// Fleet mode `rehearse`: the tenant's prepare failed (the error says why); nothing changed.
    WouldFail,
}

impl Outcome {
    /// Deployed, already up to date, or rehearsed without error: what a successful run leaves.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Outcome::Deployed | Outcome::UpToDate | Outcome::Rehearsed
        )
    }

    /// The kebab-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Skipped => "skipped",
            Outcome::RollbackFailed => "rollback-failed",
            Outcome::UpToDate => "up-to-date",
            Outcome::Rehearsed => "rehearsed",
            Outcome::WouldFail => "would-fail",
        }
    }
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
    /// Whole seconds from the tenant's first child execution's start to its last one's stop, from
    /// the Map runs' ResultWriter output (the report sets it; a child's own result has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

/// The kind of resource a task token waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    DbSnapshot,
    DbInstance,
    EcsDeployment,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::DbSnapshot => "db-snapshot",
            ResourceKind::DbInstance => "db-instance",
            ResourceKind::EcsDeployment => "ecs-deployment",
        }
    }
}

/// How long a stored task token lives before the store may drop it (the TTL). Every
/// `States.Timeout` retry stores the token again, and no single wait attempt lasts an hour, so a
/// day only ever removes tokens of runs that are over.
pub const WAIT_TOKEN_TTL_SECONDS: i64 = 24 * 60 * 60;

/// A waiting task token, stored by the resource it waits on (`Records::put_token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitRecord {
    pub token: String,
    pub tenant: Namespace,
    /// For ECS deployments: the service to re-check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
}

/// Where a tenant's run stands, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A run holds the lock (taken by `snapshot`).
    Locked,
    /// The last run handed the tenant back (`teardown`, `rollback` or the janitor).
    Released,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Locked => "locked",
            Phase::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [Phase::Locked, Phase::Released]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// The run journal inside the tenant record: the intent of the step under way and what exists
/// (DESIGN §2, run journal), written by every step with an effect before it acts
/// ([`crate::steps::journal`]) with a write conditional on the record's version. `recover` reads
/// it to settle a tenant whose run died. Taking the lock resets it to empty. Stored as one JSON
/// object (`journal`), camelCase fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// The step under way (its intent), named like its Lambda: `snapshot`, `create-db`,
    /// `flip-ssm`, `roll-ecs`, `teardown`, `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The old pointer and its SSM version (what rollback flips back to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<PointerRead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<InstanceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotId>,
    /// The rollout's ECS deployment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// True while the run's write freeze is in the pointer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze: bool,
    /// True once the rollout of this run's flip was seen COMPLETED (teardown is under way).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollout_completed: bool,
    /// The tenant's state as the step received it (run context, release, progress, and for
    /// `rollback` the caught error): what `recover` rebuilds the rollback or teardown input from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<TenantState>>,
    /// Set by `recover` once it settled the tenant: every later step of this run fails with
    /// `Tenantflow.RunAborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Aborted>,
}

/// How `recover` settled a tenant of a dead run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Aborted {
    /// `rolled-back`, `rolled-forward` or `released` (nothing of the run to undo).
    pub action: String,
    pub at: DateTime<Utc>,
}

impl Journal {
    pub fn is_empty(&self) -> bool {
        *self == Journal::default()
    }

    /// The journal entry written before `step` acts on `state`.
    pub fn at(step: &str, state: &TenantState) -> Journal {
        let p = &state.progress;
        Journal {
            step: Some(step.to_string()),
            pointer: p.pointer.clone(),
            candidate: p.candidate.as_ref().map(|c| c.instance_id.clone()),
            snapshot: p.snapshot.as_ref().map(|s| s.id.clone()),
            deployment_id: p.deployment.as_ref().map(|d| d.deployment_id.clone()),
            freeze: p.maintenance,
            rollout_completed: p
                .deployment
                .as_ref()
                .is_some_and(|d| d.rollout_state == "COMPLETED"),
            state: Some(Box::new(state.clone())),
            aborted: None,
        }
    }
}

/// The one record per tenant in the `Records` store: the tenant's lock and its run journal.
///
/// Every write is conditional (a compare-and-swap): taking the lock only when no one holds it,
/// releasing it only when the releaser holds it. `version` grows by one with every write, so a
/// later journal write can be made conditional on the version it read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    pub tenant: Namespace,
    /// Execution ARN that holds the lock; `None` when the lock is free. Today the run's execution
    /// ARN; the tenant's own child execution once the definitions pass it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The parent run of the current (or last) holder: the key of the by-run index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub phase: Phase,
    pub version: i64,
    /// When the record was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub journal: Journal,
}
