//! Each port operation of `tenantflow-aws` against moto, recorded under the role of a step that
//! makes it in production, and evaluated against the template's IAM. (The workflow scenarios run
//! every step with its own role; these pin down each adapter's behaviour on a real wire protocol.)
//!
//! Two adapters no step uses in production are exercised for behaviour only, under the role that
//! would own the call: `CodeBuildMigrations` (the state machine runs builds with
//! `startBuild.sync`; its calls are evaluated as the state machine's role) and
//! `SecretsManagerSecrets` (CodeBuild resolves the Flyway secret itself; not evaluated).

use super::env::Env;
use super::layers::HEADROOM;
use super::stack::{old_instance, OLD_GEN};
use serde_json::json;
use std::collections::BTreeMap;
use tenantflow_core::model::ServiceRef;
use tenantflow_core::names::{InstanceId, SnapshotId};
use tenantflow_core::ports::RestoreRequest;
use tenantflow_core::steps::StepName;
use tenantflow_core::StepError;

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_operations() {
    let env = Env::new("adapters_rds", vec![]).await;
    env.deploy_stack().await;
    let ns = format!("{}-rds", env.template().namespace());
    env.add_tenant(&ns).await;
    let old = InstanceId::parse(&old_instance(&ns)).unwrap();
    let snap = SnapshotId::parse(&format!("{ns}-20261103101500")).unwrap();
    let new = InstanceId::parse(&format!("{ns}-20261103101500")).unwrap();
    let run = "arn:aws:states:eu-west-1:123456789012:execution:x-release:run-1";
    let mine = tags(&[("tenantflow:namespace", &ns), ("tenantflow:run", run)]);
    let other = tags(&[("tenantflow:namespace", &ns), ("tenantflow:run", "another")]);

    // snapshot: describe the active instance, create the snapshot (again: reused, else Conflict).
    let db = env.raw_ports(StepName::Snapshot).databases;
    let active = db.describe_instance(&old).await.unwrap().unwrap();
    assert_eq!(active.status, "available");
    assert!(active.deletion_protection);
    let s = db.create_snapshot(&old, &snap, &mine).await.unwrap();
    assert_eq!(s.id, snap);
    assert_eq!(
        db.create_snapshot(&old, &snap, &mine).await.unwrap().id,
        snap
    );
    assert!(matches!(
        db.create_snapshot(&old, &snap, &other).await,
        Err(StepError::Conflict(_))
    ));
    assert!(db
        .describe_instance(&InstanceId::parse(&format!("{ns}-20000101000000")).unwrap())
        .await
        .unwrap()
        .is_none());

    // await-resource: judge the snapshot.
    let db = env.raw_ports(StepName::AwaitResource).databases;
    let got = db.describe_snapshot(&snap).await.unwrap().unwrap();
    assert_eq!(got.status, "available");
    assert_eq!(
        got.tags.get("tenantflow:run").map(String::as_str),
        Some(run)
    );

    // create-db: restore with the active instance's settings; again: reused.
    let db = env.raw_ports(StepName::CreateDb).databases;
    let req = RestoreRequest {
        snapshot: snap.clone(),
        target: new.clone(),
        template: old.clone(),
        tags: mine.clone(),
    };
    let i = db.restore_instance(&req).await.unwrap();
    assert_eq!(i.id, new);
    // The request asks for an unprotected, private candidate with the template's groups. (moto
    // ignores false overrides and copies the source's protection: checked on the wire instead.)
    let calls = env.rec.calls();
    let restore = &calls
        .iter()
        .find(|c| c.operation == "RestoreDBInstanceFromDBSnapshot")
        .unwrap()
        .params;
    assert_eq!(restore["DeletionProtection"], "false");
    assert_eq!(restore["PubliclyAccessible"], "false");
    assert_eq!(restore["DBParameterGroupName"], "tenant-postgres13");
    assert_eq!(restore["OptionGroupName"], "tenant-postgres13-options");
    assert_eq!(db.restore_instance(&req).await.unwrap().id, new);

    // flip-ssm: protect the new generation.
    let db = env.raw_ports(StepName::FlipSsm).databases;
    db.set_deletion_protection(&new, true).await.unwrap();
    assert!(
        db.describe_instance(&new)
            .await
            .unwrap()
            .unwrap()
            .deletion_protection
    );

    // teardown: list, unprotect and delete the old generation, prune snapshots; absent is fine.
    let db = env.raw_ports(StepName::Teardown).databases;
    let listed = db.list_instances(&format!("{ns}-")).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(db.list_snapshots(&format!("{ns}-")).await.unwrap().len(), 1);
    db.set_deletion_protection(&old, false).await.unwrap();
    db.delete_instance(&old).await.unwrap();
    db.delete_instance(&old).await.unwrap();
    db.delete_snapshot(&snap).await.unwrap();
    db.delete_snapshot(&snap).await.unwrap();
    assert!(db
        .list_snapshots(&format!("{ns}-"))
        .await
        .unwrap()
        .is_empty());

    // janitor: lists the account.
    let db = env.raw_ports(StepName::Janitor).databases;
    assert_eq!(db.list_instances(&format!("{ns}-")).await.unwrap().len(), 1);
    assert!(db.list_snapshots("").await.unwrap().is_empty());

    // list-tenants: quota headroom (moto lacks DescribeAccountAttributes; served by the harness).
    let db = env.ports(StepName::ListTenants).databases;
    assert_eq!(db.headroom().await.unwrap(), HEADROOM);
    let _ = OLD_GEN;
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_operations() {
    let env = Env::new("adapters_ssm", vec![]).await;
    env.deploy_stack().await;
    let ns = format!("{}-ssm", env.template().namespace());
    env.add_tenant(&ns).await;
    let pointer = format!("/tenantflow/{ns}/db");

    // snapshot: read the pointer (SSM holds only pointers; the lock is in the records table).
    let p = env.raw_ports(StepName::Snapshot).parameters;
    let read = p.get(&pointer).await.unwrap().unwrap();
    assert_eq!(read.version, 1);
    assert!(p
        .get(&format!("/tenantflow/{ns}-absent/db"))
        .await
        .unwrap()
        .is_none());

    // flip-ssm: overwrite the pointer, new version.
    let p = env.raw_ports(StepName::FlipSsm).parameters;
    assert_eq!(p.put(&pointer, &read.value).await.unwrap(), 2);

    // roll-ecs: when was the pointer written.
    let p = env.raw_ports(StepName::RollEcs).parameters;
    let dated = p.get_dated(&pointer).await.unwrap().unwrap();
    assert_eq!(dated.parameter.version, 2);
    assert!(dated.modified_at.is_some(), "SSM reports LastModifiedDate");

    // snapshot takes the lock, a second holder is refused, teardown releases it (a conditional
    // write each time).
    let tenant = tenantflow_core::names::Namespace::parse(&ns).unwrap();
    let r = env.raw_ports(StepName::Snapshot).records;
    use tenantflow_core::ports::LockTake;
    assert!(matches!(
        r.acquire(&tenant, "run-1", "run-1").await.unwrap(),
        LockTake::Taken(_)
    ));
    assert!(matches!(
        r.acquire(&tenant, "run-2", "run-2").await.unwrap(),
        LockTake::Held(_)
    ));
    let r = env.raw_ports(StepName::Teardown).records;
    assert!(r.release(&tenant, "run-1").await.unwrap());
    assert!(!r.release(&tenant, "run-1").await.unwrap());

    // list-tenants: discover tenants under /tenantflow/.
    let p = env.raw_ports(StepName::ListTenants).parameters;
    let all = p.list("/tenantflow/").await.unwrap();
    assert!(all.iter().any(|x| x.name == pointer), "{all:?}");
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_ecs_codebuild_events_operations() {
    let env = Env::new("adapters_s3_ecs", vec![]).await;
    env.deploy_stack().await;
    let ns = format!("{}-ecs", env.template().namespace());
    env.add_tenant(&ns).await;
    let bucket = env.template().release_bucket();
    let (key, _) = env.upload_release("r-adapters", json!({})).await;

    // list-tenants: read the manifest, write the plan under runs/.
    let o = env.raw_ports(StepName::ListTenants).objects;
    assert!(o.get(&bucket, &key).await.unwrap().is_some());
    assert!(o
        .get(&bucket, "releases/r-adapters/absent.json")
        .await
        .unwrap()
        .is_none());
    o.put(&bucket, "runs/adapters/plan.json", b"{}")
        .await
        .unwrap();
    let listed = o.list(&bucket, "releases/r-adapters/").await.unwrap();
    // The two scripts, SHA256SUMS and the manifest.
    assert_eq!(listed.len(), 4, "{listed:?}");

    // report: read the run's artefacts, list them, put the run event.
    let report = env.raw_ports(StepName::Report);
    assert_eq!(
        report
            .objects
            .list(&bucket, "runs/adapters/")
            .await
            .unwrap(),
        vec!["runs/adapters/plan.json".to_string()]
    );
    report
        .events
        .put_event("Run Completed", &json!({"run": "adapters"}))
        .await
        .unwrap();

    // roll-ecs: force a deployment; the PRIMARY one is it.
    let svc = ServiceRef {
        cluster: env.default_cluster(),
        service: ns.clone(),
    };
    let s = env.raw_ports(StepName::RollEcs).services;
    let id = s.force_deployment(&svc).await.unwrap();
    assert_eq!(s.primary_deployment(&svc).await.unwrap().unwrap().id, id);

    // check-ecs: judge that deployment (moto: COMPLETED with running == desired).
    let s = env.raw_ports(StepName::CheckEcs).services;
    let d = s.deployment(&svc, &id).await.unwrap().unwrap();
    assert_eq!((d.rollout_state.as_str(), d.primary), ("COMPLETED", true));
    assert_eq!(d.running, d.desired);
    let missing = ServiceRef {
        cluster: env.default_cluster(),
        service: format!("{ns}-none"),
    };
    assert!(matches!(
        s.deployment(&missing, &id).await,
        Err(StepError::NotFound(_))
    ));

    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_operations() {
    let env = Env::new("adapters_sfn", vec![]).await;
    // trigger: start (same name and input again: duplicate; other input: Conflict).
    let w = env.raw_ports(StepName::Trigger).workflows;
    let a = w.start_execution("run-1", r#"{"a":1}"#).await.unwrap();
    assert!(!a.duplicate);
    let again = w.start_execution("run-1", r#"{ "a": 1 }"#).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.execution_arn, a.execution_arn);
    assert!(matches!(
        w.start_execution("run-1", r#"{"a":2}"#).await,
        Err(StepError::Conflict(_))
    ));

    // janitor: the lock holder's status.
    let w = env.raw_ports(StepName::Janitor).workflows;
    assert_eq!(
        w.execution_status(&a.execution_arn)
            .await
            .unwrap()
            .as_deref(),
        Some("RUNNING")
    );
    let gone = a.execution_arn.replace("run-1", "run-0");
    assert_eq!(w.execution_status(&gone).await.unwrap(), None);

    // await-resource: a token no task waits on is NotFound.
    let w = env.raw_ports(StepName::AwaitResource).workflows;
    assert!(matches!(
        w.send_task_success("no-such-token", "{}").await,
        Err(StepError::NotFound(_))
    ));
    assert!(matches!(
        w.send_task_failure("no-such-token", "E", "c").await,
        Err(StepError::NotFound(_))
    ));

    env.check_iam();
}

/// Invariant 7 on the real adapters: bad input is refused before any AWS call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_makes_no_call() {
    let env = Env::new("adapters_bad_input", vec![]).await;
    for step in StepName::ALL {
        let bad = json!({"tenant": "Not A Tenant!", "unexpected": true});
        let r = env.step(step, bad).await;
        assert!(
            matches!(r, Err(StepError::InvalidInput { .. })),
            "{}: {r:?}",
            step.as_str()
        );
    }
    assert!(env.rec.calls().is_empty(), "{:?}", env.rec.calls());
}
