//! Issue 11, point 2, against the real daemon over HTTPS: the SMTP password and the wall
//! secret are sealed with a key file the database copies do not hold (old clear values
//! sealed at start), the downloaded backup holds no secret, no board password material
//! and no usable token, a new SMTP server forgets the stored password, password-reset
//! links exist only in the sent email (the outbox holds a nonce, the database a hash), and
//! board passwords are argon2id (older SHA-256 ones wrapped, and still working).

use crate::common::browser::Browser;
use crate::common::smtp::SmtpServer;
use crate::common::*;
use crate::panel_security::ADMIN_PASSWORD;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const SMTP_SECRET: &str = "smtp-pw-s3cret-typed";
const OLD_CLEAR_SECRET: &str = "old-clear-smtp-s3cret";
const LEGACY_BOARD_PASSWORD: &str = "legacy-board-pw-7";

/// A GET over TLS with the browser's session, as bytes (a backup is binary).
fn get_bytes(d: &TestDaemon, cookie: &str, path: &str) -> (u16, Vec<u8>) {
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(true)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
        .into();
    let mut resp = agent
        .get(format!("https://{}{path}", d.panel))
        .header("Cookie", format!("fg_session={cookie}"))
        .call()
        .unwrap();
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    (resp.status().as_u16(), body)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every run of 64 hex digits in `text` (token-shaped strings).
fn hex64(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            if run.len() >= 64 {
                for i in 0..=run.len() - 64 {
                    out.push(run[i..i + 64].to_string());
                }
            }
            run.clear();
        }
    }
    out
}

/// The first administrator's first login over HTTPS, password changed.
fn first_login(d: &TestDaemon) -> Browser {
    let first = d.admin_password.clone().expect("one-time password");
    let mut b = Browser::tls(d.panel);
    b.login(ADMIN_EMAIL, &first);
    b.get("/password");
    let p = b.post(
        "/password",
        &[
            ("current", &first),
            ("new", ADMIN_PASSWORD),
            ("repeat", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    b
}

fn wait_for_mail(smtp: &SmtpServer, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = smtp
            .mails()
            .into_iter()
            .map(|m| crate::sync::decoded(&m))
            .find(|t| t.contains(needle))
        {
            return m;
        }
        assert!(Instant::now() < deadline, "no mail with {needle}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn secrets_are_sealed_out_of_backups_and_tokens_exist_only_in_the_email() {
    let smtp = SmtpServer::start();
    let lab = Lab::new();
    fixture_f(&lab);
    // Written by an older version: in clear, and a board credential as salted SHA-256.
    lab.sql(&format!(
        "INSERT INTO settings (key, value) VALUES ('smtp_password', '{OLD_CLEAR_SECRET}')"
    ));
    add_credential(&lab.db(), "board-2", LEGACY_BOARD_PASSWORD, Some(2));
    let out = lab.ok(&["board", "add", "--machine", "LASER 1"]);
    let board_password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .and_then(|l| l.split(' ').next())
        .expect("a board password")
        .to_string();
    let d = lab.start_web("https = true");
    let mut admin = first_login(&d);

    // The clear value of the older version is sealed at start, and gone from the file.
    let key_file = lab.dir.path().join("secrets.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode");
    let stored = lab.db().query_row(
        "SELECT value FROM settings WHERE key = 'smtp_password'",
        [],
        |r| r.get::<_, String>(0),
    );
    let stored = stored.unwrap();
    assert!(stored.starts_with("sealed1:"), "{stored}");
    assert!(!stored.contains(OLD_CLEAR_SECRET));
    let db_bytes = std::fs::read(lab.db_path()).unwrap();
    assert!(
        !contains(&db_bytes, OLD_CLEAR_SECRET),
        "the old clear password is still in the database file"
    );

    // Board passwords: the new one is argon2id and works; the legacy one is wrapped in
    // the background and keeps working.
    lab.wait_count(
        "SELECT COUNT(*) FROM board_credentials WHERE CAST(hash AS TEXT) NOT LIKE '$argon2id$%'",
        0,
    );
    let laser = Board::connect(d.mqtt, "1", Some(("board-1", &board_password)), "B1")
        .expect("the new board password works");
    laser.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
    let old = Board::connect(d.mqtt, "2", Some(("board-2", LEGACY_BOARD_PASSWORD)), "B2")
        .expect("a password stored by an older version still works");
    old.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
    assert!(
        Board::connect(d.mqtt, "2", Some(("board-2", "wrong")), "B3").is_err(),
        "a wrong board password passes"
    );

    // A reset asked for while no mail server is set: the outbox and the reset table hold
    // nothing that opens a reset page.
    let admin_page = admin.get("/settings");
    assert!(
        admin_page.body.contains("stored; leave empty"),
        "a password is stored"
    );
    let mut anon = Browser::tls(d.panel);
    anon.get("/password/forgot");
    let p = anon.post("/password/forgot", &[("email", ADMIN_EMAIL)]);
    assert!(p.body.contains("a link is on its way"), "{}", p.body);
    let resets = "FROM outbox WHERE kind = 'email' AND payload LIKE '%Reset your panel password%'";
    lab.wait_count(&format!("SELECT COUNT(*) {resets}"), 1);
    let payload: String = lab
        .db()
        .query_row(&format!("SELECT payload {resets}"), [], |r| r.get(0))
        .unwrap();
    assert!(
        payload.contains("/password/reset/{reset-token}"),
        "{payload}"
    );
    let mut candidates = hex64(&payload);
    let hashes: Vec<Vec<u8>> = lab
        .db()
        .prepare("SELECT token_hash FROM password_resets")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    candidates.extend(hashes.iter().map(hex::encode));
    assert!(!candidates.is_empty());
    for c in &candidates {
        assert_eq!(
            anon.get(&format!("/password/reset/{c}")).status,
            404,
            "{c} from the outbox or the reset table opens a reset page"
        );
    }

    // The email settings typed in the panel: sealed, never in the file in clear.
    let port = smtp.port().to_string();
    let email_form = |host: &str, password: &str| {
        vec![
            ("smtp_host", host.to_string()),
            ("smtp_port", port.clone()),
            ("smtp_tls", "none".to_string()),
            ("smtp_user", String::new()),
            ("smtp_password", password.to_string()),
            ("smtp_from", "lab@example.org".to_string()),
        ]
    };
    let post_email = |b: &mut Browser, form: Vec<(&str, String)>| {
        b.get("/settings");
        let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let p = b.post("/settings/email", &fields);
        assert_eq!(p.status, 303, "{}", p.body);
    };
    post_email(&mut admin, email_form("127.0.0.1", SMTP_SECRET));
    let text = wait_for_mail(&smtp, "/password/reset/");
    let token: String = text
        .split("/password/reset/")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(token.len(), 64, "{text}");
    // The link in the email works; the database holds its hash, the outbox not it.
    let form = anon.get(&format!("/password/reset/{token}"));
    assert_eq!(form.status, 200, "the emailed link does not work");
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    lab.wait_count(&format!("SELECT COUNT(*) {resets} AND state = 'sent'"), 1);
    assert!(hashes_now(&lab).contains(&hash));
    let outbox: String = lab
        .db()
        .query_row("SELECT group_concat(payload) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(!outbox.contains(&token), "the token is in the outbox");

    // A wall screen secret (sealed too).
    admin.get("/presence");
    assert_eq!(admin.post("/presence/wall", &[]).status, 303);
    let page = admin.get("/presence").body;
    let wall: String = page
        .split("/wall/")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(anon.get(&format!("/wall/{wall}")).status, 200);
    let stored_wall: String = lab
        .db()
        .query_row(
            "SELECT value FROM settings WHERE key = 'wall_secret'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored_wall.starts_with("sealed1:") && !stored_wall.contains(&wall));

    // The downloaded backup: the lab's data, none of its secrets.
    let cookie = admin.cookie.clone().unwrap();
    let (status, backup) = get_bytes(&d, &cookie, "/backup");
    assert_eq!(status, 200);
    assert!(backup.starts_with(b"SQLite format 3\0"));
    for (what, secret) in [
        ("SMTP password", SMTP_SECRET),
        ("old SMTP password", OLD_CLEAR_SECRET),
        ("board password", board_password.as_str()),
        ("legacy board password", LEGACY_BOARD_PASSWORD),
        ("reset token", token.as_str()),
        ("wall secret", wall.as_str()),
        ("session cookie", cookie.as_str()),
        ("admin password", ADMIN_PASSWORD),
    ] {
        assert!(
            !contains(&backup, secret),
            "{what} in the downloaded backup"
        );
    }
    let copy = lab.dir.path().join("downloaded.db");
    std::fs::write(&copy, &backup).unwrap();
    let c = rusqlite::Connection::open(&copy).unwrap();
    let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        count("SELECT COUNT(*) FROM settings WHERE key IN ('smtp_password', 'wall_secret')"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM board_credentials WHERE length(hash) > 0 OR length(salt) > 0"),
        0
    );
    assert!(
        count("SELECT COUNT(*) FROM board_credentials") >= 2,
        "usernames kept"
    );
    assert_eq!(count("SELECT COUNT(*) FROM web_sessions"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM password_resets"), 0);
    assert!(
        count("SELECT COUNT(*) FROM members") >= 5,
        "the lab's data is there"
    );
    // Daily-style copies (`fabgate backup`) keep the sealed values, useless without the key.
    let full = lab.dir.path().join("full.db");
    lab.ok(&["backup", full.to_str().unwrap()]);
    let full_bytes = std::fs::read(&full).unwrap();
    for secret in [SMTP_SECRET, OLD_CLEAR_SECRET, wall.as_str(), token.as_str()] {
        assert!(
            !contains(&full_bytes, secret),
            "a secret in clear in a full backup"
        );
    }

    // Saving the same server keeps the password; naming another one forgets it.
    let has_password =
        || lab.count("SELECT COUNT(*) FROM settings WHERE key = 'smtp_password' AND value <> ''");
    post_email(&mut admin, email_form("127.0.0.1", ""));
    assert_eq!(has_password(), 1, "the same server lost its password");
    post_email(&mut admin, email_form("mail.attacker.test", ""));
    assert_eq!(has_password(), 0, "a new server kept the old password");
    assert!(!admin.get("/settings").body.contains("stored; leave empty"));
}

fn hashes_now(lab: &Lab) -> Vec<Vec<u8>> {
    lab.db()
        .prepare("SELECT token_hash FROM password_resets")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
