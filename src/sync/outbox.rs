//! Queuing outgoing messages and the retry schedule. A message is queued with `enqueue`
//! inside the transaction of the change that caused it, so either both are committed or
//! neither; after the commit the caller may `super::wake()` the worker.

use crate::store::{self, OutboxKind, Result};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An email as queued: already rendered in the recipient's language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Queues a message of `kind` with a JSON `payload` in the caller's transaction. A
/// `dedupe_key` already queued (or sent) adds nothing and gives `None`.
pub fn enqueue(
    tx: &Connection,
    kind: OutboxKind,
    payload: &str,
    dedupe_key: Option<&str>,
) -> Result<Option<i64>> {
    store::enqueue(tx, kind, payload, dedupe_key, store::now())
}

/// Queues an email in the caller's transaction.
pub fn enqueue_email(
    tx: &Connection,
    email: &Email,
    dedupe_key: Option<&str>,
) -> Result<Option<i64>> {
    let payload = serde_json::to_string(email).expect("an email serialises");
    enqueue(tx, OutboxKind::Email, &payload, dedupe_key)
}

/// Queues an email that is of no use after `expires_at` (a password-reset link): if it
/// cannot be delivered by then it fails as expired instead of arriving dead.
pub fn enqueue_email_until(tx: &Connection, email: &Email, expires_at: i64) -> Result<Option<i64>> {
    let payload = serde_json::to_string(email).expect("an email serialises");
    store::enqueue_until(
        tx,
        OutboxKind::Email,
        &payload,
        None,
        store::now(),
        Some(expires_at),
    )
}

/// The end-of-day reminder to a member still signed in (`since` is a local "HH:MM").
pub fn reminder_email(italian: bool, name: &str, to: &str, since: &str) -> Email {
    let (subject, hello, body, ignore) = if italian {
        (
            "Sei ancora in laboratorio?",
            "Ciao",
            format!("risulti ancora dentro dalle {since}. Ricordati di registrare l'uscita quando vai via."),
            "Se sei già uscito, registra l'uscita al lettore o nel pannello.",
        )
    } else {
        (
            "Are you still in the lab?",
            "Hello",
            format!("you are still signed in since {since}. Remember to sign out when you leave."),
            "If you have already left, sign out at the reader or in the panel.",
        )
    };
    let text = format!("{hello} {name},\n\n{body}\n\n{ignore}\n");
    let html = maud::html! {
        (maud::DOCTYPE)
        html lang=(if italian { "it" } else { "en" }) {
            body { p { (hello) " " (name) "," } p { (body) } p { (ignore) } }
        }
    }
    .into_string();
    Email {
        to: to.into(),
        subject: subject.into(),
        text,
        html,
    }
}

/// `fabgate send test-email`: checks the email settings end to end.
pub fn test_email(to: &str) -> Email {
    let text = "This is a test email from fabgate: the lab's email settings work.";
    Email {
        to: to.into(),
        subject: "fabgate test email".into(),
        text: format!("{text}\n"),
        html: maud::html! { (maud::DOCTYPE) html { body { p { (text) } } } }.into_string(),
    }
}

/// What is kept of a sent email: the recipient and subject, not the body (which may hold
/// a password-reset link).
pub fn sent_summary(kind: &str, payload: &str) -> String {
    if kind == "email" {
        if let Ok(e) = serde_json::from_str::<Email>(payload) {
            return serde_json::json!({ "to": e.to, "subject": e.subject }).to_string();
        }
    }
    if kind == "webhook" {
        return super::webhook::sent_summary(payload);
    }
    "{}".into()
}

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

/// Fraction of the delay by which jitter may move it either way.
pub const JITTER: f64 = 0.2;

impl Backoff {
    pub fn from_config(c: &crate::config::SyncConfig) -> Backoff {
        Backoff {
            base: Duration::from_secs(c.backoff_base_s),
            cap: Duration::from_secs(c.backoff_cap_s),
        }
    }

    /// Wait after `attempts` failed attempts (1 = the first failure):
    /// `min(cap, base * 2^(attempts-1))`, moved by `jitter` (in -1.0..=1.0) times
    /// `JITTER` of itself, never above `cap` nor below one second.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let exp = attempts.saturating_sub(1).min(32);
        let raw = self
            .base
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.cap)
            .min(self.cap);
        let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
        raw.mul_f64(factor)
            .min(self.cap)
            .max(Duration::from_secs(1))
    }

    /// `delay` with a random jitter.
    pub fn delay_random(&self, attempts: u32) -> Duration {
        let b = crate::broker::random_bytes(4);
        let r = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64 / u32::MAX as f64;
        self.delay(attempts, r * 2.0 - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let b = Backoff {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(3600),
        };
        let s = |n, j| b.delay(n, j).as_secs_f64();
        assert_eq!(s(1, 0.0), 30.0);
        assert_eq!(s(2, 0.0), 60.0);
        assert_eq!(s(3, 0.0), 120.0);
        assert_eq!(s(7, 0.0), 1920.0);
        assert_eq!(s(8, 0.0), 3600.0);
        assert_eq!(s(1000, 0.0), 3600.0);
        assert_eq!(s(1, 1.0), 36.0);
        assert_eq!(s(1, -1.0), 24.0);
        // Jitter never goes past the cap.
        assert_eq!(s(20, 1.0), 3600.0);
        assert_eq!(s(20, -1.0), 2880.0);
        for n in 0..40 {
            let d = b.delay_random(n).as_secs_f64();
            assert!((1.0..=3600.0).contains(&d), "{n}: {d}");
        }
        let tiny = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(2),
        };
        assert_eq!(tiny.delay(1, -1.0), Duration::from_secs(1));
        assert_eq!(tiny.delay(5, 1.0), Duration::from_secs(2));
    }

    #[test]
    fn sent_summary_keeps_no_body() {
        let e = Email {
            to: "a@b.org".into(),
            subject: "Hi".into(),
            text: "secret link".into(),
            html: "<p>secret link</p>".into(),
        };
        let s = sent_summary("email", &serde_json::to_string(&e).unwrap());
        assert!(s.contains("a@b.org") && !s.contains("secret"), "{s}");
    }
}
