//! Once-a-day work on the jobs thread: the database backup (with rotation) and the GDPR
//! retention purge. The backup is due once the day's `backup.hour` (UTC) has passed and
//! the newest backup in the directory is older than that; a Pi that was off at that hour
//! makes it at its next start, and a fresh install makes its first one at once. The purge
//! runs at start and every 24 hours.

use crate::config::Config;
use crate::lab::retention::{self, Retention};
use crate::store::{self, backup};
use rusqlite::Connection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the clock is compared with the backup hour.
const CHECK_EVERY: Duration = Duration::from_secs(60);
/// After a failed backup (disk full, USB stick gone), the next try.
const RETRY_AFTER: Duration = Duration::from_secs(3600);
const PURGE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// The full `integrity_check` (the start runs the quicker `quick_check`).
const INTEGRITY_EVERY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct BackupPlan {
    pub dir: PathBuf,
    pub keep: usize,
    pub hour: u8,
}

/// The daily jobs' settings and when they last ran.
#[derive(Debug)]
pub struct Daily {
    backup: Option<BackupPlan>,
    retention: Option<Retention>,
    /// Time (Unix s) of the newest backup; read from the directory at the first check.
    newest_backup: Option<Option<i64>>,
    next_backup_check: Option<Instant>,
    next_purge: Option<Instant>,
    next_integrity_check: Option<Instant>,
    next_hold_check: Option<Instant>,
    /// Whether an imported history's retention was held at the last check.
    held: Option<bool>,
    /// Where the backup before a large purge goes (the backup directory).
    purge_backup_dir: PathBuf,
}

impl Daily {
    pub fn from_config(config: &Config) -> Daily {
        Daily {
            backup: config.backup.enabled.then(|| BackupPlan {
                dir: config.backup_dir(),
                keep: config.backup.keep,
                hour: config.backup.hour,
            }),
            retention: config
                .retention
                .enabled
                .then(|| Retention::from_config(config)),
            newest_backup: None,
            next_backup_check: None,
            next_purge: None,
            next_integrity_check: None,
            next_hold_check: None,
            held: None,
            purge_backup_dir: config.backup_dir(),
        }
    }

    /// Runs whatever is due; errors are logged, and retried later.
    pub fn run(&mut self, conn: &mut Connection, faults: &crate::metrics::Faults) {
        let now = Instant::now();
        if self.next_integrity_check.is_none_or(|t| now >= t) {
            self.next_integrity_check = Some(now + INTEGRITY_EVERY);
            let started = Instant::now();
            match store::startup::check(conn, true) {
                Ok(()) => log::info!("integrity check: ok ({} ms)", started.elapsed().as_millis()),
                Err(what) => {
                    faults.damaged(&format!("PRAGMA integrity_check: {what}"), store::now())
                }
            }
        }
        // Staff confirmed an imported history's retention (panel or CLI): purge now.
        if self.retention.is_some() && self.next_hold_check.is_none_or(|t| now >= t) {
            self.next_hold_check = Some(now + CHECK_EVERY);
            let held = retention::held_since(conn).ok().map(|h| h.is_some());
            if self.held == Some(true) && held == Some(false) {
                log::info!("retention of the imported history confirmed: purging now");
                self.next_purge = None;
            }
            if held.is_some() {
                self.held = held;
            }
        }
        if self.retention.is_some() && self.next_purge.is_none_or(|t| now >= t) {
            self.next_purge = Some(now + PURGE_EVERY);
            if let Err(e) = self.purge(conn) {
                log::error!("retention purge failed: {e}");
            }
        }
        if let Some(plan) = &self.backup {
            if self.next_backup_check.is_some_and(|t| now < t) {
                return;
            }
            self.next_backup_check = Some(now + CHECK_EVERY);
            let newest = *self
                .newest_backup
                .get_or_insert_with(|| backup::daily_backups(&plan.dir).last().map(|(t, _)| *t));
            let t = store::now();
            if !backup_due(t, plan.hour, newest) {
                return;
            }
            let path = backup::daily_path(&plan.dir, t);
            match backup::backup_from(conn, &path) {
                Ok(r) => {
                    log::info!(
                        "daily backup {} ({} KiB, {} ms)",
                        r.path.display(),
                        r.bytes / 1024,
                        r.elapsed.as_millis()
                    );
                    self.newest_backup = Some(Some(t));
                    for old in backup::rotate(&plan.dir, plan.keep) {
                        log::info!("deleted old backup {}", old.display());
                    }
                }
                Err(e) => {
                    log::error!(
                        "daily backup to {} failed: {e}; next try in an hour",
                        path.display()
                    );
                    self.next_backup_check = Some(now + RETRY_AFTER);
                }
            }
        }
    }

    fn purge(&self, conn: &mut Connection) -> store::Result<()> {
        let Some(rules) = &self.retention else {
            return Ok(());
        };
        let now = store::now();
        let preview = retention::preview(conn, rules, now)?;
        if let Some(since) = retention::held_since(conn)? {
            if preview.rows() > 0 {
                log::warn!(
                    "retention: the history imported at {} waits for staff to confirm \
                     (`fabgate purge` or the System page): {} uses and {} interventions are \
                     older than [retention], {} unknown cards",
                    backup::utc_stamp(since),
                    preview.uses,
                    preview.interventions,
                    preview.unknown_cards
                );
            }
        } else if preview.rows() > retention::HANDFUL {
            // Anonymising cannot be undone: keep the names in a copy first (issue 12).
            let path = backup::before_purge_path(&self.purge_backup_dir, now);
            let r = backup::backup_from(conn, &path)?;
            log::info!(
                "backup before the purge of {} rows: {} ({} KiB)",
                preview.rows(),
                r.path.display(),
                r.bytes / 1024
            );
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let report = retention::purge_unless_held(&tx, rules, now)?;
        tx.commit()?;
        // Calendar events re-sent without names (or deleted) go out now.
        crate::sync::wake_if_queued();
        if !report.is_empty() {
            log::info!(
                "retention: {} uses and {} interventions anonymised, {} unknown cards deleted",
                report.uses_anonymised,
                report.interventions_anonymised,
                report.unknown_cards_deleted
            );
        }
        Ok(())
    }
}

/// Is a backup due at `now`, given the newest one's time? Due once today's `hour` (UTC)
/// has passed and the newest backup is from before it; with no backup at all, at once.
pub fn backup_due(now: i64, hour: u8, newest: Option<i64>) -> bool {
    let Some(newest) = newest else {
        return true;
    };
    let today = now - now.rem_euclid(86_400) + i64::from(hour) * 3600;
    let slot = if today <= now { today } else { today - 86_400 };
    newest < slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_due_once_a_day_after_the_hour() {
        let midnight = 1_735_689_600; // 2025-01-01T00:00:00Z
        let h = |x: i64| midnight + x * 3600;
        assert!(backup_due(h(1), 3, None));
        // Made yesterday at 03:05: not due at 02:00, due from 03:00.
        assert!(!backup_due(h(2), 3, Some(h(-21))));
        assert!(backup_due(h(3), 3, Some(h(-21))));
        // Made today at 03:00: not due again until tomorrow 03:00.
        assert!(!backup_due(h(23), 3, Some(h(3))));
        assert!(backup_due(h(27), 3, Some(h(3))));
        // The Pi was off for a week: due at start whatever the hour.
        assert!(backup_due(h(14), 3, Some(h(-7 * 24))));
    }
}
