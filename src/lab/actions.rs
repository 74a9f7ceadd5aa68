//! Operations that read and change the lab: card checks, usage sessions, maintenance,
//! board heartbeats, orphan sessions. Each runs inside the caller's transaction.

use super::{is_online, level, may_use, overdue, Decision, Level, Reason, Rules, MAX_DURATION_S};
use crate::store::{self, BoardInfo, Hot, Machine, Member, Plan, Result};
use rusqlite::Connection;

/// What an operation works with: the transaction, the write-behind state, the clock.
pub struct Ctx<'a> {
    pub db: &'a Connection,
    pub hot: &'a mut Hot,
    pub now: i64,
    pub rules: &'a Rules,
}

/// A machine as a board needs to see it.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineStatus {
    pub machine: Machine,
    /// The first overdue maintenance plan, if any.
    pub due: Option<Plan>,
}

/// Looks a machine up and marks its board as seen (every board message but synccache).
pub fn touch_machine(ctx: &mut Ctx, machine_id: i64) -> Result<Option<Machine>> {
    let machine = store::machine(ctx.db, machine_id)?;
    if machine.is_some() {
        ctx.hot.machine_seen(machine_id, ctx.now);
    }
    Ok(machine)
}

/// Plans of the machine that are overdue, with the seconds used since each was last done.
pub fn overdue_plans(db: &Connection, machine_id: i64) -> Result<Vec<(Plan, i64)>> {
    let mut due = Vec::new();
    for plan in store::plans(db, machine_id)? {
        let used = store::seconds_used_since_intervention(db, &plan)?;
        if overdue(plan.hours_between, used) {
            due.push((plan, used));
        }
    }
    Ok(due)
}

pub fn machine_status(db: &Connection, machine: Machine) -> Result<MachineStatus> {
    let due = overdue_plans(db, machine.id)?
        .into_iter()
        .next()
        .map(|(p, _)| p);
    Ok(MachineStatus { machine, due })
}

/// The outcome of presenting a card at a machine.
#[derive(Debug, Clone, PartialEq)]
pub enum CardCheck {
    /// No member holds this card; the attempt was recorded in `unknown_cards`.
    Unknown,
    Known {
        member: Member,
        decision: Decision,
    },
}

/// `checkuser`: may the holder of this card use the machine? Unknown cards are recorded,
/// one row per attempt, so staff can turn them into members.
pub fn check_card(ctx: &mut Ctx, machine: &Machine, uid: &str) -> Result<CardCheck> {
    let Some(member) = store::member_by_card(ctx.db, uid)? else {
        store::insert_unknown_card(ctx.db, uid, Some(machine.id), ctx.now)?;
        return Ok(CardCheck::Unknown);
    };
    let authorized = store::has_authorization(ctx.db, member.id, machine.id)?;
    let someone_else_in =
        machine.needs_second_person && store::count_present_except(ctx.db, member.id)? > 0;
    let decision = may_use(&member, machine, authorized, someone_else_in);
    Ok(CardCheck::Known { member, decision })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseOutcome {
    UnknownCard,
    /// `inuse` with a duration outside 0..=24 h.
    BadDuration,
    /// Recorded; for a stop, the seconds added to the machine.
    Recorded {
        seconds: i64,
    },
    /// A replayed message already recorded earlier: answered, not recorded again.
    Duplicate {
        seconds: i64,
    },
}

/// Closes an open use as the board reported it: end = start + duration. Every way a use
/// ends comes here, so the calendar and the webhooks hear of each one.
fn close(ctx: &mut Ctx, u: &store::Use, duration: i64) -> Result<()> {
    store::close_use(ctx.db, u.id, u.start + duration, ctx.now)?;
    ctx.hot.use_closed(u.id);
    crate::sync::calendar::use_closed(ctx.db, u.id, ctx.now)?;
    crate::sync::webhook::use_stopped(ctx.db, u.id)?;
    Ok(())
}

/// A use was opened (open, or `closed` already): its calendar event and webhooks.
fn opened(ctx: &mut Ctx, use_id: i64, closed: bool) -> Result<()> {
    crate::sync::calendar::use_opened(ctx.db, use_id, ctx.now)?;
    if closed {
        crate::sync::webhook::use_stopped(ctx.db, use_id)
    } else {
        crate::sync::webhook::use_started(ctx.db, use_id)
    }
}

/// A time in milliseconds for an event handled at `ctx.now`: the wall clock's
/// milliseconds, kept inside `ctx.now`'s second so that events handled in order (one
/// batch shares one `now`) never compare out of order.
fn stamp_ms(ctx: &Ctx) -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    ms.clamp(ctx.now * 1000, ctx.now * 1000 + 999)
}

/// Is a replayed `startuse` the late copy of the start that opened `u` (its reply was
/// lost, protocol.md §4.2), rather than a new session the board kept offline? A board
/// drains its buffer before any new query, so once `u` had a heartbeat (`inuse`) after
/// its start, that start's copy cannot still be buffered: the replay is a new session
/// (the board rebooted or lost the network meanwhile, issue 12). `alive` is no sign on its
/// own: a board sends it at every reconnection, the one after a lost reply included.
fn is_late_copy(ctx: &Ctx, u: &store::Use) -> bool {
    ctx.hot.use_last_seen(u.id, u.last_seen) <= u.start
}

/// `startuse`: closes whatever is open on the machine (each at its last heartbeat), then
/// opens a use for the card's holder. No authorization check: the board already decided
/// (protocol.md §2.3). A replayed start while the same member's use is still open is the
/// late copy of a start we already recorded (§8.7) and changes nothing, unless that use
/// had heartbeats since: then the replay is a session of its own, recorded as a new,
/// replay-marked use after the open one is closed at its last heartbeat. Two sessions are
/// never merged.
pub fn start_use(ctx: &mut Ctx, machine: &Machine, uid: &str, replay: bool) -> Result<UseOutcome> {
    let Some(member) = store::member_by_card(ctx.db, uid)? else {
        return Ok(UseOutcome::UnknownCard);
    };
    let open = store::open_uses(ctx.db, machine.id)?;
    if replay
        && open
            .iter()
            .any(|u| u.member_id == member.id && is_late_copy(ctx, u))
    {
        return Ok(UseOutcome::Duplicate { seconds: 0 });
    }
    let mut closed = 0;
    for u in &open {
        let seen = ctx.hot.use_last_seen(u.id, u.last_seen);
        let d = (seen - u.start).max(0);
        close(ctx, u, d)?;
        closed += d;
    }
    store::add_machine_seconds(ctx.db, machine.id, closed)?;
    let id = store::insert_use(
        ctx.db,
        member.id,
        machine.id,
        ctx.now,
        ctx.now,
        None,
        Some(replay),
    )?;
    store::set_use_start_ms(ctx.db, id, stamp_ms(ctx))?;
    opened(ctx, id, false)?;
    Ok(UseOutcome::Recorded { seconds: 0 })
}

/// `inuse`: a heartbeat of the session. With no open use the board missed our startuse,
/// so one is opened `duration` seconds ago (protocol.md §2.4).
pub fn in_use(ctx: &mut Ctx, machine: &Machine, uid: &str, duration: i64) -> Result<UseOutcome> {
    let Some(member) = store::member_by_card(ctx.db, uid)? else {
        return Ok(UseOutcome::UnknownCard);
    };
    if !(0..=MAX_DURATION_S).contains(&duration) {
        return Ok(UseOutcome::BadDuration);
    }
    match store::open_uses(ctx.db, machine.id)?.first() {
        Some(u) => {
            if u.member_id != member.id {
                log::warn!(
                    "machine {}: inuse for member {} but the open use {} belongs to member {}",
                    machine.id,
                    member.id,
                    u.id,
                    u.member_id
                );
            }
            ctx.hot.use_heartbeat(u.id, ctx.now);
        }
        None => {
            let id = store::insert_use(
                ctx.db,
                member.id,
                machine.id,
                ctx.now - duration,
                ctx.now,
                None,
                None,
            )?;
            opened(ctx, id, false)?;
        }
    }
    Ok(UseOutcome::Recorded { seconds: 0 })
}

/// `stopuse`: closes the machine's open use at start + duration (a board has one user at a
/// time, so the card only matters for a new row). With no open use the whole session
/// happened while we did not see it and is recorded closed. Fixes of protocol.md §8:
/// machine hours are added once (§8.8), a replayed copy of a stop already recorded is not
/// recorded again (§8.7), a zero-length stop on a free machine records nothing (§8.11).
pub fn stop_use(
    ctx: &mut Ctx,
    machine: &Machine,
    uid: &str,
    duration: i64,
    replay: bool,
) -> Result<UseOutcome> {
    let Some(member) = store::member_by_card(ctx.db, uid)? else {
        return Ok(UseOutcome::UnknownCard);
    };
    let d = if (0..=MAX_DURATION_S).contains(&duration) {
        duration
    } else {
        1
    };
    let open = store::open_uses(ctx.db, machine.id)?;
    if let Some((first, others)) = open.split_first() {
        if first.member_id != member.id {
            log::warn!(
                "machine {}: stopuse for member {} closes use {} of member {}",
                machine.id,
                member.id,
                first.id,
                first.member_id
            );
        }
        close(ctx, first, d)?;
        let mut total = d;
        for u in others {
            let seen = ctx.hot.use_last_seen(u.id, u.last_seen);
            let extra = (seen - u.start).max(0);
            close(ctx, u, extra)?;
            total += extra;
        }
        store::add_machine_seconds(ctx.db, machine.id, total)?;
        return Ok(UseOutcome::Recorded { seconds: total });
    }
    if d == 0 {
        return Ok(UseOutcome::Recorded { seconds: 0 });
    }
    let since = ctx.now - ctx.rules.duplicate_window_s;
    if replay && store::closed_use_with_duration_since(ctx.db, member.id, machine.id, d, since)? {
        return Ok(UseOutcome::Duplicate { seconds: d });
    }
    let id = store::insert_use(
        ctx.db,
        member.id,
        machine.id,
        ctx.now - d,
        ctx.now,
        Some(ctx.now),
        Some(replay),
    )?;
    opened(ctx, id, true)?;
    store::add_machine_seconds(ctx.db, machine.id, d)?;
    Ok(UseOutcome::Recorded { seconds: d })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceOutcome {
    UnknownCard,
    /// The member's role may not sign off maintenance, or the member is disabled.
    NotAllowed,
    /// One intervention per overdue plan (possibly none).
    Recorded {
        interventions: usize,
    },
}

/// `maintenance`: the card's holder did the maintenance; every overdue plan of the machine
/// gets an intervention, which restarts its counter (protocol.md §2.6). Naturally
/// idempotent: a replayed copy finds nothing overdue.
pub fn register_maintenance(
    ctx: &mut Ctx,
    machine: &Machine,
    uid: &str,
    replay: bool,
) -> Result<MaintenanceOutcome> {
    let Some(member) = store::member_by_card(ctx.db, uid)? else {
        return Ok(MaintenanceOutcome::UnknownCard);
    };
    if !member.role.maintenance || member.disabled {
        return Ok(MaintenanceOutcome::NotAllowed);
    }
    let due = overdue_plans(ctx.db, machine.id)?;
    let ms = stamp_ms(ctx);
    for (plan, _) in &due {
        store::insert_intervention(
            ctx.db,
            plan.id,
            machine.id,
            member.id,
            ctx.now,
            replay.then_some(true),
        )?;
        store::set_last_intervention_ms(ctx.db, plan.id, machine.id, ms)?;
    }
    Ok(MaintenanceOutcome::Recorded {
        interventions: due.len(),
    })
}

/// `alive`: remembers what the board reported (written to the database at the next flush).
pub fn board_alive(ctx: &mut Ctx, machine: &Machine, info: BoardInfo) {
    ctx.hot.board_alive(machine.id, info);
}

/// Cards the board may cache (synccache): active members allowed on the machine, by id.
/// A board cannot know who is in the building while offline, so a machine needing a
/// second person gets no cards to cache (the lone-working rule is never bypassed).
pub fn cards_for_machine(db: &Connection, machine: &Machine) -> Result<Vec<(String, Level)>> {
    let authorized = store::authorized_member_ids(db, machine.id)?;
    let mut cards = Vec::new();
    for m in store::active_members_with_cards(db)? {
        if let Decision::Allowed(level) = may_use(&m, machine, authorized.contains(&m.id), false) {
            cards.push((m.card_uid.clone().unwrap_or_default(), level));
        }
    }
    Ok(cards)
}

/// Closes open uses whose board stopped sending heartbeats more than `orphan_after_s` ago,
/// at their last heartbeat + 1 s as FabOMatic does (protocol.md §6.7). Returns how many.
pub fn close_orphans(ctx: &mut Ctx) -> Result<usize> {
    let mut n = 0;
    for u in store::all_open_uses(ctx.db)? {
        let seen = ctx.hot.use_last_seen(u.id, u.last_seen);
        if ctx.now - seen > ctx.rules.orphan_after_s {
            let d = (seen - u.start).max(0) + 1;
            close(ctx, &u, d)?;
            store::add_machine_seconds(ctx.db, u.machine_id, d)?;
            log::info!(
                "closed orphan use {} on machine {} after {d} s",
                u.id,
                u.machine_id
            );
            n += 1;
        }
    }
    Ok(n)
}

/// Moves the database's times after a wall-clock jump (`Hot::now` moved the memory's):
/// open uses always, and everything stamped since `stale_since` when the clock that jumped
/// was not synchronised (a Pi that booted on a stale time). One session stays one row,
/// with its real length, and machine hours are counted once (issue 12).
pub fn rebase(db: &Connection, jump: store::Jump) -> Result<()> {
    let open = store::shift_open_uses(db, jump.shift)?;
    let stamped = match jump.stale_since {
        Some(since) => store::shift_stamped_between(db, since, jump.before + 1, jump.shift)?,
        None => 0,
    };
    log::warn!(
        "clock jump of {} s: {open} open uses and {stamped} uses recorded on the \
         unsynchronised clock moved with it",
        jump.shift
    );
    Ok(())
}

/// Why a remote start/stop cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteRefusal {
    UnknownMachine,
    Offline,
    Card(Reason),
}

impl std::fmt::Display for RemoteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            RemoteRefusal::UnknownMachine => f.write_str("no such machine"),
            RemoteRefusal::Offline => f.write_str("the machine's board is offline"),
            RemoteRefusal::Card(r) => f.write_str(r.describe()),
        }
    }
}

/// May a remote start/stop be sent to this machine on behalf of this card? The board must
/// be online and the card must belong to an active member (protocol.md §2.9, §8.12).
pub fn check_remote_request(
    db: &Connection,
    hot: &Hot,
    machine_id: i64,
    uid: &str,
    now: i64,
    rules: &Rules,
) -> Result<std::result::Result<(), RemoteRefusal>> {
    let Some(machine) = store::machine(db, machine_id)? else {
        return Ok(Err(RemoteRefusal::UnknownMachine));
    };
    let seen = hot.machine_last_seen(machine_id).max(machine.last_seen);
    if !is_online(seen, now, rules.online_window_s) {
        return Ok(Err(RemoteRefusal::Offline));
    }
    Ok(remote_card(db, uid)?
        .map(|_| ())
        .map_err(RemoteRefusal::Card))
}

/// May this card ask for a remote start/stop? It must belong to a member who is neither
/// deleted nor disabled (protocol.md §8.12). The CLI checks this before queueing a
/// request; the daemon checks it again before publishing.
pub fn remote_card(db: &Connection, uid: &str) -> Result<std::result::Result<Member, Reason>> {
    Ok(match store::member_by_card(db, uid)? {
        None => Err(Reason::UnknownCard),
        Some(m) if m.deleted => Err(Reason::Deleted),
        Some(m) if level(&m) == Level::Invalid => Err(Reason::Disabled),
        Some(m) => Ok(m),
    })
}
