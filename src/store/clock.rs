//! SQL of time (issue 12): millisecond stamps where order within a second matters
//! (schema 10), and re-basing rows after a wall-clock jump (`lab::rebase`).

use super::Result;
use rusqlite::{params, Connection};

pub fn set_use_start_ms(conn: &Connection, use_id: i64, ms: i64) -> Result<()> {
    conn.prepare_cached("UPDATE uses SET start_ms = ?2 WHERE use_id = ?1")?
        .execute(params![use_id, ms])?;
    Ok(())
}

/// Gives the newest intervention of `plan_id` on `machine_id` its millisecond stamp.
pub fn set_last_intervention_ms(
    conn: &Connection,
    plan_id: i64,
    machine_id: i64,
    ms: i64,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE interventions SET timestamp_ms = ?3 WHERE intervention_id =
           (SELECT MAX(intervention_id) FROM interventions WHERE maintenance_id = ?1 AND machine_id = ?2)",
    )?
    .execute(params![plan_id, machine_id, ms])?;
    Ok(())
}

/// Moves open uses by `shift` seconds (their start and heartbeat were on the old clock).
pub fn shift_open_uses(conn: &Connection, shift: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE uses SET start_ts = start_ts + ?1, last_seen = last_seen + ?1,
           start_ms = start_ms + ?1 * 1000 WHERE end_ts IS NULL",
        )?
        .execute([shift])?)
}

/// Moves what was stamped from `since` to `before` (old clock) by `shift` seconds: closed
/// uses, interventions, machines' and boards' last seen. Returns the uses moved.
pub fn shift_stamped_between(
    conn: &Connection,
    since: i64,
    before: i64,
    shift: i64,
) -> Result<usize> {
    let uses = conn.execute(
        "UPDATE uses SET start_ts = start_ts + ?2, last_seen = last_seen + ?2,
           end_ts = end_ts + ?2, start_ms = start_ms + ?2 * 1000
         WHERE end_ts IS NOT NULL AND start_ts >= ?1 AND start_ts <= ?3",
        params![since, shift, before],
    )?;
    conn.execute(
        "UPDATE interventions SET timestamp = timestamp + ?2, timestamp_ms = timestamp_ms + ?2 * 1000
         WHERE timestamp >= ?1 AND timestamp <= ?3",
        params![since, shift, before],
    )?;
    conn.execute(
        "UPDATE machines SET last_seen = last_seen + ?2 WHERE last_seen BETWEEN ?1 AND ?3",
        params![since, shift, before],
    )?;
    conn.execute(
        "UPDATE boards SET last_seen = last_seen + ?2 WHERE last_seen BETWEEN ?1 AND ?3",
        params![since, shift, before],
    )?;
    Ok(uses)
}
