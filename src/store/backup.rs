//! Copies of the database: online backups (SQLite's backup API, safe while the daemon
//! writes), checking that a file is a sound fabgate database, restoring one in place of
//! the live file, and rotating the daily backups in a directory.
//!
//! A backup copies every page inside one read transaction: in WAL mode that never blocks
//! the daemon's writers, and the copy is one consistent instant of the lab. It is written
//! to `<name>.partial`, checked (`PRAGMA integrity_check`), switched to a self-contained
//! rollback-journal file and only then renamed into place, so a `fabgate-*.db` file is
//! always a complete, checked backup. When backups run (daily, from `jobs`) and whether
//! the daemon is running (the data lock) are decided by the callers.

use super::{schema_version, Error, Result, Store};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a backup or restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Name prefix and suffix of the daily backups: `fabgate-20250101T030000Z.db`.
const DAILY_PREFIX: &str = "fabgate-";
const DAILY_SUFFIX: &str = ".db";

/// Tables every fabgate database has since schema version 1.
const FABGATE_TABLES: &[&str] = &["roles", "members", "machines", "uses", "board_credentials"];

/// Writes a checked copy of the live database to `dest` (replaced if it exists).
pub fn backup(store: &Store, dest: &Path) -> Result<CopyReport> {
    let src = store.connect()?;
    backup_from(&src, dest)
}

/// Same, from an open connection (the jobs thread's own).
pub fn backup_from(src: &Connection, dest: &Path) -> Result<CopyReport> {
    let started = Instant::now();
    copy_checked(src, dest)?;
    Ok(CopyReport {
        path: dest.to_owned(),
        bytes: std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0),
        elapsed: started.elapsed(),
    })
}

/// Copies `src` into a new file at `dest` through `dest.partial`, checks the copy and
/// renames it into place.
fn copy_checked(src: &Connection, dest: &Path) -> Result<()> {
    let partial = with_suffix(dest, ".partial");
    let io = |what: &str, e: std::io::Error| {
        Error::Invalid(format!("cannot {what} {}: {e}", partial.display()))
    };
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", e)),
    }
    let result = (|| {
        let mut dst = Connection::open(&partial)?;
        {
            let b = Backup::new(src, &mut dst)?;
            // All pages in one step: one read transaction, one consistent snapshot. Steps
            // of a few pages would restart whenever the daemon commits in between.
            let mut tries = 0;
            loop {
                match b.step(-1)? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    _ if tries < 50 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    _ => return Err(Error::Invalid("database stayed busy during backup".into())),
                }
            }
        }
        // A standalone file: no -wal/-shm companions to copy along.
        dst.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
        integrity(&dst).map_err(|e| Error::Invalid(format!("the copy failed its check: {e}")))?;
        dst.close().map_err(|(_, e)| Error::Sql(e))?;
        let f = std::fs::File::open(&partial).map_err(|e| io("open", e))?;
        f.sync_all().map_err(|e| io("sync", e))?;
        std::fs::rename(&partial, dest).map_err(|e| io("rename", e))?;
        sync_dir(dest);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// A copy of the live database to hand out (the panel's download): the lab's data
/// without its secrets. Sealed settings (the SMTP password, the wall secret), board
/// credentials' password material, panel sessions, password-reset rows and the secret
/// paths of queued webhook URLs are removed, with `secure_delete` so their bytes do not
/// linger in free pages, and the file is vacuumed. Restoring it keeps members, history
/// and panel logins; boards need new credentials and the SMTP password is entered again.
pub fn shareable_copy(src: &Connection, dest: &Path) -> Result<()> {
    let _ = std::fs::remove_file(dest);
    src.execute("VACUUM INTO ?1", [dest.to_string_lossy().as_ref()])?;
    let scrub = || -> Result<()> {
        let copy = Connection::open(dest)?;
        copy.execute_batch("PRAGMA secure_delete = ON; PRAGMA journal_mode = DELETE;")?;
        let tx = copy.unchecked_transaction()?;
        for name in super::SECRET_SETTINGS {
            tx.execute("DELETE FROM settings WHERE key = ?1", [name])?;
        }
        tx.execute_batch(
            "UPDATE board_credentials SET salt = x'', hash = x'';
             DELETE FROM web_sessions;
             DELETE FROM password_resets;
             UPDATE outbox SET payload = json_set(payload, '$.url', '')
               WHERE kind = 'webhook' AND json_valid(payload);",
        )?;
        tx.commit()?;
        copy.execute_batch("VACUUM")?;
        Ok(())
    };
    let result = scrub();
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// `PRAGMA integrity_check` on an open connection: Ok, or the first problems it lists.
pub fn integrity(conn: &Connection) -> Result<()> {
    let mut st = conn.prepare("PRAGMA integrity_check")?;
    let rows: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(Error::Invalid(
            rows.into_iter().take(5).collect::<Vec<_>>().join("; "),
        ))
    }
}

/// What a candidate file for `restore` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    pub schema_version: i64,
    pub members: i64,
    pub machines: i64,
    pub uses: i64,
}

/// Checks that `path` is a sound fabgate database this build can use: readable SQLite,
/// passes `integrity_check`, has fabgate's tables and a schema version not newer than ours.
pub fn inspect(path: &Path) -> Result<DatabaseInfo> {
    let not = |why: String| {
        Error::Invalid(format!(
            "{} is not a fabgate database: {why}",
            path.display()
        ))
    };
    if !path.is_file() {
        return Err(not("no such file".into()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not(e.to_string()))?;
    integrity(&conn).map_err(|e| not(format!("integrity check failed: {e}")))?;
    for table in FABGATE_TABLES {
        let found: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| not(e.to_string()))?;
        if !found {
            return Err(not(format!(
                "no `{table}` table (a FabOMatic file? use `fabgate import-fabomatic`)"
            )));
        }
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 {
        return Err(not("no schema version".into()));
    }
    if version > schema_version() {
        return Err(Error::TooNew {
            path: path.to_owned(),
            found: version,
            known: schema_version(),
        });
    }
    let count = |t: &str| -> Result<i64> {
        Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?)
    };
    Ok(DatabaseInfo {
        schema_version: version,
        members: count("members")?,
        machines: count("machines")?,
        uses: count("uses")?,
    })
}

/// Puts the database at `source` in place of `live` and returns where the old one was
/// kept (`<live>.before-restore-<stamp>`). The caller holds the data lock, so no daemon
/// has the live file open; `source` has passed `inspect`. The result is migrated to this
/// build's schema like any database at open.
pub fn restore(
    source: &Path,
    live: &Path,
    synchronous: crate::config::Synchronous,
    now: i64,
) -> Result<(CopyReport, Option<PathBuf>)> {
    let started = Instant::now();
    if same_file(source, live) {
        return Err(Error::Invalid(format!(
            "{} is the live database itself",
            source.display()
        )));
    }
    let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // Copy first, next to the live file: a failure here leaves the lab untouched.
    let incoming = with_suffix(live, ".restoring");
    copy_checked(&src, &incoming)?;
    let kept = if live.exists() {
        // Fold the WAL into the file so the file kept aside is complete on its own.
        let conn = Connection::open(live)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
        conn.close().map_err(|(_, e)| Error::Sql(e))?;
        let aside = with_suffix(live, &format!(".before-restore-{}", utc_stamp(now)));
        std::fs::rename(live, &aside)
            .map_err(|e| Error::Invalid(format!("cannot move {} aside: {e}", live.display())))?;
        Some(aside)
    } else {
        None
    };
    for companion in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(live, companion));
    }
    std::fs::rename(&incoming, live)
        .map_err(|e| Error::Invalid(format!("cannot put the restored file in place: {e}")))?;
    sync_dir(live);
    Store::open(live, synchronous)?;
    Ok((
        CopyReport {
            path: live.to_owned(),
            bytes: std::fs::metadata(live).map(|m| m.len()).unwrap_or(0),
            elapsed: started.elapsed(),
        },
        kept,
    ))
}

/// The backup taken before a purge that changes many rows (not a daily backup: rotation
/// leaves it alone).
pub fn before_purge_path(dir: &Path, now: i64) -> PathBuf {
    dir.join(format!("before-purge-{}.db", utc_stamp(now)))
}

/// The daily backup file for time `now` in `dir`.
pub fn daily_path(dir: &Path, now: i64) -> PathBuf {
    dir.join(format!("{DAILY_PREFIX}{}{DAILY_SUFFIX}", utc_stamp(now)))
}

/// The daily backups in `dir` with their times, oldest first. Other files are ignored.
pub fn daily_backups(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(i64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stamp = name
                .strip_prefix(DAILY_PREFIX)?
                .strip_suffix(DAILY_SUFFIX)?;
            Some((parse_stamp(stamp)?, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Deletes the oldest daily backups so that `keep` remain; returns the deleted paths.
pub fn rotate(dir: &Path, keep: usize) -> Vec<PathBuf> {
    let all = daily_backups(dir);
    let excess = all.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for (_, path) in all.into_iter().take(excess) {
        match std::fs::remove_file(&path) {
            Ok(()) => deleted.push(path),
            Err(e) => log::warn!("cannot delete old backup {}: {e}", path.display()),
        }
    }
    deleted
}

/// `20250101T030000Z` for a Unix time (UTC), as in file names.
pub fn utc_stamp(t: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

fn parse_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// (year, month, day, hour, minute, second) of a Unix time in UTC (H. Hinnant's algorithm).
pub fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Makes a rename durable: fsync of the containing directory (best effort).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    #[test]
    fn stamps_round_trip() {
        for t in [0, 86_399, 951_782_400, 1_735_700_400, 4_102_444_799] {
            let s = utc_stamp(t);
            assert_eq!(parse_stamp(&s), Some(t), "{s}");
        }
        assert_eq!(utc_stamp(1_735_700_400), "20250101T030000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(parse_stamp("2025-01-01"), None);
        assert_eq!(parse_stamp("20251301T000000Z"), None);
    }

    #[test]
    fn backup_restore_round_trip_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("fabgate.db");
        let store = Store::open(&live, Synchronous::Normal).unwrap();
        store
            .connect()
            .unwrap()
            .execute_batch("INSERT INTO machines (machine_id, machine_name) VALUES (1, 'LASER')")
            .unwrap();
        let copy = dir.path().join("b/copy.db");
        let report = backup(&store, &copy).unwrap();
        assert!(report.bytes > 0);
        assert!(!with_suffix(&copy, ".partial").exists());
        let info = inspect(&copy).unwrap();
        assert_eq!((info.machines, info.schema_version), (1, schema_version()));

        store
            .connect()
            .unwrap()
            .execute_batch("DELETE FROM machines")
            .unwrap();
        let (_, kept) = restore(&copy, &live, Synchronous::Normal, 1_735_700_400).unwrap();
        let kept = kept.unwrap();
        assert!(kept.ends_with("fabgate.db.before-restore-20250101T030000Z"));
        assert_eq!(inspect(&kept).unwrap().machines, 0);
        assert_eq!(inspect(&live).unwrap().machines, 1);
        assert!(restore(&live, &live, Synchronous::Normal, 0).is_err());
    }

    #[test]
    fn inspect_refuses_what_is_not_a_fabgate_database() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"not a database at all, just text").unwrap();
        assert!(inspect(&junk).is_err());
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE users (id INTEGER)")
            .unwrap();
        let err = inspect(&other).unwrap_err().to_string();
        assert!(err.contains("not a fabgate database"), "{err}");
        assert!(inspect(&dir.path().join("missing.db")).is_err());
    }

    #[test]
    fn rotation_keeps_the_newest_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for day in 0..5 {
            std::fs::write(daily_path(dir.path(), 1_735_700_400 + day * 86_400), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        std::fs::write(dir.path().join("fabgate-old.db"), b"mine").unwrap();
        let deleted = rotate(dir.path(), 2);
        assert_eq!(deleted.len(), 3);
        let left: Vec<i64> = daily_backups(dir.path()).into_iter().map(|b| b.0).collect();
        assert_eq!(
            left,
            [1_735_700_400 + 3 * 86_400, 1_735_700_400 + 4 * 86_400]
        );
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("fabgate-old.db").exists());
    }
}
