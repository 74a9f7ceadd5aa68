//! Periodic work on one thread: remote start/stop requests queued by other processes,
//! orphan uses, flushing heartbeat state, the stats topic, the building register's
//! reminder and closing times, once a day the backup, the integrity check and the
//! retention purge (`daily`), store faults and their staff alerts (`faults`), and the
//! clock: jumps re-base open uses, and time-based work waits until it is synchronised
//! (`clock`). Nothing here is on a board's request path.

mod clock;
mod daily;
mod faults;

pub use clock::ClockSync;
pub use daily::{backup_due, Daily};

use crate::broker::Broker;
use crate::lab::{self, presence, Ctx, Rules};
use crate::store::{self, Hot, Store};
use crate::terminals::{messages, Protocol, Stats};
use rumqttd::local::{LinkRx, LinkTx};

/// The jobs' publish-only link; its receiving half is kept so the router sees it alive.
type OutLink = (LinkTx, LinkRx);
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Jobs {
    pub broker: Broker,
    pub store: Store,
    pub hot: Arc<Mutex<Hot>>,
    pub protocol: Protocol,
    pub rules: Rules,
    pub stats: Arc<Stats>,
    pub tick: Duration,
    pub flush_every: Duration,
    pub stats_every: Option<Duration>,
    pub stats_topic: String,
    /// Reminder and closing times of the building register.
    pub presence: crate::config::PresenceConfig,
    pub daily: Daily,
    /// Staff alerts (`sync::alerts`), checked every `ALERTS_EVERY`.
    pub alerts: Option<crate::sync::alerts::Alerts>,
    /// Weekly summary: weekday (1 = Monday) and local hour; `None` = never.
    pub weekly: Option<(i8, u8)>,
    /// Where "the clock is synchronised" comes from (`[store] clock_sync`).
    pub clock_sync: ClockSync,
}

/// How often the clock's synchronisation is asked.
const CLOCK_EVERY: Duration = Duration::from_secs(2);

/// How often the alert conditions are checked.
const ALERTS_EVERY: Duration = Duration::from_secs(60);

/// How often orphan uses are looked for; the rule itself works in hours.
const ORPHAN_EVERY: Duration = Duration::from_secs(5);

impl Jobs {
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("jobs".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut conn = loop {
            crate::watchdog::beat(&self.stats.jobs_alive_at);
            match self.store.connect() {
                Ok(c) => break c,
                Err(e) => log::error!("jobs: {e}"),
            }
            std::thread::sleep(Duration::from_secs(5));
        };
        let mut out: Option<OutLink> = None;
        let start = Instant::now();
        let (mut last_flush, mut last_stats, mut last_orphans) =
            (start, start, start - ORPHAN_EVERY);
        let host = host_name();
        let ip = host_ip(&host, self.broker.addr());
        let mut presence_checked = store::now();
        let mut last_alerts: Option<Instant> = None;
        let mut watch = faults::FaultWatch::default();
        let mut last_clock: Option<Instant> = None;
        let mut synced = self.clock_tick(true);
        let mut caught_up = false;
        let mut shifted = 0;
        loop {
            crate::watchdog::beat(&self.stats.jobs_alive_at);
            std::thread::sleep(self.tick);
            if last_clock.is_none_or(|t| t.elapsed() >= CLOCK_EVERY) {
                last_clock = Some(Instant::now());
                synced = self.clock_tick(synced);
            }
            match self.rebase(&mut conn) {
                // Times the jobs remember move with the clock, so a jump "passes" no
                // closing time.
                Ok(total) => {
                    presence_checked += total - shifted;
                    shifted = total;
                }
                Err(e) => log::error!("re-basing after a clock jump: {e}"),
            }
            watch.run(&mut conn, &self.stats.faults, store::now());
            if let Err(e) = self.remote_requests(&mut conn, &mut out) {
                log::error!("remote requests: {e}");
            }
            let orphan_every = ORPHAN_EVERY.min(self.tick * 5);
            if last_orphans.elapsed() >= orphan_every {
                last_orphans = Instant::now();
                if let Err(e) = self.orphans(&mut conn) {
                    log::error!("closing orphan uses: {e}");
                }
            }
            if last_flush.elapsed() >= self.flush_every {
                last_flush = Instant::now();
                if let Err(e) = flush(&mut conn, &self.hot) {
                    log::error!("flushing heartbeats: {e}");
                }
            }
            if !synced {
                // Time-based work waits for a synchronised clock (issue 12).
                continue;
            }
            if !caught_up {
                caught_up = true;
                presence_checked = store::now();
                if let Err(e) = self.presence_catch_up(&mut conn, presence_checked) {
                    log::error!("presence: {e}");
                }
            }
            if let Err(e) = self.presence_times(&mut conn, &mut presence_checked) {
                log::error!("presence: {e}");
            }
            self.daily.run(&mut conn, &self.stats.faults);
            if last_alerts.is_none_or(|t| t.elapsed() >= ALERTS_EVERY) {
                last_alerts = Some(Instant::now());
                if let Err(e) = self.check_alerts(&mut conn) {
                    log::error!("alerts: {e}");
                }
                if let Err(e) = self.weekly_summary(&mut conn) {
                    log::error!("weekly summary: {e}");
                }
            }
            if let Some(every) = self.stats_every {
                if last_stats.elapsed() >= every {
                    last_stats = Instant::now();
                    let payload = serde_json::json!({
                        "Connected": true,
                        "Backend host": host,
                        "Backend IP": ip,
                        "Received": self.stats.received.load(Ordering::Relaxed),
                        "Sent": self.stats.sent.load(Ordering::Relaxed),
                    });
                    self.publish(
                        &mut out,
                        self.stats_topic.clone(),
                        payload.to_string().into_bytes(),
                    );
                }
            }
        }
    }

    fn publish(&self, out: &mut Option<OutLink>, topic: String, payload: Vec<u8>) -> bool {
        if out.is_none() {
            match self.broker.link("jobs") {
                Ok((_, tx, rx)) => *out = Some((tx, rx)),
                Err(e) => {
                    log::error!("cannot open the jobs link: {e}");
                    return false;
                }
            }
        }
        let Some((tx, _)) = out.as_mut() else {
            return false;
        };
        match tx.publish(topic, payload) {
            Ok(_) => true,
            Err(e) => {
                log::error!("publish failed, rebuilding the jobs link: {e}");
                *out = None;
                false
            }
        }
    }

    /// Publishes remote start/stop requests queued in `board_requests` (by the CLI).
    fn remote_requests(
        &self,
        conn: &mut rusqlite::Connection,
        out: &mut Option<OutLink>,
    ) -> store::Result<()> {
        if !store::has_board_requests(conn)? {
            return Ok(());
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let requests = store::take_board_requests(&tx)?;
        tx.commit()?;
        for r in requests {
            let verdict = {
                let hot = self
                    .hot
                    .lock()
                    .map_err(|_| store::Error::Invalid("hot state poisoned".into()))?;
                lab::check_remote_request(
                    conn,
                    &hot,
                    r.machine_id,
                    &r.card_uid,
                    store::now(),
                    &self.rules,
                )?
            };
            match verdict {
                Ok(()) => {
                    let payload = messages::to_bytes(&messages::BoardRequest {
                        request_type: &r.request_type,
                        uid: &r.card_uid,
                    });
                    if self.publish(out, self.protocol.request_topic(r.machine_id), payload) {
                        log::info!("remote {} sent to machine {}", r.request_type, r.machine_id);
                    }
                }
                Err(why) => log::warn!(
                    "remote {} for machine {} not sent: {why}",
                    r.request_type,
                    r.machine_id
                ),
            }
        }
        Ok(())
    }

    /// Stays begun before the latest closing time are over, even if the daemon was not
    /// running at that time.
    fn presence_catch_up(&self, conn: &mut rusqlite::Connection, now: i64) -> store::Result<()> {
        let Some(closing) = self.presence.closing_s() else {
            return Ok(());
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        presence::close_day(&tx, presence::last_occurrence(now, closing))?;
        tx.commit()?;
        crate::sync::wake_if_queued();
        Ok(())
    }

    /// The building register's times of day: reminder, then closing.
    fn presence_times(&self, conn: &mut rusqlite::Connection, last: &mut i64) -> store::Result<()> {
        let now = store::now();
        let from = std::mem::replace(last, now);
        if let Some(at) = self.presence.reminder_s() {
            if presence::passed(from, now, at) {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                presence::remind_still_in(&tx)?;
                tx.commit()?;
                crate::sync::wake();
            }
        }
        if let Some(at) = self.presence.closing_s() {
            if presence::passed(from, now, at) {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let n = presence::close_day(&tx, now)?;
                tx.commit()?;
                crate::sync::wake_if_queued();
                log::info!("presence: closing time, {n} signed out");
            }
        }
        Ok(())
    }

    /// Fires new staff alerts and clears those whose condition ended.
    fn check_alerts(&self, conn: &mut rusqlite::Connection) -> store::Result<()> {
        let Some(alerts) = &self.alerts else {
            return Ok(());
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let report = {
            let hot = self
                .hot
                .lock()
                .map_err(|_| store::Error::Invalid("hot state poisoned".into()))?;
            crate::sync::alerts::check(&tx, Some(&hot), alerts, store::now())?
        };
        tx.commit()?;
        if !report.fired.is_empty() {
            crate::sync::wake();
        }
        Ok(())
    }

    /// Queues last week's summary once this week's day and hour have passed.
    fn weekly_summary(&self, conn: &mut rusqlite::Connection) -> store::Result<()> {
        use crate::sync::weekly;
        let Some((day, hour)) = self.weekly else {
            return Ok(());
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last = store::setting(&tx, weekly::LAST_WEEK)?;
        let Some(week) = weekly::due(
            store::now(),
            &weekly::lab_zone(&tx),
            day,
            hour,
            last.as_deref(),
        ) else {
            return Ok(());
        };
        let n = weekly::queue(&tx, &week)?;
        tx.commit()?;
        log::info!("weekly summary of {}: {n} emails queued", week.id);
        crate::sync::wake();
        Ok(())
    }

    /// Asks whether the clock is synchronised; tells the panel and the heartbeat state.
    fn clock_tick(&self, was: bool) -> bool {
        let synced = self.clock_sync.synchronised();
        self.stats
            .faults
            .clock_unsynced
            .store(!synced, Ordering::Relaxed);
        if let Ok(mut hot) = self.hot.lock() {
            let now = hot.now();
            hot.set_clock_stale(!synced, now);
        }
        if synced != was {
            if synced {
                log::info!("the clock is synchronised: time-based jobs run");
            } else {
                log::warn!("the clock is not synchronised: backups, purges, closing times and summaries wait");
            }
        }
        synced
    }

    /// Reads the clock; after a jump, re-bases the database. Returns the total shift so far.
    fn rebase(&self, conn: &mut rusqlite::Connection) -> store::Result<i64> {
        let mut hot = self
            .hot
            .lock()
            .map_err(|_| store::Error::Invalid("hot state poisoned".into()))?;
        hot.now();
        let Some(j) = hot.take_jump() else {
            return Ok(hot.shifted_total());
        };
        let result = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            lab::rebase(&tx, j)?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            hot.untake_jump(j);
            return Err(e);
        }
        Ok(hot.shifted_total())
    }

    fn orphans(&self, conn: &mut rusqlite::Connection) -> store::Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut jump = None;
        {
            let mut hot = self
                .hot
                .lock()
                .map_err(|_| store::Error::Invalid("hot state poisoned".into()))?;
            let now = hot.now();
            if let Some(j) = hot.take_jump() {
                jump = Some(j);
                if let Err(e) = lab::rebase(&tx, j) {
                    hot.untake_jump(j);
                    return Err(e);
                }
            }
            let mut ctx = Ctx {
                db: &tx,
                hot: &mut hot,
                now,
                rules: &self.rules,
            };
            lab::close_orphans(&mut ctx)?;
        }
        if let Err(e) = tx.commit() {
            if let (Some(j), Ok(mut hot)) = (jump, self.hot.lock()) {
                hot.untake_jump(j);
            }
            return Err(e.into());
        }
        crate::sync::wake_if_queued();
        Ok(())
    }
}

/// Writes the in-memory heartbeats to the database.
pub fn flush(conn: &mut rusqlite::Connection, hot: &Mutex<Hot>) -> store::Result<()> {
    let mut hot = hot
        .lock()
        .map_err(|_| store::Error::Invalid("hot state poisoned".into()))?;
    if !hot.is_dirty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    hot.flush(&tx)?;
    tx.commit()?;
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "fabgate".into())
}

/// The address FabOMatic reports as "Backend IP": the host name's address, or the
/// broker's listen address.
fn host_ip(host: &str, listen: std::net::SocketAddr) -> String {
    use std::net::ToSocketAddrs;
    if !listen.ip().is_unspecified() {
        return listen.ip().to_string();
    }
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}
