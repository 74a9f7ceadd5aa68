//! The weekly summary: `fabgate send weekly-summary` queues last week's figures to the
//! members who opted in (the lab's to staff, a personal one to others), once per week, and
//! the daemon delivers them.

use crate::common::smtp::SmtpServer;
use crate::common::*;
use crate::sync::decoded;

#[test]
fn the_cli_queues_last_weeks_summaries_and_the_daemon_delivers_them() {
    let smtp = SmtpServer::start();
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = SyncSection::fast()
        .set("smtp_timeout_s", "3")
        .set("alerts", "false")
        .text();
    let tz = jiff::tz::TimeZone::get("Europe/Rome").unwrap();
    let week = fabgate::sync::weekly::last_week(now(), &tz);
    let day = |d: i64, h: i64| week.start + d * 86_400 + h * 3600;
    lab.sql(&format!(
        "INSERT INTO roles (role_id, role_name, backend_admin) VALUES (10, 'panel', 1);
         INSERT INTO settings (key, value) VALUES ('smtp_host', '127.0.0.1'), ('smtp_port', '{port}'),
           ('smtp_tls', 'none'), ('smtp_from', 'lab@example.org'), ('timezone', 'Europe/Rome');
         INSERT INTO members (member_id, name, surname, role_id, email, language, weekly_summary, created_at)
           VALUES (20, 'Giulia', 'G', 10, 'giulia@example.org', 'en', 1, 0);
         UPDATE members SET email = 'carla@example.org', language = 'it', weekly_summary = 1 WHERE member_id = 3;
         UPDATE members SET email = 'dario@example.org' WHERE member_id = 4;
         DELETE FROM uses;
         INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES
           (3, 1, {a}, {b}, {b}), (3, 4, {c}, {d}, {d}), (4, 2, {e}, {f}, {f}), (4, 2, {g}, {h}, {h});
         INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES
           ('deadbeef', 1, {a}), ('deadbeef', 1, {b}), ('cafe0001', 1, {h});",
        port = smtp.port(),
        a = day(1, 10),
        b = day(1, 12),
        c = day(2, 9),
        d = day(2, 11),
        e = day(3, 15),
        f = day(3, 15) + 1800,
        // Dario's session the week before does not count.
        g = day(-2, 10),
        h = day(-2, 13),
    ));
    let out = lab.ok(&["send", "weekly-summary"]);
    assert!(
        out.contains(&format!(
            "weekly summary of {} queued to 2 members",
            week.id
        )),
        "{out}"
    );
    let keys = lab.count(&format!(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND state = 'pending'
         AND dedupe_key IN ('weekly:{w}:20', 'weekly:{w}:3')",
        w = week.id
    ));
    assert_eq!(keys, 2);
    // Once per week.
    let again = lab.ok(&["send", "weekly-summary"]);
    assert!(again.contains("queued to 0 members"), "{again}");
    assert_eq!(lab.count("SELECT COUNT(*) FROM outbox"), 2);

    let _d = lab.start();
    let mails = smtp.wait_for(2, WAIT);
    // Both rows delivered and none added by the daemon: nothing more can arrive.
    lab.wait_outbox_settled();
    assert_eq!(lab.count("SELECT COUNT(*) FROM outbox"), 2);
    assert_eq!(smtp.mails().len(), 2, "the daemon adds none: {mails:?}");
    let giulia = mails
        .iter()
        .find(|m| m.to == vec!["giulia@example.org".to_string()])
        .expect("Giulia's mail");
    assert_eq!(
        giulia.header("Subject").unwrap(),
        format!("Weekly summary of the lab, {}", week.id)
    );
    let text = decoded(giulia);
    for want in [
        "LASER 1: 2.0 h",
        "CNC 1: 2.0 h",
        "DRILL 1: 0.5 h",
        "CNC 1: Clean the bed",
        "deadbeef: 2 attempts",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    assert!(!text.contains("cafe0001"), "{text}");
    let carla = mails
        .iter()
        .find(|m| m.to == vec!["carla@example.org".to_string()])
        .expect("Carla's mail");
    let text = decoded(carla);
    for want in ["Ciao Carla", "LASER 1: 2,0 h", "CNC 1: 2,0 h", "PRINTER 1"] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    assert!(!text.contains("DRILL 1"), "{text}");
}
