//! Runs the definition on the engine with the local ports: the engine's virtual clock becomes the
//! ports' clock, task tokens go back to the engine, and events on the local bus go to `resume`.
//! History goes to `<state>/runs/<run>/history/`.

use super::spans::TenantSpans;
use crate::ports::LocalPorts;
use crate::runner::{EngineClock, LocalRunner};
use chrono::{DateTime, Utc};
use serde_json::Value;
use statemachine::{Definition, Engine, EngineConfig, ExecutionResult, Observer, Stop};
use std::sync::Arc;
use tenantflow_core::steps::{dispatch, StepName};

/// What an execution needs besides the definition.
pub(super) struct Execution<'a> {
    pub run: &'a str,
    pub input: Value,
    pub start: DateTime<Utc>,
    pub seed: u64,
    pub observer: Option<Arc<dyn Observer>>,
    pub stop: Stop,
}

/// The engine's result, and each tenant's span.
pub(super) struct Executed {
    pub result: ExecutionResult,
    pub spans: Arc<TenantSpans>,
}

/// Runs `definition` to its end; the run's recorded status is the execution's.
pub(super) async fn execute(
    ports: &LocalPorts,
    definition: &Definition,
    exec: Execution<'_>,
) -> Executed {
    let spans = Arc::new(TenantSpans::new(exec.observer));
    let config = EngineConfig {
        seed: exec.seed,
        real_time: false,
        start_time: Some(exec.start),
        object_store: Some(ports.layout.s3_dir()),
        history_dir: Some(ports.layout.run_dir(exec.run).join("history")),
        observer: Some(spans.clone()),
        stop: exec.stop,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Arc::new(LocalRunner::new(ports.clone())));
    ports.clock.set(Arc::new(EngineClock(engine.clock())));
    ports.workflows.connect(Some(Arc::new(engine.callbacks())));
    let resume_ports = ports.ports();
    ports.bus.subscribe(Some(Arc::new(move |event| {
        let p = resume_ports.clone();
        Box::pin(async move {
            if let Err(e) = dispatch(StepName::Resume, &p, event).await {
                tracing::warn!(error = %e, "resume failed on a local event");
            }
        })
    })));

    let result = engine.run(definition, exec.run, exec.input).await;

    ports.bus.subscribe(None);
    ports.workflows.connect(None);
    ports.workflows.set_status(exec.run, result.status.as_str());
    Executed { result, spans }
}
