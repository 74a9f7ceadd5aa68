//! Queries of the building register: presence rows (who is in, since when, how they
//! signed in and out) and phone sign-in links (only the token's SHA-256 is stored).

use super::Result;
use rusqlite::{named_params, params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// One stay in the building.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresenceRow {
    pub id: i64,
    pub member_id: i64,
    pub name: String,
    pub surname: String,
    pub signed_in_at: i64,
    pub signed_out_at: Option<i64>,
    pub in_source: String,
    pub out_source: Option<String>,
    /// Signed out at closing time, not by the member.
    pub automatic: bool,
}

const PRESENCE_SELECT: &str = "SELECT p.presence_id, p.member_id, u.name, u.surname,
    p.signed_in_at, p.signed_out_at, p.in_source, p.out_source, p.automatic
    FROM presence p JOIN members u ON u.member_id = p.member_id";

fn presence_from_row(r: &Row) -> rusqlite::Result<PresenceRow> {
    Ok(PresenceRow {
        id: r.get(0)?,
        member_id: r.get(1)?,
        name: r.get(2)?,
        surname: r.get(3)?,
        signed_in_at: r.get(4)?,
        signed_out_at: r.get(5)?,
        in_source: r.get(6)?,
        out_source: r.get(7)?,
        automatic: r.get(8)?,
    })
}

/// The member's open stay, if they are in.
pub fn open_presence(conn: &Connection, member_id: i64) -> Result<Option<PresenceRow>> {
    let mut st = conn.prepare_cached(&format!(
        "{PRESENCE_SELECT} WHERE p.member_id = ?1 AND p.signed_out_at IS NULL"
    ))?;
    Ok(st.query_row([member_id], presence_from_row).optional()?)
}

/// Everyone in the building, earliest first.
pub fn present(conn: &Connection) -> Result<Vec<PresenceRow>> {
    let mut st = conn.prepare_cached(&format!(
        "{PRESENCE_SELECT} WHERE p.signed_out_at IS NULL ORDER BY p.signed_in_at, p.presence_id"
    ))?;
    let rows = st.query_map([], presence_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many members other than this one are in.
pub fn count_present_except(conn: &Connection, member_id: i64) -> Result<i64> {
    let mut st = conn.prepare_cached(
        "SELECT COUNT(*) FROM presence WHERE signed_out_at IS NULL AND member_id <> ?1",
    )?;
    Ok(st.query_row([member_id], |r| r.get(0))?)
}

/// Stays that began at or after `since`, newest first.
pub fn presence_history(conn: &Connection, since: i64, limit: i64) -> Result<Vec<PresenceRow>> {
    let mut st = conn.prepare_cached(&format!(
        "{PRESENCE_SELECT} WHERE p.signed_in_at >= ?1
         ORDER BY p.signed_in_at DESC, p.presence_id DESC LIMIT ?2"
    ))?;
    let rows = st.query_map(params![since, limit], presence_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn insert_presence(conn: &Connection, member_id: i64, at: i64, source: &str) -> Result<i64> {
    let mut st = conn.prepare_cached(
        "INSERT INTO presence (member_id, signed_in_at, in_source) VALUES (?1, ?2, ?3)",
    )?;
    st.execute(params![member_id, at, source])?;
    Ok(conn.last_insert_rowid())
}

pub fn close_presence(
    conn: &Connection,
    presence_id: i64,
    at: i64,
    source: &str,
    automatic: bool,
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "UPDATE presence SET signed_out_at = MAX(signed_in_at, ?2), out_source = ?3, automatic = ?4
         WHERE presence_id = ?1 AND signed_out_at IS NULL",
    )?;
    st.execute(params![presence_id, at, source, automatic])?;
    Ok(())
}

/// Open stays that began before `before`.
pub fn open_presence_before(conn: &Connection, before: i64) -> Result<Vec<PresenceRow>> {
    let mut st = conn.prepare_cached(&format!(
        "{PRESENCE_SELECT} WHERE p.signed_out_at IS NULL AND p.signed_in_at < ?1
         ORDER BY p.presence_id"
    ))?;
    let rows = st.query_map([before], presence_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The stays retention deletes (a condition on `presence`): signed out before
/// `:stays_before`. `sync::calendar::retention_events` finds their events with it.
pub const STAYS_TO_DELETE: &str = "signed_out_at IS NOT NULL AND signed_out_at < :stays_before";

/// Deletes closed stays that ended before `before`; returns how many.
pub fn delete_presence_before(conn: &Connection, before: i64) -> Result<usize> {
    let mut st = conn.prepare_cached(&format!("DELETE FROM presence WHERE {STAYS_TO_DELETE}"))?;
    Ok(st.execute(named_params! { ":stays_before": before })?)
}

pub fn insert_presence_link(
    conn: &Connection,
    hash: &[u8],
    member_id: i64,
    now: i64,
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT INTO presence_links (token_hash, member_id, created_at) VALUES (?1, ?2, ?3)",
    )?;
    st.execute(params![hash, member_id, now])?;
    Ok(())
}

/// Revokes the member's live links; returns how many.
pub fn revoke_presence_links(conn: &Connection, member_id: i64, now: i64) -> Result<usize> {
    let mut st = conn.prepare_cached(
        "UPDATE presence_links SET revoked_at = ?2 WHERE member_id = ?1 AND revoked_at IS NULL",
    )?;
    Ok(st.execute(params![member_id, now])?)
}

/// The member a live (not revoked) link belongs to.
pub fn presence_link_member(conn: &Connection, hash: &[u8]) -> Result<Option<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT member_id FROM presence_links WHERE token_hash = ?1 AND revoked_at IS NULL",
    )?;
    Ok(st.query_row([hash], |r| r.get(0)).optional()?)
}

/// Stays that began in `[from, to)`, optionally of one member, newest first.
pub fn presence_between(
    conn: &Connection,
    from: i64,
    to: i64,
    member_id: Option<i64>,
    limit: i64,
) -> Result<Vec<PresenceRow>> {
    let mut st = conn.prepare_cached(&format!(
        "{PRESENCE_SELECT} WHERE p.signed_in_at >= ?1 AND p.signed_in_at < ?2
         AND (?3 IS NULL OR p.member_id = ?3)
         ORDER BY p.signed_in_at DESC, p.presence_id DESC LIMIT ?4"
    ))?;
    let rows = st.query_map(params![from, to, member_id, limit], presence_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Active members who are not in the building, by name (for the panel's sign-in form).
pub fn members_not_in(conn: &Connection) -> Result<Vec<(i64, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT m.member_id, m.name || CASE WHEN m.surname <> '' THEN ' ' || m.surname ELSE '' END
         FROM members m WHERE m.disabled = 0 AND m.deleted = 0
         AND NOT EXISTS (SELECT 1 FROM presence p WHERE p.member_id = m.member_id AND p.signed_out_at IS NULL)
         ORDER BY m.name, m.surname",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
