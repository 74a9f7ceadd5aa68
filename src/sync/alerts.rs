//! Alerts to staff, checked every minute from the jobs thread: maintenance became due on a
//! machine, a board has been silent for more than `[sync] alert_board_offline_min` (since
//! the daemon started, at the earliest: a restart is not an outage of every board), an
//! unknown card was tried `alert_unknown_card_tries` times at one machine within an hour
//! (one alert per machine and burst, however many cards; one for the lab when bursts hit
//! many machines at once).
//!
//! Each alert fires once per occurrence, not once per check: the `alerts` table holds a
//! row per condition while it lasts (`cleared_at` NULL) and the row is cleared when the
//! condition ends, so a new occurrence fires again. Firing queues, in the same
//! transaction, an email to every member whose role has panel access (`backend_admin`)
//! and an address, in their language, and a webhook `alert` (`maintenance_due` for
//! maintenance) event.

use super::outbox::{enqueue_email, Email};
use super::webhook::{self, Event};
use crate::config::SyncConfig;
use crate::store::{self, Hot, Result};
use rusqlite::{params, Connection};
use std::collections::{HashMap, HashSet};

/// The thresholds, from `[sync]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alerts {
    pub board_offline_s: i64,
    pub unknown_card_tries: i64,
    /// When the daemon started (Unix seconds): no board counts as silent since before.
    pub started_at: i64,
}

impl Alerts {
    pub fn from_config(c: &SyncConfig, started_at: i64) -> Alerts {
        Alerts {
            board_offline_s: c.alert_board_offline_min as i64 * 60,
            unknown_card_tries: i64::from(c.alert_unknown_card_tries.max(1)),
            started_at,
        }
    }
}

pub const MAINTENANCE_DUE: &str = "maintenance_due";
pub const BOARD_OFFLINE: &str = "board_offline";
pub const UNKNOWN_CARD: &str = "unknown_card";

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub kind: &'static str,
    pub subject_key: String,
    pub machine: String,
    /// What it is, in English and Italian.
    pub en: String,
    pub it: String,
}

/// What one check did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub fired: Vec<Condition>,
    pub cleared: usize,
}

/// The conditions that hold at `now`. `hot` gives fresher board "last seen" times than
/// the database.
pub fn conditions(
    db: &Connection,
    hot: Option<&Hot>,
    a: &Alerts,
    now: i64,
) -> Result<Vec<Condition>> {
    let mut out = Vec::new();
    for m in store::machines(db)? {
        for (plan, _) in crate::lab::overdue_plans(db, m.id)? {
            out.push(Condition {
                kind: MAINTENANCE_DUE,
                subject_key: format!("machine:{}:plan:{}", m.id, plan.id),
                machine: m.name.clone(),
                en: format!("Maintenance due on {}: {}", m.name, plan.description),
                it: format!("Manutenzione da fare su {}: {}", m.name, plan.description),
            });
        }
        let seen = match (m.last_seen, hot.and_then(|h| h.machine_last_seen(m.id))) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // The database's times may be from before a downtime (a power cut) that boards
        // and fabgate went through together: nobody listened then, so a board is taken
        // as seen at the daemon's start at the earliest and is offline only when silent
        // for `board_offline_s` since. Boards never seen stay unreported.
        if let Some(seen) = seen.map(|s| s.max(a.started_at)) {
            if now - seen > a.board_offline_s {
                let min = (now - seen) / 60;
                out.push(Condition {
                    kind: BOARD_OFFLINE,
                    subject_key: format!("machine:{}", m.id),
                    machine: m.name.clone(),
                    en: format!("The board of {} has been offline for {min} minutes", m.name),
                    it: format!("La scheda di {} è offline da {min} minuti", m.name),
                });
            }
        }
    }
    out.extend(unknown_card_bursts(db, a, now)?);
    Ok(out)
}

/// Machines with their own unknown-card alert at one time; past this, one lab-wide alert.
pub const MAX_MACHINE_BURSTS: usize = 3;

/// Unknown cards tried `unknown_card_tries` times within an hour: one condition per
/// machine however many cards (a flood of invented UIDs is one burst, one alert, not one
/// per card), and a single lab-wide one when more than `MAX_MACHINE_BURSTS` machines
/// have a burst at once.
fn unknown_card_bursts(db: &Connection, a: &Alerts, now: i64) -> Result<Vec<Condition>> {
    let mut st = db.prepare_cached(
        "SELECT u.machine_id, m.machine_name, u.card_uid, COUNT(*) AS n FROM unknown_cards u
         JOIN machines m ON m.machine_id = u.machine_id
         WHERE u.timestamp > ?1 GROUP BY u.machine_id, u.card_uid HAVING n >= ?2
         ORDER BY u.machine_id, n DESC, u.card_uid",
    )?;
    let rows = st.query_map(params![now - 3600, a.unknown_card_tries], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    // machine -> (name, cards, tries, the most tried card and its tries)
    let mut bursts: Vec<(i64, String, i64, i64, String, i64)> = Vec::new();
    for row in rows {
        let (machine_id, name, uid, n) = row?;
        match bursts.last_mut() {
            Some(b) if b.0 == machine_id => {
                b.2 += 1;
                b.3 += n;
            }
            _ => bursts.push((machine_id, name, 1, n, uid, n)),
        }
    }
    if bursts.len() > MAX_MACHINE_BURSTS {
        let cards: i64 = bursts.iter().map(|b| b.2).sum();
        let machines = bursts.len();
        return Ok(vec![Condition {
            kind: UNKNOWN_CARD,
            subject_key: "lab".into(),
            machine: String::new(),
            en: format!(
                "Unknown cards tried again and again at {machines} machines within an hour ({cards} cards)"
            ),
            it: format!(
                "Tessere sconosciute provate più volte su {machines} macchine in un'ora ({cards} tessere)"
            ),
        }]);
    }
    Ok(bursts
        .into_iter()
        .map(|(machine_id, name, cards, tries, uid, n)| {
            let (en, it) = if cards == 1 {
                (
                    format!("Unknown card {uid} tried {n} times at {name} within an hour"),
                    format!("Tessera sconosciuta {uid} provata {n} volte su {name} in un'ora"),
                )
            } else {
                (
                    format!(
                        "{cards} unknown cards tried {tries} times at {name} within an hour ({uid} most, {n} times)"
                    ),
                    format!(
                        "{cards} tessere sconosciute provate {tries} volte su {name} in un'ora ({uid} più spesso, {n} volte)"
                    ),
                )
            };
            Condition {
                kind: UNKNOWN_CARD,
                subject_key: format!("machine:{machine_id}"),
                machine: name,
                en,
                it,
            }
        })
        .collect())
}

/// Fires the new conditions and clears the ended ones, in the caller's transaction.
pub fn check(tx: &Connection, hot: Option<&Hot>, a: &Alerts, now: i64) -> Result<Report> {
    let current = conditions(tx, hot, a, now)?;
    let open: HashMap<(String, String), i64> = {
        let mut st =
            tx.prepare_cached("SELECT kind, subject_key, id FROM alerts WHERE cleared_at IS NULL")?;
        let rows = st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let holding: HashSet<(String, String)> = current
        .iter()
        .map(|c| (c.kind.to_string(), c.subject_key.clone()))
        .collect();
    let mut report = Report::default();
    for (key, id) in &open {
        if !holding.contains(key) {
            tx.execute(
                "UPDATE alerts SET cleared_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            report.cleared += 1;
        }
    }
    for c in current {
        if open.contains_key(&(c.kind.to_string(), c.subject_key.clone())) {
            continue;
        }
        tx.execute(
            "INSERT INTO alerts (kind, subject_key, fired_at) VALUES (?1, ?2, ?3)",
            params![c.kind, c.subject_key, now],
        )?;
        let id = tx.last_insert_rowid();
        fire(tx, id, &c)?;
        report.fired.push(c);
    }
    Ok(report)
}

/// A staff member who gets alerts: name, address, Italian or not.
pub fn staff(db: &Connection) -> Result<Vec<(i64, String, String, bool)>> {
    let lab_it = store::setting(db, "language")?.is_some_and(|l| l.starts_with("it"));
    let mut st = db.prepare_cached(
        "SELECT m.member_id, m.name, m.email, m.language FROM members m
         JOIN roles r ON r.role_id = m.role_id
         WHERE r.backend_admin = 1 AND m.deleted = 0 AND m.disabled = 0
           AND m.email IS NOT NULL AND TRIM(m.email) <> '' ORDER BY m.member_id",
    )?;
    let rows = st.query_map([], |r| {
        let language: Option<String> = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            language.map_or(lab_it, |l| l.starts_with("it")),
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn fire(tx: &Connection, alert_id: i64, c: &Condition) -> Result<()> {
    log::warn!("alert: {}", c.en);
    for (member_id, name, address, italian) in staff(tx)? {
        let mail = alert_email(italian, &name, &address, c);
        enqueue_email(tx, &mail, Some(&format!("alert:{alert_id}:{member_id}")))?;
    }
    let event = if c.kind == MAINTENANCE_DUE {
        let what = c.en.split_once(": ").map_or("", |(_, w)| w);
        Event::MaintenanceDue {
            machine: &c.machine,
            text: what,
        }
    } else {
        Event::Alert { text: &c.en }
    };
    webhook::notify(tx, &event)?;
    Ok(())
}

/// The alert email to one staff member.
pub fn alert_email(italian: bool, name: &str, to: &str, c: &Condition) -> Email {
    let (subject, hello, what, footer) = if italian {
        (
            format!("Avviso del laboratorio: {}", c.machine),
            "Ciao",
            c.it.as_str(),
            "Questo avviso arriva una volta; ne arriverà un altro solo se si ripresenta.",
        )
    } else {
        (
            format!("Lab alert: {}", c.machine),
            "Hello",
            c.en.as_str(),
            "You get this alert once; another comes only if it happens again.",
        )
    };
    let text = format!("{hello} {name},\n\n{what}.\n\n{footer}\n");
    let html = maud::html! {
        (maud::DOCTYPE)
        html lang=(if italian { "it" } else { "en" }) {
            body { p { (hello) " " (name) "," } p { (what) "." } p { (footer) } }
        }
    }
    .into_string();
    Email {
        to: to.into(),
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    fn lab() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let s = store::Store::open(&dir.path().join("l.db"), Synchronous::Normal).unwrap();
        let db = s.connect().unwrap();
        db.execute_batch(
            "INSERT INTO roles (role_id, role_name, backend_admin) VALUES (10, 'panel', 1), (11, 'users', 0);
             INSERT INTO members (member_id, name, role_id, email, language, created_at) VALUES
               (1, 'Anna', 10, 'anna@example.org', 'it', 0),
               (2, 'Ben', 10, 'ben@example.org', 'en', 0),
               (3, 'Nomail', 10, NULL, 'en', 0),
               (4, 'User', 11, 'user@example.org', 'en', 0);
             INSERT INTO machines (machine_id, machine_name, last_seen) VALUES (1, 'LASER 1', 1000), (2, 'CNC 1', NULL);
             INSERT INTO maintenances (maintenance_id, machine_id, hours_between, description)
               VALUES (1, 2, 1.0, 'Clean the bed');",
        )
        .unwrap();
        (dir, db)
    }

    fn emails(db: &Connection) -> Vec<Email> {
        store::outbox_list(db, "pending", 100)
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == "email")
            .map(|r| serde_json::from_str(&r.payload).unwrap())
            .collect()
    }

    const A: Alerts = Alerts {
        board_offline_s: 30 * 60,
        unknown_card_tries: 3,
        started_at: 0,
    };

    #[test]
    fn after_a_restart_boards_get_the_offline_window_from_the_start() {
        let (_d, db) = lab();
        // LASER 1 was last heard at 1000; the power came back ten hours later.
        let started_at = 1000 + 10 * 3600;
        let a = Alerts { started_at, ..A };
        assert!(check(&db, None, &a, started_at + 5)
            .unwrap()
            .fired
            .is_empty());
        assert!(check(&db, None, &a, started_at + 30 * 60)
            .unwrap()
            .fired
            .is_empty());
        // A board that reconnected in time is not reported...
        let mut hot = Hot::default();
        hot.machine_seen(1, started_at + 120);
        assert!(check(&db, Some(&hot), &a, started_at + 31 * 60)
            .unwrap()
            .fired
            .is_empty());
        // ...one still silent once the window since the start has passed is.
        let r = check(&db, None, &a, started_at + 31 * 60).unwrap();
        assert_eq!(r.fired.len(), 1);
        assert_eq!(
            r.fired[0].en,
            "The board of LASER 1 has been offline for 31 minutes"
        );
    }

    #[test]
    fn a_board_offline_fires_once_and_again_after_coming_back() {
        let (_d, db) = lab();
        let t = 1000 + 30 * 60;
        assert!(check(&db, None, &A, t).unwrap().fired.is_empty());
        let r = check(&db, None, &A, t + 60).unwrap();
        assert_eq!(r.fired.len(), 1);
        assert_eq!(r.fired[0].kind, BOARD_OFFLINE);
        // Staff with an address, each in their language; nobody else.
        let mails = emails(&db);
        assert_eq!(mails.len(), 2, "{mails:?}");
        let anna = mails.iter().find(|m| m.to == "anna@example.org").unwrap();
        assert!(
            anna.text
                .contains("La scheda di LASER 1 è offline da 31 minuti"),
            "{}",
            anna.text
        );
        let ben = mails.iter().find(|m| m.to == "ben@example.org").unwrap();
        assert!(
            ben.text.contains("The board of LASER 1 has been offline"),
            "{}",
            ben.text
        );
        // Later checks while it lasts fire nothing.
        for k in 2..10 {
            assert!(check(&db, None, &A, t + 60 * k).unwrap().fired.is_empty());
        }
        assert_eq!(emails(&db).len(), 2);
        // The board speaks (in memory, not yet flushed): cleared.
        let mut hot = Hot::default();
        hot.machine_seen(1, t + 700);
        let r = check(&db, Some(&hot), &A, t + 720).unwrap();
        assert_eq!((r.fired.len(), r.cleared), (0, 1));
        // Silent again: a new occurrence fires again.
        let r = check(&db, Some(&hot), &A, t + 700 + 31 * 60).unwrap();
        assert_eq!(r.fired.len(), 1);
        assert_eq!(emails(&db).len(), 4);
        let n: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM alerts WHERE cleared_at IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn maintenance_due_fires_once_and_again_after_the_next_interval() {
        let (_d, db) = lab();
        let t = 100_000;
        db.execute("UPDATE machines SET last_seen = NULL", [])
            .unwrap();
        db.execute(
            "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES (4, 2, ?1, ?2, ?2)",
            params![t - 4000, t - 100],
        )
        .unwrap();
        let r = check(&db, None, &A, t).unwrap();
        assert_eq!(r.fired.len(), 1);
        assert_eq!(r.fired[0].en, "Maintenance due on CNC 1: Clean the bed");
        assert!(check(&db, None, &A, t + 60).unwrap().fired.is_empty());
        // Done: cleared.
        db.execute(
            "INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp) VALUES (1, 2, 1, ?1)",
            [t + 100],
        )
        .unwrap();
        let r = check(&db, None, &A, t + 120).unwrap();
        assert_eq!((r.fired.len(), r.cleared), (0, 1));
        // Another hour of use: due again, fires again.
        db.execute(
            "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES (4, 2, ?1, ?2, ?2)",
            params![t + 200, t + 4000],
        )
        .unwrap();
        assert_eq!(check(&db, None, &A, t + 4100).unwrap().fired.len(), 1);
        assert_eq!(emails(&db).len(), 4);
    }

    #[test]
    fn unknown_card_tries_fire_once_per_burst() {
        let (_d, db) = lab();
        let t = 1000;
        let mut hot = Hot::default();
        hot.machine_seen(1, t + 10_000);
        for k in 0..2 {
            store::insert_unknown_card(&db, "deadbeef", Some(1), t + k).unwrap();
        }
        // Elsewhere or without a machine it does not count.
        store::insert_unknown_card(&db, "deadbeef", None, t + 2).unwrap();
        store::insert_unknown_card(&db, "deadbeef", Some(2), t + 2).unwrap();
        assert!(check(&db, Some(&hot), &A, t + 10).unwrap().fired.is_empty());
        store::insert_unknown_card(&db, "deadbeef", Some(1), t + 20).unwrap();
        let r = check(&db, Some(&hot), &A, t + 30).unwrap();
        assert_eq!(r.fired.len(), 1);
        assert_eq!(
            r.fired[0].en,
            "Unknown card deadbeef tried 3 times at LASER 1 within an hour"
        );
        store::insert_unknown_card(&db, "deadbeef", Some(1), t + 40).unwrap();
        assert!(check(&db, Some(&hot), &A, t + 50).unwrap().fired.is_empty());
        // An hour later the tries have aged out: cleared; a new burst fires again.
        let r = check(&db, Some(&hot), &A, t + 3700).unwrap();
        assert_eq!(r.cleared, 1);
        for k in 0..3 {
            store::insert_unknown_card(&db, "deadbeef", Some(1), t + 3800 + k).unwrap();
        }
        assert_eq!(check(&db, Some(&hot), &A, t + 3900).unwrap().fired.len(), 1);
    }

    #[test]
    fn a_flood_of_invented_cards_is_one_alert_per_machine_then_one_for_the_lab() {
        let (_d, db) = lab();
        let t = 1000;
        let mut hot = Hot::default();
        for m in 1..=5 {
            hot.machine_seen(m, t + 10_000);
        }
        // Rows as they would be without the store's caps (more than it keeps in an hour).
        for card in 0..200 {
            for k in 0..3 {
                db.execute(
                    "INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES (?1, 1, ?2)",
                    params![format!("{card:08x}"), t + k],
                )
                .unwrap();
            }
        }
        let r = check(&db, Some(&hot), &A, t + 10).unwrap();
        assert_eq!(r.fired.len(), 1, "{:?}", r.fired);
        assert_eq!(
            r.fired[0].en,
            "200 unknown cards tried 600 times at LASER 1 within an hour (00000000 most, 3 times)"
        );
        assert_eq!(emails(&db).len(), 2, "one email per staff member");
        // More cards at the same machine: the same burst, nothing new.
        for k in 0..3 {
            db.execute(
                "INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES ('ffffffff', 1, ?1)",
                [t + 20 + k],
            )
            .unwrap();
        }
        assert!(check(&db, Some(&hot), &A, t + 30).unwrap().fired.is_empty());
        // Bursts at more machines than MAX_MACHINE_BURSTS: one alert for the lab.
        db.execute_batch(
            "INSERT INTO machines (machine_id, machine_name) VALUES (3, 'M3'), (4, 'M4'), (5, 'M5')",
        )
        .unwrap();
        for m in 2..=5 {
            for k in 0..3 {
                db.execute(
                    "INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES ('0badcafe', ?1, ?2)",
                    params![m, t + 40 + k],
                )
                .unwrap();
            }
        }
        let r = check(&db, Some(&hot), &A, t + 50).unwrap();
        assert_eq!(r.fired.len(), 1, "{:?}", r.fired);
        assert_eq!(r.fired[0].subject_key, "lab");
        assert_eq!(r.cleared, 1, "the machine's alert gave way to the lab's");
    }
}
