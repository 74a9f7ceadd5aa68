//! The building register in the panel: signing in and out, history and CSV export, phone
//! links, the wall screen, and the lone-working rule seen from a board.

use crate::common::browser::Browser;
use crate::common::*;

fn admin(d: &TestDaemon) -> Browser {
    let mut b = admin_session(d);
    assert_eq!(b.get("/presence").status, 200);
    b
}

#[test]
fn sign_in_out_history_export_and_lone_working() {
    let (lab, d) = start_f();
    lab.sql("UPDATE machine_types SET needs_second_person = 1 WHERE type_id = 1; UPDATE members SET name = '=cmd|calc' WHERE member_id = 4");
    let mut b = admin(&d);
    let board = d.board("1");
    // Alone in the building: the laser refuses Carla.
    let p = b.post("/presence/sign-in", &[("member", "3")]);
    assert_eq!(p.location.as_deref(), Some("/presence?ok=in"));
    let r = board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
    assert_eq!(r["name"], "Nobody else in");
    assert_eq!(r["is_valid"], false);
    // A second person arrives: allowed.
    b.get("/presence");
    let p = b.post("/presence/sign-in", &[("member", "4")]);
    assert_eq!(p.location.as_deref(), Some("/presence?ok=in"), "{}", p.body);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM presence WHERE signed_out_at IS NULL"),
        2
    );
    assert_eq!(
        board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#)["is_valid"],
        true
    );
    let page = b.get("/presence");
    assert!(page.body.contains("Carla") && page.body.contains("=cmd|calc"));
    // Signing in twice changes nothing; a disabled member is refused.
    assert_eq!(
        b.post("/presence/sign-in", &[("member", "3")])
            .location
            .as_deref(),
        Some("/presence?ok=same")
    );
    b.get("/presence");
    assert_eq!(
        b.post("/presence/sign-in", &[("member", "5")])
            .location
            .as_deref(),
        Some("/presence?error=refused")
    );
    b.get("/presence");
    assert_eq!(
        b.post("/presence/sign-out", &[("member", "4")])
            .location
            .as_deref(),
        Some("/presence?ok=out")
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM presence WHERE signed_out_at IS NULL"),
        1
    );
    let csv = b.get("/presence/export.csv");
    assert_eq!(csv.status, 200);
    assert!(
        csv.body.starts_with("member_id,name,surname"),
        "{}",
        csv.body
    );
    assert!(
        csv.body.contains("'=cmd|calc"),
        "formula neutralised: {}",
        csv.body
    );
    assert_eq!(csv.body.lines().count(), 3, "{}", csv.body);
    assert_eq!(b.get("/presence?from=yesterday").status, 400);
    let filtered = b.get("/presence/export.csv?member=3");
    assert_eq!(filtered.body.lines().count(), 2);
}

#[test]
fn phone_link_and_wall_screen() {
    let (lab, d) = start_f();
    let mut b = admin(&d);
    let p = b.post("/presence/link", &[("member", "3"), ("action", "create")]);
    let url = p
        .body
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_string();
    let path = format!("/in/{}", url.rsplit('/').next().unwrap());
    // The member's phone: no login, no cookie.
    let mut phone = Browser::new(d.panel);
    let page = phone.get(&path);
    assert!(
        page.body.contains("Carla") && page.body.contains("not in the building"),
        "{}",
        page.body
    );
    let page = phone.post(&path, &[]);
    assert!(page.body.contains("Signed in."));
    assert_eq!(lab.count("SELECT COUNT(*) FROM presence WHERE member_id = 3 AND signed_out_at IS NULL AND in_source = 'link'"), 1);
    // Revoked: the link stops working.
    b.get("/presence");
    let revoked = b.post("/presence/link", &[("member", "3"), ("action", "revoke")]);
    assert_eq!(
        revoked.location.as_deref(),
        Some("/presence?ok=revoked"),
        "{}",
        revoked.body
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM presence_links WHERE revoked_at IS NULL"),
        0
    );
    assert_eq!(phone.get(&path).status, 404);
    assert_eq!(phone.get("/in/0000").status, 404);
    // Wall screen: only under its secret address, read-only.
    assert_eq!(phone.get("/wall/guess").status, 404);
    b.get("/presence");
    b.post("/presence/wall", &[]);
    let page = b.get("/presence");
    let wall = page
        .body
        .split("href=\"/wall/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let screen = phone.get(&format!("/wall/{wall}"));
    assert_eq!(screen.status, 200);
    assert!(screen.body.contains("Carla") && !screen.body.contains("<form"));
}

#[test]
fn cards_tapped_at_the_entrance_can_become_members() {
    // An entrance reader records unknown cards without a machine.
    let (lab, d) = start_f();
    lab.sql(&format!(
        "INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES ('0badcafe', NULL, {})",
        now()
    ));
    let mut b = admin(&d);
    let page = b.get("/unknown-cards");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("0badcafe"), "{}", page.body);
}
