//! The staff panel: server-rendered HTML (maud) over tiny_http, on the same `lab` rules
//! the boards use. `routes` is the one table of URLs; `pages/*` gather data and render;
//! `layout` is the frame; `session` holds logins, CSRF and throttling.
//!
//! tiny_http runs a thread per connection and hands requests to `workers` threads, each
//! with its own database connection; Server-Sent Events streams get a thread of their own,
//! capped by `web.max_live_clients`.

pub mod access;
mod accounts;
mod csv;
pub(crate) mod front;
// The request/time toolbox is shared by pages still being written (members, machines,
// history...); until they land some helpers are unused.
#[allow(dead_code)]
mod http;
pub mod i18n;
mod layout;
mod pages;
mod routes;
#[allow(dead_code)]
mod session;
#[allow(dead_code)]
mod time;

use crate::config::WebConfig;
use crate::lab::Rules;
use crate::store::{Hot, Store};
use crate::terminals::Stats;
use http::{Body, Rejected, Req, Resp};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Shared by every panel worker.
pub struct App {
    pub store: Store,
    pub hot: Arc<Mutex<Hot>>,
    pub stats: Arc<Stats>,
    pub rules: Rules,
    pub cfg: WebConfig,
    /// The MQTT port, to count connected clients on the system page.
    pub mqtt_port: u16,
    pub started: Instant,
    /// The panel's address in emailed links (password reset), without a trailing slash.
    pub panel_url: String,
    throttle: Mutex<session::Throttle>,
    /// argon2 needs 19 MiB per hash: one at a time on a 512 MB Pi.
    hashing: Mutex<()>,
    /// How long every login answer takes at least (`accounts::LoginFloor`).
    login_floor: Mutex<accounts::LoginFloor>,
    live_clients: Arc<AtomicUsize>,
    /// Real browser addresses behind the front's loopback connections.
    peers: front::Peers,
    /// Cookies get `Secure` when the panel is served over HTTPS.
    secure_cookies: bool,
}

impl App {
    pub fn new(
        store: Store,
        hot: Arc<Mutex<Hot>>,
        stats: Arc<Stats>,
        rules: Rules,
        cfg: WebConfig,
        mqtt_port: u16,
    ) -> App {
        App {
            mqtt_port,
            store,
            hot,
            stats,
            rules,
            cfg,
            started: Instant::now(),
            panel_url: String::new(),
            throttle: Mutex::default(),
            hashing: Mutex::default(),
            login_floor: Mutex::default(),
            live_clients: Arc::default(),
            peers: front::Peers::default(),
            secure_cookies: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for the panel on {addr}: {source}\nhint: change web.listen or stop what holds the port")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the panel: {0}")]
    Start(String),
    #[error("{0}")]
    Tls(#[from] front::TlsError),
}

/// Creates the first administrator on a lab where no administrator can log in, with
/// `email` (or a placeholder asked for at the first login). Its one-time password goes
/// to `<data_dir>/first-admin-password` (mode 0600), never to the log: returns (email,
/// that file) for the log line.
pub fn first_admin(
    store: &Store,
    email: &str,
    data_dir: &std::path::Path,
) -> crate::store::Result<Option<(String, std::path::PathBuf)>> {
    let mut conn = store.connect()?;
    let Some((email, password)) =
        accounts::ensure_first_admin(&mut conn, email, crate::store::now())?
    else {
        return Ok(None);
    };
    let path = data_dir.join("first-admin-password");
    crate::passwords::write_private(&path, format!("{password}\n").as_bytes()).map_err(|e| {
        crate::store::Error::Invalid(format!("cannot write {}: {e}", path.display()))
    })?;
    Ok(Some((email, path)))
}

pub use accounts::{admin_role, one_time_password, panel_ready};

/// Starts the panel; returns the address browsers connect to.
pub fn start(mut app: App, data_dir: &std::path::Path) -> Result<SocketAddr, Error> {
    let addr = app.cfg.listen;
    let public = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    let bound = public
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let tls = if app.cfg.https {
        let names = vec!["localhost".to_string(), host_name(), bound.ip().to_string()];
        Some(front::tls_config(
            app.cfg.cert_file.as_deref(),
            app.cfg.key_file.as_deref(),
            &data_dir.join("tls"),
            &names,
        )?)
    } else {
        None
    };
    // tiny_http answers on loopback only; the front relays browsers to it.
    let inner = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Bind { addr, source })?;
    let backend = inner
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    // Linux copies TCP_NODELAY from the listening socket to accepted ones; without it a
    // keep-alive response over 1 KiB waits ~40 ms for a delayed ACK (research/deps.md §3).
    set_nodelay(&inner);
    let server = Arc::new(
        tiny_http::Server::from_listener(inner, None).map_err(|e| Error::Start(e.to_string()))?,
    );
    front::spawn(
        public,
        backend,
        tls,
        front::Limits::from_config(&app.cfg),
        app.peers.clone(),
        "panel",
    )
    .map_err(|e| Error::Start(e.to_string()))?;
    app.secure_cookies = app.cfg.https;
    let app = Arc::new(app);
    for i in 0..app.cfg.workers {
        let (server, app) = (server.clone(), app.clone());
        std::thread::Builder::new()
            .name(format!("web-{i}"))
            .spawn(move || worker(&server, &app))
            .map_err(|e| Error::Start(e.to_string()))?;
    }
    Ok(bound)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "fabgate".into())
}

/// Writes a streaming response straight to the socket, flushing every piece: tiny_http's
/// chunked encoder would hold small Server-Sent Events back until 8 KiB accumulate. The
/// body ends with the connection (`Connection: close`), which EventSource handles.
fn stream(rq: tiny_http::Request, resp: Resp) {
    use std::io::Write;
    let Body::Stream(mut body) = resp.body else {
        return;
    };
    let mut head = format!("HTTP/1.1 {} OK\r\nConnection: close\r\n", resp.status);
    for (k, v) in resp
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(http::SECURITY_HEADERS.iter().copied())
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = rq.into_writer();
    let mut buf = [0u8; 1024];
    if out
        .write_all(head.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        return;
    }
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}

fn set_nodelay(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::warn!("cannot set TCP_NODELAY on the panel listener");
    }
}

fn worker(server: &tiny_http::Server, app: &App) {
    let mut conn = loop {
        match app.store.connect() {
            Ok(c) => break c,
            Err(e) => log::error!("panel: {e}"),
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    loop {
        let mut rq = match server.recv() {
            Ok(rq) => rq,
            Err(e) => {
                log::error!("panel: {e}");
                continue;
            }
        };
        let client = rq.remote_addr().and_then(|a| app.peers.client_of(*a));
        let resp = match Req::read(&mut rq, app.cfg.max_body_bytes, client) {
            Ok(req) => routes::handle(app, &mut conn, &req),
            Err(Rejected::TooLarge) => Resp::text(413, "Request too large."),
            Err(Rejected::BadBody) => Resp::text(400, "Bad request."),
        };
        // Browsers that saw the panel over HTTPS never try it in clear again.
        let resp = if app.cfg.https {
            resp.header("Strict-Transport-Security", "max-age=31536000")
        } else {
            resp
        };
        match resp.body {
            Body::Bytes(_) => {
                if let Err(e) = rq.respond(resp.into_tiny()) {
                    log::debug!("panel: response not delivered: {e}");
                }
            }
            Body::Stream(_) => {
                // Streams never end by themselves: answer on a thread of their own.
                let spawned = std::thread::Builder::new()
                    .name("web-live".into())
                    .spawn(move || stream(rq, resp));
                if let Err(e) = spawned {
                    log::error!("panel: cannot start a live stream: {e}");
                }
            }
        }
    }
}
