//! Usage history (`/uses`): filtered by member, machine and dates (GET parameters that
//! the page links and the export links carry), open sessions highlighted, replayed
//! records marked, pages of `PAGE_SIZE`; and manual add / correct / delete of a use, with
//! the machine's hours kept consistent by `lab` in the same transaction.

use super::{
    confirm_page, flash, hours, local_input, machine_options, member_options, num, pager,
    parse_day, parse_day_end, parse_local, query, select, write, Checked, Ctx, Outcome, Refused,
};
use crate::lab::{self, UseEntry};
use crate::store::{self, UseQuery, UseRow};
use crate::web::http::Resp;
use crate::web::i18n::tr;
use crate::web::layout::{csrf_field, notice};
use crate::web::time;
use maud::{html, Markup};

/// Uses per page: a phone screen or two.
const PAGE_SIZE: i64 = 50;

/// The history filters as given in the URL, and what they mean.
pub(super) struct Filters {
    pub member: Option<i64>,
    pub machine: Option<i64>,
    pub from: String,
    pub to: String,
    pub query: UseQuery,
    /// A date that could not be read.
    pub bad_date: bool,
}

impl Filters {
    pub fn from_req(cx: &Ctx) -> Filters {
        let member = num(cx.req.param("member"));
        let machine = num(cx.req.param("machine"));
        let from = cx.req.param("from").to_string();
        let to = cx.req.param("to").to_string();
        let day = |s: &str, f: fn(&jiff::tz::TimeZone, &str) -> Option<i64>| {
            if s.is_empty() {
                (None, false)
            } else {
                let t = f(&cx.tz, s);
                (t, t.is_none())
            }
        };
        let (start, bad_from) = day(&from, parse_day);
        let (end, bad_to) = day(&to, parse_day_end);
        Filters {
            member,
            machine,
            query: UseQuery {
                member_id: member,
                machine_id: machine,
                from: start,
                to: end,
            },
            from,
            to,
            bad_date: bad_from || bad_to,
        }
    }

    /// The filters as `key=value&` pairs, for page and export links.
    pub fn query_string(&self) -> String {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        query(&[
            ("member", self.member.map(|m| m.to_string())),
            ("machine", self.machine.map(|m| m.to_string())),
            ("from", opt(&self.from)),
            ("to", opt(&self.to)),
        ])
    }
}

pub fn list(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let f = Filters::from_req(cx);
    let gathered = store::count_uses(cx.db, &f.query).and_then(|total| {
        let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
        let page = cx
            .req
            .param("page")
            .parse::<i64>()
            .unwrap_or(1)
            .clamp(1, pages);
        let rows = store::use_page(cx.db, &f.query, PAGE_SIZE, (page - 1) * PAGE_SIZE)?;
        Ok((
            total,
            page,
            pages,
            rows,
            member_options(cx.db, lang)?,
            machine_options(cx.db)?,
        ))
    });
    let (total, page, pages, rows, members, machines) = match gathered {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let qs = f.query_string();
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let body = html! {
        h1 { (tr(lang, "Usage history")) }
        (flash(cx))
        @if f.bad_date { (notice("error", tr(lang, "A date could not be read and was ignored; use the form 2026-11-22."))) }
        form.filters method="get" action="/uses" {
            label { (tr(lang, "Member")) (select("member", &members, &opt(f.member), Some(tr(lang, "All")))) }
            label { (tr(lang, "Machine")) (select("machine", &machines, &opt(f.machine), Some(tr(lang, "All")))) }
            label { (tr(lang, "From")) input type="date" name="from" value=(f.from); }
            label { (tr(lang, "To")) input type="date" name="to" value=(f.to); }
            button type="submit" { (tr(lang, "Filter")) }
            a.button.secondary href="/uses" { (tr(lang, "Clear")) }
        }
        p.actions {
            span.count { (total) " " (tr(lang, "uses")) } " "
            a.button href="/uses/new" { (tr(lang, "Add a use")) } " "
            a.button.secondary href={"/exports/uses.csv?" (qs)} { "CSV" } " "
            a.button.secondary href={"/exports/uses.xlsx?" (qs)} { "XLSX" }
        }
        (table(cx, &rows, true))
        (pager(lang, &format!("/uses?{qs}"), page, pages))
    };
    cx.page(tr(lang, "Usage history"), "/uses", body)
}

/// Uses as a table; `actions` adds edit and delete links.
pub(super) fn table(cx: &Ctx, rows: &[UseRow], actions: bool) -> Markup {
    let lang = cx.lang;
    html! {
        @if rows.is_empty() { p.muted { (tr(lang, "No uses.")) } }
        @else { div.scroll { table.uses {
            thead { tr {
                th { (tr(lang, "Start")) } th { (tr(lang, "End")) } th.num { (tr(lang, "Duration")) }
                th { (tr(lang, "Member")) } th { (tr(lang, "Machine")) }
                @if actions { th {} }
            } }
            tbody { @for u in rows {
                tr.open[u.end.is_none()] {
                    td { (time::datetime(&cx.tz, u.start))
                        @if u.replay == Some(true) { " " span.badge.replay title=(tr(lang, "Sent late by the board from its offline buffer")) { (tr(lang, "replayed")) } } }
                    td { @match u.end {
                        Some(end) => (time::datetime(&cx.tz, end)),
                        None => span.badge.busy { (tr(lang, "open")) },
                    } }
                    td.num { (time::duration(u.end.unwrap_or(cx.now) - u.start)) }
                    td { (u.member) }
                    td { a href={"/machines/" (u.machine_id)} { (u.machine) } }
                    @if actions { td.actions {
                        a href={"/uses/" (u.id) "/edit"} { (tr(lang, "Correct")) } " · "
                        a href={"/uses/" (u.id) "/delete"} { (tr(lang, "Delete")) }
                    } }
                }
            } }
        } } }
    }
}

// ---------------------------------------------------------------------------------------
// Manual add / correct / delete

#[derive(Default)]
struct Form {
    member: String,
    machine: String,
    start: String,
    end: String,
}

impl Form {
    fn from_req(cx: &Ctx) -> Form {
        let f = |k| cx.req.field(k).to_string();
        Form {
            member: f("member"),
            machine: f("machine"),
            start: f("start"),
            end: f("end"),
        }
    }

    fn from_row(cx: &Ctx, u: &UseRow) -> Form {
        Form {
            member: u.member_id.to_string(),
            machine: u.machine_id.to_string(),
            start: local_input(&cx.tz, u.start),
            end: u.end.map(|e| local_input(&cx.tz, e)).unwrap_or_default(),
        }
    }

    fn check(&self, cx: &Ctx) -> Checked<UseEntry> {
        let lang = cx.lang;
        let member_id = num(&self.member).ok_or(tr(lang, "Choose a member."))?;
        let machine_id = num(&self.machine).ok_or(tr(lang, "Choose a machine."))?;
        let when = |s: &str| {
            parse_local(&cx.tz, s).ok_or(tr(lang, "Enter a date and time like 2026-11-22 14:03."))
        };
        let start = when(&self.start)?;
        let end = match self.end.as_str() {
            "" => None,
            s => Some(when(s)?),
        };
        Ok(UseEntry {
            member_id,
            machine_id,
            start,
            end,
        })
    }
}

fn form_page(cx: &Ctx, f: &Form, editing: Option<i64>, error: Option<String>) -> Resp {
    let lang = cx.lang;
    let options = member_options(cx.db, lang).and_then(|m| Ok((m, machine_options(cx.db)?)));
    let (members, machines) = match options {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let (title, action) = match editing {
        Some(id) => (tr(lang, "Correct a use"), format!("/uses/{id}/edit")),
        None => (tr(lang, "Add a use"), "/uses".to_string()),
    };
    let body = html! {
        h1 { (title) }
        div.panel.narrowish {
            @if let Some(e) = &error { (notice("error", e)) }
            p.muted { (tr(lang, "The machine's hours counter follows: a closed use adds its duration.")) }
            form.stack method="post" action=(action) {
                (csrf_field(cx.csrf()))
                label { (tr(lang, "Member")) (select("member", &members, &f.member, None)) }
                label { (tr(lang, "Machine")) (select("machine", &machines, &f.machine, None)) }
                label { (tr(lang, "Start")) input type="datetime-local" name="start" value=(f.start) required; }
                label { (tr(lang, "End (empty = still open)")) input type="datetime-local" name="end" value=(f.end); }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
    };
    let resp = cx.page(title, "/uses", body);
    if error.is_some() {
        resp.status(400)
    } else {
        resp
    }
}

pub fn new_form(cx: &mut Ctx) -> Resp {
    let f = Form {
        member: cx.req.param("member").to_string(),
        machine: cx.req.param("machine").to_string(),
        ..Form::default()
    };
    form_page(cx, &f, None, None)
}

pub fn edit_form(cx: &mut Ctx, id: i64) -> Resp {
    match store::use_row(cx.db, id) {
        Ok(Some(u)) => form_page(cx, &Form::from_row(cx, &u), Some(id), None),
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
    let entry = match f.check(cx) {
        Ok(e) => e,
        Err(msg) => return form_page(cx, &f, old, Some(msg)),
    };
    let saved = in_lab(cx, |lab| {
        let done = match old {
            None => lab::add_use(lab, &entry)?.map(|_| ()),
            Some(id) => match lab::correct_use(lab, id, &entry)? {
                Some(r) => r,
                None => return Ok(Err(Refused::Missing)),
            },
        };
        Ok(done.map_err(|p| tr(lang, p.describe()).into()))
    });
    match saved {
        Ok(Ok(())) => {
            let ok = if old.is_some() { "saved" } else { "added" };
            Resp::redirect(&format!("/uses?machine={}&ok={ok}", entry.machine_id))
        }
        Ok(Err(Refused::Missing)) => cx.not_found(),
        Ok(Err(Refused::Invalid(msg))) => form_page(cx, &f, old, Some(msg)),
        Err(e) => cx.failure(&e),
    }
}

pub fn confirm_delete(cx: &mut Ctx, id: i64) -> Resp {
    let lang = cx.lang;
    let u = match store::use_row(cx.db, id) {
        Ok(Some(u)) => u,
        Ok(None) => return cx.not_found(),
        Err(e) => return cx.failure(&e),
    };
    let title = format!(
        "{} {} · {} · {}?",
        tr(lang, "Delete use"),
        u.member,
        u.machine,
        time::datetime(&cx.tz, u.start)
    );
    let seconds = lab::counted_seconds(u.start, u.end);
    let lines: Vec<String> = (seconds > 0)
        .then(|| {
            format!(
                "{} {} h",
                tr(lang, "Its duration from the machine's hours counter:"),
                hours(seconds as f64 / 3600.0)
            )
        })
        .into_iter()
        .collect();
    confirm_page(
        cx,
        &title,
        "/uses",
        &lines,
        &format!("/uses/{id}/delete"),
        &format!("/uses?machine={}", u.machine_id),
    )
}

pub fn delete(cx: &mut Ctx, id: i64) -> Resp {
    let deleted = in_lab(cx, |lab| {
        Ok(lab::delete_use(lab, id)?.ok_or(Refused::Missing))
    });
    match deleted {
        Ok(Ok(u)) => Resp::redirect(&format!("/uses?machine={}&ok=deleted", u.machine_id)),
        Ok(Err(_)) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

/// Runs a `lab` history operation in one write transaction with the daemon's hot state.
fn in_lab<T>(
    cx: &mut Ctx,
    f: impl FnOnce(&mut lab::Ctx) -> store::Result<Outcome<T>>,
) -> store::Result<Outcome<T>> {
    let (app, now) = (cx.app, cx.now);
    write(cx.db, |tx| {
        let mut hot = app
            .hot
            .lock()
            .map_err(|_| store::Error::Invalid("hot state poisoned".into()))?;
        let mut lab = lab::Ctx {
            db: tx,
            hot: &mut hot,
            now,
            rules: &app.rules,
        };
        f(&mut lab)
    })
}
