//! `list-tenants`: plans a run (the first state of the release state machine).
//!
//! Reads and validates the manifest and every script's sha256, discovers the tenants from their
//! active pointers, applies the selection, splits the waves, sizes `maxConcurrency` from quota
//! headroom, and writes the tenant lists to S3 (`runs/<run>/waves/<n>.json`, `runs/<run>/tenants.json`)
//! so that no tenant list ever flows through a state payload. Everything is validated before the
//! first write.

mod select;

#[cfg(test)]
pub(crate) mod fixtures;

use super::{parse_input, Ports, Settings};
use crate::error::StepError;
use crate::manifest::{release_prefix, validate_release_id, FleetMode, Manifest, Strategy};
use crate::model::{ReleaseRef, RunContext};
use crate::names::{GenerationTs, Namespace, SnapshotId, SsmPaths, SSM_ROOT};
use crate::ports::{Databases, Objects, Parameters};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use select::select_tenants;

/// Every Distributed Map of the run tolerates 100 % failed children. A child rolls back on its
/// own and ends SUCCEEDED with its outcome, so a FAILED child is one that broke outside its own
/// rollback; a lower threshold would make the Map abort the children still running, and an aborted
/// child never rolls back. Wave stops are decided from counted outcomes by `report`.
pub const TOLERATED_FAILURE_PERCENTAGE: f64 = 100.0;

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
        ..
    } = input.input;
    let release_id = release_id_of_key(&key)?.to_string();
    let run = run_context(&input.execution)?;
    let manifest = load_manifest(objects, &bucket, &key, &release_id).await?;

    let strategy = overrides.strategy.unwrap_or(manifest.strategy);
    let fleet = overrides.fleet.unwrap_or(manifest.fleet);
    if strategy == Strategy::InPlace && fleet == FleetMode::AllOrNothing {
        return Err(StepError::invalid(
            "fleet",
            "strategy in-place cannot run all-or-nothing: migrating in place serves the new version before the commit phase",
        ));
    }
    if strategy == Strategy::BlueGreen && !manifest.write_freeze {
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
    let max_failure_percent = overrides
        .max_failure_percent
        .unwrap_or(manifest.waves.max_failure_percent);
    if !(0.0..=100.0).contains(&max_failure_percent) {
        return Err(StepError::invalid(
            "maxFailurePercent",
            format!("{max_failure_percent} is not between 0 and 100"),
        ));
    }

    let discovered = discover_tenants(params, settings).await?;
    let tenants = select_tenants(&discovered, &manifest.tenants)?;
    let n = tenants.len() as u64;

    let headroom = dbs.headroom().await?;
    let cap = overrides
        .max_concurrency
        .or(manifest.max_concurrency)
        .unwrap_or(settings.default_max_concurrency);
    let mut max_concurrency = cap.min(settings.build_concurrency).min(headroom.instances);
    if strategy != Strategy::Promote {
        max_concurrency = max_concurrency.min(headroom.snapshots);
    }
    if n > 0 && max_concurrency == 0 {
        return Err(StepError::QuotaExceeded(format!(
            "no headroom for even one tenant: instances {}, manual snapshots {}, builds {}, cap {cap}",
            headroom.instances, headroom.snapshots, settings.build_concurrency
        )));
    }
    let max_concurrency = max_concurrency.max(1);

    let prefix = run_prefix(&run.name);
    let all_tenants = ItemsRef {
        bucket: bucket.clone(),
        key: format!("{prefix}tenants.json"),
        count: n,
    };
    let canary = match fleet {
        FleetMode::AllOrNothing => 0,
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
            write_freeze: manifest.write_freeze,
            bake_seconds: manifest.bake_seconds,
            snapshot_retention: manifest.snapshot_retention,
            source_snapshot,
            health_check: manifest.health_check.clone(),
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
        run,
    })
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

/// Reads the manifest, checks it names this release, and checks every script's sha256.
async fn load_manifest<O: Objects + ?Sized>(
    objects: &O,
    bucket: &str,
    key: &str,
    release_id: &str,
) -> Result<Manifest, StepError> {
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
    Ok(manifest)
}

/// Every tenant of this deployment ([`Settings::owns`]) that has an active pointer
/// `/tenantflow/<ns>/db`, sorted.
pub async fn discover_tenants<P: Parameters + ?Sized>(
    params: &P,
    settings: &Settings,
) -> Result<Vec<Namespace>, StepError> {
    let mut out: Vec<Namespace> = params
        .list(&format!("{SSM_ROOT}/"))
        .await?
        .iter()
        .filter_map(|p| SsmPaths::tenant_of_pointer(&p.name))
        .filter(|ns| settings.owns(ns))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
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
        let cases: [(Value, Value, &str); 5] = [
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
        ];
        for (extra, overrides, expected) in cases {
            let w = world(2, extra);
            let e = plan_err(&w, overrides).await;
            assert!(field(&e).starts_with(expected), "{e}");
            assert!(w.log().writes().is_empty(), "{:?}", w.log().writes());
        }
        let w = world(2, json!({"release": "r2"}));
        assert_eq!(field(&plan_err(&w, json!({})).await), "manifest.release");
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
}
