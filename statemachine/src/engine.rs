//! The engine: configuration, its runtime thread, and `run`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::callbacks::{Callbacks, Registry};
use crate::clock::Clock;
use crate::definition::Definition;
use crate::exec;
use crate::history::Observer;
use crate::runner::TaskRunner;
use crate::stop::Stop;

#[derive(Clone)]
pub struct EngineConfig {
    pub seed: u64,
    /// Default false: virtual clock.
    pub real_time: bool,
    /// Virtual clock epoch; default is `Utc::now()` when the engine is created.
    pub start_time: Option<DateTime<Utc>>,
    /// Root of the local S3: objects at `<root>/<bucket>/<key>` (ItemReader, ResultWriter).
    pub object_store: Option<PathBuf>,
    /// If set, each execution (parent and each distributed child) writes `<dir>/<execution-name>.jsonl`.
    pub history_dir: Option<PathBuf>,
    /// Sees every history event of every execution.
    pub observer: Option<Arc<dyn Observer>>,
    pub region: String,
    pub account: String,
    /// Asks every execution to stop gracefully (see [`Stop`]).
    pub stop: Stop,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0,
            real_time: false,
            start_time: None,
            object_store: None,
            history_dir: None,
            observer: None,
            region: "local".into(),
            account: "000000000000".into(),
            stop: Stop::new(),
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("seed", &self.seed)
            .field("real_time", &self.real_time)
            .field("start_time", &self.start_time)
            .field("object_store", &self.object_store)
            .field("history_dir", &self.history_dir)
            .field("observer", &self.observer.is_some())
            .field("region", &self.region)
            .field("account", &self.account)
            .field("stop", &self.stop)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResult {
    pub execution_arn: String,
    pub name: String,
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// This execution plus all its distributed children (the billing total).
    pub state_transitions: u64,
    /// This execution only.
    pub history_events: u64,
    /// Max over this execution and every distributed child.
    pub max_history_events: u64,
    /// Sum over this execution and every distributed child.
    pub total_history_events: u64,
    /// Largest state input/output seen in any execution.
    pub max_payload_bytes: u64,
    pub child_executions: u64,
    pub started_at: DateTime<Utc>,
    pub stopped_at: DateTime<Utc>,
    /// On the engine's clock (virtual by default).
    pub duration_seconds: f64,
}

/// What every execution shares.
pub(crate) struct Shared {
    pub config: EngineConfig,
    pub runner: Arc<dyn TaskRunner>,
    pub clock: Clock,
    pub registry: Arc<Registry>,
    /// Distinguishes executions with the same name for seeding.
    pub seq: AtomicU64,
}

/// Stops the runtime thread when the last `Engine` handle goes.
struct RuntimeGuard {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs definitions. Owns a dedicated thread with a current-thread tokio runtime (paused
/// clock unless `real_time`); `run` may be awaited from any executor.
pub struct Engine {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    _guard: Arc<RuntimeGuard>,
}

static ENGINE_IDS: AtomicU64 = AtomicU64::new(1);

impl Engine {
    pub fn new(config: EngineConfig, runner: Arc<dyn TaskRunner>) -> Engine {
        let id = ENGINE_IDS.fetch_add(1, Ordering::Relaxed);
        let epoch = config.start_time.unwrap_or_else(Utc::now);
        let epoch = epoch
            - chrono::Duration::nanoseconds(epoch.timestamp_subsec_nanos() as i64 % 1_000_000);
        let clock = Clock::new(id, config.real_time, epoch);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let real_time = config.real_time;
        let thread_clock = clock.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sfn-engine-{id}"))
            .spawn(move || {
                let mut b = tokio::runtime::Builder::new_current_thread();
                b.enable_all();
                if !real_time {
                    b.start_paused(true);
                }
                let rt = match b.build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    thread_clock.attach(tokio::runtime::Handle::current());
                    let _ = handle_tx.send(Ok(tokio::runtime::Handle::current()));
                    let _ = stop_rx.await;
                });
            });
        let handle = match (spawned, handle_rx.recv()) {
            (Ok(_), Ok(Ok(h))) => h,
            // The thread could not start or build its runtime: fall back to a runtime owned
            // by a leaked thread-less builder is not possible, so this is fatal.
            (Err(e), _) => panic!("cannot start the engine thread: {e}"),
            (_, Ok(Err(e))) => panic!("cannot build the engine runtime: {e}"),
            (_, Err(e)) => panic!("the engine thread stopped early: {e}"),
        };
        Engine {
            shared: Arc::new(Shared {
                config,
                runner,
                clock,
                registry: Arc::new(Registry::default()),
                seq: AtomicU64::new(0),
            }),
            handle,
            _guard: Arc::new(RuntimeGuard {
                stop: Some(stop_tx),
            }),
        }
    }

    pub fn callbacks(&self) -> Callbacks {
        Callbacks {
            registry: self.shared.registry.clone(),
        }
    }

    pub fn clock(&self) -> Clock {
        self.shared.clock.clone()
    }

    /// Runs one execution to completion and reports it.
    pub async fn run(
        &self,
        def: &Definition,
        execution_name: &str,
        input: Value,
    ) -> ExecutionResult {
        let shared = self.shared.clone();
        let def = def.clone();
        let name = execution_name.to_string();
        let fut = async move { exec::run_top(shared, def, name, input).await };
        match self.handle.spawn(fut).await {
            Ok(r) => r,
            Err(e) => {
                let now = self.shared.clock.now();
                ExecutionResult {
                    execution_arn: String::new(),
                    name: execution_name.to_string(),
                    status: ExecutionStatus::Aborted,
                    output: None,
                    error: Some("States.Runtime".into()),
                    cause: Some(format!("the execution was aborted: {e}")),
                    state_transitions: 0,
                    history_events: 0,
                    max_history_events: 0,
                    total_history_events: 0,
                    max_payload_bytes: 0,
                    child_executions: 0,
                    started_at: now,
                    stopped_at: now,
                    duration_seconds: 0.0,
                }
            }
        }
    }
}
