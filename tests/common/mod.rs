//! Shared helpers of the end-to-end tests: running the built `tenantflow` binary, and checking
//! the invariants of docs/design.md §8 by reading a state directory directly with rusqlite (never
//! through the CLI), following the public layout of docs/design.md §7.
#![allow(dead_code)]

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RELEASE_BUCKET: &str = "tenantflow-releases";

/// The example release folders in the source tree.
pub fn example(id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/releases")
        .join(id)
}

/// Runs `tenantflow --state <state> <args…>`.
pub fn tenantflow(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .arg("--state")
        .arg(state)
        .args(args)
        .env_remove("TENANTFLOW_STATE")
        .output()
        .expect("run the tenantflow binary")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must print one JSON object, returning (exit code, object).
pub fn tenantflow_json(state: &Path, args: &[&str]) -> (i32, Value) {
    let out = tenantflow(state, args);
    let text = stdout(&out);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "`tenantflow {}` did not print one JSON object ({e}).\nstdout:\n{text}\nstderr:\n{}",
            args.join(" "),
            stderr(&out)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// Creates a fleet with `init`, panicking with its output if it fails.
pub fn init(state: &Path, tenants: usize, rows: usize, seed: u64) {
    let out = tenantflow(
        state,
        &[
            "init",
            "--tenants",
            &tenants.to_string(),
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "init failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

fn open_ro(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The current value of every SSM parameter (the highest version of each name).
pub fn parameters(state: &Path) -> BTreeMap<String, String> {
    let conn = open_ro(&state.join("ssm.sqlite"));
    let mut stmt = conn
        .prepare(
            "SELECT name, value FROM parameter_versions p
             WHERE version = (SELECT MAX(version) FROM parameter_versions q WHERE q.name = p.name)",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Every tenant record in `records.sqlite` (tenant, lock holder, phase, version), by tenant; empty
/// when the file does not exist yet.
pub fn tenant_records(state: &Path) -> Vec<(String, Option<String>, String, i64)> {
    let path = state.join("records.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let conn = open_ro(&path);
    let mut stmt = conn
        .prepare("SELECT tenant, holder, phase, version FROM tenant_records ORDER BY tenant")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Every stored wait token in `records.sqlite`: (kind, resource, token).
pub fn wait_tokens(state: &Path) -> Vec<(String, String, String)> {
    let path = state.join("records.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let conn = open_ro(&path);
    let mut stmt = conn
        .prepare("SELECT kind, resource, token FROM wait_tokens ORDER BY kind, resource")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Number of rows in `parameter_versions` (grows with every write).
pub fn parameter_writes(state: &Path) -> i64 {
    let conn = open_ro(&state.join("ssm.sqlite"));
    conn.query_row("SELECT COUNT(*) FROM parameter_versions", [], |r| r.get(0))
        .unwrap()
}

/// The active pointer of every tenant: namespace → pointer JSON.
pub fn pointers(state: &Path) -> BTreeMap<String, Value> {
    parameters(state)
        .into_iter()
        .filter_map(|(name, value)| {
            let ns = name.strip_prefix("/tenantflow/")?.strip_suffix("/db")?;
            if ns.contains('/') {
                return None;
            }
            let v: Value = serde_json::from_str(&value)
                .unwrap_or_else(|e| panic!("pointer {name} is not JSON ({e}): {value}"));
            Some((ns.to_string(), v))
        })
        .collect()
}

pub fn pointer_field(p: &Value, field: &str) -> String {
    p.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("pointer has no {field}: {p}"))
        .to_string()
}

/// File stems (`<id>`) of `<state>/rds/<kind>/<id>.sqlite`, and any other file found there.
pub fn rds_files(state: &Path, kind: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut ids = BTreeSet::new();
    let mut other = Vec::new();
    let dir = state.join("rds").join(kind);
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        match name.strip_suffix(".sqlite") {
            Some(id) => {
                ids.insert(id.to_string());
            }
            // SQLite may leave a rollback journal or WAL next to a database only while it is open.
            None => other.push(name),
        }
    }
    (ids, other)
}

/// The manifest of a release as published into the local S3 (or the example folder).
pub fn manifest(state: &Path, release: &str) -> Value {
    let published = state
        .join("s3")
        .join(RELEASE_BUCKET)
        .join("releases")
        .join(release)
        .join("manifest.json");
    let path = if published.is_file() {
        published
    } else {
        example(release).join("manifest.json")
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read manifest {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Successful `flyway_schema_history` rows of a database: (versions, repeatable scripts), and
/// whether any row failed.
pub fn history(db: &Path) -> (BTreeSet<String>, BTreeSet<String>, bool) {
    let conn = open_ro(db);
    let mut stmt = conn
        .prepare(r#"SELECT "version", "script", "success" FROM "flyway_schema_history""#)
        .unwrap_or_else(|e| panic!("{}: no flyway_schema_history: {e}", db.display()));
    let mut versions = BTreeSet::new();
    let mut repeatables = BTreeSet::new();
    let mut failed = false;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (version, script, success) = row.unwrap();
        if !success {
            failed = true;
            continue;
        }
        match version {
            Some(v) => {
                versions.insert(normalize_version(&v));
            }
            None => {
                repeatables.insert(script);
            }
        }
    }
    (versions, repeatables, failed)
}

fn normalize_version(v: &str) -> String {
    let mut parts: Vec<String> = v
        .replace('_', ".")
        .split('.')
        .map(|p| {
            let t = p.trim_start_matches('0');
            if t.is_empty() { "0" } else { t }.to_string()
        })
        .collect();
    while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
        parts.pop();
    }
    parts.join(".")
}

/// (versions, repeatable script names) a release's manifest lists.
pub fn release_scripts(manifest: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut versions = BTreeSet::new();
    let mut repeatables = BTreeSet::new();
    for s in manifest["scripts"].as_array().expect("manifest scripts") {
        let name = s["name"].as_str().unwrap();
        if name.starts_with("R__") {
            repeatables.insert(name.to_string());
        } else {
            let v = name
                .strip_prefix('V')
                .and_then(|r| r.strip_suffix(".sql"))
                .map(|r| r.split_once("__").map_or(r, |(v, _)| v))
                .unwrap();
            versions.insert(normalize_version(v));
        }
    }
    (versions, repeatables)
}

/// A checksum of every table of a database: table → sha256 over its rows in rowid order.
pub fn table_checksums(db: &Path) -> BTreeMap<String, String> {
    let conn = open_ro(db);
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut hash = Sha256::new();
        let mut s = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
            .or_else(|_| conn.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1")))
            .unwrap();
        let cols = s.column_count();
        let mut rows = s.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..cols {
                let v: rusqlite::types::Value = r.get(i).unwrap();
                hash.update(format!("{v:?}\u{1f}").as_bytes());
            }
            hash.update(b"\x1e");
        }
        out.insert(t, hex::encode(hash.finalize()));
    }
    out
}

/// Checksums of every tenant's active database: namespace → table → checksum.
pub fn fleet_checksums(state: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    pointers(state)
        .into_iter()
        .map(|(ns, p)| {
            let file = state
                .join("rds/instances")
                .join(format!("{}.sqlite", pointer_field(&p, "instanceId")));
            (ns, table_checksums(&file))
        })
        .collect()
}

/// docs/design.md §8 after a finished run, read from the files:
/// 1. every pointer names an existing instance file whose `flyway_schema_history` has exactly the
///    versions and repeatables of the pointer's release, and no failed row;
/// 2. no orphans: every instance file is some tenant's active instance, every snapshot belongs to a
///    tenant and is within its retention count, no temporary files are left, no lock is left held
///    in `records.sqlite`, no pointer carries a write freeze, and SSM holds nothing but the
///    pointers (one parameter per tenant).
///
/// Returns namespace → release.
pub fn check_invariants(state: &Path) -> BTreeMap<String, String> {
    let pointers = pointers(state);
    assert!(
        !pointers.is_empty(),
        "no tenant pointers in {}",
        state.display()
    );
    let (instances, stray_instances) = rds_files(state, "instances");
    let (snapshots, stray_snapshots) = rds_files(state, "snapshots");
    assert!(
        stray_instances.is_empty() && stray_snapshots.is_empty(),
        "stray files: {stray_instances:?} {stray_snapshots:?}"
    );
    let mut releases = BTreeMap::new();
    let mut active = BTreeSet::new();
    for (ns, p) in &pointers {
        let id = pointer_field(p, "instanceId");
        let release = pointer_field(p, "release");
        assert!(
            id.starts_with(&format!("{ns}-")),
            "{ns}: pointer names {id}, not a generation of this tenant"
        );
        let file = state.join("rds/instances").join(format!("{id}.sqlite"));
        assert!(
            file.is_file(),
            "{ns}: active instance {} missing",
            file.display()
        );
        let (versions, repeatables, failed) = history(&file);
        assert!(
            !failed,
            "{ns}: active database {id} has a failed migration row"
        );
        let (want_v, want_r) = release_scripts(&manifest(state, &release));
        assert_eq!(
            versions, want_v,
            "{ns}: {id} is not fully migrated to {release}"
        );
        assert_eq!(
            repeatables, want_r,
            "{ns}: {id} repeatables differ from {release}"
        );
        active.insert(id);
        releases.insert(ns.clone(), release);
    }
    let orphans: Vec<_> = instances.difference(&active).collect();
    assert!(orphans.is_empty(), "orphan instances: {orphans:?}");

    let mut per_tenant: BTreeMap<String, u32> = BTreeMap::new();
    for s in &snapshots {
        let ns = pointers
            .keys()
            .find(|ns| {
                s.strip_prefix(ns.as_str())
                    .is_some_and(|r| r.starts_with('-'))
            })
            .unwrap_or_else(|| panic!("orphan snapshot {s}: it belongs to no tenant"));
        *per_tenant.entry(ns.clone()).or_default() += 1;
    }
    for (ns, n) in per_tenant {
        let release = &releases[&ns];
        let retention = manifest(state, release)["snapshotRetention"]
            .as_u64()
            .unwrap_or(3) as u32;
        assert!(
            n <= retention.max(1),
            "{ns}: {n} snapshots, more than the retention of {retention}"
        );
    }
    for name in parameters(state).keys() {
        assert!(
            name.strip_prefix("/tenantflow/")
                .and_then(|r| r.strip_suffix("/db"))
                .is_some_and(|ns| pointers.contains_key(ns)),
            "{name}: SSM holds only the tenants' pointers"
        );
    }
    for (ns, p) in &pointers {
        assert!(
            p.get("freeze").is_none(),
            "{ns}: writes are still frozen after the run: {p}"
        );
    }
    for (tenant, holder, _, _) in tenant_records(state) {
        assert!(
            holder.is_none(),
            "{tenant}: the lock is still held by {holder:?} after the run"
        );
    }
    let tokens = wait_tokens(state);
    assert!(
        tokens.is_empty(),
        "wait tokens left after the run: {tokens:?}"
    );
    releases
}
