//! Fleet mode `rehearse`: `0003-unique-email` rehearsed on the example fleet names exactly the
//! tenants with duplicate emails, with the migration's error, and leaves every pointer, every
//! active database and every write freeze byte for byte as it was; no candidate or snapshot of
//! the rehearsal is left behind.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Each tenant's current pointer value, and the bytes (sha256) of the database it names.
fn pointers_and_databases(state: &Path) -> BTreeMap<String, (String, String)> {
    pointers(state)
        .into_iter()
        .map(|(name, p)| {
            let instance = pointer_field(&p, "instanceId");
            let file = state
                .join("rds/instances")
                .join(format!("{instance}.sqlite"));
            let bytes = std::fs::read(&file).unwrap();
            (name, (p.to_string(), hex::encode(Sha256::digest(bytes))))
        })
        .collect()
}

#[test]
fn a_rehearsal_of_0003_names_the_duplicate_email_tenants_and_changes_nothing_they_see() {
    const SEED: u64 = 5;
    const TENANTS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    init(&state, TENANTS, 20, SEED);
    let (code, _) = tenantflow_json(
        &state,
        &[
            "deploy",
            example("0002-loyalty-points").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let before = pointers_and_databases(&state);
    let writes = parameter_writes(&state);
    let (instances, _) = rds_files(&state, "instances");
    let (snapshots, _) = rds_files(&state, "snapshots");

    let (code, report) = tenantflow_json(
        &state,
        &[
            "deploy",
            example("0003-unique-email").to_str().unwrap(),
            "--fleet",
            "rehearse",
            "--json",
        ],
    );
    assert_eq!(code, 3, "some tenant would fail: {report}");
    let expected: Vec<String> = (0..TENANTS)
        .filter(|i| tenantflow::fleet::has_duplicate_emails(SEED, *i))
        .map(|i| tenantflow::fleet::tenant_name(i).to_string())
        .collect();
    assert_eq!(expected.len(), 2);
    let mut would_fail = vec![];
    for t in report["tenants"].as_array().unwrap() {
        let name = t["tenant"].as_str().unwrap().to_string();
        match t["outcome"].as_str().unwrap() {
            "would-fail" => {
                let error = t["error"].as_str().unwrap();
                assert!(
                    error.contains("UNIQUE constraint failed: customers.email"),
                    "{name}: {error}"
                );
                would_fail.push(name);
            }
            "rehearsed" => assert!(t["error"].is_null(), "{t}"),
            other => panic!("{name}: outcome {other}"),
        }
    }
    assert_eq!(would_fail, expected);

    assert_eq!(
        pointers_and_databases(&state),
        before,
        "pointers or databases changed"
    );
    assert_eq!(
        parameter_writes(&state),
        writes,
        "a rehearsal writes no pointer"
    );
    assert!(pointers(&state).values().all(|p| p.get("freeze").is_none()));
    assert_eq!(
        rds_files(&state, "instances").0,
        instances,
        "a candidate was left"
    );
    assert_eq!(
        rds_files(&state, "snapshots").0,
        snapshots,
        "a snapshot was left"
    );
    assert!(tenant_records(&state)
        .iter()
        .all(|(_, holder, _, _)| holder.is_none()));
    check_invariants(&state);
}

#[test]
fn a_rehearsal_where_every_tenant_prepares_exits_0_and_keeps_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    init(&state, 3, 10, 1);
    let before = pointers_and_databases(&state);
    let (snapshots, _) = rds_files(&state, "snapshots");
    let (code, report) = tenantflow_json(
        &state,
        &[
            "deploy",
            example("0002-loyalty-points").to_str().unwrap(),
            "--fleet",
            "rehearse",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"], "SUCCEEDED");
    assert!(report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["outcome"] == "rehearsed"));
    assert_eq!(pointers_and_databases(&state), before);
    assert_eq!(
        rds_files(&state, "snapshots").0,
        snapshots,
        "snapshotRetention does not apply"
    );
    check_invariants(&state);
}
