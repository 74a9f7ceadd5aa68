//! The building register and the local readers: `presence list|history|sign-in|sign-out`,
//! `presence link create|revoke`, `reader tap|list`. Rules live in `lab::presence`.

use super::admin::{who, Ctx, Outcome};
use super::input;
use super::table::{self, Table};
use super::{LinkCmd, ListOpts, PresenceCmd, ReaderCmd};
use crate::config::{Config, ReaderKind, ReaderRole};
use crate::lab::presence::{self, Change};
use crate::store;

pub fn presence(ctx: &mut Ctx, cmd: PresenceCmd) -> Outcome {
    let now = store::now();
    match cmd {
        PresenceCmd::List(ListOpts { json }) => {
            let rows = ctx.read(|db| Ok(store::present(db)?))?;
            ctx.list(json, &rows, |rows| {
                let mut t = Table::new(&["MEMBER", "NAME", "SINCE", "FOR", "HOW"]);
                for r in rows {
                    t.row(vec![
                        r.member_id.to_string(),
                        store::full_name(&r.name, &r.surname),
                        table::utc(r.signed_in_at),
                        table::duration(now - r.signed_in_at),
                        r.in_source.clone(),
                    ]);
                }
                t
            })?;
            if !json && rows.is_empty() {
                ctx.line("nobody is signed in");
            }
            Ok(())
        }
        PresenceCmd::History { since, limit, json } => {
            let from = since_arg(&since, now)?;
            let rows = ctx.read(|db| Ok(store::presence_history(db, from, limit.max(1))?))?;
            ctx.list(json, &rows, |rows| {
                let mut t = Table::new(&["MEMBER", "NAME", "IN", "OUT", "HOW IN", "HOW OUT"]);
                for r in rows {
                    let out_how = match (&r.out_source, r.automatic) {
                        (Some(s), true) => format!("{s} (automatic)"),
                        (Some(s), false) => s.clone(),
                        (None, _) => String::new(),
                    };
                    t.row(vec![
                        r.member_id.to_string(),
                        store::full_name(&r.name, &r.surname),
                        table::utc(r.signed_in_at),
                        table::utc_or(r.signed_out_at, "in"),
                        r.in_source.clone(),
                        out_how,
                    ]);
                }
                t
            })
        }
        PresenceCmd::SignIn { user } => {
            let (m, change) = ctx.write(|db| {
                let m = input::member(db, &user)?;
                let member = store::member(db, m.id)?.ok_or("member vanished")?;
                Ok((m, presence::sign_in(db, &member, presence::CLI, now)?))
            })?;
            match change {
                Change::Done => ctx.line(format!("signed in {}", who(&m))),
                Change::Unchanged => ctx.line(format!("{} is already signed in", who(&m))),
                Change::Refused(r) => {
                    return Err(format!("{} cannot sign in: {}", who(&m), r.describe()).into())
                }
            }
            Ok(())
        }
        PresenceCmd::SignOut { user } => {
            let (m, change) = ctx.write(|db| {
                let m = input::member(db, &user)?;
                Ok((m.clone(), presence::sign_out(db, m.id, presence::CLI, now)?))
            })?;
            if change == Change::Done {
                ctx.line(format!("signed out {}", who(&m)));
            } else {
                ctx.line(format!("{} was not signed in", who(&m)));
            }
            Ok(())
        }
        PresenceCmd::Link(LinkCmd::Create { user }) => {
            let (m, token) = ctx.write(|db| {
                let m = input::member(db, &user)?;
                Ok((m.clone(), presence::create_link(db, m.id, now)?))
            })?;
            ctx.line(format!(
                "sign-in link token for {} (shown once; earlier links no longer work):",
                who(&m)
            ));
            ctx.line(token);
            Ok(())
        }
        PresenceCmd::Link(LinkCmd::Revoke { user }) => {
            let (m, was) = ctx.write(|db| {
                let m = input::member(db, &user)?;
                Ok((m.clone(), presence::revoke_link(db, m.id, now)?))
            })?;
            if was {
                ctx.line(format!("revoked the sign-in link of {}", who(&m)));
            } else {
                ctx.line(format!("{} had no sign-in link", who(&m)));
            }
            Ok(())
        }
    }
}

/// `7d`, `12h` or `YYYY-MM-DD` (UTC midnight) as Unix seconds.
fn since_arg(s: &str, now: i64) -> Result<i64, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "--since {}: use 7d, 12h or a date like 2026-11-22",
            input::shown(s)
        )
    };
    if let Some(n) = t.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()) {
        return Ok(now - n.clamp(0, 100_000) * 86_400);
    }
    if let Some(n) = t.strip_suffix('h').and_then(|n| n.parse::<i64>().ok()) {
        return Ok(now - n.clamp(0, 2_400_000) * 3600);
    }
    let parts: Vec<i64> = t
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok((era * 146_097 + doe - 719_468) * 86_400)
}

pub fn reader(config: &Config, cmd: ReaderCmd) -> super::anyhow_lite::Result {
    match cmd {
        ReaderCmd::List => {
            let mut t = Table::new(&["NAME", "KIND", "ROLE", "DEVICE"]);
            for r in &config.readers {
                let role = match r.role {
                    ReaderRole::Entrance => "entrance".to_string(),
                    ReaderRole::Machine => format!("machine {}", r.machine.unwrap_or_default()),
                };
                let device = match r.kind {
                    ReaderKind::Mfrc522 => format!("/dev/spidev{}.{}", r.spi_bus, r.spi_cs),
                    ReaderKind::Wedge => r
                        .device
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    _ => r
                        .path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                };
                t.row(vec![
                    r.name.clone(),
                    format!("{:?}", r.kind).to_lowercase(),
                    role,
                    device,
                ]);
            }
            super::admin::emit(&t.render())
        }
        ReaderCmd::Tap { uid, reader } => {
            let sims: Vec<_> = config
                .readers
                .iter()
                .filter(|r| matches!(r.kind, ReaderKind::Sim | ReaderKind::Mfrc522Sim))
                .collect();
            let cfg = match &reader {
                Some(name) => config
                    .readers
                    .iter()
                    .find(|r| &r.name == name)
                    .ok_or_else(|| format!("no reader named {}", input::shown(name)))?,
                None => match sims.as_slice() {
                    [one] => one,
                    [] => {
                        return Err(
                            "no simulated reader is configured (kind = \"sim\" or \"mfrc522-sim\")"
                                .into(),
                        )
                    }
                    _ => {
                        return Err("several simulated readers: pick one with --reader NAME".into())
                    }
                },
            };
            let text = uid.trim();
            if crate::readers::uid_from_text(text, cfg.uid_format).is_none() {
                return Err(format!("{} is not a card UID", input::shown(&uid)));
            }
            crate::readers::sim_tap(cfg, text)?;
            super::admin::emit(&format!("card {text} presented to reader {}\n", cfg.name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::since_arg;

    #[test]
    fn since_values() {
        assert_eq!(since_arg("7d", 1_000_000), Ok(1_000_000 - 7 * 86_400));
        assert_eq!(since_arg("2h", 10_000), Ok(10_000 - 7200));
        assert_eq!(since_arg("1970-01-02", 0), Ok(86_400));
        assert_eq!(since_arg("2026-11-22", 0), Ok(1_795_305_600));
        for bad in ["x", "2026-13-01", "7", "2026-11", "d"] {
            assert!(since_arg(bad, 0).is_err(), "{bad}");
        }
    }
}
