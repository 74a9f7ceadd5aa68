//! Prometheus metrics on their own address (`[metrics] listen`, off by default): board
//! messages by action and outcome, reply latency, boards online, database size, memory,
//! disk and SoC temperature. The counters (`counters`) are updated by the board link; this
//! module renders them with the readings of `health` when `/metrics` is scraped, and
//! owns the small HTTP server (tiny_http, one thread, GET only). It never touches the
//! database: sizes come from the file system.

mod counters;

pub use counters::{
    describe_store_error, Fault, Faults, Histogram, HistogramSnapshot, MessageCounters, Outcome,
    ACTIONS, LATENCY_BUCKETS_US,
};

use crate::health;
use crate::store::Hot;
use crate::terminals::Stats;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot listen for metrics on {addr}: {source}\nhint: change or empty `metrics.listen`"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the metrics server: {0}")]
    Start(String),
}

/// A scraper or two, asking every few seconds: small limits.
const LIMITS: crate::web::front::Limits = crate::web::front::Limits {
    max_connections: 16,
    per_ip: 4,
    max_header: 8 * 1024,
    max_body: 1024,
    deadline: std::time::Duration::from_secs(10),
    send_timeout: std::time::Duration::from_secs(10),
    keep_alive: std::time::Duration::from_secs(60),
};

/// What `/metrics` reads.
#[derive(Clone)]
pub struct Source {
    pub stats: Arc<Stats>,
    pub hot: Arc<Mutex<Hot>>,
    pub database: PathBuf,
    pub data_dir: PathBuf,
    pub online_window_s: i64,
}

/// Starts the endpoint if `[metrics] listen` is set (logs the bound address).
pub fn start(
    config: &crate::config::Config,
    stats: &Arc<Stats>,
    hot: &Arc<Mutex<Hot>>,
    database: &std::path::Path,
) -> Result<(), Error> {
    let Some(addr) = config.metrics_addr() else {
        return Ok(());
    };
    let source = Source {
        stats: stats.clone(),
        hot: hot.clone(),
        database: database.to_owned(),
        data_dir: config.store.data_dir.clone(),
        online_window_s: config.protocol.online_window_s,
    };
    let bound = serve(addr, source)?;
    log::info!("metrics on http://{bound}/metrics");
    Ok(())
}

/// Binds `addr` and serves `/metrics` on a thread; returns the bound address. Scrapers
/// come through the panel's front (`web::front`) with small limits of their own, so a
/// flood of connections, slow requests or huge headers cannot pile up threads or memory
/// here either; tiny_http listens on loopback only.
pub fn serve(addr: SocketAddr, source: Source) -> Result<SocketAddr, Error> {
    let public = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    let bound = public
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Bind { addr, source })?;
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: no 40 ms Nagle
    // stall on the response (research/deps.md).
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let backend = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    crate::web::front::spawn(
        public,
        backend,
        None,
        LIMITS,
        crate::web::front::Peers::default(),
        "metrics",
    )
    .map_err(|e| Error::Start(e.to_string()))?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| Error::Start(e.to_string()))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = match (request.method(), request.url()) {
                    (tiny_http::Method::Get, "/metrics") => {
                        let content_type = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"text/plain; version=0.0.4; charset=utf-8"[..],
                        )
                        .expect("static header is valid");
                        tiny_http::Response::from_string(render(&source)).with_header(content_type)
                    }
                    _ => tiny_http::Response::from_string("see /metrics\n").with_status_code(404),
                };
                if let Err(e) = request.respond(response) {
                    log::debug!("metrics response failed: {e}");
                }
            }
        })
        .map_err(|e| Error::Start(e.to_string()))?;
    Ok(bound)
}

/// The Prometheus text exposition of everything.
pub fn render(src: &Source) -> String {
    let mut out = String::with_capacity(4096);
    let s = &src.stats;
    out.push_str("# HELP fabgate_build_info fabgate version.\n# TYPE fabgate_build_info gauge\n");
    let _ = writeln!(
        out,
        "fabgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    counter(
        &mut out,
        "fabgate_board_messages_received_total",
        "Board messages delivered to fabgate.",
        s.received.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "fabgate_board_replies_sent_total",
        "Replies published to boards.",
        s.sent.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "fabgate_board_messages_dropped_total",
        "Board messages dropped without reply (malformed or failed).",
        s.dropped.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "fabgate_board_replies_withheld_total",
        "Board replies withheld because the store failed (the boards buffer and replay).",
        s.faults.withheld.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "fabgate_store_errors_total",
        "Store operations that failed (a board message's handler or a batch's commit).",
        s.faults.store_errors.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "fabgate_store_write_failing",
        "1 while writes to the database fail (disk full, read-only, damaged).",
        f64::from(u8::from(s.faults.write_fault().is_some())),
    );
    gauge(
        &mut out,
        "fabgate_store_damaged",
        "1 once an integrity check or SQLite found the database damaged.",
        f64::from(u8::from(s.faults.damage().is_some())),
    );
    gauge(
        &mut out,
        "fabgate_clock_synchronised",
        "1 when the clock is synchronised (time-based jobs wait until it is).",
        f64::from(u8::from(s.faults.clock_synchronised())),
    );
    out.push_str(
        "# HELP fabgate_board_messages_total Board messages by action and outcome.\n\
         # TYPE fabgate_board_messages_total counter\n",
    );
    for (action, outcome, n) in s.messages.snapshot() {
        let _ = writeln!(
            out,
            "fabgate_board_messages_total{{action=\"{action}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    let h = s.reply_latency.snapshot();
    out.push_str(
        "# HELP fabgate_reply_latency_seconds Time from receiving a batch of board messages to publishing each reply.\n\
         # TYPE fabgate_reply_latency_seconds histogram\n",
    );
    for (le, n) in &h.cumulative {
        let _ = writeln!(
            out,
            "fabgate_reply_latency_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "fabgate_reply_latency_seconds_bucket{{le=\"+Inf\"}} {}\n\
         fabgate_reply_latency_seconds_sum {}\n\
         fabgate_reply_latency_seconds_count {}",
        h.count, h.sum_seconds, h.count
    );
    counter(
        &mut out,
        "fabgate_board_link_builds_total",
        "Times the daemon's broker link was built (more than 1 = rebuilt after a failure).",
        s.links_built.load(Ordering::Relaxed),
    );
    if let Some(broker) = s.broker.get() {
        broker.render(&mut out);
    }
    if let Ok(hot) = src.hot.lock() {
        let online = hot.machines_seen_since(crate::store::now() - src.online_window_s);
        gauge(
            &mut out,
            "fabgate_boards_online",
            "Machines whose board spoke within the online window.",
            online as f64,
        );
    }
    let db_bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = src.database.clone().into_os_string();
            p.push(suffix);
            std::fs::metadata(p).ok().map(|m| m.len())
        })
        .sum();
    gauge(
        &mut out,
        "fabgate_database_bytes",
        "Size of the SQLite database and its WAL.",
        db_bytes as f64,
    );
    // Outbox depth: messages waiting for the network, and those that failed for good.
    let counts = rusqlite::Connection::open_with_flags(
        &src.database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()
    .and_then(|c| crate::store::outbox_counts(&c).ok());
    if let Some((pending, failed)) = counts {
        gauge(
            &mut out,
            "fabgate_outbox_pending",
            "Outgoing messages waiting for delivery.",
            pending as f64,
        );
        gauge(
            &mut out,
            "fabgate_outbox_failed",
            "Outgoing messages that failed permanently.",
            failed as f64,
        );
    }
    if let Some(rss) = health::rss_bytes() {
        gauge(
            &mut out,
            "fabgate_process_resident_memory_bytes",
            "Resident memory of the daemon.",
            rss as f64,
        );
    }
    if let Some(d) = health::disk_space(&src.data_dir) {
        gauge(
            &mut out,
            "fabgate_data_disk_available_bytes",
            "Free space on the file system of the data directory.",
            d.available as f64,
        );
    }
    if let Some(t) = health::soc_temperature() {
        gauge(
            &mut out,
            "fabgate_soc_temperature_celsius",
            "SoC temperature.",
            t,
        );
    }
    if let Some(t) = health::throttled() {
        gauge(
            &mut out,
            "fabgate_throttled_flags",
            "Raspberry Pi firmware throttling word (vcgencmd get_throttled).",
            f64::from(t.0),
        );
    }
    out
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}
