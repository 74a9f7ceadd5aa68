//! The panel under the attacks of issue 11, over HTTPS: slow requests (bodies trickled a
//! byte a second), idle connections (a byte every 50 s) and huge headers (100 MB each).
//! While they run, a normal browser logs in again and again; prints how long each login
//! took and how much the daemon's RSS grew.
//!
//!     cargo run --release --example panel_flood -- --seconds 20
//!
//! Starts its own daemon (`Daemon::start`, as the binary does) in a child process with a
//! fresh lab. The attackers use other loopback addresses than the browser (127.0.0.2-4),
//! as an attacker on the LAN has an address of its own. Targets (issue 11): every login
//! under 2 s, RSS growth under 5 MB.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let mut seconds = 20u64;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--serve" => return serve(&it.next().expect("--serve CONFIG")),
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            other => panic!("unknown argument {other} (use --seconds S)"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fabgate.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndata_dir = {:?}\n[broker]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\nhttps = true\n[log]\nlevel = \"error\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(&config)
        .env("MALLOC_ARENA_MAX", "2")
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let panel: SocketAddr = line
        .trim()
        .parse()
        .expect("the child prints the panel address");
    let password = std::fs::read_to_string(dir.path().join("first-admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let cert = dir.path().join("tls/panel-cert.pem");

    // Warm up (argon2's first block, TLS), then the baseline.
    let before_login = login(panel, &password);
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kb(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let tries = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    // Slow requests: more than the panel has workers.
    for _ in 0..8 {
        let (stop, cert) = (stop.clone(), cert.clone());
        attackers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(mut s) = tls("127.0.0.2", panel, &cert) else {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                };
                let _ = s
                    .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n");
                while !stop.load(Ordering::Relaxed)
                    && s.write_all(b"a").and_then(|_| s.flush()).is_ok()
                {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }));
    }
    // Idle connections sending a byte every 50 s.
    for _ in 0..64 {
        let (stop, cert) = (stop.clone(), cert.clone());
        attackers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(mut s) = tls("127.0.0.3", panel, &cert) else {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                };
                let mut last = Instant::now() - Duration::from_secs(50);
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if last.elapsed() >= Duration::from_secs(50) {
                        if s.write_all(b"G").and_then(|_| s.flush()).is_err() {
                            break;
                        }
                        last = Instant::now();
                    }
                    // Notice a close by the server.
                    let mut b = [0u8; 64];
                    match s.sock.peek(&mut b) {
                        Ok(0) => break,
                        Ok(_) => {
                            let _ = s.read(&mut b);
                        }
                        Err(_) => {}
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }));
    }
    // Huge headers, 100 MB each.
    for _ in 0..2 {
        let (stop, cert, sent, tries) = (stop.clone(), cert.clone(), sent.clone(), tries.clone());
        attackers.push(std::thread::spawn(move || {
            let chunk = vec![b'a'; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let Some(mut s) = tls("127.0.0.4", panel, &cert) else {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                };
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ");
                let mut n = 0u64;
                while n < 100_000_000 && !stop.load(Ordering::Relaxed) {
                    if let Err(e) = s.write_all(&chunk).and_then(|_| s.flush()) {
                        if std::env::var_os("FLOOD_DEBUG").is_some() {
                            eprintln!("huge header: {e} after {n} bytes");
                        }
                        break;
                    }
                    n += chunk.len() as u64;
                }
                sent.fetch_add(n, Ordering::Relaxed);
                tries.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let mut logins = Vec::new();
    let mut rss_peak = rss_kb(pid);
    while started.elapsed() < Duration::from_secs(seconds) {
        logins.push(login(panel, &password));
        rss_peak = rss_peak.max(rss_kb(pid));
        std::thread::sleep(Duration::from_millis(500));
    }
    let hwm = hwm_kb(pid);
    stop.store(true, Ordering::Relaxed);
    let _ = child.kill();
    let _ = child.wait();
    logins.sort();
    let worst = *logins.last().unwrap();
    let median = logins[logins.len() / 2];
    println!("fabgate panel_flood: {seconds} s of 8 slow requests, 64 idle connections, 2 x 100 MB headers (HTTPS)");
    println!(
        "  login before the attacks  {:.0} ms",
        before_login.as_secs_f64() * 1000.0
    );
    println!(
        "  logins during             {} (median {:.0} ms, worst {:.0} ms; target < 2000 ms)",
        logins.len(),
        median.as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0
    );
    let (sent, tries) = (
        sent.load(Ordering::Relaxed),
        tries.load(Ordering::Relaxed).max(1),
    );
    println!(
        "  huge headers              {tries} tries, each cut off after {:.2} MB on average (431 at 8 KiB, then a bounded lingering close)",
        sent as f64 / tries as f64 / 1e6
    );
    println!(
        "  daemon RSS                before {:.1} MB, peak during {:.1} MB, growth {:.1} MB (target < 5 MB; VmHWM {:.1} MB, argon2 at start included)",
        rss_before as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        (rss_peak.saturating_sub(rss_before)) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let ok = worst < Duration::from_secs(2) && rss_peak.saturating_sub(rss_before) < 5 * 1024;
    println!("  {}", if ok { "PASS" } else { "FAIL" });
}

/// Child mode: run the daemon and print the panel's address.
fn serve(config: &str) {
    let cfg = fabgate::config::Config::load(std::path::Path::new(config)).unwrap();
    fabgate::logging::init(log::LevelFilter::Error);
    let d = fabgate::daemon::Daemon::start(&cfg).unwrap();
    println!("{}", d.web_addr);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A browser's login: the login page, then the form, on a new HTTPS connection.
fn login(panel: SocketAddr, password: &str) -> Duration {
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
        .build()
        .into();
    let page = agent.get(format!("https://{panel}/login")).call().unwrap();
    assert_eq!(page.status(), 200);
    let resp = agent
        .post(format!("https://{panel}/login"))
        .send_form([("email", "admin@fabgate.local"), ("password", password)])
        .unwrap();
    assert_eq!(resp.status(), 303, "login refused");
    started.elapsed()
}

/// A TLS connection from loopback address `from`.
fn tls(
    from: &str,
    to: SocketAddr,
    cert: &std::path::Path,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    let sock = connect_from(from, to)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).ok()? {
        roots.add(c.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().ok()?).ok()?;
    sock.set_nonblocking(false).ok()?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    // Finish the handshake now.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).ok()?;
    }
    Some(s)
}

fn connect_from(from: &str, to: SocketAddr) -> Option<TcpStream> {
    use std::os::fd::FromRawFd;
    let ip: std::net::Ipv4Addr = from.parse().ok()?;
    let SocketAddr::V4(to) = to else { return None };
    // SAFETY: a fresh socket bound and connected with valid sockaddr_in structs; the fd
    // goes to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let addr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let (local, remote) = (addr(ip, 0), addr(*to.ip(), to.port()));
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0
        {
            libc::close(fd);
            return None;
        }
        let s = TcpStream::from_raw_fd(fd);
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
        Some(s)
    }
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

fn hwm_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}
