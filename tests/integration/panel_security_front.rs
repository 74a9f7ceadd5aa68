//! Issue 11, point 3: the front bounds every client, over real TLS sockets. Heads over
//! the limit, bodies over the limit, chunked bodies, requests that never finish, too many
//! connections from one address, clients that never read, and the same limits for
//! `/metrics`; meanwhile a normal browser still logs in.

use crate::common::browser::Browser;
use crate::common::*;
use crate::panel_security::{secure_lab_with, ADMIN_PASSWORD};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is all ours),
/// so one test can be several clients.
pub fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let ip: std::net::Ipv4Addr = from.parse().unwrap();
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 panel address")
    };
    // SAFETY: a fresh socket, bound and connected with valid sockaddr_in structs; the fd
    // is handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let addr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = addr(ip, 0);
        let remote = addr(*to.ip(), to.port());
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

/// A TLS client on `sock` that trusts the lab's self-signed certificate.
pub fn tls(lab: &Lab, sock: TcpStream) -> Tls {
    use rustls::pki_types::pem::PemObject;
    let cert = lab.dir.path().join("tls/panel-cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Everything until the server closes (or the read timeout), as text.
fn answer(s: &mut Tls) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A normal browser from 127.0.0.1 logs in (the login page, then the POST).
fn browser_logs_in(d: &TestDaemon) {
    let mut b = Browser::tls(d.panel);
    assert_eq!(b.get("/login").status, 200);
    let p = b.post(
        "/login",
        &[
            ("email", "admin@fabgate.local"),
            ("password", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
}

#[test]
fn heads_bodies_and_slow_requests_are_held_to_their_limits() {
    let (lab, d, _admin) = secure_lab_with("request_deadline_s = 2\n");
    // A head over 8 KiB: refused while it is read, before it ends.
    let mut s = tls(&lab, connect_from("127.0.0.2", d.panel).unwrap());
    let head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}",
        "a".repeat(9 * 1024)
    );
    s.write_all(head.as_bytes()).unwrap();
    let a = answer(&mut s);
    assert!(a.starts_with("HTTP/1.1 431"), "{a}");
    // A body announced over the limit: refused at once, nothing read.
    let mut s = tls(&lab, connect_from("127.0.0.2", d.panel).unwrap());
    s.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        .unwrap();
    assert!(answer(&mut s).starts_with("HTTP/1.1 413"));
    // A chunked body cannot be held to a length.
    let mut s = tls(&lab, connect_from("127.0.0.2", d.panel).unwrap());
    s.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    assert!(answer(&mut s).starts_with("HTTP/1.1 411"));
    // More slow logins than the panel has workers (2), each trickling a body...
    let mut slow: Vec<Tls> = (0..4)
        .map(|_| {
            let mut s = tls(&lab, connect_from("127.0.0.3", d.panel).unwrap());
            s.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\nemail=")
                .unwrap();
            s
        })
        .collect();
    // ...do not keep a browser out: tiny_http never saw them.
    browser_logs_in(&d);
    // The deadline for the whole request ends them.
    for s in &mut slow {
        let _ = s.write_all(b"a");
        let started = Instant::now();
        let a = answer(s);
        assert!(a.starts_with("HTTP/1.1 408"), "{a}");
        assert!(started.elapsed() < Duration::from_secs(6));
    }
    assert!(d.wait_log("panel: member"), "the browser's login is logged");
}

#[test]
fn connections_are_capped_per_address_and_idle_or_unread_ones_end() {
    let (lab, d, admin) =
        secure_lab_with("max_connections_per_ip = 3\nkeep_alive_s = 2\nsend_timeout_s = 1\n");
    // Three idle connections from one address take its share...
    let mut idle: Vec<Tls> = (0..3)
        .map(|_| {
            let mut s = tls(&lab, connect_from("127.0.0.5", d.panel).unwrap());
            s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut first = [0u8; 12];
            s.read_exact(&mut first).unwrap();
            assert_eq!(&first, b"HTTP/1.1 200");
            s
        })
        .collect();
    // ...the fourth is closed without an answer...
    let mut fourth = tls(&lab, connect_from("127.0.0.5", d.panel).unwrap());
    let _ = fourth.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer(&mut fourth), "");
    // ...while other addresses are served.
    browser_logs_in(&d);
    // Idle connections end after keep_alive_s, giving the address its places back.
    for s in &mut idle {
        let _ = answer(s);
    }
    let mut again = tls(&lab, connect_from("127.0.0.5", d.panel).unwrap());
    again
        .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(answer(&mut again).starts_with("HTTP/1.1 200"));
    // A client that asks for a large answer many times and never reads is dropped after
    // send_timeout_s, and its place is given back.
    let cookie = admin.cookie.clone().unwrap();
    let mut stuck: Vec<Tls> = (0..3)
        .map(|_| {
            let mut s = tls(&lab, connect_from("127.0.0.6", d.panel).unwrap());
            let one =
                format!("GET /backup HTTP/1.1\r\nHost: x\r\nCookie: fg_session={cookie}\r\n\r\n");
            s.write_all(one.repeat(60).as_bytes()).unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "unread connections were never dropped"
        );
        let mut s = tls(&lab, connect_from("127.0.0.6", d.panel).unwrap());
        let _ = s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if answer(&mut s).starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stuck.clear();
}

#[test]
fn metrics_get_the_same_front() {
    let mut lab = Lab::new();
    lab.extra_config = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n".into();
    let d = lab.start();
    assert!(d.wait_log("metrics on http://"));
    let addr: SocketAddr = {
        let log = d.log.lock().unwrap();
        let line = log
            .iter()
            .find(|l| l.contains("metrics on http://"))
            .unwrap();
        let rest = line.split("http://").nth(1).unwrap();
        rest.split('/').next().unwrap().parse().unwrap()
    };
    let get = |from: &str, request: &[u8]| -> String {
        let mut s = connect_from(from, addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let _ = s.write_all(request);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    // Many connections from one address: a few are kept, the rest closed at once.
    let held: Vec<TcpStream> = (0..50)
        .filter_map(|_| connect_from("127.0.0.7", addr).ok())
        .collect();
    let refused = get("127.0.0.7", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused, "");
    // A huge head is refused; a scraper elsewhere is served.
    let big = format!("GET /metrics HTTP/1.1\r\nX-Big: {}", "a".repeat(9000));
    assert!(get("127.0.0.8", big.as_bytes()).starts_with("HTTP/1.1 431"));
    let ok = get(
        "127.0.0.1",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("fabgate_build_info"),
        "{ok}"
    );
    drop(held);
}
