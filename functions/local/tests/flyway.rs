//! The Flyway-compatible runner: checksum, ordering, repeatables, validation, failures.

use rusqlite::Connection;
use tenantflow_local::flyway::{self, checksum, FlywayError, MigrateOptions, Script};

fn s(name: &str, sql: &str) -> Script {
    Script::new(name, sql.as_bytes().to_vec())
}

fn opts() -> MigrateOptions {
    MigrateOptions::default()
}

#[test]
fn checksum_is_crc32_of_lines_without_terminators() {
    // CRC-32 (IEEE) check value of "123456789" is 0xCBF43926; Flyway stores it as a signed int.
    assert_eq!(checksum(b"123456789"), 0xCBF4_3926_u32 as i32);
    assert_eq!(checksum(b"123456789"), -873_187_034);
    // Line terminators of any kind and a trailing newline do not count.
    assert_eq!(checksum(b"1234\n56789\n"), checksum(b"123456789"));
    assert_eq!(checksum(b"1234\r\n56789"), checksum(b"123456789"));
    assert_eq!(checksum(b"1234\r56789"), checksum(b"123456789"));
    // Blank lines contribute nothing (readLine yields "").
    assert_eq!(checksum(b"1234\n\n\n56789"), checksum(b"123456789"));
    // A leading BOM is removed; one further in is content.
    assert_eq!(checksum(b"\xef\xbb\xbf1234\n56789"), checksum(b"123456789"));
    assert_ne!(checksum(b"1234\n\xef\xbb\xbf56789"), checksum(b"123456789"));
    // Empty script: CRC32 of nothing.
    assert_eq!(checksum(b""), 0);
    // Whitespace inside a line does count.
    assert_ne!(checksum(b"select 1;"), checksum(b"select  1;"));
}

/// installed_rank, version, description, type, script, checksum, success
type Row = (i64, Option<String>, String, String, String, i32, bool);

fn rows(conn: &Connection) -> Vec<Row> {
    conn.prepare(
        "SELECT installed_rank, version, description, type, script, checksum, success
         FROM flyway_schema_history ORDER BY installed_rank",
    )
    .unwrap()
    .query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn applies_in_flyway_version_order_then_repeatables() {
    let mut conn = Connection::open_in_memory().unwrap();
    let scripts = vec![
        s(
            "R__view.sql",
            "CREATE VIEW IF NOT EXISTS v AS SELECT * FROM log;",
        ),
        s("V1.10__c.sql", "INSERT INTO log VALUES ('1.10');"),
        s("V1__a.sql", "CREATE TABLE log (v TEXT);"),
        s("V1.2__b.sql", "INSERT INTO log VALUES ('1.2');"),
        s("V1_3__b_b.sql", "INSERT INTO log VALUES ('1.3');"),
    ];
    let report = flyway::migrate(&mut conn, &scripts, &opts()).unwrap();
    let applied: Vec<_> = report.applied.iter().map(|a| a.script.as_str()).collect();
    assert_eq!(
        applied,
        [
            "V1__a.sql",
            "V1.2__b.sql",
            "V1_3__b_b.sql",
            "V1.10__c.sql",
            "R__view.sql"
        ]
    );
    assert_eq!(report.schema_version.as_deref(), Some("1.10"));
    let log: Vec<String> = conn
        .prepare("SELECT v FROM log ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(log, ["1.2", "1.3", "1.10"]);
    let h = rows(&conn);
    assert_eq!(h.len(), 5);
    assert_eq!(
        h[2],
        (
            3,
            Some("1.3".into()),
            "b b".into(),
            "SQL".into(),
            "V1_3__b_b.sql".into(),
            checksum(b"INSERT INTO log VALUES ('1.3');"),
            true
        )
    );
    assert_eq!(h[4].1, None, "repeatables have no version");
    // Flyway's columns, in Flyway's order.
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('flyway_schema_history') ORDER BY cid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        cols,
        [
            "installed_rank",
            "version",
            "description",
            "type",
            "script",
            "checksum",
            "installed_by",
            "installed_on",
            "execution_time",
            "success"
        ]
    );

    // Second run: nothing pending.
    let again = flyway::migrate(&mut conn, &scripts, &opts()).unwrap();
    assert!(again.applied.is_empty());
}

#[test]
fn later_release_applies_only_new_versions_and_changed_repeatables() {
    let mut conn = Connection::open_in_memory().unwrap();
    let v1 = vec![
        s("V1__init.sql", "CREATE TABLE t (a INT);"),
        s(
            "R__count.sql",
            "DROP VIEW IF EXISTS c; CREATE VIEW c AS SELECT count(*) n FROM t;",
        ),
    ];
    flyway::migrate(&mut conn, &v1, &opts()).unwrap();
    // Release 2 carries its history, a new script and an unchanged repeatable: R is not re-run.
    let v2 = vec![
        v1[0].clone(),
        s("V2__col.sql", "ALTER TABLE t ADD COLUMN b INT;"),
        v1[1].clone(),
    ];
    let r = flyway::migrate(&mut conn, &v2, &opts()).unwrap();
    assert_eq!(
        r.applied
            .iter()
            .map(|a| a.script.as_str())
            .collect::<Vec<_>>(),
        ["V2__col.sql"]
    );
    // A changed repeatable re-runs.
    let v3 = vec![
        v2[0].clone(),
        v2[1].clone(),
        s(
            "R__count.sql",
            "DROP VIEW IF EXISTS c; CREATE VIEW c AS SELECT count(*) AS n, 1 AS k FROM t;",
        ),
    ];
    let r = flyway::migrate(&mut conn, &v3, &opts()).unwrap();
    assert_eq!(r.applied.len(), 1);
    assert_eq!(r.schema_version.as_deref(), Some("2"));
    assert_eq!(rows(&conn).len(), 4);
}

#[test]
fn checksum_mismatch_fails_validation_before_anything_is_applied() {
    let mut conn = Connection::open_in_memory().unwrap();
    flyway::migrate(
        &mut conn,
        &[s("V1__init.sql", "CREATE TABLE t (a INT);")],
        &opts(),
    )
    .unwrap();
    let edited = vec![
        s("V1__init.sql", "CREATE TABLE t (a INT, b INT);"),
        s("V2__more.sql", "CREATE TABLE u (a INT);"),
    ];
    let e = flyway::migrate(&mut conn, &edited, &opts()).unwrap_err();
    match e {
        FlywayError::Validation(m) => assert!(
            m.contains("checksum mismatch for migration version 1"),
            "{m}"
        ),
        other => panic!("expected a validation error, got {other}"),
    }
    let u: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'u'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(u, 0, "V2 must not run after a failed validation");
    assert_eq!(rows(&conn).len(), 1);
}

#[test]
fn failed_script_is_rolled_back_and_recorded_unsuccessful() {
    let mut conn = Connection::open_in_memory().unwrap();
    let scripts = vec![
        s(
            "V1__init.sql",
            "CREATE TABLE t (email TEXT); INSERT INTO t VALUES ('a'), ('a');",
        ),
        // Creates a table, then fails: the table must not survive (own transaction).
        s(
            "V2__unique.sql",
            "CREATE TABLE side (x INT);\nCREATE UNIQUE INDEX t_email ON t (email);",
        ),
        s("V3__never.sql", "CREATE TABLE never (x INT);"),
    ];
    let e = flyway::migrate(&mut conn, &scripts, &opts()).unwrap_err();
    match &e {
        FlywayError::ScriptFailed { script, source } => {
            let message = source.to_string();
            assert_eq!(script, "V2__unique.sql");
            assert!(message.contains("UNIQUE"), "{message}");
        }
        other => panic!("expected ScriptFailed, got {other}"),
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["flyway_schema_history", "t"]);
    let h = rows(&conn);
    assert_eq!(h.len(), 2);
    assert!(h[0].6);
    assert_eq!((h[1].1.as_deref(), h[1].6), (Some("2"), false));
    assert_eq!(
        flyway::current_version(&conn).unwrap().as_deref(),
        Some("1")
    );

    // A failed migration in the history blocks the next run (Flyway: repair first).
    let e = flyway::migrate(&mut conn, &scripts[..1], &opts()).unwrap_err();
    assert!(
        matches!(e, FlywayError::Validation(ref m) if m.contains("failed migration to version 2")),
        "{e}"
    );
}

#[test]
fn out_of_order_and_duplicates_are_rejected() {
    let mut conn = Connection::open_in_memory().unwrap();
    flyway::migrate(
        &mut conn,
        &[s("V2__b.sql", "CREATE TABLE b (x INT);")],
        &opts(),
    )
    .unwrap();
    let e = flyway::migrate(
        &mut conn,
        &[
            s("V1__a.sql", "CREATE TABLE a (x INT);"),
            s("V2__b.sql", "CREATE TABLE b (x INT);"),
        ],
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(e, FlywayError::Validation(ref m) if m.contains("not applied")),
        "{e}"
    );

    let e = flyway::migrate(
        &mut conn,
        &[s("V3__a.sql", ""), s("V3.0__b.sql", "")],
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, FlywayError::Duplicate { .. }), "{e}");
    let e = flyway::migrate(&mut conn, &[s("V3_x__a.sql", "")], &opts()).unwrap_err();
    assert!(matches!(e, FlywayError::Name(_)), "{e}");
}

#[test]
fn migrate_path_requires_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = flyway::migrate_path(
        &dir.path().join("missing.sqlite"),
        &[s("V1__a.sql", "")],
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, FlywayError::Io { .. }), "{e}");
    assert!(!dir.path().join("missing.sqlite").exists());
}

#[test]
fn a_release_that_omits_an_applied_version_fails_validation() {
    let mut conn = Connection::open_in_memory().unwrap();
    let v1 = s("V1__init.sql", "CREATE TABLE t (a INT);");
    flyway::migrate(&mut conn, std::slice::from_ref(&v1), &opts()).unwrap();
    let e = flyway::migrate(
        &mut conn,
        &[s("V2__col.sql", "ALTER TABLE t ADD COLUMN b INT;")],
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(e, FlywayError::Validation(ref m)
            if m.contains("applied migration not resolved locally: 1") && m.contains("V1__init.sql")),
        "{e}"
    );
    assert_eq!(rows(&conn).len(), 1, "nothing ran");
}

#[test]
fn versions_at_or_below_a_baseline_are_skipped() {
    let mut conn = Connection::open_in_memory().unwrap();
    // What `flyway baseline -baselineVersion=2` writes on an existing database.
    conn.execute_batch(flyway::HISTORY_DDL).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a INT, b INT);
         INSERT INTO flyway_schema_history
           (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
         VALUES (1, '2', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'me', 0, 1);",
    )
    .unwrap();
    assert_eq!(
        flyway::current_version(&conn).unwrap().as_deref(),
        Some("2")
    );
    let scripts = vec![
        s("V1__init.sql", "CREATE TABLE t (a INT);"),
        s("V2__col.sql", "ALTER TABLE t ADD COLUMN b INT;"),
        s("V3__more.sql", "CREATE TABLE u (x INT);"),
    ];
    let r = flyway::migrate(&mut conn, &scripts, &opts()).unwrap();
    assert_eq!(
        r.applied
            .iter()
            .map(|a| a.script.as_str())
            .collect::<Vec<_>>(),
        ["V3__more.sql"]
    );
    assert_eq!(r.schema_version.as_deref(), Some("3"));
    // Again: nothing pending, and the baseline row is not a "missing" script.
    assert!(flyway::migrate(&mut conn, &scripts, &opts())
        .unwrap()
        .applied
        .is_empty());
    assert!(flyway::migrate(&mut conn, &scripts[2..], &opts())
        .unwrap()
        .applied
        .is_empty());
}

#[test]
fn scripts_flyway_cannot_read_are_refused_before_anything_runs() {
    for content in [
        &b"CREATE TABLE t (a TEXT DEFAULT '\xff');"[..],
        b"CREATE TABLE t (a INT);\x00",
    ] {
        let mut conn = Connection::open_in_memory().unwrap();
        let e = flyway::migrate(
            &mut conn,
            &[Script::new("V1__init.sql", content.to_vec())],
            &opts(),
        )
        .unwrap_err();
        assert!(
            matches!(e, FlywayError::Text { ref script, .. } if script == "V1__init.sql"),
            "{e}"
        );
        assert!(
            flyway::history(&conn).unwrap().is_empty(),
            "nothing recorded"
        );
    }
}

#[test]
fn installed_on_is_the_real_time_of_the_write() {
    let mut conn = Connection::open_in_memory().unwrap();
    flyway::migrate(&mut conn, &[s("V1__init.sql", "SELECT 1;")], &opts()).unwrap();
    let (on, age): (String, f64) = conn
        .query_row(
            "SELECT installed_on, abs(julianday('now') - julianday(installed_on)) * 86400
             FROM flyway_schema_history",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(age < 60.0, "installed_on {on} is {age} s from now");
}
