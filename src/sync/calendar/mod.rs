//! Google Calendar: machine usage sessions, stays in the building and machine reservations
//! become events, each kind in its own calendar (`[sync] lab_calendar_id`,
//! `attendance_calendar_id`, `reservations_calendar_id`; one calendar may serve several).
//!
//! The lab only *queues* (`use_opened`, `attendance_opened`, `reservation_saved`... in the
//! transaction of the change); the sync worker delivers with `deliver`. Authentication is a
//! Google service account: a JWT (RS256, signed with ring) exchanged at the token endpoint
//! for an access token, cached until 5 minutes before it expires and refreshed once on a 401.
//!
//! Idempotency: the event id is chosen here, so an insert retried after a lost response
//! gets 409 and becomes an update. It is `fabgate`, this install's random prefix (kept in
//! `settings`, so two labs or a reinstall sharing a calendar never collide), a letter for
//! the kind and the subject's id, all in base32hex; once chosen it is remembered in
//! `calendar_events` and found again by kind and subject. Each queued change carries the
//! event's next revision (counted there in the same transaction); the newest revision
//! Google accepted is kept too, and an older change delivered late (after retries) is
//! dropped instead of overwriting a newer.
//!
//! Delivery (the Google side) is in `google`.

mod google;
pub use google::deliver;

use crate::config::SyncConfig;
use crate::store::{self, OutboxKind};
use rusqlite::{named_params, params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The OAuth scope asked for: events only.
pub const SCOPE: &str = "https://www.googleapis.com/auth/calendar.events";
/// How long an open session's (or stay's) event lasts until it closes.
pub const OPEN_EVENT_S: i64 = 3600;
/// The `settings` key of this install's event-id prefix.
pub const PREFIX_KEY: &str = "calendar_id_prefix";
/// Characters of the prefix: 6 base32hex characters, 30 random bits.
const PREFIX_LEN: usize = 6;
const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// How member names appear in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    Full,
    First,
    None,
}

impl Names {
    pub fn parse(s: &str) -> Names {
        match s {
            "full" => Names::Full,
            "none" => Names::None,
            _ => Names::First,
        }
    }

    fn who(self, name: &str, surname: &str) -> String {
        match self {
            Names::Full => format!("{name} {surname}").trim().to_string(),
            Names::First => name.trim().to_string(),
            Names::None => String::new(),
        }
    }
}

/// What an event is about (the `kind` column of `calendar_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A machine usage session (`uses`).
    #[default]
    Use,
    /// A stay in the building (`presence`).
    Attendance,
    /// A machine reservation.
    Reservation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Use => "use",
            Kind::Attendance => "attendance",
            Kind::Reservation => "reservation",
        }
    }

    /// Its letter in event ids (base32hex).
    fn letter(self) -> char {
        match self {
            Kind::Use => 'u',
            Kind::Attendance => 'a',
            Kind::Reservation => 'r',
        }
    }
}

/// Where events go (set once at start; unset = queue nothing). "" = that kind is off.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendars {
    pub lab: String,
    pub attendance: String,
    pub reservations: String,
    pub names: Names,
}

impl Calendars {
    /// `None` unless a key file and at least one calendar are configured.
    pub fn from_config(c: &SyncConfig) -> Option<Calendars> {
        let cals = Calendars {
            lab: c.lab_calendar_id.clone(),
            attendance: c.attendance_calendar_id.clone(),
            reservations: c.reservations_calendar_id.clone(),
            names: Names::parse(&c.calendar_member_names),
        };
        let any = [Kind::Use, Kind::Attendance, Kind::Reservation]
            .iter()
            .any(|k| cals.of(*k).is_some());
        (!c.google_key_file.is_empty() && any).then_some(cals)
    }

    /// The calendar of a kind, if that kind is on.
    pub fn of(&self, kind: Kind) -> Option<&str> {
        let id = match kind {
            Kind::Use => &self.lab,
            Kind::Attendance => &self.attendance,
            Kind::Reservation => &self.reservations,
        };
        (!id.is_empty()).then_some(id.as_str())
    }
}

static TARGET: OnceLock<Calendars> = OnceLock::new();

/// Turns the calendars on for this process (the daemon and commands, once the config is
/// loaded: a command signing someone in queues their event too).
pub fn configure(c: &SyncConfig) {
    let Some(t) = Calendars::from_config(c) else {
        return;
    };
    for (what, kind) in [
        ("machine usage", Kind::Use),
        ("attendance", Kind::Attendance),
        ("reservations", Kind::Reservation),
    ] {
        if let Some(id) = t.of(kind) {
            log::info!("sync: {what} goes to Google Calendar {id}");
        }
    }
    // Set once per process (commands configure before the daemon starts).
    let _ = TARGET.set(t);
}

/// `n` in base32hex (0-9, a-v).
fn base32hex(n: i64) -> String {
    let mut n = n.max(0) as u64;
    let mut digits = Vec::new();
    loop {
        digits.push(BASE32HEX[(n % 32) as usize]);
        n /= 32;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii")
}

/// The event id of a subject: `fabgate`, the install prefix, the kind's letter and the
/// subject id in base32hex. Fixed-length prefix and letter keep ids of kinds apart.
pub fn event_id(prefix: &str, kind: Kind, subject_id: i64) -> String {
    format!("fabgate{prefix}{}{}", kind.letter(), base32hex(subject_id))
}

/// This install's event-id prefix, made (random) and stored in `settings` at first need.
pub fn install_prefix(db: &Connection) -> store::Result<String> {
    if let Some(p) = store::setting(db, PREFIX_KEY)? {
        return Ok(p);
    }
    let mut bytes = [0u8; PREFIX_LEN];
    getrandom::fill(&mut bytes)
        .map_err(|e| store::Error::Invalid(format!("no randomness for an id prefix: {e}")))?;
    // 256 is a multiple of 32: every character is equally likely.
    let prefix: String = bytes
        .iter()
        .map(|b| BASE32HEX[usize::from(b % 32)] as char)
        .collect();
    // Another process may have stored one meanwhile: the first one stays.
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        params![PREFIX_KEY, prefix],
    )?;
    Ok(store::setting(db, PREFIX_KEY)?.unwrap_or(prefix))
}

/// A queued calendar change (the outbox payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarOp {
    /// "insert", "update" or "delete".
    pub op: String,
    pub event_id: String,
    pub calendar_id: String,
    /// Rows queued before attendance and reservations have no kind: uses.
    #[serde(default)]
    pub kind: Kind,
    /// The use, presence or reservation id (`use_id` in rows queued before).
    #[serde(alias = "use_id")]
    pub subject_id: i64,
    /// Counts the changes queued for this event; an older one never overwrites a newer.
    pub rev: i64,
    pub event: Value,
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// What an event shows: its title and times (`end` None while open).
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    summary: String,
    start: i64,
    end: Option<i64>,
}

/// "Title — who", or the title alone when names are off.
fn titled(title: &str, who: &str) -> String {
    if who.is_empty() {
        title.to_string()
    } else {
        format!("{title} — {who}")
    }
}

/// The event of a use or a stay as it stands in `db` (None: the subject is gone).
fn shown_in_db(db: &Connection, names: Names, kind: Kind, id: i64) -> store::Result<Option<Shown>> {
    let sql = match kind {
        Kind::Use => {
            "SELECT u.start_ts, u.end_ts, p.name, p.surname, m.machine_name
             FROM uses u JOIN machines m ON m.machine_id = u.machine_id
             JOIN members p ON p.member_id = u.member_id WHERE u.use_id = ?1"
        }
        Kind::Attendance => {
            "SELECT s.signed_in_at, s.signed_out_at, p.name, p.surname, 'In the lab'
             FROM presence s JOIN members p ON p.member_id = s.member_id
             WHERE s.presence_id = ?1"
        }
        Kind::Reservation => return Ok(None),
    };
    let row = db
        .query_row(sql, [id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    Ok(row.map(|(start, end, name, surname, title)| Shown {
        summary: titled(&title, &names.who(&name, &surname)),
        start,
        end,
    }))
}

/// The event body Google gets.
fn event_json(id: &str, kind: Kind, subject_id: i64, s: &Shown, now: i64) -> Value {
    let end = match s.end {
        Some(e) => e.max(s.start),
        None => now.max(s.start) + OPEN_EVENT_S,
    };
    json!({
        "id": id,
        "summary": s.summary,
        "start": { "dateTime": rfc3339(s.start) },
        "end": { "dateTime": rfc3339(end) },
        // Google keeps a deleted event as cancelled and its id taken: an id used again
        // (SQLite may reuse a deleted row's id) gets 409, and the update must revive it.
        "status": "confirmed",
        "extendedProperties": { "private": {
            format!("fabgate_{}", kind.as_str()): subject_id.to_string(),
        } },
    })
}

/// The remembered event id of a subject, and whether its last change was a deletion.
fn known_event(
    db: &Connection,
    kind: Kind,
    subject_id: i64,
) -> store::Result<Option<(String, bool)>> {
    Ok(db
        .prepare_cached(
            "SELECT event_id, gone FROM calendar_events WHERE kind = ?1 AND subject_id = ?2
             ORDER BY changed_at DESC LIMIT 1",
        )?
        .query_row(params![kind.as_str(), subject_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// Queues a change of a subject's event for `cals` (in the caller's transaction); `shown`
/// None queues a deletion. Nothing when the kind's calendar is off.
fn queue_shown(
    db: &Connection,
    cals: &Calendars,
    kind: Kind,
    subject_id: i64,
    op: &str,
    shown: Option<Shown>,
    now: i64,
) -> store::Result<()> {
    let Some(calendar_id) = cals.of(kind) else {
        return Ok(());
    };
    let id = match known_event(db, kind, subject_id)? {
        Some((id, _)) => id,
        None => event_id(&install_prefix(db)?, kind, subject_id),
    };
    let (op, event) = match &shown {
        Some(s) => (op, event_json(&id, kind, subject_id, s, now)),
        None => ("delete", Value::Null),
    };
    let rev: i64 = db
        .prepare_cached(
            "INSERT INTO calendar_events (event_id, kind, subject_id, queued_rev, changed_at, gone)
             VALUES (?1, ?2, ?3, 1, ?4, ?5)
             ON CONFLICT (event_id) DO UPDATE SET queued_rev = queued_rev + 1,
               changed_at = excluded.changed_at, gone = excluded.gone
             RETURNING queued_rev",
        )?
        .query_row(
            params![id, kind.as_str(), subject_id, now, shown.is_none()],
            |r| r.get(0),
        )?;
    let payload = CalendarOp {
        op: op.into(),
        event_id: id,
        calendar_id: calendar_id.to_string(),
        kind,
        subject_id,
        rev,
        event,
    };
    let payload = serde_json::to_string(&payload).expect("a calendar change serialises");
    super::outbox::enqueue(db, OutboxKind::Calendar, &payload, None)?;
    QUEUED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Queues the event of a use or stay as it stands in `db`; one that is gone is deleted.
fn queue_for(
    db: &Connection,
    cals: &Calendars,
    kind: Kind,
    subject_id: i64,
    op: &str,
    now: i64,
) -> store::Result<()> {
    if cals.of(kind).is_none() {
        return Ok(());
    }
    let shown = shown_in_db(db, cals.names, kind, subject_id)?;
    queue_shown(db, cals, kind, subject_id, op, shown, now)
}

fn queue(db: &Connection, kind: Kind, subject_id: i64, op: &str, now: i64) -> store::Result<()> {
    match TARGET.get() {
        Some(t) => queue_for(db, t, kind, subject_id, op, now),
        None => Ok(()),
    }
}

static QUEUED: AtomicBool = AtomicBool::new(false);

/// Wakes the sync worker if this process queued calendar changes (call after committing).
pub fn wake_if_queued() {
    if QUEUED.swap(false, Ordering::Relaxed) {
        super::wake();
    }
}

/// A usage session was recorded (open, or already closed): queue its event.
pub fn use_opened(db: &Connection, use_id: i64, now: i64) -> store::Result<()> {
    queue(db, Kind::Use, use_id, "insert", now)
}

/// A usage session was closed or corrected: queue the update of its event.
pub fn use_closed(db: &Connection, use_id: i64, now: i64) -> store::Result<()> {
    queue(db, Kind::Use, use_id, "update", now)
}

/// A usage session was deleted (call after deleting the row): queue the event's deletion.
pub fn use_deleted(db: &Connection, use_id: i64, now: i64) -> store::Result<()> {
    queue(db, Kind::Use, use_id, "delete", now)
}

/// The events fabgate still tracks (not deleted) of the uses and stays that the
/// conditions `uses` (on `uses`) and `stays` (on `presence`) select, with named
/// parameters `params`. Call before a change re-assigns or deletes those subjects, then
/// `requeue` the events: Google must not keep what the lab no longer does.
fn tracked_events(
    db: &Connection,
    uses: &str,
    stays: &str,
    params: &[(&str, &dyn rusqlite::ToSql)],
) -> store::Result<Vec<(Kind, i64)>> {
    let mut stmt = db.prepare(&format!(
        "SELECT e.kind, e.subject_id FROM calendar_events e
         WHERE e.gone = 0 AND (
           (e.kind = 'use' AND e.subject_id IN (SELECT use_id FROM uses WHERE {uses}))
           OR (e.kind = 'attendance'
               AND e.subject_id IN (SELECT presence_id FROM presence WHERE {stays})))"
    ))?;
    let rows = stmt.query_map(params, |r| {
        let kind = match r.get::<_, String>(0)?.as_str() {
            "attendance" => Kind::Attendance,
            _ => Kind::Use,
        };
        Ok((kind, r.get::<_, i64>(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The tracked events of the uses and stays of `member_id` (call before an erasure
/// re-assigns them).
pub fn member_events(db: &Connection, member_id: i64) -> store::Result<Vec<(Kind, i64)>> {
    tracked_events(
        db,
        "member_id = :member",
        "member_id = :member",
        named_params! { ":member": member_id },
    )
}

/// The tracked events of the uses retention anonymises and the stays it deletes (call
/// before the purge; the conditions are the purge's own, `store::USES_TO_ANONYMISE` and
/// `store::STAYS_TO_DELETE`).
pub fn retention_events(
    db: &Connection,
    anon: Option<i64>,
    uses_before: i64,
    stays_before: i64,
) -> store::Result<Vec<(Kind, i64)>> {
    tracked_events(
        db,
        store::USES_TO_ANONYMISE,
        store::STAYS_TO_DELETE,
        named_params! {
            ":anon": anon,
            ":uses_before": uses_before,
            ":stays_before": stays_before,
        },
    )
}

/// The subjects of `events` were re-assigned (an erasure, retention's anonymisation) or
/// deleted (retention): each event is queued again as its subject now stands — updated
/// (the name becomes the new owner's, "Anonymous") or deleted when the subject is gone
/// — so the calendars stop showing the name. Call after the change, in its transaction.
/// Returns how many changes were queued (none for a calendar that is off).
pub fn requeue(db: &Connection, events: &[(Kind, i64)], now: i64) -> store::Result<usize> {
    match TARGET.get() {
        Some(t) => requeue_for(db, t, events, now),
        None => Ok(0),
    }
}

fn requeue_for(
    db: &Connection,
    cals: &Calendars,
    events: &[(Kind, i64)],
    now: i64,
) -> store::Result<usize> {
    let mut queued = 0;
    for &(kind, id) in events {
        if cals.of(kind).is_some() {
            queue_for(db, cals, kind, id, "update", now)?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// A member signed in (presence row `presence_id`): queue the stay's event.
pub fn attendance_opened(db: &Connection, presence_id: i64, now: i64) -> store::Result<()> {
    queue(db, Kind::Attendance, presence_id, "insert", now)
}

/// A member signed out (by themselves or at closing time): queue the update of the event.
pub fn attendance_closed(db: &Connection, presence_id: i64, now: i64) -> store::Result<()> {
    queue(db, Kind::Attendance, presence_id, "update", now)
}

/// A reservation was made or changed: queue its event ("Reserved: machine — member").
/// `member` is the member's display name ("Carla Rossi"); `calendar_member_names` applies
/// ("first" keeps its first word, "none" drops it). Times are Unix seconds.
pub fn reservation_saved(
    db: &Connection,
    reservation_id: i64,
    machine: &str,
    member: &str,
    start: i64,
    end: i64,
) -> store::Result<()> {
    match TARGET.get() {
        Some(t) => reservation_saved_for(db, t, reservation_id, machine, member, start, end),
        None => Ok(()),
    }
}

/// A reservation was cancelled: queue its event's deletion.
pub fn reservation_cancelled(db: &Connection, reservation_id: i64) -> store::Result<()> {
    match TARGET.get() {
        Some(t) => reservation_cancelled_for(db, t, reservation_id),
        None => Ok(()),
    }
}

fn reservation_saved_for(
    db: &Connection,
    cals: &Calendars,
    reservation_id: i64,
    machine: &str,
    member: &str,
    start: i64,
    end: i64,
) -> store::Result<()> {
    if cals.of(Kind::Reservation).is_none() {
        return Ok(());
    }
    let (first, rest) = member.trim().split_once(' ').unwrap_or((member.trim(), ""));
    let shown = Shown {
        summary: titled(
            &format!("Reserved: {machine}"),
            &cals.names.who(first, rest),
        ),
        start,
        end: Some(end),
    };
    // A new (or cancelled and made again) reservation is inserted, a known one updated.
    let known = known_event(db, Kind::Reservation, reservation_id)?;
    let op = if known.is_some_and(|(_, gone)| !gone) {
        "update"
    } else {
        "insert"
    };
    queue_shown(
        db,
        cals,
        Kind::Reservation,
        reservation_id,
        op,
        Some(shown),
        store::now(),
    )
}

fn reservation_cancelled_for(
    db: &Connection,
    cals: &Calendars,
    reservation_id: i64,
) -> store::Result<()> {
    let now = store::now();
    queue_shown(
        db,
        cals,
        Kind::Reservation,
        reservation_id,
        "delete",
        None,
        now,
    )
}

/// Retention: forgets events whose subject is gone and whose last change was delivered,
/// and events unchanged since `before`, but never one that a pending or failed outbox row
/// still refers to (its revisions keep late retries in order). Returns how many.
pub fn purge(db: &Connection, before: i64) -> store::Result<usize> {
    Ok(db.execute(
        "DELETE FROM calendar_events
         WHERE event_id NOT IN (
             SELECT id FROM (
                 SELECT CASE WHEN json_valid(payload)
                        THEN json_extract(payload, '$.event_id') END AS id
                 FROM outbox WHERE kind = 'calendar' AND state IN ('pending', 'failed'))
             WHERE id IS NOT NULL)
         AND (changed_at < ?1
              OR (sent_rev >= queued_rev AND (gone
                  OR (kind = 'use' AND NOT EXISTS
                      (SELECT 1 FROM uses WHERE use_id = subject_id))
                  OR (kind = 'attendance' AND NOT EXISTS
                      (SELECT 1 FROM presence WHERE presence_id = subject_id)))))",
        [before],
    )?)
}

/// What is kept of a delivered change.
pub fn sent_summary(payload: &str) -> String {
    match serde_json::from_str::<CalendarOp>(payload) {
        Ok(op) => json!({ "event_id": op.event_id, "rev": op.rev }).to_string(),
        Err(_) => "{}".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::open(
            &dir.path().join("lab.db"),
            crate::config::Synchronous::Normal,
        )
        .unwrap();
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "INSERT INTO machines (machine_id, machine_name) VALUES (1, 'LASER 1');
             INSERT INTO members (member_id, name, surname, role_id, created_at)
               VALUES (1, 'Carla', 'Rossi', (SELECT MIN(role_id) FROM roles), 0);",
        )
        .unwrap();
        (dir, conn)
    }

    fn cals() -> Calendars {
        Calendars {
            lab: "lab@x".into(),
            attendance: "in@x".into(),
            reservations: "res@x".into(),
            names: Names::First,
        }
    }

    fn queued(conn: &Connection) -> Vec<CalendarOp> {
        store::outbox_due(conn, i64::MAX, 100)
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(&r.payload).unwrap())
            .collect()
    }

    fn ops(ops: &[CalendarOp]) -> Vec<(&str, i64)> {
        ops.iter().map(|o| (o.op.as_str(), o.rev)).collect()
    }

    fn is_base32hex(id: &str) -> bool {
        (5..=1024).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
    }

    #[test]
    fn event_ids_are_base32hex_and_distinct_per_kind() {
        assert_eq!(event_id("k3n9q0", Kind::Use, 0), "fabgatek3n9q0u0");
        assert_eq!(event_id("k3n9q0", Kind::Attendance, 31), "fabgatek3n9q0av");
        assert_eq!(
            event_id("k3n9q0", Kind::Reservation, 32),
            "fabgatek3n9q0r10"
        );
        assert!(is_base32hex(&event_id("vvvvvv", Kind::Use, i64::MAX)));
    }

    #[test]
    fn the_install_prefix_is_made_once_and_differs_between_databases() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            store::Store::open(&dir.path().join(name), crate::config::Synchronous::Normal)
                .unwrap()
                .connect()
                .unwrap()
        };
        let a = install_prefix(&open("a.db")).unwrap();
        assert_eq!(a.len(), PREFIX_LEN);
        assert!(is_base32hex(&format!("fabgate{a}")), "{a}");
        // Same database (another connection, as after a restart): same prefix, same ids.
        assert_eq!(install_prefix(&open("a.db")).unwrap(), a);
        let b = install_prefix(&open("b.db")).unwrap();
        assert_ne!(a, b, "two installs, two prefixes");
        assert_ne!(event_id(&a, Kind::Use, 1), event_id(&b, Kind::Use, 1));
    }

    #[test]
    fn changes_are_queued_with_rising_revisions_and_a_deleted_use_is_a_deletion() {
        let (_dir, conn) = lab();
        conn.execute_batch(
            "INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen)
               VALUES (7, 1, 1, 1000, 1000);",
        )
        .unwrap();
        let t = cals();
        queue_for(&conn, &t, Kind::Use, 7, "insert", 1000).unwrap();
        conn.execute("UPDATE uses SET end_ts = 1600 WHERE use_id = 7", [])
            .unwrap();
        queue_for(&conn, &t, Kind::Use, 7, "update", 1600).unwrap();
        conn.execute("DELETE FROM uses WHERE use_id = 7", [])
            .unwrap();
        queue_for(&conn, &t, Kind::Use, 7, "update", 1700).unwrap();
        let q = queued(&conn);
        assert_eq!(ops(&q), [("insert", 1), ("update", 2), ("delete", 3)]);
        assert_eq!(q[0].event["summary"], "LASER 1 — Carla");
        assert_eq!(q[0].event["end"]["dateTime"], rfc3339(1000 + OPEN_EVENT_S));
        assert_eq!(q[1].event["end"]["dateTime"], rfc3339(1600));
        let id = event_id(&install_prefix(&conn).unwrap(), Kind::Use, 7);
        assert!(q
            .iter()
            .all(|o| o.event_id == id && o.calendar_id == "lab@x"));
        assert!(q.iter().all(|o| o.kind == Kind::Use && o.subject_id == 7));
    }

    #[test]
    fn a_stay_is_one_event_in_the_attendance_calendar() {
        let (_dir, conn) = lab();
        conn.execute_batch(
            "INSERT INTO presence (presence_id, member_id, signed_in_at, in_source)
               VALUES (4, 1, 5000, 'cli');",
        )
        .unwrap();
        let mut t = cals();
        t.names = Names::Full;
        queue_for(&conn, &t, Kind::Attendance, 4, "insert", 5000).unwrap();
        conn.execute(
            "UPDATE presence SET signed_out_at = 9000 WHERE presence_id = 4",
            [],
        )
        .unwrap();
        queue_for(&conn, &t, Kind::Attendance, 4, "update", 9000).unwrap();
        let q = queued(&conn);
        assert_eq!(ops(&q), [("insert", 1), ("update", 2)]);
        assert!(q
            .iter()
            .all(|o| o.calendar_id == "in@x" && o.kind == Kind::Attendance));
        assert_eq!(q[0].event_id, q[1].event_id);
        assert!(q[0]
            .event_id
            .contains(&format!("{}a4", install_prefix(&conn).unwrap())));
        assert_eq!(q[0].event["summary"], "In the lab — Carla Rossi");
        assert_eq!(q[0].event["start"]["dateTime"], rfc3339(5000));
        assert_eq!(q[0].event["end"]["dateTime"], rfc3339(5000 + OPEN_EVENT_S));
        assert_eq!(q[1].event["end"]["dateTime"], rfc3339(9000));
        // Attendance off: nothing queued.
        t.attendance.clear();
        queue_for(&conn, &t, Kind::Attendance, 4, "update", 9000).unwrap();
        assert_eq!(queued(&conn).len(), 2);
    }

    #[test]
    fn reservations_are_inserted_updated_and_cancelled() {
        let (_dir, conn) = lab();
        let t = cals();
        let day = 1_800_000_000;
        reservation_saved_for(&conn, &t, 9, "LASER 1", "Carla Rossi", day, day + 3600).unwrap();
        reservation_saved_for(&conn, &t, 9, "LASER 1", "Carla Rossi", day, day + 7200).unwrap();
        reservation_cancelled_for(&conn, &t, 9).unwrap();
        // Booked again after the cancellation: an insert (which revives the event).
        reservation_saved_for(&conn, &t, 9, "LASER 1", "Carla Rossi", day, day + 600).unwrap();
        let q = queued(&conn);
        assert_eq!(
            ops(&q),
            [("insert", 1), ("update", 2), ("delete", 3), ("insert", 4)]
        );
        let id = event_id(&install_prefix(&conn).unwrap(), Kind::Reservation, 9);
        for o in &q {
            assert_eq!(
                (
                    o.event_id.as_str(),
                    o.calendar_id.as_str(),
                    o.kind,
                    o.subject_id
                ),
                (id.as_str(), "res@x", Kind::Reservation, 9)
            );
        }
        assert_eq!(q[0].event["summary"], "Reserved: LASER 1 — Carla");
        assert_eq!(q[0].event["id"], id.as_str());
        assert_eq!(q[1].event["start"]["dateTime"], rfc3339(day));
        assert_eq!(q[1].event["end"]["dateTime"], rfc3339(day + 7200));
        assert_eq!(q[2].event, Value::Null);
        // A use with the same id is another event.
        conn.execute_batch(
            "INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen)
               VALUES (9, 1, 1, 1000, 1000);",
        )
        .unwrap();
        queue_for(&conn, &t, Kind::Use, 9, "insert", 1000).unwrap();
        let q = queued(&conn);
        assert_eq!((q[4].rev, q[4].calendar_id.as_str()), (1, "lab@x"));
        assert_ne!(q[4].event_id, id);
        // Reservations off: nothing queued.
        let off = Calendars {
            reservations: String::new(),
            ..t
        };
        reservation_saved_for(&conn, &off, 10, "LASER 1", "Carla", day, day + 60).unwrap();
        reservation_cancelled_for(&conn, &off, 10).unwrap();
        assert_eq!(queued(&conn).len(), 5);
    }

    #[test]
    fn rows_queued_before_the_upgrade_still_deliver_with_their_ids() {
        let old = r#"{"op":"update","event_id":"fabgate7","calendar_id":"c@x","use_id":7,"rev":2,"event":{}}"#;
        let op: CalendarOp = serde_json::from_str(old).unwrap();
        assert_eq!((op.kind, op.subject_id), (Kind::Use, 7));

        // A lab at schema 7 whose use 7 has an event: after the migration its row is a
        // use's, and the next change of use 7 keeps the event id.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let raw = Connection::open(&path).unwrap();
        for sql in &crate::store::schema::MIGRATIONS[..7] {
            raw.execute_batch(sql).unwrap();
        }
        raw.execute_batch(
            "PRAGMA user_version = 7;
             INSERT INTO roles (role_id, role_name) VALUES (1, 'users');
             INSERT INTO machines (machine_id, machine_name) VALUES (1, 'LASER 1');
             INSERT INTO members (member_id, name, role_id, created_at) VALUES (1, 'Carla', 1, 0);
             INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen)
               VALUES (7, 1, 1, 1000, 1000);
             INSERT INTO calendar_events (event_id, use_id, queued_rev, sent_rev, sent_at)
               VALUES ('fabgate7', 7, 1, 1, 1001);",
        )
        .unwrap();
        drop(raw);
        let conn = store::Store::open(&path, crate::config::Synchronous::Normal)
            .unwrap()
            .connect()
            .unwrap();
        let row: (String, i64, i64) = conn
            .query_row(
                "SELECT kind, subject_id, changed_at FROM calendar_events WHERE event_id = 'fabgate7'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("use".into(), 7, 1001));
        queue_for(&conn, &cals(), Kind::Use, 7, "update", 2000).unwrap();
        let q = queued(&conn);
        assert_eq!((q[0].event_id.as_str(), q[0].rev), ("fabgate7", 2));
    }

    #[test]
    fn retention_renames_anonymised_uses_and_deletes_old_stays_in_the_calendars() {
        let (_dir, conn) = lab();
        let t = cals();
        // Old (before 1000) and recent uses and stays; use 3 is still open; use 4 has
        // no event; stay 3's event was deleted already.
        conn.execute_batch(
            "INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, end_ts)
               VALUES (1, 1, 1, 100, 100, 200), (2, 1, 1, 5000, 5000, 5100),
                      (3, 1, 1, 100, 100, NULL), (4, 1, 1, 100, 100, 200);
             INSERT INTO presence (presence_id, member_id, signed_in_at, signed_out_at, in_source)
               VALUES (1, 1, 100, 200, 'cli'), (2, 1, 5000, 5100, 'cli'), (3, 1, 100, 200, 'cli');",
        )
        .unwrap();
        for id in 1..=3 {
            queue_for(&conn, &t, Kind::Use, id, "insert", 1000).unwrap();
            queue_for(&conn, &t, Kind::Attendance, id, "insert", 1000).unwrap();
        }
        conn.execute(
            "UPDATE calendar_events SET gone = 1 WHERE kind = 'attendance' AND subject_id = 3",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM outbox", []).unwrap();

        // What `lab::retention::purge` does, with these calendars.
        let anon = crate::lab::retention::anonymous_member(&conn, 9000).unwrap();
        let events = retention_events(&conn, Some(anon), 1000, 1000).unwrap();
        assert_eq!(store::anonymise_uses_before(&conn, anon, 1000).unwrap(), 2);
        assert_eq!(store::delete_presence_before(&conn, 1000).unwrap(), 2);
        assert_eq!(requeue_for(&conn, &t, &events, 9000).unwrap(), 2);

        let mut q = queued(&conn);
        q.sort_by_key(|o| o.kind.as_str());
        let got: Vec<_> = q
            .iter()
            .map(|o| (o.kind, o.subject_id, o.op.as_str(), o.rev))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::Attendance, 1, "delete", 2),
                (Kind::Use, 1, "update", 2)
            ]
        );
        assert_eq!(q[1].event["summary"], "LASER 1 — Anonymous");
        assert_eq!(q[1].event["end"]["dateTime"], rfc3339(200));
        // Nothing left for the next day's run; the changes' bookkeeping stays until sent.
        assert!(retention_events(&conn, Some(anon), 1000, 1000)
            .unwrap()
            .is_empty());
        assert_eq!(purge(&conn, 1000).unwrap(), 0);
    }

    #[test]
    fn retention_forgets_finished_events_but_not_those_still_queued() {
        let (_dir, conn) = lab();
        let t = cals();
        conn.execute_batch(
            "INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, end_ts)
               VALUES (1, 1, 1, 100, 100, 200), (2, 1, 1, 100, 100, 200), (3, 1, 1, 100, 100, 200);
             INSERT INTO presence (presence_id, member_id, signed_in_at, signed_out_at, in_source)
               VALUES (1, 1, 100, 200, 'cli');",
        )
        .unwrap();
        for use_id in 1..=3 {
            queue_for(&conn, &t, Kind::Use, use_id, "insert", 1000).unwrap();
        }
        queue_for(&conn, &t, Kind::Attendance, 1, "insert", 1000).unwrap();
        reservation_saved_for(&conn, &t, 5, "LASER 1", "Carla", 100, 200).unwrap();
        reservation_cancelled_for(&conn, &t, 5).unwrap();
        // Everything delivered but use 3's event; then uses 1 and 3 and the stay are gone.
        let pending = event_id(&install_prefix(&conn).unwrap(), Kind::Use, 3);
        for r in store::outbox_due(&conn, i64::MAX, 100).unwrap() {
            let op: CalendarOp = serde_json::from_str(&r.payload).unwrap();
            if op.event_id != pending {
                conn.execute(
                    "UPDATE calendar_events SET sent_rev = ?2 WHERE event_id = ?1",
                    params![op.event_id, op.rev],
                )
                .unwrap();
                store::outbox_mark_sent(&conn, r.id, 1001, "{}").unwrap();
            }
        }
        conn.execute_batch("DELETE FROM uses WHERE use_id IN (1, 3); DELETE FROM presence;")
            .unwrap();
        let kept = |conn: &Connection| -> Vec<(String, i64)> {
            conn.prepare("SELECT kind, subject_id FROM calendar_events ORDER BY kind, subject_id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        // Use 1, the stay and the cancelled reservation go; use 2 still exists; use 3's
        // change is still pending, so its revision count stays.
        assert_eq!(purge(&conn, 0).unwrap(), 3);
        assert_eq!(kept(&conn), [("use".into(), 2), ("use".into(), 3)]);
        // Past the retention window, what nothing waits for goes.
        assert_eq!(purge(&conn, 1001).unwrap(), 1);
        assert_eq!(kept(&conn), [("use".into(), 3)]);
        // A failed change keeps it too (staff may retry it).
        let row = store::outbox_due(&conn, i64::MAX, 10).unwrap()[0].id;
        store::outbox_mark_failed(&conn, row, "400").unwrap();
        assert_eq!(purge(&conn, 1001).unwrap(), 0);
        conn.execute("DELETE FROM outbox", []).unwrap();
        assert_eq!(purge(&conn, 1001).unwrap(), 1);
    }
}
