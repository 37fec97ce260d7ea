//! The shared `main` of every Lambda binary: tracing, clients built once, the runtime loop.
//!
//! Logs name the step, the request id and, on failure, the ASL error name and message. They never
//! contain the event payload (task tokens, tenant data) or a secret.

use crate::config::ports_from_env;
use lambda_runtime::tower::util::MapRequestLayer;
use lambda_runtime::{
    layers::TracingLayer, service_fn, Diagnostic, LambdaEvent, LambdaInvocation, Runtime,
};
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
        Ok(out) => {
            tracing::info!(step = step.as_str(), "step succeeded");
            if step == StepName::Janitor {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                let ns = ports.settings.namespace.as_deref();
                if let Some(line) = crate::metrics::janitor_metric(out, ns, now_ms) {
                    // EMF goes to stdout on its own line, outside the tracing formatter.
                    println!("{line}");
                }
            }
        }
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

/// Key of the stand-in payload for an invocation body that is not JSON at all.
const NOT_JSON: &str = "$tenantflow:notJson";

/// The Lambda API rejects non-JSON payloads itself, but a local emulator may not; the runtime
/// would then fail the invocation with its own, non-ASL error type. This swaps such a body for a
/// stand-in that [`handle_invocation`] answers with `Tenantflow.InvalidInput`.
fn guard_not_json(mut inv: LambdaInvocation) -> LambdaInvocation {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&inv.body) {
        let stand_in = serde_json::json!({ NOT_JSON: e.to_string() });
        inv.body = serde_json::to_vec(&stand_in).unwrap_or_default().into();
    }
    inv
}

/// [`handle`] for one runtime invocation (recognises the not-JSON stand-in).
pub async fn handle_invocation(
    step: StepName,
    ports: &Ports,
    payload: Value,
) -> Result<Value, StepError> {
    if let Some(obj) = payload.as_object() {
        if let (1, Some(e)) = (obj.len(), obj.get(NOT_JSON)) {
            let e = e.as_str().unwrap_or("");
            return Err(StepError::invalid("input", format!("not JSON: {e}")));
        }
    }
    handle(step, ports, payload).await
}

/// The whole `main` of a step's Lambda binary.
pub async fn run_step(step: StepName) -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let ports = Arc::new(ports_from_env().await?);
    tracing::info!(step = step.as_str(), "tenantflow Lambda ready");
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let ports = Arc::clone(&ports);
        async move {
            let request_id = event.context.request_id.clone();
            let span = tracing::info_span!("invocation", step = step.as_str(), request_id);
            handle_invocation(step, &ports, event.payload)
                .instrument(span)
                .await
                .map_err(Diagnostic::from)
        }
    });
    Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(MapRequestLayer::new(guard_not_json))
        .run()
        .await
}
