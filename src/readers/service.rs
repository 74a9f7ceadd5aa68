//! The readers thread: polls every configured reader at its interval, turns what they
//! see into taps (`Debounce`), and hands each tap to its terminal — the building register
//! (`lab::presence`) for an entrance reader, a `terminals::LocalBoard` for a machine
//! reader — inside one transaction, committed before the relay moves or the buzzer
//! sounds. A reader that cannot be opened (no SPI, wedge unplugged) is logged once and
//! retried; boards on MQTT never wait for it.

use super::{open, open_feedback, open_relay, Debounce, Feedback, Reader, Signal};
use crate::config::{ReaderConfig, ReaderRole};
use crate::lab::{self, presence, Ctx, Rules};
use crate::store::{self, Hot, Store};
use crate::terminals::LocalBoard;
use rusqlite::Connection;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a reader that failed waits before it is opened again.
const RETRY_MS: i64 = 30_000;
/// Longest sleep of the loop (machine ticks are in seconds).
const MAX_SLEEP_MS: i64 = 500;

pub struct Service {
    pub store: Store,
    pub hot: Arc<Mutex<Hot>>,
    pub rules: Rules,
    pub readers: Vec<ReaderConfig>,
}

struct Slot {
    cfg: ReaderConfig,
    reader: Option<Box<dyn Reader>>,
    feedback: Option<Box<dyn Feedback>>,
    board: Option<LocalBoard>,
    debounce: Debounce,
    retry_at: i64,
    next_poll: i64,
    failures: u32,
}

impl Slot {
    /// Opens what is not open yet: the relay first (a machine must start switched off),
    /// then the feedback outputs, then the reader.
    fn open(&mut self, now_ms: i64) {
        let result = (|| {
            if self.cfg.role == ReaderRole::Machine && self.board.is_none() {
                let relay = open_relay(&self.cfg)?;
                let id = self.cfg.machine.unwrap_or_default();
                self.board = Some(LocalBoard::new(id, &self.cfg.name, relay));
            }
            if self.feedback.is_none() {
                self.feedback = Some(open_feedback(&self.cfg)?);
            }
            let reader = open(&self.cfg)?;
            let label = &self.cfg.name;
            log::info!("reader {label}: {}", reader.describe());
            self.reader = Some(reader);
            Ok::<_, super::Error>(())
        })();
        if let Err(e) = result {
            self.failures += 1;
            if self.failures == 1 {
                let label = &self.cfg.name;
                log::error!("reader {label}: {e} (retrying every {} s)", RETRY_MS / 1000);
            } else {
                log::debug!("reader {}: still failing: {e}", self.cfg.name);
            }
            self.retry_at = now_ms + RETRY_MS;
        } else {
            self.failures = 0;
        }
    }
}

impl Service {
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("readers".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        let clock = Instant::now();
        let ms = || clock.elapsed().as_millis() as i64;
        let mut slots: Vec<Slot> = self
            .readers
            .iter()
            .map(|cfg| Slot {
                cfg: cfg.clone(),
                reader: None,
                feedback: None,
                board: None,
                debounce: Debounce::new(cfg.repeat_ms),
                retry_at: 0,
                next_poll: 0,
                failures: 0,
            })
            .collect();
        let mut conn = loop {
            match self.store.connect() {
                Ok(c) => break c,
                Err(e) => log::error!("readers: {e}"),
            }
            std::thread::sleep(Duration::from_secs(5));
        };
        loop {
            let mut wake = ms() + MAX_SLEEP_MS;
            for slot in &mut slots {
                let now = ms();
                self.step(slot, &mut conn, now);
                wake = wake.min(if slot.reader.is_some() {
                    slot.next_poll
                } else {
                    slot.retry_at
                });
            }
            let sleep = (wake - ms()).clamp(1, MAX_SLEEP_MS);
            std::thread::sleep(Duration::from_millis(sleep as u64));
        }
    }

    fn step(&self, slot: &mut Slot, conn: &mut Connection, now_ms: i64) {
        if slot.reader.is_none() && now_ms >= slot.retry_at {
            slot.open(now_ms);
        }
        if let Some(reader) = &mut slot.reader {
            if now_ms >= slot.next_poll {
                slot.next_poll = now_ms + slot.cfg.poll_ms as i64;
                match reader.poll() {
                    Ok(seen) => {
                        if let Some(uid) = slot.debounce.feed(seen, now_ms) {
                            let signal = self.tap(slot, conn, &uid);
                            if let Some(f) = &mut slot.feedback {
                                f.signal(signal, now_ms);
                            }
                        }
                    }
                    Err(e) => {
                        {
                            let label = &slot.cfg.name;
                            log::warn!("reader {label}: {e}; reopening it");
                        }
                        slot.reader = None;
                        slot.retry_at = now_ms + 5_000;
                    }
                }
            }
        }
        if let Some(f) = &mut slot.feedback {
            f.tick(now_ms);
        }
        if let Some(board) = &mut slot.board {
            if board.due(store::now()) {
                match self.in_tx(conn, |ctx| board.tick(ctx)) {
                    Ok(step) => {
                        let signal = step.signal;
                        board.apply(step);
                        if let (Some(s), Some(f)) = (signal, &mut slot.feedback) {
                            f.signal(s, now_ms);
                        }
                    }
                    Err(e) => {
                        let label = &slot.cfg.name;
                        log::error!("reader {label}: {e}");
                    }
                }
            }
        }
    }

    /// One tap through the reader's terminal; the feedback to give.
    fn tap(&self, slot: &mut Slot, conn: &mut Connection, uid: &str) -> Signal {
        let name = slot.cfg.name.clone();
        let result = match &mut slot.board {
            Some(board) => self.in_tx(conn, |ctx| board.tap(ctx, uid)).map(|step| {
                let signal = step.signal.unwrap_or(Signal::Denied);
                board.apply(step);
                signal
            }),
            None => self
                .in_tx(conn, |ctx| {
                    presence::entrance_tap(ctx, uid, &presence::reader_source(&name))
                })
                .map(|tap| entrance_signal(&name, uid, tap)),
        };
        result.unwrap_or_else(|e| {
            let reader = &name;
            log::error!("reader {reader}: a card tap failed: {e}");
            log::debug!("reader {reader}: card {uid} failed");
            Signal::Fault
        })
    }

    fn in_tx<T>(
        &self,
        conn: &mut Connection,
        f: impl FnOnce(&mut Ctx) -> store::Result<T>,
    ) -> store::Result<T> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = {
            let mut hot = self
                .hot
                .lock()
                .map_err(|_| store::Error::Invalid("hot state poisoned".into()))?;
            let mut ctx = Ctx {
                db: &tx,
                hot: &mut hot,
                now: store::now(),
                rules: &self.rules,
            };
            f(&mut ctx)?
        };
        tx.commit()?;
        crate::sync::wake_if_queued();
        Ok(out)
    }
}

fn entrance_signal(reader: &str, uid: &str, tap: presence::Tap) -> Signal {
    use presence::Tap;
    match tap {
        Tap::SignedIn { member } => {
            log::info!("entrance {reader}: member {} signed in", member.id);
            Signal::Welcome
        }
        Tap::SignedOut { member, .. } => {
            log::info!("entrance {reader}: member {} signed out", member.id);
            Signal::Bye
        }
        Tap::Unknown => {
            log::info!("entrance {reader}: unknown card");
            log::debug!("entrance {reader}: unknown card {uid}");
            Signal::Denied
        }
        Tap::Refused { member, reason } => {
            log::info!(
                "entrance {reader}: member {} refused: {}",
                member.id,
                lab::Reason::describe(reason)
            );
            Signal::Denied
        }
    }
}
