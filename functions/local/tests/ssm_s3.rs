//! SSM versions and create-if-absent; S3 folder semantics; secrets.

mod common;
use tenantflow_core::ports::{Objects, Parameters};
use tenantflow_local::clock::Clock;

#[tokio::test]
async fn ssm_versions_and_current_value() {
    let env = common::env();
    let p = &env.ports.parameters;
    assert_eq!(p.put("/tenantflow/a-b-c/db", "one").await.unwrap(), 1);
    assert_eq!(p.put("/tenantflow/a-b-c/db", "two").await.unwrap(), 2);
    let cur = p.get("/tenantflow/a-b-c/db").await.unwrap().unwrap();
    assert_eq!((cur.value.as_str(), cur.version), ("two", 2));

    // The table is exactly the documented one, one row per version.
    let conn = rusqlite::Connection::open(env.dir.path().join("ssm.sqlite")).unwrap();
    let rows: Vec<(String, i64, String)> = conn
        .prepare("SELECT name, version, value FROM parameter_versions ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].2, "one");
    let modified: String = conn
        .query_row(
            "SELECT modified_at FROM parameter_versions WHERE version = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(modified.starts_with("2026-11-21T12:00:00"), "{modified}");

    // `get_dated` reports the clock time of the write of the current version.
    let written = env.clock.now();
    let dated = p.get_dated("/tenantflow/a-b-c/db").await.unwrap().unwrap();
    assert_eq!(dated.parameter, cur);
    assert_eq!(dated.modified_at, Some(written));
    env.clock.advance(std::time::Duration::from_secs(90));
    assert_eq!(p.put("/tenantflow/a-b-c/db", "three").await.unwrap(), 3);
    let dated = p.get_dated("/tenantflow/a-b-c/db").await.unwrap().unwrap();
    assert_eq!(
        (dated.parameter.version, dated.modified_at),
        (3, Some(written + chrono::Duration::seconds(90)))
    );
    assert_eq!(
        p.get("/tenantflow/a-b-c/db").await.unwrap().unwrap().value,
        "three"
    );

    // Delete removes every version.
    p.delete("/tenantflow/a-b-c/db").await.unwrap();
    assert!(p.get("/tenantflow/a-b-c/db").await.unwrap().is_none());
    let n: i64 = conn
        .query_row("SELECT count(*) FROM parameter_versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    // Absent is success.
    p.delete("/tenantflow/a-b-c/db").await.unwrap();
}

#[tokio::test]
async fn ssm_create_if_absent_is_atomic() {
    let env = common::env();
    let p = env.ports.parameters.clone();
    assert_eq!(
        p.create("/tenantflow/a-b-c/lock", "run-1").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        p.create("/tenantflow/a-b-c/lock", "run-2").await.unwrap(),
        None
    );
    assert_eq!(
        p.get("/tenantflow/a-b-c/lock")
            .await
            .unwrap()
            .unwrap()
            .value,
        "run-1"
    );

    // Many racing creators on separate threads and connections: exactly one wins.
    let path = env.dir.path().join("ssm.sqlite");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let clock = std::sync::Arc::new(tenantflow_local::clock::SystemClock);
                let own = tenantflow_local::ssm::LocalParameters::open(&path, clock).unwrap();
                rt.block_on(own.create("/tenantflow/x-y-z/lock", &format!("run-{i}")))
                    .unwrap()
            })
        })
        .collect();
    let winners: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|r| r.is_some())
        .collect();
    assert_eq!(winners, vec![Some(1)]);
}

#[tokio::test]
async fn ssm_list_is_recursive_and_current() {
    let env = common::env();
    let p = &env.ports.parameters;
    p.put("/tenantflow/a-b-c/db", "1").await.unwrap();
    p.put("/tenantflow/a-b-c/db", "2").await.unwrap();
    p.put("/tenantflow/d-e-f/lock", "x").await.unwrap();
    p.put("/tenantflowX/other", "no").await.unwrap();
    let all = p.list("/tenantflow").await.unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|x| (x.name.as_str(), x.value.as_str(), x.version))
        .collect();
    assert_eq!(
        names,
        vec![
            ("/tenantflow/a-b-c/db", "2", 2),
            ("/tenantflow/d-e-f/lock", "x", 1)
        ]
    );
}

#[tokio::test]
async fn s3_folder_objects() {
    let env = common::env();
    let o = &env.ports.objects;
    o.put("b", "releases/r1/manifest.json", b"{}")
        .await
        .unwrap();
    o.put("b", "releases/r1/V1__x.sql", b"select 1;")
        .await
        .unwrap();
    o.put("b", "releases/r2/V1__x.sql", b"select 2;")
        .await
        .unwrap();
    assert!(env.dir.path().join("s3/b/releases/r1/V1__x.sql").is_file());
    assert_eq!(
        o.get("b", "releases/r1/V1__x.sql").await.unwrap().unwrap(),
        b"select 1;"
    );
    assert!(o.get("b", "releases/none").await.unwrap().is_none());
    assert_eq!(
        o.list("b", "releases/r1/").await.unwrap(),
        vec!["releases/r1/V1__x.sql", "releases/r1/manifest.json"]
    );
    assert_eq!(o.list("b", "releases/").await.unwrap().len(), 3);
    assert_eq!(o.list("b", "releases/r").await.unwrap().len(), 3);
    assert!(o.list("nobucket", "").await.unwrap().is_empty());
    for bad in ["../escape", "a/../../b", "/abs", "a//b"] {
        let e = o.put("b", bad, b"x").await.unwrap_err();
        assert_eq!(e.asl_name(), "Tenantflow.InvalidInput", "{bad}");
    }
}

#[tokio::test]
async fn secrets_json_file() {
    let env = common::env();
    env.ports.secrets.put("db/master", "hunter2").unwrap();
    let s = env.ports.secrets.get_secret("db/master").await.unwrap();
    assert_eq!(s.expose(), "hunter2");
    assert!(!format!("{s:?}").contains("hunter2"));
    let e = env.ports.secrets.get_secret("nope").await.unwrap_err();
    assert_eq!(e.asl_name(), "Tenantflow.NotFound");
}
