//! Member handlers: the searchable list, the member page (details, machines with what
//! `lab` decides, recent uses, hours), add and edit with the card and email checks,
//! disable/enable, soft delete, and one-time panel passwords. Rendering is in
//! `member_views`; the rules of what may be saved are `validate`'s and `lab`'s.

use super::common::{self, checked, invalid, parse_id, refusal, write, NAV};
use super::member_views::{self as views, Detail, ListView, MachineAccess, MemberForm};
use crate::lab;
use crate::store::{self, MemberFields, MemberFilter, MemberRow, MemberState, RoleRow};
use crate::validate;
use crate::web::accounts;
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
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

// ---------------------------------------------------------------------------------------
// Add and edit

/// What is wrong with a submitted member form, by field.
pub type Problems = Vec<(&'static str, String)>;

/// A member form that passed every check.
struct Valid {
    name: String,
    surname: String,
    email: Option<String>,
    card: Option<String>,
    /// The card UID has an unusual length (saved anyway, with a warning).
    card_warning: bool,
    role: RoleRow,
    disabled: bool,
    weekly_summary: bool,
    language: Option<&'static str>,
}

impl Valid {
    fn fields(&self) -> MemberFields<'_> {
        MemberFields {
            name: &self.name,
            surname: &self.surname,
            role_id: self.role.id,
            card_uid: self.card.as_deref(),
            email: self.email.as_deref(),
            disabled: self.disabled,
            weekly_summary: self.weekly_summary,
            language: self.language,
        }
    }
}

fn form_from_request(cx: &Ctx) -> MemberForm {
    let req = cx.req;
    MemberForm {
        name: req.field("name").to_string(),
        surname: req.field("surname").to_string(),
        email: req.field("email").to_string(),
        card: req.field("card").to_string(),
        role: req.field("role").to_string(),
        disabled: checked(req, "disabled"),
        weekly_summary: checked(req, "weekly_summary"),
        language: req.field("language").to_string(),
    }
}

fn form_from_row(m: &MemberRow, language: Option<String>) -> MemberForm {
    MemberForm {
        name: m.name.clone(),
        surname: m.surname.clone(),
        email: m.email.clone().unwrap_or_default(),
        card: m.card_uid.clone().unwrap_or_default(),
        role: m.role_id.to_string(),
        disabled: m.disabled,
        weekly_summary: m.weekly_summary,
        language: language.unwrap_or_default(),
    }
}

/// Checks a form against `validate` and the lab's data: the role exists, the card and
/// email are nobody else's, the weekly summary has an address to go to, and staff do not
/// lock themselves out. `editing` is the member being edited (None when adding).
fn check(
    db: &Connection,
    lang: Lang,
    f: &MemberForm,
    editing: Option<i64>,
    me: i64,
) -> store::Result<Result<Valid, Problems>> {
    let mut problems: Problems = Vec::new();
    let name = validate::text("name", &f.name, 1, validate::NAME_MAX)
        .map_err(|e| {
            let general = tr(lang, "Enter a name of 1 to 100 characters, on one line.");
            problems.push(("name", invalid(lang, e, general)));
        })
        .ok();
    let surname = validate::text("surname", &f.surname, 0, validate::NAME_MAX)
        .map_err(|e| {
            let general = tr(
                lang,
                "The surname can have up to 100 characters, on one line.",
            );
            problems.push(("surname", invalid(lang, e, general)));
        })
        .ok();
    let email = if f.email.trim().is_empty() {
        Some(None)
    } else {
        validate::email(&f.email)
            .map(Some)
            .map_err(|e| {
                let general = tr(
                    lang,
                    "Enter an email address like anna@example.org, or nothing.",
                );
                problems.push(("email", invalid(lang, e, general)));
            })
            .ok()
    };
    let card = if f.card.trim().is_empty() {
        Some(None)
    } else {
        validate::card(&f.card)
            .map(Some)
            .map_err(|e| {
                let general = tr(
                    lang,
                    "A card UID is hexadecimal digits as the boards read them, e.g. aabbccd1.",
                );
                problems.push(("card", invalid(lang, e, general)));
            })
            .ok()
    };
    let role = match parse_id(&f.role) {
        Some(id) => store::role(db, id)?,
        None => None,
    };
    if role.is_none() {
        problems.push(("role", tr(lang, "Choose a role from the list.").into()));
    }
    let language = match f.language.as_str() {
        "" => Some(None),
        "en" => Some(Some("en")),
        "it" => Some(Some("it")),
        _ => {
            problems.push((
                "language",
                tr(lang, "Choose a language from the list.").into(),
            ));
            None
        }
    };
    if f.weekly_summary && matches!(email, Some(None)) {
        problems.push((
            "weekly_summary",
            tr(
                lang,
                "The weekly summary is sent by email: enter an email address first.",
            )
            .into(),
        ));
    }
    if let Some(Some((uid, _))) = &card {
        if let Some(holder) = store::member_id_by_card(db, uid)?.filter(|h| Some(*h) != editing) {
            let who = holder_name(db, holder)?;
            let text = format!("{} {who}.", tr(lang, "This card already belongs to"));
            problems.push(("card", text));
        }
    }
    if let Some(Some(address)) = &email {
        if let Some(holder) =
            store::member_id_by_email(db, address)?.filter(|h| Some(*h) != editing)
        {
            let who = holder_name(db, holder)?;
            let text = format!(
                "{} {who}.",
                tr(lang, "This email address already belongs to")
            );
            problems.push(("email", text));
        }
    }
    if editing == Some(me) {
        if f.disabled {
            problems.push(("disabled", tr(lang, "You cannot disable yourself.").into()));
        }
        if role.as_ref().is_some_and(|r| !r.backend_admin) {
            problems.push((
                "role",
                tr(
                    lang,
                    "You would lose access to the panel: keep a role that may log into the panel.",
                )
                .into(),
            ));
        }
    }
    match (name, surname, email, card, role, language) {
        (Some(name), Some(surname), Some(email), Some(card), Some(role), Some(language))
            if problems.is_empty() =>
        {
            let card_warning = card.as_ref().is_some_and(|(_, w)| w.is_some());
            Ok(Ok(Valid {
                name,
                surname,
                email,
                card: card.map(|(uid, _)| uid),
                card_warning,
                role,
                disabled: f.disabled,
                weekly_summary: f.weekly_summary,
                language,
            }))
        }
        _ => Ok(Err(problems)),
    }
}

/// "Anna Rossi (member 3)": who holds a card or an email.
fn holder_name(db: &Connection, id: i64) -> store::Result<String> {
    Ok(match store::member_row(db, id)? {
        Some(m) => format!("{} (#{})", m.full_name(), m.id),
        None => format!("#{id}"),
    })
}

fn me(cx: &Ctx) -> i64 {
    cx.session.as_ref().map_or(0, |s| s.member_id)
}

fn render_form(
    cx: &Ctx,
    editing: Option<&MemberRow>,
    form: &MemberForm,
    problems: &Problems,
) -> Resp {
    let lang = cx.lang;
    let roles = match store::roles(cx.db) {
        Ok(r) => r,
        Err(e) => return cx.failure(&e),
    };
    let title = match editing {
        Some(_) => tr(lang, "Edit member"),
        None => tr(lang, "Add member"),
    };
    let body = views::form(lang, cx.csrf(), editing, &roles, form, problems);
    let resp = cx.page(title, NAV, body);
    if problems.is_empty() {
        resp
    } else {
        resp.status(400)
    }
}

pub fn new_form(cx: &mut Ctx) -> Resp {
    let default_role = match store::default_role(cx.db) {
        Ok(r) => r.map(|r| r.id.to_string()).unwrap_or_default(),
        Err(e) => return cx.failure(&e),
    };
    let form = MemberForm {
        // Prefilled from the unknown-cards list; shown escaped, checked on save.
        card: cx.req.param("card").to_string(),
        role: default_role,
        ..MemberForm::default()
    };
    render_form(cx, None, &form, &Vec::new())
}

pub fn create(cx: &mut Ctx) -> Resp {
    let (lang, me) = (cx.lang, me(cx));
    let form = form_from_request(cx);
    let now = cx.now;
    let outcome = write(cx.db, |tx| {
        Ok(match check(tx, lang, &form, None, me)? {
            Ok(valid) => Ok((
                store::create_member(tx, &valid.fields(), now)?,
                valid.card_warning,
            )),
            Err(p) => Err(p),
        })
    });
    match outcome {
        Ok(Ok((id, warn))) => {
            log::info!("panel: member {me} added member {id}");
            let warn = if warn { "&warn=card" } else { "" };
            Resp::redirect(&format!("/members/{id}?ok=created{warn}"))
        }
        Ok(Err(problems)) => render_form(cx, None, &form, &problems),
        Err(e) => cx.failure(&e),
    }
}

/// The member, if it exists and is not deleted; otherwise the response to send.
fn live_member(cx: &Ctx, id: i64) -> Result<MemberRow, Resp> {
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

pub fn edit_form(cx: &mut Ctx, id: i64) -> Resp {
    let m = match live_member(cx, id) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let language = match store::member_language(cx.db, id) {
        Ok(l) => l,
        Err(e) => return cx.failure(&e),
    };
    render_form(cx, Some(&m), &form_from_row(&m, language), &Vec::new())
}

pub fn update(cx: &mut Ctx, id: i64) -> Resp {
    let m = match live_member(cx, id) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let (lang, me) = (cx.lang, me(cx));
    let form = form_from_request(cx);
    let outcome = write(cx.db, |tx| {
        Ok(match check(tx, lang, &form, Some(id), me)? {
            Ok(valid) => {
                store::update_member(tx, id, &valid.fields())?;
                if valid.disabled {
                    // A disabled member's panel sessions end now, not at re-enable time.
                    session::destroy_all(tx, id)?;
                }
                Ok(valid.card_warning)
            }
            Err(p) => Err(p),
        })
    });
    match outcome {
        Ok(Ok(warn)) => {
            log::info!("panel: member {me} edited member {id}");
            let warn = if warn { "&warn=card" } else { "" };
            Resp::redirect(&format!("/members/{id}?ok=saved{warn}"))
        }
        Ok(Err(problems)) => render_form(cx, Some(&m), &form, &problems),
        Err(e) => cx.failure(&e),
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
        let machines = store::machines(db)?
            .into_iter()
            .map(|machine| {
                let is_authorized = authorized.contains(&machine.id);
                MachineAccess {
                    decision: member
                        .as_ref()
                        .map(|m| lab::may_use(m, &machine, is_authorized)),
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
