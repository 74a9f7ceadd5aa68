//! Google Calendar: every machine usage session becomes an event of the lab calendar.
//!
//! The lab only *queues* (`use_opened`, `use_closed`, in the transaction of the use
//! change); the sync worker delivers with `deliver`. Authentication is a Google service
//! account: a JWT (RS256, signed with ring) exchanged at the token endpoint for an access
//! token, cached until 5 minutes before it expires and refreshed once on a 401.
//!
//! Idempotency: the event id is chosen here from the use id (`fabgate` + the use id in
//! base32hex), so an insert retried after a lost response gets 409 and becomes an update.
//! Each queued change carries the event's next revision (counted in `calendar_events` in
//! the same transaction); the newest revision Google accepted is kept there too, and an
//! older change delivered late (after retries) is dropped instead of overwriting a newer.
//!
//! 429, 403 `rateLimitExceeded`, 5xx, timeouts and network errors are tried again through
//! the outbox; other 4xx are permanent. Neither the key nor tokens are ever logged.

use super::Outcome;
use crate::config::SyncConfig;
use crate::store::{self, OutboxKind};
use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The OAuth scope asked for: events only.
pub const SCOPE: &str = "https://www.googleapis.com/auth/calendar.events";
/// How long an open session's event lasts until the session closes.
pub const OPEN_EVENT_S: i64 = 3600;

/// How member names appear in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    Full,
    First,
    None,
}

impl Names {
    pub fn parse(s: &str) -> Names {
        match s {
            "full" => Names::Full,
            "none" => Names::None,
            _ => Names::First,
        }
    }
}

/// Where usage sessions go (set once at daemon start; unset = queue nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub calendar_id: String,
    pub names: Names,
}

impl Target {
    /// `None` unless both a key file and a calendar are configured.
    pub fn from_config(c: &SyncConfig) -> Option<Target> {
        (!c.google_key_file.is_empty() && !c.lab_calendar_id.is_empty()).then(|| Target {
            calendar_id: c.lab_calendar_id.clone(),
            names: Names::parse(&c.calendar_member_names),
        })
    }
}

static TARGET: OnceLock<Target> = OnceLock::new();

/// Turns the lab calendar on for this process (the daemon calls it once at start).
pub fn configure(c: &SyncConfig) {
    if let Some(t) = Target::from_config(c) {
        log::info!(
            "sync: machine usage goes to Google Calendar {}",
            t.calendar_id
        );
        let _ = TARGET.set(t);
    }
}

/// The event id of a use: `fabgate` followed by the use id in base32hex (0-9, a-v).
pub fn event_id(use_id: i64) -> String {
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut n = use_id.max(0) as u64;
    let mut digits = Vec::new();
    loop {
        digits.push(DIGITS[(n % 32) as usize]);
        n /= 32;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    format!("fabgate{}", String::from_utf8(digits).expect("ascii"))
}

/// A queued calendar change (the outbox payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarOp {
    /// "insert", "update" or "delete".
    pub op: String,
    pub event_id: String,
    pub calendar_id: String,
    pub use_id: i64,
    /// Counts the changes queued for this event; an older one never overwrites a newer.
    pub rev: i64,
    pub event: Value,
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The event of a use as it stands in `db`.
fn event_of(db: &Connection, t: &Target, use_id: i64, now: i64) -> store::Result<Option<Value>> {
    let row = db
        .query_row(
            "SELECT u.start_ts, u.end_ts, m.machine_name, p.name, p.surname
             FROM uses u JOIN machines m ON m.machine_id = u.machine_id
             JOIN members p ON p.member_id = u.member_id WHERE u.use_id = ?1",
            [use_id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((start, end, machine, name, surname)) = row else {
        return Ok(None);
    };
    let who = match t.names {
        Names::Full => format!("{name} {surname}").trim().to_string(),
        Names::First => name.trim().to_string(),
        Names::None => String::new(),
    };
    let summary = if who.is_empty() {
        machine
    } else {
        format!("{machine} — {who}")
    };
    let end = match end {
        Some(e) => e.max(start),
        None => now.max(start) + OPEN_EVENT_S,
    };
    let event = json!({
        "id": event_id(use_id),
        "summary": summary,
        "start": { "dateTime": rfc3339(start) },
        "end": { "dateTime": rfc3339(end) },
        "extendedProperties": { "private": { "fabgate_use": use_id.to_string() } },
    });
    Ok(Some(event))
}

fn queue(db: &Connection, use_id: i64, op: &str, now: i64) -> store::Result<()> {
    let Some(t) = TARGET.get() else {
        return Ok(());
    };
    queue_for(db, t, use_id, op, now)
}

/// Queues the event of `use_id` for `t` (in the caller's transaction). A use that is
/// gone is queued as a deletion.
pub fn queue_for(
    db: &Connection,
    t: &Target,
    use_id: i64,
    op: &str,
    now: i64,
) -> store::Result<()> {
    let (op, event) = match event_of(db, t, use_id, now)? {
        Some(e) => (op, e),
        None => ("delete", Value::Null),
    };
    let id = event_id(use_id);
    let rev: i64 = db.query_row(
        "INSERT INTO calendar_events (event_id, use_id, queued_rev) VALUES (?1, ?2, 1)
         ON CONFLICT (event_id) DO UPDATE SET queued_rev = queued_rev + 1
         RETURNING queued_rev",
        params![id, use_id],
        |r| r.get(0),
    )?;
    let payload = CalendarOp {
        op: op.into(),
        event_id: id,
        calendar_id: t.calendar_id.clone(),
        use_id,
        rev,
        event,
    };
    let payload = serde_json::to_string(&payload).expect("a calendar change serialises");
    super::outbox::enqueue(db, OutboxKind::Calendar, &payload, None)?;
    QUEUED.store(true, Ordering::Relaxed);
    Ok(())
}

static QUEUED: AtomicBool = AtomicBool::new(false);

/// Wakes the sync worker if this process queued calendar changes (call after committing).
pub fn wake_if_queued() {
    if QUEUED.swap(false, Ordering::Relaxed) {
        super::wake();
    }
}

/// A usage session was recorded (open, or already closed): queue its event.
pub fn use_opened(db: &Connection, use_id: i64, now: i64) -> store::Result<()> {
    queue(db, use_id, "insert", now)
}

/// A usage session was closed or corrected: queue the update of its event.
pub fn use_closed(db: &Connection, use_id: i64, now: i64) -> store::Result<()> {
    queue(db, use_id, "update", now)
}

/// A usage session was deleted (call after deleting the row): queue the event's deletion.
pub fn use_deleted(db: &Connection, use_id: i64, now: i64) -> store::Result<()> {
    queue(db, use_id, "delete", now)
}

/// What is kept of a delivered change.
pub fn sent_summary(payload: &str) -> String {
    match serde_json::from_str::<CalendarOp>(payload) {
        Ok(op) => json!({ "event_id": op.event_id, "rev": op.rev }).to_string(),
        Err(_) => "{}".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Delivery (sync worker only)

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

/// A reply: status and body.
type Reply = (u16, String);

fn transport(e: ureq::Error) -> Outcome {
    Outcome::Retry(format!("Google Calendar unreachable: {e}"))
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
            .map_err(Outcome::Permanent)?;
        let mut resp = self
            .agent
            .post(&self.account.token_uri)
            .send_form([
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if status != 200 {
            // The body may say why (invalid_grant...); it holds no secret of ours.
            let why: String = body.chars().take(200).collect();
            return Err(Outcome::Retry(format!(
                "Google token endpoint answered {status}: {why}"
            )));
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
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            if status == 401 && attempt == 0 {
                self.token = None;
                continue;
            }
            return Ok((status, text));
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
                (204, String::new())
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

/// What an unsuccessful status means.
fn classify(status: u16, body: &str) -> Outcome {
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
    if status == 429 || status >= 500 || rate || status == 408 {
        Outcome::Retry(msg)
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
        return Outcome::Sent;
    }
    let Ok(mut client) = CLIENT.lock() else {
        return Outcome::Retry("calendar client poisoned".into());
    };
    if client.is_none() {
        match Google::new(c) {
            Ok(g) => *client = Some(g),
            Err(e) => return Outcome::Retry(e),
        }
    }
    let google = client.as_mut().expect("set above");
    let (status, body) = match google.upsert(&op) {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !(200..300).contains(&status) {
        return classify(status, &body);
    }
    let etag = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("etag").and_then(|e| e.as_str()).map(String::from));
    if let Err(e) = db.execute(
        "INSERT INTO calendar_events (event_id, use_id, queued_rev, sent_rev, etag, sent_at)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)
         ON CONFLICT (event_id) DO UPDATE SET sent_rev = MAX(sent_rev, excluded.sent_rev),
           etag = excluded.etag, sent_at = excluded.sent_at",
        params![op.event_id, op.use_id, op.rev, etag, store::now()],
    ) {
        log::warn!("sync: cannot record calendar event {}: {e}", op.event_id);
    }
    Outcome::Sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_base32hex_and_distinct() {
        assert_eq!(event_id(0), "fabgate0");
        assert_eq!(event_id(31), "fabgatev");
        assert_eq!(event_id(32), "fabgate10");
        let id = event_id(123_456_789);
        assert!(id.len() >= 5);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)));
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_other_4xx_are_not() {
        assert!(matches!(classify(429, ""), Outcome::Retry(_)));
        assert!(matches!(classify(503, ""), Outcome::Retry(_)));
        let rate = r#"{"error":{"errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert!(matches!(classify(403, rate), Outcome::Retry(_)));
        assert!(matches!(classify(403, "forbidden"), Outcome::Permanent(_)));
        assert!(matches!(classify(400, "bad"), Outcome::Permanent(_)));
    }

    #[test]
    fn changes_are_queued_with_rising_revisions_and_a_deleted_use_is_a_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::open(
            &dir.path().join("lab.db"),
            crate::config::Synchronous::Normal,
        )
        .unwrap();
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "INSERT INTO machines (machine_id, machine_name) VALUES (1, 'LASER 1');
             INSERT INTO members (member_id, name, surname, role_id, created_at)
               VALUES (1, 'Carla', 'Rossi', (SELECT MIN(role_id) FROM roles), 0);
             INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen)
               VALUES (7, 1, 1, 1000, 1000);",
        )
        .unwrap();
        let t = Target {
            calendar_id: "c@x".into(),
            names: Names::First,
        };
        queue_for(&conn, &t, 7, "insert", 1000).unwrap();
        conn.execute("UPDATE uses SET end_ts = 1600 WHERE use_id = 7", [])
            .unwrap();
        queue_for(&conn, &t, 7, "update", 1600).unwrap();
        conn.execute("DELETE FROM uses WHERE use_id = 7", [])
            .unwrap();
        queue_for(&conn, &t, 7, "update", 1700).unwrap();
        let ops: Vec<CalendarOp> = store::outbox_due(&conn, i64::MAX, 10)
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(&r.payload).unwrap())
            .collect();
        let summary: Vec<(&str, i64)> = ops.iter().map(|o| (o.op.as_str(), o.rev)).collect();
        assert_eq!(summary, [("insert", 1), ("update", 2), ("delete", 3)]);
        assert_eq!(ops[0].event["summary"], "LASER 1 — Carla");
        assert_eq!(
            ops[0].event["end"]["dateTime"],
            rfc3339(1000 + OPEN_EVENT_S)
        );
        assert_eq!(ops[1].event["end"]["dateTime"], rfc3339(1600));
        assert!(ops.iter().all(|o| o.event_id == "fabgate7"));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a@group.calendar"), "a%40group.calendar");
    }
}
