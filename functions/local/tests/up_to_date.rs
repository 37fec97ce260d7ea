//! Up-to-date tenants are skipped, newer ones refused, and a run's failed tenants retried: the
//! real definitions on a small local fleet.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tenantflow_core::manifest::FleetMode;
use tenantflow_core::model::Outcome;
use tenantflow_core::names::{GenerationTs, Namespace};
use tenantflow_local::{deploy, runs, status, DeployOptions, DeployReport, LocalState};

const V1: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL);";
const V2: &str = "ALTER TABLE customers ADD COLUMN loyalty_points INTEGER NOT NULL DEFAULT 0;";
const V3: &str = "CREATE UNIQUE INDEX customers_email ON customers (email);";
const TENANTS: [&str; 4] = [
    "ab-0001-prod",
    "ab-0002-prod",
    "cd-0003-prod",
    "cd-0004-prod",
];
/// The tenant with duplicate emails: `0003-unique` fails on it.
const DUP: &str = "ab-0002-prod";

fn write_release(root: &Path, id: &str, scripts: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut entries = vec![];
    for (name, sql) in scripts {
        std::fs::write(dir.join(name), sql).unwrap();
        entries.push(serde_json::json!({"name": name, "sha256": hex::encode(Sha256::digest(sql.as_bytes()))}));
    }
    let m = serde_json::json!({"release": id, "scripts": entries});
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    dir
}

struct Fleet {
    _tmp: tempfile::TempDir,
    state: LocalState,
    r2: PathBuf,
    r3: PathBuf,
}

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let state = LocalState::create(&tmp.path().join("state")).unwrap();
    let rel = tmp.path().join("releases");
    let r1 = write_release(&rel, "0001-initial", &[("V1__init.sql", V1)]);
    let r2 = write_release(
        &rel,
        "0002-points",
        &[("V1__init.sql", V1), ("V2__points.sql", V2)],
    );
    let r3 = write_release(
        &rel,
        "0003-unique",
        &[
            ("V1__init.sql", V1),
            ("V2__points.sql", V2),
            ("V3__unique.sql", V3),
        ],
    );
    let ts = GenerationTs::parse("20260101000000").unwrap();
    for t in TENANTS {
        let dup = t == DUP;
        state
            .create_tenant(&Namespace::parse(t).unwrap(), ts, &r1, &move |c| {
                for n in 0..20 {
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
        r2,
        r3,
    }
}

/// Every tenant's pointer value, as stored.
fn pointers(state: &LocalState) -> BTreeMap<String, String> {
    let c = rusqlite::Connection::open(state.root().join("ssm.sqlite")).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT name, value FROM parameter_versions p
             WHERE version = (SELECT MAX(version) FROM parameter_versions WHERE name = p.name)",
        )
        .unwrap();
    let out = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    out
}

/// The instance and snapshot files of the state directory.
fn files(state: &LocalState) -> Vec<String> {
    let mut out = vec![];
    for dir in ["rds/instances", "rds/snapshots"] {
        for e in std::fs::read_dir(state.root().join(dir)).unwrap() {
            out.push(format!(
                "{dir}/{}",
                e.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

fn outcomes(r: &DeployReport) -> Vec<(&str, Outcome)> {
    r.tenants
        .iter()
        .map(|t| (t.tenant.as_str(), t.outcome))
        .collect()
}

async fn run(state: &LocalState, release: &Path, fleet: Option<FleetMode>) -> DeployReport {
    let opts = DeployOptions {
        fleet,
        ..DeployOptions::default()
    };
    deploy(state, release, opts, None).await.unwrap()
}

/// A second deploy of the same release: every tenant `up-to-date`, no new generation, no
/// snapshot, no pointer write, and the run SUCCEEDED in a handful of transitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_of_the_same_release_changes_nothing() {
    let f = fleet();
    let first = run(&f.state, &f.r2, None).await;
    assert!(first.all_deployed(), "{first:#?}");
    let (before, on_disk) = (pointers(&f.state), files(&f.state));
    for v in before.values() {
        assert!(
            v.contains("\"scripts\":"),
            "the flip records the script set: {v}"
        );
    }

    for mode in [None, Some(FleetMode::AllOrNothing)] {
        let again = run(&f.state, &f.r2, mode).await;
        assert_eq!(again.status, "SUCCEEDED", "{again:#?}");
        assert!(again.all_deployed());
        assert_eq!(
            outcomes(&again),
            TENANTS.map(|t| (t, Outcome::UpToDate)).to_vec()
        );
        for t in &again.tenants {
            assert!(
                t.from_generation.is_some() && t.to_generation.is_none(),
                "{t:?}"
            );
            assert!(t.error.is_none(), "{t:?}");
        }
        assert_eq!(pointers(&f.state), before, "no pointer written");
        assert_eq!(files(&f.state), on_disk, "no generation or snapshot made");
        // The plan, a choice and the report: a few transitions whatever the fleet's size.
        assert!(
            again.state_transitions <= 8,
            "{} transitions for a no-op, {} for the deploy",
            again.state_transitions,
            first.state_transitions
        );
    }
    let st = status(&f.state).unwrap();
    assert!(st.tenants.iter().all(|t| !t.locked && !t.maintenance));
}

/// A tenant on a release holding a versioned script this one lacks is newer: reported skipped
/// with `Tenantflow.Newer` in independent mode (the others still go ahead), and the all-or-nothing
/// run refuses before preparing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_lacking_an_applied_script_is_refused() {
    let f = fleet();
    run(&f.state, &f.r2, None).await;
    let r3 = run(&f.state, &f.r3, None).await;
    assert_eq!(
        r3.tenants
            .iter()
            .filter(|t| t.outcome == Outcome::Deployed)
            .count(),
        3
    );
    let (before, on_disk) = (pointers(&f.state), files(&f.state));

    let back = run(&f.state, &f.r2, None).await;
    assert_eq!(back.status, "FAILED");
    for t in &back.tenants {
        if t.tenant == DUP {
            assert_eq!(t.outcome, Outcome::UpToDate, "{t:?}");
        } else {
            assert_eq!(t.outcome, Outcome::Skipped, "{t:?}");
            assert_eq!(t.error.as_deref(), Some("Tenantflow.Newer"), "{t:?}");
            assert!(t.cause.as_deref().unwrap_or("").contains("V3"), "{t:?}");
        }
    }
    assert_eq!(pointers(&f.state), before);
    assert_eq!(files(&f.state), on_disk);

    let aon = run(&f.state, &f.r2, Some(FleetMode::AllOrNothing)).await;
    assert_eq!(aon.status, "FAILED");
    assert_eq!(aon.error.as_deref(), Some("Tenantflow.Newer"), "{aon:#?}");
    assert!(aon.tenants.is_empty(), "{aon:#?}");
    assert_eq!(pointers(&f.state), before);
    assert_eq!(files(&f.state), on_disk);
}

/// `retry RUN` deploys only the tenants RUN rolled back or skipped, with the tenant list passed
/// by reference; the runs list and a run's report read back from the state directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_deploys_only_the_failed_tenants() {
    let f = fleet();
    run(&f.state, &f.r2, None).await;
    let failed = run(&f.state, &f.r3, None).await;
    assert_eq!(failed.status, "FAILED");
    let rolled: Vec<&str> = failed
        .tenants
        .iter()
        .filter(|t| t.outcome == Outcome::RolledBack)
        .map(|t| t.tenant.as_str())
        .collect();
    assert_eq!(rolled, [DUP]);

    // Nothing changed: the retry fails the same way, on that tenant alone.
    let plan = runs::plan_retry(&f.state, &failed.run).unwrap();
    assert_eq!(plan.tenants, [DUP]);
    assert_eq!(plan.release, "0003-unique");
    let others_before: BTreeMap<String, String> = pointers(&f.state)
        .into_iter()
        .filter(|(k, _)| !k.contains(DUP))
        .collect();
    let again = runs::retry(&f.state, plan, None).await.unwrap();
    assert_eq!(outcomes(&again), [(DUP, Outcome::RolledBack)]);

    // Fix the data, then retry the retry: only that tenant deploys.
    let st = status(&f.state).unwrap();
    let dup = st.tenants.iter().find(|t| t.tenant == DUP).unwrap();
    let file = f
        .state
        .root()
        .join("rds/instances")
        .join(format!("{}.sqlite", dup.active_instance.as_ref().unwrap()));
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute(
            "UPDATE customers SET email = 'fixed-' || id || '@x.io' WHERE email = 'dup@x.io'",
            [],
        )
        .unwrap();
    let plan = runs::plan_retry(&f.state, &again.run).unwrap();
    let fixed = runs::retry(&f.state, plan, None).await.unwrap();
    assert_eq!(fixed.status, "SUCCEEDED", "{fixed:#?}");
    assert_eq!(outcomes(&fixed), [(DUP, Outcome::Deployed)]);
    let after: BTreeMap<String, String> = pointers(&f.state)
        .into_iter()
        .filter(|(k, _)| !k.contains(DUP))
        .collect();
    assert_eq!(after, others_before, "the other tenants were not touched");
    assert!(status(&f.state)
        .unwrap()
        .tenants
        .iter()
        .all(|t| t.release.as_deref() == Some("0003-unique")));

    // The input names the list by key; the list is in the release bucket.
    let input = runs::read_input(&f.state, &fixed.run).unwrap();
    let key = input.tenant_list.expect("tenantList");
    assert_eq!(key, format!("runs/{}/retry-tenants.json", again.run));
    let listed: Vec<String> = serde_json::from_slice(
        &std::fs::read(f.state.root().join("s3/tenantflow-releases").join(&key)).unwrap(),
    )
    .unwrap();
    assert_eq!(listed, [DUP]);

    // `runs` lists all four, oldest first; nothing is left to retry.
    let all = runs::list(&f.state).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all.last().unwrap().run, fixed.run);
    assert_eq!(all.last().unwrap().outcomes.get("deployed"), Some(&1));
    assert!(all.last().unwrap().tenant_list.is_some());
    assert_eq!(
        runs::report(&f.state, &failed.run).unwrap().tenants.len(),
        4
    );
    assert!(runs::plan_retry(&f.state, &fixed.run)
        .unwrap()
        .tenants
        .is_empty());
    assert!(runs::report(&f.state, "no-such-run").is_err());
    assert!(runs::report(&f.state, "../runs").is_err());
}
