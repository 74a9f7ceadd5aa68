//! Downloads (`/exports/<table>.csv|xlsx`): members (never a password hash), uses,
//! authorizations and interventions, with the filters of the page that links to them
//! (`?member=&machine=&from=&to=` as on the history page; `?role=&q=` for members).
//! Times are in the lab's zone; names are the ones staff read, next to the ids.

use super::history::Filters;
use super::sheet::{self, Cell, Sheet};
use super::{num, Ctx};
use crate::store::{self, InterventionFilter};
use crate::web::http::Resp;
use crate::web::i18n::tr;
use maud::html;

const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// rust_xlsxwriter holds a whole workbook in memory: the 22,000 uses of a FabOMatic lab
/// take ~40 MB while it is written. One at a time, so two staff exporting at once do not
/// double that on a 512 MB Pi.
static ONE_XLSX_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The page listing every export.
pub fn page(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let rows = [
        ("members", tr(lang, "Members (without passwords)")),
        ("machines", tr(lang, "Machines (hours, state)")),
        ("uses", tr(lang, "Uses")),
        ("authorizations", tr(lang, "Authorizations")),
        ("interventions", tr(lang, "Interventions")),
    ];
    let body = html! {
        h1 { (tr(lang, "Exports")) }
        p.muted { (tr(lang, "The history and maintenance pages export what their filters show.")) }
        div.scroll { table {
            tbody { @for (name, label) in rows { tr {
                td { (label) }
                td.actions {
                    a.button.secondary href={"/exports/" (name) ".csv"} { "CSV" } " "
                    a.button.secondary href={"/exports/" (name) ".xlsx"} { "XLSX" }
                }
            } } }
        } }
    };
    cx.page(tr(lang, "Exports"), "/uses", body)
}

/// `/exports/<file>`; `None` (404) for an unknown file.
pub fn download(cx: &mut Ctx, file: &str) -> Option<Resp> {
    let (name, ext) = file.rsplit_once('.')?;
    if ext != "csv" && ext != "xlsx" {
        return None;
    }
    let built = match name {
        "members" => members(cx),
        "machines" => machines(cx),
        "uses" => uses(cx),
        "authorizations" => authorizations(cx),
        "interventions" => interventions(cx),
        _ => return None,
    };
    let sheet = match built {
        Ok(s) => s,
        Err(e) => return Some(cx.failure(&e)),
    };
    let day = jiff::Timestamp::from_second(cx.now)
        .map(|t| t.to_zoned(cx.tz.clone()).strftime("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let filename = format!("fabgate-{name}-{day}.{ext}");
    let (kind, body) = if ext == "csv" {
        ("text/csv; charset=utf-8", sheet::csv(&sheet, &cx.tz))
    } else {
        let _one = ONE_XLSX_AT_A_TIME.lock();
        match sheet::xlsx(&[sheet], &cx.tz) {
            Ok(b) => (XLSX_TYPE, b),
            Err(e) => {
                let e = store::Error::Invalid(format!("writing {filename}: {e}"));
                return Some(cx.failure(&e));
            }
        }
    };
    log::info!("panel: export {filename} ({} bytes)", body.len());
    Some(Resp::new(200, kind, body).header(
        "Content-Disposition",
        &format!("attachment; filename=\"{filename}\""),
    ))
}

fn members(cx: &Ctx) -> store::Result<Sheet> {
    let role = num(cx.req.param("role"));
    let q = cx.req.param("q").to_lowercase();
    let rows = store::member_rows(cx.db)?
        .into_iter()
        .filter(|m| role.is_none_or(|r| m.role_id == r))
        .filter(|m| q.is_empty() || matches_text(m, &q))
        .map(|m| {
            vec![
                Cell::Int(m.id),
                m.name.into(),
                m.surname.into(),
                m.role.into(),
                m.card_uid.into(),
                m.email.into(),
                Cell::Bool(m.disabled),
                Cell::Bool(m.deleted),
                Cell::Bool(m.weekly_summary),
                Cell::Time(m.created_at),
            ]
        })
        .collect();
    Ok(Sheet {
        name: "members",
        headers: &[
            "id",
            "name",
            "surname",
            "role",
            "card_uid",
            "email",
            "disabled",
            "deleted",
            "weekly_summary",
            "created",
        ],
        rows,
    })
}

/// Does a member's name, surname, email or card contain `q` (lowercase)?
fn matches_text(m: &store::MemberRow, q: &str) -> bool {
    [
        Some(m.name.as_str()),
        Some(m.surname.as_str()),
        m.email.as_deref(),
        m.card_uid.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|s| s.to_lowercase().contains(q))
}

fn machines(cx: &Ctx) -> store::Result<Sheet> {
    let rows = store::machine_rows(cx.db)?
        .into_iter()
        .map(|m| {
            vec![
                Cell::Int(m.id),
                m.name.into(),
                m.type_name.into(),
                Cell::Num(m.hours),
                Cell::Bool(m.blocked),
                m.last_seen.map_or(Cell::Empty, Cell::Time),
                m.in_use_by.into(),
            ]
        })
        .collect();
    Ok(Sheet {
        name: "machines",
        headers: &[
            "id",
            "name",
            "type",
            "hours",
            "blocked",
            "last_seen",
            "in_use_by",
        ],
        rows,
    })
}

fn uses(cx: &Ctx) -> store::Result<Sheet> {
    let f = Filters::from_req(cx);
    let rows = store::use_page(cx.db, &f.query, -1, 0)?
        .into_iter()
        .map(|u| {
            vec![
                Cell::Int(u.id),
                Cell::Int(u.member_id),
                u.member.into(),
                Cell::Int(u.machine_id),
                u.machine.into(),
                Cell::Time(u.start),
                u.end.map_or(Cell::Empty, Cell::Time),
                u.end.map_or(Cell::Empty, |e| Cell::Int(e - u.start)),
                Cell::Bool(u.replay == Some(true)),
            ]
        })
        .collect();
    Ok(Sheet {
        name: "uses",
        headers: &[
            "id",
            "member_id",
            "member",
            "machine_id",
            "machine",
            "start",
            "end",
            "duration_s",
            "replayed",
        ],
        rows,
    })
}

fn authorizations(cx: &Ctx) -> store::Result<Sheet> {
    let member = num(cx.req.param("member"));
    let machine = num(cx.req.param("machine"));
    let rows = store::authorization_views(cx.db, member, machine)?
        .into_iter()
        .map(|a| {
            vec![
                Cell::Int(a.member_id),
                a.member.into(),
                a.card_uid.into(),
                Cell::Int(a.machine_id),
                a.machine.into(),
            ]
        })
        .collect();
    Ok(Sheet {
        name: "authorizations",
        headers: &["member_id", "member", "card_uid", "machine_id", "machine"],
        rows,
    })
}

fn interventions(cx: &Ctx) -> store::Result<Sheet> {
    let f = Filters::from_req(cx);
    let filter = InterventionFilter {
        machine_id: f.query.machine_id,
        member_id: f.query.member_id,
        from: f.query.from,
        to: f.query.to,
    };
    let rows = store::intervention_views(cx.db, &filter, -1)?
        .into_iter()
        .map(|i| {
            vec![
                Cell::Int(i.id),
                Cell::Time(i.timestamp),
                Cell::Int(i.machine_id),
                i.machine.into(),
                Cell::Int(i.plan_id),
                i.plan.into(),
                Cell::Int(i.member_id),
                i.member.into(),
                Cell::Bool(i.replay == Some(true)),
            ]
        })
        .collect();
    Ok(Sheet {
        name: "interventions",
        headers: &[
            "id",
            "time",
            "machine_id",
            "machine",
            "plan_id",
            "plan",
            "member_id",
            "member",
            "replayed",
        ],
        rows,
    })
}
