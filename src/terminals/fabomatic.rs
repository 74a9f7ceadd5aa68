//! The Fab-O-Matic board adapter: turns a message on `machine/<id>` into `lab` calls and
//! the reply the firmware parses (protocol.md §2). It knows the wire, not the rules.

use super::messages::{self as wire, Malformed, Query};
use crate::config::ProtocolConfig;
use crate::lab::{self, CardCheck, Ctx, Decision, MaintenanceOutcome, Reason, UseOutcome};
use crate::store::{BoardInfo, Machine};

/// What to do with one incoming message.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Publish this payload on this topic (after the batch is committed).
    Reply { topic: String, payload: Vec<u8> },
    /// Valid message that expects no answer (`alive`).
    NoReply,
    /// Not for us or malformed: logged and dropped, nothing is sent.
    Dropped(DropReason),
    /// The store failed: the message's changes are rolled back; reads still get
    /// FabOMatic's error reply, writes get none so the board buffers and replays them.
    /// `cause` is the store's error, for the staff's fault line.
    Failed {
        reply: Option<(String, Vec<u8>)>,
        cause: String,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("topic is not <topic>/<machine id>")]
    Topic,
    #[error("machine id is not a number")]
    MachineId,
    #[error("{0}")]
    Malformed(#[from] Malformed),
}

/// The parsed topic of a board message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardTopic<'a> {
    /// The id segment exactly as received: replies go back on it (§8.5).
    pub segment: &'a str,
    pub machine_id: i64,
}

/// Defaults FabOMatic falls back to (database/constants.py).
const DEFAULT_TIMEOUT_MINUTES: i64 = 1440;
/// Longest name sent to a board: the LCD shows 16 columns and replies must stay small.
const MAX_NAME_BYTES: usize = 48;

/// Board-facing protocol settings.
#[derive(Debug, Clone)]
pub struct Protocol {
    topic: String,
    reply_subtopic: String,
    request_subtopic: String,
    max_reply_bytes: usize,
    synccache_max_cards: usize,
}

impl Protocol {
    pub fn new(p: &ProtocolConfig) -> Protocol {
        Protocol {
            topic: p.topic.clone(),
            reply_subtopic: p.reply_subtopic.clone(),
            request_subtopic: p.request_subtopic.clone(),
            max_reply_bytes: p.max_reply_bytes,
            synccache_max_cards: p.synccache_max_cards,
        }
    }

    /// The filter the daemon subscribes to: one level below the prefix, so replies and
    /// requests (two levels) are never delivered back to us.
    pub fn subscription(&self) -> String {
        format!("{}/+", self.topic)
    }

    pub fn request_topic(&self, machine_id: i64) -> String {
        format!("{}/{machine_id}{}", self.topic, self.request_subtopic)
    }

    /// Splits `machine/<id>`; the id must be ASCII digits (§8.5).
    pub fn parse_topic<'a>(&self, topic: &'a str) -> Result<BoardTopic<'a>, DropReason> {
        let mut parts = topic.split('/');
        let (Some(prefix), Some(segment), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DropReason::Topic);
        };
        if !prefix.eq_ignore_ascii_case(&self.topic) {
            return Err(DropReason::Topic);
        }
        if segment.is_empty() || segment.len() > 9 || !segment.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DropReason::MachineId);
        }
        let machine_id = segment.parse().map_err(|_| DropReason::MachineId)?;
        Ok(BoardTopic {
            segment,
            machine_id,
        })
    }

    /// Handles one board message inside the caller's transaction.
    pub fn handle(&self, ctx: &mut Ctx, topic: &str, payload: &[u8]) -> Handled {
        self.handle_action(ctx, topic, payload).1
    }

    /// `handle`, also returning the message's action (None when it could not be parsed),
    /// for metrics.
    pub fn handle_action(
        &self,
        ctx: &mut Ctx,
        topic: &str,
        payload: &[u8],
    ) -> (Option<&'static str>, Handled) {
        let board = match self.parse_topic(topic) {
            Ok(b) => b,
            Err(e) => return (None, Handled::Dropped(e)),
        };
        let query = match wire::parse(payload) {
            Ok(q) => q,
            Err(e) => return (None, Handled::Dropped(e.into())),
        };
        (Some(query.action()), self.answer_query(ctx, &board, &query))
    }

    fn answer_query(&self, ctx: &mut Ctx, board: &BoardTopic, query: &Query) -> Handled {
        let reply_topic = format!("{}/{}{}", self.topic, board.segment, self.reply_subtopic);
        match self.answer(ctx, board.machine_id, query) {
            Ok(None) => Handled::NoReply,
            Ok(Some(payload)) => Handled::Reply {
                topic: reply_topic,
                payload,
            },
            Err(e) => {
                log::error!(
                    "machine {}: {} failed: {e}",
                    board.machine_id,
                    query.action()
                );
                Handled::Failed {
                    reply: failure_reply(query).map(|p| (reply_topic, p)),
                    cause: e.to_string(),
                }
            }
        }
    }

    fn answer(
        &self,
        ctx: &mut Ctx,
        machine_id: i64,
        query: &Query,
    ) -> crate::store::Result<Option<Vec<u8>>> {
        // synccache does not count as a sign of life in FabOMatic (§2.8).
        let machine = if *query == Query::SyncCache {
            crate::store::machine(ctx.db, machine_id)?
        } else {
            lab::touch_machine(ctx, machine_id)?
        };
        let Some(machine) = machine else {
            // Never answer alive: the board would read it as the next query's reply (§8.4).
            if matches!(query, Query::Alive { .. }) {
                log::debug!("alive from unknown machine {machine_id}");
                return Ok(None);
            }
            return Ok(Some(wire::to_bytes(&wire::SimpleReply {
                request_ok: false,
                message: "Invalid machine ID",
            })));
        };
        Ok(Some(match query {
            Query::CheckMachine => self.machine_reply(ctx, machine)?,
            Query::CheckUser { uid } => user_reply(lab::check_card(ctx, &machine, uid)?),
            Query::StartUse { uid, replay } => {
                use_reply(lab::start_use(ctx, &machine, uid, *replay)?, |_| {
                    String::new()
                })
            }
            Query::InUse { uid, duration } => {
                let outcome = lab::in_use(ctx, &machine, uid, *duration)?;
                use_reply(outcome, |_| "inUse".into())
            }
            Query::StopUse {
                uid,
                duration,
                replay,
            } => {
                let outcome = lab::stop_use(ctx, &machine, uid, *duration, *replay)?;
                use_reply(outcome, |s| format!("Duration {s} seconds"))
            }
            Query::Maintenance { uid, replay } => {
                let (ok, message) = match lab::register_maintenance(ctx, &machine, uid, *replay)? {
                    MaintenanceOutcome::UnknownCard => (false, "Wrong user card"),
                    MaintenanceOutcome::NotAllowed => (false, "Not authorized"),
                    MaintenanceOutcome::Recorded { .. } => (true, ""),
                };
                wire::to_bytes(&wire::SimpleReply {
                    request_ok: ok,
                    message,
                })
            }
            Query::Alive {
                version,
                ip,
                serial,
                heap,
            } => {
                let info = BoardInfo {
                    ip: ip.clone(),
                    fw_version: version.clone(),
                    serial: serial.clone(),
                    heap: *heap,
                    last_seen: ctx.now,
                };
                lab::board_alive(ctx, &machine, info);
                return Ok(None);
            }
            Query::SyncCache => self.sync_reply(ctx, &machine)?,
        }))
    }

    fn machine_reply(&self, ctx: &mut Ctx, machine: Machine) -> crate::store::Result<Vec<u8>> {
        let status = lab::machine_status(ctx.db, machine)?;
        let m = &status.machine;
        let description = status
            .due
            .as_ref()
            .and_then(|p| p.lcd_message.as_deref())
            .unwrap_or("");
        Ok(wire::to_bytes(&wire::MachineReply {
            request_ok: true,
            is_valid: true,
            maintenance: status.due.is_some(),
            allowed: !m.blocked,
            name: wire::truncate(&m.name, MAX_NAME_BYTES),
            logoff: m.timeout_min.unwrap_or(DEFAULT_TIMEOUT_MINUTES),
            type_id: m.type_id.unwrap_or(0),
            grace: m.grace_min,
            description: wire::truncate(description, MAX_NAME_BYTES),
        }))
    }

    /// Authorized cards, cut to the configured count and to what fits the board's buffer
    /// (§8.3: FabOMatic's 200 cards would overflow the 300-byte buffer at the 8th).
    fn sync_reply(&self, ctx: &mut Ctx, machine: &Machine) -> crate::store::Result<Vec<u8>> {
        let cards = lab::cards_for_machine(ctx.db, machine)?;
        let empty = wire::to_bytes(&wire::SyncReply {
            request_ok: true,
            cards: vec![],
        })
        .len();
        let mut size = empty;
        let mut entries = Vec::new();
        for (uid, level) in &cards {
            let entry = wire::CardEntry {
                uid,
                level: *level as u8,
            };
            let extra = wire::to_bytes(&entry).len() + usize::from(!entries.is_empty());
            if entries.len() >= self.synccache_max_cards || size + extra > self.max_reply_bytes {
                break;
            }
            size += extra;
            entries.push(entry);
        }
        if entries.len() < cards.len() {
            log::info!(
                "machine {}: synccache sends {} of {} cards (reply size limit)",
                machine.id,
                entries.len(),
                cards.len()
            );
        }
        Ok(wire::to_bytes(&wire::SyncReply {
            request_ok: true,
            cards: entries,
        }))
    }
}

fn user_reply(check: CardCheck) -> Vec<u8> {
    let reply = match &check {
        CardCheck::Unknown => wire::UserReply {
            request_ok: true,
            is_valid: false,
            name: "Unknown",
            missing_auth: false,
            level: 0,
        },
        CardCheck::Known {
            member,
            decision: Decision::Allowed(level),
        } => wire::UserReply {
            request_ok: true,
            is_valid: true,
            name: wire::truncate(&member.name, MAX_NAME_BYTES),
            missing_auth: false,
            level: *level as u8,
        },
        // The firmware shows `name` on the LCD: say why, not "not authorized".
        CardCheck::Known {
            decision: Decision::Denied(Reason::NobodyElseIn),
            ..
        } => wire::UserReply {
            request_ok: true,
            is_valid: false,
            name: "Nobody else in",
            missing_auth: false,
            level: 0,
        },
        CardCheck::Known { .. } => wire::UserReply {
            request_ok: true,
            is_valid: false,
            name: "User not authorized",
            missing_auth: true,
            level: 0,
        },
    };
    wire::to_bytes(&reply)
}

fn use_reply(outcome: UseOutcome, message: impl Fn(i64) -> String) -> Vec<u8> {
    let (ok, text) = match outcome {
        UseOutcome::UnknownCard => (false, "Invalid card".to_string()),
        UseOutcome::BadDuration => (false, message(0)),
        UseOutcome::Recorded { seconds } | UseOutcome::Duplicate { seconds } => {
            (true, message(seconds))
        }
    };
    wire::to_bytes(&wire::SimpleReply {
        request_ok: ok,
        message: &text,
    })
}

/// What FabOMatic answers when its handler raised (protocol.md §2). Writes get no answer:
/// the board then buffers the message and replays it, so nothing is lost.
fn failure_reply(query: &Query) -> Option<Vec<u8>> {
    match query {
        Query::CheckMachine => Some(wire::to_bytes(&wire::MachineReply {
            request_ok: false,
            is_valid: false,
            maintenance: false,
            allowed: false,
            name: "?",
            logoff: DEFAULT_TIMEOUT_MINUTES,
            type_id: 0,
            grace: Some(2),
            description: "",
        })),
        Query::CheckUser { .. } => Some(wire::to_bytes(&wire::UserReply {
            request_ok: false,
            is_valid: false,
            name: "",
            missing_auth: true,
            level: 0,
        })),
        Query::SyncCache => Some(wire::to_bytes(&wire::SyncReply {
            request_ok: false,
            cards: vec![],
        })),
        Query::Alive { .. } => None,
        Query::StartUse { .. }
        | Query::InUse { .. }
        | Query::StopUse { .. }
        | Query::Maintenance { .. } => None,
    }
}
