//! Delivery of queued calendar changes to Google (the sync worker only): the service
//! account's JWT (RS256, signed with ring) exchanged at the token endpoint for an access
//! token, cached until 5 minutes before it expires and refreshed once on a 401; then an
//! insert, update or delete of the event, whatever is already there.
//!
//! 429 and 403 `rateLimitExceeded` hold every calendar change for the `Retry-After`; 5xx
//! and timeouts are tried again, an unreachable Google holds the calendar rows behind one
//! attempt; other 4xx are permanent. Neither the key nor tokens are ever logged.

use super::{CalendarOp, SCOPE};
use crate::config::SyncConfig;
use crate::store;
use crate::sync::Outcome;
use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The service-account key file.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    token_uri: String,
}

/// PKCS#8 PEM → DER.
fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let mut inside = false;
    let mut b64 = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN") {
            inside = true;
        } else if line.starts_with("-----END") {
            break;
        } else if inside {
            b64.push_str(line);
        }
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the private key is not valid PEM".to_string())
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A service account able to sign its own assertions.
struct Account {
    email: String,
    key: ring::signature::RsaKeyPair,
    token_uri: String,
}

impl Account {
    fn load(c: &SyncConfig) -> Result<Account, String> {
        let text = std::fs::read_to_string(&c.google_key_file)
            .map_err(|e| format!("cannot read the Google key file: {e}"))?;
        let kf: KeyFile = serde_json::from_str(&text)
            .map_err(|e| format!("the Google key file is not a service-account key: {e}"))?;
        let der = pem_to_der(&kf.private_key)?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("the Google private key is unusable: {e}"))?;
        let token_uri = if c.google_token_uri.is_empty() {
            kf.token_uri
        } else {
            c.google_token_uri.clone()
        };
        if token_uri.is_empty() {
            return Err("the Google key file has no token_uri".into());
        }
        Ok(Account {
            email: kf.client_email,
            key,
            token_uri,
        })
    }

    /// The signed JWT asking for an access token.
    fn assertion(&self, now: i64) -> Result<String, String> {
        let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let claims = b64url(claims.to_string().as_bytes());
        let msg = format!("{header}.{claims}");
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                msg.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "cannot sign the Google assertion".to_string())?;
        Ok(format!("{msg}.{}", b64url(&sig)))
    }
}

/// The HTTP side: agent, account and cached token.
pub struct Google {
    agent: ureq::Agent,
    api_base: String,
    account: Account,
    token: Option<(String, Instant)>,
}

/// A reply: status, body, and the `Retry-After` it asked for.
type Reply = (u16, String, Option<Duration>);

fn transport(e: ureq::Error) -> Outcome {
    Outcome::Unreachable(format!("Google Calendar unreachable: {e}"))
}

impl Google {
    pub fn new(c: &SyncConfig) -> Result<Google, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(c.google_timeout_s)))
            .build()
            .into();
        Ok(Google {
            agent,
            api_base: c.google_api_base.trim_end_matches('/').to_string(),
            account: Account::load(c)?,
            token: None,
        })
    }

    /// A valid access token (cached until 5 minutes before it expires).
    fn token(&mut self) -> Result<String, Outcome> {
        if let Some((t, until)) = &self.token {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let assertion = self
            .account
            .assertion(store::now())
            .map_err(Outcome::NotSetUp)?;
        let mut resp = self
            .agent
            .post(&self.account.token_uri)
            .send_form([
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let after = crate::sync::retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if status != 200 {
            // The body may say why (invalid_grant...); it holds no secret of ours.
            let why: String = body.chars().take(200).collect();
            let why = format!("Google token endpoint answered {status}: {why}");
            return Err(match status {
                429 => Outcome::RateLimited { why, after },
                500.. => Outcome::Unreachable(why),
                // A revoked or wrong key, a clock far off: the settings, not the network.
                _ => Outcome::NotSetUp(why),
            });
        }
        #[derive(Deserialize)]
        struct TokenReply {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let reply: TokenReply = serde_json::from_str(&body)
            .map_err(|_| Outcome::Retry("Google token endpoint: unexpected reply".into()))?;
        let life = reply.expires_in.unwrap_or(3600).saturating_sub(300);
        self.token = Some((
            reply.access_token.clone(),
            Instant::now() + Duration::from_secs(life),
        ));
        Ok(reply.access_token)
    }

    /// One API call with the bearer token; a 401 refreshes the token and tries once more.
    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, Outcome> {
        let url = format!("{}{path}", self.api_base);
        for attempt in 0..2 {
            let token = self.token()?;
            let auth = format!("Bearer {token}");
            let result = match (method, body) {
                ("POST", Some(b)) => self
                    .agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .content_type("application/json")
                    .send(b.to_string()),
                ("PUT", Some(b)) => self
                    .agent
                    .put(&url)
                    .header("Authorization", &auth)
                    .content_type("application/json")
                    .send(b.to_string()),
                ("DELETE", _) => self
                    .agent
                    .delete(&url)
                    .header("Authorization", &auth)
                    .call(),
                _ => self.agent.get(&url).header("Authorization", &auth).call(),
            };
            let mut resp = result.map_err(transport)?;
            let status = resp.status().as_u16();
            let after = crate::sync::retry_after(
                resp.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
            );
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            if status == 401 && attempt == 0 {
                self.token = None;
                continue;
            }
            return Ok((status, text, after));
        }
        unreachable!("the loop returns")
    }

    fn insert(&mut self, op: &CalendarOp) -> Result<Reply, Outcome> {
        let path = format!("/calendars/{}/events", segment(&op.calendar_id));
        self.call("POST", &path, Some(&op.event))
    }

    fn event_path(op: &CalendarOp) -> String {
        format!(
            "/calendars/{}/events/{}",
            segment(&op.calendar_id),
            segment(&op.event_id)
        )
    }

    fn update(&mut self, op: &CalendarOp) -> Result<Reply, Outcome> {
        self.call("PUT", &Self::event_path(op), Some(&op.event))
    }

    /// Puts the event in the calendar whatever is already there: insert, or update when
    /// it exists (409), or insert when an update finds nothing (404).
    fn upsert(&mut self, op: &CalendarOp) -> Result<Reply, Outcome> {
        if op.op == "delete" {
            let r = self.call("DELETE", &Self::event_path(op), None)?;
            // Already gone (or never made it) is what we wanted.
            return Ok(if r.0 == 404 || r.0 == 410 {
                (204, String::new(), None)
            } else {
                r
            });
        }
        if op.op == "update" {
            let r = self.update(op)?;
            if r.0 != 404 {
                return Ok(r);
            }
        }
        let r = self.insert(op)?;
        if r.0 == 409 {
            return self.update(op);
        }
        Ok(r)
    }
}

/// What an unsuccessful status means: 429 and Google's 403 rate limits hold the calendar's
/// changes for `after` (or the backoff); 5xx and 408 are retried; a 401 after a fresh
/// token, another 403 (the calendar is not shared with the service account) or a 404 on
/// an insert (no such calendar) are the settings; other 4xx are permanent.
fn classify(status: u16, body: &str, after: Option<Duration>) -> Outcome {
    let why: String = body.chars().take(300).collect();
    let msg = format!("Google Calendar answered {status}: {why}");
    let rate = status == 403
        && [
            "rateLimitExceeded",
            "userRateLimitExceeded",
            "quotaExceeded",
        ]
        .iter()
        .any(|r| body.contains(r));
    if status == 429 || rate {
        Outcome::RateLimited { why: msg, after }
    } else if status >= 500 || status == 408 {
        Outcome::Retry(msg)
    } else if matches!(status, 401 | 403 | 404) {
        Outcome::NotSetUp(format!(
            "{msg} (is the calendar id right and shared with the service account?)"
        ))
    } else {
        Outcome::Permanent(msg)
    }
}

static CLIENT: Mutex<Option<Google>> = Mutex::new(None);

/// Delivers one queued calendar change.
pub fn deliver(db: &Connection, c: &SyncConfig, payload: &str) -> Outcome {
    let op = match serde_json::from_str::<CalendarOp>(payload) {
        Ok(op) => op,
        Err(e) => return Outcome::Permanent(format!("bad payload: {e}")),
    };
    let done: Option<i64> = match db
        .query_row(
            "SELECT sent_rev FROM calendar_events WHERE event_id = ?1",
            [&op.event_id],
            |r| r.get(0),
        )
        .optional()
    {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(format!("database: {e}")),
    };
    if done.is_some_and(|rev| rev >= op.rev) {
        log::debug!(
            "sync: calendar event {} revision {} superseded",
            op.event_id,
            op.rev
        );
        return Outcome::Skipped;
    }
    let Ok(mut client) = CLIENT.lock() else {
        return Outcome::Retry("calendar client poisoned".into());
    };
    if client.is_none() {
        match Google::new(c) {
            Ok(g) => *client = Some(g),
            Err(e) => return Outcome::NotSetUp(e),
        }
    }
    let google = client.as_mut().expect("set above");
    let (status, body, after) = match google.upsert(&op) {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !(200..300).contains(&status) {
        return classify(status, &body, after);
    }
    let etag = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("etag").and_then(|e| e.as_str()).map(String::from));
    // No row: retention forgot the event, so there is no newer revision to protect.
    if let Err(e) = db.execute(
        "UPDATE calendar_events SET sent_rev = MAX(sent_rev, ?2), etag = ?3, sent_at = ?4
         WHERE event_id = ?1",
        params![op.event_id, op.rev, etag, store::now()],
    ) {
        log::warn!("sync: cannot record calendar event {}: {e}", op.event_id);
    }
    Outcome::Sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_retried_other_4xx_are_not() {
        let s30 = Some(Duration::from_secs(30));
        assert_eq!(
            classify(429, "", s30),
            Outcome::RateLimited {
                why: "Google Calendar answered 429: ".into(),
                after: s30
            }
        );
        assert!(matches!(classify(503, "", None), Outcome::Retry(_)));
        let rate = r#"{"error":{"errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert!(matches!(
            classify(403, rate, None),
            Outcome::RateLimited { after: None, .. }
        ));
        assert!(matches!(
            classify(403, "forbidden", None),
            Outcome::NotSetUp(_)
        ));
        assert!(matches!(classify(404, "", None), Outcome::NotSetUp(_)));
        assert!(matches!(classify(400, "bad", None), Outcome::Permanent(_)));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a@group.calendar"), "a%40group.calendar");
    }
}
