//! Authorizations: which members may use which machine. Per machine
//! (`/authorizations?machine=N`: who holds one, grant, revoke), bulk grant (one machine,
//! many members), and the grant/revoke buttons of the member page. Whether an
//! authorization is needed at all is `lab`'s rule; these pages only say so.

use super::common::{self, parse_id, refusal, subnav, yes_no, NAV};
use crate::store::{self, Machine, MemberChoice};
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use crate::web::pages::write;
use crate::web::pages::Ctx;
use maud::{html, Markup};
use std::collections::HashSet;

/// `/authorizations`: machines with how many members are authorized, or one machine's
/// page with `?machine=N`.
pub fn overview(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let param = cx.req.param("machine");
    if !param.is_empty() {
        return match parse_id(param) {
            Some(id) => machine_page(cx, id),
            None => cx.not_found(),
        };
    }
    let machines = match store::machine_auth_counts(cx.db) {
        Ok(m) => m,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        (subnav(lang, "/authorizations"))
        div.titlebar {
            h1 { (tr(lang, "Authorizations")) }
            a.button href="/authorizations/bulk" { (tr(lang, "Bulk grant")) }
        }
        @if let Some(ok) = common::ok_notice(lang, cx.req) { (ok) }
        @if machines.is_empty() { p.muted { (tr(lang, "No machines yet.")) } }
        @else {
            div.scroll { table {
                thead { tr {
                    th { (tr(lang, "Machine")) } th { (tr(lang, "Type")) }
                    th { (tr(lang, "Needs authorization")) } th { (tr(lang, "Authorized members")) }
                } }
                tbody {
                    @for m in &machines {
                        tr {
                            td {
                                a href={"/authorizations?machine=" (m.id)} { (m.name) }
                                @if m.blocked { " " span.badge.blocked { (tr(lang, "blocked")) } }
                            }
                            td { (m.type_name.as_deref().unwrap_or("—")) }
                            td { (yes_no(lang, !m.access_open)) }
                            td { (m.authorized) }
                        }
                    }
                }
            } }
        }
    };
    cx.page(tr(lang, "Authorizations"), NAV, body)
}

/// The machine, or the 404 page.
fn machine_or_404(cx: &Ctx, id: i64) -> Result<Machine, Resp> {
    match store::machine(cx.db, id) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(cx.not_found()),
        Err(e) => Err(cx.failure(&e)),
    }
}

/// Notes on what an authorization means for this machine (rules are `lab::may_use`).
fn machine_notes(lang: Lang, m: &Machine, all_roles: &[String]) -> Markup {
    html! {
        @if m.access_open {
            (notice("info", tr(lang, "Machines of this type need no authorization: every active member may use it.")))
        }
        @if m.blocked {
            (notice("info", tr(lang, "This machine is blocked: only roles that may use all machines can start it.")))
        }
        @if !all_roles.is_empty() {
            p.muted { (tr(lang, "Roles that may use all machines without an authorization:")) " " (all_roles.join(", ")) }
        }
    }
}

fn all_machine_roles(cx: &Ctx) -> store::Result<Vec<String>> {
    Ok(store::roles(cx.db)?
        .into_iter()
        .filter(|r| r.authorize_all)
        .map(|r| r.name)
        .collect())
}

fn machine_page(cx: &mut Ctx, id: i64) -> Resp {
    let lang = cx.lang;
    let machine = match machine_or_404(cx, id) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let (members, all_roles) = match store::member_choices(cx.db, id)
        .and_then(|m| all_machine_roles(cx).map(|r| (m, r)))
    {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let (authorized, others): (Vec<&MemberChoice>, Vec<&MemberChoice>) =
        members.iter().partition(|m| m.authorized);
    let csrf = cx.csrf();
    let body = html! {
        (subnav(lang, "/authorizations"))
        div.titlebar {
            h1 { (tr(lang, "Authorizations")) ": " (machine.name) }
            a.button href={"/authorizations/bulk?machine=" (id)} { (tr(lang, "Bulk grant")) }
        }
        @if let Some(ok) = common::ok_notice(lang, cx.req) { (ok) }
        (machine_notes(lang, &machine, &all_roles))
        @if !others.is_empty() {
            form.inline-form method="post" action="/authorizations/grant" {
                (csrf_field(csrf))
                input type="hidden" name="machine" value=(id);
                input type="hidden" name="back" value="machine";
                label { (tr(lang, "Grant to"))
                    select name="member" required {
                        option value="" { "—" }
                        @for m in &others { option value=(m.id) { (m.name) @if let Some(c) = &m.card_uid { " · " (c) } } }
                    }
                }
                button type="submit" { (tr(lang, "Grant")) }
            }
        }
        h2 { (tr(lang, "Authorized members")) " (" (authorized.len()) ")" }
        @if authorized.is_empty() { p.muted { (tr(lang, "Nobody holds an authorization for this machine.")) } }
        @else {
            div.scroll { table {
                thead { tr { th { (tr(lang, "Name")) } th { (tr(lang, "Card")) } th { (tr(lang, "Role")) } th {} } }
                tbody {
                    @for m in &authorized {
                        tr {
                            td {
                                a href={"/members/" (m.id)} { (m.name) }
                                @if m.disabled { " " span.badge.blocked { (tr(lang, "disabled")) } }
                            }
                            td { @if let Some(c) = &m.card_uid { code { (c) } } }
                            td { (m.role) }
                            td {
                                form.inline method="post" action="/authorizations/revoke" {
                                    (csrf_field(csrf))
                                    input type="hidden" name="member" value=(m.id);
                                    input type="hidden" name="machine" value=(id);
                                    input type="hidden" name="back" value="machine";
                                    button.small.secondary type="submit" { (tr(lang, "Revoke")) }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    cx.page(tr(lang, "Authorizations"), NAV, body)
}

/// Where to go after a grant or revoke: the member page or the machine page (never a
/// URL from the form).
fn back_to(cx: &Ctx, member: i64, machine: i64, ok: &str) -> Resp {
    if cx.req.field("back") == "member" {
        Resp::redirect(&format!("/members/{member}?ok={ok}#machines"))
    } else {
        Resp::redirect(&format!("/authorizations?machine={machine}&ok={ok}"))
    }
}

/// The (member, machine) pair of a grant/revoke form, both existing and the member not
/// deleted; otherwise the response to send.
fn pair(cx: &Ctx) -> Result<(i64, i64), Resp> {
    let lang = cx.lang;
    let (Some(member), Some(machine)) = (
        parse_id(cx.req.field("member")),
        parse_id(cx.req.field("machine")),
    ) else {
        let text = tr(lang, "Choose a member and a machine.");
        return Err(refusal(
            cx,
            400,
            tr(lang, "Authorizations"),
            text,
            "/authorizations",
        ));
    };
    machine_or_404(cx, machine)?;
    match store::member_row(cx.db, member) {
        Ok(Some(m)) if !m.deleted => Ok((member, machine)),
        Ok(Some(_)) => {
            let text = tr(
                lang,
                "This member was deleted; only their anonymised history remains.",
            );
            Err(refusal(
                cx,
                400,
                tr(lang, "Authorizations"),
                text,
                "/authorizations",
            ))
        }
        Ok(None) => Err(cx.not_found()),
        Err(e) => Err(cx.failure(&e)),
    }
}

pub fn grant(cx: &mut Ctx) -> Resp {
    let (member, machine) = match pair(cx) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    match write(cx.db, |tx| {
        Ok(Ok::<_, ()>(store::insert_authorization(
            tx, member, machine,
        )?))
    }) {
        Ok(_) => {
            log::info!("panel: authorized member {member} on machine {machine}");
            back_to(cx, member, machine, "granted")
        }
        Err(e) => cx.failure(&e),
    }
}

pub fn revoke(cx: &mut Ctx) -> Resp {
    let (member, machine) = match pair(cx) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    match write(cx.db, |tx| {
        Ok(Ok::<_, ()>(store::delete_authorization(
            tx, member, machine,
        )?))
    }) {
        Ok(_) => {
            log::info!("panel: revoked member {member} on machine {machine}");
            back_to(cx, member, machine, "revoked")
        }
        Err(e) => cx.failure(&e),
    }
}

/// `/authorizations/bulk`: pick a machine, then tick members.
pub fn bulk_form(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let param = cx.req.param("machine");
    let chosen = if param.is_empty() {
        None
    } else {
        match parse_id(param).map(|id| machine_or_404(cx, id)) {
            Some(Ok(m)) => Some(m),
            Some(Err(resp)) => return resp,
            None => return cx.not_found(),
        }
    };
    let gathered = (|| {
        let machines = store::machines(cx.db)?;
        let members = match &chosen {
            Some(m) => store::member_choices(cx.db, m.id)?,
            None => Vec::new(),
        };
        Ok::<_, store::Error>((machines, members, all_machine_roles(cx)?))
    })();
    let (machines, members, all_roles) = match gathered {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let csrf = cx.csrf();
    let body = html! {
        (subnav(lang, "/authorizations"))
        h1 { (tr(lang, "Bulk grant")) }
        p.muted { (tr(lang, "One machine, many members: members who already hold the authorization are skipped.")) }
        form.filters method="get" action="/authorizations/bulk" {
            label { (tr(lang, "Machine"))
                select name="machine" {
                    @for m in &machines {
                        option value=(m.id) selected[chosen.as_ref().is_some_and(|c| c.id == m.id)] { (m.name) }
                    }
                }
            }
            button.secondary type="submit" { (tr(lang, "Choose")) }
        }
        @if let Some(machine) = &chosen {
            (machine_notes(lang, machine, &all_roles))
            form.stack method="post" action="/authorizations/bulk" {
                (csrf_field(csrf))
                input type="hidden" name="machine" value=(machine.id);
                div.scroll { table {
                    thead { tr { th {} th { (tr(lang, "Name")) } th { (tr(lang, "Card")) } th { (tr(lang, "Role")) } } }
                    tbody {
                        @for m in &members {
                            tr {
                                td { input type="checkbox" name="member" value=(m.id) id={"m" (m.id)}
                                        checked[m.authorized] disabled[m.authorized]; }
                                td {
                                    label.plain for={"m" (m.id)} { (m.name) }
                                    @if m.disabled { " " span.badge.blocked { (tr(lang, "disabled")) } }
                                    @if m.authorized { " " span.badge.free { (tr(lang, "authorized")) } }
                                }
                                td { @if let Some(c) = &m.card_uid { code { (c) } } }
                                td { (m.role) }
                            }
                        }
                    }
                } }
                div.actions {
                    button type="submit" { (tr(lang, "Grant to the ticked members")) }
                    button.secondary type="submit" name="all" value="1" { (tr(lang, "Grant to everyone listed")) }
                }
            }
        }
    };
    cx.page(tr(lang, "Bulk grant"), NAV, body)
}

pub fn bulk_grant(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let Some(machine) = parse_id(cx.req.field("machine")) else {
        let text = tr(lang, "Choose a member and a machine.");
        return refusal(
            cx,
            400,
            tr(lang, "Bulk grant"),
            text,
            "/authorizations/bulk",
        );
    };
    if let Err(resp) = machine_or_404(cx, machine) {
        return resp;
    }
    let everyone = common::checked(cx.req, "all");
    let mut wanted = HashSet::new();
    for v in cx.req.fields("member") {
        match parse_id(v) {
            Some(id) => {
                wanted.insert(id);
            }
            None => {
                let text = tr(lang, "Choose a member and a machine.");
                let back = format!("/authorizations/bulk?machine={machine}");
                return refusal(cx, 400, tr(lang, "Bulk grant"), text, &back);
            }
        }
    }
    let added = write(cx.db, |tx| {
        let mut added = 0;
        // Only members the page could list: not deleted, not yet authorized.
        for m in store::member_choices(tx, machine)? {
            if !m.authorized && (everyone || wanted.contains(&m.id)) {
                added += i64::from(store::insert_authorization(tx, m.id, machine)?);
            }
        }
        Ok(Ok::<_, ()>(added))
    });
    match added {
        Ok(Ok(n)) => {
            log::info!("panel: bulk grant on machine {machine}: {n} new authorizations");
            Resp::redirect(&format!("/authorizations?machine={machine}&ok=bulk&n={n}"))
        }
        Ok(Err(())) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}
