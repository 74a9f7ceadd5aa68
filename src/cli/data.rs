//! Data safety and personal data: `backup`, `restore`, `purge`, `member export|erase`.
//! The copying is in `store::backup`, the GDPR rules in `lab::retention`; this file checks
//! the preconditions (is the daemon running? does the file exist?) and words the result.

use super::admin::{emit, warn, who, Ctx, Outcome};
use super::input;
use super::MemberCmd;
use crate::config::Config;
use crate::lab::retention::{self, Retention};
use crate::store::{self, backup, Store};
use std::path::Path;

/// `fabgate backup PATH`: works while the daemon runs (SQLite online backup).
pub fn backup(config: &Config, path: &Path) -> super::anyhow_lite::Result {
    let store = Store::open_existing(&config.database_path(), config.store.synchronous)
        .map_err(|e| e.to_string())?;
    let r = backup::backup(&store, path).map_err(|e| format!("backup failed: {e}"))?;
    let info = backup::inspect(path).map_err(|e| format!("backup failed: {e}"))?;
    emit(&format!(
        "backup {} written and checked: {} KiB, {} members, {} machines, {} uses ({} ms)\n",
        path.display(),
        r.bytes.div_ceil(1024),
        info.members,
        info.machines,
        info.uses,
        r.elapsed.as_millis()
    ))
}

/// `fabgate restore PATH`: refused while a daemon holds the data lock.
pub fn restore(config: &Config, path: &Path) -> super::anyhow_lite::Result {
    let _lock = match store::DataLock::acquire(&config.store.data_dir) {
        Ok(lock) => lock,
        Err(store::Error::Locked { .. }) => {
            return Err(
                "the daemon is running: stop it first (`systemctl stop fabgate`), \
                 restore, then start it again"
                    .into(),
            )
        }
        Err(e) => return Err(e.to_string()),
    };
    let info = backup::inspect(path).map_err(|e| e.to_string())?;
    let (report, kept) = backup::restore(
        path,
        &config.database_path(),
        config.store.synchronous,
        store::now(),
    )
    .map_err(|e| format!("restore failed, the lab is unchanged: {e}"))?;
    let mut out = format!(
        "restored {} into {}: {} members, {} machines, {} uses ({} ms)\n",
        path.display(),
        report.path.display(),
        info.members,
        info.machines,
        info.uses,
        report.elapsed.as_millis()
    );
    if let Some(kept) = kept {
        out.push_str(&format!(
            "the previous database is kept as {}\n",
            kept.display()
        ));
    }
    emit(&out)
}

/// After an import: what the retention rules will do to the imported history (issue 12).
/// The daemon holds it until staff confirm; with nothing old enough, there is nothing to
/// confirm and the hold is lifted at once.
pub fn import_retention(config: &Config, store: &Store) -> Result<String, String> {
    let rules = Retention::from_config(config);
    let conn = store.connect().map_err(|e| e.to_string())?;
    let p = retention::preview(&conn, &rules, store::now()).map_err(|e| e.to_string())?;
    if p.rows() == 0 {
        retention::confirm(&conn).map_err(|e| e.to_string())?;
        return Ok(format!(
            "Retention: nothing in the imported history is older than [retention] \
             (uses {} days, interventions {} days, unknown cards {} days); it applies as usual.",
            rules.uses_days, rules.interventions_days, rules.unknown_cards_days
        ));
    }
    Ok(format!(
        "Retention: {} imported uses older than {} days and {} interventions older than {} days \
         would be anonymised (kept as \"Anonymous\" statistics), {} unknown cards older than {} \
         days deleted.\nThe daemon leaves the imported history as it is until you confirm: run \
         `fabgate purge` (a backup is taken first), or \"Apply retention\" on the panel's System \
         page. To keep more, raise [retention] uses_days / interventions_days first.",
        p.uses,
        rules.uses_days,
        p.interventions,
        rules.interventions_days,
        p.unknown_cards,
        rules.unknown_cards_days
    ))
}

/// `fabgate purge`: the retention rules now, whatever `retention.enabled` says. Running it
/// is also the staff's confirmation for an imported history held since the import; more
/// than a handful of changes get a backup first.
pub fn purge(ctx: &mut Ctx) -> Outcome {
    let rules = Retention::from_config(ctx.config);
    let now = store::now();
    let preview = ctx.read(|db| Ok(retention::preview(db, &rules, now)?))?;
    if preview.rows() > retention::HANDFUL {
        let path = backup::before_purge_path(&ctx.config.backup_dir(), now);
        let r = backup::backup_from(&ctx.conn, &path)
            .map_err(|e| format!("the backup before the purge failed, nothing was purged: {e}"))?;
        ctx.line(format!(
            "backup before the purge: {} ({} KiB)",
            r.path.display(),
            r.bytes.div_ceil(1024)
        ));
    }
    let (report, confirmed) = ctx.write(|db| {
        let confirmed = retention::confirm(db)?;
        Ok((retention::purge(db, &rules, now)?, confirmed))
    })?;
    if confirmed {
        ctx.line("the imported history's retention is confirmed");
    }
    ctx.line(format!(
        "anonymised {} uses older than {} days and {} interventions older than {} days; \
         deleted {} unknown cards older than {} days",
        report.uses_anonymised,
        rules.uses_days,
        report.interventions_anonymised,
        rules.interventions_days,
        report.unknown_cards_deleted,
        rules.unknown_cards_days
    ));
    Ok(())
}

pub fn member(ctx: &mut Ctx, cmd: MemberCmd) -> Outcome {
    match cmd {
        MemberCmd::Export { member } => {
            let data = ctx.read(|db| {
                let m = input::member(db, &member)?;
                Ok(retention::export_member(db, m)?)
            })?;
            let text = serde_json::to_string_pretty(&data)
                .map_err(|e| format!("cannot write JSON: {e}"))?;
            ctx.line(text);
            Ok(())
        }
        MemberCmd::Erase { member, yes } => {
            if !yes {
                return Err("erasing a member cannot be undone: add --yes\n\
                     hint: `fabgate member export MEMBER > file.json` first keeps a copy"
                    .into());
            }
            let (before, done) = ctx.write(|db| {
                let m = input::member(db, &member)?;
                let done = retention::erase_member(db, &m, store::now())?
                    .map_err(|refused| refused.to_string())?;
                Ok((m, done))
            })?;
            ctx.line(format!(
                "erased member {}: {} uses and {} interventions kept as Anonymous, \
                 {} authorizations, {} unknown-card records and {} unsent emails deleted",
                before.id,
                done.uses,
                done.interventions,
                done.authorizations,
                done.unknown_cards,
                done.emails_unsent
            ));
            if before.deleted {
                warn(&format!("{} was already deleted", who(&before)));
            }
            Ok(())
        }
    }
}
