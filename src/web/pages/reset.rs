//! "Forgot your password?": a panel user asks for a link by email; the link (a token made
//! from a random nonce with the lab's key file, of which only SHA-256 is stored, the
//! outbox holding the nonce) works once, for 30 minutes, and ends the
//! member's sessions when it sets the new password. The answer to a request never says
//! whether the address has an account; the email is an outbox row written in the same
//! transaction as the token, and the sync worker sends it.

use super::Ctx;
use crate::store::{self, Result};
use crate::sync::email;
use crate::sync::outbox::Email;
use crate::web::accounts;
use crate::web::http::{Method, Resp};
use crate::web::i18n::{tr, Lang};
use crate::web::layout::notice;
use crate::web::session;
use maud::html;
use rusqlite::{params, Connection, OptionalExtension};

/// How long a reset link works.
pub const VALID_S: i64 = 30 * 60;
/// Links that may be outstanding for one member at a time (no mail bombing).
const MAX_OUTSTANDING: i64 = 3;
/// Shortest password accepted (as for a change in the panel).
const MIN_PASSWORD: usize = 10;

pub const IT: &[(&str, &str)] = &[
    ("Forgot your password?", "Hai dimenticato la password?"),
    (
        "Enter your email address. If it belongs to a panel account, we send you a link to choose a new password.",
        "Inserisci il tuo indirizzo email. Se appartiene a un account del pannello, ti mandiamo un link per scegliere una nuova password.",
    ),
    ("Send the link", "Invia il link"),
    (
        "If this address belongs to an account, a link is on its way. It works once, within 30 minutes.",
        "Se questo indirizzo appartiene a un account, un link è in arrivo. Funziona una sola volta, entro 30 minuti.",
    ),
    ("Choose a new password", "Scegli una nuova password"),
    (
        "This link does not work: it has expired, has been used already, or is wrong. Ask for a new one.",
        "Questo link non funziona: è scaduto, è già stato usato o è errato. Chiedine uno nuovo.",
    ),
    ("Ask for a new link", "Chiedi un nuovo link"),
    (
        "Password changed. You can log in with it now.",
        "Password cambiata. Ora puoi accedere con la nuova password.",
    ),
    ("Back to the login", "Torna all'accesso"),
    ("Reset your panel password", "Reimposta la password del pannello"),
    ("Hello", "Ciao"),
    (
        "Someone, hopefully you, asked for a new password for the lab's panel. Open this link within 30 minutes to choose one:",
        "Qualcuno, speriamo tu, ha chiesto una nuova password per il pannello del laboratorio. Apri questo link entro 30 minuti per sceglierla:",
    ),
    (
        "If you did not ask for it, ignore this email: your password stays as it is.",
        "Se non l'hai chiesto tu, ignora questa email: la tua password resta quella di prima.",
    ),
];

fn token_hash(token: &str) -> Vec<u8> {
    crate::sync::email::reset_token_hash(token)
}

/// The URLs of this area (no session needed); `None` when the path is not one of them.
pub fn route(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    Some(match (method, segments) {
        (Method::Get, ["password", "forgot"]) => forgot_form(cx, false),
        (Method::Post, ["password", "forgot"]) => forgot(cx),
        (Method::Get, ["password", "reset", token]) => reset_form(cx, token, None),
        (Method::Post, ["password", "reset", token]) => reset(cx, token),
        _ => return None,
    })
}

fn forgot_form(cx: &Ctx, asked: bool) -> Resp {
    let lang = cx.lang;
    cx.page(
        tr(lang, "Forgot your password?"),
        "",
        html! {
            div.narrow.panel {
                h1 { (tr(lang, "Forgot your password?")) }
                @if asked {
                    (notice("ok", tr(lang, "If this address belongs to an account, a link is on its way. It works once, within 30 minutes.")))
                } @else {
                    p { (tr(lang, "Enter your email address. If it belongs to a panel account, we send you a link to choose a new password.")) }
                    form.stack method="post" action="/password/forgot" {
                        label { (tr(lang, "Email"))
                            input type="email" name="email" required autocomplete="username" autofocus maxlength="254"; }
                        button type="submit" { (tr(lang, "Send the link")) }
                    }
                }
                p { a href="/login" { (tr(lang, "Back to the login")) } }
            }
        },
    )
}

/// Shortest time every answer to "send me a link" takes (see `forgot`).
const FORGOT_MIN_ANSWER: std::time::Duration = std::time::Duration::from_millis(250);

/// The answer is the same page whether or not the address has an account, and so is its
/// time: a known address commits a token and an email (an fsync, tens of milliseconds on
/// an SD card), an unknown one does not, so every answer is held to `FORGOT_MIN_ANSWER`
/// from the start. The request is rare; holding a web worker that long is acceptable.
fn forgot(cx: &mut Ctx) -> Resp {
    let started = std::time::Instant::now();
    let resp = forgot_now(cx);
    if let Some(rest) = FORGOT_MIN_ANSWER.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    resp
}

fn forgot_now(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    if !cx.req.same_origin() {
        return Resp::text(403, tr(lang, "The form expired. Please try again."));
    }
    let email = cx.req.field("email").trim().to_string();
    let base = cx.app.panel_url.clone();
    match request_reset(cx.db, &email, &base, cx.now) {
        Ok(Some(member_id)) => {
            crate::sync::wake();
            log::info!("panel: password reset link queued for member {member_id}");
        }
        Ok(None) => {
            log::info!("panel: password reset asked for an address without a panel account");
        }
        Err(e) => {
            log::error!("panel: password reset request: {e}");
        }
    }
    // The same answer whatever happened.
    forgot_form(cx, true)
}

/// Queues a reset email for the panel account of `email`, if there is one that may log
/// in, in one transaction with its token. Returns the member id when an email was queued.
pub fn request_reset(
    db: &mut Connection,
    email: &str,
    base: &str,
    now: i64,
) -> Result<Option<i64>> {
    if email.is_empty() || email.len() > 254 {
        return Ok(None);
    }
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(account) = accounts::account_by_email(&tx, email)? else {
        return Ok(None);
    };
    if !account.may_log_in {
        return Ok(None);
    }
    let (name, address, language): (String, String, Option<String>) = tx.query_row(
        "SELECT name, email, language FROM members WHERE member_id = ?1",
        [account.member_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let outstanding: i64 = tx.query_row(
        "SELECT COUNT(*) FROM password_resets WHERE member_id = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![account.member_id, now],
        |r| r.get(0),
    )?;
    if outstanding >= MAX_OUTSTANDING {
        log::warn!(
            "panel: member {} already has {outstanding} reset links outstanding; no new one",
            account.member_id
        );
        return Ok(None);
    }
    // The token is made from a nonce with the lab's key file, here for its hash and again
    // by the sync worker when it sends the email (sync::email::deliver): the outbox holds
    // the nonce, the table the hash, and no copy of the database a live link.
    let nonce = crate::broker::random_bytes(32);
    let token = email::reset_token(&tx, &nonce)?;
    tx.execute(
        "INSERT INTO password_resets (token_hash, member_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash(&token), account.member_id, now, now + VALID_S],
    )?;
    let lang = language
        .as_deref()
        .and_then(Lang::from_code)
        .or_else(|| {
            store::setting(&tx, "language")
                .ok()
                .flatten()
                .as_deref()
                .and_then(Lang::from_code)
        })
        .unwrap_or(Lang::En);
    let link = format!(
        "{}/password/reset/{}",
        base.trim_end_matches('/'),
        email::RESET_TOKEN_MARK
    );
    let mail = reset_email(lang, &name, &address, &link);
    store::enqueue_until(
        &tx,
        store::OutboxKind::Email,
        &email::reset_payload(&mail, &nonce),
        None,
        now,
        Some(now + VALID_S),
    )?;
    tx.commit()?;
    Ok(Some(account.member_id))
}

fn reset_email(lang: Lang, name: &str, to: &str, link: &str) -> Email {
    let hello = tr(lang, "Hello");
    let asked = tr(
        lang,
        "Someone, hopefully you, asked for a new password for the lab's panel. Open this link within 30 minutes to choose one:",
    );
    let ignore = tr(
        lang,
        "If you did not ask for it, ignore this email: your password stays as it is.",
    );
    let text = format!("{hello} {name},\n\n{asked}\n\n{link}\n\n{ignore}\n");
    let html = html! {
        (maud::DOCTYPE)
        html lang=(lang.code()) {
            body {
                p { (hello) " " (name) "," }
                p { (asked) }
                p { a href=(link) { (link) } }
                p { (ignore) }
            }
        }
    }
    .into_string();
    Email {
        to: to.to_string(),
        subject: tr(lang, "Reset your panel password").to_string(),
        text,
        html,
    }
}

/// The member a live token belongs to (unused, not expired, may still log in).
fn token_member(db: &Connection, token: &str, now: i64) -> Result<Option<i64>> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(db
        .query_row(
            "SELECT p.member_id FROM password_resets p
             JOIN members m ON m.member_id = p.member_id JOIN roles r ON r.role_id = m.role_id
             WHERE p.token_hash = ?1 AND p.used_at IS NULL AND p.expires_at > ?2
             AND r.backend_admin = 1 AND m.disabled = 0 AND m.deleted = 0",
            params![token_hash(token), now],
            |r| r.get(0),
        )
        .optional()?)
}

fn invalid(cx: &Ctx) -> Resp {
    let lang = cx.lang;
    cx.page(
        tr(lang, "Choose a new password"),
        "",
        html! {
            div.narrow.panel {
                h1 { (tr(lang, "Choose a new password")) }
                (notice("error", tr(lang, "This link does not work: it has expired, has been used already, or is wrong. Ask for a new one.")))
                p { a href="/password/forgot" { (tr(lang, "Ask for a new link")) } }
            }
        },
    )
    .status(404)
}

fn reset_form(cx: &Ctx, token: &str, error: Option<&str>) -> Resp {
    let lang = cx.lang;
    match token_member(cx.db, token, cx.now) {
        Ok(Some(_)) => {}
        Ok(None) => return invalid(cx),
        Err(e) => return cx.failure(&e),
    }
    let action = format!("/password/reset/{token}");
    cx.page(
        tr(lang, "Choose a new password"),
        "",
        html! {
            div.narrow.panel {
                h1 { (tr(lang, "Choose a new password")) }
                @if let Some(e) = error { (notice("error", e)) }
                form.stack method="post" action=(action) {
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

fn reset(cx: &mut Ctx, token: &str) -> Resp {
    let lang = cx.lang;
    if !cx.req.same_origin() {
        return Resp::text(403, tr(lang, "The form expired. Please try again."));
    }
    let (new, repeat) = (
        cx.req.field("new").to_string(),
        cx.req.field("repeat").to_string(),
    );
    if new != repeat {
        return reset_form(cx, token, Some(tr(lang, "The new passwords differ."))).status(400);
    }
    if new.chars().count() < MIN_PASSWORD {
        return reset_form(cx, token, Some(tr(lang, "Use at least 10 characters."))).status(400);
    }
    let _one_at_a_time = cx.app.hashing.lock();
    let now = cx.now;
    let result = (|| {
        let tx = cx
            .db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(member_id) = token_member(&tx, token, now)? else {
            return Ok(None);
        };
        // This link and every other outstanding one of the member stop working.
        tx.execute(
            "UPDATE password_resets SET used_at = ?2 WHERE member_id = ?1 AND used_at IS NULL",
            params![member_id, now],
        )?;
        accounts::set_password(&tx, member_id, &new, false)?;
        session::destroy_all(&tx, member_id)?;
        tx.commit()?;
        Ok::<_, store::Error>(Some(member_id))
    })();
    match result {
        Ok(Some(member_id)) => {
            log::info!("panel: member {member_id} set a new password with a reset link");
            cx.page(
                tr(lang, "Choose a new password"),
                "",
                html! {
                    div.narrow.panel {
                        h1 { (tr(lang, "Choose a new password")) }
                        (notice("ok", tr(lang, "Password changed. You can log in with it now.")))
                        p { a href="/login" { (tr(lang, "Log in")) } }
                    }
                },
            )
        }
        Ok(None) => invalid(cx),
        Err(e) => cx.failure(&e),
    }
}
