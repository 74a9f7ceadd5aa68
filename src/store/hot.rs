//! Write-behind state: heartbeats that change every few seconds but need no durability
//! (machine last seen, open-use heartbeats, board alive info). Keeping them in memory and
//! flushing every `store.flush_interval_s` saves the Pi's SD card from a write per
//! `checkmachine` (every board, every 30 s). Losing them in a crash costs at most one
//! flush interval of "last seen" precision.

use super::Result;
use rusqlite::{params, Connection};
use std::collections::{HashMap, HashSet};

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
}

impl Hot {
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
