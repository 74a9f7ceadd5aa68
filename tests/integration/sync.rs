//! Offline-first sync: the outbox delivers email through a real SMTP server (written in
//! `common::smtp`), survives the server being down and the daemon restarting, and shows
//! permanent failures in the panel. Password reset is tested end to end over it.

use crate::common::browser::Browser;
use crate::common::smtp::{Mail, Rcpt, SmtpServer};
use crate::common::*;
use std::time::{Duration, Instant};

pub(crate) const WAIT: Duration = Duration::from_secs(15);
const SMTP_PASSWORD: &str = "sm7p-pa55word";

/// A lab (fixture F) whose outgoing email goes to `smtp`, with a quick retry schedule,
/// and panel members `(name, email, language)` that may log in.
fn lab_with_smtp(port: u16, members: &[(&str, &str, &str)]) -> Lab {
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = SyncSection::fast()
        .set("smtp_timeout_s", "3")
        .set_str("panel_url", "https://panel.test:8443")
        .set("alerts", "false")
        .text();
    lab.sql(&format!(
        "INSERT INTO roles (role_id, role_name, backend_admin) VALUES (10, 'panel', 1);
         INSERT INTO settings (key, value) VALUES ('smtp_host', '127.0.0.1'), ('smtp_port', '{port}'),
           ('smtp_tls', 'none'), ('smtp_from', 'lab@example.org'), ('smtp_password', '{SMTP_PASSWORD}');"
    ));
    for (name, email, language) in members {
        lab.db()
            .execute(
                "INSERT INTO members (name, surname, role_id, email, language, created_at)
                 VALUES (?1, 'Test', 10, ?2, ?3, 0)",
                rusqlite::params![name, email, language],
            )
            .unwrap();
    }
    lab
}

/// The first administrator, logged in with a password of their own.
pub(crate) fn admin(d: &TestDaemon) -> Browser {
    admin_session(d)
}

pub(crate) fn ask_reset(panel: std::net::SocketAddr, email: &str) -> String {
    let mut b = Browser::new(panel);
    let form = b.get("/password/forgot");
    assert_eq!(form.status, 200);
    let p = b.post("/password/forgot", &[("email", email)]);
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("a link is on its way"), "{}", p.body);
    p.body
}

/// Quoted-printable and base64 parts of a message, decoded well enough for assertions.
pub fn decoded(mail: &Mail) -> String {
    let mut out = String::new();
    for part in mail.data.split("\r\n--") {
        let (head, body) = part.split_once("\r\n\r\n").unwrap_or(("", part));
        let head_l = head.to_ascii_lowercase();
        if head_l.contains("content-transfer-encoding: base64") {
            use base64::Engine;
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let clean = clean.split("--").next().unwrap_or("");
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(clean) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        } else if head_l.contains("quoted-printable") {
            let soft = body.replace("=\r\n", "");
            let bytes = soft.as_bytes();
            let mut v = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 2 < bytes.len() {
                    if let Ok(b) = u8::from_str_radix(&soft[i + 1..i + 3], 16) {
                        v.push(b);
                        i += 3;
                        continue;
                    }
                }
                v.push(bytes[i]);
                i += 1;
            }
            out.push_str(&String::from_utf8_lossy(&v));
        } else {
            out.push_str(body);
        }
        out.push('\n');
    }
    out
}

fn reset_path(mail: &Mail) -> String {
    let text = decoded(mail);
    let at = text
        .find("https://panel.test:8443/password/reset/")
        .unwrap_or_else(|| panic!("no reset link in {text}"));
    let rest = &text[at + "https://panel.test:8443".len()..];
    rest[..("/password/reset/".len() + 64)].to_string()
}

pub(crate) fn wait_until(lab: &Lab, sql: &str, want: i64) {
    lab.wait_count(sql, want);
}

/// Whether an address has an account does not show in the answer's time either: a known
/// one commits a token and an email, an unknown one does not, and both answers are held to
/// the same minimum. (No upper bound: a loaded CI machine may be slow.)
#[test]
fn reset_requests_take_the_same_minimum_time_whether_or_not_the_address_exists() {
    let smtp = SmtpServer::start();
    let lab = lab_with_smtp(smtp.port(), &[("Giulia", "giulia@example.org", "it")]);
    let d = lab.start();
    for email in ["giulia@example.org", "nobody@example.org"] {
        let mut b = Browser::new(d.panel);
        assert_eq!(b.get("/password/forgot").status, 200);
        let asked = Instant::now();
        let p = b.post("/password/forgot", &[("email", email)]);
        let took = asked.elapsed();
        assert!(p.body.contains("a link is on its way"), "{}", p.body);
        assert!(took >= Duration::from_millis(250), "{email}: {took:?}");
    }
    // The known address did get its link.
    wait_until(&lab, "SELECT COUNT(*) FROM password_resets", 1);
}

#[test]
fn password_reset_by_email_end_to_end_in_the_members_language() {
    let smtp = SmtpServer::start();
    let lab = lab_with_smtp(smtp.port(), &[("Giulia", "giulia@example.org", "it")]);
    let d = lab.start();
    let mut anon = Browser::new(d.panel);
    let login = anon.get("/login");
    assert!(
        login.body.contains("href=\"/password/forgot\""),
        "{}",
        login.body
    );

    let known = ask_reset(d.panel, "Giulia@Example.org");
    let unknown = ask_reset(d.panel, "nobody@example.org");
    assert_eq!(
        known, unknown,
        "the answer reveals whether the address exists"
    );

    let mails = smtp.wait_for(1, WAIT);
    // One row, delivered: nothing more can arrive.
    lab.wait_outbox_settled();
    assert_eq!(lab.count("SELECT COUNT(*) FROM outbox"), 1);
    let mails_after = smtp.mails();
    assert_eq!(mails_after.len(), 1, "only the known address gets a mail");
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["giulia@example.org".to_string()]);
    assert_eq!(mail.from, "lab@example.org");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Reimposta la password del pannello")
    );
    let lower = mail.data.to_ascii_lowercase();
    assert!(lower.contains("multipart/alternative"), "{}", mail.data);
    assert!(
        lower.contains("text/plain") && lower.contains("text/html"),
        "{}",
        mail.data
    );
    let text = decoded(mail);
    assert!(text.contains("Ciao Giulia"), "{text}");
    assert!(text.contains("entro 30 minuti"), "{text}");
    assert!(
        text.contains("<a href=\"https://panel.test:8443/password/reset/"),
        "{text}"
    );

    // The link works once.
    let path = reset_path(mail);
    let form = anon.get(&path);
    assert_eq!(form.status, 200, "{}", form.body);
    let short = anon.post(&path, &[("new", "short"), ("repeat", "short")]);
    assert_eq!(short.status, 400);
    let done = anon.post(
        &path,
        &[
            ("new", "brand new secret 7"),
            ("repeat", "brand new secret 7"),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Password changed"), "{}", done.body);
    let again = anon.get(&path);
    assert_eq!(again.status, 404);
    assert!(
        again.body.contains("This link does not work"),
        "{}",
        again.body
    );
    let replay = anon.post(
        &path,
        &[
            ("new", "another secret 99"),
            ("repeat", "another secret 99"),
        ],
    );
    assert_eq!(replay.status, 404);
    let wrong = anon.get(&format!("/password/reset/{}", "ab".repeat(32)));
    assert_eq!(wrong.status, 404);

    let mut giulia = Browser::new(d.panel);
    giulia.login("giulia@example.org", "brand new secret 7");
    assert_eq!(giulia.get("/").status, 200);

    // Once sent, the outbox keeps neither the body nor the link.
    let payload: String = lab
        .db()
        .query_row("SELECT payload FROM outbox WHERE state = 'sent'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!payload.contains("/password/reset/"), "{payload}");
    let log = d.log.lock().unwrap().join("\n");
    assert!(!log.contains(&path[16..]), "the token is in the log");
    assert!(
        !log.contains("giulia@example.org"),
        "the address is in the log"
    );
    assert!(
        !log.contains(SMTP_PASSWORD),
        "the SMTP password is in the log"
    );
}

#[test]
fn offline_email_waits_and_arrives_once_across_a_daemon_restart() {
    let mut smtp = SmtpServer::reserve();
    let members = [
        ("Ada", "ada@example.org", "en"),
        ("Bruno", "bruno@example.org", "it"),
        ("Carla", "carla@example.org", "en"),
    ];
    let lab = lab_with_smtp(smtp.port(), &members);
    let d = lab.start();
    for (_, email, _) in &members {
        ask_reset(d.panel, email);
    }
    // Every row is waiting for the network (tried, or held back behind the first).
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND last_error IS NOT NULL",
        3,
    );
    // The daemon stops with the rows queued; the server comes up; the daemon starts again.
    d.stop();
    smtp.restart();
    let d = lab.start();
    let mails = smtp.wait_for(3, WAIT);
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 3);
    lab.wait_outbox_settled();
    assert_eq!(
        smtp.mails().len(),
        3,
        "each message arrives once: {mails:?}"
    );
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec!["ada@example.org", "bruno@example.org", "carla@example.org"]
    );
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 3);

    // Down again while the daemon runs: a new request waits, then arrives.
    smtp.stop();
    ask_reset(d.panel, "ada@example.org");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND last_error IS NOT NULL",
        1,
    );
    smtp.restart();
    assert_eq!(smtp.wait_for(4, WAIT).len(), 4);
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 4);
}

#[test]
fn permanent_failures_show_in_the_panel_and_can_be_retried_or_discarded() {
    let smtp = SmtpServer::start();
    smtp.answer_rcpt(Rcpt::Permanent);
    let lab = lab_with_smtp(smtp.port(), &[("Dario", "dario@example.org", "en")]);
    let d = lab.start();
    let mut b = admin(&d);
    ask_reset(d.panel, "dario@example.org");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'failed'",
        1,
    );
    let page = b.get("/outbox");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Failed (1)"), "{}", page.body);
    assert!(page.body.contains("550"), "{}", page.body);
    assert!(page.body.contains("dario@example.org"), "{}", page.body);
    assert!(
        !page.body.contains(SMTP_PASSWORD),
        "the SMTP password is shown"
    );
    assert!(
        !page.body.contains("/password/reset/"),
        "the reset link is shown"
    );
    let id = lab.count("SELECT id FROM outbox WHERE state = 'failed'");

    // Retry needs the CSRF token.
    let forged = b.post(&format!("/outbox/{id}/retry"), &[("csrf", "nope")]);
    assert_eq!(forged.status, 403);
    smtp.answer_rcpt(Rcpt::Accept);
    b.get("/outbox");
    let retried = b.post(&format!("/outbox/{id}/retry"), &[]);
    assert_eq!(retried.status, 303, "{}", retried.body);
    assert_eq!(smtp.wait_for(1, WAIT).len(), 1);
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 1);

    // A temporary refusal keeps the row waiting; discard removes it.
    smtp.answer_rcpt(Rcpt::Temporary);
    ask_reset(d.panel, "dario@example.org");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND last_error LIKE '%451%'",
        1,
    );
    let id = lab.count("SELECT id FROM outbox WHERE state = 'pending'");
    let page = b.get("/outbox");
    assert!(page.body.contains("Waiting (1)"), "{}", page.body);
    let discarded = b.post(&format!("/outbox/{id}/discard"), &[]);
    assert_eq!(discarded.status, 303);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM outbox WHERE state <> 'sent'"),
        0
    );
    let page = b.get("/outbox");
    assert!(page.body.contains("Waiting (0)"), "{}", page.body);
    assert_eq!(smtp.mails().len(), 1);
}

#[test]
fn the_cli_queues_a_test_email_that_the_daemon_sends() {
    let smtp = SmtpServer::start();
    let lab = lab_with_smtp(smtp.port(), &[]);
    let _d = lab.start();
    let out = lab.ok(&["send", "test-email", "someone@example.org"]);
    assert!(out.contains("queued"), "{out}");
    let mails = smtp.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["someone@example.org".to_string()]);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("fabgate test email")
    );
    lab.fail(&["send", "test-email", "not-an-address"]);
}
