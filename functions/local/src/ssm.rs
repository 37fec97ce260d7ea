//! Local SSM Parameter Store on `<state>/ssm.sqlite`.
//!
//! Table `parameter_versions(name, version, value, modified_at)`, exactly as docs/design.md §7
//! says; the current value of a parameter is its highest version. Create-if-absent runs in one
//! `BEGIN IMMEDIATE` transaction, so two racing creators cannot both succeed, even across processes.
//! `modified_at` is the run clock's time of the write, RFC 3339 (what `get_dated` reports).

use crate::clock::Clock;
use crate::error::sql_step_error;
use crate::sqlite::Cached;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tenantflow_core::ports::{DatedParameter, Parameter, Parameters};
use tenantflow_core::StepError;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS parameter_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    value TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);";

pub struct LocalParameters {
    path: PathBuf,
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
}

impl LocalParameters {
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> rusqlite::Result<Self> {
        Ok(LocalParameters {
            path: path.to_path_buf(),
            conn: Mutex::new(crate::sqlite::open_meta(path, SCHEMA)?),
            clock,
        })
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StepError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StepError::Internal("ssm connection poisoned".into()))?;
        f(&mut conn).map_err(|e| sql_step_error(&format!("{} {what}", self.path.display()), e))
    }

    fn now(&self) -> String {
        self.clock.now().to_rfc3339()
    }

    /// Synchronous get, for callers outside the async ports (status, init).
    pub fn get_sync(&self, name: &str) -> Result<Option<Parameter>, StepError> {
        self.with("get", |c| current(c, name))
    }

    /// Synchronous get with the write time of the current version.
    fn get_dated_sync(&self, name: &str) -> Result<Option<DatedParameter>, StepError> {
        self.with("get", |c| current_dated(c, name))
    }

    /// Synchronous overwrite, for callers outside the async ports.
    pub fn put_sync(&self, name: &str, value: &str) -> Result<i64, StepError> {
        let now = self.now();
        self.with("put", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let v: i64 = tx.query_row_cached(
                "SELECT COALESCE(MAX(version), 0) FROM parameter_versions WHERE name = ?1",
                [name],
                |r| r.get(0),
            )?;
            tx.execute_cached(
                "INSERT INTO parameter_versions (name, version, value, modified_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, v + 1, value, now],
            )?;
            tx.commit()?;
            Ok(v + 1)
        })
    }

    /// Synchronous recursive list of current values under `path`.
    pub fn list_sync(&self, path: &str) -> Result<Vec<Parameter>, StepError> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.with("list", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT p.name, p.value, p.version FROM parameter_versions p
                 JOIN (SELECT name, MAX(version) AS v FROM parameter_versions
                       WHERE substr(name, 1, length(?1)) = ?1 GROUP BY name) m
                   ON p.name = m.name AND p.version = m.v
                 ORDER BY p.name",
            )?;
            let rows = stmt.query_map([&prefix], |r| {
                Ok(Parameter {
                    name: r.get(0)?,
                    value: r.get(1)?,
                    version: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }
}

fn current(c: &Connection, name: &str) -> rusqlite::Result<Option<Parameter>> {
    c.query_row_cached(
        "SELECT name, value, version FROM parameter_versions WHERE name = ?1
         ORDER BY version DESC LIMIT 1",
        [name],
        |r| {
            Ok(Parameter {
                name: r.get(0)?,
                value: r.get(1)?,
                version: r.get(2)?,
            })
        },
    )
    .optional()
}

/// [`current`] with its `modified_at`; a value that is not RFC 3339 is an error (the column is
/// only ever written by this module).
fn current_dated(c: &Connection, name: &str) -> rusqlite::Result<Option<DatedParameter>> {
    c.query_row_cached(
        "SELECT name, value, version, modified_at FROM parameter_versions WHERE name = ?1
         ORDER BY version DESC LIMIT 1",
        [name],
        |r| {
            let modified: String = r.get(3)?;
            let modified_at = DateTime::parse_from_rfc3339(&modified)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, Box::new(e)))?
                .with_timezone(&Utc);
            Ok(DatedParameter {
                parameter: Parameter {
                    name: r.get(0)?,
                    value: r.get(1)?,
                    version: r.get(2)?,
                },
                modified_at: Some(modified_at),
            })
        },
    )
    .optional()
}

fn check_name(name: &str) -> Result<(), StepError> {
    if !name.starts_with('/') || name.len() > 2048 || name.contains("//") {
        return Err(StepError::invalid(
            "name",
            format!("{name:?} is not a valid parameter name"),
        ));
    }
    Ok(())
}

#[async_trait]
impl Parameters for LocalParameters {
    async fn get(&self, name: &str) -> Result<Option<Parameter>, StepError> {
        self.get_sync(name)
    }

    async fn get_dated(&self, name: &str) -> Result<Option<DatedParameter>, StepError> {
        self.get_dated_sync(name)
    }

    async fn create(&self, name: &str, value: &str) -> Result<Option<i64>, StepError> {
        check_name(name)?;
        let now = self.now();
        self.with("create", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: bool = tx.query_row_cached(
                "SELECT EXISTS(SELECT 1 FROM parameter_versions WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )?;
            if exists {
                return Ok(None);
            }
            tx.execute_cached(
                "INSERT INTO parameter_versions (name, version, value, modified_at) VALUES (?1, 1, ?2, ?3)",
                params![name, value, now],
            )?;
            tx.commit()?;
            Ok(Some(1))
        })
    }

    async fn put(&self, name: &str, value: &str) -> Result<i64, StepError> {
        check_name(name)?;
        self.put_sync(name, value)
    }

    async fn delete(&self, name: &str) -> Result<(), StepError> {
        self.with("delete", |c| {
            c.execute_cached("DELETE FROM parameter_versions WHERE name = ?1", [name])
                .map(|_| ())
        })
    }

    async fn list(&self, path: &str) -> Result<Vec<Parameter>, StepError> {
        self.list_sync(path)
    }
}
