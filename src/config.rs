//! Configuration: the TOML file as typed (`File`) becomes the validated `Config` once, at
//! start, and is passed down by reference. Every key has an embedded default, so `fabgate`
//! with no file starts a working lab. `config/fabgate.toml` documents every key; a test
//! checks that it parses and matches these defaults.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration could not be used. Startup errors: they stop the daemon with the
/// file, the key and a hint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}\nhint: `fabgate config default` prints every key with its default")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// The whole configuration. Field docs are the reference for `config/fabgate.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub store: StoreConfig,
    pub broker: BrokerConfig,
    pub protocol: ProtocolConfig,
    pub web: WebConfig,
    pub log: LogConfig,
    pub presence: PresenceConfig,
    /// Card readers wired to the Pi (`[[readers]]` entries).
    pub readers: Vec<ReaderConfig>,
    pub backup: BackupConfig,
    pub retention: RetentionConfig,
    pub metrics: MetricsConfig,
    pub sync: SyncConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory for the database and generated files; relative paths are taken from the
    /// working directory (systemd's `StateDirectory` is passed as `$STATE_DIRECTORY`).
    pub data_dir: PathBuf,
    /// SQLite file name inside `data_dir` (or an absolute path).
    pub database: PathBuf,
    /// `full` makes every acknowledged write survive a power cut (one fsync per batch of
    /// board messages); `normal` survives a crash of the daemon but may lose the last
    /// transactions on power loss, with fewer writes to the SD card.
    pub synchronous: Synchronous,
    /// Seconds between flushes of in-memory heartbeat state (machine and board last seen,
    /// open-use heartbeats) to the database. Keeps the SD card from being written every
    /// few seconds.
    pub flush_interval_s: u64,
    /// When the clock counts as synchronised; until then time-based jobs (backup, purge,
    /// closing time, summaries, alerts) wait and the dashboard says so. `auto` = the
    /// kernel's word (`adjtimex`) on a Raspberry Pi (no battery clock), always elsewhere;
    /// `kernel` = the kernel's word; `none` = never wait; `file:PATH` = once PATH exists
    /// (e.g. systemd-timesyncd's `/run/systemd/timesync/synchronized`).
    pub clock_sync: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Address the embedded MQTT 3.1.1 broker listens on. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Accept boards without credentials. Off by default: add board credentials with
    /// `fabgate board add`.
    pub allow_anonymous: bool,
    /// Most simultaneous MQTT connections (boards, tools).
    pub max_connections: usize,
    /// Largest MQTT packet accepted; a bigger one closes that client's connection.
    /// Boards never send more than 300 bytes.
    pub max_payload_size: usize,
    /// Size of one in-memory log segment per subscription filter (bytes, >= 128). Each
    /// board subscribes two filters, so this bounds the broker's memory per board.
    pub segment_size: usize,
    /// Number of log segments kept per subscription filter besides the active one (>= 1).
    pub segment_count: usize,
    /// Segment size for the daemon's own `machine/+` filter, which takes every board
    /// message: large enough that a burst never outruns the daemon.
    pub inbox_segment_size: usize,
    /// Seconds a new connection has to send its CONNECT packet.
    pub connection_timeout_s: u16,
    /// Connections kept for per-board credentials: lab-wide and anonymous logins are
    /// refused (CONNACK 3) once `max_connections` minus this many are connected.
    pub reserved_for_board_credentials: usize,
    /// Most connections from one IP address that have not logged in yet; more are
    /// closed at once.
    pub max_pending_per_ip: usize,
    /// Most connections in total that have not logged in yet.
    pub max_pending: usize,
    /// Most subscriptions per client (a board needs two).
    pub max_subscriptions_per_client: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolConfig {
    /// First topic level of board messages: boards publish on `<topic>/<machine id>`.
    pub topic: String,
    /// Suffix of the reply topic (`machine/1/reply`).
    pub reply_subtopic: String,
    /// Suffix of the request topic for remote start/stop (`machine/1/request`).
    pub request_subtopic: String,
    /// Prefix of the statistics topic: stats go to `<stats_topic>/<stats_id>`.
    pub stats_topic: String,
    /// Name used in the statistics topic.
    pub stats_id: String,
    /// Seconds between statistics messages; 0 disables them.
    pub stats_interval_s: u64,
    /// A machine is online while its board spoke within this many seconds.
    pub online_window_s: i64,
    /// An open use with no heartbeat for this many seconds is closed.
    pub orphan_after_s: i64,
    /// Seconds between checks for orphan uses and remote requests.
    pub housekeeping_interval_ms: u64,
    /// Most cards in a `synccache` reply (FabOMatic's cap is 200).
    pub synccache_max_cards: usize,
    /// Largest reply payload in bytes. The firmware reads whole packets into a 300-byte
    /// buffer and drops the connection on anything larger, so replies are cut to fit.
    pub max_reply_bytes: usize,
    /// A replayed `stopuse` with no open use is a duplicate when a closed use of the same
    /// member and machine with the same duration ended within this many seconds.
    pub duplicate_window_s: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Address of the staff panel. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Serve the panel over HTTPS. Without `cert_file`/`key_file` a self-signed
    /// certificate is made at first start and kept in `<data_dir>/tls/`.
    pub https: bool,
    /// PEM certificate chain for HTTPS (e.g. from the lab's own CA); optional.
    pub cert_file: Option<PathBuf>,
    /// PEM private key matching `cert_file`; optional.
    pub key_file: Option<PathBuf>,
    /// Threads answering panel requests (the Pi Zero has one core: keep it small).
    pub workers: usize,
    /// Most simultaneous panel connections; more wait in the kernel's queue.
    pub max_connections: usize,
    /// Largest request body accepted (bytes); forms are small.
    pub max_body_bytes: usize,
    /// A session ends after this many minutes without a request.
    pub session_idle_min: i64,
    /// Most browsers receiving live dashboard updates at once.
    pub max_live_clients: usize,
    /// A session ends this many days after the login, however active (stolen cookies).
    pub session_max_days: i64,
    /// Largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Seconds a client has to send a whole request (head and body) once it starts.
    pub request_deadline_s: u64,
    /// Most connections open at once from one address (a browser needs about 6).
    pub max_connections_per_ip: usize,
    /// Seconds an answer may wait for a client that does not read before the
    /// connection is closed.
    pub send_timeout_s: u64,
    /// Seconds a connection may stay open with no request under way.
    pub keep_alive_s: u64,
    /// Email address of the first administrator made at first start; "" = a
    /// placeholder, asked for at the first login.
    pub first_admin_email: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// error, warn, info, debug or trace; `RUST_LOG` overrides it.
    pub level: String,
}

/// The building register (who is in).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Local time ("HH:MM" or "HH:MM:SS") at which members still signed in are reminded
    /// to sign out; "" = no reminder.
    pub reminder_at: String,
    /// Local time at which everyone still signed in is signed out (marked automatic);
    /// "" = never.
    pub closing_at: String,
    /// Presence records older than this many days are deleted by the purge.
    pub retention_days: i64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            reminder_at: "22:30".into(),
            closing_at: "23:59".into(),
            retention_days: 365,
        }
    }
}

impl PresenceConfig {
    /// `reminder_at` as seconds after local midnight (validated at load).
    pub fn reminder_s(&self) -> Option<i64> {
        daily_time(&self.reminder_at).flatten()
    }

    pub fn closing_s(&self) -> Option<i64> {
        daily_time(&self.closing_at).flatten()
    }
}

/// "HH:MM" or "HH:MM:SS" → seconds after midnight; "" → Some(None); bad → None.
pub fn daily_time(s: &str) -> Option<Option<i64>> {
    let s = s.trim();
    if s.is_empty() {
        return Some(None);
    }
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let n: Vec<i64> = parts
        .iter()
        .map(|p| {
            p.parse::<i64>()
                .ok()
                .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Option<_>>()?;
    let (h, m, sec) = (n[0], n[1], n.get(2).copied().unwrap_or(0));
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(Some(h * 3600 + m * 60 + sec))
}

/// What kind of reader a `[[readers]]` entry is.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReaderKind {
    /// An MFRC522 (RC522) module on the Pi's SPI bus.
    Mfrc522,
    /// A simulated MFRC522 (register level) whose card is the hex UID in `path`.
    Mfrc522Sim,
    /// A USB keyboard-wedge reader (`device`, a /dev/input event device).
    Wedge,
    /// Simulated: one UID per line appended to `path` (a file or FIFO).
    Sim,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReaderRole {
    /// The building register: tap to sign in, tap again to sign out.
    Entrance,
    /// Acts as a Fab-O-Matic board for machine `machine`.
    Machine,
}

/// How a keyboard wedge or a simulated reader writes UIDs (see `readers::uid_from_text`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UidFormat {
    #[default]
    Auto,
    Hex,
    Decimal,
}

/// One `[[readers]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Unique name, used in logs and `fabgate reader tap --reader NAME`.
    pub name: String,
    pub kind: ReaderKind,
    pub role: ReaderRole,
    /// Machine id, for `role = "machine"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<i64>,
    /// Milliseconds between polls.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// The same card again within this many milliseconds is the same tap.
    #[serde(default = "default_repeat_ms")]
    pub repeat_ms: u64,
    /// MFRC522: SPI bus and chip select (`/dev/spidev<bus>.<cs>`), clock.
    #[serde(default)]
    pub spi_bus: u8,
    #[serde(default)]
    pub spi_cs: u8,
    #[serde(default = "default_spi_hz")]
    pub spi_hz: u32,
    /// GPIO (BCM numbers) of a buzzer, an LED, a relay (machine readers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buzzer_pin: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub led_pin: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_pin: Option<u8>,
    /// The relay closes when its pin is low.
    #[serde(default)]
    pub relay_active_low: bool,
    /// Keyboard wedge: the event device, e.g. /dev/input/by-id/usb-…-event-kbd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<PathBuf>,
    /// Keyboard wedge and simulated reader: hex, decimal, or auto.
    #[serde(default)]
    pub uid_format: UidFormat,
    /// Simulated readers: the file (or FIFO) they read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Simulated relay: a file that holds "on" or "off".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_file: Option<PathBuf>,
}

fn default_poll_ms() -> u64 {
    100
}
fn default_repeat_ms() -> u64 {
    1500
}
fn default_spi_hz() -> u32 {
    1_000_000
}

impl ReaderConfig {
    /// An entrance reader with every default (tests, docs).
    pub fn example(name: &str, kind: ReaderKind) -> ReaderConfig {
        ReaderConfig {
            name: name.into(),
            kind,
            role: ReaderRole::Entrance,
            machine: None,
            poll_ms: default_poll_ms(),
            repeat_ms: default_repeat_ms(),
            spi_bus: 0,
            spi_cs: 0,
            spi_hz: default_spi_hz(),
            buzzer_pin: None,
            led_pin: None,
            relay_pin: None,
            relay_active_low: false,
            device: None,
            uid_format: UidFormat::Auto,
            path: None,
            relay_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Daily backups made by the daemon (SQLite online backup, checked after writing).
    pub enabled: bool,
    /// Directory of the daily backups; empty = `backups` inside `store.data_dir`, a
    /// relative path is taken from `store.data_dir`. Best on another medium (a USB stick).
    pub dir: PathBuf,
    /// How many daily backups are kept; older ones are deleted.
    pub keep: usize,
    /// Hour of the day (UTC for now) after which the day's backup is made. A Pi that was
    /// off at that hour makes it when it starts.
    pub hour: u8,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Apply the rules below once a day (and with `fabgate purge`).
    pub enabled: bool,
    /// Uses older than this many days are re-assigned to the "Anonymous" member.
    pub uses_days: i64,
    /// Maintenance interventions older than this many days are re-assigned to "Anonymous".
    pub interventions_days: i64,
    /// Unknown-card records older than this many days are deleted.
    pub unknown_cards_days: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus `/metrics` endpoint, e.g. "127.0.0.1:9883"; empty = off.
    pub listen: String,
}

/// A day of the week by its English name, Monday = 1 .. Sunday = 7.
pub fn weekday(name: &str) -> Option<i8> {
    let days = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let n = name.trim().to_ascii_lowercase();
    days.iter().position(|d| *d == n).map(|i| i as i8 + 1)
}

/// Longest `sync.backoff_cap_s`: 7 days.
const MAX_BACKOFF_CAP_S: u64 = 7 * 86_400;
/// Longest `sync.alert_board_offline_min`: a week.
const MAX_BOARD_OFFLINE_MIN: u64 = 7 * 24 * 60;

/// Outgoing messages (the outbox) and the SMTP defaults. The panel's email settings
/// (Settings → Outgoing email) win over the `smtp_*` keys here.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Seconds before the first retry of a failed delivery (at least 1); doubled at each
    /// further attempt, up to `backoff_cap_s`, with ±20% jitter.
    pub backoff_base_s: u64,
    /// Longest wait between two attempts, in seconds: from `backoff_base_s` to 604800
    /// (7 days).
    pub backoff_cap_s: u64,
    /// Seconds between looks at the outbox when nothing wakes the worker.
    pub poll_interval_s: u64,
    /// Seconds an SMTP conversation may take before it counts as a failed attempt.
    pub smtp_timeout_s: u64,
    /// The panel's address in links sent by email (password reset), e.g.
    /// "https://fablab.example.org:8443"; "" = https://<this host's name>:<web port>.
    pub panel_url: String,
    /// SMTP server; "" = email is queued but not sent until one is set.
    pub smtp_host: String,
    /// SMTP port; 0 = 587 for starttls, 465 for tls, 25 for none.
    pub smtp_port: u16,
    /// "starttls", "tls" (implicit TLS) or "none" (a local relay only).
    pub smtp_tls: String,
    /// PEM file with extra CA certificate(s) trusted for the SMTP server besides the
    /// public web PKI roots (a lab's own relay); "" = the public roots only.
    pub smtp_ca_file: String,
    pub smtp_user: String,
    pub smtp_password: String,
    /// Sender address of the lab's email.
    pub smtp_from: String,
    /// Google service-account key (JSON with `client_email`, `private_key`, `token_uri`);
    /// "" = no Google Calendar.
    pub google_key_file: String,
    /// Calendar (shared with the service account) that gets every machine usage session;
    /// "" = none.
    pub lab_calendar_id: String,
    /// Calendar that gets every stay in the building (sign-in to sign-out); "" = none.
    pub attendance_calendar_id: String,
    /// Calendar that gets machine reservations; "" = none.
    pub reservations_calendar_id: String,
    /// Google Calendar API base (tests point it at a fake server).
    pub google_api_base: String,
    /// Token endpoint overriding the key file's `token_uri`; "" = the key file's.
    pub google_token_uri: String,
    /// Seconds one request to Google may take (at least 1).
    pub google_timeout_s: u64,
    /// Member names in calendar events: "full", "first" (first name only) or "none".
    pub calendar_member_names: String,
    /// Seconds a webhook POST may take before it counts as a failed attempt (at least 1).
    pub webhook_timeout_s: u64,
    /// Staff alerts (maintenance due, board offline, unknown card tried) by email and
    /// webhook; false = none.
    pub alerts: bool,
    /// Minutes a board may stay silent before staff get an "offline" alert (1 to 10080,
    /// a week; counted from the daemon's start at the earliest).
    pub alert_board_offline_min: u64,
    /// Unknown-card attempts at one machine within an hour that raise an alert (at least
    /// 2).
    pub alert_unknown_card_tries: u32,
    /// Day of the week the weekly summary is sent ("monday".."sunday"; "" = never).
    pub weekly_summary_day: String,
    /// Local hour (0-23, the panel's time zone) from which the weekly summary is sent.
    pub weekly_summary_hour: u8,
    /// Chat webhooks (Slack-compatible incoming webhooks), `[[sync.webhooks]]` entries.
    pub webhooks: Vec<WebhookConfig>,
}

/// Events a webhook can be told about.
pub const WEBHOOK_EVENTS: [&str; 5] = [
    "machine_started",
    "machine_stopped",
    "maintenance_due",
    "alert",
    "presence",
];

/// Template names: the events, with presence split into signing in and out.
pub const WEBHOOK_TEMPLATES: [&str; 6] = [
    "machine_started",
    "machine_stopped",
    "maintenance_due",
    "alert",
    "signed_in",
    "signed_out",
];

/// One Slack-compatible incoming webhook: a POST of `{"text": "..."}` per event.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// http(s) URL of the incoming webhook (a secret: never logged).
    pub url: String,
    /// Events posted to this URL; default all of `WEBHOOK_EVENTS`.
    #[serde(default = "all_webhook_events")]
    pub events: Vec<String>,
    /// Message per template name (`WEBHOOK_TEMPLATES`) with `{machine}`, `{member}`,
    /// `{duration}` and `{text}` placeholders; missing ones use the built-in text.
    #[serde(default)]
    pub templates: std::collections::BTreeMap<String, String>,
}

fn all_webhook_events() -> Vec<String> {
    WEBHOOK_EVENTS.iter().map(|s| s.to_string()).collect()
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is the webhook's secret.
        f.debug_struct("WebhookConfig")
            .field("url", &"<hidden>")
            .field("events", &self.events)
            .field("templates", &self.templates)
            .finish()
    }
}

impl std::fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConfig")
            .field("backoff_base_s", &self.backoff_base_s)
            .field("backoff_cap_s", &self.backoff_cap_s)
            .field("poll_interval_s", &self.poll_interval_s)
            .field("smtp_timeout_s", &self.smtp_timeout_s)
            .field("panel_url", &self.panel_url)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_tls", &self.smtp_tls)
            .field("smtp_ca_file", &self.smtp_ca_file)
            .field("smtp_user", &self.smtp_user)
            .field("smtp_password", &"<hidden>")
            .field("smtp_from", &self.smtp_from)
            .field("google_key_file", &self.google_key_file)
            .field("lab_calendar_id", &self.lab_calendar_id)
            .field("attendance_calendar_id", &self.attendance_calendar_id)
            .field("reservations_calendar_id", &self.reservations_calendar_id)
            .field("google_api_base", &self.google_api_base)
            .field("google_token_uri", &self.google_token_uri)
            .field("google_timeout_s", &self.google_timeout_s)
            .field("calendar_member_names", &self.calendar_member_names)
            .field("webhook_timeout_s", &self.webhook_timeout_s)
            .field("alerts", &self.alerts)
            .field("alert_board_offline_min", &self.alert_board_offline_min)
            .field("alert_unknown_card_tries", &self.alert_unknown_card_tries)
            .field("weekly_summary_day", &self.weekly_summary_day)
            .field("weekly_summary_hour", &self.weekly_summary_hour)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            backoff_base_s: 30,
            backoff_cap_s: 3600,
            poll_interval_s: 5,
            smtp_timeout_s: 30,
            panel_url: String::new(),
            smtp_host: String::new(),
            smtp_port: 0,
            smtp_tls: "starttls".into(),
            smtp_ca_file: String::new(),
            smtp_user: String::new(),
            smtp_password: String::new(),
            smtp_from: String::new(),
            google_key_file: String::new(),
            lab_calendar_id: String::new(),
            attendance_calendar_id: String::new(),
            reservations_calendar_id: String::new(),
            google_api_base: "https://www.googleapis.com/calendar/v3".into(),
            google_token_uri: String::new(),
            google_timeout_s: 30,
            calendar_member_names: "first".into(),
            webhook_timeout_s: 10,
            alerts: true,
            alert_board_offline_min: 30,
            alert_unknown_card_tries: 3,
            weekly_summary_day: "monday".into(),
            weekly_summary_hour: 8,
            webhooks: Vec::new(),
        }
    }
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            enabled: true,
            dir: PathBuf::new(),
            keep: 7,
            hour: 3,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            uses_days: 365,
            interventions_days: 365,
            unknown_cards_days: 30,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("data"),
            database: PathBuf::from("fabgate.db"),
            synchronous: Synchronous::Full,
            flush_interval_s: 120,
            clock_sync: "auto".into(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: "0.0.0.0:1883".parse().expect("valid literal"),
            allow_anonymous: false,
            max_connections: 512,
            max_payload_size: 4096,
            segment_size: 256,
            segment_count: 1,
            inbox_segment_size: 64 * 1024,
            connection_timeout_s: 3,
            reserved_for_board_credentials: 64,
            max_pending_per_ip: 8,
            max_pending: 128,
            max_subscriptions_per_client: 4,
        }
    }
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            topic: "machine".into(),
            reply_subtopic: "/reply".into(),
            request_subtopic: "/request".into(),
            stats_topic: "stats".into(),
            stats_id: "fabgate".into(),
            stats_interval_s: 5,
            online_window_s: 90,
            orphan_after_s: 3600,
            housekeeping_interval_ms: 1000,
            synccache_max_cards: 200,
            max_reply_bytes: 256,
            duplicate_window_s: 86_400,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "0.0.0.0:8443".parse().expect("valid literal"),
            https: true,
            cert_file: None,
            key_file: None,
            workers: 2,
            max_connections: 64,
            max_body_bytes: 64 * 1024,
            session_idle_min: 12 * 60,
            max_live_clients: 8,
            session_max_days: 7,
            max_header_bytes: 8 * 1024,
            request_deadline_s: 10,
            max_connections_per_ip: 16,
            send_timeout_s: 30,
            keep_alive_s: 60,
            first_admin_email: String::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads and validates a TOML file; keys it leaves out keep their defaults.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text; `path` is only used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, Error> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.normalise();
        config.validate(path)?;
        Ok(config)
    }

    /// The embedded defaults, for a start without any file.
    pub fn embedded() -> Config {
        let mut config = Config::default();
        config.normalise();
        config
    }

    /// The default configuration as commented TOML is `config/fabgate.toml`, compiled in.
    pub fn default_toml() -> &'static str {
        include_str!("../config/fabgate.toml")
    }

    /// The panel's address in emailed links: `sync.panel_url`, else this host's name and
    /// the panel's port (never the Host header of a request, which a stranger controls).
    pub fn panel_url(&self) -> String {
        if !self.sync.panel_url.is_empty() {
            return self.sync.panel_url.trim_end_matches('/').to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let scheme = if self.web.https { "https" } else { "http" };
        format!("{scheme}://{host}:{}", self.web.listen.port())
    }

    /// Directory of the daily backups.
    pub fn backup_dir(&self) -> PathBuf {
        if self.backup.dir.as_os_str().is_empty() {
            self.store.data_dir.join("backups")
        } else {
            self.store.data_dir.join(&self.backup.dir)
        }
    }

    /// The metrics address, if the endpoint is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.listen.parse().ok()
    }

    /// Full path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.store.data_dir.join(&self.store.database)
    }

    /// Topic names may be written with stray slashes (FabOMatic's README does);
    /// protocol.md §8.14 says trim them.
    fn normalise(&mut self) {
        let p = &mut self.protocol;
        p.topic = p.topic.trim_matches('/').to_string();
        p.stats_topic = p.stats_topic.trim_matches('/').to_string();
        for sub in [&mut p.reply_subtopic, &mut p.request_subtopic] {
            let t = sub.trim_matches('/');
            *sub = format!("/{t}");
        }
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        let bad = |key: &'static str, message: &str| Error::Invalid {
            path: path.to_owned(),
            key,
            message: message.to_string(),
        };
        let p = &self.protocol;
        if p.topic.is_empty() || p.topic.contains(['+', '#', '/']) {
            return Err(bad(
                "protocol.topic",
                "must be one topic level without wildcards, e.g. \"machine\"",
            ));
        }
        if p.stats_topic.is_empty() || p.stats_topic.contains(['+', '#']) {
            return Err(bad(
                "protocol.stats_topic",
                "must be a topic without wildcards",
            ));
        }
        for (key, sub) in [
            ("protocol.reply_subtopic", &p.reply_subtopic),
            ("protocol.request_subtopic", &p.request_subtopic),
        ] {
            if sub.len() < 2 || sub.contains(['+', '#']) || sub[1..].contains('/') {
                return Err(bad(key, "must be one topic level, e.g. \"/reply\""));
            }
        }
        if p.reply_subtopic == p.request_subtopic {
            return Err(bad(
                "protocol.request_subtopic",
                "must differ from reply_subtopic",
            ));
        }
        if !(64..=4096).contains(&p.max_reply_bytes) {
            return Err(bad(
                "protocol.max_reply_bytes",
                "must be between 64 and 4096 (boards read at most 300 bytes)",
            ));
        }
        if p.online_window_s <= 0 || p.orphan_after_s <= 0 || p.duplicate_window_s < 0 {
            return Err(bad(
                "protocol.online_window_s",
                "time windows must be positive numbers of seconds",
            ));
        }
        if p.housekeeping_interval_ms == 0 {
            return Err(bad("protocol.housekeeping_interval_ms", "must be above 0"));
        }
        let c = self.store.clock_sync.as_str();
        if !matches!(c, "auto" | "kernel" | "none")
            && c.strip_prefix("file:").is_none_or(str::is_empty)
        {
            return Err(bad(
                "store.clock_sync",
                "must be \"auto\", \"kernel\", \"none\" or \"file:PATH\"",
            ));
        }
        let b = &self.broker;
        if b.segment_size < 128 {
            return Err(bad("broker.segment_size", "must be at least 128 bytes"));
        }
        if b.inbox_segment_size < 1024 {
            return Err(bad(
                "broker.inbox_segment_size",
                "must be at least 1024 bytes",
            ));
        }
        if b.segment_count < 1 {
            return Err(bad("broker.segment_count", "must be at least 1"));
        }
        if b.max_connections < 1 {
            return Err(bad("broker.max_connections", "must be at least 1"));
        }
        if b.max_payload_size < 512 {
            return Err(bad(
                "broker.max_payload_size",
                "must be at least 512 bytes (boards send up to 300)",
            ));
        }
        if b.connection_timeout_s == 0 {
            return Err(bad("broker.connection_timeout_s", "must be above 0"));
        }
        if b.max_pending_per_ip == 0 || b.max_pending < b.max_pending_per_ip {
            return Err(bad(
                "broker.max_pending_per_ip",
                "must be above 0 and at most broker.max_pending",
            ));
        }
        if b.max_subscriptions_per_client < 2 {
            return Err(bad(
                "broker.max_subscriptions_per_client",
                "must be at least 2 (a board subscribes to its reply and request topics)",
            ));
        }
        let w = &self.web;
        if !(1..=32).contains(&w.workers) {
            return Err(bad("web.workers", "must be between 1 and 32"));
        }
        if w.max_connections < 2 {
            return Err(bad("web.max_connections", "must be at least 2"));
        }
        if !(1024..=16 << 20).contains(&w.max_body_bytes) {
            return Err(bad(
                "web.max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if w.cert_file.is_some() != w.key_file.is_some() {
            return Err(bad(
                "web.cert_file",
                "set both cert_file and key_file, or neither",
            ));
        }
        if w.session_idle_min < 1 {
            return Err(bad("web.session_idle_min", "must be at least 1"));
        }
        if w.session_max_days < 1 {
            return Err(bad("web.session_max_days", "must be at least 1"));
        }
        if !(1024..=64 * 1024).contains(&w.max_header_bytes) {
            return Err(bad(
                "web.max_header_bytes",
                "must be between 1024 and 65536",
            ));
        }
        if w.request_deadline_s < 1 || w.send_timeout_s < 1 || w.keep_alive_s < 1 {
            return Err(bad(
                "web.request_deadline_s",
                "request_deadline_s, send_timeout_s and keep_alive_s must be at least 1",
            ));
        }
        if w.max_connections_per_ip < 1 {
            return Err(bad("web.max_connections_per_ip", "must be at least 1"));
        }
        if !w.first_admin_email.is_empty() && crate::validate::email(&w.first_admin_email).is_err()
        {
            return Err(bad("web.first_admin_email", "must be an email address"));
        }
        if self.store.flush_interval_s == 0 {
            return Err(bad("store.flush_interval_s", "must be above 0"));
        }
        if self.store.database.as_os_str().is_empty() {
            return Err(bad("store.database", "must name a file"));
        }
        self.validate_presence_and_readers(path)?;
        self.validate_sync(path)?;
        if self.backup.keep < 1 {
            return Err(bad("backup.keep", "must be at least 1"));
        }
        if self.backup.hour > 23 {
            return Err(bad("backup.hour", "must be an hour from 0 to 23"));
        }
        let r = &self.retention;
        if r.uses_days < 1 || r.interventions_days < 1 || r.unknown_cards_days < 1 {
            return Err(bad(
                "retention.uses_days",
                "retention periods must be at least 1 day",
            ));
        }
        if !self.metrics.listen.is_empty() && self.metrics_addr().is_none() {
            return Err(bad(
                "metrics.listen",
                "must be an address with a port, e.g. \"127.0.0.1:9883\", or empty",
            ));
        }
        let sy = &self.sync;
        if sy.backoff_base_s < 1 {
            return Err(bad("sync.backoff_base_s", "must be at least 1"));
        }
        // A longer cap would only hide a message for weeks (and overflows the delay).
        if !(sy.backoff_base_s..=MAX_BACKOFF_CAP_S).contains(&sy.backoff_cap_s) {
            return Err(bad(
                "sync.backoff_cap_s",
                "must be between sync.backoff_base_s and 604800 (7 days)",
            ));
        }
        if sy.poll_interval_s < 1 || sy.smtp_timeout_s < 1 {
            return Err(bad(
                "sync.poll_interval_s",
                "poll_interval_s and smtp_timeout_s must be at least 1",
            ));
        }
        if !["starttls", "tls", "none"].contains(&sy.smtp_tls.as_str()) {
            return Err(bad(
                "sync.smtp_tls",
                "must be \"starttls\", \"tls\" or \"none\"",
            ));
        }
        if !["full", "first", "none"].contains(&sy.calendar_member_names.as_str()) {
            return Err(bad(
                "sync.calendar_member_names",
                "must be \"full\", \"first\" or \"none\"",
            ));
        }
        if sy.google_timeout_s < 1 {
            return Err(bad("sync.google_timeout_s", "must be at least 1"));
        }
        if sy.webhook_timeout_s < 1 {
            return Err(bad("sync.webhook_timeout_s", "must be at least 1"));
        }
        if !(1..=MAX_BOARD_OFFLINE_MIN).contains(&sy.alert_board_offline_min) {
            return Err(bad(
                "sync.alert_board_offline_min",
                "must be between 1 and 10080 minutes (a week)",
            ));
        }
        if sy.alert_unknown_card_tries < 2 {
            return Err(bad(
                "sync.alert_unknown_card_tries",
                "must be at least 2 (a single wrong tap is not worth an alert)",
            ));
        }
        // A calendar without the service account's key would silently get nothing.
        for (key, id) in [
            ("sync.lab_calendar_id", &sy.lab_calendar_id),
            ("sync.attendance_calendar_id", &sy.attendance_calendar_id),
            (
                "sync.reservations_calendar_id",
                &sy.reservations_calendar_id,
            ),
        ] {
            if !id.is_empty() && sy.google_key_file.is_empty() {
                return Err(bad(
                    key,
                    "needs sync.google_key_file (the service-account key)",
                ));
            }
        }
        if log_level(&self.log.level).is_none() {
            return Err(bad(
                "log.level",
                "must be one of error, warn, info, debug, trace",
            ));
        }
        Ok(())
    }
}

impl Config {
    fn validate_sync(&self, path: &Path) -> Result<(), Error> {
        let bad = |key: &'static str, message: String| Error::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let s = &self.sync;
        if !s.weekly_summary_day.is_empty() && weekday(&s.weekly_summary_day).is_none() {
            return Err(bad(
                "sync.weekly_summary_day",
                format!(
                    "{:?} is not a day like \"monday\" (or \"\" for never)",
                    s.weekly_summary_day
                ),
            ));
        }
        if s.weekly_summary_hour > 23 {
            return Err(bad("sync.weekly_summary_hour", "must be 0..=23".into()));
        }
        if !s.smtp_ca_file.is_empty() {
            check_pem_certificates(&s.smtp_ca_file).map_err(|m| bad("sync.smtp_ca_file", m))?;
        }
        for w in &s.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(bad(
                    "sync.webhooks.url",
                    "must be an http:// or https:// URL".into(),
                ));
            }
            if let Some(e) = w
                .events
                .iter()
                .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
            {
                return Err(bad(
                    "sync.webhooks.events",
                    format!("{e:?} is not one of {WEBHOOK_EVENTS:?}"),
                ));
            }
            if let Some(t) = w
                .templates
                .keys()
                .find(|t| !WEBHOOK_TEMPLATES.contains(&t.as_str()))
            {
                return Err(bad(
                    "sync.webhooks.templates",
                    format!("{t:?} is not one of {WEBHOOK_TEMPLATES:?}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_presence_and_readers(&self, path: &Path) -> Result<(), Error> {
        let bad = |key: &'static str, message: String| Error::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let pr = &self.presence;
        for (key, value) in [
            ("presence.reminder_at", &pr.reminder_at),
            ("presence.closing_at", &pr.closing_at),
        ] {
            if daily_time(value).is_none() {
                return Err(bad(
                    key,
                    format!("{value:?} is not a time like \"23:30\" or \"\""),
                ));
            }
        }
        if pr.retention_days < 1 {
            return Err(bad("presence.retention_days", "must be at least 1".into()));
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.readers {
            let name = &r.name;
            if name.trim().is_empty() || !names.insert(name.clone()) {
                return Err(bad(
                    "readers.name",
                    format!("{name:?}: every reader needs a unique name"),
                ));
            }
            match (r.role, r.machine) {
                (ReaderRole::Machine, None) => {
                    return Err(bad(
                        "readers.machine",
                        format!("reader {name:?}: role = \"machine\" needs machine = <id>"),
                    ))
                }
                (ReaderRole::Entrance, Some(_)) => {
                    return Err(bad(
                        "readers.machine",
                        format!("reader {name:?}: an entrance reader has no machine"),
                    ))
                }
                _ => {}
            }
            if !(10..=10_000).contains(&r.poll_ms) {
                return Err(bad(
                    "readers.poll_ms",
                    format!("reader {name:?}: must be 10 to 10000"),
                ));
            }
            let needs = match r.kind {
                ReaderKind::Wedge => r.device.is_none().then_some("device"),
                ReaderKind::Sim | ReaderKind::Mfrc522Sim => r.path.is_none().then_some("path"),
                ReaderKind::Mfrc522 => None,
            };
            if let Some(key) = needs {
                return Err(bad(
                    "readers",
                    format!("reader {name:?} ({:?}) needs `{key}`", r.kind),
                ));
            }
        }
        Ok(())
    }
}

/// Checks that `path` is a readable PEM file with at least one certificate. Done at start
/// so that a wrong path stops the daemon instead of leaving every email waiting.
fn check_pem_certificates(path: &str) -> Result<(), String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(())
}

/// Parses a log level name.
pub fn log_level(name: &str) -> Option<log::LevelFilter> {
    match name.to_ascii_lowercase().as_str() {
        "error" => Some(log::LevelFilter::Error),
        "warn" | "warning" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        "off" => Some(log::LevelFilter::Off),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_example_matches_the_embedded_defaults() {
        let parsed = Config::from_toml(Config::default_toml(), Path::new("config/fabgate.toml"))
            .expect("config/fabgate.toml parses");
        assert_eq!(parsed, Config::embedded());
    }

    #[test]
    fn unknown_key_names_the_file_and_key() {
        let err = Config::from_toml("[broker]\nlisten_port = 1\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml"), "{err}");
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn calendars_need_the_key_file() {
        for key in [
            "lab_calendar_id",
            "attendance_calendar_id",
            "reservations_calendar_id",
        ] {
            let text = format!("[sync]\n{key} = \"c@group.calendar.google.com\"\n");
            let err = Config::from_toml(&text, Path::new("f.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key) && err.contains("google_key_file"),
                "{err}"
            );
            let with_key = format!("{text}google_key_file = \"/etc/fabgate/key.json\"\n");
            Config::from_toml(&with_key, Path::new("f.toml")).unwrap();
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (text, key) in [
            ("[protocol]\ntopic = \"a/+\"\n", "protocol.topic"),
            ("[broker]\nsegment_size = 10\n", "broker.segment_size"),
            ("[log]\nlevel = \"loud\"\n", "log.level"),
            (
                "[protocol]\nmax_reply_bytes = 10\n",
                "protocol.max_reply_bytes",
            ),
        ] {
            let err = Config::from_toml(text, Path::new("f.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = Config::from_toml("[broker]\nlisten = \"nope\"\n", Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn sync_bounds_are_checked() {
        for (text, key) in [
            ("backoff_base_s = 0", "sync.backoff_base_s"),
            (
                "backoff_base_s = 60\nbackoff_cap_s = 30",
                "sync.backoff_cap_s",
            ),
            ("backoff_cap_s = 604801", "sync.backoff_cap_s"),
            ("backoff_cap_s = 18446744073709551615", "sync.backoff_cap_s"),
            ("google_timeout_s = 0", "sync.google_timeout_s"),
            ("webhook_timeout_s = 0", "sync.webhook_timeout_s"),
            (
                "alert_board_offline_min = 0",
                "sync.alert_board_offline_min",
            ),
            (
                "alert_board_offline_min = 10081",
                "sync.alert_board_offline_min",
            ),
            (
                "alert_unknown_card_tries = 1",
                "sync.alert_unknown_card_tries",
            ),
        ] {
            let err = Config::from_toml(&format!("[sync]\n{text}\n"), Path::new("f.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("f.toml") && err.contains(key), "{text}: {err}");
        }
        let edges = "[sync]\nbackoff_base_s = 1\nbackoff_cap_s = 604800\nwebhook_timeout_s = 1\n\
                     alert_board_offline_min = 10080\nalert_unknown_card_tries = 2\n";
        Config::from_toml(edges, Path::new("f.toml")).unwrap();
        let one = "[sync]\nbackoff_base_s = 5\nbackoff_cap_s = 5\nalert_board_offline_min = 1\n";
        Config::from_toml(one, Path::new("f.toml")).unwrap();
    }

    #[test]
    fn readers_and_presence_are_checked() {
        let ok = "[presence]\nclosing_at = \"22:00:30\"\nreminder_at = \"\"\n\n\
                  [[readers]]\nname = \"door\"\nkind = \"mfrc522\"\nrole = \"entrance\"\n\n\
                  [[readers]]\nname = \"laser\"\nkind = \"wedge\"\nrole = \"machine\"\nmachine = 1\n\
                  device = \"/dev/input/event3\"\nuid_format = \"decimal\"\n";
        let c = Config::from_toml(ok, Path::new("f.toml")).unwrap();
        assert_eq!(c.presence.closing_s(), Some(22 * 3600 + 30));
        assert_eq!(c.presence.reminder_s(), None);
        assert_eq!(c.readers.len(), 2);
        assert_eq!(c.readers[1].uid_format, UidFormat::Decimal);
        assert_eq!(c.readers[0].poll_ms, 100);
        for (text, key) in [
            ("[presence]\nclosing_at = \"25:00\"\n", "presence.closing_at"),
            ("[presence]\nretention_days = 0\n", "presence.retention_days"),
            ("[[readers]]\nname = \"a\"\nkind = \"sim\"\nrole = \"machine\"\npath = \"x\"\n", "readers.machine"),
            ("[[readers]]\nname = \"a\"\nkind = \"sim\"\nrole = \"entrance\"\n", "needs `path`"),
            ("[[readers]]\nname = \"a\"\nkind = \"wedge\"\nrole = \"entrance\"\n", "needs `device`"),
            ("[[readers]]\nname = \"a\"\nkind = \"mfrc522\"\nrole = \"entrance\"\n\n[[readers]]\nname = \"a\"\nkind = \"mfrc522\"\nrole = \"entrance\"\n", "unique name"),
            ("[[readers]]\nname = \"a\"\nkind = \"nfc\"\nrole = \"entrance\"\n", "kind"),
        ] {
            let err = Config::from_toml(text, Path::new("f.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn smtp_ca_file_must_be_readable_pem_with_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = |file: &Path| {
            let text = format!("[sync]\nsmtp_ca_file = {:?}\n", file.display().to_string());
            Config::from_toml(&text, Path::new("f.toml")).map_err(|e| e.to_string())
        };
        let missing = config(&dir.path().join("missing.pem")).unwrap_err();
        assert!(
            missing.contains("sync.smtp_ca_file") && missing.contains("cannot read"),
            "{missing}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = config(&empty).unwrap_err();
        assert!(
            err.contains("sync.smtp_ca_file") && err.contains("no PEM certificate"),
            "{err}"
        );
        let good = dir.path().join("ca.pem");
        let ca = rcgen::generate_simple_self_signed(vec!["ca.lab".to_string()]).unwrap();
        std::fs::write(&good, ca.cert.pem()).unwrap();
        assert_eq!(
            config(&good).unwrap().sync.smtp_ca_file,
            good.display().to_string()
        );
    }

    #[test]
    fn slashes_around_topics_are_trimmed() {
        let c = Config::from_toml(
            "[protocol]\ntopic = \"machine/\"\nstats_topic = \"stats/\"\nreply_subtopic = \"reply\"\n",
            Path::new("f.toml"),
        )
        .unwrap();
        assert_eq!(c.protocol.topic, "machine");
        assert_eq!(c.protocol.stats_topic, "stats");
        assert_eq!(c.protocol.reply_subtopic, "/reply");
    }
}
