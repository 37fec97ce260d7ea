//! The clock the local backend runs on: the engine's virtual clock during a run, or a manual
//! [`VirtualClock`] in tests. Resources become ready after `clock.sleep(simulated duration)`, so a
//! run takes no real waiting time and is deterministic.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    async fn sleep(&self, d: Duration);
}

/// Real time (for `--real-time` runs).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// A clock that moves only when told to: `advance` fires every sleeper whose deadline has passed,
/// in deadline order.
pub struct VirtualClock {
    inner: Mutex<VirtualInner>,
}

struct VirtualInner {
    now: DateTime<Utc>,
    seq: u64,
    sleepers: BTreeMap<(DateTime<Utc>, u64), oneshot::Sender<()>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(VirtualClock {
            inner: Mutex::new(VirtualInner {
                now: start,
                seq: 0,
                sleepers: BTreeMap::new(),
            }),
        })
    }

    /// Number of tasks sleeping on this clock.
    pub fn sleepers(&self) -> usize {
        self.inner.lock().map(|i| i.sleepers.len()).unwrap_or(0)
    }

    /// Moves time forward by `d`, waking every sleeper due by then.
    pub fn advance(&self, d: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let target = inner.now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        inner.now = target;
        let later = inner.sleepers.split_off(&(target, u64::MAX));
        let due = std::mem::replace(&mut inner.sleepers, later);
        drop(inner);
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }

    /// Jumps to the earliest pending deadline and wakes its sleepers; false when nobody sleeps.
    pub fn advance_to_next(&self) -> bool {
        let next = match self.inner.lock() {
            Ok(i) => i.sleepers.keys().next().map(|(t, _)| *t),
            Err(_) => None,
        };
        let Some(t) = next else { return false };
        let now = self.now();
        self.advance((t - now).to_std().unwrap_or_default());
        true
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner
            .lock()
            .map(|i| i.now)
            .unwrap_or_else(|p| p.into_inner().now)
    }

    async fn sleep(&self, d: Duration) {
        let rx = {
            let Ok(mut inner) = self.inner.lock() else {
                return;
            };
            if d.is_zero() {
                return;
            }
            let deadline =
                inner.now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            inner.seq += 1;
            let seq = inner.seq;
            let (tx, rx) = oneshot::channel();
            inner.sleepers.insert((deadline, seq), tx);
            rx
        };
        let _ = rx.await;
    }
}

/// A clock whose source can be swapped: real time until a run installs the engine's clock.
pub struct SwitchClock {
    inner: std::sync::RwLock<Arc<dyn Clock>>,
}

impl SwitchClock {
    pub fn new(initial: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(SwitchClock {
            inner: std::sync::RwLock::new(initial),
        })
    }
    pub fn set(&self, c: Arc<dyn Clock>) {
        if let Ok(mut g) = self.inner.write() {
            *g = c;
        }
    }
    fn get(&self) -> Arc<dyn Clock> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

#[async_trait]
impl Clock for SwitchClock {
    fn now(&self) -> DateTime<Utc> {
        self.get().now()
    }
    async fn sleep(&self, d: Duration) {
        let c = self.get();
        c.sleep(d).await
    }
}
