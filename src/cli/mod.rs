//! The command line: `fabgate` runs the daemon; subcommands administer the lab on a
//! headless Pi. They open the same database as the daemon (WAL lets both work at once),
//! and the daemon reads it on every board message, so changes apply at once.

mod admin;
mod data;
mod doctor;
mod input;
mod machines;
mod members;
mod presence;
mod records;
mod table;

use crate::config::Config;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "fabgate",
    version,
    about = "Runs a FabLab from one Raspberry Pi: MQTT broker for Fab-O-Matic boards, SQLite store, staff panel"
)]
pub struct Cli {
    /// Configuration file (TOML); every key has a default.
    #[arg(long, global = true, env = "FABGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start a new, empty lab even though this data directory held one (its database is
    /// missing or empty). Without it the daemon refuses and says how to restore a backup.
    #[arg(long)]
    pub new_lab: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default without a subcommand).
    Run,
    /// Import a FabOMatic database (any schema revision) into this lab.
    ImportFabomatic {
        /// The FabOMatic SQLite file (it is only read).
        path: PathBuf,
        /// Replace the lab's existing data.
        #[arg(long)]
        replace: bool,
    },
    /// Members (FabOMatic's users).
    #[command(subcommand)]
    User(UserCmd),
    /// Roles and what they allow.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Machine types: auto-logoff, grace period, authorization needed.
    #[command(subcommand)]
    MachineType(MachineTypeCmd),
    /// Machines (the id is the board's machine id).
    #[command(subcommand)]
    Machine(MachineCmd),
    /// Authorize a member on a machine (or revoke it).
    Authorize {
        /// Member: id, card UID or email.
        user: String,
        /// Machine: id or name.
        machine: String,
        /// Remove the authorization instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Maintenance plans.
    #[command(subcommand)]
    Maintenance(MaintenanceCmd),
    /// MQTT credentials of the boards.
    #[command(subcommand)]
    Board(BoardCmd),
    /// Usage sessions.
    #[command(subcommand)]
    Uses(UsesCmd),
    /// Who is in the building: the register of sign-ins and sign-outs.
    #[command(subcommand)]
    Presence(PresenceCmd),
    /// Card readers wired to the Pi.
    #[command(subcommand)]
    Reader(ReaderCmd),
    /// Export the whole lab as one JSON document on stdout.
    Export {
        /// JSON output (the only format for now).
        #[arg(long)]
        json: bool,
    },
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Write a checked copy of the database (safe while the daemon runs).
    Backup {
        /// Destination file (replaced if it exists).
        path: PathBuf,
    },
    /// Replace the database with a backup. The daemon must be stopped; the current
    /// database is kept as fabgate.db.before-restore-<time>.
    Restore {
        /// A backup made by `fabgate backup` or the daily backups.
        path: PathBuf,
    },
    /// Apply the retention rules now (the daemon does it daily): anonymise old uses and
    /// interventions, delete old unknown cards.
    Purge,
    /// One member's personal data (GDPR access and erasure).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Check that this machine can run the lab and say what to fix.
    Doctor,
    /// Queue a message in the outbox; the running daemon delivers it.
    #[command(subcommand)]
    Send(SendCmd),
}

#[derive(Debug, Subcommand)]
pub enum SendCmd {
    /// Queue a test email to ADDRESS with the lab's email settings.
    TestEmail {
        /// Recipient.
        address: String,
    },
    /// Queue last week's summary to every member who opted in (the daemon also does it
    /// on `[sync] weekly_summary_day`); a week already queued is not queued again.
    WeeklySummary,
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Print everything held about a member as JSON (without the password hash).
    Export {
        /// Member: id, card UID or email.
        member: String,
    },
    /// Erase a member: name, card, email and password removed, history kept anonymously.
    Erase {
        /// Member: id, card UID or email.
        member: String,
        /// Confirm: an erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct ListOpts {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a member.
    Add {
        /// First name (shown on the board's LCD).
        name: String,
        #[arg(long, default_value = "")]
        surname: String,
        /// RFID card UID (8 hex digits as the boards read it).
        #[arg(long)]
        card: Option<String>,
        /// Role name or id (default: the first role without special rights).
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// An administrator of the panel (needs --email): gets the administrators' role
        /// and a one-time password, printed once.
        #[arg(long, requires = "email", conflicts_with = "role")]
        admin: bool,
    },
    /// Set a new one-time password for a panel account (printed once; it must be changed
    /// at the next login). The way back in when every administrator is locked out.
    Password {
        /// Member: id, card UID or email.
        user: String,
    },
    /// List members.
    List(ListOpts),
    /// Stop a member from using machines.
    Disable {
        /// Member: id, card UID or email.
        user: String,
    },
    /// Let a disabled member use machines again.
    Enable {
        /// Member: id, card UID or email.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Add a role.
    Add {
        name: String,
        /// May use every machine, even blocked ones (level 2 on the boards).
        #[arg(long)]
        authorize_all: bool,
        /// May sign off maintenance with a card.
        #[arg(long)]
        maintenance: bool,
        /// May log into the panel.
        #[arg(long)]
        panel: bool,
    },
    /// List roles.
    List(ListOpts),
}

#[derive(Debug, Subcommand)]
pub enum MachineTypeCmd {
    /// Add a machine type.
    Add {
        name: String,
        /// Auto-logoff after this many minutes of use (0 = never).
        #[arg(long, default_value_t = 1440)]
        timeout_min: i64,
        /// Minutes the machine stays powered after logoff (empty = board default).
        #[arg(long)]
        grace_min: Option<i64>,
        /// No authorization needed: every active member may use it.
        #[arg(long)]
        open: bool,
        /// Lone-working rule: refuse cards while nobody else is signed in.
        #[arg(long)]
        needs_second_person: bool,
    },
    /// List machine types.
    List(ListOpts),
}

#[derive(Debug, Subcommand)]
pub enum MachineCmd {
    /// Add a machine.
    Add {
        name: String,
        /// Machine type: name or id.
        #[arg(long = "type")]
        machine_type: String,
        /// Machine id as configured on its board (default: next free).
        #[arg(long)]
        id: Option<i64>,
    },
    /// List machines with their state.
    List(ListOpts),
    /// Block a machine for everybody but authorize-all roles.
    Block { machine: String },
    /// Unblock a machine.
    Unblock { machine: String },
    /// Ask the machine's board to start a session for a card (board must be online).
    Start {
        machine: String,
        /// Card UID of the member the session is for.
        #[arg(long)]
        card: String,
    },
    /// Ask the machine's board to end its session (board must be online).
    Stop {
        machine: String,
        /// Card UID of the staff member asking.
        #[arg(long)]
        card: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCmd {
    /// Add a maintenance plan to a machine.
    Add {
        /// Machine: id or name.
        machine: String,
        /// Due after this many hours of use.
        #[arg(long)]
        hours: f64,
        #[arg(long)]
        description: String,
        /// Text shown on the board's LCD when due (16 characters).
        #[arg(long)]
        lcd: Option<String>,
        /// Link to instructions.
        #[arg(long)]
        url: Option<String>,
    },
    /// List plans with hours used since the last intervention.
    List(ListOpts),
}

#[derive(Debug, Subcommand)]
pub enum BoardCmd {
    /// Add MQTT credentials: lab-wide (--lab) or for one machine's board (--machine).
    Add {
        /// Credentials shared by every board (what most labs flash into all boards).
        #[arg(long, conflicts_with = "machine", required_unless_present = "machine")]
        lab: bool,
        /// Credentials for the board of this machine (id or name).
        #[arg(long)]
        machine: Option<String>,
        /// Username (default for --machine: board-<id>).
        #[arg(long)]
        username: Option<String>,
        /// Password (default: a random one, printed once).
        #[arg(long)]
        password: Option<String>,
    },
    /// List credentials and the boards seen.
    List(ListOpts),
    /// Remove credentials.
    Remove { username: String },
}

#[derive(Debug, Subcommand)]
pub enum UsesCmd {
    /// List usage sessions, newest first.
    List {
        /// Only this machine (id or name).
        #[arg(long)]
        machine: Option<String>,
        /// Only sessions still open.
        #[arg(long)]
        open: bool,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PresenceCmd {
    /// Who is in now.
    List(ListOpts),
    /// Sign-ins and sign-outs, newest first.
    History {
        /// From when: `7d`, `12h`, or a UTC date `2026-11-22` (default: 7d).
        #[arg(long, default_value = "7d")]
        since: String,
        /// At most this many rows.
        #[arg(long, default_value_t = 200)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Sign a member in (as staff would at the desk).
    SignIn {
        /// Member: id, card UID or email.
        user: String,
    },
    /// Sign a member out.
    SignOut {
        /// Member: id, card UID or email.
        user: String,
    },
    /// Phone sign-in links.
    #[command(subcommand)]
    Link(LinkCmd),
}

#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Create a member's sign-in link (their previous one stops working); printed once.
    Create {
        /// Member: id, card UID or email.
        user: String,
    },
    /// Revoke a member's sign-in link.
    Revoke {
        /// Member: id, card UID or email.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReaderCmd {
    /// Present a card to a simulated reader of the running daemon.
    Tap {
        /// Card UID (hex, or decimal as the reader's uid_format says).
        uid: String,
        /// Reader name (default: the only simulated reader).
        #[arg(long)]
        reader: Option<String>,
    },
    /// List the configured readers.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate a configuration file (default: --config / FABGATE_CONFIG).
    Check { file: Option<PathBuf> },
    /// Print the default configuration with every key documented.
    Default,
}

/// Where the Debian package puts the configuration and the lab's data.
pub const SYSTEM_CONFIG: &str = "/etc/fabgate/fabgate.toml";
pub const SYSTEM_STATE: &str = "/var/lib/fabgate";

/// Loads the configuration named on the command line; else the packaged one
/// (`/etc/fabgate/fabgate.toml`) when it exists, so `sudo -u fabgate fabgate user list`
/// works on a packaged Pi; else the embedded defaults.
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, crate::config::Error> {
    let system = std::path::Path::new(SYSTEM_CONFIG);
    let path = path.or_else(|| system.is_file().then_some(system));
    let mut config = match path {
        Some(p) => Config::load(p)?,
        None => Config::embedded(),
    };
    // A relative data directory lives in systemd's StateDirectory= under the service, and
    // in /var/lib/fabgate for commands run beside a packaged install.
    if config.store.data_dir.is_relative() {
        let base = std::env::var_os("STATE_DIRECTORY")
            .map(PathBuf::from)
            .or_else(|| (path == Some(system)).then(|| PathBuf::from(SYSTEM_STATE)));
        if let Some(base) = base {
            config.store.data_dir = base.join(&config.store.data_dir);
        }
    }
    // The lab queues webhook and calendar rows in its transactions, in the daemon and in
    // commands alike.
    crate::sync::webhook::configure(&config.sync.webhooks);
    crate::sync::calendar::configure(&config.sync);
    Ok(config)
}

/// Runs an administration command; returns the process exit code.
pub fn run_admin(command: Command, config: &Config) -> anyhow_lite::Result {
    admin::run(command, config)
}

/// Runs `config check` / `config default` without loading the configuration first, so a
/// broken `--config` file can be checked (exit 1 with the file and key, not a startup
/// failure). `config_path` is the `--config` value.
pub fn run_config(
    command: ConfigCmd,
    config_path: Option<&std::path::Path>,
) -> anyhow_lite::Result {
    records::config(command, config_path)
}

/// Minimal error plumbing for the CLI: a message printed once, exit code 1.
pub mod anyhow_lite {
    pub type Result = std::result::Result<(), String>;
}
