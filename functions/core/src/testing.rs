//! Small in-memory fakes of every port, for step-logic tests here and in other crates (enable the
//! `testing` feature).
//!
//! - [`FakeWorld`] bundles one fake per port and builds a [`Ports`] ([`FakeWorld::ports_for`]:
//!   only the ports a step declares, the others [`Forbidden`]); [`FakeWorld::seed_tenant`]
//!   creates a tenant (active instance with deletion protection and tags, pointer).
//! - [`FakeRecords`] keeps tenant records and wait tokens with the conditional writes of the real
//!   stores (take a lock only when free, release or delete a token only when it matches).
//! - Every fake records each call as `"<port>.<method> <arg>"` in the shared [`CallLog`], and
//!   [`Faults`] injects an error into the next call of a named method (to simulate crashes).
//! - [`Forbidden`] implements every port by failing the test on any call: the proof that bad
//!   input is rejected before any side effect, and that a step keeps to its declared ports.
//!
//! Resource behaviour mirrors the real services where steps depend on it: restores and snapshots
//! start `creating` (call `finish_*` to make them available), deleting an instance with deletion
//! protection is refused, `create` on an existing parameter returns `None`, a forced ECS
//! deployment becomes the primary one and demotes the previous. Parameter writes and forced
//! deployments are stamped by the world's [`FakeClock`], one second apart in call order.

use crate::error::StepError;
use crate::manifest::{release_prefix, FleetMode, Strategy};
use crate::model::{
    ActivePointer, Journal, Phase, PointerRead, Progress, ReleaseRef, ResourceKind, RunContext,
    ServiceRef, TenantRecord, TenantState, WaitRecord,
};
use crate::names::{tags, GenerationTs, InstanceId, Namespace, SnapshotId};
use crate::ports::{
    same_run, Databases, DatedParameter, DbInstance, DbSnapshot, DeploymentStatus, Events,
    ExecutionState, Headroom, LockTake, Objects, Parameter, Parameters, PrimaryDeployment, Records,
    RestoreRequest, Services, Started, Tags, Workflows,
};
use crate::steps::{Port, Ports, Settings, StepName};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test poisons the mutex; the data is still fine for the next assertion.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every port call, in order.
#[derive(Debug, Default)]
pub struct CallLog(Mutex<Vec<String>>);

impl CallLog {
    pub fn push(&self, call: String) {
        lock(&self.0).push(call);
    }
    pub fn all(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
    /// Calls that change something (everything but describe/get/list/status reads).
    pub fn writes(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|c| {
                let m = c.split_whitespace().next().unwrap_or("");
                let method = m.rsplit('.').next().unwrap_or("");
                !(method.starts_with("describe")
                    || method.starts_with("get")
                    || method.starts_with("list")
                    || method == "deployment"
                    || method == "primary_deployment"
                    || method == "status"
                    || method == "headroom"
                    || method == "execution_status")
            })
            .collect()
    }
    pub fn clear(&self) {
        lock(&self.0).clear();
    }
    pub fn count(&self, prefix: &str) -> usize {
        lock(&self.0)
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
}

/// Errors to return from the next calls of a method, keyed `"<port>.<method>"`.
#[derive(Debug, Default)]
pub struct Faults(Mutex<HashMap<String, VecDeque<StepError>>>);

impl Faults {
    pub fn inject(&self, method: &str, e: StepError) {
        lock(&self.0)
            .entry(method.to_string())
            .or_default()
            .push_back(e);
    }
    fn take(&self, method: &str) -> Result<(), StepError> {
        match lock(&self.0).get_mut(method).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Deterministic time for the fakes: each [`FakeClock::tick`] is one second after the previous
/// one, starting at 2026-01-01T00:00:01Z, so stamps strictly increase in call order.
#[derive(Debug, Default)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    /// 2026-01-01T00:00:00Z.
    const EPOCH: i64 = 1_767_225_600;

    /// Advances one second and returns the new time.
    pub fn tick(&self) -> DateTime<Utc> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        DateTime::from_timestamp(Self::EPOCH + n, 0).unwrap_or_default()
    }

    /// The time of the last tick, without advancing.
    pub fn now(&self) -> DateTime<Utc> {
        let n = self.0.load(Ordering::SeqCst);
        DateTime::from_timestamp(Self::EPOCH + n, 0).unwrap_or_default()
    }
}

/// Shared by the fakes of one world.
#[derive(Debug, Default)]
pub struct Shared {
    pub log: CallLog,
    pub faults: Faults,
    pub clock: FakeClock,
}

impl Shared {
    fn call(&self, method: &str, arg: impl std::fmt::Display) -> Result<(), StepError> {
        self.log.push(format!("{method} {arg}"));
        self.faults.take(method)
    }
}

/// RDS.
#[derive(Debug)]
pub struct FakeDatabases {
    shared: Arc<Shared>,
    pub instances: Mutex<BTreeMap<InstanceId, DbInstance>>,
    pub snapshots: Mutex<BTreeMap<SnapshotId, DbSnapshot>>,
    pub headroom: Mutex<Headroom>,
}

impl FakeDatabases {
    pub fn new(shared: Arc<Shared>) -> Self {
        FakeDatabases {
            shared,
            instances: Mutex::default(),
            snapshots: Mutex::default(),
            headroom: Mutex::new(Headroom {
                instances: 40,
                snapshots: 100,
            }),
        }
    }
    pub fn add_instance(&self, i: DbInstance) {
        lock(&self.instances).insert(i.id.clone(), i);
    }
    pub fn add_snapshot(&self, s: DbSnapshot) {
        lock(&self.snapshots).insert(s.id.clone(), s);
    }
    pub fn instance(&self, id: &str) -> Option<DbInstance> {
        lock(&self.instances)
            .values()
            .find(|i| i.id.as_str() == id)
            .cloned()
    }
    pub fn snapshot(&self, id: &str) -> Option<DbSnapshot> {
        lock(&self.snapshots)
            .values()
            .find(|s| s.id.as_str() == id)
            .cloned()
    }
    pub fn instance_ids(&self) -> Vec<String> {
        lock(&self.instances)
            .keys()
            .map(|k| k.to_string())
            .collect()
    }
    pub fn snapshot_ids(&self) -> Vec<String> {
        lock(&self.snapshots)
            .keys()
            .map(|k| k.to_string())
            .collect()
    }
    pub fn set_instance_status(&self, id: &str, status: &str) {
        if let Some(i) = lock(&self.instances)
            .values_mut()
            .find(|i| i.id.as_str() == id)
        {
            i.status = status.to_string();
        }
    }
    pub fn set_snapshot_status(&self, id: &str, status: &str) {
        if let Some(s) = lock(&self.snapshots)
            .values_mut()
            .find(|s| s.id.as_str() == id)
        {
            s.status = status.to_string();
        }
    }
    /// Every `creating` snapshot and instance becomes `available`.
    pub fn finish_all(&self) {
        for s in lock(&self.snapshots).values_mut() {
            if s.status == "creating" {
                s.status = "available".into();
            }
        }
        for i in lock(&self.instances).values_mut() {
            if i.status == "creating" {
                i.status = "available".into();
            }
        }
    }
}

#[async_trait]
impl Databases for FakeDatabases {
    async fn describe_instance(&self, id: &InstanceId) -> Result<Option<DbInstance>, StepError> {
        self.shared.call("databases.describe_instance", id)?;
        Ok(lock(&self.instances).get(id).cloned())
    }
    async fn describe_snapshot(&self, id: &SnapshotId) -> Result<Option<DbSnapshot>, StepError> {
        self.shared.call("databases.describe_snapshot", id)?;
        Ok(lock(&self.snapshots).get(id).cloned())
    }
    async fn create_snapshot(
        &self,
        source: &InstanceId,
        id: &SnapshotId,
        tags: &Tags,
    ) -> Result<DbSnapshot, StepError> {
        self.shared.call("databases.create_snapshot", id)?;
        let mut snaps = lock(&self.snapshots);
        if let Some(s) = snaps.get(id) {
            return if same_run(&s.tags, tags) {
                Ok(s.clone())
            } else {
                Err(StepError::Conflict(format!("snapshot {id} exists")))
            };
        }
        if !lock(&self.instances).contains_key(source) {
            return Err(StepError::NotFound(format!("instance {source}")));
        }
        let s = DbSnapshot {
            id: id.clone(),
            source_instance: source.to_string(),
            status: "creating".into(),
            created_at: None,
            tags: tags.clone(),
        };
        snaps.insert(id.clone(), s.clone());
        Ok(s)
    }
    async fn restore_instance(&self, req: &RestoreRequest) -> Result<DbInstance, StepError> {
        self.shared
            .call("databases.restore_instance", &req.target)?;
        if !lock(&self.snapshots).contains_key(&req.snapshot) {
            return Err(StepError::NotFound(format!("snapshot {}", req.snapshot)));
        }
        let mut insts = lock(&self.instances);
        if let Some(i) = insts.get(&req.target) {
            return if same_run(&i.tags, &req.tags) {
                Ok(i.clone())
            } else {
                Err(StepError::Conflict(format!(
                    "instance {} exists",
                    req.target
                )))
            };
        }
        let port = insts.get(&req.template).map_or(5432, |t| t.port);
        let i = DbInstance {
            id: req.target.clone(),
            status: "creating".into(),
            endpoint: format!("{}.fake.rds.local", req.target),
            port,
            deletion_protection: false,
            tags: req.tags.clone(),
        };
        insts.insert(req.target.clone(), i.clone());
        Ok(i)
    }
    async fn set_deletion_protection(&self, id: &InstanceId, on: bool) -> Result<(), StepError> {
        self.shared
            .call("databases.set_deletion_protection", format!("{id} {on}"))?;
        match lock(&self.instances).get_mut(id) {
            Some(i) => {
                i.deletion_protection = on;
                Ok(())
            }
            None => Err(StepError::NotFound(format!("instance {id}"))),
        }
    }
    async fn delete_instance(&self, id: &InstanceId) -> Result<(), StepError> {
        self.shared.call("databases.delete_instance", id)?;
        let mut insts = lock(&self.instances);
        if insts.get(id).is_some_and(|i| i.deletion_protection) {
            return Err(StepError::Conflict(format!(
                "instance {id} has deletion protection"
            )));
        }
        insts.remove(id);
        Ok(())
    }
    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<(), StepError> {
        self.shared.call("databases.delete_snapshot", id)?;
        lock(&self.snapshots).remove(id);
        Ok(())
    }
    async fn list_instances(&self, prefix: &str) -> Result<Vec<DbInstance>, StepError> {
        self.shared.call("databases.list_instances", prefix)?;
        Ok(lock(&self.instances)
            .values()
            .filter(|i| i.id.as_str().starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn list_snapshots(&self, prefix: &str) -> Result<Vec<DbSnapshot>, StepError> {
        self.shared.call("databases.list_snapshots", prefix)?;
        Ok(lock(&self.snapshots)
            .values()
            .filter(|s| s.id.as_str().starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn headroom(&self) -> Result<Headroom, StepError> {
        self.shared.call("databases.headroom", "")?;
        Ok(*lock(&self.headroom))
    }
}

/// SSM Parameter Store with version history.
#[derive(Debug)]
pub struct FakeParameters {
    shared: Arc<Shared>,
    /// name → (latest version, value). A deleted and recreated parameter restarts at version 1, as in SSM.
    pub values: Mutex<BTreeMap<String, (i64, String)>>,
    /// name → when the latest version was written (the shared [`FakeClock`]).
    pub modified: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl FakeParameters {
    pub fn new(shared: Arc<Shared>) -> Self {
        FakeParameters {
            shared,
            values: Mutex::default(),
            modified: Mutex::default(),
        }
    }
    fn stamp(&self, name: &str) {
        lock(&self.modified).insert(name.to_string(), self.shared.clock.tick());
    }
    pub fn value(&self, name: &str) -> Option<String> {
        lock(&self.values).get(name).map(|(_, v)| v.clone())
    }
    pub fn version(&self, name: &str) -> Option<i64> {
        lock(&self.values).get(name).map(|(v, _)| *v)
    }
    /// Writes without logging a call (test setup).
    pub fn seed(&self, name: &str, value: &str) {
        let mut m = lock(&self.values);
        let v = m.get(name).map_or(1, |(v, _)| v + 1);
        m.insert(name.to_string(), (v, value.to_string()));
        drop(m);
        self.stamp(name);
    }
    pub fn names(&self) -> Vec<String> {
        lock(&self.values).keys().cloned().collect()
    }
}

#[async_trait]
impl Parameters for FakeParameters {
    async fn get(&self, name: &str) -> Result<Option<Parameter>, StepError> {
        self.shared.call("parameters.get", name)?;
        Ok(lock(&self.values).get(name).map(|(v, s)| Parameter {
            name: name.to_string(),
            value: s.clone(),
            version: *v,
        }))
    }
    async fn get_dated(&self, name: &str) -> Result<Option<DatedParameter>, StepError> {
        self.shared.call("parameters.get_dated", name)?;
        let values = lock(&self.values);
        Ok(values.get(name).map(|(v, s)| DatedParameter {
            parameter: Parameter {
                name: name.to_string(),
                value: s.clone(),
                version: *v,
            },
            modified_at: lock(&self.modified).get(name).copied(),
        }))
    }
    async fn create(&self, name: &str, value: &str) -> Result<Option<i64>, StepError> {
        self.shared.call("parameters.create", name)?;
        let mut m = lock(&self.values);
        if m.contains_key(name) {
            return Ok(None);
        }
        m.insert(name.to_string(), (1, value.to_string()));
        drop(m);
        self.stamp(name);
        Ok(Some(1))
    }
    async fn put(&self, name: &str, value: &str) -> Result<i64, StepError> {
        self.shared.call("parameters.put", name)?;
        let mut m = lock(&self.values);
        let v = m.get(name).map_or(1, |(v, _)| v + 1);
        m.insert(name.to_string(), (v, value.to_string()));
        drop(m);
        self.stamp(name);
        Ok(v)
    }
    async fn delete(&self, name: &str) -> Result<(), StepError> {
        self.shared.call("parameters.delete", name)?;
        lock(&self.values).remove(name);
        lock(&self.modified).remove(name);
        Ok(())
    }
    async fn list(&self, path: &str) -> Result<Vec<Parameter>, StepError> {
        self.shared.call("parameters.list", path)?;
        Ok(lock(&self.values)
            .iter()
            .filter(|(k, _)| k.starts_with(path))
            .map(|(k, (v, s))| Parameter {
                name: k.clone(),
                value: s.clone(),
                version: *v,
            })
            .collect())
    }
}

/// The records store: tenant records (lock + journal) and wait tokens by resource.
#[derive(Debug)]
pub struct FakeRecords {
    shared: Arc<Shared>,
    pub tenants: Mutex<BTreeMap<String, TenantRecord>>,
    /// (kind, resource id) → token record.
    pub tokens: Mutex<BTreeMap<(String, String), WaitRecord>>,
}

impl FakeRecords {
    pub fn new(shared: Arc<Shared>) -> Self {
        FakeRecords {
            shared,
            tenants: Mutex::default(),
            tokens: Mutex::default(),
        }
    }
    /// Who holds `ns`'s lock now.
    pub fn holder(&self, ns: &str) -> Option<String> {
        lock(&self.tenants).get(ns).and_then(|r| r.holder.clone())
    }
    pub fn record(&self, ns: &str) -> Option<TenantRecord> {
        lock(&self.tenants).get(ns).cloned()
    }
    /// Makes `holder` hold `ns`'s lock, without logging a call (test setup).
    pub fn seed_lock(&self, ns: &str, holder: &str) {
        let mut all = lock(&self.tenants);
        let version = all.get(ns).map_or(1, |r| r.version + 1);
        all.insert(
            ns.to_string(),
            TenantRecord {
                tenant: ns_(ns),
                holder: Some(holder.to_string()),
                run: Some(holder.to_string()),
                phase: Phase::Locked,
                version,
                updated_at: Some(self.shared.clock.now()),
                journal: Journal::default(),
            },
        );
    }
    /// The token stored for `kind`/`resource`.
    pub fn token(&self, kind: ResourceKind, resource: &str) -> Option<String> {
        lock(&self.tokens)
            .get(&(kind.as_str().to_string(), resource.to_string()))
            .map(|w| w.token.clone())
    }
}

#[async_trait]
impl Records for FakeRecords {
    async fn acquire(
        &self,
        tenant: &Namespace,
        holder: &str,
        run: &str,
    ) -> Result<LockTake, StepError> {
        self.shared.call("records.acquire", tenant)?;
        let mut all = lock(&self.tenants);
        if let Some(r) = all.get(tenant.as_str()).filter(|r| r.holder.is_some()) {
            return Ok(LockTake::Held(r.clone()));
        }
        let r = TenantRecord {
            tenant: tenant.clone(),
            holder: Some(holder.to_string()),
            run: Some(run.to_string()),
            phase: Phase::Locked,
            version: all.get(tenant.as_str()).map_or(1, |r| r.version + 1),
            updated_at: Some(self.shared.clock.now()),
            journal: Journal::default(),
        };
        all.insert(tenant.to_string(), r.clone());
        Ok(LockTake::Taken(r))
    }
    async fn release(&self, tenant: &Namespace, holder: &str) -> Result<bool, StepError> {
        self.shared.call("records.release", tenant)?;
        let mut all = lock(&self.tenants);
        match all.get_mut(tenant.as_str()) {
            Some(r) if r.holder.as_deref() == Some(holder) => {
                r.holder = None;
                r.phase = Phase::Released;
                r.version += 1;
                r.updated_at = Some(self.shared.clock.now());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn write_journal(
        &self,
        tenant: &Namespace,
        expected_version: i64,
        journal: &Journal,
    ) -> Result<Option<TenantRecord>, StepError> {
        self.shared.call("records.write_journal", tenant)?;
        let mut all = lock(&self.tenants);
        match all.get_mut(tenant.as_str()) {
            Some(r) if r.version == expected_version => {
                r.journal = journal.clone();
                r.version += 1;
                r.updated_at = Some(self.shared.clock.now());
                Ok(Some(r.clone()))
            }
            _ => Ok(None),
        }
    }
    async fn get_tenant(&self, tenant: &Namespace) -> Result<Option<TenantRecord>, StepError> {
        self.shared.call("records.get_tenant", tenant)?;
        Ok(lock(&self.tenants).get(tenant.as_str()).cloned())
    }
    async fn list_held(&self) -> Result<Vec<TenantRecord>, StepError> {
        self.shared.call("records.list_held", "")?;
        Ok(lock(&self.tenants)
            .values()
            .filter(|r| r.holder.is_some())
            .cloned()
            .collect())
    }
    async fn list_run(&self, run: &str) -> Result<Vec<TenantRecord>, StepError> {
        self.shared.call("records.list_run", run)?;
        Ok(lock(&self.tenants)
            .values()
            .filter(|r| r.run.as_deref() == Some(run))
            .cloned()
            .collect())
    }
    async fn put_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        wait: &WaitRecord,
    ) -> Result<(), StepError> {
        self.shared
            .call("records.put_token", format!("{}/{resource}", kind.as_str()))?;
        lock(&self.tokens).insert(
            (kind.as_str().to_string(), resource.to_string()),
            wait.clone(),
        );
        Ok(())
    }
    async fn get_token(
        &self,
        kind: ResourceKind,
        resource: &str,
    ) -> Result<Option<WaitRecord>, StepError> {
        self.shared
            .call("records.get_token", format!("{}/{resource}", kind.as_str()))?;
        Ok(lock(&self.tokens)
            .get(&(kind.as_str().to_string(), resource.to_string()))
            .cloned())
    }
    async fn delete_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        token: &str,
    ) -> Result<bool, StepError> {
        self.shared.call(
            "records.delete_token",
            format!("{}/{resource}", kind.as_str()),
        )?;
        let mut all = lock(&self.tokens);
        let key = (kind.as_str().to_string(), resource.to_string());
        if all.get(&key).is_some_and(|w| w.token == token) {
            all.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// ECS: deployments per service, newest last.
#[derive(Debug)]
pub struct FakeServices {
    shared: Arc<Shared>,
    pub deployments: Mutex<BTreeMap<(String, String), Vec<DeploymentStatus>>>,
    /// deployment id → its `createdAt` (the shared [`FakeClock`]).
    pub created: Mutex<BTreeMap<String, DateTime<Utc>>>,
    next: Mutex<u64>,
}

impl FakeServices {
    pub fn new(shared: Arc<Shared>) -> Self {
        FakeServices {
            shared,
            deployments: Mutex::default(),
            created: Mutex::default(),
            next: Mutex::new(1),
        }
    }
    /// Sets the state of deployment `id` (any service).
    pub fn set_rollout(&self, id: &str, state: &str, running: u32, desired: u32) {
        for list in lock(&self.deployments).values_mut() {
            for d in list.iter_mut().filter(|d| d.id == id) {
                d.rollout_state = state.to_string();
                d.running = running;
                d.desired = desired;
            }
        }
    }
    pub fn forced(&self, service: &ServiceRef) -> Vec<DeploymentStatus> {
        lock(&self.deployments)
            .get(&(service.cluster.clone(), service.service.clone()))
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl Services for FakeServices {
    async fn force_deployment(&self, service: &ServiceRef) -> Result<String, StepError> {
        self.shared.call(
            "services.force_deployment",
            format!("{}/{}", service.cluster, service.service),
        )?;
        let mut n = lock(&self.next);
        let id = format!("ecs-svc/{:019}", *n);
        *n += 1;
        let mut all = lock(&self.deployments);
        let list = all
            .entry((service.cluster.clone(), service.service.clone()))
            .or_default();
        for d in list.iter_mut() {
            d.primary = false;
        }
        list.push(DeploymentStatus {
            id: id.clone(),
            rollout_state: "IN_PROGRESS".into(),
            running: 0,
            desired: 2,
            primary: true,
        });
        lock(&self.created).insert(id.clone(), self.shared.clock.tick());
        Ok(id)
    }
    async fn primary_deployment(
        &self,
        service: &ServiceRef,
    ) -> Result<Option<PrimaryDeployment>, StepError> {
        self.shared.call(
            "services.primary_deployment",
            format!("{}/{}", service.cluster, service.service),
        )?;
        let all = lock(&self.deployments);
        let primary = all
            .get(&(service.cluster.clone(), service.service.clone()))
            .and_then(|l| l.iter().find(|d| d.primary));
        Ok(primary.and_then(|d| {
            lock(&self.created)
                .get(&d.id)
                .map(|created_at| PrimaryDeployment {
                    id: d.id.clone(),
                    created_at: *created_at,
                })
        }))
    }
    async fn deployment(
        &self,
        service: &ServiceRef,
        id: &str,
    ) -> Result<Option<DeploymentStatus>, StepError> {
        self.shared.call("services.deployment", id)?;
        Ok(lock(&self.deployments)
            .get(&(service.cluster.clone(), service.service.clone()))
            .and_then(|l| l.iter().find(|d| d.id == id).cloned()))
    }
}

/// A task-token result the fake Step Functions received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskResult {
    Success {
        token: String,
        output: String,
    },
    Failure {
        token: String,
        error: String,
        cause: String,
    },
}

/// Step Functions.
#[derive(Debug)]
pub struct FakeWorkflows {
    shared: Arc<Shared>,
    pub executions: Mutex<BTreeMap<String, (String, String)>>,
    pub statuses: Mutex<BTreeMap<String, String>>,
    pub results: Mutex<Vec<TaskResult>>,
    /// Tokens already completed: sending again fails like `TaskTimedOut`/`InvalidToken`.
    pub spent: Mutex<Vec<String>>,
}

impl FakeWorkflows {
    pub fn new(shared: Arc<Shared>) -> Self {
        FakeWorkflows {
            shared,
            executions: Mutex::default(),
            statuses: Mutex::default(),
            results: Mutex::default(),
            spent: Mutex::default(),
        }
    }
    pub fn results(&self) -> Vec<TaskResult> {
        lock(&self.results).clone()
    }
    pub fn set_status(&self, arn: &str, status: &str) {
        lock(&self.statuses).insert(arn.to_string(), status.to_string());
    }
    fn spend(&self, token: &str) -> Result<(), StepError> {
        let mut spent = lock(&self.spent);
        if spent.iter().any(|t| t == token) {
            return Err(StepError::Conflict("task token already used".into()));
        }
        spent.push(token.to_string());
        Ok(())
    }
}

#[async_trait]
impl Workflows for FakeWorkflows {
    async fn start_execution(&self, name: &str, input: &str) -> Result<Started, StepError> {
        self.shared.call("workflows.start_execution", name)?;
        let arn = format!("arn:aws:states:local:000000000000:execution:tenantflow-release:{name}");
        let mut ex = lock(&self.executions);
        if let Some((a, i)) = ex.get(name) {
            return if i == input {
                Ok(Started {
                    execution_arn: a.clone(),
                    duplicate: true,
                })
            } else {
                Err(StepError::Conflict(format!(
                    "execution {name} exists with another input"
                )))
            };
        }
        ex.insert(name.to_string(), (arn.clone(), input.to_string()));
        lock(&self.statuses).insert(arn.clone(), "RUNNING".into());
        Ok(Started {
            execution_arn: arn,
            duplicate: false,
        })
    }
    async fn send_task_success(&self, token: &str, output: &str) -> Result<(), StepError> {
        self.shared.call("workflows.send_task_success", "")?;
        self.spend(token)?;
        lock(&self.results).push(TaskResult::Success {
            token: token.to_string(),
            output: output.to_string(),
        });
        Ok(())
    }
    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), StepError> {
        self.shared.call("workflows.send_task_failure", error)?;
        self.spend(token)?;
        lock(&self.results).push(TaskResult::Failure {
            token: token.to_string(),
            error: error.to_string(),
            cause: cause.to_string(),
        });
        Ok(())
    }
    async fn execution_status(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionState>, StepError> {
        self.shared
            .call("workflows.execution_status", execution_arn)?;
        Ok(lock(&self.statuses).get(execution_arn).cloned())
    }
}

/// S3.
#[derive(Debug)]
pub struct FakeObjects {
    shared: Arc<Shared>,
    pub objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl FakeObjects {
    pub fn new(shared: Arc<Shared>) -> Self {
        FakeObjects {
            shared,
            objects: Mutex::default(),
        }
    }
    pub fn seed(&self, bucket: &str, key: &str, body: &[u8]) {
        lock(&self.objects).insert((bucket.to_string(), key.to_string()), body.to_vec());
    }
    pub fn body(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects)
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }
    pub fn remove(&self, bucket: &str, key: &str) {
        lock(&self.objects).remove(&(bucket.to_string(), key.to_string()));
    }
}

#[async_trait]
impl Objects for FakeObjects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        self.shared.call("objects.get", format!("{bucket}/{key}"))?;
        Ok(self.body(bucket, key))
    }
    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), StepError> {
        self.shared.call("objects.put", format!("{bucket}/{key}"))?;
        self.seed(bucket, key, body);
        Ok(())
    }
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StepError> {
        self.shared
            .call("objects.list", format!("{bucket}/{prefix}"))?;
        Ok(lock(&self.objects)
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect())
    }
}

/// EventBridge: records every event.
#[derive(Debug)]
pub struct FakeEvents {
    shared: Arc<Shared>,
    pub events: Mutex<Vec<(String, serde_json::Value)>>,
}

#[async_trait]
impl Events for FakeEvents {
    async fn put_event(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StepError> {
        self.shared.call("events.put_event", detail_type)?;
        lock(&self.events).push((detail_type.to_string(), detail.clone()));
        Ok(())
    }
}

/// One fake per port, sharing a call log and fault injector.
pub struct FakeWorld {
    pub shared: Arc<Shared>,
    pub db: Arc<FakeDatabases>,
    pub params: Arc<FakeParameters>,
    pub records: Arc<FakeRecords>,
    pub services: Arc<FakeServices>,
    pub workflows: Arc<FakeWorkflows>,
    pub objects: Arc<FakeObjects>,
    pub events: Arc<FakeEvents>,
    pub settings: Settings,
}

impl Default for FakeWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeWorld {
    pub fn new() -> Self {
        let shared = Arc::new(Shared::default());
        FakeWorld {
            db: Arc::new(FakeDatabases::new(shared.clone())),
            params: Arc::new(FakeParameters::new(shared.clone())),
            records: Arc::new(FakeRecords::new(shared.clone())),
            services: Arc::new(FakeServices::new(shared.clone())),
            workflows: Arc::new(FakeWorkflows::new(shared.clone())),
            objects: Arc::new(FakeObjects::new(shared.clone())),
            events: Arc::new(FakeEvents {
                shared: shared.clone(),
                events: Mutex::default(),
            }),
            shared,
            settings: Settings::default(),
        }
    }

    pub fn ports(&self) -> Ports {
        Ports {
            databases: self.db.clone(),
            parameters: self.params.clone(),
            records: self.records.clone(),
            services: self.services.clone(),
            workflows: self.workflows.clone(),
            objects: self.objects.clone(),
            events: self.events.clone(),
            settings: self.settings.clone(),
        }
    }

    /// [`FakeWorld::ports`] as `step` may use them: the ports it declares ([`StepName::ports`])
    /// are this world's, every other one is [`Forbidden`] (a call fails the test).
    pub fn ports_for(&self, step: StepName) -> Ports {
        let world = self.ports();
        let forbidden = Arc::new(Forbidden);
        Ports {
            databases: if step.uses(Port::Databases) {
                world.databases
            } else {
                forbidden.clone()
            },
            parameters: if step.uses(Port::Parameters) {
                world.parameters
            } else {
                forbidden.clone()
            },
            records: if step.uses(Port::Records) {
                world.records
            } else {
                forbidden.clone()
            },
            services: if step.uses(Port::Services) {
                world.services
            } else {
                forbidden.clone()
            },
            workflows: if step.uses(Port::Workflows) {
                world.workflows
            } else {
                forbidden.clone()
            },
            objects: if step.uses(Port::Objects) {
                world.objects
            } else {
                forbidden.clone()
            },
            events: if step.uses(Port::Events) {
                world.events
            } else {
                forbidden
            },
            settings: world.settings,
        }
    }

    pub fn log(&self) -> &CallLog {
        &self.shared.log
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Creates tenant `ns` on generation `ts` at `release`: an available, deletion-protected,
    /// tagged instance and its pointer. Returns the instance id.
    pub fn seed_tenant(&self, ns: &str, ts: &str, release: &str) -> InstanceId {
        let (ns, ts) = (ns_(ns), ts_(ts));
        let id = InstanceId::generation(&ns, ts);
        let tags: Tags = [
            (tags::NAMESPACE, ns.as_str()),
            (tags::RELEASE, release),
            (tags::RUN, "init"),
            (tags::ROLE, tags::ROLE_ACTIVE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.db.add_instance(DbInstance {
            id: id.clone(),
            status: "available".into(),
            endpoint: format!("{id}.fake.rds.local"),
            port: 5432,
            deletion_protection: true,
            tags,
        });
        let pointer = ActivePointer {
            generation: ts,
            instance_id: id.clone(),
            endpoint: format!("{id}.fake.rds.local"),
            port: 5432,
            release: release.to_string(),
            scripts: None,
            service: None,
            freeze: None,
        };
        self.params.seed(
            &ns.paths().pointer,
            &serde_json::to_string(&pointer).unwrap_or_default(),
        );
        id
    }

    /// The tenant's pointer as stored now.
    pub fn pointer(&self, ns: &str) -> Option<PointerRead> {
        let path = ns_(ns).paths().pointer;
        let value = self.params.value(&path)?;
        Some(PointerRead {
            value: serde_json::from_str(&value).ok()?,
            version: self.params.version(&path)?,
        })
    }
}

fn ns_(s: &str) -> Namespace {
    Namespace::parse(s).unwrap_or_else(|e| panic!("test namespace {s}: {e}"))
}
fn ts_(s: &str) -> GenerationTs {
    GenerationTs::parse(s).unwrap_or_else(|e| panic!("test timestamp {s}: {e}"))
}

/// A run context for tests: name `rel-<n>`, ARN under a fake account, generation `ts`.
pub fn run_context(name: &str, ts: &str) -> RunContext {
    RunContext {
        name: name.to_string(),
        execution_arn: format!(
            "arn:aws:states:eu-west-1:123456789012:execution:tenantflow-release:{name}"
        ),
        generation: ts_(ts),
    }
}

/// A release reference for tests.
pub fn release_ref(id: &str, strategy: Strategy) -> ReleaseRef {
    ReleaseRef {
        id: id.to_string(),
        bucket: "tenantflow-releases".into(),
        prefix: release_prefix(id),
        strategy,
        fleet: FleetMode::Independent,
        write_freeze: strategy != Strategy::Promote,
        freeze_drain_seconds: 0,
        bake_seconds: 0,
        snapshot_retention: 3,
        source_snapshot: None,
        health_check: None,
        sha256sums: None,
        scripts: None,
    }
}

/// A fresh per-tenant state (empty progress), as the Map's ItemSelector builds it.
pub fn tenant_state(ns: &str, run: RunContext, release: ReleaseRef) -> TenantState {
    TenantState {
        tenant: ns_(ns),
        run,
        release,
        progress: Progress::default(),
        error: None,
    }
}

/// Implements every port by panicking: for tests that prove no port is called (bad input is
/// rejected first) or that a step calls only the ports it declares ([`FakeWorld::ports_for`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Forbidden;

impl Forbidden {
    pub fn ports() -> Ports {
        let f = Arc::new(Forbidden);
        Ports {
            databases: f.clone(),
            parameters: f.clone(),
            records: f.clone(),
            services: f.clone(),
            workflows: f.clone(),
            objects: f.clone(),
            events: f,
            settings: Settings::default(),
        }
    }
}

macro_rules! forbid {
    ($what:expr) => {
        panic!(
            "forbidden port call (before input validation, or a port the step does not declare): {}",
            $what
        )
    };
}

#[async_trait]
impl Databases for Forbidden {
    async fn describe_instance(&self, id: &InstanceId) -> Result<Option<DbInstance>, StepError> {
        forbid!(format!("describe_instance {id}"))
    }
    async fn describe_snapshot(&self, id: &SnapshotId) -> Result<Option<DbSnapshot>, StepError> {
        forbid!(format!("describe_snapshot {id}"))
    }
    async fn create_snapshot(
        &self,
        _: &InstanceId,
        id: &SnapshotId,
        _: &Tags,
    ) -> Result<DbSnapshot, StepError> {
        forbid!(format!("create_snapshot {id}"))
    }
    async fn restore_instance(&self, r: &RestoreRequest) -> Result<DbInstance, StepError> {
        forbid!(format!("restore_instance {}", r.target))
    }
    async fn set_deletion_protection(&self, id: &InstanceId, _: bool) -> Result<(), StepError> {
        forbid!(format!("set_deletion_protection {id}"))
    }
    async fn delete_instance(&self, id: &InstanceId) -> Result<(), StepError> {
        forbid!(format!("delete_instance {id}"))
    }
    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<(), StepError> {
        forbid!(format!("delete_snapshot {id}"))
    }
    async fn list_instances(&self, p: &str) -> Result<Vec<DbInstance>, StepError> {
        forbid!(format!("list_instances {p}"))
    }
    async fn list_snapshots(&self, p: &str) -> Result<Vec<DbSnapshot>, StepError> {
        forbid!(format!("list_snapshots {p}"))
    }
    async fn headroom(&self) -> Result<Headroom, StepError> {
        forbid!("headroom")
    }
}

#[async_trait]
impl Parameters for Forbidden {
    async fn get(&self, name: &str) -> Result<Option<Parameter>, StepError> {
        forbid!(format!("parameters.get {name}"))
    }
    async fn get_dated(&self, name: &str) -> Result<Option<DatedParameter>, StepError> {
        forbid!(format!("parameters.get_dated {name}"))
    }
    async fn create(&self, name: &str, _: &str) -> Result<Option<i64>, StepError> {
        forbid!(format!("parameters.create {name}"))
    }
    async fn put(&self, name: &str, _: &str) -> Result<i64, StepError> {
        forbid!(format!("parameters.put {name}"))
    }
    async fn delete(&self, name: &str) -> Result<(), StepError> {
        forbid!(format!("parameters.delete {name}"))
    }
    async fn list(&self, path: &str) -> Result<Vec<Parameter>, StepError> {
        forbid!(format!("parameters.list {path}"))
    }
}

#[async_trait]
impl Records for Forbidden {
    async fn acquire(&self, t: &Namespace, _: &str, _: &str) -> Result<LockTake, StepError> {
        forbid!(format!("records.acquire {t}"))
    }
    async fn release(&self, t: &Namespace, _: &str) -> Result<bool, StepError> {
        forbid!(format!("records.release {t}"))
    }
    async fn write_journal(
        &self,
        t: &Namespace,
        _: i64,
        _: &Journal,
    ) -> Result<Option<TenantRecord>, StepError> {
        forbid!(format!("records.write_journal {t}"))
    }
    async fn get_tenant(&self, t: &Namespace) -> Result<Option<TenantRecord>, StepError> {
        forbid!(format!("records.get_tenant {t}"))
    }
    async fn list_held(&self) -> Result<Vec<TenantRecord>, StepError> {
        forbid!("records.list_held")
    }
    async fn list_run(&self, run: &str) -> Result<Vec<TenantRecord>, StepError> {
        forbid!(format!("records.list_run {run}"))
    }
    async fn put_token(&self, _: ResourceKind, id: &str, _: &WaitRecord) -> Result<(), StepError> {
        forbid!(format!("records.put_token {id}"))
    }
    async fn get_token(&self, _: ResourceKind, id: &str) -> Result<Option<WaitRecord>, StepError> {
        forbid!(format!("records.get_token {id}"))
    }
    async fn delete_token(&self, _: ResourceKind, id: &str, _: &str) -> Result<bool, StepError> {
        forbid!(format!("records.delete_token {id}"))
    }
}

#[async_trait]
impl Services for Forbidden {
    async fn force_deployment(&self, s: &ServiceRef) -> Result<String, StepError> {
        forbid!(format!("force_deployment {}", s.service))
    }
    async fn primary_deployment(
        &self,
        s: &ServiceRef,
    ) -> Result<Option<PrimaryDeployment>, StepError> {
        forbid!(format!("primary_deployment {}", s.service))
    }
    async fn deployment(
        &self,
        _: &ServiceRef,
        id: &str,
    ) -> Result<Option<DeploymentStatus>, StepError> {
        forbid!(format!("deployment {id}"))
    }
}

#[async_trait]
impl Workflows for Forbidden {
    async fn start_execution(&self, name: &str, _: &str) -> Result<Started, StepError> {
        forbid!(format!("start_execution {name}"))
    }
    async fn send_task_success(&self, _: &str, _: &str) -> Result<(), StepError> {
        forbid!("send_task_success")
    }
    async fn send_task_failure(&self, _: &str, _: &str, _: &str) -> Result<(), StepError> {
        forbid!("send_task_failure")
    }
    async fn execution_status(&self, arn: &str) -> Result<Option<ExecutionState>, StepError> {
        forbid!(format!("execution_status {arn}"))
    }
}

#[async_trait]
impl Objects for Forbidden {
    async fn get(&self, b: &str, k: &str) -> Result<Option<Vec<u8>>, StepError> {
        forbid!(format!("objects.get {b}/{k}"))
    }
    async fn put(&self, b: &str, k: &str, _: &[u8]) -> Result<(), StepError> {
        forbid!(format!("objects.put {b}/{k}"))
    }
    async fn list(&self, b: &str, p: &str) -> Result<Vec<String>, StepError> {
        forbid!(format!("objects.list {b}/{p}"))
    }
}

#[async_trait]
impl Events for Forbidden {
    async fn put_event(&self, t: &str, _: &serde_json::Value) -> Result<(), StepError> {
        forbid!(format!("put_event {t}"))
    }
}
