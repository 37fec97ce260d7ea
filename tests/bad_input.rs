//! Bad input at the CLI: each gets a clear error naming the file, before anything changes; a
//! corrupt tenant database fails alone and the others deploy.

mod common;
#[path = "bad_input/corpus.rs"]
mod corpus;

use common::*;
use std::path::{Path, PathBuf};

/// A copy of an example release folder that a test may break.
fn release_copy(tmp: &Path, id: &str) -> PathBuf {
    let dst = tmp.join("release").join(id);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(example(id)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// What a deploy could change in the store of locks and tokens.
type Records = (
    Vec<(String, Option<String>, String, i64)>,
    Vec<(String, String, String)>,
);

/// Everything a deploy could change: parameter writes, tenant records and wait tokens, instance
/// and snapshot files, published objects.
fn fingerprint(state: &Path) -> (i64, Records, Vec<String>, Vec<String>, Vec<PathBuf>) {
    let (i, _) = rds_files(state, "instances");
    let (s, _) = rds_files(state, "snapshots");
    let mut objects = Vec::new();
    let mut stack = vec![state.join("s3")];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    objects.push(p);
                }
            }
        }
    }
    objects.sort();
    (
        parameter_writes(state),
        (tenant_records(state), wait_tokens(state)),
        i.into_iter().collect(),
        s.into_iter().collect(),
        objects,
    )
}

/// Deploys `dir` and asserts exit 1, an error naming `needle`, and no change to the state.
fn refused(state: &Path, dir: &Path, needle: &str) {
    let before = fingerprint(state);
    let out = tenantflow(state, &["deploy", dir.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{err}",
        stdout(&out)
    );
    assert!(err.contains(needle), "error should name {needle:?}:\n{err}");
    assert_eq!(
        fingerprint(state),
        before,
        "a refused deploy changed the state"
    );
}

fn fleet(tmp: &Path) -> PathBuf {
    let state = tmp.join("state");
    init(&state, 3, 10, 1);
    state
}

#[test]
fn missing_script_is_refused_before_any_change() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let dir = release_copy(tmp.path(), "0002-loyalty-points");
    std::fs::remove_file(dir.join("V2__loyalty_points.sql")).unwrap();
    refused(&state, &dir, "V2__loyalty_points.sql");
}

#[test]
fn extra_script_is_refused_before_any_change() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let dir = release_copy(tmp.path(), "0002-loyalty-points");
    std::fs::write(dir.join("V9__sneaky.sql"), "DROP TABLE customers;").unwrap();
    refused(&state, &dir, "V9__sneaky.sql");
}

#[test]
fn sha256_mismatch_is_refused_before_any_change() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let dir = release_copy(tmp.path(), "0002-loyalty-points");
    let script = dir.join("V2__loyalty_points.sql");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("\nDELETE FROM orders;\n");
    std::fs::write(&script, text).unwrap();
    refused(&state, &dir, "V2__loyalty_points.sql");
}

#[test]
fn bad_script_name_is_refused_by_deploy_and_by_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let dir = release_copy(tmp.path(), "0002-loyalty-points");
    std::fs::rename(
        dir.join("V2__loyalty_points.sql"),
        dir.join("V2-loyalty-points.sql"),
    )
    .unwrap();
    // The manifest still names the old file; fix it to name the bad one, sha256 and all.
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .unwrap()
        .replace("V2__loyalty_points.sql", "V2-loyalty-points.sql");
    std::fs::write(&manifest_path, text).unwrap();
    refused(&state, &dir, "V2-loyalty-points.sql");

    let before = std::fs::read_to_string(&manifest_path).unwrap();
    let out = tenantflow(&state, &["release", "pack", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("V2-loyalty-points.sql"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&manifest_path).unwrap(),
        before,
        "pack must not write a manifest for a bad folder"
    );
}

#[test]
fn a_folder_that_is_not_a_state_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let not_state = tmp.path().join("photos");
    std::fs::create_dir_all(&not_state).unwrap();
    std::fs::write(not_state.join("cat.jpg"), b"meow").unwrap();
    let dir = example("0002-loyalty-points");
    for args in [
        vec!["deploy", dir.to_str().unwrap()],
        vec!["status"],
        vec!["status", "--json"],
    ] {
        let out = tenantflow(&not_state, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("photos"), "{args:?}: {err}");
        assert!(err.contains("init"), "the error says what to do: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}: nothing on stdout");
    }
    // init refuses a non-empty folder that is not a state dir, and leaves it alone.
    let out = tenantflow(&not_state, &["init", "--tenants", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let names: Vec<_> = std::fs::read_dir(&not_state).unwrap().collect();
    assert_eq!(names.len(), 1);
    // A path that does not exist is not a state dir either.
    let out = tenantflow(&tmp.path().join("nowhere"), &["status"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_corrupt_tenant_fails_alone_and_the_others_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let pointers = pointers(&state);
    let (victim, p) = pointers.iter().next().unwrap();
    let file = state
        .join("rds/instances")
        .join(format!("{}.sqlite", pointer_field(p, "instanceId")));
    std::fs::write(
        &file,
        b"this is not a SQLite database, it is a cautionary tale",
    )
    .unwrap();

    let dir = example("0002-loyalty-points");
    // One wave: in the example's canary wave, a failure would (rightly) stop the rest.
    let (code, report) = tenantflow_json(
        &state,
        &["deploy", dir.to_str().unwrap(), "--json", "--canary", "0"],
    );
    assert_eq!(code, 3, "{report:#}");
    for t in report["tenants"].as_array().unwrap() {
        if t["tenant"] == victim.as_str() {
            assert_ne!(t["outcome"], "deployed", "{t}");
            assert!(
                !t["error"].as_str().unwrap_or_default().is_empty(),
                "the corrupt tenant's error is reported: {t}"
            );
        } else {
            assert_eq!(t["outcome"], "deployed", "{t}");
        }
    }
    assert_eq!(report["tenants"].as_array().unwrap().len(), pointers.len());
    // The others are on 0002; the victim's pointer did not move.
    let after = common::pointers(&state);
    for (ns, p) in &after {
        if ns == victim {
            assert_eq!(p, &pointers[ns]);
        } else {
            assert_eq!(pointer_field(p, "release"), "0002-loyalty-points");
        }
    }
}

#[test]
fn init_refuses_a_state_dir_that_already_has_a_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let before = fingerprint(&state);
    let out = tenantflow(&state, &["init", "--tenants", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already holds a fleet"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fingerprint(&state), before);
}

/// Writes a new version of tenant `ns`'s pointer holding `value`.
fn damage_pointer(state: &Path, ns: &str, value: &str) {
    let conn = rusqlite::Connection::open(state.join("ssm.sqlite")).unwrap();
    conn.execute(
        "INSERT INTO parameter_versions (name, version, value, modified_at)
         SELECT name, MAX(version) + 1, ?2, modified_at FROM parameter_versions WHERE name = ?1",
        rusqlite::params![format!("/tenantflow/{ns}/db"), value],
    )
    .unwrap();
}

fn tenant_row<'a>(report: &'a serde_json::Value, ns: &str) -> &'a serde_json::Value {
    report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == ns)
        .unwrap_or_else(|| panic!("no row for {ns}: {report:#}"))
}

#[test]
fn tenants_that_cannot_be_deployed_to_are_reported_and_the_others_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let before = pointers(&state);
    // acme: a damaged pointer; globex: its database file emptied.
    damage_pointer(&state, "acme-0001-prod", "{not json");
    let globex = &before["globex-0001-prod"];
    let file = state
        .join("rds/instances")
        .join(format!("{}.sqlite", pointer_field(globex, "instanceId")));
    std::fs::write(&file, b"").unwrap();

    let dir = example("0002-loyalty-points");
    let (code, report) = tenantflow_json(
        &state,
        &["deploy", dir.to_str().unwrap(), "--json", "--canary", "0"],
    );
    assert_eq!(code, 3, "{report:#}");
    let acme = tenant_row(&report, "acme-0001-prod");
    assert_eq!(acme["outcome"], "skipped", "{acme}");
    let err = acme["error"].as_str().unwrap();
    assert!(
        err.starts_with("Run.NotDeployable") && err.contains("/tenantflow/acme-0001-prod/db"),
        "{err}"
    );
    let g = tenant_row(&report, "globex-0001-prod");
    assert_eq!(g["outcome"], "rolled-back", "{g}");
    assert!(g["error"].as_str().unwrap().contains("empty"), "{g}");
    assert_eq!(
        tenant_row(&report, "initech-0001-prod")["outcome"],
        "deployed"
    );
    // The emptied file was not turned into a tenant without data, and nobody is left locked.
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
    let globex_now = &common::parameters(&state)["/tenantflow/globex-0001-prod/db"];
    assert_eq!(globex_now, &globex.to_string());
    let left: Vec<String> = common::tenant_records(&state)
        .into_iter()
        .filter(|(_, holder, _, _)| holder.is_some())
        .map(|(tenant, ..)| tenant)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let frozen: Vec<String> = common::parameters(&state)
        .into_iter()
        .filter(|(_, v)| v.contains("\"freeze\""))
        .map(|(k, _)| k)
        .collect();
    assert!(frozen.is_empty(), "{frozen:?}");
}

#[test]
fn a_failed_health_check_reports_the_sql_error() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let dir = release_copy(tmp.path(), "0002-loyalty-points");
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["healthCheck"]["sql"] = serde_json::json!("SELECT nope FROM nowhere");
    std::fs::write(&path, m.to_string()).unwrap();
    let (code, report) = tenantflow_json(
        &state,
        &["deploy", dir.to_str().unwrap(), "--json", "--canary", "0"],
    );
    assert_eq!(code, 3, "{report:#}");
    for t in report["tenants"].as_array().unwrap() {
        assert_eq!(t["outcome"], "rolled-back", "{t}");
        let err = t["error"].as_str().unwrap();
        assert!(
            err.starts_with("Tenantflow.RolloutFailed: health check failed on")
                && err.contains("no such table: nowhere"),
            "{err}"
        );
    }
    // The text table has room for the SQL error too.
    let out = tenantflow(&state, &["deploy", dir.to_str().unwrap(), "--canary", "0"]);
    assert!(
        stdout(&out).contains("no such table: nowhere"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_release_deploys_again_with_the_same_content() {
    let tmp = tempfile::tempdir().unwrap();
    let state = fleet(tmp.path());
    let dir = example("0002-loyalty-points");
    for _ in 0..2 {
        let (code, report) = tenantflow_json(&state, &["deploy", dir.to_str().unwrap(), "--json"]);
        assert_eq!(code, 0, "{report:#}");
    }
    // Re-packed in another folder with the same content: still the same release.
    let copy = release_copy(tmp.path(), "0002-loyalty-points");
    let (code, report) = tenantflow_json(&state, &["deploy", copy.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{report:#}");
}
