//! Issue 10, point 2: the topic ACL per credential kind, over real TCP. A per-board
//! credential and a lab-wide one (bound to its first machine) try what the issue's
//! attacker did; refusals are counted on /metrics and logged at a limited rate.

use crate::common::mqtt_raw::{self, Connect, Raw};
use crate::common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn metrics_lab() -> (Lab, TestDaemon, String) {
    let mut lab = Lab::new();
    fixture_f(&lab);
    add_credential(&lab.db(), "m1", "pw1", Some(1));
    lab.extra_config = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n".into();
    let d = lab.start();
    assert!(d.wait_log("metrics on http://"));
    let addr = {
        let log = d.log.lock().unwrap();
        let line = log
            .iter()
            .find(|l| l.contains("metrics on http://"))
            .unwrap();
        line.split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    (lab, d, addr)
}

fn metrics(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// Waits until /metrics has `line`.
fn wait_metric(addr: &str, line: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = metrics(addr);
        if body.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "missing {line:?} in\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connected(addr: std::net::SocketAddr, c: &Connect) -> Raw {
    let mut raw = Raw::open(addr).unwrap();
    assert_eq!(raw.connect(c, WAIT), Some(0), "{c:?}");
    raw
}

/// Publishes a query and returns the reply seen by `raw` on `reply_topic`, if any.
fn ask(raw: &mut Raw, topic: &str, query: &str, reply_topic: &str) -> Option<String> {
    raw.send(&mqtt_raw::publish(topic, query.as_bytes(), 0, false, 0))
        .unwrap();
    let deadline = Instant::now() + SILENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = raw.read_kind(mqtt_raw::PUBLISH, left)?;
        if let Some((t, payload, _)) = p.publish() {
            if t == reply_topic {
                return Some(String::from_utf8_lossy(&payload).into_owned());
            }
        }
    }
}

#[test]
fn a_per_board_credential_reaches_only_its_own_machine() {
    let (lab, d, metrics_addr) = metrics_lab();
    let victim = d.board("2");
    let mut m1 = connected(d.mqtt, &Connect::new("BOARD1", Some(("m1", "pw1"))));
    m1.send(&mqtt_raw::subscribe(
        1,
        &[
            ("machine/1/reply", 0),
            ("#", 0),
            ("machine/+/reply", 0),
            ("machine/2/reply", 0),
            ("$share/g/machine/2/reply", 0),
            ("$SYS/#", 0),
            ("machine/1/request", 1),
        ],
    ))
    .unwrap();
    let ack = m1.read_kind(mqtt_raw::SUBACK, WAIT).expect("SUBACK");
    assert_eq!(
        ack.suback_codes(),
        vec![0, 0x80, 0x80, 0x80, 0x80, 0x80, 1],
        "one SUBACK code per filter, in order"
    );
    // Its own machine works.
    let r = ask(
        &mut m1,
        "machine/1",
        r#"{"action":"checkmachine"}"#,
        "machine/1/reply",
    )
    .expect("reply on its own topic");
    assert!(r.contains("LASER 1"), "{r}");
    // Machine 2's cards, a forged reply and a forged start: none reaches board 2 or the
    // database.
    m1.send(&mqtt_raw::publish(
        "machine/2",
        br#"{"action":"synccache"}"#,
        0,
        false,
        0,
    ))
    .unwrap();
    m1.send(&mqtt_raw::publish(
        "machine/2/reply",
        br#"{"request_ok": true, "is_valid": true, "name": "Mallory", "level": 2}"#,
        0,
        true,
        0,
    ))
    .unwrap();
    m1.send(&mqtt_raw::publish(
        "machine/2/request",
        br#"{"request_type": "start", "uid": "aabbccd1"}"#,
        1,
        false,
        7,
    ))
    .unwrap();
    let ack = m1
        .read_kind(mqtt_raw::PUBACK, WAIT)
        .expect("refused QoS 1 still acked");
    assert_eq!(ack.body, vec![0, 7]);
    m1.send(&mqtt_raw::publish(
        "machine/2",
        br#"{"action":"maintenance", "uid":"aabbccd1"}"#,
        0,
        false,
        0,
    ))
    .unwrap();
    victim.expect_silence();
    // Retained on its own topic: refused too (nothing is ever retained).
    m1.send(&mqtt_raw::publish(
        "machine/1",
        br#"{"action":"checkmachine"}"#,
        0,
        true,
        0,
    ))
    .unwrap();
    assert!(m1.read_kind(mqtt_raw::PUBLISH, SILENCE).is_none());
    // A new board 2 connection gets no retained forgery.
    drop(victim);
    let victim = d.board("2");
    victim.expect_silence();
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM interventions WHERE machine_id = 2"),
        0
    );
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM uses WHERE machine_id = 2"),
        0
    );
    // Wills on reply topics are refused at CONNECT.
    let mut c = Connect::new("willer", Some(("m1", "pw1")));
    c.will = Some(("machine/1/reply", b"{}", false));
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(raw.connect(&c, WAIT), Some(5));
    wait_metric(
        &metrics_addr,
        "fabgate_mqtt_refused_total{reason=\"acl_subscribe\"} 5",
    );
    wait_metric(
        &metrics_addr,
        "fabgate_mqtt_refused_total{reason=\"acl_publish\"} 5",
    );
    wait_metric(
        &metrics_addr,
        "fabgate_mqtt_refused_total{reason=\"will\"} 1",
    );
    assert!(d.log_contains("refused subscribe to \"#\""));
}

#[test]
fn the_lab_credential_is_bound_to_the_first_machine_it_uses() {
    let (_lab, d) = start_f();
    let victim = d.board("2");
    let lab_login = Some((LAB_USER, LAB_PASSWORD));
    // Bound by its first publish.
    let mut a = connected(d.mqtt, &Connect::new("A", lab_login));
    a.send(&mqtt_raw::publish(
        "machine/1",
        br#"{"action":"alive","version":"1","ip":"1.1.1.1"}"#,
        0,
        false,
        0,
    ))
    .unwrap();
    a.send(&mqtt_raw::subscribe(
        1,
        &[("machine/2/reply", 0), ("machine/1/reply", 0)],
    ))
    .unwrap();
    let ack = a.read_kind(mqtt_raw::SUBACK, WAIT).unwrap();
    assert_eq!(ack.suback_codes(), vec![0x80, 0]);
    a.send(&mqtt_raw::publish(
        "machine/2",
        br#"{"action":"synccache"}"#,
        0,
        false,
        0,
    ))
    .unwrap();
    victim.expect_silence();
    let r = ask(
        &mut a,
        "machine/1",
        r#"{"action":"checkmachine"}"#,
        "machine/1/reply",
    );
    assert!(r.is_some(), "its own machine still answers");
    // Bound by its first subscription; wildcards never bind.
    let mut b = connected(d.mqtt, &Connect::new("B", lab_login));
    b.send(&mqtt_raw::subscribe(1, &[("#", 0), ("machine/+/reply", 0)]))
        .unwrap();
    assert_eq!(
        b.read_kind(mqtt_raw::SUBACK, WAIT).unwrap().suback_codes(),
        vec![0x80, 0x80]
    );
    b.send(&mqtt_raw::subscribe(2, &[("machine/3/reply", 0)]))
        .unwrap();
    assert_eq!(
        b.read_kind(mqtt_raw::SUBACK, WAIT).unwrap().suback_codes(),
        vec![0]
    );
    b.send(&mqtt_raw::subscribe(3, &[("machine/2/request", 0)]))
        .unwrap();
    assert_eq!(
        b.read_kind(mqtt_raw::SUBACK, WAIT).unwrap().suback_codes(),
        vec![0x80]
    );
    b.send(&mqtt_raw::publish(
        "machine/3/request",
        br#"{"request_type":"stop","uid":"x"}"#,
        0,
        false,
        0,
    ))
    .unwrap();
    assert!(
        b.read_kind(mqtt_raw::PUBLISH, SILENCE).is_none(),
        "no self-forged request"
    );
}

#[test]
fn refusals_are_logged_at_a_limited_rate() {
    let (_lab, d) = start_f();
    let mut a = connected(
        d.mqtt,
        &Connect::new("noisy", Some((LAB_USER, LAB_PASSWORD))),
    );
    for i in 0..300u16 {
        a.send(&mqtt_raw::subscribe(i + 1, &[("#", 0)])).unwrap();
    }
    for _ in 0..300 {
        a.read_kind(mqtt_raw::SUBACK, WAIT).expect("every SUBACK");
    }
    let lines = d
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("refused subscribe"))
        .count();
    assert!(
        (1..=10).contains(&lines),
        "{lines} refusal lines for 300 refusals"
    );
}
