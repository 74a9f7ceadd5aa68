//! Adding and editing members: the form as typed, the checks (`validate` for the text,
//! the database for the role, the card's and email's current holders, and staff not
//! locking themselves out), and the handlers that save it. A refused form comes back with
//! what was typed and HTTP 400.

use super::common::{checked, invalid, parse_id, NAV};
use super::member_views::{self as views, MemberForm};
use super::members::{live_member, me};
use crate::store::{self, MemberFields, MemberRow, RoleRow};
use crate::validate;
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::pages::write;
use crate::web::pages::Ctx;
use crate::web::session;
use rusqlite::Connection;

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
