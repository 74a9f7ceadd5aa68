//! Checks before the daemon opens the database (issue 12): a missing or emptied database
//! where a lab existed is not silently replaced by a new, empty lab, and a damaged file is
//! named instead of served. The marker file records that a lab lives in this directory,
//! so even an `rm fabgate.db` with no backups yet is noticed.

use super::backup;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Written into the data directory once a lab's database exists; never removed by fabgate.
pub const MARKER_FILE: &str = "fabgate.lab";

/// What the data directory says about a lab that existed before (empty = none). The lock
/// file is the caller's to judge: the daemon creates it before looking.
pub fn previous_lab_signs(data_dir: &Path, database: &Path, backup_dir: &Path) -> Vec<String> {
    let mut signs = Vec::new();
    if let Ok(meta) = std::fs::metadata(database) {
        if meta.len() == 0 {
            signs.push(format!("{} is empty (0 bytes)", database.display()));
        }
    }
    if data_dir.join(MARKER_FILE).exists() {
        signs.push(format!(
            "{} says a lab was created here",
            data_dir.join(MARKER_FILE).display()
        ));
    }
    let backups = backup::daily_backups(backup_dir);
    if !backups.is_empty() {
        signs.push(format!(
            "{} backup(s) in {}",
            backups.len(),
            backup_dir.display()
        ));
    }
    // Anything else than configuration files: a lab's companions (WAL, kept copies).
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        let db_name = database.file_name();
        let mut others: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                Some(std::ffi::OsStr::new(n)) != db_name
                    && n != MARKER_FILE
                    && n != super::LOCK_FILE
                    && !n.ends_with(".toml")
                    && !n.starts_with('.')
                    && !backup_dir.ends_with(n)
            })
            .collect();
        others.sort();
        if !others.is_empty() {
            others.truncate(5);
            signs.push(format!(
                "the data directory is not empty ({})",
                others.join(", ")
            ));
        }
    }
    signs
}

/// Is there a database worth opening at `path` (exists and is not empty)?
pub fn database_present(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// Records that a lab lives in `data_dir` (best effort: a read-only disk is reported by
/// the store itself).
pub fn write_marker(data_dir: &Path, now: i64) {
    let path = data_dir.join(MARKER_FILE);
    if path.exists() {
        return;
    }
    let text = format!(
        "A fabgate lab lives in this directory (created {}).\n\
         If its database goes missing, fabgate refuses to start a new one: restore a backup\n\
         (`fabgate restore FILE`) or start with --new-lab.\n",
        backup::utc_stamp(now)
    );
    if let Err(e) = std::fs::write(&path, text) {
        log::warn!("cannot write {}: {e}", path.display());
    }
}

/// The newest daily backup, if any.
pub fn newest_backup(backup_dir: &Path) -> Option<PathBuf> {
    backup::daily_backups(backup_dir).pop().map(|(_, p)| p)
}

/// `PRAGMA quick_check` (or the slower `integrity_check`) of the file at `path`, opened
/// read-only so a damaged file is never written. `Ok(())` when sound, else what is wrong.
pub fn check_file(path: &Path, full: bool) -> std::result::Result<(), String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    check(&conn, full)
}

/// The integrity check on an open connection: `Ok(())` or up to ten problems, one a line.
pub fn check(conn: &Connection, full: bool) -> std::result::Result<(), String> {
    let pragma = if full {
        "PRAGMA integrity_check(10)"
    } else {
        "PRAGMA quick_check(10)"
    };
    let rows: Vec<String> = conn
        .prepare(pragma)
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| e.to_string())?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(rows.join("\n"))
    }
}

/// Is this SQLite error a sign of a damaged file (rather than permissions or space)?
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    #[test]
    fn an_empty_directory_shows_no_previous_lab_and_a_used_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fabgate.db");
        let backups = dir.path().join("backups");
        std::fs::write(dir.path().join("fabgate.toml"), "").unwrap();
        assert!(previous_lab_signs(dir.path(), &db, &backups).is_empty());
        std::fs::write(&db, "").unwrap();
        assert_eq!(previous_lab_signs(dir.path(), &db, &backups).len(), 1);
        std::fs::remove_file(&db).unwrap();
        write_marker(dir.path(), 1_750_000_000);
        let signs = previous_lab_signs(dir.path(), &db, &backups);
        assert!(signs[0].contains(MARKER_FILE), "{signs:?}");
        std::fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
        std::fs::write(dir.path().join("fabgate.db-wal"), "x").unwrap();
        let signs = previous_lab_signs(dir.path(), &db, &backups);
        assert!(signs[0].contains("fabgate.db-wal"), "{signs:?}");
    }

    #[test]
    fn a_sound_database_passes_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.db");
        crate::store::Store::open(&path, Synchronous::Normal).unwrap();
        check_file(&path, false).unwrap();
        check_file(&path, true).unwrap();
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let e = check_file(&path, false).unwrap_err();
        assert!(e.contains("not a database"), "{e}");
    }
}
