//! The local backend's errors.
//!
//! - [`LocalError`]: what the high-level local API (state directory, releases, deploy, status)
//!   reports to its callers (the CLI). It always names the file or directory concerned.
//! - [`StateDirProblem`] and [`ReleaseProblem`]: why a state directory or a release directory was
//!   refused.
//! - [`CopyError`] and [`UnreadableDatabase`] ([`crate::sqlite`]), [`HeavyError`]
//!   ([`crate::heavy`]), [`BuildError`] ([`crate::codebuild`]) and [`HealthError`]
//!   ([`crate::ecs`]): why a database copy or read, a heavy job, a build or a health check failed.
//!   Their text becomes what AWS would report: a resource's failure event, a build's message, a
//!   deployment's reason.
//!
//! The ports return `StepError` like every adapter; `sql_step_error` and `io_step_error`
//! classify local failures for them.
//!
//! Every variant keeps the typed error it stems from. A `LocalError` whose message already quotes
//! that error holds it in a `cause`, `reason` or `problem` field rather than returning it from
//! `source()`, because the CLI prints the whole source chain and would print it twice.

use crate::flyway::FlywayError;
use crate::layout::{FORMAT, MARKER};
use std::path::{Path, PathBuf};
use tenantflow_core::flyway::NameError;
use tenantflow_core::manifest::Strategy;
use tenantflow_core::names::{InstanceId, Namespace, SnapshotId};
use tenantflow_core::StepError;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The directory exists but is not a tenantflow state directory (or does not exist).
    #[error("{path}: not a tenantflow state directory ({reason}); create one with `tenantflow init --state DIR`")]
    NotAStateDir {
        path: PathBuf,
        reason: StateDirProblem,
    },
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
    #[error("invalid release: {file}: {problem}")]
    InvalidRelease {
        file: PathBuf,
        problem: ReleaseProblem,
    },
    /// A tenant database file is missing or not a SQLite database.
    #[error("{path}: tenant database is corrupt or missing: {cause}")]
    CorruptDatabase {
        path: PathBuf,
        cause: Box<CopyError>,
    },
    /// A Flyway migration failed (or its validation did).
    #[error("migration failed on {path}: {cause}")]
    Migration {
        path: PathBuf,
        cause: Box<FlywayError>,
    },
    /// A deploy refused before it changed anything.
    #[error("{0}")]
    Refused(DeployProblem),
    /// A step or port failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The release definition names a `${…}` substitution the local engine has no value for.
    #[error("engine: {0}")]
    Substitution(statemachine::SubstitutionError),
    /// The release definition is not a valid state machine.
    #[error("engine: {0}")]
    Definition(statemachine::DefinitionError),
    /// A JSON value in the state directory does not parse; `name` says which.
    #[error("{name}: {cause}")]
    InvalidJson {
        name: String,
        cause: serde_json::Error,
    },
    /// A value could not be written as JSON (`what` names it).
    #[error("serialize {what}: {cause}")]
    Serialize {
        what: &'static str,
        cause: serde_json::Error,
    },
    /// A metadata database of the state directory is missing or empty; it is not recreated.
    #[error(
        "{}: {what} of this state directory is {condition}. tenantflow does not recreate it empty: {consequence}. \
         Restore it from a backup, or start again in a new folder with `tenantflow init --state DIR`",
        .path.display()
    )]
    DamagedState {
        root: PathBuf,
        path: PathBuf,
        what: &'static str,
        condition: &'static str,
        consequence: &'static str,
    },
    /// The state directory cannot be written.
    #[error(
        "{}: the state directory is read-only ({cause}). tenantflow writes there even to read it \
         (SQLite keeps a shared-memory index next to each database); make it writable, or copy it \
         somewhere writable to inspect it",
        .path.display()
    )]
    ReadOnly {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Another command holds the state directory's lock (`state_lock`).
    #[error(
        "{}: the state directory is in use by another tenantflow command: {}. Wait for it to \
         finish, or pass --wait to wait for it",
        .path.display(),
        .holder.as_ref().map_or_else(|| "it has not said which yet".to_string(), |h| h.to_string())
    )]
    Busy {
        path: PathBuf,
        holder: Option<crate::state_lock::Holder>,
    },
    /// `create_tenant` for a generation that already exists.
    #[error("{path}: instance {id} already exists")]
    InstanceExists { path: PathBuf, id: InstanceId },
    #[error("no run {run} in {}; `tenantflow runs` lists the runs", .runs.display())]
    NoSuchRun { run: String, runs: PathBuf },
}

impl LocalError {
    /// True when the error was raised before anything in the state directory changed: bad input
    /// (a release, the options, the selection) or a state directory that cannot be used.
    pub fn changed_nothing(&self) -> bool {
        matches!(
            self,
            LocalError::Refused(_)
                | LocalError::InvalidRelease { .. }
                | LocalError::NotAStateDir { .. }
                | LocalError::DamagedState { .. }
                | LocalError::ReadOnly { .. }
                | LocalError::NoSuchRun { .. }
        )
    }

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
    pub(crate) fn release(file: &Path, problem: impl Into<ReleaseProblem>) -> Self {
        LocalError::InvalidRelease {
            file: file.to_path_buf(),
            problem: problem.into(),
        }
    }
    pub(crate) fn not_a_state_dir(path: &Path, reason: StateDirProblem) -> Self {
        LocalError::NotAStateDir {
            path: path.to_path_buf(),
            reason,
        }
    }
    pub(crate) fn serialize(what: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |cause| LocalError::Serialize { what, cause }
    }
}

/// Why a directory is not a usable state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateDirProblem {
    #[error("no such directory")]
    NoSuchDirectory,
    #[error("it is a file")]
    IsAFile,
    #[error("it is not empty and has no {MARKER}; refusing to use it")]
    NotEmpty,
    #[error("cannot read {}: {source}", .marker.display())]
    UnreadableMarker {
        marker: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid: {source}", .marker.display())]
    InvalidMarker {
        marker: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has format {found:?}, expected {FORMAT:?}", .marker.display())]
    WrongFormat { marker: PathBuf, found: String },
}

/// What is wrong with a release directory (the file is in [`LocalError::InvalidRelease`]).
#[derive(Debug, thiserror::Error)]
pub enum ReleaseProblem {
    #[error("not a directory")]
    NotADirectory,
    /// A FIFO, socket, device or broken link in the release folder: reading it would hang.
    #[error("is {kind}, not a regular file: a release folder holds only files; remove it")]
    NotARegularFile { kind: &'static str },
    #[error("cannot read the manifest ({source}); write one with `tenantflow release pack`")]
    UnreadableManifest { source: std::io::Error },
    /// The manifest is not JSON.
    #[error(transparent)]
    NotJson(serde_json::Error),
    /// The manifest breaks a rule, or a script's sha256 does not match.
    #[error(transparent)]
    Invalid(#[from] StepError),
    #[error("not a valid Flyway script name: {source}")]
    BadScriptName { source: NameError },
    #[error(
        "this script is not in manifest.json (extra script); run `tenantflow release pack` again"
    )]
    ExtraScript,
    #[error("script named in manifest.json is missing: {source}")]
    MissingScript { source: std::io::Error },
    /// The folder's `SHA256SUMS` disagrees with its manifest.
    #[error("{source}; run `tenantflow release pack` again")]
    StaleSha256Sums { source: StepError },
}

/// Why a deploy was refused before it changed anything (`deploy::preflight`).
#[derive(Debug, thiserror::Error)]
pub enum DeployProblem {
    /// An override breaks a rule, on its own or with the manifest (the core's field and message).
    #[error("{0}")]
    Options(StepError),
    #[error(
        "--source-snapshot is only for strategy promote, and this deploy's strategy is {}: drop \
         --source-snapshot, or add --strategy promote",
        strategy_name(*.strategy)
    )]
    SnapshotWithoutPromote { strategy: Strategy },
    #[error(
        "strategy promote restores a snapshot, and none is named: pass --source-snapshot \
         SNAPSHOT_ID (or set sourceSnapshot in manifest.json)"
    )]
    PromoteWithoutSnapshot,
    #[error(
        "source snapshot {0} does not exist in this state directory: name one of the snapshots in \
         rds/snapshots/"
    )]
    NoSuchSnapshot(SnapshotId),
    /// The manifest's explicit tenant list names a tenant that cannot be deployed to.
    #[error("{0}")]
    Selection(StepError),
    #[error("{}", no_tenants(.selection, .fleet, .skipped))]
    NoTenants {
        /// The manifest's `tenants` as JSON.
        selection: String,
        /// The deployable tenants of the state directory.
        fleet: Vec<String>,
        /// The tenants that cannot be deployed to, each with why.
        skipped: Vec<String>,
    },
    #[error(
        "release {release} is already published with different content ({}). A published \
         release is immutable: give this one a new release id (`release` in manifest.json, and \
         the folder name), then run `tenantflow release pack`",
        .differences.join(", ")
    )]
    ReleaseChanged {
        release: String,
        differences: Vec<String>,
    },
}

fn strategy_name(s: Strategy) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}"))
}

fn no_tenants(selection: &str, fleet: &[String], skipped: &[String]) -> String {
    if fleet.is_empty() && skipped.is_empty() {
        return "this state directory has no tenants: create a fleet with `tenantflow init`".into();
    }
    let mut found = format!("tenants: {}", list_or_none(fleet));
    if !skipped.is_empty() {
        found.push_str(&format!("; not deployable: {}", skipped.join(", ")));
    }
    format!(
        "the release's tenant selection {selection} matches no deployable tenant ({found}); fix \
         `tenants` in manifest.json"
    )
}

fn list_or_none(items: &[String]) -> String {
    const SHOWN: usize = 10;
    match items.len() {
        0 => "none".into(),
        n if n <= SHOWN => items.join(", "),
        n => format!("{}, … ({n} in all)", items[..SHOWN].join(", ")),
    }
}

/// A database file could not be copied (snapshot, restore, the benchmark's copies).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{}: file does not exist", .path.display())]
    Missing { path: PathBuf },
    #[error("{}: file is empty (0 bytes), not a tenant database", .path.display())]
    Empty { path: PathBuf },
    /// The source cannot be opened or read as a database.
    #[error("{}: {source}", .path.display())]
    Source {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("copy {} → {}: {source}", .src.display(), .dst.display())]
    Copy {
        src: PathBuf,
        dst: PathBuf,
        source: rusqlite::Error,
    },
    /// The copy ran as a heavy job that gave no result.
    #[error(transparent)]
    Heavy(#[from] HeavyError),
}

/// A database file that cannot be read (the caller names the file).
#[derive(Debug, thiserror::Error)]
pub enum UnreadableDatabase {
    #[error("file does not exist")]
    Missing,
    #[error("file is empty (0 bytes), not a tenant database")]
    Empty,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// A job on the heavy-work pool gave no result.
#[derive(Debug, thiserror::Error)]
pub enum HeavyError {
    #[error("a heavy job (copy, migration or health check) ended without a result: it panicked")]
    Lost,
    #[error("waiting for a heavy job failed: {source}")]
    Wait { source: tokio::task::JoinError },
}

/// Why a local migration build failed (its text is the build's message).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading the instance registry or the release bucket failed.
    #[error(transparent)]
    Port(#[from] StepError),
    #[error("DB instance {0} not found")]
    NoInstance(InstanceId),
    #[error("DB instance {id} is {status}")]
    NotAvailable { id: InstanceId, status: String },
    #[error("s3://{bucket}/{key} vanished")]
    Vanished { bucket: String, key: String },
    #[error("no migration scripts under s3://{bucket}/{prefix}")]
    NoScripts { bucket: String, prefix: String },
    /// StartBuild's source overrides do not name the release folder the build migrates with.
    #[error("build source: {0}")]
    Source(String),
    #[error(transparent)]
    Heavy(#[from] HeavyError),
    #[error(transparent)]
    Flyway(#[from] FlywayError),
    /// A rehearsal's health check against the migrated candidate failed.
    #[error("health check against the candidate {instance} failed: {source}")]
    HealthCheck {
        instance: InstanceId,
        source: rusqlite::Error,
    },
}

/// Why a local rollout is unhealthy (its text is the deployment's reason).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The service's namespace is not valid, or reading the pointer failed.
    #[error(transparent)]
    Port(#[from] StepError),
    #[error("{0} has no active pointer")]
    NoPointer(Namespace),
    #[error("active pointer of {ns} is not valid: {source}")]
    BadPointer {
        ns: Namespace,
        source: serde_json::Error,
    },
    #[error("{instance}: database file {} is missing", .file.display())]
    FileMissing { instance: String, file: PathBuf },
    #[error("{instance}: {source}")]
    Open {
        instance: String,
        source: rusqlite::Error,
    },
    #[error("health check failed on {instance}: {source}")]
    Failed {
        instance: String,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Heavy(#[from] HeavyError),
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
