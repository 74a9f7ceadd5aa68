//! Usage history as staff correct it, and what it implies: a machine's hours counter
//! follows its closed uses, and each maintenance plan's counter runs on them.
//!
//! The hours rule (protocol.md §6.8: `machine_hours` grows by every closed use's length)
//! holds for manual changes too: adding a closed use adds its length, correcting one
//! adjusts by the difference (on the old and the new machine when it moves), deleting one
//! subtracts it. Each function runs inside the caller's transaction, so the use row and
//! the counter change together.

use super::{overdue, Ctx};
use crate::store::{self, Plan, Result, Use};

/// A use as staff enter it: times in UTC seconds, `end` `None` for a session still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UseEntry {
    pub member_id: i64,
    pub machine_id: i64,
    pub start: i64,
    pub end: Option<i64>,
}

/// Why a use cannot be entered as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryProblem {
    EndBeforeStart,
    /// Starts in the future (more than a minute ahead of the clock).
    InTheFuture,
    UnknownMember,
    UnknownMachine,
}

impl EntryProblem {
    pub fn describe(self) -> &'static str {
        match self {
            EntryProblem::EndBeforeStart => "The end is before the start.",
            EntryProblem::InTheFuture => "The start is in the future.",
            EntryProblem::UnknownMember => "Choose a member.",
            EntryProblem::UnknownMachine => "Choose a machine.",
        }
    }
}

/// Clock skew tolerated between the staff member's browser and the Pi.
const FUTURE_SLACK_S: i64 = 60;

/// Is this entry acceptable? Pure; members and machines are checked by `add_use`.
pub fn check_entry(e: &UseEntry, now: i64) -> std::result::Result<(), EntryProblem> {
    if e.start > now + FUTURE_SLACK_S {
        return Err(EntryProblem::InTheFuture);
    }
    if e.end.is_some_and(|end| end < e.start) {
        return Err(EntryProblem::EndBeforeStart);
    }
    Ok(())
}

/// Seconds a use adds to its machine's counter: its length once closed, nothing while open.
pub fn counted_seconds(start: i64, end: Option<i64>) -> i64 {
    end.map_or(0, |end| (end - start).max(0))
}

fn known(ctx: &Ctx, e: &UseEntry) -> Result<std::result::Result<(), EntryProblem>> {
    if let Err(p) = check_entry(e, ctx.now) {
        return Ok(Err(p));
    }
    if store::member(ctx.db, e.member_id)?.is_none() {
        return Ok(Err(EntryProblem::UnknownMember));
    }
    if store::machine(ctx.db, e.machine_id)?.is_none() {
        return Ok(Err(EntryProblem::UnknownMachine));
    }
    Ok(Ok(()))
}

/// Records a use entered by staff; a closed one adds its length to the machine's hours.
pub fn add_use(ctx: &mut Ctx, e: &UseEntry) -> Result<std::result::Result<i64, EntryProblem>> {
    if let Err(p) = known(ctx, e)? {
        return Ok(Err(p));
    }
    let seen = e.end.unwrap_or(e.start);
    let id = store::insert_use(
        ctx.db,
        e.member_id,
        e.machine_id,
        e.start,
        seen,
        e.end,
        None,
    )?;
    store::add_machine_seconds(ctx.db, e.machine_id, counted_seconds(e.start, e.end))?;
    crate::sync::calendar::use_opened(ctx.db, id, ctx.now)?;
    Ok(Ok(id))
}

/// Corrects a use: the old length comes off its old machine, the new length goes on the
/// new one. `None` when there is no such use.
pub fn correct_use(
    ctx: &mut Ctx,
    id: i64,
    e: &UseEntry,
) -> Result<Option<std::result::Result<(), EntryProblem>>> {
    let Some(old) = store::use_by_id(ctx.db, id)? else {
        return Ok(None);
    };
    if let Err(p) = known(ctx, e)? {
        return Ok(Some(Err(p)));
    }
    store::update_use(ctx.db, id, e.member_id, e.machine_id, e.start, e.end)?;
    let before = counted_seconds(old.start, old.end);
    let after = counted_seconds(e.start, e.end);
    if old.machine_id == e.machine_id {
        store::add_machine_seconds(ctx.db, e.machine_id, after - before)?;
    } else {
        store::add_machine_seconds(ctx.db, old.machine_id, -before)?;
        store::add_machine_seconds(ctx.db, e.machine_id, after)?;
    }
    if e.end.is_some() {
        ctx.hot.use_closed(id);
    }
    crate::sync::calendar::use_closed(ctx.db, id, ctx.now)?;
    Ok(Some(Ok(())))
}

/// Deletes a use and takes its length off the machine's hours; returns what was deleted.
pub fn delete_use(ctx: &mut Ctx, id: i64) -> Result<Option<Use>> {
    let Some(old) = store::use_by_id(ctx.db, id)? else {
        return Ok(None);
    };
    store::delete_use(ctx.db, id)?;
    store::add_machine_seconds(ctx.db, old.machine_id, -counted_seconds(old.start, old.end))?;
    ctx.hot.use_closed(id);
    crate::sync::calendar::use_deleted(ctx.db, id, ctx.now)?;
    Ok(Some(old))
}

/// A maintenance plan with its counter: seconds used since it was last done, and whether
/// that is past its interval (protocol.md §6.5).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanUsage {
    pub plan: Plan,
    pub used_s: i64,
    pub due: bool,
}

impl PlanUsage {
    /// Hours past the interval (negative: hours left).
    pub fn hours_overdue(&self) -> f64 {
        self.used_s as f64 / 3600.0 - self.plan.hours_between
    }
}

/// Every plan of a machine with its counter, by id.
pub fn plan_usage(db: &rusqlite::Connection, machine_id: i64) -> Result<Vec<PlanUsage>> {
    let mut out = Vec::new();
    for plan in store::plans(db, machine_id)? {
        let used_s = store::seconds_used_since_intervention(db, &plan)?;
        let due = overdue(plan.hours_between, used_s);
        out.push(PlanUsage { plan, used_s, due });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked() {
        let e = |start, end| UseEntry {
            member_id: 1,
            machine_id: 1,
            start,
            end,
        };
        assert_eq!(check_entry(&e(100, Some(200)), 1000), Ok(()));
        assert_eq!(check_entry(&e(100, None), 1000), Ok(()));
        assert_eq!(check_entry(&e(100, Some(100)), 1000), Ok(()));
        assert_eq!(
            check_entry(&e(100, Some(99)), 1000),
            Err(EntryProblem::EndBeforeStart)
        );
        assert_eq!(
            check_entry(&e(1061, None), 1000),
            Err(EntryProblem::InTheFuture)
        );
        assert_eq!(counted_seconds(100, Some(160)), 60);
        assert_eq!(counted_seconds(100, None), 0);
    }
}
