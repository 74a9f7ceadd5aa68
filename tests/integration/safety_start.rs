//! Faults at start (issue 12): a missing, emptied or damaged database where a lab existed
//! stops the daemon with the restore command instead of becoming a new, empty lab that
//! answers every board with "Invalid machine ID".

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the daemon on `lab` with `args`; it must exit non-zero within the timeout.
/// Returns its stderr.
fn start_refused(lab: &Lab, args: &[&str]) -> String {
    let mut child = lab
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!status.success(), "start should fail: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the daemon started instead of refusing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A lab that ran once (fixture F, a use recorded) and made its first daily backup.
fn lab_that_ran() -> (Lab, PathBuf) {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start();
    let b = d.board("1");
    b.must(r#"{"action":"startuse","uid":"aabbccd3"}"#);
    b.must(r#"{"action":"stopuse","uid":"aabbccd3","duration":7}"#);
    let backups = lab.dir.path().join("backups");
    let deadline = Instant::now() + TIMEOUT;
    while newest(&backups).is_none() {
        assert!(Instant::now() < deadline, "no daily backup at first start");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.stop();
    let backup = newest(&backups).unwrap();
    (lab, backup)
}

fn newest(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    v.sort();
    v.pop()
}

fn restore_command_in(err: &str, backup: &Path) {
    assert!(
        err.contains(&format!("restore {}", backup.display())),
        "no restore command for {}: {err}",
        backup.display()
    );
}

#[test]
fn safety_a_deleted_database_is_refused_and_the_named_backup_restores_it() {
    let (lab, backup) = lab_that_ran();
    std::fs::remove_file(lab.db_path()).unwrap();
    let err = start_refused(&lab, &[]);
    assert!(err.contains("refusing to start a new, empty lab"), "{err}");
    assert!(err.contains("--new-lab"), "{err}");
    restore_command_in(&err, &backup);
    assert!(!lab.db_path().exists(), "the refusal created a database");

    // The command it names works, and the lab is back with its history.
    lab.ok(&["restore", backup.to_str().unwrap()]);
    let d = lab.start();
    // The first daily backup is made at the first start, before the use.
    assert!(lab.count("SELECT COUNT(*) FROM machines") > 0);
    let reply = d.board("1").must(r#"{"action":"checkmachine"}"#);
    assert_eq!(reply["is_valid"], true, "{reply}");
    assert!(d.admin_password.is_none(), "a restored lab got a new admin");
}

#[test]
fn safety_an_emptied_database_is_refused_unless_new_lab() {
    let (lab, backup) = lab_that_ran();
    std::fs::File::create(lab.db_path()).unwrap(); // truncated to 0 bytes
    let err = start_refused(&lab, &[]);
    assert!(err.contains("is empty (0 bytes)"), "{err}");
    restore_command_in(&err, &backup);

    // Told explicitly: a new, empty lab.
    let log = start_ready(&lab, &["--new-lab"]);
    assert!(
        log.contains("--new-lab: starting a new, empty lab"),
        "{log}"
    );
    assert_eq!(lab.count("SELECT COUNT(*) FROM machines"), 0);
}

/// Starts the daemon with `args` until its ready line, stops it; returns its log.
fn start_ready(lab: &Lab, args: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = lab
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[fabgate] {line}");
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + TIMEOUT;
    while !log.contains("ready: MQTT on") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no ready line: {log}");
            }
        }
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success(), "{log}");
    log
}

#[test]
fn safety_a_marker_without_backups_is_enough_to_refuse() {
    let lab = Lab::new();
    let d = lab.start();
    d.stop();
    std::fs::remove_dir_all(lab.dir.path().join("backups")).unwrap();
    std::fs::remove_file(lab.dir.path().join("fabgate.lock")).unwrap();
    std::fs::remove_file(lab.db_path()).unwrap();
    for companion in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{companion}", lab.db_path().display()));
    }
    let err = start_refused(&lab, &[]);
    assert!(
        err.contains("fabgate.lab says a lab was created here"),
        "{err}"
    );
    assert!(err.contains("no daily backup in"), "{err}");
}

/// 64 bytes of garbage over the `uses_open` index page: the start stops with the path,
/// what `quick_check` found and the restore command, instead of refusing writes forever.
#[test]
fn safety_a_damaged_index_stops_the_start_with_the_restore_command() {
    let (lab, backup) = lab_that_ran();
    let (page, size): (i64, i64) = {
        let db = lab.db();
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let page = db
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'uses_open'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size = db.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (page, size)
    };
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(lab.db_path())
            .unwrap();
        f.seek(SeekFrom::Start(((page - 1) * size) as u64)).unwrap();
        f.write_all(&[0xA5; 64]).unwrap();
    }
    let err = start_refused(&lab, &[]);
    assert!(err.contains("is damaged (PRAGMA quick_check)"), "{err}");
    assert!(err.contains(&lab.db_path().display().to_string()), "{err}");
    assert!(!err.contains("is the directory writable"), "{err}");
    restore_command_in(&err, &backup);
}

/// Garbage over the whole header: SQLite's "not a database", with the damage hint.
#[test]
fn safety_a_garbage_file_is_named_damaged_not_unwritable() {
    let (lab, backup) = lab_that_ran();
    std::fs::write(lab.db_path(), vec![0x5Au8; 16384]).unwrap();
    let err = start_refused(&lab, &[]);
    assert!(err.contains("damaged"), "{err}");
    assert!(!err.contains("is the directory writable"), "{err}");
    restore_command_in(&err, &backup);
}
