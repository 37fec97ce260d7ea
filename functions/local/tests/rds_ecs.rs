//! Local RDS (backup copies, async snapshot/restore with events on the virtual clock, quotas,
//! idempotency) and local ECS (the health rule).

mod common;
use std::collections::BTreeMap;
use std::time::Duration;
use tenantflow_core::model::{ActivePointer, ServiceRef};
use tenantflow_core::names::{GenerationTs, InstanceId, Namespace, SnapshotId};
use tenantflow_core::ports::{Databases, Objects, Parameters, RestoreRequest, Services};
use tenantflow_local::clock::Clock;

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).unwrap()
}
fn sid(s: &str) -> SnapshotId {
    SnapshotId::parse(s).unwrap()
}
/// The tags a step puts on what it creates: namespace and run (the reuse rule compares both).
fn tags(run: &str) -> BTreeMap<String, String> {
    [
        (
            "tenantflow:namespace".to_string(),
            "ab-0001-prod".to_string(),
        ),
        ("tenantflow:run".to_string(), run.to_string()),
    ]
    .into()
}

fn seed_instance(env: &common::Env, name: &str, rows: usize) {
    common::make_db(&env.ports.layout.instance_file(name), rows);
    env.ports
        .databases
        .register_instance(&id(name), &tags("init"), true)
        .unwrap();
}

#[test]
fn backup_copy_copies_rows_and_refuses_bad_sources() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.sqlite");
    common::make_db(&src, 500);
    let dst = dir.path().join("b.sqlite");
    tenantflow_local::sqlite::backup_copy(&src, &dst).unwrap();
    assert_eq!(common::count(&dst, "customers"), 500);

    let corrupt = dir.path().join("corrupt.sqlite");
    std::fs::write(
        &corrupt,
        b"this is not a database, just some bytes that are long enough to fill a header...........",
    )
    .unwrap();
    let dst2 = dir.path().join("c.sqlite");
    let e = tenantflow_local::sqlite::backup_copy(&corrupt, &dst2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("corrupt.sqlite"), "{e}");
    assert!(!dst2.exists());
    let e = tenantflow_local::sqlite::backup_copy(&dir.path().join("none.sqlite"), &dst2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    // No temporary leftovers.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[tokio::test]
async fn snapshot_and_restore_are_async_on_the_virtual_clock_with_events() {
    let env = common::env();
    let mut events = common::capture_events(&env.ports);
    seed_instance(&env, "ab-0001-prod-20260101000000", 100);
    let db = &env.ports.databases;

    let snap = db
        .create_snapshot(
            &id("ab-0001-prod-20260101000000"),
            &sid("ab-0001-prod-20261121120000"),
            &tags("r1"),
        )
        .await
        .unwrap();
    assert_eq!(snap.status, "creating");
    // Point in time: a write after the call is not in the snapshot (it waits for the copy).
    let conn = rusqlite::Connection::open(
        env.ports
            .layout
            .instance_file("ab-0001-prod-20260101000000"),
    )
    .unwrap();
    conn.execute(
        "INSERT INTO customers (email) VALUES ('late@example.com')",
        [],
    )
    .unwrap();

    // Idempotent: same id + same run tags returns it; other run is a conflict.
    let again = db
        .create_snapshot(
            &id("ab-0001-prod-20260101000000"),
            &sid("ab-0001-prod-20261121120000"),
            &tags("r1"),
        )
        .await
        .unwrap();
    assert_eq!(again.status, "creating");
    let e = db
        .create_snapshot(
            &id("ab-0001-prod-20260101000000"),
            &sid("ab-0001-prod-20261121120000"),
            &tags("r2"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.Conflict");

    // Let the spawned task start sleeping, then move virtual time.
    tokio::task::yield_now().await;
    env.clock.advance(Duration::from_secs(299));
    tokio::task::yield_now().await;
    assert_eq!(
        db.describe_snapshot(&sid("ab-0001-prod-20261121120000"))
            .await
            .unwrap()
            .unwrap()
            .status,
        "creating"
    );
    env.clock.advance(Duration::from_secs(1));
    let ev = events.recv().await.unwrap();
    assert_eq!(ev["detail-type"], "RDS DB Snapshot Event");
    assert_eq!(ev["source"], "aws.rds");
    assert_eq!(
        ev["detail"]["SourceIdentifier"],
        "ab-0001-prod-20261121120000"
    );
    assert_eq!(ev["detail"]["EventID"], "RDS-EVENT-0042");
    assert_eq!(ev["time"], "2026-11-21T12:05:00Z");
    assert_eq!(
        db.describe_snapshot(&sid("ab-0001-prod-20261121120000"))
            .await
            .unwrap()
            .unwrap()
            .status,
        "available"
    );
    assert!(env
        .dir
        .path()
        .join("rds/snapshots/ab-0001-prod-20261121120000.sqlite")
        .is_file());

    // Restore.
    let req = RestoreRequest {
        snapshot: sid("ab-0001-prod-20261121120000"),
        target: id("ab-0001-prod-20261121120000"),
        template: id("ab-0001-prod-20260101000000"),
        tags: tags("r1"),
    };
    let inst = db.restore_instance(&req).await.unwrap();
    assert_eq!(inst.status, "creating");
    assert_eq!(inst.port, 0);
    assert!(inst
        .endpoint
        .ends_with("rds/instances/ab-0001-prod-20261121120000.sqlite"));
    assert!(!inst.deletion_protection);
    tokio::task::yield_now().await;
    assert!(env.clock.advance_to_next());
    let ev = events.recv().await.unwrap();
    assert_eq!(ev["detail-type"], "RDS DB Instance Event");
    assert_eq!(
        ev["detail"]["SourceIdentifier"],
        "ab-0001-prod-20261121120000"
    );
    let inst = db
        .describe_instance(&id("ab-0001-prod-20261121120000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.status, "available");
    assert_eq!(
        common::count(std::path::Path::new(&inst.endpoint), "customers"),
        100
    );
    assert_eq!(
        common::count(
            &env.ports
                .layout
                .instance_file("ab-0001-prod-20260101000000"),
            "customers"
        ),
        101
    );

    // Deletion protection blocks delete; delete is idempotent.
    let e = db
        .delete_instance(&id("ab-0001-prod-20260101000000"))
        .await
        .unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.Conflict");
    db.set_deletion_protection(&id("ab-0001-prod-20260101000000"), false)
        .await
        .unwrap();
    db.delete_instance(&id("ab-0001-prod-20260101000000"))
        .await
        .unwrap();
    db.delete_instance(&id("ab-0001-prod-20260101000000"))
        .await
        .unwrap();
    assert!(!env
        .ports
        .layout
        .instance_file("ab-0001-prod-20260101000000")
        .exists());
    db.delete_snapshot(&sid("ab-0001-prod-20261121120000"))
        .await
        .unwrap();
    assert!(db.list_snapshots("ab-").await.unwrap().is_empty());
    assert_eq!(db.list_instances("ab-0001-").await.unwrap().len(), 1);
}

#[tokio::test]
async fn deleted_while_creating_gets_no_event() {
    let env = common::env();
    let mut events = common::capture_events(&env.ports);
    seed_instance(&env, "ab-0001-prod-20260101000000", 1);
    let db = &env.ports.databases;
    db.create_snapshot(
        &id("ab-0001-prod-20260101000000"),
        &sid("s-a-b-1"),
        &tags("r1"),
    )
    .await
    .unwrap();
    db.delete_snapshot(&sid("s-a-b-1")).await.unwrap();
    tokio::task::yield_now().await;
    env.clock.advance(Duration::from_secs(3600));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(events.try_recv().is_err());
}

#[tokio::test]
async fn missing_or_corrupt_source_fails_the_snapshot_naming_the_file() {
    let env = common::env();
    seed_instance(&env, "ab-0001-prod-20260101000000", 1);
    std::fs::write(
        env.ports
            .layout
            .instance_file("ab-0001-prod-20260101000000"),
        vec![7u8; 4096],
    )
    .unwrap();
    let e = env
        .ports
        .databases
        .create_snapshot(
            &id("ab-0001-prod-20260101000000"),
            &sid("ab-0001-prod-20261121120000"),
            &tags("r1"),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("ab-0001-prod-20260101000000.sqlite"),
        "{e}"
    );
    assert!(e.to_string().contains("corrupt or missing"), "{e}");
    assert!(env
        .ports
        .databases
        .describe_snapshot(&sid("ab-0001-prod-20261121120000"))
        .await
        .unwrap()
        .is_none());
    assert!(!env
        .ports
        .layout
        .snapshot_file("ab-0001-prod-20261121120000")
        .exists());
}

#[tokio::test]
async fn quotas_are_honoured() {
    let env = common::env_with(|c| {
        c.limits.snapshots = 1;
        c.limits.instances = 1;
    });
    seed_instance(&env, "ab-0001-prod-20260101000000", 1);
    let mut events = common::capture_events(&env.ports);
    let db = &env.ports.databases;
    let h = db.headroom().await.unwrap();
    assert_eq!((h.instances, h.snapshots), (0, 1));
    db.create_snapshot(
        &id("ab-0001-prod-20260101000000"),
        &sid("s-a-b-1"),
        &tags("r1"),
    )
    .await
    .unwrap();
    let e = db
        .create_snapshot(
            &id("ab-0001-prod-20260101000000"),
            &sid("s-a-b-2"),
            &tags("r1"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.QuotaExceeded");
    tokio::task::yield_now().await;
    env.clock.advance(Duration::from_secs(1000));
    // The copy runs on the heavy pool: the snapshot is available once its event is out.
    let ev = events.recv().await.unwrap();
    assert_eq!(ev["detail"]["EventID"], "RDS-EVENT-0042");
    let e = db
        .restore_instance(&RestoreRequest {
            snapshot: sid("s-a-b-1"),
            target: id("ab-0001-prod-20261121120000"),
            template: id("ab-0001-prod-20260101000000"),
            tags: tags("r1"),
        })
        .await
        .unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.QuotaExceeded");
}

async fn point_at(env: &common::Env, ns: &Namespace, instance: &str, release: &str) {
    let ptr = ActivePointer {
        generation: GenerationTs::parse("20260101000000").unwrap(),
        instance_id: id(instance),
        endpoint: String::new(),
        port: 0,
        release: release.into(),
        scripts: None,
        service: None,
        freeze: None,
    };
    env.ports
        .parameters
        .put(&ns.paths().pointer, &serde_json::to_string(&ptr).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn ecs_rollout_is_healthy_only_if_the_health_check_passes_on_the_active_db() {
    let env = common::env();
    let mut events = common::capture_events(&env.ports);
    let ns = Namespace::parse("ab-0001-prod").unwrap();
    seed_instance(&env, "ab-0001-prod-20260101000000", 3);
    let svc = ServiceRef {
        cluster: "tenantflow".into(),
        service: "ab-0001-prod".into(),
    };
    env.ports.services.register_service(&svc, &ns).unwrap();
    env.ports
        .objects
        .put(
            "tenantflow-releases",
            "releases/good/manifest.json",
            br#"{"healthCheck":{"sql":"SELECT count(*) FROM customers"}}"#,
        )
        .await
        .unwrap();
    env.ports
        .objects
        .put(
            "tenantflow-releases",
            "releases/bad/manifest.json",
            br#"{"healthCheck":{"sql":"SELECT loyalty_points FROM customers"}}"#,
        )
        .await
        .unwrap();

    point_at(&env, &ns, "ab-0001-prod-20260101000000", "good").await;
    let d1 = env.ports.services.force_deployment(&svc).await.unwrap();
    let st = env
        .ports
        .services
        .deployment(&svc, &d1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (st.rollout_state.as_str(), st.primary),
        ("IN_PROGRESS", true)
    );
    // The verdict is taken at rollout start: moving the pointer afterwards does not change it.
    point_at(&env, &ns, "ab-0001-prod-20260101000000", "bad").await;
    tokio::task::yield_now().await;
    env.clock.advance(Duration::from_secs(240));
    let ev = events.recv().await.unwrap();
    assert_eq!(ev["detail-type"], "ECS Deployment State Change");
    assert_eq!(ev["detail"]["eventName"], "SERVICE_DEPLOYMENT_COMPLETED");
    assert_eq!(ev["detail"]["deploymentId"], d1.as_str());
    let st = env
        .ports
        .services
        .deployment(&svc, &d1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (st.rollout_state.as_str(), st.running, st.desired),
        ("COMPLETED", 2, 2)
    );

    // Now the pointer names a release whose health check fails on that database.
    let d2 = env.ports.services.force_deployment(&svc).await.unwrap();
    assert_ne!(d1, d2);
    assert!(
        !env.ports
            .services
            .deployment(&svc, &d1)
            .await
            .unwrap()
            .unwrap()
            .primary
    );
    tokio::task::yield_now().await;
    env.clock.advance(Duration::from_secs(240));
    let ev = events.recv().await.unwrap();
    assert_eq!(ev["detail"]["eventName"], "SERVICE_DEPLOYMENT_FAILED");
    let st = env
        .ports
        .services
        .deployment(&svc, &d2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.rollout_state, "FAILED");
    let reason = env.ports.services.deployment_reason(&d2).unwrap().unwrap();
    assert!(reason.contains("loyalty_points"), "{reason}");

    // A missing database file fails the rollout too.
    point_at(&env, &ns, "ab-0001-prod-20990101000000", "good").await;
    let d3 = env.ports.services.force_deployment(&svc).await.unwrap();
    tokio::task::yield_now().await;
    env.clock.advance(Duration::from_secs(240));
    let ev = events.recv().await.unwrap();
    assert_eq!(ev["detail"]["eventName"], "SERVICE_DEPLOYMENT_FAILED");
    assert_eq!(
        env.ports
            .services
            .deployment(&svc, &d3)
            .await
            .unwrap()
            .unwrap()
            .rollout_state,
        "FAILED"
    );

    // Unknown service.
    let e = env
        .ports
        .services
        .force_deployment(&ServiceRef {
            cluster: "tenantflow".into(),
            service: "zz-0000-dev".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotFound");
}

#[tokio::test]
async fn ecs_primary_deployment_is_the_newest_with_its_clock_time() {
    let env = common::env();
    let ns = Namespace::parse("ab-0001-prod").unwrap();
    seed_instance(&env, "ab-0001-prod-20260101000000", 3);
    let svc = ServiceRef {
        cluster: "tenantflow".into(),
        service: "ab-0001-prod".into(),
    };
    env.ports.services.register_service(&svc, &ns).unwrap();
    point_at(&env, &ns, "ab-0001-prod-20260101000000", "good").await;
    let services = &env.ports.services;
    assert_eq!(services.primary_deployment(&svc).await.unwrap(), None);

    let t1 = env.clock.now();
    let d1 = services.force_deployment(&svc).await.unwrap();
    let p = services.primary_deployment(&svc).await.unwrap().unwrap();
    assert_eq!((p.id.as_str(), p.created_at), (d1.as_str(), t1));

    env.clock.advance(Duration::from_secs(30));
    let t2 = env.clock.now();
    let d2 = services.force_deployment(&svc).await.unwrap();
    assert_ne!(d1, d2);
    let p = services.primary_deployment(&svc).await.unwrap().unwrap();
    assert_eq!((p.id.as_str(), p.created_at), (d2.as_str(), t2));

    // Unknown service.
    let e = services
        .primary_deployment(&ServiceRef {
            cluster: "tenantflow".into(),
            service: "zz-0000-dev".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotFound");
}
