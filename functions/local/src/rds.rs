//! Local RDS: one DB instance = one SQLite file under `<state>/rds/instances/`, one manual snapshot
//! = one SQLite file under `<state>/rds/snapshots/`. Metadata (status, tags, deletion protection,
//! source, creation time) lives in `<state>/rds/registry.sqlite`; an instance's endpoint is the
//! path of its file and its port is 0.
//!
//! Snapshot and restore copy the file with the SQLite online backup API on the heavy-work pool
//! (see [`crate::heavy`]) and report status `creating`. A snapshot is point-in-time, as on RDS:
//! its source is read-locked before the call returns, so a later write waits for the copy
//! instead of landing in it. The resource becomes `available` (or `failed`, if its copy failed)
//! after the simulated duration on the run's clock, when an RDS event goes out on the local bus.

use crate::clock::Clock;
use crate::error::{sql_step_error, CopyError};
use crate::events::LocalBus;
use crate::heavy::Pending;
use crate::layout::{Durations, Layout, Limits};
use crate::sqlite::Cached;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenantflow_core::names::{InstanceId, SnapshotId};
use tenantflow_core::ports::{Databases, DbInstance, DbSnapshot, Headroom, RestoreRequest, Tags};
use tenantflow_core::StepError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    deletion_protection INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    source_snapshot TEXT,
    template TEXT
);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    source_instance TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}'
);";

pub struct LocalDatabases {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
    bus: Arc<LocalBus>,
    limits: Limits,
    durations: Durations,
    heavy: crate::heavy::Heavy,
    /// No copies: resources take their simulated time and succeed ([`crate::layout::StateConfig::simulate`]).
    simulate: bool,
}

fn parse_tags(s: &str) -> Tags {
    serde_json::from_str(s).unwrap_or_default()
}

fn tags_json(t: &Tags) -> String {
    serde_json::to_string(t).unwrap_or_else(|_| "{}".into())
}

/// The two registry tables that hold RDS resources.
#[derive(Clone, Copy)]
enum Table {
    Instances,
    Snapshots,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Instances => "instances",
            Table::Snapshots => "snapshots",
        }
    }
}

impl Inner {
    /// Ids in `table` starting with `prefix`, sorted.
    fn ids_with_prefix(&self, table: Table, prefix: &str) -> Result<Vec<String>, StepError> {
        let sql = format!(
            "SELECT id FROM {} WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id",
            table.name()
        );
        self.with(&format!("list {}", table.name()), |c| {
            let mut s = c.prepare_cached(&sql)?;
            let rows = s.query_map([prefix], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StepError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StepError::Internal("rds registry poisoned".into()))?;
        f(&conn).map_err(|e| sql_step_error(&format!("rds registry {what}"), e))
    }

    fn instance_row(&self, id: &str) -> Result<Option<DbInstance>, StepError> {
        let endpoint = self.layout.instance_file(id).display().to_string();
        let row = self.with("describe instance", |c| {
            c.query_row_cached(
                "SELECT status, deletion_protection, tags FROM instances WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((status, dp, tags)) = row else {
            return Ok(None);
        };
        Ok(Some(DbInstance {
            id: InstanceId::parse(id)?,
            status,
            endpoint,
            port: 0,
            deletion_protection: dp,
            tags: parse_tags(&tags),
        }))
    }

    fn snapshot_row(&self, id: &str) -> Result<Option<DbSnapshot>, StepError> {
        let row = self.with("describe snapshot", |c| {
            c.query_row_cached(
                "SELECT source_instance, status, created_at, tags FROM snapshots WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((source, status, created, tags)) = row else {
            return Ok(None);
        };
        Ok(Some(DbSnapshot {
            id: SnapshotId::parse(id)?,
            source_instance: source,
            status,
            created_at: Some(created),
            tags: parse_tags(&tags),
        }))
    }

    fn count(&self, table: &str) -> Result<u32, StepError> {
        let sql = format!("SELECT count(*) FROM {table}");
        self.with("count", |c| {
            c.query_row_cached(&sql, [], |r| r.get::<_, u32>(0))
        })
    }
}

impl LocalDatabases {
    pub fn open(
        layout: &Layout,
        clock: Arc<dyn Clock>,
        bus: Arc<LocalBus>,
        limits: Limits,
        durations: Durations,
        heavy: crate::heavy::Heavy,
    ) -> rusqlite::Result<Self> {
        let conn = crate::sqlite::open_meta(&layout.rds_registry(), SCHEMA)?;
        Ok(LocalDatabases {
            inner: Arc::new(Inner {
                layout: layout.clone(),
                conn: Mutex::new(conn),
                clock,
                bus,
                limits,
                durations,
                heavy,
                simulate: false,
            }),
        })
    }

    /// In a simulation no file is copied: every snapshot and restore succeeds after its
    /// simulated time.
    pub fn simulated(mut self, on: bool) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.simulate = on;
        }
        self
    }

    /// Registers an existing instance file as an `available` instance (used by `init`).
    pub fn register_instance(
        &self,
        id: &InstanceId,
        tags: &Tags,
        deletion_protection: bool,
    ) -> Result<(), StepError> {
        let now = self.inner.clock.now().to_rfc3339();
        self.inner.with("register instance", |c| {
            c.execute_cached(
                "INSERT OR REPLACE INTO instances (id, status, deletion_protection, tags, created_at)
                 VALUES (?1, 'available', ?2, ?3, ?4)",
                params![id.as_str(), deletion_protection, tags_json(tags), now],
            )
            .map(|_| ())
        })
    }

    /// Registers an `available` manual snapshot without a file (a plan's simulated fleet).
    pub fn register_snapshot(&self, id: &SnapshotId, tags: &Tags) -> Result<(), StepError> {
        let now = self.inner.clock.now().to_rfc3339();
        self.inner.with("register snapshot", |c| {
            c.execute_cached(
                "INSERT OR REPLACE INTO snapshots (id, source_instance, status, created_at, tags)
                 VALUES (?1, '', 'available', ?2, ?3)",
                params![id.as_str(), now, tags_json(tags)],
            )
            .map(|_| ())
        })
    }

    /// Every registered instance id and snapshot id (for status / orphan reports).
    pub fn all_ids(&self) -> Result<(Vec<String>, Vec<String>), StepError> {
        self.inner.with("list ids", |c| {
            let ids = |sql: &str| -> rusqlite::Result<Vec<String>> {
                let mut s = c.prepare_cached(sql)?;
                let rows = s.query_map([], |r| r.get(0))?;
                rows.collect()
            };
            Ok((
                ids("SELECT id FROM instances ORDER BY id")?,
                ids("SELECT id FROM snapshots ORDER BY id")?,
            ))
        })
    }

    /// Marks every instance and snapshot still `creating` as `failed`, and returns their ids.
    /// Only for a caller holding the state directory's lock: then no process is copying them
    /// (their copy died with the run that started it), so they would stay `creating` for ever.
    pub fn fail_abandoned(&self) -> Result<Vec<String>, StepError> {
        self.inner.with("fail abandoned", |c| {
            let mut ids = Vec::new();
            for table in ["instances", "snapshots"] {
                let mut s = c.prepare_cached(&format!(
                    "UPDATE {table} SET status = 'failed' WHERE status = 'creating' RETURNING id"
                ))?;
                let rows = s.query_map([], |r| r.get::<_, String>(0))?;
                for id in rows {
                    ids.push(id?);
                }
            }
            ids.sort();
            Ok(ids)
        })
    }

    /// Synchronous describe, for callers outside the async ports.
    pub fn describe_instance_sync(&self, id: &InstanceId) -> Result<Option<DbInstance>, StepError> {
        self.inner.instance_row(id.as_str())
    }

    /// Synchronous describe, for callers outside the async ports.
    pub fn describe_snapshot_sync(&self, id: &SnapshotId) -> Result<Option<DbSnapshot>, StepError> {
        self.inner.snapshot_row(id.as_str())
    }

    /// Makes the resource `available` (or `failed`, if its `copy` failed) `seconds` later on the
    /// run's clock, with its RDS event.
    fn spawn_finish(
        &self,
        kind: Kind,
        id: String,
        copy: Pending<Result<(), CopyError>>,
        seconds: u64,
    ) {
        let inner = self.inner.clone();
        let dst = match kind {
            Kind::Snapshot => inner.layout.snapshot_file(&id),
            Kind::Instance => inner.layout.instance_file(&id),
        };
        tokio::spawn(async move {
            inner.clock.sleep(Duration::from_secs(seconds)).await;
            let copied = copy.wait().await.map_err(CopyError::from).and_then(|r| r);
            let table = kind.table();
            let status = if copied.is_ok() {
                "available"
            } else {
                "failed"
            };
            let sql =
                format!("UPDATE {table} SET status = ?2 WHERE id = ?1 AND status = 'creating'");
            let changed = inner
                .with("finish creating", |c| c.execute_cached(&sql, [&id, status]))
                .unwrap_or(0);
            if changed == 0 {
                // Deleted while it was being created: no event, and no file left behind.
                let gone = match kind {
                    Kind::Snapshot => inner.snapshot_row(&id).map(|r| r.is_none()),
                    Kind::Instance => inner.instance_row(&id).map(|r| r.is_none()),
                };
                if matches!(gone, Ok(true)) {
                    let _ = std::fs::remove_file(&dst);
                }
                return;
            }
            if let Err(e) = &copied {
                tracing::warn!(resource = %id, error = %e, "local copy failed");
                let _ = std::fs::remove_file(&dst);
            }
            match kind {
                Kind::Snapshot => inner.bus.snapshot_event(&id, copied.is_ok()).await,
                Kind::Instance => {
                    let message = match &copied {
                        Ok(()) => "Restored from snapshot".to_string(),
                        Err(e) => format!("Restore failed: {e}"),
                    };
                    inner
                        .bus
                        .instance_event(&id, copied.is_ok(), &message)
                        .await
                }
            }
        });
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Snapshot,
    Instance,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshots",
            Kind::Instance => "instances",
        }
    }
}

/// Removes a database file (gone already is fine). Freeing a file's blocks takes about a
/// millisecond of kernel time, so it runs on the heavy pool rather than the engine thread.
async fn remove_file(
    heavy: &crate::heavy::Heavy,
    file: std::path::PathBuf,
) -> Result<(), StepError> {
    let path = file.clone();
    crate::crash::before_write(&format!("remove {}", file.display()));
    let removed = heavy
        .start(move || {
            // A process killed mid-transaction leaves SQLite's journal beside the file; it goes
            // with the database (a stray one would be a hot journal for a later file of that name).
            for suffix in ["-journal", "-wal", "-shm"] {
                let mut side = path.clone().into_os_string();
                side.push(suffix);
                let _ = std::fs::remove_file(side);
            }
            std::fs::remove_file(&path)
        })
        .wait()
        .await
        .map_err(|e| StepError::Internal(e.to_string()))?;
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::error::io_step_error(&file, e)),
    }
}

#[async_trait]
impl Databases for LocalDatabases {
    async fn describe_instance(&self, id: &InstanceId) -> Result<Option<DbInstance>, StepError> {
        self.inner.instance_row(id.as_str())
    }

    async fn describe_snapshot(&self, id: &SnapshotId) -> Result<Option<DbSnapshot>, StepError> {
        self.inner.snapshot_row(id.as_str())
    }

    async fn create_snapshot(
        &self,
        source: &InstanceId,
        id: &SnapshotId,
        tags: &Tags,
    ) -> Result<DbSnapshot, StepError> {
        let inner = &self.inner;
        if let Some(existing) = inner.snapshot_row(id.as_str())? {
            if tenantflow_core::ports::same_run(&existing.tags, tags) {
                return Ok(existing);
            }
            return Err(StepError::Conflict(format!(
                "snapshot {id} exists and does not belong to this run"
            )));
        }
        let Some(src) = inner.instance_row(source.as_str())? else {
            return Err(StepError::NotFound(format!("DB instance {source}")));
        };
        if src.status != "available" {
            return Err(StepError::NotReady {
                resource: format!("DB instance {source}"),
                status: src.status,
            });
        }
        if inner.count("snapshots")? >= inner.limits.snapshots {
            return Err(StepError::QuotaExceeded(format!(
                "manual snapshot quota of {} reached",
                inner.limits.snapshots
            )));
        }
        let now = inner.clock.now().to_rfc3339();
        let inserted = inner.with("create snapshot", |c| {
            c.execute_cached(
                "INSERT OR IGNORE INTO snapshots (id, source_instance, status, created_at, tags)
                 VALUES (?1, ?2, 'creating', ?3, ?4)",
                params![id.as_str(), source.as_str(), now, tags_json(tags)],
            )
        })?;
        if inserted == 0 {
            // A concurrent call created it first: same idempotency rule.
            return match inner.snapshot_row(id.as_str())? {
                Some(s) if tenantflow_core::ports::same_run(&s.tags, tags) => Ok(s),
                _ => Err(StepError::Conflict(format!(
                    "snapshot {id} exists and does not belong to this run"
                ))),
            };
        }
        // A snapshot is point-in-time at this call, as on RDS: the source is opened and read-locked
        // now (a missing or corrupt one fails here), and copied in the background.
        let src_file = inner.layout.instance_file(source.as_str());
        let dst_file = inner.layout.snapshot_file(id.as_str());
        let begun = (!inner.simulate).then(|| crate::sqlite::begin_copy(&src_file));
        let copy = match begun {
            None => inner.heavy.start(|| Ok(())),
            Some(Ok(pending)) => inner.heavy.start(move || pending.finish(&dst_file)),
            Some(Err(e)) => {
                let _ = inner.with("drop failed snapshot", |c| {
                    c.execute_cached("DELETE FROM snapshots WHERE id = ?1", [id.as_str()])
                });
                return Err(StepError::Internal(format!(
                    "snapshot of {source} failed: tenant database {} is corrupt or missing: {e}",
                    src_file.display()
                )));
            }
        };
        self.spawn_finish(
            Kind::Snapshot,
            id.as_str().to_string(),
            copy,
            inner.durations.snapshot_seconds,
        );
        inner
            .snapshot_row(id.as_str())?
            .ok_or_else(|| StepError::Internal(format!("snapshot {id} vanished")))
    }

    async fn restore_instance(&self, req: &RestoreRequest) -> Result<DbInstance, StepError> {
        let inner = &self.inner;
        if let Some(existing) = inner.instance_row(req.target.as_str())? {
            if tenantflow_core::ports::same_run(&existing.tags, &req.tags) {
                return Ok(existing);
            }
            return Err(StepError::Conflict(format!(
                "DB instance {} exists and does not belong to this run",
                req.target
            )));
        }
        let Some(snap) = inner.snapshot_row(req.snapshot.as_str())? else {
            return Err(StepError::NotFound(format!("DB snapshot {}", req.snapshot)));
        };
        if snap.status != "available" {
            return Err(StepError::NotReady {
                resource: format!("DB snapshot {}", req.snapshot),
                status: snap.status,
            });
        }
        if inner.count("instances")? >= inner.limits.instances {
            return Err(StepError::QuotaExceeded(format!(
                "DB instance quota of {} reached",
                inner.limits.instances
            )));
        }
        let now = inner.clock.now().to_rfc3339();
        let inserted = inner.with("restore", |c| {
            c.execute_cached(
                "INSERT OR IGNORE INTO instances
                   (id, status, deletion_protection, tags, created_at, source_snapshot, template)
                 VALUES (?1, 'creating', 0, ?2, ?3, ?4, ?5)",
                params![
                    req.target.as_str(),
                    tags_json(&req.tags),
                    now,
                    req.snapshot.as_str(),
                    req.template.as_str()
                ],
            )
        })?;
        if inserted == 0 {
            return match inner.instance_row(req.target.as_str())? {
                Some(i) if tenantflow_core::ports::same_run(&i.tags, &req.tags) => Ok(i),
                _ => Err(StepError::Conflict(format!(
                    "DB instance {} exists and does not belong to this run",
                    req.target
                ))),
            };
        }
        // The restore copies in the background while the instance is `creating`.
        let src = inner.layout.snapshot_file(req.snapshot.as_str());
        let dst = inner.layout.instance_file(req.target.as_str());
        let copy = if inner.simulate {
            inner.heavy.start(|| Ok(()))
        } else {
            inner
                .heavy
                .start(move || crate::sqlite::backup_copy(&src, &dst))
        };
        self.spawn_finish(
            Kind::Instance,
            req.target.as_str().to_string(),
            copy,
            inner.durations.restore_seconds,
        );
        inner
            .instance_row(req.target.as_str())?
            .ok_or_else(|| StepError::Internal(format!("instance {} vanished", req.target)))
    }

    async fn set_deletion_protection(&self, id: &InstanceId, on: bool) -> Result<(), StepError> {
        let n = self.inner.with("set deletion protection", |c| {
            c.execute_cached(
                "UPDATE instances SET deletion_protection = ?2 WHERE id = ?1",
                params![id.as_str(), on],
            )
        })?;
        if n == 0 {
            return Err(StepError::NotFound(format!("DB instance {id}")));
        }
        Ok(())
    }

    async fn delete_instance(&self, id: &InstanceId) -> Result<(), StepError> {
        let Some(inst) = self.inner.instance_row(id.as_str())? else {
            return Ok(());
        };
        if inst.deletion_protection {
            return Err(StepError::Conflict(format!(
                "DB instance {id} has deletion protection enabled"
            )));
        }
        let file = self.inner.layout.instance_file(id.as_str());
        remove_file(&self.inner.heavy, file).await?;
        self.inner.with("delete instance", |c| {
            c.execute_cached("DELETE FROM instances WHERE id = ?1", [id.as_str()])
                .map(|_| ())
        })
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<(), StepError> {
        let file = self.inner.layout.snapshot_file(id.as_str());
        remove_file(&self.inner.heavy, file).await?;
        self.inner.with("delete snapshot", |c| {
            c.execute_cached("DELETE FROM snapshots WHERE id = ?1", [id.as_str()])
                .map(|_| ())
        })
    }

    async fn list_instances(&self, prefix: &str) -> Result<Vec<DbInstance>, StepError> {
        let ids = self.inner.ids_with_prefix(Table::Instances, prefix)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(i) = self.inner.instance_row(&id)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    async fn list_snapshots(&self, prefix: &str) -> Result<Vec<DbSnapshot>, StepError> {
        let ids = self.inner.ids_with_prefix(Table::Snapshots, prefix)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = self.inner.snapshot_row(&id)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn headroom(&self) -> Result<Headroom, StepError> {
        let inner = &self.inner;
        Ok(Headroom {
            instances: inner
                .limits
                .instances
                .saturating_sub(inner.count("instances")?),
            snapshots: inner
                .limits
                .snapshots
                .saturating_sub(inner.count("snapshots")?),
        })
    }
}
