//! The sync worker: the one thread that talks to the network for the lab. It delivers the
//! outbox rows that are due (email, Google Calendar events, webhooks), marks them sent,
//! schedules a retry with backoff, holds every row of a server that is down, rate limiting
//! or refusing the settings (`holds`), or marks a row failed when its error is permanent.
//! All its state is in the `outbox` table, so a restart (or a power cut mid-delivery)
//! loses nothing: a row is only `sent` once the server has accepted it (at-least-once).
//!
//! Code that queues a row in this process calls `wake()` after its commit, so the worker
//! does not wait for its next poll.

pub mod alerts;
pub mod calendar;
pub mod email;
pub mod holds;
pub mod outbox;
pub mod webhook;
pub mod weekly;

use crate::config::SyncConfig;
use crate::store::{self, Store};
use outbox::Backoff;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    /// Nothing to send any more (a calendar change superseded by a newer one already
    /// delivered): done, without having talked to the server.
    Skipped,
    /// This row failed but may succeed later (a 4xx SMTP answer, a 5xx on one event).
    Retry(String),
    /// Never try again by itself (a 5xx SMTP answer for this recipient, a bad address, a
    /// bad payload, other HTTP 4xx).
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
    /// The settings are missing or refused (no SMTP host, a refused login, a calendar not
    /// shared with the service account): every row of that server waits, says nothing
    /// about the network, and goes out as soon as staff save new settings.
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

/// Which server a row goes to, for holding or resuming all its rows at once: the kind,
/// and for webhooks the URL, for calendar changes the calendar.
fn server_of(row: &store::OutboxRow) -> holds::Server {
    let v: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
    let key = match row.kind.as_str() {
        "webhook" => v["url"].as_str(),
        "calendar" => v["calendar_id"].as_str(),
        _ => None,
    };
    (row.kind.clone(), key.map(String::from))
}

/// The longest a server that does not answer is left alone: it is tried again (with one
/// row) at least this often, so a lab back online is noticed within a minute.
const PROBE_EVERY: Duration = Duration::from_secs(60);

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

    /// Delivers the rows due now; returns how many it looked at.
    pub fn deliver_due(&self, conn: &rusqlite::Connection) -> store::Result<usize> {
        let rows = store::outbox_due(conn, store::now(), BATCH)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let smtp = email::Smtp::load(conn, &self.config);
        let mut http = None;
        for row in &rows {
            // Staff may have discarded or rescheduled it, or a hold moved it, since the
            // batch was read (an earlier row may have waited for a timeout).
            let now = store::now();
            let Some(row) = store::outbox_row(conn, row.id)?
                .filter(|r| r.state == "pending" && r.next_attempt_at <= now)
            else {
                continue;
            };
            let server = server_of(&row);
            if let Some(h) = holds::current(&server, now) {
                store::outbox_defer(conn, &server.0, server.1.as_deref(), h.until, &h.why)?;
                continue;
            }
            if row.expires_at.is_some_and(|at| at < now) {
                store::outbox_mark_failed(
                    conn,
                    row.id,
                    "expired before it could be delivered (it would no longer be of use)",
                )?;
                continue;
            }
            let outcome = match row.kind.as_str() {
                "email" => email::deliver(conn, &smtp, &row),
                "calendar" => calendar::deliver(conn, &self.config, &row.payload),
                "webhook" => match serde_json::from_str::<webhook::Post>(&row.payload) {
                    Ok(p) => {
                        let timeout = Duration::from_secs(self.config.webhook_timeout_s);
                        webhook::send(http.get_or_insert_with(|| webhook::agent(timeout)), &p)
                    }
                    Err(e) => Outcome::Permanent(format!("bad payload: {e}")),
                },
                other => Outcome::Permanent(format!("unknown outbox kind {other}")),
            };
            self.settle(conn, &row, &server, outcome)?;
        }
        Ok(rows.len())
    }

    /// Records what one attempt came to.
    fn settle(
        &self,
        conn: &rusqlite::Connection,
        row: &store::OutboxRow,
        server: &holds::Server,
        outcome: Outcome,
    ) -> store::Result<()> {
        let now = store::now();
        let backoff = Backoff::from_config(&self.config);
        let status = |f: &dyn Fn(&mut Status)| {
            if let Ok(mut s) = STATUS.lock() {
                f(&mut s);
            }
        };
        match outcome {
            Outcome::Sent | Outcome::Skipped => {
                let summary = if row.kind == "calendar" {
                    calendar::sent_summary(&row.payload)
                } else {
                    outbox::sent_summary(&row.kind, &row.payload)
                };
                store::outbox_mark_sent(conn, row.id, now, &summary)?;
                if outcome == Outcome::Skipped {
                    log::debug!("sync: outbox row {} superseded", row.id);
                    return Ok(());
                }
                log::info!("sync: outbox row {} ({}) delivered", row.id, row.kind);
                holds::release(server);
                let back = store::outbox_due_now(conn, &server.0, server.1.as_deref(), now)?;
                if back > 0 {
                    log::info!(
                        "sync: {} server answers again: {back} held rows due now",
                        row.kind
                    );
                }
                status(&|s| s.last_success = Some(now));
            }
            Outcome::Retry(why) => {
                let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                let delay = backoff.delay_random(attempts);
                store::outbox_mark_retry(conn, row.id, now + delay.as_secs() as i64, &why)?;
                log::warn!(
                    "sync: outbox row {} ({}) not delivered, attempt {attempts}, retry in {} s: {why}",
                    row.id,
                    row.kind,
                    delay.as_secs()
                );
                // The server answered.
                holds::release(server);
            }
            Outcome::Permanent(why) => {
                store::outbox_mark_failed(conn, row.id, &why)?;
                log::error!(
                    "sync: outbox row {} ({}) failed for good: {why}",
                    row.id,
                    row.kind
                );
                holds::release(server);
                status(&|s| {
                    s.last_success.get_or_insert(now);
                });
            }
            held => {
                let level = holds::level(server).saturating_add(1);
                let (why, wait, settings) = match held {
                    Outcome::RateLimited { why, after } => {
                        let wait = after
                            .map(|a| a.clamp(Duration::from_secs(1), MAX_RETRY_AFTER))
                            .unwrap_or_else(|| backoff.delay_random(level));
                        (why, wait, false)
                    }
                    Outcome::NotSetUp(why) => (why, backoff.delay_random(level), true),
                    Outcome::Unreachable(why) => {
                        status(&|s| s.last_failure = Some((now, why.clone())));
                        (why, backoff.delay_random(level).min(PROBE_EVERY), false)
                    }
                    _ => unreachable!("the arms above take the other outcomes"),
                };
                // `now` is whole seconds: one more makes sure the full wait passes.
                let until = now + wait.as_secs() as i64 + 1;
                holds::hold(server, until, &why, settings);
                store::outbox_count_attempt(conn, row.id)?;
                let n = store::outbox_defer(conn, &server.0, server.1.as_deref(), until, &why)?;
                log::warn!(
                    "sync: {} server held for {} s ({n} rows wait): {why}",
                    row.kind,
                    wait.as_secs() + 1
                );
            }
        }
        Ok(())
    }
}
