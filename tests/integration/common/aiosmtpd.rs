//! An SMTP server fabgate did not write: `aiosmtpd_server.py` (aiosmtpd, Debian's
//! python3-aiosmtpd, installed by `.ci/run`) as a child process, killed on drop. Plain
//! SMTP, STARTTLS or implicit TLS, with AUTH PLAIN/LOGIN for one user. Its certificate for
//! "localhost" and 127.0.0.1 is signed by a test CA made here with rcgen, so a test can
//! trust that CA (`ca_file`) or not. Fault injection stays with `common::smtp`.

use super::smtp::Mail;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Debian's Python: the PATH's python3 may be a pyenv one without Debian packages.
const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/aiosmtpd_server.py"
);
/// Python's start-up on a busy 2-core machine.
const READY: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    StartTls,
    /// Implicit TLS from the first byte (port 465 style).
    Tls,
}

/// A message as aiosmtpd accepted it, and how its session went.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail: Mail,
    /// The session was encrypted when the message was sent.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub user: Option<String>,
}

pub struct Aiosmtpd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Aiosmtpd {
    /// Starts the server; `login` = the one (user, password) AUTH accepts.
    pub fn start(mode: Mode, login: Option<(&str, &str)>) -> Aiosmtpd {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("key.pem"));
        make_certificates(&dir.path().join("ca.pem"), &cert, &key);
        let mode_arg = match mode {
            Mode::Plain => "plain",
            Mode::StartTls => "starttls",
            Mode::Tls => "tls",
        };
        let mut cmd = Command::new(PYTHON);
        cmd.arg(SCRIPT)
            .args(["--mode", mode_arg])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key);
        if let Some((user, password)) = login {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            // Its stdin closing (this process gone) stops it.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {PYTHON}: {e} (apt-get install python3-aiosmtpd)")
            });
        let received = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let shared = received.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(port)) = lines.next() {
                let _ = ready_tx.send(port);
            }
            for line in lines.map_while(Result::ok) {
                shared.lock().unwrap().push(parse(&line));
            }
        });
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[aiosmtpd] {line}");
            }
        });
        let port = ready_rx
            .recv_timeout(READY)
            .ok()
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "aiosmtpd did not start (its stderr is above); \
                 `{PYTHON} -c 'import aiosmtpd'` must work: apt-get install python3-aiosmtpd"
            );
        };
        Aiosmtpd {
            child,
            port,
            dir,
            received,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(line: &str) -> Received {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("aiosmtpd wrote {line:?}: {e}"));
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    Received {
        mail: Mail {
            from: s("mail_from"),
            to: v["rcpt_tos"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            data: s("data"),
        },
        tls: v["tls"].as_bool().unwrap_or(false),
        user: v["user"].as_str().map(str::to_string),
    }
}

/// A test CA (`ca`) and a server certificate it signed for localhost and 127.0.0.1.
fn make_certificates(ca: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fabgate test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_key = KeyPair::generate().unwrap();
    let server = params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(ca, issuer.pem()).unwrap();
    std::fs::write(cert, server.pem()).unwrap();
    std::fs::write(key, server_key.serialize_pem()).unwrap();
}
