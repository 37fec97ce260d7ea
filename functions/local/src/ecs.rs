//! Local ECS: each tenant has a service; a forced deployment becomes COMPLETED if the release's
//! health-check SQL succeeds against the database the active pointer names when the rollout
//! starts, and FAILED otherwise. That database is fixed at the start; the check runs on the heavy
//! pool while the deployment reports IN_PROGRESS, and its verdict is applied when the simulated
//! rollout time has passed on the run's clock, when an `ECS Deployment State Change` event goes
//! out on the local bus.
//!
//! Services and deployments live in `<state>/ecs/registry.sqlite`. A service's newest deployment
//! (highest `seq`) is its PRIMARY one; `created_at` is the run clock's time of the force, RFC 3339.

use crate::clock::Clock;
use crate::error::{sql_step_error, HealthError};
use crate::events::LocalBus;
use crate::layout::{Layout, RELEASE_BUCKET};
use crate::s3::LocalObjects;
use crate::sqlite::Cached;
use crate::ssm::LocalParameters;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenantflow_core::manifest::release_prefix;
use tenantflow_core::model::{ActivePointer, ServiceRef};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::{DeploymentStatus, PrimaryDeployment, Services};
use tenantflow_core::StepError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS services (
    cluster TEXT NOT NULL,
    service TEXT NOT NULL,
    namespace TEXT NOT NULL,
    desired INTEGER NOT NULL DEFAULT 2,
    PRIMARY KEY (cluster, service)
);
CREATE TABLE IF NOT EXISTS deployments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    cluster TEXT NOT NULL,
    service TEXT NOT NULL,
    rollout_state TEXT NOT NULL,
    verdict TEXT NOT NULL,
    running INTEGER NOT NULL,
    desired INTEGER NOT NULL,
    instance_id TEXT,
    reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);";

/// The health check used when a release declares none.
pub const DEFAULT_HEALTH_SQL: &str = "SELECT 1";

pub struct LocalServices {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
    bus: Arc<LocalBus>,
    params: Arc<LocalParameters>,
    objects: Arc<LocalObjects>,
    rollout_seconds: u64,
    heavy: crate::heavy::Heavy,
    /// No health check runs: every rollout completes after its simulated time.
    simulate: bool,
}

impl Inner {
    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StepError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StepError::Internal("ecs registry poisoned".into()))?;
        f(&conn).map_err(|e| sql_step_error(&format!("ecs registry {what}"), e))
    }

    /// What a rollout starting now checks: the instance the active pointer names, its file and
    /// the release's health-check SQL; Err(reason) when there is nothing to check.
    fn health_target(&self, ns: &str) -> Result<HealthTarget, HealthError> {
        let ns = Namespace::parse(ns)?;
        let ptr = self
            .params
            .get_sync(&ns.paths().pointer)?
            .ok_or_else(|| HealthError::NoPointer(ns.clone()))?;
        let ptr: ActivePointer = serde_json::from_str(&ptr.value)
            .map_err(|source| HealthError::BadPointer { ns, source })?;
        Ok(HealthTarget {
            sql: self.health_sql(&ptr.release),
            file: self.layout.instance_file(ptr.instance_id.as_str()),
            instance: ptr.instance_id.to_string(),
        })
    }

    fn health_sql(&self, release: &str) -> String {
        release_health_sql(&self.objects, release)
    }
}

/// The health-check SQL of a release published in local S3 (its manifest's `healthCheck.sql`),
/// else [`DEFAULT_HEALTH_SQL`].
pub fn release_health_sql(objects: &LocalObjects, release: &str) -> String {
    let key = format!("{}manifest.json", release_prefix(release));
    objects
        .get_sync(RELEASE_BUCKET, &key)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| {
            m.get("healthCheck")
                .and_then(|h| h.get("sql"))
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| DEFAULT_HEALTH_SQL.to_string())
}

/// The database a rollout's health check runs against, fixed when the rollout starts.
struct HealthTarget {
    instance: String,
    file: std::path::PathBuf,
    sql: String,
}

impl HealthTarget {
    /// Runs the check: Ok(instance) when healthy, Err(reason) when not.
    fn check(&self) -> Result<String, HealthError> {
        let instance = &self.instance;
        if !self.file.is_file() {
            return Err(HealthError::FileMissing {
                instance: instance.clone(),
                file: self.file.clone(),
            });
        }
        let conn = Connection::open_with_flags(&self.file, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| HealthError::Open {
                instance: instance.clone(),
                source,
            })?;
        run_health_check(&conn, &self.sql).map_err(|source| HealthError::Failed {
            instance: instance.clone(),
            source,
        })?;
        Ok(instance.clone())
    }
}

/// Runs every statement of `sql` on a read-only connection; any error is a failed check.
pub fn run_health_check(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.execute_batch(sql)
}

impl LocalServices {
    pub fn open(
        layout: &Layout,
        clock: Arc<dyn Clock>,
        bus: Arc<LocalBus>,
        params: Arc<LocalParameters>,
        objects: Arc<LocalObjects>,
        rollout_seconds: u64,
        heavy: crate::heavy::Heavy,
    ) -> rusqlite::Result<Self> {
        if let Some(dir) = layout.ecs_registry().parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = crate::sqlite::open_meta(&layout.ecs_registry(), SCHEMA)?;
        Ok(LocalServices {
            inner: Arc::new(Inner {
                layout: layout.clone(),
                conn: Mutex::new(conn),
                clock,
                bus,
                params,
                objects,
                rollout_seconds,
                heavy,
                simulate: false,
            }),
        })
    }

    /// In a simulation no health check runs: every rollout completes after its simulated time.
    pub fn simulated(mut self, on: bool) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.simulate = on;
        }
        self
    }

    /// Registers (or re-registers) the service of a tenant.
    pub fn register_service(&self, service: &ServiceRef, ns: &Namespace) -> Result<(), StepError> {
        self.inner.with("register service", |c| {
            c.execute_cached(
                "INSERT OR REPLACE INTO services (cluster, service, namespace) VALUES (?1, ?2, ?3)",
                params![service.cluster, service.service, ns.as_str()],
            )
            .map(|_| ())
        })
    }
}

#[async_trait]
impl Services for LocalServices {
    async fn force_deployment(&self, service: &ServiceRef) -> Result<String, StepError> {
        let inner = &self.inner;
        let row = inner.with("find service", |c| {
            c.query_row_cached(
                "SELECT namespace, desired FROM services WHERE cluster = ?1 AND service = ?2",
                params![service.cluster, service.service],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)),
            )
            .optional()
        })?;
        let Some((ns, desired)) = row else {
            return Err(StepError::NotFound(format!(
                "ECS service {}/{}",
                service.cluster, service.service
            )));
        };
        // The target is fixed now; the check itself runs on the heavy pool during the simulated
        // rollout, and its verdict is applied when the rollout ends.
        let simulate = inner.simulate;
        let check = inner.health_target(&ns).map(|target| {
            inner.heavy.start(move || {
                if simulate {
                    Ok(target.instance)
                } else {
                    target.check()
                }
            })
        });
        let now = inner.clock.now().to_rfc3339();
        let id = inner.with("start deployment", |c| {
            let seq: i64 = c.query_row_cached(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments",
                [],
                |r| r.get(0),
            )?;
            let id = format!("ecs-svc/{seq:019}");
            c.execute_cached(
                "INSERT INTO deployments (seq, id, cluster, service, rollout_state, verdict, running, desired, reason, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'IN_PROGRESS', 'PENDING', 0, ?5, '', ?6)",
                params![seq, id, service.cluster, service.service, desired, now],
            )?;
            Ok(id)
        })?;
        let inner2 = inner.clone();
        let svc = service.clone();
        let dep = id.clone();
        tokio::spawn(async move {
            inner2
                .clock
                .sleep(Duration::from_secs(inner2.rollout_seconds))
                .await;
            let verdict = match check {
                Ok(job) => job.wait().await.map_err(HealthError::from).and_then(|r| r),
                Err(e) => Err(e),
            };
            let (state, instance, reason) = match verdict {
                Ok(instance) => ("COMPLETED", Some(instance), String::new()),
                Err(e) => ("FAILED", None, e.to_string()),
            };
            let done = inner2.with("finish deployment", |c| {
                c.execute_cached(
                    "UPDATE deployments SET rollout_state = ?2, verdict = ?2, instance_id = ?3, reason = ?4,
                       running = CASE ?2 WHEN 'COMPLETED' THEN desired ELSE 0 END
                     WHERE id = ?1 AND rollout_state = 'IN_PROGRESS'",
                    params![dep, state, instance, reason],
                )
            });
            if let Ok(1) = done {
                inner2
                    .bus
                    .deployment_event(&svc.cluster, &svc.service, &dep, state, &reason)
                    .await;
            }
        });
        Ok(id)
    }

    async fn primary_deployment(
        &self,
        service: &ServiceRef,
    ) -> Result<Option<PrimaryDeployment>, StepError> {
        let (known, primary) = self.inner.with("primary deployment", |c| {
            let known: bool = c.query_row_cached(
                "SELECT EXISTS(SELECT 1 FROM services WHERE cluster = ?1 AND service = ?2)",
                params![service.cluster, service.service],
                |r| r.get(0),
            )?;
            let primary = c
                .query_row_cached(
                    "SELECT id, created_at FROM deployments WHERE cluster = ?1 AND service = ?2
                     ORDER BY seq DESC LIMIT 1",
                    params![service.cluster, service.service],
                    |r| {
                        let created: String = r.get(1)?;
                        let created_at = DateTime::parse_from_rfc3339(&created)
                            .map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    1,
                                    Type::Text,
                                    Box::new(e),
                                )
                            })?
                            .with_timezone(&Utc);
                        Ok(PrimaryDeployment {
                            id: r.get(0)?,
                            created_at,
                        })
                    },
                )
                .optional()?;
            Ok((known, primary))
        })?;
        if !known {
            return Err(StepError::NotFound(format!(
                "ECS service {}/{}",
                service.cluster, service.service
            )));
        }
        Ok(primary)
    }

    async fn deployment(
        &self,
        service: &ServiceRef,
        id: &str,
    ) -> Result<Option<DeploymentStatus>, StepError> {
        self.inner.with("describe deployment", |c| {
            let row = c
                .query_row_cached(
                    "SELECT d.rollout_state, d.running, d.desired,
                        d.seq = (SELECT MAX(seq) FROM deployments x WHERE x.cluster = d.cluster AND x.service = d.service)
                     FROM deployments d WHERE d.id = ?1 AND d.cluster = ?2 AND d.service = ?3",
                    params![id, service.cluster, service.service],
                    |r| {
                        Ok(DeploymentStatus {
                            id: id.to_string(),
                            rollout_state: r.get(0)?,
                            running: r.get(1)?,
                            desired: r.get(2)?,
                            primary: r.get(3)?,
                        })
                    },
                )
                .optional()?;
            Ok(row)
        })
    }
}

/// The reason a deployment failed, if it did (for reports and tests).
impl LocalServices {
    /// Why the newest rollout of tenant `ns` created at or after `since` (RFC 3339, the run
    /// clock) failed, if one did: the health check's error, for the deploy report.
    pub fn failed_rollout_reason(
        &self,
        ns: &str,
        since: &str,
    ) -> Result<Option<String>, StepError> {
        self.inner.with("failed rollout reason", |c| {
            c.query_row_cached(
                "SELECT d.reason FROM deployments d
                 JOIN services s ON s.cluster = d.cluster AND s.service = d.service
                 WHERE s.namespace = ?1 AND d.rollout_state = 'FAILED' AND d.reason != ''
                   AND d.created_at >= ?2
                 ORDER BY d.seq DESC LIMIT 1",
                params![ns, since],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn deployment_reason(&self, id: &str) -> Result<Option<String>, StepError> {
        self.inner.with("deployment reason", |c| {
            c.query_row_cached("SELECT reason FROM deployments WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        })
    }
}
