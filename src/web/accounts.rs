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
