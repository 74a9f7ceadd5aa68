//! Machine types: auto-logoff and power-off grace minutes, and whether machines of the
//! type need an authorization (protocol.md §6.4). A type still used by machines cannot
//! be deleted.

use super::{confirm_page, flash, found, write, Checked, Ctx, Refused};
use crate::store::{self, MachineTypeRow, NewMachineType};
use crate::validate;
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use maud::{html, Markup};

pub fn list(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let types = match store::machine_types(cx.db) {
        Ok(t) => t,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        h1 { (tr(lang, "Machine types")) }
        (flash(cx))
        p.actions {
            a.button href="/machine-types/new" { (tr(lang, "Add machine type")) }
            " " a.button.secondary href="/machines" { (tr(lang, "Machines")) }
        }
        div.scroll { table {
            thead { tr {
                th { (tr(lang, "Name")) } th.num { (tr(lang, "Auto-logoff (min)")) }
                th.num { (tr(lang, "Grace (min)")) } th { (tr(lang, "Access")) }
                th.num { (tr(lang, "Machines")) } th {}
            } }
            tbody { @for t in &types {
                tr {
                    td { (t.name) }
                    td.num { @if t.timeout_min == 0 { (tr(lang, "never")) } @else { (t.timeout_min) } }
                    td.num { @match t.grace_min { Some(g) => (g), None => (tr(lang, "board default")) } }
                    td { (access(lang, t.access_open)) }
                    td.num { (t.machines) }
                    td.actions {
                        a href={"/machine-types/" (t.id) "/edit"} { (tr(lang, "Edit")) } " · "
                        a href={"/machine-types/" (t.id) "/delete"} { (tr(lang, "Delete")) }
                    }
                }
            } }
        } }
    };
    cx.page(tr(lang, "Machine types"), "/machines", body)
}

fn access(lang: Lang, open: bool) -> &'static str {
    if open {
        tr(lang, "open to all members")
    } else {
        tr(lang, "authorization needed")
    }
}

/// The type form as typed.
#[derive(Default)]
struct Form {
    name: String,
    timeout: String,
    grace: String,
    open: bool,
    /// The lone-working rule: only with someone else in the building.
    second_person: bool,
}

impl Form {
    fn from_req(cx: &Ctx) -> Form {
        Form {
            name: cx.req.field("name").to_string(),
            timeout: cx.req.field("timeout").to_string(),
            grace: cx.req.field("grace").to_string(),
            open: cx.req.field("access") == "open",
            second_person: cx.req.field("second_person") == "1",
        }
    }

    fn from_row(t: &MachineTypeRow) -> Form {
        Form {
            name: t.name.clone(),
            timeout: t.timeout_min.to_string(),
            grace: t.grace_min.map(|g| g.to_string()).unwrap_or_default(),
            open: t.access_open,
            second_person: t.needs_second_person,
        }
    }

    fn check(&self, lang: Lang) -> Checked<(String, i64, Option<i64>)> {
        let name = validate::object_name("machine type name", &self.name)?;
        let minutes = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| tr(lang, "Minutes must be a whole number.").to_string())
        };
        let timeout = minutes(&self.timeout).and_then(validate::timeout_min)?;
        let grace = match self.grace.as_str() {
            "" => None,
            g => Some(minutes(g).and_then(validate::grace_min)?),
        };
        Ok((name, timeout, grace))
    }
}

fn render_form(cx: &Ctx, f: &Form, action: &str, error: Option<&str>) -> Markup {
    let lang = cx.lang;
    html! {
        div.panel.narrowish {
            @if let Some(e) = error { (notice("error", e)) }
            form.stack method="post" action=(action) {
                (csrf_field(cx.csrf()))
                label { (tr(lang, "Name")) input type="text" name="name" value=(f.name) required maxlength="100"; }
                label { (tr(lang, "Auto-logoff after (minutes, 0 = never)"))
                    input type="number" name="timeout" value=(f.timeout) min="0" required; }
                label { (tr(lang, "Power-off grace (minutes, empty = board default)"))
                    input type="number" name="grace" value=(f.grace) min="0"; }
                fieldset {
                    legend { (tr(lang, "Access")) }
                    label.check { input type="radio" name="access" value="authorized" checked[!f.open]; (access(lang, false)) }
                    label.check { input type="radio" name="access" value="open" checked[f.open]; (access(lang, true)) }
                }
                label.check {
                    input type="checkbox" name="second_person" value="1" checked[f.second_person];
                    (tr(lang, "Needs a second person in the building"))
                }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
    }
}

fn form_page(cx: &Ctx, f: &Form, editing: Option<i64>, error: Option<String>) -> Resp {
    let lang = cx.lang;
    let (title, action) = match editing {
        Some(id) => (
            tr(lang, "Edit machine type"),
            format!("/machine-types/{id}/edit"),
        ),
        None => (tr(lang, "Add machine type"), "/machine-types".to_string()),
    };
    let body = html! { h1 { (title) } (render_form(cx, f, &action, error.as_deref())) };
    let resp = cx.page(title, "/machines", body);
    if error.is_some() {
        resp.status(400)
    } else {
        resp
    }
}

pub fn new_form(cx: &mut Ctx) -> Resp {
    let f = Form {
        timeout: "1440".into(),
        ..Form::default()
    };
    form_page(cx, &f, None, None)
}

pub fn edit_form(cx: &mut Ctx, id: i64) -> Resp {
    match store::machine_type(cx.db, id) {
        Ok(Some(t)) => form_page(cx, &Form::from_row(&t), Some(id), None),
        Ok(None) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
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
    let (name, timeout_min, grace_min) = match f.check(lang) {
        Ok(v) => v,
        Err(e) => return form_page(cx, &f, old, Some(e)),
    };
    let t = NewMachineType {
        name: &name,
        timeout_min,
        grace_min,
        access_open: f.open,
        needs_second_person: f.second_person,
    };
    let saved = write(cx.db, |tx| {
        let taken = store::machine_type_ids_by_name(tx, &name)?;
        if taken.iter().any(|&other| Some(other) != old) {
            return Ok(Err(
                tr(lang, "Another machine type already has this name.").into()
            ));
        }
        match old {
            Some(id) if !store::update_machine_type(tx, id, &t)? => Ok(Err(Refused::Missing)),
            Some(_) => Ok(Ok(())),
            None => store::insert_machine_type(tx, &t).map(|_| Ok(())),
        }
    });
    match saved {
        Ok(Ok(())) => {
            let ok = if old.is_some() { "saved" } else { "added" };
            Resp::redirect(&format!("/machine-types?ok={ok}"))
        }
        Ok(Err(Refused::Missing)) => cx.not_found(),
        Ok(Err(Refused::Invalid(e))) => form_page(cx, &f, old, Some(e)),
        Err(e) => cx.failure(&e),
    }
}

pub fn confirm_delete(cx: &mut Ctx, id: i64) -> Resp {
    let lang = cx.lang;
    let t = match store::machine_type(cx.db, id) {
        Ok(Some(t)) => t,
        Ok(None) => return cx.not_found(),
        Err(e) => return cx.failure(&e),
    };
    if t.machines > 0 {
        return in_use(cx, &t);
    }
    let title = format!("{} {}?", tr(lang, "Delete machine type"), t.name);
    confirm_page(
        cx,
        &title,
        "/machines",
        &[],
        &format!("/machine-types/{id}/delete"),
        "/machine-types",
    )
}

/// Refuses to delete a type machines still use, saying how many (409).
fn in_use(cx: &Ctx, t: &MachineTypeRow) -> Resp {
    let lang = cx.lang;
    let msg = format!(
        "{} {} {}",
        tr(lang, "This type cannot be deleted: machines using it:"),
        t.machines,
        tr(lang, "(give them another type first).")
    );
    let body = html! {
        h1 { (t.name) }
        (notice("error", &msg))
        p { a href="/machines" { (tr(lang, "Machines")) } " · " a href="/machine-types" { (tr(lang, "Machine types")) } }
    };
    cx.page(&t.name, "/machines", body).status(409)
}

pub fn delete(cx: &mut Ctx, id: i64) -> Resp {
    let deleted = write(cx.db, |tx| Ok(found(store::delete_machine_type(tx, id)?)));
    match deleted {
        Ok(Ok(())) => Resp::redirect("/machine-types?ok=deleted"),
        // Gone, or machines still use it.
        Ok(Err(_)) => match store::machine_type(cx.db, id) {
            Ok(Some(t)) => in_use(cx, &t),
            Ok(None) => cx.not_found(),
            Err(e) => cx.failure(&e),
        },
        Err(e) => cx.failure(&e),
    }
}
