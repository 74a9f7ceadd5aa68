//! Machines: the list (state, type, hours, board, who uses it), add / edit / delete,
//! block / unblock, and remote start / stop for a board that is online (protocol.md
//! §2.9). One machine's page is `machine_page`.

use super::{
    confirm_page, count_line, flash, found, hot, hours, num, write, Checked, Ctx, Refused,
};
use crate::lab::{self, RemoteRefusal};
use crate::store::{self, MachineRow, MachineTypeRow};
use crate::validate;
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use crate::web::time;
use maud::{html, Markup};

/// A machine with what the rules say about it right now.
pub(super) struct Status {
    pub row: MachineRow,
    pub online: bool,
    pub seen: Option<i64>,
    pub due: bool,
}

fn statuses(cx: &Ctx) -> store::Result<Vec<Status>> {
    let rows = store::machine_rows(cx.db)?;
    let seen: Vec<Option<i64>> = {
        let hot = hot(cx)?;
        rows.iter()
            .map(|r| hot.machine_last_seen(r.id).max(r.last_seen))
            .collect()
    };
    rows.into_iter()
        .zip(seen)
        .map(|(row, seen)| status(cx, row, seen))
        .collect()
}

/// `seen`: when the board last spoke, from memory or the database.
pub(super) fn status(cx: &Ctx, row: MachineRow, seen: Option<i64>) -> store::Result<Status> {
    Ok(Status {
        due: !lab::overdue_plans(cx.db, row.id)?.is_empty(),
        online: lab::is_online(seen, cx.now, cx.app.rules.online_window_s),
        seen,
        row,
    })
}

/// FabOMatic's order (features.md §c.7): in use, blocked, maintenance due, offline, free.
pub(super) fn state(s: &Status, lang: Lang) -> (&'static str, &'static str) {
    if s.row.in_use_by.is_some() {
        ("busy", tr(lang, "in use"))
    } else if s.row.blocked {
        ("blocked", tr(lang, "blocked"))
    } else if s.due {
        ("due", tr(lang, "maintenance due"))
    } else if !s.online {
        ("offline", tr(lang, "offline"))
    } else {
        ("free", tr(lang, "free"))
    }
}

pub(super) fn online_badge(lang: Lang, online: bool) -> Markup {
    html! {
        @if online { span.badge.free { (tr(lang, "online")) } }
        @else { span.badge.offline { (tr(lang, "offline")) } }
    }
}

pub fn list(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let machines = match statuses(cx) {
        Ok(m) => m,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        h1 { (tr(lang, "Machines")) }
        (flash(cx))
        p.actions {
            a.button href="/machines/new" { (tr(lang, "Add machine")) }
            " " a.button.secondary href="/machine-types" { (tr(lang, "Machine types")) }
        }
        @if machines.is_empty() { p.muted { (tr(lang, "No machines yet.")) } }
        @else {
            div.scroll { table.machines {
                thead { tr {
                    th { (tr(lang, "ID")) } th { (tr(lang, "Name")) } th { (tr(lang, "Type")) }
                    th { (tr(lang, "State")) } th.num { (tr(lang, "Hours")) }
                    th { (tr(lang, "Board")) } th { (tr(lang, "In use by")) }
                } }
                tbody { @for s in &machines {
                    @let (class, label) = state(s, lang);
                    tr {
                        td { (s.row.id) }
                        td { a href={"/machines/" (s.row.id)} { (s.row.name) } }
                        td { (s.row.type_name.as_deref().unwrap_or("—")) }
                        td { span class={"badge " (class)} { (label) } }
                        td.num { (hours(s.row.hours)) }
                        td {
                            (online_badge(lang, s.online)) " "
                            span.muted { @match s.seen {
                                Some(t) => (time::datetime(&cx.tz, t)),
                                None => (tr(lang, "never seen")),
                            } }
                        }
                        td { (s.row.in_use_by.as_deref().unwrap_or("")) }
                    }
                } }
            } }
        }
    };
    cx.page(tr(lang, "Machines"), "/machines", body)
}

// ---------------------------------------------------------------------------------------
// Add / edit

/// The machine form as typed.
#[derive(Default)]
struct Form {
    id: String,
    name: String,
    type_id: String,
    hours: String,
}

/// The form once checked.
struct Valid {
    id: i64,
    name: String,
    type_id: i64,
    hours: f64,
}

impl Form {
    fn from_req(cx: &Ctx) -> Form {
        let f = |k| cx.req.field(k).to_string();
        Form {
            id: f("id"),
            name: f("name"),
            type_id: f("type"),
            hours: f("hours"),
        }
    }

    fn from_row(m: &MachineRow) -> Form {
        Form {
            id: m.id.to_string(),
            name: m.name.clone(),
            type_id: m.type_id.map(|t| t.to_string()).unwrap_or_default(),
            hours: format!("{}", m.hours),
        }
    }

    fn check(&self, lang: Lang) -> Checked<Valid> {
        let id = self
            .id
            .parse::<i64>()
            .map_err(|_| tr(lang, "The machine ID must be a whole number.").to_string())
            .and_then(validate::machine_id)?;
        let name = validate::object_name("machine name", &self.name)?;
        let type_id = num(&self.type_id).ok_or(tr(lang, "Choose a machine type."))?;
        let hours = parse_number(&self.hours)
            .ok_or_else(|| tr(lang, "Hours must be a number.").to_string())
            .and_then(validate::hours_counter)?;
        Ok(Valid {
            id,
            name,
            type_id,
            hours,
        })
    }
}

/// A decimal number as people type it: `1.5` or `1,5`; empty reads as 0.
pub(super) fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim().replace(',', ".");
    if t.is_empty() {
        return Some(0.0);
    }
    t.parse().ok().filter(|h: &f64| h.is_finite())
}

fn render_form(
    cx: &Ctx,
    f: &Form,
    types: &[MachineTypeRow],
    action: &str,
    error: Option<&str>,
) -> Markup {
    let lang = cx.lang;
    let options: Vec<(i64, String)> = types.iter().map(|t| (t.id, t.name.clone())).collect();
    html! {
        div.panel.narrowish {
            @if let Some(e) = error { (notice("error", e)) }
            form.stack method="post" action=(action) {
                (csrf_field(cx.csrf()))
                label { (tr(lang, "Name")) input type="text" name="name" value=(f.name) required maxlength="100"; }
                label { (tr(lang, "Machine ID (as configured on the board)"))
                    input type="number" name="id" value=(f.id) min="1" required; }
                label { (tr(lang, "Type")) (super::select("type", &options, &f.type_id, None)) }
                label { (tr(lang, "Hours counter")) input type="text" inputmode="decimal" name="hours" value=(f.hours); }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
    }
}

fn form_page(cx: &mut Ctx, f: &Form, editing: Option<i64>, error: Option<String>) -> Resp {
    let lang = cx.lang;
    let types = match store::machine_types(cx.db) {
        Ok(t) => t,
        Err(e) => return cx.failure(&e),
    };
    let (title, action) = match editing {
        Some(id) => (tr(lang, "Edit machine"), format!("/machines/{id}/edit")),
        None => (tr(lang, "Add machine"), "/machines".to_string()),
    };
    let body = html! {
        h1 { (title) }
        (render_form(cx, f, &types, &action, error.as_deref()))
    };
    let resp = cx.page(title, "/machines", body);
    if error.is_some() {
        resp.status(400)
    } else {
        resp
    }
}

pub fn new_form(cx: &mut Ctx) -> Resp {
    let next = store::next_machine_id(cx.db).unwrap_or(1);
    let f = Form {
        id: next.to_string(),
        hours: "0".into(),
        ..Form::default()
    };
    form_page(cx, &f, None, None)
}

pub fn edit_form(cx: &mut Ctx, id: i64) -> Resp {
    match store::machine_rows(cx.db).map(|r| r.into_iter().find(|m| m.id == id)) {
        Ok(Some(m)) => form_page(cx, &Form::from_row(&m), Some(id), None),
        Ok(None) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

/// Checks what the database must say about a machine form: id free, name unique, type.
fn conflicts(
    db: &rusqlite::Connection,
    lang: Lang,
    v: &Valid,
    old: Option<i64>,
) -> store::Result<Checked<()>> {
    if Some(v.id) != old && store::machine_exists(db, v.id)? {
        return Ok(Err(tr(lang, "Another machine already has this ID.").into()));
    }
    if store::machine_ids_by_name(db, &v.name)?
        .iter()
        .any(|&other| Some(other) != old)
    {
        return Ok(Err(
            tr(lang, "Another machine already has this name.").into()
        ));
    }
    if store::machine_type(db, v.type_id)?.is_none() {
        return Ok(Err(tr(lang, "Choose a machine type.").into()));
    }
    Ok(Ok(()))
}

pub fn create(cx: &mut Ctx) -> Resp {
    save(cx, None)
}

pub fn update(cx: &mut Ctx, id: i64) -> Resp {
    save(cx, Some(id))
}

fn save(cx: &mut Ctx, old: Option<i64>) -> Resp {
    let lang = cx.lang;
    let f = Form::from_req(cx);
    let v = match f.check(lang) {
        Ok(v) => v,
        Err(e) => return form_page(cx, &f, old, Some(e)),
    };
    let saved = write(cx.db, |tx| {
        if let Some(id) = old {
            if !store::machine_exists(tx, id)? {
                return Ok(Err(Refused::Missing));
            }
        }
        if let Err(e) = conflicts(tx, lang, &v, old)? {
            return Ok(Err(e.into()));
        }
        let edit = store::MachineEdit {
            id: v.id,
            name: &v.name,
            type_id: Some(v.type_id),
            hours: v.hours,
        };
        match old {
            Some(id) => store::update_machine(tx, id, &edit)?,
            None => {
                store::insert_machine(tx, v.id, &v.name, v.type_id)?;
                store::update_machine(tx, v.id, &edit)?
            }
        };
        Ok(Ok(()))
    });
    match saved {
        Ok(Ok(())) => {
            let ok = if old.is_some() { "saved" } else { "added" };
            Resp::redirect(&format!("/machines/{}?ok={ok}", v.id))
        }
        Ok(Err(Refused::Missing)) => cx.not_found(),
        Ok(Err(Refused::Invalid(e))) => form_page(cx, &f, old, Some(e)),
        Err(e) => cx.failure(&e),
    }
}

// ---------------------------------------------------------------------------------------
// Delete, block, remote start/stop

pub fn confirm_delete(cx: &mut Ctx, id: i64) -> Resp {
    let lang = cx.lang;
    let m = match store::machine(cx.db, id) {
        Ok(Some(m)) => m,
        Ok(None) => return cx.not_found(),
        Err(e) => return cx.failure(&e),
    };
    let deps = match store::machine_dependents(cx.db, id) {
        Ok(d) => d,
        Err(e) => return cx.failure(&e),
    };
    let lines: Vec<String> = [
        count_line(deps.uses, tr(lang, "use"), tr(lang, "uses")),
        count_line(
            deps.plans,
            tr(lang, "maintenance plan"),
            tr(lang, "maintenance plans"),
        ),
        count_line(
            deps.interventions,
            tr(lang, "intervention"),
            tr(lang, "interventions"),
        ),
        count_line(
            deps.authorizations,
            tr(lang, "authorization"),
            tr(lang, "authorizations"),
        ),
        deps.board
            .then(|| tr(lang, "the board's information (firmware, IP, last seen)").to_string()),
        count_line(
            deps.unknown_cards,
            tr(lang, "unknown-card record"),
            tr(lang, "unknown-card records"),
        ),
        count_line(
            deps.credentials,
            tr(lang, "board login"),
            tr(lang, "board logins"),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let title = format!("{} {}?", tr(lang, "Delete machine"), m.name);
    confirm_page(
        cx,
        &title,
        "/machines",
        &lines,
        &format!("/machines/{id}/delete"),
        &format!("/machines/{id}"),
    )
}

pub fn delete(cx: &mut Ctx, id: i64) -> Resp {
    let deleted = write(cx.db, |tx| Ok(found(store::delete_machine(tx, id)?)));
    match deleted {
        Ok(Ok(())) => {
            log::info!("panel: machine {id} deleted");
            Resp::redirect("/machines?ok=deleted")
        }
        Ok(Err(_)) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

pub fn block(cx: &mut Ctx, id: i64, blocked: bool) -> Resp {
    let done = write(cx.db, |tx| {
        if !store::machine_exists(tx, id)? {
            return Ok(Err(Refused::Missing));
        }
        store::set_machine_blocked(tx, id, blocked)?;
        Ok(Ok(()))
    });
    match done {
        Ok(Ok(())) => {
            let ok = if blocked { "blocked" } else { "unblocked" };
            Resp::redirect(&format!("/machines/{id}?ok={ok}"))
        }
        Ok(Err(_)) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

/// Queues a remote start/stop for the daemon's jobs thread, as the CLI does, on behalf of
/// the staff member's own card, after `lab` agrees: nothing is reported as sent unless it
/// is queued for an online board and an active card (protocol.md §8.12).
pub fn remote(cx: &mut Ctx, id: i64, kind: &'static str) -> Resp {
    let lang = cx.lang;
    let card = cx
        .session
        .as_ref()
        .and_then(|s| s.card_uid.clone())
        .filter(|c| !c.is_empty());
    let Some(uid) = card else {
        let why = tr(lang, "You have no card: remote start and stop act on behalf of your own card. Ask an administrator to give you one.");
        return super::machine_page::show_with(cx, id, Some(why.to_string()));
    };
    let verdict = hot(cx)
        .and_then(|hot| lab::check_remote_request(cx.db, &hot, id, &uid, cx.now, &cx.app.rules));
    let refusal = match verdict {
        Ok(Ok(())) => None,
        Ok(Err(r)) => Some(r),
        Err(e) => return cx.failure(&e),
    };
    let why = match refusal {
        None => {
            let now = cx.now;
            let queued = write(cx.db, |tx| {
                store::queue_board_request(tx, id, kind, &uid, now)?;
                Ok(Ok::<_, Refused>(()))
            });
            return match queued {
                Ok(_) => {
                    log::info!("panel: remote {kind} for machine {id} queued");
                    log::debug!("panel: remote {kind} for machine {id} on behalf of card {uid}");
                    Resp::redirect(&format!("/machines/{id}?ok={kind}"))
                }
                Err(e) => cx.failure(&e),
            };
        }
        Some(RemoteRefusal::UnknownMachine) => return cx.not_found(),
        Some(RemoteRefusal::Offline) => {
            tr(lang, "Nothing was sent: the machine's board is offline.").to_string()
        }
        Some(RemoteRefusal::Card(reason)) => format!(
            "{} {}",
            tr(lang, "Nothing was sent: your card cannot be used for this:"),
            tr(lang, reason.describe())
        ),
    };
    log::warn!("panel: remote {kind} for machine {id} refused: {why}");
    super::machine_page::show_with(cx, id, Some(why))
}
