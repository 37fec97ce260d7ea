//! Deploy overhead against the raw work (ignored by default; run with
//! `cargo test --release -p tenantflow-local --test perf -- --ignored --nocapture`).
//! Sizes: TENANTFLOW_PERF_TENANTS (default 200) × TENANTFLOW_PERF_ROWS (default 10000);
//! TENANTFLOW_PERF_CONCURRENCY (default: the core count) is both the raw work's thread count and
//! the deploy's max concurrency (one wave, no canary), as in `tenantflow bench`.

use sha2::{Digest, Sha256};
use std::path::Path;
use tenantflow_core::model::Outcome;
use tenantflow_core::names::{GenerationTs, Namespace};
use tenantflow_local::bench::raw_work;
use tenantflow_local::{deploy, DeployOptions, LocalState};

fn write_release(root: &Path, id: &str, scripts: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let entries: Vec<_> = scripts
        .iter()
        .map(|(n, sql)| {
            std::fs::write(dir.join(n), sql).unwrap();
            serde_json::json!({"name": n, "sha256": hex::encode(Sha256::digest(sql.as_bytes()))})
        })
        .collect();
    let m = serde_json::json!({"release": id, "scripts": entries, "maxConcurrency": 20});
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    dir
}

fn env_or(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn deploy_overhead_over_raw_work() {
    let tenants = env_or("TENANTFLOW_PERF_TENANTS", 200);
    let rows = env_or("TENANTFLOW_PERF_ROWS", 10_000);
    let tmp = tempfile::tempdir().unwrap();
    let state = LocalState::create(&tmp.path().join("state")).unwrap();
    let v1 = "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL);";
    let v2 = "ALTER TABLE customers ADD COLUMN loyalty_points INTEGER NOT NULL DEFAULT 0;\nCREATE INDEX customers_points ON customers (loyalty_points);";
    let r1 = write_release(tmp.path(), "0001-initial", &[("V1__init.sql", v1)]);
    let r2 = write_release(
        tmp.path(),
        "0002-points",
        &[("V1__init.sql", v1), ("V2__points.sql", v2)],
    );
    let ts = GenerationTs::parse("20260101000000").unwrap();
    let t0 = std::time::Instant::now();
    for i in 0..tenants {
        let ns = Namespace::parse(&format!("c{i:04}-app-prod")).unwrap();
        state
            .create_tenant(&ns, ts, &r1, &|c| {
                c.execute_batch("BEGIN")?;
                {
                    let mut st = c.prepare("INSERT INTO customers (email, name, created_at) VALUES (?1, ?2, '2026-01-01')")?;
                    for n in 0..rows {
                        st.execute([format!("user{n}@example.com"), format!("User Number {n}")])?;
                    }
                }
                c.execute_batch("COMMIT")
            })
            .unwrap();
    }
    eprintln!(
        "init: {tenants} tenants x {rows} rows in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let threads = env_or(
        "TENANTFLOW_PERF_CONCURRENCY",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    );
    let raw = raw_work(&state, &r2, &tmp.path().join("scratch"), threads).unwrap();
    eprintln!(
        "raw work: {:.2} s ({threads} threads; copy {:.2} s, migrate {:.2} s summed)",
        raw.seconds, raw.copy_seconds, raw.migrate_seconds
    );

    let opts = DeployOptions {
        canary: Some(0),
        max_concurrency: Some(threads as u32),
        ..DeployOptions::default()
    };
    let report = deploy(&state, &r2, opts, None).await.unwrap();
    assert!(report
        .tenants
        .iter()
        .all(|t| t.outcome == Outcome::Deployed));
    eprintln!(
        "deploy: {:.2} s wall, {} transitions, max {} history events; overhead {:.0}%",
        report.wall_seconds,
        report.state_transitions,
        report.max_history_events,
        (report.wall_seconds / raw.seconds - 1.0) * 100.0
    );
}
