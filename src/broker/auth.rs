//! Board authentication at MQTT CONNECT: lab-wide or per-board username/password stored
//! hashed in the database, or anonymous when the config allows it.
//!
//! Board passwords are stored as argon2id (like panel passwords, issue 11): the lab-wide
//! one is chosen by people and flashed in every board, and a copy of the database must
//! not give it away in a few guesses. The argon2 input is `hex(SHA-256(salt || password))`,
//! which lets the salted SHA-256 hashes of older versions be wrapped in argon2 without
//! knowing the password (`upgrade_legacy`, run in the background at start; a legacy row
//! that still turns up is wrapped at its next good login). Boards reconnect often, and
//! argon2 costs the better part of a second on a Pi Zero: a login that passed is
//! remembered in memory only (a keyed digest, never the password, and only while the
//! stored hash is the same), so a known board's reconnects cost a hash compare.

use super::acl::Credential;
use crate::store::{self, Store};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// Logins remembered at most (far more than a lab has boards; cleared when full).
const REMEMBERED: usize = 1024;

/// username -> (stored hash, keyed digest of the password that passed).
type Passed = HashMap<String, (Vec<u8>, [u8; 32])>;

/// Checks CONNECT credentials against `board_credentials`. Clone-able, thread-safe.
#[derive(Clone)]
pub struct Authenticator {
    conn: Arc<Mutex<rusqlite::Connection>>,
    passed: Arc<Mutex<Passed>>,
    /// Per process: the digests above mean nothing outside it.
    key: Arc<[u8; 32]>,
}

impl Authenticator {
    pub fn new(store: &Store) -> store::Result<Authenticator> {
        let mut key = [0u8; 32];
        key.copy_from_slice(&random_bytes(32));
        let auth = Authenticator {
            conn: Arc::new(Mutex::new(store.connect()?)),
            passed: Arc::default(),
            key: Arc::new(key),
        };
        let background = store.connect()?;
        let spawned = std::thread::Builder::new()
            .name("board-hashes".into())
            .spawn(move || match upgrade_legacy(&background) {
                Ok(0) => {}
                Ok(n) => log::info!("broker: {n} board credentials re-hashed with argon2id"),
                Err(e) => log::error!("broker: re-hashing board credentials: {e}"),
            });
        if let Err(e) = spawned {
            log::error!("broker: cannot start re-hashing board credentials: {e}");
        }
        Ok(auth)
    }

    /// The credential `username`/`password` stand for, or None when they match none.
    /// Logging and throttling of refusals are the gate's (`gate.rs`).
    pub fn login(&self, username: &str, password: &str) -> Option<Credential> {
        let Ok(conn) = self.conn.lock() else {
            return None;
        };
        let c = match store::credential(&conn, username) {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            Err(e) => {
                log::error!("MQTT login check failed: {e}");
                return None;
            }
        };
        let ok = if is_argon2(&c.hash) {
            let digest = self.digest(username, password);
            let remembered = self.passed.lock().ok().is_some_and(|m| {
                m.get(username)
                    .is_some_and(|(h, d)| *h == c.hash && bool::from(d.ct_eq(&digest)))
            });
            remembered || {
                let ok = verify_argon2(&c.hash, &argon2_input(&c.salt, password));
                if ok {
                    if let Ok(mut m) = self.passed.lock() {
                        if m.len() >= REMEMBERED {
                            m.clear();
                        }
                        m.insert(username.to_string(), (c.hash.clone(), digest));
                    }
                }
                ok
            }
        } else {
            let ok =
                !c.hash.is_empty() && bool::from(hash_password(&c.salt, password).ct_eq(&c.hash));
            if ok {
                if let Err(e) = wrap(&conn, username, &c.hash) {
                    log::error!("broker: re-hashing a board credential: {e}");
                }
            }
            ok
        };
        ok.then(|| match c.machine_id {
            Some(id) => Credential::Board {
                machine: id.to_string(),
            },
            None => Credential::Lab,
        })
    }

    fn digest(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(*self.key);
        h.update(username.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }
}

fn is_argon2(hash: &[u8]) -> bool {
    hash.starts_with(b"$argon2")
}

/// What argon2 hashes for a board password: hex(SHA-256(salt || password)).
fn argon2_input(salt: &[u8], password: &str) -> String {
    hex::encode(hash_password(salt, password))
}

fn argon2_of(input: &str) -> Vec<u8> {
    let salt = SaltString::encode_b64(&random_bytes(16)).expect("16 bytes encode");
    let hashed = Argon2::default()
        .hash_password(input.as_bytes(), &salt)
        .expect("argon2 with default parameters never fails")
        .to_string()
        .into_bytes();
    crate::passwords::give_back_memory();
    hashed
}

fn verify_argon2(stored: &[u8], input: &str) -> bool {
    let ok = std::str::from_utf8(stored)
        .ok()
        .and_then(|s| PasswordHash::new(s).ok())
        .is_some_and(|h| {
            Argon2::default()
                .verify_password(input.as_bytes(), &h)
                .is_ok()
        });
    crate::passwords::give_back_memory();
    ok
}

/// (salt, hash) to store for a new board password.
pub fn board_secret(password: &str) -> (Vec<u8>, Vec<u8>) {
    let salt = random_bytes(16);
    let hash = argon2_of(&argon2_input(&salt, password));
    (salt, hash)
}

/// Wraps one legacy SHA-256 row in argon2 (only if it is still that hash).
fn wrap(conn: &rusqlite::Connection, username: &str, old: &[u8]) -> store::Result<()> {
    let hash = argon2_of(&hex::encode(old));
    conn.execute(
        "UPDATE board_credentials SET hash = ?3 WHERE username = ?1 AND hash = ?2",
        rusqlite::params![username, old, hash],
    )?;
    Ok(())
}

/// Wraps every salted SHA-256 credential of an older version in argon2; returns how many.
pub fn upgrade_legacy(conn: &rusqlite::Connection) -> store::Result<usize> {
    let legacy: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT username, hash FROM board_credentials")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(String, Vec<u8>)>>>()?
        .into_iter()
        .filter(|(_, h)| !h.is_empty() && !is_argon2(h))
        .collect();
    for (username, hash) in &legacy {
        wrap(conn, username, hash)?;
    }
    Ok(legacy.len())
}

/// SHA-256(salt || password): the board hash of older versions, and the argon2 input.
pub fn hash_password(salt: &[u8], password: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    h.finalize().to_vec()
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source works");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    #[test]
    fn new_legacy_and_wrapped_credentials_all_log_in_and_end_up_argon2() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let db = s.connect().unwrap();
        db.execute(
            "INSERT INTO machines (machine_id, machine_name) VALUES (1, 'M1')",
            [],
        )
        .unwrap();
        let (salt, hash) = board_secret("lab-wide pw");
        assert!(is_argon2(&hash));
        store::insert_credential(&db, "lab", None, &salt, &hash, 1).unwrap();
        let old_salt = b"0123456789abcdef";
        let legacy = hash_password(old_salt, "board pw");
        store::insert_credential(&db, "board-1", Some(1), old_salt, &legacy, 1).unwrap();
        store::insert_credential(&db, "blank", None, b"", b"", 1).unwrap();
        let auth = Authenticator::new(&s).unwrap();
        assert_eq!(auth.login("lab", "lab-wide pw"), Some(Credential::Lab));
        assert_eq!(auth.login("lab", "lab-wide pw"), Some(Credential::Lab));
        assert_eq!(auth.login("lab", "lab-wide pW"), None);
        assert_eq!(
            auth.login("board-1", "board pw"),
            Some(Credential::Board {
                machine: "1".into()
            })
        );
        assert_eq!(auth.login("board-1", "board pwx"), None);
        assert_eq!(auth.login("blank", ""), None);
        // Whichever came first (the background pass or the login), the row is argon2 now
        // and the password still works.
        upgrade_legacy(&db).unwrap();
        let c = store::credential(&db, "board-1").unwrap().unwrap();
        assert!(is_argon2(&c.hash), "{:?}", String::from_utf8_lossy(&c.hash));
        let fresh = Authenticator::new(&s).unwrap();
        assert!(fresh.login("board-1", "board pw").is_some());
        assert!(fresh.login("board-1", "board").is_none());
        // A replaced password: the remembered login does not outlive it.
        let (salt, hash) = board_secret("new pw");
        store::replace_credential_secret(&db, "lab", &salt, &hash, 2).unwrap();
        assert_eq!(auth.login("lab", "lab-wide pw"), None);
        assert_eq!(auth.login("lab", "new pw"), Some(Credential::Lab));
    }
}
