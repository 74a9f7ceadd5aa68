//! Queries behind the panel's "people" area: searching members, saving and soft-deleting
//! them, their recent uses and hours, roles, who is authorized where, and unknown cards
//! grouped for conversion into members.
//!
//! Like the rest of `store`, these are one statement each (cached), the caller owns the
//! transaction, and nothing here decides a rule: whether a card may be taken, a role
//! deleted or a member may use a machine is checked by the caller (`web::pages::people`
//! asks `lab`). Every list is bounded or indexed so a page stays fast on a Pi with
//! FabOMatic's sample (112 members, 22,000 uses).

use super::admin::{full_name, member_row_from_row, MemberRow};
use super::Result;
use rusqlite::{params, Connection, OptionalExtension};

// ---------------------------------------------------------------------------------------
// Member search

/// Which members a list shows, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberState {
    /// Everyone not deleted (the default view).
    #[default]
    Current,
    Active,
    Disabled,
    Deleted,
    All,
}

impl MemberState {
    /// The value used in URLs (`?state=`).
    pub fn code(self) -> &'static str {
        match self {
            MemberState::Current => "",
            MemberState::Active => "active",
            MemberState::Disabled => "disabled",
            MemberState::Deleted => "deleted",
            MemberState::All => "all",
        }
    }

    /// Unknown codes read as the default view.
    pub fn from_code(code: &str) -> MemberState {
        match code {
            "active" => MemberState::Active,
            "disabled" => MemberState::Disabled,
            "deleted" => MemberState::Deleted,
            "all" => MemberState::All,
            _ => MemberState::Current,
        }
    }

    fn sql_code(self) -> i64 {
        self as i64
    }
}

/// A member search: free text over name, surname, email and card; role, state and card
/// filters; one page of results.
#[derive(Debug, Clone, Default)]
pub struct MemberFilter<'a> {
    pub text: &'a str,
    pub role_id: Option<i64>,
    pub state: MemberState,
    /// `Some(true)`: only members with a card; `Some(false)`: only without.
    pub has_card: Option<bool>,
    pub offset: i64,
    pub limit: i64,
}

/// A member in a list, with the start of their latest use.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberListRow {
    pub member: MemberRow,
    pub last_use: Option<i64>,
}

/// The columns `member_row_from_row` reads, then the latest use (one index probe per row
/// on `uses_member_start`).
const MEMBER_LIST_SELECT: &str = "SELECT u.member_id, u.name, u.surname, u.role_id,
    COALESCE(r.role_name, ''), u.card_uid, u.email, u.disabled, u.deleted,
    u.password_hash IS NOT NULL AND u.password_hash <> '', u.weekly_summary, u.created_at,
    (SELECT MAX(x.start_ts) FROM uses x WHERE x.member_id = u.member_id)
    FROM members u LEFT JOIN roles r ON r.role_id = u.role_id";

/// `?1` LIKE pattern or '' for no text; `?2` role; `?3` state; `?4` has card.
const MEMBER_WHERE: &str = " WHERE (?1 = '' OR u.name LIKE ?1 ESCAPE '\\'
      OR u.surname LIKE ?1 ESCAPE '\\' OR (u.name || ' ' || u.surname) LIKE ?1 ESCAPE '\\'
      OR u.email LIKE ?1 ESCAPE '\\' OR u.card_uid LIKE ?1 ESCAPE '\\')
    AND (?2 IS NULL OR u.role_id = ?2)
    AND (CASE ?3 WHEN 0 THEN u.deleted = 0
                 WHEN 1 THEN u.deleted = 0 AND u.disabled = 0
                 WHEN 2 THEN u.deleted = 0 AND u.disabled = 1
                 WHEN 3 THEN u.deleted = 1
                 ELSE 1 END)
    AND (?4 IS NULL OR (u.card_uid IS NOT NULL AND u.card_uid <> '') = ?4)";

/// A LIKE pattern that matches `text` literally anywhere ('' for no text).
fn like_pattern(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let mut p = String::from("%");
    for c in t.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// One page of members matching the filter, by name, and how many match in all.
pub fn search_members(conn: &Connection, f: &MemberFilter) -> Result<(Vec<MemberListRow>, i64)> {
    let pattern = like_pattern(f.text);
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM members u{MEMBER_WHERE}"))?
        .query_row(
            params![pattern, f.role_id, f.state.sql_code(), f.has_card],
            |r| r.get(0),
        )?;
    let mut st = conn.prepare_cached(&format!(
        "{MEMBER_LIST_SELECT}{MEMBER_WHERE}
         ORDER BY u.name COLLATE NOCASE, u.surname COLLATE NOCASE, u.member_id
         LIMIT ?5 OFFSET ?6"
    ))?;
    let rows = st.query_map(
        params![
            pattern,
            f.role_id,
            f.state.sql_code(),
            f.has_card,
            f.limit,
            f.offset
        ],
        |r| {
            Ok(MemberListRow {
                member: member_row_from_row(r)?,
                last_use: r.get(12)?,
            })
        },
    )?;
    Ok((rows.collect::<rusqlite::Result<_>>()?, total))
}

// ---------------------------------------------------------------------------------------
// Saving members

/// Everything the panel's member form saves.
#[derive(Debug, Clone)]
pub struct MemberFields<'a> {
    pub name: &'a str,
    pub surname: &'a str,
    pub role_id: i64,
    pub card_uid: Option<&'a str>,
    pub email: Option<&'a str>,
    pub disabled: bool,
    pub weekly_summary: bool,
    /// "en", "it", or `None` for the browser's language.
    pub language: Option<&'a str>,
}

pub fn create_member(conn: &Connection, m: &MemberFields, now: i64) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO members (name, surname, role_id, card_uid, email, disabled,
           weekly_summary, language, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        m.name,
        m.surname,
        m.role_id,
        m.card_uid,
        m.email,
        m.disabled,
        m.weekly_summary,
        m.language,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Saves the form over a member that is not deleted; false when there is none.
pub fn update_member(conn: &Connection, id: i64, m: &MemberFields) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE members SET name = ?2, surname = ?3, role_id = ?4, card_uid = ?5, email = ?6,
               disabled = ?7, weekly_summary = ?8, language = ?9
             WHERE member_id = ?1 AND deleted = 0",
        )?
        .execute(params![
            id,
            m.name,
            m.surname,
            m.role_id,
            m.card_uid,
            m.email,
            m.disabled,
            m.weekly_summary,
            m.language
        ])?;
    Ok(n > 0)
}

/// The member's panel language ("en", "it"), `None` = the browser's.
pub fn member_language(conn: &Connection, id: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT language FROM members WHERE member_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Name written over a deleted member.
pub const DELETED_NAME: &str = "Deleted member";

/// Soft delete: the row stays so uses and interventions keep pointing at it, but
/// everything personal goes (name anonymised, email, card and password removed, weekly
/// summary off) and so do the member's authorizations. The caller ends their panel
/// sessions in the same transaction. False when there was no such member left.
pub fn soft_delete_member(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE members SET name = ?2, surname = '', email = NULL, card_uid = NULL,
               password_hash = NULL, must_change_password = 0, weekly_summary = 0,
               language = NULL, deleted = 1
             WHERE member_id = ?1 AND deleted = 0",
        )?
        .execute(params![id, DELETED_NAME])?;
    if n > 0 {
        conn.prepare_cached("DELETE FROM authorizations WHERE member_id = ?1")?
            .execute([id])?;
    }
    Ok(n > 0)
}

/// How much history a member has (shown before a delete).
pub fn member_history_counts(conn: &Connection, id: i64) -> Result<(i64, i64)> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM uses WHERE member_id = ?1),
                    (SELECT COUNT(*) FROM interventions WHERE member_id = ?1)",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

// ---------------------------------------------------------------------------------------
// A member's uses

/// One use of a member's machine time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberUse {
    pub id: i64,
    pub machine_id: i64,
    pub machine: String,
    pub start: i64,
    /// `None` while open.
    pub end: Option<i64>,
    /// Sent late by the board from its offline buffer.
    pub replay: bool,
}

/// The member's latest uses, newest first (backwards over `uses_member_start`).
pub fn member_uses(conn: &Connection, member_id: i64, limit: i64) -> Result<Vec<MemberUse>> {
    let mut st = conn.prepare_cached(
        "SELECT u.use_id, u.machine_id, COALESCE(m.machine_name, ''), u.start_ts, u.end_ts,
           COALESCE(u.replay, 0)
         FROM uses u LEFT JOIN machines m ON m.machine_id = u.machine_id
         WHERE u.member_id = ?1 ORDER BY u.start_ts DESC, u.use_id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![member_id, limit], |r| {
        Ok(MemberUse {
            id: r.get(0)?,
            machine_id: r.get(1)?,
            machine: r.get(2)?,
            start: r.get(3)?,
            end: r.get(4)?,
            replay: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Seconds the member used machines between `since` and `now` (open uses count up to
/// `now`; a use that began before `since` counts from `since`).
pub fn member_seconds(conn: &Connection, member_id: i64, since: i64, now: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(MAX(0, MIN(COALESCE(end_ts, ?3), ?3) - MAX(start_ts, ?2))), 0)
             FROM uses WHERE member_id = ?1 AND (end_ts IS NULL OR end_ts > ?2)",
        )?
        .query_row(params![member_id, since, now], |r| r.get(0))?)
}

// ---------------------------------------------------------------------------------------
// Authorizations

/// Machines the member holds an authorization for.
pub fn authorized_machine_ids(conn: &Connection, member_id: i64) -> Result<Vec<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT machine_id FROM authorizations WHERE member_id = ?1 ORDER BY machine_id",
    )?;
    let rows = st.query_map([member_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A member as choice lists and authorization tables show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChoice {
    pub id: i64,
    pub name: String,
    pub card_uid: Option<String>,
    pub role: String,
    pub disabled: bool,
    /// Holds an authorization on the machine asked about.
    pub authorized: bool,
}

/// Every member who is not deleted, by name, marked when authorized on `machine_id`.
pub fn member_choices(conn: &Connection, machine_id: i64) -> Result<Vec<MemberChoice>> {
    let mut st = conn.prepare_cached(
        "SELECT u.member_id, u.name, u.surname, u.card_uid, COALESCE(r.role_name, ''), u.disabled,
           EXISTS (SELECT 1 FROM authorizations a WHERE a.member_id = u.member_id AND a.machine_id = ?1)
         FROM members u LEFT JOIN roles r ON r.role_id = u.role_id
         WHERE u.deleted = 0
         ORDER BY u.name COLLATE NOCASE, u.surname COLLATE NOCASE, u.member_id",
    )?;
    let rows = st.query_map([machine_id], |r| {
        let name: String = r.get(1)?;
        let surname: String = r.get(2)?;
        Ok(MemberChoice {
            id: r.get(0)?,
            name: full_name(&name, &surname),
            card_uid: r.get(3)?,
            role: r.get(4)?,
            disabled: r.get(5)?,
            authorized: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A machine with how many members hold an authorization for it.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineAuthCount {
    pub id: i64,
    pub name: String,
    pub type_name: Option<String>,
    pub access_open: bool,
    pub blocked: bool,
    pub authorized: i64,
}

pub fn machine_auth_counts(conn: &Connection) -> Result<Vec<MachineAuthCount>> {
    let mut st = conn.prepare_cached(
        "SELECT m.machine_id, m.machine_name, t.type_name, COALESCE(t.access_open, 0), m.blocked,
           (SELECT COUNT(*) FROM authorizations a JOIN members u ON u.member_id = a.member_id
            WHERE a.machine_id = m.machine_id AND u.deleted = 0)
         FROM machines m LEFT JOIN machine_types t ON t.type_id = m.type_id
         ORDER BY m.machine_name COLLATE NOCASE, m.machine_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(MachineAuthCount {
            id: r.get(0)?,
            name: r.get(1)?,
            type_name: r.get(2)?,
            access_open: r.get(3)?,
            blocked: r.get(4)?,
            authorized: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Roles

/// Saves a role's name and flags; never touches reserved roles (false then, or when
/// there is no such role).
pub fn update_role(conn: &Connection, id: i64, role: &super::NewRole) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE roles SET role_name = ?2, authorize_all = ?3, maintenance = ?4, backend_admin = ?5
             WHERE role_id = ?1 AND reserved = 0",
        )?
        .execute(params![
            id,
            role.name,
            role.authorize_all,
            role.maintenance,
            role.backend_admin
        ])?;
    Ok(n > 0)
}

/// Deletes a role nobody holds, unless reserved; false when nothing was deleted.
pub fn delete_role(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "DELETE FROM roles WHERE role_id = ?1 AND reserved = 0
             AND NOT EXISTS (SELECT 1 FROM members WHERE role_id = ?1)",
        )?
        .execute([id])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// Unknown cards

/// A card the boards rejected, with its attempts summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCardGroup {
    pub card_uid: String,
    pub attempts: i64,
    pub last_seen: i64,
    /// Where it was last presented.
    pub machine_id: Option<i64>,
    pub machine: Option<String>,
}

/// Rejected cards that still belong to nobody, most recently seen first, with the
/// machine of the latest attempt (the highest id: rows are only appended). The table
/// holds 30 days at most (retention), so grouping it is cheap.
pub fn unknown_card_groups(conn: &Connection, limit: i64) -> Result<Vec<UnknownCardGroup>> {
    let mut st = conn.prepare_cached(
        "SELECT g.card_uid, g.attempts, g.last_seen, k.machine_id, m.machine_name
         FROM (SELECT card_uid, COUNT(*) AS attempts, MAX(timestamp) AS last_seen,
                 MAX(id) AS last_id
               FROM unknown_cards GROUP BY card_uid) g
         JOIN unknown_cards k ON k.id = g.last_id
         LEFT JOIN machines m ON m.machine_id = k.machine_id
         WHERE NOT EXISTS (SELECT 1 FROM members x WHERE x.card_uid = g.card_uid)
         ORDER BY g.last_seen DESC, g.last_id DESC LIMIT ?1",
    )?;
    let rows = st.query_map([limit], |r| {
        Ok(UnknownCardGroup {
            card_uid: r.get(0)?,
            attempts: r.get(1)?,
            last_seen: r.get(2)?,
            machine_id: r.get(3)?,
            machine: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::{self, Store};

    fn lab() -> (tempfile::TempDir, Connection, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        let role = store::default_role(&conn).unwrap().unwrap().id;
        let t = store::machine_type_ids_by_name(&conn, "Default type").unwrap()[0];
        store::insert_machine(&conn, 1, "LASER", t).unwrap();
        (dir, conn, role)
    }

    fn fields(name: &str, role_id: i64, card: Option<&'static str>) -> MemberFields<'static> {
        MemberFields {
            name: Box::leak(name.to_string().into_boxed_str()),
            surname: "",
            role_id,
            card_uid: card,
            email: None,
            disabled: false,
            weekly_summary: false,
            language: None,
        }
    }

    #[test]
    fn search_matches_text_literally_and_filters() {
        let (_d, conn, role) = lab();
        create_member(&conn, &fields("Anna 100%", role, Some("aabbccd1")), 0).unwrap();
        create_member(&conn, &fields("Bruno_x", role, None), 0).unwrap();
        let gone = create_member(&conn, &fields("Carla", role, Some("aabbccd3")), 0).unwrap();
        soft_delete_member(&conn, gone).unwrap();
        let names = |f: &MemberFilter| -> (Vec<String>, i64) {
            let (rows, n) = search_members(&conn, f).unwrap();
            (rows.into_iter().map(|r| r.member.name).collect(), n)
        };
        let all = MemberFilter {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(names(&all), (vec!["Anna 100%".into(), "Bruno_x".into()], 2));
        // Wildcards are literal: "%" matches only the name holding one.
        let pct = MemberFilter {
            text: "%",
            ..all.clone()
        };
        assert_eq!(names(&pct).1, 1);
        let under = MemberFilter {
            text: "o_",
            ..all.clone()
        };
        assert_eq!(names(&under).0, ["Bruno_x"]);
        let card = MemberFilter {
            text: "CCD1",
            ..all.clone()
        };
        assert_eq!(names(&card).0, ["Anna 100%"]);
        let without = MemberFilter {
            has_card: Some(false),
            ..all.clone()
        };
        assert_eq!(names(&without).0, ["Bruno_x"]);
        let deleted = MemberFilter {
            state: MemberState::Deleted,
            ..all.clone()
        };
        assert_eq!(names(&deleted).0, [DELETED_NAME]);
        let page2 = MemberFilter {
            offset: 1,
            limit: 1,
            ..all
        };
        assert_eq!(names(&page2), (vec!["Bruno_x".into()], 2));
    }

    #[test]
    fn soft_delete_keeps_history_and_frees_the_card() {
        let (_d, conn, role) = lab();
        let id = create_member(&conn, &fields("Anna", role, Some("aabbccd1")), 0).unwrap();
        store::insert_authorization(&conn, id, 1).unwrap();
        store::insert_use(&conn, id, 1, 100, 200, Some(200), Some(true)).unwrap();
        store::insert_use(&conn, id, 1, 300, 300, None, None).unwrap();
        assert_eq!(member_seconds(&conn, id, 0, 400).unwrap(), 200);
        assert_eq!(member_seconds(&conn, id, 150, 400).unwrap(), 150);
        assert!(soft_delete_member(&conn, id).unwrap());
        assert!(!soft_delete_member(&conn, id).unwrap());
        let m = store::member_row(&conn, id).unwrap().unwrap();
        assert_eq!(
            (m.name.as_str(), m.card_uid, m.deleted),
            (DELETED_NAME, None, true)
        );
        assert_eq!(member_history_counts(&conn, id).unwrap(), (2, 0));
        assert!(authorized_machine_ids(&conn, id).unwrap().is_empty());
        let uses = member_uses(&conn, id, 20).unwrap();
        assert_eq!((uses.len(), uses[1].replay, uses[0].end), (2, true, None));
        // The card can be given to someone else now.
        create_member(&conn, &fields("Bruno", role, Some("aabbccd1")), 0).unwrap();
        assert!(!update_member(&conn, id, &fields("Back", role, None)).unwrap());
    }

    #[test]
    fn unknown_cards_group_and_hide_once_assigned() {
        let (_d, conn, role) = lab();
        for (uid, ts) in [("aa000001", 10), ("aa000002", 20), ("aa000001", 30)] {
            store::insert_unknown_card(&conn, uid, Some(1), ts).unwrap();
        }
        let g = unknown_card_groups(&conn, 10).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[0].card_uid.as_str(), g[0].attempts, g[0].last_seen),
            ("aa000001", 2, 30)
        );
        assert_eq!(g[0].machine.as_deref(), Some("LASER"));
        create_member(&conn, &fields("New", role, Some("aa000001")), 0).unwrap();
        let g = unknown_card_groups(&conn, 10).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].card_uid, "aa000002");
    }

    #[test]
    fn roles_in_use_or_reserved_stay() {
        let (_d, conn, role) = lab();
        let new = store::NewRole {
            name: "guests",
            authorize_all: false,
            maintenance: false,
            backend_admin: false,
        };
        let id = store::insert_role(&conn, &new).unwrap();
        let reserved = store::role_ids_by_name(&conn, "admins").unwrap()[0];
        assert!(!update_role(&conn, reserved, &new).unwrap());
        assert!(!delete_role(&conn, reserved).unwrap());
        let m = create_member(&conn, &fields("Anna", id, None), 0).unwrap();
        assert!(!delete_role(&conn, id).unwrap());
        update_member(&conn, m, &fields("Anna", role, None)).unwrap();
        assert!(delete_role(&conn, id).unwrap());
    }
}
