//! Issue 11, point 5, against the real daemon over MQTT: a flood of invented card UIDs
//! is stored up to the per-machine and lab-wide caps of an hour, turns into one alert
//! per burst (not one email per card), UIDs that are not hex are refused at the edge and
//! logged, and chat text is escaped so a machine name cannot ping the channel.

use crate::common::webhook::Receiver;
use crate::common::*;
use std::time::Duration;

/// `fabgate::store::UNKNOWN_CARDS_PER_MACHINE_HOUR` and `UNKNOWN_CARDS_PER_HOUR`.
const PER_MACHINE: i64 = fabgate::store::UNKNOWN_CARDS_PER_MACHINE_HOUR;
const PER_LAB: i64 = fabgate::store::UNKNOWN_CARDS_PER_HOUR;

/// Publishes `uids` as checkuser queries, 20 at a time (a board's burst; the broker's
/// per-client queue is the limit, not the lab), and waits for every reply.
fn flood(board: &Board, uids: &[String]) {
    for chunk in uids.chunks(20) {
        for uid in chunk {
            board.publish(&format!(r#"{{"action":"checkuser","uid":"{uid}"}}"#));
        }
        for i in 0..chunk.len() {
            let reply = board
                .next_reply(TIMEOUT)
                .unwrap_or_else(|| panic!("reply {i} of a chunk missing"));
            assert_eq!(reply["request_ok"], true, "{reply}");
        }
    }
}

#[test]
fn floods_are_capped_alert_once_per_burst_and_reach_chat_escaped() {
    let hook = Receiver::start();
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = format!(
        "{}[[sync.webhooks]]\nurl = {:?}\nevents = [\"alert\"]\n",
        SyncSection::fast().text(),
        hook.url("/hooks/lab")
    );
    // Two staff members who get alerts; more machines than the lab-wide cap needs; a
    // machine name a chat would read as a ping.
    lab.sql(
        "UPDATE roles SET backend_admin = 1, panel_level = 2 WHERE role_id IN (1, 2);
         UPDATE members SET email = 'anna@example.org' WHERE member_id = 1;
         UPDATE members SET email = 'bruno@example.org' WHERE member_id = 2;
         UPDATE machines SET machine_name = '<!channel> @here *LASER*' WHERE machine_id = 1;
         INSERT INTO machines (machine_id, machine_name, type_id) VALUES
           (5, 'M5', 2), (6, 'M6', 2), (7, 'M7', 2);",
    );
    let d = lab.start();

    // 600 queries with 200 invented UIDs at one machine: 100 rows kept.
    let laser = d.board("1");
    let invented: Vec<String> = (0..600)
        .map(|i| format!("{:08x}", 0xf000_0000u32 + i / 3))
        .collect();
    flood(&laser, &invented);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM unknown_cards WHERE machine_id = 1"),
        PER_MACHINE
    );
    // Other machines fill the lab's hour: no more than PER_LAB rows in all.
    for m in ["2", "4", "5", "6", "7"] {
        let b = d.board(m);
        let uids: Vec<String> = (0..PER_MACHINE + 10)
            .map(|i| format!("{m}{i:07x}"))
            .collect();
        flood(&b, &uids);
    }
    assert_eq!(lab.count("SELECT COUNT(*) FROM unknown_cards"), PER_LAB);
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM unknown_cards WHERE machine_id = 7"),
        0,
        "the lab's cap was not applied"
    );
    assert!(d.wait_log("the hour's cap is reached"));

    // Not hex: refused at the edge (no reply, no row), logged.
    for bad in ["<!channel>", "aabbccdg", "@everyone", "*bold*"] {
        let reply = laser.ask(&format!(r#"{{"action":"checkuser","uid":"{bad}"}}"#));
        assert!(reply.is_none(), "{bad} got {reply:?}");
    }
    assert!(d.wait_log("missing or invalid field \"uid\""));
    assert_eq!(
        lab.count("SELECT COUNT(*) FROM unknown_cards WHERE card_uid GLOB '*[^0-9a-f]*'"),
        0
    );
    // A known card still works at the flooded machine.
    assert_eq!(
        laser.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#)["is_valid"],
        true
    );

    // Alerts are checked at start: restart and wait for them. One burst, one alert:
    // an email per staff member, one chat message, however many cards.
    d.stop();
    let d = lab.start();
    lab.wait_count(
        "SELECT COUNT(*) FROM alerts WHERE kind = 'unknown_card' AND cleared_at IS NULL",
        1,
    );
    let alert_mails = "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND dedupe_key IN
         (SELECT 'alert:' || a.id || ':' || m.member_id FROM alerts a, members m
          WHERE a.kind = 'unknown_card')";
    let staff = lab.count(
        "SELECT COUNT(*) FROM members m JOIN roles r ON r.role_id = m.role_id
         WHERE r.backend_admin = 1 AND m.email IS NOT NULL AND m.disabled = 0 AND m.deleted = 0",
    );
    assert_eq!(staff, 3, "Anna, Bruno and the first administrator");
    lab.wait_count(alert_mails, staff);
    let posts = hook.wait_for(1, Duration::from_secs(15));
    let texts: Vec<String> = posts.iter().map(|p| p.text()).collect();
    let unknown: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("unknown cards"))
        .collect();
    assert_eq!(unknown.len(), 1, "{texts:?}");
    let text = unknown[0];
    assert!(text.contains("33 unknown cards"), "{text}");
    // The name reads as text: no channel ping, no @here, no bold.
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(!text.contains("@here"), "{text}");
    assert!(!text.contains(" *LASER*"), "{text}");
    assert!(
        text.contains("\\<\\!channel\\>") && text.contains("\\*LASER\\*"),
        "{text}"
    );
    drop(d);
}
