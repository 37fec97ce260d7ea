//! The write-freeze drain end to end on the local backend (virtual time): the snapshot of each
//! tenant is taken `freezeDrainSeconds` after its freeze went up, read from the state directly:
//! the freeze is the first pointer version carrying one (`ssm.sqlite`), the snapshot's time is its
//! creation time in `rds/registry.sqlite`.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

const RELEASE: &str = "0002-loyalty-points";

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// Per tenant: seconds from the freeze going up to the snapshot of the run's generation.
fn drain_seconds(state: &Path) -> Vec<(String, i64)> {
    let ro = |f: &str| Connection::open_with_flags(state.join(f), OpenFlags::SQLITE_OPEN_READ_ONLY);
    let ssm = ro("ssm.sqlite").unwrap();
    let rds = ro("rds/registry.sqlite").unwrap();
    let mut out = Vec::new();
    for (ns, pointer) in pointers(state) {
        let frozen: String = ssm
            .query_row(
                "SELECT modified_at FROM parameter_versions
                 WHERE name = ?1 AND json_extract(value, '$.freeze') IS NOT NULL
                 ORDER BY version LIMIT 1",
                [format!("/tenantflow/{ns}/db")],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{ns}: no frozen pointer version: {e}"));
        let snapshot = format!("{ns}-{}", pointer_field(&pointer, "generation"));
        let taken: String = rds
            .query_row(
                "SELECT created_at FROM snapshots WHERE id = ?1",
                [&snapshot],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{ns}: no snapshot {snapshot}: {e}"));
        out.push((ns, (time(&taken) - time(&frozen)).num_seconds()));
    }
    out
}

fn deploy(state: &Path, release: &Path, extra: &[&str]) {
    let mut args = vec!["deploy", release.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let (code, report) = tenantflow_json(state, &args);
    assert_eq!(code, 0, "{report:#}");
    let releases = check_invariants(state);
    assert!(releases.values().all(|r| r == RELEASE), "{releases:?}");
}

#[test]
fn the_snapshot_is_taken_the_drain_after_the_freeze() {
    let tmp = tempfile::tempdir().unwrap();
    let release = example(RELEASE);

    // The flag.
    let state = tmp.path().join("flag");
    init(&state, 2, 10, 5);
    deploy(&state, &release, &["--freeze-drain-seconds", "90"]);
    let drains = drain_seconds(&state);
    assert_eq!(drains.len(), 2);
    assert!(drains.iter().all(|(_, s)| *s == 90), "{drains:?}");

    // No drain: the snapshot is taken with the freeze.
    let state = tmp.path().join("none");
    init(&state, 2, 10, 5);
    deploy(&state, &release, &[]);
    assert!(drain_seconds(&state).iter().all(|(_, s)| *s == 0));

    // The manifest's drain, and the flag overriding it.
    let folder = tmp.path().join(RELEASE);
    std::fs::create_dir_all(&folder).unwrap();
    for e in std::fs::read_dir(&release).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), folder.join(e.file_name())).unwrap();
    }
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    manifest["freezeDrainSeconds"] = serde_json::json!(30);
    std::fs::write(folder.join("manifest.json"), manifest.to_string()).unwrap();
    for (name, extra, want) in [
        ("manifest", &[][..], 30),
        ("override", &["--freeze-drain-seconds", "0"][..], 0),
    ] {
        let state = tmp.path().join(name);
        init(&state, 2, 10, 5);
        deploy(&state, &folder, extra);
        let drains = drain_seconds(&state);
        assert!(drains.iter().all(|(_, s)| *s == want), "{name}: {drains:?}");
    }
}

#[test]
fn a_drain_outside_0_to_3600_is_refused_before_anything_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 1, 5, 5);
    let before = parameter_writes(&state);
    let release = example(RELEASE);
    for bad in ["3601", "-1", "1.5", "soon"] {
        let out = tenantflow(
            &state,
            &[
                "deploy",
                release.to_str().unwrap(),
                "--freeze-drain-seconds",
                bad,
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--freeze-drain-seconds"), "{bad}");
    }
    assert_eq!(parameter_writes(&state), before);
}
