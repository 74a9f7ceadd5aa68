//! Every panel URL in one table. Pages other than the login and the assets need a
//! session; every POST needs the session's CSRF token and a same-origin request; a member
//! who must change their password sees only the password form.

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
        Some(token) => match session::load(db, token, now, app.cfg.session_idle_min * 60) {
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
    match (method, path.as_str()) {
        (Method::Get, "/login") => return login::form(cx, None, ""),
        (Method::Post, "/login") => return login::login(cx),
        _ => {}
    }
    // The wall screen and phone sign-in links carry their own secret and need no login.
    let public: Vec<String> = cx.req.segments().iter().map(|s| s.to_string()).collect();
    let public: Vec<&str> = public.iter().map(String::as_str).collect();
    if matches!(public.first(), Some(&"wall") | Some(&"in")) {
        return presence::public(cx, method, &public).unwrap_or_else(|| cx.not_found());
    }
    // Password reset by email: the link carries its own secret.
    if matches!(
        public.as_slice(),
        ["password", "forgot"] | ["password", "reset", _]
    ) {
        return reset::route(cx, method, &public).unwrap_or_else(|| cx.not_found());
    }
    let Some(session) = cx.session.clone() else {
        return match method {
            Method::Get => Resp::redirect("/login"),
            _ => Resp::text(403, "Log in first."),
        };
    };
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
    if method == Method::Other {
        return Resp::text(405, "Method not allowed.").header("Allow", "GET, POST");
    }
    match (method, path.as_str()) {
        (Method::Get, "/") => return dashboard::page(cx),
        (Method::Get, "/dashboard/cards") => return dashboard::fragment(cx),
        (Method::Get, "/events") => return dashboard::events(cx),
        _ => {}
    }
    // Each area of the panel owns the URLs under its first path segment.
    let segments: Vec<String> = cx.req.segments().iter().map(|s| s.to_string()).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
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
