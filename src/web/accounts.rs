//! Panel accounts: who may log in (members whose role has the panel capability), checking
//! and changing passwords, and the first administrator of a fresh lab.

use crate::passwords::{self, Verdict};
use crate::store::{self, Result};
use rusqlite::{params, Connection, OptionalExtension};

pub use crate::store::FIRST_ADMIN_EMAIL;

/// A panel account found by email.
pub struct Account {
    pub member_id: i64,
    pub password_hash: Option<String>,
    pub may_log_in: bool,
}

pub fn account_by_email(conn: &Connection, email: &str) -> Result<Option<Account>> {
    Ok(conn
        .prepare_cached(
            "SELECT m.member_id, m.password_hash, r.backend_admin = 1 AND m.disabled = 0 AND m.deleted = 0
             FROM members m JOIN roles r ON r.role_id = m.role_id
             WHERE m.email = ?1 COLLATE NOCASE",
        )?
        .query_row([email.trim()], |r| {
            Ok(Account {
                member_id: r.get(0)?,
                password_hash: r.get(1)?,
                may_log_in: r.get(2)?,
            })
        })
        .optional()?)
}

/// A hash to verify against when the account does not exist, so a wrong email costs as
/// much time as a wrong password (no account discovery by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| passwords::hash(&crate::broker::random_hex(16)))
}

/// Checks an email/password pair. On success returns the member id, re-hashing a legacy
/// (Werkzeug) hash to argon2id.
pub fn check_login(conn: &Connection, email: &str, password: &str) -> Result<Option<i64>> {
    let account = account_by_email(conn, email)?;
    let stored = account
        .as_ref()
        .and_then(|a| a.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let verdict = passwords::verify(&stored, password);
    let Some(account) = account.filter(|a| a.may_log_in && a.password_hash.is_some()) else {
        return Ok(None);
    };
    match verdict {
        Verdict::Wrong => Ok(None),
        Verdict::Ok => Ok(Some(account.member_id)),
        Verdict::OkRehash => {
            set_password(conn, account.member_id, password, false)?;
            log::info!(
                "member {}: imported password re-hashed with argon2id",
                account.member_id
            );
            Ok(Some(account.member_id))
        }
    }
}

/// Every login answer takes as long as the slowest check this lab can need, so its time
/// tells nothing about the account: an unknown address (a dummy argon2 check), an argon2
/// account and an imported Werkzeug one (pbkdf2 with 600,000 rounds is 2-4 times an
/// argon2 check) answer alike. At the first login the floor is measured: one dummy
/// argon2 check and one check of the costliest imported hash stored; it then only grows
/// with failed checks that took longer (never past `MAX_FLOOR`).
#[derive(Debug, Default)]
pub struct LoginFloor {
    floor: Option<std::time::Duration>,
}

/// A floor no check may push the answers past (a Pi under load must not make every
/// login take half a minute).
pub const MAX_FLOOR: std::time::Duration = std::time::Duration::from_secs(10);

impl LoginFloor {
    /// The floor, measured now if it never was (with the hashing lock held by the caller).
    pub fn get(&mut self, conn: &Connection) -> std::time::Duration {
        if let Some(f) = self.floor {
            return f;
        }
        let time = |stored: &str| {
            let t = std::time::Instant::now();
            let _ = passwords::verify(stored, "calibration, never a password");
            t.elapsed()
        };
        let mut floor = time(dummy_hash());
        if let Ok(Some(legacy)) = costliest_legacy_hash(conn) {
            floor = floor.max(time(&legacy));
        }
        let floor = floor.min(MAX_FLOOR);
        log::debug!(
            "panel: login answers take at least {} ms",
            floor.as_millis()
        );
        self.floor = Some(floor);
        floor
    }

    /// A failed check that took `took`: the floor grows to it.
    pub fn saw(&mut self, took: std::time::Duration) {
        if let Some(f) = self.floor.as_mut() {
            *f = (*f).max(took).min(MAX_FLOOR);
        }
    }
}

/// The stored imported (Werkzeug) hash that costs the most to check, by its parameters.
fn costliest_legacy_hash(conn: &Connection) -> Result<Option<String>> {
    let mut st = conn.prepare(
        "SELECT password_hash FROM members
         WHERE password_hash IS NOT NULL AND password_hash NOT LIKE '$argon2%'",
    )?;
    let hashes = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let cost = |h: &str| -> u64 {
        let method = h.split('$').next().unwrap_or("");
        let args: Vec<u64> = method.split(':').filter_map(|a| a.parse().ok()).collect();
        match (method.starts_with("scrypt"), args.as_slice()) {
            (true, [n, r, p]) => n.saturating_mul(*r).saturating_mul(*p),
            (false, [iterations]) => *iterations,
            (false, []) if method.starts_with("pbkdf2") => 260_000,
            _ => 0,
        }
    };
    Ok(hashes.into_iter().max_by_key(|h| cost(h)))
}

pub fn password_hash(conn: &Connection, member_id: i64) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT password_hash FROM members WHERE member_id = ?1",
            [member_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

pub fn set_password(
    conn: &Connection,
    member_id: i64,
    password: &str,
    must_change: bool,
) -> Result<()> {
    conn.execute(
        "UPDATE members SET password_hash = ?2, must_change_password = ?3 WHERE member_id = ?1",
        params![member_id, passwords::hash(password), must_change],
    )?;
    Ok(())
}

/// On a lab where no administrator can log into the panel, creates one with a random
/// one-time password, which the caller hands over once. It must be changed at first
/// login. `email` "" means the placeholder `FIRST_ADMIN_EMAIL`.
pub fn ensure_first_admin(
    conn: &mut Connection,
    email: &str,
    now: i64,
) -> Result<Option<(String, String)>> {
    let email = if email.trim().is_empty() {
        FIRST_ADMIN_EMAIL
    } else {
        email.trim()
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM members m JOIN roles r ON r.role_id = m.role_id
         WHERE r.backend_admin = 1 AND r.panel_level >= 3 AND m.disabled = 0 AND m.deleted = 0
         AND m.password_hash IS NOT NULL AND m.email IS NOT NULL AND m.email <> '')",
        [],
        |r| r.get(0),
    )?;
    if exists {
        return Ok(None);
    }
    let role = admin_role(&tx)?;
    let password = passwords::generate();
    let existing: Option<i64> = tx
        .query_row(
            "SELECT member_id FROM members WHERE email = ?1 COLLATE NOCASE",
            [email],
            |r| r.get(0),
        )
        .optional()?;
    let id = match existing {
        Some(id) => {
            tx.execute(
                "UPDATE members SET role_id = ?2, disabled = 0, deleted = 0 WHERE member_id = ?1",
                params![id, role],
            )?;
            id
        }
        None => {
            tx.execute(
                "INSERT INTO members (name, surname, role_id, email, created_at) VALUES ('Admin', '', ?1, ?2, ?3)",
                params![role, email, now],
            )?;
            tx.last_insert_rowid()
        }
    };
    set_password(&tx, id, &password, true)?;
    tx.commit()?;
    Ok(Some((email.to_string(), password)))
}

/// The role that makes its members administrators (panel level 3), made when there is none.
pub fn admin_role(conn: &Connection) -> Result<i64> {
    let role: Option<i64> = conn
        .query_row(
            "SELECT role_id FROM roles WHERE panel_level >= 3 AND backend_admin = 1
             ORDER BY authorize_all DESC, role_id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match role {
        Some(r) => r,
        None => {
            let name = if conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM roles WHERE role_name = 'panel admins')",
                [],
                |r| r.get::<_, bool>(0),
            )? {
                format!("panel admins {}", crate::broker::random_hex(2))
            } else {
                "panel admins".to_string()
            };
            conn.execute(
                "INSERT INTO roles (role_name, authorize_all, reserved, maintenance, backend_admin, panel_level)
                 VALUES (?1, 1, 1, 1, 1, 3)",
                [name],
            )?;
            conn.last_insert_rowid()
        }
    })
}

/// Gives a member a new one-time password (to change at the next login) and ends their
/// sessions; returns it, to be handed over once. For `fabgate user password` on the Pi:
/// the way back in for a lab whose administrators are all locked out.
pub fn one_time_password(conn: &Connection, member_id: i64) -> Result<String> {
    let password = passwords::generate();
    set_password(conn, member_id, &password, true)?;
    super::session::destroy_all(conn, member_id)?;
    Ok(password)
}

/// Can this member log into the panel once they have a password (a panel role, an
/// email, not disabled or deleted)? `Err` says why not, for the CLI.
pub fn panel_ready(conn: &Connection, member_id: i64) -> Result<std::result::Result<(), String>> {
    let (level, email, disabled, deleted): (i64, Option<String>, bool, bool) = conn.query_row(
        "SELECT CASE WHEN r.backend_admin = 1 THEN r.panel_level ELSE 0 END, m.email, m.disabled, m.deleted
         FROM members m JOIN roles r ON r.role_id = m.role_id WHERE m.member_id = ?1",
        [member_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok(if deleted {
        Err("the member is deleted".into())
    } else if disabled {
        Err("the member is disabled\nhint: `fabgate user enable` first".into())
    } else if level <= 0 {
        Err("the member's role has no panel access\nhint: give them a panel role in the panel, or `fabgate user add --admin` for a new administrator".into())
    } else if email.as_deref().is_none_or(|e| e.trim().is_empty()) {
        Err("the member has no email address to log in with".into())
    } else {
        Ok(())
    })
}

/// The lab's name for page titles.
pub fn lab_name(conn: &Connection) -> String {
    store::setting(conn, "lab_name")
        .ok()
        .flatten()
        .unwrap_or_else(|| "fabgate".into())
}
