//! Panel sessions, CSRF tokens and login throttling. The cookie holds a random token; the
//! database holds only its SHA-256, with the member and the session's CSRF token.

use crate::store::Result;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "fg_session";

/// The logged-in staff member of a request.
#[derive(Debug, Clone)]
pub struct Session {
    pub member_id: i64,
    pub name: String,
    pub csrf: String,
    pub language: Option<String>,
    pub must_change_password: bool,
    pub card_uid: Option<String>,
    /// What the member's role allows in the panel.
    pub capability: super::access::Capability,
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Starts a session; returns the cookie token.
pub fn create(conn: &Connection, member_id: i64, now: i64) -> Result<String> {
    let token = crate::broker::random_hex(32);
    let csrf = crate::broker::random_hex(16);
    conn.execute(
        "INSERT INTO web_sessions (token_hash, member_id, csrf, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![token_hash(&token), member_id, csrf, now],
    )?;
    Ok(token)
}

/// The session of a cookie token, if it is alive and its member may still use the panel.
/// A session ends `idle_s` after its last request and, whatever the activity, `max_s`
/// after it began (a stolen cookie does not live forever). `last_seen` is written at most
/// every few minutes to spare the SD card.
pub fn load(
    conn: &Connection,
    token: &str,
    now: i64,
    idle_s: i64,
    max_s: i64,
) -> Result<Option<Session>> {
    if token.len() != 64 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let row = conn
        .prepare_cached(
            "SELECT s.member_id, m.name, s.csrf, m.language, m.must_change_password, s.last_seen, m.card_uid,
                    r.panel_level, s.created_at
             FROM web_sessions s JOIN members m ON m.member_id = s.member_id
             JOIN roles r ON r.role_id = m.role_id
             WHERE s.token_hash = ?1 AND r.backend_admin = 1 AND r.panel_level > 0
             AND m.disabled = 0 AND m.deleted = 0",
        )?
        .query_row([&hash], |r| {
            let level: i64 = r.get(7)?;
            let Some(capability) = super::access::Capability::from_level(level) else {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            };
            Ok((
                Session {
                    member_id: r.get(0)?,
                    name: r.get(1)?,
                    csrf: r.get(2)?,
                    language: r.get(3)?,
                    must_change_password: r.get(4)?,
                    card_uid: r.get(6)?,
                    capability,
                },
                (r.get::<_, i64>(5)?, r.get::<_, i64>(8)?),
            ))
        })
        .optional()?;
    let Some((session, (last_seen, created_at))) = row else {
        return Ok(None);
    };
    if now - last_seen > idle_s || now - created_at > max_s {
        destroy(conn, token)?;
        return Ok(None);
    }
    if now - last_seen > 300 {
        conn.execute(
            "UPDATE web_sessions SET last_seen = ?2 WHERE token_hash = ?1",
            params![hash, now],
        )?;
    }
    Ok(Some(session))
}

pub fn destroy(conn: &Connection, token: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM web_sessions WHERE token_hash = ?1",
        [token_hash(token)],
    )?;
    Ok(())
}

/// Ends every session of a member (password changed, member disabled).
pub fn destroy_all(conn: &Connection, member_id: i64) -> Result<()> {
    conn.execute("DELETE FROM web_sessions WHERE member_id = ?1", [member_id])?;
    Ok(())
}

pub fn csrf_ok(session: &Session, submitted: &str) -> bool {
    session.csrf.len() == submitted.len()
        && bool::from(session.csrf.as_bytes().ct_eq(submitted.as_bytes()))
}

/// Failed logins counted per client address and per account in a sliding window.
#[derive(Default)]
pub struct Throttle {
    failures: HashMap<String, (u32, Instant)>,
}

/// Failures allowed per window before logins are refused.
pub const MAX_FAILURES_PER_IP: u32 = 10;
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

impl Throttle {
    fn count(&self, key: &str) -> u32 {
        match self.failures.get(key) {
            Some((n, since)) if since.elapsed() < WINDOW => *n,
            _ => 0,
        }
    }

    /// May this client try to log into this account now?
    pub fn allowed(&self, ip: &str, account: &str) -> bool {
        self.count(&format!("ip:{ip}")) < MAX_FAILURES_PER_IP
            && self.count(&format!("acct:{}", account.to_lowercase())) < MAX_FAILURES_PER_ACCOUNT
    }

    pub fn failed(&mut self, ip: &str, account: &str) {
        for key in [
            format!("ip:{ip}"),
            format!("acct:{}", account.to_lowercase()),
        ] {
            let e = self.failures.entry(key).or_insert((0, Instant::now()));
            if e.1.elapsed() >= WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
        if self.failures.len() > 10_000 {
            self.failures
                .retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
    }

    pub fn succeeded(&mut self, account: &str) {
        self.failures
            .remove(&format!("acct:{}", account.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_ok_case_table() {
        let session = Session {
            member_id: 1,
            name: "Anna".into(),
            csrf: "0123456789abcdef0123456789abcdef".into(),
            language: None,
            must_change_password: false,
            card_uid: None,
            capability: crate::web::access::Capability::Staff,
        };
        let cases: &[(&str, bool)] = &[
            ("0123456789abcdef0123456789abcdef", true),
            ("", false),
            ("0123456789abcdef0123456789abcdeF", false),
            ("0123456789ABCDEF0123456789ABCDEF", false),
            ("0123456789abcdef0123456789abcde", false),
            ("0123456789abcdef0123456789abcdef0", false),
            (" 0123456789abcdef0123456789abcdef", false),
            ("0123456789abcdef", false),
            ("x123456789abcdef0123456789abcdef", false),
        ];
        for &(submitted, want) in cases {
            assert_eq!(csrf_ok(&session, submitted), want, "{submitted:?}");
        }
        // A session without a token (never the case, but no empty match either).
        let empty = Session {
            csrf: String::new(),
            ..session
        };
        assert!(!csrf_ok(&empty, "0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn throttle_counts_per_ip_and_account() {
        let mut t = Throttle::default();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            assert!(t.allowed("1.2.3.4", "a@x"));
            t.failed("1.2.3.4", "A@x");
        }
        assert!(
            !t.allowed("9.9.9.9", "a@x"),
            "account locked from any address"
        );
        assert!(t.allowed("1.2.3.4", "b@x"));
        for _ in 0..MAX_FAILURES_PER_IP {
            t.failed("5.5.5.5", &crate::broker::random_hex(4));
        }
        assert!(
            !t.allowed("5.5.5.5", "c@x"),
            "address locked for every account"
        );
    }
}
