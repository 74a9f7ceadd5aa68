//! The weekly summary (FabOMatic's `--weekly-summary`, made personal): an email about the
//! past week (Monday to Monday, the panel's time zone) to every member who opted in
//! (`members.weekly_summary`) and has an address. Staff (roles with panel access) get the
//! lab's summary: hours per machine, maintenance due, unknown cards seen; other members
//! their own hours and authorizations. English or Italian, per member.
//!
//! The daemon queues it once a week, from `[sync] weekly_summary_day` and
//! `weekly_summary_hour`, local time; the week last queued is remembered in `settings`
//! (`weekly_summary_week`), and each mail has a dedupe key per week and member, so a
//! restart or `fabgate send weekly-summary` never sends a week twice.

use super::outbox::{enqueue_email, Email};
use crate::store::{self, Result};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use rusqlite::{params, Connection};

/// The `settings` key of the last week queued ("2026-W47").
pub const LAST_WEEK: &str = "weekly_summary_week";

/// A week, Monday 00:00 to the next Monday 00:00 local time.
#[derive(Debug, Clone, PartialEq)]
pub struct Week {
    /// ISO week, "2026-W47".
    pub id: String,
    pub start: i64,
    pub end: i64,
    /// "2026-11-16".
    pub first_day: String,
}

/// The lab's time zone: the panel's `timezone` setting, else the system's.
pub fn lab_zone(db: &Connection) -> TimeZone {
    store::setting(db, "timezone")
        .ok()
        .flatten()
        .and_then(|n| TimeZone::get(&n).ok())
        .unwrap_or_else(TimeZone::system)
}

fn midnight(d: Date, tz: &TimeZone) -> i64 {
    d.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0)
}

/// Monday of the week holding `now`, and how far into that week `now` is (weekday 1..=7,
/// hour).
fn this_monday(now: i64, tz: &TimeZone) -> (Date, i8, i8) {
    let z = Timestamp::from_second(now)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone());
    let wd = z.weekday().to_monday_one_offset();
    let monday = z
        .date()
        .checked_sub(Span::new().days(i64::from(wd - 1)))
        .unwrap_or(z.date());
    (monday, wd, z.hour())
}

/// The full week before the one holding `now`.
pub fn last_week(now: i64, tz: &TimeZone) -> Week {
    let (monday, _, _) = this_monday(now, tz);
    let prev = monday.checked_sub(Span::new().days(7)).unwrap_or(monday);
    let iso = prev.iso_week_date();
    Week {
        id: format!("{}-W{:02}", iso.year(), iso.week()),
        start: midnight(prev, tz),
        end: midnight(monday, tz),
        first_day: prev.to_string(),
    }
}

/// Is the summary of last week due at `now`? Once this week's `day` (1 = Monday) and
/// `hour` have passed, local time, and last week was not queued yet.
pub fn due(now: i64, tz: &TimeZone, day: i8, hour: u8, last_sent: Option<&str>) -> Option<Week> {
    let (_, wd, h) = this_monday(now, tz);
    if (wd, h) < (day, hour as i8) {
        return None;
    }
    let week = last_week(now, tz);
    (last_sent != Some(week.id.as_str())).then_some(week)
}

/// Queues the summaries of `week` in the caller's transaction and remembers the week.
/// Returns how many emails were queued (none for a member who already had this week's).
pub fn queue(tx: &Connection, week: &Week) -> Result<usize> {
    let lab_it = store::setting(tx, "language")?.is_some_and(|l| l.starts_with("it"));
    let recipients: Vec<(i64, String, String, Option<String>, bool)> = {
        let mut st = tx.prepare_cached(
            "SELECT m.member_id, m.name, m.email, m.language, COALESCE(r.backend_admin, 0)
             FROM members m LEFT JOIN roles r ON r.role_id = m.role_id
             WHERE m.weekly_summary = 1 AND m.deleted = 0
               AND m.email IS NOT NULL AND TRIM(m.email) <> '' ORDER BY m.member_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let lab = if recipients.iter().any(|r| r.4) {
        Some(lab_figures(tx, week)?)
    } else {
        None
    };
    let mut n = 0;
    for (id, name, address, language, staff) in recipients {
        let italian = language.map_or(lab_it, |l| l.starts_with("it"));
        let t = Texts::new(italian);
        let mail = match (&lab, staff) {
            (Some(lab), true) => lab_email(&t, &name, &address, week, lab),
            _ => personal_email(&t, &name, &address, week, &personal_figures(tx, id, week)?),
        };
        let key = format!("weekly:{}:{id}", week.id);
        if enqueue_email(tx, &mail, Some(&key))?.is_some() {
            n += 1;
        }
    }
    store::set_setting(tx, LAST_WEEK, &week.id)?;
    Ok(n)
}

/// The lab's week.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabFigures {
    /// Machine name and seconds used.
    pub hours: Vec<(String, i64)>,
    /// Machine name and plan description.
    pub maintenance: Vec<(String, String)>,
    /// Card UID and attempts.
    pub unknown_cards: Vec<(String, i64)>,
}

/// One member's week.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonalFigures {
    pub hours: Vec<(String, i64)>,
    pub authorizations: Vec<String>,
}

/// Seconds per machine of the uses inside the week (clipped at its ends).
fn hours(db: &Connection, week: &Week, member: Option<i64>) -> Result<Vec<(String, i64)>> {
    let mut st = db.prepare_cached(
        "SELECT m.machine_name, SUM(MIN(u.end_ts, ?2) - MAX(u.start_ts, ?1)) AS s
         FROM uses u JOIN machines m ON m.machine_id = u.machine_id
         WHERE u.end_ts IS NOT NULL AND u.start_ts < ?2 AND u.end_ts > ?1
           AND (?3 IS NULL OR u.member_id = ?3)
         GROUP BY u.machine_id ORDER BY s DESC, m.machine_name",
    )?;
    let rows = st.query_map(params![week.start, week.end, member], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn lab_figures(db: &Connection, week: &Week) -> Result<LabFigures> {
    let mut maintenance = Vec::new();
    for m in store::machines(db)? {
        for (plan, _) in crate::lab::overdue_plans(db, m.id)? {
            maintenance.push((m.name.clone(), plan.description));
        }
    }
    let mut st = db.prepare_cached(
        "SELECT card_uid, COUNT(*) FROM unknown_cards WHERE timestamp >= ?1 AND timestamp < ?2
         GROUP BY card_uid ORDER BY COUNT(*) DESC, card_uid",
    )?;
    let unknown_cards = st
        .query_map(params![week.start, week.end], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(LabFigures {
        hours: hours(db, week, None)?,
        maintenance,
        unknown_cards,
    })
}

pub fn personal_figures(db: &Connection, member_id: i64, week: &Week) -> Result<PersonalFigures> {
    let mut st = db.prepare_cached(
        "SELECT m.machine_name FROM authorizations a JOIN machines m ON m.machine_id = a.machine_id
         WHERE a.member_id = ?1 ORDER BY m.machine_name",
    )?;
    let authorizations = st
        .query_map([member_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(PersonalFigures {
        hours: hours(db, week, Some(member_id))?,
        authorizations,
    })
}

struct Texts {
    italian: bool,
}

impl Texts {
    fn new(italian: bool) -> Texts {
        Texts { italian }
    }
    fn s<'a>(&self, en: &'a str, it: &'a str) -> &'a str {
        if self.italian {
            it
        } else {
            en
        }
    }
    /// "3.5 h" / "3,5 h".
    fn hours(&self, seconds: i64) -> String {
        let h = format!("{:.1} h", seconds as f64 / 3600.0);
        if self.italian {
            h.replace('.', ",")
        } else {
            h
        }
    }
}

/// Sections of (title, lines, text when empty) as text and HTML.
fn render(
    t: &Texts,
    name: &str,
    intro: &str,
    sections: &[(&str, Vec<String>, &str)],
) -> (String, String) {
    let hello = t.s("Hello", "Ciao");
    let mut text = format!("{hello} {name},\n\n{intro}\n");
    for (title, lines, none) in sections {
        text.push_str(&format!("\n{title}\n"));
        if lines.is_empty() {
            text.push_str(&format!("  {none}\n"));
        }
        for l in lines {
            text.push_str(&format!("  - {l}\n"));
        }
    }
    let html = maud::html! {
        (maud::DOCTYPE)
        html lang=(t.s("en", "it")) {
            body {
                p { (hello) " " (name) "," }
                p { (intro) }
                @for (title, lines, none) in sections {
                    h3 { (title) }
                    @if lines.is_empty() { p { (none) } }
                    @else { ul { @for l in lines { li { (l) } } } }
                }
            }
        }
    }
    .into_string();
    (text, html)
}

fn lab_email(t: &Texts, name: &str, to: &str, week: &Week, f: &LabFigures) -> Email {
    let hours = f
        .hours
        .iter()
        .map(|(m, s)| format!("{m}: {}", t.hours(*s)))
        .collect();
    let maintenance = f
        .maintenance
        .iter()
        .map(|(m, d)| format!("{m}: {d}"))
        .collect();
    let cards = f
        .unknown_cards
        .iter()
        .map(|(uid, n)| format!("{uid}: {n} {}", t.s("attempts", "tentativi")))
        .collect();
    let intro = format!(
        "{} {} ({}).",
        t.s(
            "Here is the lab's week starting",
            "Ecco la settimana del laboratorio a partire da"
        ),
        week.first_day,
        week.id
    );
    let (text, html) = render(
        t,
        name,
        &intro,
        &[
            (
                t.s("Hours per machine", "Ore per macchina"),
                hours,
                t.s("No machine was used.", "Nessuna macchina è stata usata."),
            ),
            (
                t.s("Maintenance due or overdue", "Manutenzioni da fare"),
                maintenance,
                t.s("Nothing due.", "Nessuna."),
            ),
            (
                t.s("Unknown cards seen", "Tessere sconosciute"),
                cards,
                t.s("None.", "Nessuna."),
            ),
        ],
    );
    Email {
        to: to.into(),
        subject: format!(
            "{} {}",
            t.s(
                "Weekly summary of the lab,",
                "Riepilogo settimanale del laboratorio,"
            ),
            week.id
        ),
        text,
        html,
    }
}

fn personal_email(t: &Texts, name: &str, to: &str, week: &Week, f: &PersonalFigures) -> Email {
    let hours = f
        .hours
        .iter()
        .map(|(m, s)| format!("{m}: {}", t.hours(*s)))
        .collect();
    let intro = format!(
        "{} {} ({}).",
        t.s(
            "Here is your week at the lab starting",
            "Ecco la tua settimana in laboratorio a partire da"
        ),
        week.first_day,
        week.id
    );
    let (text, html) = render(
        t,
        name,
        &intro,
        &[
            (
                t.s("Your hours", "Le tue ore"),
                hours,
                t.s("You did not use any machine.", "Non hai usato macchine."),
            ),
            (
                t.s("Machines you may use", "Macchine che puoi usare"),
                f.authorizations.clone(),
                t.s("None yet.", "Ancora nessuna."),
            ),
        ],
    );
    Email {
        to: to.into(),
        subject: format!(
            "{} {}",
            t.s("Your week at the lab,", "La tua settimana in laboratorio,"),
            week.id
        ),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_and_the_schedule_in_local_time() {
        let tz = TimeZone::get("Europe/Rome").unwrap();
        // Monday 2026-11-23 07:30 in Rome.
        let mon_0730 = jiff::civil::date(2026, 11, 23)
            .at(7, 30, 0, 0)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp()
            .as_second();
        let w = last_week(mon_0730, &tz);
        assert_eq!(w.id, "2026-W47");
        assert_eq!(w.first_day, "2026-11-16");
        assert_eq!(w.end - w.start, 7 * 86_400);
        assert_eq!(due(mon_0730, &tz, 1, 8, None), None);
        let mon_0800 = mon_0730 + 1800;
        assert_eq!(due(mon_0800, &tz, 1, 8, None), Some(w.clone()));
        assert_eq!(due(mon_0800, &tz, 1, 8, Some("2026-W47")), None);
        // Still due later in the week if the Pi was off on Monday.
        assert_eq!(
            due(mon_0800 + 3 * 86_400, &tz, 1, 8, Some("2026-W46")),
            Some(w)
        );
        // A Friday schedule is not due on Monday.
        assert_eq!(due(mon_0800, &tz, 5, 8, Some("2026-W46")), None);
    }
}
