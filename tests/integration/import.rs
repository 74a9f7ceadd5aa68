//! `fabgate import-fabomatic` end to end: the real CLI imports a FabOMatic database, then
//! the real daemon serves its boards with the imported members and machines.

use crate::common::*;

fn sample(version: &str) -> String {
    format!(
        "{}/../shared/fabomatic-databases/database-{version}.db",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn imported_lab_serves_its_boards() {
    let lab = Lab::new();
    let out = lab.ok(&["import-fabomatic", &sample("0.1.8")]);
    assert!(out.contains("21989"), "{out}");
    assert_eq!(lab.count("SELECT COUNT(*) FROM uses"), 21_989);
    let d = lab.start();
    // Mario (card 1234) has an authorize-all role in the sample: level 2 on any machine.
    let b = d.board("1");
    let r = b.must(r#"{"action":"checkuser","uid":"1234"}"#);
    assert_eq!(r["is_valid"], true, "{r}");
    assert_eq!(r["name"], "Mario");
    assert_eq!(r["level"], 2);
    let m = b.must(r#"{"action":"checkmachine"}"#);
    assert_eq!(m["name"], "LASER 1");
    assert_eq!(m["request_ok"], true);
    // Usage continues on top of the imported history.
    b.must(r#"{"action":"startuse", "uid":"1234"}"#);
    let r = b.must(r#"{"action":"stopuse", "uid":"1234","duration":60}"#);
    assert_eq!(r["message"], "Duration 60 seconds");
    assert_eq!(lab.count("SELECT COUNT(*) FROM uses"), 21_990);
}

#[test]
fn import_refuses_a_lab_with_data_unless_replace() {
    let lab = Lab::new();
    lab.ok(&["import-fabomatic", &sample("0.4.0")]);
    let err = lab.fail(&["import-fabomatic", &sample("0.1.5")]);
    assert!(err.contains("--replace"), "{err}");
    lab.ok(&["import-fabomatic", &sample("0.1.5"), "--replace"]);
    let err = lab.fail(&["import-fabomatic", "/nonexistent/file.db"]);
    assert!(err.contains("/nonexistent/file.db"), "{err}");
}

#[test]
fn every_sample_imports_through_the_cli() {
    for v in [
        "0.0.18", "0.1.5", "0.1.7", "0.1.8", "0.2.5", "0.2.7", "0.2.11", "0.4.0",
    ] {
        let lab = Lab::bare();
        let out = lab.ok(&["import-fabomatic", &sample(v)]);
        assert!(out.contains("members"), "{v}: {out}");
        let src = rusqlite::Connection::open_with_flags(
            sample(v),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        for (ours, theirs) in [
            ("members", "users"),
            ("machines", "machines"),
            ("uses", "uses"),
            ("interventions", "interventions"),
        ] {
            let want: i64 = src
                .query_row(&format!("SELECT COUNT(*) FROM {theirs}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(
                lab.count(&format!("SELECT COUNT(*) FROM {ours}")),
                want,
                "{v}: {ours}"
            );
        }
    }
}

#[test]
fn importing_after_a_first_start_needs_no_replace() {
    // Someone tries fabgate once (the first admin is created), then imports their lab.
    let lab = Lab::bare();
    let d = lab.start();
    assert!(d.admin_password.is_some());
    d.stop();
    lab.ok(&["import-fabomatic", &sample("0.1.5")]);
    // The sample's admin role gets panel access (issue 12): its member with a password
    // and an email logs in, so no fresh first admin is made.
    let d = lab.start();
    assert!(d.admin_password.is_none());
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM roles WHERE role_name = 'admin' AND backend_admin = 1 AND reserved = 0"),
        1
    );
}
