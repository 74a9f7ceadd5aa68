//! Write-behind state: heartbeats that change every few seconds but need no durability
//! (machine last seen, open-use heartbeats, board alive info). Keeping them in memory and
//! flushing every `store.flush_interval_s` saves the Pi's SD card from a write per
//! `checkmachine` (every board, every 30 s). Losing them in a crash costs at most one
//! flush interval of "last seen" precision.

use super::Result;
use rusqlite::{params, Connection};
use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A wall-clock step larger than this (against the monotonic clock) is a jump: NTP
/// correcting a Pi that booted on a stale time, or someone setting the date. Slewing
/// (at most 0.05 %) never comes near it between two readings.
const JUMP_MS: i64 = 2_000;

/// A wall-clock jump the database has not been re-based for yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    /// Seconds to add to times stamped before the jump.
    pub shift: i64,
    /// The wall time (before the jump) from which every row was stamped on the clock that
    /// jumped, when that clock was not synchronised: those rows move too. `None` = only
    /// what is still open (a synchronised clock's history stays as it was).
    pub stale_since: Option<i64>,
    /// The time just before the jump, on the old clock: rows stamped later were stamped
    /// on another clock (another process's, or the new one) and stay.
    pub before: i64,
}

/// The wall clock checked against the monotonic one at every reading.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    wall_ms: i64,
    mono: Instant,
}

/// What a board told us in its last `alive` (protocol.md §2.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoardInfo {
    pub ip: String,
    pub fw_version: String,
    pub serial: String,
    pub heap: i64,
    pub last_seen: i64,
}

#[derive(Debug, Default)]
pub struct Hot {
    machine_seen: HashMap<i64, i64>,
    dirty_machines: HashSet<i64>,
    use_seen: HashMap<i64, i64>,
    boards: HashMap<i64, BoardInfo>,
    dirty_boards: HashSet<i64>,
    clock: Option<WallClock>,
    /// While the clock is not synchronised: when this run began stamping rows on it.
    stale_since: Option<i64>,
    pending_jump: Option<Jump>,
    /// Every shift applied so far (jobs move their own remembered times by it).
    shifted_total: i64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Hot {
    /// The current time (Unix seconds). A wall-clock jump since the last reading moves
    /// every time held here at once and leaves a `Jump` for `take_jump`, so open uses
    /// and "online" keep measuring real, monotonic time (issue 12).
    pub fn now(&mut self) -> i64 {
        self.now_ms() / 1000
    }

    /// `now` in milliseconds.
    pub fn now_ms(&mut self) -> i64 {
        let (wall, mono) = (wall_ms(), Instant::now());
        if let Some(c) = self.clock {
            let expected = c.wall_ms + mono.duration_since(c.mono).as_millis() as i64;
            let drift = wall - expected;
            if drift.abs() > JUMP_MS {
                let shift = (drift as f64 / 1000.0).round() as i64;
                self.jumped(shift, expected / 1000);
            }
        }
        self.clock = Some(WallClock {
            wall_ms: wall,
            mono,
        });
        wall
    }

    fn jumped(&mut self, shift: i64, old_now: i64) {
        log::warn!(
            "the wall clock jumped by {shift} s (at {old_now} by the old clock): open uses, \
             heartbeats and board times are moved with it{}",
            if self.stale_since.is_some() {
                ", and so is what was recorded since the start on the unsynchronised clock"
            } else {
                ""
            }
        );
        for t in self.machine_seen.values_mut() {
            *t += shift;
        }
        for t in self.use_seen.values_mut() {
            *t += shift;
        }
        for b in self.boards.values_mut() {
            b.last_seen += shift;
        }
        let j = self.pending_jump.get_or_insert(Jump {
            shift: 0,
            stale_since: None,
            before: old_now,
        });
        j.shift += shift;
        j.before = old_now;
        j.stale_since = match (j.stale_since, self.stale_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(s) = self.stale_since.as_mut() {
            *s += shift;
        }
        self.shifted_total += shift;
    }

    /// The jump the database must still be re-based for (`lab::rebase`), taken.
    pub fn take_jump(&mut self) -> Option<Jump> {
        self.pending_jump.take()
    }

    /// A re-base that was rolled back: kept for the next transaction.
    pub fn untake_jump(&mut self, j: Jump) {
        let p = self.pending_jump.get_or_insert(Jump {
            shift: 0,
            stale_since: j.stale_since,
            before: j.before,
        });
        p.shift += j.shift;
    }

    /// The clock is (not) synchronised: while not, rows stamped from `since` on move
    /// with a jump.
    pub fn set_clock_stale(&mut self, stale: bool, since: i64) {
        match (stale, self.stale_since) {
            (true, None) => self.stale_since = Some(since),
            (false, Some(_)) => self.stale_since = None,
            _ => {}
        }
    }

    pub fn shifted_total(&self) -> i64 {
        self.shifted_total
    }

    pub fn machine_seen(&mut self, machine_id: i64, now: i64) {
        self.machine_seen.insert(machine_id, now);
        self.dirty_machines.insert(machine_id);
    }

    /// Last time the machine's board spoke, if seen since the daemon started.
    pub fn machine_last_seen(&self, machine_id: i64) -> Option<i64> {
        self.machine_seen.get(&machine_id).copied()
    }

    /// How many machines' boards spoke at or after `since` (boards online, for metrics).
    pub fn machines_seen_since(&self, since: i64) -> usize {
        self.machine_seen.values().filter(|&&t| t > since).count()
    }

    pub fn use_heartbeat(&mut self, use_id: i64, now: i64) {
        self.use_seen.insert(use_id, now);
    }

    /// The freshest heartbeat of an open use: memory or the database value.
    pub fn use_last_seen(&self, use_id: i64, stored: i64) -> i64 {
        self.use_seen
            .get(&use_id)
            .map_or(stored, |&t| t.max(stored))
    }

    pub fn use_closed(&mut self, use_id: i64) {
        self.use_seen.remove(&use_id);
    }

    pub fn board_alive(&mut self, machine_id: i64, info: BoardInfo) {
        self.boards.insert(machine_id, info);
        self.dirty_boards.insert(machine_id);
    }

    pub fn board(&self, machine_id: i64) -> Option<&BoardInfo> {
        self.boards.get(&machine_id)
    }

    /// Every board that sent `alive` since the daemon started.
    pub fn boards(&self) -> impl Iterator<Item = (i64, &BoardInfo)> {
        self.boards.iter().map(|(id, b)| (*id, b))
    }

    /// When a board last sent `alive` (its boot), if since the daemon started.
    pub fn board_alive_at(&self, machine_id: i64) -> Option<i64> {
        self.boards.get(&machine_id).map(|b| b.last_seen)
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty_machines.is_empty()
            || !self.use_seen.is_empty()
            || !self.dirty_boards.is_empty()
    }

    /// Writes pending state inside the caller's transaction. Rows that vanished meanwhile
    /// (a machine deleted from the CLI) are skipped.
    pub fn flush(&mut self, conn: &Connection) -> Result<()> {
        {
            let mut st =
                conn.prepare_cached("UPDATE machines SET last_seen = ?2 WHERE machine_id = ?1")?;
            for id in &self.dirty_machines {
                st.execute(params![id, self.machine_seen[id]])?;
            }
            let mut st = conn.prepare_cached(
                "UPDATE uses SET last_seen = MAX(last_seen, ?2) WHERE use_id = ?1 AND end_ts IS NULL",
            )?;
            for (id, seen) in &self.use_seen {
                st.execute(params![id, seen])?;
            }
            let mut st = conn.prepare_cached(
                "INSERT INTO boards (machine_id, ip_address, fw_version, serial, heap, last_seen)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM machines WHERE machine_id = ?1)
                 ON CONFLICT (machine_id) DO UPDATE SET ip_address = excluded.ip_address,
                   fw_version = excluded.fw_version, serial = excluded.serial,
                   heap = excluded.heap, last_seen = excluded.last_seen",
            )?;
            for id in &self.dirty_boards {
                let b = &self.boards[id];
                st.execute(params![
                    id,
                    b.ip,
                    b.fw_version,
                    b.serial,
                    b.heap,
                    b.last_seen
                ])?;
            }
        }
        self.dirty_machines.clear();
        self.use_seen.clear();
        self.dirty_boards.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_moves_memory_and_leaves_a_rebase() {
        let mut h = Hot::default();
        let t = h.now();
        h.machine_seen(1, t);
        h.use_heartbeat(5, t);
        assert_eq!(h.take_jump(), None);
        // Pretend the last reading was a day ahead of the wall clock: a -1 day jump.
        if let Some(c) = h.clock.as_mut() {
            c.wall_ms += 86_400_000;
        }
        h.set_clock_stale(true, t - 10);
        h.now();
        let j = h.take_jump().unwrap();
        assert_eq!(j.shift, -86_400);
        assert_eq!(j.stale_since, Some(t - 10));
        assert_eq!(h.machine_last_seen(1), Some(t - 86_400));
        assert_eq!(h.use_last_seen(5, 0), t - 86_400);
        assert_eq!(h.shifted_total(), -86_400);
        h.untake_jump(j);
        assert_eq!(h.take_jump().unwrap().shift, -86_400);
        // Readings in a row without a jump leave nothing.
        h.now();
        h.now();
        assert_eq!(h.take_jump(), None);
    }
}
