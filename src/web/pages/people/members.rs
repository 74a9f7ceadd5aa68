//! Member handlers: the searchable list, the member page (details, machines with what
//! `lab` decides, recent uses, hours), disable/enable, soft delete, and one-time panel
//! passwords. Adding and editing are in `member_form`, rendering in `member_views`.

use super::common::{self, parse_id, refusal, NAV};
use super::member_views::{self as views, Detail, ListView, MachineAccess};
use crate::lab;
use crate::store::{self, MemberFilter, MemberRow, MemberState};
use crate::web::accounts;
use crate::web::http::Resp;
use crate::web::i18n::tr;
use crate::web::pages::write;
use crate::web::pages::Ctx;
use crate::web::session;
use rusqlite::Connection;

/// Members per page of the list.
pub const PAGE_SIZE: i64 = 100;
/// Uses shown on a member's page.
const RECENT_USES: i64 = 20;
/// Unknown cards counted for the hint on the list (the page lists them).
const UNKNOWN_HINT_MAX: i64 = 100;

// ---------------------------------------------------------------------------------------
// List

pub fn list(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let req = cx.req;
    let role_id = parse_id(req.param("role"));
    let state = MemberState::from_code(req.param("state"));
    let card = match req.param("card") {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let page = parse_id(req.param("page")).unwrap_or(1).clamp(1, 1_000_000);
    let filter = MemberFilter {
        text: req.param("q"),
        role_id,
        state,
        has_card: card,
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let db: &Connection = cx.db;
    let gathered = (|| {
        let (rows, total) = store::search_members(db, &filter)?;
        let roles = store::roles(db)?;
        let unknown = store::unknown_card_groups(db, UNKNOWN_HINT_MAX)?.len();
        Ok::<_, store::Error>((rows, total, roles, unknown))
    })();
    let (rows, total, roles, unknown) = match gathered {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let view = ListView {
        lang,
        tz: &cx.tz,
        text: req.param("q"),
        role_id,
        state,
        card: req.param("card"),
        roles: &roles,
        rows: &rows,
        total,
        page,
        pages: (total + PAGE_SIZE - 1) / PAGE_SIZE,
        unknown,
        ok: common::ok_notice(lang, req),
    };
    cx.page(tr(lang, "Members"), NAV, views::list(&view))
}

pub(super) fn me(cx: &Ctx) -> i64 {
    cx.session.as_ref().map_or(0, |s| s.member_id)
}

/// The member, if it exists and is not deleted; otherwise the response to send.
pub(super) fn live_member(cx: &Ctx, id: i64) -> Result<MemberRow, Resp> {
    match store::member_row(cx.db, id) {
        Ok(Some(m)) if !m.deleted => Ok(m),
        Ok(Some(_)) => Err(refusal(
            cx,
            400,
            tr(cx.lang, "Deleted member"),
            tr(
                cx.lang,
                "This member was deleted; only their anonymised history remains.",
            ),
            &format!("/members/{id}"),
        )),
        Ok(None) => Err(cx.not_found()),
        Err(e) => Err(cx.failure(&e)),
    }
}

// ---------------------------------------------------------------------------------------
// The member page

pub fn detail(cx: &mut Ctx, id: i64) -> Resp {
    let lang = cx.lang;
    let db: &Connection = cx.db;
    let (now, month) = (cx.now, common::month_start(&cx.tz, cx.now));
    let gathered = (|| {
        let Some(row) = store::member_row(db, id)? else {
            return Ok(None);
        };
        let language = store::member_language(db, id)?;
        let panel_role = store::role(db, row.role_id)?.is_some_and(|r| r.backend_admin);
        let authorized = store::authorized_machine_ids(db, id)?;
        let member = store::member(db, id)?;
        let someone_else_in = lab::presence::someone_else_in(db, id)?;
        let machines = store::machines(db)?
            .into_iter()
            .map(|machine| {
                let is_authorized = authorized.contains(&machine.id);
                MachineAccess {
                    decision: member
                        .as_ref()
                        .map(|m| lab::may_use(m, &machine, is_authorized, someone_else_in)),
                    authorized: is_authorized,
                    access_open: machine.access_open,
                    id: machine.id,
                    name: machine.name,
                }
            })
            .collect();
        let uses = store::member_uses(db, id, RECENT_USES)?;
        let total_s = store::member_seconds(db, id, 0, now)?;
        let month_s = store::member_seconds(db, id, month, now)?;
        let (uses_count, interventions) = store::member_history_counts(db, id)?;
        Ok::<_, store::Error>(Some(Detail {
            member: row,
            language,
            panel_role,
            machines,
            uses,
            total_s,
            month_s,
            uses_count,
            interventions,
        }))
    })();
    let detail = match gathered {
        Ok(Some(d)) => d,
        Ok(None) => return cx.not_found(),
        Err(e) => return cx.failure(&e),
    };
    let notices: Vec<_> = [
        common::ok_notice(lang, cx.req),
        common::warn_notice(lang, cx.req),
    ]
    .into_iter()
    .flatten()
    .collect();
    let body = views::detail(
        lang,
        cx.csrf(),
        &cx.tz,
        now,
        me(cx) == id,
        &notices,
        &detail,
    );
    cx.page(&detail.member.full_name(), NAV, body)
}

// ---------------------------------------------------------------------------------------
// Disable, delete, panel password

pub fn set_disabled(cx: &mut Ctx, id: i64, disabled: bool) -> Resp {
    if let Err(resp) = live_member(cx, id) {
        return resp;
    }
    let (lang, me) = (cx.lang, me(cx));
    if disabled && id == me {
        let back = format!("/members/{id}");
        return refusal(
            cx,
            400,
            tr(lang, "Disable"),
            tr(lang, "You cannot disable yourself."),
            &back,
        );
    }
    let done = write(cx.db, |tx| {
        store::set_member_disabled(tx, id, disabled)?;
        if disabled {
            session::destroy_all(tx, id)?;
        }
        Ok(Ok::<_, ()>(()))
    });
    match done {
        Ok(_) => {
            let what = if disabled { "disabled" } else { "enabled" };
            log::info!("panel: member {me} {what} member {id}");
            Resp::redirect(&format!("/members/{id}?ok={what}"))
        }
        Err(e) => cx.failure(&e),
    }
}

pub fn delete_form(cx: &mut Ctx, id: i64) -> Resp {
    let m = match live_member(cx, id) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let lang = cx.lang;
    if id == me(cx) {
        let back = format!("/members/{id}");
        return refusal(
            cx,
            400,
            tr(lang, "Delete member"),
            tr(lang, "You cannot delete yourself."),
            &back,
        );
    }
    let counts = match store::member_history_counts(cx.db, id) {
        Ok(c) => c,
        Err(e) => return cx.failure(&e),
    };
    let body = views::delete_confirm(lang, cx.csrf(), &m, counts);
    cx.page(tr(lang, "Delete member"), NAV, body)
}

pub fn delete(cx: &mut Ctx, id: i64) -> Resp {
    if let Err(resp) = live_member(cx, id) {
        return resp;
    }
    let (lang, me) = (cx.lang, me(cx));
    if id == me {
        let back = format!("/members/{id}");
        return refusal(
            cx,
            400,
            tr(lang, "Delete member"),
            tr(lang, "You cannot delete yourself."),
            &back,
        );
    }
    let done = write(cx.db, |tx| {
        store::soft_delete_member(tx, id)?;
        session::destroy_all(tx, id)?;
        Ok(Ok::<_, ()>(()))
    });
    match done {
        Ok(_) => {
            log::info!("panel: member {me} deleted member {id} (anonymised, history kept)");
            Resp::redirect("/members?ok=deleted")
        }
        Err(e) => cx.failure(&e),
    }
}

/// Gives a panel member a new one-time password, shown once on this answer (a redirect
/// would need to keep it somewhere); it must be changed at their next login.
pub fn reset_password(cx: &mut Ctx, id: i64) -> Resp {
    let m = match live_member(cx, id) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let (lang, me) = (cx.lang, me(cx));
    let back = format!("/members/{id}");
    let title = tr(lang, "Panel password");
    if id == me {
        return refusal(
            cx,
            400,
            title,
            tr(lang, "Change your own password with Change password."),
            "/password",
        );
    }
    let panel_role = match store::role(cx.db, m.role_id) {
        Ok(r) => r.is_some_and(|r| r.backend_admin),
        Err(e) => return cx.failure(&e),
    };
    if !panel_role {
        let text = tr(
            lang,
            "Only members whose role may log into the panel get a panel password.",
        );
        return refusal(cx, 400, title, text, &back);
    }
    if m.email.as_deref().unwrap_or("").is_empty() {
        let text = tr(
            lang,
            "Add an email address first: it is the name they log in with.",
        );
        return refusal(cx, 400, title, text, &back);
    }
    let password = crate::passwords::generate();
    let done = {
        // argon2 takes 19 MiB: one hash at a time (see `web::App::hashing`).
        let _one_at_a_time = cx.app.hashing.lock();
        write(cx.db, |tx| {
            accounts::set_password(tx, id, &password, true)?;
            session::destroy_all(tx, id)?;
            Ok(Ok::<_, ()>(()))
        })
    };
    match done {
        Ok(_) => {
            log::info!("panel: member {me} set a one-time password for member {id}");
            let body = views::password_shown(lang, &m, &password);
            cx.page(title, NAV, body)
        }
        Err(e) => cx.failure(&e),
    }
}
