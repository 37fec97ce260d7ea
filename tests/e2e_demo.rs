//! End to end: the demo's three deploys through the built binary, with the invariants of
//! docs/design.md §8 checked after each by reading the state directory directly.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const TENANTS: usize = 8;
const ROWS: usize = 30;
const SEED: u64 = 42;

/// Tenants whose seeded data holds a duplicate email (the generator's documented rule).
fn duplicate_tenants(state: &Path) -> BTreeSet<String> {
    let (code, v) = tenantflow_json(state, &["status", "--json"]);
    assert_eq!(code, 0);
    let names: Vec<String> = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), TENANTS);
    // Read the data itself rather than trusting the rule: a tenant with two equal emails.
    let pointers = pointers(state);
    pointers
        .iter()
        .filter(|(_, p)| {
            let db = state
                .join("rds/instances")
                .join(format!("{}.sqlite", pointer_field(p, "instanceId")));
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            conn.query_row(
                "SELECT COUNT(*) > COUNT(DISTINCT email) FROM customers",
                [],
                |r| r.get::<_, bool>(0),
            )
            .unwrap()
        })
        .map(|(ns, _)| ns.clone())
        .collect()
}

fn outcomes(report: &Value) -> BTreeMap<String, String> {
    report["tenants"]
        .as_array()
        .expect("tenants array")
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn deploy(state: &Path, release: &str, extra: &[&str]) -> (i32, Value) {
    let dir = example(release);
    let mut args = vec!["deploy", dir.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    tenantflow_json(state, &args)
}

fn check_report_shape(report: &Value, release: &str) {
    let obj = report.as_object().expect("one JSON object");
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "run",
            "release",
            "status",
            "tenants",
            "stateTransitions",
            "maxHistoryEvents"
        ])
    );
    assert_eq!(report["release"], release);
    assert!(report["stateTransitions"].as_u64().unwrap() > 0);
    assert!(report["maxHistoryEvents"].as_u64().unwrap() > 0);
    for t in report["tenants"].as_array().unwrap() {
        let keys: BTreeSet<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "tenant",
                "outcome",
                "fromGeneration",
                "toGeneration",
                "error"
            ])
        );
    }
}

#[test]
fn demo_deploys_keep_the_invariants() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    let aon = tmp.path().join("fleet-aon");
    init(&state, TENANTS, ROWS, SEED);
    init(&aon, TENANTS, ROWS, SEED);
    let releases = check_invariants(&state);
    assert!(
        releases.values().all(|r| r == "0001-initial"),
        "{releases:?}"
    );
    let dups = duplicate_tenants(&state);
    assert!(
        !dups.is_empty() && dups.len() < TENANTS,
        "the fleet must have a few, not all, duplicate-email tenants: {dups:?}"
    );

    // 1. 0002 succeeds everywhere (on both fleets).
    for s in [&state, &aon] {
        let (code, report) = deploy(s, "0002-loyalty-points", &[]);
        check_report_shape(&report, "0002-loyalty-points");
        assert_eq!(code, 0, "{report:#}");
        let o = outcomes(&report);
        assert_eq!(o.len(), TENANTS);
        assert!(o.values().all(|v| v == "deployed"), "{o:?}");
        let releases = check_invariants(s);
        assert!(
            releases.values().all(|r| r == "0002-loyalty-points"),
            "{releases:?}"
        );
        // Every tenant moved from one generation to another.
        for t in report["tenants"].as_array().unwrap() {
            assert_ne!(t["fromGeneration"], t["toGeneration"], "{t}");
        }
    }

    // 2. 0003 independently: the duplicate-email tenants roll back, the rest move on.
    let before = fleet_checksums(&state);
    let pointers_before = pointers(&state);
    let (code, report) = deploy(&state, "0003-unique-email", &["--fleet", "independent"]);
    check_report_shape(&report, "0003-unique-email");
    assert_eq!(code, 3, "{report:#}");
    let o = outcomes(&report);
    for (tenant, outcome) in &o {
        let want = if dups.contains(tenant) {
            "rolled-back"
        } else {
            "deployed"
        };
        assert_eq!(outcome, want, "{tenant}: {report:#}");
    }
    for t in report["tenants"].as_array().unwrap() {
        if t["outcome"] == "rolled-back" {
            let err = t["error"].as_str().unwrap_or_default();
            assert!(
                !err.is_empty(),
                "a rolled-back tenant reports its error: {t}"
            );
            // In words: the failed build's message, never a JSON cause.
            assert!(
                err.starts_with("States.TaskFailed: migration V3__")
                    && err.contains("UNIQUE constraint failed")
                    && !err.contains('{'),
                "{err}"
            );
        }
    }
    let releases = check_invariants(&state);
    let after = fleet_checksums(&state);
    let pointers_after = pointers(&state);
    for (ns, release) in &releases {
        if dups.contains(ns) {
            assert_eq!(release, "0002-loyalty-points", "{ns}");
            assert_eq!(
                pointers_after[ns], pointers_before[ns],
                "{ns}: the pointer of a rolled-back tenant must not move"
            );
            assert_eq!(after[ns], before[ns], "{ns}: rolled-back data changed");
        } else {
            assert_eq!(release, "0003-unique-email", "{ns}");
        }
    }

    // 3. 0003 all-or-nothing on the fresh copy: everyone stays on 0002, data unchanged.
    let before = fleet_checksums(&aon);
    let pointers_before = pointers(&aon);
    let (code, report) = deploy(&aon, "0003-unique-email", &["--fleet", "all-or-nothing"]);
    check_report_shape(&report, "0003-unique-email");
    assert_eq!(code, 3, "{report:#}");
    let o = outcomes(&report);
    assert_eq!(o.len(), TENANTS);
    assert!(o.values().all(|v| v != "deployed"), "{o:?}");
    let releases = check_invariants(&aon);
    let distinct: BTreeSet<&String> = releases.values().collect();
    assert_eq!(
        distinct,
        BTreeSet::from([&"0002-loyalty-points".to_string()]),
        "all-or-nothing must leave every tenant on the same release"
    );
    assert_eq!(pointers(&aon), pointers_before);
    assert_eq!(fleet_checksums(&aon), before);

    // status --json agrees with the files.
    let (code, status) = tenantflow_json(&aon, &["status", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(status["orphans"]["instances"], Value::Array(vec![]));
    assert_eq!(status["orphans"]["snapshots"], Value::Array(vec![]));
    for t in status["tenants"].as_array().unwrap() {
        assert_eq!(t["release"], "0002-loyalty-points", "{t}");
        assert_eq!(t["locked"], false, "{t}");
        assert_eq!(t["maintenance"], false, "{t}");
    }
}

#[test]
fn demo_command_runs_and_explains() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("demo-state");
    let out = tenantflow(&state, &["demo", "--rows", "20"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        stderr(&out)
    );
    for needle in [
        "0002-loyalty-points",
        "0003-unique-email",
        "rolled-back",
        "all-or-nothing",
        state.to_str().unwrap(),
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
    let releases = check_invariants(&state);
    assert!(releases.values().any(|r| r == "0003-unique-email"));
    assert!(releases.values().any(|r| r == "0002-loyalty-points"));
    let aon = tmp.path().join("demo-state-all-or-nothing");
    let releases = check_invariants(&aon);
    assert!(releases.values().all(|r| r == "0002-loyalty-points"));
}
