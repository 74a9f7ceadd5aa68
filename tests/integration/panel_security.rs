//! Issue 11 over HTTPS against the real daemon: capabilities checked by the one guard
//! for every route, secrets that stay out of backups, lockout without denial of service,
//! the first-start password file, HSTS and the absolute session lifetime.

use crate::common::browser::{Browser, Page};
use crate::common::*;
use fabgate::web::access::{Capability, Need, ROUTES};

/// The guard's refusal text (`routes::DENIED`).
const DENIED: &str = "Your role does not allow this.";

pub const ADMIN_PASSWORD: &str = "correct horse 42";

/// Fixture F over HTTPS with the first administrator logged in (password changed).
pub fn secure_lab() -> (Lab, TestDaemon, Browser) {
    secure_lab_with("")
}

pub fn secure_lab_with(web: &str) -> (Lab, TestDaemon, Browser) {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start_web(&format!("https = true\n{web}"));
    let first = d.admin_password.clone().expect("one-time password file");
    let mut b = Browser::tls(d.panel);
    let p = b.login("admin@fabgate.local", &first);
    assert_eq!(p.location.as_deref(), Some("/password"));
    let p = b.get("/password");
    assert!(p.body.contains("Choose a new password"), "{}", p.body);
    let p = b.post(
        "/password",
        &[
            ("current", &first),
            ("new", ADMIN_PASSWORD),
            ("repeat", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    (lab, d, b)
}

/// A panel member with a role of `level` and a current (argon2) password.
pub fn panel_member(lab: &Lab, id: i64, level: i64, email: &str, password: &str) {
    let hash = fabgate::passwords::hash(password);
    let db = lab.db();
    db.execute(
        "INSERT INTO roles (role_id, role_name, backend_admin, panel_level) VALUES (?1, ?2, 1, ?3)",
        rusqlite::params![100 + id, format!("level {level} #{id}"), level],
    )
    .unwrap();
    db.execute(
        "INSERT INTO members (member_id, name, role_id, email, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        rusqlite::params![id, format!("M{id}"), 100 + id, email, hash],
    )
    .unwrap();
}

/// A route with its `*` replaced by something that exists in fixture F (plus the
/// intervention and outbox row the test adds).
fn concrete(path: &str) -> String {
    let id = match path.split('/').nth(1).unwrap_or("") {
        "members" => "3",
        "roles" => "2",
        "maintenance" if path.contains("interventions") => "1",
        "outbox" => "1",
        "exports" => return path.replace('*', "uses.csv"),
        _ => "1",
    };
    path.replace('*', id)
}

fn call(b: &mut Browser, method: &str, path: &str) -> Page {
    if path == "/events" {
        let status = b.get_status(path);
        let body = if status == 403 {
            DENIED.to_string()
        } else {
            String::new()
        };
        let location = (status == 303).then(|| "/login".to_string());
        return Page {
            status,
            location,
            headers: Vec::new(),
            body,
        };
    }
    match method {
        "GET" => b.get(path),
        // A wrong CSRF token: a POST the guard lets through is then refused as an expired
        // form, so walking the table changes nothing in the lab.
        _ => b.post(path, &[("csrf", "not-the-token")]),
    }
}

#[test]
fn every_route_needs_its_capability_and_nothing_else() {
    let (lab, d, mut admin) = secure_lab();
    panel_member(&lab, 50, 1, "viewer@lab.test", "viewer pass 1");
    panel_member(&lab, 51, 2, "staff@lab.test", "staff pass 12");
    panel_member(&lab, 52, 3, "admin2@lab.test", "admin pass 12");
    let mut viewer = Browser::tls(d.panel);
    viewer.login("viewer@lab.test", "viewer pass 1");
    let mut staff = Browser::tls(d.panel);
    staff.login("staff@lab.test", "staff pass 12");
    let mut admin2 = Browser::tls(d.panel);
    admin2.login("admin2@lab.test", "admin pass 12");
    lab.sql(&format!(
        "INSERT INTO interventions (intervention_id, maintenance_id, machine_id, member_id, timestamp)
         VALUES (1, 1, 4, 3, {t});
         INSERT OR IGNORE INTO outbox (id, kind, payload, created_at, next_attempt_at, state)
         VALUES (1, 'webhook', '{{}}', {t}, {t}, 'failed');",
        t = now()
    ));
    let mut nobody = Browser::tls(d.panel);
    let mut checked = 0;
    for route in ROUTES {
        // Walked last: it ends the session.
        if route.path == "/logout" {
            continue;
        }
        let path = concrete(route.path);
        for (cap, b) in [
            (None, &mut nobody),
            (Some(Capability::Viewer), &mut viewer),
            (Some(Capability::Staff), &mut staff),
            (Some(Capability::Administrator), &mut admin2),
        ] {
            let page = call(b, route.method, &path);
            let allowed = route.need.allows(cap);
            let refused_by_guard = page.status == 403 && page.body.contains(DENIED);
            let to_login = page.location.as_deref() == Some("/login")
                || (page.status == 403 && page.body.contains("Log in first"));
            match (allowed, cap) {
                (true, _) => {
                    assert!(
                        !(refused_by_guard || cap.is_some() && to_login),
                        "{} {path} as {cap:?}: {} {:?}",
                        route.method,
                        page.status,
                        page.location
                    );
                    // Links with their own secret answer 404 to a made-up one.
                    if route.need != Need::Public {
                        assert_ne!(page.status, 404, "{} {path} as {cap:?}", route.method);
                    }
                }
                (false, None) => assert!(to_login, "{} {path} anonymous", route.method),
                (false, Some(_)) => {
                    assert!(
                        refused_by_guard,
                        "{} {path} as {cap:?}: {}",
                        route.method, page.status
                    )
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * (ROUTES.len() - 1));
    // Not in the table: nobody gets anything.
    assert_eq!(admin.get("/debug").status, 404);
    assert_eq!(staff.get("/members/3/secret").status, 404);
    // The same refusals hold with a real CSRF token, and nothing changed.
    staff.get("/members");
    let p = staff.post("/settings/email", &[("smtp_host", "evil.example")]);
    assert_eq!(p.status, 403);
    let p = staff.post("/members/1/password", &[]);
    assert_eq!(p.status, 403);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM settings WHERE key = 'smtp_host'"),
        0
    );
    // Staff manage members, but not panel accounts and not panel roles.
    let admin_id = lab.count("SELECT member_id FROM members WHERE email = 'admin@fabgate.local'");
    for path in [
        format!("/members/{admin_id}/edit"),
        format!("/members/{admin_id}/disable"),
        format!("/members/{admin_id}/delete"),
    ] {
        let p = staff.post(&path, &[("name", "Pwned"), ("role", "3")]);
        assert!(
            p.status == 403 && p.body.contains(DENIED),
            "{path}: {}",
            p.status
        );
    }
    let p = staff.post(
        "/members/3/edit",
        &[("name", "Carla"), ("surname", "C"), ("role", "152")],
    );
    assert!(p.status == 403 && p.body.contains(DENIED), "{}", p.status);
    assert_eq!(
        lab.count("SELECT role_id FROM members WHERE member_id = 3"),
        3
    );
    // ...while an ordinary member edit by staff goes through.
    staff.get("/members/3/edit");
    let p = staff.post(
        "/members/3/edit",
        &[("name", "Carla"), ("surname", "Changed"), ("role", "3")],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM members WHERE member_id = 3 AND surname = 'Changed'"),
        1
    );
    // Logging out needs only a session.
    viewer.get("/");
    assert_eq!(viewer.post("/logout", &[]).status, 303);
    assert!(ROUTES
        .iter()
        .any(|r| r.path == "/logout" && r.need == Need::Session));
}

#[test]
fn roles_get_their_capability_on_the_roles_page_and_imported_admins_stay_admins() {
    let (lab, _d, mut admin) = secure_lab();
    admin.get("/roles/new");
    let p = admin.post("/roles/new", &[("name", "desk"), ("panel_level", "1")]);
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        lab.count("SELECT panel_level * 10 + backend_admin FROM roles WHERE role_name = 'desk'"),
        11
    );
    // FabOMatic's way of saying "may log in" (what the importer writes): its reserved
    // admin role and roles named like it are administrators, others staff.
    lab.sql(
        "INSERT INTO roles (role_name, backend_admin, reserved) VALUES ('FabOMatic admins', 1, 1);
         INSERT INTO roles (role_name, backend_admin) VALUES ('Amministratori', 1), ('Trainers', 1);
         UPDATE roles SET backend_admin = 1 WHERE role_name = 'users';",
    );
    for (name, level) in [
        ("FabOMatic admins", 3),
        ("Amministratori", 3),
        ("Trainers", 2),
        ("users", 2),
    ] {
        assert_eq!(
            lab.count(&format!(
                "SELECT panel_level FROM roles WHERE role_name = '{name}'"
            )),
            level,
            "{name}"
        );
    }
    lab.sql("UPDATE roles SET backend_admin = 0 WHERE role_name = 'Trainers'");
    assert_eq!(
        lab.count("SELECT panel_level FROM roles WHERE role_name = 'Trainers'"),
        0
    );
}
