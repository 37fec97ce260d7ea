//! The crash campaign of issue 11: a local deploy is killed at many moments of its run, then
//! `tenantflow recover` settles the state directory, then docs/design.md §8's invariants are
//! checked by reading the state directly (tests/common), every original data row is compared with
//! the rows before the run, and the deploy is run again: every tenant must end on the release.
//! The same for graceful interrupts (SIGINT, SIGTERM, a second SIGINT) and for deploys that run
//! at once on one state directory.
//!
//! The moments come from the local backend's test hook (functions/local/src/crash.rs): with
//! `TENANTFLOW_WRITE_LOG` a clean deploy lists its writes to the state; with
//! `TENANTFLOW_CRASH_AT=<n>` the process sends itself SIGKILL (or `TENANTFLOW_CRASH_SIGNAL`) right
//! before its n-th write. The points are seeded and spread over the whole run (one per equal
//! slice of the clean run's writes).
//!
//! Before recovery, each trial's checker counts what the kill stranded (locks held, frozen
//! pointers, orphan databases and snapshots, temporary files, wait tokens); the campaign prints
//! the totals (`cargo test --test crash_campaign -- --nocapture`). Set
//! `TENANTFLOW_CAMPAIGN_NO_RECOVER=1` to measure only that (no recover, no assertion after it).

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const RELEASE: &str = "0002-loyalty-points";
/// The example fleet `init` makes by default.
const TENANTS: usize = 8;
const ROWS: usize = 40;
const KILLS: usize = 24;
const SEED: u64 = 11;
/// The tables of the initial release, whose rows no deploy may lose or change.
const DATA_TABLES: [&str; 4] = ["customers", "products", "orders", "order_lines"];
const EXIT_INTERRUPTED: i32 = 130;

/// `tenantflow --state <state> <args>` with extra environment variables.
fn command(state: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenantflow"));
    c.arg("--state")
        .arg(state)
        .args(args)
        .env_remove("TENANTFLOW_STATE")
        .env_remove("TENANTFLOW_CRASH_AT")
        .env_remove("TENANTFLOW_CRASH_SIGNAL")
        .env_remove("TENANTFLOW_WRITE_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(state: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    command(state, args, env)
        .stdin(Stdio::null())
        .output()
        .expect("run the tenantflow binary")
}

fn release_dir() -> String {
    example(RELEASE).to_str().unwrap().to_string()
}

/// Settles what an interrupted run left (the one line that depends on issue 11's recovery).
fn recover(state: &Path) {
    let out = run(state, &["recover"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "recover did not settle {}:\n{}\n{}",
        state.display(),
        stdout(&out),
        stderr(&out)
    );
}

fn measure_only() -> bool {
    std::env::var_os("TENANTFLOW_CAMPAIGN_NO_RECOVER").is_some()
}

/// Copies a state directory (files and folders only).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A fleet made by `init`, kept as the template every trial copies.
struct Fleet {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    template: PathBuf,
    /// namespace → table → checksum of the rows of the initial columns.
    rows: BTreeMap<String, BTreeMap<String, String>>,
}

impl Fleet {
    fn new() -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let template = root.join("template");
        init(&template, TENANTS, ROWS, SEED);
        let rows = data_rows(&template);
        assert_eq!(rows.len(), TENANTS);
        Fleet {
            _tmp: tmp,
            root,
            template,
            rows,
        }
    }

    fn copy(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        copy_dir(&self.template, &dir);
        dir
    }
}

/// The rows of [`DATA_TABLES`] in every tenant's active database, by the columns they had in the
/// initial release (a migration may add columns, never change or drop these rows).
fn data_rows(state: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    pointers(state)
        .into_iter()
        .map(|(ns, p)| {
            let file = state
                .join("rds/instances")
                .join(format!("{}.sqlite", pointer_field(&p, "instanceId")));
            (ns, table_rows(&file))
        })
        .collect()
}

fn table_rows(db: &Path) -> BTreeMap<String, String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = BTreeMap::new();
    for t in DATA_TABLES {
        let columns: &[&str] = match t {
            "customers" => &["id", "email", "full_name", "country", "created_at"],
            "products" => &["id", "sku", "name", "price_cents"],
            "orders" => &["id", "customer_id", "ordered_at", "status", "total_cents"],
            _ => &["order_id", "line_no", "product_id", "quantity"],
        };
        let sql = format!("SELECT {} FROM {t} ORDER BY 1, 2", columns.join(", "));
        let mut stmt = conn.prepare(&sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut hash = Sha256::new();
        let mut n = 0;
        while let Some(r) = rows.next().unwrap() {
            for i in 0..columns.len() {
                let v: rusqlite::types::Value = r.get(i).unwrap();
                hash.update(format!("{v:?}\u{1f}").as_bytes());
            }
            hash.update(b"\x1e");
            n += 1;
        }
        out.insert(
            t.to_string(),
            format!("{n}:{}", hex::encode(hash.finalize())),
        );
    }
    out
}

/// One thing wrong with a state directory after a run, as docs/design.md §8 and issue 11 see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    kind: &'static str,
    tenant: String,
    detail: String,
}

/// Every violation of the invariants in `state`, read from its files (never panics on one).
/// `rows`: the data rows before the run.
fn violations(state: &Path, rows: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut add = |kind, tenant: &str, detail: String| {
        v.push(Violation {
            kind,
            tenant: tenant.to_string(),
            detail,
        })
    };
    let pointers = pointers(state);
    let (instances, _) = rds_files(state, "instances");
    let (snapshots, _) = rds_files(state, "snapshots");
    let mut active = Vec::new();
    let mut releases = BTreeMap::new();
    for (ns, p) in &pointers {
        let id = pointer_field(p, "instanceId");
        let release = pointer_field(p, "release");
        let file = state.join("rds/instances").join(format!("{id}.sqlite"));
        if !file.is_file() {
            add("pointer", ns, format!("names {id}, which has no file"));
            continue;
        }
        let (versions, repeatables, failed) = history(&file);
        let (want_v, want_r) = release_scripts(&manifest(state, &release));
        if failed || versions != want_v || repeatables != want_r {
            add(
                "pointer",
                ns,
                format!("{id} is not exactly on {release}: {versions:?} {repeatables:?}"),
            );
        }
        if p.get("freeze").is_some() {
            add("freeze", ns, format!("the pointer carries a freeze: {p}"));
        }
        if let Some(before) = rows.get(ns) {
            let after = table_rows(&file);
            if &after != before {
                add(
                    "data",
                    ns,
                    format!("rows differ from before the run in {id}"),
                );
            }
        }
        active.push(id);
        releases.insert(ns.clone(), release);
    }
    for ns in rows.keys() {
        if !pointers.contains_key(ns) {
            add("pointer", ns, "the tenant has no pointer".into());
        }
    }
    let owner = |id: &str| {
        pointers
            .keys()
            .find(|ns| {
                id.strip_prefix(ns.as_str())
                    .is_some_and(|r| r.starts_with('-'))
            })
            .cloned()
            .unwrap_or_default()
    };
    for id in &instances {
        if !active.contains(id) {
            add("orphan instance", &owner(id), id.clone());
        }
    }
    // A snapshot newer than its tenant's active generation was made by a run that never flipped
    // that tenant (a finished deploy's snapshot has the new generation's timestamp): an orphan.
    let generation = |ns: &str| pointers.get(ns).map(|p| pointer_field(p, "generation"));
    let mut per_tenant: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for s in &snapshots {
        let ns = owner(s);
        let newer = generation(&ns).is_some_and(|g| {
            s.strip_prefix(&format!("{ns}-"))
                .is_some_and(|ts| ts > g.as_str())
        });
        if newer {
            add(
                "orphan snapshot",
                &ns,
                format!("{s} is newer than the active generation"),
            );
        }
        per_tenant.entry(ns).or_default().push(s);
    }
    for (ns, list) in per_tenant {
        let retention = releases
            .get(&ns)
            .map(|r| {
                manifest(state, r)["snapshotRetention"]
                    .as_u64()
                    .unwrap_or(3)
            })
            .unwrap_or(0) as usize;
        if ns.is_empty() || list.len() > retention.max(1) {
            add(
                "orphan snapshot",
                &ns,
                format!("{} snapshots, retention {retention}: {list:?}", list.len()),
            );
        }
    }
    for (tenant, holder, _, _) in tenant_records(state) {
        if let Some(h) = holder {
            add("lock", &tenant, format!("held by {h}"));
        }
    }
    for (kind, resource, _) in wait_tokens(state) {
        add("wait token", "", format!("{kind} {resource}"));
    }
    for f in temporary_files(state) {
        add("temporary file", "", f);
    }
    v.sort();
    v
}

/// Every `*.tmp-*` file under `dir`.
fn temporary_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(temporary_files(&path));
        } else if e.file_name().to_string_lossy().contains(".tmp-") {
            out.push(path.display().to_string());
        }
    }
    out
}

/// What one interrupted run stranded, before recovery.
#[derive(Default)]
struct Stranded {
    trials: usize,
    stranded_trials: usize,
    /// kind → (violations, trials with one).
    by_kind: BTreeMap<&'static str, (usize, usize)>,
    /// Tenants with at least one violation, summed over trials.
    tenants: usize,
}

impl Stranded {
    fn add(&mut self, found: &[Violation]) {
        self.trials += 1;
        if !found.is_empty() {
            self.stranded_trials += 1;
        }
        let mut kinds: Vec<&'static str> = found.iter().map(|v| v.kind).collect();
        for v in found {
            self.by_kind.entry(v.kind).or_default().0 += 1;
        }
        kinds.dedup();
        for k in kinds {
            self.by_kind.entry(k).or_default().1 += 1;
        }
        let mut tenants: Vec<&str> = found
            .iter()
            .filter(|v| !v.tenant.is_empty())
            .map(|v| v.tenant.as_str())
            .collect();
        tenants.sort();
        tenants.dedup();
        self.tenants += tenants.len();
    }

    fn print(&self, what: &str) {
        eprintln!(
            "{what}: {} trials, {} left something stranded before recovery, {} tenants stranded in all",
            self.trials, self.stranded_trials, self.tenants
        );
        for (kind, (n, trials)) in &self.by_kind {
            eprintln!("  {kind:<16} {n:>4} (in {trials} trials)");
        }
    }
}

/// The writes of a clean deploy, as the hook numbers them.
fn clean_writes(fleet: &Fleet) -> Vec<String> {
    let state = fleet.copy("clean");
    let log = fleet.root.join("clean-writes.log");
    let out = run(
        &state,
        &["deploy", &release_dir(), "--json"],
        &[("TENANTFLOW_WRITE_LOG", log.display().to_string())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(violations(&state, &fleet.rows).is_empty());
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, w)| w).to_string())
        .collect()
}

/// `count` seeded points, one in each equal slice of `1..=total`.
fn spread_points(total: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let lo = 1 + i * total / count;
            let hi = ((i + 1) * total / count).max(lo);
            rng.gen_range(lo..=hi)
        })
        .collect()
}

/// After recovery: no violation, then the deploy again puts every tenant on the release.
fn settle_and_redeploy(fleet: &Fleet, state: &Path, trial: &str) {
    recover(state);
    let after = violations(state, &fleet.rows);
    assert!(after.is_empty(), "{trial}: after recover: {after:#?}");
    let out = run(state, &["deploy", &release_dir(), "--json"], &[]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "{trial}: redeploy printed no report ({e}): {}",
            stderr(&out)
        )
    });
    assert_eq!(out.status.code(), Some(0), "{trial}: redeploy: {report:#}");
    let releases = check_invariants(state);
    assert!(
        releases.values().all(|r| r == RELEASE) && releases.len() == TENANTS,
        "{trial}: {releases:?}"
    );
    let after = violations(state, &fleet.rows);
    assert!(after.is_empty(), "{trial}: after the redeploy: {after:#?}");
}

#[test]
fn sigkill_at_24_moments_then_recover_leaves_every_invariant_and_row() {
    let started = std::time::Instant::now();
    let fleet = Fleet::new();
    let writes = clean_writes(&fleet);
    // The last writes are the run's own report files; a kill there strands no tenant but is
    // still a kill.
    let points = spread_points(writes.len(), KILLS, SEED);
    let mut stranded = Stranded::default();
    for (i, &n) in points.iter().enumerate() {
        let trial = format!("kill {i} before write {n} ({})", writes[n - 1]);
        let state = fleet.copy(&format!("kill-{i}"));
        let out = run(
            &state,
            &["deploy", &release_dir(), "--json"],
            &[("TENANTFLOW_CRASH_AT", n.to_string())],
        );
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{trial}: not killed ({:?}): {}",
            out.status,
            stderr(&out)
        );
        let found = violations(&state, &fleet.rows);
        assert!(
            found
                .iter()
                .all(|v| v.kind != "data" && v.kind != "pointer"),
            "{trial}: a kill alone broke a pointer or data: {found:#?}"
        );
        stranded.add(&found);
        if !measure_only() {
            settle_and_redeploy(&fleet, &state, &trial);
        }
    }
    stranded.print(&format!(
        "SIGKILL campaign ({} writes in a clean deploy, points {points:?})",
        writes.len()
    ));
    eprintln!("campaign took {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn sigint_and_sigterm_stop_the_run_gracefully_then_recover_settles_it() {
    let fleet = Fleet::new();
    let writes = clean_writes(&fleet).len();
    let mut stranded = Stranded::default();
    // (signal, points): one interrupt early, mid-run and late; then two interrupts in a row.
    let trials: Vec<(&str, Vec<usize>)> = spread_points(writes, 4, SEED + 1)
        .into_iter()
        .map(|n| ("INT", vec![n]))
        .chain(
            spread_points(writes, 2, SEED + 2)
                .into_iter()
                .map(|n| ("TERM", vec![n])),
        )
        .chain([("INT", vec![writes / 3, writes / 3 + 5])])
        .collect();
    for (i, (signal, at)) in trials.iter().enumerate() {
        let trial = format!("SIG{signal} before writes {at:?}");
        let state = fleet.copy(&format!("int-{i}"));
        let at_text: Vec<String> = at.iter().map(|n| n.to_string()).collect();
        let out = run(
            &state,
            &["deploy", &release_dir(), "--json"],
            &[
                ("TENANTFLOW_CRASH_AT", at_text.join(",")),
                ("TENANTFLOW_CRASH_SIGNAL", signal.to_string()),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(EXIT_INTERRUPTED),
            "{trial}: {:?}\n{}",
            out.status,
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains("interrupted"), "{trial}: {err}");
        let found = violations(&state, &fleet.rows);
        if at.len() == 1 {
            // A graceful stop: the run ended ABORTED with its report, and the deploy itself
            // settled the tenants it had started: nothing is left for `recover`.
            let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
            assert_eq!(report["status"], "ABORTED", "{trial}: {report:#}");
            assert!(
                err.contains("were rolled back"),
                "{trial}: says it settled them: {err}"
            );
            assert!(
                found.is_empty(),
                "{trial}: after a graceful stop: {found:#?}"
            );
        } else {
            assert!(
                err.contains("tenantflow recover"),
                "{trial}: says what settles it: {err}"
            );
        }
        assert!(
            found
                .iter()
                .all(|v| v.kind != "data" && v.kind != "pointer"),
            "{trial}: {found:#?}"
        );
        stranded.add(&found);
        if !measure_only() {
            settle_and_redeploy(&fleet, &state, &trial);
        }
    }
    stranded.print("SIGINT/SIGTERM trials");
}

fn spawn(state: &Path, args: &[&str], env: &[(&str, String)]) -> Child {
    command(state, args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the tenantflow binary")
}

type Trial = (&'static str, [Vec<String>; 2], Vec<(&'static str, String)>);

fn deploy_args(release: &str, wait: bool) -> Vec<String> {
    let mut args = vec![
        "deploy".to_string(),
        release.to_string(),
        "--json".to_string(),
    ];
    if wait {
        args.push("--wait".into());
    }
    args
}

/// Runs each trial's two commands at once on a fresh copy of the fleet; after both, no invariant
/// is violated and no row is lost.
fn concurrent_trials(fleet: &Fleet, trials: &[Trial]) {
    for (i, (name, [a, b], env_a)) in trials.iter().enumerate() {
        let state = fleet.copy(&format!("conc-{i}-{}", name.replace(' ', "-")));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        let first = spawn(&state, &a, env_a);
        let second = spawn(&state, &b, &[]);
        let (oa, ob) = (
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        );
        let crash = !env_a.is_empty();
        for (o, who) in [(&oa, "first"), (&ob, "second")] {
            let killed = crash && who == "first" && o.status.signal() == Some(9);
            assert!(
                killed || matches!(o.status.code(), Some(0) | Some(3) | Some(4)),
                "{name}: {who} exited {:?}: {}",
                o.status,
                stderr(o)
            );
        }
        let ran = [&oa, &ob]
            .iter()
            .filter(|o| matches!(o.status.code(), Some(0) | Some(3)))
            .count();
        assert!(ran >= 1 || crash, "{name}: neither ran");
        let found = violations(&state, &fleet.rows);
        assert!(found.is_empty(), "{name}: {found:#?}");
        let releases = check_invariants(&state);
        assert_eq!(releases.len(), TENANTS, "{name}");
    }
}

/// Two deploys at once on one state directory, three ways: without `--wait` (one is refused or
/// they ran one after the other), with `--wait` (they serialize), and two releases at once with
/// `--wait` (the second fails on some tenants by design, or is refused as a downgrade).
#[test]
fn concurrent_deploys_leave_every_invariant_and_row() {
    let fleet = Fleet::new();
    let loyalty = release_dir();
    let unique = example("0003-unique-email").to_str().unwrap().to_string();
    concurrent_trials(
        &fleet,
        &[
            (
                "no --wait",
                [deploy_args(&loyalty, false), deploy_args(&loyalty, false)],
                vec![],
            ),
            (
                "--wait",
                [deploy_args(&loyalty, true), deploy_args(&loyalty, true)],
                vec![],
            ),
            (
                "two releases --wait",
                [deploy_args(&loyalty, true), deploy_args(&unique, true)],
                vec![],
            ),
        ],
    );
}

/// A deploy waiting (`--wait`) behind one that is killed half-way takes over the state once the
/// OS lock goes with the dead process, and its start-of-deploy recovery settles what the dead one
/// left. (If the waiting one happens to take the lock first, the other finds every tenant up to
/// date and ends before its crash point.)
#[test]
fn a_deploy_waiting_behind_a_killed_one_settles_it() {
    let fleet = Fleet::new();
    let writes = clean_writes(&fleet).len();
    let loyalty = release_dir();
    let trials: Vec<Trial> = [writes / 3, writes / 2, 2 * writes / 3]
        .into_iter()
        .map(|n| {
            (
                "the first killed, the second --wait",
                [deploy_args(&loyalty, true), deploy_args(&loyalty, true)],
                vec![("TENANTFLOW_CRASH_AT", n.to_string())],
            )
        })
        .collect();
    concurrent_trials(&fleet, &trials);
}

/// The campaign's own pieces: the points are spread and reproducible, and the checker sees what a
/// kill strands (it runs without `recover`, so it is never ignored).
#[test]
fn the_checker_sees_what_a_kill_strands() {
    let points = spread_points(280, KILLS, SEED);
    assert_eq!(points, spread_points(280, KILLS, SEED));
    assert_eq!(points.len(), KILLS);
    assert!(points.windows(2).all(|w| w[0] <= w[1]) && points[0] >= 1 && points[KILLS - 1] <= 280);

    let fleet = Fleet::new();
    let writes = clean_writes(&fleet);
    // Half-way through the run some tenants are locked and frozen with a candidate.
    let state = fleet.copy("kill");
    let out = run(
        &state,
        &["deploy", &release_dir(), "--json"],
        &[("TENANTFLOW_CRASH_AT", (writes.len() / 2).to_string())],
    );
    assert_eq!(out.status.signal(), Some(9), "{}", stderr(&out));
    let found = violations(&state, &fleet.rows);
    for kind in ["lock", "freeze", "orphan snapshot"] {
        assert!(
            found.iter().any(|v| v.kind == kind),
            "no {kind} found after a kill half-way: {found:#?}"
        );
    }
    assert!(found.iter().all(|v| v.kind != "data"), "{found:#?}");
}
