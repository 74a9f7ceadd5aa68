//! The panel's people area over real HTTP against the real daemon: members (add, edit,
//! disable, soft delete, panel passwords), hostile and malformed input, unknown cards
//! turned into members, roles, authorizations per member, per machine and in bulk. Each
//! change is checked where it matters: the database and a board's `checkuser`.

use crate::common::browser::{Browser, Page};
use crate::common::*;

/// A started lab with fixture F and a logged-in administrator (password changed).
fn logged_in() -> (Lab, TestDaemon, Browser) {
    crate::panel::logged_in()
}

/// The id in a redirect like `/members/7?ok=created`.
#[track_caller]
fn redirected_id(p: &Page, prefix: &str) -> i64 {
    assert_eq!(p.status, 303, "{}", p.body);
    let to = p.location.as_deref().unwrap();
    to.strip_prefix(prefix)
        .and_then(|r| r.split(['?', '/', '#']).next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in {to}"))
}

/// Follows a 303 and returns the page it leads to.
#[track_caller]
fn follow(b: &mut Browser, p: &Page) -> Page {
    assert_eq!(p.status, 303, "{}", p.body);
    let to = p.location.clone().unwrap();
    let page = b.get(&to);
    assert_eq!(page.status, 200, "{to}: {}", page.body);
    page
}

fn member_form<'a>(
    name: &'a str,
    card: &'a str,
    email: &'a str,
    role: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("surname", "G"),
        ("card", card),
        ("email", email),
        ("role", role),
        ("language", ""),
    ]
}

fn checkuser(d: &TestDaemon, machine: &str, uid: &str) -> serde_json::Value {
    d.board(machine)
        .must(&format!(r#"{{"action":"checkuser","uid":"{uid}"}}"#))
}

#[test]
fn members_are_added_edited_disabled_and_soft_deleted() {
    let (lab, d, mut b) = logged_in();
    let list = b.get("/members");
    assert_eq!(list.status, 200);
    for name in ["Anna", "Bruno", "Carla", "Dario", "Elena"] {
        assert!(list.body.contains(name), "{name} listed");
    }
    assert!(
        !list.body.contains("Fabio"),
        "deleted members are hidden by default"
    );
    let deleted = b.get("/members?state=deleted");
    assert!(deleted.body.contains("Fabio") && !deleted.body.contains("Carla"));
    assert!(b.get("/members?q=aabbccd3").body.contains("Carla"));
    assert!(!b.get("/members?q=aabbccd3").body.contains("Dario"));
    assert!(!b.get("/members?card=no").body.contains("Carla"));

    // Add: the card is stored lowercase and works on the boards at once (DRILL 1 is open
    // to everyone).
    b.get("/members/new");
    let p = b.post(
        "/members/new",
        &member_form("Gina", "AABBCCE7", "gina@lab.org", "3"),
    );
    let gina = redirected_id(&p, "/members/");
    let page = follow(&mut b, &p);
    assert!(page.body.contains("Member added.") && page.body.contains("aabbcce7"));
    assert_eq!(checkuser(&d, "2", "aabbcce7")["is_valid"], true);

    // Edit: weekly summary with an email, language.
    let mut form = member_form("Gina", "aabbcce7", "gina@lab.org", "3");
    form.extend([("weekly_summary", "on"), ("language", "it")]);
    form.retain(|(k, v)| *k != "language" || *v == "it");
    let p = b.post(&format!("/members/{gina}/edit"), &form);
    let page = follow(&mut b, &p);
    assert!(page.body.contains("Changes saved."));
    assert_eq!(
        lab.count(&format!(
            "SELECT weekly_summary + (language = 'it') FROM members WHERE member_id = {gina}"
        )),
        2
    );

    // Disable, then enable again.
    let p = b.post(&format!("/members/{gina}/disable"), &[]);
    assert!(follow(&mut b, &p).body.contains("Member disabled"));
    assert_eq!(checkuser(&d, "2", "aabbcce7")["is_valid"], false);
    let p = b.post(&format!("/members/{gina}/enable"), &[]);
    follow(&mut b, &p);
    assert_eq!(checkuser(&d, "2", "aabbcce7")["is_valid"], true);

    // Soft delete keeps the history, anonymised. Dario has used a machine.
    let board = d.board("2");
    board.must(r#"{"action":"startuse","uid":"aabbccd4"}"#);
    board.must(r#"{"action":"stopuse","uid":"aabbccd4","duration":30}"#);
    let uses = lab.count("SELECT COUNT(*) FROM uses WHERE member_id = 4");
    assert!(uses >= 1);
    let confirm = b.get("/members/4/delete");
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("cannot be undone") && confirm.body.contains("anonymised"));
    let p = b.post("/members/4/delete", &[]);
    assert_eq!(p.location.as_deref(), Some("/members?ok=deleted"));
    assert!(follow(&mut b, &p).body.contains("Member deleted"));
    let row: (String, String, Option<String>, Option<String>, bool) = lab
        .db()
        .query_row(
            "SELECT name, surname, card_uid, email, deleted FROM members WHERE member_id = 4",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(row, ("Deleted member".into(), "".into(), None, None, true));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE member_id = 4"),
        uses
    );
    // The card is unknown now, and can be given to someone else.
    assert_eq!(checkuser(&d, "2", "aabbccd4")["is_valid"], false);
    let page = b.get("/members/4");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Deleted member") && !page.body.contains("Dario"));
    let recent = page.body.split("Recent uses").nth(1).unwrap();
    assert!(recent.contains("DRILL 1"), "uses still listed");
    // A deleted member cannot be edited or deleted again.
    assert_eq!(b.get("/members/4/edit").status, 400);
    assert_eq!(b.post("/members/4/delete", &[]).status, 400);
    b.get("/members/new");
    let p = b.post("/members/new", &member_form("Ivo", "aabbccd4", "", "3"));
    redirected_id(&p, "/members/");
}

#[test]
fn bad_member_input_is_refused_or_shown_escaped() {
    let (lab, _d, mut b) = logged_in();
    let before = lab.count("SELECT COUNT(*) FROM members");
    b.get("/members/new");
    let long = "x".repeat(200);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("name", "")], "ame is empty"),
        (&[("name", long.as_str())], "too long"),
        (&[("name", "a\u{1b}[2Jb")], "control character"),
        (&[("card", "zzzz")], "hexadecimal"),
        (&[("card", "aabbccd1")], "already belongs to Anna A"),
        (&[("email", "nobody")], "not an address"),
        (&[("role", "abc")], "Choose a role"),
        (&[("role", "999")], "Choose a role"),
        (&[("language", "fr")], "Choose a language"),
        (&[("weekly_summary", "on"), ("email", "")], "weekly summary"),
    ];
    for (changes, message) in cases {
        let mut form = member_form("Hugo", "", "hugo@lab.org", "3");
        for (k, v) in changes.iter() {
            form.retain(|(f, _)| f != k);
            form.push((k, v));
        }
        form.push(("surname", "Kept \"as typed\""));
        form.retain(|(f, v)| *f != "surname" || v.starts_with("Kept"));
        let p = b.post("/members/new", &form);
        assert_eq!(p.status, 400, "{changes:?}: {}", p.body);
        assert!(p.body.contains(message), "{changes:?}: want {message}");
        assert!(
            p.body.contains("value=\"Kept &quot;as typed&quot;\""),
            "entered values come back escaped"
        );
    }
    assert_eq!(lab.count("SELECT COUNT(*) FROM members"), before);

    // Script tags and quotes are stored verbatim and always shown escaped.
    let p = b.post(
        "/members/new",
        &member_form("<script>alert(1)</script>", "", "", "3"),
    );
    let id = redirected_id(&p, "/members/");
    for path in [
        format!("/members/{id}"),
        "/members".to_string(),
        format!("/members/{id}/edit"),
        "/authorizations?machine=1".to_string(),
    ] {
        let page = b.get(&path);
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
        assert!(!page.body.contains("<script>alert(1)"), "{path}");
    }

    // Ids that are not ids, or name nothing: 404, for GET and POST alike.
    for path in [
        "/members/abc",
        "/members/1abc/edit",
        "/members/-1",
        "/members/99999",
        "/members/99999/edit",
        "/members/%3Cscript%3E",
        "/roles/x/edit",
        "/roles/99999/edit",
        "/authorizations?machine=abc",
        "/authorizations?machine=99999",
        "/authorizations/bulk?machine=1.5",
    ] {
        assert_eq!(b.get(path).status, 404, "{path}");
    }
    for path in [
        "/members/abc/delete",
        "/members/99999/disable",
        "/roles/x/delete",
    ] {
        assert_eq!(b.post(path, &[]).status, 404, "{path}");
    }
    // GET never changes anything.
    assert_eq!(b.get("/members/3/disable").status, 404);

    // A form without the session's CSRF token is refused and changes nothing.
    let mut forged = member_form("Mallory", "", "", "3");
    forged.push(("csrf", "forged"));
    assert_eq!(b.post("/members/new", &forged).status, 403);
    assert_eq!(b.post("/members/3/disable", &[("csrf", "")]).status, 403);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM members WHERE name = 'Mallory'"),
        0
    );
    assert_eq!(
        lab.count("SELECT disabled FROM members WHERE member_id = 3"),
        0
    );

    // Editing Anna with Bruno's card names Bruno.
    b.get("/members/1/edit");
    let p = b.post("/members/1/edit", &member_form("Anna", "aabbccd2", "", "1"));
    assert_eq!(p.status, 400);
    assert!(p.body.contains("already belongs to Bruno B"), "{}", p.body);
}

#[test]
fn an_unknown_card_becomes_a_member_who_can_use_the_machine() {
    let (lab, d, mut b) = logged_in();
    let r = checkuser(&d, "1", "0badcafe");
    assert_eq!(r["is_valid"], false);
    checkuser(&d, "4", "0badcafe");
    let list = b.get("/unknown-cards");
    assert!(list.body.contains("0badcafe"), "{}", list.body);
    let row = list.body.split("0badcafe").nth(1).unwrap();
    assert!(row.contains("CNC 1"), "last machine: {row}");
    assert!(b.get("/members").body.contains("/unknown-cards"));

    let form = b.get("/members/new?card=0badcafe");
    assert!(form.body.contains("value=\"0badcafe\""));
    let p = b.post("/members/new", &member_form("Nora", "0badcafe", "", "3"));
    let nora = redirected_id(&p, "/members/");
    // Created, but LASER 1 needs an authorization.
    let r = checkuser(&d, "1", "0badcafe");
    assert_eq!(
        (r["is_valid"].clone(), r["missing_auth"].clone()),
        (false.into(), true.into()),
        "known now, not yet authorized: {r}"
    );
    let p = b.post(
        "/authorizations/grant",
        &[
            ("member", &nora.to_string()),
            ("machine", "1"),
            ("back", "member"),
        ],
    );
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/members/{nora}?ok=granted#machines").as_str())
    );
    let page = follow(&mut b, &p);
    assert!(page.body.contains("Authorization granted."));
    let r = checkuser(&d, "1", "0badcafe");
    assert_eq!(
        (r["is_valid"].clone(), r["name"].clone()),
        (true.into(), "Nora".into())
    );
    // The list no longer shows the card; its rows stay as history.
    assert!(!b.get("/unknown-cards").body.contains("0badcafe"));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM unknown_cards WHERE card_uid = '0badcafe'"),
        2
    );
}

#[test]
fn roles_reserved_ones_stay_and_used_ones_are_not_deleted() {
    let (lab, _d, mut b) = logged_in();
    let list = b.get("/roles");
    for name in ["admins", "staff", "users", "May log into the panel"] {
        assert!(list.body.contains(name), "{name}");
    }
    // The first administrator's role is reserved.
    let reserved = lab.count("SELECT role_id FROM roles WHERE reserved = 1");
    let name_before =
        lab.count("SELECT COUNT(*) FROM roles WHERE reserved = 1 AND role_name = 'panel admins'");
    assert_eq!(b.get(&format!("/roles/{reserved}/edit")).status, 403);
    let p = b.post(
        &format!("/roles/{reserved}/edit"),
        &[("name", "mine now"), ("authorize_all", "on")],
    );
    assert_eq!(p.status, 403);
    assert_eq!(
        b.post(&format!("/roles/{reserved}/delete"), &[]).status,
        403
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM roles WHERE reserved = 1 AND role_name = 'panel admins'"),
        name_before
    );

    // "users" is held by Carla, Dario, Elena and (deleted) Fabio.
    let p = b.get("/roles/3/delete");
    assert!(
        p.body.contains("Members holding this role: 4"),
        "{}",
        p.body
    );
    let p = b.post("/roles/3/delete", &[]);
    assert_eq!(p.status, 400);
    assert!(p.body.contains("Members holding this role: 4"));
    assert_eq!(lab.count("SELECT COUNT(*) FROM roles WHERE role_id = 3"), 1);

    // Add, refuse bad names, rename with flags, delete.
    b.get("/roles/new");
    let p = b.post("/roles/new", &[("name", "guests")]);
    assert_eq!(p.location.as_deref(), Some("/roles?ok=role-created"));
    let id = lab.count("SELECT role_id FROM roles WHERE role_name = 'guests'");
    for (name, message) in [
        ("staff", "already has this name"),
        ("STAFF", "already has this name"),
        ("123", "only digits"),
        ("", "empty"),
    ] {
        let p = b.post("/roles/new", &[("name", name)]);
        assert_eq!(p.status, 400, "{name}");
        assert!(p.body.contains(message), "{name}: {}", p.body);
    }
    let p = b.post(
        &format!("/roles/{id}/edit"),
        &[("name", "visitors"), ("maintenance", "on")],
    );
    assert!(follow(&mut b, &p).body.contains("visitors"));
    assert_eq!(
        lab.count(&format!(
            "SELECT maintenance * 10 + authorize_all FROM roles WHERE role_id = {id}"
        )),
        10
    );
    let p = b.post(&format!("/roles/{id}/delete"), &[]);
    assert_eq!(p.location.as_deref(), Some("/roles?ok=role-deleted"));
    assert_eq!(
        lab.count(&format!("SELECT COUNT(*) FROM roles WHERE role_id = {id}")),
        0
    );
}

#[test]
fn authorizations_per_machine_per_member_and_in_bulk_reach_the_boards() {
    let (lab, d, mut b) = logged_in();
    let page = b.get("/authorizations");
    assert!(page.body.contains("LASER 1") && page.body.contains("CNC 1"));
    let laser = b.get("/authorizations?machine=1");
    assert!(laser.body.contains("Carla") && laser.body.contains("Elena"));
    assert!(
        laser.body.contains("admins"),
        "roles that need no authorization"
    );
    let authorized = laser.body.split("Authorized members").nth(1).unwrap();
    assert!(
        !authorized.contains("Fabio"),
        "deleted members are not listed"
    );
    assert!(!authorized.contains("Dario"));

    // Per machine: grant Dario, then revoke; the board follows.
    assert_eq!(checkuser(&d, "1", "aabbccd4")["is_valid"], false);
    let p = b.post(
        "/authorizations/grant",
        &[("member", "4"), ("machine", "1"), ("back", "machine")],
    );
    assert_eq!(
        p.location.as_deref(),
        Some("/authorizations?machine=1&ok=granted")
    );
    let page = follow(&mut b, &p);
    assert!(page
        .body
        .split("Authorized members")
        .nth(1)
        .unwrap()
        .contains("Dario"));
    assert_eq!(checkuser(&d, "1", "aabbccd4")["is_valid"], true);
    let p = b.post(
        "/authorizations/revoke",
        &[("member", "4"), ("machine", "1"), ("back", "machine")],
    );
    assert!(follow(&mut b, &p).body.contains("Authorization revoked."));
    assert_eq!(checkuser(&d, "1", "aabbccd4")["is_valid"], false);

    // Per member: the member page says what the boards will answer.
    let carla = b.get("/members/3");
    let cnc = carla.body.split("CNC 1").nth(1).unwrap();
    assert!(cnc.split("</tr>").next().unwrap().contains(">authorized<"));
    let printer = carla.body.split("PRINTER 1").nth(1).unwrap();
    assert!(printer
        .split("</tr>")
        .next()
        .unwrap()
        .contains("machine is blocked"));

    // Bulk: CNC 1 for Dario and Elena (Carla and Bruno already hold it).
    let form = b.get("/authorizations/bulk?machine=4");
    assert!(form.body.contains("Dario") && !form.body.contains("Fabio"));
    let p = b.post(
        "/authorizations/bulk",
        &[
            ("machine", "4"),
            ("member", "4"),
            ("member", "5"),
            ("member", "3"),
        ],
    );
    assert_eq!(
        p.location.as_deref(),
        Some("/authorizations?machine=4&ok=bulk&n=2")
    );
    assert!(follow(&mut b, &p).body.contains("New authorizations: 2"));
    assert_eq!(checkuser(&d, "4", "aabbccd4")["is_valid"], true);
    // Everyone listed: Anna and the first administrator were left (Fabio is deleted).
    let p = b.post("/authorizations/bulk", &[("machine", "4"), ("all", "1")]);
    assert_eq!(
        p.location.as_deref(),
        Some("/authorizations?machine=4&ok=bulk&n=2")
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM authorizations WHERE machine_id = 4"),
        6
    );
    // Bad bulk input.
    assert_eq!(
        b.post("/authorizations/bulk", &[("machine", "4"), ("member", "x")])
            .status,
        400
    );
    assert_eq!(
        b.post(
            "/authorizations/bulk",
            &[("machine", "999"), ("member", "1")]
        )
        .status,
        404
    );
    // A deleted member gets nothing.
    let p = b.post(
        "/authorizations/grant",
        &[("member", "6"), ("machine", "2"), ("back", "machine")],
    );
    assert_eq!(p.status, 400);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM authorizations WHERE member_id = 6 AND machine_id = 2"),
        0
    );
}

#[test]
fn panel_passwords_are_one_time_and_deleting_ends_sessions() {
    let (lab, d, mut b) = logged_in();
    // Bruno's role ("staff") may not log into the panel.
    b.get("/members/2");
    let p = b.post("/members/2/password", &[]);
    assert_eq!(p.status, 400);
    assert!(p.body.contains("may log into the panel"));

    // A new staff member in the administrators' role gets a one-time password.
    let admins = lab
        .count("SELECT role_id FROM roles WHERE backend_admin = 1")
        .to_string();
    let p = b.post(
        "/members/new",
        &member_form("Olga", "", "olga@lab.org", &admins),
    );
    let olga = redirected_id(&p, "/members/");
    let page = follow(&mut b, &p);
    assert!(page.body.contains("New one-time password"));
    let p = b.post(&format!("/members/{olga}/password"), &[]);
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.header("cache-control"), Some("no-store"));
    let password = p
        .body
        .split("class=\"secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    assert_eq!(password.len(), 14);
    let mut o = Browser::new(d.panel);
    let first = o.login("olga@lab.org", &password);
    assert_eq!(first.location.as_deref(), Some("/password"), "{first:?}");
    o.get("/password");
    let p = o.post(
        "/password",
        &[
            ("current", &password),
            ("new", "olga's own pass"),
            ("repeat", "olga's own pass"),
        ],
    );
    assert_eq!(p.status, 303);
    assert_eq!(o.get("/members").status, 200);

    // Nobody deletes or disables themselves.
    let me = lab.count("SELECT member_id FROM members WHERE email = 'admin@fabgate.local'");
    assert_eq!(b.get(&format!("/members/{me}/delete")).status, 400);
    assert_eq!(b.post(&format!("/members/{me}/disable"), &[]).status, 400);

    // Deleting Olga ends her session at once.
    b.get(&format!("/members/{olga}/delete"));
    let p = b.post(&format!("/members/{olga}/delete"), &[]);
    assert_eq!(p.status, 303);
    assert_eq!(o.get("/members").location.as_deref(), Some("/login"));
    assert_eq!(
        lab.count(&format!(
            "SELECT COUNT(*) FROM members WHERE member_id = {olga} AND password_hash IS NULL"
        )),
        1
    );
}

#[test]
fn the_member_list_pages_and_staff_choose_their_language() {
    let (lab, _d, mut b) = logged_in();
    lab.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
         INSERT INTO members (name, surname, role_id, card_uid, created_at)
         SELECT 'Zed', printf('%03d', i), 3, printf('ee%06x', i), 0 FROM n",
    );
    // Rows of the members list; an error page (no list, no count) is no "0 rows".
    let rows = |p: &Page| {
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(
            p.body.contains("Members found: "),
            "not the list: {}",
            p.body
        );
        p.body
            .split("<tbody>")
            .nth(1)
            .map_or(0, |t| t.matches("<tr>").count())
    };
    // 5 of fixture F (Fabio is deleted), the first administrator, 120 more.
    let first = b.get("/members");
    assert!(first.body.contains("Members found: 126"), "{}", first.body);
    assert_eq!(rows(&first), 100);
    assert!(first.body.contains("Page 1 / 2") && first.body.contains("href=\"/members?page=2\""));
    let second = b.get("/members?page=2");
    assert_eq!(rows(&second), 26);
    let zed = b.get("/members?q=zed&page=2");
    assert_eq!(rows(&zed), 20);
    assert!(
        zed.body.contains("href=\"/members?q=zed&amp;page=1\""),
        "filters kept"
    );
    assert_eq!(rows(&b.get("/members?q=zed&card=no")), 0);
    assert_eq!(rows(&b.get("/members?page=abc")), 100);
    assert_eq!(rows(&b.get("/members?page=99")), 0);

    // Staff edit themselves: language, but neither disabled nor without the panel.
    let me = lab.count("SELECT member_id FROM members WHERE email = 'admin@fabgate.local'");
    let role = lab
        .count("SELECT role_id FROM roles WHERE backend_admin = 1")
        .to_string();
    let edit = format!("/members/{me}/edit");
    b.get(&edit);
    let mut form = vec![
        ("name", "Admin"),
        ("email", "admin@fabgate.local"),
        ("role", role.as_str()),
        ("language", "it"),
    ];
    form.push(("disabled", "on"));
    let p = b.post(&edit, &form);
    assert_eq!(p.status, 400);
    assert!(p.body.contains("You cannot disable yourself."));
    form.pop();
    let p = b.post(
        &edit,
        &[
            ("name", "Admin"),
            ("role", "3"),
            ("email", "admin@fabgate.local"),
        ],
    );
    assert_eq!(p.status, 400);
    assert!(p.body.contains("You would lose access to the panel"));
    let p = b.post(&edit, &form);
    let page = follow(&mut b, &p);
    assert!(page.body.contains("Modifiche salvate."), "{}", page.body);
    assert!(b.get("/members").body.contains("Soci trovati: 126"));
}
