//! Typed queries on the board path. Each one is a single prepared (cached) statement; the
//! caller owns the transaction.

use super::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// A machine with the settings of its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: i64,
    pub name: String,
    pub type_id: Option<i64>,
    pub type_name: Option<String>,
    /// Auto-logoff minutes; `None` when the machine has no type.
    pub timeout_min: Option<i64>,
    pub grace_min: Option<i64>,
    pub access_open: bool,
    pub blocked: bool,
    pub hours: f64,
    pub last_seen: Option<i64>,
    /// Lone-working rule: may only be used while someone else is in the building.
    pub needs_second_person: bool,
}

/// What a role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoleFlags {
    pub authorize_all: bool,
    pub maintenance: bool,
    pub backend_admin: bool,
}

/// A member as the rules need them.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub surname: String,
    pub card_uid: Option<String>,
    pub disabled: bool,
    pub deleted: bool,
    pub role_id: i64,
    pub role: RoleFlags,
}

/// One usage session of a machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    pub id: i64,
    pub member_id: i64,
    pub machine_id: i64,
    pub start: i64,
    pub last_seen: i64,
    pub end: Option<i64>,
    pub replay: Option<bool>,
}

/// A maintenance plan: due every `hours_between` hours of use.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: i64,
    pub machine_id: i64,
    pub hours_between: f64,
    pub description: String,
    pub lcd_message: Option<String>,
    pub instructions_url: Option<String>,
}

const MACHINE_SELECT: &str = "SELECT m.machine_id, m.machine_name, m.type_id, t.type_name,
    t.timeout_min, t.grace_min, COALESCE(t.access_open, 0), m.blocked, m.machine_hours, m.last_seen,
    COALESCE(t.needs_second_person, 0)
    FROM machines m LEFT JOIN machine_types t ON t.type_id = m.type_id";

pub(crate) fn machine_from_row(r: &Row) -> rusqlite::Result<Machine> {
    Ok(Machine {
        id: r.get(0)?,
        name: r.get(1)?,
        type_id: r.get(2)?,
        type_name: r.get(3)?,
        timeout_min: r.get(4)?,
        grace_min: r.get(5)?,
        access_open: r.get(6)?,
        blocked: r.get(7)?,
        hours: r.get(8)?,
        last_seen: r.get(9)?,
        needs_second_person: r.get(10)?,
    })
}

pub fn machine(conn: &Connection, id: i64) -> Result<Option<Machine>> {
    let mut st = conn.prepare_cached(&format!("{MACHINE_SELECT} WHERE m.machine_id = ?1"))?;
    Ok(st.query_row([id], machine_from_row).optional()?)
}

pub fn machines(conn: &Connection) -> Result<Vec<Machine>> {
    let mut st = conn.prepare_cached(&format!("{MACHINE_SELECT} ORDER BY m.machine_id"))?;
    let rows = st.query_map([], machine_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

const MEMBER_SELECT: &str = "SELECT u.member_id, u.name, u.surname, u.card_uid, u.disabled,
    u.deleted, u.role_id, r.authorize_all, r.maintenance, r.backend_admin
    FROM members u JOIN roles r ON r.role_id = u.role_id";

pub(crate) fn member_from_row(r: &Row) -> rusqlite::Result<Member> {
    Ok(Member {
        id: r.get(0)?,
        name: r.get(1)?,
        surname: r.get(2)?,
        card_uid: r.get(3)?,
        disabled: r.get(4)?,
        deleted: r.get(5)?,
        role_id: r.get(6)?,
        role: RoleFlags {
            authorize_all: r.get(7)?,
            maintenance: r.get(8)?,
            backend_admin: r.get(9)?,
        },
    })
}

/// The member holding this card (any state: the rules decide what disabled means).
pub fn member_by_card(conn: &Connection, uid: &str) -> Result<Option<Member>> {
    let mut st = conn.prepare_cached(&format!("{MEMBER_SELECT} WHERE u.card_uid = ?1"))?;
    Ok(st.query_row([uid], member_from_row).optional()?)
}

pub fn member(conn: &Connection, id: i64) -> Result<Option<Member>> {
    let mut st = conn.prepare_cached(&format!("{MEMBER_SELECT} WHERE u.member_id = ?1"))?;
    Ok(st.query_row([id], member_from_row).optional()?)
}

/// Members with a card who are neither disabled nor deleted, by id (synccache candidates).
pub fn active_members_with_cards(conn: &Connection) -> Result<Vec<Member>> {
    let mut st = conn.prepare_cached(&format!(
        "{MEMBER_SELECT} WHERE u.disabled = 0 AND u.deleted = 0
         AND u.card_uid IS NOT NULL AND u.card_uid <> '' ORDER BY u.member_id"
    ))?;
    let rows = st.query_map([], member_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn has_authorization(conn: &Connection, member_id: i64, machine_id: i64) -> Result<bool> {
    let mut st = conn
        .prepare_cached("SELECT 1 FROM authorizations WHERE member_id = ?1 AND machine_id = ?2")?;
    Ok(st.exists(params![member_id, machine_id])?)
}

/// Ids of the members authorized on a machine.
pub fn authorized_member_ids(conn: &Connection, machine_id: i64) -> Result<Vec<i64>> {
    let mut st =
        conn.prepare_cached("SELECT member_id FROM authorizations WHERE machine_id = ?1")?;
    let rows = st.query_map([machine_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn use_from_row(r: &Row) -> rusqlite::Result<Use> {
    Ok(Use {
        id: r.get(0)?,
        member_id: r.get(1)?,
        machine_id: r.get(2)?,
        start: r.get(3)?,
        last_seen: r.get(4)?,
        end: r.get(5)?,
        replay: r.get(6)?,
    })
}

const USE_SELECT: &str =
    "SELECT use_id, member_id, machine_id, start_ts, last_seen, end_ts, replay FROM uses";

/// Open uses of a machine, oldest first (database heartbeat; see `Hot` for fresher ones).
pub fn open_uses(conn: &Connection, machine_id: i64) -> Result<Vec<Use>> {
    let mut st = conn.prepare_cached(&format!(
        "{USE_SELECT} WHERE machine_id = ?1 AND end_ts IS NULL ORDER BY use_id"
    ))?;
    let rows = st.query_map([machine_id], use_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every open use in the lab.
pub fn all_open_uses(conn: &Connection) -> Result<Vec<Use>> {
    let mut st = conn.prepare_cached(&format!(
        "{USE_SELECT} WHERE end_ts IS NULL ORDER BY use_id"
    ))?;
    let rows = st.query_map([], use_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn use_by_id(conn: &Connection, id: i64) -> Result<Option<Use>> {
    let mut st = conn.prepare_cached(&format!("{USE_SELECT} WHERE use_id = ?1"))?;
    Ok(st.query_row([id], use_from_row).optional()?)
}

pub fn insert_use(
    conn: &Connection,
    member_id: i64,
    machine_id: i64,
    start: i64,
    last_seen: i64,
    end: Option<i64>,
    replay: Option<bool>,
) -> Result<i64> {
    let mut st = conn.prepare_cached(
        "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts, replay)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    st.execute(params![
        member_id, machine_id, start, last_seen, end, replay
    ])?;
    Ok(conn.last_insert_rowid())
}

pub fn close_use(conn: &Connection, use_id: i64, end: i64, last_seen: i64) -> Result<()> {
    let mut st =
        conn.prepare_cached("UPDATE uses SET end_ts = ?2, last_seen = ?3 WHERE use_id = ?1")?;
    st.execute(params![use_id, end, last_seen])?;
    Ok(())
}

pub fn add_machine_seconds(conn: &Connection, machine_id: i64, seconds: i64) -> Result<()> {
    if seconds == 0 {
        return Ok(());
    }
    let mut st = conn.prepare_cached(
        "UPDATE machines SET machine_hours = machine_hours + ?2 / 3600.0 WHERE machine_id = ?1",
    )?;
    st.execute(params![machine_id, seconds])?;
    Ok(())
}

/// Did a closed use of this member and machine, lasting exactly `duration` seconds, end
/// at or after `since`? (duplicate replayed stopuse, protocol.md §8.7)
pub fn closed_use_with_duration_since(
    conn: &Connection,
    member_id: i64,
    machine_id: i64,
    duration: i64,
    since: i64,
) -> Result<bool> {
    let mut st = conn.prepare_cached(
        "SELECT 1 FROM uses WHERE machine_id = ?1 AND member_id = ?2 AND end_ts IS NOT NULL
         AND end_ts >= ?3 AND end_ts - start_ts = ?4",
    )?;
    Ok(st.exists(params![machine_id, member_id, since, duration])?)
}

/// A card nobody holds, tapped at a machine or (`None`) at an entrance reader.
/// Unknown-card rows kept per machine (or per "no machine": the Pi's readers) in any hour.
pub const UNKNOWN_CARDS_PER_MACHINE_HOUR: i64 = 100;
/// Unknown-card rows kept in any hour for the whole lab.
pub const UNKNOWN_CARDS_PER_HOUR: i64 = 500;

/// Records a refused card, unless the hour's rows for this machine or for the lab are at
/// their cap (a flood of invented UIDs would otherwise grow the database by megabytes a
/// minute on an SD card). Staff still see the burst: the rows up to the cap, and its
/// alert. Returns whether it was recorded; the refusal that reaches a cap is logged once.
pub fn insert_unknown_card(
    conn: &Connection,
    uid: &str,
    machine_id: Option<i64>,
    now: i64,
) -> Result<bool> {
    let since = now - 3600;
    let at_machine: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM unknown_cards WHERE timestamp > ?1 AND machine_id IS ?2",
        )?
        .query_row(params![since, machine_id], |r| r.get(0))?;
    let in_lab: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM unknown_cards WHERE timestamp > ?1")?
        .query_row([since], |r| r.get(0))?;
    if at_machine >= UNKNOWN_CARDS_PER_MACHINE_HOUR || in_lab >= UNKNOWN_CARDS_PER_HOUR {
        return Ok(false);
    }
    let mut st = conn.prepare_cached(
        "INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES (?1, ?2, ?3)",
    )?;
    st.execute(params![uid, machine_id, now])?;
    if at_machine + 1 == UNKNOWN_CARDS_PER_MACHINE_HOUR || in_lab + 1 == UNKNOWN_CARDS_PER_HOUR {
        let scope = machine_id.map_or("the readers".to_string(), |m| format!("machine {m}"));
        log::warn!(
            "unknown cards: the hour's cap is reached ({scope}: {}, lab: {}); more are answered but not recorded",
            at_machine + 1,
            in_lab + 1
        );
    }
    Ok(true)
}

fn plan_from_row(r: &Row) -> rusqlite::Result<Plan> {
    Ok(Plan {
        id: r.get(0)?,
        machine_id: r.get(1)?,
        hours_between: r.get(2)?,
        description: r.get(3)?,
        lcd_message: r.get(4)?,
        instructions_url: r.get(5)?,
    })
}

/// Maintenance plans of a machine, by id (FabOMatic's relationship order).
pub fn plans(conn: &Connection, machine_id: i64) -> Result<Vec<Plan>> {
    let mut st = conn.prepare_cached(
        "SELECT maintenance_id, machine_id, hours_between, description, lcd_message,
         instructions_url FROM maintenances WHERE machine_id = ?1 ORDER BY maintenance_id",
    )?;
    let rows = st.query_map([machine_id], plan_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Seconds of closed use of the plan's machine that started after the plan's latest
/// intervention (protocol.md §6.5).
pub fn seconds_used_since_intervention(conn: &Connection, plan: &Plan) -> Result<i64> {
    let mut st = conn.prepare_cached(
        // Milliseconds (schema 10): a use started in the sign-off's second counts.
        "SELECT COALESCE(SUM(end_ts - start_ts), 0) FROM uses
         WHERE machine_id = ?1 AND end_ts IS NOT NULL AND start_ms >= COALESCE(
           (SELECT MAX(timestamp_ms) FROM interventions WHERE maintenance_id = ?2 AND machine_id = ?1), 0)",
    )?;
    Ok(st.query_row(params![plan.machine_id, plan.id], |r| r.get(0))?)
}

pub fn insert_intervention(
    conn: &Connection,
    plan_id: i64,
    machine_id: i64,
    member_id: i64,
    now: i64,
    replay: Option<bool>,
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp, replay)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    st.execute(params![plan_id, machine_id, member_id, now, replay])?;
    Ok(())
}

/// A board's MQTT credential: which machine it belongs to (None = lab-wide) and its hash.
#[derive(Debug, Clone)]
pub struct Credential {
    pub username: String,
    pub machine_id: Option<i64>,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

pub fn credential(conn: &Connection, username: &str) -> Result<Option<Credential>> {
    let mut st = conn.prepare_cached(
        "SELECT username, machine_id, salt, hash FROM board_credentials WHERE username = ?1",
    )?;
    Ok(st
        .query_row([username], |r| {
            Ok(Credential {
                username: r.get(0)?,
                machine_id: r.get(1)?,
                salt: r.get(2)?,
                hash: r.get(3)?,
            })
        })
        .optional()?)
}

/// A remote start/stop queued by another process for the daemon to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardRequest {
    pub machine_id: i64,
    pub request_type: String,
    pub card_uid: String,
}

/// Removes and returns the queued remote requests, oldest first.
pub fn take_board_requests(conn: &Connection) -> Result<Vec<BoardRequest>> {
    let mut st = conn.prepare_cached(
        "DELETE FROM board_requests RETURNING id, machine_id, request_type, card_uid",
    )?;
    let mut rows: Vec<(i64, BoardRequest)> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                BoardRequest {
                    machine_id: r.get(1)?,
                    request_type: r.get(2)?,
                    card_uid: r.get(3)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.sort_by_key(|(id, _)| *id);
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

pub fn has_board_requests(conn: &Connection) -> Result<bool> {
    let mut st = conn.prepare_cached("SELECT 1 FROM board_requests LIMIT 1")?;
    Ok(st.exists([])?)
}
