//! Bad input and faults: each is logged and dropped or answered as protocol.md says; the
//! daemon never panics, keeps answering other boards, and never loses a committed row.

use crate::common::*;
use rumqttc::QoS;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const R1_NAME: &str = "LASER 1";

/// A connection error that is the broker's doing (it closed the connection or refused it
/// in its CONNACK), not a CONNACK that never came in time.
#[track_caller]
fn assert_refused(err: &str) {
    assert!(
        !err.starts_with("no CONNACK") && (err.contains("closed") || err.contains("refused")),
        "not a refusal: {err}"
    );
}

fn still_serving(d: &TestDaemon) {
    let r = d.board("1").must(r#"{"action":"checkmachine"}"#);
    assert_eq!(r["name"], R1_NAME);
}

#[test]
fn malformed_payloads_are_dropped_and_logged() {
    let (lab, mut d) = start_f();
    let b = d.board("1");
    let cases: Vec<&[u8]> = vec![
        b"{\"action\":\"checkuser\",\"uid\":",
        b"[\"checkmachine\"]",
        b"42",
        b"null",
        b"{}",
        b"{\"action\":\"reboot\"}",
        b"{\"action\":\"checkuser\"}",
        b"{\"action\":\"inuse\",\"uid\":\"aabbccd3\"}",
        b"{\"action\":\"stopuse\",\"uid\":\"aabbccd3\"}",
        b"{\"action\":\"checkuser\",\"uid\":42}",
        b"{\"action\":\"inuse\",\"uid\":\"aabbccd3\",\"duration\":\"30\"}",
        b"{\"action\":\"stopuse\",\"uid\":\"aabbccd3\",\"duration\":1e400}",
        b"{\"action\":\"stopuse\",\"uid\":\"aabbccd3\",\"duration\":123456789012345678901234567890}",
        b"{\"action\":\"startuse\",\"uid\":\"aabbccd3\",\"replay\":\"yes\"}",
        b"\xc3\x28{\"action\":\"checkmachine\"}",
        b"{\"action\":\"checkmachine\"}\xff",
    ];
    for payload in &cases {
        b.publish_bytes(payload);
    }
    b.expect_silence();
    assert!(d.is_running());
    assert!(d.wait_log("dropped message on \"machine/1\""));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1"),
        0
    );
    still_serving(&d);
}

#[test]
fn huge_duration_is_refused_or_clamped_not_trusted() {
    let (lab, d) = start_f();
    let b = d.board("1");
    let r = b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":9223372036854775807}"#);
    assert_eq!(r["request_ok"], false);
    let r = b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":9223372036854775807}"#);
    assert_eq!(r["message"], "Duration 1 seconds");
    let hours: f64 = lab
        .db()
        .query_row(
            "SELECT machine_hours FROM machines WHERE machine_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hours < 0.001);
}

#[test]
#[ignore = "the topic ACL (issue 10) refuses the `#` watcher; to assert on the daemon's dropped-message record instead (issue 19)"]
fn odd_topics_and_machine_ids_are_dropped() {
    let (_lab, d) = start_f();
    // A client that sees every topic: a stray reply to `machine/-1/reply` or anywhere
    // else would show here, not only one on `machine/1/reply`.
    let b = d.board("1");
    b.watch_all();
    let odd = [
        "machine/1/extra",
        "machine/1/reply/x",
        "machine/-1",
        "machine/1.0",
        "machine/99999999999999999999",
        "machine/",
        "machine/1 ",
    ];
    for topic in odd {
        b.client
            .publish(
                topic,
                QoS::AtMostOnce,
                false,
                br#"{"action":"checkmachine"}"#.to_vec(),
            )
            .unwrap();
    }
    // Only our own messages come back (and the daemon's stats): no reply on any topic.
    let stray: Vec<_> = b
        .collect(SILENCE)
        .into_iter()
        .filter(|(t, _)| !odd.contains(&t.as_str()) && !t.starts_with("stats/"))
        .collect();
    assert!(stray.is_empty(), "replies to odd topics: {stray:?}");
    // The watcher does see replies on other topics: an unknown numeric id is answered
    // with the protocol's error (§2.0 step 5), here and on the board's own connection.
    let r = d
        .board("4242")
        .must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
    assert_eq!(r["message"], "Invalid machine ID");
    let seen = b.collect(Duration::from_millis(500));
    assert!(
        seen.iter()
            .any(|(t, p)| t == "machine/4242/reply" && p.contains("Invalid machine ID")),
        "the watcher misses replies: {seen:?}"
    );
    still_serving(&d);
}

/// The broker's `max_payload_size` (the default, 4096) bounds a PUBLISH's remaining
/// length: 2 bytes of topic length, the topic, the payload.
const MAX_PAYLOAD_SIZE: usize = 4096;

/// A payload that makes a QoS 0 PUBLISH on `topic` exactly `remaining` bytes long.
fn payload_for(topic: &str, remaining: usize) -> Vec<u8> {
    vec![b'x'; remaining - 2 - topic.len()]
}

#[test]
fn a_packet_over_max_payload_size_drops_only_that_client() {
    let (_lab, mut d) = start_f();
    let good = d.board("1");
    // At the limit: taken (and dropped as not JSON), the connection stays.
    let edge = d.board("2");
    edge.publish_bytes(&payload_for("machine/2", MAX_PAYLOAD_SIZE));
    assert_eq!(
        edge.must(r#"{"action":"checkmachine"}"#)["name"],
        "DRILL 1",
        "a packet at the limit cost the client its connection"
    );
    // One byte over (well under rumqttc's own 1 MB limit, so it goes out): the broker
    // closes that client's connection.
    let bad = Board::connect(d.mqtt, "2", Some((LAB_USER, LAB_PASSWORD)), "BOARD2-big").unwrap();
    bad.publish_bytes(&payload_for("machine/2", MAX_PAYLOAD_SIZE + 1));
    let err = bad
        .connection_error(TIMEOUT)
        .expect("oversize client kept its connection");
    assert!(
        !err.to_ascii_lowercase().contains("payload size"),
        "refused by the client itself, never sent: {err}"
    );
    assert!(d.is_running());
    // Everybody else carries on, the board at the limit included.
    assert_eq!(good.must(r#"{"action":"checkmachine"}"#)["name"], R1_NAME);
    assert_eq!(edge.must(r#"{"action":"checkmachine"}"#)["name"], "DRILL 1");
}

#[test]
fn board_disconnecting_mid_exchange_loses_nothing() {
    let (lab, d) = start_f();
    for i in 0..20 {
        let b = d.board("1");
        // publish and vanish before the reply arrives
        b.publish(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
        b.publish(&format!(
            r#"{{"action":"stopuse", "uid":"aabbccd3","duration":{}}}"#,
            i + 1
        ));
        // DISCONNECT goes out after the queued publishes, before the replies come back.
        b.client.disconnect().unwrap();
        let _ = b.connection_error(Duration::from_millis(200));
    }
    // raw TCP client that sends half a CONNECT and closes
    for _ in 0..5 {
        let mut s = TcpStream::connect(d.mqtt).unwrap();
        s.write_all(&[0x10, 0x20, 0x00, 0x04, b'M']).unwrap();
    }
    still_serving(&d);
    let deadline = Instant::now() + TIMEOUT;
    while lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1 AND end_ts IS NOT NULL") < 20
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1 AND end_ts IS NOT NULL"),
        20
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 1 AND end_ts IS NULL"),
        0
    );
}

#[test]
fn garbage_flood_does_not_starve_other_boards() {
    let (_lab, mut d) = start_f();
    let flooder = d.board("2");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let flooded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flooded2 = flooded.clone();
    let client = flooder.client.clone();
    let t = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let payload = if n % 2 == 0 {
                b"{\"action\":".to_vec()
            } else {
                vec![0xff; 200]
            };
            // ~5,000 messages/s: more than an ESP32 on WiFi can send, and a pace the
            // debug-build daemon can drain on a 2-core CI machine shared with the flooder.
            if client
                .try_publish("machine/2", QoS::AtMostOnce, false, payload)
                .is_ok()
            {
                n += 1;
                flooded2.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        n
    });
    let good = d.board("1");
    // Each query during the flood gets its own answer (must: within TIMEOUT, none left
    // over), until the flood is big. Debug build, 2 cores shared with the flooder and
    // other tests: the point is that the good board keeps getting answers, not how fast.
    let mut answered = 0;
    while answered < 5 || flooded.load(std::sync::atomic::Ordering::Relaxed) < 2000 {
        let r = good.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
        assert_eq!(r["name"], "Carla");
        answered += 1;
        assert!(answered < 10_000, "the flooder is stuck");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = t.join().unwrap();
    assert!(sent > 1000, "flood too small: {sent}");
    still_serving(&d);
    assert!(d.is_running());
    // The log is rate-limited: a flood does not write a line per message.
    let lines = d
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("dropped message"))
        .count();
    assert!(lines <= 25, "{lines} drop lines for {sent} messages");
}

#[test]
fn bad_credentials_are_refused_and_logged_others_keep_working() {
    let (_lab, d) = start_f();
    let good = d.board("1");
    // Refused by the broker's CONNACK, not a connection that merely timed out.
    for (login, id) in [
        (Some((LAB_USER, "wrong")), "BOARD900"),
        (None, "BOARD901"),
        (Some(("nobody", "x")), "BOARD902"),
    ] {
        let err = Board::connect(d.mqtt, "1", login, id)
            .err()
            .unwrap_or_else(|| panic!("{id} {login:?} accepted"));
        assert_refused(&err);
    }
    assert!(d.wait_log("bad username or password"));
    assert_eq!(good.must(r#"{"action":"checkmachine"}"#)["name"], R1_NAME);
}

#[test]
fn per_board_credentials_and_reserved_client_ids() {
    let lab = Lab::new();
    fixture_f(&lab);
    add_credential(&lab.db(), "board-1", "s3cret", Some(1));
    let d = lab.start();
    let b = Board::connect(d.mqtt, "1", Some(("board-1", "s3cret")), "BOARD1")
        .expect("per-board login");
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["name"], R1_NAME);
    // A device cannot take the daemon's link id over, even with valid credentials.
    let err = Board::connect(
        d.mqtt,
        "1",
        Some((LAB_USER, LAB_PASSWORD)),
        "fabgate-boards-0",
    )
    .err()
    .expect("the daemon's client id taken over");
    assert_refused(&err);
    assert!(d.wait_log("is reserved or invalid"));
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["name"], R1_NAME);
}

#[test]
fn anonymous_only_when_configured() {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start_with("allow_anonymous = true", "");
    let b = Board::connect(d.mqtt, "1", None, "BOARD5").expect("anonymous allowed by config");
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["name"], R1_NAME);
    assert!(d.log_contains("allow_anonymous is on"));
}

#[test]
fn cli_changes_apply_at_once() {
    // Another process (the CLI) changes the database; the next board message sees it.
    let (lab, d) = start_f();
    let b = d.board("1");
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["allowed"], true);
    lab.sql("UPDATE machines SET blocked = 1 WHERE machine_id = 1");
    assert_eq!(b.must(r#"{"action":"checkmachine"}"#)["allowed"], false);
    lab.sql("INSERT INTO authorizations VALUES (4, 1)");
    lab.sql("UPDATE machines SET blocked = 0 WHERE machine_id = 1");
    assert_eq!(
        b.must(r#"{"action":"checkuser","uid":"aabbccd4"}"#)["is_valid"],
        true
    );
}

#[test]
fn kill_9_under_load_keeps_every_acknowledged_use() {
    // Boards run startuse/stopuse cycles; the daemon is killed with SIGKILL mid-run, three
    // times over. Every use whose stopuse got a reply must be in the database after restart.
    let lab = Lab::new();
    fixture_f(&lab);
    let mut sql = String::new();
    for m in 10..18 {
        sql.push_str(&format!(
            "INSERT INTO machines (machine_id, machine_name, type_id) VALUES ({m}, 'M{m}', 2);"
        ));
    }
    lab.sql(&sql);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // Three rounds: load, SIGKILL, restart on the same database.
    for round in 0..3i64 {
        let mut d = lab.start();
        let mut threads = Vec::new();
        for m in 10..18 {
            let b = d.board(&m.to_string());
            let acked = acked.clone();
            threads.push(std::thread::spawn(move || {
                for i in 1..20_000 {
                    let duration = round * 20_000 + i;
                    // A reply may be slow under this load; none may come twice.
                    if b.ask_within(r#"{"action":"startuse", "uid":"aabbccd4"}"#, TIMEOUT)
                        .is_none()
                    {
                        return;
                    }
                    match b.ask_within(
                        &format!(
                            r#"{{"action":"stopuse", "uid":"aabbccd4","duration":{duration}}}"#
                        ),
                        TIMEOUT,
                    ) {
                        Some(r) if r["request_ok"] == true => {
                            acked.lock().unwrap().push((m, duration))
                        }
                        _ => return,
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(1000));
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        for t in threads {
            t.join().unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "load too light: {}", acked.len());
    let d2 = lab.start();
    let db = lab.db();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    for (m, i) in &acked {
        let n: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM uses WHERE machine_id = ?1 AND member_id = 4 AND end_ts - start_ts = ?2",
                [*m, *i],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "acknowledged stopuse {i} on machine {m} lost");
    }
    still_serving(&d2);
}
