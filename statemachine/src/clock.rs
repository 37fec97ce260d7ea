//! The engine's clock: virtual by default, real on request.
//!
//! Virtual time is tokio's paused clock on the engine's own current-thread runtime: time stands
//! still while any task on that runtime can make progress, and jumps to the next timer only when
//! every task is blocked on a timer or a callback (tokio's auto-advance; it also waits while a
//! `spawn_blocking` job is running). Timers therefore fire in virtual-time order.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::runtime::Handle;

thread_local! {
    /// Id of the engine whose runtime this thread drives, 0 elsewhere.
    static ENGINE_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// Clone + Send + Sync handle on the engine's clock.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

struct ClockInner {
    engine_id: u64,
    real_time: bool,
    epoch: DateTime<Utc>,
    base_std: std::time::Instant,
    base_tokio: OnceLock<tokio::time::Instant>,
    /// Last virtual reading in ms since the epoch, for readers on other threads.
    last_ms: AtomicI64,
    handle: OnceLock<Handle>,
}

impl Clock {
    pub(crate) fn new(engine_id: u64, real_time: bool, epoch: DateTime<Utc>) -> Clock {
        Clock {
            inner: Arc::new(ClockInner {
                engine_id,
                real_time,
                epoch,
                base_std: std::time::Instant::now(),
                base_tokio: OnceLock::new(),
                last_ms: AtomicI64::new(0),
                handle: OnceLock::new(),
            }),
        }
    }

    /// Called on the engine thread once its runtime runs.
    pub(crate) fn attach(&self, handle: Handle) {
        ENGINE_THREAD.with(|c| c.set(self.inner.engine_id));
        let _ = self.inner.base_tokio.set(tokio::time::Instant::now());
        let _ = self.inner.handle.set(handle);
    }

    fn on_engine_thread(&self) -> bool {
        ENGINE_THREAD.with(|c| c.get()) == self.inner.engine_id
    }

    pub fn is_virtual(&self) -> bool {
        !self.inner.real_time
    }

    /// Current time on this clock, to the millisecond.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed_ms = if self.inner.real_time {
            self.inner.base_std.elapsed().as_millis() as i64
        } else if let (true, Some(base)) = (self.on_engine_thread(), self.inner.base_tokio.get()) {
            let ms = tokio::time::Instant::now()
                .saturating_duration_since(*base)
                .as_millis() as i64;
            self.inner.last_ms.fetch_max(ms, Ordering::Relaxed);
            ms
        } else {
            self.inner.last_ms.load(Ordering::Relaxed)
        };
        self.inner.epoch + chrono::Duration::milliseconds(elapsed_ms)
    }

    /// Sleeps on this clock. From a task on the engine's runtime (the executor, a TaskRunner,
    /// anything they `tokio::spawn`) this is a plain timer; from elsewhere it is forwarded to the
    /// engine's runtime.
    pub async fn sleep(&self, d: Duration) {
        if self.on_engine_thread() || self.inner.handle.get().is_none() {
            tokio::time::sleep(d).await;
        } else if let Some(h) = self.inner.handle.get() {
            // The timer must be created on the engine's runtime, not the caller's.
            // and read there afterwards so `now()` elsewhere sees the new time.
            let clock = self.clone();
            let _ = h
                .spawn(async move {
                    tokio::time::sleep(d).await;
                    clock.now()
                })
                .await;
        }
    }

    /// Sleeps until `t` on this clock (returns at once if `t` is past).
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        let delta = t - self.now();
        if let Ok(d) = delta.to_std() {
            self.sleep(d).await;
        }
    }
}

/// Seconds as a Duration, clamped to something tokio can represent.
pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 3.0e9))
}
