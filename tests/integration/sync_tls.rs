//! Email over TLS to an SMTP server fabgate did not write (aiosmtpd, `common::aiosmtpd`):
//! STARTTLS and implicit TLS with AUTH, a certificate fabgate must not trust, and a refused
//! password. The SMTP password never shows in the log, the panel or the outbox.

use crate::common::aiosmtpd::{Aiosmtpd, Mode};
use crate::common::*;
use crate::sync::{admin, ask_reset, decoded, wait_until, WAIT};

const USER: &str = "fablab-mailer";
const PASSWORD: &str = "Sm7p-s3cret-pa55";

/// `[sync]` sending to `server` at `host` over `tls` with `password`; `trust` = its CA is
/// in `sync.smtp_ca_file`. Quick retries.
fn sync_config(server: &Aiosmtpd, host: &str, tls: &str, password: &str, trust: bool) -> String {
    let ca = if trust {
        server.ca_file().display().to_string()
    } else {
        String::new()
    };
    SyncSection::fast()
        .set("smtp_timeout_s", "5")
        .set_str("panel_url", "https://panel.test:8443")
        .set("alerts", "false")
        .set_str("smtp_host", host)
        .set("smtp_port", &server.port().to_string())
        .set_str("smtp_tls", tls)
        .set_str("smtp_user", USER)
        .set_str("smtp_password", password)
        .set_str("smtp_from", "lab@example.org")
        .set_str("smtp_ca_file", &ca)
        .text()
}

/// Fixture F plus Giulia, an Italian-speaking member with panel access.
fn lab(config: String) -> Lab {
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = config;
    lab.sql(
        "INSERT INTO roles (role_id, role_name, backend_admin) VALUES (10, 'panel', 1);
         INSERT INTO members (name, surname, role_id, email, language, created_at)
           VALUES ('Giulia', 'Test', 10, 'giulia@example.org', 'it', 0);",
    );
    lab
}

fn last_error(lab: &Lab) -> String {
    lab.db()
        .query_row("SELECT last_error FROM outbox", [], |r| r.get(0))
        .unwrap()
}

#[track_caller]
fn assert_secret_nowhere(secret: &str, d: &TestDaemon, places: &[&str]) {
    let log = d.log.lock().unwrap().join("\n");
    assert!(!log.contains(secret), "the SMTP password is in the log");
    for place in places {
        assert!(
            !place.contains(secret),
            "the SMTP password is shown: {place}"
        );
    }
}

#[test]
fn starttls_and_auth_deliver_a_password_reset_in_italian_to_aiosmtpd() {
    let server = Aiosmtpd::start(Mode::StartTls, Some((USER, PASSWORD)));
    let lab = lab(sync_config(
        &server,
        "localhost",
        "starttls",
        PASSWORD,
        true,
    ));
    let d = lab.start();
    ask_reset(d.panel, "giulia@example.org");

    let got = server.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert!(r.tls, "the session was not encrypted");
    assert_eq!(r.user.as_deref(), Some(USER));
    let mail = &r.mail;
    assert_eq!(mail.from, "lab@example.org");
    assert_eq!(mail.to, vec!["giulia@example.org".to_string()]);
    let header = |name: &str| {
        mail.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {}", mail.data))
    };
    assert_eq!(header("From"), "lab@example.org");
    assert_eq!(header("To"), "giulia@example.org");
    assert_eq!(header("Subject"), "Reimposta la password del pannello");
    assert_eq!(header("MIME-Version"), "1.0");
    assert!(
        header("Content-Type").starts_with("multipart/alternative;"),
        "{}",
        mail.data
    );
    let date = jiff::fmt::rfc2822::parse(&header("Date")).expect("an RFC 2822 Date");
    assert!((date.timestamp().as_second() - now()).abs() < 300, "{date}");
    let id = header("Message-ID");
    assert!(id.starts_with('<') && id.ends_with("@example.org>"), "{id}");
    let lower = mail.data.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/plain; charset=utf-8")
            && lower.contains("content-type: text/html; charset=utf-8"),
        "{}",
        mail.data
    );
    let text = decoded(mail);
    assert!(text.contains("Ciao Giulia"), "{text}");
    assert!(text.contains("entro 30 minuti"), "{text}");
    assert!(text.contains("<html lang=\"it\">"), "{text}");
    assert!(
        text.contains("<a href=\"https://panel.test:8443/password/reset/"),
        "{text}"
    );
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 1);
    assert_secret_nowhere(PASSWORD, &d, &[]);
}

#[test]
fn implicit_tls_and_auth_deliver_the_test_email_to_aiosmtpd() {
    let server = Aiosmtpd::start(Mode::Tls, Some((USER, PASSWORD)));
    let lab = lab(sync_config(&server, "127.0.0.1", "tls", PASSWORD, true));
    let _d = lab.start();
    lab.ok(&["send", "test-email", "someone@example.org"]);
    let got = server.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].tls, "the session was not encrypted");
    assert_eq!(got[0].user.as_deref(), Some(USER));
    assert_eq!(got[0].mail.to, vec!["someone@example.org".to_string()]);
    assert_eq!(
        got[0].mail.header("Subject").as_deref(),
        Some("fabgate test email")
    );
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 1);
}

#[test]
fn an_untrusted_certificate_keeps_the_email_waiting_with_the_reason_until_its_ca_is_trusted() {
    let server = Aiosmtpd::start(Mode::StartTls, Some((USER, PASSWORD)));
    let mut lab = lab(sync_config(
        &server,
        "localhost",
        "starttls",
        PASSWORD,
        false,
    ));
    let d = lab.start();
    let mut b = admin(&d);
    lab.ok(&["send", "test-email", "someone@example.org"]);
    // Tried, refused, and waiting for another try: not failed for good.
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND attempts >= 1",
        1,
    );
    let error = last_error(&lab);
    assert!(
        error.contains("certificate is not trusted") && error.contains("sync.smtp_ca_file"),
        "{error}"
    );
    let page = b.get("/outbox");
    assert!(page.body.contains("Waiting (1)"), "{}", page.body);
    assert!(
        page.body.contains("certificate is not trusted") && page.body.contains("UnknownIssuer"),
        "{}",
        page.body
    );
    assert!(
        server.received().is_empty(),
        "sent over an untrusted TLS session"
    );
    assert_secret_nowhere(PASSWORD, &d, &[&page.body, &error]);

    // The lab trusts its relay's CA: the waiting email goes.
    d.stop();
    lab.extra_config = sync_config(&server, "localhost", "starttls", PASSWORD, true);
    let _d = lab.start();
    let got = server.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].tls);
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 1);
}

#[test]
fn a_refused_smtp_password_holds_email_until_the_settings_are_fixed() {
    const WRONG: &str = "Wr0ng-pa55word";
    let server = Aiosmtpd::start(Mode::Tls, Some((USER, PASSWORD)));
    let lab = lab(sync_config(&server, "127.0.0.1", "tls", WRONG, true));
    let d = lab.start();
    let mut b = admin(&d);
    lab.ok(&["send", "test-email", "someone@example.org"]);
    lab.ok(&["send", "test-email", "other@example.org"]);
    // A wrong password will not fix itself, but neither is any email at fault: both wait,
    // with the server's answer, and staff see it on the dashboard.
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND last_error LIKE '%535%'",
        2,
    );
    let error = last_error(&lab);
    assert!(
        error.contains("535") && error.contains("Authentication credentials invalid"),
        "{error}"
    );
    // Dashboard and outbox both say why the emails wait.
    const HELD: &str = "Emails are waiting for the email settings: permanent error (535)";
    let dash = b.get("/");
    let page = b.get("/outbox");
    for body in [&dash.body, &page.body] {
        assert!(body.contains(HELD), "{body}");
    }
    assert!(
        dash.body.contains(r#"href="/settings#email""#),
        "{}",
        dash.body
    );
    assert!(page.body.contains("Waiting (2)"), "{}", page.body);
    assert!(b.get("/settings").body.contains(r#"id="email""#));
    assert_secret_nowhere(WRONG, &d, &[&page.body, &error, &dash.body]);

    // Staff store the right password (Settings → Email wins over the config): the waiting
    // emails go out at once, without pressing "Retry now".
    b.get("/settings");
    let saved = b.post(
        "/settings/email",
        &[
            ("smtp_host", ""),
            ("smtp_port", ""),
            ("smtp_tls", ""),
            ("smtp_user", ""),
            ("smtp_password", PASSWORD),
            ("smtp_from", ""),
        ],
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    let got = server.wait_for(2, WAIT);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].user.as_deref(), Some(USER));
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 2);
    assert!(!b.get("/").body.contains("waiting for the email settings"));
    let settings = b.get("/settings");
    assert_secret_nowhere(PASSWORD, &d, &[&settings.body]);
    assert_secret_nowhere(WRONG, &d, &[&settings.body]);
}
