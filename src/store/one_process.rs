//! A SQLite database serves one cronhook process: two daemons on one file would both fire
//! every instant. The first to open it holds an exclusive lock on `<file>.lock` (which names
//! its process) for as long as it runs; a second is refused at start-up. The kernel drops
//! the lock when the holder exits, however it exits (SIGKILL included), so no stale lock is
//! ever left to clean up.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sea_orm::sqlx::sqlite::SqliteConnectOptions;

use super::{Error, Result};

/// Held for the life of a store on a SQLite file.
#[derive(Debug)]
pub(super) struct OneProcess {
    _file: File,
}

impl OneProcess {
    /// Takes the lock of the file `url` names; `None` for an in-memory database.
    pub(super) fn take(url: &str) -> Result<Option<OneProcess>> {
        let Some(database) = database_file(url) else {
            return Ok(None);
        };
        let path = lock_path(&database);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|err| Error::InUse(format!("cannot open {}: {err}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("another cronhook process (pid {pid})"),
                };
                return Err(Error::InUse(format!(
                    "the SQLite database {} is in use by {holder}; a SQLite database serves \
                     one process: stop that one, or run replicas on PostgreSQL \
                     (--database-url postgres://…)",
                    database.display()
                )));
            }
            Err(TryLockError::Error(err)) => {
                return Err(Error::InUse(format!(
                    "cannot lock {}: {err}",
                    path.display()
                )));
            }
        }
        // Only the holder writes its pid, so a refused process can name it.
        let named = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()));
        if let Err(err) = named {
            tracing::warn!(lock = %path.display(), error = %err, "cannot write this process's id into the lock file");
        }
        Ok(Some(OneProcess { _file: file }))
    }
}

/// The database file a `sqlite:` URL names, or `None` when it names an in-memory database.
fn database_file(url: &str) -> Option<PathBuf> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf()).filter(|file| !file.as_os_str().is_empty())
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_databases_take_no_lock() {
        assert_eq!(database_file("sqlite::memory:"), None);
        assert_eq!(database_file("sqlite://x.db?mode=memory"), None);
        assert_eq!(
            database_file("sqlite:///var/lib/cronhook/cronhook.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/cronhook/cronhook.db"))
        );
    }

    #[test]
    fn a_second_holder_is_refused_and_told_the_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let first = OneProcess::take(&url).expect("first").expect("a file lock");
        let err = OneProcess::take(&url).expect_err("second refused");
        let message = err.to_string();
        assert!(
            message.contains("c.db is in use by another cronhook process (pid "),
            "{message}"
        );
        assert!(
            message.contains(&std::process::id().to_string()),
            "{message}"
        );
        assert!(message.contains("PostgreSQL"), "{message}");
        drop(first);
        assert!(OneProcess::take(&url).expect("free again").is_some());
    }
}
