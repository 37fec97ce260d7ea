//! [`LocalState`]: a state directory, with tenant creation and release publishing.

use crate::error::{LocalError, ReleaseProblem, StateDirProblem};
use crate::flyway::{self, MigrateOptions, Script};
use crate::layout::{write_atomic, Layout, StateConfig, RELEASE_BUCKET};
use crate::ports::LocalPorts;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tenantflow_core::manifest::{release_prefix, Manifest, SHA256SUMS};
use tenantflow_core::model::{ActivePointer, ServiceRef};
use tenantflow_core::names::{tags, GenerationTs, InstanceId, Namespace};

/// A state directory (docs/design.md §7).
#[derive(Debug, Clone)]
pub struct LocalState {
    layout: Layout,
    config: StateConfig,
}

/// A release as validated from its directory.
#[derive(Debug, Clone)]
pub struct ReleaseDir {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    /// Every script of the manifest with its bytes, in Flyway's apply order.
    pub scripts: Vec<Script>,
}

/// A release published into local S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRelease {
    pub id: String,
    pub bucket: String,
    /// `releases/<id>/`
    pub prefix: String,
    /// `releases/<id>/manifest.json`
    pub key: String,
    /// Quoted hex md5-like tag of the manifest bytes (sha256 prefix here).
    pub etag: String,
    /// A new version id per publish, as a versioned bucket gives.
    pub version_id: String,
    pub size: u64,
}

impl LocalState {
    /// Creates a new, empty state directory (idempotent on an existing state directory).
    pub fn create(dir: &Path) -> Result<LocalState, LocalError> {
        let layout = Layout::new(dir);
        let config = layout.create()?;
        let state = LocalState { layout, config };
        // Opening the ports creates every metadata database.
        state.ports()?;
        Ok(state)
    }

    /// Opens an existing state directory; a directory without the marker is refused.
    pub fn open(dir: &Path) -> Result<LocalState, LocalError> {
        if !dir.is_dir() {
            return Err(LocalError::not_a_state_dir(
                dir,
                StateDirProblem::NoSuchDirectory,
            ));
        }
        let layout = Layout::new(dir);
        let config = layout.read_config()?;
        layout.check_writable()?;
        layout.check_databases()?;
        Ok(LocalState { layout, config })
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// Changes the local settings (quota limits, simulated durations) and saves them.
    pub fn set_config(&mut self, config: StateConfig) -> Result<(), LocalError> {
        self.layout.write_config(&config)?;
        self.config = config;
        Ok(())
    }

    /// Opens every port on this state directory.
    pub fn ports(&self) -> Result<LocalPorts, LocalError> {
        LocalPorts::open(&self.layout, self.config.clone())
    }

    /// Creates a tenant's first generation `<ns>-<generation>`:
    /// 1. a new instance file, on which the release's scripts are applied with the Flyway runner
    ///    (so the schema exists), then `seed` runs to add data;
    /// 2. the instance is registered `available`, with deletion protection and the tenantflow tags;
    /// 3. the active pointer `/tenantflow/<ns>/db`, and the tenant's ECS service, are written.
    ///
    /// The release is validated first and published into local S3 if it is not there yet.
    pub fn create_tenant(
        &self,
        ns: &Namespace,
        generation: GenerationTs,
        release_dir: &Path,
        seed: &dyn Fn(&rusqlite::Connection) -> rusqlite::Result<()>,
    ) -> Result<(), LocalError> {
        let release = read_release(release_dir)?;
        let ports = self.ports()?;
        let key = format!("{}manifest.json", release_prefix(&release.manifest.release));
        if ports.objects.get_sync(RELEASE_BUCKET, &key)?.is_none() {
            self.publish_validated(&ports, &release)?;
        }
        let id = InstanceId::generation(ns, generation);
        let file = self.layout.instance_file(id.as_str());
        if file.exists() || ports.databases.describe_instance_sync(&id)?.is_some() {
            return Err(LocalError::InstanceExists { path: file, id });
        }
        let tmp = crate::layout::tmp_path(&file);
        let built = (|| -> Result<(), LocalError> {
            let mut conn =
                rusqlite::Connection::open(&tmp).map_err(|e| LocalError::sqlite(&file, e))?;
            // A file nobody sees yet needs no journal; it is renamed into place when complete.
            conn.pragma_update(None, "journal_mode", "OFF")
                .and_then(|_| conn.pragma_update(None, "synchronous", "OFF"))
                .map_err(|e| LocalError::sqlite(&file, e))?;
            let opts = MigrateOptions {
                installed_by: "tenantflow".into(),
            };
            flyway::migrate(&mut conn, &release.scripts, &opts).map_err(|cause| {
                LocalError::Migration {
                    path: file.clone(),
                    cause: Box::new(cause),
                }
            })?;
            seed(&conn).map_err(|e| LocalError::sqlite(&file, e))?;
            conn.pragma_update(None, "journal_mode", "DELETE")
                .map_err(|e| LocalError::sqlite(&file, e))?;
            Ok(())
        })();
        if let Err(e) = built {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &file).map_err(|e| LocalError::io(&file, e))?;

        let mut t = BTreeMap::new();
        t.insert(tags::NAMESPACE.to_string(), ns.to_string());
        t.insert(tags::RELEASE.to_string(), release.manifest.release.clone());
        t.insert(tags::RUN.to_string(), "init".to_string());
        t.insert(tags::ROLE.to_string(), tags::ROLE_ACTIVE.to_string());
        ports.databases.register_instance(&id, &t, true)?;
        let pointer = ActivePointer {
            generation,
            instance_id: id,
            endpoint: file.display().to_string(),
            port: 0,
            release: release.manifest.release.clone(),
            scripts: None,
            service: None,
            freeze: None,
        };
        let value = serde_json::to_string(&pointer).map_err(LocalError::serialize("pointer"))?;
        ports.parameters.put_sync(&ns.paths().pointer, &value)?;
        ports.services.register_service(
            &ServiceRef {
                cluster: ports.settings.default_cluster.clone(),
                service: ns.to_string(),
            },
            ns,
        )?;
        Ok(())
    }

    /// Validates the release directory (manifest, every script present with its sha256, no extra
    /// script, Flyway names), then copies it into `s3/tenantflow-releases/releases/<id>/`,
    /// manifest last (writing the manifest commits the release).
    pub fn publish_release(&self, release_dir: &Path) -> Result<PublishedRelease, LocalError> {
        let release = read_release(release_dir)?;
        let ports = self.ports()?;
        self.publish_validated(&ports, &release)
    }

    pub(crate) fn publish_validated(
        &self,
        ports: &LocalPorts,
        release: &ReleaseDir,
    ) -> Result<PublishedRelease, LocalError> {
        let id = release.manifest.release.clone();
        let prefix = release_prefix(&id);
        for s in &release.scripts {
            ports
                .objects
                .put_sync(RELEASE_BUCKET, &format!("{prefix}{}", s.name), &s.content)?;
        }
        // What `tenantflow release pack` writes next to the manifest; the plan refuses a release
        // without it (read_release has checked a folder's own copy agrees).
        let sums = release
            .manifest
            .sha256sums()
            .map_err(|e| LocalError::release(&release.dir, e))?;
        ports.objects.put_sync(
            RELEASE_BUCKET,
            &format!("{prefix}{SHA256SUMS}"),
            sums.as_bytes(),
        )?;
        let key = format!("{prefix}manifest.json");
        ports
            .objects
            .put_sync(RELEASE_BUCKET, &key, &release.manifest_bytes)?;
        let digest = hex::encode(Sha256::digest(&release.manifest_bytes));
        // The run is named from the version id: skip any whose name an earlier run has (the
        // counter lost, or edited), so run names never collide.
        let version_id = loop {
            let v = next_version_id(&self.layout, &key)?;
            let run =
                tenantflow_core::steps::trigger::execution_name(&id, RELEASE_BUCKET, &key, &v);
            if !self.layout.run_dir(&run).exists() {
                break v;
            }
        };
        Ok(PublishedRelease {
            id,
            bucket: RELEASE_BUCKET.into(),
            prefix,
            key,
            etag: format!("\"{}\"", &digest[..32]),
            version_id,
            size: release.manifest_bytes.len() as u64,
        })
    }
}

/// A new version id for `key` on every publish (a counter kept next to the bucket's objects is
/// not an object: it lives in the runs folder's `versions.json`).
fn next_version_id(layout: &Layout, key: &str) -> Result<String, LocalError> {
    let path = layout.runs_dir().join("versions.json");
    let mut all: BTreeMap<String, u64> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let n = all.entry(key.to_string()).or_insert(0);
    *n += 1;
    let id = format!("v{:06}", *n);
    let text = serde_json::to_string_pretty(&all).map_err(LocalError::serialize("versions"))?;
    write_atomic(&path, text.as_bytes()).map_err(|e| LocalError::io(&path, e))?;
    Ok(id)
}

/// What `path` is when it is neither a regular file nor a directory (symbolic links followed).
/// A broken link counts only where a deploy reads it (the manifest, `SHA256SUMS`, scripts): an
/// editor's lock link elsewhere is harmless.
fn special_file(path: &Path) -> Option<&'static str> {
    let Ok(meta) = std::fs::metadata(path) else {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let read = name == "manifest.json"
            || name == SHA256SUMS
            || name.to_ascii_lowercase().ends_with(".sql");
        return read.then_some("a broken symbolic link");
    };
    let kind = meta.file_type();
    if kind.is_file() || kind.is_dir() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_block_device() || kind.is_char_device() {
            return Some("a device");
        }
    }
    Some("not a regular file")
}

/// Reads and validates a release directory. Every error names the offending file.
pub fn read_release(dir: &Path) -> Result<ReleaseDir, LocalError> {
    if !dir.is_dir() {
        return Err(LocalError::release(dir, ReleaseProblem::NotADirectory));
    }
    // Before any file is opened: reading a FIFO or a device would block or never end.
    for entry in std::fs::read_dir(dir).map_err(|e| LocalError::io(dir, e))? {
        let path = entry.map_err(|e| LocalError::io(dir, e))?.path();
        if let Some(kind) = special_file(&path) {
            return Err(LocalError::release(
                &path,
                ReleaseProblem::NotARegularFile { kind },
            ));
        }
    }
    let manifest_path = dir.join("manifest.json");
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|source| {
        LocalError::release(
            &manifest_path,
            ReleaseProblem::UnreadableManifest { source },
        )
    })?;
    let manifest =
        Manifest::parse(&manifest_bytes).map_err(|e| LocalError::release(&manifest_path, e))?;
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().to_string());
    if dir_name.as_deref() != Some(manifest.release.as_str()) {
        // Not fatal on AWS (the S3 prefix is what counts), but a local folder named otherwise
        // is almost always a copy/paste slip; say which.
        tracing::debug!(dir = %dir.display(), release = %manifest.release, "release folder name differs from release id");
    }

    let mut on_disk: Vec<String> = vec![];
    for entry in std::fs::read_dir(dir).map_err(|e| LocalError::io(dir, e))? {
        let entry = entry.map_err(|e| LocalError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.to_ascii_lowercase().ends_with(".sql") {
            on_disk.push(name);
        }
    }
    on_disk.sort();
    for name in &on_disk {
        if !manifest.scripts.iter().any(|s| &s.name == name) {
            let file = dir.join(name);
            let why = match tenantflow_core::flyway::ScriptName::parse(name) {
                Err(source) => ReleaseProblem::BadScriptName { source },
                Ok(_) => ReleaseProblem::ExtraScript,
            };
            return Err(LocalError::release(&file, why));
        }
    }
    let mut scripts = vec![];
    for (name, entry) in manifest
        .scripts_in_order()
        .map_err(|e| LocalError::release(&manifest_path, e))?
    {
        let file = dir.join(&entry.name);
        let bytes = std::fs::read(&file).map_err(|source| {
            LocalError::release(&file, ReleaseProblem::MissingScript { source })
        })?;
        manifest
            .verify_script(&name.file, &bytes)
            .map_err(|e| LocalError::release(&file, e))?;
        scripts.push(Script::new(entry.name.clone(), bytes));
    }
    let sums_path = dir.join(SHA256SUMS);
    if let Ok(sums) = std::fs::read(&sums_path) {
        manifest.verify_sha256sums(&sums).map_err(|source| {
            LocalError::release(&sums_path, ReleaseProblem::StaleSha256Sums { source })
        })?;
    }
    Ok(ReleaseDir {
        dir: dir.to_path_buf(),
        manifest,
        manifest_bytes,
        scripts,
    })
}
