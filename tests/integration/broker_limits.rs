//! Issue 10, point 3: bounded cost per client and no lock-out of known boards. Other
//! "hosts" are other loopback addresses (127.0.0.2, ...), which Linux routes locally.

use crate::common::mqtt_raw::{self, Connect, Raw};
use crate::common::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn host(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

#[test]
fn idle_sockets_are_capped_per_host_and_closed_at_the_connect_deadline() {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start_with("connection_timeout_s = 3\nmax_pending_per_ip = 4", "");
    let opened = Instant::now();
    let mut idle: Vec<Raw> = (0..4)
        .map(|_| Raw::open_from(host(2), d.mqtt).unwrap())
        .collect();
    // The fifth from the same host is closed at once...
    let mut extra = Raw::open_from(host(2), d.mqtt).unwrap();
    assert!(extra.closed_within(Duration::from_secs(1)));
    assert!(opened.elapsed() < Duration::from_secs(2));
    // ...while boards elsewhere log in and get answers.
    let b = d.board("1");
    b.must(r#"{"action":"checkmachine"}"#);
    let mut other = Raw::open_from(host(3), d.mqtt).unwrap();
    assert_eq!(
        other.connect(&Connect::new("h3", Some((LAB_USER, LAB_PASSWORD))), WAIT),
        Some(0)
    );
    // The idle ones are closed at the CONNECT deadline, which frees their slots.
    for raw in &mut idle {
        assert!(raw.closed_within(Duration::from_secs(6)));
    }
    assert!(opened.elapsed() >= Duration::from_millis(2500));
    let mut again = Raw::open_from(host(2), d.mqtt).unwrap();
    assert_eq!(
        again.connect(&Connect::new("h2", Some((LAB_USER, LAB_PASSWORD))), WAIT),
        Some(0)
    );
}

#[test]
fn failed_logins_back_off_per_host_with_one_log_line_per_burst() {
    let (_lab, d) = start_f();
    let wrong = Connect::new("guess", Some((LAB_USER, "guess")));
    let right = Connect::new("guess", Some((LAB_USER, LAB_PASSWORD)));
    let login = |from: u8, c: &Connect| {
        let mut raw = Raw::open_from(host(from), d.mqtt).unwrap();
        raw.connect(c, WAIT)
    };
    for _ in 0..5 {
        assert_eq!(login(2, &wrong), Some(4), "bad credentials: CONNACK 4");
    }
    // Now even the right password is refused from there, without being checked...
    assert_eq!(login(2, &right), Some(5), "backoff: CONNACK 5");
    // ...but not from another host.
    assert_eq!(login(3, &right), Some(0));
    // The first backoff lasts a second; a success ends the burst.
    let deadline = Instant::now() + WAIT;
    while login(2, &right) != Some(0) {
        assert!(Instant::now() < deadline, "backoff never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A guessing burst: a few are checked, most are refused unchecked.
    let codes: Vec<Option<u8>> = (0..40).map(|_| login(2, &wrong)).collect();
    assert!(
        codes.iter().all(|c| matches!(c, Some(4) | Some(5))),
        "{codes:?}"
    );
    let checked = codes.iter().filter(|c| **c == Some(4)).count();
    assert!(checked <= 8, "{checked} of 40 guesses were checked");
    let log = d.log.lock().unwrap();
    let count = |needle: &str| log.iter().filter(|l| l.contains(needle)).count();
    // Two bursts (the success in between ended the first): two lines each.
    assert_eq!(count("bad username or password"), 2);
    assert_eq!(count("refusing its logins"), 2);
}

#[test]
fn room_is_kept_for_per_board_credentials() {
    let lab = Lab::new();
    fixture_f(&lab);
    for m in 1..=3 {
        add_credential(&lab.db(), &format!("m{m}"), "pw", Some(m));
    }
    let d = lab.start_with(
        "max_connections = 4\nreserved_for_board_credentials = 2",
        "",
    );
    let lab_login = Some((LAB_USER, LAB_PASSWORD));
    let mut held = Vec::new();
    for id in ["s1", "s2"] {
        let mut raw = Raw::open(d.mqtt).unwrap();
        assert_eq!(raw.connect(&Connect::new(id, lab_login), WAIT), Some(0));
        held.push(raw);
    }
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(
        raw.connect(&Connect::new("s3", lab_login), WAIT),
        Some(3),
        "the lab-wide credential stops short of the reserve"
    );
    for m in ["m1", "m2"] {
        let mut raw = Raw::open(d.mqtt).unwrap();
        assert_eq!(
            raw.connect(&Connect::new(&format!("B{m}"), Some((m, "pw"))), WAIT),
            Some(0)
        );
        held.push(raw);
    }
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(
        raw.connect(&Connect::new("Bm3", Some(("m3", "pw"))), WAIT),
        Some(3),
        "full"
    );
    // A board of m1 rebooting with its old connection still open takes it over.
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(
        raw.connect(&Connect::new("Bm1", Some(("m1", "pw"))), WAIT),
        Some(0)
    );
}

#[test]
fn a_client_id_is_taken_over_only_by_its_own_credential() {
    let lab = Lab::new();
    fixture_f(&lab);
    add_credential(&lab.db(), "m1", "pw1", Some(1));
    let d = lab.start();
    let mut real = Raw::open(d.mqtt).unwrap();
    let own = Connect::new("BOARD1", Some(("m1", "pw1")));
    assert_eq!(real.connect(&own, WAIT), Some(0));
    let mut impostor = Raw::open(d.mqtt).unwrap();
    assert_eq!(
        impostor.connect(
            &Connect::new("BOARD1", Some((LAB_USER, LAB_PASSWORD))),
            WAIT
        ),
        Some(2),
        "another credential's client id: CONNACK 2"
    );
    real.send(&mqtt_raw::PINGREQ).unwrap();
    assert!(
        real.read_kind(mqtt_raw::PINGRESP, WAIT).is_some(),
        "the real board is still connected"
    );
    let mut reboot = Raw::open(d.mqtt).unwrap();
    assert_eq!(reboot.connect(&own, WAIT), Some(0));
    assert!(
        real.closed_within(WAIT),
        "its own old session was taken over"
    );
    // The daemon's own ids are never available.
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(
        raw.connect(&Connect::new("fabgate-boards-x", Some(("m1", "pw1"))), WAIT),
        Some(2)
    );
}

#[test]
fn subscriptions_per_client_are_capped() {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start_with("max_subscriptions_per_client = 2", "");
    let mut raw = Raw::open(d.mqtt).unwrap();
    assert_eq!(
        raw.connect(&Connect::new("c", Some((LAB_USER, LAB_PASSWORD))), WAIT),
        Some(0)
    );
    raw.send(&mqtt_raw::subscribe(
        1,
        &[
            ("machine/1/reply", 0),
            ("machine/1/request", 0),
            ("stats/fabgate", 0),
        ],
    ))
    .unwrap();
    assert_eq!(
        raw.read_kind(mqtt_raw::SUBACK, WAIT)
            .unwrap()
            .suback_codes(),
        vec![0, 0, 0x80]
    );
    // Unsubscribing frees a place.
    raw.send(&mqtt_raw::unsubscribe(2, &["machine/1/request"]))
        .unwrap();
    raw.read_kind(mqtt_raw::UNSUBACK, WAIT).expect("UNSUBACK");
    raw.send(&mqtt_raw::subscribe(3, &[("stats/fabgate", 0)]))
        .unwrap();
    assert_eq!(
        raw.read_kind(mqtt_raw::SUBACK, WAIT)
            .unwrap()
            .suback_codes(),
        vec![0]
    );
}
