//! Issue 11, point 6, against the real daemon over HTTPS: a login's answer time does not
//! tell an unknown address from an argon2 or an imported Werkzeug account; files are
//! created 0640 (0600 for secrets) whatever the caller's umask; HSTS; sessions end after
//! `web.session_max_days` whatever their activity; CSV exports quote `;` and tabs and
//! neutralise formulas.

use crate::common::*;
use crate::panel_security::{panel_member, secure_lab, ADMIN_PASSWORD};
use crate::panel_security_front::{connect_from, tls};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// Werkzeug's pbkdf2 hash of "admin" with 600,000 rounds (FabOMatic's format).
const WERKZEUG: &str = "pbkdf2:sha256:600000$PIeuM3M7ZG3k6Akz$b5423dcef824986468be4d88d31d98b70fa441cdb8ca9838c099f8390b671f41";

/// How long a wrong-password `POST /login` from `from` takes, TLS set up first (its
/// handshake is not part of the time).
fn login_time(lab: &Lab, d: &TestDaemon, from: &str, email: &str) -> Duration {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", "not the password")
        .finish();
    let mut s = tls(lab, connect_from(from, d.panel).unwrap());
    // Complete the handshake with a first request on the same connection.
    write!(s, "GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("</html>") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the login page did not arrive");
        got.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let n = s.read(&mut buf).unwrap();
    let took = started.elapsed();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn login_time_does_not_tell_unknown_argon2_and_werkzeug_accounts_apart() {
    let lab = Lab::new();
    fixture_f(&lab);
    panel_member(&lab, 20, 2, "argon@lab.example", "argon2 password 1");
    panel_member(&lab, 21, 2, "werk@lab.example", "placeholder");
    lab.sql(&format!(
        "UPDATE members SET password_hash = '{WERKZEUG}' WHERE member_id = 21"
    ));
    let d = lab.start_web("https = true");
    let kinds = [
        "nobody@lab.example",
        "argon@lab.example",
        "werk@lab.example",
    ];
    // The first login measures the floor: not part of the comparison.
    login_time(&lab, &d, "127.0.1.1", kinds[0]);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for round in 0..5 {
        for (k, email) in kinds.iter().enumerate() {
            // A new address per try: the throttle's waits are not what is measured.
            let from = format!("127.0.{}.{}", 2 + round, 10 + k);
            times[k].push(login_time(&lab, &d, &from, email));
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    eprintln!("login answer medians (unknown, argon2, werkzeug): {medians:?}");
    let (lo, hi) = (
        *medians.iter().min().unwrap(),
        *medians.iter().max().unwrap(),
    );
    // Before: Werkzeug 0.30-0.45 s against 0.12 s. Now all wait for the slowest check.
    assert!(
        hi - lo < hi / 4,
        "answer times tell the accounts apart: {medians:?}"
    );
    // The imported account still works (and is re-hashed).
    let mut b = crate::common::browser::Browser::tls(d.panel);
    let p = b.post(
        "/login",
        &[("email", "werk@lab.example"), ("password", "admin")],
    );
    assert_eq!(p.status, 303, "{}", p.body);
}

#[test]
fn files_are_private_https_is_strict_sessions_end_and_csv_is_quoted() {
    let (lab, d, mut admin) = secure_lab();
    // Files made by the daemon (the test runs with the usual umask 022).
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = lab.dir.path();
    // The first daily backup is taken at start.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_dir(dir.join("backups")).is_ok_and(|mut d| d.next().is_some()) {
        assert!(Instant::now() < deadline, "no daily backup");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut files = vec![
        dir.join("fabgate.db"),
        dir.join("tls/panel-key.pem"),
        dir.join("tls/panel-cert.pem"),
    ];
    for e in std::fs::read_dir(dir.join("backups")).unwrap() {
        files.push(e.unwrap().path());
    }
    for f in &files {
        assert_eq!(mode(f) & 0o027, 0, "{} is {:o}", f.display(), mode(f));
    }
    assert_eq!(mode(&dir.join("first-admin-password")), 0o600);
    admin.get("/presence");
    admin.post("/presence/wall", &[]);
    assert_eq!(mode(&dir.join("secrets.key")), 0o600);
    // A CLI backup under the same mask.
    let copy = dir.join("copy.db");
    lab.ok(&["backup", copy.to_str().unwrap()]);
    assert_eq!(mode(&copy) & 0o027, 0, "{:o}", mode(&copy));

    // HSTS on every HTTPS answer, the login page included.
    let mut anon = crate::common::browser::Browser::tls(d.panel);
    for page in [anon.get("/login"), admin.get("/")] {
        assert_eq!(
            page.header("strict-transport-security"),
            Some("max-age=31536000")
        );
    }

    // Sessions end `session_max_days` (7) after the login, however active.
    let day = 86_400;
    lab.sql(&format!(
        "UPDATE web_sessions SET created_at = {}, last_seen = {}",
        now() - 6 * day,
        now()
    ));
    assert_eq!(admin.get("/").status, 200);
    lab.sql(&format!(
        "UPDATE web_sessions SET created_at = {}, last_seen = {}",
        now() - 7 * day - 60,
        now()
    ));
    assert_eq!(admin.get("/").location.as_deref(), Some("/login"));

    // CSV: `;` and tabs quoted, formulas neutralised.
    let mut b = crate::common::browser::Browser::tls(d.panel);
    b.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    lab.sql(
        "UPDATE members SET surname = 'Rossi; =HYPERLINK(\"http://x\")' WHERE member_id = 3;
         UPDATE members SET surname = 'Tab\t@SUM(A1)' WHERE member_id = 4;
         UPDATE members SET surname = ' =1+1' WHERE member_id = 2;",
    );
    let csv = b.get("/exports/members.csv").body;
    assert!(
        csv.contains("\"Rossi; =HYPERLINK(\"\"http://x\"\")\""),
        "{csv}"
    );
    assert!(csv.contains("\"Tab\t@SUM(A1)\""), "{csv}");
    assert!(csv.contains("' =1+1"), "{csv}");
}
