//! The release a deploy publishes: read and validated from its directory, with the CLI's
//! `--source-snapshot` written into the manifest.

use crate::error::{LocalError, ReleaseProblem};
use crate::state::{read_release, ReleaseDir};
use serde_json::{json, Value};
use std::path::Path;
use tenantflow_core::manifest::Manifest;

/// Reads `release_dir`; with `source_snapshot`, the manifest names it as `sourceSnapshot` (for
/// strategy `promote`). Bad input is refused here, before anything changes.
pub(super) fn prepare(
    release_dir: &Path,
    source_snapshot: Option<&str>,
) -> Result<ReleaseDir, LocalError> {
    let mut release = read_release(release_dir)?;
    if let Some(snap) = source_snapshot {
        let manifest_file = release_dir.join("manifest.json");
        let mut m: Value = serde_json::from_slice(&release.manifest_bytes)
            .map_err(|e| LocalError::release(&manifest_file, ReleaseProblem::NotJson(e)))?;
        m["sourceSnapshot"] = json!(snap);
        release.manifest_bytes =
            serde_json::to_vec_pretty(&m).map_err(LocalError::serialize("manifest"))?;
        release.manifest = Manifest::parse(&release.manifest_bytes)
            .map_err(|e| LocalError::release(&manifest_file, e))?;
    }
    Ok(release)
}
