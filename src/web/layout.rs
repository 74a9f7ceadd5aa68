//! The page shell and shared components. Views build `Markup` from plain values and never
//! touch the store; everything spliced in is escaped by maud.

use super::i18n::{tr, Lang};
use maud::{html, Markup, DOCTYPE};

/// What every page needs to draw its frame.
pub struct Frame<'a> {
    pub lang: Lang,
    pub title: &'a str,
    pub lab_name: &'a str,
    /// The logged-in staff member's name; `None` on the login page.
    pub user: Option<&'a str>,
    /// The CSRF token for the logout form.
    pub csrf: Option<&'a str>,
    /// Which navigation entry is current.
    pub nav: &'a str,
}

pub const NAV: &[(&str, &str)] = &[
    ("/", "Dashboard"),
    ("/members", "Members"),
    ("/machines", "Machines"),
    ("/uses", "History"),
    ("/presence", "Building"),
    ("/maintenance", "Maintenance"),
    ("/system", "System"),
    ("/settings", "Settings"),
];

pub fn page(f: &Frame, body: Markup) -> Markup {
    let lang = f.lang;
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (f.title) " · " (f.lab_name) }
                link rel="stylesheet" href="/assets/style.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
            }
            body {
                header.top {
                    a.brand href="/" { span.logo { "⚙" } (f.lab_name) }
                    @if let Some(user) = f.user {
                        nav.main {
                            @for (href, label) in NAV {
                                @let key: &'static str = label;
                                a href=(href) class=[(f.nav == *href).then_some("current")] { (tr(lang, key)) }
                            }
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(f.csrf.unwrap_or(""));
                            span.user { (user) }
                            button.link type="submit" { (tr(lang, "Log out")) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A form's hidden CSRF field.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A message box: `kind` is "ok", "error" or "info".
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class={"notice " (kind)} role="status" { (text) } }
}
