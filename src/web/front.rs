//! The panel's front door: accepts browser connections (HTTPS with rustls, or plain HTTP
//! when the config says so) and relays them to tiny_http listening on loopback.
//!
//! Why a front: tiny_http's own TLS pulls rustls 0.20 (RUSTSEC-2024-0336) and it accepts
//! any number of connections with no timeouts (one thread each, tiny_http#221). Here the
//! number of connections is capped, idle ones are closed, and the real client address is
//! kept for tiny_http's side (`Peers`) so login throttling and logs see it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A connection with no traffic either way for this long is closed. The live dashboard
/// sends a keep-alive every 15 s, so open dashboards stay.
const IDLE: Duration = Duration::from_secs(120);

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
    write_private(key, made.signing_key.serialize_pem().as_bytes())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    log::info!(
        "panel: made a self-signed HTTPS certificate {}",
        cert.display()
    );
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Accepts connections forever on its own thread, relaying each to `backend`.
pub fn spawn(
    listener: TcpListener,
    backend: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    max: usize,
    peers: Peers,
) -> io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("web-front".into())
        .spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if open.load(Ordering::SeqCst) >= max {
                    // Over the cap: close at once rather than queue a thread.
                    log::warn!("panel: {max} connections open, refusing one");
                    continue;
                }
                open.fetch_add(1, Ordering::SeqCst);
                let (open, tls, peers) = (open.clone(), tls.clone(), peers.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("web-conn".into())
                        .spawn(move || {
                            if let Err(e) = relay(client, backend, tls, &peers) {
                                log::debug!("panel connection ended: {e}");
                            }
                            open.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    log::error!("panel: cannot start a connection thread");
                }
            }
        })?;
    Ok(())
}

fn relay(
    client: TcpStream,
    backend: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    peers: &Peers,
) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let client_ip = client.peer_addr()?.ip();
    let inner = TcpStream::connect(backend)?;
    let _ = inner.set_nodelay(true);
    let port = inner.local_addr()?.port();
    if let Ok(mut map) = peers.0.lock() {
        map.insert(port, client_ip);
    }
    let result = match tls {
        Some(config) => {
            let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
            // Responses (a database backup included) are handed over whole.
            conn.set_buffer_limit(None);
            pump(client, inner, Some(conn))
        }
        None => pump(client, inner, None),
    };
    if let Ok(mut map) = peers.0.lock() {
        map.remove(&port);
    }
    result
}

/// Moves bytes both ways until either side closes or the connection idles out.
fn pump(
    mut client: TcpStream,
    mut inner: TcpStream,
    mut tls: Option<ServerConnection>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut last = Instant::now();
    loop {
        if let Some(conn) = tls.as_mut() {
            while conn.wants_write() {
                conn.write_tls(&mut client)?;
            }
        }
        let mut fds = [
            libc::pollfd {
                fd: client.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: inner.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd structs for fds that outlive the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            if last.elapsed() > IDLE {
                return Ok(());
            }
            continue;
        }
        last = Instant::now();
        let ready =
            |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if ready(&fds[0]) {
            match tls.as_mut() {
                Some(conn) => {
                    if conn.read_tls(&mut client)? == 0 {
                        return Ok(());
                    }
                    let state = conn.process_new_packets().map_err(|e| {
                        // Best effort: tell the browser why before closing.
                        let _ = conn.write_tls(&mut client);
                        io::Error::new(io::ErrorKind::InvalidData, e)
                    })?;
                    let mut plain = state.plaintext_bytes_to_read();
                    while plain > 0 {
                        let want = plain.min(buf.len());
                        let n = conn.reader().read(&mut buf[..want])?;
                        inner.write_all(&buf[..n])?;
                        plain -= n;
                    }
                    if state.peer_has_closed() {
                        return Ok(());
                    }
                }
                None => {
                    let n = client.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    inner.write_all(&buf[..n])?;
                }
            }
        }
        if ready(&fds[1]) {
            let n = inner.read(&mut buf)?;
            if n == 0 {
                if let Some(conn) = tls.as_mut() {
                    conn.send_close_notify();
                    while conn.wants_write() {
                        conn.write_tls(&mut client)?;
                    }
                }
                return Ok(());
            }
            match tls.as_mut() {
                Some(conn) => conn.writer().write_all(&buf[..n])?,
                None => client.write_all(&buf[..n])?,
            }
        }
    }
}
