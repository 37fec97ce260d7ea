//! Local `Records` store on `<state>/records.sqlite`: the tenant records (lock + run journal)
//! and the wait tokens, the local stand-in for the DynamoDB table (a public contract, see the
//! README's state layout).
//!
//! ```text
//! tenant_records(tenant TEXT PRIMARY KEY, holder TEXT NULL, run TEXT NULL, phase TEXT,
//!                version INTEGER, updated_at TEXT, journal TEXT)   + index tenant_records_by_run(run)
//! wait_tokens(kind TEXT, resource TEXT, token TEXT, tenant TEXT, service TEXT NULL,
//!             expires_at INTEGER, PRIMARY KEY(kind, resource))
//! ```
//!
//! - `holder` NULL means the lock is free; `phase` is `locked` or `released`; `version` grows by
//!   one with every write; `journal` is the run journal as a JSON object (`{}` until a step
//!   writes it); `updated_at` is the run clock's RFC 3339 time of the last write.
//! - `service` is `{"cluster","service"}` JSON for ECS deployments; `expires_at` is Unix seconds
//!   (a token past it reads as absent, like an item DynamoDB's TTL has removed).
//!
//! Each conditional write is one SQL statement whose `WHERE` is the condition (taking a lock only
//! when `holder IS NULL`, releasing it only when `holder` is the releaser, writing the journal
//! only at the version the writer read, deleting a token only
//! when it is the one sent), inside a `BEGIN IMMEDIATE` transaction where it also reads, so it is
//! a compare-and-swap across processes too.

use crate::clock::Clock;
use crate::error::sql_step_error;
use crate::sqlite::Cached;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tenantflow_core::model::{
    Journal, Phase, ResourceKind, ServiceRef, TenantRecord, WaitRecord, WAIT_TOKEN_TTL_SECONDS,
};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::{LockTake, Records};
use tenantflow_core::StepError;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tenant_records (
    tenant TEXT PRIMARY KEY,
    holder TEXT,
    run TEXT,
    phase TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    journal TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS tenant_records_by_run ON tenant_records (run);
CREATE TABLE IF NOT EXISTS wait_tokens (
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    token TEXT NOT NULL,
    tenant TEXT NOT NULL,
    service TEXT,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, resource)
);";

const COLUMNS: &str = "tenant, holder, run, phase, version, updated_at, journal";

pub struct LocalRecords {
    path: PathBuf,
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
}

/// A column value this module never writes (bad JSON, unknown phase, bad namespace).
fn bad_column(col: usize, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, e.to_string().into())
}

fn tenant_record(r: &Row<'_>) -> rusqlite::Result<TenantRecord> {
    let tenant: String = r.get(0)?;
    let phase: String = r.get(3)?;
    let updated: String = r.get(5)?;
    let journal: String = r.get(6)?;
    Ok(TenantRecord {
        tenant: Namespace::parse(&tenant).map_err(|e| bad_column(0, e))?,
        holder: r.get(1)?,
        run: r.get(2)?,
        phase: Phase::parse(&phase).ok_or_else(|| bad_column(3, format!("phase {phase:?}")))?,
        version: r.get(4)?,
        updated_at: Some(
            DateTime::parse_from_rfc3339(&updated)
                .map_err(|e| bad_column(5, e))?
                .with_timezone(&Utc),
        ),
        journal: serde_json::from_str::<Journal>(&journal).map_err(|e| bad_column(6, e))?,
    })
}

fn select_tenant(c: &Connection, tenant: &str) -> rusqlite::Result<Option<TenantRecord>> {
    c.query_row_cached(
        &format!("SELECT {COLUMNS} FROM tenant_records WHERE tenant = ?1"),
        [tenant],
        tenant_record,
    )
    .optional()
}

fn select_many(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<TenantRecord>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(args, tenant_record)?;
    rows.collect()
}

impl LocalRecords {
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> rusqlite::Result<Self> {
        Ok(LocalRecords {
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
            .map_err(|_| StepError::Internal("records connection poisoned".into()))?;
        f(&mut conn).map_err(|e| sql_step_error(&format!("{} {what}", self.path.display()), e))
    }

    /// Every tenant record, by tenant (for `status`).
    pub fn all_sync(&self) -> Result<Vec<TenantRecord>, StepError> {
        self.with("list", |c| {
            select_many(
                c,
                &format!("SELECT {COLUMNS} FROM tenant_records ORDER BY tenant"),
                [],
            )
        })
    }

    /// The tenant's record, synchronously.
    pub fn tenant_sync(&self, tenant: &Namespace) -> Result<Option<TenantRecord>, StepError> {
        self.with("get", |c| select_tenant(c, tenant.as_str()))
    }
}

#[async_trait]
impl Records for LocalRecords {
    async fn acquire(
        &self,
        tenant: &Namespace,
        holder: &str,
        run: &str,
    ) -> Result<LockTake, StepError> {
        let now = self.clock.now().to_rfc3339();
        let taken = self.with("acquire", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Insert, or take a free lock; a held lock is left exactly as it is.
            let n = tx.execute_cached(
                "INSERT INTO tenant_records (tenant, holder, run, phase, version, updated_at, journal)
                 VALUES (?1, ?2, ?3, 'locked', 1, ?4, '{}')
                 ON CONFLICT (tenant) DO UPDATE SET
                     holder = excluded.holder, run = excluded.run, phase = 'locked',
                     version = tenant_records.version + 1, updated_at = excluded.updated_at,
                     journal = '{}'
                 WHERE tenant_records.holder IS NULL",
                params![tenant.as_str(), holder, run, now],
            )?;
            let record = select_tenant(&tx, tenant.as_str())?;
            tx.commit()?;
            Ok((n == 1, record))
        })?;
        match taken {
            (true, Some(r)) => Ok(LockTake::Taken(r)),
            (false, Some(r)) => Ok(LockTake::Held(r)),
            (_, None) => Err(StepError::Internal(format!(
                "{}: tenant record of {tenant} missing right after it was written",
                self.path.display()
            ))),
        }
    }

    async fn release(&self, tenant: &Namespace, holder: &str) -> Result<bool, StepError> {
        let now = self.clock.now().to_rfc3339();
        self.with("release", |c| {
            c.execute_cached(
                "UPDATE tenant_records
                 SET holder = NULL, phase = 'released', version = version + 1, updated_at = ?3
                 WHERE tenant = ?1 AND holder = ?2",
                params![tenant.as_str(), holder, now],
            )
            .map(|n| n == 1)
        })
    }

    async fn write_journal(
        &self,
        tenant: &Namespace,
        expected_version: i64,
        journal: &Journal,
    ) -> Result<Option<TenantRecord>, StepError> {
        let now = self.clock.now().to_rfc3339();
        let body = serde_json::to_string(journal)
            .map_err(|e| StepError::Internal(format!("serialize journal: {e}")))?;
        self.with("write journal", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute_cached(
                "UPDATE tenant_records
                 SET journal = ?3, version = version + 1, updated_at = ?4
                 WHERE tenant = ?1 AND version = ?2",
                params![tenant.as_str(), expected_version, body, now],
            )?;
            let record = if n == 1 {
                select_tenant(&tx, tenant.as_str())?
            } else {
                None
            };
            tx.commit()?;
            Ok(record)
        })
    }

    async fn get_tenant(&self, tenant: &Namespace) -> Result<Option<TenantRecord>, StepError> {
        self.tenant_sync(tenant)
    }

    async fn list_held(&self) -> Result<Vec<TenantRecord>, StepError> {
        self.with("list held", |c| {
            select_many(
                c,
                &format!(
                    "SELECT {COLUMNS} FROM tenant_records WHERE holder IS NOT NULL ORDER BY tenant"
                ),
                [],
            )
        })
    }

    async fn list_run(&self, run: &str) -> Result<Vec<TenantRecord>, StepError> {
        self.with("list run", |c| {
            select_many(
                c,
                &format!("SELECT {COLUMNS} FROM tenant_records WHERE run = ?1 ORDER BY tenant"),
                [run],
            )
        })
    }

    async fn put_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        wait: &WaitRecord,
    ) -> Result<(), StepError> {
        let expires = self.clock.now().timestamp() + WAIT_TOKEN_TTL_SECONDS;
        let service = wait
            .service
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StepError::Internal(format!("serialize service: {e}")))?;
        self.with("put token", |c| {
            c.execute_cached(
                "INSERT OR REPLACE INTO wait_tokens (kind, resource, token, tenant, service, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    kind.as_str(),
                    resource,
                    wait.token,
                    wait.tenant.as_str(),
                    service,
                    expires
                ],
            )
            .map(|_| ())
        })
    }

    async fn get_token(
        &self,
        kind: ResourceKind,
        resource: &str,
    ) -> Result<Option<WaitRecord>, StepError> {
        let now = self.clock.now().timestamp();
        self.with("get token", |c| {
            c.query_row_cached(
                "SELECT token, tenant, service FROM wait_tokens
                 WHERE kind = ?1 AND resource = ?2 AND expires_at > ?3",
                params![kind.as_str(), resource, now],
                |r| {
                    let tenant: String = r.get(1)?;
                    let service: Option<String> = r.get(2)?;
                    Ok(WaitRecord {
                        token: r.get(0)?,
                        tenant: Namespace::parse(&tenant).map_err(|e| bad_column(1, e))?,
                        service: service
                            .map(|s| serde_json::from_str::<ServiceRef>(&s))
                            .transpose()
                            .map_err(|e| bad_column(2, e))?,
                    })
                },
            )
            .optional()
        })
    }

    async fn delete_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        token: &str,
    ) -> Result<bool, StepError> {
        self.with("delete token", |c| {
            c.execute_cached(
                "DELETE FROM wait_tokens WHERE kind = ?1 AND resource = ?2 AND token = ?3",
                params![kind.as_str(), resource, token],
            )
            .map(|n| n == 1)
        })
    }
}
