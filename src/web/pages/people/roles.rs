//! Roles: the list with their capability flags and members, add, edit, delete. Reserved
//! roles (FabOMatic's `reserved`) cannot be changed or deleted, a role someone holds
//! cannot be deleted, and staff cannot take the panel away from their own role.

use super::common::{checked, invalid, ok_notice, refusal, subnav, yes_no, NAV};
use crate::store::{self, NewRole, RoleRow};
use crate::validate;
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use crate::web::pages::write;
use crate::web::pages::Ctx;
use maud::{html, Markup};

/// The role form as typed.
#[derive(Debug, Clone, Default)]
struct RoleForm {
    name: String,
    authorize_all: bool,
    maintenance: bool,
    /// What the panel allows (0 nothing, 1 viewer, 2 staff, 3 administrator).
    panel_level: i64,
}

impl RoleForm {
    fn from_row(r: &RoleRow) -> RoleForm {
        RoleForm {
            name: r.name.clone(),
            authorize_all: r.authorize_all,
            maintenance: r.maintenance,
            panel_level: r.panel_level,
        }
    }

    fn from_request(cx: &Ctx) -> RoleForm {
        RoleForm {
            name: cx.req.field("name").to_string(),
            authorize_all: checked(cx.req, "authorize_all"),
            maintenance: checked(cx.req, "maintenance"),
            // Older forms (and scripts) sent only the checkbox: that is staff.
            panel_level: match cx.req.field("panel_level").parse::<i64>() {
                Ok(l) => l.clamp(0, 3),
                Err(_) if checked(cx.req, "backend_admin") => 2,
                Err(_) => 0,
            },
        }
    }
}

pub fn list(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let roles = match store::roles(cx.db) {
        Ok(r) => r,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        (subnav(lang, "/roles"))
        div.titlebar {
            h1 { (tr(lang, "Roles")) }
            a.button href="/roles/new" { "+ " (tr(lang, "Add role")) }
        }
        @if let Some(ok) = ok_notice(lang, cx.req) { (ok) }
        div.scroll { table {
            thead { tr {
                th { (tr(lang, "Role")) }
                th { (tr(lang, "May use all machines")) }
                th { (tr(lang, "May sign off maintenance")) }
                th { (tr(lang, "May log into the panel")) }
                th { (tr(lang, "Members")) }
                th {}
            } }
            tbody {
                @for r in &roles {
                    tr {
                        td { (r.name) @if r.reserved { " " span.badge.offline { (tr(lang, "reserved")) } } }
                        td { (yes_no(lang, r.authorize_all)) }
                        td { (yes_no(lang, r.maintenance)) }
                        td { (level_name(lang, r.panel_level)) }
                        td { a href={"/members?role=" (r.id) "&state=all"} { (r.members) } }
                        td { @if !r.reserved {
                            a href={"/roles/" (r.id) "/edit"} { (tr(lang, "Edit")) } " · "
                            a href={"/roles/" (r.id) "/delete"} { (tr(lang, "Delete")) }
                        } }
                    }
                }
            }
        } }
        p.muted { (tr(lang, "Reserved roles come with the lab and cannot be changed or deleted.")) }
    };
    cx.page(tr(lang, "Roles"), NAV, body)
}

fn form_page(cx: &Ctx, editing: Option<&RoleRow>, f: &RoleForm, problem: Option<&str>) -> Resp {
    let lang = cx.lang;
    let (title, action) = match editing {
        Some(r) => (tr(lang, "Edit role"), format!("/roles/{}/edit", r.id)),
        None => (tr(lang, "Add role"), "/roles/new".to_string()),
    };
    let body = role_form(lang, cx.csrf(), title, &action, f, problem);
    let resp = cx.page(title, NAV, body);
    if problem.is_some() {
        resp.status(400)
    } else {
        resp
    }
}

fn role_form(
    lang: Lang,
    csrf: &str,
    title: &str,
    action: &str,
    f: &RoleForm,
    problem: Option<&str>,
) -> Markup {
    let flags = [
        (
            "authorize_all",
            f.authorize_all,
            tr(lang, "May use all machines"),
            tr(
                lang,
                "Level 2 on the boards: every machine, even blocked ones, without authorizations.",
            ),
        ),
        (
            "maintenance",
            f.maintenance,
            tr(lang, "May sign off maintenance"),
            tr(
                lang,
                "Their card can record a maintenance intervention on a board.",
            ),
        ),
    ];
    html! {
        (subnav(lang, "/roles"))
        div.panel.form-panel {
            h1 { (title) }
            @if let Some(p) = problem { (notice("error", p)) }
            form.stack method="post" action=(action) {
                (csrf_field(csrf))
                label { (tr(lang, "Name"))
                    input name="name" value=(f.name) required maxlength="100"; }
                @for (name, on, label, hint) in flags {
                    label.check {
                        input type="checkbox" name=(name) checked[on];
                        span { strong { (label) } br; span.hint { (hint) } }
                    }
                }
                label { (tr(lang, "May log into the panel"))
                    select name="panel_level" {
                        @for level in 0..=3 {
                            option value=(level) selected[f.panel_level == level] { (level_name(lang, level)) }
                        }
                    }
                    span.hint { (tr(lang, "Viewer: read-only screens. Staff: members, cards, machines, uses, maintenance, the register. Administrator: also settings, email, roles, backups and other staff's passwords.")) }
                }
                div.actions {
                    button type="submit" { (tr(lang, "Save")) }
                    a.button.secondary href="/roles" { (tr(lang, "Cancel")) }
                }
            }
        }
    }
}

/// A panel level as the roles page names it.
fn level_name(lang: Lang, level: i64) -> &'static str {
    match crate::web::access::Capability::from_level(level) {
        None => tr(lang, "no"),
        Some(crate::web::access::Capability::Viewer) => tr(lang, "viewer"),
        Some(crate::web::access::Capability::Staff) => tr(lang, "staff"),
        Some(crate::web::access::Capability::Administrator) => tr(lang, "administrator"),
    }
}

/// The role, if it exists and may be changed; otherwise the response to send.
fn changeable(cx: &Ctx, id: i64) -> Result<RoleRow, Resp> {
    match store::role(cx.db, id) {
        Ok(Some(r)) if !r.reserved => Ok(r),
        Ok(Some(_)) => Err(refusal(
            cx,
            403,
            tr(cx.lang, "Reserved role"),
            tr(
                cx.lang,
                "Reserved roles come with the lab and cannot be changed or deleted.",
            ),
            "/roles",
        )),
        Ok(None) => Err(cx.not_found()),
        Err(e) => Err(cx.failure(&e)),
    }
}

pub fn new_form(cx: &mut Ctx) -> Resp {
    form_page(cx, None, &RoleForm::default(), None)
}

pub fn edit_form(cx: &mut Ctx, id: i64) -> Resp {
    match changeable(cx, id) {
        Ok(r) => form_page(cx, Some(&r), &RoleForm::from_row(&r), None),
        Err(resp) => resp,
    }
}

/// Saves a new role (`editing` None) or changes one.
fn save(cx: &mut Ctx, editing: Option<RoleRow>) -> Resp {
    let lang = cx.lang;
    let f = RoleForm::from_request(cx);
    let me = cx.session.as_ref().map_or(0, |s| s.member_id);
    let own_role = match store::member(cx.db, me) {
        Ok(m) => m.map(|m| m.role_id),
        Err(e) => return cx.failure(&e),
    };
    let id = editing.as_ref().map(|r| r.id);
    let name = match validate::object_name("role name", &f.name) {
        Ok(n) => n,
        Err(e) => {
            let general = tr(
                lang,
                "Enter a role name of 1 to 100 characters, on one line, not only digits.",
            );
            let text = invalid(lang, e, general);
            return form_page(cx, editing.as_ref(), &f, Some(&text));
        }
    };
    if id.is_some() && id == own_role && f.panel_level < 3 {
        let text = tr(
            lang,
            "This is your own role: without May log into the panel you would lock yourself out.",
        );
        return form_page(cx, editing.as_ref(), &f, Some(text));
    }
    let role = NewRole {
        name: &name,
        authorize_all: f.authorize_all,
        maintenance: f.maintenance,
        backend_admin: f.panel_level > 0,
    };
    let outcome = write(cx.db, |tx| {
        if store::role_ids_by_name(tx, &name)?
            .iter()
            .any(|other| Some(*other) != id)
        {
            return Ok(Err(()));
        }
        let saved = match id {
            Some(id) => {
                store::update_role(tx, id, &role)?;
                id
            }
            None => store::insert_role(tx, &role)?,
        };
        store::set_role_panel_level(tx, saved, f.panel_level)?;
        Ok(Ok(saved))
    });
    match outcome {
        Ok(Ok(saved)) => {
            log::info!("panel: member {me} saved role {saved}");
            let ok = if id.is_some() {
                "role-saved"
            } else {
                "role-created"
            };
            Resp::redirect(&format!("/roles?ok={ok}"))
        }
        Ok(Err(())) => {
            let text = tr(lang, "Another role already has this name.");
            form_page(cx, editing.as_ref(), &f, Some(text))
        }
        Err(e) => cx.failure(&e),
    }
}

pub fn create(cx: &mut Ctx) -> Resp {
    save(cx, None)
}

pub fn update(cx: &mut Ctx, id: i64) -> Resp {
    match changeable(cx, id) {
        Ok(r) => save(cx, Some(r)),
        Err(resp) => resp,
    }
}

pub fn delete_form(cx: &mut Ctx, id: i64) -> Resp {
    let r = match changeable(cx, id) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if r.members > 0 {
        return in_use(cx, &r, 200);
    }
    let lang = cx.lang;
    let body = html! {
        (subnav(lang, "/roles"))
        div.panel.form-panel {
            h1 { (tr(lang, "Delete role")) ": " (r.name) }
            p { (tr(lang, "Nobody holds this role. Deleting it cannot be undone.")) }
            form.stack method="post" action={"/roles/" (r.id) "/delete"} {
                (csrf_field(cx.csrf()))
                div.actions {
                    button.danger type="submit" { (tr(lang, "Delete role")) }
                    a.button.secondary href="/roles" { (tr(lang, "Cancel")) }
                }
            }
        }
    };
    cx.page(tr(lang, "Delete role"), NAV, body)
}

/// The role is held by someone: say by how many, and where to find them.
fn in_use(cx: &Ctx, r: &RoleRow, status: u16) -> Resp {
    let lang = cx.lang;
    let text = format!(
        "{} {}. {}",
        tr(lang, "Members holding this role:"),
        r.members,
        tr(
            lang,
            "Give them another role before deleting it (deleted members count too)."
        )
    );
    let back = format!("/members?role={}&state=all", r.id);
    refusal(cx, status, tr(lang, "Delete role"), &text, &back)
}

pub fn delete(cx: &mut Ctx, id: i64) -> Resp {
    if let Err(resp) = changeable(cx, id) {
        return resp;
    }
    let deleted = write(cx.db, |tx| {
        Ok(if store::delete_role(tx, id)? {
            Ok(())
        } else {
            Err(())
        })
    });
    match deleted {
        Ok(Ok(())) => {
            log::info!("panel: role {id} deleted");
            Resp::redirect("/roles?ok=role-deleted")
        }
        // Someone was given the role since the page was shown: count again.
        Ok(Err(())) => match store::role(cx.db, id) {
            Ok(Some(now)) => in_use(cx, &now, 400),
            Ok(None) => cx.not_found(),
            Err(e) => cx.failure(&e),
        },
        Err(e) => cx.failure(&e),
    }
}
