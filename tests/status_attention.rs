//! `status` exits 5 and says what to run when something needs a person: a tenant locked or
//! write-frozen by a run that died, a tenant with a problem, an orphan. While a command holds the
//! state directory, its locks are expected, and the advice is to wait for it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

const ATTENTION: i32 = 5;

/// Takes `ns`'s lock for `holder` in `records.sqlite`, as a run's `snapshot` step does.
fn lock_tenant(state: &Path, ns: &str, holder: &str) {
    rusqlite::Connection::open(state.join("records.sqlite"))
        .unwrap()
        .execute(
            "INSERT OR REPLACE INTO tenant_records (tenant, holder, run, phase, version, updated_at, journal)
             VALUES (?1, ?2, ?2, 'locked', 1, '2026-01-01T00:00:00Z', '{}')",
            rusqlite::params![ns, holder],
        )
        .unwrap();
}

/// Writes a new version of `ns`'s pointer carrying a write freeze, as `snapshot` does.
fn freeze_tenant(state: &Path, ns: &str) {
    rusqlite::Connection::open(state.join("ssm.sqlite"))
        .unwrap()
        .execute(
            "INSERT INTO parameter_versions (name, version, value, modified_at)
             SELECT name, version + 1,
                    json_set(value, '$.freeze', json('{\"run\":\"dead-run\",\"release\":\"r\"}')),
                    '2026-01-01T00:00:00Z'
             FROM parameter_versions WHERE name = ?1 ORDER BY version DESC LIMIT 1",
            rusqlite::params![format!("/tenantflow/{ns}/db")],
        )
        .unwrap();
}

/// The SQL between the double quotes of a `sqlite3 FILE "SQL"` fix, and FILE.
fn sql_of(fix: &str) -> (String, String) {
    let at = fix.find("sqlite3 ").expect("a sqlite3 command") + "sqlite3 ".len();
    let rest = &fix[at..];
    let (file, rest) = rest.split_once(' ').unwrap();
    let sql = rest.trim_start_matches('"');
    let sql = &sql[..sql.find('"').unwrap()];
    (file.to_string(), sql.to_string())
}

#[test]
fn status_says_what_needs_a_person_and_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 3, 5, 1);
    let (code, v) = tenantflow_json(&state, &["status", "--json"]);
    assert_eq!((code, &v["attention"]), (0, &json!([])), "{v:#}");

    // A run that died: the lock and the write freeze stay. An instance nobody accounts for.
    let arn = "arn:aws:states:local:000000000000:execution:tenantflow-deploy:dead-run";
    lock_tenant(&state, "acme-0001-prod", arn);
    freeze_tenant(&state, "acme-0001-prod");
    let p = &pointers(&state)["globex-0001-prod"];
    let active = state
        .join("rds/instances")
        .join(format!("{}.sqlite", pointer_field(p, "instanceId")));
    let orphan = state.join("rds/instances/globex-0001-prod-20200101000000.sqlite");
    std::fs::copy(&active, &orphan).unwrap();

    let (code, v) = tenantflow_json(&state, &["status", "--json"]);
    assert_eq!(code, ATTENTION, "{v:#}");
    let items = v["attention"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{items:#?}");
    let find = |needle: &str| -> &Value {
        items
            .iter()
            .find(|i| i["problem"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no item about {needle}: {items:#?}"))
    };
    let lock = find("locked by");
    assert_eq!(lock["tenant"], "acme-0001-prod");
    assert!(
        lock["problem"].as_str().unwrap().contains("dead-run"),
        "{lock}"
    );
    assert!(
        lock["problem"].as_str().unwrap().contains("not running"),
        "{lock}"
    );
    let freeze = find("frozen");
    let orphan_item = find("orphan instance");
    assert!(
        orphan_item["problem"]
            .as_str()
            .unwrap()
            .contains("globex-0001-prod-20200101000000"),
        "{orphan_item}"
    );

    // The text form says the same, with the fixes.
    let out = tenantflow(&state, &["status"]);
    assert_eq!(out.status.code(), Some(ATTENTION));
    let text = stdout(&out);
    assert!(
        text.contains("needs attention:") && text.contains("fix: "),
        "{text}"
    );

    // Doing what the fixes say makes status clean again.
    for item in [lock, freeze, orphan_item] {
        let (file, sql) = sql_of(item["fix"].as_str().unwrap());
        rusqlite::Connection::open(&file)
            .unwrap()
            .execute_batch(&sql)
            .unwrap();
    }
    std::fs::remove_file(&orphan).unwrap();
    let (code, v) = tenantflow_json(&state, &["status", "--json"]);
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn locks_of_a_running_command_say_to_wait_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("fleet");
    init(&state, 2, 5, 1);
    lock_tenant(&state, "acme-0001-prod", "arn:…:running-run");
    // A command holds the state directory, as a deploy does while it runs.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(state.join("tenantflow.lock"))
        .unwrap();
    f.lock().unwrap();
    let holder =
        json!({"pid": 4242, "command": "tenantflow deploy x", "startedAt": "2026-01-01T00:00:00Z"});
    f.write_all(holder.to_string().as_bytes()).unwrap();

    let (code, v) = tenantflow_json(&state, &["status", "--json"]);
    assert_eq!(code, ATTENTION, "{v:#}");
    let item = &v["attention"][0];
    assert!(
        item["problem"]
            .as_str()
            .unwrap()
            .contains("a command is running"),
        "{item}"
    );
    let fix = item["fix"].as_str().unwrap();
    assert!(
        fix.contains("wait for pid 4242") && fix.contains("tenantflow deploy x"),
        "{fix}"
    );
    f.set_len(0).unwrap();
}
