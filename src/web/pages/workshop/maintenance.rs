//! Maintenance: what is due now and by how many hours (the counters come from
//! `lab::plan_usage`), plans by hours of use (protocol.md §6.5) with their 16-character
//! LCD text and an instructions link, and the interventions log with add / edit / delete.
//! An intervention restarts its plan's counter.

use super::machines::parse_number;
use super::{
    confirm_page, count_line, flash, found, hours, local_input, member_options, num, parse_local,
    query, select, write, Checked, Ctx, Refused,
};
use crate::lab::{self, PlanUsage};
use crate::store::{
    self, InterventionEdit, InterventionFilter, InterventionView, NewPlan, PlanRow,
};
use crate::validate;
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use crate::web::time;
use maud::{html, Markup};
use std::collections::HashMap;

/// Interventions shown in the log; older ones are in the export.
const LOG_ROWS: i64 = 200;

/// Every plan with its counter, keyed by plan id, and the machines' names.
fn usage(cx: &Ctx) -> store::Result<(Vec<PlanRow>, HashMap<i64, PlanUsage>)> {
    let plans = store::plan_rows(cx.db)?;
    let mut by_plan = HashMap::new();
    let mut machines: Vec<i64> = plans.iter().map(|p| p.machine_id).collect();
    machines.dedup();
    for m in machines {
        for u in lab::plan_usage(cx.db, m)? {
            by_plan.insert(u.plan.id, u);
        }
    }
    Ok((plans, by_plan))
}

/// An instructions link, clickable only when it is http(s) (imported values may not be).
fn link(lang: Lang, url: Option<&str>) -> Markup {
    html! {
        @match url.filter(|u| !u.is_empty()) {
            Some(u) if validate::is_web_link(u) => {
                a href=(u) rel="noopener noreferrer" target="_blank" { (tr(lang, "Instructions")) }
            }
            Some(u) => span.muted { (u) },
            None => {},
        }
    }
}

pub fn overview(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let machine = num(cx.req.param("machine"));
    let member = num(cx.req.param("member"));
    let filter = InterventionFilter {
        machine_id: machine,
        member_id: member,
        ..InterventionFilter::default()
    };
    let gathered = usage(cx).and_then(|(plans, by_plan)| {
        let log = store::intervention_views(cx.db, &filter, LOG_ROWS)?;
        let members = member_options(cx.db, lang)?;
        let machines = super::machine_options(cx.db)?;
        Ok((plans, by_plan, log, members, machines))
    });
    let (plans, by_plan, log, members, machines) = match gathered {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let mut due: Vec<(&PlanRow, &PlanUsage)> = plans
        .iter()
        .filter_map(|p| by_plan.get(&p.id).filter(|u| u.due).map(|u| (p, u)))
        .collect();
    due.sort_by(|a, b| b.1.hours_overdue().total_cmp(&a.1.hours_overdue()));
    let shown: Vec<&PlanRow> = plans
        .iter()
        .filter(|p| machine.is_none_or(|m| p.machine_id == m))
        .collect();
    let filters = query(&[
        ("machine", machine.map(|m| m.to_string())),
        ("member", member.map(|m| m.to_string())),
    ]);
    let body = html! {
        h1 { (tr(lang, "Maintenance")) }
        (flash(cx))
        h2 { (tr(lang, "Due now")) }
        @if due.is_empty() { p.muted { (tr(lang, "Nothing is due.")) } }
        @else { div.scroll { table.due {
            thead { tr {
                th { (tr(lang, "Machine")) } th { (tr(lang, "Plan")) } th.num { (tr(lang, "Overdue by (h)")) }
                th { (tr(lang, "LCD text")) } th {} th {}
            } }
            tbody { @for (p, u) in &due { tr {
                td { a href={"/machines/" (p.machine_id)} { (p.machine_name) } }
                td { (p.description) }
                td.num { (hours(u.hours_overdue())) }
                td { code { (p.lcd_message.as_deref().unwrap_or("")) } }
                td { (link(lang, p.instructions_url.as_deref())) }
                td { a.button href={"/maintenance/interventions/new?plan=" (p.id)} { (tr(lang, "Record intervention")) } }
            } } }
        } } }

        h2 { (tr(lang, "Plans")) }
        form.filters method="get" action="/maintenance" {
            label { (tr(lang, "Machine")) (select("machine", &machines, &machine.map(|m| m.to_string()).unwrap_or_default(), Some(tr(lang, "All")))) }
            label { (tr(lang, "Member")) (select("member", &members, &member.map(|m| m.to_string()).unwrap_or_default(), Some(tr(lang, "All")))) }
            button type="submit" { (tr(lang, "Filter")) }
        }
        p.actions { a.button href={"/maintenance/plans/new" (machine.map(|m| format!("?machine={m}")).unwrap_or_default())} { (tr(lang, "Add a maintenance plan")) } }
        (plans_table(lang, &shown, &by_plan))

        h2 { (tr(lang, "Interventions")) }
        p.actions {
            a.button href="/maintenance/interventions/new" { (tr(lang, "Record intervention")) } " "
            a.button.secondary href={"/exports/interventions.csv?" (filters)} { "CSV" } " "
            a.button.secondary href={"/exports/interventions.xlsx?" (filters)} { "XLSX" }
        }
        (log_table(cx, &log))
        @if log.len() as i64 == LOG_ROWS { p.muted { (tr(lang, "Only the newest are shown; the export has them all.")) } }
    };
    cx.page(tr(lang, "Maintenance"), "/maintenance", body)
}

fn plans_table(lang: Lang, plans: &[&PlanRow], by_plan: &HashMap<i64, PlanUsage>) -> Markup {
    html! {
        @if plans.is_empty() { p.muted { (tr(lang, "No maintenance plans.")) } }
        @else { div.scroll { table {
            thead { tr {
                th { (tr(lang, "Machine")) } th { (tr(lang, "Description")) } th.num { (tr(lang, "Every (h)")) }
                th.num { (tr(lang, "Used since (h)")) } th { (tr(lang, "LCD text")) } th {} th {}
            } }
            tbody { @for p in plans {
                @let u = by_plan.get(&p.id);
                tr.due[u.is_some_and(|u| u.due)] {
                    td { a href={"/machines/" (p.machine_id)} { (p.machine_name) } }
                    td { (p.description) }
                    td.num { (hours(p.hours_between)) }
                    td.num { (u.map(|u| hours(u.used_s as f64 / 3600.0)).unwrap_or_default())
                        @if u.is_some_and(|u| u.due) { " " span.badge.due { (tr(lang, "due")) } } }
                    td { code { (p.lcd_message.as_deref().unwrap_or("")) } }
                    td { (link(lang, p.instructions_url.as_deref())) }
                    td.actions {
                        a href={"/maintenance/plans/" (p.id) "/edit"} { (tr(lang, "Edit")) } " · "
                        a href={"/maintenance/plans/" (p.id) "/delete"} { (tr(lang, "Delete")) }
                    }
                }
            } }
        } } }
    }
}

fn log_table(cx: &Ctx, log: &[InterventionView]) -> Markup {
    let lang = cx.lang;
    html! {
        @if log.is_empty() { p.muted { (tr(lang, "No interventions.")) } }
        @else { div.scroll { table {
            thead { tr {
                th { (tr(lang, "When")) } th { (tr(lang, "Machine")) } th { (tr(lang, "Plan")) }
                th { (tr(lang, "By")) } th {}
            } }
            tbody { @for i in log { tr {
                td { (time::datetime(&cx.tz, i.timestamp))
                    @if i.replay == Some(true) { " " span.badge.replay title=(tr(lang, "Sent late by the board from its offline buffer")) { (tr(lang, "replayed")) } } }
                td { (i.machine) }
                td { (i.plan) }
                td { (i.member) }
                td.actions {
                    a href={"/maintenance/interventions/" (i.id) "/edit"} { (tr(lang, "Edit")) } " · "
                    a href={"/maintenance/interventions/" (i.id) "/delete"} { (tr(lang, "Delete")) }
                }
            } } }
        } } }
    }
}

// ---------------------------------------------------------------------------------------
// Plans

#[derive(Default)]
struct PlanForm {
    machine: String,
    hours: String,
    description: String,
    lcd: String,
    url: String,
}

struct ValidPlan {
    machine_id: i64,
    hours: f64,
    description: String,
    lcd: Option<String>,
    url: Option<String>,
}

impl PlanForm {
    fn from_req(cx: &Ctx) -> PlanForm {
        let f = |k| cx.req.field(k).to_string();
        PlanForm {
            machine: f("machine"),
            hours: f("hours"),
            description: f("description"),
            lcd: f("lcd"),
            url: f("url"),
        }
    }

    fn from_row(p: &PlanRow) -> PlanForm {
        PlanForm {
            machine: p.machine_id.to_string(),
            hours: p.hours_between.to_string(),
            description: p.description.clone(),
            lcd: p.lcd_message.clone().unwrap_or_default(),
            url: p.instructions_url.clone().unwrap_or_default(),
        }
    }

    fn check(&self, lang: Lang) -> Checked<ValidPlan> {
        let machine_id = num(&self.machine).ok_or(tr(lang, "Choose a machine."))?;
        let hours = parse_number(&self.hours)
            .ok_or_else(|| tr(lang, "Hours must be a number.").to_string())
            .and_then(validate::hours)?;
        let description = validate::text("description", &self.description, 1, validate::TEXT_MAX)?;
        let optional = |s: &str, f: fn(&str) -> Result<String, String>| {
            if s.is_empty() {
                Ok(None)
            } else {
                f(s).map(Some)
            }
        };
        Ok(ValidPlan {
            machine_id,
            hours,
            description,
            lcd: optional(&self.lcd, validate::lcd)?,
            url: optional(&self.url, validate::url)?,
        })
    }
}

fn plan_page(cx: &Ctx, f: &PlanForm, editing: Option<i64>, error: Option<String>) -> Resp {
    let lang = cx.lang;
    let machines = match super::machine_options(cx.db) {
        Ok(m) => m,
        Err(e) => return cx.failure(&e),
    };
    let (title, action) = match editing {
        Some(id) => (
            tr(lang, "Edit maintenance plan"),
            format!("/maintenance/plans/{id}/edit"),
        ),
        None => (
            tr(lang, "Add a maintenance plan"),
            "/maintenance/plans".to_string(),
        ),
    };
    let body = html! {
        h1 { (title) }
        div.panel.narrowish {
            @if let Some(e) = &error { (notice("error", e)) }
            form.stack method="post" action=(action) {
                (csrf_field(cx.csrf()))
                label { (tr(lang, "Machine")) (select("machine", &machines, &f.machine, None)) }
                label { (tr(lang, "Description")) input type="text" name="description" value=(f.description) required maxlength="500"; }
                label { (tr(lang, "Every how many hours of use")) input type="text" inputmode="decimal" name="hours" value=(f.hours) required; }
                label { (tr(lang, "LCD text (16 characters, shown on the board when due)"))
                    input type="text" name="lcd" value=(f.lcd) maxlength="16"; }
                label { (tr(lang, "Instructions link (http or https)")) input type="url" name="url" value=(f.url); }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
    };
    let resp = cx.page(title, "/maintenance", body);
    if error.is_some() {
        resp.status(400)
    } else {
        resp
    }
}

pub fn new_plan_form(cx: &mut Ctx) -> Resp {
    let f = PlanForm {
        machine: cx.req.param("machine").to_string(),
        ..PlanForm::default()
    };
    plan_page(cx, &f, None, None)
}

pub fn edit_plan_form(cx: &mut Ctx, id: i64) -> Resp {
    match store::plan_row(cx.db, id) {
        Ok(Some(p)) => plan_page(cx, &PlanForm::from_row(&p), Some(id), None),
        Ok(None) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

pub fn create_plan(cx: &mut Ctx) -> Resp {
    save_plan(cx, None)
}

pub fn update_plan(cx: &mut Ctx, id: i64) -> Resp {
    save_plan(cx, Some(id))
}

fn save_plan(cx: &mut Ctx, old: Option<i64>) -> Resp {
    let lang = cx.lang;
    let f = PlanForm::from_req(cx);
    let v = match f.check(lang) {
        Ok(v) => v,
        Err(e) => return plan_page(cx, &f, old, Some(e)),
    };
    let new = NewPlan {
        machine_id: v.machine_id,
        hours_between: v.hours,
        description: &v.description,
        lcd_message: v.lcd.as_deref(),
        instructions_url: v.url.as_deref(),
    };
    let saved = write(cx.db, |tx| {
        if !store::machine_exists(tx, v.machine_id)? {
            return Ok(Err(tr(lang, "Choose a machine.").into()));
        }
        match old {
            Some(id) if !store::update_plan(tx, id, &new)? => Ok(Err(Refused::Missing)),
            Some(_) => Ok(Ok(())),
            None => store::insert_plan(tx, &new).map(|_| Ok(())),
        }
    });
    match saved {
        Ok(Ok(())) => {
            let ok = if old.is_some() { "saved" } else { "added" };
            Resp::redirect(&format!("/maintenance?ok={ok}"))
        }
        Ok(Err(Refused::Missing)) => cx.not_found(),
        Ok(Err(Refused::Invalid(e))) => plan_page(cx, &f, old, Some(e)),
        Err(e) => cx.failure(&e),
    }
}

pub fn confirm_delete_plan(cx: &mut Ctx, id: i64) -> Resp {
    let lang = cx.lang;
    let found =
        store::plan_row(cx.db, id).and_then(|p| Ok((p, store::plan_interventions(cx.db, id)?)));
    let (p, n) = match found {
        Ok((Some(p), n)) => (p, n),
        Ok((None, _)) => return cx.not_found(),
        Err(e) => return cx.failure(&e),
    };
    let lines: Vec<String> = count_line(n, tr(lang, "intervention"), tr(lang, "interventions"))
        .into_iter()
        .collect();
    let title = format!(
        "{} {} ({})?",
        tr(lang, "Delete maintenance plan"),
        p.description,
        p.machine_name
    );
    confirm_page(
        cx,
        &title,
        "/maintenance",
        &lines,
        &format!("/maintenance/plans/{id}/delete"),
        "/maintenance",
    )
}

pub fn delete_plan(cx: &mut Ctx, id: i64) -> Resp {
    let deleted = write(cx.db, |tx| Ok(found(store::delete_plan(tx, id)?)));
    match deleted {
        Ok(Ok(())) => Resp::redirect("/maintenance?ok=deleted"),
        Ok(Err(_)) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

// ---------------------------------------------------------------------------------------
// Interventions

#[derive(Default)]
struct InterventionForm {
    plan: String,
    member: String,
    when: String,
}

impl InterventionForm {
    fn from_req(cx: &Ctx) -> InterventionForm {
        InterventionForm {
            plan: cx.req.field("plan").to_string(),
            member: cx.req.field("member").to_string(),
            when: cx.req.field("when").to_string(),
        }
    }

    fn check(&self, cx: &Ctx) -> Checked<InterventionEdit> {
        let lang = cx.lang;
        let plan_id = num(&self.plan).ok_or(tr(lang, "Choose a maintenance plan."))?;
        let member_id = num(&self.member).ok_or(tr(lang, "Choose a member."))?;
        let timestamp = parse_local(&cx.tz, &self.when)
            .ok_or(tr(lang, "Enter a date and time like 2026-11-22 14:03."))?;
        if timestamp > cx.now + 60 {
            return Err(tr(lang, "The time is in the future.").into());
        }
        Ok(InterventionEdit {
            plan_id,
            member_id,
            timestamp,
        })
    }
}

fn intervention_page(
    cx: &Ctx,
    f: &InterventionForm,
    editing: Option<i64>,
    error: Option<String>,
) -> Resp {
    let lang = cx.lang;
    let options = store::plan_rows(cx.db).and_then(|plans| {
        let plans: Vec<(i64, String)> = plans
            .into_iter()
            .map(|p| (p.id, format!("{} — {}", p.machine_name, p.description)))
            .collect();
        Ok((plans, member_options(cx.db, lang)?))
    });
    let (plans, members) = match options {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let (title, action) = match editing {
        Some(id) => (
            tr(lang, "Edit intervention"),
            format!("/maintenance/interventions/{id}/edit"),
        ),
        None => (
            tr(lang, "Record intervention"),
            "/maintenance/interventions".to_string(),
        ),
    };
    let body = html! {
        h1 { (title) }
        div.panel.narrowish {
            @if let Some(e) = &error { (notice("error", e)) }
            form.stack method="post" action=(action) {
                (csrf_field(cx.csrf()))
                label { (tr(lang, "Maintenance plan")) (select("plan", &plans, &f.plan, None)) }
                label { (tr(lang, "Done by")) (select("member", &members, &f.member, None)) }
                label { (tr(lang, "When")) input type="datetime-local" name="when" value=(f.when) required; }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
    };
    let resp = cx.page(title, "/maintenance", body);
    if error.is_some() {
        resp.status(400)
    } else {
        resp
    }
}

pub fn new_intervention_form(cx: &mut Ctx) -> Resp {
    let f = InterventionForm {
        plan: cx.req.param("plan").to_string(),
        member: cx
            .session
            .as_ref()
            .map(|s| s.member_id.to_string())
            .unwrap_or_default(),
        when: local_input(&cx.tz, cx.now),
    };
    intervention_page(cx, &f, None, None)
}

pub fn edit_intervention_form(cx: &mut Ctx, id: i64) -> Resp {
    match store::intervention_view(cx.db, id) {
        Ok(Some(i)) => {
            let f = InterventionForm {
                plan: i.plan_id.to_string(),
                member: i.member_id.to_string(),
                when: local_input(&cx.tz, i.timestamp),
            };
            intervention_page(cx, &f, Some(id), None)
        }
        Ok(None) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

pub fn create_intervention(cx: &mut Ctx) -> Resp {
    save_intervention(cx, None)
}

pub fn update_intervention(cx: &mut Ctx, id: i64) -> Resp {
    save_intervention(cx, Some(id))
}

fn save_intervention(cx: &mut Ctx, old: Option<i64>) -> Resp {
    let lang = cx.lang;
    let f = InterventionForm::from_req(cx);
    let e = match f.check(cx) {
        Ok(e) => e,
        Err(msg) => return intervention_page(cx, &f, old, Some(msg)),
    };
    let saved = write(cx.db, |tx| {
        if store::plan_row(tx, e.plan_id)?.is_none() {
            return Ok(Err(tr(lang, "Choose a maintenance plan.").into()));
        }
        if store::member(tx, e.member_id)?.is_none() {
            return Ok(Err(tr(lang, "Choose a member.").into()));
        }
        match old {
            Some(id) if !store::update_intervention(tx, id, &e)? => Ok(Err(Refused::Missing)),
            Some(_) => Ok(Ok(())),
            None => store::insert_intervention_at(tx, &e).map(|_| Ok(())),
        }
    });
    match saved {
        Ok(Ok(())) => {
            let ok = if old.is_some() { "saved" } else { "added" };
            Resp::redirect(&format!("/maintenance?ok={ok}"))
        }
        Ok(Err(Refused::Missing)) => cx.not_found(),
        Ok(Err(Refused::Invalid(msg))) => intervention_page(cx, &f, old, Some(msg)),
        Err(e) => cx.failure(&e),
    }
}

pub fn confirm_delete_intervention(cx: &mut Ctx, id: i64) -> Resp {
    let lang = cx.lang;
    let i = match store::intervention_view(cx.db, id) {
        Ok(Some(i)) => i,
        Ok(None) => return cx.not_found(),
        Err(e) => return cx.failure(&e),
    };
    let title = format!(
        "{} {} · {} · {}?",
        tr(lang, "Delete intervention"),
        i.machine,
        i.plan,
        time::datetime(&cx.tz, i.timestamp)
    );
    confirm_page(
        cx,
        &title,
        "/maintenance",
        &[],
        &format!("/maintenance/interventions/{id}/delete"),
        "/maintenance",
    )
}

pub fn delete_intervention(cx: &mut Ctx, id: i64) -> Resp {
    let deleted = write(cx.db, |tx| Ok(found(store::delete_intervention(tx, id)?)));
    match deleted {
        Ok(Ok(())) => Resp::redirect("/maintenance?ok=deleted"),
        Ok(Err(_)) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}
