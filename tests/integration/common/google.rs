//! A fake Google for the calendar tests: a token endpoint that verifies the service
//! account's RS256 JWT with the test public key (ring) and its claims, and a Calendar
//! events API keeping the events of its calendars (`CALENDARS`) in memory (409 on a
//! duplicate id, 404 on an unknown one or an unknown calendar).
//! It can stop and answer again on the same port (held throughout: `common::server`), answer the next requests with a given
//! status (429...), and store an insert then drop the connection without answering (a lost
//! response). Plain HTTP/1.1, one request per connection.

use super::server::{read_request, LocalServer};
use base64::Engine;
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn respond(stream: TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    super::server::respond(stream, status, &[], "application/json", &body.to_string())
}

/// The throwaway test key (tests/data/google-test-key.pem).
pub const KEY_PEM: &str = include_str!("../../data/google-test-key.pem");
pub const CLIENT_EMAIL: &str = "fabgate-test@fabgate-test.iam.gserviceaccount.com";
pub const CALENDAR: &str = "lab@group.calendar.google.com";
pub const ATTENDANCE: &str = "attendance@group.calendar.google.com";
/// The calendars shared with the test service account.
pub const CALENDARS: [&str; 2] = [CALENDAR, ATTENDANCE];
pub const SCOPE: &str = "https://www.googleapis.com/auth/calendar.events";

/// The PEM as it goes in the key file (from BEGIN to END).
pub fn key_pem() -> String {
    let start = KEY_PEM.find("-----BEGIN").unwrap();
    KEY_PEM[start..].to_string()
}

fn public_key() -> Vec<u8> {
    let pem = key_pem();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let pair = signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    pair.public_key().as_ref().to_vec()
}

#[derive(Default)]
pub struct State {
    /// Events by calendar, then by id.
    pub calendars: BTreeMap<String, BTreeMap<String, Value>>,
    pub inserts: usize,
    pub updates: usize,
    pub conflicts: usize,
    /// Tokens issued (each a fresh string); API calls must carry one of them.
    pub tokens: Vec<String>,
    /// Tokens no longer accepted (as if expired early): API calls with them get 401.
    pub revoked: Vec<String>,
    /// Events deleted.
    pub deletes: usize,
    /// Assertions refused, and why.
    pub refused: Vec<String>,
    /// API calls answered 401 (no or unknown token).
    pub unauthorized: usize,
    /// Statuses forced on the next API calls (not the token endpoint).
    pub forced: VecDeque<u16>,
    /// Store the next insert, then close the connection without answering.
    pub drop_next_insert: bool,
    pub dropped: usize,
    /// Pause before answering each API call (a slow server).
    pub delay: Duration,
}

pub struct FakeGoogle {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    server: LocalServer,
}

impl FakeGoogle {
    pub fn start() -> FakeGoogle {
        let g = Self::reserve();
        g.server.restart();
        g
    }

    /// A held port with nothing answering yet (`restart` answers).
    pub fn reserve() -> FakeGoogle {
        let state: Arc<Mutex<State>> = Arc::default();
        let public = Arc::new(public_key());
        // The token URI names the port, known once bound: filled in right after.
        let token_uri: Arc<Mutex<String>> = Arc::default();
        let (st, tu) = (state.clone(), token_uri.clone());
        let server = LocalServer::stopped(Arc::new(move |stream, _alive| {
            let uri = tu.lock().unwrap().clone();
            let _ = handle(stream, &st, &public, &uri);
        }));
        *token_uri.lock().unwrap() = format!("http://{}/token", server.addr);
        FakeGoogle {
            addr: server.addr,
            state,
            server,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.base())
    }

    /// Writes a service-account key file for this server into `dir`; returns its path.
    pub fn key_file(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("google-key.json");
        let key = json!({
            "type": "service_account",
            "client_email": CLIENT_EMAIL,
            "private_key_id": "test",
            "private_key": key_pem(),
            "token_uri": self.token_uri(),
        });
        std::fs::write(&path, key.to_string()).unwrap();
        path
    }

    /// Down: connections are closed at once.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Answers again on the same port.
    pub fn restart(&mut self) {
        self.server.restart();
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The events of the lab calendar.
    pub fn events(&self) -> BTreeMap<String, Value> {
        self.events_in(CALENDAR)
    }

    pub fn events_in(&self, calendar: &str) -> BTreeMap<String, Value> {
        self.with(|s| s.calendars.get(calendar).cloned().unwrap_or_default())
    }

    /// Waits until `check` holds of the state (or the time is up); returns whether it did.
    pub fn wait(&self, timeout: Duration, check: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.with(|s| check(s)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl State {
    /// How many events `calendar` holds.
    pub fn count(&self, calendar: &str) -> usize {
        self.calendars.get(calendar).map_or(0, |c| c.len())
    }

    /// Every token issued so far stops working.
    pub fn revoke_tokens(&mut self) {
        let t = std::mem::take(&mut self.tokens);
        self.revoked.extend(t);
    }
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Checks an assertion as Google would; `Err` says why it is refused.
fn verify_jwt(jwt: &str, public: &[u8], token_uri: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWT".into());
    }
    let header: Value =
        serde_json::from_slice(&b64url(parts[0]).ok_or("header")?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let sig = b64url(parts[2]).ok_or("signature encoding")?;
    let msg = format!("{}.{}", parts[0], parts[1]);
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(msg.as_bytes(), &sig)
        .map_err(|_| "bad signature".to_string())?;
    let claims: Value =
        serde_json::from_slice(&b64url(parts[1]).ok_or("claims")?).map_err(|e| e.to_string())?;
    let now = super::now();
    if claims["iss"] != CLIENT_EMAIL {
        return Err(format!("iss {}", claims["iss"]));
    }
    if claims["aud"] != token_uri {
        return Err(format!("aud {}", claims["aud"]));
    }
    if claims["scope"] != SCOPE {
        return Err(format!("scope {}", claims["scope"]));
    }
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    if exp <= now || exp > iat + 3600 || (iat - now).abs() > 300 {
        return Err(format!("iat {iat} exp {exp} now {now}"));
    }
    Ok(())
}

fn handle(
    stream: TcpStream,
    state: &Mutex<State>,
    public: &[u8],
    token_uri: &str,
) -> std::io::Result<()> {
    let req = read_request(&stream)?;
    if req.path == "/token" && req.method == "POST" {
        let form: BTreeMap<String, String> =
            form_urlencoded::parse(&req.body).into_owned().collect();
        let grant = form.get("grant_type").map(String::as_str);
        let checked = if grant != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            Err(format!("grant_type {grant:?}"))
        } else {
            verify_jwt(
                form.get("assertion").map(String::as_str).unwrap_or(""),
                public,
                token_uri,
            )
        };
        let mut s = state.lock().unwrap();
        return match checked {
            Ok(()) => {
                let token = format!("ya29.fake-access-token-{}", s.tokens.len() + 1);
                s.tokens.push(token.clone());
                drop(s);
                respond(
                    stream,
                    200,
                    &json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
                )
            }
            Err(why) => {
                s.refused.push(why);
                drop(s);
                respond(stream, 400, &json!({"error": "invalid_grant"}))
            }
        };
    }
    let delay = state.lock().unwrap().delay;
    std::thread::sleep(delay);
    let mut s = state.lock().unwrap();
    let token = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.tokens.iter().any(|t| t == token) {
        s.unauthorized += 1;
        drop(s);
        return respond(stream, 401, &json!({"error": {"code": 401}}));
    }
    if let Some(status) = s.forced.pop_front() {
        drop(s);
        let reason = if status == 403 || status == 429 {
            "rateLimitExceeded"
        } else {
            "backendError"
        };
        return respond(
            stream,
            status,
            &json!({"error": {"code": status, "errors": [{"reason": reason}]}}),
        );
    }
    let found = CALENDARS.into_iter().find_map(|c| {
        let prefix = format!("/calendars/{}/events", c.replace('@', "%40"));
        req.path
            .strip_prefix(&prefix)
            .map(|rest| (c, rest.to_string()))
    });
    let Some((calendar, rest)) = found else {
        drop(s);
        return respond(
            stream,
            404,
            &json!({"error": {"code": 404, "path": req.path}}),
        );
    };
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match (req.method.as_str(), rest.strip_prefix('/')) {
        ("POST", None) if rest.is_empty() => {
            let id = body["id"].as_str().unwrap_or("").to_string();
            if s.calendars
                .get(calendar)
                .is_some_and(|c| c.contains_key(&id))
            {
                s.conflicts += 1;
                drop(s);
                return respond(
                    stream,
                    409,
                    &json!({"error": {"code": 409, "message": "The requested identifier already exists."}}),
                );
            }
            let mut event = body.clone();
            event["etag"] = json!(format!("\"{}-1\"", id));
            s.calendars
                .entry(calendar.to_string())
                .or_default()
                .insert(id, event.clone());
            s.inserts += 1;
            if s.drop_next_insert {
                s.drop_next_insert = false;
                s.dropped += 1;
                drop(s);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            drop(s);
            respond(stream, 200, &event)
        }
        ("DELETE", Some(id)) => {
            let gone = s
                .calendars
                .get_mut(calendar)
                .and_then(|c| c.remove(id))
                .is_some();
            s.deletes += usize::from(gone);
            drop(s);
            if gone {
                let _ = write!(
                    &stream,
                    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
                );
                Ok(())
            } else {
                respond(stream, 404, &json!({"error": {"code": 404}}))
            }
        }
        ("PUT", Some(id)) => {
            let Some(old) = s.calendars.get(calendar).and_then(|c| c.get(id)).cloned() else {
                drop(s);
                return respond(stream, 404, &json!({"error": {"code": 404}}));
            };
            let n = old["etag"]
                .as_str()
                .and_then(|e| e.trim_matches('"').rsplit('-').next()?.parse::<u32>().ok())
                .unwrap_or(1);
            let mut event = body.clone();
            event["id"] = json!(id);
            event["etag"] = json!(format!("\"{id}-{}\"", n + 1));
            s.calendars
                .entry(calendar.to_string())
                .or_default()
                .insert(id.to_string(), event.clone());
            s.updates += 1;
            drop(s);
            respond(stream, 200, &event)
        }
        _ => {
            drop(s);
            respond(stream, 405, &json!({"error": {"code": 405}}))
        }
    }
}
