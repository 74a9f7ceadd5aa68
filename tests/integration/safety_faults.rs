//! Faults while running (issue 12): when writes fail, boards get no reply to writes (they
//! buffer and replay), and staff see it: a red line on the dashboard and the System page,
//! `/metrics` counters (withheld is not replied), `fabgate doctor`, and an alert email
//! queued as soon as the store takes it. Recovery needs nobody.
//!
//! The store is made to refuse writes with SQLite triggers raising SQLite's own "database
//! or disk is full" message on the tables the daemon writes: the real daemon, the real
//! error path, without needing root for a full file system.

use crate::common::browser::Browser;
use crate::common::*;
use std::time::{Duration, Instant};

fn metrics_addr(d: &TestDaemon) -> String {
    assert!(d.wait_log("metrics on http://"));
    let log = d.log.lock().unwrap();
    let line = log
        .iter()
        .find(|l| l.contains("metrics on http://"))
        .unwrap();
    let rest = line.split("http://").nth(1).unwrap();
    rest.split('/').next().unwrap().to_string()
}

fn metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

fn wait_for(what: &str, wait: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const FULL: &str = "SELECT RAISE(ABORT, 'database or disk is full')";

#[test]
fn safety_failing_writes_are_shown_counted_alerted_and_recover() {
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n".into();
    let d = lab.start();
    let addr = metrics_addr(&d);
    let mut browser = Browser::new(d.panel);
    let first = d.admin_password.clone().expect("one-time password");
    browser.login("admin@fabgate.local", &first);
    browser.get("/password");
    let p = browser.post(
        "/password",
        &[
            ("current", &first),
            ("new", "correct horse 42"),
            ("repeat", "correct horse 42"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(!browser
        .get("/")
        .body
        .contains("Writes to the database fail"));
    let b = d.board("1");
    b.must(r#"{"action":"checkmachine"}"#);

    // Writes fail: uses, settings (the daemon's probe) and the outbox (the alert itself).
    lab.sql(&format!(
        "CREATE TRIGGER full_uses BEFORE INSERT ON uses BEGIN {FULL}; END;
         CREATE TRIGGER full_settings_i BEFORE INSERT ON settings BEGIN {FULL}; END;
         CREATE TRIGGER full_settings_u BEFORE UPDATE ON settings BEGIN {FULL}; END;
         CREATE TRIGGER full_outbox BEFORE INSERT ON outbox BEGIN {FULL}; END;"
    ));
    assert!(b
        .ask(r#"{"action":"startuse", "uid":"aabbccd3"}"#)
        .is_none());
    // Reads are still answered.
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["request_ok"], true);

    let m = metrics(&addr);
    assert!(
        metric(&m, "fabgate_board_replies_withheld_total") >= 1.0,
        "{m}"
    );
    assert!(metric(&m, "fabgate_store_errors_total") >= 1.0, "{m}");
    assert_eq!(metric(&m, "fabgate_store_write_failing"), 1.0, "{m}");
    assert!(
        m.contains("fabgate_board_messages_total{action=\"startuse\",outcome=\"withheld\"} 1"),
        "{m}"
    );
    assert!(
        !m.contains("action=\"startuse\",outcome=\"replied\""),
        "{m}"
    );

    for page in ["/", "/system"] {
        let p = browser.get(page);
        let body = p.body;
        assert!(
            body.contains("Writes to the database fail since"),
            "{page} {} {:?}: {body}",
            p.status,
            p.location
        );
        assert!(body.contains("the disk is full"), "{page}: {body}");
    }
    let out = lab.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FAIL  database writes: writes fail: the disk is full"),
        "{text}"
    );
    // The alert cannot be queued while the outbox refuses rows.
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM outbox WHERE payload LIKE '%database%'"),
        0
    );

    // The cause goes: the daemon notices by itself (no board message needed).
    lab.sql(
        "DROP TRIGGER full_uses; DROP TRIGGER full_settings_i; DROP TRIGGER full_settings_u;
         DROP TRIGGER full_outbox;",
    );
    wait_for("recovery", Duration::from_secs(15), || {
        metric(&metrics(&addr), "fabgate_store_write_failing") == 0.0
    });
    assert!(!browser
        .get("/")
        .body
        .contains("Writes to the database fail"));
    // Staff hear of it as soon as the outbox takes rows (as the fault, or as "failed
    // from ... to ..." when the cause went first), once.
    wait_for("the alert email", TIMEOUT, || {
        lab.count(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'email'
             AND payload LIKE '%Writes to the database fail%disk is full%'",
        ) == 1
    });
    // The board's replay is recorded and answered.
    assert_eq!(
        b.must(r#"{"action":"startuse", "uid":"aabbccd3", "replay":true}"#)["request_ok"],
        true
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        1
    );
}

/// While writes fail and the outbox takes rows (damage elsewhere than the outbox), the
/// alert goes out at once, marked as current.
#[test]
fn safety_a_write_fault_alerts_staff_while_it_lasts() {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start();
    lab.sql(&format!(
        "CREATE TRIGGER full_uses BEFORE INSERT ON uses BEGIN {FULL}; END;
         CREATE TRIGGER full_settings_i BEFORE INSERT ON settings BEGIN {FULL}; END;
         CREATE TRIGGER full_settings_u BEFORE UPDATE ON settings BEGIN {FULL}; END;"
    ));
    let b = d.board("1");
    assert!(b
        .ask(r#"{"action":"startuse", "uid":"aabbccd3"}"#)
        .is_none());
    wait_for("the alert email", TIMEOUT, || {
        lab.count(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'email'
             AND payload LIKE '%Writes to the database fail since%'",
        ) == 1
    });
    assert!(d.log_contains("store: writes fail: the disk is full"));
}
