//! A machine wired to the Pi: a local reader configured as `machine N` plays the
//! Fab-O-Matic board of machine N (protocol.md §2, §6.6) with the same `lab` calls the
//! MQTT adapter makes — card check, startuse, inuse every 30 s, stopuse — and drives the
//! machine's relay: on at login, kept on for the type's grace period after logout, then
//! off. Usage longer than the type's auto-logoff is stopped like the board does. The
//! machine shows online and its "board" in `board list` like any other.
//!
//! The state machine is pure over a `Ctx` (transaction and clock given by the caller):
//! `tap`/`tick` compute a `Step` without touching the relay; the caller commits the
//! transaction and only then `apply`s the step, so the relay never runs ahead of the
//! records.

use crate::lab::{self, CardCheck, Ctx, Decision, Level};
use crate::readers::{Relay, Signal};
use crate::store::{self, BoardInfo};

/// Seconds between usage heartbeats (the board's `inuse` period).
const HEARTBEAT_S: i64 = 30;
/// Seconds between "board seen" marks (a board's `checkmachine` comes every 30 s).
const TOUCH_S: i64 = 20;
/// Seconds between board-info refreshes (a board's `alive` comes every 2 min).
const ALIVE_S: i64 = 120;
/// Firmware defaults (protocol.md §4.1) when the machine has no type or no grace.
const DEFAULT_TIMEOUT_MIN: i64 = 1440;
const DEFAULT_GRACE_S: i64 = 90;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    Free,
    InUse {
        uid: String,
        name: String,
        since: i64,
        next_heartbeat: i64,
    },
    /// Logged out, power still on until `until`.
    Grace {
        until: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub session: Session,
    timeout_min: i64,
    grace_s: i64,
    next_touch: i64,
    next_alive: i64,
}

/// What a tap or tick decided: the new state, the relay position, the feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub state: State,
    pub relay: bool,
    pub signal: Option<Signal>,
}

/// The board of one machine, played by the Pi.
pub struct LocalBoard {
    pub machine_id: i64,
    reader: String,
    state: State,
    relay: Box<dyn Relay>,
}

impl LocalBoard {
    /// Starts with the relay off and the machine free.
    pub fn new(machine_id: i64, reader: &str, mut relay: Box<dyn Relay>) -> LocalBoard {
        if let Err(e) = relay.set(false) {
            log::error!("machine {machine_id} (reader {reader}): relay: {e}");
        }
        LocalBoard {
            machine_id,
            reader: reader.into(),
            state: State {
                session: Session::Free,
                timeout_min: DEFAULT_TIMEOUT_MIN,
                grace_s: DEFAULT_GRACE_S,
                next_touch: 0,
                next_alive: 0,
            },
            relay,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn relay_on(&self) -> bool {
        self.relay.is_on()
    }

    fn step(&self, state: State, signal: Option<Signal>) -> Step {
        let relay = !matches!(state.session, Session::Free);
        Step {
            state,
            relay,
            signal,
        }
    }

    fn label(&self) -> String {
        format!("machine {} (reader {})", self.machine_id, self.reader)
    }

    /// A card presented to the machine's reader.
    pub fn tap(&self, ctx: &mut Ctx, uid: &str) -> store::Result<Step> {
        let mut st = self.state.clone();
        let Some(machine) = lab::touch_machine(ctx, self.machine_id)? else {
            log::error!("{}: no such machine in the lab", self.label());
            return Ok(self.step(st, Some(Signal::Fault)));
        };
        st.timeout_min = machine.timeout_min.unwrap_or(DEFAULT_TIMEOUT_MIN);
        st.grace_s = machine.grace_min.map_or(DEFAULT_GRACE_S, |g| g * 60);
        st.next_touch = ctx.now + TOUCH_S;
        if let Session::InUse {
            uid: user, since, ..
        } = &st.session
        {
            if user != uid {
                // One user at a time: another card only learns the machine is busy.
                log::debug!("{}: card {uid} refused: machine in use", self.label());
                return Ok(self.step(st, Some(Signal::Denied)));
            }
            let duration = ctx.now - since;
            lab::stop_use(ctx, &machine, uid, duration, false)?;
            log::info!("{}: session stopped after {duration} s", self.label());
            log::debug!("{}: card {uid} stopped after {duration} s", self.label());
            st.session = self.after_logout(&st, ctx.now);
            return Ok(self.step(st, Some(Signal::Bye)));
        }
        let status = lab::machine_status(ctx.db, machine)?;
        let refusal = match lab::check_card(ctx, &status.machine, uid)? {
            CardCheck::Unknown => Err("unknown card".to_string()),
            CardCheck::Known {
                decision: Decision::Denied(reason),
                ..
            } => Err(reason.describe().to_string()),
            // The board's own rules (protocol.md §6.6) after the backend's answer.
            CardCheck::Known { .. } if status.machine.blocked => {
                Err("machine is blocked".to_string())
            }
            CardCheck::Known {
                decision: Decision::Allowed(level),
                ..
            } if status.due.is_some() && level < Level::Staff => {
                Err("maintenance is due".to_string())
            }
            CardCheck::Known { member, .. } => Ok(member),
        };
        let member = match refusal {
            Ok(m) => m,
            Err(why) => {
                log::info!("{}: card refused: {why}", self.label());
                log::debug!("{}: card {uid} refused: {why}", self.label());
                return Ok(self.step(st, Some(Signal::Denied)));
            }
        };
        lab::start_use(ctx, &status.machine, uid, false)?;
        log::info!("{}: session started for member {}", self.label(), member.id);
        log::debug!("{}: card {uid} started", self.label());
        st.session = Session::InUse {
            uid: uid.into(),
            name: member.name,
            since: ctx.now,
            next_heartbeat: ctx.now + HEARTBEAT_S,
        };
        Ok(self.step(st, Some(Signal::Welcome)))
    }

    fn after_logout(&self, st: &State, now: i64) -> Session {
        if st.grace_s > 0 {
            Session::Grace {
                until: now + st.grace_s,
            }
        } else {
            Session::Free
        }
    }

    /// Does `tick` have anything to do at `now`?
    pub fn due(&self, now: i64) -> bool {
        let st = &self.state;
        now >= st.next_touch
            || now >= st.next_alive
            || match &st.session {
                Session::Free => false,
                Session::InUse {
                    since,
                    next_heartbeat,
                    ..
                } => now >= *next_heartbeat || self.logoff_due(*since, now),
                Session::Grace { until } => now >= *until,
            }
    }

    fn logoff_due(&self, since: i64, now: i64) -> bool {
        self.state.timeout_min > 0 && now - since >= self.state.timeout_min * 60
    }

    /// Time passing: online marks, heartbeats, auto-logoff, end of the grace period.
    pub fn tick(&self, ctx: &mut Ctx) -> store::Result<Step> {
        let mut st = self.state.clone();
        let now = ctx.now;
        let mut signal = None;
        let machine = if now >= st.next_touch || !matches!(st.session, Session::Free) {
            let m = lab::touch_machine(ctx, self.machine_id)?;
            st.next_touch = now + TOUCH_S;
            if let Some(m) = &m {
                st.timeout_min = m.timeout_min.unwrap_or(DEFAULT_TIMEOUT_MIN);
                st.grace_s = m.grace_min.map_or(DEFAULT_GRACE_S, |g| g * 60);
            }
            m
        } else {
            None
        };
        if now >= st.next_alive {
            if let Some(m) = &machine {
                let info = BoardInfo {
                    ip: "local".into(),
                    fw_version: format!("fabgate {} local reader", env!("CARGO_PKG_VERSION")),
                    serial: self.reader.clone(),
                    heap: 0,
                    last_seen: now,
                };
                lab::board_alive(ctx, m, info);
                st.next_alive = now + ALIVE_S;
            }
        }
        match st.session.clone() {
            Session::InUse {
                uid,
                since,
                next_heartbeat,
                ..
            } => {
                let Some(m) = machine else {
                    log::error!("{}: machine vanished; switching it off", self.label());
                    st.session = Session::Free;
                    return Ok(self.step(st, Some(Signal::Fault)));
                };
                if self.logoff_due(since, now) {
                    lab::stop_use(ctx, &m, &uid, now - since, false)?;
                    log::info!(
                        "{}: logged off automatically after {} s",
                        self.label(),
                        now - since
                    );
                    st.session = self.after_logout(&st, now);
                    signal = Some(Signal::Bye);
                } else if now >= next_heartbeat {
                    lab::in_use(ctx, &m, &uid, now - since)?;
                    if let Session::InUse { next_heartbeat, .. } = &mut st.session {
                        *next_heartbeat = now + HEARTBEAT_S;
                    }
                }
            }
            Session::Grace { until } if now >= until => {
                log::info!("{}: grace period over", self.label());
                st.session = Session::Free;
            }
            _ => {}
        }
        Ok(self.step(st, signal))
    }

    /// Takes a step once its records are committed: new state, relay position.
    pub fn apply(&mut self, step: Step) {
        self.state = step.state;
        if step.relay != self.relay.is_on() {
            if let Err(e) = self.relay.set(step.relay) {
                log::error!("{}: relay: {e}", self.label());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::readers::FileRelay;
    use crate::store::{Hot, Store};
    use rusqlite::Connection;

    struct Fixture {
        _dir: tempfile::TempDir,
        db: Connection,
        hot: Hot,
        rules: lab::Rules,
        board: LocalBoard,
    }

    impl Fixture {
        fn new(timeout: i64, grace: i64) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
            let db = store.connect().unwrap();
            db.execute_batch(&format!(
                "INSERT INTO machine_types (type_id, type_name, timeout_min, grace_min) VALUES (10, 'LASER', {timeout}, {grace});
                 INSERT INTO machines (machine_id, machine_name, type_id) VALUES (1, 'LASER 1', 10);
                 INSERT INTO members (member_id, name, surname, role_id, card_uid, created_at)
                   VALUES (3, 'Carla', 'C', 3, 'aabbccd3', 0), (4, 'Dario', 'D', 3, 'aabbccd4', 0);
                 INSERT INTO authorizations VALUES (3, 1);"
            ))
            .unwrap();
            let relay = FileRelay::new("laser", None).unwrap();
            Fixture {
                _dir: dir,
                db,
                hot: Hot::default(),
                rules: lab::Rules::from_config(&Default::default()),
                board: LocalBoard::new(1, "laser", Box::new(relay)),
            }
        }

        fn tap(&mut self, uid: &str, now: i64) -> Option<Signal> {
            let mut ctx = Ctx {
                db: &self.db,
                hot: &mut self.hot,
                now,
                rules: &self.rules,
            };
            let step = self.board.tap(&mut ctx, uid).unwrap();
            let signal = step.signal;
            self.board.apply(step);
            signal
        }

        fn tick(&mut self, now: i64) {
            if !self.board.due(now) {
                return;
            }
            let mut ctx = Ctx {
                db: &self.db,
                hot: &mut self.hot,
                now,
                rules: &self.rules,
            };
            let step = self.board.tick(&mut ctx).unwrap();
            self.board.apply(step);
        }

        fn uses(&self) -> Vec<(i64, i64, Option<i64>)> {
            let mut st = self
                .db
                .prepare("SELECT member_id, start_ts, end_ts FROM uses ORDER BY use_id")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    }

    #[test]
    fn start_stop_grace_and_refusals() {
        let mut f = Fixture::new(120, 1);
        assert_eq!(f.tap("aabbccd4", 1000), Some(Signal::Denied));
        assert_eq!(f.tap("deadbeef", 1001), Some(Signal::Denied));
        assert!(!f.board.relay_on());
        assert_eq!(f.tap("aabbccd3", 1002), Some(Signal::Welcome));
        assert!(f.board.relay_on());
        // Another card on a busy machine: refused, session untouched.
        assert_eq!(f.tap("aabbccd4", 1010), Some(Signal::Denied));
        for t in 1003..1100 {
            f.tick(t);
        }
        assert_eq!(f.tap("aabbccd3", 1100), Some(Signal::Bye));
        assert_eq!(f.uses(), vec![(3, 1002, Some(1100))]);
        // Grace: power stays on for a minute, then goes off.
        f.tick(1159);
        assert!(f.board.relay_on());
        f.tick(1160);
        assert!(!f.board.relay_on());
        assert_eq!(f.board.state().session, Session::Free);
        let unknown: i64 =
            f.db.query_row(
                "SELECT COUNT(*) FROM unknown_cards WHERE machine_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unknown, 1);
        // The machine is seen and has a board.
        assert_eq!(f.hot.machine_last_seen(1), Some(1160));
        assert_eq!(f.hot.board(1).unwrap().serial, "laser");
    }

    #[test]
    fn auto_logoff_after_the_type_timeout_then_power_off() {
        let mut f = Fixture::new(2, 0);
        assert_eq!(f.tap("aabbccd3", 0), Some(Signal::Welcome));
        for t in 1..120 {
            f.tick(t);
            assert!(f.board.relay_on(), "t={t}");
        }
        // Heartbeats kept the use's last_seen fresh.
        assert_eq!(f.hot.use_last_seen(1, 0), 90);
        f.tick(120);
        assert!(!f.board.relay_on());
        assert_eq!(f.uses(), vec![(3, 0, Some(120))]);
    }
}
