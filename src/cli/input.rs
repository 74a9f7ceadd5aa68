//! What people type: names, card UIDs, emails, LCD text, passwords are checked by small
//! pure functions (tested from tables of cases below), and "3", "LASER 1" or "aabbccd1"
//! become rows through one resolver per kind. Hostile input is stored verbatim when it is
//! printable text and refused with a message otherwise; nothing here panics.

use super::admin::Fail;
use crate::store::{self, Machine, MachineTypeRow, MemberRow, RoleRow};
use rusqlite::Connection;

/// Longest name of a member, role, machine type, machine or board username.
pub const NAME_MAX: usize = 100;
/// Longest maintenance description.
pub const TEXT_MAX: usize = 500;
/// Longest instructions link.
pub const URL_MAX: usize = 2000;
/// The boards' LCD shows 16 characters per line.
pub const LCD_MAX: usize = 16;
/// The board adapter accepts card UIDs up to 32 characters (`terminals::messages`).
pub const CARD_MAX: usize = 32;
/// What the boards' RC522 readers send for the usual 4-byte cards.
pub const CARD_USUAL: usize = 8;
/// Longest board password (MQTT allows more; nobody flashes more).
pub const PASSWORD_MAX: usize = 256;
/// Boards put the machine id in their topic with at most 9 digits (`terminals::fabomatic`).
pub const MACHINE_ID_MAX: i64 = 999_999_999;
/// Longest value echoed back in a message.
const SHOWN_MAX: usize = 60;

/// A value quoted for a message: control characters escaped, long values cut, so a
/// hostile argument cannot garble the terminal.
pub fn shown(s: &str) -> String {
    let mut out = String::from("'");
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_MAX {
            out.push('…');
            break;
        }
        out.extend(plain_char(c));
    }
    out.push('\'');
    out
}

/// Text from the database for a message or a table cell: control characters escaped.
pub fn plain(s: &str) -> String {
    s.chars().flat_map(plain_char).collect()
}

fn plain_char(c: char) -> impl Iterator<Item = char> {
    let escaped = c.is_control().then(|| c.escape_default());
    let keep = (!c.is_control()).then_some(c);
    escaped.into_iter().flatten().chain(keep)
}

/// Trimmed text of `min..=max` characters without control characters.
pub fn text(what: &str, s: &str, min: usize, max: usize) -> Result<String, String> {
    let t = s.trim();
    if t.chars().any(char::is_control) {
        return Err(format!(
            "{what} contains a control character (newline, tab, escape…): use plain text"
        ));
    }
    let n = t.chars().count();
    if n < min {
        return Err(format!("{what} is empty"));
    }
    if n > max {
        return Err(format!(
            "{what} is too long ({n} characters, at most {max})"
        ));
    }
    Ok(t.to_string())
}

/// A name of something that can also be looked up by id: digits alone would read as an id.
pub fn object_name(what: &str, s: &str) -> Result<String, String> {
    let t = text(what, s, 1, NAME_MAX)?;
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{what} {} is only digits and would be mistaken for an id; add a letter",
            shown(&t)
        ));
    }
    Ok(t)
}

/// A card UID as the boards send it: lowercase hex. The second value is a warning for
/// unusual lengths.
pub fn card(s: &str) -> Result<(String, Option<String>), String> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() {
        return Err("card UID is empty".into());
    }
    if t.len() > CARD_MAX || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "card UID {} is not 1 to {CARD_MAX} hexadecimal digits (boards read e.g. aabbccd1)",
            shown(s)
        ));
    }
    let warning = (t.len() != CARD_USUAL).then(|| {
        format!(
            "card UID {t} has {} digits; boards usually read {CARD_USUAL}",
            t.len()
        )
    });
    Ok((t, warning))
}

/// An email address: one `@` with text on both sides, no spaces.
pub fn email(s: &str) -> Result<String, String> {
    let t = text("email", s, 1, 254)?;
    let ok = match t.split_once('@') {
        Some((user, domain)) => !user.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !ok || t.chars().any(char::is_whitespace) {
        return Err(format!(
            "email {} is not an address like anna@example.org",
            shown(&t)
        ));
    }
    Ok(t)
}

/// Text for the board's 16-character LCD.
pub fn lcd(s: &str) -> Result<String, String> {
    let t = text("LCD text", s, 1, usize::MAX)?;
    let n = t.chars().count();
    if n > LCD_MAX {
        let cut: String = t.chars().take(LCD_MAX).collect();
        return Err(format!(
            "LCD text is {n} characters; the board's LCD shows {LCD_MAX}\n\
             hint: shorten it, e.g. --lcd {}",
            shown(&cut)
        ));
    }
    Ok(t)
}

/// A board password, taken exactly as typed (no trimming: it must match the firmware's).
pub fn password(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("password is empty".into());
    }
    if s.chars().any(char::is_control) {
        return Err("password contains a control character".into());
    }
    if s.len() > PASSWORD_MAX {
        return Err(format!(
            "password is too long (at most {PASSWORD_MAX} bytes)"
        ));
    }
    Ok(s.to_string())
}

/// A positive number of hours, for maintenance plans.
pub fn hours(h: f64) -> Result<f64, String> {
    if h.is_finite() && h > 0.0 && h <= 1_000_000.0 {
        Ok(h)
    } else {
        Err(format!("--hours must be a number above 0 (got {h})"))
    }
}

/// A machine id a board can be configured with.
pub fn machine_id(id: i64) -> Result<i64, String> {
    if (1..=MACHINE_ID_MAX).contains(&id) {
        Ok(id)
    } else {
        Err(format!(
            "machine id {id} is out of range: boards take 1 to {MACHINE_ID_MAX}"
        ))
    }
}

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
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("LASR"), "'LASR'");
        assert_eq!(shown("a\nb"), "'a\\nb'");
        assert!(shown(&"x".repeat(500)).ends_with("…'"));
        assert_eq!(plain("a\tb"), "a\\tb");
    }
}
