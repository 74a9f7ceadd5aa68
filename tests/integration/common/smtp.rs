//! A small real SMTP server for tests: plain SMTP on 127.0.0.1 (EHLO/HELO, MAIL FROM,
//! RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT). It records every accepted message,
//! can be stopped and started again on the same port (kept bound: `common::server`), can be
//! told to answer RCPT with a temporary (451) or permanent (550) refusal, and can withhold
//! the answer to its Nth message (a server that took a message and has not said so yet).

use super::server::LocalServer;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, CRLF line ends, dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// A header's (unfolded) value.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(v) = value.as_mut() {
                    v.push_str(line);
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                }
            }
        }
        value
    }
}

/// What RCPT TO is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcpt {
    Accept,
    Temporary,
    Permanent,
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<Mail>>,
    rcpt: Mutex<Option<Rcpt>>,
    /// Pause between taking a message and answering 250 (a slow server; a client that
    /// dies in this window has had its message accepted without knowing it).
    delay: Mutex<Duration>,
    /// DATA commands completed so far (the message read), whatever came of them.
    datas: AtomicUsize,
    /// Hold the answer to this DATA (1-based) until `release`.
    stall_at: Mutex<Option<usize>>,
    /// The stalled message was taken and waits for its 250.
    stalled: AtomicBool,
}

/// The SMTP fake; its port stays bound from creation to drop (`common::server`).
pub struct SmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: LocalServer,
}

impl SmtpServer {
    /// Binds a free port and serves.
    pub fn start() -> SmtpServer {
        let s = Self::reserve();
        s.server.restart();
        s
    }

    /// A free port held, the server down (connections closed) until `restart`.
    pub fn reserve() -> SmtpServer {
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let server = LocalServer::stopped(Arc::new(move |stream, alive| {
            let _ = session(stream, &sh, &alive);
        }));
        SmtpServer {
            addr: server.addr,
            shared,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Down: connections are closed at once; open sessions are dropped.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Up again on the same port.
    pub fn restart(&mut self) {
        self.server.restart();
    }

    pub fn answer_rcpt(&self, rcpt: Rcpt) {
        *self.shared.rcpt.lock().unwrap() = Some(rcpt);
    }

    /// Makes every accepted message wait `d` before its 250.
    pub fn set_delay(&self, d: Duration) {
        *self.shared.delay.lock().unwrap() = d;
    }

    /// The `n`th message (1-based, counted from the server's creation) is taken and
    /// recorded, and its 250 withheld until `release` (or the server stops).
    pub fn stall_at_data(&self, n: usize) {
        *self.shared.stall_at.lock().unwrap() = Some(n);
    }

    /// Waits until the stalled message was taken; false after `timeout`.
    pub fn wait_stalled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.shared.stalled.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Answers the stalled message and stalls no more.
    pub fn release(&self) {
        *self.shared.stall_at.lock().unwrap() = None;
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.mails();
            if mails.len() >= n || Instant::now() > deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn session(stream: TcpStream, shared: &Shared, running: &AtomicBool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 test.local ESMTP ready\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    let read_line =
        |input: &mut BufReader<TcpStream>, line: &mut String| -> std::io::Result<bool> {
            line.clear();
            loop {
                if !running.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                match input.read_line(line) {
                    Ok(0) => return Ok(false),
                    Ok(_) if line.ends_with('\n') => return Ok(true),
                    Ok(_) => continue,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                }
            }
        };
    while read_line(&mut input, &mut line)? {
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            out.write_all(b"250-test.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?;
        } else if upper.starts_with("HELO") {
            out.write_all(b"250 test.local\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_string();
            from = from.split('>').next().unwrap_or("").to_string();
            to.clear();
            out.write_all(b"250 OK\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = *shared.rcpt.lock().unwrap();
            match rcpt.unwrap_or(Rcpt::Accept) {
                Rcpt::Accept => {
                    let addr = cmd[8..].trim().trim_start_matches('<');
                    to.push(addr.split('>').next().unwrap_or("").to_string());
                    out.write_all(b"250 OK\r\n")?;
                }
                Rcpt::Temporary => out.write_all(b"451 4.3.0 try again later\r\n")?,
                Rcpt::Permanent => out.write_all(b"550 5.1.1 no such user\r\n")?,
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                out.write_all(b"503 no recipients\r\n")?;
                continue;
            }
            out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
            let mut data = String::new();
            loop {
                if !read_line(&mut input, &mut line)? {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                let l = l.strip_prefix('.').unwrap_or(l);
                data.push_str(l);
                data.push_str("\r\n");
            }
            shared.mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            let n = shared.datas.fetch_add(1, Ordering::SeqCst) + 1;
            if *shared.stall_at.lock().unwrap() == Some(n) {
                shared.stalled.store(true, Ordering::SeqCst);
                while *shared.stall_at.lock().unwrap() == Some(n) {
                    if !running.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            std::thread::sleep(*shared.delay.lock().unwrap());
            out.write_all(b"250 OK queued\r\n")?;
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            out.write_all(b"250 OK\r\n")?;
        } else if upper == "NOOP" {
            out.write_all(b"250 OK\r\n")?;
        } else if upper == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"502 command not implemented\r\n")?;
        }
    }
    Ok(())
}
