//! The shared `main` of every Lambda binary: tracing, clients built once, the runtime loop.
//!
//! Logs name the step, the request id and, on failure, the ASL error name and message. They never
//! contain the event payload (task tokens, tenant data) or a secret.

use crate::config::ports_from_env;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use tenantflow_core::steps::{dispatch, Ports, StepName};
use tenantflow_core::StepError;
use tracing::Instrument;

/// Initialises tracing: JSON lines on Lambda (`AWS_LAMBDA_FUNCTION_NAME` set), plain text
/// elsewhere. `RUST_LOG` filters; the default is `info`. Safe to call twice.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Runs `step` on one JSON payload. The one function the runtime loop and the tests call.
pub async fn handle(step: StepName, ports: &Ports, input: Value) -> Result<Value, StepError> {
    let res = dispatch(step, ports, input).await;
    match &res {
        Ok(_) => tracing::info!(step = step.as_str(), "step succeeded"),
        Err(e) => tracing::warn!(
            step = step.as_str(),
            error_type = e.asl_name(),
            error = %e,
            "step failed"
        ),
    }
    res
}

/// Like [`handle`], from raw bytes: input that is not JSON at all is `Tenantflow.InvalidInput`.
pub async fn handle_bytes(
    step: StepName,
    ports: &Ports,
    payload: &[u8],
) -> Result<Value, StepError> {
    let input: Value = serde_json::from_slice(payload)
        .map_err(|e| StepError::invalid("input", format!("not JSON: {e}")))?;
    handle(step, ports, input).await
}

/// The whole `main` of a step's Lambda binary.
pub async fn run_step(step: StepName) -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let ports = Arc::new(ports_from_env().await?);
    tracing::info!(step = step.as_str(), "tenantflow Lambda ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let ports = Arc::clone(&ports);
        async move {
            let request_id = event.context.request_id.clone();
            let span = tracing::info_span!("invocation", step = step.as_str(), request_id);
            handle(step, &ports, event.payload)
                .instrument(span)
                .await
                .map_err(Diagnostic::from)
        }
    }))
    .await
}
