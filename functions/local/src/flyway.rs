//! A Flyway-compatible migration runner for SQLite (local CodeBuild, and `init`).
//!
//! What it shares with Flyway:
//! - script names and version order from `tenantflow_core::flyway` (`V<dotted version>__<desc>.sql`
//!   by version, then `R__<desc>.sql` by description);
//! - the `flyway_schema_history` table, with Flyway's columns and its SQLite DDL;
//! - Flyway's checksum: CRC32 over the UTF-8 bytes of each line without its line terminator
//!   (`\n`, `\r` or `\r\n`, as Java's `BufferedReader.readLine` splits), a leading BOM removed,
//!   stored as a signed 32-bit integer. Line endings and blank lines do not change it;
//! - script text: UTF-8 without NUL bytes ([`tenantflow_core::flyway::check_script_text`]);
//! - validation before migrating (Flyway's defaults): a failed migration in the history, a
//!   checksum or description mismatch of an applied versioned script, an applied version the
//!   release no longer carries (missing), or a resolved version below the current one that was
//!   never applied (out of order) fails the run before anything is applied. A release therefore
//!   carries every versioned script of the schema's history, as a Flyway project does;
//! - a `BASELINE` row (what `flyway baseline` writes for an existing database): versions at or
//!   below it are neither applied nor validated, and it counts as the current version;
//! - repeatables re-run when their checksum differs from the last applied one;
//! - `installed_on` is the real time of the write.
//!
//! Where it differs: each script runs in its own transaction, and a failed script is rolled back
//! and then recorded with `success = 0` (Flyway skips that row on transactional databases).

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tenantflow_core::flyway::{
    apply_order, check_script_text, Kind, ScriptName, ScriptTextError, Version,
};

/// The history table, as Flyway creates it on SQLite.
pub const HISTORY_DDL: &str = r#"CREATE TABLE IF NOT EXISTS "flyway_schema_history" (
    "installed_rank" INT NOT NULL PRIMARY KEY,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INT,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    "execution_time" INT NOT NULL,
    "success" BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS "flyway_schema_history_s_idx" ON "flyway_schema_history" ("success");"#;

/// One migration script: its file name and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub name: String,
    pub content: Vec<u8>,
}

impl Script {
    pub fn new(name: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Script {
            name: name.into(),
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// `installed_by` column (Flyway writes the database user).
    pub installed_by: String,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            installed_by: "tenantflow".into(),
        }
    }
}

/// The `type` of the row `flyway baseline` writes.
pub const BASELINE: &str = "BASELINE";

/// A script the run applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub script: String,
    pub version: Option<String>,
    pub checksum: i32,
}

/// The result of a successful run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrateReport {
    pub applied: Vec<Applied>,
    /// Highest successfully applied version after the run.
    pub schema_version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlywayError {
    #[error("invalid migration name: {0}")]
    Name(#[from] tenantflow_core::flyway::NameError),
    #[error("migration {script} {source}")]
    Text {
        script: String,
        source: ScriptTextError,
    },
    #[error("found more than one migration with {what}: {a} and {b}")]
    Duplicate { what: String, a: String, b: String },
    #[error("validate failed: {0}")]
    Validation(String),
    #[error("migration {script} failed: {source}")]
    ScriptFailed {
        script: String,
        source: rusqlite::Error,
    },
    #[error("sqlite: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Flyway's checksum of a script's bytes.
pub fn checksum(content: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(content);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut h = crc32fast::Hasher::new();
    // Concatenating readLine()'s lines = the text without any CR or LF.
    for line in text.split(['\r', '\n']) {
        h.update(line.as_bytes());
    }
    h.finalize() as i32
}

/// Loads every `*.sql` file of `dir` (not recursive), sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Script>, FlywayError> {
    let io = |p: &Path, source: std::io::Error| FlywayError::Io {
        path: p.to_path_buf(),
        source,
    };
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".sql") && entry.path().is_file() {
            let content = std::fs::read(entry.path()).map_err(|e| io(&entry.path(), e))?;
            out.push(Script { name, content });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

struct Resolved<'a> {
    name: ScriptName,
    script: &'a Script,
    checksum: i32,
}

/// Parses names, rejects duplicates, and sorts into Flyway's apply order.
fn resolve(scripts: &[Script]) -> Result<Vec<Resolved<'_>>, FlywayError> {
    let mut out: Vec<Resolved> = Vec::with_capacity(scripts.len());
    for s in scripts {
        let name = ScriptName::parse(&s.name)?;
        check_script_text(&s.content).map_err(|source| FlywayError::Text {
            script: s.name.clone(),
            source,
        })?;
        for r in &out {
            let dup = match (&r.name.kind, &name.kind) {
                (Kind::Versioned(a), Kind::Versioned(b)) if a == b => Some(format!("version {b}")),
                (Kind::Repeatable, Kind::Repeatable) if r.name.description == name.description => {
                    Some(format!("description {:?}", name.description))
                }
                _ => None,
            };
            if let Some(what) = dup {
                return Err(FlywayError::Duplicate {
                    what,
                    a: r.script.name.clone(),
                    b: s.name.clone(),
                });
            }
        }
        out.push(Resolved {
            checksum: checksum(&s.content),
            name,
            script: s,
        });
    }
    out.sort_by(|a, b| apply_order(&a.name, &b.name));
    Ok(out)
}

/// One row of `flyway_schema_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub installed_rank: i64,
    pub version: Option<String>,
    pub description: String,
    pub kind: String,
    pub script: String,
    pub checksum: Option<i32>,
    pub success: bool,
}

fn has_history(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'flyway_schema_history')",
        [],
        |r| r.get(0),
    )
}

/// The history rows in installed order (empty when the table does not exist).
pub fn history(conn: &Connection) -> rusqlite::Result<Vec<HistoryRow>> {
    if !has_history(conn)? {
        return Ok(vec![]);
    }
    let mut stmt = conn.prepare(
        r#"SELECT "installed_rank", "version", "description", "type", "script", "checksum", "success"
           FROM "flyway_schema_history" ORDER BY "installed_rank""#,
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(HistoryRow {
            installed_rank: r.get(0)?,
            version: r.get(1)?,
            description: r.get(2)?,
            kind: r.get(3)?,
            script: r.get(4)?,
            checksum: r.get(5)?,
            success: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// The highest successfully applied version, as recorded (`None` when nothing is applied).
pub fn current_version(conn: &Connection) -> rusqlite::Result<Option<String>> {
    Ok(history(conn)?
        .into_iter()
        .filter(|r| r.success)
        .filter_map(|r| r.version)
        .filter_map(|v| Version::parse(&v))
        .max()
        .map(|v| v.as_str().to_string()))
}

impl HistoryRow {
    fn parsed_version(&self) -> Option<Version> {
        self.version.as_deref().and_then(Version::parse)
    }
    /// A successful row of a script that ran (not the baseline marker).
    fn applied_script(&self) -> bool {
        self.success && self.kind != BASELINE
    }
}

/// The version of the newest successful `BASELINE` row, if any.
fn baseline(applied: &[HistoryRow]) -> Option<Version> {
    applied
        .iter()
        .filter(|r| r.success && r.kind == BASELINE)
        .filter_map(HistoryRow::parsed_version)
        .max()
}

fn validate(applied: &[HistoryRow], resolved: &[Resolved]) -> Result<(), FlywayError> {
    let mut problems = vec![];
    for row in applied.iter().filter(|r| !r.success) {
        problems.push(format!(
            "Detected failed migration to version {} ({}). Please remove any half-completed changes then run repair to fix the schema history.",
            row.version.as_deref().unwrap_or("<repeatable>"),
            row.description
        ));
    }
    let max_applied = applied
        .iter()
        .filter(|r| r.success)
        .filter_map(HistoryRow::parsed_version)
        .max();
    let baseline = baseline(applied);
    for res in resolved {
        let Kind::Versioned(v) = &res.name.kind else {
            continue;
        };
        let row = applied
            .iter()
            .find(|r| r.applied_script() && r.parsed_version().as_ref() == Some(v));
        match row {
            Some(row) => {
                if row.checksum != Some(res.checksum) {
                    problems.push(format!(
                        "Migration checksum mismatch for migration version {v}\n-> Applied to database : {}\n-> Resolved locally    : {}",
                        row.checksum.map_or("null".to_string(), |c| c.to_string()),
                        res.checksum
                    ));
                }
                if row.description != res.name.description {
                    problems.push(format!(
                        "Migration description mismatch for migration version {v}\n-> Applied to database : {}\n-> Resolved locally    : {}",
                        row.description, res.name.description
                    ));
                }
            }
            // At or below the baseline: the database holds it already (Flyway's BELOW_BASELINE).
            None if baseline.as_ref().is_some_and(|b| v <= b) => {}
            None => {
                if max_applied.as_ref().is_some_and(|m| v < m) {
                    problems.push(format!(
                        "Detected resolved migration not applied to database: {v} (out of order; current version is {})",
                        max_applied.as_ref().map(|m| m.as_str()).unwrap_or_default()
                    ));
                }
            }
        }
    }
    for row in applied.iter().filter(|r| r.applied_script()) {
        let Some(v) = row.parsed_version() else {
            continue;
        };
        if !resolved.iter().any(|res| res.name.version() == Some(&v)) {
            problems.push(format!(
                "Detected applied migration not resolved locally: {v} ({}). A release carries every applied versioned script, as a Flyway project does; put it back (if it was removed on purpose, run Flyway's repair)",
                row.script
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(FlywayError::Validation(problems.join("\n")))
    }
}

fn insert_row(
    conn: &Connection,
    res: &Resolved,
    opts: &MigrateOptions,
    millis: i64,
    success: bool,
) -> rusqlite::Result<()> {
    let rank: i64 = conn.query_row(
        r#"SELECT COALESCE(MAX("installed_rank"), 0) + 1 FROM "flyway_schema_history""#,
        [],
        |r| r.get(0),
    )?;
    let version = res.name.version().map(|v| v.as_str().to_string());
    conn.execute(
        r#"INSERT INTO "flyway_schema_history"
           ("installed_rank", "version", "description", "type", "script", "checksum",
            "installed_by", "installed_on", "execution_time", "success")
           VALUES (?1, ?2, ?3, 'SQL', ?4, ?5, ?6, strftime('%Y-%m-%d %H:%M:%f','now'), ?7, ?8)"#,
        params![
            rank,
            version,
            res.name.description,
            res.script.name,
            res.checksum,
            opts.installed_by,
            millis,
            success
        ],
    )?;
    Ok(())
}

/// Validates, then applies every pending script, each in its own transaction.
///
/// A failing script is rolled back, recorded with `success = 0`, and returned as
/// [`FlywayError::ScriptFailed`]; scripts applied before it stay applied (as with Flyway).
pub fn migrate(
    conn: &mut Connection,
    scripts: &[Script],
    opts: &MigrateOptions,
) -> Result<MigrateReport, FlywayError> {
    let resolved = resolve(scripts)?;
    conn.execute_batch(HISTORY_DDL)?;
    let applied = history(conn)?;
    validate(&applied, &resolved)?;

    let max_applied = applied
        .iter()
        .filter(|r| r.success)
        .filter_map(|r| r.version.as_deref().and_then(Version::parse))
        .max();
    let pending: Vec<&Resolved> = resolved
        .iter()
        .filter(|res| match &res.name.kind {
            Kind::Versioned(v) => max_applied.as_ref().is_none_or(|m| v > m),
            Kind::Repeatable => {
                let last = applied.iter().rev().find(|r| {
                    r.success && r.version.is_none() && r.description == res.name.description
                });
                last.is_none_or(|r| r.checksum != Some(res.checksum))
            }
        })
        .collect();

    let mut report = MigrateReport::default();
    for res in pending {
        // resolve() checked that the text is UTF-8.
        let sql = String::from_utf8_lossy(&res.script.content);
        let sql = sql.strip_prefix('\u{feff}').unwrap_or(&sql);
        let started = Instant::now();
        crate::crash::before_write(&format!("migrate {}", res.script.name));
        let tx = conn.transaction()?;
        let outcome = tx.execute_batch(sql);
        let millis = started.elapsed().as_millis() as i64;
        match outcome {
            Ok(()) => {
                insert_row(&tx, res, opts, millis, true)?;
                tx.commit()?;
                report.applied.push(Applied {
                    script: res.script.name.clone(),
                    version: res.name.version().map(|v| v.as_str().to_string()),
                    checksum: res.checksum,
                });
            }
            Err(e) => {
                tx.rollback()?;
                insert_row(conn, res, opts, millis, false)?;
                return Err(FlywayError::ScriptFailed {
                    script: res.script.name.clone(),
                    source: e,
                });
            }
        }
    }
    report.schema_version = current_version(conn)?;
    Ok(report)
}

/// [`migrate`] on the database file at `path`, which must exist.
pub fn migrate_path(
    path: &Path,
    scripts: &[Script],
    opts: &MigrateOptions,
) -> Result<MigrateReport, FlywayError> {
    if !path.is_file() {
        return Err(FlywayError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "database file does not exist",
            ),
        });
    }
    let mut conn = crate::sqlite::open_existing(path)?;
    migrate(&mut conn, scripts, opts)
}

/// The checksum recorded for `script` (latest successful row), if any.
pub fn applied_checksum(conn: &Connection, script: &str) -> rusqlite::Result<Option<i32>> {
    if !has_history(conn)? {
        return Ok(None);
    }
    conn.query_row(
        r#"SELECT "checksum" FROM "flyway_schema_history" WHERE "script" = ?1 AND "success"
           ORDER BY "installed_rank" DESC LIMIT 1"#,
        [script],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}
