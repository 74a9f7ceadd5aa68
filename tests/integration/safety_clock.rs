//! Clock jumps (issue 12) with the real daemon under libfaketime (Debian's `faketime`,
//! installed by `.ci/run`): its wall clock jumps when the test rewrites the timestamp
//! file, its monotonic clock does not (`FAKETIME_DONT_FAKE_MONOTONIC`). Whatever the jump,
//! one real session is one row with its real length, and machine hours count it once.

use crate::common::browser::Browser;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LIBS: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
];

fn libfaketime() -> Option<&'static str> {
    let lib = LIBS.iter().copied().find(|p| Path::new(p).exists());
    if lib.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "libfaketime missing in CI: .ci/run installs Debian's faketime"
        );
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install faketime)");
    }
    lib
}

/// A lab with fixture F whose daemon runs on a fake wall clock set by `offset`
/// (libfaketime's "+0", "-30d" …). `clock_sync` is `[store] clock_sync`.
struct FakeLab {
    lab: Lab,
    clock: PathBuf,
    d: TestDaemon,
}

impl FakeLab {
    fn start(lib: &str, offset: &str, clock_sync: &str) -> FakeLab {
        let lab = Lab::new();
        fixture_f(&lab);
        let clock = lab.dir.path().join("faketime");
        std::fs::write(&clock, offset).unwrap();
        std::fs::write(
            lab.config_path(),
            format!(
                "[store]\ndata_dir = {dir:?}\ndatabase = \"fabgate.db\"\nflush_interval_s = 3600\n\
                 synchronous = \"normal\"\nclock_sync = {clock_sync:?}\n\n\
                 [broker]\nlisten = \"127.0.0.1:0\"\n\n\
                 [protocol]\nhousekeeping_interval_ms = 100\nstats_interval_s = 1\norphan_after_s = 60\n\n\
                 [web]\nlisten = \"127.0.0.1:0\"\nworkers = 2\nhttps = false\n\n\
                 [metrics]\nlisten = \"127.0.0.1:0\"\n\n\
                 [log]\nlevel = \"debug\"\n",
                dir = lab.dir.path().display().to_string(),
            ),
        )
        .unwrap();
        let d = TestDaemon::spawn_env(
            &lab.config_path(),
            &[
                ("LD_PRELOAD", lib),
                ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
                ("FAKETIME_NO_CACHE", "1"),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        );
        FakeLab { lab, clock, d }
    }

    fn set_clock(&self, offset: &str) {
        std::fs::write(&self.clock, offset).unwrap();
    }

    /// (start, last_seen, end) of every use of machine 1.
    fn uses(&self) -> Vec<(i64, i64, Option<i64>)> {
        let db = self.lab.db();
        let mut st = db
            .prepare(
                "SELECT start_ts, last_seen, end_ts FROM uses WHERE machine_id = 1 ORDER BY use_id",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn hours(&self) -> f64 {
        self.lab
            .db()
            .query_row(
                "SELECT machine_hours FROM machines WHERE machine_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }
}

fn wait_log(d: &TestDaemon, needle: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    while !d.log_contains(needle) {
        assert!(Instant::now() < deadline, "no log line {needle:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// +1 day under an open use (orphans close after 60 s here): no orphan, no second row.
#[test]
fn safety_a_day_forward_under_an_open_use_keeps_one_session() {
    let Some(lib) = libfaketime() else { return };
    let f = FakeLab::start(lib, "+0", "none");
    let b = f.d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    let started = f.uses()[0].0;
    b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":5}"#);
    f.set_clock("+1d");
    wait_log(&f.d, "clock jump of 86400 s: 1 open uses", TIMEOUT);
    // A few orphan checks pass on the new clock.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !f.d.log_contains("closed orphan use"),
        "closed as an orphan"
    );
    b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":15}"#);
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":22}"#),
        r#"{"request_ok": true, "message": "Duration 22 seconds"}"#,
    );
    let uses = f.uses();
    assert_eq!(uses.len(), 1, "{uses:?}");
    let (start, seen, end) = uses[0];
    assert_eq!(start, started + 86_400, "moved with the clock");
    assert_eq!(end, Some(start + 22));
    assert!(seen >= start, "{uses:?}");
    assert!(
        (f.hours() - 22.0 / 3600.0).abs() < 1e-9,
        "hours {}",
        f.hours()
    );
}

/// −1 hour: the open use moves back with the clock, so no row has its heartbeat before
/// its start and the history stays in order.
#[test]
fn safety_an_hour_back_under_an_open_use_keeps_one_ordered_session() {
    let Some(lib) = libfaketime() else { return };
    let f = FakeLab::start(lib, "+0", "none");
    let b = f.d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    let started = f.uses()[0].0;
    f.set_clock("-1h");
    wait_log(&f.d, "clock jump of -3600 s: 1 open uses", TIMEOUT);
    b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":10}"#);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":22}"#);
    // The heartbeat reaches the database at shutdown's flush.
    let (lab, d) = (f.lab, f.d);
    d.stop();
    let db = lab.db();
    let (start, seen, end): (i64, i64, Option<i64>) = db
        .query_row(
            "SELECT start_ts, last_seen, end_ts FROM uses WHERE machine_id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        1
    );
    assert_eq!(start, started - 3600);
    assert_eq!(end, Some(start + 22));
    assert!(seen >= start, "last_seen {seen} < start {start}");
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE last_seen < start_ts"),
        0
    );
}

/// A Pi boots a month behind and NTP corrects it later: until then the dashboard says the
/// clock is not synchronised and time-based jobs (the first backup) wait; what was
/// recorded on the stale clock moves to the real time, one row per session.
#[test]
fn safety_boot_before_ntp_waits_and_moves_the_stale_rows() {
    let Some(lib) = libfaketime() else { return };
    let synced = tempfile::tempdir().unwrap();
    let flag = synced.path().join("synchronized");
    let f = FakeLab::start(lib, "-30d", &format!("file:{}", flag.display()));
    let b = f.d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":10}"#);
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    let stale = f.uses();
    assert!(stale[0].0 < now() - 29 * 86_400, "{stale:?}");

    let mut browser = Browser::new(f.d.panel);
    let first = f.d.admin_password.clone().expect("one-time password");
    browser.login("admin@fabgate.local", &first);
    browser.get("/password");
    browser.post(
        "/password",
        &[
            ("current", &first),
            ("new", "correct horse 42"),
            ("repeat", "correct horse 42"),
        ],
    );
    let home = browser.get("/").body;
    assert!(home.contains("Clock not synchronised"), "{home}");
    let backups = f.lab.dir.path().join("backups");
    assert!(
        std::fs::read_dir(&backups).map_or(true, |mut d| d.next().is_none()),
        "a backup was made on the stale clock"
    );

    // NTP steps the clock, then says it is synchronised.
    f.set_clock("+0");
    wait_log(
        &f.d,
        "clock jump of 2592000 s: 1 open uses and 1 uses recorded on the unsynchronised clock",
        TIMEOUT,
    );
    std::fs::write(&flag, "").unwrap();
    wait_log(&f.d, "the clock is synchronised", TIMEOUT);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":22}"#);
    let uses = f.uses();
    assert_eq!(uses.len(), 2, "{uses:?}");
    for (start, seen, end) in &uses {
        assert!(
            (now() - start).abs() < 120,
            "not moved to the real time: {uses:?}"
        );
        assert!(
            seen >= start && end.is_some_and(|e| e >= *start),
            "{uses:?}"
        );
    }
    assert_eq!(uses[0].2, Some(uses[0].0 + 10));
    assert_eq!(uses[1].2, Some(uses[1].0 + 22));
    assert!(
        (f.hours() - 32.0 / 3600.0).abs() < 1e-9,
        "hours {}",
        f.hours()
    );
    assert!(!browser.get("/").body.contains("Clock not synchronised"));
    // The first backup follows once the clock is right.
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::read_dir(&backups).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            Instant::now() < deadline,
            "no backup after the clock synchronised"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
