//! The shared `main` of every Lambda binary: tracing, the step's clients built once, the runtime
//! loop.
//!
//! Logging is the runtime's own setup (`lambda_runtime::tracing::init_default_subscriber`): the
//! level comes from `AWS_LAMBDA_LOG_LEVEL` (the function's `LoggingConfig.ApplicationLogLevel`),
//! else `RUST_LOG`, else INFO; the format is JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`
//! (`LoggingConfig.LogFormat`), text otherwise. Logs name the step, the request id and, on
//! failure, the ASL error name and message. They never contain the event payload (task tokens,
//! tenant data) or a secret: the runtime's one payload-carrying event (the raw invocation body,
//! at TRACE) is dropped by [`logs_payload`].

use crate::config::step_ports_from_env;
use lambda_runtime::tower::util::MapRequestLayer;
use lambda_runtime::tracing::subscriber::fmt::writer::{MakeWriter, MakeWriterExt};
use lambda_runtime::{
    layers::TracingLayer, service_fn, Diagnostic, LambdaEvent, LambdaInvocation, Runtime,
};
use serde_json::Value;
use std::sync::Arc;
use tenantflow_core::steps::{dispatch, Ports, StepName};
use tenantflow_core::StepError;
use tracing::Instrument;

/// The error type of a Lambda binary's `main`.
pub use lambda_runtime::Error;

/// The step a Lambda binary runs, fixed at compile time: [`run_step`] builds (and the binary
/// links) only the clients of the ports [`StepName::ports`] declares for it.
///
/// ```ignore
/// struct Snapshot;
/// impl LambdaStep for Snapshot {
///     const STEP: StepName = StepName::Snapshot;
/// }
/// ```
pub trait LambdaStep {
    const STEP: StepName;
}

/// A [`StepError`] as the Lambda runtime reports it: `errorType` is the stable ASL name that the
/// definitions' `Retry`/`Catch` match, `errorMessage` the error's text. (Both types are foreign
/// here, hence the newtype; `tenantflow-core` stays free of the Lambda runtime.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDiagnostic(pub StepError);

impl From<StepDiagnostic> for Diagnostic {
    fn from(StepDiagnostic(e): StepDiagnostic) -> Self {
        Diagnostic {
            error_type: e.asl_name().to_string(),
            error_message: e.to_string(),
        }
    }
}

impl From<StepError> for StepDiagnostic {
    fn from(e: StepError) -> Self {
        StepDiagnostic(e)
    }
}

/// True for a log event that carries an invocation payload: `lambda_runtime` logs the raw event
/// body at TRACE (target `lambda_runtime::layers::api_response`). Such events are never written,
/// whatever `AWS_LAMBDA_LOG_LEVEL` says.
pub fn logs_payload(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::TRACE && meta.target().starts_with("lambda_runtime")
}

/// `make` minus the events that carry a payload ([`logs_payload`]).
pub fn without_payloads<M>(make: M) -> impl for<'w> MakeWriter<'w> + Send + Sync + 'static
where
    M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    make.with_filter(|meta: &tracing::Metadata<'_>| !logs_payload(meta))
}

/// Initialises tracing with the runtime's own subscriber (see the module doc), on stdout minus
/// the payload-carrying events. Call once per process.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber_with_writer(without_payloads(std::io::stdout));
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

/// The whole `main` of step `S`'s Lambda binary.
pub async fn run_step<S: LambdaStep>() -> Result<(), Error> {
    let step = S::STEP;
    init_tracing();
    let ports = Arc::new(step_ports_from_env::<S>().await?);
    tracing::info!(step = step.as_str(), "tenantflow Lambda ready");
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let ports = Arc::clone(&ports);
        async move {
            let request_id = event.context.request_id.clone();
            let span = tracing::info_span!("invocation", step = step.as_str(), request_id);
            handle_invocation(step, &ports, event.payload)
                .instrument(span)
                .await
                .map_err(|e| Diagnostic::from(StepDiagnostic(e)))
        }
    });
    Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(MapRequestLayer::new(guard_not_json))
        .run()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_runtimes_raw_event_line_is_never_written_even_at_trace() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = lambda_runtime::tracing::subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(without_payloads(move || out.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // What lambda_runtime 1.5 logs for every invocation (layers/api_response.rs).
            tracing::trace!(
                target: "lambda_runtime::layers::api_response",
                body = r#"{"token":"secret-task-token"}"#,
                "raw JSON event received from Lambda"
            );
            tracing::trace!(target: "tenantflow_aws::lambda", "own trace line");
            tracing::info!(target: "lambda_runtime::runtime", "runtime info line");
        });
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        assert!(!text.contains("secret-task-token"), "{text}");
        assert!(text.contains("own trace line"), "{text}");
        assert!(text.contains("runtime info line"), "{text}");
    }

    /// Core writes a Lambda's `Cause` without the runtime: it must be what the runtime posts.
    #[test]
    fn cores_lambda_cause_is_the_runtimes_error_payload_byte_for_byte() {
        let e = StepError::NotReady {
            resource: "instance a".into(),
            status: "creating".into(),
        };
        assert_eq!(
            e.lambda_cause(),
            serde_json::to_string(&Diagnostic::from(StepDiagnostic(e))).unwrap()
        );
    }

    #[test]
    fn diagnostic_error_type_is_the_asl_name() {
        let d = Diagnostic::from(StepDiagnostic(StepError::NotReady {
            resource: "db".into(),
            status: "creating".into(),
        }));
        assert_eq!(d.error_type, "Tenantflow.NotReady");
        assert_eq!(d.error_message, "db is not ready: creating");
    }
}
