//! Lock-free counters the board link updates on its hot path: messages by action and
//! outcome, and the reply-latency histogram. Plain atomics, fixed label sets: no
//! allocation per message.

use std::sync::atomic::{AtomicU64, Ordering};
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
}

pub const OUTCOMES: [(Outcome, &str); 4] = [
    (Outcome::Replied, "replied"),
    (Outcome::Silent, "silent"),
    (Outcome::Dropped, "dropped"),
    (Outcome::Failed, "failed"),
];

/// Board messages by (action, outcome).
#[derive(Debug, Default)]
pub struct MessageCounters {
    counts: [[AtomicU64; 4]; ACTIONS.len()],
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
