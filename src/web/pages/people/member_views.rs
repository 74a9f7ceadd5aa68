//! Member pages as markup: the list with its filters, the form, the member page, the
//! delete confirmation and the one-time password. Plain values in, `Markup` out: no I/O,
//! no request; maud escapes everything spliced in.

use super::common::{decision_text, hours, pager, query_string, subnav, yes_no};
use crate::lab::Decision;
use crate::store::{MemberListRow, MemberRow, MemberState, MemberUse, RoleRow};
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use crate::web::time;
use jiff::tz::TimeZone;
use maud::{html, Markup};

/// What the list page shows.
pub struct ListView<'a> {
    pub lang: Lang,
    pub tz: &'a TimeZone,
    pub text: &'a str,
    pub role_id: Option<i64>,
    pub state: MemberState,
    pub card: &'a str,
    pub roles: &'a [RoleRow],
    pub rows: &'a [MemberListRow],
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    /// Cards refused recently that belong to nobody.
    pub unknown: usize,
    pub ok: Option<Markup>,
}

fn state_badge(lang: Lang, m: &MemberRow) -> Markup {
    html! {
        @if m.deleted { span.badge.offline { (tr(lang, "deleted")) } }
        @else if m.disabled { span.badge.blocked { (tr(lang, "disabled")) } }
        @else { span.badge.free { (tr(lang, "active")) } }
    }
}

pub fn list(v: &ListView) -> Markup {
    let lang = v.lang;
    let role = v.role_id.map(|r| r.to_string()).unwrap_or_default();
    let query = query_string(&[
        ("q", v.text),
        ("role", &role),
        ("state", v.state.code()),
        ("card", v.card),
    ]);
    let states = [
        (MemberState::Current, tr(lang, "Not deleted")),
        (MemberState::Active, tr(lang, "Active")),
        (MemberState::Disabled, tr(lang, "Disabled")),
        (MemberState::Deleted, tr(lang, "Deleted")),
        (MemberState::All, tr(lang, "All")),
    ];
    let cards = [
        ("", tr(lang, "With or without card")),
        ("yes", tr(lang, "With a card")),
        ("no", tr(lang, "Without a card")),
    ];
    html! {
        (subnav(lang, "/members"))
        div.titlebar {
            h1 { (tr(lang, "Members")) }
            a.button href="/members/new" { "+ " (tr(lang, "Add member")) }
        }
        @if let Some(ok) = &v.ok { (ok) }
        @if v.unknown > 0 {
            p.notice.info {
                (tr(lang, "Cards refused recently that belong to nobody:")) " " (v.unknown) ". "
                a href="/unknown-cards" { (tr(lang, "Turn them into members")) }
            }
        }
        form.filters method="get" action="/members" {
            label { (tr(lang, "Search"))
                input type="search" name="q" value=(v.text) maxlength="100"
                    placeholder=(tr(lang, "name, surname, email or card")); }
            label { (tr(lang, "Role"))
                select name="role" {
                    option value="" { (tr(lang, "All roles")) }
                    @for r in v.roles {
                        option value=(r.id) selected[v.role_id == Some(r.id)] { (r.name) }
                    }
                }
            }
            label { (tr(lang, "State"))
                select name="state" {
                    @for (s, label) in states {
                        option value=(s.code()) selected[v.state == s] { (label) }
                    }
                }
            }
            label { (tr(lang, "Card"))
                select name="card" {
                    @for (code, label) in cards {
                        option value=(code) selected[v.card == code] { (label) }
                    }
                }
            }
            button type="submit" { (tr(lang, "Filter")) }
        }
        p.muted { (tr(lang, "Members found:")) " " (v.total) }
        @if !v.rows.is_empty() {
            div.scroll {
                table.members {
                    thead { tr {
                        th { (tr(lang, "Name")) } th { (tr(lang, "Role")) } th { (tr(lang, "Card")) }
                        th { (tr(lang, "Email")) } th { (tr(lang, "State")) } th { (tr(lang, "Last use")) }
                    } }
                    tbody {
                        @for r in v.rows {
                            @let m = &r.member;
                            tr {
                                td { a href={"/members/" (m.id)} { (m.full_name()) } }
                                td { (m.role) }
                                td { @if let Some(c) = &m.card_uid { code { (c) } } }
                                td { (m.email.as_deref().unwrap_or("")) }
                                td { (state_badge(lang, m)) }
                                td { @if let Some(t) = r.last_use { (time::datetime(v.tz, t)) } }
                            }
                        }
                    }
                }
            }
        }
        (pager(lang, "/members", &query, v.page, v.pages))
    }
}

/// The member form as typed (strings, so a refused form comes back as it was sent).
#[derive(Debug, Clone, Default)]
pub struct MemberForm {
    pub name: String,
    pub surname: String,
    pub email: String,
    pub card: String,
    /// Role id as sent.
    pub role: String,
    pub disabled: bool,
    pub weekly_summary: bool,
    /// "", "en" or "it".
    pub language: String,
}

/// The messages for one field.
fn field_problems(problems: &[(&'static str, String)], field: &str) -> Markup {
    html! {
        @for (f, text) in problems {
            @if *f == field { span.field-error { (text) } }
        }
    }
}

pub fn form(
    lang: Lang,
    csrf: &str,
    editing: Option<&MemberRow>,
    roles: &[RoleRow],
    f: &MemberForm,
    problems: &[(&'static str, String)],
) -> Markup {
    let (title, action, back) = match editing {
        Some(m) => (
            tr(lang, "Edit member"),
            format!("/members/{}/edit", m.id),
            format!("/members/{}", m.id),
        ),
        None => (
            tr(lang, "Add member"),
            "/members/new".into(),
            "/members".into(),
        ),
    };
    let bad = |field: &str| problems.iter().any(|(f, _)| *f == field);
    let languages = [
        ("", tr(lang, "The browser's")),
        ("en", "English"),
        ("it", "Italiano"),
    ];
    html! {
        (subnav(lang, "/members"))
        div.panel.form-panel {
            h1 { (title) @if let Some(m) = editing { ": " (m.full_name()) } }
            @if !problems.is_empty() {
                div.notice.error role="alert" {
                    (tr(lang, "Please correct the following:"))
                    ul { @for (_, text) in problems { li { (text) } } }
                }
            }
            form.stack method="post" action=(action) {
                (csrf_field(csrf))
                label { (tr(lang, "Name"))
                    input name="name" value=(f.name) required maxlength="100" aria-invalid=[bad("name").then_some("true")];
                    (field_problems(problems, "name")) }
                label { (tr(lang, "Surname"))
                    input name="surname" value=(f.surname) maxlength="100" aria-invalid=[bad("surname").then_some("true")];
                    (field_problems(problems, "surname")) }
                label { (tr(lang, "Email"))
                    input type="email" name="email" value=(f.email) maxlength="254" aria-invalid=[bad("email").then_some("true")];
                    (field_problems(problems, "email")) }
                label { (tr(lang, "Card UID"))
                    input name="card" value=(f.card) maxlength="32" autocomplete="off" spellcheck="false"
                        placeholder="aabbccd1" aria-invalid=[bad("card").then_some("true")];
                    span.hint { (tr(lang, "Hexadecimal as the boards read it; leave empty for no card.")) }
                    (field_problems(problems, "card")) }
                label { (tr(lang, "Role"))
                    select name="role" aria-invalid=[bad("role").then_some("true")] {
                        @if roles.iter().all(|r| r.id.to_string() != f.role) { option value="" { "—" } }
                        @for r in roles {
                            option value=(r.id) selected[r.id.to_string() == f.role] { (r.name) }
                        }
                    }
                    (field_problems(problems, "role")) }
                label { (tr(lang, "Panel language"))
                    select name="language" {
                        @for (code, label) in languages {
                            option value=(code) selected[f.language == code] { (label) }
                        }
                    }
                    (field_problems(problems, "language")) }
                label.check {
                    input type="checkbox" name="weekly_summary" checked[f.weekly_summary];
                    span { (tr(lang, "Receives the weekly summary by email")) }
                }
                (field_problems(problems, "weekly_summary"))
                label.check {
                    input type="checkbox" name="disabled" checked[f.disabled];
                    span { (tr(lang, "Disabled: the card opens no machine")) }
                }
                (field_problems(problems, "disabled"))
                div.actions {
                    button type="submit" { (tr(lang, "Save")) }
                    a.button.secondary href=(back) { (tr(lang, "Cancel")) }
                }
            }
        }
    }
}

/// A machine on the member page: authorization and what the boards will answer.
pub struct MachineAccess {
    pub id: i64,
    pub name: String,
    pub authorized: bool,
    pub access_open: bool,
    /// `lab::may_use` for this member (None when the member's role is missing).
    pub decision: Option<Decision>,
}

/// Everything the member page shows.
pub struct Detail {
    pub member: MemberRow,
    pub language: Option<String>,
    /// The role may log into the panel.
    pub panel_role: bool,
    pub machines: Vec<MachineAccess>,
    pub uses: Vec<MemberUse>,
    pub total_s: i64,
    pub month_s: i64,
    pub uses_count: i64,
    pub interventions: i64,
}

pub fn detail(
    lang: Lang,
    csrf: &str,
    tz: &TimeZone,
    now: i64,
    is_me: bool,
    notices: &[Markup],
    d: &Detail,
) -> Markup {
    let m = &d.member;
    let language = match d.language.as_deref() {
        Some("en") => "English",
        Some("it") => "Italiano",
        _ => tr(lang, "The browser's"),
    };
    html! {
        (subnav(lang, "/members"))
        div.titlebar {
            h1 { (m.full_name()) " " (state_badge(lang, m)) }
        }
        @for n in notices { (n) }
        @if m.deleted {
            (notice("info", tr(lang, "This member was deleted; only their anonymised history remains.")))
        } @else {
            div.actions {
                a.button href={"/members/" (m.id) "/edit"} { (tr(lang, "Edit")) }
                @if !is_me {
                    @if m.disabled {
                        form.inline method="post" action={"/members/" (m.id) "/enable"} {
                            (csrf_field(csrf)) button.secondary type="submit" { (tr(lang, "Enable")) }
                        }
                    } @else {
                        form.inline method="post" action={"/members/" (m.id) "/disable"} {
                            (csrf_field(csrf)) button.secondary type="submit" { (tr(lang, "Disable")) }
                        }
                    }
                    @if d.panel_role {
                        form.inline method="post" action={"/members/" (m.id) "/password"} {
                            (csrf_field(csrf))
                            button.secondary type="submit" { (tr(lang, "New one-time password")) }
                        }
                    }
                    a.button.danger href={"/members/" (m.id) "/delete"} { (tr(lang, "Delete")) }
                }
            }
            @if d.panel_role && m.email.is_none() {
                (notice("info", tr(lang, "This member's role may log into the panel, but without an email address they cannot.")))
            }
        }
        section.facts {
            dl {
                dt { (tr(lang, "Role")) } dd { (m.role) }
                dt { (tr(lang, "Card UID")) } dd { @match &m.card_uid { Some(c) => code { (c) }, None => span.muted { (tr(lang, "none")) } } }
                dt { (tr(lang, "Email")) } dd { (m.email.as_deref().unwrap_or("—")) }
                dt { (tr(lang, "Panel language")) } dd { (language) }
                dt { (tr(lang, "Weekly summary")) } dd { (yes_no(lang, m.weekly_summary)) }
                dt { (tr(lang, "Panel access")) } dd {
                    @if !d.panel_role { (tr(lang, "no (role)")) }
                    @else if m.has_password { (tr(lang, "yes")) }
                    @else { (tr(lang, "no password yet")) }
                }
                dt { (tr(lang, "Member since")) } dd { (time::datetime(tz, m.created_at)) }
            }
            div.counters {
                div.counter { b { (hours(d.total_s)) } span { (tr(lang, "Total hours")) } }
                div.counter { b { (hours(d.month_s)) } span { (tr(lang, "Hours this month")) } }
                div.counter { b { (d.uses_count) } span { (tr(lang, "Uses")) } }
            }
        }
        h2 id="machines" { (tr(lang, "Machines")) }
        @if d.machines.is_empty() { p.muted { (tr(lang, "No machines yet.")) } }
        @else {
            div.scroll { table {
                thead { tr {
                    th { (tr(lang, "Machine")) } th { (tr(lang, "Authorization")) }
                    th { (tr(lang, "At the machine now")) } th {}
                } }
                tbody {
                    @for a in &d.machines {
                        tr {
                            td { a href={"/authorizations?machine=" (a.id)} { (a.name) } }
                            td {
                                @if a.authorized { span.badge.free { (tr(lang, "authorized")) } }
                                @else if a.access_open { span.muted { (tr(lang, "not needed")) } }
                                @else { span.muted { (tr(lang, "not authorized")) } }
                            }
                            td { @if let Some(dec) = a.decision {
                                span class=(if matches!(dec, Decision::Allowed(_)) { "ok-text" } else { "bad-text" }) {
                                    (decision_text(lang, dec))
                                }
                            } }
                            td { @if !m.deleted { (grant_button(lang, csrf, m.id, a)) } }
                        }
                    }
                }
            } }
        }
        h2 { (tr(lang, "Recent uses")) }
        @if d.uses.is_empty() { p.muted { (tr(lang, "No uses yet.")) } }
        @else {
            div.scroll { table {
                thead { tr {
                    th { (tr(lang, "Machine")) } th { (tr(lang, "Start")) } th { (tr(lang, "Duration")) }
                } }
                tbody {
                    @for u in &d.uses {
                        tr {
                            td { a href={"/machines/" (u.machine_id)} { (u.machine) } }
                            td {
                                (time::datetime(tz, u.start))
                                @if u.replay { " " span.badge.offline title=(tr(lang, "Sent late by the board from its offline memory")) { (tr(lang, "replayed")) } }
                            }
                            td { @match u.end {
                                Some(end) => (time::duration(end - u.start)),
                                None => { span.badge.busy { (tr(lang, "in use")) } " " (time::duration(now - u.start)) }
                            } }
                        }
                    }
                }
            } }
            @if d.uses_count > d.uses.len() as i64 {
                p { a href={"/uses?member=" (m.id)} { (tr(lang, "All uses of this member")) " →" } }
            }
        }
        @if d.interventions > 0 {
            p.muted { (tr(lang, "Maintenance interventions signed:")) " " (d.interventions) }
        }
    }
}

fn grant_button(lang: Lang, csrf: &str, member: i64, a: &MachineAccess) -> Markup {
    let (action, label) = if a.authorized {
        ("/authorizations/revoke", tr(lang, "Revoke"))
    } else {
        ("/authorizations/grant", tr(lang, "Grant"))
    };
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(csrf))
            input type="hidden" name="member" value=(member);
            input type="hidden" name="machine" value=(a.id);
            input type="hidden" name="back" value="member";
            button.small.secondary type="submit" { (label) }
        }
    }
}

pub fn delete_confirm(
    lang: Lang,
    csrf: &str,
    m: &MemberRow,
    (uses, interventions): (i64, i64),
) -> Markup {
    html! {
        (subnav(lang, "/members"))
        div.panel.form-panel {
            h1 { (tr(lang, "Delete member")) ": " (m.full_name()) }
            p { (tr(lang, "Deleting a member keeps the lab's history but removes the person from it:")) }
            ul {
                li { (tr(lang, "the name becomes Deleted member; surname, email, card and panel password are removed;")) }
                li { (tr(lang, "their authorizations are removed and any panel session ends;")) }
                li { (tr(lang, "their card becomes unknown to the boards and can be given to someone else;")) }
                li { (tr(lang, "their uses and maintenance interventions stay in the history, anonymised:")) " "
                    (uses) " / " (interventions) "." }
            }
            p { strong { (tr(lang, "This cannot be undone.")) } }
            form.stack method="post" action={"/members/" (m.id) "/delete"} {
                (csrf_field(csrf))
                div.actions {
                    button.danger type="submit" { (tr(lang, "Delete member")) }
                    a.button.secondary href={"/members/" (m.id)} { (tr(lang, "Cancel")) }
                }
            }
        }
    }
}

pub fn password_shown(lang: Lang, m: &MemberRow, password: &str) -> Markup {
    html! {
        (subnav(lang, "/members"))
        div.panel.form-panel {
            h1 { (tr(lang, "Panel password")) ": " (m.full_name()) }
            (notice("ok", tr(lang, "A one-time password was set. It is shown only now: give it to the member.")))
            dl {
                dt { (tr(lang, "Log in with")) } dd { (m.email.as_deref().unwrap_or("")) }
                dt { (tr(lang, "One-time password")) } dd { code.secret { (password) } }
            }
            p.muted { (tr(lang, "They must choose a new password when they first log in. Their open sessions have ended.")) }
            p { a.button.secondary href={"/members/" (m.id)} { "← " (tr(lang, "Back")) } }
        }
    }
}
