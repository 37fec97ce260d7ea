//! Local CodeBuild: a "build" runs the Flyway-compatible runner against a local instance, with
//! the release's scripts read from local S3. Builds are recorded in `<state>/codebuild/builds.sqlite`
//! and reported with CodeBuild's status words (SUCCEEDED, FAILED).

use crate::clock::Clock;
use crate::error::{sql_step_error, BuildError};
use crate::flyway::{self, MigrateOptions, Script};
use crate::layout::{Layout, MIGRATION_PROJECT};
use crate::rds::LocalDatabases;
use crate::s3::LocalObjects;
use crate::sqlite::Cached;
use rusqlite::{params, Connection};
use std::sync::{Arc, Mutex};
use tenantflow_core::names::InstanceId;
use tenantflow_core::StepError;

/// Where a migration build runs and what it applies: the `TENANTFLOW_*` variables the definition
/// passes to `codebuild:startBuild.sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRequest {
    pub instance_id: InstanceId,
    pub bucket: String,
    /// `releases/<id>/`
    pub prefix: String,
    pub release: String,
    /// sha256 of the `SHA256SUMS` the plan checked (`TENANTFLOW_SHA256SUMS_SHA256`).
    pub sha256sums: Option<String>,
    /// A rehearsal's build (`TENANTFLOW_HEALTH_CHECK=candidate`): after Flyway, this health-check
    /// SQL runs against the migrated candidate, and its failure fails the build.
    pub health_check: Option<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS builds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    instance_id TEXT NOT NULL,
    release TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    applied TEXT NOT NULL DEFAULT '[]',
    schema_version TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT
);";

pub struct LocalMigrations {
    layout: Layout,
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
    objects: Arc<LocalObjects>,
    databases: Arc<LocalDatabases>,
    heavy: crate::heavy::Heavy,
    /// No Flyway run: a build takes its simulated time and succeeds.
    simulate: bool,
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    pub id: String,
    pub status: String,
    pub message: Option<String>,
    pub schema_version: Option<String>,
    pub applied: Vec<String>,
}

impl LocalMigrations {
    pub fn open(
        layout: &Layout,
        clock: Arc<dyn Clock>,
        objects: Arc<LocalObjects>,
        databases: Arc<LocalDatabases>,
        heavy: crate::heavy::Heavy,
    ) -> rusqlite::Result<Self> {
        if let Some(dir) = layout.builds().parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        Ok(LocalMigrations {
            layout: layout.clone(),
            conn: Mutex::new(crate::sqlite::open_meta(&layout.builds(), SCHEMA)?),
            clock,
            objects,
            databases,
            heavy,
            simulate: false,
        })
    }

    /// In a simulation no build runs Flyway: each takes its simulated time and succeeds.
    pub fn simulated(mut self, on: bool) -> Self {
        self.simulate = on;
        self
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StepError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StepError::Internal("build registry poisoned".into()))?;
        f(&conn).map_err(|e| sql_step_error(&format!("build registry {what}"), e))
    }

    /// The release's scripts from local S3 (top level of the prefix, `*.sql`).
    fn scripts(&self, bucket: &str, prefix: &str) -> Result<Vec<Script>, BuildError> {
        let keys = self.objects.list_sync(bucket, prefix)?;
        let mut out = vec![];
        for key in keys {
            let Some(name) = key.strip_prefix(prefix) else {
                continue;
            };
            if name.contains('/') || !name.ends_with(".sql") {
                continue;
            }
            let body =
                self.objects
                    .get_sync(bucket, &key)?
                    .ok_or_else(|| BuildError::Vanished {
                        bucket: bucket.to_string(),
                        key: key.clone(),
                    })?;
            out.push(Script::new(name, body));
        }
        if out.is_empty() {
            return Err(BuildError::NoScripts {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        Ok(out)
    }

    /// Runs one build to completion: the Flyway runner on `req.instance_id`, finishing
    /// `simulated` later on the run's clock (the runner itself works meanwhile, on the heavy pool).
    pub async fn run_build(
        &self,
        req: &MigrationRequest,
        simulated: std::time::Duration,
    ) -> Result<BuildResult, StepError> {
        let id = self.open_record(req)?;
        let outcome: Result<flyway::MigrateReport, BuildError> = async {
            let inst = self
                .databases
                .describe_instance_sync(&req.instance_id)?
                .ok_or_else(|| BuildError::NoInstance(req.instance_id.clone()))?;
            if inst.status != "available" {
                return Err(BuildError::NotAvailable {
                    id: req.instance_id.clone(),
                    status: inst.status,
                });
            }
            let scripts = self.scripts(&req.bucket, &req.prefix)?;
            if self.simulate {
                return self
                    .heavy
                    .timed(self.clock.as_ref(), simulated, || flyway::MigrateReport {
                        applied: vec![],
                        schema_version: None,
                    })
                    .await
                    .map_err(BuildError::from);
            }
            let path = self.layout.instance_file(req.instance_id.as_str());
            let opts = MigrateOptions {
                installed_by: "tenantflow".into(),
            };
            let health = req.health_check.clone();
            let instance = req.instance_id.clone();
            self.heavy
                .timed(self.clock.as_ref(), simulated, move || {
                    let report = flyway::migrate_path(&path, &scripts, &opts)?;
                    if let Some(sql) = health {
                        candidate_health(&path, &sql)
                            .map_err(|source| BuildError::HealthCheck { instance, source })?;
                    }
                    Ok(report)
                })
                .await?
        }
        .await;
        self.close_record(id, outcome)
    }

    /// Records a build that fails before Flyway runs, with `problem` as its message (e.g. its
    /// source is not a release folder, so the buildspec finds nothing to check and migrate).
    pub fn fail_build(
        &self,
        req: &MigrationRequest,
        problem: BuildError,
    ) -> Result<BuildResult, StepError> {
        let id = self.open_record(req)?;
        self.close_record(id, Err(problem))
    }

    /// Registers a new IN_PROGRESS build for `req`; returns its id.
    fn open_record(&self, req: &MigrationRequest) -> Result<String, StepError> {
        let now = self.clock.now();
        self.with("start build", |c| {
            let seq: i64 =
                c.query_row_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM builds", [], |r| {
                    r.get(0)
                })?;
            let id = format!(
                "{MIGRATION_PROJECT}:{:08x}-{seq:06}",
                now.timestamp() as u32
            );
            c.execute_cached(
                "INSERT INTO builds (seq, id, instance_id, release, status, started_at)
                 VALUES (?1, ?2, ?3, ?4, 'IN_PROGRESS', ?5)",
                params![
                    seq,
                    id,
                    req.instance_id.as_str(),
                    req.release,
                    now.to_rfc3339()
                ],
            )?;
            Ok(id)
        })
    }

    /// Records how build `id` ended and returns it.
    fn close_record(
        &self,
        id: String,
        outcome: Result<flyway::MigrateReport, BuildError>,
    ) -> Result<BuildResult, StepError> {
        let ended = self.clock.now().to_rfc3339();
        let result = match outcome {
            Ok(report) => BuildResult {
                id: id.clone(),
                status: "SUCCEEDED".into(),
                message: None,
                schema_version: report.schema_version,
                applied: report.applied.into_iter().map(|a| a.script).collect(),
            },
            Err(e) => BuildResult {
                id: id.clone(),
                status: "FAILED".into(),
                message: Some(e.to_string()),
                schema_version: None,
                applied: vec![],
            },
        };
        let applied = serde_json::to_string(&result.applied).unwrap_or_else(|_| "[]".into());
        self.with("finish build", |c| {
            c.execute_cached(
                "UPDATE builds SET status = ?2, message = ?3, applied = ?4, schema_version = ?5, ended_at = ?6 WHERE id = ?1",
                params![id, result.status, result.message, applied, result.schema_version, ended],
            )
            .map(|_| ())
        })?;
        Ok(result)
    }
}

/// Runs a release's health check read-only against a candidate database file.
fn candidate_health(path: &std::path::Path, sql: &str) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    crate::ecs::run_health_check(&conn, sql)
}
