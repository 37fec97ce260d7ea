//! LocalState: state dir create/open, release validation and publishing, tenant creation, status.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tenantflow_core::names::{GenerationTs, Namespace};
use tenantflow_local::{status, LocalError, LocalState};

fn write_release(root: &Path, id: &str, scripts: &[(&str, &str)], extra: &str) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut entries = vec![];
    for (name, sql) in scripts {
        std::fs::write(dir.join(name), sql).unwrap();
        entries.push(serde_json::json!({"name": name, "sha256": hex::encode(Sha256::digest(sql.as_bytes()))}));
    }
    let mut m = serde_json::json!({"release": id, "scripts": entries});
    if !extra.is_empty() {
        let e: serde_json::Value = serde_json::from_str(extra).unwrap();
        for (k, v) in e.as_object().unwrap() {
            m[k] = v.clone();
        }
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    dir
}

const V1: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL);";

#[test]
fn open_refuses_what_is_not_a_state_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let e = LocalState::open(&tmp.path().join("nope")).unwrap_err();
    assert!(matches!(e, LocalError::NotAStateDir { .. }), "{e}");
    std::fs::write(tmp.path().join("file"), "x").unwrap();
    let e = LocalState::open(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("tenantflow-state.json"), "{e}");
    // create refuses a non-empty foreign directory, is idempotent on a state dir.
    let e = LocalState::create(tmp.path()).unwrap_err();
    assert!(matches!(e, LocalError::NotAStateDir { .. }), "{e}");
    let s = tmp.path().join("state");
    LocalState::create(&s).unwrap();
    LocalState::create(&s).unwrap();
    let st = LocalState::open(&s).unwrap();
    assert_eq!(st.root(), s.as_path());
    for p in [
        "rds/instances",
        "rds/snapshots",
        "ssm.sqlite",
        "s3/tenantflow-releases",
        "runs",
        "rds/registry.sqlite",
    ] {
        assert!(s.join(p).exists(), "{p}");
    }
}

#[test]
fn publish_validates_before_copying() {
    let tmp = tempfile::tempdir().unwrap();
    let state = LocalState::create(&tmp.path().join("state")).unwrap();
    let rel = tmp.path().join("rel");
    let bucket = tmp.path().join("state/s3/tenantflow-releases/releases");

    // Extra script.
    let d = write_release(&rel, "0001-a", &[("V1__init.sql", V1)], "");
    std::fs::write(d.join("V2__extra.sql"), "select 1;").unwrap();
    let e = state.publish_release(&d).unwrap_err();
    assert!(
        e.to_string().contains("V2__extra.sql") && e.to_string().contains("extra"),
        "{e}"
    );
    // Bad name for an unlisted file.
    std::fs::remove_file(d.join("V2__extra.sql")).unwrap();
    std::fs::write(d.join("V2-bad.sql"), "select 1;").unwrap();
    let e = state.publish_release(&d).unwrap_err();
    assert!(e.to_string().contains("V2-bad.sql"), "{e}");
    std::fs::remove_file(d.join("V2-bad.sql")).unwrap();
    // sha256 mismatch.
    std::fs::write(d.join("V1__init.sql"), "CREATE TABLE x (a INT);").unwrap();
    let e = state.publish_release(&d).unwrap_err();
    assert!(
        e.to_string().contains("V1__init.sql") && e.to_string().contains("sha256"),
        "{e}"
    );
    // Missing script.
    std::fs::remove_file(d.join("V1__init.sql")).unwrap();
    let e = state.publish_release(&d).unwrap_err();
    assert!(
        e.to_string().contains("V1__init.sql") && e.to_string().contains("missing"),
        "{e}"
    );
    assert!(
        !bucket.exists(),
        "nothing may be published from a bad release"
    );
    // Bad name in the manifest names the manifest.
    let d = write_release(&rel, "0002-b", &[("V1_x__init.sql", V1)], "");
    let e = state.publish_release(&d).unwrap_err();
    assert!(
        e.to_string().contains("manifest.json") && e.to_string().contains("V1_x__init.sql"),
        "{e}"
    );

    let d = write_release(&rel, "0003-c", &[("V1__init.sql", V1)], "");
    let p = state.publish_release(&d).unwrap();
    assert_eq!(p.key, "releases/0003-c/manifest.json");
    assert!(bucket.join("0003-c/V1__init.sql").is_file());
    assert!(bucket.join("0003-c/manifest.json").is_file());
    let p2 = state.publish_release(&d).unwrap();
    assert_ne!(
        p.version_id, p2.version_id,
        "every publish is a new object version"
    );
}

fn seed(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    for i in 0..20 {
        conn.execute(
            "INSERT INTO customers (email) VALUES (?1)",
            [format!("c{i}@x.io")],
        )?;
    }
    Ok(())
}

#[test]
fn create_tenant_then_status_and_orphans() {
    let tmp = tempfile::tempdir().unwrap();
    let state = LocalState::create(&tmp.path().join("state")).unwrap();
    let d = write_release(
        &tmp.path().join("rel"),
        "0001-initial",
        &[("V1__init.sql", V1)],
        "",
    );
    let ns = Namespace::parse("ab-0001-prod").unwrap();
    let ts = GenerationTs::parse("20260101000000").unwrap();
    state.create_tenant(&ns, ts, &d, &seed).unwrap();
    let e = state.create_tenant(&ns, ts, &d, &seed).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let ns2 = Namespace::parse("cd-0002-dev").unwrap();
    state.create_tenant(&ns2, ts, &d, &seed).unwrap();

    let file = state
        .root()
        .join("rds/instances/ab-0001-prod-20260101000000.sqlite");
    let conn = rusqlite::Connection::open(&file).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 20);
    let (v, ok): (String, bool) = conn
        .query_row(
            "SELECT version, success FROM flyway_schema_history",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((v.as_str(), ok), ("1", true));
    let ssm = rusqlite::Connection::open(state.root().join("ssm.sqlite")).unwrap();
    let ptr: String = ssm
        .query_row(
            "SELECT value FROM parameter_versions WHERE name = '/tenantflow/ab-0001-prod/db'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ptr: serde_json::Value = serde_json::from_str(&ptr).unwrap();
    assert_eq!(ptr["instanceId"], "ab-0001-prod-20260101000000");
    assert_eq!(ptr["release"], "0001-initial");
    assert_eq!(ptr["generation"], "20260101000000");

    let st = status(&state).unwrap();
    assert_eq!(st.tenants.len(), 2);
    let t = &st.tenants[0];
    assert_eq!(t.tenant, "ab-0001-prod");
    assert_eq!(t.active_generation.as_deref(), Some("20260101000000"));
    assert_eq!(t.release.as_deref(), Some("0001-initial"));
    assert_eq!(t.schema_version.as_deref(), Some("1"));
    assert!(!t.locked && !t.maintenance && t.problem.is_none());
    assert!(st.orphans.instances.is_empty() && st.orphans.snapshots.is_empty());
    let json = serde_json::to_value(&st).unwrap();
    assert!(json["tenants"][0].get("activeInstance").is_some());
    assert!(json["orphans"]["instances"].is_array());

    // A stray instance file is an orphan; a corrupt active db is reported on its tenant.
    std::fs::copy(
        &file,
        state
            .root()
            .join("rds/instances/zz-9999-dev-20250101000000.sqlite"),
    )
    .unwrap();
    std::fs::write(
        state
            .root()
            .join("rds/instances/cd-0002-dev-20260101000000.sqlite"),
        vec![1u8; 2048],
    )
    .unwrap();
    let st = status(&state).unwrap();
    assert_eq!(st.orphans.instances, ["zz-9999-dev-20250101000000"]);
    let bad = st
        .tenants
        .iter()
        .find(|t| t.tenant == "cd-0002-dev")
        .unwrap();
    assert!(
        bad.problem
            .as_deref()
            .unwrap()
            .contains("corrupt or missing"),
        "{bad:?}"
    );
}
