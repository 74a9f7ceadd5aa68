//! SQL of the GDPR rules: the "Anonymous" member that keeps anonymised history, the
//! retention purge, one member's data export and erasure. What is old enough and what an
//! erasure must cover is decided in `lab::retention`; these functions run inside the
//! caller's transaction.

use super::admin::{InterventionRow, MemberRow, UnknownCardRow, UseExport};
use super::Result;
use rusqlite::{named_params, params, Connection, OptionalExtension};
use serde::Serialize;

/// Name of the reserved role and of the member that anonymised history belongs to
/// (FabOMatic's names, so an imported lab keeps using its own).
pub const ANONYMOUS: &str = "Anonymous";

/// Setting set by an import (its time): the retention of the imported history waits for
/// staff to confirm it (issue 12).
pub const RETENTION_HOLD: &str = "retention_hold_imported";

pub fn count_unknown_cards_before(conn: &Connection, cutoff: i64) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM unknown_cards WHERE timestamp < ?1",
        [cutoff],
        |r| r.get(0),
    )?)
}

/// The Anonymous member, if the lab has one.
pub fn anonymous_member_id(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT m.member_id FROM members m JOIN roles r ON r.role_id = m.role_id
             WHERE m.name = ?1 AND r.role_name = ?1 ORDER BY m.member_id LIMIT 1",
        )?
        .query_row([ANONYMOUS], |r| r.get(0))
        .optional()?)
}

/// Creates the Anonymous member (and its reserved role when the lab lacks it): no card,
/// no email, disabled, so it can never use a machine.
pub fn insert_anonymous_member(conn: &Connection, now: i64) -> Result<i64> {
    let role: Option<i64> = conn
        .prepare_cached("SELECT role_id FROM roles WHERE role_name = ?1")?
        .query_row([ANONYMOUS], |r| r.get(0))
        .optional()?;
    let role = match role {
        Some(id) => id,
        None => {
            conn.execute(
                "INSERT INTO roles (role_name, authorize_all, maintenance, backend_admin, reserved)
                 VALUES (?1, 0, 0, 0, 1)",
                [ANONYMOUS],
            )?;
            conn.last_insert_rowid()
        }
    };
    conn.execute(
        "INSERT INTO members (name, surname, role_id, disabled, created_at)
         VALUES (?1, '', ?2, 1, ?3)",
        params![ANONYMOUS, role, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The uses retention anonymises (a condition on `uses`): closed, last heartbeat before
/// `:uses_before`, not already the Anonymous member's (`:anon`, NULL when there is none).
/// `sync::calendar::retention_events` finds their events with it before they change.
pub const USES_TO_ANONYMISE: &str =
    "end_ts IS NOT NULL AND last_seen < :uses_before AND member_id IS NOT :anon";

/// How many closed uses older than `cutoff` (by last heartbeat) belong to someone else.
pub fn count_uses_to_anonymise(conn: &Connection, anon: Option<i64>, cutoff: i64) -> Result<i64> {
    Ok(conn.query_row(
        &format!("SELECT COUNT(*) FROM uses WHERE {USES_TO_ANONYMISE}"),
        named_params! { ":anon": anon, ":uses_before": cutoff },
        |r| r.get(0),
    )?)
}

pub fn count_interventions_to_anonymise(
    conn: &Connection,
    anon: Option<i64>,
    cutoff: i64,
) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM interventions WHERE timestamp < ?2 AND member_id IS NOT ?1",
        params![anon, cutoff],
        |r| r.get(0),
    )?)
}

/// Re-assigns closed uses whose last heartbeat is older than `cutoff` to `anon`.
pub fn anonymise_uses_before(conn: &Connection, anon: i64, cutoff: i64) -> Result<usize> {
    Ok(conn.execute(
        &format!("UPDATE uses SET member_id = :anon WHERE {USES_TO_ANONYMISE}"),
        named_params! { ":anon": anon, ":uses_before": cutoff },
    )?)
}

pub fn anonymise_interventions_before(conn: &Connection, anon: i64, cutoff: i64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE interventions SET member_id = ?1 WHERE timestamp < ?2 AND member_id <> ?1",
        params![anon, cutoff],
    )?)
}

pub fn delete_unknown_cards_before(conn: &Connection, cutoff: i64) -> Result<usize> {
    Ok(conn.execute("DELETE FROM unknown_cards WHERE timestamp < ?1", [cutoff])?)
}

/// A machine a member is authorized on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberAuthorization {
    pub machine_id: i64,
    pub machine: String,
}

/// Everything the lab holds about one member (a GDPR access request). The password hash
/// is left out (`profile.has_password` says whether there is one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberData {
    pub profile: MemberRow,
    pub authorizations: Vec<MemberAuthorization>,
    pub uses: Vec<UseExport>,
    pub interventions: Vec<InterventionRow>,
    /// Taps of the member's card recorded while it was not assigned to anyone.
    pub unknown_cards: Vec<UnknownCardRow>,
}

pub fn member_data(conn: &Connection, profile: MemberRow) -> Result<MemberData> {
    let id = profile.id;
    let authorizations = conn
        .prepare(
            "SELECT a.machine_id, COALESCE(m.machine_name, '') FROM authorizations a
             LEFT JOIN machines m ON m.machine_id = a.machine_id
             WHERE a.member_id = ?1 ORDER BY a.machine_id",
        )?
        .query_map([id], |r| {
            Ok(MemberAuthorization {
                machine_id: r.get(0)?,
                machine: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let uses = conn
        .prepare(&format!(
            "{} WHERE member_id = ?1 ORDER BY start_ts, use_id",
            super::admin::USE_EXPORT_SELECT
        ))?
        .query_map([id], super::admin::use_export_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let interventions = conn
        .prepare(
            "SELECT intervention_id, maintenance_id, machine_id, member_id, timestamp, replay
             FROM interventions WHERE member_id = ?1 ORDER BY timestamp, intervention_id",
        )?
        .query_map([id], |r| {
            Ok(InterventionRow {
                id: r.get(0)?,
                maintenance_id: r.get(1)?,
                machine_id: r.get(2)?,
                member_id: r.get(3)?,
                timestamp: r.get(4)?,
                replay: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let unknown_cards = match &profile.card_uid {
        Some(uid) => unknown_cards_of(conn, uid)?,
        None => Vec::new(),
    };
    Ok(MemberData {
        profile,
        authorizations,
        uses,
        interventions,
        unknown_cards,
    })
}

fn unknown_cards_of(conn: &Connection, uid: &str) -> Result<Vec<UnknownCardRow>> {
    let rows = conn
        .prepare(
            "SELECT id, card_uid, machine_id, timestamp FROM unknown_cards
             WHERE card_uid = ?1 COLLATE NOCASE ORDER BY timestamp, id",
        )?
        .query_map([uid], |r| {
            Ok(UnknownCardRow {
                id: r.get(0)?,
                card_uid: r.get(1)?,
                machine_id: r.get(2)?,
                timestamp: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// What an erasure changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub uses: usize,
    pub interventions: usize,
    pub authorizations: usize,
    pub unknown_cards: usize,
    pub board_requests: usize,
    /// Emails to the member not sent yet (waiting or failed), deleted.
    pub emails_unsent: usize,
    /// Records of emails sent to the member, whose address became `ERASED_ADDRESS`.
    pub emails_sent: usize,
}

/// Name an erased member's row keeps.
pub const ERASED_NAME: &str = "Erased member";
/// What the outbox's records of delivered email show instead of an erased address.
pub const ERASED_ADDRESS: &str = "(erased)";

/// Erases one member: history re-assigned to `anon`, authorizations and card traces
/// deleted, the row kept as an "Erased member" tombstone without card, email or password.
pub fn erase_member(conn: &Connection, member: &MemberRow, anon: i64) -> Result<Erased> {
    let id = member.id;
    let mut done = Erased {
        uses: conn.execute(
            "UPDATE uses SET member_id = ?2 WHERE member_id = ?1",
            params![id, anon],
        )?,
        interventions: conn.execute(
            "UPDATE interventions SET member_id = ?2 WHERE member_id = ?1",
            params![id, anon],
        )?,
        authorizations: conn.execute("DELETE FROM authorizations WHERE member_id = ?1", [id])?,
        ..Erased::default()
    };
    if let Some(uid) = &member.card_uid {
        done.unknown_cards = conn.execute(
            "DELETE FROM unknown_cards WHERE card_uid = ?1 COLLATE NOCASE",
            [uid],
        )?;
        done.board_requests = conn.execute(
            "DELETE FROM board_requests WHERE card_uid = ?1 COLLATE NOCASE",
            [uid],
        )?;
    }
    if let Some(email) = member
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        // An email still waiting (a reset link, a reminder) must not reach an erased
        // person, and a delivered one's record (recipient, subject) keeps no address.
        const TO_MEMBER: &str = "kind = 'email' AND ?1 = CASE WHEN json_valid(payload)
             THEN json_extract(payload, '$.to') END COLLATE NOCASE";
        done.emails_unsent = conn.execute(
            &format!("DELETE FROM outbox WHERE state IN ('pending', 'failed') AND {TO_MEMBER}"),
            [email],
        )?;
        done.emails_sent = conn.execute(
            &format!(
                "UPDATE outbox SET payload = json_set(payload, '$.to', ?2)
                 WHERE state = 'sent' AND {TO_MEMBER}"
            ),
            params![email, ERASED_ADDRESS],
        )?;
    }
    conn.execute(
        "UPDATE members SET name = ?2, surname = '', card_uid = NULL, email = NULL,
           password_hash = NULL, weekly_summary = 0, disabled = 1, deleted = 1
         WHERE member_id = ?1",
        params![id, ERASED_NAME],
    )?;
    Ok(done)
}
