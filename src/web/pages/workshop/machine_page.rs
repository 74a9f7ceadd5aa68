//! One machine's page: state, board (firmware, IP, last seen), open use, maintenance
//! plans with their counters, recent uses, and the buttons for what may be done to it
//! (remote start/stop only while its board is online).

use super::machines::{online_badge, state, status, Status};
use super::{flash, hot, hours, Ctx};
use crate::lab::{self, PlanUsage};
use crate::store::{self, UseQuery, UseRow};
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use crate::web::time;
use maud::{html, Markup};

/// Uses shown on a machine's page; the rest is in the history.
const RECENT_USES: i64 = 10;

/// What a machine's page shows.
struct Detail {
    status: Status,
    board: Option<store::BoardInfo>,
    open_since: Option<i64>,
    plans: Vec<PlanUsage>,
    recent: Vec<UseRow>,
}

fn detail(cx: &Ctx, id: i64) -> store::Result<Option<Detail>> {
    let Some(row) = store::machine_rows(cx.db)?.into_iter().find(|m| m.id == id) else {
        return Ok(None);
    };
    let (hot_seen, hot_board) = {
        let hot = hot(cx)?;
        (hot.machine_last_seen(id), hot.board(id).cloned())
    };
    let seen = hot_seen.max(row.last_seen);
    let status = status(cx, row, seen)?;
    let board = match hot_board {
        Some(b) => Some(b),
        None => store::boards(cx.db)?
            .into_iter()
            .find(|b| b.machine_id == id)
            .map(|b| store::BoardInfo {
                ip: b.ip_address,
                fw_version: b.fw_version,
                serial: b.serial,
                heap: b.heap,
                last_seen: b.last_seen,
            }),
    };
    let open_since = store::open_uses(cx.db, id)?.last().map(|u| u.start);
    let q = UseQuery {
        machine_id: Some(id),
        ..UseQuery::default()
    };
    Ok(Some(Detail {
        board,
        open_since,
        plans: lab::plan_usage(cx.db, id)?,
        recent: store::use_page(cx.db, &q, RECENT_USES, 0)?,
        status,
    }))
}

pub fn show(cx: &mut Ctx, id: i64) -> Resp {
    show_with(cx, id, None)
}

/// The machine's page, with an error notice (status 409) when a request was refused.
pub(super) fn show_with(cx: &mut Ctx, id: i64, refused: Option<String>) -> Resp {
    let d = match detail(cx, id) {
        Ok(Some(d)) => d,
        Ok(None) => return cx.not_found(),
        Err(e) => return cx.failure(&e),
    };
    let body = render_detail(cx, &d, refused.as_deref());
    let resp = cx.page(&d.status.row.name, "/machines", body);
    if refused.is_some() {
        resp.status(409)
    } else {
        resp
    }
}

fn render_detail(cx: &Ctx, d: &Detail, refused: Option<&str>) -> Markup {
    let lang = cx.lang;
    let m = &d.status.row;
    let (class, label) = state(&d.status, lang);
    let base = format!("/machines/{}", m.id);
    html! {
        h1 { (m.name) " " span class={"badge " (class)} { (label) } }
        (flash(cx))
        @if let Some(r) = refused { (notice("error", r)) }
        div.panel.facts {
            dl {
                dt { (tr(lang, "Machine ID")) } dd { (m.id) }
                dt { (tr(lang, "Type")) } dd { (m.type_name.as_deref().unwrap_or("—")) }
                dt { (tr(lang, "Hours")) } dd { (hours(m.hours)) }
                dt { (tr(lang, "Blocked")) } dd { (if m.blocked { tr(lang, "yes") } else { tr(lang, "no") }) }
                dt { (tr(lang, "In use by")) } dd {
                    @match (&m.in_use_by, d.open_since) {
                        (Some(who), Some(since)) => { (who) " · " (tr(lang, "since")) " " (time::datetime(&cx.tz, since)) }
                        _ => { "—" }
                    }
                }
                dt { (tr(lang, "Board")) } dd {
                    (online_badge(lang, d.status.online)) " "
                    @match d.status.seen {
                        Some(t) => { (tr(lang, "last seen")) " " (time::datetime(&cx.tz, t)) }
                        None => { (tr(lang, "never seen")) }
                    }
                }
                @if let Some(b) = &d.board {
                    dt { (tr(lang, "Firmware")) } dd { (b.fw_version) }
                    dt { (tr(lang, "IP address")) } dd { (b.ip) }
                    @if !b.serial.is_empty() { dt { (tr(lang, "Serial")) } dd { (b.serial) } }
                }
            }
        }
        div.actions {
            @if d.status.online {
                form.inline method="post" action={(base) "/start"} {
                    (csrf_field(cx.csrf())) button type="submit" { (tr(lang, "Remote start")) }
                }
                form.inline method="post" action={(base) "/stop"} {
                    (csrf_field(cx.csrf())) button.secondary type="submit" { (tr(lang, "Remote stop")) }
                }
            } @else {
                span.muted { (tr(lang, "Remote start and stop need the board online.")) }
            }
            @let (verb, text) = if m.blocked { ("unblock", tr(lang, "Unblock")) } else { ("block", tr(lang, "Block")) };
            form.inline method="post" action={(base) "/" (verb)} {
                (csrf_field(cx.csrf())) button.secondary type="submit" { (text) }
            }
            a.button.secondary href={(base) "/edit"} { (tr(lang, "Edit")) }
            a.button.secondary href={(base) "/delete"} { (tr(lang, "Delete")) }
        }
        h2 { (tr(lang, "Maintenance plans")) }
        (render_plans(lang, &d.plans))
        p { a href={"/maintenance/plans/new?machine=" (m.id)} { (tr(lang, "Add a maintenance plan")) } }
        h2 { (tr(lang, "Recent uses")) }
        (super::history::table(cx, &d.recent, false))
        p {
            a href={"/uses?machine=" (m.id)} { (tr(lang, "Full history")) } " · "
            a href={"/exports/uses.xlsx?machine=" (m.id)} { (tr(lang, "Export (XLSX)")) }
        }
    }
}

fn render_plans(lang: Lang, plans: &[PlanUsage]) -> Markup {
    html! {
        @if plans.is_empty() { p.muted { (tr(lang, "No maintenance plans.")) } }
        @else { div.scroll { table {
            thead { tr {
                th { (tr(lang, "Description")) } th.num { (tr(lang, "Every (h)")) }
                th.num { (tr(lang, "Used since (h)")) } th { (tr(lang, "Status")) } th {}
            } }
            tbody { @for p in plans {
                tr {
                    td { (p.plan.description) }
                    td.num { (hours(p.plan.hours_between)) }
                    td.num { (hours(p.used_s as f64 / 3600.0)) }
                    td { @if p.due {
                        span.badge.due { (tr(lang, "due")) } " "
                        (tr(lang, "overdue by")) " " (hours(p.hours_overdue())) " h"
                    } @else {
                        span.badge.free { (tr(lang, "ok")) } " "
                        (hours(-p.hours_overdue())) " h " (tr(lang, "left"))
                    } }
                    td { a href={"/maintenance/interventions/new?plan=" (p.plan.id)} { (tr(lang, "Record intervention")) } }
                }
            } }
        } } }
    }
}
