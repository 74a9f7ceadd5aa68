//! A small real SMTP server for tests: plain SMTP on 127.0.0.1 (EHLO/HELO, MAIL FROM,
//! RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT). It records every accepted message,
//! can be stopped and started again on the same port, and can be told to answer RCPT with
//! a temporary (451) or permanent (550) refusal.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
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

struct Shared {
    mails: Mutex<Vec<Mail>>,
    rcpt: Mutex<Rcpt>,
    /// Pause between taking a message and answering 250 (a slow server; a client that
    /// dies in this window has had its message accepted without knowing it).
    delay: Mutex<Duration>,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<Arc<AtomicBool>>,
}

impl SmtpServer {
    /// Binds a free port and serves.
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = SmtpServer {
            addr,
            shared: Arc::new(Shared {
                mails: Mutex::default(),
                rcpt: Mutex::new(Rcpt::Accept),
                delay: Mutex::default(),
            }),
            running: None,
        };
        s.serve(listener);
        s
    }

    /// A port that was free a moment ago, with the server not yet listening.
    pub fn reserve() -> SmtpServer {
        let mut s = Self::start();
        s.stop();
        s
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn serve(&mut self, listener: TcpListener) {
        let running = Arc::new(AtomicBool::new(true));
        listener.set_nonblocking(true).unwrap();
        let (shared, flag) = (self.shared.clone(), running.clone());
        std::thread::spawn(move || {
            while flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        let flag = flag.clone();
                        std::thread::spawn(move || {
                            let _ = session(stream, &shared, &flag);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        self.running = Some(running);
    }

    /// Stops listening (connections are refused); open sessions are dropped.
    pub fn stop(&mut self) {
        if let Some(flag) = self.running.take() {
            flag.store(false, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot listen again on {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn answer_rcpt(&self, rcpt: Rcpt) {
        *self.shared.rcpt.lock().unwrap() = rcpt;
    }

    /// Makes every accepted message wait `d` before its 250.
    pub fn set_delay(&self, d: Duration) {
        *self.shared.delay.lock().unwrap() = d;
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
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
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
            match rcpt {
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
