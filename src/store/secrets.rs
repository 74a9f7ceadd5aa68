//! Run-time secrets kept in the settings table (the panel's SMTP password, the wall
//! screen's URL secret) are sealed with ChaCha20-Poly1305 under a key in
//! `<data dir>/secrets.key` (0600, made at the first secret). The key is never in the
//! database, so no copy of the database (daily backups, `fabgate backup`, a downloaded
//! one) can open them: a backup restored on another Pi without the key file asks for the
//! secrets again instead of leaking them.
//!
//! Why a key file rather than a separate secrets file: the settings stay in one
//! transactional place (a password and the server it belongs to change together, and a
//! new SMTP server clears the old password in the same commit), while the one thing
//! backups must not carry is 32 bytes that never change. The key's name in the AEAD's
//! associated data binds each sealed value to its setting, so a value cannot be moved to
//! another key.

use super::{set_setting, setting, Error, Result};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// The key file, beside the database.
pub const KEY_FILE: &str = "secrets.key";

/// Settings that hold secrets: sealed at rest, left out of downloaded backups.
pub const SECRET_SETTINGS: &[&str] = &["smtp_password", "wall_secret"];

const SEALED: &str = "sealed1:";

/// Where the key of the database `conn` is opened on lives.
fn key_path(conn: &Connection) -> Result<PathBuf> {
    let db = conn
        .path()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::Invalid("secrets need a database file".into()))?;
    Ok(Path::new(db)
        .parent()
        .unwrap_or(Path::new("."))
        .join(KEY_FILE))
}

/// Reads the key; with `create`, makes it (0600, never readable by others for a moment)
/// when there is none.
fn load_key(path: &Path, create: bool) -> Result<Option<LessSafeKey>> {
    let Some(raw) = load_raw(path, create)? else {
        return Ok(None);
    };
    let key = UnboundKey::new(&CHACHA20_POLY1305, &raw)
        .map_err(|_| Error::Invalid("the secrets key is unusable".into()))?;
    Ok(Some(LessSafeKey::new(key)))
}

/// A token only this lab's key file can make from `nonce` (hex of
/// HMAC-SHA256(key-derived subkey, purpose || nonce)): what is stored (a nonce, the
/// token's hash) is useless in a copy of the database, yet the token can be made again
/// for each delivery attempt of the email that carries it (the same link, the same
/// Message-ID). Makes the key file when there is none.
pub fn derive_token(conn: &Connection, purpose: &str, nonce: &[u8]) -> Result<String> {
    use ring::hmac;
    let raw =
        load_raw(&key_path(conn)?, true)?.ok_or_else(|| Error::Invalid("no secrets key".into()))?;
    let root = hmac::Key::new(hmac::HMAC_SHA256, &raw);
    let sub = hmac::sign(&root, b"fabgate tokens v1");
    let key = hmac::Key::new(hmac::HMAC_SHA256, sub.as_ref());
    let mut msg = purpose.as_bytes().to_vec();
    msg.push(0);
    msg.extend_from_slice(nonce);
    Ok(hex::encode(hmac::sign(&key, &msg).as_ref()))
}

fn load_raw(path: &Path, create: bool) -> Result<Option<Vec<u8>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let fresh = crate::broker::random_bytes(32);
            crate::passwords::create_private(path, &hex::encode(&fresh)).map_err(|e| {
                Error::Invalid(format!(
                    "cannot create the key file {}: {e}",
                    path.display()
                ))
            })?;
            log::info!(
                "secrets: new key file {} (keep it out of backups you hand around)",
                path.display()
            );
            // Another process may have won the race: read what is there.
            std::fs::read(path).map_err(|e| {
                Error::Invalid(format!("cannot read the key file {}: {e}", path.display()))
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Invalid(format!(
                "cannot read the key file {}: {e}",
                path.display()
            )))
        }
    };
    let raw = hex::decode(String::from_utf8_lossy(&bytes).trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "the key file {} is not 64 hex digits",
                path.display()
            ))
        })?;
    Ok(Some(raw))
}

fn seal(key: &LessSafeKey, name: &str, value: &str) -> Result<String> {
    let nonce_bytes = crate::broker::random_bytes(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes)
        .map_err(|_| Error::Invalid("bad nonce length".into()))?;
    let mut data = value.as_bytes().to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(name.as_bytes()), &mut data)
        .map_err(|_| Error::Invalid("cannot seal a secret".into()))?;
    let mut out = nonce_bytes;
    out.extend_from_slice(&data);
    Ok(format!("{SEALED}{}", hex::encode(out)))
}

fn open(key: &LessSafeKey, name: &str, stored: &str) -> Option<String> {
    let mut raw = hex::decode(stored.strip_prefix(SEALED)?).ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let nonce = Nonce::try_assume_unique_for_key(&raw[..NONCE_LEN]).ok()?;
    let mut data = raw.split_off(NONCE_LEN);
    let plain = key
        .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// The secret setting `name`; `None` when unset, or when it cannot be opened (the key
/// file is missing or another one: a backup restored elsewhere; the settings page says
/// so, see `has_secret`).
pub fn secret(conn: &Connection, name: &str) -> Result<Option<String>> {
    let Some(stored) = setting(conn, name)?.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !stored.starts_with(SEALED) {
        // Written before sealing existed and not sealed yet (`seal_plaintext` runs at start).
        return Ok(Some(stored));
    }
    let path = key_path(conn)?;
    let opened = load_key(&path, false)?.and_then(|key| open(&key, name, &stored));
    if opened.is_none() {
        log::debug!(
            "secrets: the stored {name} cannot be opened with {} (missing or another key)",
            path.display()
        );
    }
    Ok(opened)
}

/// Is a secret stored (whether or not this key opens it)?
pub fn has_secret(conn: &Connection, name: &str) -> Result<bool> {
    Ok(setting(conn, name)?.is_some_and(|v| !v.is_empty()))
}

/// Stores `value` sealed; "" removes the secret.
pub fn set_secret(conn: &Connection, name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        conn.execute("DELETE FROM settings WHERE key = ?1", [name])?;
        return Ok(());
    }
    let key =
        load_key(&key_path(conn)?, true)?.ok_or_else(|| Error::Invalid("no secrets key".into()))?;
    set_setting(conn, name, &seal(&key, name, value)?)
}

/// Seals secret settings still stored in clear (written by an older fabgate); run at the
/// daemon's start. Returns how many were sealed.
pub fn seal_plaintext(conn: &Connection) -> Result<usize> {
    // The clear value's bytes are zeroed where they were, not left in a free page (and,
    // after the checkpoint, not in the write-ahead log either).
    conn.execute_batch("PRAGMA secure_delete = ON")?;
    let mut sealed = 0;
    for name in SECRET_SETTINGS {
        if let Some(v) = setting(conn, name)? {
            if !v.is_empty() && !v.starts_with(SEALED) {
                set_secret(conn, name, &v)?;
                sealed += 1;
            }
        }
    }
    if sealed > 0 {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        log::info!("secrets: {sealed} stored in clear by an older version now sealed");
    }
    conn.execute_batch("PRAGMA secure_delete = OFF")?;
    Ok(sealed)
}

/// Takes group-write and all "other" rights off the lab's files that an older version,
/// or a start outside systemd with a loose umask, left readable (the database and its
/// journals, the backups, the panel's TLS files); returns how many it changed.
pub fn tighten_modes(data_dir: &Path, database: &Path) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = vec![database.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut p = database.as_os_str().to_owned();
        p.push(suffix);
        paths.push(PathBuf::from(p));
    }
    for sub in ["backups", "tls"] {
        if let Ok(entries) = std::fs::read_dir(data_dir.join(sub)) {
            paths.extend(entries.flatten().map(|e| e.path()));
        }
    }
    let mut changed = 0;
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_file() && mode & 0o027 != 0 {
            let tight = std::fs::Permissions::from_mode(mode & !0o027);
            if std::fs::set_permissions(&p, tight).is_ok() {
                changed += 1;
            }
        }
    }
    if changed > 0 {
        log::info!("{changed} files of the lab made private (no access for others)");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::Store;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_sealed_bound_to_their_name_and_need_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let db = s.connect().unwrap();
        assert_eq!(secret(&db, "smtp_password").unwrap(), None);
        set_secret(&db, "smtp_password", "p4ss word").unwrap();
        let key = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let stored = setting(&db, "smtp_password").unwrap().unwrap();
        assert!(
            stored.starts_with(SEALED) && !stored.contains("p4ss"),
            "{stored}"
        );
        assert_eq!(
            secret(&db, "smtp_password").unwrap().as_deref(),
            Some("p4ss word")
        );
        // Moved to another setting, it does not open.
        set_setting(&db, "wall_secret", &stored).unwrap();
        assert_eq!(secret(&db, "wall_secret").unwrap(), None);
        // Without the key (a backup restored elsewhere): stored, but not readable.
        std::fs::remove_file(&key).unwrap();
        assert!(has_secret(&db, "smtp_password").unwrap());
        assert_eq!(secret(&db, "smtp_password").unwrap(), None);
        set_secret(&db, "smtp_password", "").unwrap();
        assert!(!has_secret(&db, "smtp_password").unwrap());
    }

    #[test]
    fn derived_tokens_need_the_key_and_differ_by_purpose_and_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let db = s.connect().unwrap();
        let a = derive_token(&db, "reset", b"n1").unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(derive_token(&db, "reset", b"n1").unwrap(), a);
        assert_ne!(derive_token(&db, "reset", b"n2").unwrap(), a);
        assert_ne!(derive_token(&db, "other", b"n1").unwrap(), a);
        // Another key file (a backup restored elsewhere): another token.
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert_ne!(derive_token(&db, "reset", b"n1").unwrap(), a);
    }

    #[test]
    fn old_clear_values_are_sealed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let db = s.connect().unwrap();
        set_setting(&db, "smtp_password", "old clear").unwrap();
        set_setting(&db, "lab_name", "Lab").unwrap();
        assert_eq!(seal_plaintext(&db).unwrap(), 1);
        assert_eq!(seal_plaintext(&db).unwrap(), 0);
        assert!(setting(&db, "smtp_password")
            .unwrap()
            .unwrap()
            .starts_with(SEALED));
        assert_eq!(
            secret(&db, "smtp_password").unwrap().as_deref(),
            Some("old clear")
        );
        assert_eq!(setting(&db, "lab_name").unwrap().as_deref(), Some("Lab"));
    }
}
