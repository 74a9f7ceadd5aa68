//! Members and roles: `user add|list|disable|enable|password`, `role add|list`.

use super::admin::{unique_name, warn, who, Ctx, Outcome};
use super::input::{self, plain, shown, NAME_MAX};
use super::table::{self, Table};
use super::{ListOpts, RoleCmd, UserCmd};
use crate::store;

pub fn user(ctx: &mut Ctx, cmd: UserCmd) -> Outcome {
    match cmd {
        UserCmd::Add {
            name,
            surname,
            card,
            role,
            email,
            admin,
        } => user_add(ctx, &name, &surname, card, role, email, admin),
        UserCmd::Password { user } => user_password(ctx, &user),
        UserCmd::List(ListOpts { json }) => {
            let rows = ctx.read(|db| Ok(store::member_rows(db)?))?;
            ctx.list(json, &rows, |rows| {
                let mut t = Table::new(&["ID", "NAME", "ROLE", "CARD", "EMAIL", "STATE"]);
                for m in rows {
                    t.row(vec![
                        m.id.to_string(),
                        m.full_name(),
                        m.role.clone(),
                        m.card_uid.clone().unwrap_or_default(),
                        m.email.clone().unwrap_or_default(),
                        member_state(m).into(),
                    ]);
                }
                t
            })
        }
        UserCmd::Disable { user } => user_disable(ctx, &user, true),
        UserCmd::Enable { user } => user_disable(ctx, &user, false),
    }
}

fn member_state(m: &store::MemberRow) -> &'static str {
    match (m.deleted, m.disabled) {
        (true, _) => "deleted",
        (false, true) => "disabled",
        (false, false) => "active",
    }
}

fn user_add(
    ctx: &mut Ctx,
    name: &str,
    surname: &str,
    card: Option<String>,
    role: Option<String>,
    email: Option<String>,
    admin: bool,
) -> Outcome {
    let name = input::text("name", name, 1, NAME_MAX)?;
    let surname = input::text("surname", surname, 0, NAME_MAX)?;
    let card = card.map(|c| input::card(&c)).transpose()?;
    let email = email.map(|e| input::email(&e)).transpose()?;
    let uid = card.as_ref().map(|(uid, _)| uid.as_str());
    if let Some((_, Some(warning))) = &card {
        warn(warning);
    }
    let (id, role_name, password) = ctx.write(|db| {
        let role = match &role {
            _ if admin => {
                let id = crate::web::admin_role(db)?;
                store::role(db, id)?.ok_or("the administrators' role vanished")?
            }
            Some(r) => input::role(db, r)?,
            None => store::default_role(db)?.ok_or(
                "no role without special rights to give new members\n\
                 hint: pass --role, or add one with `fabgate role add NAME`",
            )?,
        };
        if let Some(uid) = uid {
            if let Some(holder) = store::member_id_by_card(db, uid)? {
                if let Some(h) = store::member_row(db, holder)? {
                    return Err(format!("card {uid} already belongs to {}", who(&h)).into());
                }
            }
        }
        if let Some(email) = &email {
            if let Some(holder) = store::member_id_by_email(db, email)? {
                if let Some(h) = store::member_row(db, holder)? {
                    return Err(
                        format!("email {} already belongs to {}", shown(email), who(&h)).into(),
                    );
                }
            }
        }
        let new = store::NewMember {
            name: &name,
            surname: &surname,
            role_id: role.id,
            card_uid: uid,
            email: email.as_deref(),
        };
        let id = store::insert_member(db, &new, store::now())?;
        let password = match admin {
            true => Some(crate::web::one_time_password(db, id)?),
            false => None,
        };
        Ok((id, role.name, password))
    })?;
    let card_text = uid.map(|u| format!(", card {u}")).unwrap_or_default();
    ctx.line(format!(
        "added member {id}: {} (role {}{card_text})",
        store::full_name(&name, &surname),
        plain(&role_name)
    ));
    if let Some(password) = password {
        print_one_time(ctx, &password);
    }
    Ok(())
}

/// `user password USER`: a new one-time password for a panel account.
fn user_password(ctx: &mut Ctx, arg: &str) -> Outcome {
    let (member, password) = ctx.write(|db| {
        let m = input::member(db, arg)?;
        if let Err(why) = crate::web::panel_ready(db, m.id)? {
            return Err(format!("member {} cannot log into the panel: {why}", who(&m)).into());
        }
        Ok((m.clone(), crate::web::one_time_password(db, m.id)?))
    })?;
    ctx.line(format!(
        "new one-time password for member {} (their panel sessions ended)",
        who(&member)
    ));
    print_one_time(ctx, &password);
    Ok(())
}

/// The password on a line of its own, once (stdout only: never the log).
fn print_one_time(ctx: &mut Ctx, password: &str) {
    ctx.line(format!("one-time password: {password}"));
    ctx.line("it must be changed at the first login");
}

fn user_disable(ctx: &mut Ctx, arg: &str, disable: bool) -> Outcome {
    let (member, changed) = ctx.write(|db| {
        let m = input::member(db, arg)?;
        let changed = store::set_member_disabled(db, m.id, disable)?;
        Ok((m, changed))
    })?;
    let state = if disable { "disabled" } else { "enabled" };
    if changed {
        ctx.line(format!("{state} member {}", who(&member)));
    } else {
        ctx.line(format!("member {} was already {state}", who(&member)));
    }
    if member.deleted {
        warn("this member is deleted: they cannot use machines either way");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Roles

pub fn role(ctx: &mut Ctx, cmd: RoleCmd) -> Outcome {
    match cmd {
        RoleCmd::Add {
            name,
            authorize_all,
            maintenance,
            panel,
        } => {
            let name = input::object_name("role name", &name)?;
            let id = ctx.write(|db| {
                unique_name("role", &name, store::role_ids_by_name(db, &name)?)?;
                let new = store::NewRole {
                    name: &name,
                    authorize_all,
                    maintenance,
                    backend_admin: panel,
                };
                Ok(store::insert_role(db, &new)?)
            })?;
            ctx.line(format!("added role {id}: {name}"));
            Ok(())
        }
        RoleCmd::List(ListOpts { json }) => {
            let rows = ctx.read(|db| Ok(store::roles(db)?))?;
            ctx.list(json, &rows, |rows| {
                let mut t = Table::new(&[
                    "ID",
                    "NAME",
                    "AUTHORIZE_ALL",
                    "MAINTENANCE",
                    "PANEL",
                    "RESERVED",
                    "MEMBERS",
                ]);
                for r in rows {
                    t.row(vec![
                        r.id.to_string(),
                        r.name.clone(),
                        table::yes(r.authorize_all),
                        table::yes(r.maintenance),
                        table::yes(r.backend_admin),
                        table::yes(r.reserved),
                        r.members.to_string(),
                    ]);
                }
                t
            })
        }
    }
}
