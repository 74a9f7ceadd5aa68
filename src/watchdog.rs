//! systemd integration (`Type=notify`): `READY=1` once the daemon serves boards, `WATCHDOG=1`
//! pings while its threads are healthy, `STOPPING=1` at shutdown.
//!
//! The threads that must not wedge (the board link loop and the jobs loop) store a
//! heartbeat (`beat`) on every pass; the supervisor thread started here pings systemd only
//! while both heartbeats are fresh. A wedged thread therefore gets the whole process
//! restarted by systemd (`WatchdogSec=` in the unit) instead of leaving a daemon that
//! accepts boards but answers nobody. Heartbeats use the monotonic clock: a Pi without RTC
//! jumps its wall clock by months when NTP syncs, which must not look like a stall.
//!
//! Without `NOTIFY_SOCKET` (started by hand, tests) every call is a no-op; without
//! `WATCHDOG_USEC` no supervisor runs. This module owns no daemon state.

use crate::terminals::Stats;
use sd_notify::NotifyState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A heartbeat older than this means its thread is stuck. The board link beats at least
/// every 5 s (its receive timeout) plus one batch; the jobs loop every housekeeping tick
/// (1 s) plus its slowest job (a backup of a few MB, a retention purge).
pub const STALE_AFTER: Duration = Duration::from_secs(20);

/// Milliseconds on the monotonic clock (since boot); never 0 once the system is up.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 1;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec as u64 / 1_000_000)
        .max(1)
}

/// Records that the thread owning `cell` is alive now.
pub fn beat(cell: &AtomicU64) {
    cell.store(monotonic_ms(), Ordering::Relaxed);
}

/// Which heartbeat is missing or stale at `now_ms`, if any: the name of the thread.
pub fn stalled(stats: &Stats, now_ms: u64) -> Option<(&'static str, Option<Duration>)> {
    for (name, cell) in [
        ("board link", &stats.alive_at),
        ("jobs", &stats.jobs_alive_at),
    ] {
        let at = cell.load(Ordering::Relaxed);
        if at == 0 {
            return Some((name, None));
        }
        let age = Duration::from_millis(now_ms.saturating_sub(at));
        if age > STALE_AFTER {
            return Some((name, Some(age)));
        }
    }
    None
}

/// Waits until both threads have beaten once (the board link is subscribed, so a board
/// that connects after this is answered). False after `timeout`.
pub fn wait_started(stats: &Stats, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if stalled(stats, monotonic_ms()).is_none() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Tells systemd the daemon is ready (and what it serves, for `systemctl status`), then
/// starts the watchdog supervisor if systemd asked for one. The one call at the end of
/// `Daemon::start`: everything the daemon listens on must be bound before it.
pub fn ready(status: &str, stats: &Arc<Stats>) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    // systemd's advice (sd_watchdog_enabled(3)): ping at half the interval.
    let every = (interval / 2).max(Duration::from_millis(100));
    let stats = stats.clone();
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || supervise(&stats, every));
    match spawned {
        Ok(_) => log::info!("systemd watchdog: pinging every {} ms", every.as_millis()),
        Err(e) => log::error!("cannot start the watchdog supervisor: {e}"),
    }
}

/// Tells systemd the daemon is shutting down.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn supervise(stats: &Stats, every: Duration) {
    let mut was_stalled = false;
    loop {
        match stalled(stats, monotonic_ms()) {
            None => {
                if was_stalled {
                    log::warn!("all threads alive again: watchdog pings resumed");
                    was_stalled = false;
                }
                notify(&[NotifyState::Watchdog]);
            }
            Some((thread, age)) => {
                if !was_stalled {
                    let age = age.map_or("never".to_string(), |a| format!("{} s ago", a.as_secs()));
                    log::error!(
                        "the {thread} thread last ran {age}: not pinging the systemd watchdog \
                         (systemd restarts fabgate if it does not recover)"
                    );
                    was_stalled = true;
                }
            }
        }
        std::thread::sleep(every);
    }
}

fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("cannot notify systemd: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_only_while_both_threads_beat() {
        let stats = Stats::default();
        let now = monotonic_ms();
        assert_eq!(stalled(&stats, now), Some(("board link", None)));
        beat(&stats.alive_at);
        assert_eq!(stalled(&stats, now), Some(("jobs", None)));
        beat(&stats.jobs_alive_at);
        assert_eq!(stalled(&stats, monotonic_ms()), None);
        let later = monotonic_ms() + 21_000;
        let (thread, age) = stalled(&stats, later).unwrap();
        assert_eq!(thread, "board link");
        assert!(age.unwrap() > STALE_AFTER);
        stats.alive_at.store(later, Ordering::Relaxed);
        assert_eq!(stalled(&stats, later).map(|s| s.0), Some("jobs"));
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ms();
        std::thread::sleep(Duration::from_millis(5));
        assert!(monotonic_ms() >= a + 4);
    }
}
