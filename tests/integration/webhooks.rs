//! Chat webhooks: a board session posts exactly the configured messages to the webhooks
//! that want them, and a receiver that is down gets them once it is back, once.

use crate::common::webhook::Receiver;
use crate::common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A lab (fixture F) with a quick retry schedule and `webhooks` as TOML.
fn lab_with_webhooks(webhooks: &str) -> Lab {
    let mut lab = Lab::new();
    fixture_f(&lab);
    lab.extra_config = format!(
        "{}{webhooks}\n",
        SyncSection::fast().set("webhook_timeout_s", "3").text()
    );
    lab
}

fn wait_until(lab: &Lab, sql: &str, want: i64) {
    lab.wait_count(sql, want);
}

#[test]
fn a_board_session_posts_the_two_configured_messages() {
    let machines = Receiver::start();
    let presence = Receiver::start();
    let lab = lab_with_webhooks(&format!(
        "[[sync.webhooks]]\nurl = \"{}\"\nevents = [\"machine_started\", \"machine_stopped\"]\n\
         templates = {{ machine_started = \":green_circle: {{member}} on {{machine}}\", \
         machine_stopped = \":red_circle: {{machine}} free after {{duration}} ({{member}})\" }}\n\
         [[sync.webhooks]]\nurl = \"{}\"\nevents = [\"presence\"]\n",
        machines.url("/services/T0/B0/s3cret"),
        presence.url("/hook")
    ));
    let d = lab.start();
    let b = d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    b.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":30}"#);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":600}"#);
    let posts = machines.wait_for(2, WAIT);
    // Every row delivered: nothing more can arrive.
    lab.wait_kind_settled("webhook");
    let posts_after = machines.posts();
    assert_eq!(posts_after.len(), 2, "exactly two posts: {posts_after:?}");
    let texts: Vec<String> = posts.iter().map(|p| p.text()).collect();
    assert_eq!(
        texts,
        vec![
            ":green_circle: Carla C on LASER 1",
            ":red_circle: LASER 1 free after 10 min (Carla C)"
        ]
    );
    assert!(posts
        .iter()
        .all(|p| p.path == "/services/T0/B0/s3cret" && p.content_type == "application/json"));
    assert!(presence.posts().is_empty(), "{:?}", presence.posts());
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 2);
    let kept: String = lab
        .db()
        .query_row(
            "SELECT group_concat(payload) FROM outbox WHERE kind = 'webhook'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!kept.contains("s3cret"), "the webhook URL is kept: {kept}");
    assert!(!d.log_contains("s3cret"), "the webhook URL is in the log");

    // Signing in at the CLI posts to the presence webhook only.
    lab.ok(&["presence", "sign-in", "aabbccd4"]);
    let p = presence.wait_for(1, WAIT);
    assert_eq!(p[0].text(), "Dario D signed in");
    assert_eq!(machines.posts().len(), 2);
}

#[test]
fn a_receiver_that_is_down_gets_the_post_once_it_is_back() {
    let mut hook = Receiver::reserve();
    let lab = lab_with_webhooks(&format!(
        "[[sync.webhooks]]\nurl = \"{}\"\nevents = [\"machine_started\"]\n",
        hook.url("/down")
    ));
    let d = lab.start();
    let b = d.board("2");
    b.must(r#"{"action":"startuse", "uid":"aabbccd4"}"#);
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'webhook' AND state = 'pending' AND attempts >= 1",
        1,
    );
    // Up but overloaded: still waiting.
    hook.restart();
    hook.answer(503);
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND last_error LIKE '%503%'",
        1,
    );
    hook.answer(200);
    let posts = hook.wait_for(1, WAIT);
    lab.wait_kind_settled("webhook");
    assert_eq!(hook.posts().len(), 1, "delivered once: {posts:?}");
    assert_eq!(posts[0].text(), "Dario D started DRILL 1");
    wait_until(&lab, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'", 1);

    // A 404 is permanent.
    hook.answer(404);
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE state = 'failed'",
        1,
    );
}

#[test]
fn the_daemon_alerts_staff_once_when_maintenance_is_due() {
    let hook = Receiver::start();
    let lab = lab_with_webhooks(&format!(
        "[[sync.webhooks]]\nurl = \"{}\"\nevents = [\"maintenance_due\", \"alert\"]\n",
        hook.url("/alerts")
    ));
    lab.sql(
        "INSERT INTO roles (role_id, role_name, backend_admin) VALUES (10, 'panel', 1);
         INSERT INTO members (name, surname, role_id, email, language, created_at)
           VALUES ('Giulia', 'G', 10, 'giulia@example.org', 'it', 0);",
    );
    let _d = lab.start();
    // Fixture F: CNC 1 was used 2 h against a 1 h plan.
    let posts = hook.wait_for(1, WAIT);
    assert_eq!(posts[0].text(), "Maintenance due on CNC 1: Clean the bed");
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND payload LIKE '%giulia@example.org%' \
         AND payload LIKE '%Manutenzione da fare su CNC 1%'",
        1,
    );
    assert_eq!(
        lab.count(
            "SELECT COUNT(*) FROM alerts WHERE kind = 'maintenance_due' AND cleared_at IS NULL"
        ),
        1
    );
    // A restart checks the alerts again at once (its first stats message comes after):
    // the alert still stands, so nothing is posted twice.
    drop(_d);
    let d = lab.start();
    let watcher = d.board("1");
    watcher
        .client
        .subscribe("stats/fabgate", rumqttc::QoS::AtMostOnce)
        .unwrap();
    assert!(watcher.next_on("stats/fabgate", WAIT).is_some());
    lab.wait_kind_settled("webhook");
    assert_eq!(hook.posts().len(), 1, "{:?}", hook.posts());
    assert!(!d.log_contains("alert: "), "the alert fired again");
}

/// Every way a session begins or ends is announced: a heartbeat for a start we missed, a
/// new start on a machine whose last session was never stopped, and the orphan rule.
#[test]
fn missed_starts_implicit_stops_and_orphans_are_announced() {
    let hook = Receiver::start();
    let lab = lab_with_webhooks(&format!(
        "[[sync.webhooks]]\nurl = \"{}\"\nevents = [\"machine_started\", \"machine_stopped\"]\n",
        hook.url("/hook")
    ));
    let d = lab.start_with("", "orphan_after_s = 1");
    // The board missed our startuse: its first heartbeat opens the session.
    let laser = d.board("1");
    laser.must(r#"{"action":"inuse", "uid":"aabbccd3","duration":120}"#);
    // Carla's drill session is never stopped; Dario's start closes it.
    let drill = d.board("2");
    drill.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    drill.must(r#"{"action":"startuse", "uid":"aabbccd4"}"#);
    // No more heartbeats: both open sessions become orphans and are closed.
    let posts = hook.wait_for(6, WAIT);
    let mut texts: Vec<String> = posts.iter().map(|p| p.text()).collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "Carla C started DRILL 1",
            "Carla C started LASER 1",
            "Carla C stopped DRILL 1 after 0 s",
            "Carla C stopped LASER 1 after 2 min",
            "Dario D started DRILL 1",
            "Dario D stopped DRILL 1 after 1 s",
        ]
    );
    lab.wait_kind_settled("webhook");
    assert_eq!(hook.posts().len(), 6, "{:?}", hook.posts());
}

/// A receiver that answers 429 with `Retry-After` is left alone for that long: the row and
/// the other rows for the same URL wait, then all arrive. One that is down costs one
/// attempt per retry, not one per queued row.
#[test]
fn a_rate_limited_or_dead_receiver_is_not_hammered() {
    let hook = Receiver::start();
    hook.answer(429);
    hook.retry_after(3);
    let lab = lab_with_webhooks(&format!(
        "[[sync.webhooks]]\nurl = \"{}\"\nevents = [\"machine_started\", \"machine_stopped\"]\n",
        hook.url("/slow")
    ));
    let d = lab.start();
    let b = d.board("1");
    b.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    b.must(r#"{"action":"stopuse", "uid":"aabbccd3","duration":60}"#);
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'webhook' AND last_error LIKE 'HTTP 429%'",
        2,
    );
    let t0 = now();
    let hits = hook.hits();
    assert_eq!(
        lab.count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'webhook' AND state = 'pending' AND next_attempt_at >= {}",
            t0 + 1
        )),
        2,
        "both rows wait for the Retry-After"
    );
    hook.answer(200);
    let posts = hook.wait_for(2, WAIT);
    assert_eq!(posts.len(), 2);
    // Nothing was sent during the Retry-After: after the first 429, the next request came
    // 3 s later (2 s with the outbox's whole-second clock), not at the next poll.
    let times = hook.hit_times();
    assert!(hits >= 1);
    for t in &times[1..] {
        assert!(
            t.duration_since(times[0]) >= Duration::from_secs(2),
            "a request {:?} after the 429",
            t.duration_since(times[0])
        );
    }
    assert!(now() >= t0 + 2, "delivered after the wait");
    assert!(d.log_contains("webhook server held for"));

    // A dead receiver: ten queued posts, one connection attempt per retry.
    let mut dead = Receiver::reserve();
    let lab = lab_with_webhooks(&format!(
        "[[sync.webhooks]]\nurl = \"{}\"\nevents = [\"machine_started\", \"machine_stopped\"]\n",
        dead.url("/down")
    ));
    let d = lab.start();
    let b = d.board("2");
    for _ in 0..5 {
        b.must(r#"{"action":"startuse", "uid":"aabbccd4"}"#);
        b.must(r#"{"action":"stopuse", "uid":"aabbccd4","duration":5}"#);
    }
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'webhook' AND state = 'pending' AND last_error IS NOT NULL",
        10,
    );
    // Three connection attempts seen by the dead receiver: one per retry (1-2 s apart),
    // not one per queued row (ten at once).
    let conns = dead.server().wait_connections(3, WAIT);
    assert!(conns.len() >= 3, "{} connections", conns.len());
    for w in conns[..3].windows(2) {
        assert!(
            w[1].duration_since(w[0]) >= Duration::from_millis(500),
            "two attempts {:?} apart for 10 rows to one dead receiver",
            w[1].duration_since(w[0])
        );
    }
    dead.restart();
    assert_eq!(dead.wait_for(10, WAIT).len(), 10);
    wait_until(
        &lab,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'webhook' AND state = 'sent'",
        10,
    );
}
