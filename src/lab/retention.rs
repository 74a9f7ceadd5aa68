//! GDPR rules: how long personal history is kept, what an erasure covers. FabOMatic's
//! policy (features.md c.6) is the default: uses and maintenance interventions are kept as
//! statistics but re-assigned to the "Anonymous" member after a year; unknown-card taps
//! are deleted after a month. The daemon applies it daily (`jobs`), `fabgate purge` on
//! demand. The Anonymous member is created on demand (with its reserved role when an old
//! lab lacks it), so a fresh lab stays empty until there is something to anonymise.

use crate::store::{self, Erased, MemberData, MemberRow, Result};
use rusqlite::Connection;
use serde::Serialize;

const DAY_S: i64 = 86_400;
/// Days a delivered message's record (recipient, subject) stays in the outbox.
pub const OUTBOX_SENT_DAYS: i64 = 30;

/// Retention periods, from `[retention]` in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub uses_days: i64,
    pub interventions_days: i64,
    pub unknown_cards_days: i64,
    /// Building-register stays (`[presence] retention_days`).
    pub presence_days: i64,
}

impl Retention {
    pub fn from_config(config: &crate::config::Config) -> Retention {
        let r = &config.retention;
        Retention {
            uses_days: r.uses_days,
            interventions_days: r.interventions_days,
            unknown_cards_days: r.unknown_cards_days,
            presence_days: config.presence.retention_days,
        }
    }
}

/// What one purge changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub uses_anonymised: usize,
    pub interventions_anonymised: usize,
    pub unknown_cards_deleted: usize,
    pub presence_deleted: usize,
}

impl PurgeReport {
    pub fn is_empty(&self) -> bool {
        *self == PurgeReport::default()
    }
}

/// Rows a purge may change before a backup is taken first (issue 12).
pub const HANDFUL: i64 = 20;

/// What a purge at `now` would change in the history: the importer's report, and the
/// backup-first rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgePreview {
    pub uses: i64,
    pub interventions: i64,
    pub unknown_cards: i64,
}

impl PurgePreview {
    pub fn rows(&self) -> i64 {
        self.uses + self.interventions + self.unknown_cards
    }
}

pub fn preview(db: &Connection, rules: &Retention, now: i64) -> Result<PurgePreview> {
    let anon = store::anonymous_member_id(db)?;
    Ok(PurgePreview {
        uses: store::count_uses_to_anonymise(db, anon, now - rules.uses_days * DAY_S)?,
        interventions: store::count_interventions_to_anonymise(
            db,
            anon,
            now - rules.interventions_days * DAY_S,
        )?,
        unknown_cards: store::count_unknown_cards_before(
            db,
            now - rules.unknown_cards_days * DAY_S,
        )?,
    })
}

/// Since when the imported history waits for staff to confirm its retention, if it does.
pub fn held_since(db: &Connection) -> Result<Option<i64>> {
    Ok(store::setting(db, store::RETENTION_HOLD)?.and_then(|v| v.parse().ok()))
}

/// Holds the retention of the history now in the lab (an import) until `confirm`.
pub fn hold(db: &Connection, now: i64) -> Result<()> {
    store::set_setting(db, store::RETENTION_HOLD, &now.to_string())
}

/// Staff confirmed: the next purge applies the rules to the imported history too.
pub fn confirm(db: &Connection) -> Result<bool> {
    Ok(db.execute(
        "DELETE FROM settings WHERE key = ?1",
        [store::RETENTION_HOLD],
    )? > 0)
}

/// The daemon's purge: like `purge`, but while an import's history is held the history
/// (uses, interventions, unknown cards) is left alone; the rest (building register,
/// delivered outbox records, spent reset links) goes as usual.
pub fn purge_unless_held(db: &Connection, rules: &Retention, now: i64) -> Result<PurgeReport> {
    if held_since(db)?.is_none() {
        return purge(db, rules, now);
    }
    // Far enough back that nothing is older (an i64 cutoff, no overflow).
    const FOREVER_DAYS: i64 = 1_000_000;
    let kept = Retention {
        uses_days: FOREVER_DAYS,
        interventions_days: FOREVER_DAYS,
        unknown_cards_days: FOREVER_DAYS,
        presence_days: rules.presence_days,
    };
    purge(db, &kept, now)
}

/// Applies the retention periods at time `now`, inside the caller's transaction.
/// Open uses are never touched: they are closed (by the board or as orphans) first.
pub fn purge(db: &Connection, rules: &Retention, now: i64) -> Result<PurgeReport> {
    use crate::sync::calendar;
    let uses_cutoff = now - rules.uses_days * DAY_S;
    let interventions_cutoff = now - rules.interventions_days * DAY_S;
    let stays_cutoff = now - rules.presence_days * DAY_S;
    let anon = store::anonymous_member_id(db)?;
    // The calendar events of the uses about to be anonymised and the stays about to be
    // deleted are queued again once they are: renamed "Anonymous", or deleted.
    let events = calendar::retention_events(db, anon, uses_cutoff, stays_cutoff)?;
    let pending = store::count_uses_to_anonymise(db, anon, uses_cutoff)?
        + store::count_interventions_to_anonymise(db, anon, interventions_cutoff)?;
    let mut report = PurgeReport::default();
    if pending > 0 {
        let anon = anonymous(db, anon, now)?;
        report.uses_anonymised = store::anonymise_uses_before(db, anon, uses_cutoff)?;
        report.interventions_anonymised =
            store::anonymise_interventions_before(db, anon, interventions_cutoff)?;
    }
    report.unknown_cards_deleted =
        store::delete_unknown_cards_before(db, now - rules.unknown_cards_days * DAY_S)?;
    report.presence_deleted = store::delete_presence_before(db, stays_cutoff)?;
    let requeued = calendar::requeue(db, &events, now)?;
    // Records of delivered messages (recipient and subject) and spent reset links.
    let sent = store::outbox_purge_sent(db, now - OUTBOX_SENT_DAYS * DAY_S)?;
    let resets = store::delete_password_resets_before(db, now - DAY_S)?;
    if sent + resets > 0 {
        log::info!("purge: {sent} delivered outbox records and {resets} old reset links deleted");
    }
    // Calendar bookkeeping (event ids and revisions) lives as long as the uses' history;
    // the changes just queued keep theirs until delivered.
    let forgotten = calendar::purge(db, uses_cutoff)?;
    if requeued + forgotten > 0 {
        log::info!(
            "purge: {requeued} calendar events re-sent without names or deleted, \
             {forgotten} event records forgotten"
        );
    }
    Ok(report)
}

/// The Anonymous member's id, created if the lab has none yet.
pub fn anonymous_member(db: &Connection, now: i64) -> Result<i64> {
    anonymous(db, store::anonymous_member_id(db)?, now)
}

fn anonymous(db: &Connection, found: Option<i64>, now: i64) -> Result<i64> {
    match found {
        Some(id) => Ok(id),
        None => store::insert_anonymous_member(db, now),
    }
}

/// Everything held about one member (GDPR access request).
pub fn export_member(db: &Connection, member: MemberRow) -> Result<MemberData> {
    store::member_data(db, member)
}

/// Why a member cannot be erased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EraseRefused {
    #[error("this is the Anonymous member that holds anonymised history")]
    Anonymous,
}

/// Erases one member (GDPR erasure): name, card, email and password go; the history stays
/// as anonymous statistics; the row remains as a deleted "Erased member".
pub fn erase_member(
    db: &Connection,
    member: &MemberRow,
    now: i64,
) -> Result<std::result::Result<Erased, EraseRefused>> {
    let anon = anonymous_member(db, now)?;
    if member.id == anon {
        return Ok(Err(EraseRefused::Anonymous));
    }
    let events = crate::sync::calendar::member_events(db, member.id)?;
    let done = store::erase_member(db, member, anon)?;
    crate::sync::calendar::requeue(db, &events, now)?;
    Ok(Ok(done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::Store;

    const NOW: i64 = 1_750_000_000;

    fn lab() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        let old = NOW - 400 * DAY_S;
        let recent = NOW - 10 * DAY_S;
        conn.execute_batch(&format!(
            "INSERT INTO machines (machine_id, machine_name) VALUES (1, 'LASER');
             INSERT INTO members (member_id, name, surname, role_id, card_uid, email, password_hash, created_at)
               VALUES (7, 'Carla', 'Rossi', 3, 'aabbccd3', 'c@lab.org', 'hash', 0);
             INSERT INTO authorizations VALUES (7, 1);
             INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts)
               VALUES (7, 1, {old}, {old}, {old}), (7, 1, {recent}, {recent}, {recent}),
                      (7, 1, {old}, {old}, NULL);
             INSERT INTO maintenances (maintenance_id, machine_id, hours_between, description)
               VALUES (1, 1, 10, 'clean');
             INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp)
               VALUES (1, 1, 7, {old}), (1, 1, 7, {recent});
             INSERT INTO unknown_cards (card_uid, machine_id, timestamp)
               VALUES ('aabbccd3', 1, {old}), ('11223344', 1, {m40}), ('11223344', 1, {recent});
             INSERT INTO presence (member_id, signed_in_at, signed_out_at, in_source)
               VALUES (7, {old}, {old}, 'cli'), (7, {recent}, {recent}, 'cli');",
            m40 = NOW - 40 * DAY_S,
        ))
        .unwrap();
        (dir, conn)
    }

    fn rules() -> Retention {
        Retention::from_config(&crate::config::Config::default())
    }

    #[test]
    fn purge_anonymises_old_history_and_deletes_old_unknown_cards() {
        let (_dir, conn) = lab();
        assert_eq!(store::anonymous_member_id(&conn).unwrap(), None);
        let report = purge(&conn, &rules(), NOW).unwrap();
        assert_eq!(
            report,
            PurgeReport {
                uses_anonymised: 1,
                interventions_anonymised: 1,
                unknown_cards_deleted: 2,
                presence_deleted: 1,
            }
        );
        let anon = store::anonymous_member_id(&conn).unwrap().unwrap();
        let anon_row = store::member_row(&conn, anon).unwrap().unwrap();
        assert_eq!(
            (anon_row.name.as_str(), anon_row.role.as_str()),
            ("Anonymous", "Anonymous")
        );
        assert!(anon_row.disabled && anon_row.card_uid.is_none());
        let of = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        // The open use stays with its member; the recent ones too.
        assert_eq!(of("SELECT COUNT(*) FROM uses WHERE member_id = 7"), 2);
        assert_eq!(
            of("SELECT COUNT(*) FROM interventions WHERE member_id = 7"),
            1
        );
        assert_eq!(of("SELECT COUNT(*) FROM unknown_cards"), 1);
        // A second run finds nothing and creates no second Anonymous.
        assert!(purge(&conn, &rules(), NOW).unwrap().is_empty());
        assert_eq!(
            of("SELECT COUNT(*) FROM members WHERE name = 'Anonymous'"),
            1
        );
    }

    #[test]
    fn a_held_import_is_not_purged_until_confirmed() {
        let (_dir, conn) = lab();
        hold(&conn, NOW).unwrap();
        let want = preview(&conn, &rules(), NOW).unwrap();
        assert_eq!(
            (want.uses, want.interventions, want.unknown_cards),
            (1, 1, 2)
        );
        let r = purge_unless_held(&conn, &rules(), NOW).unwrap();
        assert_eq!(
            (
                r.uses_anonymised,
                r.interventions_anonymised,
                r.unknown_cards_deleted
            ),
            (0, 0, 0)
        );
        assert_eq!(
            r.presence_deleted, 1,
            "the building register is not imported history"
        );
        assert!(confirm(&conn).unwrap());
        let r = purge_unless_held(&conn, &rules(), NOW).unwrap();
        assert_eq!(
            (
                r.uses_anonymised,
                r.interventions_anonymised,
                r.unknown_cards_deleted
            ),
            (1, 1, 2)
        );
        assert!(!confirm(&conn).unwrap());
    }

    #[test]
    fn a_purge_with_nothing_old_creates_no_anonymous_member() {
        let (_dir, conn) = lab();
        let report = purge(&conn, &rules(), NOW - 300 * DAY_S).unwrap();
        assert_eq!(report.uses_anonymised, 0);
        assert_eq!(store::anonymous_member_id(&conn).unwrap(), None);
    }

    #[test]
    fn erase_deletes_unsent_email_to_the_member_and_the_address_of_sent_ones() {
        let (_dir, conn) = lab();
        let row = |kind: &str, state: &str, payload: &str| {
            conn.execute(
                "INSERT INTO outbox (kind, payload, created_at, next_attempt_at, state)
                 VALUES (?1, ?2, 0, 0, ?3)",
                rusqlite::params![kind, payload, state],
            )
            .unwrap();
        };
        let email = |to: &str| format!(r#"{{"to":"{to}","subject":"Hi","text":"t","html":"h"}}"#);
        row("email", "pending", &email("C@Lab.org"));
        row("email", "failed", &email("c@lab.org"));
        row("email", "pending", &email("ben@lab.org"));
        row("email", "sent", r#"{"to":"c@lab.org","subject":"Reset"}"#);
        row("email", "sent", r#"{"to":"ben@lab.org","subject":"Reset"}"#);
        row("webhook", "pending", "not json");
        let carla = store::member_row(&conn, 7).unwrap().unwrap();
        let done = erase_member(&conn, &carla, NOW).unwrap().unwrap();
        assert_eq!((done.emails_unsent, done.emails_sent), (2, 1));
        let left: Vec<(String, String)> = conn
            .prepare("SELECT state, payload FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let left: Vec<(&str, &str)> = left.iter().map(|(s, p)| (&s[..], &p[..])).collect();
        assert_eq!(
            left,
            [
                ("pending", email("ben@lab.org").as_str()),
                ("sent", r#"{"to":"(erased)","subject":"Reset"}"#),
                ("sent", r#"{"to":"ben@lab.org","subject":"Reset"}"#),
                ("pending", "not json"),
            ]
        );
    }

    #[test]
    fn erase_keeps_history_anonymously_and_removes_identity() {
        let (_dir, conn) = lab();
        let carla = store::member_row(&conn, 7).unwrap().unwrap();
        let data = export_member(&conn, carla.clone()).unwrap();
        assert_eq!((data.uses.len(), data.interventions.len()), (3, 2));
        assert_eq!(data.unknown_cards.len(), 1);
        assert_eq!(data.authorizations[0].machine, "LASER");

        let done = erase_member(&conn, &carla, NOW).unwrap().unwrap();
        assert_eq!(
            (done.uses, done.interventions, done.authorizations),
            (3, 2, 1)
        );
        assert_eq!(done.unknown_cards, 1);
        let after = store::member_row(&conn, 7).unwrap().unwrap();
        assert_eq!(after.name, "Erased member");
        assert!(after.deleted && after.card_uid.is_none() && after.email.is_none());
        assert!(!after.has_password);
        let anon = store::anonymous_member_id(&conn).unwrap().unwrap();
        let anon_row = store::member_row(&conn, anon).unwrap().unwrap();
        assert_eq!(
            export_member(&conn, anon_row.clone()).unwrap().uses.len(),
            3
        );
        assert_eq!(
            erase_member(&conn, &anon_row, NOW).unwrap(),
            Err(EraseRefused::Anonymous)
        );
    }
}
