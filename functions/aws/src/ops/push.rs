//! `release push DIR`: verifies a release folder exactly as the run's first step (list-tenants)
//! will, then uploads it to the release bucket so that the upload itself is the commit.
//!
//! - Verification is [`load_manifest`] of `tenantflow-core`, run on the folder's bytes: manifest
//!   rules, every script's sha256 and Flyway readability, and `SHA256SUMS`.
//! - Published releases are immutable: if `releases/<id>/` already holds any object whose bytes
//!   differ from the folder's (or one the folder lacks), the push is refused before any upload.
//!   A folder identical to what is published uploads nothing, so it starts no second run.
//! - Scripts and `SHA256SUMS` go first, `manifest.json` last (its creation starts the run), each
//!   with an S3 SHA-256 checksum so S3 rejects a corrupted upload.
//! - The run name is the one the trigger derives from bucket, key and the manifest's version id
//!   (or ETag on an unversioned bucket): [`execution_name`].

use super::{Ops, OpsError, OpsResult};
use crate::errors::classify;
use async_trait::async_trait;
use aws_sdk_s3::types::ChecksumAlgorithm;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use tenantflow_core::manifest::{release_prefix, Manifest, SHA256SUMS};
use tenantflow_core::ports::Objects;
use tenantflow_core::steps::list_tenants::{load_manifest, release_id_of_key};
use tenantflow_core::steps::trigger::execution_name;
use tenantflow_core::StepError;

pub const MANIFEST: &str = "manifest.json";

/// A release folder read into memory: every file the run reads, by name.
#[derive(Debug, Clone)]
pub struct LocalRelease {
    pub id: String,
    pub manifest: Manifest,
    /// Scripts in manifest order, then `SHA256SUMS`, then `manifest.json` (upload order).
    pub files: Vec<(String, Vec<u8>)>,
}

fn read_regular(path: &Path) -> OpsResult<Vec<u8>> {
    // A FIFO or device would block or stream for ever: refuse anything but a regular file.
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| OpsError::Invalid(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(OpsError::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| OpsError::Invalid(format!("{}: {e}", path.display())))
}

impl LocalRelease {
    /// Reads `dir/manifest.json`, the scripts it lists and `dir/SHA256SUMS`, and verifies them as
    /// list-tenants will.
    pub async fn read(dir: &Path) -> OpsResult<Self> {
        let manifest_bytes = read_regular(&dir.join(MANIFEST))?;
        let manifest = Manifest::parse(&manifest_bytes)?;
        let id = manifest.release.clone();
        let mut files = Vec::new();
        for s in &manifest.scripts {
            if s.name.contains('/') || s.name.contains('\\') {
                return Err(StepError::invalid(
                    "scripts",
                    format!("{:?} is not a file name", s.name),
                )
                .into());
            }
            files.push((s.name.clone(), read_regular(&dir.join(&s.name))?));
        }
        files.push((SHA256SUMS.to_string(), read_regular(&dir.join(SHA256SUMS))?));
        files.push((MANIFEST.to_string(), manifest_bytes));
        let release = LocalRelease {
            id,
            manifest,
            files,
        };
        release.verify().await?;
        Ok(release)
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", release_prefix(&self.id))
    }

    /// list-tenants' own check, on the folder's bytes as they would sit in the bucket.
    async fn verify(&self) -> OpsResult<()> {
        const BUCKET: &str = "local-folder";
        let key = self.key(MANIFEST);
        release_id_of_key(&key)?;
        let objects = InMemory(
            self.files
                .iter()
                .map(|(n, b)| (self.key(n), b.clone()))
                .collect(),
        );
        load_manifest(&objects, BUCKET, &key, &self.id).await?;
        Ok(())
    }
}

/// The folder as a read-only object store.
struct InMemory(BTreeMap<String, Vec<u8>>);

#[async_trait]
impl Objects for InMemory {
    async fn get(&self, _: &str, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        Ok(self.0.get(key).cloned())
    }
    async fn put(&self, _: &str, key: &str, _: &[u8]) -> Result<(), StepError> {
        Err(StepError::Internal(format!("verification wrote {key}")))
    }
    async fn list(&self, _: &str, prefix: &str) -> Result<Vec<String>, StepError> {
        Ok(self
            .0
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushOutcome {
    pub release: String,
    pub bucket: String,
    pub manifest_key: String,
    /// The manifest object's version id (empty on an unversioned bucket).
    pub version_id: String,
    /// The execution name the trigger gives the run.
    pub run_name: String,
    pub execution_arn: String,
    pub uploaded: Vec<String>,
    /// True when the bucket already held exactly this release: nothing was uploaded and no run
    /// started (the run name is the one the first push started).
    pub already_published: bool,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Pushes `release` to the stack's bucket (see the module doc).
pub async fn push(ops: &Ops, release: &LocalRelease) -> OpsResult<PushOutcome> {
    let bucket = ops.stack.bucket.clone();
    let s3 = &ops.clients.s3;
    let objects = ops.objects();
    let prefix = release_prefix(&release.id);
    let local: BTreeMap<&str, &[u8]> = release
        .files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let mut differing = Vec::new();
    let mut present = 0;
    for key in objects.list(&bucket, &prefix).await? {
        let name = key.strip_prefix(&prefix).unwrap_or(&key);
        match local.get(name) {
            None => differing.push(format!("{name} (not in the folder)")),
            Some(bytes) => {
                let theirs = objects.get(&bucket, &key).await?.unwrap_or_default();
                if sha256_hex(&theirs) != sha256_hex(bytes) {
                    differing.push(format!("{name} (other content)"));
                } else {
                    present += 1;
                }
            }
        }
    }
    if !differing.is_empty() {
        return Err(OpsError::Refused(format!(
            "release {} is already published in s3://{bucket}/{prefix} with other content: {}. \
             Published releases are immutable: give this one a new id (tenantflow release pack \
             --id …)",
            release.id,
            differing.join(", ")
        )));
    }
    let manifest_key = release.key(MANIFEST);
    let already = present == release.files.len();
    let mut uploaded = Vec::new();
    let (version_id, etag) = if already {
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&manifest_key)
            .send()
            .await
            .map_err(|e| classify("HeadObject", e))?;
        (
            head.version_id().unwrap_or_default().to_string(),
            head.e_tag().unwrap_or_default().to_string(),
        )
    } else {
        let mut last = (String::new(), String::new());
        for (name, bytes) in &release.files {
            let key = release.key(name);
            let out = s3
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(bytes.clone().into())
                .send()
                .await
                .map_err(|e| classify("PutObject", e))?;
            uploaded.push(name.clone());
            last = (
                out.version_id().unwrap_or_default().to_string(),
                out.e_tag().unwrap_or_default().to_string(),
            );
        }
        last
    };
    let identity = if !version_id.is_empty() && version_id != "null" {
        version_id.clone()
    } else {
        etag.trim_matches('"').to_string()
    };
    let run_name = execution_name(&release.id, &bucket, &manifest_key, &identity);
    let execution_arn = execution_arn(&ops.stack.state_machine_arn, &run_name);
    Ok(PushOutcome {
        release: release.id.clone(),
        bucket,
        manifest_key,
        version_id,
        run_name,
        execution_arn,
        uploaded,
        already_published: already,
    })
}

/// `arn:…:stateMachine:<sm>` + run name → the run's execution ARN.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    crate::sfn::execution_arn(state_machine_arn, name).unwrap_or_default()
}
