//! The outbox: messages waiting for the network, those that failed for good, and the last
//! ones delivered, with "retry now" and "discard". Only the recipient and subject of an
//! email are shown (never its body, which may hold a reset link, nor any SMTP password).

use super::Ctx;
use crate::store::{self, OutboxRow};
use crate::web::http::{Method, Resp};
use crate::web::i18n::tr;
use crate::web::layout::{csrf_field, notice};
use crate::web::time;
use maud::{html, Markup};

pub const IT: &[(&str, &str)] = &[
    ("Outbox", "Posta in uscita"),
    ("Waiting", "In attesa"),
    ("Failed", "Non consegnati"),
    ("Last delivered", "Ultimi consegnati"),
    ("Nothing here.", "Niente qui."),
    ("Retry now", "Riprova ora"),
    ("Discard", "Scarta"),
    ("Kind", "Tipo"),
    ("To", "A"),
    ("Subject", "Oggetto"),
    ("Queued", "In coda da"),
    ("Attempts", "Tentativi"),
    ("Next attempt", "Prossimo tentativo"),
    ("Error", "Errore"),
    ("Delivered", "Consegnato"),
    ("Email settings", "Impostazioni email"),
    (
        "Retry now in the outbox once fixed",
        "Una volta corrette, riprova dalla posta in uscita",
    ),
    (
        "Online: the last delivery attempt succeeded.",
        "In linea: l'ultimo tentativo di consegna è riuscito.",
    ),
    (
        "Offline: the last delivery attempt failed. Messages wait and are sent when the network is back.",
        "Non in linea: l'ultimo tentativo di consegna è fallito. I messaggi attendono e partono quando la rete torna.",
    ),
    (
        "No delivery attempted since the daemon started.",
        "Nessun tentativo di consegna dall'avvio del servizio.",
    ),
    ("Last success", "Ultimo successo"),
    ("Last failure", "Ultimo errore"),
];

pub fn route(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    Some(match (method, segments) {
        (Method::Get, ["outbox"]) => page(cx),
        (Method::Post, ["outbox", id, action @ ("retry" | "discard")]) => {
            let Ok(id) = id.parse::<i64>() else {
                return Some(cx.not_found());
            };
            act(cx, id, action)
        }
        _ => return None,
    })
}

fn act(cx: &mut Ctx, id: i64, action: &str) -> Resp {
    let done = if action == "retry" {
        store::outbox_retry_now(cx.db, id, cx.now)
    } else {
        store::outbox_discard(cx.db, id)
    };
    match done {
        Ok(true) => {
            if action == "retry" {
                // Staff want it tried now, even if its server is being left alone.
                if let Ok(Some(row)) = store::outbox_row(cx.db, id) {
                    crate::sync::holds::release_kind(&row.kind);
                }
                crate::sync::wake();
            }
            let staff = cx.session.as_ref().map_or(0, |s| s.member_id);
            log::info!("panel: member {staff}: outbox row {id} {action}");
            Resp::redirect("/outbox")
        }
        Ok(false) => cx.not_found(),
        Err(e) => cx.failure(&e),
    }
}

/// Where a row goes and what it says, from its JSON payload: an email's recipient and
/// subject, a webhook's host (never its secret path) and text, a calendar change's
/// calendar and event.
fn summary(row: &OutboxRow) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    match row.kind.as_str() {
        "webhook" => (crate::sync::webhook::redact(&s("url")), s("text")),
        "calendar" => {
            let what = v["event"]["summary"].as_str().unwrap_or("");
            (
                s("calendar_id"),
                format!("{} {what}", s("op")).trim().to_string(),
            )
        }
        _ => (s("to"), s("subject")),
    }
}

fn page(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let lists = (|| {
        Ok::<_, store::Error>((
            store::outbox_list(cx.db, "pending", 200)?,
            store::outbox_list(cx.db, "failed", 200)?,
            store::outbox_list(cx.db, "sent", 50)?,
        ))
    })();
    let (pending, failed, sent) = match lists {
        Ok(l) => l,
        Err(e) => return cx.failure(&e),
    };
    let status = crate::sync::status();
    let held = if pending.is_empty() {
        Vec::new()
    } else {
        crate::sync::holds::settings_problems(cx.now)
    };
    let body = html! {
        h1 { (tr(lang, "Outbox")) }
        @match status.online() {
            Some(true) => (notice("ok", tr(lang, "Online: the last delivery attempt succeeded."))),
            Some(false) => (notice("error", tr(lang, "Offline: the last delivery attempt failed. Messages wait and are sent when the network is back."))),
            // Nothing tried because the only waiting rows wait for settings: that line says it.
            None if !held.is_empty() => {}
            None => (notice("info", tr(lang, "No delivery attempted since the daemon started."))),
        }
        (settings_notices(cx, &held, "/outbox"))
        p {
            @if let Some(t) = status.last_success {
                (tr(lang, "Last success")) ": " (time::datetime(&cx.tz, t)) ". "
            }
            @if let Some((t, why)) = &status.last_failure {
                (tr(lang, "Last failure")) ": " (time::datetime(&cx.tz, *t)) " — " (why)
            }
        }
        h2 { (tr(lang, "Waiting")) " (" (pending.len()) ")" }
        (table(cx, &pending, true))
        h2 { (tr(lang, "Failed")) " (" (failed.len()) ")" }
        (table(cx, &failed, true))
        h2 { (tr(lang, "Last delivered")) }
        (table(cx, &sent, false))
    };
    cx.page(tr(lang, "Outbox"), "/outbox", body)
}

/// One line per kind held until staff fix its settings (`holds::settings_problems`: a
/// refused SMTP login, a calendar not shared with the service account…), with where to fix
/// it. `here` is the page's own path, which is not linked.
pub fn settings_notices(cx: &Ctx, held: &[(String, String)], here: &str) -> Markup {
    let lang = cx.lang;
    html! {
        @for (kind, why) in held {
            @let (text, fix, label) = if kind == "email" {
                ("Emails are waiting for the email settings:", "/settings#email", "Email settings")
            } else {
                ("Calendar or webhook changes are waiting for their settings:", "/outbox", "Retry now in the outbox once fixed")
            };
            p.notice.info role="status" {
                (tr(lang, text)) " " (why.trim_end_matches('.')) ". "
                @if fix.split('#').next() != Some(here) { a href=(fix) { (tr(lang, label)) } }
            }
        }
    }
}

fn table(cx: &Ctx, rows: &[OutboxRow], actions: bool) -> Markup {
    let lang = cx.lang;
    html! {
        @if rows.is_empty() {
            p.muted { (tr(lang, "Nothing here.")) }
        } @else {
            div.scroll { table.stack {
                thead { tr {
                    th { "#" } th { (tr(lang, "Kind")) } th { (tr(lang, "To")) } th { (tr(lang, "Subject")) }
                    th { (tr(lang, "Queued")) } th { (tr(lang, "Attempts")) }
                    @if actions { th { (tr(lang, "Next attempt")) } th { (tr(lang, "Error")) } th {} }
                    @else { th { (tr(lang, "Delivered")) } }
                } }
                tbody {
                    @for row in rows {
                        @let (to, subject) = summary(row);
                        tr data-outbox=(row.id) {
                            td data-label="#" { (row.id) }
                            td data-label=(tr(lang, "Kind")) { (row.kind) }
                            td data-label=(tr(lang, "To")) { (to) }
                            td data-label=(tr(lang, "Subject")) { (subject) }
                            td data-label=(tr(lang, "Queued")) { (time::datetime(&cx.tz, row.created_at)) }
                            td data-label=(tr(lang, "Attempts")) { (row.attempts) }
                            @if actions {
                                td data-label=(tr(lang, "Next attempt")) { @if row.state == "pending" { (time::datetime(&cx.tz, row.next_attempt_at)) } }
                                td data-label=(tr(lang, "Error")) { (row.last_error.as_deref().unwrap_or("")) }
                                td {
                                    form.inline method="post" action={"/outbox/" (row.id) "/retry"} {
                                        (csrf_field(cx.csrf())) button type="submit" { (tr(lang, "Retry now")) }
                                    }
                                    " "
                                    form.inline method="post" action={"/outbox/" (row.id) "/discard"} {
                                        (csrf_field(cx.csrf())) button.danger type="submit" { (tr(lang, "Discard")) }
                                    }
                                }
                            } @else {
                                td data-label=(tr(lang, "Delivered")) { (row.sent_at.map(|t| time::datetime(&cx.tz, t)).unwrap_or_default()) }
                            }
                        }
                    }
                }
            } }
        }
    }
}
