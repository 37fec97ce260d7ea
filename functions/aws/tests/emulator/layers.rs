//! What the harness puts between the steps and the AWS adapters. Each layer is named, and the
//! suite's report lists what it did:
//!
//! - [`HarnessRds`] (an emulator gap): moto has no RDS `DescribeAccountAttributes`, so the
//!   harness answers `headroom()` itself (fixed quotas) and records the call as
//!   `RDS.DescribeAccountAttributes via harness`, so it is still evaluated against IAM. It also
//!   keeps the [`Contents`] model: moto's RDS is metadata only, so the harness tracks which release
//!   each instance's schema is at (seeded generations, snapshot copies, restores, migrations).
//!   And moto's restore ignores `DeletionProtection=false` (it copies the source's protection): the
//!   harness unprotects the restored instance through moto's API, as RDS would have made it.
//! - [`HarnessQuotas`] (the same emulator gap, for the operator): `tenantflow plan --aws` reads
//!   `Used` and `Max` of the account quotas; the harness counts `Used` from moto's instances and
//!   manual snapshots and takes `Max` as the test sets it.
//! - [`Faults`] (the fault layer): every failure and pending state a scenario needs. The real call
//!   is always made first (so it is recorded and evaluated); the fault then changes what the step
//!   sees, or (for a moved pointer) changes the emulator's state through its own API.

use super::record::{Call, Recorder};
use async_trait::async_trait;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tenantflow_core::model::ServiceRef;
use tenantflow_core::names::{InstanceId, SnapshotId};
use tenantflow_core::ports::*;
use tenantflow_core::StepError;

/// Which release each instance's and snapshot's schema is at (moto holds no data).
#[derive(Default)]
pub struct Contents {
    pub instances: Mutex<HashMap<String, String>>,
    pub snapshots: Mutex<HashMap<String, String>>,
}

impl Contents {
    pub fn instance(&self, id: &str) -> Option<String> {
        self.instances.lock().unwrap().get(id).cloned()
    }
    pub fn set_instance(&self, id: &str, release: &str) {
        self.instances
            .lock()
            .unwrap()
            .insert(id.to_string(), release.to_string());
    }
}

/// One named fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The snapshot reports `creating` for its first `checks` describes.
    SnapshotPending { snapshot: String, checks: u32 },
    /// The instance reports `creating` for its first `checks` describes.
    InstancePending { instance: String, checks: u32 },
    /// The migration build of this instance ends FAILED.
    MigrationFails { instance: String },
    /// Another writer rewrites the tenant's pointer just before flip-ssm reads it.
    PointerMovedBeforeFlip { tenant: String },
    /// The ECS deployment roll-ecs forces for this tenant ends FAILED.
    RolloutFails { tenant: String },
    /// The ECS deployment roll-ecs forces for this tenant reports IN_PROGRESS for its first
    /// `checks` judgements.
    RolloutPending { tenant: String, checks: u32 },
}

#[derive(Default)]
pub struct Faults {
    faults: Mutex<Vec<Fault>>,
    pending: Mutex<HashMap<String, u32>>,
    failed_deployments: Mutex<HashSet<String>>,
    /// Deployment id -> tenant, for the deployments roll-ecs forced.
    forced: Mutex<HashMap<String, String>>,
    /// What the layer did, in order.
    pub injected: Mutex<Vec<String>>,
}

impl Faults {
    pub fn new(faults: Vec<Fault>) -> Arc<Self> {
        let mut pending = HashMap::new();
        for f in &faults {
            match f {
                Fault::SnapshotPending { snapshot, checks } => {
                    pending.insert(format!("snapshot:{snapshot}"), *checks);
                }
                Fault::InstancePending { instance, checks } => {
                    pending.insert(format!("db:{instance}"), *checks);
                }
                Fault::RolloutPending { tenant, checks } => {
                    pending.insert(format!("rollout:{tenant}"), *checks);
                }
                _ => {}
            }
        }
        Arc::new(Faults {
            faults: Mutex::new(faults),
            pending: Mutex::new(pending),
            ..Default::default()
        })
    }
    fn note(&self, s: String) {
        self.injected.lock().unwrap().push(s);
    }
    fn has(&self, f: &Fault) -> bool {
        self.faults.lock().unwrap().contains(f)
    }
    /// True (and one check used) while the resource is still "pending".
    fn still_pending(&self, key: &str) -> bool {
        let mut p = self.pending.lock().unwrap();
        match p.get_mut(key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
    pub fn migration_fails(&self, instance: &str) -> bool {
        let hit = self.has(&Fault::MigrationFails {
            instance: instance.to_string(),
        });
        if hit {
            self.note(format!(
                "MigrationFails: build for {instance} reported FAILED"
            ));
        }
        hit
    }
    fn pointer_moves(&self, tenant: &str) -> bool {
        let f = Fault::PointerMovedBeforeFlip {
            tenant: tenant.to_string(),
        };
        let mut all = self.faults.lock().unwrap();
        match all.iter().position(|x| *x == f) {
            Some(i) => {
                all.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Fixed quota answers of the harness's DescribeAccountAttributes.
pub const HEADROOM: Headroom = Headroom {
    instances: 40,
    snapshots: 100,
};

/// RDS as the steps see it: the adapter, with the harness's DescribeAccountAttributes, the
/// contents model and the fault layer.
pub struct HarnessRds {
    pub inner: Arc<dyn Databases>,
    /// Unrecorded: corrects moto's state where it departs from RDS (see `restore_instance`).
    pub admin_rds: aws_sdk_rds::Client,
    pub faults: Arc<Faults>,
    pub contents: Arc<Contents>,
    pub rec: Recorder,
    pub principal: String,
    pub caller: String,
}

#[async_trait]
impl Databases for HarnessRds {
    async fn describe_instance(&self, id: &InstanceId) -> Result<Option<DbInstance>, StepError> {
        let mut r = self.inner.describe_instance(id).await?;
        if let Some(i) = r.as_mut() {
            if i.status == "available" && self.faults.still_pending(&format!("db:{id}")) {
                self.faults
                    .note(format!("InstancePending: {id} reported creating"));
                i.status = "creating".into();
            }
        }
        Ok(r)
    }
    async fn describe_snapshot(&self, id: &SnapshotId) -> Result<Option<DbSnapshot>, StepError> {
        let mut r = self.inner.describe_snapshot(id).await?;
        if let Some(s) = r.as_mut() {
            if s.status == "available" && self.faults.still_pending(&format!("snapshot:{id}")) {
                self.faults
                    .note(format!("SnapshotPending: {id} reported creating"));
                s.status = "creating".into();
            }
        }
        Ok(r)
    }
    async fn create_snapshot(
        &self,
        source: &InstanceId,
        id: &SnapshotId,
        tags: &Tags,
    ) -> Result<DbSnapshot, StepError> {
        let s = self.inner.create_snapshot(source, id, tags).await?;
        if let Some(rel) = self.contents.instance(source.as_str()) {
            self.contents
                .snapshots
                .lock()
                .unwrap()
                .entry(id.to_string())
                .or_insert(rel);
        }
        Ok(s)
    }
    async fn restore_instance(&self, req: &RestoreRequest) -> Result<DbInstance, StepError> {
        let i = self.inner.restore_instance(req).await?;
        // moto ignores false-valued restore parameters and copies the source instance's deletion
        // protection; the adapter asks for none (checked on the wire by the adapter test), so the
        // harness applies that through moto's own API, as RDS would have created it.
        if i.deletion_protection {
            self.admin_rds
                .modify_db_instance()
                .db_instance_identifier(req.target.as_str())
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .expect("unprotect the restored instance");
            self.faults.note(format!(
                "emulator gap: {} restored with the source's deletion protection; unprotected as requested",
                req.target
            ));
        }
        let snap = self
            .contents
            .snapshots
            .lock()
            .unwrap()
            .get(req.snapshot.as_str())
            .cloned();
        if let Some(rel) = snap {
            self.contents
                .instances
                .lock()
                .unwrap()
                .entry(req.target.to_string())
                .or_insert(rel);
        }
        Ok(i)
    }
    async fn set_deletion_protection(&self, id: &InstanceId, on: bool) -> Result<(), StepError> {
        self.inner.set_deletion_protection(id, on).await
    }
    async fn delete_instance(&self, id: &InstanceId) -> Result<(), StepError> {
        self.inner.delete_instance(id).await
    }
    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<(), StepError> {
        self.inner.delete_snapshot(id).await
    }
    async fn list_instances(&self, prefix: &str) -> Result<Vec<DbInstance>, StepError> {
        self.inner.list_instances(prefix).await
    }
    async fn list_snapshots(&self, prefix: &str) -> Result<Vec<DbSnapshot>, StepError> {
        self.inner.list_snapshots(prefix).await
    }
    async fn headroom(&self) -> Result<Headroom, StepError> {
        self.rec.push(Call {
            principal: self.principal.clone(),
            caller: self.caller.clone(),
            service: "RDS".into(),
            operation: "DescribeAccountAttributes".into(),
            params: json!({}),
            status: Some(200),
            via: "harness".into(),
            resource_tags: None,
        });
        Ok(HEADROOM)
    }
}

/// ECS as the steps see it: the adapter and the fault layer.
pub struct HarnessEcs {
    pub inner: Arc<dyn Services>,
    pub faults: Arc<Faults>,
    pub caller: String,
}

#[async_trait]
impl Services for HarnessEcs {
    async fn force_deployment(&self, service: &ServiceRef) -> Result<String, StepError> {
        let id = self.inner.force_deployment(service).await?;
        if self.caller == "roll-ecs" {
            self.faults
                .forced
                .lock()
                .unwrap()
                .insert(id.clone(), service.service.clone());
        }
        if self.caller == "roll-ecs"
            && self.faults.has(&Fault::RolloutFails {
                tenant: service.service.clone(),
            })
        {
            self.faults
                .failed_deployments
                .lock()
                .unwrap()
                .insert(id.clone());
            self.faults.note(format!(
                "RolloutFails: deployment {id} of {} will report FAILED",
                service.service
            ));
        }
        Ok(id)
    }
    async fn primary_deployment(
        &self,
        service: &ServiceRef,
    ) -> Result<Option<PrimaryDeployment>, StepError> {
        self.inner.primary_deployment(service).await
    }
    async fn deployment(
        &self,
        service: &ServiceRef,
        id: &str,
    ) -> Result<Option<DeploymentStatus>, StepError> {
        let mut d = self.inner.deployment(service, id).await?;
        if let Some(x) = d.as_mut() {
            if self.faults.failed_deployments.lock().unwrap().contains(id) {
                x.rollout_state = "FAILED".into();
                x.running = 0;
            } else if x.rollout_state == "COMPLETED" {
                let tenant = self.faults.forced.lock().unwrap().get(id).cloned();
                if let Some(t) = tenant {
                    if self.faults.still_pending(&format!("rollout:{t}")) {
                        self.faults.note(format!(
                            "RolloutPending: deployment {id} of {t} reported IN_PROGRESS"
                        ));
                        x.rollout_state = "IN_PROGRESS".into();
                        x.running = 0;
                    }
                }
            }
        }
        Ok(d)
    }
}

/// SSM as the steps see it: the adapter and the fault layer (a moved pointer).
pub struct HarnessSsm {
    pub inner: Arc<dyn Parameters>,
    pub faults: Arc<Faults>,
    pub caller: String,
    /// An unrecorded client that writes as "another writer".
    pub other_writer: aws_sdk_ssm::Client,
}

#[async_trait]
impl Parameters for HarnessSsm {
    async fn get(&self, name: &str) -> Result<Option<Parameter>, StepError> {
        self.before_read(name).await;
        self.inner.get(name).await
    }
    async fn get_dated(&self, name: &str) -> Result<Option<DatedParameter>, StepError> {
        self.before_read(name).await;
        self.inner.get_dated(name).await
    }
    async fn create(&self, name: &str, value: &str) -> Result<Option<i64>, StepError> {
        self.inner.create(name, value).await
    }
    async fn put(&self, name: &str, value: &str) -> Result<i64, StepError> {
        self.inner.put(name, value).await
    }
    async fn delete(&self, name: &str) -> Result<(), StepError> {
        self.inner.delete(name).await
    }
    async fn list(&self, path: &str) -> Result<Vec<Parameter>, StepError> {
        self.inner.list(path).await
    }
}

impl HarnessSsm {
    async fn before_read(&self, name: &str) {
        if self.caller != "flip-ssm" {
            return;
        }
        let Some(tenant) = name
            .strip_prefix("/tenantflow/")
            .and_then(|r| r.strip_suffix("/db"))
        else {
            return;
        };
        if !self.faults.pointer_moves(tenant) {
            return;
        }
        let cur = self
            .other_writer
            .get_parameter()
            .name(name)
            .send()
            .await
            .expect("read the pointer to rewrite it");
        let value = cur.parameter().and_then(|p| p.value()).unwrap().to_string();
        self.other_writer
            .put_parameter()
            .name(name)
            .value(value)
            .overwrite(true)
            .send()
            .await
            .expect("rewrite the pointer");
        self.faults.note(format!(
            "PointerMovedBeforeFlip: another writer rewrote {name} (same value, new version)"
        ));
    }
}

/// Summary of a fault layer for messages.
pub fn describe(faults: &Faults) -> BTreeMap<usize, String> {
    faults
        .injected
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .enumerate()
        .collect()
}

/// An emulator gap: moto has no RDS `DescribeAccountAttributes`, so the operator's quota read
/// (`tenantflow plan --aws`, [`tenantflow_aws::ops::plan_input::QuotaSource`]) is answered here:
/// `Used` counted from moto's own DB instances and manual snapshots, as RDS counts them, and
/// `Max` as given. The real source (the RDS client) parses the operation's `AccountQuotas`.
#[cfg(feature = "ops")]
pub struct HarnessQuotas {
    /// Unrecorded: the operator's role is not in the template, so nothing is evaluated for IAM.
    pub admin_rds: aws_sdk_rds::Client,
    pub max_instances: u64,
    pub max_snapshots: u64,
}

#[cfg(feature = "ops")]
#[async_trait]
impl tenantflow_aws::ops::plan_input::QuotaSource for HarnessQuotas {
    async fn account_quotas(
        &self,
    ) -> tenantflow_aws::ops::OpsResult<tenantflow_aws::ops::plan_input::AccountQuotas> {
        use tenantflow_aws::ops::plan_input::{AccountQuotas, Quota};
        let instances = self
            .admin_rds
            .describe_db_instances()
            .send()
            .await
            .expect("DescribeDBInstances")
            .db_instances()
            .len() as u64;
        let snapshots = self
            .admin_rds
            .describe_db_snapshots()
            .snapshot_type("manual")
            .send()
            .await
            .expect("DescribeDBSnapshots")
            .db_snapshots()
            .len() as u64;
        Ok(AccountQuotas {
            db_instances: Quota {
                used: instances,
                max: self.max_instances,
            },
            manual_snapshots: Quota {
                used: snapshots,
                max: self.max_snapshots,
            },
        })
    }
}
