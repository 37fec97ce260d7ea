//! The "raw work" of a deploy, measured on its own: for every tenant, copy the active database
//! twice with the backup API (snapshot, then restore) and run the release's migration on the
//! second copy, with no workflow, no SSM, no events. The CLI's benchmark compares `deploy` to it.

use crate::error::LocalError;
use crate::flyway::{self, MigrateOptions};
use crate::state::{read_release, LocalState};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tenantflow_core::model::ActivePointer;
use tenantflow_core::names::SsmPaths;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawWorkReport {
    pub tenants: usize,
    pub threads: usize,
    /// Wall time of the whole raw work.
    pub seconds: f64,
    /// Summed time spent copying and migrating (across threads).
    pub copy_seconds: f64,
    pub migrate_seconds: f64,
}

/// The active database file of every tenant, by reading the pointers.
pub fn active_databases(state: &LocalState) -> Result<Vec<(String, PathBuf)>, LocalError> {
    let ports = state.ports()?;
    let mut out = vec![];
    for p in ports.parameters.list_sync("/tenantflow")? {
        let Some(ns) = SsmPaths::tenant_of_pointer(&p.name) else {
            continue;
        };
        let ptr: ActivePointer =
            serde_json::from_str(&p.value).map_err(|cause| LocalError::InvalidJson {
                name: p.name.clone(),
                cause,
            })?;
        out.push((
            ns.to_string(),
            state.layout().instance_file(ptr.instance_id.as_str()),
        ));
    }
    Ok(out)
}

/// Runs the raw work for every tenant on `threads` threads, in `scratch` (files are removed).
pub fn raw_work(
    state: &LocalState,
    release_dir: &Path,
    scratch: &Path,
    threads: usize,
) -> Result<RawWorkReport, LocalError> {
    let release = read_release(release_dir)?;
    let dbs = active_databases(state)?;
    std::fs::create_dir_all(scratch).map_err(|e| LocalError::io(scratch, e))?;
    let threads = threads.max(1);
    let next = AtomicUsize::new(0);
    let totals = Mutex::new((0.0f64, 0.0f64));
    let first_error: Mutex<Option<LocalError>> = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((tenant, src)) = dbs.get(i) else {
                    break;
                };
                let snap = scratch.join(format!("{tenant}-snapshot.sqlite"));
                let cand = scratch.join(format!("{tenant}-candidate.sqlite"));
                let t0 = Instant::now();
                let copied = crate::sqlite::backup_copy(src, &snap)
                    .and_then(|()| crate::sqlite::backup_copy(&snap, &cand));
                let t1 = Instant::now();
                let migrated = copied
                    .map_err(|cause| LocalError::CorruptDatabase {
                        path: src.clone(),
                        cause: Box::new(cause),
                    })
                    .and_then(|()| {
                        flyway::migrate_path(&cand, &release.scripts, &MigrateOptions::default())
                            .map(|_| ())
                            .map_err(|cause| LocalError::Migration {
                                path: cand.clone(),
                                cause: Box::new(cause),
                            })
                    });
                let t2 = Instant::now();
                let _ = std::fs::remove_file(&snap);
                let _ = std::fs::remove_file(&cand);
                if let Ok(mut t) = totals.lock() {
                    t.0 += (t1 - t0).as_secs_f64();
                    t.1 += (t2 - t1).as_secs_f64();
                }
                if let Err(e) = migrated {
                    if let Ok(mut f) = first_error.lock() {
                        f.get_or_insert(e);
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let (copy_seconds, migrate_seconds) = totals.into_inner().unwrap_or_default();
    Ok(RawWorkReport {
        tenants: dbs.len(),
        threads,
        seconds,
        copy_seconds,
        migrate_seconds,
    })
}
