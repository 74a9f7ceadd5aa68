//! What people type: names, card UIDs, emails, LCD text, passwords are checked by small
//! pure functions (tested from tables of cases below), and "3", "LASER 1" or "aabbccd1"
//! become rows through one resolver per kind. Hostile input is stored verbatim when it is
//! printable text and refused with a message otherwise; nothing here panics.

use super::admin::Fail;
use crate::store::{self, Machine, MachineTypeRow, MemberRow, RoleRow};
use rusqlite::Connection;

pub use crate::validate::*;

// ---------------------------------------------------------------------------------------
// Resolvers: one per kind, used by every command.

/// A member by id, card UID or email (`id:`, `card:` or `email:` in front picks one).
/// A value matching different members in different ways is refused as ambiguous.
pub fn member(db: &Connection, arg: &str) -> Result<MemberRow, Fail> {
    let t = arg.trim();
    let (kinds, value): (&[&str], &str) = match t.split_once(':') {
        Some(("id", v)) => (&["id"], v.trim()),
        Some(("card", v)) => (&["card"], v.trim()),
        Some(("email", v)) => (&["email"], v.trim()),
        _ => (&["id", "card", "email"], t),
    };
    let mut found: Vec<(i64, &str)> = Vec::new();
    for &kind in kinds {
        let id = match kind {
            "id" => match value.parse::<i64>() {
                Ok(id) => store::member_row(db, id)?.map(|m| m.id),
                Err(_) => None,
            },
            "card" => match card(value) {
                Ok((uid, _)) => store::member_id_by_card(db, &uid)?,
                Err(_) => None,
            },
            _ if value.contains('@') => store::member_id_by_email(db, value)?,
            _ => None,
        };
        if let Some(id) = id {
            if !found.iter().any(|(f, _)| *f == id) {
                found.push((id, kind));
            }
        }
    }
    match found.as_slice() {
        [] => Err(format!("no member with id, card or email {}", shown(arg)).into()),
        [(id, _)] => {
            store::member_row(db, *id)?.ok_or_else(|| Fail::from(format!("member {id} vanished")))
        }
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|(id, kind)| format!("the {kind} of member {id}"))
                .collect();
            Err(format!(
                "{} is ambiguous: it is {}\nhint: write id:{value}, card:{value} or email:…",
                shown(arg),
                list.join(" and ")
            )
            .into())
        }
    }
}

/// One row found by id or name, or a message saying what was not found.
fn one<T>(
    what: &str,
    arg: &str,
    by_id: Option<T>,
    ids: Vec<i64>,
    load: impl Fn(i64) -> Result<Option<T>, Fail>,
) -> Result<T, Fail> {
    if let Some(row) = by_id {
        return Ok(row);
    }
    match ids.as_slice() {
        [] => Err(format!(
            "no {what} named or numbered {}\nhint: `fabgate {} list` shows them",
            shown(arg),
            what.replace(' ', "-")
        )
        .into()),
        [id] => load(*id)?.ok_or_else(|| Fail::from(format!("{what} {id} vanished"))),
        many => {
            let ids: Vec<String> = many.iter().map(i64::to_string).collect();
            Err(format!(
                "several {what}s are named {} (ids {}): use the id",
                shown(arg),
                ids.join(", ")
            )
            .into())
        }
    }
}

fn as_id(arg: &str) -> Option<i64> {
    arg.trim().parse().ok()
}

pub fn machine(db: &Connection, arg: &str) -> Result<Machine, Fail> {
    let by_id = match as_id(arg) {
        Some(id) => store::machine(db, id)?,
        None => None,
    };
    let ids = store::machine_ids_by_name(db, arg.trim())?;
    one("machine", arg, by_id, ids, |id| Ok(store::machine(db, id)?))
}

pub fn role(db: &Connection, arg: &str) -> Result<RoleRow, Fail> {
    let by_id = match as_id(arg) {
        Some(id) => store::role(db, id)?,
        None => None,
    };
    let ids = store::role_ids_by_name(db, arg.trim())?;
    one("role", arg, by_id, ids, |id| Ok(store::role(db, id)?))
}

pub fn machine_type(db: &Connection, arg: &str) -> Result<MachineTypeRow, Fail> {
    let by_id = match as_id(arg) {
        Some(id) => store::machine_type(db, id)?,
        None => None,
    };
    let ids = store::machine_type_ids_by_name(db, arg.trim())?;
    one("machine type", arg, by_id, ids, |id| {
        Ok(store::machine_type(db, id)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_bounded_and_printable() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("  Anna  ", Ok("Anna")),
            (
                "<script>alert('x')</script>",
                Ok("<script>alert('x')</script>"),
            ),
            ("O'Brien \"Bob\"", Ok("O'Brien \"Bob\"")),
            ("Zoë 😀", Ok("Zoë 😀")),
            ("", Err("is empty")),
            ("   ", Err("is empty")),
            ("a\nb", Err("control character")),
            ("a\u{1b}[31m", Err("control character")),
        ];
        for (input, want) in cases {
            let got = text("name", input, 1, NAME_MAX);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{input:?}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{input:?}: {g}"),
                _ => panic!("{input:?}: got {got:?}"),
            }
        }
        let long = "x".repeat(NAME_MAX + 1);
        assert!(text("name", &long, 1, NAME_MAX)
            .unwrap_err()
            .contains("too long"));
        assert!(text("name", &"é".repeat(NAME_MAX), 1, NAME_MAX).is_ok());
        assert!(object_name("machine name", "42").is_err());
        assert!(object_name("machine name", "3D printer").is_ok());
    }

    #[test]
    fn cards_are_lowercase_hex() {
        assert_eq!(card(" AABBCCD1 ").unwrap(), ("aabbccd1".into(), None));
        let (uid, warning) = card("abc").unwrap();
        assert_eq!(uid, "abc");
        assert!(warning.unwrap().contains("3 digits"));
        assert!(card(&"a".repeat(CARD_MAX)).is_ok());
        for bad in ["", "xyz", "aa bb", &"a".repeat(CARD_MAX + 1), "aa\nbb"] {
            assert!(card(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_lcd_passwords_numbers() {
        assert_eq!(email(" a@b.org ").unwrap(), "a@b.org");
        for bad in ["ab.org", "@b", "a@", "a b@c", "a@b@c"] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert_eq!(lcd("CLEAN THE LENS!!").unwrap(), "CLEAN THE LENS!!");
        let err = lcd("Clean the lens please").unwrap_err();
        assert!(
            err.contains("21 characters") && err.contains("hint"),
            "{err}"
        );
        assert_eq!(password(" spaced ").unwrap(), " spaced ");
        assert!(password("").is_err());
        assert!(hours(0.0).is_err() && hours(f64::NAN).is_err() && hours(1.5).is_ok());
        assert!(machine_id(0).is_err() && machine_id(MACHINE_ID_MAX + 1).is_err());
    }

    #[test]
    fn links_minutes_and_counters() {
        for good in ["https://wiki.example.org/laser", "HTTP://10.0.0.1/a?b=c"] {
            assert_eq!(url(good).unwrap(), good);
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "//evil.example",
            "https://",
            "http:// spaced.example",
            "ftp://x.org",
            "wiki.example.org",
        ] {
            assert!(url(bad).is_err(), "{bad:?}");
            assert!(!is_web_link(bad) || bad.contains(' '), "{bad:?}");
        }
        assert!(timeout_min(0).is_ok() && timeout_min(TIMEOUT_MAX_MIN + 1).is_err());
        assert!(grace_min(-1).is_err() && grace_min(GRACE_MAX_MIN).is_ok());
        assert!(hours_counter(0.0).is_ok() && hours_counter(-0.5).is_err());
        assert!(hours_counter(f64::INFINITY).is_err());
    }

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("LASR"), "'LASR'");
        assert_eq!(shown("a\nb"), "'a\\nb'");
        assert!(shown(&"x".repeat(500)).ends_with("…'"));
        assert_eq!(plain("a\tb"), "a\\tb");
    }
}
