//! Headless Chromium driven over the Chrome DevTools Protocol (a websocket): navigate,
//! run JavaScript in the page, set the viewport, take screenshots. Debian's `chromium`
//! (installed by `.ci/run`); no npm, no downloaded browser.

use base64::Engine;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

pub struct Chrome {
    child: Child,
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// Where Debian installs it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

impl Chrome {
    /// Starts Chromium; panics with the fix when it is not installed (set
    /// FABGATE_SKIP_BROWSER=1 to skip the browser test on a machine without it).
    pub fn start() -> Option<Chrome> {
        if !Path::new(CHROMIUM).exists() {
            if std::env::var_os("FABGATE_SKIP_BROWSER").is_some() {
                eprintln!("browser test skipped: FABGATE_SKIP_BROWSER is set");
                return None;
            }
            panic!("the browser test needs Debian's chromium: apt-get install chromium (.ci/run does), or set FABGATE_SKIP_BROWSER=1");
        }
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Some(p) = text
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse::<u16>().ok())
                {
                    break p;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let text = ureq::get(format!("http://127.0.0.1:{port}/json/list"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let list: Value = serde_json::from_str(&text).unwrap();
        let url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (ws, _) = tungstenite::connect(url).expect("DevTools websocket");
        let mut chrome = Chrome {
            child,
            ws,
            next_id: 1,
            _profile: profile,
        };
        chrome.call("Page.enable", json!({}));
        chrome.call("Runtime.enable", json!({}));
        Some(chrome)
    }

    /// Sends a command and waits for its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().expect("DevTools answer") else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page and returns its (JSON) value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        r["result"]["value"].clone()
    }

    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": if mobile { 2 } else { 1 }, "mobile": mobile}),
        );
    }

    /// Navigates and waits for the page to finish loading.
    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        std::thread::sleep(Duration::from_millis(100));
        self.wait_for("document.readyState === 'complete'");
    }

    /// Waits until a JavaScript condition holds (5 s at most).
    pub fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.eval(&format!("!!({condition})")) == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {condition}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fills the fields of the page's first form and submits it, as a person would.
    pub fn submit(&mut self, fields: &[(&str, &str)]) {
        let mut js = String::from("(() => { const f = document.querySelector('main form');");
        for (name, value) in fields {
            js.push_str(&format!(
                "f.querySelector('[name={name}]').value = {};",
                serde_json::to_string(value).unwrap()
            ));
        }
        js.push_str("f.requestSubmit(); return true; })()");
        self.eval(&js);
        std::thread::sleep(Duration::from_millis(200));
        self.wait_for("document.readyState === 'complete'");
    }

    /// Saves a full-page PNG screenshot; returns its path.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
