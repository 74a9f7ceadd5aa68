//! The "people" area of the panel: members, roles, authorizations and unknown cards
//! (turned into members). It owns the URLs under `/members`, `/roles`, `/authorizations`
//! and `/unknown-cards`; `routes.rs` hands them here after the session and CSRF checks.
//!
//! Handlers read and write through `store` (`store::people` for this area's queries) and
//! ask `lab` what a member may do; input rules are `validate`'s. Every change is a POST
//! answered with a 303 to a page that shows a `?ok=` notice; a refused form comes back
//! with what was typed and HTTP 400; an id that is not one, or names nothing, is a 404.
//! The only POST answered with a page is the one-time password, which must not be
//! stored anywhere to survive a redirect.

mod authorizations;
mod common;
mod it;
mod member_form;
mod member_views;
mod members;
mod roles;
mod unknown_cards;

pub use it::IT;

use super::{Ctx, Method};
use crate::web::http::Resp;
use common::parse_id;

/// The URLs of this area; `None` when the path is not one of them (a 404 for the caller).
pub fn route(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    use Method::{Get, Post};
    let resp = match (method, segments) {
        (Get, ["members"]) => members::list(cx),
        (Get, ["members", "new"]) => member_form::new_form(cx),
        (Post, ["members", "new"]) => member_form::create(cx),
        (_, ["members", id, rest @ ..]) => {
            let id = parse_id(id)?;
            match (method, rest) {
                (Get, []) => members::detail(cx, id),
                (Get, ["edit"]) => member_form::edit_form(cx, id),
                (Post, ["edit"]) => member_form::update(cx, id),
                (Post, ["disable"]) => members::set_disabled(cx, id, true),
                (Post, ["enable"]) => members::set_disabled(cx, id, false),
                (Get, ["delete"]) => members::delete_form(cx, id),
                (Post, ["delete"]) => members::delete(cx, id),
                (Post, ["password"]) => members::reset_password(cx, id),
                _ => return None,
            }
        }
        (Get, ["roles"]) => roles::list(cx),
        (Get, ["roles", "new"]) => roles::new_form(cx),
        (Post, ["roles", "new"]) => roles::create(cx),
        (_, ["roles", id, rest @ ..]) => {
            let id = parse_id(id)?;
            match (method, rest) {
                (Get, ["edit"]) => roles::edit_form(cx, id),
                (Post, ["edit"]) => roles::update(cx, id),
                (Get, ["delete"]) => roles::delete_form(cx, id),
                (Post, ["delete"]) => roles::delete(cx, id),
                _ => return None,
            }
        }
        (Get, ["authorizations"]) => authorizations::overview(cx),
        (Post, ["authorizations", "grant"]) => authorizations::grant(cx),
        (Post, ["authorizations", "revoke"]) => authorizations::revoke(cx),
        (Get, ["authorizations", "bulk"]) => authorizations::bulk_form(cx),
        (Post, ["authorizations", "bulk"]) => authorizations::bulk_grant(cx),
        (Get, ["unknown-cards"]) => unknown_cards::list(cx),
        _ => return None,
    };
    Some(resp)
}
