//! The staff panel over real HTTP: first admin, login, sessions, CSRF, throttling, the
//! live dashboard. Each security rule of the panel issue is a test here.

use crate::common::browser::Browser;
use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

/// A started lab with fixture F and a logged-in administrator (password changed); the
/// other panel test modules start from it too.
pub fn logged_in() -> (Lab, TestDaemon, Browser) {
    let (lab, d) = start_f();
    let b = admin_session(&d);
    (lab, d, b)
}

#[test]
fn first_admin_must_change_the_one_time_password() {
    let (lab, d) = start_f();
    let first = d
        .admin_password
        .clone()
        .expect("one-time password printed once");
    assert!(d.log_contains("admin@fabgate.local"));
    let mut b = Browser::new(d.panel);
    assert_eq!(b.get("/").location.as_deref(), Some("/login"));
    let p = b.post(
        "/login",
        &[("email", "admin@fabgate.local"), ("password", &first)],
    );
    assert_eq!(p.status, 303);
    // Every page leads to the password form until it is changed.
    for path in ["/", "/members", "/dashboard/cards"] {
        assert_eq!(b.get(path).location.as_deref(), Some("/password"), "{path}");
    }
    b.get("/password");
    let p = b.post(
        "/password",
        &[("current", &first), ("new", "short"), ("repeat", "short")],
    );
    assert_eq!(p.status, 400);
    let p = b.post(
        "/password",
        &[
            ("current", "wrong one!!"),
            ("new", "long enough 1"),
            ("repeat", "long enough 1"),
        ],
    );
    assert_eq!(p.status, 400);
    let p = b.post(
        "/password",
        &[
            ("current", &first),
            ("new", "long enough 1"),
            ("repeat", "long enough 1"),
        ],
    );
    assert_eq!(p.status, 303);
    assert_eq!(b.get("/").status, 200);
    // The one-time password is gone; the new one works.
    let mut other = Browser::new(d.panel);
    assert_eq!(
        other
            .post(
                "/login",
                &[("email", "admin@fabgate.local"), ("password", &first)]
            )
            .status,
        401
    );
    assert_eq!(
        other
            .post(
                "/login",
                &[
                    ("email", "ADMIN@fabgate.local"),
                    ("password", "long enough 1")
                ]
            )
            .status,
        303
    );
    // A restart does not create another admin, nor print another one-time password.
    let admins = "SELECT COUNT(*) FROM members m JOIN roles r ON r.role_id = m.role_id
                  WHERE r.backend_admin = 1 AND m.deleted = 0";
    assert_eq!(lab.count(admins), 1);
    d.stop();
    let d = lab.start();
    assert_eq!(d.admin_password, None, "a second one-time password");
    assert!(!d.log_contains("one-time password"));
    assert_eq!(lab.count(admins), 1);
    assert_eq!(lab.count("SELECT COUNT(*) FROM members"), 7);
    let mut again = Browser::new(d.panel);
    let p = again.post(
        "/login",
        &[("email", ADMIN_EMAIL), ("password", "long enough 1")],
    );
    assert_eq!(p.status, 303, "the admin's own password after a restart");
}

#[test]
fn session_cookie_and_security_headers() {
    let (_lab, d, mut b) = logged_in();
    let p = b.post("/login", &[("email", "x@y.z"), ("password", "nope")]);
    assert_eq!(p.status, 401);
    let mut fresh = Browser::new(d.panel);
    let first = fresh.post(
        "/login",
        &[
            ("email", "admin@fabgate.local"),
            ("password", "correct horse 42"),
        ],
    );
    let cookie = first.header("set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let page = b.get("/");
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // No inline script anywhere: every <script> has a src.
    for part in page.body.split("<script").skip(1) {
        assert!(
            part.trim_start().starts_with("src="),
            "inline script: {part}"
        );
    }
    // Logging out ends the session server-side, not just in the browser.
    let token = b.cookie.clone().unwrap();
    let out = b.post("/logout", &[]);
    assert_eq!(out.status, 303);
    b.cookie = Some(token);
    assert_eq!(b.get("/").location.as_deref(), Some("/login"));
}

#[test]
fn state_changes_need_csrf_and_same_origin() {
    let (lab, d, mut b) = logged_in();
    b.get("/");
    let token = b.csrf.clone().unwrap();
    let p = b.post("/logout", &[("csrf", "forged")]);
    assert_eq!(p.status, 403);
    let p = b.post("/logout", &[("csrf", "")]);
    assert_eq!(p.status, 403);
    // Each header refuses on its own, with the right CSRF token (one request each).
    for header in [
        ("Origin", "http://evil.example".to_string()),
        ("Sec-Fetch-Site", "cross-site".to_string()),
        ("Sec-Fetch-Site", "same-site".to_string()),
    ] {
        let p = b.post_raw(
            "/settings",
            &[
                ("csrf", token.as_str()),
                ("lab_name", "Forged"),
                ("timezone", "Europe/Rome"),
                ("language", ""),
            ],
            &[(header.0, header.1.as_str())],
        );
        assert_eq!(p.status, 403, "{header:?}");
    }
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM settings WHERE value = 'Forged'"),
        0
    );
    // The same form from the panel's own origin goes through: the refusals above were
    // the headers', not the form's.
    let p = b.post_raw(
        "/settings",
        &[
            ("csrf", token.as_str()),
            ("lab_name", "Own origin"),
            ("timezone", "Europe/Rome"),
            ("language", ""),
        ],
        &[
            ("Origin", format!("http://{}", d.panel).as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM settings WHERE value = 'Own origin'"),
        1
    );
    // Still logged in after the refusals.
    assert_eq!(b.get("/").status, 200);
    // GET never changes state: /logout by GET is not a route.
    assert_eq!(b.get("/logout").status, 404);
}

#[test]
fn login_is_throttled_per_account_and_address() {
    let (_lab, d, _b) = logged_in();
    let mut b = Browser::new(d.panel);
    for _ in 0..3 {
        assert_eq!(
            b.post(
                "/login",
                &[("email", "admin@fabgate.local"), ("password", "guess")]
            )
            .status,
            401
        );
    }
    // Then this address waits before it may try this account again, even with the right
    // password (issue 11: a growing wait, not a lock; see panel_security_login).
    let p = b.post(
        "/login",
        &[
            ("email", "admin@fabgate.local"),
            ("password", "correct horse 42"),
        ],
    );
    assert_eq!(p.status, 429);
    assert!(p.body.contains("Too many failed attempts from here"));
    let wait: u64 = p.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
}

#[test]
fn only_panel_roles_log_in_and_imported_hashes_work() {
    let (lab, d, _b) = logged_in();
    // Werkzeug hash of "admin" (FabOMatic's format), computed with Python's hashlib.
    let werkzeug = "pbkdf2:sha256:600000$PIeuM3M7ZG3k6Akz$b5423dcef824986468be4d88d31d98b70fa441cdb8ca9838c099f8390b671f41";
    lab.sql(&format!(
        "UPDATE roles SET backend_admin = 1 WHERE role_id = 1;
         UPDATE members SET email = 'anna@lab.org', password_hash = '{werkzeug}' WHERE member_id = 1;
         UPDATE members SET email = 'carla@lab.org', password_hash = '{werkzeug}' WHERE member_id = 3;"
    ));
    let mut anna = Browser::new(d.panel);
    assert_eq!(
        anna.post(
            "/login",
            &[("email", "anna@lab.org"), ("password", "admin")]
        )
        .status,
        303
    );
    let stored: String = lab
        .db()
        .query_row(
            "SELECT password_hash FROM members WHERE member_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$"),
        "re-hashed at login: {stored}"
    );
    let mut again = Browser::new(d.panel);
    assert_eq!(
        again
            .post(
                "/login",
                &[("email", "anna@lab.org"), ("password", "admin")]
            )
            .status,
        303
    );
    // Carla's role ("users") has no panel capability: refused like a wrong password.
    let mut carla = Browser::new(d.panel);
    assert_eq!(
        carla
            .post(
                "/login",
                &[("email", "carla@lab.org"), ("password", "admin")]
            )
            .status,
        401
    );
    // A disabled admin is refused too, and their open session ends.
    lab.sql("UPDATE members SET disabled = 1 WHERE member_id = 1");
    assert_eq!(anna.get("/").location.as_deref(), Some("/login"));
}

#[test]
fn oversize_bodies_are_refused() {
    let (_lab, d, _b) = logged_in();
    let mut b = Browser::new(d.panel);
    let big = "x".repeat(200 * 1024);
    let p = b.post("/login", &[("email", "a@b.c"), ("password", &big)]);
    assert_eq!(p.status, 413);
}

#[test]
fn dashboard_shows_machines_and_escapes_names() {
    let (lab, d, mut b) = logged_in();
    lab.sql("UPDATE machines SET machine_name = '<script>alert(1)</script>' WHERE machine_id = 2");
    let board = d.board("1");
    board.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    let p = b.get("/");
    assert!(p.body.contains("LASER 1"));
    assert!(p.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!p.body.contains("<script>alert(1)"));
    let cards = b.get("/dashboard/cards");
    let laser = cards.body.split("data-machine=\"1\"").nth(1).unwrap();
    let laser = laser.split("</article>").next().unwrap();
    assert!(laser.contains("Carla") && laser.contains("busy"), "{laser}");
    // Machine 4 has an overdue plan in fixture F.
    let cnc = cards
        .body
        .split("data-machine=\"4\"")
        .nth(1)
        .unwrap()
        .split("</article>")
        .next()
        .unwrap();
    assert!(cnc.contains("maintenance due"), "{cnc}");
    // Machine 3 is blocked.
    assert!(cards
        .body
        .split("data-machine=\"3\"")
        .nth(1)
        .unwrap()
        .split("</article>")
        .next()
        .unwrap()
        .contains("blocked"));
    assert!(p.body.contains("In use now"));
}

#[test]
fn live_events_follow_card_taps() {
    let (_lab, d, b) = logged_in();
    let mut s = std::net::TcpStream::connect(d.panel).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: {}\r\nCookie: fg_session={}\r\nAccept: text/event-stream\r\n\r\n",
        d.panel,
        b.cookie.clone().unwrap()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    // The stream is open once its first line (the retry hint) arrives.
    loop {
        line.clear();
        r.read_line(&mut line).expect("the stream's first line");
        if line.starts_with("retry:") {
            break;
        }
    }
    // A tap is pushed as a change event (no event comes without a change: keep-alives
    // are comments). The stream takes its baseline right after its first line, so a tap
    // in that instant may be part of it: tap again until the event comes (at most 5).
    let board = d.board("1");
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut taps = 0;
    'taps: while taps < 5 {
        taps += 1;
        board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => panic!("the event stream ended"),
                Ok(_) if line.starts_with("event: change") => break 'taps,
                Ok(_) => continue,
                Err(_) => continue 'taps,
            }
        }
    }
    assert!(
        line.starts_with("event: change"),
        "no change event after {taps} taps"
    );
}

#[test]
fn system_page_lists_boards_and_the_daemon() {
    let (_lab, d, mut b) = logged_in();
    let board = d.board("1");
    board.publish(r#"{"action":"alive","version":"hardware-rev0-it_IT,1.0.1","ip":"192.168.1.42","serial":"a0b1c2d3e4f5","heap":"183452"}"#);
    board.must(r#"{"action":"checkmachine"}"#);
    let p = b.get("/system");
    assert_eq!(p.status, 200);
    for text in [
        "hardware-rev0-it_IT,1.0.1",
        "192.168.1.42",
        "a0b1c2d3e4f5",
        "179 KiB",
        "online",
        "fabgate ",
        "Boards online",
    ] {
        assert!(p.body.contains(text), "missing {text}");
    }
}

#[test]
fn backup_download_is_a_consistent_database() {
    let (_lab, d, mut b) = logged_in();
    d.board("1")
        .must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    let p = b.get("/backup");
    assert_eq!(p.status, 200);
    assert!(p
        .header("content-disposition")
        .unwrap()
        .contains("fabgate-"));
    // ureq reads text; fetch raw bytes again for the check.
    let raw = ureq::get(format!("http://{}/backup", d.panel))
        .header(
            "Cookie",
            format!("fg_session={}", b.cookie.clone().unwrap()),
        )
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    assert!(raw.starts_with(b"SQLite format 3\0"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    std::fs::write(&path, &raw).unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let open: i64 = db
        .query_row("SELECT COUNT(*) FROM uses WHERE end_ts IS NULL", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(open, 1);
}

#[test]
fn settings_lab_name_time_zone_and_languages() {
    let (_lab, d, mut b) = logged_in();
    b.get("/settings");
    let p = b.post(
        "/settings",
        &[
            ("lab_name", "Fab <b>Lab</b> \"Bergamo\""),
            ("timezone", "Mars/Olympus"),
            ("language", ""),
        ],
    );
    assert_eq!(p.status, 400);
    assert!(p.body.contains("Unknown time zone"));
    let p = b.post(
        "/settings",
        &[
            ("lab_name", "Fab <b>Lab</b> \"Bergamo\""),
            ("timezone", "Europe/Rome"),
            ("language", ""),
        ],
    );
    assert_eq!(p.status, 303);
    let home = b.get("/");
    assert!(
        home.body
            .contains("Fab &lt;b&gt;Lab&lt;/b&gt; &quot;Bergamo&quot;"),
        "escaped lab name"
    );
    // The browser's language by default...
    let mut it = Browser::new(d.panel);
    let login = it.post_raw(
        "/login",
        &[("email", "x"), ("password", "y")],
        &[("Accept-Language", "it-IT,it;q=0.9")],
    );
    assert!(login.body.contains("Accedi"), "Italian login page");
    // ...and a staff member's own choice wins.
    b.get("/settings");
    assert_eq!(
        b.post("/settings/language", &[("language", "it")]).status,
        303
    );
    let home = b.get("/");
    assert!(
        home.body.contains("Cruscotto") && home.body.contains("Soci"),
        "Italian dashboard"
    );
    b.get("/settings");
    b.post("/settings/language", &[("language", "en")]);
    assert!(b.get("/").body.contains("Dashboard"));
}

/// HTTPS by default: a self-signed certificate made at first start, kept for the next,
/// cookies marked Secure. Checked with a real TLS client trusting that certificate.
#[test]
fn https_with_a_self_signed_certificate() {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start_web("https = true");
    assert!(d.log_contains("panel on https://"));
    let cert = lab.dir.path().join("tls/panel-cert.pem");
    let key = lab.dir.path().join("tls/panel-key.pem");
    assert!(cert.exists() && key.exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
        0,
        "key readable by others"
    );
    let first = d.admin_password.clone().unwrap();
    let body = format!("email=admin%40fabgate.local&password={first}");
    let answer = https_request(
        d.panel,
        &cert,
        &format!(
            "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie"))
        .unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Plain HTTP to the HTTPS port gets no page: the connection fails or is answered
    // with something that is not the panel.
    let plain = ureq::get(format!("http://{}/login", d.panel))
        .config()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .call();
    match plain {
        Err(e) => assert!(!matches!(e, ureq::Error::Timeout(_)), "{e}"),
        Ok(mut r) => {
            let body = r.body_mut().read_to_string().unwrap_or_default();
            assert!(
                r.status() != 200 && !body.contains("password"),
                "{} {body}",
                r.status()
            );
        }
    }
    // The certificate is reused at the next start (browsers keep their exception).
    let before = std::fs::read(&cert).unwrap();
    d.stop();
    let _d = lab.start_web("https = true");
    assert_eq!(std::fs::read(&cert).unwrap(), before);
}

fn https_request(addr: std::net::SocketAddr, cert: &std::path::Path, request: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    use std::io::Read;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn email_settings_never_show_the_stored_password() {
    let (lab, _d, mut b) = logged_in();
    b.get("/settings");
    let p = b.post(
        "/settings/email",
        &[
            ("smtp_host", "smtp.example.org"),
            ("smtp_port", "587"),
            ("smtp_tls", "starttls"),
            ("smtp_user", "lab"),
            ("smtp_password", "pa55-s3cret"),
            ("smtp_from", "lab@example.org"),
        ],
    );
    assert_eq!(p.status, 303);
    let page = b.get("/settings");
    assert!(
        page.body.contains("smtp.example.org")
            && page.body.contains("stored; leave empty to keep it")
    );
    assert!(
        !page.body.contains("pa55-s3cret"),
        "the stored password is shown"
    );
    // Saving again without a password keeps it (the same server); "forget" removes it.
    b.post(
        "/settings/email",
        &[
            ("smtp_host", "smtp.example.org"),
            ("smtp_port", "587"),
            ("smtp_tls", "starttls"),
            ("smtp_user", "lab"),
            ("smtp_password", ""),
            ("smtp_from", "lab@example.org"),
        ],
    );
    let stored = |lab: &Lab| -> String {
        use rusqlite::OptionalExtension;
        lab.db()
            .query_row(
                "SELECT value FROM settings WHERE key = 'smtp_password'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
            .unwrap_or_default()
    };
    // Kept sealed (issue 11), never in clear.
    let kept = stored(&lab);
    assert!(
        kept.starts_with("sealed1:") && !kept.contains("pa55"),
        "{kept}"
    );
    b.get("/settings");
    let bad = b.post(
        "/settings/email",
        &[
            ("smtp_host", "smtp example"),
            ("smtp_port", "99999"),
            ("smtp_tls", "x"),
            ("smtp_user", ""),
            ("smtp_password", ""),
            ("smtp_from", "nope"),
        ],
    );
    assert_eq!(bad.status, 400);
    b.get("/settings");
    b.post(
        "/settings/email",
        &[
            ("smtp_host", ""),
            ("smtp_port", ""),
            ("smtp_tls", "none"),
            ("smtp_user", ""),
            ("smtp_password", ""),
            ("smtp_from", ""),
            ("smtp_forget", "1"),
        ],
    );
    assert_eq!(stored(&lab), "");
}

/// The two headers a cross-site form post carries; each one alone must refuse.
const FOREIGN: [(&str, &str); 2] = [
    ("Origin", "http://evil.example"),
    ("Sec-Fetch-Site", "cross-site"),
];

/// The POSTs that need no login (login, password reset, the phone sign-in link) check the
/// origin themselves: each foreign header alone is refused and changes nothing, and the
/// same request without it goes through.
#[test]
fn posts_without_login_check_the_origin_too() {
    let (lab, d, mut admin) = logged_in();
    // A phone sign-in link for Carla.
    let p = admin.post("/presence/link", &[("member", "3"), ("action", "create")]);
    let url = p
        .body
        .split("<code>")
        .nth(1)
        .and_then(|r| r.split("</code>").next())
        .unwrap_or_else(|| panic!("no link in {}", p.body))
        .to_string();
    let phone = format!("/in/{}", url.rsplit('/').next().unwrap());
    let mut anon = Browser::new(d.panel);
    let login = [("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)];
    let reset = "/password/reset/".to_string() + &"ab".repeat(32);
    let reset_form = [("new", "long enough 12"), ("repeat", "long enough 12")];
    for header in FOREIGN {
        let p = anon.post_raw("/login", &login, &[header]);
        assert_eq!(p.status, 403, "/login {header:?}");
        assert!(p.header("set-cookie").is_none(), "/login {header:?}");
        let p = anon.post_raw("/password/forgot", &[("email", ADMIN_EMAIL)], &[header]);
        assert_eq!(p.status, 403, "/password/forgot {header:?}");
        let p = anon.post_raw(&reset, &reset_form, &[header]);
        assert_eq!(p.status, 403, "/password/reset {header:?}");
        let p = anon.post_raw(&phone, &[], &[header]);
        assert_eq!(p.status, 403, "/in {header:?}");
    }
    assert_eq!(lab.count("SELECT COUNT(*) FROM password_resets"), 0);
    assert_eq!(lab.count("SELECT COUNT(*) FROM presence"), 0);
    // Without the foreign header each is taken.
    let p = anon.post_raw("/login", &login, &[]);
    assert_eq!(p.status, 303);
    let p = anon.post_raw("/password/forgot", &[("email", ADMIN_EMAIL)], &[]);
    assert_eq!(p.status, 200);
    assert_eq!(lab.count("SELECT COUNT(*) FROM password_resets"), 1);
    let p = anon.post_raw(&reset, &reset_form, &[]);
    assert_ne!(p.status, 403, "an unknown reset token: {}", p.body);
    let p = anon.post_raw(&phone, &[], &[]);
    assert_eq!(p.status, 200);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM presence WHERE member_id = 3"),
        1
    );
}

/// A POST without a session is refused (never a redirect that a script could follow) and
/// changes nothing; so is one from a session that has not changed its one-time password.
#[test]
fn posts_need_a_session_and_a_changed_password() {
    let (lab, d) = start_f();
    let mut anon = Browser::new(d.panel);
    anon.get("/login");
    let settings = [
        ("lab_name", "Changed"),
        ("timezone", "Europe/Rome"),
        ("language", ""),
    ];
    let p = anon.post("/settings", &settings);
    assert_eq!(p.status, 403, "{}", p.body);
    let p = anon.post("/members", &[("name", "Intruder"), ("role", "1")]);
    assert_eq!(p.status, 403, "{}", p.body);
    // A made-up cookie is no session either.
    anon.cookie = Some("ab".repeat(32));
    assert_eq!(anon.post("/settings", &settings).status, 403);
    // Logged in with the one-time password: only /password and /logout take a POST.
    let mut b = Browser::new(d.panel);
    let first = d.admin_password.clone().unwrap();
    b.login(ADMIN_EMAIL, &first);
    b.get("/password");
    let p = b.post("/settings", &settings);
    assert_eq!(p.location.as_deref(), Some("/password"), "{}", p.body);
    let p = b.post("/members", &[("name", "Intruder"), ("role", "1")]);
    assert_eq!(p.location.as_deref(), Some("/password"), "{}", p.body);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM settings WHERE value = 'Changed'"),
        0
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM members WHERE name = 'Intruder'"),
        0
    );
}

/// A session lives while its member may use the panel and is not idle too long; each
/// login gets a token of its own.
#[test]
fn sessions_end_on_lost_access_and_idleness_and_logins_get_new_tokens() {
    let (lab, d, mut b) = logged_in();
    let first_token = b.cookie.clone().unwrap();
    // Logging in again (even from the same browser, with its old cookie) makes a new token.
    let p = b.post(
        "/login",
        &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
    );
    assert_eq!(p.status, 303);
    let second_token = b.cookie.clone().unwrap();
    assert_ne!(
        first_token, second_token,
        "the session token was kept at login"
    );
    let mut other = Browser::new(d.panel);
    other.post(
        "/login",
        &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
    );
    assert_ne!(other.cookie.clone().unwrap(), second_token);
    // Idle: 12 hours (the default) less a minute is alive, more than 12 hours is not.
    let idle = 12 * 3600;
    lab.sql(&format!(
        "UPDATE web_sessions SET last_seen = {}",
        now() - idle + 60
    ));
    assert_eq!(b.get("/").status, 200);
    lab.sql(&format!(
        "UPDATE web_sessions SET last_seen = {}",
        now() - idle - 60
    ));
    assert_eq!(b.get("/").location.as_deref(), Some("/login"));
    assert_eq!(other.get("/").location.as_deref(), Some("/login"));
    // The role loses its panel capability: an open session ends at its next request.
    let mut c = Browser::new(d.panel);
    c.post(
        "/login",
        &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
    );
    assert_eq!(c.get("/").status, 200);
    lab.sql(
        "UPDATE roles SET backend_admin = 0 WHERE role_id =
           (SELECT role_id FROM members WHERE email = 'admin@fabgate.local')",
    );
    assert_eq!(c.get("/").location.as_deref(), Some("/login"));
    assert_eq!(c.post("/logout", &[]).status, 403);
}

/// Ten failed logins from one address, each to a different account (under the
/// per-account limit), lock that address out, even for the right password.
#[test]
fn login_is_throttled_per_address_across_accounts() {
    let (_lab, d, _b) = logged_in();
    let mut b = Browser::new(d.panel);
    for i in 0..10 {
        let email = format!("guess{i}@example.org");
        let p = b.post("/login", &[("email", &email), ("password", "guess")]);
        assert_eq!(p.status, 401, "attempt {i}");
    }
    let p = b.post(
        "/login",
        &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
    );
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(p.header("set-cookie").is_none());
}
