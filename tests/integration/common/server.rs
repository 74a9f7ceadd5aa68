//! The stoppable local server under the SMTP, webhook and Google fakes. It binds port 0
//! once and keeps that listener for its whole life, so no other process (a parallel test,
//! another developer's suite) can take the port while it is "down": stopped, it accepts
//! and closes every connection at once, which a client sees as a server that does not
//! answer. Open sessions see their `alive` flag drop and end.
//! Also the small HTTP/1.1 request reader and writer the HTTP fakes share.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Serves one connection; `alive` turns false when the server is stopped.
pub type Handler = dyn Fn(TcpStream, Arc<AtomicBool>) + Send + Sync + 'static;

pub struct LocalServer {
    pub addr: SocketAddr,
    /// The current up period's flag; `None` while stopped.
    up: Arc<Mutex<Option<Arc<AtomicBool>>>>,
    /// Ends the accept thread (on drop).
    open: Arc<AtomicBool>,
    /// When each connection came, up or down.
    connections: Arc<Mutex<Vec<Instant>>>,
}

impl LocalServer {
    /// Listens on a free port and serves each connection with `handler` on its own thread.
    pub fn start(handler: Arc<Handler>) -> LocalServer {
        let s = Self::stopped(handler);
        s.restart();
        s
    }

    /// Holds a free port, closing every connection until `restart`.
    pub fn stopped(handler: Arc<Handler>) -> LocalServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let up: Arc<Mutex<Option<Arc<AtomicBool>>>> = Arc::default();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (up2, open2, conns) = (up.clone(), open.clone(), connections.clone());
        std::thread::spawn(move || {
            while open2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        conns.lock().unwrap().push(Instant::now());
                        let Some(alive) = up2.lock().unwrap().clone() else {
                            // Down: the client gets its connection closed, no greeting.
                            drop(stream);
                            continue;
                        };
                        let _ = stream.set_nonblocking(false);
                        let handler = handler.clone();
                        std::thread::spawn(move || handler(stream, alive));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        LocalServer {
            addr,
            up,
            open,
            connections,
        }
    }

    /// When each connection so far came (whether the server was up or down).
    pub fn connection_times(&self) -> Vec<Instant> {
        self.connections.lock().unwrap().clone()
    }

    /// Waits until `n` connections came; returns their times (fewer after `timeout`).
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> Vec<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.connection_times();
            if c.len() >= n || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn is_up(&self) -> bool {
        self.up.lock().unwrap().is_some()
    }

    /// Down: new connections are closed at once, open sessions are told to end.
    pub fn stop(&self) {
        if let Some(alive) = self.up.lock().unwrap().take() {
            alive.store(false, Ordering::SeqCst);
        }
    }

    /// Up again on the same port (which was never released).
    pub fn restart(&self) {
        let mut up = self.up.lock().unwrap();
        if up.is_none() {
            *up = Some(Arc::new(AtomicBool::new(true)));
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
        self.open.store(false, Ordering::SeqCst);
    }
}

/// An HTTP request as the fakes read it (one per connection).
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Writes a complete answer and closes the connection.
pub fn respond(
    mut stream: TcpStream,
    status: u16,
    headers: &[(&str, String)],
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}
