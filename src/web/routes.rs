//! Dispatches panel requests after the one guard: `access::need` says what each URL
//! needs (a URL it does not list is a 404), the session's capability must cover it, a
//! staff member may not act on panel accounts or hand out panel roles (only
//! administrators may), every POST needs the session's CSRF token and a same-origin
//! request, and a member who must change their password sees only the password form.

use super::access::{self, Capability, Need};
use super::http::{Method, Req, Resp};
use super::i18n::{tr, Lang};
use super::pages::{dashboard, login, outbox, people, presence, reset, system, workshop, Ctx};
use super::session::{self, COOKIE};
use super::{accounts, time, App};
use rusqlite::Connection;

const STYLE: &str = include_str!("../../assets/style.css");
const LIVE_JS: &str = include_str!("../../assets/live.js");
const ICON: &str = include_str!("../../assets/icon.svg");

pub fn handle(app: &App, db: &mut Connection, req: &Req) -> Resp {
    if let Some(asset) = asset(&req.path) {
        return asset;
    }
    let now = crate::store::now();
    let session = match req.cookie(COOKIE) {
        Some(token) => match session::load(
            db,
            token,
            now,
            app.cfg.session_idle_min * 60,
            app.cfg.session_max_days * 86_400,
        ) {
            Ok(s) => s,
            Err(e) => {
                log::error!("panel: loading a session: {e}");
                None
            }
        },
        None => None,
    };
    let lang = session
        .as_ref()
        .and_then(|s| s.language.as_deref())
        .and_then(Lang::from_code)
        .or_else(|| req.accept_language.as_deref().and_then(Lang::from_accept))
        .or_else(|| {
            crate::store::setting(db, "language")
                .ok()
                .flatten()
                .as_deref()
                .and_then(Lang::from_code)
        })
        .unwrap_or(Lang::En);
    let tz = time::zone(
        crate::store::setting(db, "timezone")
            .ok()
            .flatten()
            .as_deref(),
    );
    let lab_name = accounts::lab_name(db);
    let mut cx = Ctx {
        app,
        db,
        req,
        session,
        lang,
        now,
        tz,
        lab_name,
    };
    let resp = route(&mut cx);
    // Handlers commit before they answer: calendar changes they queued can go now.
    crate::sync::wake_if_queued();
    resp
}

fn route(cx: &mut Ctx) -> Resp {
    let method = cx.req.method;
    let path = cx.req.path.clone();
    let verb = match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Other => "OTHER",
    };
    let Some(need) = access::need(verb, &path) else {
        if method == Method::Other {
            return Resp::text(405, "Method not allowed.").header("Allow", "GET, POST");
        }
        return match (&cx.session, method) {
            (None, Method::Get) => Resp::redirect("/login"),
            (None, _) => Resp::text(403, "Log in first."),
            // Before the first password change every other URL leads to the form.
            (Some(s), _) if s.must_change_password => Resp::redirect("/password"),
            _ => cx.not_found(),
        };
    };
    let segments: Vec<String> = cx.req.segments().iter().map(|s| s.to_string()).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if need == Need::Public {
        return public(cx, method, &path, &segments);
    }
    let Some(session) = cx.session.clone() else {
        return match method {
            Method::Get => Resp::redirect("/login"),
            _ => Resp::text(403, "Log in first."),
        };
    };
    if !need.allows(Some(session.capability)) || escalates(cx, &session, &segments) {
        let (member, cap) = (session.member_id, session.capability.name());
        log::warn!("panel: {verb} {path} refused to member {member} ({cap}): not allowed");
        return denied(cx);
    }
    if method == Method::Post
        && (!cx.req.same_origin() || !session::csrf_ok(&session, cx.req.field("csrf")))
    {
        log::warn!("panel: POST {path} refused: bad CSRF token or cross-site origin");
        return Resp::text(403, tr(cx.lang, "The form expired. Please try again."));
    }
    match (method, path.as_str()) {
        (Method::Post, "/logout") => return login::logout(cx),
        (Method::Get, "/password") => return login::password_form(cx, None),
        (Method::Post, "/password") => return login::change_password(cx),
        _ => {}
    }
    if session.must_change_password {
        return Resp::redirect("/password");
    }
    match (method, path.as_str()) {
        (Method::Get, "/") => return dashboard::page(cx),
        (Method::Get, "/dashboard/cards") => return dashboard::fragment(cx),
        (Method::Get, "/events") => return dashboard::events(cx),
        _ => {}
    }
    // Each area of the panel owns the URLs under its first path segment.
    let routed = match segments.first().copied() {
        Some("members" | "roles" | "authorizations" | "unknown-cards") => {
            people::route(cx, method, &segments)
        }
        Some("machines" | "machine-types" | "maintenance" | "uses" | "exports") => {
            workshop::route(cx, method, &segments)
        }
        Some("system" | "boards" | "settings" | "backup") => system::route(cx, method, &segments),
        Some("presence") => presence::route(cx, method, &segments),
        Some("outbox") => outbox::route(cx, method, &segments),
        _ => None,
    };
    routed.unwrap_or_else(|| cx.not_found())
}

/// The routes anyone may use: the login, the assets, and links with their own secret.
fn public(cx: &mut Ctx, method: Method, path: &str, segments: &[&str]) -> Resp {
    if let Some(asset) = asset(path) {
        return asset;
    }
    match (method, path) {
        (Method::Get, "/login") => return login::form(cx, None, ""),
        (Method::Post, "/login") => return login::login(cx),
        _ => {}
    }
    let routed = match segments.first().copied() {
        Some("wall" | "in") => presence::public(cx, method, segments),
        Some("password") => reset::route(cx, method, segments),
        _ => None,
    };
    routed.unwrap_or_else(|| cx.not_found())
}

/// The text of a refusal by the guard (tests look for it).
pub const DENIED: &str = "Your role does not allow this.";

fn denied(cx: &Ctx) -> Resp {
    let lang = cx.lang;
    cx.page(
        "403",
        "",
        maud::html! { h1 { "403" } (super::layout::notice("error", tr(lang, DENIED))) },
    )
    .status(403)
}

/// Would this request give a non-administrator power over panel accounts? Staff manage
/// members, but a member who can log into the panel (their email, password, role, card,
/// state) and the roles that open the panel are the administrators' business: otherwise
/// staff could make themselves administrators through a member form or a reset email.
fn escalates(cx: &Ctx, session: &session::Session, segments: &[&str]) -> bool {
    if session.capability >= Capability::Administrator
        || cx.req.method != Method::Post
        || segments.first() != Some(&"members")
    {
        return false;
    }
    let panel_role = |role: i64| -> bool {
        cx.db
            .query_row(
                "SELECT panel_level > 0 FROM roles WHERE role_id = ?1",
                [role],
                |r| r.get::<_, bool>(0),
            )
            .unwrap_or(false)
    };
    // A role asked for in a member form.
    if let Ok(role) = cx.req.field("role").parse::<i64>() {
        if panel_role(role) {
            return true;
        }
    }
    // The member acted on.
    if let Some(id) = segments.get(1).and_then(|s| s.parse::<i64>().ok()) {
        let target: Option<i64> = cx
            .db
            .query_row(
                "SELECT role_id FROM members WHERE member_id = ?1",
                [id],
                |r| r.get(0),
            )
            .ok();
        if target.is_some_and(panel_role) {
            return true;
        }
    }
    false
}

fn asset(path: &str) -> Option<Resp> {
    let (body, kind) = match path {
        "/assets/style.css" => (STYLE, "text/css; charset=utf-8"),
        "/assets/live.js" => (LIVE_JS, "text/javascript; charset=utf-8"),
        "/assets/icon.svg" | "/favicon.ico" => (ICON, "image/svg+xml"),
        _ => return None,
    };
    Some(
        Resp::new(200, kind, body.as_bytes().to_vec())
            .header("Cache-Control", "public, max-age=3600"),
    )
}
