//! SQLite storage: opening the database with the right pragmas, migrations, and typed
//! queries. The store knows tables, not rules: what a row *means* for a board or a member
//! is decided in `lab`.
//!
//! Every connection runs in WAL mode with a busy timeout, so the daemon, the panel and the
//! CLI (another process) can share one file. `transaction()` on a connection from
//! `Store::connect` is `BEGIN IMMEDIATE`, so a writer waits its turn instead of failing.

mod admin;
pub mod backup;
mod clock;
mod hot;
pub mod import_fabomatic;
mod lock;
mod outbox;
mod people;
mod presence;
mod queries;
mod retention;
pub(crate) mod schema;
mod secrets;
pub mod startup;
mod workshop;

pub use admin::*;
pub use clock::*;
pub use hot::{BoardInfo, Hot, Jump};
pub use lock::{is_locked, DataLock, LOCK_FILE};
pub use outbox::*;
pub use people::*;
pub use presence::*;
pub use queries::*;
pub use retention::*;
pub use secrets::{
    derive_token, has_secret, seal_plaintext, secret, set_secret, tighten_modes, KEY_FILE,
    SECRET_SETTINGS,
};
pub use workshop::*;

use crate::config::Synchronous;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong with the database, in our terms.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open database {path}: {source}\nhint: {}", open_hint(source))]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path} has schema version {found}, newer than this fabgate ({known}); upgrade fabgate")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("migrating the database to version {version}: {source}")]
    Migrate {
        version: usize,
        source: rusqlite::Error,
    },
    #[error("another fabgate daemon is running on this data directory (it holds {path})\nhint: `systemctl status fabgate`; stop it first")]
    Locked { path: PathBuf },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What to look at when a database cannot be opened: permissions and space are not the
/// cause of a damaged file (issue 12).
fn open_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseCorrupt | C::NotADatabase) => {
            "the file is damaged: stop fabgate and restore the newest backup (`fabgate restore FILE`, \
             daily backups are in the data directory's backups/)"
        }
        Some(C::DiskFull) => "the disk is full: free space (old backups, `journalctl --vacuum-size=50M`)",
        Some(C::ReadOnly) => "the file or its file system is read-only (a failing SD card turns read-only)",
        _ => "is the directory writable by this user?",
    }
}

impl Error {
    /// Is this a sign of a damaged database file?
    pub fn is_damage(&self) -> bool {
        match self {
            Error::Open { source, .. } | Error::Sql(source) | Error::Migrate { source, .. } => {
                startup::is_damage(source)
            }
            _ => false,
        }
    }
}

/// How to open connections to one database file.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    synchronous: Synchronous,
}

/// Page cache per connection. The board path touches a small hot set (cards, machines,
/// open uses, the newest pages of `uses`); SQLite's default of 2 MiB per connection would
/// be a large part of the daemon's memory on a Pi Zero.
const CACHE_KIB: u32 = 512;

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date. A
    /// brand-new database also gets FabOMatic's default roles and machine type
    /// (`seed_defaults`), so members and machines can be added right away; an import
    /// replaces them.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let store = Store {
            path: path.to_owned(),
            synchronous,
        };
        let mut conn = store.connect()?;
        let before = migrate(&mut conn, path)?;
        if before == 0 {
            seed_defaults(&mut conn)?;
        }
        Ok(store)
    }

    /// Opens an existing database without creating it (for read-only tools).
    pub fn open_existing(path: &Path, synchronous: Synchronous) -> Result<Store> {
        if !path.exists() {
            return Err(Error::Invalid(format!(
                "no database at {}: start the daemon once or check store.data_dir",
                path.display()
            )));
        }
        Self::open(path, synchronous)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection with the daemon's pragmas.
    pub fn connect(&self) -> Result<Connection> {
        let mut conn = Connection::open(&self.path).map_err(|source| Error::Open {
            path: self.path.clone(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let sync = match self.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {sync};
             PRAGMA foreign_keys = ON;
             PRAGMA journal_size_limit = 4194304;
             PRAGMA cache_size = -{CACHE_KIB};"
        ))
        .map_err(|source| Error::Open {
            path: self.path.clone(),
            source,
        })?;
        conn.set_prepared_statement_cache_capacity(64);
        // `transaction()` means BEGIN IMMEDIATE: a deferred transaction that reads and then
        // writes fails at once with SQLITE_BUSY (no busy wait) when another connection
        // committed in between, e.g. the jobs thread during a panel sign-in.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        Ok(conn)
    }
}

/// Schema version this build writes.
pub fn schema_version() -> i64 {
    schema::MIGRATIONS.len() as i64
}

/// Brings the schema up to date; returns the version the file had before.
fn migrate(conn: &mut Connection, path: &Path) -> Result<i64> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = schema_version();
    if current > known {
        return Err(Error::TooNew {
            path: path.to_owned(),
            found: current,
            known,
        });
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i + 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| Error::Migrate { version, source })?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now as usize >= version {
            continue;
        }
        tx.execute_batch(sql)
            .and_then(|_| tx.execute_batch(&format!("PRAGMA user_version = {version}")))
            .and_then(|_| tx.commit())
            .map_err(|source| Error::Migrate { version, source })?;
        log::info!("database migrated to schema version {version}");
    }
    Ok(current)
}

/// Current UTC time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/lab.db");
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema_version());
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        Store::open(&path, Synchronous::Normal).unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.db");
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        store
            .connect()
            .unwrap()
            .execute_batch("PRAGMA user_version = 999")
            .unwrap();
        let err = Store::open(&path, Synchronous::Normal).unwrap_err();
        assert!(matches!(err, Error::TooNew { found: 999, .. }), "{err}");
    }

    /// The panel's sign-in reads a member and then writes; a deferred transaction would
    /// fail at once with "database is locked" if the jobs thread committed in between.
    #[test]
    fn a_read_then_write_transaction_waits_for_a_concurrent_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let mut a = store.connect().unwrap();
        let tx = a.transaction().unwrap();
        let roles: i64 = tx
            .query_row("SELECT count(*) FROM roles", [], |r| r.get(0))
            .unwrap();
        let other = store.clone();
        let writer = std::thread::spawn(move || {
            let b = other.connect().unwrap();
            b.execute("INSERT INTO settings (key, value) VALUES ('t', 'b')", [])
        });
        std::thread::sleep(Duration::from_millis(200));
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('u', ?1)",
            [roles],
        )
        .unwrap();
        tx.commit().unwrap();
        assert_eq!(writer.join().unwrap().unwrap(), 1);
    }
}
