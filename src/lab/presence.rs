//! Who is in the building: the rules of the building register. A tap at an entrance
//! reader signs the member in, the next tap signs them out, wherever they signed in
//! (reader, panel, phone link, CLI). Unknown cards are recorded like at a board, with no
//! machine. At the reminder time everyone still in is handed to `remind_still_in`; at
//! closing time everyone still in is signed out, marked automatic. Phone sign-in links
//! are per-member secret tokens (only their hash is stored), revocable.
//!
//! Times of day are the Pi's local time (its `/etc/localtime`, or `TZ`); records are UTC
//! seconds like everything else.

use super::{level, Ctx, Level, Reason};
use crate::store::{self, Member, PresenceRow, Result};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// Where a sign-in or sign-out came from (stored as `in_source`/`out_source`).
pub const CLI: &str = "cli";
pub const PANEL: &str = "panel";
pub const LINK: &str = "link";
pub const CLOSING: &str = "closing";

/// `reader:<name>`.
pub fn reader_source(name: &str) -> String {
    format!("reader:{name}")
}

/// What a tap at the entrance did.
#[derive(Debug, Clone, PartialEq)]
pub enum Tap {
    /// No member holds the card; recorded in `unknown_cards` without a machine.
    Unknown,
    /// A disabled or deleted member may not sign in.
    Refused {
        member: Member,
        reason: Reason,
    },
    SignedIn {
        member: Member,
    },
    /// Signed out; `since` is when they had signed in.
    SignedOut {
        member: Member,
        since: i64,
    },
}

/// A tap at an entrance reader: in if out, out if in.
pub fn entrance_tap(ctx: &mut Ctx, uid: &str, source: &str) -> Result<Tap> {
    let Some(member) = store::member_by_card(ctx.db, uid)? else {
        store::insert_unknown_card(ctx.db, uid, None, ctx.now)?;
        return Ok(Tap::Unknown);
    };
    toggle(ctx.db, member, source, ctx.now)
}

fn toggle(db: &Connection, member: Member, source: &str, now: i64) -> Result<Tap> {
    if let Some(open) = store::open_presence(db, member.id)? {
        store::close_presence(db, open.id, now, source, false)?;
        crate::sync::calendar::attendance_closed(db, open.id, now)?;
        crate::sync::webhook::presence(db, &member, false)?;
        return Ok(Tap::SignedOut {
            member,
            since: open.signed_in_at,
        });
    }
    match sign_in_refusal(&member) {
        Some(reason) => Ok(Tap::Refused { member, reason }),
        None => {
            let id = store::insert_presence(db, member.id, now, source)?;
            crate::sync::calendar::attendance_opened(db, id, now)?;
            crate::sync::webhook::presence(db, &member, true)?;
            Ok(Tap::SignedIn { member })
        }
    }
}

/// Members who may not sign in. Signing out always works.
fn sign_in_refusal(member: &Member) -> Option<Reason> {
    if member.deleted {
        Some(Reason::Deleted)
    } else if level(member) == Level::Invalid {
        Some(Reason::Disabled)
    } else {
        None
    }
}

/// Outcome of an explicit sign-in or sign-out (panel, CLI, phone link).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Done,
    /// Already in (sign-in) or already out (sign-out): nothing changed.
    Unchanged,
    Refused(Reason),
}

pub fn sign_in(db: &Connection, member: &Member, source: &str, now: i64) -> Result<Change> {
    if store::open_presence(db, member.id)?.is_some() {
        return Ok(Change::Unchanged);
    }
    if let Some(reason) = sign_in_refusal(member) {
        return Ok(Change::Refused(reason));
    }
    let id = store::insert_presence(db, member.id, now, source)?;
    crate::sync::calendar::attendance_opened(db, id, now)?;
    crate::sync::webhook::presence(db, member, true)?;
    Ok(Change::Done)
}

pub fn sign_out(db: &Connection, member_id: i64, source: &str, now: i64) -> Result<Change> {
    match store::open_presence(db, member_id)? {
        Some(open) => {
            store::close_presence(db, open.id, now, source, false)?;
            crate::sync::calendar::attendance_closed(db, open.id, now)?;
            if let Some(member) = store::member(db, member_id)? {
                crate::sync::webhook::presence(db, &member, false)?;
            }
            Ok(Change::Done)
        }
        None => Ok(Change::Unchanged),
    }
}

/// Is someone other than this member in the building? (the lone-working rule)
pub fn someone_else_in(db: &Connection, member_id: i64) -> Result<bool> {
    Ok(store::count_present_except(db, member_id)? > 0)
}

/// The end-of-day reminder: members still in at the reminder time get an email (when
/// they have an address), queued in the caller's transaction; one per stay (the outbox's
/// dedupe key is the presence record), however often this runs. Returns them.
pub fn remind_still_in(db: &Connection) -> Result<Vec<PresenceRow>> {
    use rusqlite::OptionalExtension;
    let still_in = store::present(db)?;
    let lab_it = store::setting(db, "language")?.is_some_and(|l| l.starts_with("it"));
    let mut queued = 0;
    for p in &still_in {
        log::info!(
            "presence: reminder for member {}, signed in since {}",
            p.member_id,
            p.signed_in_at
        );
        let contact: Option<(Option<String>, Option<String>)> = db
            .query_row(
                "SELECT email, language FROM members WHERE member_id = ?1 AND deleted = 0",
                [p.member_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((Some(address), language)) = contact else {
            continue;
        };
        if address.trim().is_empty() {
            continue;
        }
        let italian = language.map_or(lab_it, |l| l.starts_with("it"));
        let since = local_seconds_of_day(p.signed_in_at);
        let mail = crate::sync::outbox::reminder_email(
            italian,
            &p.name,
            &address,
            &format!("{:02}:{:02}", since / 3600, since % 3600 / 60),
        );
        let key = format!("presence-reminder:{}", p.id);
        if crate::sync::outbox::enqueue_email(db, &mail, Some(&key))?.is_some() {
            queued += 1;
        }
    }
    if queued > 0 {
        log::info!("presence: {queued} reminder emails queued");
    }
    Ok(still_in)
}

/// Closing time: everyone who signed in before `closing` (a Unix time) and is still in
/// is signed out at `closing`, marked automatic. Returns how many.
pub fn close_day(db: &Connection, closing: i64) -> Result<usize> {
    let stale = store::open_presence_before(db, closing)?;
    for p in &stale {
        store::close_presence(db, p.id, closing, CLOSING, true)?;
        crate::sync::calendar::attendance_closed(db, p.id, closing)?;
        log::info!(
            "presence: member {} signed out at closing time",
            p.member_id
        );
    }
    Ok(stale.len())
}

// ---------------------------------------------------------------------------------------
// Phone sign-in links

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// A new sign-in link token for the member; their earlier links stop working. The token
/// is returned once and never stored.
pub fn create_link(db: &Connection, member_id: i64, now: i64) -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| store::Error::Invalid(format!("no randomness for a token: {e}")))?;
    let token = hex::encode(bytes);
    store::revoke_presence_links(db, member_id, now)?;
    store::insert_presence_link(db, &token_hash(&token), member_id, now)?;
    Ok(token)
}

/// Revokes the member's link; returns whether one was live.
pub fn revoke_link(db: &Connection, member_id: i64, now: i64) -> Result<bool> {
    Ok(store::revoke_presence_links(db, member_id, now)? > 0)
}

/// The member a live link token belongs to.
pub fn link_member(db: &Connection, token: &str) -> Result<Option<Member>> {
    match store::presence_link_member(db, &token_hash(token))? {
        Some(id) => store::member(db, id),
        None => Ok(None),
    }
}

/// Sign in with a phone link; None when the token is unknown or revoked.
pub fn sign_in_by_link(db: &Connection, token: &str, now: i64) -> Result<Option<Change>> {
    match link_member(db, token)? {
        Some(m) => Ok(Some(sign_in(db, &m, LINK, now)?)),
        None => Ok(None),
    }
}

pub fn sign_out_by_link(db: &Connection, token: &str, now: i64) -> Result<Option<Change>> {
    match link_member(db, token)? {
        Some(m) => Ok(Some(sign_out(db, m.id, LINK, now)?)),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------
// Times of day

/// Seconds since local midnight at `ts` (UTC seconds), with the day's UTC offset.
pub fn local_seconds_of_day(ts: i64) -> i64 {
    (ts + utc_offset(ts)).rem_euclid(86_400)
}

/// The local UTC offset at `ts`, in seconds (0 if the C library cannot tell).
fn utc_offset(ts: i64) -> i64 {
    let t = ts as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; both pointers are valid.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

/// Did the local time of day `at` (seconds after midnight) pass in `(last, now]`?
/// Assumes less than a day between the two (ticks are seconds apart).
pub fn passed(last: i64, now: i64, at: i64) -> bool {
    if now <= last {
        return false;
    }
    if now - last >= 86_400 {
        return true;
    }
    let (a, b) = (local_seconds_of_day(last), local_seconds_of_day(now));
    if a <= b {
        a < at && at <= b
    } else {
        at > a || at <= b
    }
}

/// The latest instant at or before `now` whose local time of day is `at`.
pub fn last_occurrence(now: i64, at: i64) -> i64 {
    now - (local_seconds_of_day(now) - at).rem_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::{Hot, Store};

    fn lab() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lab.db"), Synchronous::Normal).unwrap();
        let db = store.connect().unwrap();
        db.execute_batch(
            "INSERT INTO members (member_id, name, surname, role_id, card_uid, disabled, deleted, created_at)
             VALUES (1, 'Anna', 'A', 1, 'aabbccd1', 0, 0, 0), (3, 'Carla', 'C', 3, 'aabbccd3', 0, 0, 0),
                    (5, 'Elena', 'E', 3, 'aabbccd5', 1, 0, 0);",
        )
        .unwrap();
        (dir, db)
    }

    fn tap(db: &Connection, uid: &str, now: i64) -> Tap {
        let rules = crate::lab::Rules::from_config(&Default::default());
        let mut hot = Hot::default();
        let mut ctx = Ctx {
            db,
            hot: &mut hot,
            now,
            rules: &rules,
        };
        entrance_tap(&mut ctx, uid, "reader:door").unwrap()
    }

    #[test]
    fn taps_toggle_and_unknown_cards_are_recorded() {
        let (_d, db) = lab();
        assert!(matches!(tap(&db, "aabbccd3", 100), Tap::SignedIn { .. }));
        assert!(!someone_else_in(&db, 3).unwrap());
        assert!(someone_else_in(&db, 1).unwrap());
        assert_eq!(
            tap(&db, "aabbccd3", 160),
            Tap::SignedOut {
                member: store::member(&db, 3).unwrap().unwrap(),
                since: 100
            }
        );
        assert_eq!(tap(&db, "deadbeef", 170), Tap::Unknown);
        let n: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM unknown_cards WHERE machine_id IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        assert!(matches!(
            tap(&db, "aabbccd5", 180),
            Tap::Refused {
                reason: Reason::Disabled,
                ..
            }
        ));
        // Signed in elsewhere (panel), signed out by the tap.
        let anna = store::member(&db, 1).unwrap().unwrap();
        assert_eq!(sign_in(&db, &anna, PANEL, 200).unwrap(), Change::Done);
        assert_eq!(sign_in(&db, &anna, PANEL, 201).unwrap(), Change::Unchanged);
        assert!(matches!(
            tap(&db, "aabbccd1", 210),
            Tap::SignedOut { since: 200, .. }
        ));
        assert_eq!(sign_out(&db, 1, CLI, 220).unwrap(), Change::Unchanged);
    }

    #[test]
    fn closing_signs_out_automatically_and_purge_honours_retention() {
        let (_d, db) = lab();
        tap(&db, "aabbccd1", 1000);
        tap(&db, "aabbccd3", 1000);
        assert_eq!(remind_still_in(&db).unwrap().len(), 2);
        tap(&db, "aabbccd3", 1500); // out
        tap(&db, "aabbccd3", 2500); // in again after closing
        assert_eq!(close_day(&db, 2000).unwrap(), 1);
        let rows = store::presence_history(&db, 0, 10).unwrap();
        let anna = rows.iter().find(|r| r.member_id == 1).unwrap();
        assert_eq!((anna.signed_out_at, anna.automatic), (Some(2000), true));
        assert_eq!(anna.out_source.as_deref(), Some(CLOSING));
        assert_eq!(store::present(&db).unwrap().len(), 1);
        // Retention (`lab::retention::purge`): rows that ended before the cutoff go.
        assert_eq!(store::delete_presence_before(&db, 1499).unwrap(), 0);
        assert_eq!(store::delete_presence_before(&db, 2001).unwrap(), 2);
        assert_eq!(store::present(&db).unwrap().len(), 1);
    }

    #[test]
    fn links_sign_in_and_out_until_revoked() {
        let (_d, db) = lab();
        let token = create_link(&db, 3, 10).unwrap();
        assert_eq!(token.len(), 48);
        assert_eq!(
            sign_in_by_link(&db, &token, 20).unwrap(),
            Some(Change::Done)
        );
        assert_eq!(
            sign_out_by_link(&db, &token, 30).unwrap(),
            Some(Change::Done)
        );
        assert_eq!(sign_in_by_link(&db, "nope", 40).unwrap(), None);
        let newer = create_link(&db, 3, 50).unwrap();
        assert_eq!(sign_in_by_link(&db, &token, 60).unwrap(), None);
        assert!(revoke_link(&db, 3, 70).unwrap());
        assert_eq!(sign_in_by_link(&db, &newer, 80).unwrap(), None);
        assert!(!revoke_link(&db, 3, 90).unwrap());
    }

    #[test]
    fn times_of_day() {
        let now = 1_800_000_000;
        let sod = local_seconds_of_day(now);
        assert!(passed(now - 1, now, sod));
        assert!(!passed(now, now + 1, sod));
        assert!(passed(now - 10, now + 10, (sod + 5) % 86_400));
        assert_eq!(last_occurrence(now, sod), now);
        assert_eq!(last_occurrence(now, (sod + 1) % 86_400), now - 86_399);
        assert!(passed(now - 90_000, now, 0));
    }
}

#[cfg(test)]
mod reminder_tests {
    use super::*;
    use crate::config::Synchronous;

    #[test]
    fn the_reminder_queues_one_email_per_stay_in_the_members_language() {
        let dir = tempfile::tempdir().unwrap();
        let s = store::Store::open(&dir.path().join("l.db"), Synchronous::Normal).unwrap();
        let mut db = s.connect().unwrap();
        db.execute_batch(
            "INSERT INTO members (member_id, name, role_id, email, language, created_at)
               VALUES (1, 'Giulia', (SELECT MIN(role_id) FROM roles), 'g@example.org', 'it', 0),
                      (2, 'Nomail', (SELECT MIN(role_id) FROM roles), NULL, NULL, 0);
             INSERT INTO presence (member_id, signed_in_at, in_source) VALUES (1, 100, 'cli'), (2, 100, 'cli');",
        )
        .unwrap();
        for _ in 0..2 {
            let tx = db.transaction().unwrap();
            assert_eq!(remind_still_in(&tx).unwrap().len(), 2);
            tx.commit().unwrap();
        }
        let rows = store::outbox_due(&db, i64::MAX, 10).unwrap();
        assert_eq!(rows.len(), 1, "one email, once");
        let mail: crate::sync::outbox::Email = serde_json::from_str(&rows[0].payload).unwrap();
        assert_eq!(mail.to, "g@example.org");
        assert_eq!(mail.subject, "Sei ancora in laboratorio?");
        assert!(mail.text.starts_with("Ciao Giulia"), "{}", mail.text);
    }
}
