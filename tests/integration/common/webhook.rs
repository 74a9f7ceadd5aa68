//! A fake Slack-compatible webhook receiver for tests (plain HTTP/1.1 on 127.0.0.1, one
//! request per connection): records every POST (path, content type, body), answers a chosen
//! status, can lose an answer, and can be stopped (connections closed) and started again
//! on the same port, which it never releases (`common::server`).

use super::server::{read_request, respond, LocalServer};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub content_type: String,
    pub body: String,
}

impl Post {
    /// The `text` of the JSON body.
    pub fn text(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body).expect("JSON body");
        v["text"].as_str().expect("a text field").to_string()
    }
}

#[derive(Default)]
struct Shared {
    posts: Mutex<Vec<Post>>,
    status: AtomicU16,
    /// Requests received, whatever they were answered.
    hits: AtomicUsize,
    /// `Retry-After` seconds sent with a non-2xx answer (0 = none).
    retry_after: AtomicU16,
    /// Take (record) the next post, then close the connection without answering.
    drop_next_answer: AtomicBool,
    hit_times: Mutex<Vec<Instant>>,
}

/// The webhook fake; its port stays bound from creation to drop (`common::server`).
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: LocalServer,
}

impl Receiver {
    pub fn start() -> Receiver {
        let r = Self::reserve();
        r.server.restart();
        r
    }

    /// A held port with the receiver down (connections closed) until `restart`.
    pub fn reserve() -> Receiver {
        let shared = Arc::new(Shared::default());
        shared.status.store(200, Ordering::SeqCst);
        let sh = shared.clone();
        let server = LocalServer::stopped(Arc::new(move |stream, _alive| {
            let _ = handle(stream, &sh);
        }));
        Receiver {
            addr: server.addr,
            shared,
            server,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status the next requests are answered with.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Non-2xx answers carry `Retry-After: seconds` (0 = no header).
    pub fn retry_after(&self, seconds: u16) {
        self.shared.retry_after.store(seconds, Ordering::SeqCst);
    }

    /// The next post is taken (recorded as accepted) and its connection closed without an
    /// answer: a response lost on the way back.
    pub fn lose_next_answer(&self) {
        self.shared.drop_next_answer.store(true, Ordering::SeqCst);
    }

    /// The local server underneath (connection times).
    pub fn server(&self) -> &LocalServer {
        &self.server
    }

    /// When each request was received, whatever it was answered.
    pub fn hit_times(&self) -> Vec<Instant> {
        self.shared.hit_times.lock().unwrap().clone()
    }

    /// Requests received so far, whatever they were answered.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Down: connections are closed at once.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Up again on the same port.
    pub fn restart(&mut self) {
        self.server.restart();
    }

    /// Posts accepted so far.
    pub fn posts(&self) -> Vec<Post> {
        self.shared.posts.lock().unwrap().clone()
    }

    /// Waits until `n` posts arrived (or the timeout); returns what arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Post> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.posts();
            if p.len() >= n || Instant::now() >= deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn handle(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let req = read_request(&stream)?;
    let status = shared.status.load(Ordering::SeqCst);
    shared.hit_times.lock().unwrap().push(Instant::now());
    shared.hits.fetch_add(1, Ordering::SeqCst);
    if (200..300).contains(&status) {
        shared.posts.lock().unwrap().push(Post {
            path: req.path.clone(),
            content_type: req.header("Content-Type").unwrap_or("").to_string(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
        });
        if shared.drop_next_answer.swap(false, Ordering::SeqCst) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
    }
    let after = shared.retry_after.load(Ordering::SeqCst);
    let headers = if after > 0 && !(200..300).contains(&status) {
        vec![("Retry-After", after.to_string())]
    } else {
        vec![]
    };
    respond(stream, status, &headers, "text/plain", "ok")
}
