//! `StepError`: the one error type of every step, with stable ASL error names.

use serde::{Deserialize, Serialize};

/// Every failure a step can report. The ASL name (see [`StepError::asl_name`]) becomes the Lambda
/// `errorType`, so state machine `Retry`/`Catch` blocks match on it. Never rename a variant's ASL name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Bad input: event, manifest, tenant name, script checksum. Raised before any side effect.
    #[error("invalid input: {field}: {message}")]
    InvalidInput { field: String, message: String },
    /// Another run holds the tenant lock.
    #[error("tenant {tenant} is locked by {holder}")]
    Locked { tenant: String, holder: String },
    /// A resource is not ready yet (still creating, deleting, …); retry later.
    #[error("{resource} is not ready: {status}")]
    NotReady { resource: String, status: String },
    /// The active pointer changed since this run read it.
    #[error("active pointer of {tenant} moved: expected version {expected}, found {found}")]
    PointerMoved {
        tenant: String,
        expected: i64,
        found: i64,
    },
    /// Flyway (CodeBuild or the local runner) failed.
    #[error("migration failed: {0}")]
    MigrationFailed(String),
    /// The ECS deployment this run started ended FAILED.
    #[error("rollout failed: {0}")]
    RolloutFailed(String),
    /// Not enough RDS / snapshot / build quota to proceed.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The tenant holds a versioned script the release lacks: it is on a newer release, and
    /// tenantflow never downgrades.
    #[error("newer: {0}")]
    Newer(String),
    /// A resource that must exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// A resource exists but does not belong to this run (name clash, foreign tags, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// `recover` already settled this tenant for this run (the run was found dead): a later step
    /// of it, e.g. a redriven execution, must not act on the tenant.
    #[error("run {run} was aborted and {tenant} recovered: {action}")]
    RunAborted {
        tenant: String,
        run: String,
        action: String,
    },
    /// Throttling, 5xx, network: safe to retry.
    #[error("transient: {0}")]
    Transient(String),
    /// A failure the other variants do not cover (a bug or an unclassified service error).
    #[error("internal: {0}")]
    Internal(String),
}

impl StepError {
    /// Every ASL error name a step can raise, for definition checks.
    pub const ASL_NAMES: &'static [&'static str] = &[
        "Tenantflow.InvalidInput",
        "Tenantflow.Locked",
        "Tenantflow.NotReady",
        "Tenantflow.PointerMoved",
        "Tenantflow.MigrationFailed",
        "Tenantflow.RolloutFailed",
        "Tenantflow.QuotaExceeded",
        "Tenantflow.Newer",
        "Tenantflow.NotFound",
        "Tenantflow.Conflict",
        "Tenantflow.RunAborted",
        "Tenantflow.Transient",
        "Tenantflow.Internal",
    ];

    /// The stable name used as Lambda `errorType` and in ASL `ErrorEquals`.
    pub fn asl_name(&self) -> &'static str {
        match self {
            StepError::InvalidInput { .. } => "Tenantflow.InvalidInput",
            StepError::Locked { .. } => "Tenantflow.Locked",
            StepError::NotReady { .. } => "Tenantflow.NotReady",
            StepError::PointerMoved { .. } => "Tenantflow.PointerMoved",
            StepError::MigrationFailed(_) => "Tenantflow.MigrationFailed",
            StepError::RolloutFailed(_) => "Tenantflow.RolloutFailed",
            StepError::QuotaExceeded(_) => "Tenantflow.QuotaExceeded",
            StepError::Newer(_) => "Tenantflow.Newer",
            StepError::NotFound(_) => "Tenantflow.NotFound",
            StepError::Conflict(_) => "Tenantflow.Conflict",
            StepError::RunAborted { .. } => "Tenantflow.RunAborted",
            StepError::Transient(_) => "Tenantflow.Transient",
            StepError::Internal(_) => "Tenantflow.Internal",
        }
    }

    /// Shorthand for [`StepError::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StepError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The `Cause` Step Functions records when a step Lambda fails with this error: the Lambda
    /// error payload `{"errorType":…,"errorMessage":…}` as a JSON string
    /// ([`crate::cause::lambda_cause`]).
    pub fn lambda_cause(&self) -> String {
        crate::cause::lambda_cause(self.asl_name(), &self.to_string())
    }

    /// The `{Error, Cause}` pair as Step Functions records it when a step Lambda fails with this
    /// error (the cause is [`StepError::lambda_cause`]).
    pub fn to_info(&self) -> ErrorInfo {
        ErrorInfo {
            error: self.asl_name().to_string(),
            cause: self.lambda_cause(),
        }
    }
}

/// `{ "Error": …, "Cause": … }` as a `Catch` with `ResultPath` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl From<serde_json::Error> for StepError {
    fn from(e: serde_json::Error) -> Self {
        StepError::invalid("input", e.to_string())
    }
}

pub type StepResult<T> = Result<T, StepError>;
