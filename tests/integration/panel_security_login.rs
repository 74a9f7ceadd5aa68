//! Issue 11, point 4, against the real daemon over HTTPS from several loopback
//! addresses: wrong passwords slow down the address that sends them, on that account,
//! with waits that grow, and never lock the account's owner out; the shell gets the lab
//! back (`fabgate user password`, `fabgate user add --admin`); the first administrator's
//! placeholder address can be replaced at the first login.

use crate::common::browser::Browser;
use crate::common::*;
use crate::panel_security::{secure_lab, ADMIN_PASSWORD};
use crate::panel_security_front::{connect_from, tls};
use std::io::{Read, Write};
use std::time::Duration;

/// The answer to `POST /login` from the loopback address `from`: status, Retry-After,
/// Location.
fn login_from(
    lab: &Lab,
    d: &TestDaemon,
    from: &str,
    email: &str,
    password: &str,
) -> (u16, Option<u64>, Option<String>) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .finish();
    let mut s = tls(lab, connect_from(from, d.panel).unwrap());
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let header = |name: &str| {
        text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    (
        status,
        header("retry-after").and_then(|v| v.parse().ok()),
        header("location"),
    )
}

#[test]
fn guessing_slows_the_guessing_address_and_never_locks_the_owner_out() {
    let (lab, d, _admin) = secure_lab();
    let guesser = "127.0.0.2";
    for i in 0..3 {
        let (status, ..) = login_from(&lab, &d, guesser, ADMIN_EMAIL, "guess");
        assert_eq!(status, 401, "guess {i}");
    }
    // The fourth try from there waits, with a Retry-After that grows with each failure.
    let (status, wait, _) = login_from(&lab, &d, guesser, ADMIN_EMAIL, "guess");
    assert_eq!(status, 429);
    let first_wait = wait.expect("Retry-After");
    assert!((1..=2).contains(&first_wait), "{first_wait}");
    // The owner, from their own address, logs in at once with the right password.
    let (status, _, location) = login_from(&lab, &d, "127.0.0.3", ADMIN_EMAIL, ADMIN_PASSWORD);
    assert_eq!(status, 303, "the owner is locked out");
    assert_eq!(location.as_deref(), Some("/"));
    // The guessing address is not barred from other accounts.
    let (status, ..) = login_from(&lab, &d, guesser, "someone@example.org", "x");
    assert_eq!(status, 401);
    // Waiting out the wait (the daemon's own figure) allows one more try; failing it
    // doubles the wait.
    std::thread::sleep(Duration::from_secs(first_wait));
    let (status, ..) = login_from(&lab, &d, guesser, ADMIN_EMAIL, "guess");
    assert_eq!(status, 401);
    let (status, wait, _) = login_from(&lab, &d, guesser, ADMIN_EMAIL, ADMIN_PASSWORD);
    assert_eq!(status, 429, "the right password during the wait");
    let second_wait = wait.unwrap();
    assert!(
        second_wait > first_wait && second_wait <= 4,
        "{first_wait} then {second_wait}"
    );
    // Waited out, the right password works from the guessing address too.
    std::thread::sleep(Duration::from_secs(second_wait));
    let (status, ..) = login_from(&lab, &d, guesser, ADMIN_EMAIL, ADMIN_PASSWORD);
    assert_eq!(status, 303);
}

#[test]
fn the_shell_sets_one_time_passwords_and_makes_administrators() {
    let (lab, d, mut admin) = secure_lab();
    // A member without panel access gets no password (and the hint says why).
    let err = lab.fail(&["user", "password", "aabbccd3"]);
    assert!(err.contains("no panel access"), "{err}");

    // Every administrator locked out (password forgotten): the shell sets a new one.
    let out = lab.ok(&["user", "password", ADMIN_EMAIL]);
    let one_time = out
        .lines()
        .find_map(|l| l.strip_prefix("one-time password: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(!d.log_contains(&one_time), "the password reached the log");
    // The old password and the old session are gone.
    assert_eq!(admin.get("/").location.as_deref(), Some("/login"));
    let (status, ..) = login_from(&lab, &d, "127.0.0.4", ADMIN_EMAIL, ADMIN_PASSWORD);
    assert_eq!(status, 401);
    let mut b = Browser::tls(d.panel);
    b.login(ADMIN_EMAIL, &one_time);
    let p = b.get("/password");
    assert!(p.body.contains("Choose a new password"), "{}", p.body);
    // The first login may replace the placeholder address.
    assert!(p.body.contains("name=\"email\""), "{}", p.body);
    let p = b.post(
        "/password",
        &[
            ("email", "boss@lab.example"),
            ("current", &one_time),
            ("new", "back in again 42"),
            ("repeat", "back in again 42"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM members WHERE email = 'boss@lab.example'"),
        1
    );
    let mut b = Browser::tls(d.panel);
    b.login("boss@lab.example", "back in again 42");
    assert_eq!(b.get("/roles").status, 200);

    // A second administrator from the shell.
    let no_email = lab.run(&["user", "add", "Zoe", "--admin"]);
    assert!(!no_email.status.success());
    assert!(String::from_utf8_lossy(&no_email.stderr).contains("--email"));
    let out = lab.ok(&[
        "user",
        "add",
        "Zoe",
        "--email",
        "zoe@lab.example",
        "--admin",
    ]);
    let zoe_first = out
        .lines()
        .find_map(|l| l.strip_prefix("one-time password: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let mut z = Browser::tls(d.panel);
    z.login("zoe@lab.example", &zoe_first);
    let p = z.get("/password");
    assert!(p.body.contains("Choose a new password"), "{}", p.body);
    assert!(!p.body.contains("name=\"email\""), "Zoe has her address");
    let p = z.post(
        "/password",
        &[
            ("current", &zoe_first),
            ("new", "zoe's own pw 1"),
            ("repeat", "zoe's own pw 1"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    for path in ["/roles", "/settings", "/outbox"] {
        assert_eq!(z.get(path).status, 200, "{path}");
    }
}
