//! The state directory layout (docs/design.md §7, a public contract) and the local settings file.
//!
//! ```text
//! <state>/tenantflow-state.json              marker + local settings (quota limits, simulated durations)
//! <state>/rds/instances/<instance-id>.sqlite one "DB instance" = one SQLite file
//! <state>/rds/snapshots/<snapshot-id>.sqlite
//! <state>/rds/registry.sqlite                instance/snapshot metadata: status, tags, deletion protection
//! <state>/ssm.sqlite                         parameter_versions(name, version, value, modified_at):
//!                                            one parameter per tenant, the active pointer
//! <state>/records.sqlite                     tenant_records (lock + run journal) and wait_tokens
//! <state>/s3/<bucket>/<key>
//! <state>/secrets.json                       {"<secret id>": "<value>"}
//! <state>/ecs/registry.sqlite                services and their deployments
//! <state>/codebuild/builds.sqlite            migration builds
//! <state>/events.jsonl                       every event put on the local EventBridge bus
//! <state>/runs/<run-name>/…                  request, history and report of each local run
//! <state>/tenantflow.lock                    one command at a time (`state_lock`): empty unless held
//! ```

use crate::error::{LocalError, StateDirProblem};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Name of the marker file that makes a directory a state directory.
pub const MARKER: &str = "tenantflow-state.json";
/// Name of the file commands lock so that one runs at a time ([`crate::state_lock`]).
pub const LOCK_FILE: &str = "tenantflow.lock";
/// Format tag written into the marker.
pub const FORMAT: &str = "tenantflow-local/1";
/// The local release bucket (`${ReleaseBucket}`).
pub const RELEASE_BUCKET: &str = "tenantflow-releases";
/// The local CodeBuild project (`${MigrationProjectName}`).
pub const MIGRATION_PROJECT: &str = "tenantflow-migrate";

/// Quota limits of the local "account". Generous by default, and `tenantflow init` sizes them to
/// the fleet ([`Limits::for_fleet`]); tests lower them to hit QuotaExceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub instances: u32,
    pub snapshots: u32,
    pub builds: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            instances: 1000,
            snapshots: 1000,
            builds: 1000,
        }
    }
}

impl Limits {
    /// Limits sized to a fleet of `tenants`: the default headroom on top of what the fleet holds
    /// at rest, i.e. one instance per tenant and [`SNAPSHOTS_PER_TENANT`] manual snapshots per
    /// tenant (the default `snapshotRetention` of 3 kept for good, plus the one a run makes).
    /// A fleet of 1,000 on the flat defaults would leave no instance free for a deploy.
    pub fn for_fleet(tenants: usize) -> Limits {
        let d = Limits::default();
        let n = u32::try_from(tenants).unwrap_or(u32::MAX);
        Limits {
            instances: d.instances.saturating_add(n),
            snapshots: d
                .snapshots
                .saturating_add(n.saturating_mul(SNAPSHOTS_PER_TENANT)),
            builds: d.builds,
        }
    }

    /// Each limit the larger of the two.
    pub fn at_least(self, other: Limits) -> Limits {
        Limits {
            instances: self.instances.max(other.instances),
            snapshots: self.snapshots.max(other.snapshots),
            builds: self.builds.max(other.builds),
        }
    }
}

/// Manual snapshots a tenant holds at steady state, by [`Limits::for_fleet`]'s sizing: the default
/// `snapshotRetention` (3) plus the one a run in flight makes.
pub const SNAPSHOTS_PER_TENANT: u32 = 4;

/// How long local resources take to become ready, in simulated (virtual-clock) seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    pub snapshot_seconds: u64,
    pub restore_seconds: u64,
    pub rollout_seconds: u64,
    pub build_seconds: u64,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            snapshot_seconds: 300,
            restore_seconds: 600,
            rollout_seconds: 240,
            build_seconds: 120,
        }
    }
}

/// Contents of the marker file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateConfig {
    pub format: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub durations: Durations,
    /// A simulation (`tenantflow plan`'s throw-away copy of a fleet): snapshots, restores,
    /// migrations and health checks take their simulated time but do no work, and succeed.
    /// Never set in a user's state directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulate: bool,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            format: FORMAT.to_string(),
            limits: Limits::default(),
            durations: Durations::default(),
            simulate: false,
        }
    }
}

/// Paths inside one state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn marker(&self) -> PathBuf {
        self.root.join(MARKER)
    }
    pub fn instances_dir(&self) -> PathBuf {
        self.root.join("rds").join("instances")
    }
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("rds").join("snapshots")
    }
    pub fn instance_file(&self, id: &str) -> PathBuf {
        self.instances_dir().join(format!("{id}.sqlite"))
    }
    pub fn snapshot_file(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{id}.sqlite"))
    }
    pub fn rds_registry(&self) -> PathBuf {
        self.root.join("rds").join("registry.sqlite")
    }
    pub fn ssm(&self) -> PathBuf {
        self.root.join("ssm.sqlite")
    }
    /// The `Records` store: tenant records (lock + journal) and wait tokens.
    pub fn records(&self) -> PathBuf {
        self.root.join("records.sqlite")
    }
    pub fn s3_dir(&self) -> PathBuf {
        self.root.join("s3")
    }
    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets.json")
    }
    pub fn ecs_registry(&self) -> PathBuf {
        self.root.join("ecs").join("registry.sqlite")
    }
    pub fn builds(&self) -> PathBuf {
        self.root.join("codebuild").join("builds.sqlite")
    }
    pub fn events_log(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }
    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.runs_dir().join(run)
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// Checks that `init` may create a state directory here: the folder is missing, empty (a
    /// lock file aside) or already a state directory. Writes nothing.
    pub fn check_creatable(&self) -> Result<(), LocalError> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(LocalError::not_a_state_dir(
                &self.root,
                StateDirProblem::IsAFile,
            ));
        }
        if !self.root.is_dir() || self.marker().exists() {
            return Ok(());
        }
        let entries = std::fs::read_dir(&self.root).map_err(|e| LocalError::io(&self.root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LocalError::io(&self.root, e))?;
            if entry.file_name() != LOCK_FILE {
                return Err(LocalError::not_a_state_dir(
                    &self.root,
                    StateDirProblem::NotEmpty,
                ));
            }
        }
        Ok(())
    }

    /// Creates the directory skeleton and the marker (keeps an existing marker's settings).
    pub fn create(&self) -> Result<StateConfig, LocalError> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(LocalError::not_a_state_dir(
                &self.root,
                StateDirProblem::IsAFile,
            ));
        }
        if self.root.is_dir() {
            self.check_writable()?;
        }
        if self.marker().exists() {
            let config = self.read_config()?;
            self.check_databases()?;
            return Ok(config);
        }
        self.check_creatable()?;
        for d in [
            self.instances_dir(),
            self.snapshots_dir(),
            self.s3_dir().join(RELEASE_BUCKET),
            self.root.join("ecs"),
            self.root.join("codebuild"),
            self.runs_dir(),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| LocalError::io(&d, e))?;
        }
        let config = StateConfig::default();
        self.write_config(&config)?;
        Ok(config)
    }

    /// Checks that the metadata databases a state directory has from its creation on are there
    /// and not empty. Opening one creates it, so one that was deleted or emptied would otherwise
    /// come back empty, and what it recorded would silently be gone.
    pub fn check_databases(&self) -> Result<(), LocalError> {
        let databases = [
            (
                self.ssm(),
                "the parameter store",
                "every tenant's active pointer would be gone, and every tenant database would look like an orphan",
            ),
            (
                self.rds_registry(),
                "the registry of instances and snapshots",
                "every tenant database would look unregistered, that is orphaned",
            ),
            (
                self.ecs_registry(),
                "the registry of services",
                "every tenant's service would be gone, and every rollout would fail",
            ),
        ];
        for (path, what, consequence) in databases {
            let condition = match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
                Err(e) => return Err(LocalError::io(&path, e)),
                Ok(m) if m.len() == 0 && !has_wal_content(&path) => "empty",
                Ok(_) => continue,
            };
            return Err(LocalError::DamagedState {
                root: self.root.clone(),
                path,
                what,
                condition,
                consequence,
            });
        }
        Ok(())
    }

    /// Checks that the state directory can be written: a probe file is created and removed.
    /// Every command writes there (SQLite keeps a shared-memory index next to each database).
    pub fn check_writable(&self) -> Result<(), LocalError> {
        let probe = tmp_path(&self.root.join(".write-probe"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                Ok(())
            }
            Err(cause)
                if matches!(
                    cause.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                Err(LocalError::ReadOnly {
                    path: self.root.clone(),
                    cause,
                })
            }
            Err(e) => Err(LocalError::io(&self.root, e)),
        }
    }

    pub fn read_config(&self) -> Result<StateConfig, LocalError> {
        let marker = self.marker();
        let text = std::fs::read_to_string(&marker).map_err(|source| {
            LocalError::not_a_state_dir(
                &self.root,
                StateDirProblem::UnreadableMarker {
                    marker: marker.clone(),
                    source,
                },
            )
        })?;
        let config: StateConfig = serde_json::from_str(&text).map_err(|source| {
            LocalError::not_a_state_dir(
                &self.root,
                StateDirProblem::InvalidMarker {
                    marker: marker.clone(),
                    source,
                },
            )
        })?;
        if config.format != FORMAT {
            return Err(LocalError::not_a_state_dir(
                &self.root,
                StateDirProblem::WrongFormat {
                    marker,
                    found: config.format,
                },
            ));
        }
        Ok(config)
    }

    pub fn write_config(&self, config: &StateConfig) -> Result<(), LocalError> {
        let marker = self.marker();
        let text = serde_json::to_string_pretty(config).map_err(LocalError::serialize("config"))?;
        write_atomic(&marker, text.as_bytes()).map_err(|e| LocalError::io(&marker, e))
    }
}

/// True when the WAL file next to a database holds something (its content is the database's
/// until a checkpoint, so a 0-byte main file is then not empty).
fn has_wal_content(db: &Path) -> bool {
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

/// Writes `bytes` to `path` via a temporary file and a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = tmp_path(path);
    crate::crash::before_write(&format!("write {}", path.display()));
    std::fs::write(&tmp, bytes)?;
    crate::crash::before_write(&format!("rename to {}", path.display()));
    std::fs::rename(&tmp, path)
}

/// `<path>.tmp-<pid>-<n>`: a sibling temporary name unique within this process.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fleet of 1,000 on the flat defaults left no instance free; sized limits keep the default
    /// headroom on top of what the fleet holds at rest, and never shrink.
    #[test]
    fn limits_follow_the_fleet() {
        let d = Limits::default();
        let l = Limits::for_fleet(1000);
        assert_eq!(l.instances - 1000, d.instances);
        assert_eq!(l.snapshots - 1000 * SNAPSHOTS_PER_TENANT, d.snapshots);
        assert_eq!(l.builds, d.builds);
        assert_eq!(Limits::for_fleet(0), d);
        let raised = Limits {
            instances: 50_000,
            ..Limits::default()
        };
        assert_eq!(raised.at_least(l).instances, 50_000);
        assert_eq!(raised.at_least(l).snapshots, l.snapshots);
    }
}
