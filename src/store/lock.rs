//! The data directory's lock: the daemon holds an exclusive `flock` on
//! `data_dir/fabgate.lock` for its whole life. A second daemon on the same data refuses to
//! start, and `fabgate restore` (which replaces the database file) refuses while a daemon
//! runs. The kernel drops the lock when the process dies, even on `kill -9`, so there is
//! never a stale lock to clean up. Ordinary CLI commands do not take it: they share the
//! database with the daemon through SQLite's own locking.

use super::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "fabgate.lock";

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataLock {
    _file: File,
    path: PathBuf,
}

impl DataLock {
    /// Takes the lock without waiting. `Error::Locked` when another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataLock> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                return Err(Error::Locked { path });
            }
            return Err(Error::Invalid(format!(
                "cannot lock {}: {err}",
                path.display()
            )));
        }
        Ok(DataLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Is a daemon running on this data directory (someone holds the lock)?
pub fn is_locked(data_dir: &Path) -> bool {
    if !data_dir.join(LOCK_FILE).exists() {
        return false;
    }
    matches!(DataLock::acquire(data_dir), Err(Error::Locked { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataLock::acquire(dir.path()).unwrap();
        assert!(first.path().ends_with(LOCK_FILE));
        // flock locks belong to the open file description: a second open in the same
        // process conflicts just like another process would.
        assert!(matches!(
            DataLock::acquire(dir.path()),
            Err(Error::Locked { .. })
        ));
        assert!(is_locked(dir.path()));
        drop(first);
        assert!(!is_locked(dir.path()));
        DataLock::acquire(dir.path()).unwrap();
    }
}
