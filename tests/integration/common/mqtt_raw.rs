//! MQTT 3.1.1 packets by hand over a plain `TcpStream`, for what a well-behaved client
//! library will not send: resets before CONNACK, QoS 3, garbage, exact return codes.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const CONNACK: u8 = 0x20;
pub const PUBLISH: u8 = 0x30;
pub const PUBACK: u8 = 0x40;
pub const SUBACK: u8 = 0x90;
pub const UNSUBACK: u8 = 0xB0;
pub const PINGRESP: u8 = 0xD0;

/// Remaining length, MQTT's variable byte integer.
pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![header];
    varint(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

/// What a CONNECT carries.
#[derive(Clone, Debug)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub login: Option<(&'a str, &'a str)>,
    pub keep_alive: u16,
    pub clean_session: bool,
    /// Topic, payload, retain.
    pub will: Option<(&'a str, &'a [u8], bool)>,
}

impl<'a> Connect<'a> {
    pub fn new(client_id: &'a str, login: Option<(&'a str, &'a str)>) -> Connect<'a> {
        Connect {
            client_id,
            login,
            keep_alive: 30,
            clean_session: true,
            will: None,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        string(b"MQTT", &mut b);
        b.push(4);
        let mut flags = 0u8;
        if self.clean_session {
            flags |= 0x02;
        }
        if let Some((_, _, retain)) = self.will {
            flags |= 0x04;
            if retain {
                flags |= 0x20;
            }
        }
        if self.login.is_some() {
            flags |= 0xC0;
        }
        b.push(flags);
        b.extend_from_slice(&self.keep_alive.to_be_bytes());
        string(self.client_id.as_bytes(), &mut b);
        if let Some((topic, payload, _)) = self.will {
            string(topic.as_bytes(), &mut b);
            string(payload, &mut b);
        }
        if let Some((u, p)) = self.login {
            string(u.as_bytes(), &mut b);
            string(p.as_bytes(), &mut b);
        }
        packet(0x10, &b)
    }
}

pub fn publish(topic: &str, payload: &[u8], qos: u8, retain: bool, pkid: u16) -> Vec<u8> {
    let mut b = Vec::new();
    string(topic.as_bytes(), &mut b);
    if qos > 0 {
        b.extend_from_slice(&pkid.to_be_bytes());
    }
    b.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | u8::from(retain), &b)
}

pub fn subscribe(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut b = pkid.to_be_bytes().to_vec();
    for (f, qos) in filters {
        string(f.as_bytes(), &mut b);
        b.push(*qos);
    }
    packet(0x82, &b)
}

pub fn unsubscribe(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut b = pkid.to_be_bytes().to_vec();
    for f in filters {
        string(f.as_bytes(), &mut b);
    }
    packet(0xA2, &b)
}

pub fn puback(pkid: u16) -> Vec<u8> {
    packet(0x40, &pkid.to_be_bytes())
}

pub const PINGREQ: [u8; 2] = [0xC0, 0];
pub const DISCONNECT: [u8; 2] = [0xE0, 0];

/// A packet read back: first byte and body.
#[derive(Debug, Clone)]
pub struct Packet {
    pub header: u8,
    pub body: Vec<u8>,
}

impl Packet {
    pub fn kind(&self) -> u8 {
        self.header & 0xF0
    }

    /// CONNACK return code.
    pub fn connack_code(&self) -> Option<u8> {
        (self.kind() == CONNACK && self.body.len() == 2).then(|| self.body[1])
    }

    /// SUBACK return codes.
    pub fn suback_codes(&self) -> Vec<u8> {
        if self.kind() == SUBACK && self.body.len() >= 2 {
            self.body[2..].to_vec()
        } else {
            vec![]
        }
    }

    /// PUBLISH: (topic, payload, qos).
    pub fn publish(&self) -> Option<(String, Vec<u8>, u8)> {
        if self.kind() != PUBLISH || self.body.len() < 2 {
            return None;
        }
        let qos = (self.header >> 1) & 3;
        let n = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        let topic = String::from_utf8_lossy(self.body.get(2..2 + n)?).into_owned();
        let start = 2 + n + if qos > 0 { 2 } else { 0 };
        Some((topic, self.body.get(start..)?.to_vec(), qos))
    }
}

/// One raw connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn open(addr: SocketAddr) -> std::io::Result<Raw> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(Raw {
            stream,
            buf: Vec::new(),
        })
    }

    /// From a chosen local address (another "host" on the loopback net, e.g. 127.0.0.2).
    pub fn open_from(local: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<Raw> {
        let socket = socket_from(local)?;
        let stream = socket.connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Raw {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Connects, and returns the CONNACK code (None: closed or nothing in `wait`).
    pub fn connect(&mut self, c: &Connect, wait: Duration) -> Option<u8> {
        self.send(&c.bytes()).ok()?;
        self.read(wait).and_then(|p| p.connack_code())
    }

    /// The next packet, or None on close, error or timeout.
    pub fn read(&mut self, wait: Duration) -> Option<Packet> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(p) = self.parse() {
                return Some(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).ok()?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    /// The next packet of kind `kind`, skipping others.
    pub fn read_kind(&mut self, kind: u8, wait: Duration) -> Option<Packet> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let p = self.read(left)?;
            if p.kind() == kind {
                return Some(p);
            }
        }
    }

    /// Has the server closed the connection within `wait` (EOF or reset)?
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.stream.set_read_timeout(Some(left)).is_err() {
                return true;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Closes with a TCP reset (SO_LINGER 0) instead of a FIN.
    pub fn reset(self) {
        set_linger_zero(&self.stream);
        drop(self.stream);
    }

    fn parse(&mut self) -> Option<Packet> {
        if self.buf.len() < 2 {
            return None;
        }
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len |= ((b & 0x7F) as usize) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                return None;
            }
        }
        if self.buf.len() < i + len {
            return None;
        }
        let header = self.buf[0];
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Some(Packet { header, body })
    }
}

fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A TCP socket bound to `local` (port 0), ready to connect.
struct Bound(std::os::fd::OwnedFd);

fn socket_from(local: std::net::IpAddr) -> std::io::Result<Bound> {
    use std::os::fd::FromRawFd;
    let std::net::IpAddr::V4(v4) = local else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    // SAFETY: plain socket(2)/bind(2) calls with checked results.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.octets()),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Bound(owned))
    }
}

impl Bound {
    fn connect(self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        use std::os::fd::{AsRawFd, IntoRawFd};
        let SocketAddr::V4(v4) = addr else {
            return Err(std::io::Error::other("IPv4 only"));
        };
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: a valid fd and sockaddr; ownership moves into the TcpStream.
        unsafe {
            let r = libc::connect(
                self.0.as_raw_fd(),
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            use std::os::fd::FromRawFd;
            Ok(TcpStream::from_raw_fd(self.0.into_raw_fd()))
        }
    }
}

/// A small seeded PRNG (xorshift64*): the fuzz test is reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
