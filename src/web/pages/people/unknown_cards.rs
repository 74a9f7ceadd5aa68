//! Unknown cards: cards the boards refused (`unknown_cards`, written by `lab::check_card`
//! on every `checkuser`), grouped by card, newest first, each with a link to a member form
//! prefilled with it. Cards that now belong to a member drop out of the list; their rows
//! stay as history until the retention job removes them.

use super::common::{subnav, NAV};
use crate::store;
use crate::web::http::{encode, Resp};
use crate::web::i18n::tr;
use crate::web::pages::Ctx;
use crate::web::time;
use maud::html;

/// Cards listed at most (the table keeps 30 days).
const SHOWN: i64 = 200;

pub fn list(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let cards = match store::unknown_card_groups(cx.db, SHOWN) {
        Ok(c) => c,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        (subnav(lang, "/unknown-cards"))
        h1 { (tr(lang, "Unknown cards")) }
        p.muted { (tr(lang, "Cards the boards refused because no member holds them, most recent first. Create a member to give one its owner.")) }
        @if cards.is_empty() { p.muted { (tr(lang, "No unknown cards.")) } }
        @else {
            div.scroll { table {
                thead { tr {
                    th { (tr(lang, "Card UID")) } th { (tr(lang, "Attempts")) }
                    th { (tr(lang, "Last seen")) } th { (tr(lang, "Machine")) } th {}
                } }
                tbody {
                    @for c in &cards {
                        tr {
                            td { code { (c.card_uid) } }
                            td { (c.attempts) }
                            td { (time::datetime(&cx.tz, c.last_seen)) }
                            td { @match (&c.machine, c.machine_id) {
                                (Some(name), Some(id)) => a href={"/machines/" (id)} { (name) },
                                _ => span.muted { "—" },
                            } }
                            td { a.button.small href={"/members/new?card=" (encode(&c.card_uid))} { (tr(lang, "Create member")) } }
                        }
                    }
                }
            } }
        }
    };
    cx.page(tr(lang, "Unknown cards"), NAV, body)
}
