//! Session records as the boards made them (issue 12), over MQTT with the exact message
//! sequences: a replayed `startuse` after a reboot is a session of its own, the late copy
//! of a recorded start is not, and a use started in the sign-off's second counts towards
//! the next maintenance.

use crate::common::*;

/// (start, end, replay) of every use of machine 1, in order.
fn uses_of_1(lab: &Lab) -> Vec<(i64, Option<i64>, Option<bool>)> {
    let db = lab.db();
    let mut st = db
        .prepare("SELECT start_ts, end_ts, replay FROM uses WHERE machine_id = 1 ORDER BY use_id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn hours_of_1(lab: &Lab) -> f64 {
    lab.db()
        .query_row(
            "SELECT machine_hours FROM machines WHERE machine_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// A use open with heartbeats, the board reboots (`alive`) and replays what it buffered
/// offline: the open use ends at its last heartbeat and the replay is a new use, marked
/// as replayed, with the replayed duration. Machine hours: both sessions, once each.
#[test]
fn safety_a_replayed_start_after_a_reboot_is_a_new_use() {
    let (lab, d) = start_f();
    let t0 = now() - 100;
    // The live session: started 100 s ago, last heartbeat 10 s ago (as flushed).
    lab.sql(&format!(
        "INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, replay)
         VALUES (80, 3, 1, {t0}, {}, 0)",
        t0 + 90
    ));
    let b = d.board("1");
    b.publish(
        r#"{"action":"alive","version":"hardware-rev0-it_IT,1.0.1","ip":"192.168.1.42","serial":"a0b1c2d3e4f5","heap":"183452"}"#,
    );
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd3", "replay":true}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":42, "replay":true}"#),
        r#"{"request_ok": true, "message": "Duration 42 seconds"}"#,
    );
    let uses = uses_of_1(&lab);
    assert_eq!(uses.len(), 2, "{uses:?}");
    assert_eq!(
        uses[0],
        (t0, Some(t0 + 90), Some(false)),
        "closed at its last heartbeat"
    );
    let (start, end, replay) = uses[1];
    assert_eq!((end, replay), (Some(start + 42), Some(true)), "{uses:?}");
    assert!(start >= t0 + 100 - 2, "{uses:?}");
    let want = (90.0 + 42.0) / 3600.0;
    assert!(
        (hours_of_1(&lab) - want).abs() < 1e-9,
        "{}",
        hours_of_1(&lab)
    );
}

/// The same with the heartbeat over MQTT (`inuse`, held in memory, not yet flushed).
#[test]
fn safety_a_heartbeat_in_memory_also_tells_a_new_session() {
    let (lab, d) = start_f();
    let t0 = now() - 100;
    lab.sql(&format!(
        "INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, replay)
         VALUES (81, 3, 1, {t0}, {t0}, 0)"
    ));
    let b = d.board("1");
    assert_json(
        &b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":100}"#),
        r#"{"request_ok": true, "message": "inUse"}"#,
    );
    b.publish(
        r#"{"action":"alive","version":"1.0.1","ip":"192.168.1.42","serial":"a0","heap":"1"}"#,
    );
    b.must(r#"{"action":"startuse", "uid":"aabbccd3", "replay":true}"#);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":30, "replay":true}"#);
    let uses = uses_of_1(&lab);
    assert_eq!(uses.len(), 2, "{uses:?}");
    let first_end = uses[0].1.expect("the first use is closed");
    assert!(
        (first_end - now()).abs() <= 3,
        "closed at the inuse heartbeat: {uses:?}"
    );
    assert_eq!(uses[1].2, Some(true));
    assert_eq!(uses[1].1, Some(uses[1].0 + 30));
}

/// The case de-duplication is for: the live start was recorded but its reply lost, the
/// board reconnects (`alive`) and replays the start, then stops. One session, one row.
#[test]
fn safety_the_late_copy_of_a_recorded_start_is_still_one_use() {
    let (lab, d) = start_f();
    let b = d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    b.publish(
        r#"{"action":"alive","version":"1.0.1","ip":"192.168.1.42","serial":"a0","heap":"1"}"#,
    );
    assert_json(
        &b.must(r#"{"action":"startuse", "uid":"aabbccd3", "replay":true}"#),
        r#"{"request_ok": true, "message": ""}"#,
    );
    assert_json(
        &b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":20, "replay":true}"#),
        r#"{"request_ok": true, "message": "Duration 20 seconds"}"#,
    );
    let uses = uses_of_1(&lab);
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert_eq!(uses[0].1, Some(uses[0].0 + 20));
    assert_eq!(uses[0].2, Some(false));
    assert!((hours_of_1(&lab) - 20.0 / 3600.0).abs() < 1e-9);
}

/// A maintainer signs off (`maintenance`) and the machine is started within the same
/// second: that use counts towards the plan's next hours, so an hour and more of it
/// makes the 1-hour plan due again.
#[test]
fn safety_a_use_started_in_the_sign_off_second_counts_for_maintenance() {
    let (lab, d) = start_f();
    let b = d.board("4");
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["maintenance"], true);
    let mut same_second = false;
    for _ in 0..5 {
        // Back to back, as a board does it: sign-off reply, then the start.
        b.publish(r#"{"action":"maintenance", "uid":"aabbccd2"}"#);
        b.publish(r#"{"action":"startuse", "uid":"aabbccd2"}"#);
        for _ in 0..2 {
            let r = b.next_reply(TIMEOUT).expect("reply");
            assert_eq!(r["request_ok"], true, "{r}");
        }
        let (signed, started): (i64, i64) = lab
            .db()
            .query_row(
                "SELECT (SELECT MAX(timestamp) FROM interventions WHERE machine_id = 4),
                        (SELECT MAX(start_ts) FROM uses WHERE machine_id = 4)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        same_second = signed == started;
        let r = b.must(r#"{"action":"stopuse", "uid":"aabbccd2","duration":3700}"#);
        assert_eq!(r["message"], "Duration 3700 seconds");
        if same_second {
            break;
        }
    }
    assert!(same_second, "never in the same second in five tries");
    // The hour of use after the sign-off is counted: the 1-hour plan is due again.
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["maintenance"], true);
    let (use_ms, sign_ms): (i64, i64) = lab
        .db()
        .query_row(
            "SELECT (SELECT start_ms FROM uses WHERE machine_id = 4 ORDER BY use_id DESC LIMIT 1),
                    (SELECT timestamp_ms FROM interventions WHERE machine_id = 4 ORDER BY intervention_id DESC LIMIT 1)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        use_ms >= sign_ms,
        "start {use_ms} ms before sign-off {sign_ms} ms"
    );
}

/// Rows written before schema 10 get milliseconds from their seconds, and a use and a
/// sign-off in the same second compare as the board made them (sign-off first).
#[test]
fn safety_existing_rows_are_migrated_to_milliseconds() {
    let lab = Lab::bare();
    let db = lab.db();
    let ms: (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), SUM(start_ms = start_ts * 1000) FROM uses",
            [],
            |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0))),
        )
        .unwrap();
    assert_eq!(ms.0, ms.1);
    // A writer that knows nothing of milliseconds (an import, a panel edit): filled in.
    fixture_f(&lab);
    db.execute_batch(
        "INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp) VALUES (1, 4, 2, 5000);
         UPDATE uses SET start_ts = 5000 WHERE machine_id = 4;",
    )
    .unwrap();
    let (u, i): (i64, i64) = db
        .query_row(
            "SELECT (SELECT start_ms FROM uses WHERE machine_id = 4),
                    (SELECT timestamp_ms FROM interventions WHERE machine_id = 4)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((u, i), (5_000_000, 5_000_000));
}
