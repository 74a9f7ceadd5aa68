//! A fake Slack-compatible webhook receiver for tests (tiny_http on 127.0.0.1): records
//! every POST (path, content type, body), answers a chosen status, and can be stopped
//! (connections refused) and started again on the same port.

use std::net::{SocketAddr, TcpListener};
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
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<Arc<AtomicBool>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut r = Receiver {
            addr: listener.local_addr().unwrap(),
            shared: Arc::new(Shared::default()),
            running: None,
        };
        r.shared.status.store(200, Ordering::SeqCst);
        r.serve(listener);
        r
    }

    /// A port with nothing listening yet (`restart` listens).
    pub fn reserve() -> Receiver {
        let mut r = Self::start();
        r.stop();
        r
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

    /// Requests received so far, whatever they were answered.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    fn serve(&mut self, listener: TcpListener) {
        let server = tiny_http::Server::from_listener(listener, None).unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let (shared, flag) = (self.shared.clone(), running.clone());
        std::thread::spawn(move || {
            while flag.load(Ordering::SeqCst) {
                let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(20)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let content_type = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Content-Type"))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default();
                let status = shared.status.load(Ordering::SeqCst);
                shared.hits.fetch_add(1, Ordering::SeqCst);
                if (200..300).contains(&status) {
                    shared.posts.lock().unwrap().push(Post {
                        path: req.url().to_string(),
                        content_type,
                        body,
                    });
                }
                let mut resp = tiny_http::Response::from_string("ok").with_status_code(status);
                let after = shared.retry_after.load(Ordering::SeqCst);
                if after > 0 && !(200..300).contains(&status) {
                    let h = format!("Retry-After: {after}");
                    resp = resp.with_header(h.parse::<tiny_http::Header>().unwrap());
                }
                let _ = req.respond(resp);
            }
        });
        self.running = Some(running);
    }

    /// Stops listening: connections are refused.
    pub fn stop(&mut self) {
        if let Some(flag) = self.running.take() {
            flag.store(false, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("cannot listen again on {}: {e}", self.addr),
            }
        };
        self.serve(listener);
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
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
