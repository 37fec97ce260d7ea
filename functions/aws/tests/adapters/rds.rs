//! `RdsDatabases` against aws-smithy-mocks: every operation, reuse paths, error classification.

use crate::common;

use aws_sdk_rds::operation::create_db_snapshot::{CreateDBSnapshotError, CreateDbSnapshotOutput};
use aws_sdk_rds::operation::delete_db_instance::{DeleteDBInstanceError, DeleteDbInstanceOutput};
use aws_sdk_rds::operation::delete_db_snapshot::{DeleteDBSnapshotError, DeleteDbSnapshotOutput};
use aws_sdk_rds::operation::describe_account_attributes::DescribeAccountAttributesOutput;
use aws_sdk_rds::operation::describe_db_instances::{
    DescribeDBInstancesError, DescribeDbInstancesOutput,
};
use aws_sdk_rds::operation::describe_db_snapshots::{
    DescribeDBSnapshotsError, DescribeDbSnapshotsOutput,
};
use aws_sdk_rds::operation::modify_db_instance::ModifyDbInstanceOutput;
use aws_sdk_rds::operation::restore_db_instance_from_db_snapshot::{
    RestoreDBInstanceFromDBSnapshotError, RestoreDbInstanceFromDbSnapshotOutput,
};
use aws_sdk_rds::types::error::{
    DbInstanceAlreadyExistsFault, DbInstanceNotFoundFault, DbSnapshotAlreadyExistsFault,
    DbSnapshotNotFoundFault, InvalidDbInstanceStateFault, SnapshotQuotaExceededFault,
};
use aws_sdk_rds::types::{
    AccountQuota, DbInstance, DbParameterGroupStatus, DbSnapshot, DbSubnetGroup, Endpoint,
    OptionGroupMembership, Tag, VpcSecurityGroupMembership,
};
use aws_sdk_rds::Client;
use aws_smithy_mocks::mock;
use tenantflow_aws::RdsDatabases;
use tenantflow_core::names::{InstanceId, SnapshotId};
use tenantflow_core::ports::{Databases, RestoreRequest, Tags};
use tenantflow_core::StepError;

const OLD: &str = "xy-0146-prod-20261020083000";
const NEW: &str = "xy-0146-prod-20261103101500";
const RUN: &str = "arn:aws:states:eu-west-1:123456789012:execution:tenantflow-release:r1-abc";

fn iid(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid id")
}
fn sid(s: &str) -> SnapshotId {
    SnapshotId::parse(s).expect("valid id")
}
fn our_tags(run: &str) -> Tags {
    [
        ("tenantflow:namespace", "xy-0146-prod"),
        ("tenantflow:release", "2026-11-03-points"),
        ("tenantflow:run", run),
        ("tenantflow:role", "candidate"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
fn sdk_tags(t: &Tags) -> Vec<Tag> {
    t.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}
fn instance(id: &str, status: &str, tags: &Tags) -> DbInstance {
    DbInstance::builder()
        .db_instance_identifier(id)
        .db_instance_status(status)
        .endpoint(
            Endpoint::builder()
                .address(format!("{id}.c9akciq32.eu-west-1.rds.amazonaws.com"))
                .port(5432)
                .build(),
        )
        .deletion_protection(true)
        .set_tag_list(Some(sdk_tags(tags)))
        .build()
}
fn template() -> DbInstance {
    DbInstance::builder()
        .db_instance_identifier(OLD)
        .db_instance_status("available")
        .db_instance_class("db.r6g.large")
        .db_subnet_group(
            DbSubnetGroup::builder()
                .db_subnet_group_name("tenants-private")
                .build(),
        )
        .vpc_security_groups(
            VpcSecurityGroupMembership::builder()
                .vpc_security_group_id("sg-0a1")
                .build(),
        )
        .vpc_security_groups(
            VpcSecurityGroupMembership::builder()
                .vpc_security_group_id("sg-0b2")
                .build(),
        )
        .db_parameter_groups(
            DbParameterGroupStatus::builder()
                .db_parameter_group_name("tenant-pg16")
                .build(),
        )
        .option_group_memberships(
            OptionGroupMembership::builder()
                .option_group_name("default:postgres-16")
                .build(),
        )
        .multi_az(true)
        .storage_type("io1")
        .iops(3000)
        .publicly_accessible(true)
        .build()
}
fn snapshot(id: &str, tags: &Tags) -> DbSnapshot {
    DbSnapshot::builder()
        .db_snapshot_identifier(id)
        .db_instance_identifier(OLD)
        .status("creating")
        .set_tag_list(Some(sdk_tags(tags)))
        .build()
}

#[tokio::test]
async fn describe_instance_maps_fields() {
    let tags = our_tags(RUN);
    let t = tags.clone();
    let r = mock!(Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() == Some(NEW))
        .then_output(move || {
            DescribeDbInstancesOutput::builder()
                .db_instances(instance(NEW, "available", &t))
                .build()
        });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let got = db
        .describe_instance(&iid(NEW))
        .await
        .expect("ok")
        .expect("some");
    assert_eq!(got.id.as_str(), NEW);
    assert_eq!(got.status, "available");
    assert_eq!(got.port, 5432);
    assert!(got.endpoint.starts_with(NEW));
    assert!(got.deletion_protection);
    assert_eq!(got.tags, tags);
}

#[tokio::test]
async fn describe_missing_instance_and_snapshot_are_none() {
    let a = mock!(Client::describe_db_instances).then_error(|| {
        DescribeDBInstancesError::DbInstanceNotFoundFault(
            DbInstanceNotFoundFault::builder().build(),
        )
    });
    let b = mock!(Client::describe_db_snapshots).then_error(|| {
        DescribeDBSnapshotsError::DbSnapshotNotFoundFault(
            DbSnapshotNotFoundFault::builder().build(),
        )
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&a, &b]));
    assert_eq!(db.describe_instance(&iid(NEW)).await, Ok(None));
    assert_eq!(db.describe_snapshot(&sid(NEW)).await, Ok(None));
}

#[tokio::test]
async fn describe_snapshot_maps_fields() {
    let t = our_tags(RUN);
    let r = mock!(Client::describe_db_snapshots)
        .match_requests(|r| r.db_snapshot_identifier() == Some(NEW))
        .then_output(move || {
            DescribeDbSnapshotsOutput::builder()
                .db_snapshots(snapshot(NEW, &t))
                .build()
        });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let s = db
        .describe_snapshot(&sid(NEW))
        .await
        .expect("ok")
        .expect("some");
    assert_eq!(s.id.as_str(), NEW);
    assert_eq!(s.source_instance, OLD);
    assert_eq!(s.status, "creating");
    assert_eq!(s.tags.get("tenantflow:run").map(String::as_str), Some(RUN));
}

#[tokio::test]
async fn create_snapshot_sends_ids_and_tags() {
    let t = our_tags(RUN);
    let t2 = t.clone();
    let r = mock!(Client::create_db_snapshot)
        .match_requests(|r| {
            r.db_instance_identifier() == Some(OLD)
                && r.db_snapshot_identifier() == Some(NEW)
                && r.tags()
                    .iter()
                    .any(|t| t.key() == Some("tenantflow:run") && t.value() == Some(RUN))
        })
        .then_output(move || {
            CreateDbSnapshotOutput::builder()
                .db_snapshot(snapshot(NEW, &t2))
                .build()
        });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let s = db
        .create_snapshot(&iid(OLD), &sid(NEW), &t)
        .await
        .expect("ok");
    assert_eq!(s.id.as_str(), NEW);
    assert_eq!(r.num_calls(), 1);
}

fn snapshot_exists(existing: Tags) -> (aws_smithy_mocks::Rule, aws_smithy_mocks::Rule) {
    let create = mock!(Client::create_db_snapshot).then_error(|| {
        CreateDBSnapshotError::DbSnapshotAlreadyExistsFault(
            DbSnapshotAlreadyExistsFault::builder().build(),
        )
    });
    let describe = mock!(Client::describe_db_snapshots).then_output(move || {
        DescribeDbSnapshotsOutput::builder()
            .db_snapshots(snapshot(NEW, &existing))
            .build()
    });
    (create, describe)
}

#[tokio::test]
async fn existing_snapshot_of_this_run_is_reused() {
    let (c, d) = snapshot_exists(our_tags(RUN));
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&c, &d]));
    let s = db
        .create_snapshot(&iid(OLD), &sid(NEW), &our_tags(RUN))
        .await
        .expect("reused");
    assert_eq!(s.id.as_str(), NEW);
    assert_eq!((c.num_calls(), d.num_calls()), (1, 1));
}

#[tokio::test]
async fn existing_snapshot_of_another_run_is_conflict() {
    let (c, d) = snapshot_exists(our_tags("arn:aws:states:eu-west-1:1:execution:x:other"));
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&c, &d]));
    let e = db
        .create_snapshot(&iid(OLD), &sid(NEW), &our_tags(RUN))
        .await
        .expect_err("conflict");
    assert!(matches!(e, StepError::Conflict(_)), "{e:?}");
}

#[tokio::test]
async fn existing_snapshot_without_tags_is_conflict() {
    let (c, d) = snapshot_exists(Tags::new());
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&c, &d]));
    let e = db
        .create_snapshot(&iid(OLD), &sid(NEW), &our_tags(RUN))
        .await
        .expect_err("conflict");
    assert!(matches!(e, StepError::Conflict(_)), "{e:?}");
}

#[tokio::test]
async fn create_snapshot_typed_faults() {
    let q = mock!(Client::create_db_snapshot).then_error(|| {
        CreateDBSnapshotError::SnapshotQuotaExceededFault(
            SnapshotQuotaExceededFault::builder().build(),
        )
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&q]));
    let e = db
        .create_snapshot(&iid(OLD), &sid(NEW), &our_tags(RUN))
        .await;
    assert!(matches!(e, Err(StepError::QuotaExceeded(_))), "{e:?}");

    let s = mock!(Client::create_db_snapshot).then_error(|| {
        CreateDBSnapshotError::InvalidDbInstanceStateFault(
            InvalidDbInstanceStateFault::builder().build(),
        )
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&s]));
    let e = db
        .create_snapshot(&iid(OLD), &sid(NEW), &our_tags(RUN))
        .await;
    assert!(matches!(e, Err(StepError::NotReady { .. })), "{e:?}");

    let n = mock!(Client::create_db_snapshot).then_error(|| {
        CreateDBSnapshotError::DbInstanceNotFoundFault(DbInstanceNotFoundFault::builder().build())
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&n]));
    let e = db
        .create_snapshot(&iid(OLD), &sid(NEW), &our_tags(RUN))
        .await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
}

fn restore_req() -> RestoreRequest {
    RestoreRequest {
        snapshot: sid(NEW),
        target: iid(NEW),
        template: iid(OLD),
        tags: our_tags(RUN),
    }
}

#[tokio::test]
async fn restore_copies_settings_from_the_active_instance_and_is_never_public() {
    let tpl = mock!(Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() == Some(OLD))
        .then_output(|| {
            DescribeDbInstancesOutput::builder()
                .db_instances(template())
                .build()
        });
    let t = our_tags(RUN);
    let restore = mock!(Client::restore_db_instance_from_db_snapshot)
        .match_requests(|r| {
            r.db_instance_identifier() == Some(NEW)
                && r.db_snapshot_identifier() == Some(NEW)
                && r.db_instance_class() == Some("db.r6g.large")
                && r.db_subnet_group_name() == Some("tenants-private")
                && r.vpc_security_group_ids() == ["sg-0a1".to_string(), "sg-0b2".to_string()]
                && r.db_parameter_group_name() == Some("tenant-pg16")
                && r.option_group_name() == Some("default:postgres-16")
                && r.multi_az() == Some(true)
                && r.storage_type() == Some("io1")
                && r.iops() == Some(3000)
                && r.publicly_accessible() == Some(false)
                && r.tags()
                    .iter()
                    .any(|t| t.key() == Some("tenantflow:role") && t.value() == Some("candidate"))
        })
        .then_output(move || {
            RestoreDbInstanceFromDbSnapshotOutput::builder()
                .db_instance(instance(NEW, "creating", &t))
                .build()
        });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&tpl, &restore]));
    let got = db.restore_instance(&restore_req()).await.expect("restored");
    assert_eq!(got.id.as_str(), NEW);
    assert_eq!(got.status, "creating");
    assert_eq!(
        restore.num_calls(),
        1,
        "request did not match the expected copy of settings"
    );
}

fn restore_exists(existing: Tags) -> Vec<aws_smithy_mocks::Rule> {
    let tpl = mock!(Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() == Some(OLD))
        .then_output(|| {
            DescribeDbInstancesOutput::builder()
                .db_instances(template())
                .build()
        });
    let target = mock!(Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() == Some(NEW))
        .then_output(move || {
            DescribeDbInstancesOutput::builder()
                .db_instances(instance(NEW, "creating", &existing))
                .build()
        });
    let restore = mock!(Client::restore_db_instance_from_db_snapshot).then_error(|| {
        RestoreDBInstanceFromDBSnapshotError::DbInstanceAlreadyExistsFault(
            DbInstanceAlreadyExistsFault::builder().build(),
        )
    });
    vec![tpl, target, restore]
}

#[tokio::test]
async fn existing_candidate_of_this_run_is_reused() {
    let rules = restore_exists(our_tags(RUN));
    let refs: Vec<&aws_smithy_mocks::Rule> = rules.iter().collect();
    let db = RdsDatabases::new(client!(aws_sdk_rds, refs));
    let got = db.restore_instance(&restore_req()).await.expect("reused");
    assert_eq!(got.id.as_str(), NEW);
}

#[tokio::test]
async fn existing_instance_of_another_run_is_conflict() {
    let rules = restore_exists(our_tags("arn:aws:states:eu-west-1:1:execution:x:other"));
    let refs: Vec<&aws_smithy_mocks::Rule> = rules.iter().collect();
    let db = RdsDatabases::new(client!(aws_sdk_rds, refs));
    let e = db.restore_instance(&restore_req()).await;
    assert!(matches!(e, Err(StepError::Conflict(_))), "{e:?}");
}

#[tokio::test]
async fn restore_without_template_is_not_found() {
    let tpl = mock!(Client::describe_db_instances).then_error(|| {
        DescribeDBInstancesError::DbInstanceNotFoundFault(
            DbInstanceNotFoundFault::builder().build(),
        )
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&tpl]));
    let e = db.restore_instance(&restore_req()).await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
}

#[tokio::test]
async fn deletion_protection_is_applied_immediately() {
    let r = mock!(Client::modify_db_instance)
        .match_requests(|r| {
            r.db_instance_identifier() == Some(OLD)
                && r.deletion_protection() == Some(false)
                && r.apply_immediately() == Some(true)
        })
        .then_output(|| ModifyDbInstanceOutput::builder().build());
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    db.set_deletion_protection(&iid(OLD), false)
        .await
        .expect("ok");
    assert_eq!(r.num_calls(), 1);
}

#[tokio::test]
async fn delete_instance_skips_final_snapshot_and_absent_is_success() {
    let ok = mock!(Client::delete_db_instance)
        .match_requests(|r| {
            r.db_instance_identifier() == Some(OLD) && r.skip_final_snapshot() == Some(true)
        })
        .then_output(|| DeleteDbInstanceOutput::builder().build());
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&ok]));
    db.delete_instance(&iid(OLD)).await.expect("deleted");
    assert_eq!(ok.num_calls(), 1);

    let gone = mock!(Client::delete_db_instance).then_error(|| {
        DeleteDBInstanceError::DbInstanceNotFoundFault(DbInstanceNotFoundFault::builder().build())
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&gone]));
    assert_eq!(db.delete_instance(&iid(OLD)).await, Ok(()));
}

#[tokio::test]
async fn delete_instance_already_deleting_is_success() {
    let busy = mock!(Client::delete_db_instance).then_error(|| {
        DeleteDBInstanceError::InvalidDbInstanceStateFault(
            InvalidDbInstanceStateFault::builder().build(),
        )
    });
    let d = mock!(Client::describe_db_instances).then_output(|| {
        DescribeDbInstancesOutput::builder()
            .db_instances(instance(OLD, "deleting", &Tags::new()))
            .build()
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&busy, &d]));
    assert_eq!(db.delete_instance(&iid(OLD)).await, Ok(()));
}

#[tokio::test]
async fn delete_snapshot_and_absent_is_success() {
    let ok = mock!(Client::delete_db_snapshot)
        .match_requests(|r| r.db_snapshot_identifier() == Some(NEW))
        .then_output(|| DeleteDbSnapshotOutput::builder().build());
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&ok]));
    db.delete_snapshot(&sid(NEW)).await.expect("ok");
    assert_eq!(ok.num_calls(), 1);
    let gone = mock!(Client::delete_db_snapshot).then_error(|| {
        DeleteDBSnapshotError::DbSnapshotNotFoundFault(DbSnapshotNotFoundFault::builder().build())
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&gone]));
    assert_eq!(db.delete_snapshot(&sid(NEW)).await, Ok(()));
}

#[tokio::test]
async fn list_instances_follows_markers_and_filters_by_prefix() {
    let p1 = mock!(Client::describe_db_instances)
        .match_requests(|r| r.marker().is_none())
        .then_output(|| {
            DescribeDbInstancesOutput::builder()
                .db_instances(instance(OLD, "available", &Tags::new()))
                .db_instances(instance(
                    "other-app-prod-20260101000000",
                    "available",
                    &Tags::new(),
                ))
                .marker("page2")
                .build()
        });
    let p2 = mock!(Client::describe_db_instances)
        .match_requests(|r| r.marker() == Some("page2"))
        .then_output(|| {
            DescribeDbInstancesOutput::builder()
                .db_instances(instance(NEW, "creating", &Tags::new()))
                .build()
        });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&p1, &p2]));
    let got = db.list_instances("xy-0146-prod-").await.expect("ok");
    let ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [OLD, NEW]);
}

#[tokio::test]
async fn list_snapshots_asks_for_manual_ones_and_filters_by_prefix() {
    let r = mock!(Client::describe_db_snapshots)
        .match_requests(|r| r.snapshot_type() == Some("manual"))
        .then_output(|| {
            DescribeDbSnapshotsOutput::builder()
                .db_snapshots(snapshot(NEW, &Tags::new()))
                .db_snapshots(snapshot("zz-0001-dev-20260101000000", &Tags::new()))
                .build()
        });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let got = db.list_snapshots("xy-0146-prod-").await.expect("ok");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id.as_str(), NEW);
}

#[tokio::test]
async fn headroom_from_account_attributes() {
    let r = mock!(Client::describe_account_attributes).then_output(|| {
        DescribeAccountAttributesOutput::builder()
            .account_quotas(
                AccountQuota::builder()
                    .account_quota_name("DBInstances")
                    .used(31)
                    .max(40)
                    .build(),
            )
            .account_quotas(
                AccountQuota::builder()
                    .account_quota_name("ManualSnapshots")
                    .used(100)
                    .max(100)
                    .build(),
            )
            .build()
    });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let h = db.headroom().await.expect("ok");
    assert_eq!((h.instances, h.snapshots), (9, 0));
}

#[tokio::test]
async fn throttling_is_transient() {
    let r = mock!(Client::describe_db_instances)
        .then_error(|| DescribeDBInstancesError::generic(common::code("Throttling")));
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let e = db.describe_instance(&iid(NEW)).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

#[tokio::test]
async fn server_error_is_transient() {
    let r = mock!(Client::create_db_snapshot)
        .then_http_response(|| common::http(500, common::QUERY_500));
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let e = db
        .create_snapshot(&iid(OLD), &sid(NEW), &our_tags(RUN))
        .await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

#[tokio::test]
async fn unknown_client_error_is_internal() {
    let r = mock!(Client::describe_account_attributes)
        .then_error(|| aws_sdk_rds::operation::describe_account_attributes::DescribeAccountAttributesError::generic(
            aws_smithy_types::error::ErrorMetadata::builder().code("AccessDenied").message("no").build(),
        ));
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    let e = db.headroom().await;
    assert!(matches!(e, Err(StepError::Internal(_))), "{e:?}");
}

/// What one restore request asked for: (Iops, StorageThroughput, BackupRetentionPeriod).
type Sent = (Option<i32>, Option<i32>, Option<i32>);

/// Restores from a template instance with the given storage, and returns what the request sent.
async fn restore_sent(engine: &str, storage_type: &str, gib: i32, iops: i32, mibps: i32) -> Sent {
    let tpl = DbInstance::builder()
        .db_instance_identifier(OLD)
        .db_instance_status("available")
        .engine(engine)
        .storage_type(storage_type)
        .allocated_storage(gib)
        .iops(iops)
        .storage_throughput(mibps)
        .backup_retention_period(7)
        .build();
    let describe = mock!(Client::describe_db_instances)
        .match_requests(|r| r.db_instance_identifier() == Some(OLD))
        .then_output(move || {
            DescribeDbInstancesOutput::builder()
                .db_instances(tpl.clone())
                .build()
        });
    let sent: std::sync::Arc<std::sync::Mutex<Vec<Sent>>> = Default::default();
    let seen = sent.clone();
    let t = our_tags(RUN);
    let restore = mock!(Client::restore_db_instance_from_db_snapshot)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.iops(),
                r.storage_throughput(),
                r.backup_retention_period(),
            ));
            true
        })
        .then_output(move || {
            RestoreDbInstanceFromDbSnapshotOutput::builder()
                .db_instance(instance(NEW, "creating", &t))
                .build()
        });
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&describe, &restore]));
    db.restore_instance(&restore_req()).await.expect("restored");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "one restore request");
    sent[0]
}

/// gp3 below the engine's threshold reports its baseline (3,000 IOPS, 125 MiB/s) in
/// DescribeDBInstances, and RDS rejects those same values when a restore sends them
/// (InvalidParameterCombination). Thresholds: "Amazon RDS DB instance storage", gp3 table,
/// https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Storage.html (400 GiB for Db2,
/// MariaDB, MySQL, PostgreSQL; 200 GiB for Oracle; SQL Server at any size). The old code copied
/// them whatever the storage.
#[tokio::test]
async fn restore_sends_iops_and_throughput_only_where_rds_accepts_them() {
    let cases = [
        // engine, storage type, GiB, reported IOPS, reported MiB/s, expected (IOPS, MiB/s)
        ("postgres", "gp3", 100, 3000, 125, (None, None)),
        ("postgres", "gp3", 399, 3000, 125, (None, None)),
        ("postgres", "gp3", 400, 12000, 500, (Some(12000), Some(500))),
        ("mysql", "gp3", 20, 3000, 125, (None, None)),
        ("mysql", "gp3", 1000, 15000, 750, (Some(15000), Some(750))),
        ("mariadb", "gp3", 300, 3000, 125, (None, None)),
        ("db2-se", "gp3", 100, 3000, 125, (None, None)),
        ("oracle-ee", "gp3", 150, 3000, 125, (None, None)),
        (
            "oracle-se2",
            "gp3",
            200,
            12000,
            500,
            (Some(12000), Some(500)),
        ),
        (
            "sqlserver-se",
            "gp3",
            20,
            3000,
            125,
            (Some(3000), Some(125)),
        ),
        ("postgres", "io1", 100, 5000, 0, (Some(5000), None)),
        ("mysql", "io2", 100, 8000, 0, (Some(8000), None)),
        ("postgres", "gp2", 100, 300, 0, (None, None)),
        ("some-new-engine", "gp3", 5000, 12000, 500, (None, None)),
    ];
    for (engine, st, gib, iops, mibps, want) in cases {
        let (got_iops, got_mibps, _) = restore_sent(engine, st, gib, iops, mibps).await;
        assert_eq!(
            (got_iops, got_mibps),
            want,
            "{engine} {st} {gib} GiB reporting {iops} IOPS / {mibps} MiB/s"
        );
    }
}

/// Since September 2025 a restored instance with backup retention > 0 takes a baseline backup
/// (hashicorp/terraform-provider-aws#44104). The restore must not set a retention of its own
/// (it keeps the snapshot's), and the one ModifyDBInstance call tenantflow makes on a serving
/// instance (deletion protection) must not touch its retention either.
#[tokio::test]
async fn neither_restore_nor_protection_changes_backup_retention() {
    let (_, _, retention) = restore_sent("postgres", "gp3", 100, 3000, 125).await;
    assert_eq!(retention, None, "restore sent BackupRetentionPeriod");
    let r = mock!(Client::modify_db_instance)
        .match_requests(|r| {
            r.backup_retention_period().is_none()
                && r.preferred_backup_window().is_none()
                && r.deletion_protection() == Some(true)
        })
        .then_output(|| ModifyDbInstanceOutput::builder().build());
    let db = RdsDatabases::new(client!(aws_sdk_rds, &[&r]));
    db.set_deletion_protection(&iid(OLD), true)
        .await
        .expect("ok");
    assert_eq!(r.num_calls(), 1);
}
