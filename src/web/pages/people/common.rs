//! Small pieces every page of the area uses: ids from URLs, the success notice after a
//! redirect, the area's sub-navigation, a pager, a refusal page, write transactions,
//! checkboxes, and texts for `lab`'s reasons. Candidates for sharing with other areas
//! (`pager`, `refusal`, `write`, `parse_id`) once the panel has a common module.

use crate::lab::{Decision, Level, Reason};
use crate::web::http::{encode, Req, Resp};
use crate::web::i18n::{tr, Lang};
use crate::web::layout::notice;
use crate::web::pages::Ctx;
use jiff::tz::TimeZone;
use maud::{html, Markup};

/// The navigation entry of every page in the area.
pub const NAV: &str = "/members";

/// Longest id accepted in a URL or form (i64 has 19 digits; a longer string is not an id).
const ID_DIGITS_MAX: usize = 18;

/// A row id as typed in a URL or form: digits only, no sign, no spaces.
pub fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > ID_DIGITS_MAX || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Is a checkbox ticked? Browsers send "on"; tests and scripts may send "1" or "true".
pub fn checked(req: &Req, name: &str) -> bool {
    matches!(req.field(name), "on" | "1" | "true" | "yes")
}

/// The notice for `?ok=…` after a redirect. Only known keys show anything, so the URL
/// cannot put text of its choosing on the page.
pub fn ok_notice(lang: Lang, req: &Req) -> Option<Markup> {
    let text = match req.param("ok") {
        "created" => tr(lang, "Member added."),
        "saved" => tr(lang, "Changes saved."),
        "deleted" => tr(lang, "Member deleted; their history is kept anonymised."),
        "disabled" => tr(
            lang,
            "Member disabled: their card no longer opens machines.",
        ),
        "enabled" => tr(lang, "Member enabled."),
        "granted" => tr(lang, "Authorization granted."),
        "revoked" => tr(lang, "Authorization revoked."),
        "role-created" => tr(lang, "Role added."),
        "role-saved" => tr(lang, "Role saved."),
        "role-deleted" => tr(lang, "Role deleted."),
        "bulk" => {
            let n = parse_id(req.param("n")).unwrap_or(0);
            let text = format!("{} {n}", tr(lang, "New authorizations:"));
            return Some(notice("ok", &text));
        }
        _ => return None,
    };
    Some(notice("ok", text))
}

/// The warning for `?warn=card`: a card UID of unusual length was saved.
pub fn warn_notice(lang: Lang, req: &Req) -> Option<Markup> {
    (req.param("warn") == "card").then(|| {
        notice(
            "info",
            tr(
                lang,
                "This card UID does not have the usual 8 hexadecimal digits; check that the boards read it the same way.",
            ),
        )
    })
}

/// Links between the area's pages.
pub fn subnav(lang: Lang, current: &str) -> Markup {
    let entries = [
        ("/members", tr(lang, "Members")),
        ("/roles", tr(lang, "Roles")),
        ("/authorizations", tr(lang, "Authorizations")),
        ("/unknown-cards", tr(lang, "Unknown cards")),
    ];
    html! {
        nav.subnav {
            @for (href, label) in entries {
                a href=(href) class=[(href == current).then_some("current")] { (label) }
            }
        }
    }
}

/// "Page 2 of 5" with previous/next links; `query` is the list's other parameters,
/// already encoded (`q=anna&role=3`). Nothing when everything fits on one page.
pub fn pager(lang: Lang, base: &str, query: &str, page: i64, pages: i64) -> Markup {
    let link = |p: i64| {
        if query.is_empty() {
            format!("{base}?page={p}")
        } else {
            format!("{base}?{query}&page={p}")
        }
    };
    html! {
        @if pages > 1 {
            nav.pager {
                @if page > 1 { a.button.secondary href=(link(page - 1)) { "← " (tr(lang, "Previous")) } }
                span.muted { (tr(lang, "Page")) " " (page) " / " (pages) }
                @if page < pages { a.button.secondary href=(link(page + 1)) { (tr(lang, "Next")) " →" } }
            }
        }
    }
}

/// `key=value` pairs as a query string, leaving out empty values.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A page that says why something was refused, with a way back.
pub fn refusal(cx: &Ctx, status: u16, title: &str, message: &str, back: &str) -> Resp {
    let lang = cx.lang;
    cx.page(
        title,
        NAV,
        html! {
            (subnav(lang, ""))
            h1 { (title) }
            (notice("error", message))
            p { a.button.secondary href=(back) { "← " (tr(lang, "Back")) } }
        },
    )
    .status(status)
}

/// A plain "yes"/"no" cell.
pub fn yes_no(lang: Lang, v: bool) -> &'static str {
    if v {
        tr(lang, "yes")
    } else {
        tr(lang, "no")
    }
}

/// What `lab` decided, for staff.
pub fn decision_text(lang: Lang, d: Decision) -> &'static str {
    match d {
        Decision::Allowed(Level::Staff) => tr(lang, "allowed (role may use all machines)"),
        Decision::Allowed(_) => tr(lang, "allowed"),
        Decision::Denied(r) => reason_text(lang, r),
    }
}

pub fn reason_text(lang: Lang, r: Reason) -> &'static str {
    match r {
        Reason::UnknownCard => tr(lang, "unknown card"),
        Reason::Disabled => tr(lang, "refused: member is disabled"),
        Reason::Deleted => tr(lang, "refused: member was deleted"),
        Reason::MachineBlocked => tr(lang, "refused: machine is blocked"),
        Reason::NotAuthorized => tr(lang, "refused: no authorization"),
        Reason::NobodyElseIn => tr(lang, "refused: nobody else in the building"),
    }
}

/// Hours for people: "12.5 h", whole hours from 100 h on ("2534 h").
pub fn hours(seconds: i64) -> String {
    let h = seconds.max(0) as f64 / 3600.0;
    if h < 100.0 {
        format!("{h:.1} h")
    } else {
        format!("{h:.0} h")
    }
}

/// Unix seconds of the first day of the month, local midnight.
pub fn month_start(tz: &TimeZone, now: i64) -> i64 {
    jiff::Timestamp::from_second(now)
        .ok()
        .and_then(|t| t.to_zoned(tz.clone()).first_of_month().ok())
        .and_then(|z| z.start_of_day().ok())
        .map_or(now, |z| z.timestamp().as_second())
}

/// A message from `validate` for people: in English as written there (with its detail),
/// otherwise the translated `general` text.
pub fn invalid(lang: Lang, detail: String, general: &'static str) -> String {
    match lang {
        Lang::En => {
            let mut c = detail.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>() + ".",
                None => general.to_string(),
            }
        }
        _ => general.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_digits() {
        for (s, want) in [
            ("1", Some(1)),
            ("0042", Some(42)),
            ("", None),
            ("-1", None),
            ("+1", None),
            (" 1", None),
            ("1e3", None),
            ("abc", None),
            ("<script>", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(parse_id(s), want, "{s:?}");
        }
    }

    #[test]
    fn months_start_at_local_midnight() {
        let rome = crate::web::time::zone(Some("Europe/Rome"));
        // 2026-11-22 13:03 UTC → 2026-11-01 00:00 in Rome (23:00 UTC the day before).
        assert_eq!(month_start(&rome, 1_795_352_580), 1_793_487_600);
        assert_eq!(
            query_string(&[("q", "a b"), ("role", ""), ("state", "all")]),
            "q=a+b&state=all"
        );
        assert_eq!(
            (hours(5_400), hours(-5), hours(125_201_000)),
            ("1.5 h".into(), "0.0 h".into(), "34778 h".into())
        );
    }
}
