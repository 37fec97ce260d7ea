#![allow(dead_code)]
//! Shared test helpers: a fresh state directory with a virtual clock.

use chrono::{TimeZone, Utc};
use std::path::Path;
use std::sync::Arc;
use tenantflow_local::clock::VirtualClock;
use tenantflow_local::{Layout, LocalPorts};
use tokio::sync::mpsc;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ports: LocalPorts,
    pub clock: Arc<VirtualClock>,
}

pub fn env() -> Env {
    env_with(|_| {})
}

pub fn env_with(tweak: impl FnOnce(&mut tenantflow_local::StateConfig)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let mut config = layout.create().unwrap();
    tweak(&mut config);
    layout.write_config(&config).unwrap();
    let ports = LocalPorts::open(&layout, config).unwrap();
    let clock = VirtualClock::new(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap());
    ports.clock.set(clock.clone());
    Env { dir, ports, clock }
}

/// A database with a `customers` table of `rows` rows.
pub fn make_db(path: &Path, rows: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL);")
        .unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO customers (email) VALUES (?1)",
            [format!("c{i}@example.com")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

pub fn count(path: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Subscribes to the bus; every delivered event arrives on the receiver.
pub fn capture_events(ports: &LocalPorts) -> mpsc::UnboundedReceiver<serde_json::Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    ports.bus.subscribe(Some(Arc::new(move |e| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(e);
        })
    })));
    rx
}
