//! The lab's rules, in one place. Boards (`terminals`), the panel, the CLI and the jobs
//! all call these functions; none of them re-implements a rule.
//!
//! Pure decisions (`may_use`, `level`, `overdue`) take plain values; the operations in
//! `actions` read and write the store inside the caller's transaction with `now` passed
//! in, so tests can fix the clock. A "no" is a value (`Decision::Denied(Reason)`), never an
//! error. Semantics follow FabOMatic (protocol.md §2, §6), with the fixes of §8 noted
//! where they apply.

mod actions;
mod history;
pub mod presence;
pub mod retention;
#[cfg(test)]
mod tests;

pub use actions::*;
pub use history::{
    add_use, check_entry, correct_use, counted_seconds, delete_use, plan_usage, EntryProblem,
    PlanUsage, UseEntry,
};

use crate::store::{Machine, Member};

/// The level a board gets for a member (protocol.md §6.1). FabOMatic never sends 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Refused on the board.
    Invalid = 0,
    Normal = 1,
    /// Roles with `authorize_all`: FabStaff on the board (may bypass maintenance).
    Staff = 2,
}

/// Why a member may not use a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownCard,
    Disabled,
    Deleted,
    MachineBlocked,
    NotAuthorized,
    /// The machine's type needs a second person in the building and nobody else is in.
    NobodyElseIn,
}

impl Reason {
    /// A short explanation for staff (panel, CLI, logs).
    pub fn describe(self) -> &'static str {
        match self {
            Reason::UnknownCard => "unknown card",
            Reason::Disabled => "member is disabled",
            Reason::Deleted => "member was deleted",
            Reason::MachineBlocked => "machine is blocked",
            Reason::NotAuthorized => "no authorization for this machine",
            Reason::NobodyElseIn => "nobody else is in the building (lone-working rule)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(Level),
    Denied(Reason),
}

/// The level of a member regardless of machine: disabled → Invalid, authorize-all → Staff.
pub fn level(member: &Member) -> Level {
    if member.disabled {
        Level::Invalid
    } else if member.role.authorize_all {
        Level::Staff
    } else {
        Level::Normal
    }
}

/// May this member use this machine? FabOMatic's order (protocol.md §6.3): disabled,
/// deleted, authorize-all (even on a blocked machine), blocked, open machine type,
/// authorization row. Then the lone-working rule: a machine whose type needs a second
/// person is refused to everybody, authorize-all roles included, unless
/// `someone_else_in` (another member is signed in; with the member signed in too, that
/// is two people in the building).
pub fn may_use(
    member: &Member,
    machine: &Machine,
    authorized: bool,
    someone_else_in: bool,
) -> Decision {
    match authorization(member, machine, authorized) {
        Decision::Allowed(_) if machine.needs_second_person && !someone_else_in => {
            Decision::Denied(Reason::NobodyElseIn)
        }
        d => d,
    }
}

fn authorization(member: &Member, machine: &Machine, authorized: bool) -> Decision {
    if member.disabled {
        Decision::Denied(Reason::Disabled)
    } else if member.deleted {
        Decision::Denied(Reason::Deleted)
    } else if member.role.authorize_all {
        Decision::Allowed(Level::Staff)
    } else if machine.blocked {
        Decision::Denied(Reason::MachineBlocked)
    } else if machine.access_open || authorized {
        Decision::Allowed(Level::Normal)
    } else {
        Decision::Denied(Reason::NotAuthorized)
    }
}

/// A plan is overdue once the machine was used longer than its interval since the plan's
/// last intervention (protocol.md §6.5).
pub fn overdue(hours_between: f64, seconds_used: i64) -> bool {
    seconds_used as f64 > hours_between * 3600.0
}

/// FabOMatic rejects heartbeats outside 0..=24 h and clamps such a stop to 1 s.
pub const MAX_DURATION_S: i64 = 86_400;

/// Is a board online, given when it last spoke?
pub fn is_online(last_seen: Option<i64>, now: i64, window_s: i64) -> bool {
    last_seen.is_some_and(|t| now - t < window_s)
}

/// Tunables of the rules, from `[protocol]` in the config.
#[derive(Debug, Clone)]
pub struct Rules {
    pub online_window_s: i64,
    pub orphan_after_s: i64,
    pub duplicate_window_s: i64,
}

impl Rules {
    pub fn from_config(p: &crate::config::ProtocolConfig) -> Rules {
        Rules {
            online_window_s: p.online_window_s,
            orphan_after_s: p.orphan_after_s,
            duplicate_window_s: p.duplicate_window_s,
        }
    }
}
