//! Readers wired to the Pi, through the real daemon binary: the simulated MFRC522 (the
//! real driver against the register-level chip simulation) and the simulated line
//! reader at the entrance, closing time, the lone-working rule over MQTT, and machines
//! wired to the Pi switching their (simulated) relays.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Waits until `f` holds (5 s).
#[track_caller]
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[track_caller]
fn must_log(d: &TestDaemon, needle: &str) {
    assert!(d.wait_log(needle), "no log line with {needle:?}");
}

fn file(lab: &Lab, name: &str) -> PathBuf {
    lab.dir.path().join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A lab with fixture F and these readers/presence settings appended to its config.
fn lab_with(extra: &str) -> Lab {
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = extra.replace("DIR", &lab.dir.path().display().to_string());
    lab
}

fn present_ids(lab: &Lab) -> Vec<i64> {
    let v: Value = lab.json(&["presence", "list", "--json"]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["member_id"].as_i64().unwrap())
        .collect()
}

const ENTRANCE: &str = r#"
[[readers]]
name = "door"
kind = "mfrc522-sim"
role = "entrance"
path = "DIR/door-card"
poll_ms = 20
repeat_ms = 300

[[readers]]
name = "desk"
kind = "sim"
role = "entrance"
path = "DIR/desk-taps"
poll_ms = 20
repeat_ms = 300
"#;

#[test]
fn entrance_taps_sign_in_and_out() {
    let lab = lab_with(ENTRANCE);
    let d = lab.start();
    must_log(&d, "reader door: MFRC522 v2.0 on simulated SPI");
    must_log(&d, "reader desk: simulated reader");

    // The simulated MFRC522: the card lies on the antenna for a few polls.
    let out = lab.ok(&["reader", "tap", "AABBCCD3", "--reader", "door"]);
    assert!(out.contains("presented to reader door"), "{out}");
    must_log(&d, "entrance door: member 3 signed in");
    assert_eq!(present_ids(&lab), vec![3]);
    let list = lab.ok(&["presence", "list"]);
    assert!(
        list.contains("Carla C") && list.contains("reader:door"),
        "{list}"
    );

    // Tap again: signed out.
    std::thread::sleep(Duration::from_millis(350));
    lab.ok(&["reader", "tap", "aabbccd3", "--reader", "door"]);
    must_log(&d, "entrance door: member 3 signed out");
    assert!(present_ids(&lab).is_empty());

    // Signed in elsewhere (the CLI here, the panel later): the tap signs out.
    lab.ok(&["presence", "sign-in", "aabbccd4"]);
    assert_eq!(present_ids(&lab), vec![4]);
    lab.ok(&["reader", "tap", "aabbccd4", "--reader", "desk"]);
    must_log(&d, "entrance desk: member 4 signed out");
    assert!(present_ids(&lab).is_empty());

    // Unknown card: recorded without a machine. Disabled member: refused.
    lab.ok(&["reader", "tap", "deadbeef", "--reader", "desk"]);
    must_log(&d, "entrance desk: unknown card deadbeef");
    assert_eq!(
        lab.count(
            "SELECT COUNT(*) FROM unknown_cards WHERE card_uid = 'deadbeef' AND machine_id IS NULL"
        ),
        1
    );
    lab.ok(&["reader", "tap", "aabbccd5", "--reader", "desk"]);
    must_log(&d, "entrance desk: member 5 refused: member is disabled");

    let history: Value = lab.json(&["presence", "history", "--since", "1d", "--json"]);
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{history}");
    assert_eq!(rows[0]["in_source"], "cli");
    assert_eq!(rows[0]["out_source"], "reader:desk");
    assert_eq!(rows[1]["in_source"], "reader:door");
    assert_eq!(rows[1]["automatic"], false);
    // Two simulated readers: `reader tap` needs a name.
    assert!(lab
        .fail(&["reader", "tap", "aabbccd3"])
        .contains("--reader"));
}

/// "HH:MM:SS" of the Pi's local time `secs` from now.
fn local_time_in(secs: i64) -> String {
    let s = fabgate::lab::presence::local_seconds_of_day(now() + secs);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

#[test]
fn closing_time_signs_everyone_out_automatically() {
    let mut lab = lab_with("");
    lab.sql("UPDATE members SET email = 'carla@lab.org', language = 'it' WHERE member_id = 3");
    lab.ok(&["presence", "sign-in", "aabbccd3"]);
    lab.ok(&["presence", "sign-in", "aabbccd1"]);
    // Times of day a few seconds ahead. The reminder only fires when its time passes
    // while the daemon runs: a start slower than that (a loaded CI machine) is not a
    // failure, it is tried again with later times.
    let mut attempt = 0;
    let d = loop {
        attempt += 1;
        let reminder = now() + 3;
        lab.extra_config = format!(
            "[presence]\nreminder_at = \"{}\"\nclosing_at = \"{}\"\n[sync]\nalerts = false\n",
            local_time_in(3),
            local_time_in(5)
        );
        let d = lab.start();
        if now() < reminder {
            break d;
        }
        assert!(attempt < 5, "the daemon never started within 3 s");
        drop(d);
    };
    let slow = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !d.log_contains(needle) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(d.log_contains(needle), "no log line with {needle:?}");
    };
    slow("presence: reminder for member 3");
    assert_eq!(present_ids(&lab).len(), 2, "the reminder signs nobody out");
    // Carla has an email: the reminder is queued in the outbox (once), in Italian; Anna
    // has none and gets no mail.
    slow("presence: 1 reminder emails queued");
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND payload LIKE '%carla@lab.org%' AND payload LIKE '%Sei ancora in laboratorio?%'"),
        1
    );
    assert_eq!(lab.count("SELECT COUNT(*) FROM outbox"), 1);
    slow("presence: closing time, 2 signed out");
    assert!(present_ids(&lab).is_empty());
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM presence WHERE automatic = 1 AND out_source = 'closing'"),
        2
    );
    let history = lab.ok(&["presence", "history"]);
    assert!(history.contains("closing (automatic)"), "{history}");
}

#[test]
fn lone_working_is_refused_over_mqtt_until_someone_else_is_in() {
    let lab = lab_with("");
    let out = lab.ok(&["machine-type", "add", "Welder", "--needs-second-person"]);
    assert!(out.contains("nobody else"), "{out}");
    let types: Value = lab.json(&["machine-type", "list", "--json"]);
    let welder = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Welder")
        .unwrap();
    assert_eq!(welder["needs_second_person"], true);
    lab.ok(&[
        "machine", "add", "WELDER 1", "--type", "Welder", "--id", "5",
    ]);
    lab.ok(&["authorize", "aabbccd3", "5"]);
    let d = lab.start();
    let board = d.board("5");
    let nobody = r#"{"request_ok": true, "is_valid": false, "name": "Nobody else in", "missing_auth": false, "level": 0}"#;
    assert_json(
        &board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#),
        nobody,
    );
    // Staff are not exempt.
    assert_json(
        &board.must(r#"{"action":"checkuser","uid":"aabbccd1"}"#),
        r#"{"request_ok": true, "is_valid": false, "name": "Nobody else in", "missing_auth": false, "level": 0}"#,
    );
    // Carla alone in the building: still nobody else.
    lab.ok(&["presence", "sign-in", "aabbccd3"]);
    assert_json(
        &board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#),
        nobody,
    );
    // Dario comes in: Carla may weld (and Anna, with Carla in).
    lab.ok(&["presence", "sign-in", "aabbccd4"]);
    assert_json(
        &board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Carla", "missing_auth": false, "level": 1}"#,
    );
    // Not authorized stays not authorized; other machines are untouched.
    assert_json(
        &board.must(r#"{"action":"checkuser","uid":"aabbccd4"}"#),
        r#"{"request_ok": true, "is_valid": false, "name": "User not authorized", "missing_auth": true, "level": 0}"#,
    );
    lab.ok(&["presence", "sign-out", "aabbccd4"]);
    assert_json(
        &board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#),
        nobody,
    );
    // A board cannot check presence offline: it caches no card for such a machine.
    assert_json(
        &board.must(r#"{"action":"synccache"}"#),
        r#"{"request_ok": true, "cards": []}"#,
    );
}

const MACHINES: &str = r#"
[[readers]]
name = "laser"
kind = "sim"
role = "machine"
machine = 1
path = "DIR/laser-taps"
relay_file = "DIR/laser-relay"
poll_ms = 20
repeat_ms = 300

[[readers]]
name = "drill"
kind = "mfrc522-sim"
role = "machine"
machine = 2
path = "DIR/drill-card"
relay_file = "DIR/drill-relay"
poll_ms = 20
repeat_ms = 300
"#;

fn open_uses(lab: &Lab, machine: i64) -> i64 {
    lab.count(&format!(
        "SELECT COUNT(*) FROM uses WHERE machine_id = {machine} AND end_ts IS NULL"
    ))
}

#[test]
fn machines_wired_to_the_pi_start_and_stop_with_their_relays() {
    let lab = lab_with(MACHINES);
    let (laser, drill) = (file(&lab, "laser-relay"), file(&lab, "drill-relay"));
    let d = lab.start();
    wait_until("both relays off at start", || {
        read(&laser) == "off" && read(&drill) == "off"
    });

    // Dario is not authorized on the laser: refused, power stays off.
    lab.ok(&["reader", "tap", "aabbccd4", "--reader", "laser"]);
    must_log(
        &d,
        "machine 1 (reader laser): card aabbccd4 refused: no authorization",
    );
    assert_eq!(read(&laser), "off");

    // Carla starts the laser: use opened, power on.
    lab.ok(&["reader", "tap", "aabbccd3", "--reader", "laser"]);
    must_log(&d, "machine 1 (reader laser): card aabbccd3 started");
    wait_until("laser relay on", || read(&laser) == "on");
    assert_eq!(open_uses(&lab, 1), 1);
    // Another card on the busy laser changes nothing.
    lab.ok(&["reader", "tap", "aabbccd1", "--reader", "laser"]);
    must_log(
        &d,
        "machine 1 (reader laser): card aabbccd1 refused: machine in use",
    );
    let uses: Value = lab.json(&["uses", "list", "--open", "--json"]);
    assert_eq!(uses.as_array().unwrap().len(), 1, "{uses}");

    // Dario on the drill (open type, grace 0) through the simulated MFRC522.
    lab.ok(&["reader", "tap", "aabbccd4", "--reader", "drill"]);
    must_log(&d, "machine 2 (reader drill): card aabbccd4 started");
    wait_until("drill relay on", || read(&drill) == "on");

    // Carla stops the laser: use closed; the LASER type's 5-minute grace keeps power on.
    std::thread::sleep(Duration::from_millis(1100));
    lab.ok(&["reader", "tap", "aabbccd3", "--reader", "laser"]);
    must_log(&d, "machine 1 (reader laser): card aabbccd3 stopped after");
    assert_eq!(open_uses(&lab, 1), 0);
    let (start, end): (i64, i64) = lab
        .db()
        .query_row(
            "SELECT start_ts, end_ts FROM uses WHERE machine_id = 1 AND member_id = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(end - start >= 1, "{start}..{end}");
    assert_eq!(read(&laser), "on");

    // Dario stops the drill: no grace, power off at once.
    lab.ok(&["reader", "tap", "aabbccd4", "--reader", "drill"]);
    must_log(&d, "machine 2 (reader drill): card aabbccd4 stopped after");
    wait_until("drill relay off", || read(&drill) == "off");
    assert_eq!(open_uses(&lab, 2), 0);

    // Both machines show their "board" like any other (flushed at stop).
    d.stop();
    let boards: Value = lab.json(&["board", "list", "--json"]);
    let text = boards.to_string();
    assert!(text.contains("local reader"), "{text}");
    assert_eq!(
        lab.count(&format!(
            "SELECT COUNT(*) FROM machines WHERE machine_id IN (1, 2) AND last_seen >= {}",
            now() - 60
        )),
        2
    );
}

#[test]
fn a_reader_that_cannot_open_leaves_the_daemon_serving() {
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = "[[readers]]\nname = \"door\"\nkind = \"wedge\"\nrole = \"entrance\"\ndevice = \"/dev/input/no-such-event\"\n".into();
    let d = lab.start();
    must_log(&d, "reader door: /dev/input/no-such-event");
    assert_json(
        &d.board("1").must(r#"{"action":"checkmachine"}"#),
        r#"{"request_ok": true, "is_valid": true, "maintenance": false, "allowed": true, "name": "LASER 1", "logoff": 120, "type": 1, "grace": 5, "description": ""}"#,
    );
}
