//! The sync worker: the one thread that talks to the network for the lab. It delivers the
//! outbox rows that are due (email, Google Calendar events; webhooks later), marks them
//! sent, schedules a retry with backoff, or marks them failed when the error is permanent.
//! All its state is in the `outbox` table, so a restart (or a power cut mid-delivery)
//! loses nothing: a row is only `sent` once the server has accepted it (at-least-once).
//!
//! Code that queues a row in this process calls `wake()` after its commit, so the worker
//! does not wait for its next poll.

pub mod alerts;
pub mod calendar;
pub mod email;
pub mod outbox;
pub mod webhook;
pub mod weekly;

use crate::config::SyncConfig;
use crate::store::{self, Store};
use outbox::{Backoff, Email};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    /// Try again later (no network, 4xx, timeout...).
    Retry(String),
    /// Never try again by itself (5xx, bad address, bad payload).
    Permanent(String),
    /// The server could not be reached (no route, refused, timeout, TLS handshake): this
    /// row waits its backoff, and so do the other rows for that server, so a dead server
    /// costs one timeout per attempt, not one per queued row.
    Unreachable(String),
    /// The server asks us to slow down (429, Google's 403 `rateLimitExceeded`): this row
    /// and every other row for that server wait its `Retry-After` (or the backoff).
    RateLimited {
        why: String,
        after: Option<Duration>,
    },
    /// Not tried: this kind of delivery is not set up yet. Waits like `Retry`, but says
    /// nothing about the network.
    NotSetUp(String),
}

/// The worker's view of the network, for the panel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Last delivery accepted by a server (Unix seconds).
    pub last_success: Option<i64>,
    /// Last attempt that failed, and why.
    pub last_failure: Option<(i64, String)>,
}

impl Status {
    /// Online when the last attempt succeeded; unknown before any attempt.
    pub fn online(&self) -> Option<bool> {
        match (self.last_success, &self.last_failure) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(ok), Some((bad, _))) => Some(ok >= *bad),
        }
    }
}

static STATUS: Mutex<Status> = Mutex::new(Status {
    last_success: None,
    last_failure: None,
});
static WAKE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// The worker's last successes and failures in this process.
pub fn status() -> Status {
    STATUS.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Asks the worker to look at the outbox now (after committing a new or retried row).
pub fn wake() {
    let (lock, cv) = &WAKE;
    if let Ok(mut w) = lock.lock() {
        *w = true;
        cv.notify_all();
    }
}

/// Wakes the worker if this process queued calendar changes or webhook posts since the
/// last call (call after the commit of a change that may have queued them).
pub fn wake_if_queued() {
    calendar::wake_if_queued();
    webhook::wake_if_queued();
}

fn wait(timeout: Duration) {
    let (lock, cv) = &WAKE;
    let Ok(mut w) = lock.lock() else {
        std::thread::sleep(timeout);
        return;
    };
    if !*w {
        w = match cv.wait_timeout(w, timeout) {
            Ok((w, _)) => w,
            Err(_) => return,
        };
    }
    *w = false;
}

/// A `Retry-After` header in seconds (the form Google and Slack send); an HTTP date or
/// anything else is ignored and the backoff applies.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Which server a row goes to, for pausing or resuming all its rows at once: the kind,
/// and for webhooks the URL.
fn server_of(row: &store::OutboxRow) -> (String, Option<String>) {
    let url = (row.kind == "webhook")
        .then(|| serde_json::from_str::<webhook::Post>(&row.payload).ok())
        .flatten()
        .map(|p| p.url);
    (row.kind.clone(), url)
}

/// The longest `Retry-After` honoured (a server asking for more gets asked again then).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Rows delivered per look at the outbox.
const BATCH: usize = 20;

/// The worker thread.
pub struct Worker {
    pub store: Store,
    pub config: SyncConfig,
}

impl Worker {
    pub fn spawn(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("sync".into())
            .spawn(move || self.run())?;
        Ok(())
    }

    fn run(self) {
        let poll = Duration::from_secs(self.config.poll_interval_s);
        let mut conn = None;
        loop {
            if conn.is_none() {
                conn = match self.store.connect() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        log::error!("sync: cannot open the database: {e}");
                        None
                    }
                };
            }
            let mut more = false;
            if let Some(c) = conn.as_ref() {
                match self.deliver_due(c) {
                    Ok(n) => more = n == BATCH,
                    Err(e) => {
                        log::error!("sync: {e}");
                        conn = None;
                    }
                }
            }
            if !more {
                let until_due = conn
                    .as_ref()
                    .and_then(|c| store::outbox_next_due(c).ok().flatten())
                    .map(|at| Duration::from_secs((at - store::now()).max(0) as u64))
                    .unwrap_or(poll);
                wait(until_due.min(poll).max(Duration::from_millis(200)));
            }
        }
    }

    /// Delivers the rows due now; returns how many it tried.
    pub fn deliver_due(&self, conn: &rusqlite::Connection) -> store::Result<usize> {
        let rows = store::outbox_due(conn, store::now(), BATCH)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let smtp = email::Smtp::load(conn, &self.config);
        let backoff = Backoff::from_config(&self.config);
        let mut http = None;
        // Servers that asked us to slow down during this batch: their rows are skipped.
        let mut paused: Vec<(String, Option<String>)> = Vec::new();
        for row in &rows {
            let server = server_of(row);
            if paused.contains(&server) {
                continue;
            }
            let outcome = match row.kind.as_str() {
                "email" => match serde_json::from_str::<Email>(&row.payload) {
                    Ok(e) => email::send(
                        &smtp,
                        &e,
                        &email::message_key(row.id, row.created_at, &row.payload),
                    ),
                    Err(e) => Outcome::Permanent(format!("bad payload: {e}")),
                },
                "calendar" => calendar::deliver(conn, &self.config, &row.payload),
                "webhook" => match serde_json::from_str::<webhook::Post>(&row.payload) {
                    Ok(p) => {
                        let timeout = Duration::from_secs(self.config.webhook_timeout_s);
                        webhook::send(http.get_or_insert_with(|| webhook::agent(timeout)), &p)
                    }
                    Err(e) => Outcome::Permanent(format!("bad payload: {e}")),
                },
                other => Outcome::Retry(format!("{other} delivery is not available yet")),
            };
            let now = store::now();
            let network = !matches!(outcome, Outcome::NotSetUp(_));
            let unreachable = matches!(outcome, Outcome::Unreachable(_));
            match outcome {
                Outcome::Sent => {
                    let back = store::outbox_due_now(conn, &server.0, server.1.as_deref(), now)?;
                    if back > 0 {
                        log::info!(
                            "sync: {} server reachable again: {back} waiting rows due now",
                            row.kind
                        );
                    }
                    store::outbox_mark_sent(
                        conn,
                        row.id,
                        now,
                        &if row.kind == "calendar" {
                            calendar::sent_summary(&row.payload)
                        } else {
                            outbox::sent_summary(&row.kind, &row.payload)
                        },
                    )?;
                    log::info!("sync: outbox row {} ({}) delivered", row.id, row.kind);
                    if let Ok(mut s) = STATUS.lock() {
                        s.last_success = Some(now);
                    }
                }
                Outcome::Retry(why) | Outcome::NotSetUp(why) | Outcome::Unreachable(why) => {
                    let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                    let delay = backoff.delay_random(attempts);
                    let at = now + delay.as_secs() as i64;
                    store::outbox_mark_retry(conn, row.id, at, &why)?;
                    if unreachable {
                        store::outbox_defer(conn, &server.0, server.1.as_deref(), at, &why)?;
                        paused.push(server);
                    }
                    log::warn!(
                        "sync: outbox row {} ({}) not delivered, attempt {attempts}, retry in {} s: {why}",
                        row.id,
                        row.kind,
                        delay.as_secs()
                    );
                    if network {
                        if let Ok(mut s) = STATUS.lock() {
                            s.last_failure = Some((now, why));
                        }
                    }
                }
                Outcome::RateLimited { why, after } => {
                    let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                    let wait = after
                        .map(|a| a.clamp(Duration::from_secs(1), MAX_RETRY_AFTER))
                        .unwrap_or_else(|| backoff.delay_random(attempts));
                    // `now` is whole seconds: one more makes sure the full wait passes.
                    let at = now + wait.as_secs() as i64 + 1;
                    store::outbox_mark_retry(conn, row.id, at, &why)?;
                    let held = store::outbox_defer(conn, &server.0, server.1.as_deref(), at, &why)?;
                    log::warn!(
                        "sync: {} server asks to slow down; row {} and {held} others wait {} s: {why}",
                        row.kind,
                        row.id,
                        wait.as_secs()
                    );
                    paused.push(server);
                }
                Outcome::Permanent(why) => {
                    store::outbox_mark_failed(conn, row.id, &why)?;
                    log::error!(
                        "sync: outbox row {} ({}) failed for good: {why}",
                        row.id,
                        row.kind
                    );
                    if let Ok(mut s) = STATUS.lock() {
                        // The server answered: the network is there.
                        s.last_success.get_or_insert(now);
                    }
                }
            }
        }
        Ok(rows.len())
    }
}
