//! [`Databases`] on RDS: instances, manual snapshots, restore, deletion, quota headroom.

use crate::errors::{classify, describe, service};
use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance as SdkInstance, DbSnapshot as SdkSnapshot, Tag};
use aws_sdk_rds::Client;
use aws_smithy_types::date_time::Format;
use tenantflow_core::names::{InstanceId, SnapshotId};
use tenantflow_core::ports::{
    same_run, Databases, DbInstance, DbSnapshot, Headroom, RestoreRequest, Tags,
};
use tenantflow_core::StepError;

/// RDS adapter.
#[derive(Clone, Debug)]
pub struct RdsDatabases {
    client: Client,
}

impl RdsDatabases {
    pub fn new(client: Client) -> Self {
        RdsDatabases { client }
    }
}

fn tags_of(list: &[Tag]) -> Tags {
    list.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn to_instance(i: &SdkInstance) -> Result<DbInstance, StepError> {
    let raw = i.db_instance_identifier().unwrap_or_default();
    let id = InstanceId::parse(raw)
        .map_err(|e| StepError::Internal(format!("RDS returned instance id {raw:?}: {e}")))?;
    let (endpoint, port) = i
        .endpoint()
        .map(|e| {
            (
                e.address().unwrap_or_default().to_string(),
                e.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
            )
        })
        .unwrap_or_default();
    Ok(DbInstance {
        id,
        status: i.db_instance_status().unwrap_or("unknown").to_string(),
        endpoint,
        port,
        deletion_protection: i.deletion_protection().unwrap_or(false),
        tags: tags_of(i.tag_list()),
    })
}

fn to_snapshot(s: &SdkSnapshot) -> Result<DbSnapshot, StepError> {
    let raw = s.db_snapshot_identifier().unwrap_or_default();
    let id = SnapshotId::parse(raw)
        .map_err(|e| StepError::Internal(format!("RDS returned snapshot id {raw:?}: {e}")))?;
    Ok(DbSnapshot {
        id,
        source_instance: s.db_instance_identifier().unwrap_or_default().to_string(),
        status: s.status().unwrap_or("unknown").to_string(),
        created_at: s
            .snapshot_create_time()
            .and_then(|t| t.fmt(Format::DateTime).ok()),
        tags: tags_of(s.tag_list()),
    })
}

/// The `Iops` / `StorageThroughput` a restore may send, copied from the template instance.
///
/// `DescribeDBInstances` reports gp3's *baseline* figures (3,000 IOPS, 125 MiB/s) even where they
/// cannot be set, and RDS rejects explicit values there with `InvalidParameterCombination`. Per
/// "Amazon RDS DB instance storage" (<https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Storage.html>,
/// gp3 table), IOPS and throughput can be provisioned on gp3 only at or above
/// 400 GiB for Db2, MariaDB, MySQL and PostgreSQL, at or above 200 GiB for Oracle, and at any size
/// for SQL Server. `io1`/`io2` take `Iops` (required) but no throughput, which is gp3-only
/// (`StorageThroughput` in API_RestoreDBInstanceFromDBSnapshot). Anything else, or an engine or
/// size this rule does not know (RDS Custom included: throughput "doesn't apply"), sends neither: the restore then takes them from the snapshot
/// ("If this parameter isn't specified, the IOPS value is taken from the backup").
pub fn provisioned_performance(tpl: &SdkInstance) -> (Option<i32>, Option<i32>) {
    match tpl.storage_type() {
        Some("io1" | "io2") => (tpl.iops(), None),
        Some("gp3") => {
            let engine = tpl.engine().unwrap_or_default();
            let threshold_gib = if engine.starts_with("sqlserver") {
                Some(0)
            } else if engine.starts_with("oracle") {
                Some(200)
            } else if ["postgres", "mysql", "mariadb", "db2"]
                .iter()
                .any(|e| engine.starts_with(e))
            {
                Some(400)
            } else {
                None
            };
            match (threshold_gib, tpl.allocated_storage()) {
                (Some(t), Some(gib)) if gib >= t => (tpl.iops(), tpl.storage_throughput()),
                _ => (None, None),
            }
        }
        _ => (None, None),
    }
}

/// Free slots of one `DescribeAccountAttributes` quota; unknown quotas count as unlimited.
fn free(quotas: &[aws_sdk_rds::types::AccountQuota], name: &str) -> u32 {
    quotas
        .iter()
        .find(|q| q.account_quota_name() == Some(name))
        .and_then(|q| Some(q.max()?.saturating_sub(q.used().unwrap_or(0)).max(0)))
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or(u32::MAX)
}

#[async_trait]
impl Databases for RdsDatabases {
    async fn describe_instance(&self, id: &InstanceId) -> Result<Option<DbInstance>, StepError> {
        let op = "DescribeDBInstances";
        match self
            .client
            .describe_db_instances()
            .db_instance_identifier(id.as_str())
            .send()
            .await
        {
            Ok(out) => out.db_instances().first().map(to_instance).transpose(),
            Err(e) if service(&e).is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(None),
            Err(e) => Err(classify(op, e)),
        }
    }

    async fn describe_snapshot(&self, id: &SnapshotId) -> Result<Option<DbSnapshot>, StepError> {
        let op = "DescribeDBSnapshots";
        match self
            .client
            .describe_db_snapshots()
            .db_snapshot_identifier(id.as_str())
            .send()
            .await
        {
            Ok(out) => out.db_snapshots().first().map(to_snapshot).transpose(),
            Err(e) if service(&e).is_some_and(|s| s.is_db_snapshot_not_found_fault()) => Ok(None),
            Err(e) => Err(classify(op, e)),
        }
    }

    async fn create_snapshot(
        &self,
        source: &InstanceId,
        id: &SnapshotId,
        tags: &Tags,
    ) -> Result<DbSnapshot, StepError> {
        use aws_sdk_rds::operation::create_db_snapshot::CreateDBSnapshotError as E;
        let op = "CreateDBSnapshot";
        let res = self
            .client
            .create_db_snapshot()
            .db_instance_identifier(source.as_str())
            .db_snapshot_identifier(id.as_str())
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await;
        let err = match res {
            Ok(out) => {
                return match out.db_snapshot() {
                    Some(s) => to_snapshot(s),
                    None => Err(StepError::Internal(format!(
                        "{op}: no snapshot in response"
                    ))),
                }
            }
            Err(e) => e,
        };
        match service(&err) {
            Some(E::DbSnapshotAlreadyExistsFault(_)) => match self.describe_snapshot(id).await? {
                Some(s) if same_run(&s.tags, tags) => Ok(s),
                Some(s) => Err(StepError::Conflict(format!(
                    "snapshot {id} exists but is not this run's (tags {:?})",
                    s.tags
                ))),
                // Deleted between the two calls: a retry starts over.
                None => Err(StepError::Transient(format!(
                    "snapshot {id} existed and then vanished"
                ))),
            },
            Some(e @ E::DbInstanceNotFoundFault(_)) => Err(StepError::NotFound(describe(op, e))),
            Some(e @ E::InvalidDbInstanceStateFault(_)) => Err(StepError::NotReady {
                resource: source.to_string(),
                status: describe(op, e),
            }),
            Some(e @ E::SnapshotQuotaExceededFault(_)) => {
                Err(StepError::QuotaExceeded(describe(op, e)))
            }
            _ => Err(classify(op, err)),
        }
    }

    async fn restore_instance(&self, req: &RestoreRequest) -> Result<DbInstance, StepError> {
        use aws_sdk_rds::operation::restore_db_instance_from_db_snapshot::RestoreDBInstanceFromDBSnapshotError as E;
        let op = "RestoreDBInstanceFromDBSnapshot";
        let tpl = self
            .client
            .describe_db_instances()
            .db_instance_identifier(req.template.as_str())
            .send()
            .await;
        let tpl = match tpl {
            Ok(out) => out.db_instances().first().cloned().ok_or_else(|| {
                StepError::NotFound(format!("template instance {}", req.template))
            })?,
            Err(e) if service(&e).is_some_and(|s| s.is_db_instance_not_found_fault()) => {
                return Err(StepError::NotFound(format!(
                    "template instance {}",
                    req.template
                )))
            }
            Err(e) => return Err(classify("DescribeDBInstances", e)),
        };
        let (iops, throughput) = provisioned_performance(&tpl);
        // Neither BackupRetentionPeriod nor anything else of the serving instance is changed here:
        // the restore creates a new instance, and the snapshot's retention comes with it.
        let res = self
            .client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(req.target.as_str())
            .db_snapshot_identifier(req.snapshot.as_str())
            .set_db_instance_class(tpl.db_instance_class().map(str::to_string))
            .set_db_subnet_group_name(
                tpl.db_subnet_group()
                    .and_then(|g| g.db_subnet_group_name())
                    .map(str::to_string),
            )
            .set_vpc_security_group_ids(Some(
                tpl.vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
                    .collect(),
            ))
            .set_db_parameter_group_name(
                tpl.db_parameter_groups()
                    .first()
                    .and_then(|g| g.db_parameter_group_name())
                    .map(str::to_string),
            )
            .set_option_group_name(
                tpl.option_group_memberships()
                    .first()
                    .and_then(|g| g.option_group_name())
                    .map(str::to_string),
            )
            .set_multi_az(tpl.multi_az())
            .set_storage_type(tpl.storage_type().map(str::to_string))
            .set_iops(iops)
            .set_storage_throughput(throughput)
            // A candidate is never reachable from the internet, whatever the template says.
            .publicly_accessible(false)
            // Off so rollback can delete a failed candidate; flip/teardown protect the active one.
            .deletion_protection(false)
            .copy_tags_to_snapshot(true)
            .set_tags(Some(sdk_tags(&req.tags)))
            .send()
            .await;
        let err = match res {
            Ok(out) => {
                return match out.db_instance() {
                    Some(i) => to_instance(i),
                    None => Err(StepError::Internal(format!(
                        "{op}: no instance in response"
                    ))),
                }
            }
            Err(e) => e,
        };
        match service(&err) {
            Some(E::DbInstanceAlreadyExistsFault(_)) => {
                match self.describe_instance(&req.target).await? {
                    Some(i) if same_run(&i.tags, &req.tags) => Ok(i),
                    Some(i) => Err(StepError::Conflict(format!(
                        "instance {} exists but is not this run's (tags {:?})",
                        req.target, i.tags
                    ))),
                    None => Err(StepError::Transient(format!(
                        "instance {} existed and then vanished",
                        req.target
                    ))),
                }
            }
            Some(e @ E::DbSnapshotNotFoundFault(_)) => Err(StepError::NotFound(describe(op, e))),
            Some(e @ E::InvalidDbSnapshotStateFault(_)) => Err(StepError::NotReady {
                resource: req.snapshot.to_string(),
                status: describe(op, e),
            }),
            Some(
                e @ (E::InstanceQuotaExceededFault(_)
                | E::StorageQuotaExceededFault(_)
                | E::TenantDatabaseQuotaExceededFault(_)),
            ) => Err(StepError::QuotaExceeded(describe(op, e))),
            Some(e @ E::InsufficientDbInstanceCapacityFault(_)) => {
                Err(StepError::Transient(describe(op, e)))
            }
            _ => Err(classify(op, err)),
        }
    }

    async fn set_deletion_protection(&self, id: &InstanceId, on: bool) -> Result<(), StepError> {
        use aws_sdk_rds::operation::modify_db_instance::ModifyDBInstanceError as E;
        let op = "ModifyDBInstance";
        let res = self
            .client
            .modify_db_instance()
            .db_instance_identifier(id.as_str())
            .deletion_protection(on)
            .apply_immediately(true)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(err) => match service(&err) {
                Some(e @ E::DbInstanceNotFoundFault(_)) => {
                    Err(StepError::NotFound(describe(op, e)))
                }
                Some(e @ E::InvalidDbInstanceStateFault(_)) => Err(StepError::NotReady {
                    resource: id.to_string(),
                    status: describe(op, e),
                }),
                _ => Err(classify(op, err)),
            },
        }
    }

    async fn delete_instance(&self, id: &InstanceId) -> Result<(), StepError> {
        use aws_sdk_rds::operation::delete_db_instance::DeleteDBInstanceError as E;
        let op = "DeleteDBInstance";
        let res = self
            .client
            .delete_db_instance()
            .db_instance_identifier(id.as_str())
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(err) => match service(&err) {
                Some(E::DbInstanceNotFoundFault(_)) => Ok(()),
                Some(e @ E::InvalidDbInstanceStateFault(_)) => {
                    // Already being deleted by an earlier attempt: that is success.
                    match self.describe_instance(id).await? {
                        None => Ok(()),
                        Some(i) if i.status == "deleting" => Ok(()),
                        Some(i) => Err(StepError::NotReady {
                            resource: id.to_string(),
                            status: format!("{} ({})", i.status, describe(op, e)),
                        }),
                    }
                }
                _ => Err(classify(op, err)),
            },
        }
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<(), StepError> {
        use aws_sdk_rds::operation::delete_db_snapshot::DeleteDBSnapshotError as E;
        let op = "DeleteDBSnapshot";
        let res = self
            .client
            .delete_db_snapshot()
            .db_snapshot_identifier(id.as_str())
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(err) => match service(&err) {
                Some(E::DbSnapshotNotFoundFault(_)) => Ok(()),
                Some(e @ E::InvalidDbSnapshotStateFault(_)) => Err(StepError::NotReady {
                    resource: id.to_string(),
                    status: describe(op, e),
                }),
                _ => Err(classify(op, err)),
            },
        }
    }

    async fn list_instances(&self, prefix: &str) -> Result<Vec<DbInstance>, StepError> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_db_instances()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify("DescribeDBInstances", e))?;
            for i in out.db_instances() {
                if i.db_instance_identifier()
                    .is_some_and(|id| id.starts_with(prefix))
                {
                    found.push(to_instance(i)?);
                }
            }
            match out.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(found),
            }
        }
    }

    async fn list_snapshots(&self, prefix: &str) -> Result<Vec<DbSnapshot>, StepError> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_db_snapshots()
                .snapshot_type("manual")
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify("DescribeDBSnapshots", e))?;
            for s in out.db_snapshots() {
                if s.db_snapshot_identifier()
                    .is_some_and(|id| id.starts_with(prefix))
                {
                    found.push(to_snapshot(s)?);
                }
            }
            match out.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(found),
            }
        }
    }

    async fn headroom(&self) -> Result<Headroom, StepError> {
        let out = self
            .client
            .describe_account_attributes()
            .send()
            .await
            .map_err(|e| classify("DescribeAccountAttributes", e))?;
        let quotas = out.account_quotas();
        Ok(Headroom {
            instances: free(quotas, "DBInstances"),
            snapshots: free(quotas, "ManualSnapshots"),
        })
    }
}
