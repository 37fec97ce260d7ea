//! Which retrier or catcher handles an error, and how long to wait before a retry.

use std::time::Duration;

use crate::error::{names, StatesError};
use crate::model::{Catcher, Retrier};

use super::Execution;

/// Does an `ErrorEquals` list match this error?
///
/// `States.ALL` matches everything except `States.Runtime` and `States.DataLimitExceeded`;
/// `States.TaskFailed` matches everything except `States.Timeout` (and those two);
/// `States.Runtime` and the engine's own `States.Stopped` are never retried or caught, even when
/// named.
pub(crate) fn matches(errors: &[String], e: &StatesError) -> bool {
    if e.error == names::RUNTIME || e.error == names::STOPPED {
        return false;
    }
    errors.iter().any(|want| {
        if *want == e.error {
            return true;
        }
        let terminal = e.error == names::DATA_LIMIT_EXCEEDED;
        match want.as_str() {
            names::ALL => !terminal,
            names::TASK_FAILED => !terminal && e.error != names::TIMEOUT,
            _ => false,
        }
    })
}

pub(crate) fn find_catcher<'a>(catchers: &'a [Catcher], e: &StatesError) -> Option<&'a Catcher> {
    catchers.iter().find(|c| matches(&c.errors, e))
}

/// Per-state retry bookkeeping: one attempt counter per retrier.
pub(crate) struct RetryState {
    counters: Vec<u32>,
    pub retry_count: u32,
}

impl RetryState {
    pub fn new(retriers: &[Retrier]) -> RetryState {
        RetryState {
            counters: vec![0; retriers.len()],
            retry_count: 0,
        }
    }

    /// The delay before the next attempt, or `None` when the error is not retried (the first
    /// matching retrier decides; an exhausted retrier does not fall through to later ones).
    pub fn next_delay(
        &mut self,
        retriers: &[Retrier],
        e: &StatesError,
        exec: &Execution,
    ) -> Option<Duration> {
        let i = retriers.iter().position(|r| matches(&r.errors, e))?;
        let r = &retriers[i];
        let n = self.counters[i];
        if n >= r.max_attempts {
            return None;
        }
        self.counters[i] += 1;
        self.retry_count += 1;
        let mut delay = r.interval_seconds * r.backoff_rate.powi(n as i32);
        if let Some(max) = r.max_delay_seconds {
            delay = delay.min(max);
        }
        if r.jitter_full {
            let u = (exec.random_u64() >> 11) as f64 / (1u64 << 53) as f64;
            delay *= u;
        }
        Some(crate::clock::secs(delay))
    }
}
