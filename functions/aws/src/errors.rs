//! Classifying SDK errors into [`StepError`].
//!
//! Each adapter first matches the *typed* variants of its operation's error enum (e.g.
//! `CreateDBSnapshotError::DbSnapshotAlreadyExistsFault`) and handles them where it knows what they
//! mean (reuse, `None`, `NotFound`, …). Everything else comes here, to [`classify`]:
//!
//! - timeouts, I/O dispatch failures and unparseable responses → `Transient`;
//! - a service error with an HTTP 5xx status, or one the SDK itself models as retryable
//!   (`ProvideErrorKind::retryable_error_kind`) → `Transient`;
//! - throttling → `Transient`. Most services (RDS, ECS, CodeBuild, …) do not model throttling as a
//!   variant: it arrives as `Unhandled` with an error *code* such as `Throttling`. There we use the
//!   SDK's own retry classification table, [`aws_runtime::retries::classifiers::THROTTLING_ERRORS`]
//!   and `TRANSIENT_ERRORS`, matched against `ProvideErrorMetadata::code()` — the protocol-level
//!   error code, which is exactly what the SDK's adaptive retry already used before giving up.
//!   Never the human-readable message;
//! - everything else → `Internal`, with the operation name and error code.
//!
//! Messages built here hold the operation name, the error code and the service's message. Services
//! never echo a secret value in an error, so these strings are safe to log and return.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ProvideErrorKind;
use std::error::Error as StdError;
use tenantflow_core::StepError;

/// The SDK error type every adapter operation returns.
pub(crate) type Sdk<E> = SdkError<E, HttpResponse>;

/// True when a service error is throttling or transient by the SDK's own classification.
pub(crate) fn is_retryable_service_error<E>(err: &E, status: Option<u16>) -> bool
where
    E: ProvideErrorMetadata + ProvideErrorKind,
{
    if status.is_some_and(|s| (500..600).contains(&s)) {
        return true;
    }
    if err.retryable_error_kind().is_some() {
        return true;
    }
    match ProvideErrorMetadata::code(err) {
        Some(code) => THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code),
        None => false,
    }
}

/// Classifies an error no typed variant of `op` handled (see the module doc).
pub(crate) fn classify<E>(op: &str, err: Sdk<E>) -> StepError
where
    E: ProvideErrorMetadata + ProvideErrorKind + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StepError::Transient(format!("{op}: {}", DisplayErrorContext(&err)))
        }
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            StepError::Transient(format!("{op}: {}", DisplayErrorContext(&err)))
        }
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = ctx.raw().status().as_u16();
            let code = ProvideErrorMetadata::code(e).unwrap_or("Unknown");
            let message = ProvideErrorMetadata::message(e).unwrap_or("");
            let text = format!("{op}: {code} (HTTP {status}): {message}");
            if is_retryable_service_error(e, Some(status)) {
                StepError::Transient(text)
            } else {
                StepError::Internal(text)
            }
        }
        // Construction failures, missing credentials/region (dispatch "other"/"user"): not
        // something a retry fixes.
        _ => StepError::Internal(format!("{op}: {}", DisplayErrorContext(&err))),
    }
}

/// `"<op>: <code>: <message>"` for a typed service error the adapter maps itself.
pub(crate) fn describe<E: ProvideErrorMetadata>(op: &str, e: &E) -> String {
    format!(
        "{op}: {}: {}",
        e.code().unwrap_or("Unknown"),
        e.message().unwrap_or("")
    )
}

/// The typed service error inside `err`, if it is one.
pub(crate) fn service<E>(err: &Sdk<E>) -> Option<&E> {
    err.as_service_error()
}
