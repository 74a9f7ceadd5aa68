//! Starting and stopping the whole daemon: store, broker, board link, jobs, readers. Everything is
//! built here from the validated config and handed its handles (no globals).

use crate::broker::{Authenticator, Broker};
use crate::config::Config;
use crate::jobs::{self, Jobs};
use crate::lab::Rules;
use crate::store::{self, Hot, Store};
use crate::terminals::{BoardLink, Protocol, Stats};
use crate::watchdog;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] store::Error),
    #[error("{0}")]
    Broker(#[from] crate::broker::Error),
    #[error("{0}")]
    Metrics(#[from] crate::metrics::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("{0}")]
    Web(#[from] crate::web::Error),
    /// The start would lose or serve a lab it must not: the text says what to do.
    #[error("{0}")]
    Refused(String),
}

/// How the daemon was asked to start.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Create a new, empty lab even where one existed (`--new-lab`).
    pub new_lab: bool,
    /// The `--config` given, repeated in the commands the refusals suggest.
    pub config_arg: Option<std::path::PathBuf>,
}

impl StartOptions {
    fn restore_command(&self, config: &Config) -> String {
        let backup = store::startup::newest_backup(&config.backup_dir());
        let config_arg = self
            .config_arg
            .as_ref()
            .map(|p| format!("--config {} ", p.display()))
            .unwrap_or_default();
        match backup {
            Some(b) => format!(
                "restore the newest backup: `fabgate {config_arg}restore {}`, then start again",
                b.display()
            ),
            None => format!(
                "no daily backup in {}: restore a copy with `fabgate {config_arg}restore FILE`, \
                 then start again",
                config.backup_dir().display()
            ),
        }
    }
}

/// Before the store is opened: no new lab where one existed, no damaged file served.
fn preflight(config: &Config, opts: &StartOptions, had_lock: bool) -> Result<(), StartError> {
    let path = config.database_path();
    let dir = &config.store.data_dir;
    if !store::startup::database_present(&path) {
        let mut signs = store::startup::previous_lab_signs(dir, &path, &config.backup_dir());
        if had_lock {
            signs.push(format!(
                "{} is left by a daemon that ran here",
                dir.join(store::LOCK_FILE).display()
            ));
        }
        if signs.is_empty() || opts.new_lab {
            if opts.new_lab && !signs.is_empty() {
                log::warn!("--new-lab: starting a new, empty lab in {}", dir.display());
                // An empty file would be taken for a damaged one by SQLite's callers.
                let _ = std::fs::remove_file(&path);
            }
            return Ok(());
        }
        return Err(StartError::Refused(format!(
            "refusing to start a new, empty lab: the database {} is missing or empty, but a lab \
             existed here:\n  - {}\nhint: {}\nhint: to start a new, empty lab anyway, start with \
             `fabgate --new-lab`",
            path.display(),
            signs.join("\n  - "),
            opts.restore_command(config)
        )));
    }
    if let Err(what) = store::startup::check_file(&path, false) {
        return Err(StartError::Refused(format!(
            "the database {} is damaged (PRAGMA quick_check):\n  {}\nhint: stop here and {}",
            path.display(),
            what.replace('\n', "\n  "),
            opts.restore_command(config)
        )));
    }
    Ok(())
}

/// A running daemon.
pub struct Daemon {
    pub mqtt_addr: SocketAddr,
    pub web_addr: SocketAddr,
    pub store: Store,
    pub hot: Arc<Mutex<Hot>>,
    pub stats: Arc<Stats>,
    /// Held while the daemon runs: `fabgate restore` and a second daemon refuse.
    _lock: store::DataLock,
}

/// How long the board link and jobs threads get to come up before the start fails.
const THREADS_START: Duration = Duration::from_secs(10);

impl Daemon {
    pub fn start(config: &Config) -> Result<Daemon, StartError> {
        Self::start_with(config, &StartOptions::default())
    }

    pub fn start_with(config: &Config, opts: &StartOptions) -> Result<Daemon, StartError> {
        let had_lock = config.store.data_dir.join(store::LOCK_FILE).exists();
        let lock = store::DataLock::acquire(&config.store.data_dir)?;
        preflight(config, opts, had_lock)?;
        let store =
            Store::open(&config.database_path(), config.store.synchronous).map_err(|e| match e
                .is_damage()
            {
                true => StartError::Refused(format!("{e}\nhint: {}", opts.restore_command(config))),
                false => e.into(),
            })?;
        store::startup::write_marker(&config.store.data_dir, store::now());
        // Secrets an older version stored in clear get sealed, and files it left readable
        // by others are made private (issue 11).
        store::seal_plaintext(&store.connect()?)?;
        store::tighten_modes(&config.store.data_dir, store.path());
        // Before any thread may record a use: the lab queues calendar events from then on.
        crate::sync::calendar::configure(&config.sync);
        let auth = if config.broker.allow_anonymous {
            log::warn!("broker.allow_anonymous is on: any client may connect without credentials");
            None
        } else {
            let conn = store.connect()?;
            if store::count_credentials(&conn)? == 0 {
                log::warn!(
                    "no board credentials yet: boards will be refused until you run \
                     `fabgate board add --lab --username USER --password PASS` (or --machine N)"
                );
            }
            Some(Authenticator::new(&store)?)
        };
        let protocol = Protocol::new(&config.protocol);
        let broker = Broker::start(&config.broker, auth, &config.protocol)?;
        let hot = Arc::new(Mutex::new(Hot::default()));
        let stats = Arc::new(Stats::default());
        let rules = Rules::from_config(&config.protocol);
        BoardLink {
            broker: broker.clone(),
            store: store.clone(),
            hot: hot.clone(),
            protocol: protocol.clone(),
            rules: rules.clone(),
            stats: stats.clone(),
        }
        .spawn()?;
        let p = &config.protocol;
        Jobs {
            broker: broker.clone(),
            store: store.clone(),
            hot: hot.clone(),
            protocol,
            rules,
            stats: stats.clone(),
            tick: Duration::from_millis(p.housekeeping_interval_ms),
            flush_every: Duration::from_secs(config.store.flush_interval_s),
            stats_every: (p.stats_interval_s > 0).then(|| Duration::from_secs(p.stats_interval_s)),
            stats_topic: format!("{}/{}", p.stats_topic, p.stats_id),
            presence: config.presence.clone(),
            daily: jobs::Daily::from_config(config),
            alerts: config
                .sync
                .alerts
                .then(|| crate::sync::alerts::Alerts::from_config(&config.sync, store::now())),
            weekly: crate::config::weekday(&config.sync.weekly_summary_day)
                .map(|d| (d, config.sync.weekly_summary_hour)),
            clock_sync: jobs::ClockSync::from_config(&config.store.clock_sync),
        }
        .spawn()?;
        crate::sync::Worker {
            store: store.clone(),
            config: config.sync.clone(),
        }
        .spawn()?;
        crate::metrics::start(config, &stats, &hot, store.path())?;
        if !watchdog::wait_started(&stats, THREADS_START) {
            return Err(StartError::Thread(std::io::Error::other(
                "the board link or jobs thread did not start",
            )));
        }
        if !config.readers.is_empty() {
            crate::readers::Service {
                store: store.clone(),
                hot: hot.clone(),
                rules: Rules::from_config(&config.protocol),
                readers: config.readers.clone(),
            }
            .spawn()?;
        }
        if let Some((email, file)) = crate::web::first_admin(
            &store,
            &config.web.first_admin_email,
            &config.store.data_dir,
        )? {
            // The one-time password is in a file only the daemon's user can read (issue
            // 11), not in the journal; it stops working at the first login. Printed
            // directly, not through `log`, which keeps addresses out of its lines.
            eprintln!(
                "<4>first start: log into the panel as {email} with the one-time password in {} \
                 (you must change it at first login)",
                file.display()
            );
        }
        let mut app = crate::web::App::new(
            store.clone(),
            hot.clone(),
            stats.clone(),
            Rules::from_config(&config.protocol),
            config.web.clone(),
            broker.addr().port(),
        );
        app.panel_url = config.panel_url();
        let web_addr = crate::web::start(app, &config.store.data_dir)?;
        let status = format!(
            "fabgate {} ready: MQTT on {}, panel on {}://{}, database {}",
            env!("CARGO_PKG_VERSION"),
            broker.addr(),
            if config.web.https { "https" } else { "http" },
            web_addr,
            store.path().display()
        );
        log::info!("{status}");
        watchdog::ready(&status, &stats);
        Ok(Daemon {
            mqtt_addr: broker.addr(),
            web_addr,
            store,
            hot,
            stats,
            _lock: lock,
        })
    }

    /// Writes in-memory state before the process exits.
    pub fn shutdown(&self) {
        watchdog::stopping();
        match self.store.connect() {
            Ok(mut conn) => match jobs::flush(&mut conn, &self.hot) {
                Ok(()) => log::info!("state flushed; bye"),
                Err(e) => log::error!("flush at shutdown failed: {e}"),
            },
            Err(e) => log::error!("flush at shutdown failed: {e}"),
        }
    }
}
