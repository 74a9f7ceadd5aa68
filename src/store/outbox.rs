//! The outbox table: outgoing messages (email, later calendar events and webhooks) as rows
//! written in the caller's transaction. The sync worker (`crate::sync`) is the only reader
//! that delivers them; the panel lists, retries and discards them.

use super::Result;
use rusqlite::{params, Connection, OptionalExtension};

/// What a row is delivered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    Email,
    Calendar,
    Webhook,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Email => "email",
            OutboxKind::Calendar => "calendar",
            OutboxKind::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxKind> {
        match s {
            "email" => Some(OutboxKind::Email),
            "calendar" => Some(OutboxKind::Calendar),
            "webhook" => Some(OutboxKind::Webhook),
            _ => None,
        }
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub dedupe_key: Option<String>,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub state: String,
    pub sent_at: Option<i64>,
    /// Not delivered after this time (Unix seconds).
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, kind, payload, dedupe_key, created_at, attempts, next_attempt_at, \
                       last_error, state, sent_at, expires_at";

fn row(r: &rusqlite::Row) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        payload: r.get(2)?,
        dedupe_key: r.get(3)?,
        created_at: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_error: r.get(7)?,
        state: r.get(8)?,
        sent_at: r.get(9)?,
        expires_at: r.get(10)?,
    })
}

/// Queues a message, inside the caller's transaction (pass the `Transaction`: it derefs to
/// a `Connection`). With a `dedupe_key` already in the table nothing is added and `None`
/// is returned; otherwise the new row's id. Due at once.
pub fn enqueue(
    tx: &Connection,
    kind: OutboxKind,
    payload: &str,
    dedupe_key: Option<&str>,
    now: i64,
) -> Result<Option<i64>> {
    enqueue_until(tx, kind, payload, dedupe_key, now, None)
}

/// `enqueue` for a message that is useless after `expires_at` (it then fails as expired
/// instead of being delivered).
pub fn enqueue_until(
    tx: &Connection,
    kind: OutboxKind,
    payload: &str,
    dedupe_key: Option<&str>,
    now: i64,
    expires_at: Option<i64>,
) -> Result<Option<i64>> {
    let n = tx.execute(
        "INSERT INTO outbox (kind, payload, dedupe_key, created_at, next_attempt_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (dedupe_key) DO NOTHING",
        params![kind.as_str(), payload, dedupe_key, now, expires_at],
    )?;
    Ok((n == 1).then(|| tx.last_insert_rowid()))
}

/// Pending rows due at `now`, oldest first.
pub fn outbox_due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?1
         ORDER BY next_attempt_at, id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now, limit as i64], row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// When the next pending row is due, if any.
pub fn outbox_next_due(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )?)
}

pub fn outbox_row(conn: &Connection, id: i64) -> Result<Option<OutboxRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"),
            [id],
            row,
        )
        .optional()?)
}

/// Rows in `state`, newest first, at most `limit`.
pub fn outbox_list(conn: &Connection, state: &str, limit: usize) -> Result<Vec<OutboxRow>> {
    let order = if state == "sent" {
        "sent_at DESC, id DESC"
    } else {
        "id DESC"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE state = ?1 ORDER BY {order} LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![state, limit as i64], row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Delivered: the row stays as a record; `payload` is replaced by `summary` (no bodies,
/// links or tokens are kept once they have left).
pub fn outbox_mark_sent(conn: &Connection, id: i64, now: i64, summary: &str) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET state = 'sent', sent_at = ?2, attempts = attempts + 1,
         last_error = NULL, payload = ?3 WHERE id = ?1 AND state = 'pending'",
        params![id, now, summary],
    )?;
    Ok(())
}

/// The rows of `kind` (and `key`: a webhook URL or a calendar id; `None` = all) held back
/// for their server, not for a problem of their own, become due now. Called when that
/// server just accepted a delivery, and when staff change the settings or press "Retry
/// now": a lab back online (or just set up) delivers its backlog at once instead of when
/// each row's backoff (up to `backoff_cap_s`) runs out. Returns how many rows moved.
pub fn outbox_due_now(conn: &Connection, kind: &str, key: Option<&str>, now: i64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE outbox SET next_attempt_at = ?3, held = 0
         WHERE state = 'pending' AND held = 1 AND next_attempt_at > ?3 AND kind = ?1
           AND (?2 IS NULL OR ?2 IN (json_extract(payload, '$.url'),
                                  json_extract(payload, '$.calendar_id')))",
        params![kind, key, now],
    )?)
}

/// The server of `kind` (and `key`: a webhook URL or a calendar id) is down, rate
/// limiting or refusing the settings until `at`: its pending rows due by then are held
/// until then, showing `why` (attempt counts untouched: they were not tried). Returns how
/// many rows were held.
pub fn outbox_defer(
    conn: &Connection,
    kind: &str,
    key: Option<&str>,
    at: i64,
    why: &str,
) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE outbox SET next_attempt_at = ?3, last_error = ?4, held = 1
         WHERE state = 'pending' AND next_attempt_at <= ?3 AND kind = ?1
           AND (?2 IS NULL OR ?2 IN (json_extract(payload, '$.url'),
                                  json_extract(payload, '$.calendar_id')))",
        params![kind, key, at, why],
    )?)
}

/// Counts one attempt of a row (its server then holds it with `outbox_defer`).
pub fn outbox_count_attempt(conn: &Connection, id: i64) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1 AND state = 'pending'",
        [id],
    )?;
    Ok(())
}

/// A failed attempt that may succeed later: tried again at `next_attempt_at`.
pub fn outbox_mark_retry(
    conn: &Connection,
    id: i64,
    next_attempt_at: i64,
    error: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3,
           held = 0
         WHERE id = ?1 AND state = 'pending'",
        params![id, next_attempt_at, error],
    )?;
    Ok(())
}

/// A permanent failure: never tried again by itself; shown in the panel.
pub fn outbox_mark_failed(conn: &Connection, id: i64, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2
         WHERE id = ?1 AND state = 'pending'",
        params![id, error],
    )?;
    Ok(())
}

/// "Retry now": a pending or failed row becomes pending and due at `now`. Returns whether
/// a row was changed (a sent row is never re-sent).
pub fn outbox_retry_now(conn: &Connection, id: i64, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?2
         WHERE id = ?1 AND state IN ('pending', 'failed')",
        params![id, now],
    )? == 1)
}

/// "Discard": a pending or failed row is deleted. Returns whether one was.
pub fn outbox_discard(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM outbox WHERE id = ?1 AND state IN ('pending', 'failed')",
        [id],
    )? == 1)
}

/// Counts of pending and failed rows.
pub fn outbox_counts(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),
                (SELECT COUNT(*) FROM outbox WHERE state = 'failed')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Sent records older than `before` are deleted (the daily purge); returns how many.
pub fn outbox_purge_sent(conn: &Connection, before: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?1",
        [before],
    )?)
}

/// Password-reset links that expired before `before` are deleted; returns how many.
pub fn delete_password_resets_before(conn: &Connection, before: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM password_resets WHERE expires_at < ?1",
        [before],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::Store;

    #[test]
    fn enqueue_dedupes_and_rows_move_through_states() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let mut conn = store.connect().unwrap();
        let tx = conn.transaction().unwrap();
        let a = enqueue(&tx, OutboxKind::Email, "{}", Some("k1"), 100).unwrap();
        let again = enqueue(&tx, OutboxKind::Email, "{}", Some("k1"), 100).unwrap();
        let b = enqueue(&tx, OutboxKind::Email, "{}", None, 100).unwrap();
        let c = enqueue(&tx, OutboxKind::Email, "{}", None, 100).unwrap();
        tx.commit().unwrap();
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert_eq!(again, None);
        assert_eq!(outbox_due(&conn, 99, 10).unwrap().len(), 0);
        assert_eq!(outbox_due(&conn, 100, 10).unwrap().len(), 3);
        outbox_mark_sent(&conn, a, 101, "{\"to\":\"x\"}").unwrap();
        outbox_mark_retry(&conn, b, 200, "421 busy").unwrap();
        outbox_mark_failed(&conn, c, "550 no such user").unwrap();
        assert_eq!(outbox_due(&conn, 150, 10).unwrap().len(), 0);
        assert_eq!(outbox_next_due(&conn).unwrap(), Some(200));
        assert_eq!(outbox_counts(&conn).unwrap(), (1, 1));
        let sent = outbox_row(&conn, a).unwrap().unwrap();
        assert_eq!((sent.state.as_str(), sent.sent_at), ("sent", Some(101)));
        // A sent row is never re-sent nor discarded.
        assert!(!outbox_retry_now(&conn, a, 160).unwrap());
        assert!(!outbox_discard(&conn, a).unwrap());
        assert!(outbox_retry_now(&conn, c, 160).unwrap());
        assert_eq!(outbox_due(&conn, 160, 10).unwrap().len(), 1);
        assert!(outbox_discard(&conn, b).unwrap());
        assert_eq!(outbox_counts(&conn).unwrap(), (1, 0));
        assert_eq!(outbox_list(&conn, "sent", 50).unwrap().len(), 1);
        assert_eq!(outbox_purge_sent(&conn, 102).unwrap(), 1);
    }
}
