//! Queries for administration (CLI now, panel later): listing and changing members, roles,
//! machine types, machines, authorizations, plans, credentials.

use super::Result;
use rusqlite::Connection;

/// How many MQTT credentials exist.
pub fn count_credentials(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM board_credentials", [], |r| r.get(0))?)
}
