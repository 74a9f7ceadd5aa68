//! The daemon's MQTT side of the boards: one in-process broker link subscribed to
//! `machine/+`. Messages are handled in batches: everything that arrived together is
//! processed in one transaction, committed (one fsync), and only then are the replies
//! published, so a reply to `startuse`/`stopuse`/`maintenance` always means "stored".
//! Per machine, queries are answered in arrival order (one link, one thread).

use super::{DropReason, Handled, Protocol};
use crate::broker::Broker;
use crate::lab::{Ctx, Rules};
use crate::metrics::{Histogram, MessageCounters, Outcome};
use crate::store::{self, Hot, Store};
use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::Notification;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters for the stats topic and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Every message delivered to the daemon, dropped ones included (FabOMatic's "Received").
    pub received: AtomicU64,
    /// Replies published ("Sent").
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    /// Heartbeats of the board link loop and of the jobs loop (`watchdog::beat`,
    /// monotonic milliseconds; 0 = not started yet): the watchdog pings systemd only
    /// while both are fresh.
    pub alive_at: AtomicU64,
    pub jobs_alive_at: AtomicU64,
    /// How many times the board link was (re)built, and its current client id.
    pub links_built: AtomicU64,
    pub link_id: Mutex<String>,
    /// Board messages by action and outcome, for `/metrics`.
    pub messages: MessageCounters,
    /// Time from a batch's receipt to the publication of each of its replies.
    pub reply_latency: Histogram,
    /// Store faults and the clock's state, for the panel, `/metrics` and staff alerts.
    pub faults: crate::metrics::Faults,
    /// The broker's login and ACL counters (set when the board link starts).
    pub broker: std::sync::OnceLock<Arc<crate::broker::GateCounters>>,
}

/// Most messages handled in one transaction.
const MAX_BATCH: usize = 512;

/// Everything the board loop needs.
pub struct BoardLink {
    pub broker: Broker,
    pub store: Store,
    pub hot: Arc<Mutex<Hot>>,
    pub protocol: Protocol,
    pub rules: Rules,
    pub stats: Arc<Stats>,
}

impl BoardLink {
    /// Runs forever on its own thread, rebuilding the link if it dies (e.g. a client took
    /// over its id despite the precautions, or the router dropped it).
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let _ = self.stats.broker.set(self.broker.counters());
        std::thread::Builder::new()
            .name("boards".into())
            .spawn(move || loop {
                match self.serve() {
                    Ok(()) => return,
                    Err(e) => log::error!("board link failed: {e}; rebuilding it"),
                }
                std::thread::sleep(Duration::from_millis(200));
            })
    }

    fn serve(&self) -> Result<(), String> {
        let mut conn = self.store.connect().map_err(|e| e.to_string())?;
        let (id, mut tx, mut rx) = self.broker.link("boards")?;
        tx.subscribe(self.protocol.subscription())
            .map_err(|e| e.to_string())?;
        // Boards are let in only now that someone listens (issue 10: a query sent in the
        // window before went unanswered). The subscription is registered once the router
        // handled it; the router handles a link's events in order, so a PUBLISH from a
        // board (always after this) finds it.
        self.broker.open();
        self.stats.links_built.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut current) = self.stats.link_id.lock() {
            current.clone_from(&id);
        }
        log::debug!(
            "board link {id} subscribed to {}",
            self.protocol.subscription()
        );
        let mut limiter = LogLimiter::default();
        let mut batch = Vec::with_capacity(64);
        loop {
            crate::watchdog::beat(&self.stats.alive_at);
            batch.clear();
            match rx.recv_deadline(Instant::now() + Duration::from_secs(5)) {
                Ok(Some(n)) => batch.push(n),
                Ok(None) => continue,
                Err(LinkError::RecvTimeout(flume::RecvTimeoutError::Timeout)) => continue,
                Err(e) => return Err(e.to_string()),
            }
            let received = Instant::now();
            while batch.len() < MAX_BATCH {
                match rx.recv_deadline(Instant::now()) {
                    Ok(Some(n)) => batch.push(n),
                    _ => break,
                }
            }
            self.process(&mut conn, &mut tx, &rx, &mut batch, &mut limiter, received)?;
        }
    }

    fn process(
        &self,
        conn: &mut rusqlite::Connection,
        tx: &mut LinkTx,
        rx: &LinkRx,
        batch: &mut Vec<Notification>,
        limiter: &mut LogLimiter,
        received: Instant,
    ) -> Result<(), String> {
        let mut replies = Vec::with_capacity(batch.len());
        // Counted once the batch's fate is known: a reply withheld is not `replied`.
        let mut counted = Vec::with_capacity(batch.len());
        let mut wake = false;
        let mut db = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        {
            Ok(db) => db,
            Err(e) => {
                // Dropping the batch unanswered makes boards buffer and replay their writes.
                log::error!(
                    "cannot start a transaction, {} board messages unanswered: {e}",
                    batch.len()
                );
                self.stats.faults.write_failed(&e.to_string(), store::now());
                self.stats
                    .faults
                    .withheld
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                return Ok(());
            }
        };
        let changes_before = db.total_changes();
        let mut jump = None;
        {
            let mut hot = self
                .hot
                .lock()
                .map_err(|_| "hot state poisoned".to_string())?;
            // The clock as the lab sees it: a wall-clock jump re-bases open uses first.
            let now = hot.now();
            if let Some(j) = hot.take_jump() {
                match crate::lab::rebase(&db, j) {
                    Ok(()) => jump = Some(j),
                    Err(e) => {
                        log::error!("re-basing after a clock jump: {e}");
                        hot.untake_jump(j);
                    }
                }
            }
            for n in batch.drain(..) {
                let publish = match n {
                    Notification::Forward(f) => f.publish,
                    Notification::Unschedule => {
                        wake = true;
                        continue;
                    }
                    Notification::Disconnect(..) => {
                        return Err("router disconnected the link".into())
                    }
                    _ => continue,
                };
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                let topic = String::from_utf8_lossy(&publish.topic);
                let (action, handled) = match db.savepoint() {
                    Ok(mut sp) => {
                        let mut ctx = Ctx {
                            db: &sp,
                            hot: &mut hot,
                            now,
                            rules: &self.rules,
                        };
                        let (action, handled) =
                            self.protocol
                                .handle_action(&mut ctx, &topic, &publish.payload);
                        if matches!(handled, Handled::Failed { .. }) {
                            let _ = sp.rollback();
                        }
                        let _ = sp.commit();
                        (action, handled)
                    }
                    Err(e) => {
                        log::error!("cannot open a savepoint: {e}");
                        (
                            None,
                            Handled::Failed {
                                reply: None,
                                cause: e.to_string(),
                            },
                        )
                    }
                };
                if let Handled::Failed { cause, .. } = &handled {
                    self.stats.faults.write_failed(cause, now);
                }
                let outcome = match handled {
                    Handled::Reply { topic, payload } => {
                        replies.push((topic, payload));
                        Outcome::Replied
                    }
                    Handled::Failed {
                        reply: Some((topic, payload)),
                        ..
                    } => {
                        replies.push((topic, payload));
                        Outcome::Failed
                    }
                    Handled::NoReply => Outcome::Silent,
                    Handled::Failed { reply: None, .. } => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        Outcome::Withheld
                    }
                    Handled::Dropped(reason) => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        limiter.warn(&topic, &reason);
                        Outcome::Dropped
                    }
                };
                counted.push((action, outcome));
            }
        }
        // Only a commit that wrote something proves the store takes writes again.
        let wrote = db.total_changes() > changes_before;
        let committed = match db.commit() {
            Err(e) => {
                log::error!(
                    "commit failed, {} replies withheld so boards replay: {e}",
                    replies.len()
                );
                self.stats.faults.write_failed(&e.to_string(), store::now());
                replies.clear();
                if let (Some(j), Ok(mut hot)) = (jump, self.hot.lock()) {
                    hot.untake_jump(j);
                }
                false
            }
            Ok(()) => {
                if wrote {
                    self.stats.faults.writes_ok(store::now());
                }
                crate::sync::wake_if_queued();
                true
            }
        };
        for (action, outcome) in counted {
            let outcome = match outcome {
                Outcome::Replied | Outcome::Failed if !committed => Outcome::Withheld,
                o => o,
            };
            if outcome == Outcome::Withheld {
                self.stats.faults.withheld.fetch_add(1, Ordering::Relaxed);
            }
            self.stats.messages.count(action, outcome);
        }
        for (topic, payload) in replies {
            tx.publish(topic, payload).map_err(|e| e.to_string())?;
            self.stats.sent.fetch_add(1, Ordering::Relaxed);
            self.stats.reply_latency.observe(received.elapsed());
        }
        if wake {
            rx.ready().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Logs dropped messages without letting a flooding client fill the SD card with logs:
/// at most `BURST` lines per minute, then one summary line.
/// Dropped board messages: at most 20 lines a minute, then one summary line.
struct LogLimiter(crate::logging::Burst);

impl Default for LogLimiter {
    fn default() -> LogLimiter {
        LogLimiter(crate::logging::Burst::new(20))
    }
}

impl LogLimiter {
    fn warn(&mut self, topic: &str, reason: &DropReason) {
        let allowed = self
            .0
            .allow(|n| log::warn!("{n} more malformed board messages dropped in the last minute"));
        if allowed {
            log::warn!(
                "dropped message on {:?}: {reason}",
                super::messages::truncate(topic, 80)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, ProtocolConfig, Synchronous};
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

    fn lab_with_machine_1() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        store
            .connect()
            .unwrap()
            .execute_batch(
                "INSERT INTO machines (machine_id, machine_name, type_id) VALUES (1, 'LASER 1', 1)",
            )
            .unwrap();
        (dir, store)
    }

    /// Issue 10: boards are served only once the board link is subscribed, so the first
    /// query after a restart cannot be published before anyone listens.
    #[test]
    fn boards_wait_until_the_board_link_listens() {
        let (_dir, store) = lab_with_machine_1();
        let cfg = BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..BrokerConfig::default()
        };
        let broker = Broker::start(&cfg, None, &ProtocolConfig::default()).unwrap();
        let mut opts = MqttOptions::new("BOARD1", "127.0.0.1", broker.addr().port());
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(opts, 10);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for e in connection.iter() {
                let _ = tx.send(e.map_err(|e| e.to_string()));
            }
        });
        // The TCP connection is queued by the kernel, the CONNECT is not answered yet.
        assert!(
            !matches!(
                rx.recv_timeout(Duration::from_millis(500)),
                Ok(Ok(Event::Incoming(Packet::ConnAck(_))))
            ),
            "CONNACK before the board link listened"
        );
        client
            .subscribe("machine/1/reply", QoS::AtMostOnce)
            .unwrap();
        client
            .publish(
                "machine/1",
                QoS::AtMostOnce,
                false,
                br#"{"action":"checkmachine"}"#.to_vec(),
            )
            .unwrap();
        BoardLink {
            broker: broker.clone(),
            store,
            hot: Arc::default(),
            protocol: Protocol::new(&ProtocolConfig::default()),
            rules: Rules::from_config(&ProtocolConfig::default()),
            stats: Arc::default(),
        }
        .spawn()
        .unwrap();
        // The very first query, queued before the link existed, gets its reply.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    assert_eq!(p.topic, "machine/1/reply");
                    break;
                }
                Ok(Ok(_)) => {}
                other => panic!("no reply to the first query: {other:?}"),
            }
        }
    }

    /// An impostor takes the board link's client id over (what a device could do without
    /// the reserved-prefix check): the link dies, is rebuilt, and boards get answers again.
    #[test]
    fn a_dead_board_link_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        store
            .connect()
            .unwrap()
            .execute_batch(
                "INSERT INTO machines (machine_id, machine_name, type_id) VALUES (1, 'LASER 1', 1)",
            )
            .unwrap();
        let cfg = BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..BrokerConfig::default()
        };
        let protocol = Protocol::new(&ProtocolConfig::default());
        let broker = Broker::start(&cfg, None, &ProtocolConfig::default()).unwrap();
        let stats = Arc::new(Stats::default());
        BoardLink {
            broker: broker.clone(),
            store,
            hot: Arc::default(),
            protocol,
            rules: Rules::from_config(&ProtocolConfig::default()),
            stats: stats.clone(),
        }
        .spawn()
        .unwrap();

        let mut opts = MqttOptions::new("BOARD1", "127.0.0.1", broker.addr().port());
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(opts, 10);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for e in connection.iter().flatten() {
                if let Event::Incoming(Packet::Publish(p)) = e {
                    let _ = tx.send(p.payload.to_vec());
                }
            }
        });
        client
            .subscribe("machine/1/reply", QoS::AtMostOnce)
            .unwrap();
        let ask = || -> bool {
            while rx.try_recv().is_ok() {}
            client
                .publish(
                    "machine/1",
                    QoS::AtMostOnce,
                    false,
                    br#"{"action":"checkmachine"}"#.to_vec(),
                )
                .unwrap();
            rx.recv_timeout(Duration::from_millis(500)).is_ok()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ask() {
            assert!(Instant::now() < deadline, "no answer before the takeover");
        }
        assert_eq!(stats.links_built.load(Ordering::Relaxed), 1);

        // The real id is random and logged at debug level; the test reads it from stats.
        let id = stats.link_id.lock().unwrap().clone();
        let (_tx, _rx) = broker.link_as(&id).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.links_built.load(Ordering::Relaxed) < 2 {
            assert!(Instant::now() < deadline, "link not rebuilt");
            std::thread::sleep(Duration::from_millis(20));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ask() {
            assert!(Instant::now() < deadline, "no answer after the rebuild");
        }
    }
}
