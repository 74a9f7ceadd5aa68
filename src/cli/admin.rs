//! Administration subcommands: the shared plumbing (errors, the command context, output)
//! and the dispatch. The commands live in `members` (users, roles), `machines` (machine
//! types, machines, authorizations, remote start/stop) and `records` (maintenance, board
//! credentials, uses, export, config).
//!
//! Every command opens the daemon's database (created if missing: a lab may be set up
//! before the daemon's first start), checks its input (`input`), writes in one
//! `BEGIN IMMEDIATE` transaction (the daemon writes the same file) and prints only after
//! the commit. SQL lives in `store::admin`, rules in `lab`; this file is glue and words.

use super::input::{plain, shown};
use super::table::Table;
use super::Command;
use crate::config::Config;
use crate::store::{self, Store};
use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;
use std::io::Write;

/// A failed command: the message `main` prints after "fabgate: ".
#[derive(Debug)]
pub struct Fail(pub String);

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Fail {
        Fail(s.to_string())
    }
}

impl From<store::Error> for Fail {
    fn from(e: store::Error) -> Fail {
        Fail(e.to_string())
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail(store::Error::from(e).to_string())
    }
}

pub type Outcome<T = ()> = Result<T, Fail>;

/// What a command works with: the config, a connection, and the text it prints.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub conn: Connection,
    out: String,
}

impl<'a> Ctx<'a> {
    fn open(config: &'a Config) -> Outcome<Ctx<'a>> {
        let store = Store::open(&config.database_path(), config.store.synchronous)?;
        Ok(Ctx {
            config,
            conn: store.connect()?,
            out: String::new(),
        })
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, committed when `f` succeeds.
    pub fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Outcome<T>) -> Outcome<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in a read transaction: one consistent snapshot of the lab.
    pub fn read<T>(&mut self, f: impl FnOnce(&Connection) -> Outcome<T>) -> Outcome<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&tx)?;
        tx.finish()?;
        Ok(value)
    }

    /// Queues a line for stdout.
    pub fn line(&mut self, text: impl AsRef<str>) {
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// Queues a table, or a JSON array of `rows` with `--json`.
    pub fn list<T: Serialize>(
        &mut self,
        json: bool,
        rows: &[T],
        table: impl FnOnce(&[T]) -> Table,
    ) -> Outcome {
        if json {
            let text = serde_json::to_string_pretty(rows)
                .map_err(|e| format!("cannot write JSON: {e}"))?;
            self.line(text);
        } else {
            self.out.push_str(&table(rows).render());
        }
        Ok(())
    }
}

/// A warning for the person at the terminal, on stderr (stdout stays parseable).
pub fn warn(text: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {text}");
}

/// Writes the collected output. A closed pipe (`fabgate uses list | head`) is not an error.
pub fn emit(out: &str) -> super::anyhow_lite::Result {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

pub fn run(command: Command, config: &Config) -> super::anyhow_lite::Result {
    let mut ctx = match command {
        Command::Config(cmd) => return super::records::config(cmd, None),
        Command::Run => return Err("`run` starts the daemon; run `fabgate run`".into()),
        Command::ImportFabomatic { path, replace } => {
            return import_fabomatic(config, &path, replace)
        }
        // Readers are configuration and files: no database needed.
        Command::Reader(cmd) => return super::presence::reader(config, cmd),
        Command::Backup { path } => return super::data::backup(config, &path),
        Command::Restore { path } => return super::data::restore(config, &path),
        Command::Doctor => return super::doctor::run(config),
        _ => Ctx::open(config).map_err(|f| f.0)?,
    };
    dispatch(&mut ctx, command).map_err(|f| f.0)?;
    emit(&ctx.out)
}

/// Imports a FabOMatic database. Safe while the daemon runs: one transaction, and the
/// daemon reads the database on every board message.
fn import_fabomatic(
    config: &Config,
    path: &std::path::Path,
    replace: bool,
) -> super::anyhow_lite::Result {
    let store = crate::store::Store::open(&config.database_path(), config.store.synchronous)
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let report =
        crate::store::import_fabomatic::import(&store, path, replace).map_err(|e| e.to_string())?;
    println!(
        "imported {} in {:.2} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    print!("{report}");
    println!();
    println!("{}", super::data::import_retention(config, &store)?);
    Ok(())
}

fn dispatch(ctx: &mut Ctx, command: Command) -> Outcome {
    use super::{machines, members, records};
    match command {
        Command::User(cmd) => members::user(ctx, cmd),
        Command::Role(cmd) => members::role(ctx, cmd),
        Command::MachineType(cmd) => machines::machine_type(ctx, cmd),
        Command::Machine(cmd) => machines::machine(ctx, cmd),
        Command::Authorize {
            user,
            machine,
            revoke,
        } => machines::authorize(ctx, &user, &machine, revoke),
        Command::Maintenance(cmd) => records::maintenance(ctx, cmd),
        Command::Board(cmd) => records::board(ctx, cmd),
        Command::Uses(cmd) => records::uses(ctx, cmd),
        Command::Presence(cmd) => super::presence::presence(ctx, cmd),
        Command::Export { json } => records::export(ctx, json),
        Command::Purge => super::data::purge(ctx),
        Command::Member(cmd) => super::data::member(ctx, cmd),
        Command::Send(super::SendCmd::TestEmail { address }) => {
            crate::validate::email(&address)?;
            let id = ctx.write(|db| {
                let mail = crate::sync::outbox::test_email(&address);
                Ok(crate::sync::outbox::enqueue_email(db, &mail, None)?)
            })?;
            ctx.line(format!(
                "test email queued (outbox row {}); the daemon sends it, see /outbox in the panel",
                id.unwrap_or(0)
            ));
            Ok(())
        }
        Command::Send(super::SendCmd::WeeklySummary) => {
            let (week, n) = ctx.write(|db| {
                use crate::sync::weekly;
                let week = weekly::last_week(store::now(), &weekly::lab_zone(db));
                let n = weekly::queue(db, &week)?;
                Ok((week, n))
            })?;
            ctx.line(format!(
                "weekly summary of {} queued to {n} members; the daemon sends it",
                week.id
            ));
            Ok(())
        }
        Command::Config(_)
        | Command::Run
        | Command::ImportFabomatic { .. }
        | Command::Reader(_)
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Doctor => Err("not an administration command".into()),
    }
}

/// "Anna Rossi (id 3)", escaped for a message.
pub fn who(m: &store::MemberRow) -> String {
    format!("{} (id {})", plain(&m.full_name()), m.id)
}

/// Refuses a name that exists already, whatever its case.
pub fn unique_name(what: &str, name: &str, existing: Vec<i64>) -> Outcome {
    match existing.first() {
        Some(id) => Err(format!("a {what} named {} exists already (id {id})", shown(name)).into()),
        None => Ok(()),
    }
}
