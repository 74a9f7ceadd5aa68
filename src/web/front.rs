//! The panel's front door: accepts browser connections (HTTPS with rustls, or plain HTTP
//! when the config says so) and relays them to tiny_http listening on loopback.
//!
//! Why a front: tiny_http's own TLS pulls rustls 0.20 (RUSTSEC-2024-0336), it accepts any
//! number of connections with no timeouts (one thread each, tiny_http#221) and buffers
//! headers without a limit. Here every client is bounded (issue 11): connections in all
//! and per address, the size of a request head and body (checked while reading), a
//! deadline for the whole request, a send timeout, and an idle limit. tiny_http only ever
//! gets complete requests, so a slow client never holds one of its workers. The real
//! client address is kept for tiny_http's side (`Peers`) so throttling and logs see it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Maps the loopback port of each relayed connection to the browser's address.
#[derive(Default, Clone)]
pub struct Peers(Arc<Mutex<HashMap<u16, IpAddr>>>);

impl Peers {
    /// The browser behind a connection tiny_http sees coming from `relay`.
    pub fn client_of(&self, relay: SocketAddr) -> Option<IpAddr> {
        self.0.lock().ok()?.get(&relay.port()).copied()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the panel's TLS certificate {path}: {message}")]
    Read { path: String, message: String },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A TLS configuration from the given PEM files, or from a self-signed certificate kept in
/// `dir` (made on first start, reused afterwards so browsers can remember the exception).
pub fn tls_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    dir: &Path,
    names: &[String],
) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        _ => {
            let (c, k) = (dir.join("panel-cert.pem"), dir.join("panel-key.pem"));
            if !c.exists() || !k.exists() {
                generate(&c, &k, names)?;
            }
            (c, k)
        }
    };
    let read_err = |p: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| read_err(&cert_path, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(&cert_path, &e))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| read_err(&key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

fn generate(cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TlsError::Generate(e.to_string()))?;
    }
    std::fs::write(cert, made.cert.pem()).map_err(|e| TlsError::Generate(e.to_string()))?;
    crate::passwords::write_private(key, made.signing_key.serialize_pem().as_bytes())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    log::info!(
        "panel: made a self-signed HTTPS certificate {}",
        cert.display()
    );
    Ok(())
}

/// What every client is held to (`[web]` keys; `/metrics` gets its own, smaller ones).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, all clients together.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub per_ip: usize,
    /// Largest request head (request line and headers).
    pub max_header: usize,
    /// Largest request body.
    pub max_body: usize,
    /// Time to send a whole request (head and body) once its first byte arrived.
    pub deadline: Duration,
    /// Time a write to a client that does not read may block.
    pub send_timeout: Duration,
    /// Time a connection may stay open with nothing under way in either direction.
    pub keep_alive: Duration,
}

impl Limits {
    pub fn from_config(c: &crate::config::WebConfig) -> Limits {
        Limits {
            max_connections: c.max_connections,
            per_ip: c.max_connections_per_ip,
            max_header: c.max_header_bytes,
            max_body: c.max_body_bytes,
            deadline: Duration::from_secs(c.request_deadline_s),
            send_timeout: Duration::from_secs(c.send_timeout_s),
            keep_alive: Duration::from_secs(c.keep_alive_s),
        }
    }
}

/// A warning at most every 10 s, saying how many were held back in between (a flood
/// must not turn into a flood of log lines).
struct Sparse {
    last: Option<Instant>,
    held: u64,
}

impl Sparse {
    const fn new() -> Sparse {
        Sparse {
            last: None,
            held: 0,
        }
    }

    fn warn(&mut self, what: &str, text: &str) {
        match self.last {
            Some(at) if at.elapsed() < Duration::from_secs(10) => self.held += 1,
            _ => {
                let held = std::mem::take(&mut self.held);
                if held > 0 {
                    log::warn!("{what}: {text} (and {held} more like it in the last seconds)");
                } else {
                    log::warn!("{what}: {text}");
                }
                self.last = Some(Instant::now());
            }
        }
    }
}

/// Open connections, in all and per address.
#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Gives a connection's place back when its thread ends, however it ends.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut o) = self.open.lock() {
            o.total = o.total.saturating_sub(1);
            if let Some(n) = o.per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    o.per_ip.remove(&self.ip);
                }
            }
        }
    }
}

/// Accepts connections forever on its own thread, relaying each whole request (never a
/// part of one) to `backend`. `what` names the service in log lines.
pub fn spawn(
    listener: TcpListener,
    backend: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    limits: Limits,
    peers: Peers,
    what: &'static str,
) -> io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    std::thread::Builder::new()
        .name("web-front".into())
        .spawn(move || {
            let mut refusals = Sparse::new();
            for client in listener.incoming() {
                let client = match client {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors: wait instead of spinning.
                        refusals.warn(what, &format!("cannot accept a connection: {e}"));
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                let Ok(ip) = client.peer_addr().map(|a| a.ip()) else {
                    continue;
                };
                let slot = {
                    let Ok(mut o) = open.lock() else { return };
                    let from_ip = o.per_ip.get(&ip).copied().unwrap_or(0);
                    if o.total >= limits.max_connections {
                        // Over the cap: close at once rather than queue a thread.
                        refusals.warn(
                            what,
                            &format!("{} connections open, refusing one", limits.max_connections),
                        );
                        continue;
                    }
                    if from_ip >= limits.per_ip {
                        refusals.warn(
                            what,
                            &format!("{from_ip} connections open from {ip}, refusing one more"),
                        );
                        continue;
                    }
                    o.total += 1;
                    *o.per_ip.entry(ip).or_insert(0) += 1;
                    Slot {
                        open: open.clone(),
                        ip,
                    }
                };
                let (tls, peers) = (tls.clone(), peers.clone());
                let spawned = std::thread::Builder::new()
                    .name("web-conn".into())
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let _slot = slot;
                        if let Err(e) = relay(client, backend, tls, limits, &peers) {
                            log::debug!("{what} connection ended: {e}");
                        }
                    });
                if spawned.is_err() {
                    log::error!("{what}: cannot start a connection thread");
                }
            }
        })?;
    Ok(())
}

fn relay(
    client: TcpStream,
    backend: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    limits: Limits,
    peers: &Peers,
) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    // A client that stops reading makes a write fail after this long instead of
    // holding the connection (and its thread) forever.
    client.set_write_timeout(Some(limits.send_timeout))?;
    let client_ip = client.peer_addr()?.ip();
    let inner = TcpStream::connect(backend)?;
    let _ = inner.set_nodelay(true);
    let port = inner.local_addr()?.port();
    if let Ok(mut map) = peers.0.lock() {
        map.insert(port, client_ip);
    }
    let tls = match tls {
        Some(config) => {
            let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
            // Responses (a database backup included) are handed over whole.
            conn.set_buffer_limit(None);
            Some(conn)
        }
        None => None,
    };
    let result = Pump {
        client,
        inner,
        tls,
        limits,
        pending: Vec::new(),
        scanned: 0,
        length: None,
        started: None,
        last: Instant::now(),
    }
    .run();
    if let Ok(mut map) = peers.0.lock() {
        map.remove(&port);
    }
    result
}

/// One client connection: requests are gathered here, held to the limits, and handed to
/// the backend only when complete; answers go back as they come.
struct Pump {
    client: TcpStream,
    inner: TcpStream,
    tls: Option<ServerConnection>,
    limits: Limits,
    /// Bytes of the request being received (and any that follow it).
    pending: Vec<u8>,
    /// How far `pending` was searched for the end of the head.
    scanned: usize,
    /// Head plus body length of the current request, once its head is complete.
    length: Option<usize>,
    /// When the current request's first byte arrived.
    started: Option<Instant>,
    /// Last traffic either way.
    last: Instant,
}

/// Why a request is refused by the front itself.
struct Refusal(u16, &'static str);

impl Pump {
    fn run(mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            self.flush_tls()?;
            let now = Instant::now();
            let wait = match self.started {
                Some(at) => {
                    if now.duration_since(at) >= self.limits.deadline {
                        return self.refuse(Refusal(408, "Request Timeout"));
                    }
                    self.limits.deadline - now.duration_since(at)
                }
                None => {
                    if now.duration_since(self.last) >= self.limits.keep_alive {
                        return Ok(());
                    }
                    self.limits.keep_alive - now.duration_since(self.last)
                }
            };
            let mut fds = [
                libc::pollfd {
                    fd: self.client.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.inner.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ms = wait.as_millis().clamp(1, 1000) as libc::c_int;
            // SAFETY: two valid pollfd structs for fds that outlive the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                continue;
            }
            let ready =
                |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
            if ready(&fds[0]) && !self.read_client(&mut buf)? {
                return Ok(());
            }
            if ready(&fds[1]) && !self.read_backend(&mut buf)? {
                return Ok(());
            }
        }
    }

    fn flush_tls(&mut self) -> io::Result<()> {
        if let Some(conn) = self.tls.as_mut() {
            while conn.wants_write() {
                conn.write_tls(&mut self.client)?;
            }
        }
        Ok(())
    }

    /// Reads what the client sent; false when the connection is over.
    fn read_client(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let before = self.pending.len();
        match self.tls.as_mut() {
            Some(conn) => {
                if conn.read_tls(&mut self.client)? == 0 {
                    return Ok(false);
                }
                let state = match conn.process_new_packets() {
                    Ok(s) => s,
                    Err(e) => {
                        // Best effort: tell the browser why before closing.
                        let _ = conn.write_tls(&mut self.client);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                };
                let mut plain = state.plaintext_bytes_to_read();
                while plain > 0 {
                    let want = plain.min(buf.len());
                    let n = conn.reader().read(&mut buf[..want])?;
                    self.pending.extend_from_slice(&buf[..n]);
                    plain -= n;
                }
                if state.peer_has_closed() && self.pending.is_empty() {
                    return Ok(false);
                }
            }
            None => {
                let n = self.client.read(buf)?;
                if n == 0 {
                    return Ok(false);
                }
                self.pending.extend_from_slice(&buf[..n]);
            }
        }
        self.last = Instant::now();
        if before == 0 && !self.pending.is_empty() {
            self.started = Some(self.last);
        }
        match self.forward() {
            Ok(()) => Ok(true),
            Err(Ok(refusal)) => self.refuse(refusal).map(|_| false),
            Err(Err(e)) => Err(e),
        }
    }

    /// Hands every complete request in `pending` to the backend.
    fn forward(&mut self) -> Result<(), Result<Refusal, io::Error>> {
        loop {
            let total = match self.length {
                Some(t) => t,
                None => {
                    let from = self.scanned.saturating_sub(3);
                    let end = self.pending[from..]
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|p| from + p + 4);
                    let Some(head_len) = end else {
                        self.scanned = self.pending.len();
                        if self.pending.len() > self.limits.max_header {
                            return Err(Ok(Refusal(431, "Request Header Fields Too Large")));
                        }
                        return Ok(());
                    };
                    if head_len > self.limits.max_header {
                        return Err(Ok(Refusal(431, "Request Header Fields Too Large")));
                    }
                    let head = body_length(&self.pending[..head_len])?;
                    if head.body > self.limits.max_body {
                        return Err(Ok(Refusal(413, "Content Too Large")));
                    }
                    if head.expects_continue && head.body > 0 {
                        self.write_client(b"HTTP/1.1 100 Continue\r\n\r\n")
                            .map_err(Err)?;
                    }
                    let total = head_len + head.body;
                    self.length = Some(total);
                    total
                }
            };
            if self.pending.len() < total {
                return Ok(());
            }
            self.inner.write_all(&self.pending[..total]).map_err(Err)?;
            self.pending.drain(..total);
            self.length = None;
            self.scanned = 0;
            self.started = (!self.pending.is_empty()).then(Instant::now);
        }
    }

    /// Relays what the backend answered; false when it closed.
    fn read_backend(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(conn) = self.tls.as_mut() {
                conn.send_close_notify();
            }
            self.flush_tls()?;
            return Ok(false);
        }
        self.last = Instant::now();
        self.write_client(&buf[..n])?;
        Ok(true)
    }

    fn write_client(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(conn) => {
                conn.writer().write_all(bytes)?;
                self.flush_tls()
            }
            None => self.client.write_all(bytes),
        }
    }

    /// Answers a request the front will not pass on, and ends the connection.
    fn refuse(&mut self, Refusal(status, reason): Refusal) -> io::Result<()> {
        log::debug!("panel front: {status} {reason}");
        let text = format!(
            "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
             X-Content-Type-Options: nosniff\r\nContent-Length: {}\r\n\r\n{reason}\n",
            reason.len() + 1
        );
        let _ = self.write_client(text.as_bytes());
        if let Some(conn) = self.tls.as_mut() {
            conn.send_close_notify();
        }
        let _ = self.flush_tls();
        // Lingering close: a client still sending its body would get a reset instead
        // of the answer if the socket closed with its data unread. Read and drop a
        // bounded amount for a bounded time.
        let _ = self.client.shutdown(std::net::Shutdown::Write);
        let _ = self
            .client
            .set_read_timeout(Some(Duration::from_millis(500)));
        let until = Instant::now() + Duration::from_secs(2);
        let (mut drained, mut buf) = (0usize, [0u8; 4096]);
        while drained < 256 << 10 && Instant::now() < until {
            match self.client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        Ok(())
    }
}

/// What a request head says about its body.
struct Head {
    body: usize,
    expects_continue: bool,
}

/// The body length a head announces. Chunked bodies are refused: browsers send forms
/// with a length, and a length is what lets the front hold a body to its limit.
fn body_length(head: &[u8]) -> Result<Head, Result<Refusal, io::Error>> {
    let bad = || Err(Ok(Refusal(400, "Bad Request")));
    let Ok(text) = std::str::from_utf8(head) else {
        return bad();
    };
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    if request_line.split(' ').count() != 3 {
        return bad();
    }
    let mut length: Option<usize> = None;
    let mut expects_continue = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return bad();
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse::<usize>() else {
                return bad();
            };
            if length.is_some_and(|l| l != n) {
                return bad();
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Ok(Refusal(411, "Length Required")));
        } else if name.eq_ignore_ascii_case("expect") {
            expects_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    Ok(Head {
        body: length.unwrap_or(0),
        expects_continue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(head: &str) -> Result<usize, u16> {
        match body_length(head.as_bytes()) {
            Ok(h) => Ok(h.body),
            Err(Ok(Refusal(status, _))) => Err(status),
            Err(Err(_)) => Err(0),
        }
    }

    #[test]
    fn heads_announce_their_bodies() {
        assert_eq!(length("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(0));
        assert_eq!(
            length("POST /login HTTP/1.1\r\ncontent-length: 12\r\n\r\n"),
            Ok(12)
        );
        assert_eq!(
            length("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            length("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(411)
        );
        assert_eq!(length("garbage\r\n\r\n"), Err(400));
        assert_eq!(
            length("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(400)
        );
    }
}
