//! `list-tenants`: plans a run (the first state of the release state machine).
//!
//! Reads and validates the manifest, every script's sha256 and the release's `SHA256SUMS`,
//! discovers the tenants from their active pointers (saying exactly what a tenant it skips lacks),
//! applies the selection, splits the waves, sizes `maxConcurrency` from quota headroom (counting
//! the snapshots this run keeps for good), and writes the tenant lists to S3
//! (`runs/<run>/waves/<n>.json`, `runs/<run>/tenants.json`, `runs/<run>/skipped.json`) so that no
//! tenant list ever flows through a state payload. Everything is validated before the first write.

mod select;
pub mod standing;

#[cfg(test)]
pub(crate) mod fixtures;

use super::{parse_input, Ports, Settings};
use crate::error::StepError;
use crate::manifest::{
    release_prefix, validate_release_id, FleetMode, Manifest, Strategy, SHA256SUMS,
};
use crate::model::{ActivePointer, Outcome, ReleaseRef, RunContext, TenantResult};
use crate::names::{GenerationTs, Namespace, SnapshotId, SSM_ROOT};
use crate::ports::{Databases, Objects, Parameters};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

pub use select::select_tenants;

/// Every Distributed Map of the run tolerates 100 % failed children. A child rolls back on its
/// own and ends SUCCEEDED with its outcome, so a FAILED child is one that broke outside its own
/// rollback; a lower threshold would make the Map abort the children still running, and an aborted
/// child never rolls back. Wave stops are decided from counted outcomes by `report`.
pub const TOLERATED_FAILURE_PERCENTAGE: f64 = 100.0;

/// Where the quotas that size a run are set on AWS (the default of [`Settings::quota_hint`]).
pub const QUOTA_PLACES: &str =
    "Service Quotas (Amazon RDS: \"DB instances\", \"Manual DB instance \
     snapshots\", per account and Region) or the stack parameter BuildConcurrency";

/// The state machine input (`events/manual-start.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunInput {
    pub bucket: String,
    /// `releases/<id>/manifest.json`
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default)]
    pub overrides: Overrides,
    /// Limits the run to the tenants named in this object of `bucket`, a JSON array of tenant
    /// names (`tenantflow retry` writes one): a list of thousands of names would approach the
    /// 256 KiB input limit, so it travels by reference. Each must be in the manifest's selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_list: Option<String>,
}

/// Per-run overrides of the manifest's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_drain_seconds: Option<u64>,
}

/// The run's settings that overrides decide: the manifest's, with the overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub strategy: Strategy,
    pub fleet: FleetMode,
    /// For `promote`: the snapshot to restore; `None` for the other strategies.
    pub source_snapshot: Option<SnapshotId>,
    pub max_failure_percent: f64,
}

impl Overrides {
    /// Checks the overrides on their own: `maxFailurePercent` a number from 0 to 100 (NaN and
    /// infinities refused), `maxConcurrency` at least 1.
    pub fn validate(&self) -> Result<(), StepError> {
        if let Some(p) = self.max_failure_percent {
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return Err(StepError::invalid(
                    "overrides.maxFailurePercent",
                    format!("{p} is not a number from 0 to 100"),
                ));
            }
        }
        if let Some(s) = self.freeze_drain_seconds {
            crate::manifest::validate_freeze_drain("overrides.freezeDrainSeconds", s)?;
        }
        if self.max_concurrency == Some(0) {
            return Err(StepError::invalid(
                "overrides.maxConcurrency",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The manifest's settings with these overrides applied. Refuses what no run can carry out:
    /// `in-place` with `all-or-nothing`, `blue-green` without a write freeze, `promote` without a
    /// source snapshot, a failure threshold outside 0–100.
    pub fn apply(&self, manifest: &Manifest) -> Result<Effective, StepError> {
        self.validate()?;
        let strategy = self.strategy.unwrap_or(manifest.strategy);
        let fleet = self.fleet.unwrap_or(manifest.fleet);
        if strategy == Strategy::InPlace && fleet == FleetMode::AllOrNothing {
            return Err(StepError::invalid(
                "fleet",
                "strategy in-place cannot run all-or-nothing: migrating in place serves the new version before the commit phase",
            ));
        }
        if strategy == Strategy::InPlace && fleet == FleetMode::Rehearse {
            return Err(StepError::invalid(
                "fleet",
                "strategy in-place cannot be rehearsed: it migrates the active database itself",
            ));
        }
        // A rehearsal never freezes writes (nothing it makes is ever served).
        if strategy == Strategy::BlueGreen && !manifest.write_freeze && fleet != FleetMode::Rehearse
        {
            return Err(StepError::invalid(
                "overrides.strategy",
                "blue-green must freeze writes, and this manifest says writeFreeze: false",
            ));
        }
        let source_snapshot = match (strategy, &manifest.source_snapshot) {
            (Strategy::Promote, Some(s)) => Some(
                SnapshotId::parse(s)
                    .map_err(|e| StepError::invalid("sourceSnapshot", e.to_string()))?,
            ),
            (Strategy::Promote, None) => {
                return Err(StepError::invalid(
                    "sourceSnapshot",
                    "strategy promote needs the snapshot to promote",
                ))
            }
            (_, _) => None,
        };
        let max_failure_percent = self
            .max_failure_percent
            .unwrap_or(manifest.waves.max_failure_percent);
        if !(0.0..=100.0).contains(&max_failure_percent) {
            return Err(StepError::invalid(
                "maxFailurePercent",
                format!("{max_failure_percent} is not between 0 and 100"),
            ));
        }
        Ok(Effective {
            strategy,
            fleet,
            source_snapshot,
            max_failure_percent,
        })
    }
}

/// `$$.Execution` fields the plan needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionInfo {
    pub name: String,
    pub arn: String,
    /// ISO 8601, as `$$.Execution.StartTime` gives it.
    pub start_time: String,
}

/// Input of `list-tenants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanInput {
    pub input: RunInput,
    pub execution: ExecutionInfo,
}

/// An S3 JSON array of items that a Distributed Map reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemsRef {
    pub bucket: String,
    pub key: String,
    pub count: u64,
}

/// One wave of an `independent` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WavePlan {
    /// `canary` or `main`.
    pub name: String,
    pub bucket: String,
    pub key: String,
    pub count: u64,
    pub tolerated_failure_percentage: f64,
}

/// The plan: the output of `list-tenants`, carried as `$.plan` through the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub run: RunContext,
    pub release: ReleaseRef,
    pub fleet: FleetMode,
    pub tenant_count: u64,
    pub max_concurrency: u32,
    pub max_failure_percent: f64,
    /// For the all-or-nothing phase maps (see [`TOLERATED_FAILURE_PERCENTAGE`]).
    pub tolerated_failure_percentage: f64,
    /// ResultWriter prefix of every Map of the run: `runs/<run>/results`.
    pub result_prefix: String,
    pub wave_count: u64,
    /// Empty in `all-or-nothing` mode, which reads `allTenants`.
    pub waves: Vec<WavePlan>,
    pub all_tenants: ItemsRef,
    /// Tenants the selection covers that this run skips, with what each lacks
    /// (`runs/<run>/skipped.json`, a JSON array of [`SkippedTenant`]); absent when none is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<ItemsRef>,
    /// Selected tenants the plan settled without a child execution: `up-to-date` ones, and in
    /// `independent` mode `newer` ones (outcome `skipped`, error `Tenantflow.Newer`)
    /// (`runs/<run>/settled.json`, a JSON array of [`TenantResult`]); absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<ItemsRef>,
    /// What `max_concurrency` was the smallest of (for `tenantflow plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyBound>,
}

/// The limits `max_concurrency` is the smallest of, and which one binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyBound {
    /// The run's override, else the manifest's `maxConcurrency`, else the default.
    pub cap: u32,
    /// Concurrent migration builds.
    pub builds: u32,
    /// Free DB instances.
    pub instances: u32,
    /// Free manual snapshots (`None` for `promote`, which takes none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<u32>,
    /// Of those, the snapshots this run keeps for good (snapshotRetention).
    pub snapshots_kept: u32,
    /// `cap`, `builds`, `instances` or `snapshots`.
    pub binding: String,
}

/// A tenant `list-tenants` found but cannot deploy to, and exactly what it lacks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SkippedTenant {
    pub tenant: Namespace,
    pub reason: String,
}

/// One item of a wave or tenant list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantItem {
    pub tenant: Namespace,
}

/// `runs/<run-name>/` in the release bucket.
pub fn run_prefix(run_name: &str) -> String {
    format!("runs/{run_name}/")
}

/// Entry point used by [`super::dispatch`].
pub async fn run(ports: &Ports, input: Value) -> Result<Plan, StepError> {
    let input: PlanInput = parse_input(input)?;
    plan(
        ports.objects.as_ref(),
        ports.parameters.as_ref(),
        ports.databases.as_ref(),
        &ports.settings,
        input,
    )
    .await
}

/// The release id named by a `releases/<id>/manifest.json` key.
pub fn release_id_of_key(key: &str) -> Result<&str, StepError> {
    let id = key
        .strip_prefix("releases/")
        .and_then(|rest| rest.strip_suffix("/manifest.json"))
        .ok_or_else(|| {
            StepError::invalid("key", format!("{key:?} is not releases/<id>/manifest.json"))
        })?;
    validate_release_id("key", id).map(|()| id)
}

/// Builds the plan; see the module doc. Writes to S3 only after every check passed.
pub async fn plan<O, P, D>(
    objects: &O,
    params: &P,
    dbs: &D,
    settings: &Settings,
    input: PlanInput,
) -> Result<Plan, StepError>
where
    O: Objects + ?Sized,
    P: Parameters + ?Sized,
    D: Databases + ?Sized,
{
    let RunInput {
        bucket,
        key,
        overrides,
        tenant_list,
        ..
    } = input.input;
    let release_id = release_id_of_key(&key)?.to_string();
    let run = run_context(&input.execution)?;
    let (manifest, sha256sums) = load_manifest(objects, &bucket, &key, &release_id).await?;

    let Effective {
        strategy,
        fleet,
        source_snapshot,
        max_failure_percent,
    } = overrides.apply(&manifest)?;

    let discovery = discover(params, settings).await?;
    let (tenants, skipped) = match &tenant_list {
        None => (
            select_tenants(&discovery.tenants, &discovery.skipped, &manifest.tenants)?,
            select::skipped_in_selection(&discovery.skipped, &manifest.tenants)?,
        ),
        Some(list_key) => {
            let names = read_tenant_list(objects, &bucket, list_key).await?;
            select::select_listed(&discovery, &names, &manifest.tenants)?
        }
    };
    let standing::Standing {
        deploy: tenants,
        up_to_date,
        newer,
    } = standing::classify(objects, &bucket, &manifest, &discovery.pointers, tenants).await?;
    if fleet == FleetMode::AllOrNothing && !newer.is_empty() {
        return Err(StepError::Newer(format!(
            "{} of the selected tenants are on a newer release, so the all-or-nothing run \
             prepares none: {}",
            newer.len(),
            newer
                .iter()
                .map(|(t, why)| format!("{t}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let settled = settled_results(&release_id, &up_to_date, &newer);
    let n = tenants.len() as u64;

    let headroom = dbs.headroom().await?;
    let cap = overrides
        .max_concurrency
        .or(manifest.max_concurrency)
        .unwrap_or(settings.default_max_concurrency);
    let mut max_concurrency = cap.min(settings.build_concurrency).min(headroom.instances);
    let mut kept = 0;
    let bound_before_snapshots = max_concurrency;
    if strategy != Strategy::Promote {
        // A rehearsal deletes every snapshot it takes: none is kept for good.
        let retention = match fleet {
            FleetMode::Rehearse => 0,
            _ => manifest.snapshot_retention,
        };
        kept = snapshots_kept_for_good(
            dbs,
            settings,
            &tenants,
            retention,
            headroom.snapshots,
            max_concurrency,
        )
        .await?;
        max_concurrency = max_concurrency.min(headroom.snapshots.saturating_sub(kept));
    }
    if n > 0 && max_concurrency == 0 {
        let free_snapshots = headroom.snapshots.saturating_sub(kept);
        let mut binds = Vec::new();
        if headroom.instances == 0 {
            binds.push("no DB instance free (each tenant in flight needs one more)".to_string());
        }
        if settings.build_concurrency == 0 {
            binds.push("no concurrent build allowed".to_string());
        }
        if strategy != Strategy::Promote && free_snapshots == 0 {
            binds.push(format!(
                "no manual snapshot free beyond the {kept} this run keeps for good"
            ));
        }
        let place = settings
            .quota_hint
            .clone()
            .unwrap_or_else(|| QUOTA_PLACES.to_string());
        return Err(StepError::QuotaExceeded(format!(
            "no headroom for even one tenant: {}: raise it in {place}, or lower snapshotRetention \
             (instances {}, builds {}, cap {cap}, manual snapshots {} of which this run keeps \
             {kept} for good: snapshotRetention {} for {n} tenants, {} manual snapshots at steady \
             state)",
            binds.join(", "),
            headroom.instances,
            settings.build_concurrency,
            headroom.snapshots,
            manifest.snapshot_retention,
            n.saturating_mul(u64::from(manifest.snapshot_retention)),
        )));
    }
    let max_concurrency = max_concurrency.max(1);
    let script_set = manifest.script_set_digest()?;
    let concurrency = ConcurrencyBound {
        cap,
        builds: settings.build_concurrency,
        instances: headroom.instances,
        snapshots: (strategy != Strategy::Promote).then_some(headroom.snapshots),
        snapshots_kept: kept,
        binding: binding(
            max_concurrency,
            cap,
            settings.build_concurrency,
            headroom.instances,
            (bound_before_snapshots > max_concurrency).then_some(()),
        ),
    };

    let prefix = run_prefix(&run.name);
    let all_tenants = ItemsRef {
        bucket: bucket.clone(),
        key: format!("{prefix}tenants.json"),
        count: n,
    };
    let canary = match fleet {
        FleetMode::AllOrNothing | FleetMode::Rehearse => 0,
        FleetMode::Independent => canary_size(
            n,
            overrides.canary_count.or(manifest.waves.canary_count),
            manifest.waves.canary_percent,
        )?,
    };
    let mut wave_lists: Vec<(&str, &[Namespace])> = Vec::new();
    if fleet == FleetMode::Independent && n > 0 {
        let (head, tail) = tenants.split_at(canary as usize);
        if !head.is_empty() {
            wave_lists.push(("canary", head));
        }
        if !tail.is_empty() {
            wave_lists.push(("main", tail));
        }
    }

    put_items(objects, &bucket, &all_tenants.key, &tenants).await?;
    let skipped = if skipped.is_empty() {
        None
    } else {
        for t in &skipped {
            tracing::warn!(tenant = %t.tenant, reason = %t.reason, "tenant skipped");
        }
        let key = format!("{prefix}skipped.json");
        let body = serde_json::to_vec(&skipped)
            .map_err(|e| StepError::Internal(format!("serialize skipped tenants: {e}")))?;
        objects.put(&bucket, &key, &body).await?;
        Some(ItemsRef {
            bucket: bucket.clone(),
            key,
            count: skipped.len() as u64,
        })
    };
    let settled = if settled.is_empty() {
        None
    } else {
        tracing::info!(
            up_to_date = up_to_date.len(),
            newer = newer.len(),
            "tenants settled by the plan"
        );
        let key = format!("{prefix}settled.json");
        let body = serde_json::to_vec(&settled)
            .map_err(|e| StepError::Internal(format!("serialize settled tenants: {e}")))?;
        objects.put(&bucket, &key, &body).await?;
        Some(ItemsRef {
            bucket: bucket.clone(),
            key,
            count: settled.len() as u64,
        })
    };
    let mut waves = Vec::with_capacity(wave_lists.len());
    for (i, (name, list)) in wave_lists.into_iter().enumerate() {
        let key = format!("{prefix}waves/{i}.json");
        put_items(objects, &bucket, &key, list).await?;
        waves.push(WavePlan {
            name: name.to_string(),
            bucket: bucket.clone(),
            key,
            count: list.len() as u64,
            tolerated_failure_percentage: TOLERATED_FAILURE_PERCENTAGE,
        });
    }

    Ok(Plan {
        release: ReleaseRef {
            id: release_id.clone(),
            bucket: bucket.clone(),
            prefix: release_prefix(&release_id),
            strategy,
            fleet,
            write_freeze: manifest.write_freeze && fleet != FleetMode::Rehearse,
            freeze_drain_seconds: overrides
                .freeze_drain_seconds
                .unwrap_or(manifest.freeze_drain_seconds),
            bake_seconds: manifest.bake_seconds,
            snapshot_retention: manifest.snapshot_retention,
            source_snapshot,
            health_check: manifest.health_check.clone(),
            sha256sums: Some(sha256sums),
            scripts: Some(script_set),
        },
        fleet,
        tenant_count: n,
        max_concurrency,
        max_failure_percent,
        tolerated_failure_percentage: TOLERATED_FAILURE_PERCENTAGE,
        result_prefix: format!("{prefix}results"),
        wave_count: waves.len() as u64,
        waves,
        all_tenants,
        skipped,
        settled,
        concurrency: Some(concurrency),
        run,
    })
}

/// The results of the tenants the plan settled: `up-to-date`, and `newer` (outcome `skipped`).
fn settled_results(
    release: &str,
    up_to_date: &[(Namespace, String)],
    newer: &[(Namespace, String)],
) -> Vec<TenantResult> {
    let result =
        |t: &Namespace, outcome, generation: Option<&String>, why: Option<&String>| TenantResult {
            tenant: t.to_string(),
            outcome,
            release: release.to_string(),
            from_generation: generation.cloned(),
            to_generation: None,
            duration_seconds: None,
            error: why.map(|_| "Tenantflow.Newer".to_string()),
            cause: why.cloned(),
        };
    let mut out: Vec<TenantResult> = up_to_date
        .iter()
        .map(|(t, g)| result(t, Outcome::UpToDate, Some(g), None))
        .chain(
            newer
                .iter()
                .map(|(t, why)| result(t, Outcome::Skipped, None, Some(why))),
        )
        .collect();
    out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    out
}

/// The tenant names of a `tenantList` object: a JSON array of namespaces.
async fn read_tenant_list<O: Objects + ?Sized>(
    objects: &O,
    bucket: &str,
    key: &str,
) -> Result<Vec<String>, StepError> {
    let bytes = objects.get(bucket, key).await?.ok_or_else(|| {
        StepError::invalid("tenantList", format!("s3://{bucket}/{key} does not exist"))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        StepError::invalid(
            "tenantList",
            format!("s3://{bucket}/{key} is not a JSON array of tenant names: {e}"),
        )
    })
}

/// Which limit set `max_concurrency`: the first of cap, builds, instances, snapshots that equals
/// it (`snapshots_bound` when the snapshot headroom lowered it).
fn binding(
    max_concurrency: u32,
    cap: u32,
    builds: u32,
    instances: u32,
    snapshots_bound: Option<()>,
) -> String {
    if snapshots_bound.is_some() {
        return "snapshots".into();
    }
    [("cap", cap), ("builds", builds), ("instances", instances)]
        .into_iter()
        .find(|(_, v)| *v == max_concurrency)
        .map_or("cap", |(name, _)| name)
        .to_string()
}

fn run_context(e: &ExecutionInfo) -> Result<RunContext, StepError> {
    let start = DateTime::parse_from_rfc3339(&e.start_time).map_err(|err| {
        StepError::invalid("execution.startTime", format!("{:?}: {err}", e.start_time))
    })?;
    if e.name.is_empty() || e.arn.is_empty() {
        return Err(StepError::invalid("execution", "name and arn are required"));
    }
    Ok(RunContext {
        name: e.name.clone(),
        execution_arn: e.arn.clone(),
        generation: GenerationTs::from_datetime(start.to_utc()),
    })
}

/// Tenants in the canary wave: the count wins over the percentage; at most every tenant.
fn canary_size(n: u64, count: Option<u32>, percent: Option<f64>) -> Result<u64, StepError> {
    let size = match (count, percent) {
        (Some(c), _) => u64::from(c),
        (None, Some(p)) if (0.0..=100.0).contains(&p) => ((n as f64) * p / 100.0).ceil() as u64,
        (None, Some(p)) => {
            return Err(StepError::invalid(
                "waves.canaryPercent",
                format!("{p} is not between 0 and 100"),
            ))
        }
        (None, None) => 0,
    };
    Ok(size.min(n))
}

/// Reads the manifest, checks it names this release, checks every script's sha256, and checks
/// that the release's `SHA256SUMS` (what the migration build verifies the scripts with) says the
/// same. Returns the manifest and the sha256 of that `SHA256SUMS`. Public so that
/// `tenantflow aws release push` verifies a release exactly as a run will.
pub async fn load_manifest<O: Objects + ?Sized>(
    objects: &O,
    bucket: &str,
    key: &str,
    release_id: &str,
) -> Result<(Manifest, String), StepError> {
    let bytes = objects
        .get(bucket, key)
        .await?
        .ok_or_else(|| StepError::NotFound(format!("s3://{bucket}/{key}")))?;
    let manifest = Manifest::parse(&bytes).map_err(|e| match e {
        StepError::InvalidInput { field, message } => {
            StepError::invalid(format!("manifest.{field}"), message)
        }
        other => other,
    })?;
    if manifest.release != release_id {
        return Err(StepError::invalid(
            "manifest.release",
            format!(
                "{:?} does not match the release folder {release_id:?}",
                manifest.release
            ),
        ));
    }
    for (i, script) in manifest.scripts.iter().enumerate() {
        let object_key = format!("{}{}", release_prefix(release_id), script.name);
        let body = objects.get(bucket, &object_key).await?.ok_or_else(|| {
            StepError::invalid(
                format!("manifest.scripts[{i}].name"),
                format!("s3://{bucket}/{object_key} does not exist"),
            )
        })?;
        manifest
            .verify_script(&script.name, &body)
            .map_err(|e| match e {
                StepError::InvalidInput { field, message } => {
                    StepError::invalid(format!("manifest.{field}"), message)
                }
                other => other,
            })?;
    }
    let sums_key = format!("{}{SHA256SUMS}", release_prefix(release_id));
    let sums = objects.get(bucket, &sums_key).await?.ok_or_else(|| {
        StepError::invalid(
            SHA256SUMS,
            format!(
                "s3://{bucket}/{sums_key} does not exist: the migration build checks every script \
                 against it; `tenantflow release pack` writes it next to manifest.json"
            ),
        )
    })?;
    manifest.verify_sha256sums(&sums).map_err(|e| match e {
        StepError::InvalidInput { message, .. } => {
            StepError::invalid(SHA256SUMS, format!("s3://{bucket}/{sums_key} {message}"))
        }
        other => other,
    })?;
    Ok((manifest, hex::encode(Sha256::digest(&sums))))
}

/// The tenants of this deployment ([`Settings::owns`]) found under `/tenantflow/`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// Tenants with a valid active pointer, sorted.
    pub tenants: Vec<Namespace>,
    /// Tenants with parameters under `/tenantflow/<ns>/` that cannot be deployed to, sorted.
    pub skipped: Vec<SkippedTenant>,
    /// The pointer of every tenant in `tenants`.
    pub pointers: BTreeMap<Namespace, ActivePointer>,
}

/// Every tenant of this deployment ([`Settings::owns`]) with parameters under `/tenantflow/<ns>/`.
/// A tenant is deployable when `/tenantflow/<ns>/db` holds a pointer `{generation, instanceId,
/// release, …}` naming the instance `<ns>-<generation>`; any other tenant is skipped with what it
/// lacks (an existing fleet needs exactly this to start: see the README, "Deploying with SAM").
pub async fn discover<P: Parameters + ?Sized>(
    params: &P,
    settings: &Settings,
) -> Result<Discovery, StepError> {
    let mut seen: BTreeMap<Namespace, (Option<String>, BTreeSet<String>)> = BTreeMap::new();
    for p in params.list(&format!("{SSM_ROOT}/")).await? {
        let Some((ns, leaf)) = p
            .name
            .strip_prefix(SSM_ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        let Ok(ns) = Namespace::parse(ns) else {
            continue;
        };
        if !settings.owns(&ns) {
            continue;
        }
        let entry = seen.entry(ns).or_default();
        if leaf == "db" {
            entry.0 = Some(p.value);
        } else {
            entry.1.insert(leaf.to_string());
        }
    }
    let mut out = Discovery::default();
    for (ns, (pointer, others)) in seen {
        let path = ns.paths().pointer;
        let reason = match pointer {
            None => Some(format!(
                "no active pointer {path} (found only {}): write {{\"generation\": \"<YYYYMMDDhhmmss>\", \
                 \"instanceId\": \"{ns}-<YYYYMMDDhhmmss>\", \"release\": \"<release id>\"}} there",
                others
                    .iter()
                    .map(|l| format!("{SSM_ROOT}/{ns}/{l}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(value) => match pointer_problem(&ns, &path, &value) {
                Ok(p) => {
                    out.pointers.insert(ns.clone(), p);
                    None
                }
                Err(reason) => Some(reason),
            },
        };
        match reason {
            None => out.tenants.push(ns),
            Some(reason) => out.skipped.push(SkippedTenant { tenant: ns, reason }),
        }
    }
    Ok(out)
}

/// The tenant's pointer, or what is wrong with its value. Public so that `tenantflow aws adopt`
/// refuses exactly the pointers discovery would skip.
///
/// The pointer names either a generation of `ns` (`<ns>-<generation>`, agreeing with its
/// `generation`) or an adopted instance, one under any other name that is not a generation of
/// another tenant. An adopted instance must carry `tenantflow:namespace=<ns>` (what `adopt` tags):
/// discovery sees only the pointer, so the snapshot step checks the tag before it copies the
/// instance ([`crate::steps::snapshot`]), and teardown never deletes an instance without it.
pub fn pointer_problem(ns: &Namespace, path: &str, value: &str) -> Result<ActivePointer, String> {
    let p: ActivePointer = match serde_json::from_str(value) {
        Ok(p) => p,
        Err(e) => {
            return Err(format!(
                "{path} is not a pointer {{\"generation\", \"instanceId\", \"release\"}}: {e}"
            ))
        }
    };
    match p.instance_id.split_generation() {
        None => Ok(p),
        Some((n, ts)) if n == *ns && ts == p.generation => Ok(p),
        Some((n, ts)) if n == *ns => Err(format!(
            "{path} names instance {} but generation {}: they must agree ({ns}-{ts})",
            p.instance_id, p.generation
        )),
        Some((other, _)) => Err(format!(
            "{path} names instance {}, a generation of tenant {other}: each tenant's pointer names \
             its own database (a generation {ns}-<YYYYMMDDhhmmss>, or an instance adopted with \
             `tenantflow aws adopt`)",
            p.instance_id
        )),
    }
}

/// Manual snapshots this run adds for good: with `retention` > 0, a tenant's new snapshot
/// survives its teardown while the tenant keeps fewer than `retention` (teardown prunes beyond
/// it), so each such tenant adds one. The account's snapshots are listed only when that could
/// matter, i.e. when `free` does not cover one more snapshot for every tenant plus `concurrency`.
async fn snapshots_kept_for_good<D: Databases + ?Sized>(
    dbs: &D,
    settings: &Settings,
    tenants: &[Namespace],
    retention: u32,
    free: u32,
    concurrency: u32,
) -> Result<u32, StepError> {
    let n = u32::try_from(tenants.len()).unwrap_or(u32::MAX);
    if retention == 0 || tenants.is_empty() || free >= n.saturating_add(concurrency) {
        return Ok(0);
    }
    let prefix = settings
        .namespace
        .as_ref()
        .map(|ns| format!("{ns}-"))
        .unwrap_or_default();
    let mut held: BTreeMap<Namespace, u32> = BTreeMap::new();
    for s in dbs.list_snapshots(&prefix).await? {
        if let Some((ns, _)) = s.id.split_generation() {
            if super::tenant::tenant_owns(&s.tags, &ns) {
                *held.entry(ns).or_default() += 1;
            }
        }
    }
    Ok(tenants
        .iter()
        .filter(|t| held.get(*t).copied().unwrap_or(0) < retention)
        .count() as u32)
}

async fn put_items<O: Objects + ?Sized>(
    objects: &O,
    bucket: &str,
    key: &str,
    tenants: &[Namespace],
) -> Result<(), StepError> {
    let items: Vec<TenantItem> = tenants
        .iter()
        .map(|t| TenantItem { tenant: t.clone() })
        .collect();
    let body = serde_json::to_vec(&items)
        .map_err(|e| StepError::Internal(format!("serialize tenant list: {e}")))?;
    objects.put(bucket, key, &body).await
}

#[cfg(test)]
mod tests {
    use super::fixtures::{input, planned, tenant, world, BUCKET, RUN};
    use super::*;
    use crate::testing::{FakeWorld, Forbidden};
    use serde_json::json;

    fn items(w: &FakeWorld, key: &str) -> Vec<String> {
        let body = w.objects.body(BUCKET, key).unwrap_or_default();
        let v: Vec<TenantItem> = serde_json::from_slice(&body).unwrap();
        v.into_iter().map(|i| i.tenant.to_string()).collect()
    }

    async fn plan_err(w: &FakeWorld, overrides: Value) -> StepError {
        plan(
            &*w.objects,
            &*w.params,
            &*w.db,
            &w.settings,
            input(overrides),
        )
        .await
        .unwrap_err()
    }

    fn field(e: &StepError) -> &str {
        match e {
            StepError::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn plans_a_canary_and_a_main_wave_in_s3() {
        let w = world(
            5,
            json!({"waves": {"canaryCount": 2, "maxFailurePercent": 20}}),
        );
        let p = planned(&w, json!({})).await;
        assert_eq!(p.tenant_count, 5);
        assert_eq!(p.run.name, RUN);
        assert_eq!(p.run.generation.as_string(), "20261103101500");
        assert_eq!(p.release.prefix, "releases/r1/");
        assert_eq!(p.max_failure_percent, 20.0);
        assert_eq!(p.wave_count, 2);
        assert_eq!(p.result_prefix, format!("runs/{RUN}/results"));
        let names: Vec<(&str, u64)> = p.waves.iter().map(|w| (w.name.as_str(), w.count)).collect();
        assert_eq!(names, [("canary", 2), ("main", 3)]);
        assert_eq!(items(&w, &p.waves[0].key), [tenant(0), tenant(1)]);
        assert_eq!(
            items(&w, &p.waves[1].key),
            [tenant(2), tenant(3), tenant(4)]
        );
        assert_eq!(items(&w, &p.all_tenants.key).len(), 5);
        assert!(p
            .waves
            .iter()
            .all(|w| w.tolerated_failure_percentage == 100.0));
        // min(default cap 10, build concurrency 20, instance headroom 40, snapshot headroom 100)
        assert_eq!(p.max_concurrency, 10);
    }

    #[tokio::test]
    async fn concurrency_is_the_smallest_headroom() {
        let w = world(3, json!({"maxConcurrency": 8}));
        assert_eq!(planned(&w, json!({})).await.max_concurrency, 8);
        assert_eq!(
            planned(&w, json!({"maxConcurrency": 4}))
                .await
                .max_concurrency,
            4
        );
        w.db.headroom.lock().unwrap().instances = 2;
        assert_eq!(planned(&w, json!({})).await.max_concurrency, 2);
        w.db.headroom.lock().unwrap().instances = 0;
        let before = w.log().writes().len();
        assert_eq!(
            plan_err(&w, json!({})).await.asl_name(),
            "Tenantflow.QuotaExceeded"
        );
        assert_eq!(
            w.log().writes().len(),
            before,
            "nothing written without headroom"
        );
    }

    #[tokio::test]
    async fn the_plan_says_which_limit_binds_its_concurrency() {
        let w = world(3, json!({"maxConcurrency": 8}));
        let c = planned(&w, json!({})).await.concurrency.unwrap();
        assert_eq!((c.cap, c.binding.as_str()), (8, "cap"));
        w.db.headroom.lock().unwrap().instances = 2;
        let p = planned(&w, json!({})).await;
        assert_eq!(p.max_concurrency, 2);
        assert_eq!(p.concurrency.unwrap().binding, "instances");
    }

    #[tokio::test]
    async fn a_rehearsal_has_one_phase_no_freeze_and_keeps_no_snapshot() {
        let w = world(
            4,
            json!({"waves": {"canaryCount": 2}, "snapshotRetention": 3, "maxConcurrency": 50}),
        );
        // Room for the run's snapshots only if none is kept for good.
        w.db.headroom.lock().unwrap().snapshots = 3;
        let p = planned(&w, json!({"fleet": "rehearse"})).await;
        assert_eq!(p.fleet, FleetMode::Rehearse);
        assert_eq!(p.release.fleet, FleetMode::Rehearse);
        assert!(!p.release.write_freeze, "a rehearsal never freezes writes");
        assert!(p.waves.is_empty());
        assert_eq!(p.tenant_count, 4);
        let c = p.concurrency.unwrap();
        assert_eq!((c.snapshots_kept, p.max_concurrency), (0, 3));
        assert_eq!(
            field(&plan_err(&w, json!({"fleet": "rehearse", "strategy": "in-place"})).await),
            "fleet"
        );
    }

    #[tokio::test]
    async fn selection_by_globs_or_list() {
        let w = world(
            4,
            json!({"tenants": {"include": ["c00[0-2]-*"], "exclude": ["c001-*"]}}),
        );
        let p = planned(&w, json!({})).await;
        assert_eq!(items(&w, &p.all_tenants.key), [tenant(0), tenant(2)]);

        let w = world(4, json!({"tenants": {"tenants": [tenant(3), tenant(1)]}}));
        let p = planned(&w, json!({})).await;
        assert_eq!(items(&w, &p.all_tenants.key), [tenant(1), tenant(3)]);

        let w = world(2, json!({"tenants": {"tenants": ["zz-app-prod"]}}));
        assert_eq!(
            field(&plan_err(&w, json!({})).await),
            "manifest.tenants.tenants[0]"
        );
    }

    #[tokio::test]
    async fn canary_percent_rounds_up_and_all_or_nothing_has_no_waves() {
        let w = world(10, json!({"waves": {"canaryPercent": 15}}));
        let p = planned(&w, json!({})).await;
        assert_eq!(p.waves[0].count, 2);
        let p = planned(&w, json!({"canaryCount": 10})).await;
        assert_eq!(p.wave_count, 1);
        assert_eq!(p.waves[0].name, "canary");
        let p = planned(&w, json!({"fleet": "all-or-nothing"})).await;
        assert_eq!((p.wave_count, p.all_tenants.count), (0, 10));
        assert_eq!(p.fleet, FleetMode::AllOrNothing);
    }

    #[tokio::test]
    async fn no_tenants_is_an_empty_plan() {
        let w = world(0, json!({}));
        let p = planned(&w, json!({})).await;
        assert_eq!((p.tenant_count, p.wave_count), (0, 0));
    }

    #[tokio::test]
    async fn bad_input_is_rejected_before_any_write() {
        let cases: [(Value, Value, &str); 8] = [
            (
                json!({"scripts": [{"name": "V1__points.sql", "sha256": "0".repeat(64)}]}),
                json!({}),
                "manifest.scripts[0].sha256",
            ),
            (
                json!({"scripts": [{"name": "../V1__x.sql", "sha256": "0".repeat(64)}]}),
                json!({}),
                "manifest.scripts[0].name",
            ),
            (json!({"surprise": true}), json!({}), "manifest"),
            (
                json!({}),
                json!({"fleet": "all-or-nothing", "strategy": "in-place"}),
                "fleet",
            ),
            (json!({}), json!({"strategy": "promote"}), "sourceSnapshot"),
            (
                json!({}),
                json!({"maxConcurrency": 0}),
                "overrides.maxConcurrency",
            ),
            (
                json!({}),
                json!({"maxFailurePercent": 100.5}),
                "overrides.maxFailurePercent",
            ),
            (
                json!({}),
                json!({"maxFailurePercent": -1}),
                "overrides.maxFailurePercent",
            ),
        ];
        for (extra, overrides, expected) in cases {
            let w = world(2, extra);
            let e = plan_err(&w, overrides).await;
            assert!(field(&e).starts_with(expected), "{e}");
            assert!(w.log().writes().is_empty(), "{:?}", w.log().writes());
        }
        let w = world(2, json!({"release": "r2"}));
        assert_eq!(field(&plan_err(&w, json!({})).await), "manifest.release");

        // A script Flyway cannot read (not UTF-8, or with a NUL byte) is refused by the plan too.
        for bad in [
            &b"CREATE TABLE t (x text DEFAULT '\xff');"[..],
            b"SELECT 1;\x00",
        ] {
            let sum = hex::encode(Sha256::digest(bad));
            let w = world(
                2,
                json!({"scripts": [{"name": "V1__points.sql", "sha256": sum}]}),
            );
            w.objects.seed(BUCKET, "releases/r1/V1__points.sql", bad);
            let e = plan_err(&w, json!({})).await;
            assert_eq!(field(&e), "manifest.scripts[0]", "{e}");
            assert!(w.log().writes().is_empty(), "{:?}", w.log().writes());
        }
    }

    /// The migration build cannot read JSON (no `jq` in the Flyway image): it checks the scripts
    /// against `SHA256SUMS`. A release whose `SHA256SUMS` is missing or disagrees with the manifest
    /// is refused before any write, and the plan carries the digest of the one it verified.
    #[tokio::test]
    async fn sha256sums_must_agree_with_the_manifest() {
        let w = world(2, json!({}));
        let p = planned(&w, json!({})).await;
        let sums = w
            .objects
            .body(BUCKET, "releases/r1/SHA256SUMS")
            .expect("sums");
        assert_eq!(
            p.release.sha256sums.as_deref(),
            Some(hex::encode(Sha256::digest(&sums)).as_str())
        );

        let sql_sum = hex::encode(Sha256::digest(super::fixtures::SQL));
        for (body, why) in [
            (None, "does not exist"),
            (Some(String::new()), "does not list"),
            (
                Some(format!("{}  V1__points.sql\n", "0".repeat(64))),
                "the manifest says",
            ),
            (
                Some(format!(
                    "{sql_sum}  V1__points.sql\n{sql_sum}  V2__sneaky.sql\n"
                )),
                "does not name",
            ),
        ] {
            let w = world(2, json!({}));
            match &body {
                Some(b) => w
                    .objects
                    .seed(BUCKET, "releases/r1/SHA256SUMS", b.as_bytes()),
                None => w.objects.remove(BUCKET, "releases/r1/SHA256SUMS"),
            }
            let before = w.log().writes();
            match plan_err(&w, json!({})).await {
                StepError::InvalidInput { field, message } => {
                    assert_eq!(field, "SHA256SUMS");
                    assert!(message.contains(why), "{message}");
                }
                other => panic!("{body:?}: {other:?}"),
            }
            assert_eq!(w.log().writes(), before, "nothing written");
        }
    }

    /// An existing fleet starts with one pointer per tenant naming its database: a generation
    /// `<ns>-<timestamp>` or an adopted instance under another name. A tenant that has parameters
    /// but no usable pointer is skipped, and the plan says exactly what it lacks (S3
    /// `runs/<run>/skipped.json`); an explicit list naming it is refused with that.
    #[tokio::test]
    async fn skipped_tenants_are_named_with_what_they_lack() {
        let w = world(2, json!({}));
        let svc = json!({"cluster": "tenantflow", "service": "s"}).to_string();
        w.params
            .seed("/tenantflow/nopointer-app-prod/service", &svc);
        w.params.seed(
            "/tenantflow/legacy-app-prod/db",
            &json!({"generation": "20260101000000", "instanceId": "other-app-prod-20260101000000", "release": "r0"})
                .to_string(),
        );
        w.params.seed(
            "/tenantflow/garbled-app-prod/db",
            "legacy-db.x.rds.amazonaws.com",
        );
        w.params.seed(
            "/tenantflow/skewed-app-prod/db",
            &json!({"generation": "20260101000000", "instanceId": "skewed-app-prod-20250101000000", "release": "r0"})
                .to_string(),
        );
        let p = planned(&w, json!({})).await;
        assert_eq!(p.tenant_count, 2, "only the tenants with valid pointers");
        let skipped = p.skipped.expect("skipped list");
        assert_eq!(skipped.count, 4);
        assert_eq!(skipped.key, format!("runs/{RUN}/skipped.json"));
        let body = w.objects.body(BUCKET, &skipped.key).expect("written");
        let list: Vec<SkippedTenant> = serde_json::from_slice(&body).expect("json");
        let reason = |t: &str| {
            list.iter()
                .find(|s| s.tenant.as_str() == t)
                .map(|s| s.reason.clone())
                .unwrap_or_else(|| panic!("{t} not skipped: {list:?}"))
        };
        let r = reason("nopointer-app-prod");
        assert!(
            r.contains("no active pointer /tenantflow/nopointer-app-prod/db"),
            "{r}"
        );
        assert!(r.contains("/tenantflow/nopointer-app-prod/service"), "{r}");
        let r = reason("legacy-app-prod");
        assert!(
            r.contains("other-app-prod-20260101000000")
                && r.contains("a generation of tenant other-app-prod")
                && r.contains("legacy-app-prod-<YYYYMMDDhhmmss>"),
            "{r}"
        );
        let r = reason("garbled-app-prod");
        assert!(r.contains("is not a pointer"), "{r}");
        let r = reason("skewed-app-prod");
        assert!(r.contains("must agree"), "{r}");

        // Globs that exclude a skipped tenant do not report it.
        let w2 = world(
            2,
            json!({"tenants": {"exclude": ["legacy-*", "nopointer-*", "garbled-*", "skewed-*"]}}),
        );
        w2.params.seed("/tenantflow/legacy-app-prod/service", &svc);
        assert_eq!(planned(&w2, json!({})).await.skipped, None);

        // An explicit list naming a skipped tenant is refused with the reason.
        let w3 = world(2, json!({"tenants": {"tenants": ["legacy-app-prod"]}}));
        w3.params.seed("/tenantflow/legacy-app-prod/service", &svc);
        match plan_err(&w3, json!({})).await {
            StepError::InvalidInput { field, message } => {
                assert_eq!(field, "manifest.tenants.tenants[0]");
                assert!(message.contains("no active pointer"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A pointer naming an instance under any other name (one `tenantflow aws adopt` took over
    /// without renaming it) is a tenant like any other: discovery keeps it, with that pointer.
    #[tokio::test]
    async fn a_pointer_naming_an_adopted_instance_is_discovered() {
        let w = world(2, json!({}));
        w.params.seed(
            "/tenantflow/legacy-app-prod/db",
            &json!({"generation": "20250101000000", "instanceId": "legacy-acme-db", "release": "r0"})
                .to_string(),
        );
        let p = planned(&w, json!({})).await;
        assert_eq!(p.tenant_count, 3, "the adopted tenant is planned too");
        assert_eq!(p.skipped, None);
        let ns = Namespace::parse("legacy-app-prod").unwrap();
        let got = pointer_problem(
            &ns,
            "/tenantflow/legacy-app-prod/db",
            &json!({"generation": "20250101000000", "instanceId": "legacy-acme-db", "release": "r0"})
                .to_string(),
        )
        .expect("an adopted instance's pointer");
        assert_eq!(got.instance_id.as_str(), "legacy-acme-db");
    }

    /// Each tenant keeping fewer than `snapshotRetention` snapshots keeps this run's for good (the
    /// teardown prunes only beyond retention): with the default quota of 100 manual snapshots and
    /// retention 3, about 33 tenants fill it for good. The plan counts those in its headroom.
    #[tokio::test]
    async fn snapshots_kept_for_good_count_against_the_snapshot_headroom() {
        // 40 tenants without snapshots yet: this run keeps 40 more.
        let w = world(40, json!({}));
        w.db.headroom.lock().unwrap().snapshots = 45;
        assert_eq!(planned(&w, json!({})).await.max_concurrency, 5);
        w.db.headroom.lock().unwrap().snapshots = 40;
        let before = w.log().writes().len();
        match plan_err(&w, json!({})).await {
            StepError::QuotaExceeded(m) => {
                assert!(m.contains("keeps 40 for good"), "{m}");
                assert!(m.contains("120 manual snapshots at steady state"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.log().writes().len(), before, "nothing written");

        // Tenants already at their retention add nothing for good; one below it adds one.
        let w = world(40, json!({"snapshotRetention": 2}));
        for i in 0..40 {
            let held = if i == 0 { 1 } else { 2 };
            for k in 0..held {
                let id =
                    SnapshotId::parse(&format!("{}-2026010{}000000", tenant(i), k + 1)).unwrap();
                let tags = [(crate::names::tags::NAMESPACE.to_string(), tenant(i))]
                    .into_iter()
                    .collect();
                w.db.add_snapshot(crate::ports::DbSnapshot {
                    id,
                    source_instance: String::new(),
                    status: "available".into(),
                    created_at: None,
                    tags,
                });
            }
        }
        w.db.headroom.lock().unwrap().snapshots = 8;
        assert_eq!(planned(&w, json!({})).await.max_concurrency, 7);

        // Retention 0 keeps nothing; promote makes no snapshot at all.
        let w = world(40, json!({"snapshotRetention": 0}));
        w.db.headroom.lock().unwrap().snapshots = 3;
        assert_eq!(planned(&w, json!({})).await.max_concurrency, 3);
    }

    #[tokio::test]
    async fn a_bad_key_or_start_time_touches_no_port() {
        let ports = Forbidden::ports();
        let mut bad = serde_json::to_value(input(json!({}))).unwrap();
        bad["input"]["key"] = json!("releases/../manifest.json");
        match run(&ports, bad).await {
            Err(StepError::InvalidInput { field, .. }) => assert_eq!(field, "key"),
            other => panic!("{other:?}"),
        }
        let mut bad = serde_json::to_value(input(json!({}))).unwrap();
        bad["execution"]["startTime"] = json!("yesterday");
        match run(&ports, bad).await {
            Err(StepError::InvalidInput { field, .. }) => assert_eq!(field, "execution.startTime"),
            other => panic!("{other:?}"),
        }
        let mut bad = serde_json::to_value(input(json!({}))).unwrap();
        bad["input"]["overrides"] = json!({"canary": 3});
        assert_eq!(
            run(&ports, bad).await.unwrap_err().asl_name(),
            "Tenantflow.InvalidInput"
        );
    }

    /// Puts `scripts` (the digest of release `release`'s script set, as a flip writes it) into
    /// tenant `i`'s pointer.
    fn record(w: &FakeWorld, i: usize, release: &str, digest: &str) {
        let path = format!("/tenantflow/{}/db", tenant(i));
        let mut p: ActivePointer =
            serde_json::from_str(&w.params.value(&path).expect("pointer")).unwrap();
        p.release = release.into();
        p.scripts = Some(digest.into());
        w.params.seed(&path, &serde_json::to_string(&p).unwrap());
    }

    fn manifest_of(w: &FakeWorld, release: &str) -> Manifest {
        let body = w
            .objects
            .body(BUCKET, &format!("releases/{release}/manifest.json"))
            .expect("manifest");
        Manifest::parse(&body).unwrap()
    }

    fn settled(w: &FakeWorld, p: &Plan) -> Vec<TenantResult> {
        let s = p.settled.as_ref().expect("settled list");
        serde_json::from_slice(&w.objects.body(BUCKET, &s.key).expect("written")).unwrap()
    }

    /// Publishes a release `r2` holding r1's script plus `V2__more.sql`.
    fn publish_r2(w: &FakeWorld) -> Manifest {
        let more = b"ALTER TABLE points ADD COLUMN n int;\n";
        let m = json!({"release": "r2", "scripts": [
            {"name": "V1__points.sql", "sha256": hex::encode(Sha256::digest(super::fixtures::SQL))},
            {"name": "V2__more.sql", "sha256": hex::encode(Sha256::digest(more))}]});
        w.objects.seed(
            BUCKET,
            "releases/r2/manifest.json",
            m.to_string().as_bytes(),
        );
        Manifest::parse(m.to_string().as_bytes()).unwrap()
    }

    /// A tenant whose pointer names this release with its script set is up to date: it never
    /// enters a wave, and the plan writes its result; one without a record is deployed.
    #[tokio::test]
    async fn tenants_on_this_release_are_up_to_date() {
        let w = world(4, json!({"waves": {"canaryCount": 1}}));
        let digest = manifest_of(&w, "r1").script_set_digest().unwrap();
        for i in [0, 2] {
            record(&w, i, "r1", &digest);
        }
        // Same release id, other scripts: not up to date (the id alone says nothing).
        record(&w, 3, "r1", &"0".repeat(64));
        let p = planned(&w, json!({})).await;
        assert_eq!(p.tenant_count, 2);
        assert_eq!(items(&w, &p.all_tenants.key), [tenant(1), tenant(3)]);
        assert_eq!(items(&w, &p.waves[0].key), [tenant(1)]);
        assert_eq!(p.release.scripts.as_deref(), Some(digest.as_str()));
        let s = settled(&w, &p);
        let names: Vec<(&str, Outcome)> =
            s.iter().map(|r| (r.tenant.as_str(), r.outcome)).collect();
        assert_eq!(
            names,
            [
                (tenant(0).as_str(), Outcome::UpToDate),
                (tenant(2).as_str(), Outcome::UpToDate)
            ]
        );
        assert_eq!(s[0].from_generation.as_deref(), Some("20260101000000"));
        assert_eq!(s[0].error, None);

        // Everyone up to date: an empty plan, even without any headroom.
        for i in [1, 3] {
            record(&w, i, "r1", &digest);
        }
        w.db.headroom.lock().unwrap().instances = 0;
        let p = planned(&w, json!({"fleet": "all-or-nothing"})).await;
        assert_eq!((p.tenant_count, p.wave_count), (0, 0));
        assert_eq!(settled(&w, &p).len(), 4);
    }

    /// A tenant whose recorded script set holds a versioned script this release lacks is newer:
    /// skipped with `Tenantflow.Newer` in independent mode, and the all-or-nothing plan refuses
    /// before writing anything. Release ids are never compared for order.
    #[tokio::test]
    async fn newer_tenants_are_refused_never_downgraded() {
        let w = world(3, json!({}));
        let r2 = publish_r2(&w);
        record(&w, 1, "r2", &r2.script_set_digest().unwrap());
        // A recorded release whose manifest is gone cannot be told newer: it is deployed.
        record(&w, 2, "gone", &"1".repeat(64));
        let p = planned(&w, json!({})).await;
        assert_eq!(items(&w, &p.all_tenants.key), [tenant(0), tenant(2)]);
        let s = settled(&w, &p);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].tenant, tenant(1));
        assert_eq!(s[0].outcome, Outcome::Skipped);
        assert_eq!(s[0].error.as_deref(), Some("Tenantflow.Newer"));
        let cause = s[0].cause.clone().unwrap();
        assert!(cause.contains("V2") && cause.contains("r2"), "{cause}");

        let before = w.log().writes().len();
        let e = plan_err(&w, json!({"fleet": "all-or-nothing"})).await;
        assert_eq!(e.asl_name(), "Tenantflow.Newer");
        assert!(e.to_string().contains(&tenant(1)), "{e}");
        assert_eq!(w.log().writes().len(), before, "nothing written");
    }

    /// A run limited to a tenant list (by reference, `tenantList`) plans exactly those tenants.
    #[tokio::test]
    async fn a_tenant_list_limits_the_run() {
        let w = world(5, json!({"tenants": {"exclude": ["c004-*"]}}));
        let list = |names: Value| {
            w.objects.seed(
                BUCKET,
                "runs/old/retry-tenants.json",
                names.to_string().as_bytes(),
            );
        };
        let with_list = |o: Value| {
            let mut i = input(o);
            i.input.tenant_list = Some("runs/old/retry-tenants.json".into());
            i
        };
        list(json!([tenant(3), tenant(1)]));
        let p = plan(
            &*w.objects,
            &*w.params,
            &*w.db,
            &w.settings,
            with_list(json!({})),
        )
        .await
        .unwrap();
        assert_eq!(items(&w, &p.all_tenants.key), [tenant(1), tenant(3)]);

        for (names, expected) in [
            (json!([tenant(4)]), "tenantList[0]"),
            (json!([tenant(1), "zz-app-prod"]), "tenantList[1]"),
            (json!({"not": "a list"}), "tenantList"),
        ] {
            list(names);
            let e = plan(
                &*w.objects,
                &*w.params,
                &*w.db,
                &w.settings,
                with_list(json!({})),
            )
            .await
            .unwrap_err();
            assert_eq!(field(&e), expected, "{e}");
        }
    }

    /// The "no headroom" error names what binds and where to raise it: the deployment's own
    /// place when it has one (the local state's settings file), else the AWS quotas.
    #[tokio::test]
    async fn no_headroom_says_what_binds_and_where() {
        let mut w = world(3, json!({}));
        w.db.headroom.lock().unwrap().instances = 0;
        match plan_err(&w, json!({})).await {
            StepError::QuotaExceeded(m) => {
                assert!(m.contains("no DB instance free"), "{m}");
                assert!(m.contains("Service Quotas"), "{m}");
                assert!(!m.contains("no manual snapshot free"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        w.settings.quota_hint = Some("limits in /s/tenantflow-state.json".into());
        match plan_err(&w, json!({})).await {
            StepError::QuotaExceeded(m) => {
                assert!(
                    m.contains("raise it in limits in /s/tenantflow-state.json"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
