//! Logging in and out, and changing one's password (forced after a one-time password).

use super::Ctx;
use crate::web::accounts;
use crate::web::http::Resp;
use crate::web::i18n::tr;
use crate::web::layout::{csrf_field, notice};
use crate::web::session::{self, COOKIE};
use maud::html;

/// Shortest password accepted for the panel.
const MIN_PASSWORD: usize = 10;

pub fn form(cx: &Ctx, error: Option<&str>, email: &str) -> Resp {
    let lang = cx.lang;
    cx.page(
        tr(lang, "Log in"),
        "",
        html! {
            div.narrow.panel {
                h1 { (tr(lang, "Log in")) }
                @if let Some(e) = error { (notice("error", e)) }
                form.stack method="post" action="/login" {
                    label { (tr(lang, "Email"))
                        input type="email" name="email" value=(email) required autocomplete="username" autofocus; }
                    label { (tr(lang, "Password"))
                        input type="password" name="password" required autocomplete="current-password"; }
                    button type="submit" { (tr(lang, "Log in")) }
                }
                p { a href="/password/forgot" { (tr(lang, "Forgot your password?")) } }
            }
        },
    )
}

pub fn login(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    if !cx.req.same_origin() {
        return form(
            cx,
            Some(tr(lang, "The form expired. Please try again.")),
            "",
        )
        .status(403);
    }
    let email = cx.req.field("email").to_string();
    let password = cx.req.field("password").to_string();
    let ip = cx.req.remote.map(|a| a.to_string()).unwrap_or_default();
    let allowed = cx
        .app
        .throttle
        .lock()
        .map(|t| t.allowed(&ip, &email))
        .unwrap_or(false);
    if !allowed {
        log::warn!("panel: login throttled for {ip}");
        return form(
            cx,
            Some(tr(
                lang,
                "Too many failed attempts. Try again in 15 minutes.",
            )),
            &email,
        )
        .status(429);
    }
    let checked = {
        let _one_at_a_time = cx.app.hashing.lock();
        accounts::check_login(cx.db, &email, &password)
    };
    match checked {
        Ok(Some(member_id)) => {
            if let Ok(mut t) = cx.app.throttle.lock() {
                t.succeeded(&email);
            }
            match session::create(cx.db, member_id, cx.now) {
                Ok(token) => {
                    log::info!("panel: member {member_id} logged in");
                    Resp::redirect("/").header(
                        "Set-Cookie",
                        &cookie(cx, &token, cx.app.cfg.session_idle_min * 60),
                    )
                }
                Err(e) => cx.failure(&e),
            }
        }
        Ok(None) => {
            if let Ok(mut t) = cx.app.throttle.lock() {
                t.failed(&ip, &email);
            }
            log::warn!("panel: failed login from {ip}");
            form(cx, Some(tr(lang, "Wrong email or password.")), &email).status(401)
        }
        Err(e) => cx.failure(&e),
    }
}

pub fn cookie(cx: &Ctx, token: &str, max_age_s: i64) -> String {
    let secure = if cx.app.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

pub fn logout(cx: &mut Ctx) -> Resp {
    if let Some(token) = cx.req.cookie(COOKIE) {
        if let Err(e) = session::destroy(cx.db, token) {
            return cx.failure(&e);
        }
    }
    Resp::redirect("/login").header("Set-Cookie", &cookie(cx, "", 0))
}

pub fn password_form(cx: &Ctx, message: Option<(&str, &str)>) -> Resp {
    let lang = cx.lang;
    let forced = cx.session.as_ref().is_some_and(|s| s.must_change_password);
    cx.page(
        tr(lang, "Change password"),
        "",
        html! {
            div.narrow.panel {
                h1 { (tr(lang, "Change password")) }
                @if forced { (notice("info", tr(lang, "Choose a new password before you continue."))) }
                @if let Some((kind, text)) = message { (notice(kind, text)) }
                form.stack method="post" action="/password" {
                    (csrf_field(cx.csrf()))
                    label { (tr(lang, "Current password"))
                        input type="password" name="current" required autocomplete="current-password"; }
                    label { (tr(lang, "New password"))
                        input type="password" name="new" required minlength=(MIN_PASSWORD) autocomplete="new-password"; }
                    label { (tr(lang, "Repeat the new password"))
                        input type="password" name="repeat" required minlength=(MIN_PASSWORD) autocomplete="new-password"; }
                    button type="submit" { (tr(lang, "Save")) }
                }
            }
        },
    )
}

pub fn change_password(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let Some(member_id) = cx.session.as_ref().map(|s| s.member_id) else {
        return Resp::redirect("/login");
    };
    let (current, new, repeat) = (
        cx.req.field("current"),
        cx.req.field("new"),
        cx.req.field("repeat"),
    );
    if new != repeat {
        return password_form(cx, Some(("error", tr(lang, "The new passwords differ."))))
            .status(400);
    }
    if new.chars().count() < MIN_PASSWORD {
        return password_form(cx, Some(("error", tr(lang, "Use at least 10 characters."))))
            .status(400);
    }
    let _one_at_a_time = cx.app.hashing.lock();
    let stored = match accounts::password_hash(cx.db, member_id) {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => return cx.failure(&e),
    };
    if crate::passwords::verify(&stored, current) == crate::passwords::Verdict::Wrong {
        return password_form(
            cx,
            Some(("error", tr(lang, "The current password is wrong."))),
        )
        .status(400);
    }
    let result = (|| {
        let tx = cx.db.transaction()?;
        accounts::set_password(&tx, member_id, new, false)?;
        // Every other session of this member ends; this one continues with a new token.
        session::destroy_all(&tx, member_id)?;
        let token = session::create(&tx, member_id, cx.now)?;
        tx.commit()?;
        Ok::<_, crate::store::Error>(token)
    })();
    match result {
        Ok(token) => {
            log::info!("panel: member {member_id} changed their password");
            Resp::redirect("/").header(
                "Set-Cookie",
                &cookie(cx, &token, cx.app.cfg.session_idle_min * 60),
            )
        }
        Err(e) => cx.failure(&e),
    }
}
