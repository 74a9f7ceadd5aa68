//! Queries for the panel's workshop area: editing and deleting machines, machine types,
//! maintenance plans and interventions; usage history filtered and paged; rows for the
//! exports. The caller owns the transaction; what a change *means* (machine hours after a
//! manual use, which plans are due) is decided in `lab`.
//!
//! Filtered lists build their SQL from the filters present, so each shape of query gets
//! a plan that uses an index (`?1 IS NULL OR col = ?1` would defeat them).

use super::{full_name, NewMachineType, NewPlan, PlanRow, Result, UseRow};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

// ---------------------------------------------------------------------------------------
// Machines

/// What the machine form writes. `id` may differ from the machine's current id: the
/// board was flashed with another one.
#[derive(Debug, Clone)]
pub struct MachineEdit<'a> {
    pub id: i64,
    pub name: &'a str,
    pub type_id: Option<i64>,
    pub hours: f64,
}

/// Tables that point at a machine without a cascade of their own (or none at all).
const MACHINE_CHILDREN: &[&str] = &[
    "uses",
    "maintenances",
    "interventions",
    "authorizations",
    "unknown_cards",
    "boards",
    "board_credentials",
    "board_requests",
];

/// Saves a machine; when its id changes, every row pointing at it follows. False when
/// there is no machine `old_id`.
pub fn update_machine(conn: &Connection, old_id: i64, m: &MachineEdit) -> Result<bool> {
    if m.id != old_id {
        // Children reference the old id until they are moved; checked at commit.
        conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    }
    let n = conn
        .prepare_cached(
            "UPDATE machines SET machine_id = ?2, machine_name = ?3, type_id = ?4,
               machine_hours = ?5 WHERE machine_id = ?1",
        )?
        .execute(params![old_id, m.id, m.name, m.type_id, m.hours])?;
    if n > 0 && m.id != old_id {
        for table in MACHINE_CHILDREN {
            conn.execute(
                &format!("UPDATE {table} SET machine_id = ?2 WHERE machine_id = ?1"),
                params![old_id, m.id],
            )?;
        }
    }
    Ok(n > 0)
}

/// Is this machine id taken?
pub fn machine_exists(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM machines WHERE machine_id = ?1")?
        .exists([id])?)
}

/// What deleting a machine removes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineDependents {
    pub uses: i64,
    pub plans: i64,
    pub interventions: i64,
    pub authorizations: i64,
    pub board: bool,
    pub unknown_cards: i64,
    pub credentials: i64,
}

pub fn machine_dependents(conn: &Connection, id: i64) -> Result<MachineDependents> {
    let count = |table: &str| -> Result<i64> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM {table} WHERE machine_id = ?1"
            ))?
            .query_row([id], |r| r.get(0))?)
    };
    Ok(MachineDependents {
        uses: count("uses")?,
        plans: count("maintenances")?,
        interventions: count("interventions")?,
        authorizations: count("authorizations")?,
        board: count("boards")? > 0,
        unknown_cards: count("unknown_cards")?,
        credentials: count("board_credentials")?,
    })
}

/// Deletes a machine and, by cascade, everything `machine_dependents` counts; queued
/// remote requests for it go too. False when there was none.
pub fn delete_machine(conn: &Connection, id: i64) -> Result<bool> {
    conn.prepare_cached("DELETE FROM board_requests WHERE machine_id = ?1")?
        .execute([id])?;
    let n = conn
        .prepare_cached("DELETE FROM machines WHERE machine_id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// Machine types

pub fn update_machine_type(conn: &Connection, id: i64, t: &NewMachineType) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE machine_types SET type_name = ?2, timeout_min = ?3, grace_min = ?4,
               access_open = ?5, needs_second_person = ?6 WHERE type_id = ?1",
        )?
        .execute(params![
            id,
            t.name,
            t.timeout_min,
            t.grace_min,
            t.access_open,
            t.needs_second_person
        ])?;
    Ok(n > 0)
}

/// Deletes a type no machine uses (false otherwise); the caller tells staff how many
/// machines still use it from `MachineTypeRow::machines`.
pub fn delete_machine_type(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "DELETE FROM machine_types WHERE type_id = ?1
             AND NOT EXISTS (SELECT 1 FROM machines WHERE type_id = ?1)",
        )?
        .execute([id])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// Maintenance plans

const PLAN_ROW_SELECT: &str = "SELECT p.maintenance_id, p.machine_id, m.machine_name,
    p.hours_between, p.description, p.lcd_message, p.instructions_url
    FROM maintenances p JOIN machines m ON m.machine_id = p.machine_id";

fn plan_row_from_row(r: &Row) -> rusqlite::Result<PlanRow> {
    Ok(PlanRow {
        id: r.get(0)?,
        machine_id: r.get(1)?,
        machine_name: r.get(2)?,
        hours_between: r.get(3)?,
        description: r.get(4)?,
        lcd_message: r.get(5)?,
        instructions_url: r.get(6)?,
    })
}

pub fn plan_row(conn: &Connection, id: i64) -> Result<Option<PlanRow>> {
    let mut st = conn.prepare_cached(&format!("{PLAN_ROW_SELECT} WHERE p.maintenance_id = ?1"))?;
    Ok(st.query_row([id], plan_row_from_row).optional()?)
}

pub fn update_plan(conn: &Connection, id: i64, p: &NewPlan) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE maintenances SET machine_id = ?2, hours_between = ?3, description = ?4,
               lcd_message = ?5, instructions_url = ?6 WHERE maintenance_id = ?1",
        )?
        .execute(params![
            id,
            p.machine_id,
            p.hours_between,
            p.description,
            p.lcd_message,
            p.instructions_url
        ])?;
    Ok(n > 0)
}

/// How many interventions a plan has (they go with it).
pub fn plan_interventions(conn: &Connection, id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM interventions WHERE maintenance_id = ?1")?
        .query_row([id], |r| r.get(0))?)
}

pub fn delete_plan(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM maintenances WHERE maintenance_id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// Interventions

/// An intervention with the names staff read.
#[derive(Debug, Clone, PartialEq)]
pub struct InterventionView {
    pub id: i64,
    pub plan_id: i64,
    pub plan: String,
    pub machine_id: i64,
    pub machine: String,
    pub member_id: i64,
    pub member: String,
    pub timestamp: i64,
    pub replay: Option<bool>,
}

/// Which interventions to list; `None` = any.
#[derive(Debug, Clone, Copy, Default)]
pub struct InterventionFilter {
    pub machine_id: Option<i64>,
    pub member_id: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

const INTERVENTION_SELECT: &str = "SELECT i.intervention_id, i.maintenance_id,
    COALESCE(p.description, ''), i.machine_id, COALESCE(m.machine_name, ''), i.member_id,
    COALESCE(mb.name, ''), COALESCE(mb.surname, ''), i.timestamp, i.replay
    FROM interventions i
    LEFT JOIN maintenances p ON p.maintenance_id = i.maintenance_id
    LEFT JOIN machines m ON m.machine_id = i.machine_id
    LEFT JOIN members mb ON mb.member_id = i.member_id";

fn intervention_from_row(r: &Row) -> rusqlite::Result<InterventionView> {
    let name: String = r.get(6)?;
    let surname: String = r.get(7)?;
    Ok(InterventionView {
        id: r.get(0)?,
        plan_id: r.get(1)?,
        plan: r.get(2)?,
        machine_id: r.get(3)?,
        machine: r.get(4)?,
        member_id: r.get(5)?,
        member: full_name(&name, &surname),
        timestamp: r.get(8)?,
        replay: r.get(9)?,
    })
}

/// Interventions, newest first; `limit` < 0 = all.
pub fn intervention_views(
    conn: &Connection,
    f: &InterventionFilter,
    limit: i64,
) -> Result<Vec<InterventionView>> {
    let mut w = Where::default();
    w.eq("i.machine_id", f.machine_id);
    w.eq("i.member_id", f.member_id);
    w.cmp("i.timestamp", ">=", f.from);
    w.cmp("i.timestamp", "<", f.to);
    w.args.push(Value::Integer(limit));
    let sql = format!(
        "{INTERVENTION_SELECT}{} ORDER BY i.timestamp DESC, i.intervention_id DESC LIMIT ?",
        w.sql()
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(w.args), intervention_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn intervention_view(conn: &Connection, id: i64) -> Result<Option<InterventionView>> {
    let mut st = conn.prepare_cached(&format!(
        "{INTERVENTION_SELECT} WHERE i.intervention_id = ?1"
    ))?;
    Ok(st.query_row([id], intervention_from_row).optional()?)
}

/// What the intervention form writes; the machine is the plan's.
#[derive(Debug, Clone, Copy)]
pub struct InterventionEdit {
    pub plan_id: i64,
    pub member_id: i64,
    pub timestamp: i64,
}

pub fn insert_intervention_at(conn: &Connection, e: &InterventionEdit) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp)
         SELECT maintenance_id, machine_id, ?2, ?3 FROM maintenances WHERE maintenance_id = ?1",
    )?
    .execute(params![e.plan_id, e.member_id, e.timestamp])?;
    Ok(conn.last_insert_rowid())
}

pub fn update_intervention(conn: &Connection, id: i64, e: &InterventionEdit) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE interventions SET maintenance_id = ?2, member_id = ?3, timestamp = ?4,
               machine_id = (SELECT machine_id FROM maintenances WHERE maintenance_id = ?2)
             WHERE intervention_id = ?1",
        )?
        .execute(params![id, e.plan_id, e.member_id, e.timestamp])?;
    Ok(n > 0)
}

pub fn delete_intervention(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM interventions WHERE intervention_id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// Usage history

/// Which uses to list: by member, machine, and start time in `from..to` (UTC seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UseQuery {
    pub member_id: Option<i64>,
    pub machine_id: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl UseQuery {
    fn conditions(&self) -> Where {
        let mut w = Where::default();
        w.eq("member_id", self.member_id);
        w.eq("machine_id", self.machine_id);
        w.cmp("start_ts", ">=", self.from);
        w.cmp("start_ts", "<", self.to);
        w
    }
}

pub fn count_uses(conn: &Connection, q: &UseQuery) -> Result<i64> {
    let w = q.conditions();
    let mut st = conn.prepare_cached(&format!("SELECT COUNT(*) FROM uses{}", w.sql()))?;
    Ok(st.query_row(params_from_iter(w.args), |r| r.get(0))?)
}

pub(super) const USE_ROW_SELECT: &str = "SELECT u.use_id, u.member_id, COALESCE(mb.name, ''),
    COALESCE(mb.surname, ''), u.machine_id, COALESCE(m.machine_name, ''), u.start_ts,
    u.last_seen, u.end_ts, u.replay
    FROM uses u
    LEFT JOIN members mb ON mb.member_id = u.member_id
    LEFT JOIN machines m ON m.machine_id = u.machine_id";

pub(super) fn use_row_from_row(r: &Row) -> rusqlite::Result<UseRow> {
    let name: String = r.get(2)?;
    let surname: String = r.get(3)?;
    Ok(UseRow {
        id: r.get(0)?,
        member_id: r.get(1)?,
        member: full_name(&name, &surname),
        machine_id: r.get(4)?,
        machine: r.get(5)?,
        start: r.get(6)?,
        last_seen: r.get(7)?,
        end: r.get(8)?,
        replay: r.get(9)?,
    })
}

/// One page of uses, newest first; `limit` < 0 = all (exports). The page is picked on the
/// indexes alone (`uses_start`, `uses_member_start`, `uses_machine_start` all end in the
/// rowid), and only its rows are joined to names: a deep OFFSET stays cheap.
pub fn use_page(conn: &Connection, q: &UseQuery, limit: i64, offset: i64) -> Result<Vec<UseRow>> {
    let mut w = q.conditions();
    w.args.push(Value::Integer(limit));
    w.args.push(Value::Integer(offset));
    let sql = format!(
        "{USE_ROW_SELECT} JOIN (SELECT use_id AS id FROM uses{}
           ORDER BY start_ts DESC, use_id DESC LIMIT ? OFFSET ?) page ON page.id = u.use_id
         ORDER BY u.start_ts DESC, u.use_id DESC",
        w.sql()
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(w.args), use_row_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn use_row(conn: &Connection, id: i64) -> Result<Option<UseRow>> {
    let mut st = conn.prepare_cached(&format!("{USE_ROW_SELECT} WHERE u.use_id = ?1"))?;
    Ok(st.query_row([id], use_row_from_row).optional()?)
}

/// Rewrites a use's member, machine and times (a manual correction).
pub fn update_use(
    conn: &Connection,
    id: i64,
    member_id: i64,
    machine_id: i64,
    start: i64,
    end: Option<i64>,
) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE uses SET member_id = ?2, machine_id = ?3, start_ts = ?4, end_ts = ?5,
               last_seen = MAX(?4, COALESCE(?5, last_seen)) WHERE use_id = ?1",
        )?
        .execute(params![id, member_id, machine_id, start, end])?;
    Ok(n > 0)
}

pub fn delete_use(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM uses WHERE use_id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// Exports

/// An authorization with the names staff read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationView {
    pub member_id: i64,
    pub member: String,
    pub card_uid: Option<String>,
    pub machine_id: i64,
    pub machine: String,
}

pub fn authorization_views(
    conn: &Connection,
    member_id: Option<i64>,
    machine_id: Option<i64>,
) -> Result<Vec<AuthorizationView>> {
    let mut w = Where::default();
    w.eq("a.member_id", member_id);
    w.eq("a.machine_id", machine_id);
    let sql = format!(
        "SELECT a.member_id, mb.name, mb.surname, mb.card_uid, a.machine_id, m.machine_name
         FROM authorizations a JOIN members mb ON mb.member_id = a.member_id
         JOIN machines m ON m.machine_id = a.machine_id{}
         ORDER BY m.machine_name, mb.name, mb.surname",
        w.sql()
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(w.args), |r| {
        let name: String = r.get(1)?;
        let surname: String = r.get(2)?;
        Ok(AuthorizationView {
            member_id: r.get(0)?,
            member: full_name(&name, &surname),
            card_uid: r.get(3)?,
            machine_id: r.get(4)?,
            machine: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `WHERE` conditions for the filters present, with their arguments in order.
#[derive(Default)]
struct Where {
    parts: Vec<String>,
    args: Vec<Value>,
}

impl Where {
    fn eq(&mut self, col: &str, v: Option<i64>) {
        self.cmp(col, "=", v);
    }

    fn cmp(&mut self, col: &str, op: &str, v: Option<i64>) {
        if let Some(v) = v {
            self.parts.push(format!("{col} {op} ?"));
            self.args.push(Value::Integer(v));
        }
    }

    fn sql(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::{insert_machine, insert_member, insert_use, NewMember, Store};

    fn lab() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        let role = crate::store::default_role(&conn).unwrap().unwrap().id;
        let t = crate::store::machine_types(&conn).unwrap()[0].id;
        insert_machine(&conn, 1, "LASER", t).unwrap();
        insert_machine(&conn, 2, "DRILL", t).unwrap();
        for (name, card) in [("Anna", "a1"), ("Bruno", "b2")] {
            let m = NewMember {
                name,
                surname: "",
                role_id: role,
                card_uid: Some(card),
                email: None,
            };
            insert_member(&conn, &m, 0).unwrap();
        }
        (dir, conn)
    }

    #[test]
    fn use_pages_filter_and_order() {
        let (_dir, conn) = lab();
        for i in 0..30 {
            let member = 1 + i % 2;
            let machine = 1 + (i / 10) % 2;
            insert_use(
                &conn,
                member,
                machine,
                1000 + i,
                1000 + i,
                Some(1100 + i),
                None,
            )
            .unwrap();
        }
        let all = UseQuery::default();
        assert_eq!(count_uses(&conn, &all).unwrap(), 30);
        let first = use_page(&conn, &all, 10, 0).unwrap();
        assert_eq!(first.len(), 10);
        assert_eq!(first[0].start, 1029);
        let third = use_page(&conn, &all, 10, 20).unwrap();
        assert_eq!(third.last().unwrap().start, 1000);
        let anna_laser = UseQuery {
            member_id: Some(1),
            machine_id: Some(1),
            from: Some(1005),
            to: Some(1025),
        };
        let rows = use_page(&conn, &anna_laser, -1, 0).unwrap();
        let starts: Vec<i64> = rows.iter().map(|r| r.start).collect();
        assert_eq!(starts, [1024, 1022, 1020, 1008, 1006]);
        assert_eq!(count_uses(&conn, &anna_laser).unwrap(), 5);
        assert_eq!(rows[0].member, "Anna");
    }

    #[test]
    fn renumbering_a_machine_moves_its_rows() {
        let (_dir, conn) = lab();
        insert_use(&conn, 1, 2, 10, 10, Some(20), None).unwrap();
        conn.execute_batch(
            "INSERT INTO authorizations VALUES (1, 2);
             INSERT INTO maintenances (machine_id, hours_between, description) VALUES (2, 1, 'x');
             INSERT INTO boards (machine_id, last_seen) VALUES (2, 5);",
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        let edit = MachineEdit {
            id: 7,
            name: "DRILL 7",
            type_id: None,
            hours: 1.5,
        };
        assert!(update_machine(&tx, 2, &edit).unwrap());
        tx.commit().unwrap();
        let d = machine_dependents(&conn, 7).unwrap();
        assert_eq!(
            (d.uses, d.plans, d.authorizations, d.board),
            (1, 1, 1, true)
        );
        assert!(!machine_exists(&conn, 2).unwrap());
        assert!(delete_machine(&conn, 7).unwrap());
        assert_eq!(count_uses(&conn, &UseQuery::default()).unwrap(), 0);
    }
}
