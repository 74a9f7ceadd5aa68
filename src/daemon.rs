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
        let lock = store::DataLock::acquire(&config.store.data_dir)?;
        let store = Store::open(&config.database_path(), config.store.synchronous)?;
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
        let broker = Broker::start(&config.broker, auth, &protocol.subscription())?;
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
