//! The local object store: `<root>/<bucket>/<key>` files standing in for S3.

use std::path::{Component, Path, PathBuf};

pub(crate) fn object_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf, String> {
    let rel = Path::new(bucket).join(key);
    let safe = !bucket.is_empty()
        && !key.is_empty()
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(format!("invalid bucket/key '{bucket}/{key}'"));
    }
    Ok(root.join(rel))
}

pub(crate) fn read(root: Option<&Path>, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let root = root.ok_or("no local object store is configured")?;
    let p = object_path(root, bucket, key)?;
    std::fs::read(&p).map_err(|e| format!("cannot read s3://{bucket}/{key} ({}): {e}", p.display()))
}

pub(crate) fn write(
    root: Option<&Path>,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> Result<(), String> {
    let root = root.ok_or("no local object store is configured")?;
    let p = object_path(root, bucket, key)?;
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&p, data).map_err(|e| format!("cannot write s3://{bucket}/{key}: {e}"))
}
