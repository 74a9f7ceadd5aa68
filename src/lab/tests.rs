//! The rules as tables: (state, member, request) → outcome.

use super::*;
use crate::store::{Machine, Member, RoleFlags};

fn member(disabled: bool, deleted: bool, authorize_all: bool) -> Member {
    Member {
        id: 1,
        name: "Carla".into(),
        surname: String::new(),
        card_uid: Some("aabbccd3".into()),
        disabled,
        deleted,
        role_id: 1,
        role: RoleFlags {
            authorize_all,
            ..RoleFlags::default()
        },
    }
}

fn machine(blocked: bool, access_open: bool) -> Machine {
    Machine {
        id: 1,
        name: "LASER 1".into(),
        type_id: Some(1),
        type_name: Some("LASER".into()),
        timeout_min: Some(120),
        grace_min: Some(5),
        access_open,
        blocked,
        hours: 0.0,
        last_seen: None,
        needs_second_person: false,
    }
}

#[test]
fn may_use_follows_fabomatic_order() {
    use Decision::*;
    // (disabled, deleted, authorize_all, blocked, open type, authorization) → decision
    let table = [
        (
            (false, false, false, false, false, true),
            Allowed(Level::Normal),
        ),
        (
            (false, false, false, false, false, false),
            Denied(Reason::NotAuthorized),
        ),
        (
            (false, false, false, false, true, false),
            Allowed(Level::Normal),
        ),
        (
            (false, false, false, true, true, true),
            Denied(Reason::MachineBlocked),
        ),
        (
            (false, false, true, true, false, false),
            Allowed(Level::Staff),
        ),
        (
            (true, false, true, false, true, true),
            Denied(Reason::Disabled),
        ),
        (
            (false, true, true, false, true, true),
            Denied(Reason::Deleted),
        ),
        (
            (true, true, false, false, false, true),
            Denied(Reason::Disabled),
        ),
    ];
    for ((dis, del, all, blocked, open, auth), want) in table {
        let got = may_use(&member(dis, del, all), &machine(blocked, open), auth, false);
        assert_eq!(
            got, want,
            "disabled={dis} deleted={del} all={all} blocked={blocked} open={open} auth={auth}"
        );
    }
}

#[test]
fn levels() {
    assert_eq!(level(&member(false, false, false)), Level::Normal);
    assert_eq!(level(&member(false, false, true)), Level::Staff);
    assert_eq!(level(&member(true, false, true)), Level::Invalid);
}

#[test]
fn overdue_is_strictly_more_than_the_interval() {
    assert!(!overdue(1.0, 3600));
    assert!(overdue(1.0, 3601));
    assert!(!overdue(0.5, 0));
}

#[test]
fn online_window() {
    assert!(is_online(Some(100), 189, 90));
    assert!(!is_online(Some(100), 190, 90));
    assert!(!is_online(None, 190, 90));
}

#[test]
fn lone_working_refuses_everybody_when_nobody_else_is_in() {
    let mut m = machine(false, false);
    m.needs_second_person = true;
    let carla = member(false, false, false);
    let anna = member(false, false, true);
    use Decision::*;
    assert_eq!(
        may_use(&carla, &m, true, false),
        Denied(Reason::NobodyElseIn)
    );
    assert_eq!(may_use(&carla, &m, true, true), Allowed(Level::Normal));
    assert_eq!(
        may_use(&anna, &m, false, false),
        Denied(Reason::NobodyElseIn)
    );
    assert_eq!(may_use(&anna, &m, false, true), Allowed(Level::Staff));
    // Other refusals keep their reason.
    assert_eq!(
        may_use(&carla, &m, false, false),
        Denied(Reason::NotAuthorized)
    );
    assert_eq!(
        may_use(&member(true, false, false), &m, true, true),
        Denied(Reason::Disabled)
    );
}
