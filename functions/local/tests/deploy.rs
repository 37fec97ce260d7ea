//! `deploy` end to end on a small fleet: the real definitions, the real steps, the local ports.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tenantflow_core::manifest::FleetMode;
use tenantflow_core::model::Outcome;
use tenantflow_core::names::{GenerationTs, Namespace};
use tenantflow_local::{deploy, status, DeployOptions, LocalState};

fn write_release(
    root: &Path,
    id: &str,
    scripts: &[(&str, &str)],
    extra: serde_json::Value,
) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut entries = vec![];
    for (name, sql) in scripts {
        std::fs::write(dir.join(name), sql).unwrap();
        entries.push(serde_json::json!({"name": name, "sha256": hex::encode(Sha256::digest(sql.as_bytes()))}));
    }
    let mut m = serde_json::json!({"release": id, "scripts": entries});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    dir
}

const V1: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL);";
const V2: &str = "ALTER TABLE customers ADD COLUMN loyalty_points INTEGER NOT NULL DEFAULT 0;";
const V3: &str = "CREATE UNIQUE INDEX customers_email ON customers (email);";

struct Fleet {
    _tmp: tempfile::TempDir,
    state: LocalState,
    r1: PathBuf,
    r2: PathBuf,
    r3: PathBuf,
}

const TENANTS: [&str; 4] = [
    "ab-0001-prod",
    "ab-0002-prod",
    "cd-0003-prod",
    "cd-0004-prod",
];

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let state = LocalState::create(&tmp.path().join("state")).unwrap();
    let rel = tmp.path().join("releases");
    let r1 = write_release(
        &rel,
        "0001-initial",
        &[("V1__init.sql", V1)],
        serde_json::json!({}),
    );
    let r2 = write_release(
        &rel,
        "0002-points",
        &[("V1__init.sql", V1), ("V2__points.sql", V2)],
        serde_json::json!({"healthCheck": {"sql": "SELECT loyalty_points FROM customers LIMIT 1"}}),
    );
    let r3 = write_release(
        &rel,
        "0003-unique",
        &[
            ("V1__init.sql", V1),
            ("V2__points.sql", V2),
            ("V3__unique.sql", V3),
        ],
        serde_json::json!({}),
    );
    let ts = GenerationTs::parse("20260101000000").unwrap();
    for (i, t) in TENANTS.iter().enumerate() {
        let dup = i == 1;
        state
            .create_tenant(&Namespace::parse(t).unwrap(), ts, &r1, &move |c| {
                for n in 0..50 {
                    let email = if dup && n % 10 == 0 {
                        "dup@x.io".to_string()
                    } else {
                        format!("c{n}@x.io")
                    };
                    c.execute("INSERT INTO customers (email) VALUES (?1)", [email])?;
                }
                Ok(())
            })
            .unwrap();
    }
    Fleet {
        _tmp: tmp,
        state,
        r1,
        r2,
        r3,
    }
}

fn active_file(state: &LocalState, tenant: &str) -> PathBuf {
    let st = status(state).unwrap();
    let t = st.tenants.iter().find(|t| t.tenant == tenant).unwrap();
    state
        .root()
        .join("rds/instances")
        .join(format!("{}.sqlite", t.active_instance.as_ref().unwrap()))
}

fn rows(path: &Path) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt = c
        .prepare("SELECT id, email FROM customers ORDER BY id")
        .unwrap();
    let out = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_rolls_back_the_failing_tenant_and_keeps_invariants() {
    let f = fleet();
    let _ = &f.r1;
    let report = deploy(&f.state, &f.r2, DeployOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(report.status, "SUCCEEDED", "{report:#?}");
    assert_eq!(report.tenants.len(), 4);
    assert!(
        report
            .tenants
            .iter()
            .all(|t| t.outcome == Outcome::Deployed),
        "{report:#?}"
    );
    assert!(report.state_transitions > 0 && report.max_history_events > 0);
    let st = status(&f.state).unwrap();
    for t in &st.tenants {
        assert_eq!(t.release.as_deref(), Some("0002-points"), "{t:?}");
        assert_eq!(t.schema_version.as_deref(), Some("2"));
        assert!(!t.locked && !t.maintenance, "{t:?}");
        assert!(t.active_generation.as_deref() > Some("20260101000000"));
    }
    assert!(st.orphans.instances.is_empty(), "{:?}", st.orphans);
    assert!(st.orphans.snapshots.is_empty(), "{:?}", st.orphans);
    // The old generations are gone.
    assert!(!f
        .state
        .root()
        .join("rds/instances/ab-0001-prod-20260101000000.sqlite")
        .exists());

    // 0003 fails on the tenant with duplicate emails; it is rolled back with its data intact.
    let before = rows(&active_file(&f.state, "ab-0002-prod"));
    let gen_before = status(&f.state).unwrap().tenants[1]
        .active_generation
        .clone();
    let report = deploy(&f.state, &f.r3, DeployOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(report.status, "FAILED");
    for t in &report.tenants {
        let want = if t.tenant == "ab-0002-prod" {
            Outcome::RolledBack
        } else {
            Outcome::Deployed
        };
        assert_eq!(t.outcome, want, "{t:?}");
        assert!(t.duration_seconds.is_some_and(|d| d > 0.0), "{t:?}");
    }
    let st = status(&f.state).unwrap();
    let dup = st
        .tenants
        .iter()
        .find(|t| t.tenant == "ab-0002-prod")
        .unwrap();
    assert_eq!(dup.release.as_deref(), Some("0002-points"));
    assert_eq!(dup.active_generation, gen_before);
    assert_eq!(rows(&active_file(&f.state, "ab-0002-prod")), before);
    assert!(st.orphans.instances.is_empty(), "{:?}", st.orphans);
    assert!(st.orphans.snapshots.is_empty(), "{:?}", st.orphans);
    for t in st.tenants.iter().filter(|t| t.tenant != "ab-0002-prod") {
        assert_eq!(t.release.as_deref(), Some("0003-unique"));
    }
    // History and reports are where docs/design.md §7 says.
    let run_dir = f.state.root().join("runs").join(&report.run);
    assert!(run_dir.join("deploy-report.json").is_file());
    assert!(run_dir.join("history").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_keeps_everyone_on_the_old_release() {
    let f = fleet();
    deploy(&f.state, &f.r2, DeployOptions::default(), None)
        .await
        .unwrap();
    let opts = DeployOptions {
        fleet: Some(FleetMode::AllOrNothing),
        ..DeployOptions::default()
    };
    let report = deploy(&f.state, &f.r3, opts, None).await.unwrap();
    assert_eq!(report.status, "FAILED");
    assert!(
        report
            .tenants
            .iter()
            .all(|t| t.outcome != Outcome::Deployed),
        "{report:#?}"
    );
    let st = status(&f.state).unwrap();
    assert!(
        st.tenants
            .iter()
            .all(|t| t.release.as_deref() == Some("0002-points")),
        "{st:#?}"
    );
    assert!(
        st.orphans.instances.is_empty() && st.orphans.snapshots.is_empty(),
        "{:?}",
        st.orphans
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_tenant_database_fails_alone() {
    let f = fleet();
    let victim = active_file(&f.state, "cd-0003-prod");
    std::fs::write(&victim, vec![0x5a; 8192]).unwrap();
    let report = deploy(&f.state, &f.r2, DeployOptions::default(), None)
        .await
        .unwrap();
    for t in &report.tenants {
        if t.tenant == "cd-0003-prod" {
            assert_ne!(t.outcome, Outcome::Deployed, "{t:?}");
            let msg = format!("{:?} {:?}", t.error, t.cause);
            assert!(msg.contains("cd-0003-prod-20260101000000.sqlite"), "{msg}");
        } else {
            assert_eq!(t.outcome, Outcome::Deployed, "{t:?}");
        }
    }
    let st = status(&f.state).unwrap();
    let bad = st
        .tenants
        .iter()
        .find(|t| t.tenant == "cd-0003-prod")
        .unwrap();
    assert!(bad.problem.is_some() && !bad.locked, "{bad:?}");
}

/// Each child execution's history as (tenant, [(event type, ms since the execution started)]).
fn timelines(state: &LocalState, run: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let dir = state.root().join("runs").join(run).join("history");
    let mut out = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let at = |e: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        let t0 = at(&events[0]);
        let input: serde_json::Value = serde_json::from_str(
            events[0]["executionStartedEventDetails"]["input"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        // The parent's input has no tenant; it is keyed by its place in the sort.
        let key = input["tenant"].as_str().unwrap_or("(parent)").to_string();
        let line = events
            .iter()
            .map(|e| (e["type"].as_str().unwrap().to_string(), at(e) - t0))
            .collect();
        out.push((key, line));
    }
    out.sort();
    out
}

/// Heavy work (copies, migrations, health checks) runs on real threads beside the virtual clock;
/// however fast or slow it is, every execution must see the same events at the same virtual
/// offsets, and every tenant the same outcome and virtual duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_the_same_deploy_have_the_same_timelines() {
    let mut seen = vec![];
    for _ in 0..2 {
        let f = fleet();
        let r2 = deploy(&f.state, &f.r2, DeployOptions::default(), None)
            .await
            .unwrap();
        let r3 = deploy(&f.state, &f.r3, DeployOptions::default(), None)
            .await
            .unwrap();
        let summary = |r: &tenantflow_local::DeployReport| {
            let tenants: Vec<_> = r
                .tenants
                .iter()
                .map(|t| (t.tenant.clone(), t.outcome, t.duration_seconds))
                .collect();
            (
                r.status.clone(),
                r.state_transitions,
                r.max_history_events,
                tenants,
            )
        };
        seen.push((
            summary(&r2),
            summary(&r3),
            timelines(&f.state, &r2.run),
            timelines(&f.state, &r3.run),
        ));
    }
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    // 0003 fails on one tenant: both outcomes are in the comparison.
    assert!(a.1 .3.iter().any(|t| t.1 == Outcome::RolledBack));
    assert!(a.1 .3.iter().any(|t| t.1 == Outcome::Deployed));
    assert_eq!(a.2.len(), 5, "parent + 4 children");
    assert_eq!(a.2, b.2);
    assert_eq!(a.3, b.3);
}

/// A tenant database adopted under its own name (`legacy-ab1`, tagged `tenantflow:namespace`,
/// the pointer naming it, as `tenantflow aws adopt` leaves it): the deploy moves the tenant onto a
/// generation and teardown deletes the adopted instance; `status` never calls it an orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_instance_under_its_own_name_is_deployed_and_retired() {
    use tenantflow_core::ports::Databases as _;
    let f = fleet();
    let t = TENANTS[0];
    let ns = Namespace::parse(t).unwrap();
    let ports = f.state.ports().unwrap();
    let generation =
        tenantflow_core::names::InstanceId::parse(&format!("{t}-20260101000000")).unwrap();
    let legacy = tenantflow_core::names::InstanceId::parse("legacy-ab1").unwrap();
    let dir = f.state.root().join("rds/instances");
    std::fs::copy(
        dir.join(format!("{generation}.sqlite")),
        dir.join("legacy-ab1.sqlite"),
    )
    .unwrap();
    let tags: tenantflow_core::ports::Tags = [
        ("tenantflow:namespace", t),
        ("tenantflow:role", "active"),
        ("tenantflow:release", "0001-initial"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ports
        .databases
        .register_instance(&legacy, &tags, false)
        .unwrap();
    let mut pointer: serde_json::Value = serde_json::from_str(
        &ports
            .parameters
            .get_sync(&ns.paths().pointer)
            .unwrap()
            .unwrap()
            .value,
    )
    .unwrap();
    pointer["instanceId"] = "legacy-ab1".into();
    pointer["generation"] = "20250101000000".into();
    pointer["endpoint"] = dir.join("legacy-ab1.sqlite").display().to_string().into();
    ports
        .parameters
        .put_sync(&ns.paths().pointer, &pointer.to_string())
        .unwrap();
    ports
        .databases
        .set_deletion_protection(&generation, false)
        .await
        .unwrap();
    ports.databases.delete_instance(&generation).await.unwrap();
    drop(ports);
    let before = status(&f.state).unwrap();
    assert!(
        before.orphans.instances.is_empty(),
        "the serving adopted instance is no orphan: {:?}",
        before.orphans
    );
    let rows_before = rows(&dir.join("legacy-ab1.sqlite"));

    let report = deploy(&f.state, &f.r2, DeployOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(report.status, "SUCCEEDED", "{report:#?}");
    let r = report.tenants.iter().find(|r| r.tenant == t).unwrap();
    assert_eq!(r.outcome, Outcome::Deployed, "{r:?}");
    assert_eq!(r.from_generation.as_deref(), Some("20250101000000"));
    let active = active_file(&f.state, t);
    let name = active.file_stem().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with(&format!("{t}-")) && name != generation.as_str(),
        "a new generation serves: {name}"
    );
    assert_eq!(rows(&active), rows_before, "no row lost");
    assert!(
        !dir.join("legacy-ab1.sqlite").exists(),
        "teardown deleted the adopted instance"
    );
    let after = status(&f.state).unwrap();
    assert!(after.orphans.instances.is_empty(), "{:?}", after.orphans);
}
