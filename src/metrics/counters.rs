//! Lock-free counters the board link updates on its hot path: messages by action and
//! outcome, and the reply-latency histogram. Plain atomics, fixed label sets: no
//! allocation per message.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Board actions as labelled in metrics; `invalid` is a message dropped before its action
/// was known (bad topic, bad JSON, unknown action).
pub const ACTIONS: [&str; 9] = [
    "checkmachine",
    "checkuser",
    "startuse",
    "inuse",
    "stopuse",
    "maintenance",
    "alive",
    "synccache",
    "invalid",
];

/// What became of a board message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (the reply was published).
    Replied,
    /// Handled; the protocol expects no reply (`alive`).
    Silent,
    /// Malformed or not for us: dropped without reply.
    Dropped,
    /// The store failed: rolled back; reads still get an error reply.
    Failed,
    /// The store failed: no reply, so the board buffers the message and replays it. Never
    /// counted as `replied` (issue 12).
    Withheld,
}

pub const OUTCOMES: [(Outcome, &str); 5] = [
    (Outcome::Replied, "replied"),
    (Outcome::Silent, "silent"),
    (Outcome::Dropped, "dropped"),
    (Outcome::Failed, "failed"),
    (Outcome::Withheld, "withheld"),
];

/// Board messages by (action, outcome).
#[derive(Debug, Default)]
pub struct MessageCounters {
    counts: [[AtomicU64; 5]; ACTIONS.len()],
}

impl MessageCounters {
    pub fn count(&self, action: Option<&str>, outcome: Outcome) {
        let a = action
            .and_then(|a| ACTIONS.iter().position(|x| *x == a))
            .unwrap_or(ACTIONS.len() - 1);
        self.counts[a][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every non-zero (action, outcome, count).
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (a, action) in ACTIONS.iter().enumerate() {
            for (outcome, name) in OUTCOMES {
                let n = self.counts[a][outcome as usize].load(Ordering::Relaxed);
                if n > 0 {
                    out.push((*action, name, n));
                }
            }
        }
        out
    }
}

/// A fault of the store that staff must hear of: since when, and why in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub cause: String,
    pub since: i64,
    /// The staff alert for it is in the outbox.
    pub alerted: bool,
}

/// What is wrong with the store and the clock right now, shared by the board link (which
/// sees writes fail), the jobs (integrity checks, the clock, the staff alert) and the
/// panel, `/metrics` and logs (which show it). Recovery clears `write`; damage stays until
/// the database is restored and the daemon restarted.
#[derive(Debug, Default)]
pub struct Faults {
    /// Board replies withheld because the store failed (boards buffer and replay them).
    pub withheld: AtomicU64,
    /// Store operations that failed (a handler, or a batch's commit).
    pub store_errors: AtomicU64,
    /// The clock is not synchronised yet (time-based jobs wait).
    pub clock_unsynced: AtomicBool,
    write: Mutex<Option<Fault>>,
    damage: Mutex<Option<Fault>>,
    /// A write fault that ended before its alert could be queued (a full disk takes the
    /// outbox with it), and when it ended: staff still hear of it.
    ended_unalerted: Mutex<Option<(Fault, i64)>>,
}

/// A store error in words a person can act on.
pub fn describe_store_error(e: &str) -> String {
    let l = e.to_ascii_lowercase();
    if l.contains("disk is full") || l.contains("no space") {
        format!("the disk is full ({e})")
    } else if l.contains("readonly") || l.contains("read-only") {
        format!("the database or its disk is read-only ({e})")
    } else if l.contains("malformed") || l.contains("corrupt") || l.contains("not a database") {
        format!("the database is damaged ({e})")
    } else {
        e.to_string()
    }
}

impl Faults {
    /// A write failed at `now`; the first failure of an episode sets its start.
    pub fn write_failed(&self, error: &str, now: i64) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        let cause = describe_store_error(error);
        if cause.starts_with("the database is damaged") {
            self.damaged(&cause, now);
        }
        if let Ok(mut w) = self.write.lock() {
            match w.as_mut() {
                Some(f) => f.cause = cause,
                None => {
                    log::error!("store: writes fail: {cause}; board replies are withheld");
                    *w = Some(Fault {
                        cause,
                        since: now,
                        alerted: false,
                    });
                }
            }
        }
    }

    /// Writes work again at `now`; returns the fault that ended, if any.
    pub fn writes_ok(&self, now: i64) -> Option<Fault> {
        let ended = self.write.lock().ok()?.take();
        if let Some(f) = &ended {
            log::warn!(
                "store: writes work again (they failed for {} s: {})",
                now - f.since,
                f.cause
            );
            if !f.alerted {
                if let Ok(mut e) = self.ended_unalerted.lock() {
                    *e = Some((f.clone(), now));
                }
            }
        }
        ended
    }

    /// Puts an ended fault back whose alert could not be queued.
    pub fn defer_ended(&self, f: Fault, until: i64) {
        if let Ok(mut e) = self.ended_unalerted.lock() {
            e.get_or_insert((f, until));
        }
    }

    /// The ended fault still to tell staff about, taken.
    pub fn take_ended_unalerted(&self) -> Option<(Fault, i64)> {
        self.ended_unalerted.lock().ok()?.take()
    }

    /// The integrity check (or SQLite) found damage.
    pub fn damaged(&self, what: &str, now: i64) {
        if let Ok(mut d) = self.damage.lock() {
            if d.is_none() {
                log::error!("store: the database is damaged: {what}");
                *d = Some(Fault {
                    cause: what.to_string(),
                    since: now,
                    alerted: false,
                });
            }
        }
    }

    pub fn write_fault(&self) -> Option<Fault> {
        self.write.lock().ok()?.clone()
    }

    pub fn damage(&self) -> Option<Fault> {
        self.damage.lock().ok()?.clone()
    }

    /// Marks the current faults' alerts as queued.
    pub fn set_alerted(&self, write_since: Option<i64>, damage_since: Option<i64>) {
        for (slot, since) in [(&self.write, write_since), (&self.damage, damage_since)] {
            if let (Ok(mut f), Some(since)) = (slot.lock(), since) {
                if let Some(f) = f.as_mut().filter(|f| f.since == since) {
                    f.alerted = true;
                }
            }
        }
    }

    pub fn clock_synchronised(&self) -> bool {
        !self.clock_unsynced.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the reply-latency buckets, in microseconds (0.5 ms … 500 ms).
pub const LATENCY_BUCKETS_US: [u64; 8] =
    [500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000, 500_000];

/// A Prometheus histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative), plus the overflow bucket.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A snapshot: cumulative counts per upper bound (seconds), then +Inf = `count`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = LATENCY_BUCKETS_US
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                total += self.buckets[i].load(Ordering::Relaxed);
                (b as f64 / 1e6, total)
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_by_action_and_outcome() {
        let c = MessageCounters::default();
        c.count(Some("checkuser"), Outcome::Replied);
        c.count(Some("checkuser"), Outcome::Replied);
        c.count(Some("alive"), Outcome::Silent);
        c.count(None, Outcome::Dropped);
        c.count(Some("bogus"), Outcome::Dropped);
        assert_eq!(
            c.snapshot(),
            [
                ("checkuser", "replied", 2),
                ("alive", "silent", 1),
                ("invalid", "dropped", 2)
            ]
        );
    }

    #[test]
    fn a_write_fault_is_kept_until_writes_work_and_damage_stays() {
        let f = Faults::default();
        assert!(f.write_fault().is_none());
        f.write_failed("database or disk is full", 10);
        f.write_failed("database or disk is full", 12);
        let w = f.write_fault().unwrap();
        assert_eq!(
            (w.since, w.cause.starts_with("the disk is full")),
            (10, true)
        );
        assert_eq!(f.store_errors.load(Ordering::Relaxed), 2);
        f.set_alerted(Some(10), None);
        assert!(f.write_fault().unwrap().alerted);
        assert_eq!(f.writes_ok(11).unwrap().since, 10);
        assert!(f.write_fault().is_none() && f.damage().is_none());
        assert!(f.take_ended_unalerted().is_none(), "it was alerted");
        f.write_failed("database disk image is malformed", 20);
        f.writes_ok(21);
        assert_eq!(f.take_ended_unalerted().unwrap().1, 21);
        assert!(f.damage().unwrap().cause.contains("damaged"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(2));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], (0.0005, 1));
        assert_eq!(s.cumulative[3], (0.005, 2));
        assert_eq!(s.cumulative.last().unwrap().1, 2);
        assert!((s.sum_seconds - 2.0033).abs() < 1e-9);
    }
}
