//! `janitor`: finds what runs left behind, daily.
//!
//! - **Stale locks:** tenant records whose lock holder execution is no longer RUNNING (or no
//!   longer exists). They are released unless `releaseStaleLocks` is false, with a write
//!   conditional on the stale holder still holding the lock (a run that took it meanwhile keeps it).
//!   A lock whose run journal shows the run got past taking it is reported but left to `recover`
//!   (the hourly sweep), which must settle the tenant (flip back, unfreeze) before releasing it.
//! - **Orphan instances and snapshots:** by the shared rule of [`crate::orphans`]. A run counts as
//!   running when Step Functions says its execution is RUNNING, or (for a run tag that holds an
//!   execution name) when a RUNNING lock holder has that name.
//!
//! Orphans are only reported, never deleted: deciding that a database is garbage is a person's call.

use super::{parse_input, Ports, Settings};
use crate::error::StepError;
use crate::model::ActivePointer;
use crate::names::{Namespace, SSM_ROOT};
use crate::orphans::{run_of, OrphanRule};
use crate::ports::{Databases, Parameters, Records, Workflows};
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
        ports.records.as_ref(),
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

/// See the module doc.
pub async fn janitor<P, R, D, W>(
    params: &P,
    records: &R,
    dbs: &D,
    workflows: &W,
    settings: &Settings,
    input: &JanitorInput,
) -> Result<JanitorReport, StepError>
where
    P: Parameters + ?Sized,
    R: Records + ?Sized,
    D: Databases + ?Sized,
    W: Workflows + ?Sized,
{
    let mut active: BTreeMap<Namespace, ActivePointer> = BTreeMap::new();
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
        // A pointer that does not parse protects nothing; teardown would refuse to act on it.
        if leaf == "db" {
            if let Ok(ptr) = serde_json::from_str::<ActivePointer>(&p.value) {
                active.insert(ns, ptr);
            }
        }
    }
    let mut locks: Vec<(Namespace, String, bool)> = Vec::new();
    for r in records.list_held().await? {
        let journaled = r.journal.state.is_some() && r.journal.aborted.is_none();
        if let Some(holder) = r.holder.filter(|_| settings.owns(&r.tenant)) {
            locks.push((r.tenant, holder, journaled));
        }
    }
    locks.sort();

    // Runs known to be running, by ARN and by execution name (tags may hold either).
    let mut status_of: BTreeMap<String, String> = BTreeMap::new();
    let mut running_names: BTreeSet<String> = BTreeSet::new();
    let mut stale_locks = Vec::new();
    for (tenant, holder, journaled) in locks {
        let status = execution_status(workflows, &mut status_of, &holder).await?;
        if status == "RUNNING" {
            if let Some(name) = holder.rsplit(':').next() {
                running_names.insert(name.to_string());
            }
            continue;
        }
        let released =
            input.release_stale_locks && !journaled && records.release(&tenant, &holder).await?;
        stale_locks.push(StaleLock {
            tenant: tenant.to_string(),
            holder,
            status,
            released,
        });
    }

    let instances = dbs.list_instances("").await?;
    let snapshots = dbs.list_snapshots("").await?;
    let rule = OrphanRule::new(settings, &active);
    // Only the suspects' runs are looked up.
    let suspect_runs: Vec<&str> = instances
        .iter()
        .filter(|i| rule.instance_is_suspect(i))
        .filter_map(|i| run_of(&i.tags))
        .chain(
            snapshots
                .iter()
                .filter(|s| rule.snapshot_is_suspect(s))
                .filter_map(|s| run_of(&s.tags)),
        )
        .collect();
    let mut running: BTreeSet<&str> = BTreeSet::new();
    for run in suspect_runs {
        if run_is_running(workflows, &mut status_of, &running_names, run).await? {
            running.insert(run);
        }
    }
    let orphans = rule.find(&instances, &snapshots, |run| running.contains(run));
    Ok(JanitorReport {
        orphan_count: orphans.count(),
        orphan_instances: orphans.instances,
        orphan_snapshots: orphans.snapshots,
        stale_locks,
    })
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

/// Whether `run` (a `tenantflow:run` tag: an ARN or an execution name) is running.
async fn run_is_running<W: Workflows + ?Sized>(
    workflows: &W,
    cache: &mut BTreeMap<String, String>,
    running_names: &BTreeSet<String>,
    run: &str,
) -> Result<bool, StepError> {
    if run.starts_with("arn:") {
        return Ok(execution_status(workflows, cache, run).await? == "RUNNING");
    }
    Ok(running_names.contains(run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::tags;
    use crate::names::{InstanceId, SnapshotId};
    use crate::ports::{DbInstance, DbSnapshot, Tags};
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
        w.records.seed_lock("a-app-prod", DONE);
        w.records.seed_lock("b-app-prod", LIVE);
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
            &*w.records,
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
        assert!(w.records.holder("a-app-prod").is_none());
        assert_eq!(w.records.holder("b-app-prod").as_deref(), Some(LIVE));
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
            &*w.records,
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

    /// Lists the held locks, then lets a new run take `tenant`'s lock before the janitor acts.
    struct TakenMeanwhile {
        inner: std::sync::Arc<crate::testing::FakeRecords>,
        tenant: &'static str,
        new_holder: &'static str,
    }

    #[async_trait::async_trait]
    impl Records for TakenMeanwhile {
        async fn acquire(
            &self,
            t: &Namespace,
            h: &str,
            r: &str,
        ) -> Result<crate::ports::LockTake, StepError> {
            self.inner.acquire(t, h, r).await
        }
        async fn release(&self, t: &Namespace, h: &str) -> Result<bool, StepError> {
            self.inner.release(t, h).await
        }
        async fn write_journal(
            &self,
            t: &Namespace,
            v: i64,
            j: &crate::model::Journal,
        ) -> Result<Option<crate::model::TenantRecord>, StepError> {
            self.inner.write_journal(t, v, j).await
        }
        async fn get_tenant(
            &self,
            t: &Namespace,
        ) -> Result<Option<crate::model::TenantRecord>, StepError> {
            self.inner.get_tenant(t).await
        }
        async fn list_held(&self) -> Result<Vec<crate::model::TenantRecord>, StepError> {
            let held = self.inner.list_held().await?;
            self.inner.seed_lock(self.tenant, self.new_holder);
            Ok(held)
        }
        async fn list_run(&self, run: &str) -> Result<Vec<crate::model::TenantRecord>, StepError> {
            self.inner.list_run(run).await
        }
        async fn put_token(
            &self,
            k: crate::model::ResourceKind,
            id: &str,
            w: &crate::model::WaitRecord,
        ) -> Result<(), StepError> {
            self.inner.put_token(k, id, w).await
        }
        async fn get_token(
            &self,
            k: crate::model::ResourceKind,
            id: &str,
        ) -> Result<Option<crate::model::WaitRecord>, StepError> {
            self.inner.get_token(k, id).await
        }
        async fn delete_token(
            &self,
            k: crate::model::ResourceKind,
            id: &str,
            token: &str,
        ) -> Result<bool, StepError> {
            self.inner.delete_token(k, id, token).await
        }
    }

    #[tokio::test]
    async fn a_lock_taken_by_a_new_run_after_the_sweep_listed_it_is_kept() {
        let w = world();
        let racing = TakenMeanwhile {
            inner: w.records.clone(),
            tenant: "a-app-prod",
            new_holder: LIVE,
        };
        let input = JanitorInput {
            release_stale_locks: true,
        };
        let r = janitor(
            &*w.params,
            &racing,
            &*w.db,
            &*w.workflows,
            &Settings::default(),
            &input,
        )
        .await
        .unwrap();
        assert_eq!(r.stale_locks.len(), 1);
        assert_eq!(r.stale_locks[0].holder, DONE);
        assert!(!r.stale_locks[0].released, "the release is conditional");
        assert_eq!(w.records.holder("a-app-prod").as_deref(), Some(LIVE));
    }

    #[tokio::test]
    async fn a_journaled_lock_of_a_dead_run_is_left_to_recover() {
        use crate::manifest::Strategy;
        use crate::steps::{dispatch, StepName};
        use crate::testing::{release_ref, run_context, tenant_state};
        let w = FakeWorld::new();
        w.seed_tenant("a-app-prod", "20260101000000", "r0");
        let s = tenant_state(
            "a-app-prod",
            run_context("r1", "20261121120000"),
            release_ref("2026-11-21.points", Strategy::BlueGreen),
        );
        dispatch(
            StepName::Snapshot,
            &w.ports_for(StepName::Snapshot),
            serde_json::json!(s),
        )
        .await
        .unwrap();
        w.workflows.set_status(&s.run.execution_arn, "FAILED");
        let r = run(&w.ports_for(StepName::Janitor), Value::Null)
            .await
            .unwrap();
        assert_eq!(r.stale_locks.len(), 1);
        assert!(!r.stale_locks[0].released, "recover settles it first");
        assert_eq!(
            w.records.holder("a-app-prod").as_deref(),
            Some(s.run.execution_arn.as_str())
        );
    }

    #[tokio::test]
    async fn a_lock_whose_execution_is_gone_is_stale_and_bad_input_is_rejected() {
        let w = FakeWorld::new();
        w.seed_tenant("a-app-prod", "20260101000000", "r0");
        w.records
            .seed_lock("a-app-prod", "arn:aws:states:eu-west-1:1:execution:x:gone");
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
