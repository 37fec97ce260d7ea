//! Error types of the public API.

use std::fmt;

/// One problem found while parsing or validating a definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationError {
    /// Where the problem is, e.g. `States.Deploy.Branches[0].States.Snapshot`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A definition could not be parsed or failed validation; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    pub errors: Vec<ValidationError>,
}

impl DefinitionError {
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        DefinitionError {
            errors: vec![ValidationError {
                path: path.into(),
                message: message.into(),
            }],
        }
    }

    pub fn errors(&self) -> &[ValidationError] {
        &self.errors
    }
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid state machine definition:")?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// `${Name}` placeholders without a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown definition substitution(s): {}", .unknown.join(", "))]
pub struct SubstitutionError {
    pub unknown: Vec<String>,
}

/// Errors of SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat, named like AWS's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("TaskDoesNotExist: the task for this token is no longer open")]
    TaskDoesNotExist,
    #[error("InvalidToken: the token is not valid")]
    InvalidToken,
    #[error("TaskTimedOut: the task for this token has timed out")]
    TaskTimedOut,
}

/// A runtime error inside an execution: an ASL error name and a cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatesError {
    pub error: String,
    pub cause: String,
}

impl StatesError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        StatesError {
            error: error.into(),
            cause: cause.into(),
        }
    }
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }
    pub fn stopped() -> Self {
        Self::new(
            names::STOPPED,
            "The execution was stopped: a stop was requested, so no further state was entered",
        )
    }

    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new(names::INTRINSIC_FAILURE, cause)
    }
}

/// Predefined error names.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const EXCEED_TOLERATED: &str = "States.ExceedToleratedFailureThreshold";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// Local engine only: the execution ended because a [`crate::Stop`] was requested. Never
    /// retried or caught; the execution's status is `ABORTED`.
    pub const STOPPED: &str = "States.Stopped";
}
