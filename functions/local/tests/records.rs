//! The local `Records` store (`records.sqlite`): the documented tables, the lock's
//! compare-and-swap, the by-run listing, wait tokens with their conditional delete and TTL, and
//! what `status` reads from it.

mod common;
use std::collections::BTreeMap;
use tenantflow_core::model::{Journal, Phase, ResourceKind, ServiceRef, WaitRecord};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::{LockTake, Records};
use tenantflow_local::clock::Clock;

const A: &str = "arn:aws:states:local:000000000000:execution:tenantflow-release:run-a";
const B: &str = "arn:aws:states:local:000000000000:execution:tenantflow-release:run-b";

fn ns(s: &str) -> Namespace {
    Namespace::parse(s).unwrap()
}

fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<(String, String, bool)> {
    conn.prepare(&format!("PRAGMA table_info({table})"))
        .unwrap()
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get::<_, i64>(5)? > 0)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_tables_are_the_documented_ones() {
    let env = common::env();
    let conn = rusqlite::Connection::open(env.dir.path().join("records.sqlite")).unwrap();
    let col = |n: &str, t: &str, pk: bool| (n.to_string(), t.to_string(), pk);
    assert_eq!(
        columns(&conn, "tenant_records"),
        [
            col("tenant", "TEXT", true),
            col("holder", "TEXT", false),
            col("run", "TEXT", false),
            col("phase", "TEXT", false),
            col("version", "INTEGER", false),
            col("updated_at", "TEXT", false),
            col("journal", "TEXT", false),
        ]
    );
    assert_eq!(
        columns(&conn, "wait_tokens"),
        [
            col("kind", "TEXT", true),
            col("resource", "TEXT", true),
            col("token", "TEXT", false),
            col("tenant", "TEXT", false),
            col("service", "TEXT", false),
            col("expires_at", "INTEGER", false),
        ]
    );
    let index: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'tenant_records_by_run'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(index.contains("(run)"), "{index}");
}

#[tokio::test]
async fn the_lock_is_a_compare_and_swap() {
    let env = common::env();
    let r = &env.ports.records;
    let t = ns("a-b-c");
    let LockTake::Taken(first) = r.acquire(&t, A, A).await.unwrap() else {
        panic!("a free lock is taken");
    };
    assert_eq!(
        (first.holder.as_deref(), first.run.as_deref(), first.phase),
        (Some(A), Some(A), Phase::Locked)
    );
    assert_eq!(first.version, 1);
    assert_eq!(first.updated_at, Some(env.clock.now()));

    // Another run finds it held and changes nothing; so does the holder's own retry.
    for who in [B, A] {
        assert_eq!(
            r.acquire(&t, who, who).await.unwrap(),
            LockTake::Held(first.clone())
        );
    }
    assert!(!r.release(&t, B).await.unwrap(), "not B's to release");
    assert_eq!(r.get_tenant(&t).await.unwrap(), Some(first.clone()));

    assert!(r.release(&t, A).await.unwrap());
    assert!(!r.release(&t, A).await.unwrap(), "released once");
    let released = r.get_tenant(&t).await.unwrap().unwrap();
    assert_eq!(
        (released.holder, released.phase, released.version),
        (None, Phase::Released, 2)
    );
    assert_eq!(released.run.as_deref(), Some(A), "the last run stays named");

    // A journal left by the last run is reset when the next run takes the lock.
    let conn = rusqlite::Connection::open(env.dir.path().join("records.sqlite")).unwrap();
    conn.execute(
        "UPDATE tenant_records SET journal = ?1 WHERE tenant = 'a-b-c'",
        [r#"{"candidate":"a-b-c-20261121120000","freeze":true}"#],
    )
    .unwrap();
    assert_eq!(
        r.get_tenant(&t)
            .await
            .unwrap()
            .unwrap()
            .journal
            .candidate
            .map(|c| c.to_string()),
        Some("a-b-c-20261121120000".to_string())
    );
    let LockTake::Taken(second) = r.acquire(&t, B, B).await.unwrap() else {
        panic!("a released lock is taken");
    };
    assert_eq!(
        (
            second.holder.as_deref(),
            second.run.as_deref(),
            second.version
        ),
        (Some(B), Some(B), 3)
    );
    assert_eq!(second.journal, Journal::default());
}

#[tokio::test]
async fn the_journal_is_written_only_at_the_version_read() {
    let env = common::env();
    let r = &env.ports.records;
    let t = ns("a-b-c");
    assert_eq!(
        r.write_journal(&t, 1, &Journal::default()).await.unwrap(),
        None,
        "no record, nothing written"
    );
    let LockTake::Taken(first) = r.acquire(&t, A, A).await.unwrap() else {
        panic!("a free lock is taken");
    };
    let journal = Journal {
        step: Some("create-db".into()),
        freeze: true,
        ..Journal::default()
    };
    let written = r
        .write_journal(&t, first.version, &journal)
        .await
        .unwrap()
        .expect("written at the version read");
    assert_eq!(written.version, first.version + 1);
    assert_eq!(written.journal, journal);
    assert_eq!(written.holder.as_deref(), Some(A), "the lock is untouched");
    assert_eq!(
        r.write_journal(&t, first.version, &Journal::default())
            .await
            .unwrap(),
        None,
        "a stale version writes nothing"
    );
    assert_eq!(r.get_tenant(&t).await.unwrap(), Some(written));
}

#[test]
fn racing_acquirers_on_their_own_connections_have_one_winner() {
    let env = common::env();
    let path = env.dir.path().join("records.sqlite");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let clock = std::sync::Arc::new(tenantflow_local::clock::SystemClock);
                let own = tenantflow_local::records::LocalRecords::open(&path, clock).unwrap();
                let holder = format!("run-{i}");
                rt.block_on(own.acquire(&ns("x-y-z"), &holder, &holder))
                    .unwrap()
            })
        })
        .collect();
    let taken: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter_map(|t| match t {
            LockTake::Taken(r) => Some(r),
            LockTake::Held(_) => None,
        })
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].version, 1);
}

#[tokio::test]
async fn held_locks_and_a_runs_records() {
    let env = common::env();
    let r = &env.ports.records;
    r.acquire(&ns("a-b-c"), A, A).await.unwrap();
    r.acquire(&ns("d-e-f"), A, A).await.unwrap();
    r.acquire(&ns("g-h-i"), B, B).await.unwrap();
    r.release(&ns("d-e-f"), A).await.unwrap();
    let tenants = |v: Vec<tenantflow_core::model::TenantRecord>| {
        v.into_iter()
            .map(|r| r.tenant.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(tenants(r.list_held().await.unwrap()), ["a-b-c", "g-h-i"]);
    assert_eq!(tenants(r.list_run(A).await.unwrap()), ["a-b-c", "d-e-f"]);
    assert_eq!(tenants(r.list_run(B).await.unwrap()), ["g-h-i"]);
    assert!(r.list_run("other").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_token_is_deleted_only_by_the_one_it_holds_and_expires() {
    let env = common::env();
    let r = &env.ports.records;
    let kind = ResourceKind::EcsDeployment;
    let id = "ecs-svc/1234567890123456789";
    let wait = |token: &str| WaitRecord {
        token: token.into(),
        tenant: ns("a-b-c"),
        service: Some(ServiceRef {
            cluster: "tenantflow".into(),
            service: "a-b-c".into(),
        }),
    };
    assert_eq!(r.get_token(kind, id).await.unwrap(), None);
    r.put_token(kind, id, &wait("tok-1")).await.unwrap();
    assert_eq!(r.get_token(kind, id).await.unwrap(), Some(wait("tok-1")));
    // A re-registration overwrites; the old token's delete leaves the new one.
    r.put_token(kind, id, &wait("tok-2")).await.unwrap();
    assert!(!r.delete_token(kind, id, "tok-1").await.unwrap());
    assert_eq!(r.get_token(kind, id).await.unwrap(), Some(wait("tok-2")));
    // Same id, other kind: another record.
    assert_eq!(
        r.get_token(ResourceKind::DbInstance, id).await.unwrap(),
        None
    );

    let conn = rusqlite::Connection::open(env.dir.path().join("records.sqlite")).unwrap();
    let row: (String, String, String, i64) = conn
        .query_row(
            "SELECT kind, token, service, expires_at FROM wait_tokens WHERE resource = ?1",
            [id],
            |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?)),
        )
        .unwrap();
    let service: BTreeMap<String, String> = serde_json::from_str(&row.2).unwrap();
    assert_eq!(
        (row.0.as_str(), row.1.as_str()),
        ("ecs-deployment", "tok-2")
    );
    assert_eq!(service["cluster"], "tenantflow");
    assert_eq!(row.3, env.clock.now().timestamp() + 24 * 3600);

    assert!(r.delete_token(kind, id, "tok-2").await.unwrap());
    assert!(!r.delete_token(kind, id, "tok-2").await.unwrap());
    assert_eq!(r.get_token(kind, id).await.unwrap(), None);

    // Past its time to live a token reads as absent.
    r.put_token(kind, id, &wait("tok-3")).await.unwrap();
    env.clock.advance(std::time::Duration::from_secs(24 * 3600));
    assert_eq!(r.get_token(kind, id).await.unwrap(), None);
}

#[tokio::test]
async fn status_reads_the_lock_from_the_record_and_the_freeze_from_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let state = tenantflow_local::LocalState::create(dir.path()).unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let release = std::fs::read_dir(examples.join("releases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let t = ns("a-b-c");
    let gen = tenantflow_core::names::GenerationTs::parse("20260101000000").unwrap();
    state.create_tenant(&t, gen, &release, &|_| Ok(())).unwrap();
    let row =
        |s: &tenantflow_local::LocalState| tenantflow_local::status(s).unwrap().tenants.remove(0);
    let r = row(&state);
    assert!(
        !r.locked && !r.maintenance && r.lock_holder.is_none(),
        "{r:?}"
    );

    let ports = state.ports().unwrap();
    ports.records.acquire(&t, A, A).await.unwrap();
    let path = t.paths().pointer;
    let mut p: serde_json::Value =
        serde_json::from_str(&ports.parameters.get_sync(&path).unwrap().unwrap().value).unwrap();
    p["freeze"] = serde_json::json!({"run": A, "release": "next"});
    ports.parameters.put_sync(&path, &p.to_string()).unwrap();
    let r = row(&state);
    assert!(r.locked && r.maintenance, "{r:?}");
    assert_eq!(r.lock_holder.as_deref(), Some(A));
    // The only SSM parameter is the pointer.
    let names: Vec<String> = ports
        .parameters
        .list_sync("/tenantflow")
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, [path]);
}
