//! Google Calendar: machine usage sessions become events of the lab calendar, stays in the
//! building events of the attendance calendar, delivered by the outbox to a fake Google
//! (`common::google`) that verifies the service account's signed JWT. Exactly one event
//! per session across lost responses, outages, daemon restarts and rate limits; event ids
//! carry the install's prefix; no key or token in the log.

use crate::common::google::{self, FakeGoogle, ATTENDANCE, CALENDAR};
use crate::common::*;
use fabgate::sync::calendar::{self, Kind};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A lab (fixture F) whose calendar goes to `g`, with a quick retry schedule.
fn lab_with_google(g: &FakeGoogle, names: &str) -> Lab {
    let mut lab = Lab::new();
    fixture_f(&lab);
    let key = g.key_file(lab.dir.path());
    lab.extra_config = SyncSection::fast()
        .set_str("google_key_file", &key.display().to_string())
        .set_str("lab_calendar_id", CALENDAR)
        .set_str("google_api_base", &g.base())
        .set("google_timeout_s", "3")
        .set_str("calendar_member_names", names)
        .text();
    lab
}

/// This lab's install prefix (made at its first calendar change).
fn prefix(lab: &Lab) -> String {
    lab.db()
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [calendar::PREFIX_KEY],
            |r| r.get(0),
        )
        .unwrap()
}

/// This lab's event id of a use or stay.
fn event_id(lab: &Lab, kind: Kind, id: i64) -> String {
    calendar::event_id(&prefix(lab), kind, id)
}

fn wait_until(lab: &Lab, sql: &str, want: i64) {
    lab.wait_count(sql, want);
}

fn ts(v: &Value) -> i64 {
    let s = v["dateTime"]
        .as_str()
        .unwrap_or_else(|| panic!("no dateTime in {v}"));
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

/// The (only) event, with its start and end in Unix seconds.
fn only_event(g: &FakeGoogle) -> (Value, i64, i64) {
    let events = g.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events.into_values().next().unwrap();
    let (s, end) = (ts(&e["start"]), ts(&e["end"]));
    (e, s, end)
}

fn assert_no_secrets(d: &TestDaemon, g: &FakeGoogle) {
    let log = d.log.lock().unwrap().join("\n");
    assert!(!log.contains("PRIVATE KEY"), "key material in the log");
    for line in google::key_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        assert!(!log.contains(line), "key material in the log: {line}");
    }
    for t in g.with(|s| [s.tokens.clone(), s.revoked.clone()].concat()) {
        assert!(!log.contains(&t), "an access token is in the log");
    }
    assert!(
        !log.contains("fake-access-token"),
        "an access token is in the log"
    );
}

#[test]
fn a_board_session_creates_then_updates_one_event() {
    let g = FakeGoogle::start();
    let lab = lab_with_google(&g, "full");
    let d = lab.start();
    let board = d.board("1");
    let t0 = now();
    board.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    assert!(
        g.wait(WAIT, |s| s.inserts == 1),
        "the event was not inserted"
    );
    let (e, start, end) = only_event(&g);
    assert_eq!(e["summary"], "LASER 1 — Carla C");
    assert_eq!(
        e["id"],
        event_id(&lab, Kind::Use, 2).as_str(),
        "use 2 (fixture F has use 1)"
    );
    assert!((start - t0).abs() <= 2, "start {start}, t0 {t0}");
    assert!(
        (end - (start + 3600)).abs() <= 3,
        "an open session lasts an hour for now"
    );

    // The token stops working early: a 401 fetches a new one and the call is made again.
    g.with(|s| s.revoke_tokens());
    board.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":600}"#);
    assert!(
        g.wait(WAIT, |s| s.updates == 1),
        "the event was not updated"
    );
    let (e, start2, end) = only_event(&g);
    assert_eq!(start2, start);
    assert_eq!(end, start + 600, "{e}");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'calendar' AND state = 'sent'",
        2,
    );
    assert_eq!(
        lab.count("SELECT sent_rev FROM calendar_events WHERE kind = 'use' AND subject_id = 2"),
        2
    );
    g.with(|s| {
        assert!(s.refused.is_empty(), "assertions refused: {:?}", s.refused);
        assert_eq!(s.revoked.len(), 1, "the token was cached until refused");
        assert_eq!(s.tokens.len(), 1, "one new token after the 401");
        assert_eq!(s.unauthorized, 1);
        assert_eq!((s.inserts, s.updates, s.conflicts), (1, 1, 0));
    });
    assert_no_secrets(&d, &g);
}

#[test]
fn member_names_follow_the_privacy_setting_and_no_calendar_queues_nothing() {
    let g = FakeGoogle::start();
    let lab = lab_with_google(&g, "none");
    let d = lab.start();
    d.board("1")
        .must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    assert!(g.wait(WAIT, |s| s.inserts == 1));
    assert_eq!(only_event(&g).0["summary"], "LASER 1");
    d.stop();

    // Default ("first"), and then no calendar at all.
    let mut plain = Lab::new();
    fixture_f(&plain);
    plain.extra_config = "\n[sync]\npoll_interval_s = 1\n".into();
    let d = plain.start();
    let b = d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":5}"#);
    assert_eq!(plain.count("SELECT COUNT(*) FROM outbox"), 0);
}

#[test]
fn a_retried_insert_after_a_lost_response_leaves_one_event() {
    let g = FakeGoogle::start();
    g.with(|s| s.drop_next_insert = true);
    let lab = lab_with_google(&g, "first");
    let d = lab.start();
    d.board("1")
        .must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    assert!(
        g.wait(WAIT, |s| s.dropped == 1
            && s.conflicts == 1
            && s.updates == 1),
        "the insert was not retried as an update"
    );
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'calendar' AND state = 'sent'",
        1,
    );
    let (e, _, _) = only_event(&g);
    assert_eq!(e["summary"], "LASER 1 — Carla");
    assert_eq!(g.with(|s| s.inserts), 1);
}

#[test]
fn sessions_wait_for_google_across_a_restart_and_arrive_once() {
    let mut g = FakeGoogle::reserve();
    let lab = lab_with_google(&g, "first");
    let d = lab.start();
    let laser = d.board("1");
    laser.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    laser.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":120}"#);
    d.board("2")
        .must(r#"{"action":"startuse", "uid":"aabbccd4"}"#);
    // Three changes (insert + update of use 2, insert of use 3) waiting for Google.
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'calendar' AND state = 'pending' AND last_error IS NOT NULL",
        3,
    );
    d.stop();
    g.restart();
    let d = lab.start();
    assert!(
        g.wait(WAIT, |s| s.count(CALENDAR) == 2),
        "events: {:?}",
        g.events()
    );
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'calendar' AND state = 'sent'",
        3,
    );
    lab.wait_kind_settled("calendar");
    let events = g.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let laser = &events[&event_id(&lab, Kind::Use, 2)];
    assert_eq!(
        ts(&laser["end"]) - ts(&laser["start"]),
        120,
        "the closed session's times win: {laser}"
    );
    assert_eq!(
        events[&event_id(&lab, Kind::Use, 3)]["summary"],
        "DRILL 1 — Dario"
    );
    g.with(|s| {
        assert_eq!(s.inserts, 2, "each event inserted once");
        assert_eq!(s.conflicts, 0);
        assert!(s.refused.is_empty(), "{:?}", s.refused);
    });
    assert_no_secrets(&d, &g);
}

#[test]
fn rate_limits_are_retried() {
    let g = FakeGoogle::start();
    g.with(|s| s.forced.extend([429, 403, 503]));
    let lab = lab_with_google(&g, "first");
    let d = lab.start();
    d.board("1")
        .must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    assert!(g.wait(WAIT, |s| s.inserts == 1), "never delivered");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'calendar' AND state = 'sent' AND attempts = 4",
        1,
    );
    assert_eq!(g.events().len(), 1);
    assert!(d.log_contains("429"));
}

#[test]
fn a_stay_in_the_building_is_one_event_of_the_attendance_calendar() {
    let g = FakeGoogle::start();
    let mut lab = lab_with_google(&g, "full");
    lab.extra_config += &format!(
        "attendance_calendar_id = {ATTENDANCE:?}\n\n\
         [[readers]]\nname = \"desk\"\nkind = \"sim\"\nrole = \"entrance\"\n\
         path = {taps:?}\npoll_ms = 20\nrepeat_ms = 300\n",
        taps = lab.dir.path().join("desk-taps").display().to_string(),
    );
    let d = lab.start();
    assert!(d.wait_log("reader desk: simulated reader"));

    // Carla taps in at the entrance (the daemon queues and wakes the worker).
    let t0 = now();
    lab.ok(&["reader", "tap", "aabbccd3"]);
    assert!(
        g.wait(WAIT, |s| s.count(ATTENDANCE) == 1),
        "no attendance event"
    );
    let events = g.events_in(ATTENDANCE);
    let (id, e) = events.iter().next().unwrap();
    assert_eq!(*id, event_id(&lab, Kind::Attendance, 1));
    assert!(id.starts_with(&format!("fabgate{}", prefix(&lab))), "{id}");
    assert_eq!(e["summary"], "In the lab — Carla C");
    let start = ts(&e["start"]);
    assert!((start - t0).abs() <= 2, "start {start}, t0 {t0}");
    assert!((ts(&e["end"]) - (start + 3600)).abs() <= 3, "open: an hour");

    // She signs out with a command (another process): the same event gets its end.
    std::thread::sleep(Duration::from_secs(2));
    lab.ok(&["presence", "sign-out", "aabbccd3"]);
    assert!(
        g.wait(WAIT, |s| s.updates == 1),
        "the event was not updated"
    );
    let events = g.events_in(ATTENDANCE);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[id];
    assert_eq!(ts(&e["start"]), start);
    let end = ts(&e["end"]);
    assert!(
        end > start && end - start < 60,
        "signed out at the end: {e}"
    );
    assert!(g.events().is_empty(), "the lab calendar has no stays");

    // A machine session still goes to the lab calendar, with the same install prefix;
    // after a restart the prefix is the same.
    let before = prefix(&lab);
    d.stop();
    let d = lab.start();
    d.board("1")
        .must(r#"{"action":"startuse", "uid":"aabbccd4"}"#);
    assert!(g.wait(WAIT, |s| s.count(CALENDAR) == 1), "no use event");
    assert_eq!(prefix(&lab), before, "the prefix survives a restart");
    let uses = g.events();
    let use_id = uses.keys().next().unwrap();
    assert_eq!(*use_id, calendar::event_id(&before, Kind::Use, 2));
    assert_eq!(g.events_in(ATTENDANCE).len(), 1);
    g.with(|s| {
        assert_eq!((s.inserts, s.updates, s.conflicts), (2, 1, 0));
        assert!(s.refused.is_empty(), "{:?}", s.refused);
    });
    assert_no_secrets(&d, &g);
}

/// Erasing a member (GDPR) takes their name off the events already in Google.
#[test]
fn erasing_a_member_takes_their_name_off_the_calendar() {
    let g = FakeGoogle::start();
    let lab = lab_with_google(&g, "full");
    let d = lab.start();
    let laser = d.board("1");
    laser.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    laser.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":300}"#);
    let events = |s: &google::State| s.calendars.get(CALENDAR).cloned().unwrap_or_default();
    assert!(g.wait(WAIT, |s| events(s).values().any(|e| e["summary"]
        == "LASER 1 — Carla C"
        && ts(&e["end"]) - ts(&e["start"]) == 300)));
    lab.ok(&["member", "erase", "aabbccd3", "--yes"]);
    assert!(
        g.wait(WAIT, |s| events(s).values().all(|e| !e["summary"]
            .as_str()
            .unwrap_or("")
            .contains("Carla"))),
        "{:?}",
        g.events()
    );
    let (e, start, end) = only_event(&g);
    assert_eq!(end - start, 300, "the session itself stays: {e}");
}

/// Retention (daily in the daemon, or `fabgate purge`) anonymises old uses and deletes old
/// stays: their events lose the name or go, instead of staying in Google for ever.
#[test]
fn retention_takes_old_names_off_the_calendars() {
    let g = FakeGoogle::start();
    let mut lab = lab_with_google(&g, "full");
    lab.extra_config += &format!("attendance_calendar_id = {ATTENDANCE:?}\n");
    let d = lab.start();
    let laser = d.board("1");
    laser.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    laser.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":300}"#);
    lab.ok(&["presence", "sign-in", "aabbccd3"]);
    lab.ok(&["presence", "sign-out", "aabbccd3"]);
    assert!(
        g.wait(WAIT, |s| s.count(CALENDAR) == 1 && s.count(ATTENDANCE) == 1),
        "{:?}",
        g.with(|s| s.calendars.clone())
    );
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'calendar' AND state <> 'sent'",
        0,
    );
    assert_eq!(
        g.events().values().next().unwrap()["summary"],
        "LASER 1 — Carla C"
    );

    // A year and more later (the session and the stay moved back 400 days).
    lab.sql(
        "UPDATE uses SET start_ts = start_ts - 400 * 86400, last_seen = last_seen - 400 * 86400,
           end_ts = end_ts - 400 * 86400 WHERE use_id = 2;
         UPDATE presence SET signed_in_at = signed_in_at - 400 * 86400,
           signed_out_at = signed_out_at - 400 * 86400;",
    );
    lab.ok(&["purge"]);
    assert!(
        g.wait(WAIT, |s| s.count(ATTENDANCE) == 0),
        "the old stay's event stays: {:?}",
        g.events_in(ATTENDANCE)
    );
    assert!(
        g.wait(WAIT, |s| s.calendars[CALENDAR]
            .values()
            .all(|e| e["summary"] == "LASER 1 — Anonymous")),
        "{:?}",
        g.events()
    );
    let (e, start, end) = only_event(&g);
    assert_eq!(end - start, 300, "the session itself stays: {e}");
    d.stop();
}
