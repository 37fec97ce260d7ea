//! SQLite helpers: opening metadata databases, and copying a database file with the online backup API.

use crate::error::{CopyError, UnreadableDatabase};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Opens (creating if needed) a metadata database with WAL and a busy timeout, and runs `schema`.
pub(crate) fn open_meta(path: &Path, schema: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // Room for every statement of a registry (see `Cached`).
    conn.set_prepared_statement_cache_capacity(64);
    // WAL + NORMAL: commits do not fsync; a crash can lose the last commits, never corrupt.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(schema)?;
    Ok(conn)
}

/// Opens an existing database file read-write, failing if it does not exist.
pub(crate) fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(conn)
}

/// Checks that `path` is a readable SQLite database (the header and schema can be read).
pub fn check_database(path: &Path) -> Result<(), UnreadableDatabase> {
    if !path.is_file() {
        return Err(UnreadableDatabase::Missing);
    }
    if is_empty_file(path) {
        return Err(UnreadableDatabase::Empty);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(())
}

/// True when `path` is a file of 0 bytes (a tenant database is a rollback-journal database: no
/// WAL file can hold its content).
fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

/// Copies the database at `src` to a new file `dst` with the SQLite online backup API.
///
/// The copy is written to a temporary sibling and renamed into place, so `dst` either does not
/// exist or is complete. A missing or corrupt source is an error, and `dst` is not created.
pub fn backup_copy(src: &Path, dst: &Path) -> Result<(), CopyError> {
    begin_copy(src)?.finish(dst)
}

/// Starts a point-in-time copy of `src`: opens it and takes a read transaction, so the copy that
/// [`PendingCopy::finish`] makes later (on another thread) is of the database as it is now. A
/// writer that comes meanwhile waits for the copy (its busy timeout) instead of changing it.
pub fn begin_copy(src: &Path) -> Result<PendingCopy, CopyError> {
    if !src.is_file() {
        return Err(CopyError::Missing {
            path: src.to_path_buf(),
        });
    }
    // SQLite reads a 0-byte file as an empty database; a tenant's database is never empty, so
    // such a file is damage (copying it would make a tenant without data).
    if is_empty_file(src) {
        return Err(CopyError::Empty {
            path: src.to_path_buf(),
        });
    }
    let fail = |source| CopyError::Source {
        path: src.to_path_buf(),
        source,
    };
    let from = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
    from.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
    // Reading the schema inside an open transaction takes the read lock and keeps it; it also
    // fails at once on a file that is not a database.
    from.execute_batch("BEGIN")
        .and_then(|()| {
            from.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map_err(fail)?;
    Ok(PendingCopy {
        from,
        src: src.to_path_buf(),
    })
}

/// A copy started by [`begin_copy`]: the source, open in a read transaction.
pub struct PendingCopy {
    from: Connection,
    src: std::path::PathBuf,
}

impl PendingCopy {
    /// Copies the source as it was when the copy began to `dst`, and ends the read transaction.
    pub fn finish(self, dst: &Path) -> Result<(), CopyError> {
        let PendingCopy { from, src } = self;
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CopyError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let tmp = crate::layout::tmp_path(dst);
        crate::crash::before_write(&format!("copy to {}", dst.display()));
        let result = (|| -> rusqlite::Result<()> {
            let mut to = Connection::open(&tmp)?;
            // The copy is renamed into place only when complete, so it needs no journal of its own.
            to.pragma_update(None, "journal_mode", "OFF")?;
            to.pragma_update(None, "synchronous", "OFF")?;
            // The backup reads through the source's open read transaction.
            let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
            loop {
                match backup.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => continue,
                    rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => continue,
                }
            }
            drop(backup);
            // The backup copies the source's journal mode into the header; reset it to DELETE so
            // the copy is an ordinary rollback-journal database like the source.
            to.pragma_update(None, "journal_mode", "DELETE")?;
            Ok(())
        })();
        drop(from);
        match result {
            Ok(()) => {
                crate::crash::before_write(&format!("rename copy to {}", dst.display()));
                std::fs::rename(&tmp, dst).map_err(|source| CopyError::Io {
                    path: dst.to_path_buf(),
                    source,
                })
            }
            Err(source) => {
                let _ = std::fs::remove_file(&tmp);
                Err(CopyError::Copy {
                    src,
                    dst: dst.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// `<file>: <first words of the statement>`, naming a registry write in the crash hook's log.
fn write_label(conn: &Connection, sql: &str) -> String {
    let file = conn
        .path()
        .and_then(|p| Path::new(p).file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    format!("{file}: {}", words.join(" "))
}

/// `execute` and `query_row` through the connection's statement cache. The registries run the
/// same few statements thousands of times in a deploy; parsing them anew each time was about a
/// sixth of the engine thread's work (measured with perf on 200 tenants).
pub(crate) trait Cached {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        crate::crash::before_write(&write_label(self, sql));
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}
