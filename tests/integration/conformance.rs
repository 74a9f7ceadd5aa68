//! protocol.md §7: every conformance scenario against the real daemon over TCP.
//! Replies are compared as JSON values; state changes are read from the SQLite file.

use crate::common::*;
use std::time::Duration;

const R1: &str = r#"{"request_ok": true, "is_valid": true, "maintenance": false, "allowed": true, "name": "LASER 1", "logoff": 120, "type": 1, "grace": 5, "description": ""}"#;
const R2: &str = r#"{"request_ok": true, "is_valid": true, "maintenance": true, "allowed": true, "name": "CNC 1", "logoff": 120, "type": 1, "grace": 5, "description": "Pulire piano"}"#;
const NOT_AUTH: &str = r#"{"request_ok": true, "is_valid": false, "name": "User not authorized", "missing_auth": true, "level": 0}"#;
const INVALID_MACHINE: &str = r#"{"request_ok": false, "message": "Invalid machine ID"}"#;

fn hours(lab: &Lab, machine: i64) -> f64 {
    lab.db()
        .query_row(
            "SELECT machine_hours FROM machines WHERE machine_id = ?1",
            [machine],
            |r| r.get(0),
        )
        .unwrap()
}

/// A time the daemon recorded lies within the test's own clock readings around the
/// exchange that recorded it (no fixed window a slow reply could leave).
#[track_caller]
fn within(before: i64, t: i64, after: i64) {
    assert!(before <= t && t <= after, "{t} not in {before}..={after}");
}

fn close_to(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// (start, last_seen, end, replay) of a use.
fn use_row(lab: &Lab, id: i64) -> (i64, i64, Option<i64>, Option<bool>) {
    lab.db()
        .query_row(
            "SELECT start_ts, last_seen, end_ts, replay FROM uses WHERE use_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

fn last_use_id(lab: &Lab) -> i64 {
    lab.count("SELECT MAX(use_id) FROM uses")
}

#[test]
fn scenario_01_02_03_checkmachine() {
    // protocol.md §7 #1, #2, #3
    let (lab, d) = start_f();
    let before = now();
    assert_json(&d.board("1").must(r#"{"action":"checkmachine"}"#), R1);
    assert_json(&d.board("4").must(r#"{"action":"checkmachine"}"#), R2);
    assert_json(
        &d.board("3").must(r#"{"action":"checkmachine"}"#),
        r#"{"request_ok": true, "is_valid": true, "maintenance": false, "allowed": false, "name": "PRINTER 1", "logoff": 1440, "type": 3, "grace": null, "description": ""}"#,
    );
    // last_seen is kept in memory and written at the next flush (here: at stop).
    let after = now();
    d.stop();
    for m in [1, 3, 4] {
        let seen = lab.count(&format!(
            "SELECT last_seen FROM machines WHERE machine_id = {m}"
        ));
        within(before, seen, after);
    }
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM machines WHERE machine_id = 2 AND last_seen IS NOT NULL"),
        0
    );
}

#[test]
fn scenario_04_unknown_machine_gets_invalid_machine_id() {
    // protocol.md §7 #4
    let (lab, d) = start_f();
    assert_json(
        &d.board("99").must(r#"{"action":"checkmachine"}"#),
        INVALID_MACHINE,
    );
    assert_json(
        &d.board("99")
            .must(r#"{"action":"checkuser","uid":"aabbccd1"}"#),
        INVALID_MACHINE,
    );
    assert_eq!(lab.count("SELECT COUNT(*) FROM unknown_cards"), 0);
}

#[test]
fn scenario_05_non_numeric_machine_id_is_dropped() {
    // protocol.md §7 #5
    let (_lab, d) = start_f();
    let b = d.board("abc");
    b.publish(r#"{"action":"checkmachine"}"#);
    b.expect_silence();
    // still serving
    assert_json(&d.board("1").must(r#"{"action":"checkmachine"}"#), R1);
}

#[test]
fn scenario_06_to_12_checkuser() {
    // protocol.md §7 #6 .. #12
    let (lab, d) = start_f();
    let m1 = d.board("1");
    assert_json(
        &m1.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Carla", "missing_auth": false, "level": 1}"#,
    );
    assert_json(
        &m1.must(r#"{"action":"checkuser","uid":"aabbccd1"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Anna", "missing_auth": false, "level": 2}"#,
    );
    // #8: unknown card, one row per attempt
    let before = now();
    for _ in 0..2 {
        assert_json(
            &m1.must(r#"{"action":"checkuser","uid":"deadbeef"}"#),
            r#"{"request_ok": true, "is_valid": false, "name": "Unknown", "missing_auth": false, "level": 0}"#,
        );
    }
    assert_eq!(
        lab.count(
            "SELECT COUNT(*) FROM unknown_cards WHERE card_uid = 'deadbeef' AND machine_id = 1"
        ),
        2
    );
    let t = lab.count("SELECT MAX(timestamp) FROM unknown_cards");
    within(before, t, now());
    // #9 unauthorized, #10 disabled and deleted
    for uid in ["aabbccd4", "aabbccd5", "aabbccd6"] {
        assert_json(
            &m1.must(&format!(r#"{{"action":"checkuser","uid":"{uid}"}}"#)),
            NOT_AUTH,
        );
    }
    assert_eq!(lab.count("SELECT COUNT(*) FROM unknown_cards"), 2);
    // #11 open machine type; disabled beats it
    let m2 = d.board("2");
    assert_json(
        &m2.must(r#"{"action":"checkuser","uid":"aabbccd4"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Dario", "missing_auth": false, "level": 1}"#,
    );
    assert_json(
        &m2.must(r#"{"action":"checkuser","uid":"aabbccd5"}"#),
        NOT_AUTH,
    );
    // #12 blocked machine: authorized user refused, authorize-all allowed
    let m3 = d.board("3");
    assert_json(
        &m3.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#),
        NOT_AUTH,
    );
    assert_json(
        &m3.must(r#"{"action":"checkuser","uid":"aabbccd1"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Anna", "missing_auth": false, "level": 2}"#,
    );
    // Uppercase card from a non-standard reader still matches (§8.17).
    assert_json(
        &m1.must(r#"{"action":"checkuser","uid":"AABBCCD3"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Carla", "missing_auth": false, "level": 1}"#,
    );
}

#[test]
fn scenario_13_14_15_a_whole_session() {
    // protocol.md §7 #13, #14, #15
    let (lab, d) = start_f();
    let b = d.board("1");
    let before = now();
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    let after = now();
    let a = last_use_id(&lab);
    let (start, seen, end, replay) = use_row(&lab, a);
    within(before, start, after);
    assert_eq!((seen, end, replay), (start, None, Some(false)));
    assert_eq!(
        lab.count(&format!("SELECT member_id FROM uses WHERE use_id = {a}")),
        3
    );
    assert_json(
        &b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":30}"#),
        r#"{"request_ok": true, "message": "inUse"}"#,
    );
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":600}"#),
        r#"{"request_ok": true, "message": "Duration 600 seconds"}"#,
    );
    let (s2, _, end, _) = use_row(&lab, a);
    assert_eq!((s2, end), (start, Some(start + 600)));
    assert!(close_to(hours(&lab, 1), 600.0 / 3600.0));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        1
    );
}

#[test]
fn scenario_14_inuse_heartbeat_reaches_the_database() {
    // protocol.md §7 #14: last_seen follows the heartbeat (written at the next flush)
    let (lab, d) = start_f();
    let t = now();
    lab.sql(&format!("INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, replay) VALUES (50, 3, 1, {}, {}, 0)", t - 100, t - 70));
    let before = now();
    assert_json(
        &d.board("1")
            .must(r#"{"action":"inuse", "uid":"aabbccd3","duration":100}"#),
        r#"{"request_ok": true, "message": "inUse"}"#,
    );
    let after = now();
    d.stop();
    let (start, seen, end, _) = use_row(&lab, 50);
    assert_eq!((start, end), (t - 100, None));
    within(before, seen, after);
}

#[test]
fn scenario_16_17_startuse_closes_open_uses() {
    // protocol.md §7 #16, #17
    let (lab, d) = start_f();
    let t = now();
    lab.sql(&format!("INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, replay) VALUES (50, 3, 1, {}, {}, 0)", t - 100, t - 10));
    let b = d.board("1");
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_eq!(use_row(&lab, 50).2, Some(t - 10));
    assert!(close_to(hours(&lab, 1), 90.0 / 3600.0));
    let b_id = last_use_id(&lab);
    assert_eq!(use_row(&lab, b_id).2, None);
    // #17: an unauthorized card may start (the board decided); the open use is closed.
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd4"}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert!(use_row(&lab, b_id).2.is_some());
    assert_eq!(
        lab.count(
            "SELECT COUNT(*) FROM uses WHERE machine_id = 1 AND end_ts IS NULL AND member_id = 4"
        ),
        1
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1 AND end_ts IS NULL"),
        1
    );
}

#[test]
fn scenario_18_19_inuse_without_start_and_bad_durations() {
    // protocol.md §7 #18, #19
    let (lab, d) = start_f();
    let b = d.board("1");
    assert_json(
        &b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":300}"#),
        r#"{"request_ok": true, "message": "inUse"}"#,
    );
    let id = last_use_id(&lab);
    let (start, seen, end, replay) = use_row(&lab, id);
    assert_eq!(seen - start, 300);
    assert_eq!((end, replay), (None, None));
    lab.sql("DELETE FROM uses WHERE machine_id = 1");
    for dur in ["-1", "86401"] {
        assert_json(
            &b.must(&format!(
                r#"{{"action":"inuse", "uid":"aabbccd3","duration":{dur}}}"#
            )),
            r#"{"request_ok": false, "message": "inUse"}"#,
        );
    }
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        0
    );
}

#[test]
fn scenario_20_21_stopuse_without_open_use_and_clamped_duration() {
    // protocol.md §7 #20 (hours added once, §8.8), #21
    let (lab, d) = start_f();
    let b = d.board("1");
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":120}"#),
        r#"{"request_ok": true, "message": "Duration 120 seconds"}"#,
    );
    let (start, seen, end, replay) = use_row(&lab, last_use_id(&lab));
    assert_eq!(end, Some(start + 120));
    assert_eq!((seen, replay), (start + 120, Some(false)));
    assert!(close_to(hours(&lab, 1), 120.0 / 3600.0));
    // #21
    let t = now();
    lab.sql(&format!("UPDATE machines SET machine_hours = 0; INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, replay) VALUES (60, 3, 1, {t}, {t}, 0)"));
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":90000}"#),
        r#"{"request_ok": true, "message": "Duration 1 seconds"}"#,
    );
    assert_eq!(use_row(&lab, 60).2, Some(t + 1));
    assert!(close_to(hours(&lab, 1), 1.0 / 3600.0));
}

#[test]
fn scenario_22_replayed_stop_closes_the_open_use() {
    // protocol.md §7 #22
    let (lab, d) = start_f();
    let t0 = now() - 1900;
    lab.sql(&format!("INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, replay) VALUES (70, 3, 1, {t0}, {}, 0)", t0 + 60));
    assert_json(
        &d.board("1")
            .must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":1800, "replay":true}"#),
        r#"{"request_ok": true, "message": "Duration 1800 seconds"}"#,
    );
    let (_, _, end, replay) = use_row(&lab, 70);
    assert_eq!((end, replay), (Some(t0 + 1800), Some(false)));
    assert!(close_to(hours(&lab, 1), 0.5));
}

#[test]
fn scenario_23_offline_session_replayed() {
    // protocol.md §7 #23
    let (lab, d) = start_f();
    let b = d.board("1");
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd3", "replay":true}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":900, "replay":true}"#),
        r#"{"request_ok": true, "message": "Duration 900 seconds"}"#,
    );
    let (start, _, end, replay) = use_row(&lab, last_use_id(&lab));
    assert_eq!((end, replay), (Some(start + 900), Some(true)));
    assert!(close_to(hours(&lab, 1), 0.25));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        1
    );
}

#[test]
fn scenario_24_duplicate_replayed_stop_is_not_recorded_twice() {
    // protocol.md §7 #24 with the de-duplication of §8.7
    let (lab, d) = start_f();
    let b = d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":600}"#);
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":600, "replay":true}"#),
        r#"{"request_ok": true, "message": "Duration 600 seconds"}"#,
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        1
    );
    assert!(close_to(hours(&lab, 1), 600.0 / 3600.0));
    // A replayed start while that member's use is open is the late copy of the live one.
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    let open = last_use_id(&lab);
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd3", "replay":true}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_eq!(last_use_id(&lab), open);
    assert_eq!(use_row(&lab, open).2, None);
}

#[test]
fn scenario_25_unknown_card_usage_messages() {
    // protocol.md §7 #25
    let (lab, d) = start_f();
    let b = d.board("1");
    for q in [
        r#"{"action":"startuse", "uid":"deadbeef"}"#,
        r#"{"action":"inuse", "uid":"deadbeef","duration":5}"#,
        r#"{"action":"stopuse", "uid":"deadbeef","duration":5}"#,
    ] {
        assert_json(
            &b.must(q),
            r#"{"request_ok": false, "message": "Invalid card"}"#,
        );
    }
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        0
    );
    assert_eq!(lab.count("SELECT COUNT(*) FROM unknown_cards"), 0);
}

#[test]
fn scenario_26_27_28_maintenance() {
    // protocol.md §7 #26, #27, #28
    let (lab, d) = start_f();
    let m4 = d.board("4");
    // #27 first: refusals change nothing
    assert_json(
        &m4.must(r#"{"action":"maintenance", "uid":"aabbccd3"}"#),
        r#"{"request_ok": false, "message": "Not authorized"}"#,
    );
    lab.sql("UPDATE members SET role_id = 2 WHERE member_id = 5");
    assert_json(
        &m4.must(r#"{"action":"maintenance", "uid":"aabbccd5"}"#),
        r#"{"request_ok": false, "message": "Not authorized"}"#,
    );
    assert_json(
        &m4.must(r#"{"action":"maintenance", "uid":"deadbeef"}"#),
        r#"{"request_ok": false, "message": "Wrong user card"}"#,
    );
    assert_eq!(lab.count("SELECT COUNT(*) FROM interventions"), 0);
    // #26
    assert_json(
        &m4.must(r#"{"action":"maintenance", "uid":"aabbccd2"}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM interventions WHERE maintenance_id = 1 AND machine_id = 4 AND member_id = 2 AND replay IS NULL"),
        1
    );
    assert_json(
        &m4.must(r#"{"action":"checkmachine"}"#),
        r#"{"request_ok": true, "is_valid": true, "maintenance": false, "allowed": true, "name": "CNC 1", "logoff": 120, "type": 1, "grace": 5, "description": ""}"#,
    );
    // #28: nothing overdue on machine 1
    assert_json(
        &d.board("1")
            .must(r#"{"action":"maintenance", "uid":"aabbccd2", "replay":true}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_eq!(lab.count("SELECT COUNT(*) FROM interventions"), 1);
}

#[test]
fn scenario_29_30_31_alive() {
    // protocol.md §7 #29, #30, #31 (no reply to alive, even for an unknown machine: §8.4)
    let (lab, d) = start_f();
    let m1 = d.board("1");
    m1.publish(r#"{"action":"alive","version":"hardware-rev0-it_IT,1.0.1","ip":"192.168.1.42","serial":"a0b1c2d3e4f5","heap":"183452"}"#);
    m1.expect_silence();
    m1.publish(r#"{"action":"alive","version":"hardware-rev0-it_IT,1.0.1","ip":"192.168.1.43","serial":"a0b1c2d3e4f5","heap":"183452"}"#);
    m1.expect_silence();
    let m2 = d.board("2");
    m2.publish(r#"{"action":"alive","version":"0.5.2","ip":"10.0.0.5"}"#);
    m2.expect_silence();
    let m99 = d.board("99");
    m99.publish(r#"{"action":"alive","version":"x","ip":"10.0.0.9"}"#);
    m99.expect_silence();
    // the next query is still answered with its own reply
    assert_json(&m1.must(r#"{"action":"checkmachine"}"#), R1);
    d.stop();
    let db = lab.db();
    let row: (String, String, String, i64) = db
        .query_row(
            "SELECT ip_address, fw_version, serial, heap FROM boards WHERE machine_id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "192.168.1.43".into(),
            "hardware-rev0-it_IT,1.0.1".into(),
            "a0b1c2d3e4f5".into(),
            183452
        )
    );
    let row: (String, String, i64) = db
        .query_row(
            "SELECT ip_address, serial, heap FROM boards WHERE machine_id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("10.0.0.5".into(), String::new(), 0));
    assert_eq!(lab.count("SELECT COUNT(*) FROM boards"), 2);
}

#[test]
fn scenario_32_to_35_malformed_queries_get_no_reply() {
    // protocol.md §7 #32, #33, #34, #35
    let (_lab, d) = start_f();
    let b = d.board("1");
    for q in [
        r#"{"action":"checkuser","uid":"#,
        r#"{"uid":"aabbccd3"}"#,
        r#"{"action":"reboot"}"#,
        r#"{"action":"checkuser"}"#,
    ] {
        b.publish(q);
        b.expect_silence();
    }
    assert_json(&b.must(r#"{"action":"checkmachine"}"#), R1);
}

#[test]
fn scenario_36_synccache() {
    // protocol.md §7 #36
    let (_lab, d) = start_f();
    assert_json(
        &d.board("1").must(r#"{"action":"synccache"}"#),
        r#"{"request_ok": true, "cards": [{"uid": "aabbccd1", "level": 2}, {"uid": "aabbccd3", "level": 1}]}"#,
    );
    assert_json(
        &d.board("2").must(r#"{"action":"synccache"}"#),
        r#"{"request_ok": true, "cards": [{"uid": "aabbccd1", "level": 2}, {"uid": "aabbccd2", "level": 1}, {"uid": "aabbccd3", "level": 1}, {"uid": "aabbccd4", "level": 1}]}"#,
    );
}

#[test]
fn scenario_36_synccache_fits_the_board_buffer() {
    // §8.3: many authorized cards are cut so the reply stays under 256 bytes
    let (lab, d) = start_f();
    let mut sql = String::new();
    for i in 0..50 {
        sql.push_str(&format!(
            "INSERT INTO members (name, role_id, card_uid, created_at) VALUES ('M{i}', 3, '{:08x}', 0);",
            0x1000_0000 + i
        ));
    }
    lab.sql(&sql);
    let b = d.board("2");
    b.drain();
    b.publish(r#"{"action":"synccache"}"#);
    let raw = b.next_on("machine/2/reply", TIMEOUT).expect("reply");
    assert!(raw.len() <= 256, "{} bytes", raw.len());
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["request_ok"], true);
    let n = v["cards"].as_array().unwrap().len();
    assert!((5..=8).contains(&n), "{n} cards");
}

#[test]
fn scenario_37_38_39_remote_start_and_stop() {
    // protocol.md §7 #37, #38, #39: requests queued by another process (the CLI)
    let (lab, d) = start_f();
    let b = d.board("1");
    b.must(r#"{"action":"checkmachine"}"#); // the board is online
    lab.sql(&format!("INSERT INTO board_requests (machine_id, request_type, card_uid, created_at) VALUES (1, 'start', 'aabbccd1', {})", now()));
    let req = b
        .next_on("machine/1/request", TIMEOUT)
        .expect("start request");
    assert_json(
        &serde_json::from_slice(&req).unwrap(),
        r#"{"request_type": "start", "uid": "aabbccd1"}"#,
    );
    lab.sql(&format!("INSERT INTO board_requests (machine_id, request_type, card_uid, created_at) VALUES (1, 'stop', 'aabbccd1', {})", now()));
    let req = b
        .next_on("machine/1/request", TIMEOUT)
        .expect("stop request");
    assert_json(
        &serde_json::from_slice(&req).unwrap(),
        r#"{"request_type": "stop", "uid": "aabbccd1"}"#,
    );
    // #39: machine 2 never spoke: nothing is published. Disabled card: nothing either (§8.12).
    let b2 = d.board("2");
    lab.sql(&format!("INSERT INTO board_requests (machine_id, request_type, card_uid, created_at) VALUES (2, 'start', 'aabbccd1', {0}), (1, 'start', 'aabbccd5', {0})", now()));
    assert!(b2
        .next_on("machine/2/request", Duration::from_millis(800))
        .is_none());
    assert!(b
        .next_on("machine/1/request", Duration::from_millis(300))
        .is_none());
    assert!(d.wait_log("machine 2 not sent: the machine's board is offline"));
    assert!(d.wait_log("machine 1 not sent: member is disabled"));
    assert_eq!(lab.count("SELECT COUNT(*) FROM board_requests"), 0);
}

#[test]
fn scenario_40_orphan_use_is_closed() {
    // protocol.md §7 #40
    let lab = Lab::new();
    fixture_f(&lab);
    let t = now();
    lab.sql(&format!("INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, replay) VALUES (80, 3, 1, {}, {}, 0)", t - 4000, t - 3700));
    let _d = lab.start();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while use_row(&lab, 80).2.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(use_row(&lab, 80).2, Some(t - 4000 + 301));
    assert!(close_to(hours(&lab, 1), 301.0 / 3600.0));
}

#[test]
fn scenario_41_reply_goes_to_the_topic_as_received() {
    // protocol.md §7 #41 with §8.5: machine/01 is answered on machine/01/reply
    let (_lab, d) = start_f();
    assert_json(&d.board("01").must(r#"{"action":"checkmachine"}"#), R1);
}

#[test]
fn scenario_42_maintenance_tap_flow() {
    // protocol.md §7 #42
    let (lab, d) = start_f();
    let b = d.board("4");
    assert_json(&b.must(r#"{"action":"checkmachine"}"#), R2);
    assert_json(
        &b.must(r#"{"action":"checkuser","uid":"aabbccd2"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Bruno", "missing_auth": false, "level": 1}"#,
    );
    assert_json(&b.must(r#"{"action":"checkmachine"}"#), R2);
    assert_eq!(lab.count("SELECT COUNT(*) FROM interventions"), 0);
    // With U1 (level 2) the board signs maintenance off, then starts the session.
    assert_json(
        &b.must(r#"{"action":"checkuser","uid":"aabbccd1"}"#),
        r#"{"request_ok": true, "is_valid": true, "name": "Anna", "missing_auth": false, "level": 2}"#,
    );
    assert_json(
        &b.must(r#"{"action":"maintenance", "uid":"aabbccd1"}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd1"}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    let mut r = b.must(r#"{"action":"checkmachine"}"#);
    assert_eq!(r["maintenance"], false);
    r["maintenance"] = true.into();
    r["description"] = "Pulire piano".into();
    assert_json(&r, R2);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM interventions WHERE member_id = 1"),
        1
    );
    assert_eq!(
        lab.count(
            "SELECT COUNT(*) FROM uses WHERE machine_id = 4 AND end_ts IS NULL AND member_id = 1"
        ),
        1
    );
}

#[test]
fn scenario_43_third_party_on_reply_and_request_topics_is_ignored() {
    // protocol.md §7 #43
    let (lab, d) = start_f();
    let b = d.board("1");
    let other = Board::connect(d.mqtt, "7", Some((LAB_USER, LAB_PASSWORD)), "INTRUDER").unwrap();
    for t in ["machine/1/reply", "machine/1/request"] {
        other
            .client
            .publish(
                t,
                rumqttc::QoS::AtMostOnce,
                false,
                br#"{"action":"startuse", "uid":"aabbccd3"}"#.to_vec(),
            )
            .unwrap();
    }
    // Only the daemon may publish there (issue 10): the broker drops the third party's
    // messages, and the daemon, not subscribed there, does nothing either.
    b.expect_silence();
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        0
    );
}

#[test]
fn replies_stay_under_the_firmware_buffer() {
    // protocol.md §1.4: long names are cut so every reply fits the 300-byte buffer.
    let (lab, d) = start_f();
    let long = "Ü".repeat(200);
    lab.sql(&format!(
        "UPDATE machines SET machine_name = '{long}' WHERE machine_id = 1; UPDATE members SET name = '{long}' WHERE member_id = 3;
         UPDATE maintenances SET lcd_message = '{long}', machine_id = 1, hours_between = 0;
         INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES (3, 1, 1, 1, 100);"
    ));
    let b = d.board("1");
    for q in [
        r#"{"action":"checkmachine"}"#,
        r#"{"action":"checkuser","uid":"aabbccd3"}"#,
    ] {
        b.drain();
        b.publish(q);
        let raw = b.next_on("machine/1/reply", TIMEOUT).expect("reply");
        assert!(raw.len() < 256, "{q}: {} bytes", raw.len());
        let v: serde_json::Value =
            serde_json::from_slice(&raw).expect("valid UTF-8 JSON after cutting");
        assert_eq!(v["request_ok"], true);
    }
}

#[test]
fn stats_topic_counts_messages() {
    // protocol.md §2.10
    let (_lab, d) = start_f();
    let b = d.board("1");
    b.must(r#"{"action":"checkmachine"}"#);
    b.client
        // The exact stats topic: wildcards are refused by the broker's ACL (issue 10).
        .subscribe("stats/fabgate", rumqttc::QoS::AtMostOnce)
        .unwrap();
    let raw = b
        .next_on("stats/fabgate", Duration::from_secs(3))
        .expect("stats message");
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["Connected"], true);
    assert!(v["Received"].as_u64().unwrap() >= 1);
    assert!(v["Sent"].as_u64().unwrap() >= 1);
    assert!(v["Backend host"].is_string() && v["Backend IP"].is_string());
}
