//! `LocalError`: what the high-level local API (state dir, releases, deploy, status) reports.
//!
//! The ports themselves return `StepError` like every adapter; `LocalError` is for callers of the
//! local API (the CLI), and always names the file or directory concerned.

use std::path::{Path, PathBuf};
use tenantflow_core::StepError;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The directory exists but is not a tenantflow state directory (or does not exist).
    #[error("{path}: not a tenantflow state directory ({reason}); create one with `tenantflow init --state DIR`")]
    NotAStateDir { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: sqlite: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A release directory or manifest is invalid; `file` names the offending file.
    #[error("invalid release: {file}: {message}")]
    InvalidRelease { file: PathBuf, message: String },
    /// A tenant database file is missing or not a SQLite database.
    #[error("{path}: tenant database is corrupt or missing: {message}")]
    CorruptDatabase { path: PathBuf, message: String },
    /// A Flyway migration failed (or its validation did).
    #[error("migration failed on {path}: {message}")]
    Migration { path: PathBuf, message: String },
    /// A step or port failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The state machine definitions or the engine failed.
    #[error("engine: {0}")]
    Engine(String),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

impl LocalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LocalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> Self {
        LocalError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn release(file: &Path, message: impl Into<String>) -> Self {
        LocalError::InvalidRelease {
            file: file.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Classifies a SQLite error for a port: busy/locked are transient, the rest internal.
pub(crate) fn sql_step_error(context: &str, e: rusqlite::Error) -> StepError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            StepError::Transient(format!("{context}: {e}"))
        }
        _ => StepError::Internal(format!("{context}: {e}")),
    }
}

/// An I/O error for a port: always internal (the local disk is not a flaky network).
pub(crate) fn io_step_error(path: &Path, e: std::io::Error) -> StepError {
    StepError::Internal(format!("{}: {e}", path.display()))
}
