//! Panel pages: each module gathers what it shows from `store`/`lab` and renders it with
//! `layout`. `Ctx` is what a handler gets for one request.

pub mod dashboard;
pub mod login;
/// Outgoing messages waiting, failed and delivered.
pub mod outbox;
/// Members, roles, authorizations, unknown cards.
pub mod people;
/// The building register: who is in, history, phone links, wall screen.
pub mod presence;
/// Password reset by email.
pub mod reset;
/// Boards, system state, backups, settings.
pub mod system;
/// Machines, machine types, maintenance, usage history, exports.
pub mod workshop;

use super::http::{Method, Req, Resp};
use super::i18n::{tr, Lang};
use super::layout::{self, Frame};
use super::session::Session;
use super::App;
use jiff::tz::TimeZone;
use maud::{html, Markup};
use rusqlite::{Connection, Transaction, TransactionBehavior};

pub struct Ctx<'a> {
    pub app: &'a App,
    pub db: &'a mut Connection,
    pub req: &'a Req,
    pub session: Option<Session>,
    pub lang: Lang,
    pub now: i64,
    pub tz: TimeZone,
    pub lab_name: String,
}

impl Ctx<'_> {
    /// Does the logged-in member's role have `cap`? (What a page shows; what it does is
    /// decided by the guard in `routes`.)
    pub fn can(&self, cap: crate::web::access::Capability) -> bool {
        self.session.as_ref().is_some_and(|s| s.capability >= cap)
    }

    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }

    /// A whole page in the panel's frame.
    pub fn page(&self, title: &str, nav: &str, body: Markup) -> Resp {
        let frame = Frame {
            lang: self.lang,
            title,
            lab_name: &self.lab_name,
            user: self.session.as_ref().map(|s| s.name.as_str()),
            csrf: self.session.as_ref().map(|s| s.csrf.as_str()),
            nav,
        };
        Resp::html(layout::page(&frame, body))
    }

    pub fn not_found(&self) -> Resp {
        let lang = self.lang;
        self.page(
            "404",
            "",
            html! { h1 { "404" } (layout::notice("info", tr(lang, "Page not found."))) },
        )
        .status(404)
    }

    /// A store failure: logged, and the person sees a polite page.
    pub fn failure(&self, e: &crate::store::Error) -> Resp {
        log::error!("panel {}: {e}", self.req.path);
        let lang = self.lang;
        self.page(
            "500",
            "",
            html! { h1 { "500" } (layout::notice("error", tr(lang, "Something went wrong; it has been logged."))) },
        )
        .status(500)
    }
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction (the daemon writes the same file; an
/// immediate lock waits instead of failing on upgrade) and commits only when `f` accepts.
/// `Ok(Err(..))` is a refusal for the person: nothing was written.
pub fn write<T, E>(
    db: &mut Connection,
    f: impl FnOnce(&Transaction) -> crate::store::Result<Result<T, E>>,
) -> crate::store::Result<Result<T, E>> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcome = f(&tx)?;
    if outcome.is_ok() {
        tx.commit()?;
    }
    Ok(outcome)
}
