//! Email over SMTP with lettre's blocking transport, called only from the sync worker.
//! STARTTLS, implicit TLS, or plain SMTP to a local relay; multipart text + HTML.
//! The server's certificate must chain to the public web PKI roots or to a CA in
//! `sync.smtp_ca_file`. A 5xx answer (a refused password included) or a bad address is
//! permanent; everything else (4xx, no network, TLS trouble, a timeout) is tried again later.

use super::outbox::Email;
use super::Outcome;
use crate::config::SyncConfig;
use crate::store;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use rusqlite::Connection;
use std::time::Duration;

/// The SMTP settings in force: the panel's (settings table) over the config file's.
#[derive(Clone, PartialEq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: String,
    /// `sync.smtp_ca_file` (config only: it names a file on this machine).
    pub ca_file: String,
    pub user: String,
    pub password: String,
    pub from: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(
            f,
            "{}:{} ({}) as {:?}",
            self.host, self.port, self.tls, self.user
        )
    }
}

impl Smtp {
    /// The panel's settings when it names a server, else the config file's. Never a mix:
    /// a server typed in the panel must not receive the config file's password (and
    /// "Forget the stored password" must really mean none).
    pub fn load(db: &Connection, c: &SyncConfig) -> Smtp {
        let panel = |key: &str| store::setting(db, key).ok().flatten().unwrap_or_default();
        let from_panel = !panel("smtp_host").is_empty();
        let get = |key: &str, default: &str| -> String {
            match panel(key) {
                v if from_panel => v,
                v if !v.is_empty() => v,
                _ => default.to_string(),
            }
        };
        let tls = get("smtp_tls", &c.smtp_tls);
        let default_port = if c.smtp_port != 0 {
            c.smtp_port
        } else {
            match tls.as_str() {
                "tls" => 465,
                "none" => 25,
                _ => 587,
            }
        };
        Smtp {
            host: get("smtp_host", &c.smtp_host),
            port: get("smtp_port", "")
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .unwrap_or(default_port),
            tls,
            ca_file: c.smtp_ca_file.clone(),
            user: get("smtp_user", &c.smtp_user),
            // Sealed in the settings (store::secret); the config file's only with its server.
            password: match store::secret(db, "smtp_password").ok().flatten() {
                Some(p) if from_panel => p,
                _ if from_panel => String::new(),
                Some(p) if !p.is_empty() => p,
                _ => c.smtp_password.clone(),
            },
            from: get("smtp_from", &c.smtp_from),
            timeout: Duration::from_secs(c.smtp_timeout_s),
        }
    }
}

/// The left part of an outbox row's Message-ID: the same on every attempt, so a copy sent
/// again after a lost "250 OK" carries the first copy's id and mail systems that
/// de-duplicate by Message-ID show it once; distinct across rows and installs.
pub fn message_key(row_id: i64, created_at: i64, payload: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(row_id.to_le_bytes());
    h.update(created_at.to_le_bytes());
    h.update(payload.as_bytes());
    format!("fabgate.{row_id}.{}", hex::encode(&h.finalize()[..12]))
}

/// Builds the MIME message (Message-ID `<key@sender's domain>`); a bad address is an
/// `Err` (permanent).
pub fn message(smtp: &Smtp, email: &Email, key: &str) -> Result<Message, String> {
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| format!("bad sender address: {e}"))?;
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| format!("bad recipient address: {e}"))?;
    // lettre adds no Message-ID by itself; the sender's domain is a better right-hand
    // side than the Pi's host name (often not a real domain).
    let message_id = format!("<{key}@{}>", from.email.domain());
    Message::builder()
        .message_id(Some(message_id))
        .from(from)
        .to(to)
        .subject(email.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// The certificate check: public web PKI roots plus the CA(s) in `sync.smtp_ca_file`.
fn tls_parameters(smtp: &Smtp) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if !smtp.ca_file.is_empty() {
        // Read at each batch, so a renewed CA file is used without a restart.
        let pem = std::fs::read(&smtp.ca_file)
            .map_err(|e| format!("cannot read sync.smtp_ca_file {}: {e}", smtp.ca_file))?;
        let ca = Certificate::from_pem(&pem)
            .map_err(|e| format!("sync.smtp_ca_file {}: {e}", smtp.ca_file))?;
        builder = builder.add_root_certificate(ca);
    }
    builder.build().map_err(|e| describe(&e))
}

fn transport(smtp: &Smtp) -> Result<SmtpTransport, String> {
    let tls = match smtp.tls.as_str() {
        "none" => Tls::None,
        "tls" => Tls::Wrapper(tls_parameters(smtp)?),
        _ => Tls::Required(tls_parameters(smtp)?),
    };
    // "dangerous" only means "no TLS unless told": `relay`/`starttls_relay` are this same
    // builder with Wrapper/Required, but they cannot take the extra CA.
    let mut builder = SmtpTransport::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(smtp.timeout));
    if !smtp.user.is_empty() {
        builder = builder.credentials(Credentials::new(smtp.user.clone(), smtp.password.clone()));
    }
    Ok(builder.build())
}

/// Where a password-reset email carries its link's token: the token exists only while
/// the email is composed for delivery (`deliver`), never in the outbox.
pub const RESET_TOKEN_MARK: &str = "{reset-token}";

/// The payload key holding a reset email's nonce (`reset_token`).
const RESET_KEY: &str = "reset";

/// SHA-256 of a password-reset token: what `password_resets.token_hash` holds.
pub fn reset_token_hash(token: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The reset token of `nonce`, made with the lab's key file (`store::derive_token`): the
/// database and the outbox hold the nonce and the token's hash, neither of which opens a
/// reset page, and every delivery attempt makes the same link.
pub fn reset_token(conn: &Connection, nonce: &[u8]) -> store::Result<String> {
    store::derive_token(conn, "password-reset", nonce)
}

/// The outbox payload of a password-reset email whose link is made at delivery: the
/// rendered email with `RESET_TOKEN_MARK` where the token goes, and the nonce.
pub fn reset_payload(email: &Email, nonce: &[u8]) -> String {
    let mut v = serde_json::to_value(email).expect("an email serialises");
    v[RESET_KEY] = serde_json::Value::String(hex::encode(nonce));
    v.to_string()
}

/// Delivers an outbox email row; a reset email gets its link's token now.
pub fn deliver(conn: &Connection, smtp: &Smtp, row: &store::OutboxRow) -> Outcome {
    let key = message_key(row.id, row.created_at, &row.payload);
    let value: serde_json::Value = match serde_json::from_str(&row.payload) {
        Ok(v) => v,
        Err(e) => return Outcome::Permanent(format!("bad payload: {e}")),
    };
    let mut email: Email = match serde_json::from_value(value.clone()) {
        Ok(e) => e,
        Err(e) => return Outcome::Permanent(format!("bad payload: {e}")),
    };
    if let Some(nonce) = value.get(RESET_KEY).and_then(|v| v.as_str()) {
        let Ok(nonce) = hex::decode(nonce) else {
            return Outcome::Permanent("bad payload: reset nonce".into());
        };
        match reset_token(conn, &nonce) {
            Ok(token) => {
                email.text = email.text.replace(RESET_TOKEN_MARK, &token);
                email.html = email.html.replace(RESET_TOKEN_MARK, &token);
            }
            Err(e) => return Outcome::Retry(format!("cannot make the reset link: {e}")),
        }
    }
    send(smtp, &email, &key)
}

/// Sends one email; `key` is its `message_key`.
pub fn send(smtp: &Smtp, email: &Email, key: &str) -> Outcome {
    if smtp.host.is_empty() || smtp.from.is_empty() {
        return Outcome::NotSetUp("no mail server or sender address yet".into());
    }
    if let Err(e) = smtp.from.parse::<Mailbox>() {
        return Outcome::NotSetUp(format!("bad sender address in the email settings: {e}"));
    }
    let msg = match message(smtp, email, key) {
        Ok(m) => m,
        Err(e) => return Outcome::Permanent(e),
    };
    let t = match transport(smtp) {
        Ok(t) => t,
        Err(e) => return Outcome::NotSetUp(e),
    };
    match t.send(&msg) {
        Ok(_) => Outcome::Sent,
        Err(e) => classify(&e),
    }
}

/// What a failed send means for this message and for the others.
fn classify(e: &lettre::transport::smtp::Error) -> Outcome {
    let why = describe(e);
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    // 530/534/535/538: the login was refused or is needed; no message can go until the
    // settings change. The same for what lettre refuses itself (no common login method,
    // no STARTTLS offered) and for a certificate we do not trust.
    if matches!(code.as_str(), "530" | "534" | "535" | "538")
        || e.is_client()
        || e.is_tls()
        || rustls_error(e).is_some()
    {
        return Outcome::NotSetUp(why);
    }
    if e.is_permanent() {
        // This recipient or this message (no such mailbox, too big).
        Outcome::Permanent(why)
    } else if e.is_transient() {
        // A 4xx answer concerns this message (a full mailbox, greylisting).
        Outcome::Retry(why)
    } else {
        // No answer at all: the server is down or unreachable.
        Outcome::Unreachable(why)
    }
}

/// An error for the panel and the log: the server's code and words, never credentials
/// (lettre's errors do not carry them).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    if let Some(code) = e.status() {
        if !s.contains(&code.to_string()) {
            s = format!("{code} {s}");
        }
    }
    // rustls reports a refused certificate as an I/O error, which lettre shows as
    // "network error": say what it is and what to do.
    if let Some(tls @ rustls::Error::InvalidCertificate(_)) = rustls_error(e) {
        s = format!(
            "TLS: the SMTP server's certificate is not trusted ({tls}); \
             if the server uses the lab's own CA, set sync.smtp_ca_file"
        );
    }
    s.chars().take(300).collect()
}

/// The rustls error behind a lettre error, if any (inside an `io::Error` on the way).
fn rustls_error(e: &lettre::transport::smtp::Error) -> Option<&rustls::Error> {
    let mut next = std::error::Error::source(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>());
        if inner.is_some() {
            return inner;
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_per_row_and_distinct_between_rows() {
        let k = message_key(7, 1000, "{}");
        assert_eq!(k, message_key(7, 1000, "{}"));
        assert!(k.starts_with("fabgate.7."), "{k}");
        assert_ne!(k, message_key(8, 1000, "{}"));
        assert_ne!(k, message_key(7, 1001, "{}"));
        assert_ne!(k, message_key(7, 1000, "{\"to\":1}"));
    }

    #[test]
    fn settings_win_over_config_and_the_password_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let s = store::Store::open(&dir.path().join("l.db"), crate::config::Synchronous::Normal)
            .unwrap();
        let db = s.connect().unwrap();
        let mut c = SyncConfig {
            smtp_host: "config.example.org".into(),
            smtp_password: "config-secret".into(),
            smtp_from: "lab@example.org".into(),
            ..SyncConfig::default()
        };
        let smtp = Smtp::load(&db, &c);
        assert_eq!((smtp.host.as_str(), smtp.port), ("config.example.org", 587));
        store::set_setting(&db, "smtp_host", "panel.example.org").unwrap();
        store::set_setting(&db, "smtp_tls", "tls").unwrap();
        store::set_secret(&db, "smtp_password", "panel-secret").unwrap();
        c.smtp_port = 0;
        let smtp = Smtp::load(&db, &c);
        assert_eq!((smtp.host.as_str(), smtp.port), ("panel.example.org", 465));
        assert_eq!(smtp.password, "panel-secret");
        let shown = format!("{smtp:?} {c:?}");
        assert!(!shown.contains("secret"), "{shown}");
        // A server named in the panel never gets the config file's password or sender.
        store::set_secret(&db, "smtp_password", "").unwrap();
        let panel_only = Smtp::load(&db, &c);
        assert_eq!(panel_only.password, "");
        assert_eq!(panel_only.from, "");
        assert!(matches!(
            send(
                &panel_only,
                &super::super::outbox::test_email("a@b.org"),
                "k"
            ),
            Outcome::NotSetUp(_)
        ));
        store::set_setting(&db, "smtp_from", "lab@panel.org").unwrap();
        let smtp = Smtp::load(&db, &c);
        let bad = Email {
            to: "not an address".into(),
            subject: "x".into(),
            text: "x".into(),
            html: "x".into(),
        };
        assert!(matches!(send(&smtp, &bad, "k"), Outcome::Permanent(_)));
    }
}
