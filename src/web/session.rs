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

/// Failed logins, per (client address, account) and per client address. Each failure past
/// a few free ones doubles the wait before that pair (or that address) may try again, up
/// to `MAX_DELAY`: guessing gets slow, but nobody can lock an account for its owner, who
/// logs in from another address (or the same one after the wait) as usual. Forgotten
/// `FORGET` after the wait of the last failure.
#[derive(Default)]
pub struct Throttle {
    entries: HashMap<String, Failures>,
}

struct Failures {
    count: u32,
    last: Instant,
}

/// Failures of one address on one account before the waits begin.
pub const FREE_PER_ACCOUNT: u32 = 3;
/// Failures of one address on any accounts before the waits begin.
pub const FREE_PER_IP: u32 = 10;
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
pub const FORGET: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most (every address on the LAN, many times over).
const MAX_ENTRIES: usize = 10_000;

/// The wait after `count` failures of which `free` cost nothing: 2 s, 4 s, 8 s...
pub fn delay(count: u32, free: u32) -> Duration {
    if count < free {
        return Duration::ZERO;
    }
    let doublings = (count - free + 1).min(20);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

impl Throttle {
    fn keys(ip: &str, account: &str) -> [(String, u32); 2] {
        [
            (
                format!("pair:{ip}:{}", account.trim().to_lowercase()),
                FREE_PER_ACCOUNT,
            ),
            (format!("ip:{ip}"), FREE_PER_IP),
        ]
    }

    /// How long this address must still wait before it may try this account (zero: now).
    pub fn wait(&self, ip: &str, account: &str) -> Duration {
        Self::keys(ip, account)
            .iter()
            .filter_map(|(key, free)| {
                let f = self.entries.get(key)?;
                delay(f.count, *free).checked_sub(f.last.elapsed())
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Counts a failure; returns the wait it imposes on the pair.
    pub fn failed(&mut self, ip: &str, account: &str) -> Duration {
        let now = Instant::now();
        let mut imposed = Duration::ZERO;
        for (key, free) in Self::keys(ip, account) {
            let f = self.entries.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if f.last.elapsed() > delay(f.count, free) + FORGET {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            imposed = imposed.max(delay(f.count, free));
        }
        if self.entries.len() > MAX_ENTRIES {
            self.entries
                .retain(|_, f| f.last.elapsed() < MAX_DELAY + FORGET);
            if self.entries.len() > MAX_ENTRIES {
                // Addresses without a wait first; a flood of new ones cannot grow memory.
                self.entries.retain(|k, f| {
                    let free = if k.starts_with("ip:") {
                        FREE_PER_IP
                    } else {
                        FREE_PER_ACCOUNT
                    };
                    f.count >= free
                });
                if self.entries.len() > MAX_ENTRIES {
                    self.entries.clear();
                }
            }
        }
        imposed
    }

    /// A good login clears the pair (the address's count stays: spraying accounts from one
    /// address with one good login in between does not reset it).
    pub fn succeeded(&mut self, ip: &str, account: &str) {
        let [(pair, _), _] = Self::keys(ip, account);
        self.entries.remove(&pair);
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
    fn throttle_waits_grow_per_address_and_account_and_never_lock_others_out() {
        let mut t = Throttle::default();
        for i in 0..FREE_PER_ACCOUNT {
            assert_eq!(t.wait("1.2.3.4", "a@x"), Duration::ZERO, "failure {i}");
            t.failed("1.2.3.4", "A@x");
        }
        let first = t.wait("1.2.3.4", "a@x");
        assert!(first > Duration::from_secs(1) && first <= Duration::from_secs(2));
        assert_eq!(t.failed("1.2.3.4", "a@x"), Duration::from_secs(4));
        // The same account from elsewhere, and another account from here: no wait.
        assert_eq!(t.wait("9.9.9.9", "a@x"), Duration::ZERO);
        assert_eq!(t.wait("1.2.3.4", "b@x"), Duration::ZERO);
        t.succeeded("1.2.3.4", "a@x");
        assert_eq!(t.wait("1.2.3.4", "a@x"), Duration::ZERO);
        // Spraying accounts from one address.
        for _ in 0..FREE_PER_IP {
            t.failed("5.5.5.5", &crate::broker::random_hex(4));
        }
        assert!(t.wait("5.5.5.5", "c@x") > Duration::ZERO);
        assert_eq!(t.wait("6.6.6.6", "c@x"), Duration::ZERO);
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        assert_eq!(delay(2, 3), Duration::ZERO);
        assert_eq!(delay(3, 3), Duration::from_secs(2));
        assert_eq!(delay(4, 3), Duration::from_secs(4));
        assert_eq!(delay(12, 3), MAX_DELAY);
        assert_eq!(delay(u32::MAX, 3), MAX_DELAY);
    }

    #[test]
    fn a_flood_of_addresses_stays_bounded() {
        let mut t = Throttle::default();
        for i in 0..(MAX_ENTRIES + 10) {
            t.failed(&format!("10.0.{}.{}", i / 256, i % 256), "a@x");
        }
        assert!(t.entries.len() <= MAX_ENTRIES);
    }
}
