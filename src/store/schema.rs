//! The database schema as an ordered list of migrations. The version lives in
//! `PRAGMA user_version`; a migration is never edited once released, only appended.
//!
//! Names follow FabOMatic's concepts (protocol.md §6.8, features.md §c.3) so an import is a
//! straight mapping. Times are UTC Unix seconds (INTEGER); machine hours stay a REAL
//! counter because FabOMatic lets staff edit it.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the lab as the boards see it.
    r#"
CREATE TABLE roles (
    role_id       INTEGER PRIMARY KEY,
    role_name     TEXT NOT NULL UNIQUE,
    authorize_all INTEGER NOT NULL DEFAULT 0,  -- may use every machine (level 2 on boards)
    reserved      INTEGER NOT NULL DEFAULT 0,  -- cannot be edited or deleted
    maintenance   INTEGER NOT NULL DEFAULT 0,  -- may sign off maintenance with a card
    backend_admin INTEGER NOT NULL DEFAULT 0   -- may log into the panel
);
CREATE TABLE members (
    member_id      INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    surname        TEXT NOT NULL DEFAULT '',
    role_id        INTEGER NOT NULL REFERENCES roles(role_id),
    card_uid       TEXT UNIQUE,                 -- lowercase hex as the boards send it
    disabled       INTEGER NOT NULL DEFAULT 0,  -- may not use machines
    deleted        INTEGER NOT NULL DEFAULT 0,  -- soft delete; history kept
    email          TEXT,
    password_hash  TEXT,                        -- argon2 PHC or imported werkzeug pbkdf2
    weekly_summary INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX members_email ON members(email COLLATE NOCASE) WHERE email IS NOT NULL AND email <> '';
CREATE TABLE machine_types (
    type_id     INTEGER PRIMARY KEY,
    type_name   TEXT NOT NULL UNIQUE,
    timeout_min INTEGER NOT NULL DEFAULT 1440, -- auto-logoff on the board; 0 = never
    grace_min   INTEGER,                       -- power-off grace; NULL = board default
    access_open INTEGER NOT NULL DEFAULT 0     -- 1 = no authorization needed
);
CREATE TABLE machines (
    machine_id    INTEGER PRIMARY KEY,         -- the id in the board's MQTT topic
    machine_name  TEXT NOT NULL UNIQUE,
    type_id       INTEGER REFERENCES machine_types(type_id),
    machine_hours REAL NOT NULL DEFAULT 0,     -- cumulative, hours
    blocked       INTEGER NOT NULL DEFAULT 0,
    last_seen     INTEGER                      -- flushed from memory periodically
);
CREATE TABLE authorizations (
    member_id  INTEGER NOT NULL REFERENCES members(member_id) ON DELETE CASCADE,
    machine_id INTEGER NOT NULL REFERENCES machines(machine_id) ON DELETE CASCADE,
    PRIMARY KEY (member_id, machine_id)
) WITHOUT ROWID;
CREATE INDEX authorizations_machine ON authorizations(machine_id);
CREATE TABLE maintenances (
    maintenance_id   INTEGER PRIMARY KEY,
    machine_id       INTEGER NOT NULL REFERENCES machines(machine_id) ON DELETE CASCADE,
    hours_between    REAL NOT NULL,
    description      TEXT NOT NULL,
    lcd_message      TEXT,                     -- 16 characters on the board's LCD
    instructions_url TEXT
);
CREATE INDEX maintenances_machine ON maintenances(machine_id);
CREATE TABLE interventions (
    intervention_id INTEGER PRIMARY KEY,
    maintenance_id  INTEGER NOT NULL REFERENCES maintenances(maintenance_id) ON DELETE CASCADE,
    machine_id      INTEGER NOT NULL REFERENCES machines(machine_id) ON DELETE CASCADE,
    member_id       INTEGER NOT NULL REFERENCES members(member_id),
    timestamp       INTEGER NOT NULL,
    replay          INTEGER
);
CREATE INDEX interventions_plan ON interventions(maintenance_id, timestamp);
CREATE TABLE uses (
    use_id     INTEGER PRIMARY KEY,
    member_id  INTEGER NOT NULL REFERENCES members(member_id),
    machine_id INTEGER NOT NULL REFERENCES machines(machine_id) ON DELETE CASCADE,
    start_ts   INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,               -- heartbeat (inuse)
    end_ts     INTEGER,                        -- NULL while open
    replay     INTEGER                         -- 1 when the board sent it from its offline buffer
);
CREATE INDEX uses_machine_start ON uses(machine_id, start_ts);
CREATE INDEX uses_member_start ON uses(member_id, start_ts);
CREATE INDEX uses_open ON uses(machine_id) WHERE end_ts IS NULL;
CREATE TABLE unknown_cards (
    id         INTEGER PRIMARY KEY,
    card_uid   TEXT NOT NULL,
    machine_id INTEGER REFERENCES machines(machine_id) ON DELETE CASCADE,
    timestamp  INTEGER NOT NULL
);
CREATE INDEX unknown_cards_time ON unknown_cards(timestamp);
CREATE TABLE boards (
    machine_id INTEGER PRIMARY KEY REFERENCES machines(machine_id) ON DELETE CASCADE,
    ip_address TEXT NOT NULL DEFAULT '',
    fw_version TEXT NOT NULL DEFAULT '',
    serial     TEXT NOT NULL DEFAULT '',
    heap       INTEGER NOT NULL DEFAULT 0,
    last_seen  INTEGER NOT NULL
);
-- MQTT credentials. machine_id NULL = lab-wide credentials shared by every board.
CREATE TABLE board_credentials (
    username   TEXT PRIMARY KEY,
    machine_id INTEGER REFERENCES machines(machine_id) ON DELETE CASCADE,
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,                  -- SHA-256(salt || password)
    created_at INTEGER NOT NULL
);
-- Remote start/stop asked for by the CLI or another process; the daemon publishes them.
CREATE TABLE board_requests (
    id           INTEGER PRIMARY KEY,
    machine_id   INTEGER NOT NULL,
    request_type TEXT NOT NULL CHECK (request_type IN ('start', 'stop')),
    card_uid     TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    // 2: the staff panel.
    r#"
ALTER TABLE members ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN language TEXT;          -- 'en', 'it', NULL = browser's
-- Panel sessions: only SHA-256 of the cookie token is stored, so a copy of the database
-- does not hold live sessions.
CREATE TABLE web_sessions (
    token_hash BLOB PRIMARY KEY,
    member_id  INTEGER NOT NULL REFERENCES members(member_id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_member ON web_sessions(member_id);
-- History pages and dashboard counters scan uses by time across machines.
CREATE INDEX uses_start ON uses(start_ts);
"#,
    // 3: the building register (issue 6): who is in, phone sign-in links, and machine
    // types that need a second person in the building.
    r#"
CREATE TABLE presence (
    presence_id   INTEGER PRIMARY KEY,
    member_id     INTEGER NOT NULL REFERENCES members(member_id) ON DELETE CASCADE,
    signed_in_at  INTEGER NOT NULL,
    signed_out_at INTEGER,                     -- NULL while in the building
    in_source     TEXT NOT NULL,               -- reader:<name>, cli, panel, link
    out_source    TEXT,
    automatic     INTEGER NOT NULL DEFAULT 0   -- 1 = signed out at closing time
);
CREATE UNIQUE INDEX presence_open ON presence(member_id) WHERE signed_out_at IS NULL;
CREATE INDEX presence_time ON presence(signed_in_at);
-- Phone sign-in links: the token itself is shown once; only its SHA-256 is kept.
CREATE TABLE presence_links (
    token_hash BLOB PRIMARY KEY,
    member_id  INTEGER NOT NULL REFERENCES members(member_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX presence_links_member ON presence_links(member_id);
ALTER TABLE machine_types ADD COLUMN needs_second_person INTEGER NOT NULL DEFAULT 0;
"#,
    // 4: the interventions log pages by time (uses by start time: `uses_start`, in 2).
    r#"
CREATE INDEX interventions_time ON interventions(timestamp);
"#,
    // 5: the outbox (offline-first sync) and password-reset tokens.
    r#"
-- Every outgoing message is a row written in the same transaction as the change that
-- caused it; the sync worker delivers it when the network is there.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('email', 'calendar', 'webhook')),
    payload         TEXT NOT NULL,             -- JSON; bodies are cleared once sent
    dedupe_key      TEXT UNIQUE,               -- NULL = no de-duplication
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_state ON outbox(state, id);
-- Password-reset links: only SHA-256 of the token is stored; single use, short-lived.
CREATE TABLE password_resets (
    token_hash BLOB PRIMARY KEY,
    member_id  INTEGER NOT NULL REFERENCES members(member_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX password_resets_member ON password_resets(member_id);
"#,
    // 6: Google Calendar events of usage sessions (sync::calendar).
    r#"
-- One row per event: every change queued for it gets the next `queued_rev`; `sent_rev` is
-- the newest Google accepted, so a change delivered late (after retries) never overwrites
-- a newer one.
CREATE TABLE calendar_events (
    event_id   TEXT PRIMARY KEY,
    use_id     INTEGER NOT NULL,
    queued_rev INTEGER NOT NULL DEFAULT 0,
    sent_rev   INTEGER NOT NULL DEFAULT 0,
    etag       TEXT,
    sent_at    INTEGER
) WITHOUT ROWID;
"#,
    // 7: staff alerts (maintenance due, board offline, unknown card tried), each fired
    // once per occurrence: a row while the condition lasts, cleared when it ends.
    r#"
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,                 -- maintenance_due, board_offline, unknown_card
    subject_key TEXT NOT NULL,                 -- what it is about, e.g. the machine (and plan)
    fired_at    INTEGER NOT NULL,
    cleared_at  INTEGER                        -- NULL while the condition lasts
);
CREATE UNIQUE INDEX alerts_open ON alerts(kind, subject_key) WHERE cleared_at IS NULL;
"#,
    // 8: calendar events of several kinds (sync::calendar): machine uses, stays in the
    // building, reservations. A subject's event id is chosen once and found again by
    // (kind, subject_id), so events queued before this migration keep their ids.
    r#"
ALTER TABLE calendar_events RENAME COLUMN use_id TO subject_id;
ALTER TABLE calendar_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'use'
    CHECK (kind IN ('use', 'attendance', 'reservation'));
ALTER TABLE calendar_events ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0; -- last change queued
ALTER TABLE calendar_events ADD COLUMN gone INTEGER NOT NULL DEFAULT 0;       -- it was a deletion
UPDATE calendar_events SET changed_at = COALESCE(sent_at, 0);
CREATE INDEX calendar_events_subject ON calendar_events(kind, subject_id);
"#,
    // 9: outbox rows held back because their server is down, rate limiting or refusing
    // the settings (brought forward together when it answers again), and rows that are
    // useless after a time (a password-reset link valid 30 minutes).
    r#"
ALTER TABLE outbox ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN expires_at INTEGER;
"#,
    // 10: sub-second order where it matters (issue 12): a maintainer signs off and starts
    // the machine within the same second, and that use counts towards the next plan only
    // if it started after the sign-off. Times stay INTEGER seconds everywhere; these two
    // columns add milliseconds. Existing rows get their second * 1000: a use and a
    // sign-off in the same second then compare equal, and equal counts the use (`>=`),
    // which is the order a board produces (a machine in use cannot be signed off). The
    // triggers keep the columns filled (and following `start_ts`) for every writer that
    // does not know them: imports, the CLI, panel edits.
    r#"
ALTER TABLE uses ADD COLUMN start_ms INTEGER;
ALTER TABLE interventions ADD COLUMN timestamp_ms INTEGER;
UPDATE uses SET start_ms = start_ts * 1000;
UPDATE interventions SET timestamp_ms = timestamp * 1000;
CREATE TRIGGER uses_start_ms_insert AFTER INSERT ON uses WHEN NEW.start_ms IS NULL
BEGIN
    UPDATE uses SET start_ms = NEW.start_ts * 1000 WHERE use_id = NEW.use_id;
END;
CREATE TRIGGER uses_start_ms_update AFTER UPDATE OF start_ts ON uses
    WHEN NEW.start_ms IS NULL OR NEW.start_ms < NEW.start_ts * 1000 OR NEW.start_ms >= NEW.start_ts * 1000 + 1000
BEGIN
    UPDATE uses SET start_ms = NEW.start_ts * 1000 WHERE use_id = NEW.use_id;
END;
CREATE TRIGGER interventions_ms_insert AFTER INSERT ON interventions WHEN NEW.timestamp_ms IS NULL
BEGIN
    UPDATE interventions SET timestamp_ms = NEW.timestamp * 1000
    WHERE intervention_id = NEW.intervention_id;
END;
CREATE TRIGGER interventions_ms_update AFTER UPDATE OF timestamp ON interventions
    WHEN NEW.timestamp_ms IS NULL OR NEW.timestamp_ms < NEW.timestamp * 1000 OR NEW.timestamp_ms >= NEW.timestamp * 1000 + 1000
BEGIN
    UPDATE interventions SET timestamp_ms = NEW.timestamp * 1000
    WHERE intervention_id = NEW.intervention_id;
END;
"#,
    // 11: panel capabilities (issue 11). `backend_admin` stays "may log into the panel";
    // `panel_level` says what for: 1 viewer (read-only wall/desk), 2 staff (members, cards,
    // machines, uses, maintenance, the register), 3 administrator (settings, roles,
    // backups, other staff's passwords). Roles that could log in before keep panel
    // access: FabOMatic's reserved "admins" role and any role named like an
    // administrator become administrators, other panel roles become staff. The triggers
    // keep the two columns agreeing for writers that only know `backend_admin` (the
    // FabOMatic importer, the CLI, older tests).
    r#"
ALTER TABLE roles ADD COLUMN panel_level INTEGER NOT NULL DEFAULT 0
    CHECK (panel_level BETWEEN 0 AND 3);
UPDATE roles SET panel_level = CASE
    WHEN backend_admin = 0 THEN 0
    WHEN reserved = 1 OR lower(role_name) LIKE '%admin%' OR lower(role_name) LIKE '%amministr%' THEN 3
    ELSE 2 END;
CREATE TRIGGER roles_panel_level_new AFTER INSERT ON roles
WHEN NEW.backend_admin = 1 AND NEW.panel_level = 0 BEGIN
    UPDATE roles SET panel_level = CASE
        WHEN NEW.reserved = 1 OR lower(NEW.role_name) LIKE '%admin%' OR lower(NEW.role_name) LIKE '%amministr%' THEN 3
        ELSE 2 END
    WHERE role_id = NEW.role_id;
END;
CREATE TRIGGER roles_panel_on AFTER UPDATE OF backend_admin ON roles
WHEN NEW.backend_admin = 1 AND NEW.panel_level = 0 BEGIN
    UPDATE roles SET panel_level = CASE
        WHEN NEW.reserved = 1 OR lower(NEW.role_name) LIKE '%admin%' OR lower(NEW.role_name) LIKE '%amministr%' THEN 3
        ELSE 2 END
    WHERE role_id = NEW.role_id;
END;
CREATE TRIGGER roles_panel_off AFTER UPDATE OF backend_admin ON roles
WHEN NEW.backend_admin = 0 AND NEW.panel_level <> 0 BEGIN
    UPDATE roles SET panel_level = 0 WHERE role_id = NEW.role_id;
END;
CREATE TRIGGER roles_panel_level_set AFTER UPDATE OF panel_level ON roles
WHEN (NEW.panel_level > 0) <> (NEW.backend_admin = 1) BEGIN
    UPDATE roles SET backend_admin = (NEW.panel_level > 0) WHERE role_id = NEW.role_id;
END;
"#,
];
