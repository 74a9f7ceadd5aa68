//! No secret leaves the places it must live in: with SMTP, Google Calendar, webhooks, board
//! credentials, a changed admin password and a password reset all in use (and some of them
//! failing, so errors are shown), none of the secrets appears in the daemon's log, on any
//! panel page reachable from the dashboard, or in any export.

use crate::common::browser::Browser;
use crate::common::google::{self, FakeGoogle, CALENDAR};
use crate::common::smtp::SmtpServer;
use crate::common::webhook::Receiver;
use crate::common::*;
use crate::panel_workshop::download;
use std::collections::{BTreeSet, VecDeque};
use std::io::Read;
use std::time::{Duration, Instant};

const SMTP_SETTING_SECRET: &str = "smtp-setting-s3cret";
const SMTP_CONFIG_SECRET: &str = "smtp-config-s3cret";
const HOOK_SECRET: &str = "hook-path-s3cret";
const ADMIN_PASSWORD: &str = "admin-new-s3cret-42";
const WRONG_BOARD_PASSWORD: &str = "wrong-board-s3cret";

fn wait_until(lab: &Lab, sql: &str, done: impl Fn(i64) -> bool) {
    lab.wait_count_until(sql, done);
}

/// Every text a logged-in admin can reach by following links from the dashboard, with
/// exports unpacked (XLSX is a zip of XML files).
fn crawl(d: &TestDaemon, b: &mut Browser) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/".to_string()]);
    let mut texts = Vec::new();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || seen.len() > 400 {
            continue;
        }
        if path.starts_with("/exports/") {
            let (_, _, bytes) = download(d, b, &path);
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if bytes.starts_with(b"PK") {
                let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
                for i in 0..zip.len() {
                    zip.by_index(i).unwrap().read_to_string(&mut text).unwrap();
                }
            }
            texts.push((path, text));
            continue;
        }
        let page = b.get(&path);
        for link in page.body.split("href=\"").skip(1) {
            let link = link.split('"').next().unwrap_or("").replace("&amp;", "&");
            if link.starts_with('/') && !link.starts_with("//") && link != "/logout" {
                queue.push_back(link);
            }
        }
        texts.push((path, page.body));
    }
    texts
}

#[test]
fn no_secret_reaches_the_log_the_panel_or_an_export() {
    let smtp = SmtpServer::start();
    let g = FakeGoogle::start();
    let failing_hook = Receiver::start();
    failing_hook.answer(500);
    let down_hook = Receiver::reserve();
    let mut lab = Lab::new();
    fixture_f(&lab);
    let key = g.key_file(lab.dir.path());
    lab.extra_config = format!(
        "{sync}[[sync.webhooks]]\nurl = {failing:?}\nevents = [\"machine_started\", \"machine_stopped\"]\n\
         [[sync.webhooks]]\nurl = {down:?}\nevents = [\"machine_started\"]\n",
        sync = SyncSection::fast()
            .set("smtp_timeout_s", "3")
            .set_str("smtp_password", SMTP_CONFIG_SECRET)
            .set_str("panel_url", "https://panel.test:8443")
            .set_str("google_key_file", &key.display().to_string())
            .set_str("lab_calendar_id", CALENDAR)
            .set_str("google_api_base", &g.base())
            .set("google_timeout_s", "3")
            .text(),
        failing = failing_hook.url(&format!("/services/T0/B0/{HOOK_SECRET}")),
        down = down_hook.url(&format!("/other/{HOOK_SECRET}")),
    );
    lab.sql(&format!(
        "INSERT INTO settings (key, value) VALUES ('smtp_host', '127.0.0.1'), ('smtp_port', '{}'),
           ('smtp_tls', 'none'), ('smtp_from', 'lab@example.org'),
           ('smtp_password', '{SMTP_SETTING_SECRET}');
         UPDATE members SET email = 'carla@example.org' WHERE member_id = 3;
         UPDATE roles SET backend_admin = 1 WHERE role_id = 3;",
        smtp.port()
    ));
    let out = lab.ok(&["board", "add", "--machine", "LASER 1"]);
    let board_password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .and_then(|l| l.split(' ').next())
        .expect("a board password")
        .to_string();
    let d = lab.start();

    // A board with its own credentials, and one trying a wrong password.
    let laser = Board::connect(
        d.mqtt,
        "1",
        Some(("board-1", &board_password)),
        "BOARD1-own",
    )
    .expect("the board's own credentials work");
    laser.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    laser.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":90}"#);
    assert!(Board::connect(
        d.mqtt,
        "2",
        Some(("board-1", WRONG_BOARD_PASSWORD)),
        "BOARD2-bad"
    )
    .is_err());

    // The admin's first login and new password; a member's password reset by email.
    let first = d.admin_password.clone().expect("one-time password");
    let mut admin = admin_session_with(&d, ADMIN_PASSWORD);
    crate::sync::ask_reset(d.panel, "carla@example.org");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mail = loop {
        let to_carla = smtp.mails().into_iter().find(|m| {
            m.to == ["carla@example.org"] && crate::sync::decoded(m).contains("/password/reset/")
        });
        if let Some(m) = to_carla {
            break m;
        }
        assert!(Instant::now() < deadline, "no reset email");
        std::thread::sleep(Duration::from_millis(50));
    };
    let token: String = crate::sync::decoded(&mail)
        .split("/password/reset/")
        .nth(1)
        .unwrap_or_else(|| panic!("no reset link in {mail:?}"))
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert!(token.len() >= 32, "{token}");

    // Calendar delivered, webhooks tried and failing (their errors are on /outbox).
    assert!(g.wait(Duration::from_secs(15), |s| s.updates >= 1));
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'webhook' AND attempts >= 1 AND last_error IS NOT NULL",
        |n| n == 3,
    );

    let mut secrets: Vec<(String, String)> = vec![
        ("SMTP password (setting)".into(), SMTP_SETTING_SECRET.into()),
        ("SMTP password (config)".into(), SMTP_CONFIG_SECRET.into()),
        ("webhook URL path".into(), HOOK_SECRET.into()),
        ("board password".into(), board_password.clone()),
        ("wrong board password".into(), WRONG_BOARD_PASSWORD.into()),
        ("admin password".into(), ADMIN_PASSWORD.into()),
        ("reset token".into(), token.clone()),
        ("session cookie".into(), admin.cookie.clone().unwrap()),
    ];
    for line in google::key_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        secrets.push(("Google key".into(), line.to_string()));
    }
    for t in g.with(|s| s.tokens.clone()) {
        secrets.push(("Google access token".into(), t));
    }

    let log = d.log.lock().unwrap().join("\n");
    let pages = crawl(&d, &mut admin);
    let paths: Vec<&str> = pages.iter().map(|(p, _)| p.as_str()).collect();
    eprintln!("secrets: {} pages and exports checked", paths.len());
    for must in ["/outbox", "/settings", "/exports", "/members"] {
        assert!(
            paths.iter().any(|p| p.starts_with(must)),
            "{must} not reached: {paths:?}"
        );
    }
    assert!(
        paths.iter().any(|p| p.starts_with("/exports/")),
        "{paths:?}"
    );
    let outbox = &pages.iter().find(|(p, _)| p == "/outbox").unwrap().1;
    assert!(outbox.contains("HTTP 500"), "webhook errors are shown");
    for (what, secret) in &secrets {
        assert!(!log.contains(secret.as_str()), "{what} in the log");
        for (path, text) in &pages {
            assert!(!text.contains(secret.as_str()), "{what} on {path}");
        }
    }
    // The first admin's one-time password is in a 0600 file the log names (issue 11),
    // never in the log itself.
    assert!(!log.contains(&first));
    assert!(log.contains("first-admin-password"));
    for (path, text) in &pages {
        assert!(!text.contains(&first), "the one-time password on {path}");
    }
}
