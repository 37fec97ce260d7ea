//! One command at a time per state directory.
//!
//! [`StateLock`] is an OS advisory lock (`File::lock`, `flock` on Linux) on `<state>/tenantflow.lock`,
//! held for the life of the command: the OS releases it when the process exits or dies, so a
//! killed command never leaves the directory locked. While it holds the lock, the holder writes
//! who it is into the file (`{"pid", "command", "startedAt"}`), so a second command can name it;
//! it empties the file again when it is done. The file itself stays (empty): a state directory
//! looks the same before and after a command that changed nothing.
//!
//! Local runs are serialized by this lock, so two of them never pick the same virtual start time,
//! generation names or run name (`deploy::start`).

use crate::error::LocalError;
use crate::layout::Layout;
use serde::{Deserialize, Serialize};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Who holds a state directory's lock, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub pid: u32,
    /// The holder's command line.
    pub command: String,
    /// When it took the lock (wall clock, RFC 3339).
    pub started_at: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} (`{}`), running since {}",
            self.pid, self.command, self.started_at
        )
    }
}

/// The lock on one state directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock for `command`, or fails at once with [`LocalError::Busy`] naming the holder.
    pub fn try_acquire(layout: &Layout, command: &str) -> Result<StateLock, LocalError> {
        let (mut file, path) = open(layout)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LocalError::Busy {
                    path: layout.root().to_path_buf(),
                    holder: read_holder(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(LocalError::io(&path, e)),
        }
        StateLock::held(file, path, command)
    }

    /// Takes the lock for `command`, waiting as long as another command holds it.
    pub fn acquire_waiting(layout: &Layout, command: &str) -> Result<StateLock, LocalError> {
        let (file, path) = open(layout)?;
        file.lock().map_err(|e| LocalError::io(&path, e))?;
        StateLock::held(file, path, command)
    }

    /// Who holds the lock of `layout` now, if anyone says so (for messages).
    pub fn holder(layout: &Layout) -> Option<Holder> {
        let (mut file, _) = open(layout).ok()?;
        read_holder(&mut file)
    }

    /// Whether a command holds the lock now (`Some`, with who it says it is), without taking it:
    /// a shared lock is tried and dropped at once, and nothing is written or created.
    pub fn running(layout: &Layout) -> Option<Option<Holder>> {
        let mut file = File::open(layout.lock_file()).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => Some(read_holder(&mut file)),
            Err(TryLockError::Error(_)) => None,
        }
    }

    fn held(mut file: File, path: PathBuf, command: &str) -> Result<StateLock, LocalError> {
        let holder = Holder {
            pid: std::process::id(),
            command: command.to_string(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let text = serde_json::to_vec(&holder).map_err(LocalError::serialize("lock holder"))?;
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(&text))
            .and_then(|()| file.flush())
            .map_err(|e| LocalError::io(&path, e))?;
        Ok(StateLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Empty again before the lock goes (closing the file releases it).
        let _ = self.file.set_len(0);
    }
}

fn open(layout: &Layout) -> Result<(File, PathBuf), LocalError> {
    let path = layout.lock_file();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                LocalError::ReadOnly {
                    path: layout.root().to_path_buf(),
                    cause: e,
                }
            }
            _ => LocalError::io(&path, e),
        })?;
    Ok((file, path))
}

/// What the holder wrote; `None` while it has not written yet (or wrote something else).
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let first = StateLock::try_acquire(&layout, "tenantflow deploy a").unwrap();
        match StateLock::try_acquire(&layout, "tenantflow deploy b") {
            Err(LocalError::Busy {
                holder: Some(h), ..
            }) => {
                assert_eq!(h.pid, std::process::id());
                assert_eq!(h.command, "tenantflow deploy a");
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(StateLock::holder(&layout).is_some());
        assert_eq!(
            StateLock::running(&layout).flatten().map(|h| h.command),
            Some("tenantflow deploy a".to_string())
        );
        drop(first);
        assert_eq!(StateLock::running(&layout), None);
        assert_eq!(std::fs::metadata(layout.lock_file()).unwrap().len(), 0);
        assert!(StateLock::holder(&layout).is_none());
        let again = StateLock::try_acquire(&layout, "tenantflow deploy b").unwrap();
        assert_eq!(
            StateLock::holder(&layout).unwrap().command,
            "tenantflow deploy b"
        );
        drop(again);
    }
}
