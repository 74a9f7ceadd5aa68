//! The panel's workshop area over real HTTP against the real daemon (fixture F):
//! machines, remote start/stop reaching a board, machine types, maintenance plans and
//! interventions as a board sees them, usage history with machine hours kept
//! consistent, and exports.

use crate::common::browser::Browser;
use crate::common::*;
use crate::panel::logged_in;
use std::io::Read;
use std::time::Duration;

/// The lab's time zone for these tests: Rome (UTC+1 in winter), so a form time that
/// ignored it would be an hour off.
fn rome(lab: &Lab) {
    lab.sql("INSERT INTO settings (key, value) VALUES ('timezone', 'Europe/Rome')");
}

fn hours_of(lab: &Lab, machine: i64) -> f64 {
    lab.db()
        .query_row(
            "SELECT machine_hours FROM machines WHERE machine_id = ?1",
            [machine],
            |r| r.get(0),
        )
        .unwrap()
}

#[track_caller]
fn assert_hours(lab: &Lab, machine: i64, want: f64) {
    let got = hours_of(lab, machine);
    assert!(
        (got - want).abs() < 1e-9,
        "machine {machine}: {got} h, want {want} h"
    );
}

/// The `<tr>` of a table row containing `needle`.
fn row_with<'a>(body: &'a str, needle: &str) -> &'a str {
    let at = body
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in page"));
    let start = body[..at].rfind("<tr").unwrap();
    let end = at + body[at..].find("</tr>").unwrap();
    &body[start..end]
}

#[test]
fn machines_are_added_edited_blocked_and_deleted() {
    let (lab, d, mut b) = logged_in();
    let list = b.get("/machines");
    assert_eq!(list.status, 200);
    for name in ["LASER 1", "DRILL 1", "PRINTER 1", "CNC 1"] {
        assert!(list.body.contains(name), "{name}");
    }
    assert!(row_with(&list.body, "CNC 1").contains("maintenance due"));
    assert!(row_with(&list.body, "PRINTER 1").contains("blocked"));

    b.get("/machines/new");
    let p = b.post(
        "/machines",
        &[
            ("id", "5"),
            ("name", "SAW 1"),
            ("type", "2"),
            ("hours", "3,5"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/machines/5?ok=added"));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM machines WHERE machine_id = 5 AND machine_name = 'SAW 1' AND type_id = 2"),
        1
    );
    assert_hours(&lab, 5, 3.5);
    assert!(b.get("/machines/5?ok=added").body.contains("Added."));

    // Refusals re-render the form with what was typed and say why.
    let p = b.post(
        "/machines",
        &[
            ("id", "5"),
            ("name", "SAW 2"),
            ("type", "2"),
            ("hours", "0"),
        ],
    );
    assert_eq!(p.status, 400);
    assert!(p.body.contains("Another machine already has this ID."));
    assert!(p.body.contains("value=\"SAW 2\""));
    let p = b.post(
        "/machines",
        &[
            ("id", "6"),
            ("name", "saw 1"),
            ("type", "2"),
            ("hours", "0"),
        ],
    );
    assert_eq!(p.status, 400);
    assert!(p.body.contains("already has this name"));
    for (field, bad) in [("id", "0"), ("hours", "-1"), ("type", "x"), ("name", "")] {
        let mut form = vec![
            ("id", "7"),
            ("name", "LATHE"),
            ("type", "1"),
            ("hours", "0"),
        ];
        form.retain(|(k, _)| *k != field);
        form.push((field, bad));
        assert_eq!(b.post("/machines", &form).status, 400, "{field}={bad}");
    }
    // Hostile text is stored verbatim and always shown escaped.
    let p = b.post(
        "/machines",
        &[
            ("id", "8"),
            ("name", "<img src=x onerror=alert(1)>"),
            ("type", "1"),
            ("hours", ""),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let page = b.get("/machines/8");
    assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!page.body.contains("<img src=x"));

    // Edit: a new board id moves the machine and what points at it.
    lab.sql("INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES (3, 5, 1, 1, 61)");
    let form = b.get("/machines/5/edit");
    assert!(form.body.contains("value=\"SAW 1\""));
    let p = b.post(
        "/machines/5/edit",
        &[
            ("id", "9"),
            ("name", "SAW 9"),
            ("type", "1"),
            ("hours", "4"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 9"),
        1
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM machines WHERE machine_id = 5"),
        0
    );
    assert_hours(&lab, 9, 4.0);

    // Block: boards are told at once; unblock undoes it.
    let board = d.board("1");
    assert_eq!(b.post("/machines/1/block", &[]).status, 303);
    assert_eq!(board.must(r#"{"action":"checkmachine"}"#)["allowed"], false);
    assert_eq!(b.post("/machines/1/unblock", &[]).status, 303);
    assert_eq!(board.must(r#"{"action":"checkmachine"}"#)["allowed"], true);

    // A forged form is refused and changes nothing.
    let p = b.post("/machines/1/block", &[("csrf", "forged")]);
    assert_eq!(p.status, 403);
    assert_eq!(
        lab.count("SELECT blocked FROM machines WHERE machine_id = 1"),
        0
    );

    // Delete: the confirmation says what goes with the machine.
    lab.sql(
        "INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES ('deadbeef', 4, 1), ('deadbeef', 4, 2);
         INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp) VALUES (1, 4, 2, 5);",
    );
    lab.sql("INSERT INTO boards (machine_id, ip_address, fw_version, last_seen) VALUES (4, '10.0.0.4', '1.0.1', 1)");
    let confirm = b.get("/machines/4/delete");
    assert_eq!(confirm.status, 200);
    for line in [
        "1 use",
        "1 maintenance plan",
        "1 intervention",
        "2 authorizations",
        "2 unknown-card records",
        "the board's information (firmware, IP, last seen)",
    ] {
        assert!(
            confirm.body.contains(&format!("<li>{line}</li>")),
            "{line}: {}",
            confirm.body
        );
    }
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM machines WHERE machine_id = 4"),
        1
    );
    let p = b.post("/machines/4/delete", &[]);
    assert_eq!(p.location.as_deref(), Some("/machines?ok=deleted"));
    for table in [
        "machines",
        "uses",
        "maintenances",
        "interventions",
        "authorizations",
        "unknown_cards",
    ] {
        assert_eq!(
            lab.count(&format!(
                "SELECT COUNT(*) FROM {table} WHERE machine_id = 4"
            )),
            0,
            "{table}"
        );
    }

    // Unknown ids are 404, for pages and forms alike.
    assert_eq!(b.get("/machines/4").status, 404);
    assert_eq!(b.get("/machines/abc").status, 404);
    assert_eq!(b.post("/machines/4/block", &[]).status, 404);
    assert_eq!(b.post("/machines/4/delete", &[]).status, 404);
    assert_eq!(b.get("/machines/4/edit").status, 404);
}

#[test]
fn remote_start_and_stop_reach_only_an_online_board() {
    let (lab, d, mut b) = logged_in();
    let board = d.board("1");
    board.must(r#"{"action":"checkmachine"}"#);
    let page = b.get("/machines/1");
    assert!(
        page.body.contains("Remote start"),
        "online board: buttons shown"
    );

    // The first admin has no card yet: refused, nothing queued.
    let p = b.post("/machines/1/start", &[]);
    assert_eq!(p.status, 409);
    assert!(p.body.contains("You have no card"), "{}", p.body);
    assert!(board
        .next_on("machine/1/request", Duration::from_millis(600))
        .is_none());

    lab.sql("UPDATE members SET card_uid = 'aabbccd9' WHERE email = 'admin@fabgate.local'");
    board.drain();
    let p = b.post("/machines/1/start", &[]);
    assert_eq!(
        p.location.as_deref(),
        Some("/machines/1?ok=start"),
        "{}",
        p.body
    );
    let sent = board
        .next_on("machine/1/request", TIMEOUT)
        .expect("remote start published");
    let sent: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_json(&sent, r#"{"request_type": "start", "uid": "aabbccd9"}"#);
    assert!(b
        .get("/machines/1?ok=start")
        .body
        .contains("Remote start requested"));

    let p = b.post("/machines/1/stop", &[]);
    assert_eq!(p.status, 303);
    let sent = board
        .next_on("machine/1/request", TIMEOUT)
        .expect("remote stop");
    let sent: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_json(&sent, r#"{"request_type": "stop", "uid": "aabbccd9"}"#);

    // Machine 2's board never spoke: refused with the reason, nothing published.
    let offline = d.board("2");
    assert!(!b.get("/machines/2").body.contains("Remote start</button>"));
    let p = b.post("/machines/2/start", &[]);
    assert_eq!(p.status, 409);
    assert!(p.body.contains("offline"), "{}", p.body);
    assert_eq!(lab.count("SELECT COUNT(*) FROM board_requests"), 0);
    assert!(offline
        .next_on("machine/2/request", Duration::from_millis(800))
        .is_none());

    // An unknown machine is a 404, not a success.
    assert_eq!(b.post("/machines/99/start", &[]).status, 404);
}

#[test]
fn machine_types_are_managed_and_a_used_type_is_kept() {
    let (lab, _d, mut b) = logged_in();
    let list = b.get("/machine-types");
    assert!(row_with(&list.body, "DRILL").contains("open to all members"));
    b.get("/machine-types/new");
    let p = b.post(
        "/machine-types",
        &[
            ("name", "SAW"),
            ("timeout", "30"),
            ("grace", ""),
            ("access", "open"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let (id, grace, open): (i64, Option<i64>, bool) = lab
        .db()
        .query_row(
            "SELECT type_id, grace_min, access_open FROM machine_types WHERE type_name = 'SAW' AND timeout_min = 30",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((grace, open), (None, true));

    let p = b.post(
        "/machine-types",
        &[
            ("name", "LATHE"),
            ("timeout", "-5"),
            ("grace", "2"),
            ("access", "authorized"),
        ],
    );
    assert_eq!(p.status, 400);
    assert!(p.body.contains("value=\"LATHE\"") && p.body.contains("auto-logoff"));
    let p = b.post(
        "/machine-types",
        &[
            ("name", "laser"),
            ("timeout", "5"),
            ("grace", ""),
            ("access", "open"),
        ],
    );
    assert_eq!(p.status, 400);
    assert!(p.body.contains("already has this name"));

    let p = b.post(
        &format!("/machine-types/{id}/edit"),
        &[
            ("name", "SAW"),
            ("timeout", "0"),
            ("grace", "3"),
            ("access", "authorized"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count(&format!(
            "SELECT COUNT(*) FROM machine_types WHERE type_id = {id} AND timeout_min = 0 AND grace_min = 3 AND access_open = 0"
        )),
        1
    );

    // LASER is used by machines 1 and 4.
    let p = b.get("/machine-types/1/delete");
    assert_eq!(p.status, 409);
    assert!(p.body.contains("machines using it: 2"), "{}", p.body);
    assert_eq!(b.post("/machine-types/1/delete", &[]).status, 409);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM machine_types WHERE type_id = 1"),
        1
    );

    assert_eq!(b.get(&format!("/machine-types/{id}/delete")).status, 200);
    let p = b.post(&format!("/machine-types/{id}/delete"), &[]);
    assert_eq!(p.location.as_deref(), Some("/machine-types?ok=deleted"));
    assert_eq!(
        lab.count(&format!(
            "SELECT COUNT(*) FROM machine_types WHERE type_id = {id}"
        )),
        0
    );
    assert_eq!(
        b.post(&format!("/machine-types/{id}/delete"), &[]).status,
        404
    );
}

#[test]
fn maintenance_plans_and_interventions_change_what_boards_see() {
    let (lab, d, mut b) = logged_in();
    rome(&lab);
    let overview = b.get("/maintenance");
    let due = overview.body.split("Plans</h2>").next().unwrap();
    assert!(row_with(due, "CNC 1").contains("Clean the bed"));
    assert!(row_with(due, "CNC 1").contains("1.0"), "overdue by 1 h");

    b.get("/maintenance/plans/new?machine=1");
    let plan = |lcd: &str, url: &str| {
        vec![
            ("machine", "1".to_string()),
            ("description", "Lens <clean>".to_string()),
            ("hours", "2.5".to_string()),
            ("lcd", lcd.to_string()),
            ("url", url.to_string()),
        ]
    };
    let post = |b: &mut Browser, form: Vec<(&str, String)>| {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post("/maintenance/plans", &form)
    };
    let p = post(&mut b, plan("ABCDEFGHIJKLMNOPQ", ""));
    assert_eq!(p.status, 400);
    assert!(p.body.contains("17 characters"), "{}", p.body);
    assert!(p.body.contains("value=\"ABCDEFGHIJKLMNOPQ\""));
    assert!(p.body.contains("Lens &lt;clean&gt;"));
    let p = post(&mut b, plan("CLEAN LENS", "javascript:alert(1)"));
    assert_eq!(p.status, 400);
    assert!(p.body.contains("http://"));
    let p = post(
        &mut b,
        plan("CLEAN LENS", "https://wiki.example.org/laser?a=1&b=2"),
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM maintenances WHERE machine_id = 1 AND lcd_message = 'CLEAN LENS' AND hours_between = 2.5"),
        1
    );
    // Links are clickable only when they are http(s); an imported odd value is text.
    lab.sql(
        "UPDATE maintenances SET instructions_url = 'javascript:alert(2)' WHERE maintenance_id = 1",
    );
    let overview = b.get("/maintenance");
    assert!(overview
        .body
        .contains("href=\"https://wiki.example.org/laser?a=1&amp;b=2\""));
    assert!(!overview.body.contains("href=\"javascript:"));

    // An intervention (now, in the lab's zone) makes machine 4 no longer due.
    let board = d.board("4");
    assert_eq!(
        board.must(r#"{"action":"checkmachine"}"#)["maintenance"],
        true
    );
    let form = b.get("/maintenance/interventions/new?plan=1");
    let when = form
        .body
        .split("name=\"when\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let p = b.post(
        "/maintenance/interventions",
        &[("plan", "1"), ("member", "2"), ("when", &when)],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let reply = board.must(r#"{"action":"checkmachine"}"#);
    assert_eq!(reply["maintenance"], false, "{reply}");
    let (iid, ts): (i64, i64) = lab
        .db()
        .query_row(
            "SELECT intervention_id, timestamp FROM interventions WHERE maintenance_id = 1 AND member_id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        (now() - ts).abs() < 120,
        "form time read in the lab zone: {ts}"
    );
    assert!(b.get("/maintenance").body.contains("Nothing is due."));

    // Moved back before the last use: due again. A future time is refused.
    let p = b.post(
        &format!("/maintenance/interventions/{iid}/edit"),
        &[("plan", "1"), ("member", "2"), ("when", "2026-01-10T10:00")],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count(&format!(
            "SELECT timestamp FROM interventions WHERE intervention_id = {iid}"
        )),
        1_768_035_600
    );
    assert_eq!(
        board.must(r#"{"action":"checkmachine"}"#)["maintenance"],
        true
    );
    let p = b.post(
        &format!("/maintenance/interventions/{iid}/edit"),
        &[("plan", "1"), ("member", "2"), ("when", "2099-01-01T00:00")],
    );
    assert_eq!(p.status, 400);

    let confirm = b.get("/maintenance/plans/1/delete");
    assert!(
        confirm.body.contains("<li>1 intervention</li>"),
        "{}",
        confirm.body
    );
    assert_eq!(
        b.get(&format!("/maintenance/interventions/{iid}/delete"))
            .status,
        200
    );
    let p = b.post(&format!("/maintenance/interventions/{iid}/delete"), &[]);
    assert_eq!(p.location.as_deref(), Some("/maintenance?ok=deleted"));
    assert_eq!(lab.count("SELECT COUNT(*) FROM interventions"), 0);
    assert_eq!(b.post("/maintenance/plans/1/delete", &[]).status, 303);
    assert_eq!(
        board.must(r#"{"action":"checkmachine"}"#)["maintenance"],
        false
    );
    assert_eq!(b.get("/maintenance/plans/1/edit").status, 404);
}

#[test]
fn history_filters_pages_and_keeps_machine_hours() {
    let (lab, _d, mut b) = logged_in();
    rome(&lab);
    let t = now() - 30 * 86_400;
    let mut sql = String::from("BEGIN;");
    for i in 0..120 {
        let s = t + i * 3600;
        sql.push_str(&format!(
            "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES (3, 1, {s}, {s}, {});",
            s + 600
        ));
    }
    for i in 0..7 {
        let s = t + i * 86_400 + 1800;
        sql.push_str(&format!(
            "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts, replay) VALUES (4, 2, {s}, {s}, {}, 1);",
            s + 60
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO uses (member_id, machine_id, start_ts, last_seen) VALUES (2, 1, {n}, {n}); COMMIT;",
        n = now() - 300
    ));
    lab.sql(&sql);
    lab.sql("UPDATE members SET name = '<b>Carla</b>' WHERE member_id = 3");

    // 129 uses: three pages, newest first, the open one highlighted.
    let p = b.get("/uses");
    assert_eq!(p.status, 200);
    assert!(p.body.contains("129 uses"), "{}", p.body);
    assert!(p.body.contains("Page 1 / 3"));
    assert!(p.body.contains("href=\"/uses?page=2\""));
    let first = p.body.find("<tbody>").unwrap();
    let first_row = &p.body[first..first + p.body[first..].find("</tr>").unwrap()];
    assert!(
        first_row.contains("class=\"open\"") && first_row.contains("Bruno"),
        "{first_row}"
    );
    assert!(p.body.contains("&lt;b&gt;Carla&lt;/b&gt;") && !p.body.contains("<b>Carla"));
    let last = b.get("/uses?page=3");
    assert!(last.body.contains("Page 3 / 3"));
    assert_eq!(last.body.matches("<tr").count() - 1, 29, "header + 29 rows");
    assert_eq!(b.get("/uses?page=99").status, 200);

    // Filters: member, machine, dates; replayed rows marked; export links carry them.
    let p = b.get("/uses?member=4");
    assert!(p.body.contains("7 uses"));
    assert_eq!(p.body.matches("replayed</span>").count(), 7);
    assert!(p.body.contains("href=\"/exports/uses.csv?member=4&amp;\""));
    let day = |ts: i64| {
        jiff::Timestamp::from_second(ts)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("Europe/Rome").unwrap())
            .strftime("%Y-%m-%d")
            .to_string()
    };
    let (from, to) = (day(t + 86_400 + 1800), day(t + 3 * 86_400 + 1800));
    let p = b.get(&format!("/uses?member=4&machine=2&from={from}&to={to}"));
    assert!(p.body.contains("3 uses"), "{from}..{to}");
    let p = b.get("/uses?machine=2&from=not-a-date");
    assert!(p.body.contains("could not be read") && p.body.contains("7 uses"));

    // Manual add / correct / delete keep machine hours consistent.
    assert_hours(&lab, 2, 0.0);
    b.get("/uses/new");
    let p = b.post(
        "/uses",
        &[
            ("member", "3"),
            ("machine", "2"),
            ("start", "2026-01-10T10:00"),
            ("end", "2026-01-10T11:30"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let id: i64 = lab.count("SELECT use_id FROM uses WHERE start_ts = 1768035600");
    assert_eq!(
        lab.count(&format!("SELECT end_ts FROM uses WHERE use_id = {id}")),
        1_768_041_000
    );
    assert_hours(&lab, 2, 1.5);
    let p = b.post(
        &format!("/uses/{id}/edit"),
        &[
            ("member", "3"),
            ("machine", "2"),
            ("start", "2026-01-10T10:00"),
            ("end", "2026-01-10T10:30"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_hours(&lab, 2, 0.5);
    let p = b.post(
        &format!("/uses/{id}/edit"),
        &[
            ("member", "3"),
            ("machine", "1"),
            ("start", "2026-01-10T10:00"),
            ("end", "2026-01-10T10:30"),
        ],
    );
    assert_eq!(p.status, 303);
    assert_hours(&lab, 2, 0.0);
    assert_hours(&lab, 1, 0.5);
    let p = b.post(
        &format!("/uses/{id}/edit"),
        &[
            ("member", "3"),
            ("machine", "1"),
            ("start", "2026-01-10T10:00"),
            ("end", "2026-01-10T09:00"),
        ],
    );
    assert_eq!(p.status, 400);
    assert!(
        p.body.contains("The end is before the start.")
            && p.body.contains("value=\"2026-01-10T09:00\"")
    );
    assert_hours(&lab, 1, 0.5);
    let confirm = b.get(&format!("/uses/{id}/delete"));
    assert!(confirm.body.contains("0.5 h"), "{}", confirm.body);
    assert_eq!(b.post(&format!("/uses/{id}/delete"), &[]).status, 303);
    assert_hours(&lab, 1, 0.0);
    assert_eq!(b.post(&format!("/uses/{id}/delete"), &[]).status, 404);

    // An open use adds nothing until it is closed.
    let p = b.post(
        "/uses",
        &[
            ("member", "4"),
            ("machine", "2"),
            ("start", "2026-01-10T10:00"),
            ("end", ""),
        ],
    );
    assert_eq!(p.status, 303);
    assert_hours(&lab, 2, 0.0);
    let p = b.post(
        "/uses",
        &[
            ("member", "4"),
            ("machine", "2"),
            ("start", "2099-01-10T10:00"),
        ],
    );
    assert_eq!(p.status, 400);
}

/// The body of a download.
pub fn download(d: &TestDaemon, b: &Browser, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(format!("http://{}{path}", d.panel))
        .header(
            "Cookie",
            format!("fg_session={}", b.cookie.clone().unwrap()),
        )
        .call()
        .unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    (resp.status().as_u16(), headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn exports_apply_filters_and_neutralise_formulas() {
    let (lab, d, mut b) = logged_in();
    lab.sql(
        "UPDATE members SET name = '=cmd|'' /C calc''!A0', surname = 'Rossi, \"C\"' WHERE member_id = 3;
         INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES (4, 2, 100, 100, 160);",
    );

    let (status, headers, body) = download(&d, &b, "/exports/uses.csv?member=3");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "text/csv; charset=utf-8");
    let disposition = header(&headers, "content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"fabgate-uses-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let csv = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(
        lines[0].starts_with("id,member_id,member,machine_id"),
        "{csv}"
    );
    assert_eq!(lines.len(), 3, "header, Carla's one use, final CRLF: {csv}");
    assert!(
        lines[1].contains("\"'=cmd|' /C calc'!A0 Rossi, \"\"C\"\"\""),
        "{}",
        lines[1]
    );
    assert!(!csv.contains(",=cmd"));

    let (_, _, members) = download(&d, &b, "/exports/members.csv");
    let members = String::from_utf8(members).unwrap();
    assert!(members.contains("admin@fabgate.local"));
    assert!(!members.contains("$argon2") && !members.to_lowercase().contains("password"));
    assert!(
        members.contains(",'=cmd|' /C calc'!A0,\"Rossi, \"\"C\"\"\","),
        "{members}"
    );

    let (_, _, auth) = download(&d, &b, "/exports/authorizations.csv?machine=4");
    let auth = String::from_utf8(auth).unwrap();
    assert_eq!(
        auth.matches("\r\n").count(),
        3,
        "header and 2 authorizations: {auth}"
    );

    let (status, headers, xlsx) = download(&d, &b, "/exports/uses.xlsx?member=3");
    assert_eq!(status, 200);
    assert!(header(&headers, "content-disposition").contains(".xlsx"));
    assert!(xlsx.starts_with(b"PK"));
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(xlsx)).unwrap();
    let mut strings = String::new();
    zip.by_name("xl/sharedStrings.xml")
        .unwrap()
        .read_to_string(&mut strings)
        .unwrap();
    assert!(strings.contains("=cmd|' /C calc'!A0 Rossi"), "{strings}");
    assert!(strings.contains("CNC 1") && !strings.contains("Dario"));
    let mut sheet = String::new();
    zip.by_name("xl/worksheets/sheet1.xml")
        .unwrap()
        .read_to_string(&mut sheet)
        .unwrap();
    assert!(!sheet.contains("<f>"), "no formula cells");

    assert_eq!(download(&d, &b, "/exports/passwords.csv").0, 404);
    assert_eq!(download(&d, &b, "/exports/uses.pdf").0, 404);
    let page = b.get("/exports");
    assert!(page.body.contains("href=\"/exports/interventions.xlsx\""));
}
