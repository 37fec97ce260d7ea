//! A deterministic fault-injection hook for crash tests: the process signals itself right before
//! its n-th effectful write to the state directory. It does nothing unless its variables are set.
//!
//! Every write the local backend makes to the state passes [`before_write`] first: a registry row
//! written (`ssm.sqlite`, `records.sqlite`, `rds/registry.sqlite`, the CodeBuild and ECS
//! registries: one point per SQL write statement), a file written by the temporary-file-and-rename
//! rule (S3 objects, run files; one point before the file and one before the rename), a database
//! copy (snapshot or restore: before the copy and before its rename), a database file deleted, and
//! a migration script applied to a candidate.
//!
//! - `TENANTFLOW_CRASH_AT=<n>[,<m>…]`: right before the n-th write (counted from 1 in this
//!   process), the process sends itself the signal; a list sends one signal at each point.
//! - `TENANTFLOW_CRASH_SIGNAL=KILL|INT|TERM` (default `KILL`): `KILL` is a real crash, no
//!   cleanup; `INT` and `TERM` are what Ctrl-C and a service manager send.
//! - `TENANTFLOW_WRITE_LOG=<file>`: appends `<n>\t<what>` for every write, to count and name the
//!   writes of a run.
//!
//! A test hook only (`tests/crash_campaign.rs`); no user needs it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

struct Hook {
    at: Vec<u64>,
    signal: i32,
    log: Option<Mutex<std::fs::File>>,
}

static WRITES: AtomicU64 = AtomicU64::new(0);
/// Interrupts the CLI's handler has taken (see [`interrupt_handled`]).
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// The CLI's interrupt handler calls this for each interrupt it takes. The hook waits for it
/// before going on past an interrupt that another follows: two signals sent before the handler
/// runs would reach it as one (signal deliveries coalesce), and the test would not see the second.
pub fn interrupt_handled() {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Waits until `done` holds or 60 s pass; bounded, so a handler that never acts makes the
/// test fail instead of hang.
fn pause_until(done: impl Fn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() && std::time::Instant::now() < until {
        std::thread::park_timeout(std::time::Duration::from_millis(5));
    }
}

fn hook() -> Option<&'static Hook> {
    static HOOK: OnceLock<Option<Hook>> = OnceLock::new();
    HOOK.get_or_init(|| {
        let at: Vec<u64> = std::env::var("TENANTFLOW_CRASH_AT")
            .ok()
            .map(|v| {
                v.split(',')
                    .filter_map(|n| n.trim().parse().ok())
                    .filter(|n| *n > 0)
                    .collect()
            })
            .unwrap_or_default();
        let log = std::env::var_os("TENANTFLOW_WRITE_LOG").and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
                .map(Mutex::new)
        });
        if at.is_empty() && log.is_none() {
            return None;
        }
        let signal = match std::env::var("TENANTFLOW_CRASH_SIGNAL").as_deref() {
            Ok("INT") => libc::SIGINT,
            Ok("TERM") => libc::SIGTERM,
            _ => libc::SIGKILL,
        };
        Some(Hook { at, signal, log })
    })
    .as_ref()
}

/// Counts one effectful write (`what` names it in the write log) and, at a configured point,
/// signals this process before the write happens.
pub fn before_write(what: &str) {
    let Some(hook) = hook() else {
        return;
    };
    let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(log) = &hook.log {
        if let Ok(mut f) = log.lock() {
            let _ = writeln!(f, "{n}\t{what}");
        }
    }
    if hook.at.contains(&n) {
        // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), hook.signal);
        }
        if hook.signal == libc::SIGKILL {
            // Delivery is immediate; never go on to the write.
            loop {
                std::thread::park();
            }
        }
        let index = hook.at.iter().position(|p| *p == n).unwrap_or(0) as u64;
        if (index as usize) + 1 < hook.at.len() {
            // Another interrupt follows: let the handler take this one first.
            pause_until(|| HANDLED.load(Ordering::SeqCst) > index);
        } else if index > 0 {
            // A repeated interrupt must end the process at once (exit 130). Its handler runs on
            // another thread; without this pause, a run that finishes its graceful stop quickly
            // could exit on its own first, and the test would not see the second signal act.
            pause_until(|| false);
        }
    }
}
