//! Local S3: `<state>/s3/<bucket>/<key>`, one file per object. Keys with `..`, empty segments or
//! a leading `/` are refused so a key can never leave its bucket folder.

use crate::error::io_step_error;
use crate::layout::write_atomic;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tenantflow_core::ports::Objects;
use tenantflow_core::StepError;

pub struct LocalObjects {
    root: PathBuf,
}

fn check_segment(field: &str, s: &str) -> Result<(), StepError> {
    if s.is_empty() || s == "." || s == ".." || s.contains('\\') || s.contains('\0') {
        return Err(StepError::invalid(field, format!("{s:?} is not allowed")));
    }
    Ok(())
}

impl LocalObjects {
    pub fn new(root: &Path) -> Self {
        LocalObjects {
            root: root.to_path_buf(),
        }
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf, StepError> {
        check_segment("bucket", bucket)?;
        if bucket.contains('/') {
            return Err(StepError::invalid(
                "bucket",
                format!("{bucket:?} contains `/`"),
            ));
        }
        Ok(self.root.join(bucket))
    }

    /// The file of `bucket/key`.
    pub fn object_path(&self, bucket: &str, key: &str) -> Result<PathBuf, StepError> {
        let mut p = self.bucket_dir(bucket)?;
        for seg in key.split('/') {
            check_segment("key", seg).map_err(|_| {
                StepError::invalid("key", format!("{key:?} is not a valid object key"))
            })?;
            p.push(seg);
        }
        Ok(p)
    }

    pub fn get_sync(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        let p = self.object_path(bucket, key)?;
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(io_step_error(&p, e)),
        }
    }

    pub fn put_sync(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), StepError> {
        let p = self.object_path(bucket, key)?;
        write_atomic(&p, body).map_err(|e| io_step_error(&p, e))
    }

    /// Keys under `prefix`, sorted.
    pub fn list_sync(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StepError> {
        let dir = self.bucket_dir(bucket)?;
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        // Walk only the folder the prefix names, then filter on the full prefix.
        let (folder, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let start = if folder.is_empty() {
            dir.clone()
        } else {
            self.object_path(bucket, folder)?
        };
        if !start.is_dir() {
            return Ok(vec![]);
        }
        let mut out = vec![];
        walk(&start, folder, &mut out).map_err(|e| io_step_error(&start, e))?;
        out.retain(|k| k.starts_with(prefix));
        Ok(out)
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains(".tmp-") {
            continue; // an object being written
        }
        let key = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type()?.is_dir() {
            walk(&e.path(), &key, out)?;
        } else {
            out.push(key);
        }
    }
    Ok(())
}

#[async_trait]
impl Objects for LocalObjects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        self.get_sync(bucket, key)
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), StepError> {
        self.put_sync(bucket, key, body)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StepError> {
        self.list_sync(bucket, prefix)
    }
}
