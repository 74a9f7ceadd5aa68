//! Store faults from the jobs thread (issue 12): while writes fail, a small probe write
//! every few seconds notices when the cause is gone (so recovery needs no board traffic),
//! and staff get an alert email (and webhook) for every fault, queued as soon as the
//! store takes it: a full disk takes the outbox with it, so its alert goes out after.

use crate::metrics::{Fault, Faults};
use crate::store::{self, backup};
use crate::sync::alerts::{self, Condition};
use rusqlite::Connection;
use std::time::{Duration, Instant};

/// How often a failing store is tried again.
const PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct FaultWatch {
    next_probe: Option<Instant>,
}

impl FaultWatch {
    pub fn run(&mut self, conn: &mut Connection, faults: &Faults, now: i64) {
        if faults.write_fault().is_some() && self.next_probe.is_none_or(|t| Instant::now() >= t) {
            self.next_probe = Some(Instant::now() + PROBE_EVERY);
            match probe(conn, now) {
                Ok(()) => {
                    faults.writes_ok(now);
                }
                Err(e) => faults.write_failed(&e.to_string(), now),
            }
        }
        if let Err(e) = alert(conn, faults) {
            log::debug!("store fault alert not queued yet: {e}");
        }
    }
}

/// A real write, committed: the only proof that the store takes writes.
fn probe(conn: &mut Connection, now: i64) -> store::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    store::set_setting(&tx, "store_probe", &now.to_string())?;
    tx.commit()?;
    Ok(())
}

/// Queues the alerts not queued yet; each fault's alert once.
fn alert(conn: &mut Connection, faults: &Faults) -> store::Result<()> {
    let write = faults.write_fault().filter(|f| !f.alerted);
    let damage = faults.damage().filter(|f| !f.alerted);
    let ended = faults.take_ended_unalerted();
    if write.is_none() && damage.is_none() && ended.is_none() {
        return Ok(());
    }
    let mut conditions = Vec::new();
    if let Some(f) = &write {
        conditions.push(("store_write", f.since, write_condition(f, None)));
    }
    if let Some((f, until)) = &ended {
        conditions.push(("store_write", f.since, write_condition(f, Some(*until))));
    }
    if let Some(f) = &damage {
        conditions.push(("store_damage", f.since, damage_condition(f)));
    }
    let result = (|| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (kind, since, c) in &conditions {
            for (member_id, name, address, italian) in alerts::staff(&tx)? {
                let mail = alerts::alert_email(italian, &name, &address, c);
                let key = format!("{kind}:{since}:{member_id}");
                crate::sync::outbox::enqueue_email(&tx, &mail, Some(&key))?;
            }
            crate::sync::webhook::notify(&tx, &crate::sync::webhook::Event::Alert { text: &c.en })?;
        }
        tx.commit()?;
        Ok::<_, store::Error>(())
    })();
    match result {
        Ok(()) => {
            for (_, _, c) in &conditions {
                log::warn!("alert: {}", c.en);
            }
            faults.set_alerted(write.map(|f| f.since), damage.map(|f| f.since));
            crate::sync::wake();
            Ok(())
        }
        Err(e) => {
            // Not queued: try again at the next tick (the ended fault too).
            if let Some((f, until)) = ended {
                faults.defer_ended(f, until);
            }
            Err(e)
        }
    }
}

fn write_condition(f: &Fault, ended: Option<i64>) -> Condition {
    let since = backup::utc_stamp(f.since);
    let (en, it) = match ended {
        None => (
            format!(
                "Writes to the database fail since {since} UTC: {}. Boards get no reply to \
                 starts and stops and keep them (up to 40) until it is fixed; fabgate \
                 recovers by itself when the cause is gone",
                f.cause
            ),
            format!(
                "Le scritture sul database falliscono dalle {since} UTC: {}. Le schede non \
                 ricevono risposta e conservano i messaggi (fino a 40); fabgate riprende da \
                 solo quando la causa è risolta",
                f.cause
            ),
        ),
        Some(until) => (
            format!(
                "Writes to the database failed from {since} to {} UTC: {}. They work again",
                backup::utc_stamp(until),
                f.cause
            ),
            format!(
                "Le scritture sul database sono fallite dalle {since} alle {} UTC: {}. Ora \
                 funzionano di nuovo",
                backup::utc_stamp(until),
                f.cause
            ),
        ),
    };
    Condition {
        kind: "store_fault",
        subject_key: "store".into(),
        machine: "database".into(),
        en,
        it,
    }
}

fn damage_condition(f: &Fault) -> Condition {
    Condition {
        kind: "store_damage",
        subject_key: "store".into(),
        machine: "database".into(),
        en: format!(
            "The database is damaged: {}. Stop fabgate and restore the newest backup \
             (`fabgate restore FILE`, daily backups are in the data directory's backups/)",
            f.cause
        ),
        it: format!(
            "Il database è danneggiato: {}. Ferma fabgate e ripristina il backup più recente \
             (`fabgate restore FILE`, i backup giornalieri sono nella cartella backups/)",
            f.cause
        ),
    }
}
