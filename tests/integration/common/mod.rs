//! Test helpers: `TestDaemon` runs the real binary on a free port with a temp database;
//! `Board` is a real MQTT client (rumqttc) that asks like the firmware does; `fixture_f`
//! builds protocol.md §7.0's lab.

#![allow(dead_code)]

pub mod aiosmtpd;
pub mod browser;
pub mod chrome;
pub mod google;
pub mod mqtt_raw;
pub mod server;
pub mod smtp;
pub mod webhook;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest wait for anything; the firmware itself waits 2 s for a reply.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long "no reply" is watched for: the firmware's own wait (protocol.md §7: "—" = no
/// reply within 2 s). A reply later than that is still caught: `must`/`ask` fail on any
/// reply left over from before their question.
pub const SILENCE: Duration = Duration::from_secs(2);
/// Longest wait for a state the daemon reaches by itself (an outbox row sent, a count):
/// generous, since it only costs time when the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

pub const LAB_USER: &str = "user";
pub const LAB_PASSWORD: &str = "password";

/// The fabgate binary with none of the caller's environment that would change what it
/// does (config path, systemd's variables, log filter): every test launch goes through
/// here. Add `--config`, arguments and variables of the test's own.
pub fn fabgate_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fabgate"));
    for var in [
        "FABGATE_CONFIG",
        "STATE_DIRECTORY",
        "RUST_LOG",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ] {
        c.env_remove(var);
    }
    c
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A lab directory with a config file and a database the test can prepare.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub extra_config: String,
}

impl Lab {
    /// An empty lab (schema created, FabOMatic's seed roles) with lab-wide board
    /// credentials user/password.
    pub fn new() -> Lab {
        let lab = Self::bare();
        add_credential(&lab.db(), LAB_USER, LAB_PASSWORD, None);
        lab
    }

    /// An empty lab without board credentials; the config file is written, so the CLI can
    /// be run against it at once.
    pub fn bare() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
            extra_config: String::new(),
        };
        fabgate::store::Store::open(&lab.db_path(), fabgate::config::Synchronous::Normal).unwrap();
        lab.write_config("", "", "");
        lab
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("fabgate.db")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("fabgate.toml")
    }

    /// A connection to the lab's database (works while the daemon runs: WAL).
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.db_path()).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c
    }

    pub fn sql(&self, sql: &str) {
        self.db().execute_batch(sql).unwrap();
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Waits (up to `WAIT`) until the count `sql` is `want`; fails with the last count.
    #[track_caller]
    pub fn wait_count(&self, sql: &str, want: i64) {
        self.wait_count_until(sql, |n| n == want);
    }

    /// Waits (up to `WAIT`) until `done` holds of the count `sql`; returns that count.
    #[track_caller]
    pub fn wait_count_until(&self, sql: &str, done: impl Fn(i64) -> bool) -> i64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.count(sql);
            if done(got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{sql}: still {got}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until no outbox row is waiting or being tried (all sent or failed for good):
    /// from then on nothing more is delivered, so "nothing more arrives" needs no sleep.
    #[track_caller]
    pub fn wait_outbox_settled(&self) {
        self.wait_count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", 0);
    }

    /// `wait_outbox_settled` for the rows of one kind (`email`, `webhook`, `calendar`).
    #[track_caller]
    pub fn wait_kind_settled(&self, kind: &str) {
        self.wait_count(
            &format!("SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND kind = '{kind}'"),
            0,
        );
    }

    fn write_config(&self, broker: &str, protocol: &str, web: &str) {
        let text = format!(
            "[store]\ndata_dir = {dir:?}\ndatabase = \"fabgate.db\"\nflush_interval_s = 3600\nsynchronous = \"normal\"\n\n\
             [broker]\nlisten = \"127.0.0.1:0\"\n{broker}\n\n\
             [protocol]\nhousekeeping_interval_ms = 100\nstats_interval_s = 1\n{protocol}\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n{https}{web}\n\n\
             [log]\nlevel = \"debug\"\n{extra}",
            dir = self.dir.path().display().to_string(),
            extra = self.extra_config,
            https = if web.contains("https") { "" } else { "https = false\n" },
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn start(&self) -> TestDaemon {
        self.start_with("", "")
    }

    /// Starts the daemon with extra `[broker]` and `[protocol]` keys.
    pub fn start_with(&self, broker: &str, protocol: &str) -> TestDaemon {
        self.write_config(broker, protocol, "");
        TestDaemon::spawn(&self.config_path())
    }

    /// Starts the daemon with extra `[web]` keys (`https = false` is set unless overridden).
    pub fn start_web(&self, web: &str) -> TestDaemon {
        self.write_config("", "", web);
        TestDaemon::spawn(&self.config_path())
    }

    /// The CLI against this lab.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = fabgate_bin();
        c.arg("--config").arg(self.config_path()).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "fabgate {args:?} failed ({})\n[stdout]\n{stdout}\n[stderr]\n{stderr}",
            out.status
        );
        stdout
    }

    /// Runs a command that must fail with exit code 1; returns its stderr.
    #[track_caller]
    pub fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "fabgate {args:?} should fail with 1\n[stdout]\n{}\n[stderr]\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.starts_with("fabgate: "), "{stderr}");
        stderr
    }

    /// Runs a `--json` command and parses its output.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{text}"))
    }
}

pub fn add_credential(
    conn: &rusqlite::Connection,
    user: &str,
    password: &str,
    machine: Option<i64>,
) {
    let salt = b"0123456789abcdef".to_vec();
    let hash = fabgate::broker::hash_password(&salt, password);
    conn.execute(
        "INSERT OR REPLACE INTO board_credentials (username, machine_id, salt, hash, created_at) VALUES (?1, ?2, ?3, ?4, 0)",
        rusqlite::params![user, machine, salt, hash],
    )
    .unwrap();
}

/// The `[sync]` section with a fast retry schedule (the outbox tests' clock), as text for
/// `Lab::extra_config`. Keys are changed with `set` and removed with `unset`, which fail
/// loudly if the key is not there (no text patching that silently does nothing).
#[derive(Debug, Clone)]
pub struct SyncSection {
    keys: Vec<(String, String)>,
}

impl SyncSection {
    /// Retries after 1 s, then every 2 s; the outbox polled every second.
    pub fn fast() -> SyncSection {
        SyncSection {
            keys: [
                ("backoff_base_s", "1"),
                ("backoff_cap_s", "2"),
                ("poll_interval_s", "1"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    /// Sets `key` to `value` (a TOML value: `"3"`, `"\"text\""`, `"true"`).
    pub fn set(mut self, key: &str, value: &str) -> SyncSection {
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => self.keys.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// Sets a string key (quoted for TOML).
    pub fn set_str(self, key: &str, value: &str) -> SyncSection {
        self.set(key, &format!("{value:?}"))
    }

    /// Removes a key of the fast defaults.
    #[track_caller]
    pub fn unset(mut self, key: &str) -> SyncSection {
        let before = self.keys.len();
        self.keys.retain(|(k, _)| k != key);
        assert!(self.keys.len() < before, "no [sync] key {key} to remove");
        self
    }

    pub fn text(&self) -> String {
        let mut s = String::from("\n[sync]\n");
        for (k, v) in &self.keys {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s
    }
}

/// Logs in as the first administrator with the one-time password this start printed and
/// changes it to `ADMIN_PASSWORD`; the browser is on the dashboard.
#[track_caller]
pub fn admin_session(d: &TestDaemon) -> browser::Browser {
    admin_session_with(d, ADMIN_PASSWORD)
}

/// `admin_session` with a new password of the test's choosing.
#[track_caller]
pub fn admin_session_with(d: &TestDaemon, new_password: &str) -> browser::Browser {
    let mut b = browser::Browser::new(d.panel);
    let first = d
        .admin_password
        .clone()
        .expect("first start prints a one-time password");
    // Every page leads to the password form until the one-time password is changed.
    let p = b.login(ADMIN_EMAIL, &first);
    assert_eq!(p.location.as_deref(), Some("/password"), "{}", p.body);
    let p = b.get("/password");
    assert!(p.body.contains("Choose a new password"), "{}", p.body);
    let p = b.post(
        "/password",
        &[
            ("current", &first),
            ("new", new_password),
            ("repeat", new_password),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/"), "{}", p.body);
    let home = b.get("/");
    assert_eq!(home.status, 200);
    b
}

pub const ADMIN_EMAIL: &str = "admin@fabgate.local";
/// The password `admin_session` gives the first administrator.
pub const ADMIN_PASSWORD: &str = "correct horse 42";

/// The real daemon binary, stopped (SIGKILL) on drop. Its log is forwarded with a prefix.
pub struct TestDaemon {
    pub child: Child,
    pub mqtt: SocketAddr,
    pub panel: SocketAddr,
    /// The first administrator's one-time password, when this start created one.
    pub admin_password: Option<String>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl TestDaemon {
    pub fn spawn(config: &Path) -> TestDaemon {
        Self::spawn_env(config, &[])
    }

    /// Like `spawn`, with extra environment variables (e.g. a fake `NOTIFY_SOCKET`).
    pub fn spawn_env(config: &Path, env: &[(&str, &str)]) -> TestDaemon {
        let started = Instant::now();
        let mut child = fabgate_bin()
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fabgate binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (pw_tx, pw_rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[fabgate] {line}");
                // Recorded before anyone is told the daemon is ready.
                log2.lock().unwrap().push(line.clone());
                if let Some(rest) = line.split("one-time password ").nth(1) {
                    let word = rest.split_whitespace().next().unwrap_or("");
                    // Issue 11: the log names the 0600 file that holds it.
                    let password = match rest.strip_prefix("in ") {
                        Some(path) => std::fs::read_to_string(path.split(" (").next().unwrap())
                            .map(|p| p.trim().to_string())
                            .unwrap_or_default(),
                        None => word.to_string(),
                    };
                    let _ = pw_tx.send(password);
                }
                if let Some(rest) = line.split("ready: MQTT on ").nth(1) {
                    let mqtt = rest.split(',').next().unwrap().to_string();
                    let panel = rest
                        .split("panel on ")
                        .nth(1)
                        .and_then(|p| p.split("://").nth(1))
                        .and_then(|p| p.split(',').next())
                        .unwrap_or("")
                        .to_string();
                    let _ = ready_tx.send((mqtt, panel));
                }
            }
        });
        let (mqtt, panel) = ready_rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "daemon did not report ready; log: {:?}",
                log.lock().unwrap()
            )
        });
        TestDaemon {
            child,
            mqtt: mqtt.parse().unwrap(),
            panel: panel.parse().expect("panel address in the ready line"),
            admin_password: pw_rx.try_recv().ok(),
            log,
            started,
        }
    }

    /// A board of machine `id` logged in with the lab-wide credentials.
    pub fn board(&self, id: &str) -> Board {
        Board::connect(
            self.mqtt,
            id,
            Some((LAB_USER, LAB_PASSWORD)),
            &format!("BOARD{id}"),
        )
        .expect("board connects")
    }

    /// Stops with SIGTERM (the daemon flushes its heartbeat state) and waits.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "daemon exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not stop on SIGTERM");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if self.log_contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a board's MQTT connection saw.
#[derive(Debug, Clone)]
pub enum Seen {
    Message { topic: String, payload: Vec<u8> },
    ConnAck,
    SubAck,
    Error(String),
}

/// A Fab-O-Matic board: publishes on `machine/<id>`, listens on `/reply` and `/request`.
pub struct Board {
    pub id: String,
    pub client: Client,
    pub rx: Receiver<Seen>,
}

impl Board {
    /// Connects and subscribes; Err with the connection error if the broker refuses.
    pub fn connect(
        addr: SocketAddr,
        id: &str,
        login: Option<(&str, &str)>,
        client_id: &str,
    ) -> Result<Board, String> {
        let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(10));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        if let Some((u, p)) = login {
            opts.set_credentials(u, p);
        }
        let (client, mut connection) = Client::new(opts, 64);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                let seen = match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                    },
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::ConnAck,
                    Ok(Event::Incoming(Packet::SubAck(_))) => Seen::SubAck,
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Seen::Error(e.to_string()));
                        return;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        match rx.recv_timeout(TIMEOUT) {
            Ok(Seen::ConnAck) => {}
            Ok(Seen::Error(e)) => return Err(e),
            other => return Err(format!("no CONNACK: {other:?}")),
        }
        let board = Board {
            id: id.to_string(),
            client,
            rx,
        };
        board
            .client
            .subscribe(format!("machine/{id}/reply"), QoS::AtMostOnce)
            .unwrap();
        board
            .client
            .subscribe(format!("machine/{id}/request"), QoS::AtMostOnce)
            .unwrap();
        // Replies to an earlier connection of this board may arrive first: skip them.
        let mut acks = 0;
        while acks < 2 {
            match board.rx.recv_timeout(TIMEOUT) {
                Ok(Seen::SubAck) => acks += 1,
                Ok(Seen::Message { .. }) => {}
                other => return Err(format!("no SUBACK: {other:?}")),
            }
        }
        Ok(board)
    }

    pub fn publish(&self, payload: &str) {
        self.publish_bytes(payload.as_bytes());
    }

    pub fn publish_bytes(&self, payload: &[u8]) {
        self.client
            .publish(
                format!("machine/{}", self.id),
                QoS::AtMostOnce,
                false,
                payload.to_vec(),
            )
            .unwrap();
    }

    /// Publishes and returns the reply (parsed JSON) or None after 2 s, like the firmware.
    /// None also when the connection is gone (e.g. the daemon was killed on purpose).
    /// Fails if a reply to an earlier message is still waiting (a late or stray reply).
    #[track_caller]
    pub fn ask(&self, payload: &str) -> Option<Value> {
        self.ask_within(payload, SILENCE)
    }

    /// `ask` with a wait of its own.
    #[track_caller]
    pub fn ask_within(&self, payload: &str, wait: Duration) -> Option<Value> {
        self.no_leftover(payload);
        let topic = format!("machine/{}", self.id);
        self.client
            .publish(topic, QoS::AtMostOnce, false, payload.as_bytes().to_vec())
            .ok()?;
        self.next_reply(wait)
    }

    /// Like `ask`, but the reply must come. Waits longer than the firmware's 2 s: a busy
    /// 2-core CI machine running dozens of daemons must not turn into false failures
    /// (reply latency is measured by the load generator, not here).
    #[track_caller]
    pub fn must(&self, payload: &str) -> Value {
        self.no_leftover(payload);
        self.publish(payload);
        self.next_reply(TIMEOUT)
            .unwrap_or_else(|| panic!("no reply to {payload}"))
    }

    /// Fails on a reply already received before `payload` was asked: one the test did not
    /// expect (a second answer, a stray or late reply). Other topics are skipped.
    #[track_caller]
    fn no_leftover(&self, payload: &str) {
        let reply = format!("machine/{}/reply", self.id);
        while let Ok(seen) = self.rx.try_recv() {
            if let Seen::Message { topic, payload: p } = seen {
                assert!(
                    topic != reply,
                    "before {payload}: a reply nobody asked for: {}",
                    String::from_utf8_lossy(&p)
                );
            }
        }
    }

    pub fn next_reply(&self, wait: Duration) -> Option<Value> {
        self.next_on(&format!("machine/{}/reply", self.id), wait)
            .map(|p| serde_json::from_slice(&p).expect("reply is JSON"))
    }

    pub fn next_on(&self, topic: &str, wait: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Message { topic: t, payload }) if t == topic => return Some(payload),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Asserts nothing arrives on the reply topic for the firmware's 2 s.
    #[track_caller]
    pub fn expect_silence(&self) {
        if let Some(v) = self.next_reply(SILENCE) {
            panic!("expected no reply, got {v}");
        }
    }

    /// Subscribes to every topic (`#`): replies to other topics than this board's show.
    pub fn watch_all(&self) {
        self.client.subscribe("#", QoS::AtMostOnce).unwrap();
        loop {
            match self.rx.recv_timeout(TIMEOUT) {
                Ok(Seen::SubAck) => return,
                Ok(_) => continue,
                other => panic!("no SUBACK for #: {other:?}"),
            }
        }
    }

    /// Everything that arrives within `wait` (after `watch_all`: on any topic), as
    /// (topic, payload) pairs.
    pub fn collect(&self, wait: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Message { topic, payload }) => {
                    out.push((topic, String::from_utf8_lossy(&payload).into_owned()))
                }
                Ok(_) => continue,
                Err(_) => return out,
            }
        }
    }

    pub fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Is the connection still up (no error seen)?
    pub fn connection_error(&self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Error(e)) => return Some(e),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// protocol.md §7.0 fixture F, relative to `now`.
pub fn fixture_f(lab: &Lab) {
    let t = now();
    lab.sql(&format!(
        "DELETE FROM members; DELETE FROM roles; DELETE FROM machine_types;
         INSERT INTO roles (role_id, role_name, authorize_all, maintenance) VALUES
           (1, 'admins', 1, 1), (2, 'staff', 0, 1), (3, 'users', 0, 0);
         INSERT INTO machine_types (type_id, type_name, timeout_min, grace_min, access_open) VALUES
           (1, 'LASER', 120, 5, 0), (2, 'DRILL', 60, 0, 1), (3, 'PRINTER', 1440, NULL, 0);
         INSERT INTO machines (machine_id, machine_name, type_id, blocked, machine_hours) VALUES
           (1, 'LASER 1', 1, 0, 0), (2, 'DRILL 1', 2, 0, 0), (3, 'PRINTER 1', 3, 1, 0), (4, 'CNC 1', 1, 0, 2.0);
         INSERT INTO maintenances (maintenance_id, machine_id, hours_between, description, lcd_message)
           VALUES (1, 4, 1.0, 'Clean the bed', 'Pulire piano');
         INSERT INTO members (member_id, name, surname, role_id, card_uid, disabled, deleted, created_at) VALUES
           (1, 'Anna', 'A', 1, 'aabbccd1', 0, 0, 0), (2, 'Bruno', 'B', 2, 'aabbccd2', 0, 0, 0),
           (3, 'Carla', 'C', 3, 'aabbccd3', 0, 0, 0), (4, 'Dario', 'D', 3, 'aabbccd4', 0, 0, 0),
           (5, 'Elena', 'E', 3, 'aabbccd5', 1, 0, 0), (6, 'Fabio', 'F', 3, 'aabbccd6', 0, 1, 0);
         INSERT INTO authorizations (member_id, machine_id) VALUES (3,1), (3,3), (3,4), (5,1), (6,1), (2,4);
         INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts, replay)
           VALUES (3, 4, {s}, {e}, {e}, 0);",
        s = t - 2800 - 7200,
        e = t - 2800,
    ));
}

/// A lab with fixture F, started.
pub fn start_f() -> (Lab, TestDaemon) {
    let lab = Lab::new();
    fixture_f(&lab);
    let d = lab.start();
    (lab, d)
}

/// JSON equality with a readable failure.
#[track_caller]
pub fn assert_json(got: &Value, want: &str) {
    let want: Value = serde_json::from_str(want).expect("expected JSON parses");
    assert_eq!(got, &want, "\n got: {got}\nwant: {want}");
}
