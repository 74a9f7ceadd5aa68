//! Servers the worker leaves alone for a while: down (no answer), rate limiting (429), or
//! refusing the lab's settings (a wrong SMTP password, a calendar not shared with the
//! service account). While a server is held, its rows are not tried — not even rows
//! queued after the hold began — so a dead server costs one timeout per retry and a
//! rate-limiting one is not hammered. The outbox rows themselves carry `held = 1` (so a
//! restart loses nothing); this in-memory map only remembers until when and why.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Where a row goes: its kind, and for webhooks the URL.
pub type Server = (String, Option<String>);

#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// Unix seconds.
    pub until: i64,
    /// Holds in a row for this server (the backoff's attempt count).
    pub level: u32,
    pub why: String,
    /// The settings are the problem (not the network).
    pub settings: bool,
}

static HOLDS: Mutex<BTreeMap<Server, Hold>> = Mutex::new(BTreeMap::new());

/// The hold on `server` at `now`, if any.
pub fn current(server: &Server, now: i64) -> Option<Hold> {
    let holds = HOLDS.lock().ok()?;
    holds.get(server).filter(|h| h.until > now).cloned()
}

/// How many holds in a row `server` has had (0 after it answered).
pub fn level(server: &Server) -> u32 {
    HOLDS
        .lock()
        .ok()
        .and_then(|h| h.get(server).map(|h| h.level))
        .unwrap_or(0)
}

/// Holds `server` until `until`.
pub fn hold(server: &Server, until: i64, why: &str, settings: bool) {
    if let Ok(mut holds) = HOLDS.lock() {
        let level = holds.get(server).map_or(0, |h| h.level).saturating_add(1);
        holds.insert(
            server.clone(),
            Hold {
                until,
                level,
                why: why.to_string(),
                settings,
            },
        );
    }
}

/// `server` answered: no more hold. Returns whether there was one.
pub fn release(server: &Server) -> bool {
    HOLDS
        .lock()
        .map(|mut h| h.remove(server).is_some())
        .unwrap_or(false)
}

/// Staff changed the settings of `kind` or asked to retry one of its rows: every server of
/// that kind is tried again at once.
pub fn release_kind(kind: &str) {
    if let Ok(mut holds) = HOLDS.lock() {
        holds.retain(|(k, _), _| k != kind);
    }
}

/// Settings problems in force (kind, why), for the dashboard.
pub fn settings_problems(now: i64) -> Vec<(String, String)> {
    HOLDS
        .lock()
        .map(|h| {
            h.iter()
                .filter(|(_, h)| h.settings && h.until > now)
                .map(|((k, _), h)| (k.clone(), h.why.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_count_up_expire_and_are_released() {
        let s: Server = ("webhook".into(), Some("http://x/test-holds".into()));
        assert_eq!(current(&s, 100), None);
        hold(&s, 200, "down", false);
        hold(&s, 300, "still down", false);
        assert_eq!(level(&s), 2);
        assert_eq!(current(&s, 250).unwrap().why, "still down");
        assert_eq!(current(&s, 300), None, "expired");
        assert_eq!(level(&s), 2, "the level survives until the server answers");
        assert!(release(&s));
        assert_eq!(level(&s), 0);
        let e: Server = ("email-test-holds".into(), None);
        hold(&e, 500, "535 refused", true);
        assert!(settings_problems(400).contains(&("email-test-holds".into(), "535 refused".into())));
        release_kind("email-test-holds");
        assert_eq!(current(&e, 400), None);
    }
}
