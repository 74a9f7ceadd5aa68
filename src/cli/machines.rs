//! Machine types, machines and authorizations: `machine-type add|list`,
//! `machine add|list|block|unblock|start|stop`, `authorize`.

use super::admin::{unique_name, warn, who, Ctx, Outcome};
use super::input::{self, plain, shown};
use super::table::{self, Table};
use super::{ListOpts, MachineCmd, MachineTypeCmd};
use crate::lab;
use crate::store;
use crate::validate::{GRACE_MAX_MIN, TIMEOUT_MAX_MIN};

// ---------------------------------------------------------------------------------------
// Machine types

pub fn machine_type(ctx: &mut Ctx, cmd: MachineTypeCmd) -> Outcome {
    match cmd {
        MachineTypeCmd::Add {
            name,
            timeout_min,
            grace_min,
            open,
            needs_second_person,
        } => {
            let name = input::object_name("machine type name", &name)?;
            if !(0..=TIMEOUT_MAX_MIN).contains(&timeout_min) {
                return Err(format!(
                    "--timeout-min must be 0 (never) to {TIMEOUT_MAX_MIN} minutes"
                )
                .into());
            }
            if grace_min.is_some_and(|g| !(0..=GRACE_MAX_MIN).contains(&g)) {
                return Err(format!("--grace-min must be 0 to {GRACE_MAX_MIN} minutes").into());
            }
            let id = ctx.write(|db| {
                unique_name(
                    "machine type",
                    &name,
                    store::machine_type_ids_by_name(db, &name)?,
                )?;
                let new = store::NewMachineType {
                    name: &name,
                    timeout_min,
                    grace_min,
                    access_open: open,
                    needs_second_person,
                };
                Ok(store::insert_machine_type(db, &new)?)
            })?;
            ctx.line(format!("added machine type {id}: {name}"));
            if needs_second_person {
                ctx.line("its machines refuse cards while nobody else is signed in");
            }
            Ok(())
        }
        MachineTypeCmd::List(ListOpts { json }) => {
            let rows = ctx.read(|db| Ok(store::machine_types(db)?))?;
            ctx.list(json, &rows, |rows| {
                let mut t = Table::new(&[
                    "ID",
                    "NAME",
                    "TIMEOUT_MIN",
                    "GRACE_MIN",
                    "ACCESS",
                    "SECOND PERSON",
                    "MACHINES",
                ]);
                for r in rows {
                    t.row(vec![
                        r.id.to_string(),
                        r.name.clone(),
                        r.timeout_min.to_string(),
                        r.grace_min.map(|g| g.to_string()).unwrap_or_default(),
                        if r.access_open { "open" } else { "authorized" }.into(),
                        table::yes(r.needs_second_person),
                        r.machines.to_string(),
                    ]);
                }
                t
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Machines

pub fn machine(ctx: &mut Ctx, cmd: MachineCmd) -> Outcome {
    match cmd {
        MachineCmd::Add {
            name,
            machine_type,
            id,
        } => machine_add(ctx, &name, &machine_type, id),
        MachineCmd::List(ListOpts { json }) => {
            let rows = ctx.read(|db| Ok(store::machine_rows(db)?))?;
            ctx.list(json, &rows, |rows| {
                let mut t = Table::new(&[
                    "ID",
                    "NAME",
                    "TYPE",
                    "BLOCKED",
                    "HOURS",
                    "IN USE BY",
                    "LAST SEEN",
                    "FIRMWARE",
                    "IP",
                ]);
                for m in rows {
                    t.row(vec![
                        m.id.to_string(),
                        m.name.clone(),
                        m.type_name.clone().unwrap_or_default(),
                        table::yes(m.blocked),
                        format!("{:.1}", m.hours),
                        m.in_use_by.clone().unwrap_or_default(),
                        table::utc_or(m.last_seen, "never"),
                        m.board_fw.clone().unwrap_or_default(),
                        m.board_ip.clone().unwrap_or_default(),
                    ]);
                }
                t
            })
        }
        MachineCmd::Block { machine } => machine_block(ctx, &machine, true),
        MachineCmd::Unblock { machine } => machine_block(ctx, &machine, false),
        MachineCmd::Start { machine, card } => remote(ctx, &machine, &card, "start"),
        MachineCmd::Stop { machine, card } => remote(ctx, &machine, &card, "stop"),
    }
}

fn machine_add(ctx: &mut Ctx, name: &str, type_arg: &str, id: Option<i64>) -> Outcome {
    let name = input::object_name("machine name", name)?;
    let id = id.map(input::machine_id).transpose()?;
    let (id, type_name) = ctx.write(|db| {
        let t = input::machine_type(db, type_arg)?;
        unique_name("machine", &name, store::machine_ids_by_name(db, &name)?)?;
        let id = match id {
            Some(id) => {
                if let Some(m) = store::machine(db, id)? {
                    return Err(format!("machine id {id} is taken by {}", shown(&m.name)).into());
                }
                id
            }
            None => input::machine_id(store::next_machine_id(db)?)?,
        };
        store::insert_machine(db, id, &name, t.id)?;
        Ok((id, t.name))
    })?;
    ctx.line(format!(
        "added machine {id}: {name} (type {}); configure its board with machine id {id}",
        plain(&type_name)
    ));
    Ok(())
}

fn machine_block(ctx: &mut Ctx, arg: &str, block: bool) -> Outcome {
    let (m, changed) = ctx.write(|db| {
        let m = input::machine(db, arg)?;
        let changed = store::set_machine_blocked(db, m.id, block)?;
        Ok((m, changed))
    })?;
    let state = if block { "blocked" } else { "unblocked" };
    let what = format!("machine {} ({})", m.id, plain(&m.name));
    if changed {
        ctx.line(format!("{state} {what}"));
    } else {
        ctx.line(format!("{what} was already {state}"));
    }
    if block {
        ctx.line("roles with authorize-all may still use it");
    }
    Ok(())
}

/// Queues a remote start/stop in `board_requests`; the daemon publishes it if the board is
/// online, after checking the card again (`lab::check_remote_request`).
fn remote(ctx: &mut Ctx, machine_arg: &str, card: &str, kind: &'static str) -> Outcome {
    let (uid, _) = input::card(card)?;
    let now = store::now();
    let m = ctx.write(|db| {
        let m = input::machine(db, machine_arg)?;
        if let Err(reason) = lab::remote_card(db, &uid)? {
            let holder = match store::member_id_by_card(db, &uid)? {
                Some(id) => store::member_row(db, id)?.map(|h| format!(" of {}", who(&h))),
                None => None,
            };
            return Err(format!(
                "card {uid}{} cannot ask for a remote {kind}: {}",
                holder.unwrap_or_default(),
                reason.describe()
            )
            .into());
        }
        store::queue_board_request(db, m.id, kind, &uid, now)?;
        Ok(m)
    })?;
    ctx.line(format!(
        "queued: the daemon sends it if machine {} is online",
        m.id
    ));
    // The database's last-seen lags by up to one flush interval behind the daemon's memory.
    let p = &ctx.config.protocol;
    let window = p.online_window_s + ctx.config.store.flush_interval_s as i64;
    if !lab::is_online(m.last_seen, now, window) {
        let seen = match m.last_seen {
            Some(t) => format!("was last seen {}", table::utc(t)),
            None => "has never been seen".into(),
        };
        warn(&format!(
            "machine {}'s board {seen}: if it is offline, the daemon drops the request",
            m.id
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Authorizations

pub fn authorize(ctx: &mut Ctx, user: &str, machine: &str, revoke: bool) -> Outcome {
    let (member, m, changed, flags) = ctx.write(|db| {
        let member = input::member(db, user)?;
        let m = input::machine(db, machine)?;
        let changed = if revoke {
            store::delete_authorization(db, member.id, m.id)?
        } else {
            store::insert_authorization(db, member.id, m.id)?
        };
        let flags = store::member(db, member.id)?.map(|x| x.role);
        Ok((member, m, changed, flags))
    })?;
    let on = format!("machine {} ({})", m.id, plain(&m.name));
    let line = match (revoke, changed) {
        (false, true) => format!("authorized {} on {on}", who(&member)),
        (false, false) => format!("{} is already authorized on {on}", who(&member)),
        (true, true) => format!("revoked the authorization of {} on {on}", who(&member)),
        (true, false) => format!("{} was not authorized on {on}", who(&member)),
    };
    ctx.line(line);
    if flags.is_some_and(|f| f.authorize_all) {
        ctx.line(format!(
            "note: role {} may use every machine anyway",
            plain(&member.role)
        ));
    } else if m.access_open {
        ctx.line(format!(
            "note: machine type {} is open: every active member may use it anyway",
            plain(m.type_name.as_deref().unwrap_or(""))
        ));
    }
    Ok(())
}
