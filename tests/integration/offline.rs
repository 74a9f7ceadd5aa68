//! A lab offline for a while: 100 changes (50 usage sessions for the lab calendar, 50
//! password-reset emails) queue while SMTP and Google are down; the servers come back
//! slow, and the daemon is killed (SIGKILL, as a power cut) at a chosen moment: the SMTP
//! server has taken a message and not yet said 250. After the restart every session is
//! exactly one event in its final state, and every email has arrived: at least once — the
//! message taken at the kill comes again, with the same Message-ID — and no other twice.

use crate::common::google::{FakeGoogle, CALENDAR};
use crate::common::smtp::SmtpServer;
use crate::common::*;
use crate::sync::ask_reset;
use std::collections::BTreeMap;
use std::time::Duration;

const SESSIONS: usize = 50;
const EMAILS: usize = 50;
const WAIT: Duration = Duration::from_secs(60);

fn wait_until(lab: &Lab, sql: &str, done: impl Fn(i64) -> bool) -> i64 {
    lab.wait_count_until(sql, done)
}

fn lab(smtp: &SmtpServer, g: &FakeGoogle) -> Lab {
    lab_with(smtp, g, SyncSection::fast())
}

/// The offline lab with `sync` (plus the SMTP and Google keys) as its `[sync]`.
fn lab_with(smtp: &SmtpServer, g: &FakeGoogle, sync: SyncSection) -> Lab {
    let mut lab = Lab::new();
    fixture_f(&lab);
    let key = g.key_file(lab.dir.path());
    lab.extra_config = sync
        .set("alerts", "false")
        .set("smtp_timeout_s", "5")
        .set_str("panel_url", "https://panel.test:8443")
        .set_str("google_key_file", &key.display().to_string())
        .set_str("lab_calendar_id", CALENDAR)
        .set_str("google_api_base", &g.base())
        .set("google_timeout_s", "5")
        .set_str("calendar_member_names", "full")
        .text();
    lab.sql(&format!(
        "INSERT INTO roles (role_id, role_name, backend_admin) VALUES (10, 'panel', 1);
         INSERT INTO settings (key, value) VALUES ('smtp_host', '127.0.0.1'), ('smtp_port', '{}'),
           ('smtp_tls', 'none'), ('smtp_from', 'lab@example.org');",
        smtp.port()
    ));
    for i in 0..SESSIONS.max(EMAILS) {
        lab.db()
            .execute(
                "INSERT INTO members (member_id, name, surname, role_id, card_uid, email, created_at)
                 VALUES (?1, 'Member', ?2, 10, ?3, ?4, 0)",
                rusqlite::params![
                    100 + i as i64,
                    format!("N{i}"),
                    format!("cc0000{i:02x}"),
                    format!("m{i}@example.org")
                ],
            )
            .unwrap();
    }
    lab
}

#[test]
fn a_hundred_offline_changes_arrive_once_across_a_kill_mid_delivery() {
    let mut g = FakeGoogle::reserve();
    let mut smtp = SmtpServer::reserve();
    let lab = lab(&smtp, &g);
    let d = lab.start();

    // 50 sessions on the drill (open access), each with its own duration, and 50 reset
    // requests, interleaved so the kill below hits both kinds.
    let drill = d.board("2");
    assert_eq!(SESSIONS, EMAILS);
    for i in 0..SESSIONS {
        let uid = format!("cc0000{i:02x}");
        drill.must(&format!(r#"{{"action":"startuse","uid":"{uid}"}}"#));
        let r = drill.must(&format!(
            r#"{{"action":"stopuse","uid":"{uid}","duration":{}}}"#,
            60 + i
        ));
        assert_eq!(r["request_ok"], true, "{r}");
        ask_reset(d.panel, &format!("m{i}@example.org"));
    }
    // Everything waiting with a reason (tried, or held back because its server is down):
    // an insert and an update per session, and the emails.
    let rows = (2 * SESSIONS + EMAILS) as i64;
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND last_error IS NOT NULL",
        |n| n == rows,
    );

    // The network comes back, slowly; the daemon dies a third of the way through the
    // emails, while the server holds the 250 of a message it has taken.
    g.with(|s| s.delay = Duration::from_millis(10));
    smtp.set_delay(Duration::from_millis(40));
    smtp.stall_at_data(EMAILS / 3);
    g.restart();
    smtp.restart();
    assert!(
        smtp.wait_stalled(WAIT),
        "the daemon never sent its message #{}",
        EMAILS / 3
    );
    drop(d); // SIGKILL, the 250 not yet given
    let in_flight = smtp
        .mails()
        .last()
        .and_then(|m| m.header("Message-ID"))
        .expect("the message taken at the kill has a Message-ID");
    smtp.release();
    let sent = lab.count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'");
    assert!(sent < rows, "the kill came after everything was delivered");

    let d = lab.start();
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'sent'",
        |n| n == rows,
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM outbox WHERE state <> 'sent'"),
        0
    );

    // Calendar: exactly one event per session, each with its closed times.
    let events = g.events();
    assert_eq!(events.len(), SESSIONS, "{:?}", events.keys());
    let mut durations: Vec<i64> = events
        .values()
        .map(|e| {
            let t = |k: &str| {
                e[k]["dateTime"]
                    .as_str()
                    .unwrap()
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_second()
            };
            t("end") - t("start")
        })
        .collect();
    durations.sort();
    assert_eq!(
        durations,
        (0..SESSIONS as i64).map(|i| 60 + i).collect::<Vec<_>>()
    );
    g.with(|s| {
        eprintln!(
            "offline: killed after {sent}/{rows} sent; Google inserts {} updates {} conflicts {}",
            s.inserts, s.updates, s.conflicts
        );
        assert_eq!(s.inserts, SESSIONS, "one insert per session");
        // An insert in flight at the kill is retried and answered 409: still one event.
        assert!(s.conflicts <= 1, "conflicts: {}", s.conflicts);
        assert!(s.refused.is_empty(), "{:?}", s.refused);
    });

    // Email: everyone's reset link arrived; at most the one in flight came twice.
    let mails = smtp.wait_for(EMAILS, WAIT);
    let mut per_address: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mails {
        for to in &m.to {
            *per_address.entry(to.clone()).or_default() += 1;
        }
    }
    eprintln!("offline: {} mails for {EMAILS} resets", mails.len());
    assert_eq!(per_address.len(), EMAILS, "{per_address:?}");
    // A copy sent again carries the first copy's Message-ID, so mail systems that
    // de-duplicate by it show one.
    let ids: std::collections::BTreeSet<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").expect("a Message-ID"))
        .collect();
    assert_eq!(ids.len(), EMAILS, "one Message-ID per reset: {ids:?}");
    // At least once: the message the server took without answering came again (it was
    // not marked sent before its 250) ...
    let copies = mails
        .iter()
        .filter(|m| m.header("Message-ID").as_deref() == Some(in_flight.as_str()))
        .count();
    assert_eq!(copies, 2, "the message in flight at the kill ({in_flight})");
    // ... and no message that had its 250 came twice.
    assert_eq!(
        mails.len(),
        EMAILS + 1,
        "{} mails for {EMAILS} resets",
        mails.len()
    );
    d.stop();
}

/// A server that does not answer is left alone as a whole: its rows, and rows queued
/// meanwhile, wait together and are not each tried (each would cost a timeout). When it
/// answers again, at the next probe, everything waiting for it goes out at once, however
/// long each row's own backoff had grown.
#[test]
fn a_server_back_online_gets_its_whole_backlog_at_the_next_probe() {
    let mut smtp = SmtpServer::reserve();
    let g = FakeGoogle::reserve();
    let lab = lab_with(
        &smtp,
        &g,
        SyncSection::fast()
            .set("backoff_base_s", "3")
            .unset("backoff_cap_s"),
    );
    let d = lab.start();
    for i in 0..3 {
        ask_reset(d.panel, &format!("m{i}@example.org"));
    }
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND state = 'pending' AND held = 1",
        |n| n == 3,
    );
    assert_eq!(
        lab.count("SELECT SUM(attempts) FROM outbox WHERE kind = 'email'"),
        1,
        "one attempt for three rows"
    );
    // Staff see it at a glance.
    let mut staff = crate::sync::admin(&d);
    let dash = staff.get("/");
    assert!(
        dash.body
            .contains("3 messages wait for the network; they are sent when it is back."),
        "{}",
        dash.body
    );
    smtp.restart();
    lab.ok(&["send", "test-email", "staff@example.org"]);
    let mails = smtp.wait_for(4, Duration::from_secs(15));
    assert_eq!(mails.len(), 4, "{mails:?}");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND state = 'sent'",
        |n| n == 4,
    );
    assert!(!staff.get("/").body.contains("messages wait"));
}

/// Email not set up yet is not "offline": the dashboard does not blame the network, the
/// emails wait, and saving the email settings sends them at once.
#[test]
fn emails_queued_before_email_is_set_up_go_out_when_it_is() {
    let smtp = SmtpServer::start();
    let g = FakeGoogle::reserve();
    let lab = lab_with(
        &smtp,
        &g,
        SyncSection::fast()
            .unset("backoff_base_s")
            .unset("backoff_cap_s"),
    );
    lab.sql("DELETE FROM settings WHERE key LIKE 'smtp_%'");
    let d = lab.start();
    ask_reset(d.panel, "m1@example.org");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND state = 'pending' AND attempts = 1
         AND last_error LIKE 'no mail server%'",
        |n| n == 1,
    );
    let mut staff = crate::sync::admin(&d);
    assert!(!staff.get("/").body.contains("for the network"));
    staff.get("/settings");
    let saved = staff.post(
        "/settings/email",
        &[
            ("smtp_host", "127.0.0.1"),
            ("smtp_port", &smtp.port().to_string()),
            ("smtp_tls", "none"),
            ("smtp_user", ""),
            ("smtp_password", ""),
            ("smtp_from", "lab@example.org"),
        ],
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    let mails = smtp.wait_for(1, Duration::from_secs(5));
    assert_eq!(mails.len(), 1, "sent right after the settings were saved");
    assert_eq!(mails[0].to, ["m1@example.org"]);
}

/// A reset link that could not be sent within its 30 minutes is not sent dead: the row
/// fails as expired (and the member can ask again).
#[test]
fn a_reset_email_that_expired_while_offline_is_not_sent() {
    let mut smtp = SmtpServer::reserve();
    let g = FakeGoogle::reserve();
    let lab = lab(&smtp, &g);
    let d = lab.start();
    ask_reset(d.panel, "m1@example.org");
    let valid = lab.count("SELECT expires_at - created_at FROM outbox WHERE kind = 'email'");
    assert_eq!(valid, 30 * 60, "valid as long as the link");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND held = 1",
        |n| n == 1,
    );
    // Half an hour later, still offline.
    lab.sql("UPDATE outbox SET expires_at = created_at - 1 WHERE kind = 'email'");
    smtp.restart();
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND state = 'failed'
         AND last_error LIKE 'expired%'",
        |n| n == 1,
    );
    // Failed for good: nothing is left to try, so nothing can still arrive.
    lab.wait_outbox_settled();
    assert!(smtp.mails().is_empty());
}
