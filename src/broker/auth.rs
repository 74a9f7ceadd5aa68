//! Board authentication at MQTT CONNECT: lab-wide or per-board username/password stored
//! hashed in the database, or anonymous when the config allows it. Board passwords are
//! either random (generated per board) or the lab-wide secret flashed in every board, and
//! are checked on every reconnect: a salted SHA-256 compared in constant time keeps a Pi
//! Zero from spending a second of argon2 per board per reconnect.

use super::acl::Credential;
use crate::store::{self, Store};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// Checks CONNECT credentials against `board_credentials`. Clone-able, thread-safe.
#[derive(Clone)]
pub struct Authenticator {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl Authenticator {
    pub fn new(store: &Store) -> store::Result<Authenticator> {
        Ok(Authenticator {
            conn: Arc::new(Mutex::new(store.connect()?)),
        })
    }

    /// The credential `username`/`password` stand for, or None when they match none.
    /// Logging and throttling of refusals are the gate's (`gate.rs`).
    pub fn login(&self, username: &str, password: &str) -> Option<Credential> {
        let found = match self.conn.lock() {
            Ok(conn) => store::credential(&conn, username),
            Err(_) => return None,
        };
        match found {
            Ok(Some(c)) if bool::from(hash_password(&c.salt, password).ct_eq(&c.hash)) => {
                Some(match c.machine_id {
                    Some(id) => Credential::Board {
                        machine: id.to_string(),
                    },
                    None => Credential::Lab,
                })
            }
            Ok(_) => None,
            Err(e) => {
                log::error!("MQTT login check failed: {e}");
                None
            }
        }
    }
}

/// SHA-256(salt || password).
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
