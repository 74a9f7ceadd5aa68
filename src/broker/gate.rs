//! Who may connect, and what a connected client may do: the daemon's side of rumqttd's
//! `gate` hooks (vendor/rumqttd/src/gate.rs, a fabgate patch).
//!
//! Per TCP connection, in order:
//! - at accept, before a byte is read: a cap on connections that have not logged in yet,
//!   per IP and in total (a flood of idle sockets cannot fill the broker; the CONNECT
//!   deadline, `connection_timeout_s`, frees them);
//! - at CONNECT: login backoff per IP after repeated failures (refused with CONNACK 5
//!   without checking the password; one log line per burst), credentials (CONNACK 4),
//!   client id rules (CONNACK 2: reserved ids, another credential's live id), the will
//!   (CONNACK 5), and room (CONNACK 3): lab-wide and anonymous logins stop short of
//!   `max_connections` by `reserved_for_board_credentials`;
//! - after: every PUBLISH and SUBSCRIBE through the ACL (`acl.rs`), and a cap on
//!   subscriptions per client.

use super::acl::{self, Action, Credential, Topics, Verdict};
use super::Authenticator;
use crate::config::BrokerConfig;
use rumqttd::gate::{ConnectInfo, Gate, Session};
use rumqttd::protocol::ConnectReturnCode;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed logins from one IP before its logins are refused for a while.
const FAILURES_BEFORE_BACKOFF: u32 = 5;
/// Longest backoff; it doubles per failure after the threshold.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A burst of failures ends after this much quiet.
const BURST_QUIET: Duration = Duration::from_secs(60);
/// Most failure records kept (one per IP); the oldest are dropped beyond it.
const MAX_FAILURE_RECORDS: usize = 4096;

/// Refusals and logins, for `/metrics`.
#[derive(Debug, Default)]
pub struct GateCounters {
    pub logins: AtomicU64,
    pub bad_credentials: AtomicU64,
    pub throttled: AtomicU64,
    pub client_id_refused: AtomicU64,
    pub will_refused: AtomicU64,
    pub full: AtomicU64,
    pub preauth_refused: AtomicU64,
    pub publish_refused: AtomicU64,
    pub subscribe_refused: AtomicU64,
}

impl GateCounters {
    /// Appends the Prometheus lines.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP fabgate_mqtt_logins_total Successful MQTT logins.\n\
             # TYPE fabgate_mqtt_logins_total counter\n\
             fabgate_mqtt_logins_total {}",
            get(&self.logins)
        );
        out.push_str(
            "# HELP fabgate_mqtt_refused_total MQTT connections, packets and logins refused, by reason.\n\
             # TYPE fabgate_mqtt_refused_total counter\n",
        );
        for (reason, c) in [
            ("bad_credentials", &self.bad_credentials),
            ("login_backoff", &self.throttled),
            ("client_id", &self.client_id_refused),
            ("will", &self.will_refused),
            ("full", &self.full),
            ("preauth_limit", &self.preauth_refused),
            ("acl_publish", &self.publish_refused),
            ("acl_subscribe", &self.subscribe_refused),
        ] {
            let _ = writeln!(
                out,
                "fabgate_mqtt_refused_total{{reason=\"{reason}\"}} {}",
                get(c)
            );
        }
    }
}

/// Limits, from `[broker]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub reserved_for_board_credentials: usize,
    pub max_pending_per_ip: usize,
    pub max_pending: usize,
    pub max_subscriptions_per_client: usize,
}

impl Limits {
    pub fn from_config(c: &BrokerConfig) -> Limits {
        Limits {
            max_connections: c.max_connections,
            reserved_for_board_credentials: c
                .reserved_for_board_credentials
                .min(c.max_connections.saturating_sub(1)),
            max_pending_per_ip: c.max_pending_per_ip,
            max_pending: c.max_pending,
            max_subscriptions_per_client: c.max_subscriptions_per_client,
        }
    }
}

#[derive(Clone)]
pub struct LabGate {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    /// None: anonymous boards allowed (they get the lab-wide rights).
    auth: Option<Authenticator>,
    topics: Topics,
    counters: Arc<GateCounters>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: HashMap<IpAddr, usize>,
    pending_total: usize,
    live: usize,
    /// Client id -> (username, token of the connection holding it).
    client_ids: HashMap<String, (String, u64)>,
    failures: HashMap<IpAddr, Failures>,
    next_token: u64,
    /// Rate limit for ACL refusal lines.
    acl_log: AclLog,
}

struct Failures {
    /// Failures in the current burst.
    count: u32,
    last: Instant,
    refuse_until: Option<Instant>,
    /// Logins refused by the backoff in this burst (reported when the burst ends).
    throttled: u64,
}

/// ACL and connection refusals: at most 10 lines a minute, then one summary line.
struct AclLog(crate::logging::Burst);

impl Default for AclLog {
    fn default() -> AclLog {
        AclLog(crate::logging::Burst::new(10))
    }
}

impl AclLog {
    fn allow(&mut self) -> bool {
        self.0.allow(|n| {
            log::warn!(
                "{n} more MQTT ACL refusals in the last minute (see fabgate_mqtt_refused_total)"
            )
        })
    }
}

impl LabGate {
    pub fn new(limits: Limits, auth: Option<Authenticator>, topics: Topics) -> LabGate {
        LabGate {
            shared: Arc::new(Shared {
                limits,
                auth,
                topics,
                counters: Arc::default(),
                state: Mutex::default(),
            }),
        }
    }

    pub fn counters(&self) -> Arc<GateCounters> {
        self.shared.counters.clone()
    }
}

impl Shared {
    /// The state survives a panicking holder: its counts are plain numbers.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refuse_acl(&self, peer: IpAddr, cred: &Credential, what: &str, why: &str) {
        if self.state().acl_log.allow() {
            log::warn!(
                "MQTT client at {peer} ({} credential) refused {}: {why}",
                cred.kind(),
                crate::terminals::messages::truncate(what, 80)
            );
        }
    }
}

impl Gate for LabGate {
    fn accept(&self, peer: SocketAddr) -> Option<Box<dyn Session>> {
        let s = &self.shared;
        let ip = peer.ip();
        let mut st = s.state();
        let from_ip = st.pending.get(&ip).copied().unwrap_or(0);
        if from_ip >= s.limits.max_pending_per_ip || st.pending_total >= s.limits.max_pending {
            drop(st);
            // Counted, not logged: a flood of sockets would flood the log too.
            s.counters.preauth_refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *st.pending.entry(ip).or_default() += 1;
        st.pending_total += 1;
        Some(Box::new(LabSession {
            shared: s.clone(),
            ip,
            stage: Stage::Pending,
        }))
    }
}

struct LabSession {
    shared: Arc<Shared>,
    ip: IpAddr,
    stage: Stage,
}

enum Stage {
    Pending,
    Live(Live),
    Gone,
}

struct Live {
    client_id: String,
    token: u64,
    who: Credential,
    bound: Option<String>,
    filters: HashSet<String>,
}

impl LabSession {
    fn leave_pending(&mut self, st: &mut State) {
        if matches!(self.stage, Stage::Pending) {
            if let Some(n) = st.pending.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    st.pending.remove(&self.ip);
                }
            }
            st.pending_total = st.pending_total.saturating_sub(1);
            self.stage = Stage::Gone;
        }
    }

    /// Checks and counts a failed or throttled login; Some(code) refuses.
    fn backoff(&self, st: &mut State, now: Instant) -> Option<ConnectReturnCode> {
        let f = st.failures.get_mut(&self.ip)?;
        match f.refuse_until {
            Some(until) if now < until => {
                f.throttled += 1;
                self.shared
                    .counters
                    .throttled
                    .fetch_add(1, Ordering::Relaxed);
                Some(ConnectReturnCode::NotAuthorized)
            }
            _ => None,
        }
    }

    fn failed(&self, st: &mut State, now: Instant, username: &str) {
        if st.failures.len() >= MAX_FAILURE_RECORDS && !st.failures.contains_key(&self.ip) {
            let oldest = st
                .failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                st.failures.remove(&ip);
            }
        }
        let f = st.failures.entry(self.ip).or_insert(Failures {
            count: 0,
            last: now,
            refuse_until: None,
            throttled: 0,
        });
        if f.count > 0 && now.duration_since(f.last) > BURST_QUIET {
            if f.count > 1 || f.throttled > 0 {
                log::warn!(
                    "MQTT logins from {}: the previous burst had {} failed and {} throttled logins",
                    self.ip,
                    f.count,
                    f.throttled
                );
            }
            f.count = 0;
            f.throttled = 0;
            f.refuse_until = None;
        }
        f.count += 1;
        f.last = now;
        if f.count == 1 {
            log::warn!(
                "MQTT login refused from {}: bad username or password (user {:?}); \
                 further failures from there are counted, not logged",
                self.ip,
                crate::terminals::messages::truncate(username, 40)
            );
        }
        if f.count >= FAILURES_BEFORE_BACKOFF {
            let doublings = (f.count - FAILURES_BEFORE_BACKOFF).min(6);
            let wait = Duration::from_secs(1 << doublings).min(MAX_BACKOFF);
            f.refuse_until = Some(now + wait);
            if f.count == FAILURES_BEFORE_BACKOFF {
                log::warn!(
                    "{} failed MQTT logins from {}: refusing its logins for a while (up to {} s)",
                    f.count,
                    self.ip,
                    MAX_BACKOFF.as_secs()
                );
            }
        }
    }
}

/// `+ # /` and `$` make ids the router refuses (without a CONNACK); ours are reserved.
fn client_id_ok(id: &str, clean_session: bool) -> bool {
    if id.is_empty() {
        return clean_session;
    }
    !id.starts_with(super::RESERVED_PREFIX) && !id.contains(['+', '#', '/', '$'])
}

impl Session for LabSession {
    fn login(&mut self, c: &ConnectInfo<'_>) -> Result<(), ConnectReturnCode> {
        let s = self.shared.clone();
        let now = Instant::now();
        {
            let mut st = s.state();
            if let Some(code) = self.backoff(&mut st, now) {
                self.leave_pending(&mut st);
                return Err(code);
            }
        }
        if !client_id_ok(c.client_id, c.clean_session) {
            s.counters.client_id_refused.fetch_add(1, Ordering::Relaxed);
            if s.state().acl_log.allow() {
                log::warn!(
                    "MQTT client at {} refused: client id {:?} is reserved or invalid",
                    self.ip,
                    crate::terminals::messages::truncate(c.client_id, 40)
                );
            }
            return Err(ConnectReturnCode::ClientIdentifierNotValid);
        }
        let username = c.username.unwrap_or("");
        // The password check runs outside the lock (it reads the database).
        let who = match &s.auth {
            None => Some(Credential::Lab),
            Some(auth) => match (c.username, c.password) {
                (Some(u), Some(p)) => auth.login(u, p),
                _ => None,
            },
        };
        let mut st = s.state();
        let Some(who) = who else {
            s.counters.bad_credentials.fetch_add(1, Ordering::Relaxed);
            self.failed(&mut st, now, username);
            self.leave_pending(&mut st);
            return Err(ConnectReturnCode::BadUserNamePassword);
        };
        st.failures.remove(&self.ip);
        let mut bound = None;
        if let Some((topic, retain)) = c.will {
            match acl::decide(&s.topics, &who, None, Action::Will { topic, retain }) {
                Verdict::Allow => {}
                Verdict::Bind(id) => bound = Some(id),
                Verdict::Deny(why) => {
                    drop(st);
                    s.counters.will_refused.fetch_add(1, Ordering::Relaxed);
                    s.refuse_acl(self.ip, &who, &format!("a will on {topic:?}"), why);
                    return Err(ConnectReturnCode::NotAuthorized);
                }
            }
        }
        // Only the credential holding a client id may take it over (the router then drops
        // the old connection); a takeover needs no new room.
        let takeover = match st.client_ids.get(c.client_id) {
            Some((holder, _)) if holder != username => {
                drop(st);
                s.counters.client_id_refused.fetch_add(1, Ordering::Relaxed);
                if s.state().acl_log.allow() {
                    log::warn!(
                        "MQTT client at {} refused: client id {:?} is in use by another credential",
                        self.ip,
                        crate::terminals::messages::truncate(c.client_id, 40)
                    );
                }
                return Err(ConnectReturnCode::ClientIdentifierNotValid);
            }
            Some(_) => true,
            None => false,
        };
        let room = match who {
            Credential::Board { .. } => s.limits.max_connections,
            Credential::Lab => s.limits.max_connections - s.limits.reserved_for_board_credentials,
        };
        if !takeover && st.live >= room {
            drop(st);
            s.counters.full.fetch_add(1, Ordering::Relaxed);
            if s.state().acl_log.allow() {
                let kind = who.kind();
                log::warn!(
                    "MQTT client at {} refused: {} connections, the limit for {kind} credentials",
                    self.ip,
                    room,
                );
            }
            return Err(ConnectReturnCode::ServiceUnavailable);
        }
        self.leave_pending(&mut st);
        st.live += 1;
        st.next_token += 1;
        let token = st.next_token;
        if !c.client_id.is_empty() {
            st.client_ids
                .insert(c.client_id.to_string(), (username.to_string(), token));
        }
        drop(st);
        s.counters.logins.fetch_add(1, Ordering::Relaxed);
        log::debug!(
            "MQTT client {:?} at {} logged in ({} credential)",
            c.client_id,
            self.ip,
            who.kind()
        );
        self.stage = Stage::Live(Live {
            client_id: c.client_id.to_string(),
            token,
            who,
            bound,
            filters: HashSet::new(),
        });
        Ok(())
    }

    fn publish(&mut self, topic: &[u8], retain: bool) -> bool {
        let Stage::Live(live) = &mut self.stage else {
            return false;
        };
        let s = &self.shared;
        let topic = String::from_utf8_lossy(topic);
        let action = Action::Publish {
            topic: &topic,
            retain,
        };
        match acl::decide(&s.topics, &live.who, live.bound.as_deref(), action) {
            Verdict::Allow => true,
            Verdict::Bind(id) => {
                live.bound = Some(id);
                true
            }
            Verdict::Deny(why) => {
                s.counters.publish_refused.fetch_add(1, Ordering::Relaxed);
                s.refuse_acl(self.ip, &live.who, &format!("publish on {topic:?}"), why);
                false
            }
        }
    }

    fn subscribe(&mut self, filter: &str) -> bool {
        let Stage::Live(live) = &mut self.stage else {
            return false;
        };
        let s = &self.shared;
        let action = Action::Subscribe { filter };
        let verdict = acl::decide(&s.topics, &live.who, live.bound.as_deref(), action);
        let verdict = match verdict {
            Verdict::Deny(why) => Err(why),
            _ if !live.filters.contains(filter)
                && live.filters.len() >= s.limits.max_subscriptions_per_client =>
            {
                Err("too many subscriptions")
            }
            v => Ok(v),
        };
        match verdict {
            Ok(v) => {
                if let Verdict::Bind(id) = v {
                    live.bound = Some(id);
                }
                live.filters.insert(filter.to_string());
                true
            }
            Err(why) => {
                s.counters.subscribe_refused.fetch_add(1, Ordering::Relaxed);
                s.refuse_acl(self.ip, &live.who, &format!("subscribe to {filter:?}"), why);
                false
            }
        }
    }

    fn unsubscribe(&mut self, filter: &str) {
        if let Stage::Live(live) = &mut self.stage {
            live.filters.remove(filter);
        }
    }
}

impl Drop for LabSession {
    fn drop(&mut self) {
        let shared = self.shared.clone();
        let mut st = shared.state();
        self.leave_pending(&mut st);
        if let Stage::Live(live) = &self.stage {
            st.live = st.live.saturating_sub(1);
            if st
                .client_ids
                .get(&live.client_id)
                .is_some_and(|(_, t)| *t == live.token)
            {
                st.client_ids.remove(&live.client_id);
            }
        }
    }
}
