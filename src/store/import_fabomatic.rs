//! Import of a FabOMatic database (any schema revision).
//!
//! The source file is opened read-only and read in one snapshot; the target lab is written
//! in one `BEGIN IMMEDIATE` transaction, so either the whole import lands or nothing does.
//!
//! Columns are detected with `PRAGMA table_info`, never from the Alembic revision: a column
//! added by a later revision (`grace_period_min`, `access_management`, `lcd_message`,
//! `instructions_url`, `replay`, boards' `serial`/`heap`, `receive_weekly_summary`) is read
//! when present and replaced by fabgate's default when absent. Ids are kept, so a board
//! keeps working with the machine id it already has.
//!
//! Bad rows never stop the import: they are skipped or repaired and counted in
//! [`ImportReport::problems`]. Only a structural problem (not a FabOMatic database, a
//! missing key column, a database error) aborts it.

use super::{lab_is_empty, now, Error, Result, Store};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, Row, TransactionBehavior};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// What an import wrote, table by table, and what it had to repair or leave out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub roles: usize,
    pub members: usize,
    pub machine_types: usize,
    pub machines: usize,
    pub authorizations: usize,
    pub maintenances: usize,
    pub interventions: usize,
    pub uses: usize,
    pub unknown_cards: usize,
    pub boards: usize,
    /// `alembic_version.version_num` of the source, when it has one.
    pub source_revision: Option<String>,
    /// Rows skipped or repaired, one line per kind of problem (or per member for cards and
    /// emails, which staff have to fix by hand).
    pub problems: Vec<String>,
    /// What staff should know that is not a problem: roles changed to work here, what the
    /// retention rules will do to the imported history.
    pub notes: Vec<String>,
}

impl ImportReport {
    fn tables(&self) -> [(&'static str, usize); 10] {
        [
            ("roles", self.roles),
            ("members", self.members),
            ("machine types", self.machine_types),
            ("machines", self.machines),
            ("authorizations", self.authorizations),
            ("maintenances", self.maintenances),
            ("interventions", self.interventions),
            ("uses", self.uses),
            ("unknown cards", self.unknown_cards),
            ("boards", self.boards),
        ]
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source_revision {
            Some(rev) => writeln!(f, "Imported FabOMatic database (Alembic revision {rev}):")?,
            None => writeln!(f, "Imported FabOMatic database (no Alembic revision):")?,
        }
        for (name, n) in self.tables() {
            writeln!(f, "  {name:<15}{n:>8}")?;
        }
        for n in &self.notes {
            writeln!(f, "Note: {n}")?;
        }
        if self.problems.is_empty() {
            write!(f, "No problems found.")
        } else {
            write!(f, "{} problem(s):", self.problems.len())?;
            for p in &self.problems {
                write!(f, "\n  - {p}")?;
            }
            Ok(())
        }
    }
}

/// Alembic revisions of FabOMatic, oldest first (features.md §c.3).
const KNOWN_REVISIONS: &[&str] = &[
    "2dc275252e0e",
    "88feb1b31a1f",
    "123b2cca325f",
    "e544554c7d29",
    "3cb12dfd8d6e",
    "aa9ed3e094d5",
    "dfd2b0db0016",
    "3f3f601505a6",
    "f1a2b3c4d5e6",
];

/// Imports the FabOMatic database at `source` into the lab of `store`.
///
/// A lab that already has data is refused unless `replace` is set; then every member,
/// machine, use, ... is deleted first. Settings and lab-wide board credentials are kept;
/// per-board credentials are kept when their machine id exists in the imported lab.
pub fn import(store: &Store, source: &Path, replace: bool) -> Result<ImportReport> {
    let src = Source::open(source)?;
    let sql = Queries::build(&src)?;
    let mut report = ImportReport {
        source_revision: src.revision()?,
        ..ImportReport::default()
    };
    if src.immutable {
        report.problems.push(
            "the source could not be opened with locking and was read as immutable; \
             make sure FabOMatic was stopped"
                .into(),
        );
    }
    match &report.source_revision {
        Some(rev) if !rev.split(',').all(|r| KNOWN_REVISIONS.contains(&r)) => {
            report.problems.push(format!(
                "unknown Alembic revision {rev} (a newer FabOMatic?): only the columns \
                 fabgate knows were imported"
            ))
        }
        _ => {}
    }

    let mut conn = store.connect()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !lab_is_empty(&tx)? && !replace {
        return Err(Error::Invalid(format!(
            "the lab in {} already has data (members, machines or uses); \
             use --replace to overwrite it",
            store.path().display()
        )));
    }
    let credentials = clear_lab(&tx)?;
    let mut imp = Importer {
        src: &src.conn,
        dst: &tx,
        report,
        roles: HashSet::new(),
        members: HashSet::new(),
        types: HashSet::new(),
        machines: HashSet::new(),
        plans: HashSet::new(),
    };
    imp.step("roles", |i| i.roles(&sql.roles))?;
    imp.step("machine_types", |i| {
        i.machine_types(sql.machine_types.as_deref())
    })?;
    imp.step("users", |i| i.members(&sql.users))?;
    imp.step("machines", |i| i.machines(&sql.machines))?;
    imp.step("authorizations", |i| {
        i.authorizations(sql.authorizations.as_deref())
    })?;
    imp.step("maintenances", |i| {
        i.maintenances(sql.maintenances.as_deref())
    })?;
    imp.step("interventions", |i| {
        i.interventions(sql.interventions.as_deref())
    })?;
    imp.step("uses", |i| i.uses(sql.uses.as_deref()))?;
    imp.step("unknown_cards", |i| {
        i.unknown_cards(sql.unknown_cards.as_deref())
    })?;
    imp.step("boards", |i| i.boards(sql.boards.as_deref()))?;
    imp.step("board_credentials", |i| i.restore_credentials(credentials))?;
    let report = imp.report;
    // The imported history's retention waits for staff (issue 12): `fabgate purge` or
    // the System page confirms it.
    super::set_setting(&tx, super::RETENTION_HOLD, &super::now().to_string())?;
    tx.commit()?;
    log::info!(
        "imported {} ({} members, {} machines, {} uses, {} problems)",
        source.display(),
        report.members,
        report.machines,
        report.uses,
        report.problems.len()
    );
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// The source database.

struct Source {
    conn: Connection,
    shown: String,
    /// Opened with `immutable=1` because a locking read-only open failed.
    immutable: bool,
}

impl Source {
    fn open(path: &Path) -> Result<Source> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Invalid(format!("cannot read FabOMatic database {shown}: {e}")))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{shown} is not a file (expected a FabOMatic database)"
            )));
        }
        let canonical = std::fs::canonicalize(path)
            .map_err(|e| Error::Invalid(format!("cannot read FabOMatic database {shown}: {e}")))?;
        let not_sqlite = || {
            Error::Invalid(format!(
                "{shown} is not a SQLite database, so not a FabOMatic one"
            ))
        };
        let (conn, immutable) = match open_read_only(&canonical, false) {
            Ok(conn) => (conn, false),
            Err(e) if is_not_a_database(&e) => return Err(not_sqlite()),
            // A WAL database in a directory we may not write to cannot create its shared
            // index. With nothing pending in its -wal file, the file alone is the whole
            // database: read it as immutable. (Never with a hot journal or a -wal to
            // replay: that would read stale or half-written data.)
            Err(first)
                if first.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen)
                    && is_wal_without_log(&canonical) =>
            {
                match open_read_only(&canonical, true) {
                    Ok(conn) => (conn, true),
                    Err(_) => {
                        return Err(Error::Invalid(format!(
                            "cannot open {shown} read-only: {first}"
                        )))
                    }
                }
            }
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "cannot open {shown} read-only: {e}\nhint: stop FabOMatic, or copy the \
                     database (with its -wal file, if any) to a writable directory"
                )))
            }
        };
        let src = Source {
            conn,
            shown,
            immutable,
        };
        for table in ["roles", "users", "machines"] {
            if src.columns(table)?.is_empty() {
                return Err(Error::Invalid(format!(
                    "{} is not a FabOMatic database: it has no {table} table",
                    src.shown
                )));
            }
        }
        Ok(src)
    }

    /// Lowercase column names of a table; empty when the table does not exist.
    fn columns(&self, table: &str) -> Result<HashSet<String>> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1)")?;
        let names = st.query_map([table], |r| r.get::<_, String>(0))?;
        let mut set = HashSet::new();
        for name in names {
            set.insert(name?.to_lowercase());
        }
        Ok(set)
    }

    fn revision(&self) -> Result<Option<String>> {
        if self.columns("alembic_version")?.is_empty() {
            return Ok(None);
        }
        let rev: Option<String> = self.conn.query_row(
            "SELECT group_concat(version_num, ',') FROM alembic_version",
            [],
            |r| r.get(0),
        )?;
        Ok(rev.filter(|r| !r.is_empty()))
    }

    /// `SELECT` of the given columns, in that order. A column that is absent is replaced by
    /// its fallback SQL; without a fallback it is required. `None` when the table is absent.
    fn select(
        &self,
        table: &str,
        cols: &[(&str, Option<&str>)],
        key: &str,
    ) -> Result<Option<String>> {
        let have = self.columns(table)?;
        if have.is_empty() {
            return Ok(None);
        }
        let mut exprs = Vec::with_capacity(cols.len());
        for (name, fallback) in cols {
            if have.contains(&name.to_lowercase()) {
                exprs.push(format!("\"{name}\""));
            } else if let Some(sql) = fallback {
                exprs.push((*sql).to_string());
            } else {
                return Err(Error::Invalid(format!(
                    "{} is not a FabOMatic database: table {table} has no column {name}",
                    self.shown
                )));
            }
        }
        let order = if have.contains(&key.to_lowercase()) {
            format!(" ORDER BY \"{key}\"")
        } else {
            String::new()
        };
        Ok(Some(format!(
            "SELECT {} FROM \"{table}\"{order}",
            exprs.join(", ")
        )))
    }
}

fn open_read_only(path: &Path, immutable: bool) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(file_uri(path, immutable), flags)?;
    // Belt and braces: this connection can never write, and reads one snapshot.
    conn.execute_batch("PRAGMA query_only = ON; BEGIN")?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(conn)
}

/// A database file in WAL mode (header bytes 18-19) whose -wal file is absent or empty.
fn is_wal_without_log(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    let wal_mode = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok()
        && header[18] == 2
        && header[19] == 2;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal_mode && std::fs::metadata(wal).map_or(true, |m| m.len() == 0)
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase)
}

/// `file:` URI of an absolute path, percent-encoded, read-only.
fn file_uri(path: &Path, immutable: bool) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().replace('\\', "/").into_bytes();
    let mut uri = String::from("file:");
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str(if immutable {
        "?mode=ro&immutable=1"
    } else {
        "?mode=ro"
    });
    uri
}

/// The `SELECT`s for every table, built (and the columns checked) before anything is
/// written.
struct Queries {
    roles: String,
    users: String,
    machines: String,
    machine_types: Option<String>,
    authorizations: Option<String>,
    maintenances: Option<String>,
    interventions: Option<String>,
    uses: Option<String>,
    unknown_cards: Option<String>,
    boards: Option<String>,
}

const REQUIRED: Option<&str> = None;
const NULL: Option<&str> = Some("NULL");

impl Queries {
    fn build(src: &Source) -> Result<Queries> {
        let required = |q: Option<String>, table: &str| {
            q.ok_or_else(|| Error::Invalid(format!("{}: no {table} table", src.shown)))
        };
        Ok(Queries {
            roles: required(
                src.select(
                    "roles",
                    &[
                        ("role_id", REQUIRED),
                        ("role_name", REQUIRED),
                        ("authorize_all", NULL),
                        ("reserved", NULL),
                        ("maintenance", NULL),
                        ("backend_admin", NULL),
                    ],
                    "role_id",
                )?,
                "roles",
            )?,
            users: required(
                src.select(
                    "users",
                    &[
                        ("user_id", REQUIRED),
                        ("name", REQUIRED),
                        ("surname", NULL),
                        ("role_id", REQUIRED),
                        ("card_UUID", NULL),
                        ("disabled", NULL),
                        ("deleted", NULL),
                        ("email", NULL),
                        ("password_hash", NULL),
                        ("receive_weekly_summary", NULL),
                    ],
                    "user_id",
                )?,
                "users",
            )?,
            machines: required(
                src.select(
                    "machines",
                    &[
                        ("machine_id", REQUIRED),
                        ("machine_name", REQUIRED),
                        ("machine_type_id", NULL),
                        ("machine_hours", NULL),
                        ("blocked", NULL),
                        ("last_seen", NULL),
                    ],
                    "machine_id",
                )?,
                "machines",
            )?,
            machine_types: src.select(
                "machine_types",
                &[
                    ("type_id", REQUIRED),
                    ("type_name", REQUIRED),
                    ("type_timeout_min", NULL),
                    ("grace_period_min", NULL),
                    ("access_management", NULL),
                ],
                "type_id",
            )?,
            authorizations: src.select(
                "authorizations",
                &[("user_id", REQUIRED), ("machine_id", REQUIRED)],
                "authorization_id",
            )?,
            maintenances: src.select(
                "maintenances",
                &[
                    ("maintenance_id", REQUIRED),
                    ("machine_id", REQUIRED),
                    ("hours_between", REQUIRED),
                    ("description", NULL),
                    ("lcd_message", NULL),
                    ("instructions_url", NULL),
                ],
                "maintenance_id",
            )?,
            interventions: src.select(
                "interventions",
                &[
                    ("intervention_id", REQUIRED),
                    ("maintenance_id", REQUIRED),
                    ("machine_id", REQUIRED),
                    ("user_id", REQUIRED),
                    ("timestamp", REQUIRED),
                    ("replay", NULL),
                ],
                "intervention_id",
            )?,
            uses: src.select(
                "uses",
                &[
                    ("use_id", REQUIRED),
                    ("user_id", REQUIRED),
                    ("machine_id", REQUIRED),
                    ("start_timestamp", REQUIRED),
                    ("last_seen", NULL),
                    ("end_timestamp", NULL),
                    ("replay", NULL),
                ],
                "use_id",
            )?,
            unknown_cards: src.select(
                "unknown_cards",
                &[
                    ("id", REQUIRED),
                    ("card_UUID", REQUIRED),
                    ("timestamp", REQUIRED),
                    ("machine_id", NULL),
                ],
                "id",
            )?,
            boards: src.select(
                "boards",
                &[
                    ("board_id", NULL),
                    ("machine_id", REQUIRED),
                    ("ip_address", NULL),
                    ("fw_version", NULL),
                    ("last_seen", NULL),
                    ("serial", NULL),
                    ("heap", NULL),
                ],
                "board_id",
            )?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Loose reading of SQLite values: FabOMatic stores FLOAT times and INTEGER booleans, but
// SQLite's typing lets anything through, so every read tolerates the other storage classes.

fn int(v: ValueRef) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) if f.is_finite() && f.fract() == 0.0 => Some(f as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn real(v: ValueRef) -> Option<f64> {
    let f = match v {
        ValueRef::Integer(i) => i as f64,
        ValueRef::Real(f) => f,
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// Unix seconds, rounded to the nearest second.
fn time(v: ValueRef) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        _ => real(v).map(|f| f.round() as i64),
    }
}

fn flag(v: ValueRef) -> Option<bool> {
    match v {
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(f) => Some(f != 0.0),
        ValueRef::Text(t) => match std::str::from_utf8(t).ok()?.trim().to_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" => Some(true),
            "0" | "false" | "f" | "no" | "n" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn text(v: ValueRef) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// A card UID as the boards send it: trimmed, lowercase; empty means none.
fn card(v: ValueRef) -> Option<String> {
    text(v)
        .map(|c| c.trim().to_lowercase())
        .filter(|c| !c.is_empty())
}

/// Text that means "none" when empty.
fn non_empty(v: ValueRef) -> Option<String> {
    text(v)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

// ---------------------------------------------------------------------------------------
// The target lab.

/// A per-board MQTT credential saved across the wipe.
struct SavedCredential {
    username: String,
    machine_id: i64,
    salt: Vec<u8>,
    hash: Vec<u8>,
    created_at: i64,
}

/// Deletes the lab's data (not settings nor lab-wide credentials), returning the per-board
/// credentials, which deleting the machines cascades to. The replaced lab's calendar
/// events stay in Google: a new calendar id prefix (`sync::calendar`) keeps the new lab's
/// use ids from overwriting them.
fn clear_lab(tx: &Connection) -> Result<Vec<SavedCredential>> {
    let mut st = tx.prepare(
        "SELECT username, machine_id, salt, hash, created_at FROM board_credentials
         WHERE machine_id IS NOT NULL ORDER BY username",
    )?;
    let saved = st
        .query_map([], |r| {
            Ok(SavedCredential {
                username: r.get(0)?,
                machine_id: r.get(1)?,
                salt: r.get(2)?,
                hash: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.execute_batch(
        "DELETE FROM board_requests;
         DELETE FROM unknown_cards;
         DELETE FROM uses;
         DELETE FROM interventions;
         DELETE FROM maintenances;
         DELETE FROM authorizations;
         DELETE FROM boards;
         DELETE FROM board_credentials WHERE machine_id IS NOT NULL;
         DELETE FROM members;
         DELETE FROM machines;
         DELETE FROM machine_types;
         DELETE FROM roles;
         DELETE FROM calendar_events;
         DELETE FROM settings WHERE key = 'calendar_id_prefix';",
    )?;
    Ok(saved)
}

struct Importer<'a> {
    src: &'a Connection,
    dst: &'a Connection,
    report: ImportReport,
    roles: HashSet<i64>,
    members: HashSet<i64>,
    types: HashSet<i64>,
    machines: HashSet<i64>,
    plans: HashSet<i64>,
}

/// Runs `f` on every row of `sql` in the source.
fn each_row(src: &Connection, sql: &str, mut f: impl FnMut(&Row) -> Result<()>) -> Result<()> {
    let mut st = src.prepare(sql)?;
    let mut rows = st.query([])?;
    while let Some(row) = rows.next()? {
        f(row)?;
    }
    Ok(())
}

/// `name`, or a made-up one when it is missing or already taken (the target columns are
/// unique).
fn unique_name(
    taken: &mut HashSet<String>,
    name: Option<String>,
    what: &str,
    id: i64,
    problems: &mut Vec<String>,
) -> String {
    let mut chosen = match name.filter(|n| !n.trim().is_empty()) {
        Some(n) if !taken.contains(&n) => n,
        Some(n) => {
            let new = format!("{n} ({what} {id})");
            problems.push(format!("{what} {id}: name {n:?} is taken; renamed {new:?}"));
            new
        }
        None => {
            let new = format!("{what} {id}");
            problems.push(format!("{what} {id} has no name; named it {new:?}"));
            new
        }
    };
    while taken.contains(&chosen) {
        chosen.push('\'');
    }
    taken.insert(chosen.clone());
    chosen
}

impl Importer<'_> {
    /// Runs one table's import, naming the table in a structural error.
    fn step(&mut self, table: &str, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        f(self).map_err(|e| match e {
            Error::Sql(e) => Error::Invalid(format!("importing {table}: {e}")),
            e => e,
        })
    }

    fn problem(&mut self, n: usize, what: impl FnOnce(usize) -> String) {
        if n > 0 {
            self.report.problems.push(what(n));
        }
    }

    fn roles(&mut self, sql: &str) -> Result<()> {
        let mut ins = self.dst.prepare(
            "INSERT INTO roles (role_id, role_name, authorize_all, reserved, maintenance,
             backend_admin) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut names = HashSet::new();
        let mut no_id = 0;
        let (mut reserved_freed, mut admin_roles) = (Vec::new(), Vec::new());
        each_row(self.src, sql, |r| {
            let Some(id) = int(r.get_ref(0)?) else {
                no_id += 1;
                return Ok(());
            };
            let name = unique_name(
                &mut names,
                text(r.get_ref(1)?),
                "role",
                id,
                &mut self.report.problems,
            );
            let f = |i: usize| -> Result<bool> { Ok(flag(r.get_ref(i)?).unwrap_or(false)) };
            if f(3)? && f(2)? && f(4)? {
                admin_roles.push((id, name.clone()));
            }
            // FabOMatic's `reserved` is its built-in admin role, which staff still edit;
            // here `reserved` means "cannot be changed" and is kept for the role holding
            // anonymised history only (issue 12: the imported admin role was locked).
            let reserved = f(3)? && name == super::ANONYMOUS;
            if f(3)? && !reserved {
                reserved_freed.push(name.clone());
            }
            ins.execute(params![id, name, f(2)?, reserved, f(4)?, f(5)?])?;
            self.roles.insert(id);
            self.report.roles += 1;
            Ok(())
        })?;
        self.problem(no_id, |n| {
            format!("{} skipped: no valid id", plural(n, "role", "roles"))
        });
        for name in reserved_freed {
            self.report.notes.push(format!(
                "role {name:?} was reserved in FabOMatic: imported as an ordinary role, so its \
                 rights can be edited (a role someone holds still cannot be deleted)"
            ));
        }
        // Older FabOMatic labs have no role with panel access: their admin role (reserved,
        // every machine, maintenance) logged in. It keeps doing so here.
        let panel: bool = self.dst.query_row(
            "SELECT EXISTS (SELECT 1 FROM roles WHERE backend_admin = 1)",
            [],
            |r| r.get(0),
        )?;
        if !panel {
            let mut st = self.dst.prepare(
                "UPDATE roles SET backend_admin = 1 WHERE role_id = ?1 RETURNING role_name",
            )?;
            for (id, name) in admin_roles {
                let _: String = st.query_row([id], |r| r.get(0))?;
                self.report.notes.push(format!(
                    "no role had panel access: role {name:?} (FabOMatic's admin role) may \
                     log into the panel, so its members with a password and an email can"
                ));
            }
        }
        Ok(())
    }

    fn machine_types(&mut self, sql: Option<&str>) -> Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        let mut ins = self.dst.prepare(
            "INSERT INTO machine_types (type_id, type_name, timeout_min, grace_min, access_open)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut names = HashSet::new();
        let mut no_id = 0;
        each_row(self.src, sql, |r| {
            let Some(id) = int(r.get_ref(0)?) else {
                no_id += 1;
                return Ok(());
            };
            let name = unique_name(
                &mut names,
                text(r.get_ref(1)?),
                "machine type",
                id,
                &mut self.report.problems,
            );
            let timeout = int(r.get_ref(2)?).unwrap_or(1440);
            let grace = int(r.get_ref(3)?);
            // FabOMatic: 0 = authorization needed, 1 = none needed.
            let open = int(r.get_ref(4)?) == Some(1);
            ins.execute(params![id, name, timeout, grace, open])?;
            self.types.insert(id);
            self.report.machine_types += 1;
            Ok(())
        })?;
        self.problem(no_id, |n| {
            format!(
                "{} skipped: no valid id",
                plural(n, "machine type", "machine types")
            )
        });
        Ok(())
    }

    /// The role given to members whose role is missing: no rights at all.
    fn fallback_role(&mut self) -> Result<(i64, String)> {
        let id: i64 =
            self.dst
                .query_row("SELECT COALESCE(MAX(role_id), 0) + 1 FROM roles", [], |r| {
                    r.get(0)
                })?;
        let mut name = String::from("Imported without role");
        while self
            .dst
            .query_row("SELECT 1 FROM roles WHERE role_name = ?1", [&name], |_| {
                Ok(())
            })
            .is_ok()
        {
            name.push('\'');
        }
        self.dst.execute(
            "INSERT INTO roles (role_id, role_name) VALUES (?1, ?2)",
            params![id, name],
        )?;
        self.roles.insert(id);
        self.report.roles += 1;
        Ok((id, name))
    }

    fn members(&mut self, sql: &str) -> Result<()> {
        let dst = self.dst;
        let mut ins = dst.prepare(
            "INSERT INTO members (member_id, name, surname, role_id, card_uid, disabled, deleted,
             email, password_hash, weekly_summary, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let created = now();
        let mut cards: HashMap<String, i64> = HashMap::new();
        let mut emails: HashMap<String, i64> = HashMap::new();
        let mut fallback: Option<(i64, String)> = None;
        let mut no_role = 0;
        let mut no_id = 0;
        let mut problems = Vec::new();
        let src = self.src;
        let mut st = src.prepare(sql)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let Some(id) = int(r.get_ref(0)?) else {
                no_id += 1;
                continue;
            };
            let name = text(r.get_ref(1)?).unwrap_or_default();
            let surname = text(r.get_ref(2)?).unwrap_or_default();
            let who = format!("member {id} ({} {})", name.trim(), surname.trim());
            let role = match int(r.get_ref(3)?).filter(|role| self.roles.contains(role)) {
                Some(role) => role,
                None => {
                    no_role += 1;
                    match &fallback {
                        Some((role, _)) => *role,
                        None => fallback.insert(self.fallback_role()?).0,
                    }
                }
            };
            let mut card_uid = card(r.get_ref(4)?);
            if let Some(c) = &card_uid {
                if let Some(holder) = cards.get(c) {
                    problems.push(format!(
                        "{who}: card {c} already belongs to member {holder}; card removed"
                    ));
                    card_uid = None;
                } else {
                    cards.insert(c.clone(), id);
                }
            }
            let mut email = non_empty(r.get_ref(7)?);
            if let Some(e) = &email {
                let key = e.to_lowercase();
                if let Some(holder) = emails.get(&key) {
                    problems.push(format!(
                        "{who}: email {e} is already used by member {holder}; email removed"
                    ));
                    email = None;
                } else {
                    emails.insert(key, id);
                }
            }
            // Copied as-is: werkzeug's pbkdf2/scrypt strings are verified at login.
            let password_hash = text(r.get_ref(8)?).filter(|h| !h.is_empty());
            let f = |i: usize| -> Result<bool> { Ok(flag(r.get_ref(i)?).unwrap_or(false)) };
            ins.execute(params![
                id,
                name,
                surname,
                role,
                card_uid,
                f(5)?,
                f(6)?,
                email,
                password_hash,
                f(9)?,
                created
            ])?;
            self.members.insert(id);
            self.report.members += 1;
        }
        self.report.problems.append(&mut problems);
        if let Some((role, name)) = fallback {
            self.report.problems.push(format!(
                "{} had no valid role: given the new role {role} {name:?}, which has no rights",
                plural(no_role, "member", "members")
            ));
        }
        self.problem(no_id, |n| {
            format!("{} skipped: no valid id", plural(n, "user", "users"))
        });
        Ok(())
    }

    fn machines(&mut self, sql: &str) -> Result<()> {
        let mut ins = self.dst.prepare(
            "INSERT INTO machines (machine_id, machine_name, type_id, machine_hours, blocked,
             last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut names = HashSet::new();
        let (mut no_id, mut no_type) = (0, 0);
        each_row(self.src, sql, |r| {
            let Some(id) = int(r.get_ref(0)?) else {
                no_id += 1;
                return Ok(());
            };
            let name = unique_name(
                &mut names,
                text(r.get_ref(1)?),
                "machine",
                id,
                &mut self.report.problems,
            );
            let mut type_id = int(r.get_ref(2)?);
            if type_id.is_some_and(|t| !self.types.contains(&t)) {
                no_type += 1;
                type_id = None;
            }
            let hours = real(r.get_ref(3)?).unwrap_or(0.0);
            let blocked = flag(r.get_ref(4)?).unwrap_or(false);
            let last_seen = time(r.get_ref(5)?);
            ins.execute(params![id, name, type_id, hours, blocked, last_seen])?;
            self.machines.insert(id);
            self.report.machines += 1;
            Ok(())
        })?;
        self.problem(no_type, |n| {
            format!(
                "{} had an unknown machine type: left without a type",
                plural(n, "machine", "machines")
            )
        });
        self.problem(no_id, |n| {
            format!("{} skipped: no valid id", plural(n, "machine", "machines"))
        });
        Ok(())
    }

    fn authorizations(&mut self, sql: Option<&str>) -> Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        let mut ins = self.dst.prepare(
            "INSERT OR IGNORE INTO authorizations (member_id, machine_id) VALUES (?1, ?2)",
        )?;
        let (mut dangling, mut duplicate) = (0, 0);
        each_row(self.src, sql, |r| {
            let member = int(r.get_ref(0)?).filter(|m| self.members.contains(m));
            let machine = int(r.get_ref(1)?).filter(|m| self.machines.contains(m));
            let (Some(member), Some(machine)) = (member, machine) else {
                dangling += 1;
                return Ok(());
            };
            if ins.execute(params![member, machine])? == 0 {
                duplicate += 1;
            } else {
                self.report.authorizations += 1;
            }
            Ok(())
        })?;
        self.problem(dangling, |n| {
            format!(
                "{} skipped: unknown member or machine",
                plural(n, "authorization", "authorizations")
            )
        });
        self.problem(duplicate, |n| {
            format!(
                "{} skipped: duplicates",
                plural(n, "authorization", "authorizations")
            )
        });
        Ok(())
    }

    fn maintenances(&mut self, sql: Option<&str>) -> Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        let mut ins = self.dst.prepare(
            "INSERT INTO maintenances (maintenance_id, machine_id, hours_between, description,
             lcd_message, instructions_url) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let (mut dangling, mut invalid) = (0, 0);
        each_row(self.src, sql, |r| {
            let id = int(r.get_ref(0)?);
            let machine = int(r.get_ref(1)?).filter(|m| self.machines.contains(m));
            let hours = real(r.get_ref(2)?);
            let (Some(id), Some(hours)) = (id, hours) else {
                invalid += 1;
                return Ok(());
            };
            let Some(machine) = machine else {
                dangling += 1;
                return Ok(());
            };
            ins.execute(params![
                id,
                machine,
                hours,
                text(r.get_ref(3)?).unwrap_or_default(),
                non_empty(r.get_ref(4)?),
                non_empty(r.get_ref(5)?)
            ])?;
            self.plans.insert(id);
            self.report.maintenances += 1;
            Ok(())
        })?;
        self.problem(dangling, |n| {
            format!(
                "{} skipped: unknown machine",
                plural(n, "maintenance plan", "maintenance plans")
            )
        });
        self.problem(invalid, |n| {
            format!(
                "{} skipped: no valid id or hours between interventions",
                plural(n, "maintenance plan", "maintenance plans")
            )
        });
        Ok(())
    }

    fn interventions(&mut self, sql: Option<&str>) -> Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        let mut ins = self.dst.prepare(
            "INSERT INTO interventions (intervention_id, maintenance_id, machine_id, member_id,
             timestamp, replay) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let (mut dangling, mut invalid) = (0, 0);
        each_row(self.src, sql, |r| {
            let id = int(r.get_ref(0)?);
            let plan = int(r.get_ref(1)?).filter(|p| self.plans.contains(p));
            let machine = int(r.get_ref(2)?).filter(|m| self.machines.contains(m));
            let member = int(r.get_ref(3)?).filter(|m| self.members.contains(m));
            let (Some(id), Some(ts)) = (id, time(r.get_ref(4)?)) else {
                invalid += 1;
                return Ok(());
            };
            let (Some(plan), Some(machine), Some(member)) = (plan, machine, member) else {
                dangling += 1;
                return Ok(());
            };
            ins.execute(params![id, plan, machine, member, ts, flag(r.get_ref(5)?)])?;
            self.report.interventions += 1;
            Ok(())
        })?;
        self.problem(dangling, |n| {
            format!(
                "{} skipped: unknown maintenance plan, machine or member",
                plural(n, "intervention", "interventions")
            )
        });
        self.problem(invalid, |n| {
            format!(
                "{} skipped: no valid id or time",
                plural(n, "intervention", "interventions")
            )
        });
        Ok(())
    }

    fn uses(&mut self, sql: Option<&str>) -> Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        let mut ins = self.dst.prepare(
            "INSERT INTO uses (use_id, member_id, machine_id, start_ts, last_seen, end_ts, replay)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let (mut dangling, mut invalid, mut backwards) = (0, 0, 0);
        each_row(self.src, sql, |r| {
            let id = int(r.get_ref(0)?);
            let member = int(r.get_ref(1)?).filter(|m| self.members.contains(m));
            let machine = int(r.get_ref(2)?).filter(|m| self.machines.contains(m));
            let (Some(id), Some(start)) = (id, time(r.get_ref(3)?)) else {
                invalid += 1;
                return Ok(());
            };
            let (Some(member), Some(machine)) = (member, machine) else {
                dangling += 1;
                return Ok(());
            };
            let end = time(r.get_ref(5)?);
            let last_seen = time(r.get_ref(4)?).or(end).unwrap_or(start);
            if end.is_some_and(|end| end < start) {
                backwards += 1;
            }
            ins.execute(params![
                id,
                member,
                machine,
                start,
                last_seen,
                end,
                flag(r.get_ref(6)?)
            ])?;
            self.report.uses += 1;
            Ok(())
        })?;
        self.problem(dangling, |n| {
            format!(
                "{} skipped: unknown member or machine",
                plural(n, "use", "uses")
            )
        });
        self.problem(invalid, |n| {
            format!(
                "{} skipped: no valid id or start time",
                plural(n, "use", "uses")
            )
        });
        self.problem(backwards, |n| {
            format!("uses that end before they start: {n} (imported as they are)")
        });
        Ok(())
    }

    fn unknown_cards(&mut self, sql: Option<&str>) -> Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        let mut ins = self.dst.prepare(
            "INSERT INTO unknown_cards (id, card_uid, machine_id, timestamp) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let (mut dangling, mut invalid) = (0, 0);
        each_row(self.src, sql, |r| {
            let id = int(r.get_ref(0)?);
            let uid = text(r.get_ref(1)?).map(|c| c.trim().to_lowercase());
            let (Some(id), Some(uid), Some(ts)) = (id, uid, time(r.get_ref(2)?)) else {
                invalid += 1;
                return Ok(());
            };
            let mut machine = int(r.get_ref(3)?);
            if machine.is_some_and(|m| !self.machines.contains(&m)) {
                dangling += 1;
                machine = None;
            }
            ins.execute(params![id, uid, machine, ts])?;
            self.report.unknown_cards += 1;
            Ok(())
        })?;
        self.problem(dangling, |n| {
            format!(
                "{} had an unknown machine: kept without a machine",
                plural(n, "unknown card attempt", "unknown card attempts")
            )
        });
        self.problem(invalid, |n| {
            format!(
                "{} skipped: no valid id, card or time",
                plural(n, "unknown card attempt", "unknown card attempts")
            )
        });
        Ok(())
    }

    fn boards(&mut self, sql: Option<&str>) -> Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        struct Board {
            ip: String,
            fw: String,
            serial: String,
            heap: i64,
            last_seen: Option<i64>,
        }
        // One board per machine: the most recently seen row wins (then the latest row).
        let mut best: HashMap<i64, Board> = HashMap::new();
        let (mut dangling, mut merged) = (0, 0);
        each_row(self.src, sql, |r| {
            let Some(machine) = int(r.get_ref(1)?).filter(|m| self.machines.contains(m)) else {
                dangling += 1;
                return Ok(());
            };
            let heap = match r.get_ref(6)? {
                ValueRef::Text(t) => std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0),
                v => real(v).map(|h| h.round() as i64).unwrap_or(0),
            };
            let board = Board {
                ip: text(r.get_ref(2)?).unwrap_or_default(),
                fw: text(r.get_ref(3)?).unwrap_or_default(),
                serial: text(r.get_ref(5)?).unwrap_or_default(),
                heap,
                last_seen: time(r.get_ref(4)?),
            };
            match best.get(&machine) {
                Some(old) => {
                    merged += 1;
                    if board.last_seen >= old.last_seen {
                        best.insert(machine, board);
                    }
                }
                None => {
                    best.insert(machine, board);
                }
            }
            Ok(())
        })?;
        let mut ins = self.dst.prepare(
            "INSERT INTO boards (machine_id, ip_address, fw_version, serial, heap, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut machines: Vec<_> = best.into_iter().collect();
        machines.sort_by_key(|(m, _)| *m);
        for (machine, b) in machines {
            ins.execute(params![
                machine,
                b.ip,
                b.fw,
                b.serial,
                b.heap,
                b.last_seen.unwrap_or(0)
            ])?;
            self.report.boards += 1;
        }
        self.problem(dangling, |n| {
            format!("{} skipped: unknown machine", plural(n, "board", "boards"))
        });
        self.problem(merged, |n| {
            format!(
                "{} merged: one board per machine, the most recently seen kept",
                plural(n, "extra board row", "extra board rows")
            )
        });
        Ok(())
    }

    fn restore_credentials(&mut self, saved: Vec<SavedCredential>) -> Result<()> {
        let mut ins = self.dst.prepare(
            "INSERT INTO board_credentials (username, machine_id, salt, hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut dropped = Vec::new();
        for c in saved {
            if self.machines.contains(&c.machine_id) {
                ins.execute(params![
                    c.username,
                    c.machine_id,
                    c.salt,
                    c.hash,
                    c.created_at
                ])?;
            } else {
                dropped.push(c.username);
            }
        }
        if !dropped.is_empty() {
            self.report.problems.push(format!(
                "{} removed, their machine is not in the imported database: {}",
                plural(dropped.len(), "board credential", "board credentials"),
                dropped.join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::queries;
    use sha2::{Digest, Sha256};
    use std::path::PathBuf;
    use std::time::Instant;

    fn samples_dir() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fabomatic-databases"
        ))
    }

    /// Every sample database, oldest revision first by file name.
    fn samples() -> Vec<PathBuf> {
        let dir = samples_dir();
        let mut dbs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("sample databases expected in {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect();
        dbs.sort();
        assert!(
            dbs.len() >= 8,
            "expected the 8 sample databases in {}",
            dir.display()
        );
        dbs
    }

    fn sample(version: &str) -> PathBuf {
        samples_dir().join(format!("database-{version}.db"))
    }

    fn sha256(path: &Path) -> Vec<u8> {
        Sha256::digest(std::fs::read(path).unwrap()).to_vec()
    }

    fn fresh_store(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open(&dir.path().join(name), Synchronous::Normal).unwrap()
    }

    fn count(conn: &Connection, sql: &str) -> usize {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize
    }

    fn open_source(path: &Path) -> Connection {
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
    }

    fn has_table(src: &Connection, table: &str) -> bool {
        count(
            src,
            &format!("SELECT count(*) FROM pragma_table_info('{table}')"),
        ) > 0
    }

    fn has_column(src: &Connection, table: &str, column: &str) -> bool {
        count(
            src,
            &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE lower(name) = lower('{column}')"),
        ) > 0
    }

    /// What an import of `src` should write, computed from the source with SQL alone.
    fn expected(src: &Connection) -> [(&'static str, usize); 10] {
        let machines = "machine_id IN (SELECT machine_id FROM machines)";
        let users = "user_id IN (SELECT user_id FROM users)";
        let plans = format!("SELECT maintenance_id FROM maintenances WHERE {machines}");
        let boards = if has_table(src, "boards") {
            count(
                src,
                &format!("SELECT count(DISTINCT machine_id) FROM boards WHERE {machines}"),
            )
        } else {
            0
        };
        [
            ("roles", count(src, "SELECT count(*) FROM roles")),
            ("members", count(src, "SELECT count(*) FROM users")),
            (
                "machine types",
                count(src, "SELECT count(*) FROM machine_types"),
            ),
            ("machines", count(src, "SELECT count(*) FROM machines")),
            (
                "authorizations",
                count(
                    src,
                    &format!(
                        "SELECT count(*) FROM (SELECT DISTINCT user_id, machine_id
                         FROM authorizations WHERE {users} AND {machines})"
                    ),
                ),
            ),
            (
                "maintenances",
                count(src, &format!("SELECT count(*) FROM ({plans})")),
            ),
            (
                "interventions",
                count(
                    src,
                    &format!(
                        "SELECT count(*) FROM interventions WHERE {users} AND {machines}
                         AND maintenance_id IN ({plans})"
                    ),
                ),
            ),
            (
                "uses",
                count(
                    src,
                    &format!("SELECT count(*) FROM uses WHERE {users} AND {machines}"),
                ),
            ),
            (
                "unknown cards",
                count(src, "SELECT count(*) FROM unknown_cards"),
            ),
            ("boards", boards),
        ]
    }

    /// Row counts of the target lab, named like the report's.
    fn target_counts(conn: &Connection) -> [(&'static str, usize); 10] {
        let c = |t: &str| count(conn, &format!("SELECT count(*) FROM {t}"));
        [
            ("roles", c("roles")),
            ("members", c("members")),
            ("machine types", c("machine_types")),
            ("machines", c("machines")),
            ("authorizations", c("authorizations")),
            ("maintenances", c("maintenances")),
            ("interventions", c("interventions")),
            ("uses", c("uses")),
            ("unknown cards", c("unknown_cards")),
            ("boards", c("boards")),
        ]
    }

    /// Field-by-field comparison of the imported rows with the source, attached read-only.
    fn check_fields(store: &Store, source: &Path) {
        let conn = store.connect().unwrap();
        let uri = file_uri(&std::fs::canonicalize(source).unwrap(), false);
        conn.execute("ATTACH ?1 AS src", [&uri]).unwrap();
        let src = open_source(source);
        let n_users = count(&src, "SELECT count(*) FROM users");
        let weekly = if has_column(&src, "users", "receive_weekly_summary") {
            "s.receive_weekly_summary"
        } else {
            "0"
        };
        let same_members = count(
            &conn,
            &format!(
                "SELECT count(*) FROM members m JOIN src.users s ON s.user_id = m.member_id
                 WHERE m.name = s.name AND m.surname = s.surname AND m.role_id = s.role_id
                 AND m.card_uid IS NULLIF(lower(trim(s.card_UUID)), '')
                 AND m.disabled = s.disabled AND m.deleted = s.deleted
                 AND m.email IS NULLIF(trim(s.email), '')
                 AND CAST(m.password_hash AS BLOB) IS CAST(s.password_hash AS BLOB)
                 AND m.weekly_summary = {weekly}"
            ),
        );
        assert_eq!(
            same_members,
            n_users,
            "members differ from users in {}",
            source.display()
        );

        let same_machines = count(
            &conn,
            "SELECT count(*) FROM machines m JOIN src.machines s ON s.machine_id = m.machine_id
             WHERE m.machine_name = s.machine_name AND m.type_id IS s.machine_type_id
             AND m.machine_hours = s.machine_hours AND m.blocked = s.blocked
             AND m.last_seen IS CAST(round(s.last_seen) AS INTEGER)",
        );
        assert_eq!(same_machines, count(&src, "SELECT count(*) FROM machines"));

        let grace = if has_column(&src, "machine_types", "grace_period_min") {
            "s.grace_period_min"
        } else {
            "NULL"
        };
        let access = if has_column(&src, "machine_types", "access_management") {
            "(s.access_management IS 1)"
        } else {
            "0"
        };
        let same_types = count(
            &conn,
            &format!(
                "SELECT count(*) FROM machine_types t JOIN src.machine_types s ON s.type_id = t.type_id
                 WHERE t.type_name = s.type_name AND t.timeout_min = s.type_timeout_min
                 AND t.grace_min IS {grace} AND t.access_open = {access}"
            ),
        );
        assert_eq!(
            same_types,
            count(&src, "SELECT count(*) FROM machine_types")
        );

        let (lcd, url) = if has_column(&src, "maintenances", "lcd_message") {
            (
                "NULLIF(s.lcd_message, '')",
                "NULLIF(s.instructions_url, '')",
            )
        } else {
            ("NULL", "NULL")
        };
        let url = if has_column(&src, "maintenances", "instructions_url") {
            url
        } else {
            "NULL"
        };
        let same_plans = count(
            &conn,
            &format!(
                "SELECT count(*) FROM maintenances p JOIN src.maintenances s
                 ON s.maintenance_id = p.maintenance_id
                 WHERE p.machine_id = s.machine_id AND p.hours_between = s.hours_between
                 AND p.description = s.description AND p.lcd_message IS {lcd}
                 AND p.instructions_url IS {url}"
            ),
        );
        assert_eq!(same_plans, count(&src, "SELECT count(*) FROM maintenances"));

        let replay = |table: &str| {
            if has_column(&src, table, "replay") {
                "s.replay"
            } else {
                "NULL"
            }
        };
        let same_uses = count(
            &conn,
            &format!(
                "SELECT count(*) FROM uses u JOIN src.uses s ON s.use_id = u.use_id
                 WHERE u.member_id = s.user_id AND u.machine_id = s.machine_id
                 AND u.start_ts = CAST(round(s.start_timestamp) AS INTEGER)
                 AND u.last_seen = CAST(round(s.last_seen) AS INTEGER)
                 AND u.end_ts IS CAST(round(s.end_timestamp) AS INTEGER)
                 AND u.replay IS {}",
                replay("uses")
            ),
        );
        assert_eq!(same_uses, count(&src, "SELECT count(*) FROM uses"));

        let same_interventions = count(
            &conn,
            &format!(
                "SELECT count(*) FROM interventions i JOIN src.interventions s
                 ON s.intervention_id = i.intervention_id
                 WHERE i.maintenance_id = s.maintenance_id AND i.machine_id = s.machine_id
                 AND i.member_id = s.user_id AND i.timestamp = CAST(round(s.timestamp) AS INTEGER)
                 AND i.replay IS {}",
                replay("interventions")
            ),
        );
        assert_eq!(
            same_interventions,
            count(&src, "SELECT count(*) FROM interventions")
        );
        conn.execute_batch("DETACH src").unwrap();
    }

    #[test]
    fn imports_every_sample_database() {
        let mut pbkdf2_checked = 0;
        for db in samples() {
            let name = db.file_name().unwrap().to_string_lossy().into_owned();
            let before = sha256(&db);
            let listing_before: Vec<_> = std::fs::read_dir(db.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let store = fresh_store(&dir, "lab.db");

            // No time bound: speed belongs to benchmarks, not a debug build on CI.
            let t = Instant::now();
            let report = import(&store, &db, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("{name}: {:?}\n{report}\n", t.elapsed());

            let src = open_source(&db);
            let want = expected(&src);
            let conn = store.connect().unwrap();
            assert_eq!(report.tables(), want, "{name}: report vs source");
            assert_eq!(target_counts(&conn), want, "{name}: lab vs source");
            // The samples are clean: nothing is skipped or repaired.
            assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
            let revision: String = src
                .query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(report.source_revision.as_deref(), Some(revision.as_str()));
            check_fields(&store, &db);

            if name.contains("0.1.7") || name.contains("0.1.8") {
                assert!(report.uses > 20_000, "{name}: {} uses", report.uses);
                assert!(report.interventions > 4_000, "{name}");
                assert!(report.members > 100, "{name}");
            }

            // Password hashes survive byte for byte.
            let mut st = src
                .prepare("SELECT user_id, CAST(password_hash AS BLOB) FROM users WHERE password_hash LIKE 'pbkdf2:sha256:%'")
                .unwrap();
            let hashes: Vec<(i64, Vec<u8>)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for (id, hash) in hashes {
                let copied: Vec<u8> = conn
                    .query_row(
                        "SELECT CAST(password_hash AS BLOB) FROM members WHERE member_id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(copied, hash, "{name}: member {id}");
                pbkdf2_checked += 1;
            }

            // A second import needs --replace; with it, the lab ends up the same.
            let err = import(&store, &db, false).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid(m) if m.contains("--replace")),
                "{name}: {err}"
            );
            assert_eq!(
                target_counts(&conn),
                want,
                "{name}: refused import changed the lab"
            );
            let again = import(&store, &db, true).unwrap();
            assert_eq!(again, report, "{name}");
            assert_eq!(target_counts(&conn), want, "{name}: after --replace");

            assert_eq!(sha256(&db), before, "{name} was modified");
            let listing_after: Vec<_> = std::fs::read_dir(db.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                listing_after, listing_before,
                "files appeared beside {name}"
            );
        }
        assert!(
            pbkdf2_checked > 100,
            "{pbkdf2_checked} pbkdf2 hashes checked"
        );
    }

    #[test]
    fn refuses_what_is_not_a_fabomatic_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store(&dir, "lab.db");
        let invalid = |path: &Path| match import(&store, path, false) {
            Err(Error::Invalid(m)) => m,
            other => panic!("{}: {other:?}", path.display()),
        };

        let missing = dir.path().join("nope.db");
        assert!(invalid(&missing).contains("cannot read"));
        assert!(!missing.exists(), "the missing source was created");

        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "not a database at all, just some text that is long enough",
        )
        .unwrap();
        assert!(invalid(&text).contains("not a SQLite database"));

        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, "").unwrap();
        assert!(invalid(&empty).contains("not a FabOMatic database"));

        // fabgate's own database has machines and roles, but no users.
        let other = fresh_store(&dir, "other.db");
        let m = invalid(other.path());
        assert!(
            m.contains("not a FabOMatic database") && m.contains("users"),
            "{m}"
        );

        assert!(invalid(dir.path()).contains("not a file"));
        assert!(lab_is_empty(&store.connect().unwrap()).unwrap());
    }

    /// A writable copy of a sample, to dirty.
    fn copy_sample(dir: &tempfile::TempDir, version: &str) -> PathBuf {
        let path = dir.path().join(format!("dirty-{version}.db"));
        std::fs::copy(sample(version), &path).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    }

    #[test]
    fn repairs_and_reports_dirty_rows() {
        let dir = tempfile::tempdir().unwrap();
        let source = copy_sample(&dir, "0.4.0");
        let src = Connection::open(&source).unwrap();
        src.execute_batch(
            "PRAGMA foreign_keys = OFF;
             UPDATE users SET card_UUID = ' AB12CD34 ' WHERE user_id = 3;
             INSERT INTO users (user_id, name, surname, role_id, card_UUID, disabled, deleted,
                                password_hash, email) VALUES
               (100, 'Dup', 'Card', 3, 'ab12cd34', 0, 0, NULL, 'USER1.SURNAME1@fablab.org'),
               (101, 'Empty', 'Card', 3, '', 0, 0, 'scrypt:32768:8:1$abcdefghijklmnop$00ff', ''),
               (102, 'Ghost', 'Role', 99, NULL, 0, 0, NULL, NULL);
             INSERT INTO machines VALUES (50, 'Orphan type', 77, 123.5, 1, 1717102935.7);
             UPDATE machines SET machine_hours = 42.25 WHERE machine_id = 1;
             INSERT INTO authorizations (user_id, machine_id) VALUES (3, 1), (3, 2), (999, 1), (3, 999);
             INSERT INTO uses (use_id, user_id, machine_id, start_timestamp, last_seen, end_timestamp, replay) VALUES
               (1, 3, 1, 1700000000.5, 1700000100.4, 1700000200.49, 1),
               (2, 3, 1, 1700001000, 1700001100, NULL, NULL),
               (3, 999, 1, 1700000000, 1700000000, 1700000001, 0),
               (4, 3, 888, 1700000000, 1700000000, 1700000001, 0),
               (5, 3, 2, 1700000500, 1700000400, 1700000400, 0),
               (6, 3, 2, '1700002000.6', '1700002000.6', NULL, NULL);
             INSERT INTO interventions (intervention_id, maintenance_id, machine_id, user_id, timestamp, replay) VALUES
               (10, 1, 1, 3, 1700000000.2, 1),
               (11, 999, 1, 3, 1700000000, 0);
             INSERT INTO unknown_cards (id, card_UUID, timestamp, machine_id) VALUES
               (1, 'DEADBEEF', 1700000000.9, 1),
               (2, 'cafe0001', 1700000001, 4242);
             INSERT INTO boards (board_id, machine_id, ip_address, fw_version, last_seen, serial, heap) VALUES
               (1, 1, '10.0.0.1', '1.0', 1700000000, NULL, '12345'),
               (2, 1, '10.0.0.2', '1.1', 1700000500, 'SER1', NULL),
               (3, 2, '10.0.0.3', '1.1', 1700000000, 'SER2', '2048'),
               (4, 3, '10.0.0.4', '1.1', 1700000000, 'SER3', 'lots'),
               (5, 777, '10.0.0.5', '1.1', 1700000000, 'X', 1);",
        )
        .unwrap();
        drop(src);

        let store = fresh_store(&dir, "lab.db");
        let report = import(&store, &source, false).unwrap();
        eprintln!("{report}");
        let conn = store.connect().unwrap();
        let has = |needle: &str| {
            assert!(
                report.problems.iter().any(|p| p.contains(needle)),
                "no problem mentions {needle:?}: {:#?}",
                report.problems
            )
        };

        // Cards: trimmed and lowercased; the second holder loses it.
        let m3 = queries::member(&conn, 3).unwrap().unwrap();
        assert_eq!(m3.card_uid.as_deref(), Some("ab12cd34"));
        assert_eq!(
            queries::member_by_card(&conn, "ab12cd34")
                .unwrap()
                .unwrap()
                .id,
            3
        );
        let m100 = queries::member(&conn, 100).unwrap().unwrap();
        assert_eq!(m100.card_uid, None);
        has("member 100 (Dup Card): card ab12cd34 already belongs to member 3");
        // Emails: duplicates (any case) and empty ones become NULL.
        let email = |id: i64| -> Option<String> {
            conn.query_row(
                "SELECT email FROM members WHERE member_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(email(3).as_deref(), Some("User1.Surname1@fablab.org"));
        assert_eq!(email(100), None);
        has("email USER1.SURNAME1@fablab.org is already used by member 3");
        assert_eq!(email(101), None);
        assert_eq!(queries::member(&conn, 101).unwrap().unwrap().card_uid, None);
        let scrypt: String = conn
            .query_row(
                "SELECT password_hash FROM members WHERE member_id = 101",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(scrypt, "scrypt:32768:8:1$abcdefghijklmnop$00ff");
        // A member without a valid role gets a role with no rights.
        let ghost = queries::member(&conn, 102).unwrap().unwrap();
        assert_eq!(ghost.role, queries::RoleFlags::default());
        assert!(!["1", "2", "3"].contains(&ghost.role_id.to_string().as_str()));
        has("1 member had no valid role: given the new role 4 \"Imported without role\"");
        assert_eq!(report.roles, 4);
        assert_eq!(report.members, 14);

        // Machines: hours, blocked, rounded last_seen; unknown type dropped.
        let m50 = queries::machine(&conn, 50).unwrap().unwrap();
        assert_eq!((m50.type_id, m50.hours, m50.blocked), (None, 123.5, true));
        assert_eq!(m50.last_seen, Some(1717102936));
        has("1 machine had an unknown machine type");
        assert_eq!(queries::machine(&conn, 1).unwrap().unwrap().hours, 42.25);

        assert_eq!(report.authorizations, 2);
        assert!(queries::has_authorization(&conn, 3, 2).unwrap());
        has("2 authorizations skipped: unknown member or machine");

        // Uses: rounded times, text times, replay, open uses; dangling ones skipped.
        assert_eq!(report.uses, 4);
        let u1 = queries::use_by_id(&conn, 1).unwrap().unwrap();
        assert_eq!(
            (u1.start, u1.last_seen, u1.end, u1.replay),
            (1700000001, 1700000100, Some(1700000200), Some(true))
        );
        let open = queries::all_open_uses(&conn).unwrap();
        assert_eq!(open.iter().map(|u| u.id).collect::<Vec<_>>(), vec![2, 6]);
        assert_eq!(
            (open[0].start, open[0].last_seen, open[0].end),
            (1700001000, 1700001100, None)
        );
        assert_eq!(open[1].start, 1700002001);
        assert!(queries::use_by_id(&conn, 5).unwrap().is_some());
        has("2 uses skipped: unknown member or machine");
        has("uses that end before they start: 1 (imported as they are)");

        assert_eq!(report.interventions, 3);
        has("1 intervention skipped");

        assert_eq!(report.unknown_cards, 2);
        let cards: Vec<(String, Option<i64>, i64)> = conn
            .prepare("SELECT card_uid, machine_id, timestamp FROM unknown_cards ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            cards,
            vec![
                ("deadbeef".into(), Some(1), 1700000001),
                ("cafe0001".into(), None, 1700000001)
            ]
        );
        has("1 unknown card attempt had an unknown machine");

        // Boards: one per machine, the most recent; serial/heap defaults and text heap.
        assert_eq!(report.boards, 3);
        let boards: Vec<(i64, String, String, i64, i64)> = conn
            .prepare("SELECT machine_id, ip_address, serial, heap, last_seen FROM boards ORDER BY machine_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            boards,
            vec![
                (1, "10.0.0.2".into(), "SER1".into(), 0, 1700000500),
                (2, "10.0.0.3".into(), "SER2".into(), 2048, 1700000000),
                (3, "10.0.0.4".into(), "SER3".into(), 0, 1700000000),
            ]
        );
        has("1 board skipped: unknown machine");
        has("1 extra board row merged");

        assert_eq!(
            target_counts(&conn).map(|(_, n)| n),
            report.tables().map(|(_, n)| n)
        );
    }

    #[test]
    fn replace_keeps_settings_and_credentials_of_surviving_machines() {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store(&dir, "lab.db");
        import(&store, &sample("0.4.0"), false).unwrap();
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "INSERT INTO machines (machine_id, machine_name) VALUES (99, 'Local only');
             INSERT INTO board_credentials VALUES
               ('lab', NULL, x'00', x'01', 1), ('board1', 1, x'02', x'03', 2),
               ('board99', 99, x'04', x'05', 3);
             INSERT INTO settings VALUES ('lab_name', 'Test lab'), ('calendar_id_prefix', 'abc123');
             INSERT INTO calendar_events (event_id, subject_id) VALUES ('fabgateabc123u1', 1);
             INSERT INTO board_requests (machine_id, request_type, card_uid, created_at)
               VALUES (1, 'stop', 'abcd', 1);",
        )
        .unwrap();

        let report = import(&store, &sample("0.1.8"), true).unwrap();
        assert_eq!(
            report.problems,
            vec!["1 board credential removed, their machine is not in the imported database: board99"]
        );
        let creds: Vec<(String, Option<i64>, Vec<u8>)> = conn
            .prepare("SELECT username, machine_id, hash FROM board_credentials ORDER BY username")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            creds,
            vec![
                ("board1".into(), Some(1), vec![3]),
                ("lab".into(), None, vec![1])
            ]
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM settings WHERE key = 'lab_name'"
            ),
            1
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM board_requests"), 0);
        // A new lab: a new calendar id prefix, no event ids of the old one.
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM settings WHERE key = 'calendar_id_prefix'"
            ),
            0
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM calendar_events"), 0);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM machines WHERE machine_id = 99"),
            0
        );
        assert_eq!(
            target_counts(&conn),
            expected(&open_source(&sample("0.1.8")))
        );
    }

    #[test]
    fn seeded_roles_do_not_make_the_lab_non_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store(&dir, "lab.db");
        let conn = store.connect().unwrap();
        // A fresh store is seeded with FabOMatic's roles and a default machine type.
        let seeded: i64 = conn
            .query_row("SELECT COUNT(*) FROM roles", [], |r| r.get(0))
            .unwrap();
        assert!(seeded > 0);
        conn.execute_batch("INSERT INTO roles (role_id, role_name) VALUES (70, 'other')")
            .unwrap();
        assert!(lab_is_empty(&conn).unwrap());
        let report = import(&store, &sample("0.0.18"), false).unwrap();
        assert_eq!(report.roles, 3);
        let names: Vec<String> = conn
            .prepare("SELECT role_name FROM roles ORDER BY role_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(names, ["admins", "Fab Staff", "Fab Users"]);
        assert!(!lab_is_empty(&conn).unwrap());
    }

    /// A hand-made database with only the oldest, required columns and tables.
    #[test]
    fn imports_a_minimal_database_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("minimal.db");
        Connection::open(&source)
            .unwrap()
            .execute_batch(
                "CREATE TABLE roles (role_id INTEGER PRIMARY KEY, role_name TEXT);
                 CREATE TABLE users (user_id INTEGER PRIMARY KEY, name TEXT, role_id INTEGER);
                 CREATE TABLE machines (machine_id INTEGER PRIMARY KEY, machine_name TEXT);
                 INSERT INTO roles VALUES (1, 'all'), (2, NULL);
                 INSERT INTO users VALUES (5, 'Ada', 1), (6, 'Bob', 2);
                 INSERT INTO machines VALUES (3, 'Lathe'), (4, 'Lathe');",
            )
            .unwrap();
        let store = fresh_store(&dir, "lab.db");
        let report = import(&store, &source, false).unwrap();
        assert_eq!(report.source_revision, None);
        assert_eq!((report.roles, report.members, report.machines), (2, 2, 2));
        assert_eq!(report.uses + report.boards + report.machine_types, 0);
        assert_eq!(
            report.problems,
            vec![
                "role 2 has no name; named it \"role 2\"",
                "machine 4: name \"Lathe\" is taken; renamed \"Lathe (machine 4)\"",
            ]
        );
        let conn = store.connect().unwrap();
        let m = queries::member(&conn, 6).unwrap().unwrap();
        assert_eq!(
            (m.surname.as_str(), m.card_uid, m.disabled),
            ("", None, false)
        );
        let lathe = queries::machine(&conn, 4).unwrap().unwrap();
        assert_eq!(
            (lathe.name.as_str(), lathe.hours, lathe.blocked),
            ("Lathe (machine 4)", 0.0, false)
        );
        let shown = report.to_string();
        assert!(
            shown.contains("members") && shown.contains("2 problem(s):"),
            "{shown}"
        );
    }

    /// A structural error half-way leaves the lab as it was.
    #[test]
    fn a_failed_import_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store(&dir, "lab.db");
        import(&store, &sample("0.4.0"), false).unwrap();
        let conn = store.connect().unwrap();
        let before = target_counts(&conn);

        // Uses whose use_id is not a primary key and repeats: the insert fails late.
        let source = copy_sample(&dir, "0.1.5");
        Connection::open(&source)
            .unwrap()
            .execute_batch(
                "DROP TABLE uses;
                 CREATE TABLE uses (use_id INTEGER, user_id INTEGER, machine_id INTEGER,
                   start_timestamp FLOAT, last_seen FLOAT, end_timestamp FLOAT);
                 INSERT INTO uses VALUES (1, 1, 1, 1700000000, 1700000000, 1700000010),
                                         (1, 1, 1, 1700000000, 1700000000, 1700000010);",
            )
            .unwrap();
        let err = import(&store, &source, true).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m.starts_with("importing uses")),
            "{err}"
        );
        assert_eq!(target_counts(&conn), before);
        let names: Vec<String> = conn
            .prepare("SELECT machine_name FROM machines ORDER BY machine_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(names.len(), 11);

        // A missing key column is found before anything is written.
        let source = copy_sample(&dir, "0.2.5");
        Connection::open(&source)
            .unwrap()
            .execute_batch("ALTER TABLE uses DROP COLUMN start_timestamp")
            .unwrap();
        let err = import(&store, &source, true).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m.contains("table uses has no column start_timestamp")),
            "{err}"
        );
        assert_eq!(target_counts(&conn), before);
    }

    /// A WAL-mode source with rows still in its -wal file (FabOMatic running) is read
    /// whole, and left as it was.
    #[test]
    fn reads_a_wal_database_with_a_pending_log() {
        let dir = tempfile::tempdir().unwrap();
        let source = copy_sample(&dir, "0.4.0");
        let writer = Connection::open(&source).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 INSERT INTO users (user_id, name, surname, role_id, card_UUID, disabled, deleted)
                 VALUES (200, 'In', 'Wal', 3, 'ABCDEF01', 0, 0);",
            )
            .unwrap();
        let wal = dir.path().join("dirty-0.4.0.db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        assert!(!is_wal_without_log(&source));
        let before = (sha256(&source), sha256(&wal));

        let store = fresh_store(&dir, "lab.db");
        let report = import(&store, &source, false).unwrap();
        assert_eq!(report.members, 12);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let conn = store.connect().unwrap();
        assert_eq!(
            queries::member_by_card(&conn, "abcdef01")
                .unwrap()
                .unwrap()
                .id,
            200
        );
        assert_eq!((sha256(&source), sha256(&wal)), before);
        drop(writer);
        assert!(
            is_wal_without_log(&source),
            "the writer checkpoints on close"
        );
    }

    #[test]
    fn file_uris_are_escaped() {
        assert_eq!(
            file_uri(Path::new("/a b/c?d#e%f.db"), false),
            "file:/a%20b/c%3Fd%23e%25f.db?mode=ro"
        );
        assert_eq!(
            file_uri(Path::new("/x.db"), true),
            "file:/x.db?mode=ro&immutable=1"
        );
    }
}
