//! The building register in the panel: who is in now, signing members in and out, today's
//! visits and history with a CSV export, phone sign-in links, and a read-only wall screen
//! behind its own secret URL. The rules are `lab::presence`; this only shows and asks.

use super::{Ctx, Method};
use crate::lab::presence::{self, Change};
use crate::store;
use crate::web::http::{encode, Resp};
use crate::web::i18n::tr;
use crate::web::layout::{csrf_field, notice};
use crate::web::{csv, time};
use maud::{html, Markup, DOCTYPE};

/// Italian texts of this area (see `web::i18n`).
pub const IT: &[(&str, &str)] = &[
    ("Building", "Edificio"),
    ("In the building now", "Nell'edificio ora"),
    ("Nobody is in.", "Non c'è nessuno."),
    ("Sign in", "Registra ingresso"),
    ("Sign out", "Registra uscita"),
    ("Visits today", "Visite di oggi"),
    ("History", "Storico"),
    ("From", "Dal"),
    ("To", "Al"),
    ("Member", "Socio"),
    ("All members", "Tutti i soci"),
    ("Show", "Mostra"),
    ("Export CSV", "Esporta CSV"),
    ("In", "Entrata"),
    ("Out", "Uscita"),
    ("automatic", "automatica"),
    ("still in", "ancora dentro"),
    ("Phone links", "Link per il telefono"),
    ("A personal link lets a member sign in and out from their phone without a card.", "Un link personale permette a un socio di registrare entrata e uscita dal telefono, senza tessera."),
    ("Create a link", "Crea un link"),
    ("Revoke links", "Revoca i link"),
    ("Send this link to the member; it is shown only now:", "Invia questo link al socio; è mostrato solo ora:"),
    ("Links revoked.", "Link revocati."),
    ("Wall screen", "Schermo a parete"),
    ("A read-only page for a screen at the entrance. Anyone with the address can see who is in.", "Una pagina di sola lettura per uno schermo all'ingresso. Chiunque abbia l'indirizzo vede chi è dentro."),
    ("New address", "Nuovo indirizzo"),
    ("Signed in.", "Ingresso registrato."),
    ("Signed out.", "Uscita registrata."),
    ("Nothing to change.", "Niente da cambiare."),
    ("This member may not sign in.", "Questo socio non può entrare."),
    ("This link is not valid (any more).", "Questo link non è (più) valido."),
    ("You are in the building since", "Sei nell'edificio dalle"),
    ("You are not in the building.", "Non sei nell'edificio."),
    ("Dates are year-month-day, e.g. 2026-11-22.", "Le date sono anno-mese-giorno, es. 2026-11-22."),
    ("source", "origine"),
];

/// The URLs of this area for logged-in staff; `None` when the path is not one of them.
pub fn route(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    Some(match (method, segments) {
        (Method::Get, ["presence"]) => page(cx, None),
        (Method::Get, ["presence", "export.csv"]) => export(cx),
        (Method::Post, ["presence", "sign-in"]) => change(cx, true),
        (Method::Post, ["presence", "sign-out"]) => change(cx, false),
        (Method::Post, ["presence", "link"]) => link(cx),
        (Method::Post, ["presence", "wall"]) => new_wall(cx),
        _ => return None,
    })
}

/// Pages that need no login: the wall screen and the phone links (the secret in the URL is
/// the permission).
pub fn public(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    Some(match (method, segments) {
        (Method::Get, ["wall", secret]) => wall(cx, secret),
        (Method::Get, ["in", token]) => phone(cx, token, None),
        (Method::Post, ["in", token]) => phone_toggle(cx, token),
        _ => return None,
    })
}

fn full(name: &str, surname: &str) -> String {
    if surname.is_empty() {
        name.to_string()
    } else {
        format!("{name} {surname}")
    }
}

/// The history window from `from`/`to` query dates (lab time zone), default the last week.
fn window(cx: &Ctx) -> Result<(i64, i64, String, String), ()> {
    let parse = |s: &str| -> Result<Option<i64>, ()> {
        if s.is_empty() {
            return Ok(None);
        }
        let date: jiff::civil::Date = s.parse().map_err(|_| ())?;
        let z = date.to_zoned(cx.tz.clone()).map_err(|_| ())?;
        Ok(Some(z.timestamp().as_second()))
    };
    let (from_s, to_s) = (
        cx.req.param("from").to_string(),
        cx.req.param("to").to_string(),
    );
    let from = parse(&from_s)?.unwrap_or(cx.now - 7 * 86_400);
    let to = parse(&to_s)?.map_or(cx.now + 1, |t| t + 86_400);
    Ok((from, to, from_s, to_s))
}

fn page(cx: &mut Ctx, shown_link: Option<String>) -> Resp {
    let lang = cx.lang;
    let Ok((from, to, from_s, to_s)) = window(cx) else {
        return cx
            .page(
                tr(lang, "Building"),
                "/presence",
                notice(
                    "error",
                    tr(lang, "Dates are year-month-day, e.g. 2026-11-22."),
                ),
            )
            .status(400);
    };
    let member: Option<i64> = cx.req.param("member").parse().ok();
    let (day, _) = time::day_and_week_start(&cx.tz, cx.now);
    let data = (|| {
        Ok::<_, store::Error>((
            store::present(cx.db)?,
            store::members_not_in(cx.db)?,
            store::presence_between(cx.db, day, cx.now + 1, None, 10_000)?.len(),
            store::presence_between(cx.db, from, to, member, 500)?,
            store::member_rows(cx.db)?,
            store::secret(cx.db, "wall_secret")?,
        ))
    })();
    let (inside, outside, today, history, members, wall) = match data {
        Ok(d) => d,
        Err(e) => return cx.failure(&e),
    };
    let ok = match cx.req.param("ok") {
        "in" => Some(tr(lang, "Signed in.")),
        "out" => Some(tr(lang, "Signed out.")),
        "same" => Some(tr(lang, "Nothing to change.")),
        "revoked" => Some(tr(lang, "Links revoked.")),
        _ => None,
    };
    let refused = cx.req.param("error") == "refused";
    let export = format!(
        "/presence/export.csv?from={}&to={}&member={}",
        encode(&from_s),
        encode(&to_s),
        member.map_or(String::new(), |m| m.to_string())
    );
    let body = html! {
        h1 { (tr(lang, "Building")) }
        @if let Some(text) = ok { (notice("ok", text)) }
        @if refused { (notice("error", tr(lang, "This member may not sign in."))) }
        @if let Some(url) = &shown_link {
            div.notice.info { (tr(lang, "Send this link to the member; it is shown only now:")) br; code { (url) } }
        }
        section.counters {
            div.counter { b { (inside.len()) } span { (tr(lang, "In the building now")) } }
            div.counter { b { (today) } span { (tr(lang, "Visits today")) } }
        }
        h2 { (tr(lang, "In the building now")) }
        @if inside.is_empty() { p.muted { (tr(lang, "Nobody is in.")) } }
        @else {
            div.scroll { table {
                tbody {
                    @for p in &inside {
                        tr {
                            td { (full(&p.name, &p.surname)) }
                            td { (tr(lang, "since")) " " (time::clock(&cx.tz, p.signed_in_at)) }
                            td.muted { (p.in_source) }
                            td { form method="post" action="/presence/sign-out" {
                                (csrf_field(cx.csrf()))
                                input type="hidden" name="member" value=(p.member_id);
                                button.secondary type="submit" { (tr(lang, "Sign out")) }
                            } }
                        }
                    }
                }
            } }
        }
        form.inline method="post" action="/presence/sign-in" {
            (csrf_field(cx.csrf()))
            select name="member" required {
                @for (id, name) in &outside { option value=(id) { (name) } }
            }
            button type="submit" { (tr(lang, "Sign in")) }
        }
        h2 { (tr(lang, "History")) }
        form.inline method="get" action="/presence" {
            label { (tr(lang, "From")) input type="date" name="from" value=(from_s); }
            label { (tr(lang, "To")) input type="date" name="to" value=(to_s); }
            label { (tr(lang, "Member"))
                select name="member" {
                    option value="" { (tr(lang, "All members")) }
                    @for m in &members { option value=(m.id) selected[member == Some(m.id)] { (full(&m.name, &m.surname)) } }
                }
            }
            button.secondary type="submit" { (tr(lang, "Show")) }
            a.button.secondary href=(export) { (tr(lang, "Export CSV")) }
        }
        (history_table(cx, &history))
        h2 { (tr(lang, "Phone links")) }
        p.muted { (tr(lang, "A personal link lets a member sign in and out from their phone without a card.")) }
        form.inline method="post" action="/presence/link" {
            (csrf_field(cx.csrf()))
            select name="member" required {
                @for m in members.iter().filter(|m| !m.deleted) { option value=(m.id) { (full(&m.name, &m.surname)) } }
            }
            button type="submit" name="action" value="create" { (tr(lang, "Create a link")) }
            button.secondary type="submit" name="action" value="revoke" { (tr(lang, "Revoke links")) }
        }
        h2 { (tr(lang, "Wall screen")) }
        p.muted { (tr(lang, "A read-only page for a screen at the entrance. Anyone with the address can see who is in.")) }
        @if let Some(secret) = &wall { p { a href={"/wall/" (secret)} { "/wall/" (secret) } } }
        form method="post" action="/presence/wall" {
            (csrf_field(cx.csrf()))
            button.secondary type="submit" { (tr(lang, "New address")) }
        }
    };
    cx.page(tr(lang, "Building"), "/presence", body)
}

fn history_table(cx: &Ctx, rows: &[store::PresenceRow]) -> Markup {
    let lang = cx.lang;
    html! {
        div.scroll { table {
            thead { tr { th { (tr(lang, "Member")) } th { (tr(lang, "In")) } th { (tr(lang, "Out")) } th { (tr(lang, "source")) } } }
            tbody {
                @for p in rows {
                    tr {
                        td { (full(&p.name, &p.surname)) }
                        td { (time::datetime(&cx.tz, p.signed_in_at)) }
                        td {
                            @match p.signed_out_at {
                                Some(t) => { (time::datetime(&cx.tz, t)) @if p.automatic { " " span.badge.due { (tr(lang, "automatic")) } } }
                                None => { span.badge.busy { (tr(lang, "still in")) } }
                            }
                        }
                        td.muted { (p.in_source) @if let Some(o) = &p.out_source { " → " (o) } }
                    }
                }
            }
        } }
    }
}

fn export(cx: &mut Ctx) -> Resp {
    let Ok((from, to, _, _)) = window(cx) else {
        return Resp::text(400, "Dates are year-month-day, e.g. 2026-11-22.");
    };
    let member: Option<i64> = cx.req.param("member").parse().ok();
    let rows = match store::presence_between(cx.db, from, to, member, 1_000_000) {
        Ok(r) => r,
        Err(e) => return cx.failure(&e),
    };
    let mut out = csv::row(&[
        "member_id",
        "name",
        "surname",
        "signed_in",
        "signed_out",
        "automatic",
        "in_source",
        "out_source",
    ]);
    for p in rows {
        out.push_str(&csv::row(&[
            p.member_id.to_string(),
            p.name,
            p.surname,
            time::datetime(&cx.tz, p.signed_in_at),
            p.signed_out_at
                .map(|t| time::datetime(&cx.tz, t))
                .unwrap_or_default(),
            p.automatic.to_string(),
            p.in_source,
            p.out_source.unwrap_or_default(),
        ]));
    }
    Resp::new(200, "text/csv; charset=utf-8", out.into_bytes()).header(
        "Content-Disposition",
        "attachment; filename=\"presence.csv\"",
    )
}

fn change(cx: &mut Ctx, sign_in: bool) -> Resp {
    let Ok(member_id) = cx.req.field("member").parse::<i64>() else {
        return Resp::text(400, "Choose a member.");
    };
    let result = (|| {
        let tx = cx.db.transaction()?;
        let outcome = if sign_in {
            match store::member(&tx, member_id)? {
                Some(m) => Some(presence::sign_in(&tx, &m, presence::PANEL, cx.now)?),
                None => None,
            }
        } else {
            Some(presence::sign_out(&tx, member_id, presence::PANEL, cx.now)?)
        };
        tx.commit()?;
        Ok::<_, store::Error>(outcome)
    })();
    match result {
        Ok(None) => cx.not_found(),
        Ok(Some(Change::Done)) => Resp::redirect(if sign_in {
            "/presence?ok=in"
        } else {
            "/presence?ok=out"
        }),
        Ok(Some(Change::Unchanged)) => Resp::redirect("/presence?ok=same"),
        Ok(Some(Change::Refused(_))) => Resp::redirect("/presence?error=refused"),
        Err(e) => cx.failure(&e),
    }
}

fn link(cx: &mut Ctx) -> Resp {
    let Ok(member_id) = cx.req.field("member").parse::<i64>() else {
        return Resp::text(400, "Choose a member.");
    };
    let create = cx.req.field("action") != "revoke";
    let result = (|| {
        let tx = cx.db.transaction()?;
        if store::member(&tx, member_id)?.is_none() {
            return Ok(None);
        }
        let token = if create {
            Some(presence::create_link(&tx, member_id, cx.now)?)
        } else {
            presence::revoke_link(&tx, member_id, cx.now)?;
            None
        };
        tx.commit()?;
        Ok::<_, store::Error>(Some(token))
    })();
    match result {
        Ok(None) => cx.not_found(),
        Ok(Some(Some(token))) => {
            let host = cx.req.host.clone().unwrap_or_else(|| "fabgate".into());
            let scheme = if cx.app.secure_cookies {
                "https"
            } else {
                "http"
            };
            page(cx, Some(format!("{scheme}://{host}/in/{token}")))
        }
        Ok(Some(None)) => Resp::redirect("/presence?ok=revoked"),
        Err(e) => cx.failure(&e),
    }
}

fn new_wall(cx: &mut Ctx) -> Resp {
    match store::set_secret(cx.db, "wall_secret", &crate::broker::random_hex(16)) {
        Ok(()) => Resp::redirect("/presence"),
        Err(e) => cx.failure(&e),
    }
}

/// A bare page (no navigation: these visitors are not staff).
fn bare(cx: &Ctx, title: &str, refresh: Option<u32>, body: Markup) -> Resp {
    Resp::html(html! {
        (DOCTYPE)
        html lang=(cx.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = refresh { meta http-equiv="refresh" content=(s); }
                title { (title) " · " (cx.lab_name) }
                link rel="stylesheet" href="/assets/style.css";
            }
            body { main { (body) } }
        }
    })
}

fn wall(cx: &mut Ctx, secret: &str) -> Resp {
    let lang = cx.lang;
    let expected = store::secret(cx.db, "wall_secret").ok().flatten();
    let ok = expected.is_some_and(|e| {
        e.len() == secret.len()
            && subtle::ConstantTimeEq::ct_eq(e.as_bytes(), secret.as_bytes()).into()
    });
    if !ok {
        return cx.not_found();
    }
    let inside = match store::present(cx.db) {
        Ok(p) => p,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        h1 { (cx.lab_name) " · " (tr(lang, "In the building now")) ": " (inside.len()) }
        @if inside.is_empty() { p.muted { (tr(lang, "Nobody is in.")) } }
        div.cards {
            @for p in &inside {
                article.card.free { h3 { (full(&p.name, &p.surname)) } div.meta { (tr(lang, "since")) " " (time::clock(&cx.tz, p.signed_in_at)) } }
            }
        }
    };
    bare(cx, tr(lang, "Wall screen"), Some(15), body)
}

fn phone(cx: &mut Ctx, token: &str, message: Option<&str>) -> Resp {
    let lang = cx.lang;
    let member = match presence::link_member(cx.db, token) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return bare(
                cx,
                tr(lang, "Building"),
                None,
                notice("error", tr(lang, "This link is not valid (any more).")),
            )
            .status(404)
        }
        Err(e) => return cx.failure(&e),
    };
    let open = match store::open_presence(cx.db, member.id) {
        Ok(o) => o,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        div.narrow.panel {
            h1 { (member.name) }
            @if let Some(m) = message { (notice("ok", m)) }
            @match &open {
                Some(p) => { p { (tr(lang, "You are in the building since")) " " (time::clock(&cx.tz, p.signed_in_at)) } }
                None => { p { (tr(lang, "You are not in the building.")) } }
            }
            form.stack method="post" action={"/in/" (token)} {
                button type="submit" { (if open.is_some() { tr(lang, "Sign out") } else { tr(lang, "Sign in") }) }
            }
        }
    };
    bare(cx, tr(lang, "Building"), None, body)
}

fn phone_toggle(cx: &mut Ctx, token: &str) -> Resp {
    let lang = cx.lang;
    if !cx.req.same_origin() {
        return Resp::text(403, "Cross-site request refused.");
    }
    let result = (|| {
        let tx = cx.db.transaction()?;
        let Some(member) = presence::link_member(&tx, token)? else {
            return Ok(None);
        };
        let change = if store::open_presence(&tx, member.id)?.is_some() {
            (
                presence::sign_out(&tx, member.id, presence::LINK, cx.now)?,
                false,
            )
        } else {
            (
                presence::sign_in(&tx, &member, presence::LINK, cx.now)?,
                true,
            )
        };
        tx.commit()?;
        Ok::<_, store::Error>(Some(change))
    })();
    match result {
        Ok(None) => phone(cx, token, None),
        Ok(Some((Change::Done, true))) => phone(cx, token, Some(tr(lang, "Signed in."))),
        Ok(Some((Change::Done, false))) => phone(cx, token, Some(tr(lang, "Signed out."))),
        Ok(Some((Change::Refused(_), _))) => {
            phone(cx, token, Some(tr(lang, "This member may not sign in.")))
        }
        Ok(Some((Change::Unchanged, _))) => phone(cx, token, None),
        Err(e) => cx.failure(&e),
    }
}
