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
    let ip = throttle_key(cx.req.remote);
    let wait = cx
        .app
        .throttle
        .lock()
        .map(|t| t.wait(&ip, &email))
        .unwrap_or(session::MAX_DELAY);
    if !wait.is_zero() {
        // Not logged: each refusal is the attacker's, and the waits already pace them.
        // Rounded up: a client that waits this long is let through.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let text = tr(
            lang,
            "Too many failed attempts from here. Wait a moment and try again.",
        );
        return form(cx, Some(&format!("{text} ({secs} s)")), &email)
            .status(429)
            .header("Retry-After", &secs.to_string());
    }
    // The answer waits for the lab's slowest check (accounts::LoginFloor) from the start
    // of its own: its time does not tell an unknown address from an argon2 or an
    // imported account.
    let (checked, floor, began) = {
        let _one_at_a_time = cx.app.hashing.lock();
        let floor = cx
            .app
            .login_floor
            .lock()
            .map(|mut f| f.get(cx.db))
            .unwrap_or_default();
        let began = std::time::Instant::now();
        let checked = accounts::check_login(cx.db, &email, &password);
        if matches!(checked, Ok(None)) {
            if let Ok(mut f) = cx.app.login_floor.lock() {
                f.saw(began.elapsed());
            }
        }
        (checked, floor, began)
    };
    if let Some(rest) = floor.checked_sub(began.elapsed()) {
        std::thread::sleep(rest);
    }
    match checked {
        Ok(Some(member_id)) => {
            if let Ok(mut t) = cx.app.throttle.lock() {
                t.succeeded(&ip, &email);
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
            let imposed = cx
                .app
                .throttle
                .lock()
                .map(|mut t| t.failed(&ip, &email))
                .unwrap_or_default();
            log::warn!(
                "panel: failed login from {ip}; next try from there in {} s",
                imposed.as_secs()
            );
            form(cx, Some(tr(lang, "Wrong email or password.")), &email).status(401)
        }
        Err(e) => cx.failure(&e),
    }
}

/// The address a login is counted under: an IPv4 address, or an IPv6 /64 (one host on
/// the LAN can pick any address of its /64 at will).
fn throttle_key(remote: Option<std::net::IpAddr>) -> String {
    match remote {
        Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        Some(ip) => ip.to_string(),
        None => String::new(),
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

/// Does this member still have the placeholder address of a fresh lab's first
/// administrator (`web.first_admin_email` unset)? Then the first login asks for theirs.
fn placeholder_email(cx: &Ctx, member_id: i64) -> bool {
    cx.db
        .query_row(
            "SELECT email = ?2 COLLATE NOCASE FROM members WHERE member_id = ?1",
            rusqlite::params![member_id, accounts::FIRST_ADMIN_EMAIL],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false)
}

pub fn password_form(cx: &Ctx, message: Option<(&str, &str)>) -> Resp {
    let lang = cx.lang;
    let forced = cx.session.as_ref().is_some_and(|s| s.must_change_password);
    let ask_email = cx
        .session
        .as_ref()
        .is_some_and(|s| placeholder_email(cx, s.member_id));
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
                    @if ask_email {
                        label { (tr(lang, "Your email address (to log in and to get reset links)"))
                            input type="email" name="email" maxlength="254" autocomplete="email"; }
                    }
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
    // Optional: empty keeps the placeholder (the form asks again at the next change).
    let typed = cx.req.field("email").trim();
    let new_email = if !typed.is_empty() && placeholder_email(cx, member_id) {
        match crate::validate::email(typed) {
            Ok(e) if !e.eq_ignore_ascii_case(accounts::FIRST_ADMIN_EMAIL) => Some(e),
            _ => {
                return password_form(
                    cx,
                    Some(("error", tr(lang, "Enter a valid email address."))),
                )
                .status(400)
            }
        }
    } else {
        None
    };
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
        if let Some(email) = &new_email {
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM members WHERE email = ?1 COLLATE NOCASE AND member_id <> ?2)",
                rusqlite::params![email, member_id],
                |r| r.get(0),
            )?;
            if taken {
                return Err(crate::store::Error::Invalid("taken".into()));
            }
            tx.execute(
                "UPDATE members SET email = ?2 WHERE member_id = ?1",
                rusqlite::params![member_id, email],
            )?;
        }
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
        Err(crate::store::Error::Invalid(_)) => password_form(
            cx,
            Some((
                "error",
                tr(lang, "This email address belongs to another member."),
            )),
        )
        .status(400),
        Err(e) => cx.failure(&e),
    }
}
