//! `janitor`: finds what runs left behind, daily.
//!
//! - **Stale locks:** `/tenantflow/<ns>/lock` whose holder execution is no longer RUNNING (or no
//!   longer exists). They are released unless `releaseStaleLocks` is false.
//! - **Orphan instances:** tenantflow-tagged instances that no active pointer names, whose run is
//!   not running, and that are not already being deleted.
//! - **Orphan snapshots:** tenantflow-tagged snapshots whose run is not running and that are newer
//!   than the tenant's active generation, i.e. they belong to a generation that never went live
//!   (snapshots of generations that did go live are kept by the retention policy).
//!
//! Orphans are only reported, never deleted: deciding that a database is garbage is a person's call.

use super::{parse_input, Ports, Settings};
use crate::error::StepError;
use crate::model::ActivePointer;
use crate::names::{tags, GenerationTs, Namespace, SSM_ROOT};
use crate::ports::{Databases, Parameters, Tags, Workflows};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Input of `janitor` (the scheduler sends `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JanitorInput {
    #[serde(default = "yes")]
    pub release_stale_locks: bool,
}

fn yes() -> bool {
    true
}

/// A lock whose run is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleLock {
    pub tenant: String,
    pub holder: String,
    /// The holder's status (`FAILED`, `ABORTED`, …), or `MISSING`.
    pub status: String,
    pub released: bool,
}

/// Output of `janitor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JanitorReport {
    pub orphan_instances: Vec<String>,
    pub orphan_snapshots: Vec<String>,
    pub stale_locks: Vec<StaleLock>,
    /// Orphan instances + orphan snapshots: the metric the orphan alarm watches.
    pub orphan_count: u64,
}

/// Entry point used by [`super::dispatch`].
pub async fn run(ports: &Ports, input: Value) -> Result<JanitorReport, StepError> {
    let input: JanitorInput = if input.is_null() {
        JanitorInput {
            release_stale_locks: true,
        }
    } else {
        parse_input(input)?
    };
    let report = janitor(
        ports.parameters.as_ref(),
        ports.databases.as_ref(),
        ports.workflows.as_ref(),
        &ports.settings,
        &input,
    )
    .await?;
    tracing::info!(
        orphan_count = report.orphan_count,
        stale_locks = report.stale_locks.len(),
        "janitor finished"
    );
    Ok(report)
}

/// The execution ARN a lock value names: the ARN itself, or a JSON object with `executionArn`.
fn lock_holder(value: &str) -> String {
    serde_json::from_str::<Value>(value)
        .ok()
        .and_then(|v| {
            v.get("executionArn")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| value.trim().to_string())
}

/// See the module doc.
pub async fn janitor<P, D, W>(
    params: &P,
    dbs: &D,
    workflows: &W,
    settings: &Settings,
    input: &JanitorInput,
) -> Result<JanitorReport, StepError>
where
    P: Parameters + ?Sized,
    D: Databases + ?Sized,
    W: Workflows + ?Sized,
{
    let mut active: BTreeMap<Namespace, ActivePointer> = BTreeMap::new();
    let mut locks: Vec<(String, String, String)> = Vec::new();
    for p in params.list(&format!("{SSM_ROOT}/")).await? {
        let Some(rest) = p.name.strip_prefix(&format!("{SSM_ROOT}/")) else {
            continue;
        };
        let Some((ns, leaf)) = rest.split_once('/') else {
            continue;
        };
        let Ok(ns) = Namespace::parse(ns) else {
            continue;
        };
        if !settings.owns(&ns) {
            continue;
        }
        match leaf {
            // A pointer that does not parse protects nothing; teardown would refuse to act on it.
            "db" => {
                if let Ok(ptr) = serde_json::from_str::<ActivePointer>(&p.value) {
                    active.insert(ns, ptr);
                }
            }
            "lock" => locks.push((ns.to_string(), p.name.clone(), lock_holder(&p.value))),
            _ => {}
        }
    }

    // Runs known to be running, by ARN and by execution name (tags may hold either).
    let mut status_of: BTreeMap<String, String> = BTreeMap::new();
    let mut running_names: BTreeSet<String> = BTreeSet::new();
    let mut stale_locks = Vec::new();
    for (tenant, path, holder) in locks {
        let status = execution_status(workflows, &mut status_of, &holder).await?;
        if status == "RUNNING" {
            if let Some(name) = holder.rsplit(':').next() {
                running_names.insert(name.to_string());
            }
            continue;
        }
        let released = if input.release_stale_locks {
            params.delete(&path).await?;
            true
        } else {
            false
        };
        stale_locks.push(StaleLock {
            tenant,
            holder,
            status,
            released,
        });
    }

    let active_ids: BTreeSet<&str> = active.values().map(|p| p.instance_id.as_str()).collect();
    let mut orphan_instances = Vec::new();
    for inst in dbs.list_instances("").await? {
        if !owned(settings, &inst.tags) || active_ids.contains(inst.id.as_str()) {
            continue;
        }
        if inst.status == "deleting" {
            continue;
        }
        if run_is_running(workflows, &mut status_of, &running_names, &inst.tags).await? {
            continue;
        }
        orphan_instances.push(inst.id.to_string());
    }

    let mut orphan_snapshots = Vec::new();
    for snap in dbs.list_snapshots("").await? {
        if !owned(settings, &snap.tags) || snap.status == "deleting" {
            continue;
        }
        let Some((ns, ts)) = snap.id.split_generation() else {
            continue;
        };
        let live: Option<GenerationTs> = active.get(&ns).map(|p| p.generation);
        if live.is_some_and(|g| ts <= g) {
            continue;
        }
        if run_is_running(workflows, &mut status_of, &running_names, &snap.tags).await? {
            continue;
        }
        orphan_snapshots.push(snap.id.to_string());
    }
    orphan_instances.sort();
    orphan_snapshots.sort();
    Ok(JanitorReport {
        orphan_count: (orphan_instances.len() + orphan_snapshots.len()) as u64,
        orphan_instances,
        orphan_snapshots,
        stale_locks,
    })
}

/// Tagged by tenantflow for a tenant of this deployment.
fn owned(settings: &Settings, t: &Tags) -> bool {
    t.get(tags::NAMESPACE)
        .and_then(|ns| Namespace::parse(ns).ok())
        .is_some_and(|ns| settings.owns(&ns))
}

async fn execution_status<W: Workflows + ?Sized>(
    workflows: &W,
    cache: &mut BTreeMap<String, String>,
    arn: &str,
) -> Result<String, StepError> {
    if let Some(s) = cache.get(arn) {
        return Ok(s.clone());
    }
    let status = if arn.starts_with("arn:") {
        workflows
            .execution_status(arn)
            .await?
            .unwrap_or_else(|| "MISSING".to_string())
    } else {
        "MISSING".to_string()
    };
    cache.insert(arn.to_string(), status.clone());
    Ok(status)
}

/// Whether the run named by the `tenantflow:run` tag (an ARN or an execution name) is running.
async fn run_is_running<W: Workflows + ?Sized>(
    workflows: &W,
    cache: &mut BTreeMap<String, String>,
    running_names: &BTreeSet<String>,
    t: &Tags,
) -> Result<bool, StepError> {
    let Some(run) = t.get(tags::RUN) else {
        return Ok(false);
    };
    if run.starts_with("arn:") {
        return Ok(execution_status(workflows, cache, run).await? == "RUNNING");
    }
    Ok(running_names.contains(run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{InstanceId, SnapshotId};
    use crate::ports::{DbInstance, DbSnapshot};
    use crate::testing::FakeWorld;

    const DONE: &str = "arn:aws:states:eu-west-1:1:execution:tenantflow-release:r1-aaaa";
    const LIVE: &str = "arn:aws:states:eu-west-1:1:execution:tenantflow-release:r2-bbbb";

    fn run_tags(ns: &str, run: &str) -> Tags {
        [
            (tags::NAMESPACE, ns),
            (tags::RUN, run),
            (tags::ROLE, tags::ROLE_CANDIDATE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn candidate(w: &FakeWorld, id: &str, ns: &str, run: &str) {
        w.db.add_instance(DbInstance {
            id: InstanceId::parse(id).unwrap(),
            status: "available".into(),
            endpoint: String::new(),
            port: 5432,
            deletion_protection: false,
            tags: run_tags(ns, run),
        });
    }

    fn snapshot(w: &FakeWorld, id: &str, ns: &str, run: &str) {
        w.db.add_snapshot(DbSnapshot {
            id: SnapshotId::parse(id).unwrap(),
            source_instance: String::new(),
            status: "available".into(),
            created_at: None,
            tags: run_tags(ns, run),
        });
    }

    /// Tenant a: a failed run left its lock, a candidate and a snapshot; an old retained snapshot.
    /// Tenant b: a running run holds the lock and its candidate.
    fn world() -> FakeWorld {
        let w = FakeWorld::new();
        w.seed_tenant("a-app-prod", "20260101000000", "r0");
        w.seed_tenant("b-app-prod", "20260101000000", "r0");
        w.params.seed("/tenantflow/a-app-prod/lock", DONE);
        w.params.seed("/tenantflow/b-app-prod/lock", LIVE);
        w.workflows.set_status(DONE, "FAILED");
        w.workflows.set_status(LIVE, "RUNNING");
        candidate(&w, "a-app-prod-20261103101500", "a-app-prod", "r1-aaaa");
        snapshot(&w, "a-app-prod-20261103101500", "a-app-prod", "r1-aaaa");
        snapshot(&w, "a-app-prod-20251201000000", "a-app-prod", "r0-old");
        candidate(&w, "b-app-prod-20261103120000", "b-app-prod", "r2-bbbb");
        snapshot(&w, "b-app-prod-20261103120000", "b-app-prod", "r2-bbbb");
        w
    }

    #[tokio::test]
    async fn reports_orphans_and_releases_stale_locks() {
        let w = world();
        let input = JanitorInput {
            release_stale_locks: true,
        };
        let r = janitor(
            &*w.params,
            &*w.db,
            &*w.workflows,
            &Settings::default(),
            &input,
        )
        .await
        .unwrap();
        assert_eq!(r.orphan_instances, ["a-app-prod-20261103101500"]);
        assert_eq!(r.orphan_snapshots, ["a-app-prod-20261103101500"]);
        assert_eq!(r.orphan_count, 2);
        assert_eq!(
            r.stale_locks,
            [StaleLock {
                tenant: "a-app-prod".into(),
                holder: DONE.into(),
                status: "FAILED".into(),
                released: true
            }]
        );
        assert!(w.params.value("/tenantflow/a-app-prod/lock").is_none());
        assert_eq!(
            w.params.value("/tenantflow/b-app-prod/lock").as_deref(),
            Some(LIVE)
        );
        // Orphans are reported, never deleted; active generations are untouched.
        assert_eq!(w.db.instance_ids().len(), 4);
        assert_eq!(w.log().count("databases.delete"), 0);
    }

    #[tokio::test]
    async fn report_only_mode_keeps_the_locks() {
        let w = world();
        let input = JanitorInput {
            release_stale_locks: false,
        };
        let r = janitor(
            &*w.params,
            &*w.db,
            &*w.workflows,
            &Settings::default(),
            &input,
        )
        .await
        .unwrap();
        assert!(!r.stale_locks[0].released);
        assert!(w.log().writes().is_empty(), "{:?}", w.log().writes());
    }

    #[tokio::test]
    async fn a_lock_whose_execution_is_gone_is_stale_and_bad_input_is_rejected() {
        let w = FakeWorld::new();
        w.seed_tenant("a-app-prod", "20260101000000", "r0");
        w.params.seed(
            "/tenantflow/a-app-prod/lock",
            "arn:aws:states:eu-west-1:1:execution:x:gone",
        );
        let r = run(&w.ports_for(crate::steps::StepName::Janitor), Value::Null)
            .await
            .unwrap();
        assert_eq!(r.stale_locks[0].status, "MISSING");
        assert!(r.stale_locks[0].released);
        let e = run(
            &w.ports_for(crate::steps::StepName::Janitor),
            serde_json::json!({"dryRun": true}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.asl_name(), "Tenantflow.InvalidInput");
    }
}
