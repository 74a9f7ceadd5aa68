//! Queries for administration (CLI now, panel later): listing and changing members, roles,
//! machine types, machines, authorizations, plans, credentials, and the whole-lab export.
//!
//! One function per query; the caller owns the transaction (`BEGIN IMMEDIATE` for writes,
//! since the daemon writes the same file). Checks that need a message for a person (is
//! this card taken? by whom?) are separate queries the caller runs inside that transaction
//! before writing, so constraint errors stay a last line of defence. Row structs derive
//! `Serialize` for `--json` output and the export; none carries a secret: members expose
//! `has_password`, never the hash, and credential rows never carry salt or hash.

use super::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// How many MQTT credentials exist.
pub fn count_credentials(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM board_credentials", [], |r| r.get(0))?)
}

// ---------------------------------------------------------------------------------------
// Seeds and state of the lab

/// Default machine type of a fresh lab: FabOMatic's seed values.
const SEED_TYPE: (&str, i64, i64) = ("Default type", 480, 2);

/// Fills a brand-new lab with FabOMatic's seed roles and machine type, each only when its
/// table is empty. Runs in its own `BEGIN IMMEDIATE` transaction, so two processes
/// opening the same fresh file seed it once.
pub fn seed_defaults(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let roles: i64 = tx.query_row("SELECT COUNT(*) FROM roles", [], |r| r.get(0))?;
    if roles == 0 {
        // (name, authorize_all, maintenance, backend_admin, reserved), FabOMatic's order.
        // FabOMatic seeds "Fab Users" with authorize_all, which makes every member staff
        // (level 2 on the boards, allowed on blocked machines); we deliberately seed it
        // without flags so that authorizations mean something.
        let seeds = [
            ("admins", true, true, true, true),
            ("Fab Staff", true, true, false, false),
            ("Fab Users", false, false, false, false),
            ("Anonymous", false, false, false, true),
        ];
        let mut st = tx.prepare(
            "INSERT INTO roles (role_name, authorize_all, maintenance, backend_admin, reserved)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (name, all, maint, admin, reserved) in seeds {
            st.execute(params![name, all, maint, admin, reserved])?;
        }
    }
    let types: i64 = tx.query_row("SELECT COUNT(*) FROM machine_types", [], |r| r.get(0))?;
    if types == 0 {
        let (name, timeout, grace) = SEED_TYPE;
        tx.execute(
            "INSERT INTO machine_types (type_name, timeout_min, grace_min, access_open)
             VALUES (?1, ?2, ?3, 0)",
            params![name, timeout, grace],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Email of the administrator the daemon creates on a lab where nobody can log into the
/// panel (`web::accounts::ensure_first_admin`).
pub const FIRST_ADMIN_EMAIL: &str = "admin@fabgate.local";

/// Does the lab hold no data of its own yet? Roles and machine types do not count: a fresh
/// database is seeded with them (`seed_defaults`), and an import replaces them. Neither does
/// the first administrator the daemon made on its first start.
pub fn lab_is_empty(conn: &Connection) -> Result<bool> {
    Ok(!conn
        .prepare_cached(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM members WHERE email IS NOT ?1)
             OR EXISTS (SELECT 1 FROM machines)",
        )?
        .exists([FIRST_ADMIN_EMAIL])?)
}

/// The schema version written in the file.
pub fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Ids of the rows whose name matches exactly, else case-insensitively (ASCII), by id.
fn ids_by_name(
    conn: &Connection,
    table: &str,
    id: &str,
    col: &str,
    name: &str,
) -> Result<Vec<i64>> {
    for collate in ["", " COLLATE NOCASE"] {
        let mut st = conn.prepare_cached(&format!(
            "SELECT {id} FROM {table} WHERE {col} = ?1{collate} ORDER BY {id}"
        ))?;
        let ids: Vec<i64> = st
            .query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !ids.is_empty() {
            return Ok(ids);
        }
    }
    Ok(Vec::new())
}

// ---------------------------------------------------------------------------------------
// Roles

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleRow {
    pub id: i64,
    pub name: String,
    pub authorize_all: bool,
    pub maintenance: bool,
    /// May log into the panel.
    pub backend_admin: bool,
    pub reserved: bool,
    /// Members holding the role (deleted ones included).
    pub members: i64,
    /// What the panel allows: 0 nothing, 1 viewer, 2 staff, 3 administrator.
    pub panel_level: i64,
}

const ROLE_SELECT: &str = "SELECT r.role_id, r.role_name, r.authorize_all, r.maintenance,
    r.backend_admin, r.reserved, (SELECT COUNT(*) FROM members u WHERE u.role_id = r.role_id),
    r.panel_level
    FROM roles r";

fn role_from_row(r: &Row) -> rusqlite::Result<RoleRow> {
    Ok(RoleRow {
        id: r.get(0)?,
        name: r.get(1)?,
        authorize_all: r.get(2)?,
        maintenance: r.get(3)?,
        backend_admin: r.get(4)?,
        reserved: r.get(5)?,
        members: r.get(6)?,
        panel_level: r.get(7)?,
    })
}

/// Sets what a role allows in the panel (0-3); `backend_admin` follows (a trigger).
pub fn set_role_panel_level(conn: &Connection, id: i64, level: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE roles SET panel_level = ?2, backend_admin = (?2 > 0) WHERE role_id = ?1",
    )?
    .execute(params![id, level.clamp(0, 3)])?;
    Ok(())
}

pub fn roles(conn: &Connection) -> Result<Vec<RoleRow>> {
    let mut st = conn.prepare_cached(&format!("{ROLE_SELECT} ORDER BY r.role_id"))?;
    let rows = st.query_map([], role_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn role(conn: &Connection, id: i64) -> Result<Option<RoleRow>> {
    let mut st = conn.prepare_cached(&format!("{ROLE_SELECT} WHERE r.role_id = ?1"))?;
    Ok(st.query_row([id], role_from_row).optional()?)
}

pub fn role_ids_by_name(conn: &Connection, name: &str) -> Result<Vec<i64>> {
    ids_by_name(conn, "roles", "role_id", "role_name", name)
}

/// The role new members get: the lowest-id role without any flag (not even `reserved`).
pub fn default_role(conn: &Connection) -> Result<Option<RoleRow>> {
    let mut st = conn.prepare_cached(&format!(
        "{ROLE_SELECT} WHERE r.authorize_all = 0 AND r.maintenance = 0 AND r.backend_admin = 0
         AND r.reserved = 0 ORDER BY r.role_id LIMIT 1"
    ))?;
    Ok(st.query_row([], role_from_row).optional()?)
}

/// What `role add` writes.
#[derive(Debug, Clone)]
pub struct NewRole<'a> {
    pub name: &'a str,
    pub authorize_all: bool,
    pub maintenance: bool,
    pub backend_admin: bool,
}

pub fn insert_role(conn: &Connection, role: &NewRole) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO roles (role_name, authorize_all, maintenance, backend_admin)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        role.name,
        role.authorize_all,
        role.maintenance,
        role.backend_admin
    ])?;
    Ok(conn.last_insert_rowid())
}

// ---------------------------------------------------------------------------------------
// Members

/// A member as staff see them. Never the password hash: `has_password` says whether one
/// is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRow {
    pub id: i64,
    pub name: String,
    pub surname: String,
    pub role_id: i64,
    pub role: String,
    pub card_uid: Option<String>,
    pub email: Option<String>,
    pub disabled: bool,
    pub deleted: bool,
    pub has_password: bool,
    pub weekly_summary: bool,
    pub created_at: i64,
}

impl MemberRow {
    /// "Anna Rossi", or just the name when there is no surname.
    pub fn full_name(&self) -> String {
        full_name(&self.name, &self.surname)
    }
}

/// Name and surname as one display string.
pub fn full_name(name: &str, surname: &str) -> String {
    if surname.is_empty() {
        name.to_string()
    } else {
        format!("{name} {surname}")
    }
}

const MEMBER_ROW_SELECT: &str = "SELECT u.member_id, u.name, u.surname, u.role_id,
    COALESCE(r.role_name, ''), u.card_uid, u.email, u.disabled, u.deleted,
    u.password_hash IS NOT NULL AND u.password_hash <> '', u.weekly_summary, u.created_at
    FROM members u LEFT JOIN roles r ON r.role_id = u.role_id";

pub(super) fn member_row_from_row(r: &Row) -> rusqlite::Result<MemberRow> {
    Ok(MemberRow {
        id: r.get(0)?,
        name: r.get(1)?,
        surname: r.get(2)?,
        role_id: r.get(3)?,
        role: r.get(4)?,
        card_uid: r.get(5)?,
        email: r.get(6)?,
        disabled: r.get(7)?,
        deleted: r.get(8)?,
        has_password: r.get(9)?,
        weekly_summary: r.get(10)?,
        created_at: r.get(11)?,
    })
}

pub fn member_rows(conn: &Connection) -> Result<Vec<MemberRow>> {
    let mut st = conn.prepare_cached(&format!("{MEMBER_ROW_SELECT} ORDER BY u.member_id"))?;
    let rows = st.query_map([], member_row_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn member_row(conn: &Connection, id: i64) -> Result<Option<MemberRow>> {
    let mut st = conn.prepare_cached(&format!("{MEMBER_ROW_SELECT} WHERE u.member_id = ?1"))?;
    Ok(st.query_row([id], member_row_from_row).optional()?)
}

/// The member holding a card (stored lowercase; pass it lowercase).
pub fn member_id_by_card(conn: &Connection, uid: &str) -> Result<Option<i64>> {
    let mut st = conn.prepare_cached("SELECT member_id FROM members WHERE card_uid = ?1")?;
    Ok(st.query_row([uid], |r| r.get(0)).optional()?)
}

/// The member with this email, compared case-insensitively like the unique index.
pub fn member_id_by_email(conn: &Connection, email: &str) -> Result<Option<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT member_id FROM members WHERE email = ?1 COLLATE NOCASE ORDER BY member_id LIMIT 1",
    )?;
    Ok(st.query_row([email], |r| r.get(0)).optional()?)
}

/// What `user add` writes.
#[derive(Debug, Clone)]
pub struct NewMember<'a> {
    pub name: &'a str,
    pub surname: &'a str,
    pub role_id: i64,
    pub card_uid: Option<&'a str>,
    pub email: Option<&'a str>,
}

pub fn insert_member(conn: &Connection, m: &NewMember, now: i64) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO members (name, surname, role_id, card_uid, email, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        m.name, m.surname, m.role_id, m.card_uid, m.email, now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Sets the disabled flag; false when it already had that value.
pub fn set_member_disabled(conn: &Connection, id: i64, disabled: bool) -> Result<bool> {
    let n = conn
        .prepare_cached("UPDATE members SET disabled = ?2 WHERE member_id = ?1 AND disabled <> ?2")?
        .execute(params![id, disabled])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// Machine types

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineTypeRow {
    pub id: i64,
    pub name: String,
    /// Auto-logoff minutes; 0 = never.
    pub timeout_min: i64,
    /// Power-off grace minutes; `None` = board default.
    pub grace_min: Option<i64>,
    /// No authorization needed.
    pub access_open: bool,
    pub machines: i64,
    /// Lone-working rule: usable only while someone else is in the building.
    pub needs_second_person: bool,
}

const TYPE_SELECT: &str = "SELECT t.type_id, t.type_name, t.timeout_min, t.grace_min,
    t.access_open, (SELECT COUNT(*) FROM machines m WHERE m.type_id = t.type_id),
    t.needs_second_person
    FROM machine_types t";

fn type_from_row(r: &Row) -> rusqlite::Result<MachineTypeRow> {
    Ok(MachineTypeRow {
        id: r.get(0)?,
        name: r.get(1)?,
        timeout_min: r.get(2)?,
        grace_min: r.get(3)?,
        access_open: r.get(4)?,
        machines: r.get(5)?,
        needs_second_person: r.get(6)?,
    })
}

pub fn machine_types(conn: &Connection) -> Result<Vec<MachineTypeRow>> {
    let mut st = conn.prepare_cached(&format!("{TYPE_SELECT} ORDER BY t.type_id"))?;
    let rows = st.query_map([], type_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn machine_type(conn: &Connection, id: i64) -> Result<Option<MachineTypeRow>> {
    let mut st = conn.prepare_cached(&format!("{TYPE_SELECT} WHERE t.type_id = ?1"))?;
    Ok(st.query_row([id], type_from_row).optional()?)
}

pub fn machine_type_ids_by_name(conn: &Connection, name: &str) -> Result<Vec<i64>> {
    ids_by_name(conn, "machine_types", "type_id", "type_name", name)
}

/// What `machine-type add` writes.
#[derive(Debug, Clone)]
pub struct NewMachineType<'a> {
    pub name: &'a str,
    pub timeout_min: i64,
    pub grace_min: Option<i64>,
    pub access_open: bool,
    pub needs_second_person: bool,
}

pub fn insert_machine_type(conn: &Connection, t: &NewMachineType) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO machine_types (type_name, timeout_min, grace_min, access_open, needs_second_person)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        t.name,
        t.timeout_min,
        t.grace_min,
        t.access_open,
        t.needs_second_person
    ])?;
    Ok(conn.last_insert_rowid())
}

// ---------------------------------------------------------------------------------------
// Machines

/// A machine with what staff want to see at a glance: who uses it, when its board last
/// spoke (as flushed to the database), which firmware and address the board reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineRow {
    pub id: i64,
    pub name: String,
    pub type_id: Option<i64>,
    pub type_name: Option<String>,
    pub blocked: bool,
    pub hours: f64,
    pub last_seen: Option<i64>,
    /// Member of the newest open use.
    pub in_use_by_id: Option<i64>,
    pub in_use_by: Option<String>,
    pub board_fw: Option<String>,
    pub board_ip: Option<String>,
}

pub fn machine_rows(conn: &Connection) -> Result<Vec<MachineRow>> {
    let mut st = conn.prepare_cached(
        "SELECT m.machine_id, m.machine_name, m.type_id, t.type_name, m.blocked,
           m.machine_hours, m.last_seen, o.member_id, o.name, o.surname, b.fw_version,
           b.ip_address
         FROM machines m
         LEFT JOIN machine_types t ON t.type_id = m.type_id
         LEFT JOIN boards b ON b.machine_id = m.machine_id
         LEFT JOIN (SELECT u.machine_id, u.member_id, mb.name, mb.surname,
                      ROW_NUMBER() OVER (PARTITION BY u.machine_id ORDER BY u.use_id DESC) AS n
                    FROM uses u JOIN members mb ON mb.member_id = u.member_id
                    WHERE u.end_ts IS NULL) o ON o.machine_id = m.machine_id AND o.n = 1
         ORDER BY m.machine_id",
    )?;
    let rows = st.query_map([], |r| {
        let name: Option<String> = r.get(8)?;
        let surname: Option<String> = r.get(9)?;
        Ok(MachineRow {
            id: r.get(0)?,
            name: r.get(1)?,
            type_id: r.get(2)?,
            type_name: r.get(3)?,
            blocked: r.get(4)?,
            hours: r.get(5)?,
            last_seen: r.get(6)?,
            in_use_by_id: r.get(7)?,
            in_use_by: name.map(|n| full_name(&n, surname.as_deref().unwrap_or(""))),
            board_fw: r.get(10)?,
            board_ip: r.get(11)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn machine_ids_by_name(conn: &Connection, name: &str) -> Result<Vec<i64>> {
    ids_by_name(conn, "machines", "machine_id", "machine_name", name)
}

/// The id after the highest one in use (1 for the first machine).
pub fn next_machine_id(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(machine_id), 0) + 1 FROM machines",
        [],
        |r| r.get(0),
    )?)
}

pub fn insert_machine(conn: &Connection, id: i64, name: &str, type_id: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO machines (machine_id, machine_name, type_id) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, name, type_id])?;
    Ok(())
}

/// Sets the blocked flag; false when it already had that value.
pub fn set_machine_blocked(conn: &Connection, id: i64, blocked: bool) -> Result<bool> {
    let n = conn
        .prepare_cached("UPDATE machines SET blocked = ?2 WHERE machine_id = ?1 AND blocked <> ?2")?
        .execute(params![id, blocked])?;
    Ok(n > 0)
}

/// Queues a remote `start` or `stop` for the daemon (`jobs` publishes it if the board is
/// online). `request_type` must be "start" or "stop" (the table checks it).
pub fn queue_board_request(
    conn: &Connection,
    machine_id: i64,
    request_type: &str,
    card_uid: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO board_requests (machine_id, request_type, card_uid, created_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![machine_id, request_type, card_uid, now])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Authorizations

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizationRow {
    pub member_id: i64,
    pub machine_id: i64,
}

/// Adds an authorization; false when it already existed.
pub fn insert_authorization(conn: &Connection, member_id: i64, machine_id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO authorizations (member_id, machine_id) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![member_id, machine_id])?;
    Ok(n > 0)
}

/// Removes an authorization; false when there was none.
pub fn delete_authorization(conn: &Connection, member_id: i64, machine_id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM authorizations WHERE member_id = ?1 AND machine_id = ?2")?
        .execute(params![member_id, machine_id])?;
    Ok(n > 0)
}

pub fn authorizations(conn: &Connection) -> Result<Vec<AuthorizationRow>> {
    let mut st = conn.prepare_cached(
        "SELECT member_id, machine_id FROM authorizations ORDER BY member_id, machine_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(AuthorizationRow {
            member_id: r.get(0)?,
            machine_id: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Maintenance

/// A maintenance plan with its machine's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub id: i64,
    pub machine_id: i64,
    pub machine_name: String,
    pub hours_between: f64,
    pub description: String,
    pub lcd_message: Option<String>,
    pub instructions_url: Option<String>,
}

impl PlanRow {
    /// The plan as the rules take it.
    pub fn plan(&self) -> super::Plan {
        super::Plan {
            id: self.id,
            machine_id: self.machine_id,
            hours_between: self.hours_between,
            description: self.description.clone(),
            lcd_message: self.lcd_message.clone(),
            instructions_url: self.instructions_url.clone(),
        }
    }
}

pub fn plan_rows(conn: &Connection) -> Result<Vec<PlanRow>> {
    let mut st = conn.prepare_cached(
        "SELECT p.maintenance_id, p.machine_id, m.machine_name, p.hours_between, p.description,
           p.lcd_message, p.instructions_url
         FROM maintenances p JOIN machines m ON m.machine_id = p.machine_id
         ORDER BY p.machine_id, p.maintenance_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(PlanRow {
            id: r.get(0)?,
            machine_id: r.get(1)?,
            machine_name: r.get(2)?,
            hours_between: r.get(3)?,
            description: r.get(4)?,
            lcd_message: r.get(5)?,
            instructions_url: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What `maintenance add` writes.
#[derive(Debug, Clone)]
pub struct NewPlan<'a> {
    pub machine_id: i64,
    pub hours_between: f64,
    pub description: &'a str,
    pub lcd_message: Option<&'a str>,
    pub instructions_url: Option<&'a str>,
}

pub fn insert_plan(conn: &Connection, p: &NewPlan) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO maintenances (machine_id, hours_between, description, lcd_message,
           instructions_url) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        p.machine_id,
        p.hours_between,
        p.description,
        p.lcd_message,
        p.instructions_url
    ])?;
    Ok(conn.last_insert_rowid())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterventionRow {
    pub id: i64,
    pub maintenance_id: i64,
    pub machine_id: i64,
    pub member_id: i64,
    pub timestamp: i64,
    pub replay: Option<bool>,
}

pub fn interventions(conn: &Connection) -> Result<Vec<InterventionRow>> {
    let mut st = conn.prepare_cached(
        "SELECT intervention_id, maintenance_id, machine_id, member_id, timestamp, replay
         FROM interventions ORDER BY intervention_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(InterventionRow {
            id: r.get(0)?,
            maintenance_id: r.get(1)?,
            machine_id: r.get(2)?,
            member_id: r.get(3)?,
            timestamp: r.get(4)?,
            replay: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Board credentials and boards

/// A credential without its secret, or a board seen without credentials of its own (then
/// `username` is `None`: it logs in with the lab-wide credentials, or anonymously), with
/// what the machine's board last reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardListRow {
    pub username: Option<String>,
    /// `None` = lab-wide credentials.
    pub machine_id: Option<i64>,
    pub machine_name: Option<String>,
    pub created_at: Option<i64>,
    pub fw_version: Option<String>,
    pub ip_address: Option<String>,
    pub serial: Option<String>,
    pub heap: Option<i64>,
    pub last_seen: Option<i64>,
}

/// Credentials (lab-wide first, then by machine) and boards without credentials of their own.
pub fn board_list(conn: &Connection) -> Result<Vec<BoardListRow>> {
    let mut st = conn.prepare_cached(
        "SELECT c.username, c.machine_id, m.machine_name, c.created_at, b.fw_version,
           b.ip_address, b.serial, b.heap, b.last_seen
         FROM board_credentials c
         LEFT JOIN machines m ON m.machine_id = c.machine_id
         LEFT JOIN boards b ON b.machine_id = c.machine_id
         UNION ALL
         SELECT NULL, b.machine_id, m.machine_name, NULL, b.fw_version, b.ip_address,
           b.serial, b.heap, b.last_seen
         FROM boards b LEFT JOIN machines m ON m.machine_id = b.machine_id
         WHERE NOT EXISTS (SELECT 1 FROM board_credentials c WHERE c.machine_id = b.machine_id)",
    )?;
    let mut rows: Vec<BoardListRow> = st
        .query_map([], |r| {
            Ok(BoardListRow {
                username: r.get(0)?,
                machine_id: r.get(1)?,
                machine_name: r.get(2)?,
                created_at: r.get(3)?,
                fw_version: r.get(4)?,
                ip_address: r.get(5)?,
                serial: r.get(6)?,
                heap: r.get(7)?,
                last_seen: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.sort_by(|a, b| {
        (
            a.machine_id.is_some(),
            a.machine_id,
            a.username.is_none(),
            &a.username,
        )
            .cmp(&(
                b.machine_id.is_some(),
                b.machine_id,
                b.username.is_none(),
                &b.username,
            ))
    });
    Ok(rows)
}

/// Stores new credentials: `salt` and `hash` as `broker::hash_password` makes them.
pub fn insert_credential(
    conn: &Connection,
    username: &str,
    machine_id: Option<i64>,
    salt: &[u8],
    hash: &[u8],
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO board_credentials (username, machine_id, salt, hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![username, machine_id, salt, hash, now])?;
    Ok(())
}

/// Replaces the password of existing credentials.
pub fn replace_credential_secret(
    conn: &Connection,
    username: &str,
    salt: &[u8],
    hash: &[u8],
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE board_credentials SET salt = ?2, hash = ?3, created_at = ?4 WHERE username = ?1",
    )?
    .execute(params![username, salt, hash, now])?;
    Ok(())
}

/// Removes credentials; `None` when there were none, else their scope (None = lab-wide).
pub fn delete_credential(conn: &Connection, username: &str) -> Result<Option<Option<i64>>> {
    let mut st = conn
        .prepare_cached("DELETE FROM board_credentials WHERE username = ?1 RETURNING machine_id")?;
    Ok(st.query_row([username], |r| r.get(0)).optional()?)
}

/// What a board last reported (`alive`), as flushed to the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardRow {
    pub machine_id: i64,
    pub ip_address: String,
    pub fw_version: String,
    pub serial: String,
    pub heap: i64,
    pub last_seen: i64,
}

pub fn boards(conn: &Connection) -> Result<Vec<BoardRow>> {
    let mut st = conn.prepare_cached(
        "SELECT machine_id, ip_address, fw_version, serial, heap, last_seen FROM boards
         ORDER BY machine_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(BoardRow {
            machine_id: r.get(0)?,
            ip_address: r.get(1)?,
            fw_version: r.get(2)?,
            serial: r.get(3)?,
            heap: r.get(4)?,
            last_seen: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Uses

/// A usage session with the names staff read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UseRow {
    pub id: i64,
    pub member_id: i64,
    pub member: String,
    pub machine_id: i64,
    pub machine: String,
    pub start: i64,
    /// Last heartbeat.
    pub last_seen: i64,
    /// `None` while the session is open.
    pub end: Option<i64>,
    /// Sent by the board from its offline buffer.
    pub replay: Option<bool>,
}

/// Which uses `use_rows` returns.
#[derive(Debug, Clone, Default)]
pub struct UseFilter {
    pub machine_id: Option<i64>,
    pub open_only: bool,
    pub limit: i64,
}

/// Uses, newest first.
pub fn use_rows(conn: &Connection, f: &UseFilter) -> Result<Vec<UseRow>> {
    let mut st = conn.prepare_cached(&format!(
        "{} WHERE (?1 IS NULL OR u.machine_id = ?1) AND (?2 = 0 OR u.end_ts IS NULL)
         ORDER BY u.start_ts DESC, u.use_id DESC LIMIT ?3",
        super::workshop::USE_ROW_SELECT
    ))?;
    let rows = st.query_map(
        params![f.machine_id, f.open_only, f.limit],
        super::workshop::use_row_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Export

/// A machine's own columns, for the export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineExport {
    pub id: i64,
    pub name: String,
    pub type_id: Option<i64>,
    pub hours: f64,
    pub blocked: bool,
    pub last_seen: Option<i64>,
}

/// A use's own columns, for the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UseExport {
    pub id: i64,
    pub member_id: i64,
    pub machine_id: i64,
    pub start: i64,
    pub last_seen: i64,
    pub end: Option<i64>,
    pub replay: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownCardRow {
    pub id: i64,
    pub card_uid: String,
    pub machine_id: Option<i64>,
    pub timestamp: i64,
}

/// The whole lab as one document. Times are UTC Unix seconds. Secrets stay out: no
/// password hashes, no board credentials, no settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabExport {
    pub fabgate_version: &'static str,
    pub schema_version: i64,
    pub exported_at: i64,
    pub roles: Vec<RoleRow>,
    pub members: Vec<MemberRow>,
    pub machine_types: Vec<MachineTypeRow>,
    pub machines: Vec<MachineExport>,
    pub authorizations: Vec<AuthorizationRow>,
    pub maintenances: Vec<PlanRow>,
    pub interventions: Vec<InterventionRow>,
    pub uses: Vec<UseExport>,
    pub unknown_cards: Vec<UnknownCardRow>,
    pub boards: Vec<BoardRow>,
}

/// Reads the whole lab. Run it inside one transaction for a consistent snapshot.
pub fn export(conn: &Connection, now: i64) -> Result<LabExport> {
    let machines = conn
        .prepare(
            "SELECT machine_id, machine_name, type_id, machine_hours, blocked, last_seen
             FROM machines ORDER BY machine_id",
        )?
        .query_map([], |r| {
            Ok(MachineExport {
                id: r.get(0)?,
                name: r.get(1)?,
                type_id: r.get(2)?,
                hours: r.get(3)?,
                blocked: r.get(4)?,
                last_seen: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let uses = conn
        .prepare(&format!("{USE_EXPORT_SELECT} ORDER BY use_id"))?
        .query_map([], use_export_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let unknown_cards = conn
        .prepare("SELECT id, card_uid, machine_id, timestamp FROM unknown_cards ORDER BY id")?
        .query_map([], |r| {
            Ok(UnknownCardRow {
                id: r.get(0)?,
                card_uid: r.get(1)?,
                machine_id: r.get(2)?,
                timestamp: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(LabExport {
        fabgate_version: env!("CARGO_PKG_VERSION"),
        schema_version: user_version(conn)?,
        exported_at: now,
        roles: roles(conn)?,
        members: member_rows(conn)?,
        machine_types: machine_types(conn)?,
        machines,
        authorizations: authorizations(conn)?,
        maintenances: plan_rows(conn)?,
        interventions: interventions(conn)?,
        uses,
        unknown_cards,
        boards: boards(conn)?,
    })
}

/// Uses as exported (whole lab, or one member's data).
pub(super) const USE_EXPORT_SELECT: &str =
    "SELECT use_id, member_id, machine_id, start_ts, last_seen, end_ts, replay FROM uses";

pub(super) fn use_export_from_row(r: &rusqlite::Row) -> rusqlite::Result<UseExport> {
    Ok(UseExport {
        id: r.get(0)?,
        member_id: r.get(1)?,
        machine_id: r.get(2)?,
        start: r.get(3)?,
        last_seen: r.get(4)?,
        end: r.get(5)?,
        replay: r.get(6)?,
    })
}

/// A run-time setting changed from the panel (lab name, time zone, ...).
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::Store;

    fn fresh() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        (dir, conn)
    }

    #[test]
    fn a_fresh_lab_is_seeded_once_and_counts_as_empty() {
        let (dir, mut conn) = fresh();
        let names: Vec<String> = roles(&conn).unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["admins", "Fab Staff", "Fab Users", "Anonymous"]);
        let admins = &roles(&conn).unwrap()[0];
        assert!(admins.authorize_all && admins.maintenance && admins.backend_admin);
        assert!(admins.reserved);
        assert_eq!(default_role(&conn).unwrap().unwrap().name, "Fab Users");
        let types = machine_types(&conn).unwrap();
        assert_eq!(types.len(), 1);
        assert_eq!(
            (
                types[0].timeout_min,
                types[0].grace_min,
                types[0].access_open
            ),
            (480, Some(2), false)
        );
        assert!(lab_is_empty(&conn).unwrap());
        // Seeding again (or reopening) adds nothing; an emptied table is not re-seeded on
        // reopen, because the database is no longer new.
        seed_defaults(&mut conn).unwrap();
        assert_eq!(roles(&conn).unwrap().len(), 4);
        conn.execute_batch("DELETE FROM roles").unwrap();
        drop(conn);
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        assert!(roles(&store.connect().unwrap()).unwrap().is_empty());
    }

    #[test]
    fn members_machines_and_authorizations_round_trip() {
        let (_dir, conn) = fresh();
        let role = default_role(&conn).unwrap().unwrap().id;
        let id = insert_member(
            &conn,
            &NewMember {
                name: "Anna <script>",
                surname: "Rossi",
                role_id: role,
                card_uid: Some("aabbccd1"),
                email: Some("Anna@Example.org"),
            },
            1000,
        )
        .unwrap();
        assert!(!lab_is_empty(&conn).unwrap());
        assert_eq!(member_id_by_card(&conn, "aabbccd1").unwrap(), Some(id));
        assert_eq!(
            member_id_by_email(&conn, "anna@example.ORG").unwrap(),
            Some(id)
        );
        let row = member_row(&conn, id).unwrap().unwrap();
        assert_eq!(row.full_name(), "Anna <script> Rossi");
        assert_eq!(row.role, "Fab Users");
        assert!(!row.has_password);
        assert!(set_member_disabled(&conn, id, true).unwrap());
        assert!(!set_member_disabled(&conn, id, true).unwrap());

        let t = machine_type_ids_by_name(&conn, "default TYPE").unwrap()[0];
        assert_eq!(next_machine_id(&conn).unwrap(), 1);
        insert_machine(&conn, 7, "LASER", t).unwrap();
        assert_eq!(next_machine_id(&conn).unwrap(), 8);
        assert_eq!(machine_ids_by_name(&conn, "laser").unwrap(), [7]);
        assert!(insert_authorization(&conn, id, 7).unwrap());
        assert!(!insert_authorization(&conn, id, 7).unwrap());
        assert!(delete_authorization(&conn, id, 7).unwrap());
        assert!(!delete_authorization(&conn, id, 7).unwrap());

        crate::store::insert_use(&conn, id, 7, 100, 160, None, None).unwrap();
        let m = &machine_rows(&conn).unwrap()[0];
        assert_eq!(m.in_use_by.as_deref(), Some("Anna <script> Rossi"));
        assert_eq!(m.type_name.as_deref(), Some("Default type"));
        let open = UseFilter {
            machine_id: Some(7),
            open_only: true,
            limit: 10,
        };
        assert_eq!(use_rows(&conn, &open).unwrap().len(), 1);
    }

    #[test]
    fn credentials_are_listed_without_secrets() {
        let (_dir, conn) = fresh();
        let t = machine_type_ids_by_name(&conn, "Default type").unwrap()[0];
        insert_machine(&conn, 2, "DRILL", t).unwrap();
        insert_machine(&conn, 3, "LATHE", t).unwrap();
        insert_credential(&conn, "board-2", Some(2), b"salt", b"hash", 5).unwrap();
        insert_credential(&conn, "lab", None, b"salt", b"hash", 5).unwrap();
        conn.execute_batch(
            "INSERT INTO boards (machine_id, ip_address, fw_version, serial, heap, last_seen)
             VALUES (2, '10.0.0.2', '1.2', 'S2', 1000, 9), (3, '10.0.0.3', '1.3', 'S3', 2000, 9)",
        )
        .unwrap();
        let rows = board_list(&conn).unwrap();
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.username.as_deref(), r.machine_id, r.ip_address.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("lab"), None, None),
                (Some("board-2"), Some(2), Some("10.0.0.2")),
                (None, Some(3), Some("10.0.0.3")),
            ]
        );
        assert_eq!(delete_credential(&conn, "board-2").unwrap(), Some(Some(2)));
        assert_eq!(delete_credential(&conn, "lab").unwrap(), Some(None));
        assert_eq!(delete_credential(&conn, "lab").unwrap(), None);
    }
}
