//! Issue 10, point 4: MQTT 3.1.1 behaviour boards and tools rely on: CONNACK return
//! codes, keep alive 0, delivered QoS, QoS 3, the connect-after-disconnect race, the
//! startup window, and every reply of a burst, in order.

use crate::common::mqtt_raw::{self, Connect, Raw};
use crate::common::*;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn lab_login() -> Option<(&'static str, &'static str)> {
    Some((LAB_USER, LAB_PASSWORD))
}

/// Subscribes to `machine/<id>/reply` at `qos` and returns the granted code.
fn subscribe_reply(raw: &mut Raw, id: &str, qos: u8) -> u8 {
    raw.send(&mqtt_raw::subscribe(
        1,
        &[(&format!("machine/{id}/reply"), qos)],
    ))
    .unwrap();
    raw.read_kind(mqtt_raw::SUBACK, WAIT)
        .expect("SUBACK")
        .suback_codes()[0]
}

fn reply_to(raw: &mut Raw, id: &str, query: &str) -> Option<(String, u8)> {
    raw.send(&mqtt_raw::publish(
        &format!("machine/{id}"),
        query.as_bytes(),
        0,
        false,
        0,
    ))
    .unwrap();
    let p = raw.read_kind(mqtt_raw::PUBLISH, WAIT)?;
    let (_, payload, qos) = p.publish()?;
    Some((String::from_utf8_lossy(&payload).into_owned(), qos))
}

#[test]
fn refused_logins_get_their_connack_return_code() {
    let (_lab, d) = start_f();
    let code = |c: Connect| Raw::open(d.mqtt).unwrap().connect(&c, WAIT);
    assert_eq!(code(Connect::new("a", Some((LAB_USER, "nope")))), Some(4));
    assert_eq!(code(Connect::new("a", None)), Some(4));
    assert_eq!(code(Connect::new("fabgate-jobs-1", lab_login())), Some(2));
    assert_eq!(code(Connect::new("a/b", lab_login())), Some(2));
    let mut persistent_without_id = Connect::new("", lab_login());
    persistent_without_id.clean_session = false;
    assert_eq!(code(persistent_without_id), Some(2));
    let mut will = Connect::new("w", lab_login());
    will.will = Some(("machine/1/request", b"x", false));
    assert_eq!(code(will), Some(5));
    assert_eq!(code(Connect::new("ok", lab_login())), Some(0));
}

#[test]
fn keep_alive_zero_is_accepted_and_means_no_keep_alive() {
    let (_lab, d) = start_f();
    let mut c = Connect::new("BOARD1", lab_login());
    c.keep_alive = 0;
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(raw.connect(&c, WAIT), Some(0));
    assert_eq!(subscribe_reply(&mut raw, "1", 0), 0);
    // Quiet for longer than any keep-alive deadline rumqttd would apply to a 1 s value.
    assert!(!raw.closed_within(Duration::from_secs(2)));
    let (reply, _) = reply_to(&mut raw, "1", r#"{"action":"checkmachine"}"#).expect("reply");
    assert!(reply.contains("LASER 1"));
}

#[test]
fn delivered_qos_is_the_lower_of_publish_and_subscription() {
    let (_lab, d) = start_f();
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(
        raw.connect(&Connect::new("BOARD1", lab_login()), WAIT),
        Some(0)
    );
    assert_eq!(subscribe_reply(&mut raw, "1", 2), 2, "QoS 2 granted");
    // The daemon publishes replies at QoS 0: they arrive at QoS 0, not 2.
    let (_, qos) = reply_to(&mut raw, "1", r#"{"action":"checkmachine"}"#).expect("reply");
    assert_eq!(qos, 0);
}

#[test]
fn qos_3_is_a_protocol_violation() {
    let (_lab, d) = start_f();
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(raw.connect(&Connect::new("q3", lab_login()), WAIT), Some(0));
    // MQTT-3.3.1-4: both QoS bits set closes the connection.
    raw.send(&mqtt_raw::publish(
        "machine/1",
        br#"{"action":"checkmachine"}"#,
        3,
        false,
        1,
    ))
    .unwrap();
    assert!(raw.closed_within(WAIT));
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(raw.connect(&Connect::new("q3", lab_login()), WAIT), Some(0));
    raw.send(&mqtt_raw::subscribe(1, &[("machine/1/reply", 3)]))
        .unwrap();
    assert!(raw.closed_within(WAIT), "a QoS 3 subscription too");
    d.board("1").must(r#"{"action":"checkmachine"}"#);
}

#[test]
fn connecting_right_after_another_client_disconnects_2000_times() {
    // 4-8 % of such clients were dropped at SUBSCRIBE: the first client's late
    // "disconnected" event freed the connection id the second had just been given.
    let (_lab, d) = start_f();
    let mut dropped = 0;
    for i in 0..2000 {
        let mut a = Raw::open(d.mqtt).unwrap();
        assert_eq!(
            a.connect(&Connect::new("leaver", lab_login()), WAIT),
            Some(0)
        );
        let mut b = Raw::open(d.mqtt).unwrap();
        a.send(&mqtt_raw::DISCONNECT).unwrap();
        drop(a);
        let id = format!("joiner{}", i % 2);
        assert_eq!(b.connect(&Connect::new(&id, lab_login()), WAIT), Some(0));
        b.send(&mqtt_raw::subscribe(1, &[("machine/1/reply", 0)]))
            .unwrap();
        b.send(&mqtt_raw::PINGREQ).unwrap();
        let ok = b.read_kind(mqtt_raw::SUBACK, WAIT).is_some()
            && b.read_kind(mqtt_raw::PINGRESP, WAIT).is_some();
        if !ok {
            dropped += 1;
        }
    }
    assert_eq!(
        dropped, 0,
        "{dropped} of 2000 clients dropped after their CONNACK"
    );
}

#[test]
fn a_burst_of_queries_gets_every_reply_in_order() {
    let (_lab, d) = start_f();
    let b = d.board("1");
    let cards = ["aabbccd1", "aabbccd2", "aabbccd3", "aabbccd4", "deadbeef"];
    let names = [
        "Anna",
        "User not authorized",
        "Carla",
        "User not authorized",
        "Unknown",
    ];
    // 40 queries back to back, as a board replaying its offline buffer.
    for i in 0..40 {
        b.publish(&format!(
            r#"{{"action":"checkuser","uid":"{}"}}"#,
            cards[i % cards.len()]
        ));
    }
    for i in 0..40 {
        let r = b
            .next_reply(WAIT)
            .unwrap_or_else(|| panic!("reply {i} of 40 lost"));
        assert_eq!(r["name"], names[i % names.len()], "reply {i} out of order");
    }
    b.expect_silence();
}

#[test]
fn the_first_query_after_a_restart_is_answered() {
    // The broker used to acknowledge a board's subscription ~0.5 s before the daemon's
    // own link listened: a checkuser sent then was never answered.
    let lab = Lab::new();
    fixture_f(&lab);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = std::fs::read_to_string(lab.config_path())
        .unwrap()
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
            1,
        );
    std::fs::write(lab.config_path(), config).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for round in 0..5 {
        let path = lab.config_path();
        let daemon = std::thread::spawn(move || TestDaemon::spawn(&path));
        // As a board that retries every few milliseconds from power-on.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut raw = loop {
            assert!(Instant::now() < deadline, "round {round}: never connected");
            if let Ok(mut raw) = Raw::open(addr) {
                if raw.connect(&Connect::new("BOARD1", lab_login()), WAIT) == Some(0) {
                    break raw;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        assert_eq!(subscribe_reply(&mut raw, "1", 0), 0);
        let reply = reply_to(&mut raw, "1", r#"{"action":"checkuser","uid":"aabbccd3"}"#);
        let d = daemon.join().unwrap();
        let (reply, _) = reply.unwrap_or_else(|| panic!("round {round}: no reply"));
        assert!(reply.contains("Carla"), "{reply}");
        drop(raw);
        drop(d);
    }
}
