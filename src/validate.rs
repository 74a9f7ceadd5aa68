//! What people type, checked in one place for the CLI and the panel: names, card UIDs,
//! emails, LCD text, board passwords, hours, machine ids. Small pure functions, tested
//! from tables of cases (`cli/input.rs`); hostile input is kept verbatim when it is
//! printable text and refused with a message otherwise; nothing here panics.

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
             hint: shorten it, e.g. {}",
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
        Err(format!("hours must be a number above 0 (got {h})"))
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

/// Auto-logoff can be off (0) or up to ~69 days; more is surely a typo.
pub const TIMEOUT_MAX_MIN: i64 = 100_000;
/// A machine kept powered for more than a day after logoff is surely a typo.
pub const GRACE_MAX_MIN: i64 = 1440;
/// Highest hours counter accepted for a machine (114 years of continuous use).
const HOURS_COUNTER_MAX: f64 = 1_000_000.0;

/// Auto-logoff minutes of a machine type: 0 (never) to `TIMEOUT_MAX_MIN`.
pub fn timeout_min(m: i64) -> Result<i64, String> {
    if (0..=TIMEOUT_MAX_MIN).contains(&m) {
        Ok(m)
    } else {
        Err(format!(
            "auto-logoff must be 0 (never) to {TIMEOUT_MAX_MIN} minutes (got {m})"
        ))
    }
}

/// Power-off grace minutes of a machine type: 0 (at once) to `GRACE_MAX_MIN`.
pub fn grace_min(m: i64) -> Result<i64, String> {
    if (0..=GRACE_MAX_MIN).contains(&m) {
        Ok(m)
    } else {
        Err(format!(
            "grace period must be 0 to {GRACE_MAX_MIN} minutes (got {m})"
        ))
    }
}

/// A machine's hours counter as staff correct it: 0 or more.
pub fn hours_counter(h: f64) -> Result<f64, String> {
    if h.is_finite() && (0.0..=HOURS_COUNTER_MAX).contains(&h) {
        Ok(h)
    } else {
        Err(format!(
            "the hours counter must be a number from 0 to {HOURS_COUNTER_MAX} (got {h})"
        ))
    }
}

/// An instructions link: `http://` or `https://` with a host, no spaces. Other schemes
/// (`javascript:`, `data:`, `file:`) are refused: the panel renders the link.
pub fn url(s: &str) -> Result<String, String> {
    let t = text("link", s, 1, URL_MAX)?;
    if !is_web_link(&t) || t.chars().any(char::is_whitespace) {
        return Err(format!(
            "link {} must start with http:// or https:// and contain no spaces",
            shown(&t)
        ));
    }
    Ok(t)
}

/// Does this stored text look like a web link (http or https with a host)? Values
/// imported from elsewhere are shown as plain text unless it does.
pub fn is_web_link(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return false;
    };
    rest.chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '[')
}
