//! Administration subcommands, second half: maintenance plans, board credentials, usage
//! history, the whole-lab export, and the configuration checks.

use super::admin::{emit, warn, Ctx, Outcome};
use super::input::{self, plain, shown, NAME_MAX, TEXT_MAX};
use super::table::{self, Table};
use super::{BoardCmd, ConfigCmd, ListOpts, MaintenanceCmd, UsesCmd};
use crate::broker::{board_secret, random_hex};
use crate::config::Config;
use crate::lab;
use crate::store::{self, PlanRow, UseRow};
use serde::Serialize;
use std::path::Path;

// ---------------------------------------------------------------------------------------
// Maintenance

/// A plan with the hours its machine was used since the plan was last done, and whether
/// the boards see it as due.
#[derive(Debug, Serialize)]
struct PlanView {
    #[serde(flatten)]
    plan: PlanRow,
    hours_used: f64,
    due: bool,
}

pub fn maintenance(ctx: &mut Ctx, cmd: MaintenanceCmd) -> Outcome {
    match cmd {
        MaintenanceCmd::Add {
            machine,
            hours,
            description,
            lcd,
            url,
        } => {
            let hours = input::hours(hours)?;
            let description = input::text("description", &description, 1, TEXT_MAX)?;
            let lcd = lcd.map(|l| input::lcd(&l)).transpose()?;
            let url = url.map(|u| input::url(&u)).transpose()?;
            let (id, m) = ctx.write(|db| {
                let m = input::machine(db, &machine)?;
                let new = store::NewPlan {
                    machine_id: m.id,
                    hours_between: hours,
                    description: &description,
                    lcd_message: lcd.as_deref(),
                    instructions_url: url.as_deref(),
                };
                Ok((store::insert_plan(db, &new)?, m))
            })?;
            ctx.line(format!(
                "added maintenance plan {id} to machine {} ({}): every {hours} h of use",
                m.id,
                plain(&m.name)
            ));
            Ok(())
        }
        MaintenanceCmd::List(ListOpts { json }) => {
            let rows = ctx.read(|db| {
                let mut views = Vec::new();
                let mut due: Option<(i64, Vec<i64>)> = None;
                for plan in store::plan_rows(db)? {
                    // The same rule the boards get (`lab::overdue_plans`), per machine.
                    if due.as_ref().is_none_or(|(m, _)| *m != plan.machine_id) {
                        let ids = lab::overdue_plans(db, plan.machine_id)?
                            .into_iter()
                            .map(|(p, _)| p.id)
                            .collect();
                        due = Some((plan.machine_id, ids));
                    }
                    let used = store::seconds_used_since_intervention(db, &plan.plan())?;
                    let is_due = due.as_ref().is_some_and(|(_, ids)| ids.contains(&plan.id));
                    views.push(PlanView {
                        plan,
                        hours_used: used as f64 / 3600.0,
                        due: is_due,
                    });
                }
                Ok(views)
            })?;
            ctx.list(json, &rows, |rows| {
                let mut t =
                    Table::new(&["ID", "MACHINE", "PLAN", "EVERY_H", "USED_H", "DUE", "LCD"]);
                for v in rows {
                    t.row(vec![
                        v.plan.id.to_string(),
                        format!("{} {}", v.plan.machine_id, v.plan.machine_name),
                        v.plan.description.clone(),
                        v.plan.hours_between.to_string(),
                        format!("{:.1}", v.hours_used),
                        if v.due { "DUE" } else { "" }.into(),
                        v.plan.lcd_message.clone().unwrap_or_default(),
                    ]);
                }
                t
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Board credentials

/// Random board passwords: 8 bytes = 16 hex digits, easy to type into a board's portal.
const PASSWORD_BYTES: usize = 8;

pub fn board(ctx: &mut Ctx, cmd: BoardCmd) -> Outcome {
    match cmd {
        BoardCmd::Add {
            lab,
            machine,
            username,
            password,
        } => board_add(ctx, lab, machine, username, password),
        BoardCmd::List(ListOpts { json }) => {
            let rows = ctx.read(|db| Ok(store::board_list(db)?))?;
            ctx.list(json, &rows, |rows| {
                let mut t = Table::new(&[
                    "USERNAME",
                    "SCOPE",
                    "FIRMWARE",
                    "IP",
                    "SERIAL",
                    "HEAP",
                    "LAST SEEN",
                ]);
                for r in rows {
                    let seen = r.fw_version.is_some();
                    t.row(vec![
                        r.username.clone().unwrap_or_else(|| "-".into()),
                        scope(r.machine_id, r.machine_name.as_deref()),
                        r.fw_version.clone().unwrap_or_default(),
                        r.ip_address.clone().unwrap_or_default(),
                        r.serial.clone().unwrap_or_default(),
                        r.heap.map(|h| h.to_string()).unwrap_or_default(),
                        if seen {
                            table::utc_or(r.last_seen, "")
                        } else {
                            String::new()
                        },
                    ]);
                }
                t
            })
        }
        BoardCmd::Remove { username } => {
            let username = username.trim().to_string();
            let (scope_of, left) = ctx.write(|db| {
                let Some(machine_id) = store::delete_credential(db, &username)? else {
                    return Err(
                        format!("no board credentials with username {}", shown(&username)).into(),
                    );
                };
                Ok((machine_id, store::count_credentials(db)?))
            })?;
            ctx.line(format!(
                "removed credentials {} ({})",
                shown(&username),
                scope(scope_of, None)
            ));
            if left == 0 && !ctx.config.broker.allow_anonymous {
                warn(
                    "no board credentials left: the broker refuses every board until you add some",
                );
            }
            Ok(())
        }
    }
}

fn scope(machine_id: Option<i64>, name: Option<&str>) -> String {
    match (machine_id, name) {
        (None, _) => "lab-wide".into(),
        (Some(id), Some(name)) => format!("machine {id} ({name})"),
        (Some(id), None) => format!("machine {id}"),
    }
}

fn board_add(
    ctx: &mut Ctx,
    lab_wide: bool,
    machine: Option<String>,
    username: Option<String>,
    password: Option<String>,
) -> Outcome {
    let username = username
        .map(|u| input::text("username", &u, 1, NAME_MAX))
        .transpose()?;
    if lab_wide && username.is_none() {
        return Err(
            "board add --lab needs --username: the MQTT user name flashed in your boards".into(),
        );
    }
    let given = password.map(|p| input::password(&p)).transpose()?;
    let generated = given.is_none();
    let password = given.unwrap_or_else(|| random_hex(PASSWORD_BYTES));
    let (salt, hash) = board_secret(&password);
    let now = store::now();
    let (username, machine_id, machine_name, replaced) = ctx.write(|db| {
        let (machine_id, machine_name) = match (&machine, lab_wide) {
            (Some(arg), false) => {
                let m = input::machine(db, arg)?;
                (Some(m.id), Some(m.name))
            }
            _ => (None, None),
        };
        let username = match (username, machine_id) {
            (Some(u), _) => u,
            (None, Some(id)) => format!("board-{id}"),
            (None, None) => return Err("--username is needed".into()),
        };
        let replaced = match store::credential(db, &username)? {
            None => {
                store::insert_credential(db, &username, machine_id, &salt, &hash, now)?;
                false
            }
            Some(c) if c.machine_id == machine_id => {
                store::replace_credential_secret(db, &username, &salt, &hash, now)?;
                true
            }
            Some(c) => {
                return Err(format!(
                    "username {} is already taken by the {} credentials\nhint: pick another --username, or \
                     remove it first with `fabgate board remove {}`",
                    shown(&username),
                    scope(c.machine_id, None),
                    plain(&username)
                )
                .into())
            }
        };
        Ok((username, machine_id, machine_name, replaced))
    })?;
    let what = match machine_id {
        None => format!("lab-wide credentials {}", shown(&username)),
        Some(_) => format!(
            "credentials {} for {}",
            shown(&username),
            scope(machine_id, machine_name.as_deref().map(plain).as_deref())
        ),
    };
    if replaced {
        ctx.line(format!("replaced the password of {what}"));
    } else {
        ctx.line(format!("added {what}"));
    }
    if generated {
        ctx.line(format!(
            "password: {password} (shown once; flash it into the board)"
        ));
    }
    if ctx.config.broker.allow_anonymous {
        warn("broker.allow_anonymous is on: boards may also connect without credentials");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Uses

/// A use with its times as text for `--json` readers.
#[derive(Debug, Serialize)]
struct UseView {
    #[serde(flatten)]
    row: UseRow,
    start_utc: String,
    end_utc: Option<String>,
    /// To the end, or to the last heartbeat while open.
    duration_s: i64,
}

pub fn uses(ctx: &mut Ctx, cmd: UsesCmd) -> Outcome {
    let UsesCmd::List {
        machine,
        open,
        limit,
        json,
    } = cmd;
    if limit < 1 {
        return Err("--limit must be at least 1".into());
    }
    let rows = ctx.read(|db| {
        let machine_id = match &machine {
            Some(arg) => Some(input::machine(db, arg)?.id),
            None => None,
        };
        let filter = store::UseFilter {
            machine_id,
            open_only: open,
            limit,
        };
        Ok(store::use_rows(db, &filter)?)
    })?;
    let views: Vec<UseView> = rows
        .into_iter()
        .map(|row| UseView {
            start_utc: table::utc(row.start),
            end_utc: row.end.map(table::utc),
            duration_s: row.end.unwrap_or(row.last_seen).saturating_sub(row.start),
            row,
        })
        .collect();
    ctx.list(json, &views, |views| {
        let mut t = Table::new(&[
            "ID", "START", "END", "DURATION", "MACHINE", "MEMBER", "REPLAY",
        ]);
        for v in views {
            t.row(vec![
                v.row.id.to_string(),
                v.start_utc.clone(),
                v.end_utc.clone().unwrap_or_else(|| "open".into()),
                table::duration(v.duration_s),
                format!("{} {}", v.row.machine_id, v.row.machine),
                v.row.member.clone(),
                table::yes(v.row.replay == Some(true)),
            ]);
        }
        t
    })
}

// ---------------------------------------------------------------------------------------
// Export

pub fn export(ctx: &mut Ctx, json: bool) -> Outcome {
    if !json {
        return Err("say `fabgate export --json`: JSON is the only export format for now".into());
    }
    let doc = ctx.read(|db| Ok(store::export(db, store::now())?))?;
    let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("cannot write JSON: {e}"))?;
    ctx.line(text);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Configuration

/// `config check` and `config default`. Runs before the configuration is loaded, so a
/// broken `--config` file can be checked. `config_path` is `--config` / `FABGATE_CONFIG`.
pub fn config(cmd: ConfigCmd, config_path: Option<&Path>) -> super::anyhow_lite::Result {
    match cmd {
        ConfigCmd::Default => emit(Config::default_toml()),
        ConfigCmd::Check { file } => match file.as_deref().or(config_path) {
            None => emit("ok: embedded defaults (no --config file given)\n"),
            Some(path) => {
                Config::load(path).map_err(|e| e.to_string())?;
                emit(&format!("ok: {}\n", path.display()))
            }
        },
    }
}
