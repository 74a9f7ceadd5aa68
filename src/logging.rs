//! Log lines for journald: no timestamp (journald adds it), a `<N>` syslog priority
//! prefix so `journalctl -p warning` works. rumqttd's tracing spans arrive as ERROR
//! records (research/deps.md §9), so the broker crate is silenced unless `RUST_LOG` asks.
//!
//! **No personal data above debug level.** The journal is kept for a year, outside the
//! GDPR retention rules of the database and beyond the reach of `fabgate member erase`.
//! Log lines at info, warn and error name members, uses and machines by **id** only —
//! never a member's name, surname, email or card UID. Card UIDs of *unknown* cards are
//! stored in `unknown_cards` (30-day retention) and not logged either: staff read them
//! from the database. Board MQTT usernames and client ids identify devices, not people,
//! and may be logged when a login is refused. Debug and trace may show more (a developer
//! turns them on for a while). A unit test below scans `src/` for log calls whose
//! arguments mention personal fields.

use std::io::Write;

/// At most `burst` log lines a minute for one kind of event (a flood must not fill the
/// journal or cost a write per packet). When a new minute starts after lines were held
/// back, `allow` hands their count to the caller's summary line.
#[derive(Debug)]
pub struct Burst {
    burst: u32,
    window: Option<std::time::Instant>,
    logged: u32,
    suppressed: u64,
}

impl Burst {
    pub const fn new(burst: u32) -> Burst {
        Burst {
            burst,
            window: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether this event may be logged; `summary(n)` runs first when the last minute
    /// held `n` lines back.
    pub fn allow(&mut self, summary: impl FnOnce(u64)) -> bool {
        let now = std::time::Instant::now();
        match self.window {
            Some(start) if now.duration_since(start) < std::time::Duration::from_secs(60) => {}
            _ => {
                if self.suppressed > 0 {
                    summary(self.suppressed);
                }
                self.window = Some(now);
                self.logged = 0;
                self.suppressed = 0;
            }
        }
        if self.logged < self.burst {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

pub fn init(level: log::LevelFilter) {
    let mut b = env_logger::Builder::new();
    b.filter_level(level)
        .filter_module("rumqttd", log::LevelFilter::Off)
        .filter_module("tracing", log::LevelFilter::Off);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|buf, record| {
        let prio = match record.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        writeln!(buf, "<{prio}>{}", record.args())
    });
    let _ = b.try_init();
}

#[cfg(test)]
mod tests {
    /// Identifiers that carry personal data; a log call above debug mentioning one fails.
    const PERSONAL: &[&str] = &[
        "uid",
        "card_uid",
        "email",
        "surname",
        "full_name",
        "name",
        "who",
        "password",
    ];

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Identifiers a log call evaluates: outside string literals, and inside `{...}`
    /// placeholders of its format string. Prose in the message does not count.
    fn code_idents(call: &str) -> Vec<String> {
        let (mut code, mut in_str, mut in_brace, mut escaped) =
            (String::new(), false, false, false);
        for c in call.chars() {
            if in_str {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_str = false,
                    '{' => in_brace = true,
                    '}' => {
                        in_brace = false;
                        code.push(' ');
                    }
                    _ if in_brace => code.push(c),
                    _ => {}
                }
            } else if c == '"' {
                in_str = true;
                code.push(' ');
            } else {
                code.push(c);
            }
        }
        code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_scan_sees_arguments_and_placeholders_not_prose() {
        let idents = code_idents(r#"log::warn!("member name {m:?}: {}", who(&x), u.email"#);
        assert!(idents.contains(&"who".to_string()));
        assert!(idents.contains(&"email".to_string()));
        assert!(idents.contains(&"m".to_string()));
        assert!(!idents.contains(&"name".to_string()));
    }

    #[test]
    fn no_personal_data_is_logged_above_debug() {
        let mut files = Vec::new();
        rust_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut found = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests (and this scanner's own samples) are not the daemon's logs.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for macro_name in ["log::info!(", "log::warn!(", "log::error!("] {
                for (at, _) in text.match_indices(macro_name) {
                    let call = &text[at..];
                    let call = &call[..call.find(");").unwrap_or(call.len())];
                    for ident in code_idents(call) {
                        if PERSONAL.contains(&ident.as_str()) {
                            found.push(format!("{}: {call}", file.display()));
                        }
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "personal data in logs:\n{}",
            found.join("\n")
        );
    }
}
