//! Following a run until it ends: `status --watch` and `release push --wait`.
//!
//! - [`watch`] polls [`status`] every interval and hands each reading to the caller (the CLI
//!   redraws its bars from it) until the run is no longer RUNNING, then returns the final status.
//!   Each poll reads the run's Map counts and the records table, never the child executions.
//! - [`await_start`] waits for the execution the trigger starts after a push, by its derived
//!   name; if none appears within the timeout the error says what to check.
//!
//! The wait between polls is a [`Sleeper`], so tests run the loop in virtual time. The time
//! waited is the sum of the sleeps asked for, never read from a clock.

use super::runs::{status, RunStatus};
use super::{Ops, OpsError, OpsResult};
use async_trait::async_trait;
use std::time::Duration;
use tenantflow_core::ports::Workflows;

/// Waits between two polls.
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, d: Duration);
}

/// Real time: tokio's timer.
pub struct RealTime;

#[async_trait]
impl Sleeper for RealTime {
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// How often to poll, and how long `await_start` waits for the run to appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    pub interval: Duration,
    pub start_timeout: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            interval: Duration::from_secs(10),
            start_timeout: Duration::from_secs(120),
        }
    }
}

/// Polls `run` (a name or ARN; `None`: the newest, fixed at the first poll) until it ends.
/// `on_poll` sees every reading, the last one included; the last one is returned.
pub async fn watch(
    ops: &Ops,
    run: Option<&str>,
    interval: Duration,
    sleeper: &dyn Sleeper,
    on_poll: &mut (dyn FnMut(&RunStatus) + Send),
) -> OpsResult<RunStatus> {
    let mut st = status(ops, run).await?;
    let arn = st.run.execution_arn.clone();
    loop {
        on_poll(&st);
        if st.run.status != "RUNNING" {
            return Ok(st);
        }
        sleeper.sleep(interval).await;
        st = status(ops, Some(&arn)).await?;
    }
}

/// Waits until execution `arn` (the one the trigger starts for `manifest_key`) exists; returns
/// its status then. Times out with what to check: the upload event's path to the trigger.
pub async fn await_start(
    ops: &Ops,
    arn: &str,
    manifest_key: &str,
    polling: Polling,
    sleeper: &dyn Sleeper,
) -> OpsResult<String> {
    let workflows = ops.workflows();
    let mut waited = Duration::ZERO;
    loop {
        if let Some(s) = workflows.execution_status(arn).await? {
            return Ok(s);
        }
        if waited >= polling.start_timeout {
            return Err(OpsError::Timeout(format!(
                "no run {arn} within {}s of the upload of s3://{}/{manifest_key}. The trigger \
                 starts it from S3's Object Created event: check that the bucket sends events to \
                 EventBridge, that the stack's ReleaseUploadedRule (releases/*/manifest.json) is \
                 ENABLED and targets the trigger function, the stack's EventsDeadLetterQueue for \
                 undelivered events, and the trigger function's logs and errors; once it started, \
                 `tenantflow aws status {}` follows it",
                waited.as_secs(),
                ops.stack.bucket,
                arn.rsplit(':').next().unwrap_or(arn),
            )));
        }
        sleeper.sleep(polling.interval).await;
        waited += polling.interval;
    }
}
