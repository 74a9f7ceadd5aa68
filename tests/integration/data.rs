//! Data safety and personal data through the real CLI and daemon: backup while boards
//! write, restore (refused while the daemon runs), daily backups with rotation, the
//! retention purge, member export and erasure.

use crate::common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn backup_count(path: &std::path::Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn backup_while_a_board_writes() {
    let (lab, d) = start_f();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let b = d.board("1");
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                b.must(r#"{"action":"startuse","uid":"aabbccd3"}"#);
                b.must(r#"{"action":"stopuse","uid":"aabbccd3","duration":5}"#);
                n += 1;
            }
            n
        })
    };
    // The board is writing before the first backup.
    lab.wait_count_until("SELECT COUNT(*) FROM uses", |n| n >= 2);
    let mut last = 0;
    for i in 0..3 {
        let path = lab.dir.path().join(format!("b{i}.db"));
        let out = lab.ok(&["backup", path.to_str().unwrap()]);
        assert!(out.contains("written and checked"), "{out}");
        let uses = backup_count(&path, "SELECT COUNT(*) FROM uses");
        assert!(uses >= last, "backups go back in time: {uses} < {last}");
        last = uses;
        // A self-contained file: no WAL companion needed.
        assert!(!lab.dir.path().join(format!("b{i}.db-wal")).exists());
    }
    stop.store(true, Ordering::Relaxed);
    let cycles = writer.join().unwrap();
    assert!(cycles > 0);
    assert!(last >= 1, "the board's uses are in the backups");
    assert!(last <= lab.count("SELECT COUNT(*) FROM uses"));
}

#[test]
fn restore_is_refused_while_the_daemon_runs_and_keeps_the_old_database() {
    let (lab, d) = start_f();
    let backup = lab.dir.path().join("before.db");
    lab.ok(&["backup", backup.to_str().unwrap()]);
    lab.ok(&["machine", "add", "Extra", "--type", "LASER"]);
    let err = lab.fail(&["restore", backup.to_str().unwrap()]);
    assert!(err.contains("daemon is running"), "{err}");
    assert_eq!(lab.count("SELECT COUNT(*) FROM machines"), 5);

    d.stop();
    let junk = lab.dir.path().join("junk.db");
    std::fs::write(&junk, "hello").unwrap();
    let err = lab.fail(&["restore", junk.to_str().unwrap()]);
    assert!(err.contains("not a fabgate database"), "{err}");

    let out = lab.ok(&["restore", backup.to_str().unwrap()]);
    assert!(out.contains("previous database is kept as"), "{out}");
    assert_eq!(lab.count("SELECT COUNT(*) FROM machines"), 4);
    let kept: Vec<_> = std::fs::read_dir(lab.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fabgate.db.before-restore-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(backup_count(&kept[0], "SELECT COUNT(*) FROM machines"), 5);
    // The restored lab serves boards.
    let d = lab.start();
    d.board("1").must(r#"{"action":"checkmachine"}"#);
}

#[test]
fn daily_backups_rotate_to_keep_n() {
    let mut lab = Lab::new();
    fixture_f(&lab);
    let dir = lab.dir.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    for day in 1..=9 {
        std::fs::write(
            dir.join(format!("fabgate-202001{day:02}T030000Z.db")),
            "old",
        )
        .unwrap();
    }
    std::fs::write(dir.join("keep-me.txt"), "not a backup").unwrap();
    lab.extra_config = "\n[backup]\nkeep = 3\n".into();
    let d = lab.start();
    assert!(d.wait_log("daily backup"), "no daily backup logged");
    assert!(d.wait_log("deleted old backup"));
    // The old ones go one by one: wait for the directory to be down to its count.
    let list = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let deadline = std::time::Instant::now() + WAIT;
    while list().len() > 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut names = list();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(
        &names[..2],
        ["fabgate-20200108T030000Z.db", "fabgate-20200109T030000Z.db"]
    );
    assert!(
        names[2].starts_with("fabgate-20") && names[2] > names[1],
        "{names:?}"
    );
    assert_eq!(names[3], "keep-me.txt");
    assert_eq!(
        backup_count(&dir.join(&names[2]), "SELECT COUNT(*) FROM machines"),
        4
    );
}

#[test]
fn purge_and_member_export_and_erase() {
    let lab = Lab::new();
    fixture_f(&lab);
    let old = now() - 400 * 86_400;
    lab.sql(&format!(
        "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES (3, 1, {old}, {old}, {old});
         INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES ('deadbeef', 1, {old}), ('aabbccd3', 1, {})",
        now()
    ));
    let out = lab.ok(&["purge"]);
    assert!(out.contains("anonymised 1 uses"), "{out}");
    assert!(out.contains("deleted 1 unknown cards"), "{out}");
    let anon = lab.count("SELECT member_id FROM members WHERE name = 'Anonymous'");
    assert_eq!(
        lab.count(&format!(
            "SELECT COUNT(*) FROM uses WHERE member_id = {anon}"
        )),
        1
    );

    let data = lab.json(&["member", "export", "aabbccd3"]);
    assert_eq!(data["profile"]["name"], "Carla");
    assert!(data["profile"].get("password_hash").is_none());
    assert_eq!(data["uses"].as_array().unwrap().len(), 1);
    assert_eq!(data["authorizations"].as_array().unwrap().len(), 3);
    assert_eq!(data["unknown_cards"].as_array().unwrap().len(), 1);

    let err = lab.fail(&["member", "erase", "aabbccd3"]);
    assert!(err.contains("--yes"), "{err}");
    let out = lab.ok(&["member", "erase", "aabbccd3", "--yes"]);
    assert!(out.contains("erased member 3"), "{out}");
    assert!(!out.contains("Carla"), "{out}");
    let row: (String, Option<String>, i64) = lab
        .db()
        .query_row(
            "SELECT name, card_uid, deleted FROM members WHERE member_id = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("Erased member".to_string(), None, 1));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE member_id = 3"),
        0
    );
    assert_eq!(
        lab.count(&format!(
            "SELECT COUNT(*) FROM uses WHERE member_id = {anon}"
        )),
        2
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM unknown_cards WHERE card_uid = 'aabbccd3'"),
        0
    );
    let err = lab.fail(&["member", "export", "aabbccd3"]);
    assert!(err.contains("no member"), "{err}");
}
