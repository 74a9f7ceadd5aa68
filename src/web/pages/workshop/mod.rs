//! Machines, machine types, maintenance plans and interventions, usage history, exports:
//! the panel's workshop area. Handlers gather from `store` and ask `lab` (online? due?
//! may this card ask for a remote start? what do machine hours become?); they never
//! decide a rule themselves. Every change is a POST (CSRF checked in `routes`) answered
//! with a 303 to a page that shows a notice picked from a fixed list (`?ok=`), so no
//! text from the request is ever echoed.
//!
//! Shared helpers of the area live here: the write transaction, the confirmation page,
//! page links, and lab-time-zone form fields.

mod exports;
mod history;
mod it;
mod machine_page;
mod machines;
mod maintenance;
mod sheet;
mod types;

pub use it::IT;

use super::{write, Ctx, Method};
use crate::store;
use crate::web::http::{encode, Resp};
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use jiff::tz::TimeZone;
use maud::{html, Markup};
use rusqlite::Connection;

/// The URLs of this area; `None` when the path is not one of them (or an id is not a
/// number), which the router answers with 404.
pub fn route(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    use Method::{Get, Post};
    Some(match (method, segments) {
        (Get, ["machines"]) => machines::list(cx),
        (Get, ["machines", "new"]) => machines::new_form(cx),
        (Post, ["machines"]) => machines::create(cx),
        (Get, ["machines", id]) => machine_page::show(cx, num(id)?),
        (Get, ["machines", id, "edit"]) => machines::edit_form(cx, num(id)?),
        (Post, ["machines", id, "edit"]) => machines::update(cx, num(id)?),
        (Get, ["machines", id, "delete"]) => machines::confirm_delete(cx, num(id)?),
        (Post, ["machines", id, "delete"]) => machines::delete(cx, num(id)?),
        (Post, ["machines", id, "block"]) => machines::block(cx, num(id)?, true),
        (Post, ["machines", id, "unblock"]) => machines::block(cx, num(id)?, false),
        (Post, ["machines", id, "start"]) => machines::remote(cx, num(id)?, "start"),
        (Post, ["machines", id, "stop"]) => machines::remote(cx, num(id)?, "stop"),

        (Get, ["machine-types"]) => types::list(cx),
        (Get, ["machine-types", "new"]) => types::new_form(cx),
        (Post, ["machine-types"]) => types::create(cx),
        (Get, ["machine-types", id, "edit"]) => types::edit_form(cx, num(id)?),
        (Post, ["machine-types", id, "edit"]) => types::update(cx, num(id)?),
        (Get, ["machine-types", id, "delete"]) => types::confirm_delete(cx, num(id)?),
        (Post, ["machine-types", id, "delete"]) => types::delete(cx, num(id)?),

        (Get, ["maintenance"]) => maintenance::overview(cx),
        (Get, ["maintenance", "plans", "new"]) => maintenance::new_plan_form(cx),
        (Post, ["maintenance", "plans"]) => maintenance::create_plan(cx),
        (Get, ["maintenance", "plans", id, "edit"]) => maintenance::edit_plan_form(cx, num(id)?),
        (Post, ["maintenance", "plans", id, "edit"]) => maintenance::update_plan(cx, num(id)?),
        (Get, ["maintenance", "plans", id, "delete"]) => {
            maintenance::confirm_delete_plan(cx, num(id)?)
        }
        (Post, ["maintenance", "plans", id, "delete"]) => maintenance::delete_plan(cx, num(id)?),
        (Get, ["maintenance", "interventions", "new"]) => maintenance::new_intervention_form(cx),
        (Post, ["maintenance", "interventions"]) => maintenance::create_intervention(cx),
        (Get, ["maintenance", "interventions", id, "edit"]) => {
            maintenance::edit_intervention_form(cx, num(id)?)
        }
        (Post, ["maintenance", "interventions", id, "edit"]) => {
            maintenance::update_intervention(cx, num(id)?)
        }
        (Get, ["maintenance", "interventions", id, "delete"]) => {
            maintenance::confirm_delete_intervention(cx, num(id)?)
        }
        (Post, ["maintenance", "interventions", id, "delete"]) => {
            maintenance::delete_intervention(cx, num(id)?)
        }

        (Get, ["uses"]) => history::list(cx),
        (Get, ["uses", "new"]) => history::new_form(cx),
        (Post, ["uses"]) => history::create(cx),
        (Get, ["uses", id, "edit"]) => history::edit_form(cx, num(id)?),
        (Post, ["uses", id, "edit"]) => history::update(cx, num(id)?),
        (Get, ["uses", id, "delete"]) => history::confirm_delete(cx, num(id)?),
        (Post, ["uses", id, "delete"]) => history::delete(cx, num(id)?),

        (Get, ["exports"]) => exports::page(cx),
        (Get, ["exports", file]) => exports::download(cx, file)?,
        _ => return None,
    })
}

/// A positive id from a path segment or a form field.
fn num(s: &str) -> Option<i64> {
    s.trim().parse().ok().filter(|&n| n > 0)
}

/// A checked form, or a message for the person.
type Checked<T> = Result<T, String>;

/// Why a change was not made.
enum Refused {
    /// The thing to change does not exist (404).
    Missing,
    /// A message for the person, shown with the form (400).
    Invalid(String),
}

impl From<String> for Refused {
    fn from(s: String) -> Refused {
        Refused::Invalid(s)
    }
}

impl From<&str> for Refused {
    fn from(s: &str) -> Refused {
        Refused::Invalid(s.to_string())
    }
}

/// What a write ends with.
type Outcome<T> = Result<T, Refused>;

/// `Ok` when the row to change was there.
fn found(changed: bool) -> Outcome<()> {
    if changed {
        Ok(())
    } else {
        Err(Refused::Missing)
    }
}

/// The daemon's in-memory board state.
fn hot<'a>(cx: &'a Ctx) -> store::Result<std::sync::MutexGuard<'a, crate::store::Hot>> {
    cx.app
        .hot
        .lock()
        .map_err(|_| store::Error::Invalid("hot state poisoned".into()))
}

/// The notice after a redirect, from a fixed list: the query never reaches the page.
fn flash(cx: &Ctx) -> Markup {
    let lang = cx.lang;
    let text = match cx.req.param("ok") {
        "added" => tr(lang, "Added."),
        "saved" => tr(lang, "Saved."),
        "deleted" => tr(lang, "Deleted."),
        "blocked" => tr(
            lang,
            "Machine blocked: only roles allowed on every machine may use it.",
        ),
        "unblocked" => tr(lang, "Machine unblocked."),
        "start" => tr(
            lang,
            "Remote start requested: the daemon sends it to the board within a second.",
        ),
        "stop" => tr(
            lang,
            "Remote stop requested: the daemon sends it to the board within a second.",
        ),
        _ => return html! {},
    };
    notice("ok", text)
}

/// A page asking to confirm a deletion, listing what goes with it.
fn confirm_page(
    cx: &Ctx,
    title: &str,
    nav: &str,
    consequences: &[String],
    action: &str,
    back: &str,
) -> Resp {
    let lang = cx.lang;
    cx.page(
        title,
        nav,
        html! {
            div.panel.confirm {
                h1 { (title) }
                @if consequences.is_empty() {
                    p { (tr(lang, "Nothing else is removed.")) }
                } @else {
                    p { (tr(lang, "This also removes:")) }
                    ul { @for c in consequences { li { (c) } } }
                }
                p.muted { (tr(lang, "This cannot be undone.")) }
                form.inline method="post" action=(action) {
                    (csrf_field(cx.csrf()))
                    button.danger type="submit" { (tr(lang, "Delete")) }
                    " "
                    a.button.secondary href=(back) { (tr(lang, "Cancel")) }
                }
            }
        },
    )
}

/// "N things" for a confirmation page, or nothing when N is 0.
fn count_line(n: i64, one: &str, many: &str) -> Option<String> {
    match n {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    }
}

/// Page links: previous, "page N of M", next. `base` is the list URL with its filters
/// and ends in `?` or `&`.
fn pager(lang: Lang, base: &str, page: i64, pages: i64) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager {
                @if page > 1 { a href={(base) "page=" (page - 1)} rel="prev" { "‹ " (tr(lang, "Newer")) } }
                span { (tr(lang, "Page")) " " (page) " / " (pages) }
                @if page < pages { a href={(base) "page=" (page + 1)} rel="next" { (tr(lang, "Older")) " ›" } }
            }
        }
    }
}

/// `key=value&` pairs for the filters present, values percent-encoded.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}&", encode(v))))
        .collect()
}

/// Members for a select list: (id, name), deleted ones marked.
fn member_options(db: &Connection, lang: Lang) -> store::Result<Vec<(i64, String)>> {
    Ok(store::member_rows(db)?
        .into_iter()
        .map(|m| {
            let mut name = m.full_name();
            if m.deleted {
                name.push_str(&format!(" ({})", tr(lang, "deleted")));
            }
            (m.id, name)
        })
        .collect())
}

/// Machines for a select list.
fn machine_options(db: &Connection) -> store::Result<Vec<(i64, String)>> {
    Ok(store::machines(db)?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect())
}

/// A `select` of ids and names; `first` is the label of the empty choice, if any.
fn select(name: &str, options: &[(i64, String)], chosen: &str, first: Option<&str>) -> Markup {
    html! {
        select name=(name) {
            @if let Some(first) = first { option value="" { (first) } }
            @for (id, label) in options {
                @let v = id.to_string();
                option value=(v) selected[v == chosen] { (label) }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Times in the lab's zone

/// A `datetime-local` field value (`2026-11-22T14:03`) → UTC seconds in the lab's zone.
/// A local time skipped by a DST change moves forward, a repeated one takes the first.
fn parse_local(tz: &TimeZone, s: &str) -> Option<i64> {
    let dt: jiff::civil::DateTime = s.trim().parse().ok()?;
    Some(dt.to_zoned(tz.clone()).ok()?.timestamp().as_second())
}

/// UTC seconds → a `datetime-local` field value in the lab's zone.
fn local_input(tz: &TimeZone, ts: i64) -> String {
    jiff::Timestamp::from_second(ts)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// A `date` field value (`2026-11-22`) → the first second of that day in the lab's zone.
fn parse_day(tz: &TimeZone, s: &str) -> Option<i64> {
    let d: jiff::civil::Date = s.trim().parse().ok()?;
    Some(d.to_zoned(tz.clone()).ok()?.timestamp().as_second())
}

/// The first second of the day after `s` (an inclusive "to" date).
fn parse_day_end(tz: &TimeZone, s: &str) -> Option<i64> {
    let d: jiff::civil::Date = s.trim().parse().ok()?;
    let next = d.tomorrow().ok()?;
    Some(next.to_zoned(tz.clone()).ok()?.timestamp().as_second())
}

/// Hours for people: `12.5`.
fn hours(h: f64) -> String {
    format!("{h:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_read_in_the_lab_zone() {
        let rome = TimeZone::get("Europe/Rome").unwrap();
        // 2026-11-22 14:03 in Rome (CET, +01:00) is 13:03 UTC.
        assert_eq!(parse_local(&rome, "2026-11-22T14:03"), Some(1_795_352_580));
        assert_eq!(
            parse_local(&rome, " 2026-11-22T14:03:00 "),
            Some(1_795_352_580)
        );
        assert_eq!(local_input(&rome, 1_795_352_580), "2026-11-22T14:03");
        assert_eq!(parse_local(&rome, "yesterday"), None);
        assert_eq!(parse_local(&rome, "2026-13-01T00:00"), None);
        let day = parse_day(&rome, "2026-11-22").unwrap();
        assert_eq!(crate::web::time::datetime(&rome, day), "2026-11-22 00:00");
        assert_eq!(parse_day_end(&rome, "2026-11-22"), Some(day + 86_400));
        // The night clocks go back: 2026-10-25 lasts 25 hours in Rome.
        let (a, b) = (
            parse_day(&rome, "2026-10-25").unwrap(),
            parse_day_end(&rome, "2026-10-25").unwrap(),
        );
        assert_eq!(b - a, 25 * 3600);
    }

    #[test]
    fn ids_and_queries() {
        assert_eq!(num("12"), Some(12));
        assert_eq!(num("0"), None);
        assert_eq!(num("-3"), None);
        assert_eq!(num("1e3"), None);
        assert_eq!(
            query(&[
                ("member", Some("3".into())),
                ("from", None),
                ("q", Some("a&b".into()))
            ]),
            "member=3&q=a%26b&"
        );
        assert_eq!(count_line(0, "use", "uses"), None);
        assert_eq!(count_line(2, "use", "uses").as_deref(), Some("2 uses"));
    }
}
