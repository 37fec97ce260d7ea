//! A graceful stop: asked for from any thread, it keeps every execution of the engine from
//! entering another state, while what is in flight finishes.
//!
//! After [`Stop::request`]:
//! - no execution (top level, branch, iteration or distributed child) enters a new state;
//! - a Task attempt already running finishes (a `.waitForTaskToken` attempt waits for its
//!   callback or its timeout), but is not retried, and its Catch leads nowhere;
//! - a Wait state, a retry interval or a Map's retry interval ends at once;
//! - a Distributed Map starts no further child executions and waits for the running ones;
//! - each execution then ends `ABORTED` with error [`crate::names::STOPPED`], which no Retry or
//!   Catch matches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Clone + Send + Sync handle; every clone stops the same engine.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    requested: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks every execution to stop (idempotent).
    pub fn request(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Returns once a stop is requested.
    pub async fn requested(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("requested", &self.is_requested())
            .finish()
    }
}
