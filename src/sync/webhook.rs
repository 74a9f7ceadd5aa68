//! Chat webhooks: Slack-compatible "incoming webhooks", a POST of `{"text": "..."}` per
//! event to each configured URL that wants it (`[[sync.webhooks]]`).
//!
//! The lab calls `notify` inside the transaction of the change (a machine started or
//! stopped, a member signed in or out, an alert): it renders the text now, in the
//! configured template, and queues one outbox row per URL, so each URL is retried on its
//! own. The lab never touches HTTP; the sync worker `send`s the rows with ureq.
//! 2xx is delivered; 408, 429, 5xx, timeouts and network errors are retried with backoff;
//! any other answer is permanent.

use super::Outcome;
use crate::config::WebhookConfig;
use crate::store::{self, OutboxKind, Result};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

static HOOKS: RwLock<Vec<WebhookConfig>> = RwLock::new(Vec::new());
static QUEUED: AtomicBool = AtomicBool::new(false);

/// Sets the webhooks of this process (from `[sync] webhooks`), once the config is loaded.
pub fn configure(hooks: &[WebhookConfig]) {
    if let Ok(mut h) = HOOKS.write() {
        *h = hooks.to_vec();
    }
}

/// Wakes the sync worker if `notify` queued something since the last call. Called after
/// the commit of a transaction that may have queued webhook rows.
pub fn wake_if_queued() {
    if QUEUED.swap(false, Ordering::AcqRel) {
        super::wake();
    }
}

/// What happened, with the names as they should read in the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    MachineStarted {
        machine: &'a str,
        member: &'a str,
    },
    MachineStopped {
        machine: &'a str,
        member: &'a str,
        seconds: i64,
    },
    MaintenanceDue {
        machine: &'a str,
        text: &'a str,
    },
    Alert {
        text: &'a str,
    },
    SignedIn {
        member: &'a str,
    },
    SignedOut {
        member: &'a str,
    },
}

impl Event<'_> {
    /// The event name of `[[sync.webhooks]] events`.
    pub fn event(&self) -> &'static str {
        match self {
            Event::MachineStarted { .. } => "machine_started",
            Event::MachineStopped { .. } => "machine_stopped",
            Event::MaintenanceDue { .. } => "maintenance_due",
            Event::Alert { .. } => "alert",
            Event::SignedIn { .. } | Event::SignedOut { .. } => "presence",
        }
    }

    /// The template name of `[[sync.webhooks]] templates`.
    pub fn template(&self) -> &'static str {
        match self {
            Event::SignedIn { .. } => "signed_in",
            Event::SignedOut { .. } => "signed_out",
            other => other.event(),
        }
    }

    fn default_template(&self) -> &'static str {
        match self {
            Event::MachineStarted { .. } => "{member} started {machine}",
            Event::MachineStopped { .. } => "{member} stopped {machine} after {duration}",
            Event::MaintenanceDue { .. } => "Maintenance due on {machine}: {text}",
            Event::Alert { .. } => "{text}",
            Event::SignedIn { .. } => "{member} signed in",
            Event::SignedOut { .. } => "{member} signed out",
        }
    }

    /// The message in `template` (or the built-in one), values escaped for Slack.
    pub fn render(&self, template: Option<&str>) -> String {
        self.render_in(template, Dialect::Slack)
    }

    /// The message in `template` with every value (names, texts: what members and staff
    /// typed, never the template itself) escaped for the chat's markup, so a name like
    /// `<!channel>` or `@everyone` is text, not a ping or a link.
    pub fn render_in(&self, template: Option<&str>, dialect: Dialect) -> String {
        let (mut machine, mut member, mut duration, mut text) = ("", "", String::new(), "");
        match self {
            Event::MachineStarted {
                machine: m,
                member: p,
            } => (machine, member) = (m, p),
            Event::MachineStopped {
                machine: m,
                member: p,
                seconds,
            } => {
                (machine, member) = (m, p);
                duration = format_duration(*seconds);
            }
            Event::MaintenanceDue {
                machine: m,
                text: t,
            } => (machine, text) = (m, t),
            Event::Alert { text: t } => text = t,
            Event::SignedIn { member: p } | Event::SignedOut { member: p } => member = p,
        }
        let esc = |v: &str| escape(v, dialect);
        template
            .unwrap_or(self.default_template())
            .replace("{machine}", &esc(machine))
            .replace("{member}", &esc(member))
            .replace("{duration}", &duration)
            .replace("{text}", &esc(text))
    }
}

/// How a chat reads markup in a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Slack's mrkdwn: `&`, `<`, `>` must be entities (`<!channel>`, `<@U1>`, `<url|x>`).
    Slack,
    /// Markdown (Mattermost, Discord, Rocket.Chat...): backslash escapes.
    Markdown,
}

impl Dialect {
    /// From the webhook's URL: Slack's own hosts speak mrkdwn, the others Markdown.
    pub fn of(url: &str) -> Dialect {
        let host = url
            .split_once("://")
            .map_or(url, |(_, r)| r)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("")
            .rsplit('@')
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if host == "slack.com" || host.ends_with(".slack.com") {
            Dialect::Slack
        } else {
            Dialect::Markdown
        }
    }
}

/// A value as plain text in `dialect`. In both, an `@` before a word gets a zero-width
/// space after it, so `@channel`, `@here`, `@everyone` or `@someone` mention nobody.
pub fn escape(value: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (dialect, c) {
            (Dialect::Slack, '&') => out.push_str("&amp;"),
            (Dialect::Slack, '<') => out.push_str("&lt;"),
            (Dialect::Slack, '>') => out.push_str("&gt;"),
            (
                Dialect::Markdown,
                '\\' | '*' | '_' | '~' | '`' | '|' | '<' | '>' | '[' | ']' | '(' | ')' | '#' | '!',
            ) => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        if c == '@' && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            out.push('\u{200B}');
        }
    }
    out
}

/// The lab's changes that chat webhooks hear of; called inside the change's transaction.
/// The lab stays free of HTTP: these only queue outbox rows.
///
/// A use was opened (by a board's start, or a heartbeat for a start we missed).
pub fn use_started(tx: &Connection, use_id: i64) -> Result<()> {
    use_event(tx, use_id, "machine_started")
}

/// A use ended, however it was closed (the board's stop, another start on the machine, or
/// the orphan rule), or was recorded already closed.
pub fn use_stopped(tx: &Connection, use_id: i64) -> Result<()> {
    use_event(tx, use_id, "machine_stopped")
}

fn use_event(tx: &Connection, use_id: i64, event: &str) -> Result<()> {
    let wanted = HOOKS
        .read()
        .is_ok_and(|h| h.iter().any(|h| h.events.iter().any(|e| e == event)));
    if !wanted {
        return Ok(());
    }
    let Some((machine, name, surname, seconds)) = tx
        .query_row(
            "SELECT m.machine_name, p.name, p.surname, COALESCE(u.end_ts, u.start_ts) - u.start_ts
             FROM uses u JOIN machines m ON m.machine_id = u.machine_id
             JOIN members p ON p.member_id = u.member_id WHERE u.use_id = ?1",
            [use_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .optional()?
    else {
        return Ok(());
    };
    let member = format!("{name} {surname}").trim().to_string();
    let e = if event == "machine_started" {
        Event::MachineStarted {
            machine: &machine,
            member: &member,
        }
    } else {
        Event::MachineStopped {
            machine: &machine,
            member: &member,
            seconds,
        }
    };
    notify(tx, &e)?;
    Ok(())
}

/// A member signed in (`true`) or out of the building (see `machine_started`).
pub fn presence(
    tx: &rusqlite::Connection,
    member: &crate::store::Member,
    signed_in: bool,
) -> Result<()> {
    let member = member_name(member);
    let event = if signed_in {
        Event::SignedIn { member: &member }
    } else {
        Event::SignedOut { member: &member }
    };
    notify(tx, &event)?;
    Ok(())
}

/// "45 s", "12 min", "1 h 05 min".
pub fn format_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// A member's name as messages show it.
pub fn member_name(m: &store::Member) -> String {
    format!("{} {}", m.name, m.surname).trim().to_string()
}

/// A webhook row's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    pub url: String,
    pub event: String,
    pub text: String,
}

/// Queues the event for every configured webhook that wants it, in the caller's
/// transaction. Returns how many rows were queued.
pub fn notify(tx: &Connection, event: &Event) -> Result<usize> {
    let Ok(hooks) = HOOKS.read() else {
        return Ok(0);
    };
    notify_to(tx, &hooks, event)
}

/// `notify` with the webhooks given.
pub fn notify_to(tx: &Connection, hooks: &[WebhookConfig], event: &Event) -> Result<usize> {
    let mut n = 0;
    for h in hooks
        .iter()
        .filter(|h| h.events.iter().any(|e| e == event.event()))
    {
        let post = Post {
            url: h.url.clone(),
            event: event.event().into(),
            text: event.render_in(
                h.templates.get(event.template()).map(String::as_str),
                Dialect::of(&h.url),
            ),
        };
        let payload = serde_json::to_string(&post).expect("a post serialises");
        store::enqueue(tx, OutboxKind::Webhook, &payload, None, store::now())?;
        n += 1;
    }
    if n > 0 {
        QUEUED.store(true, Ordering::Release);
    }
    Ok(n)
}

/// What is kept of a sent post: the event and text, never the URL (the secret).
pub fn sent_summary(payload: &str) -> String {
    match serde_json::from_str::<Post>(payload) {
        Ok(p) => serde_json::json!({ "event": p.event, "text": p.text }).to_string(),
        Err(_) => "{}".into(),
    }
}

/// The HTTP client of the sync worker: answers of any status are read, not errors.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent("fabgate")
        .build()
        .into()
}

/// Posts one message.
pub fn send(agent: &ureq::Agent, post: &Post) -> Outcome {
    let body = serde_json::json!({ "text": post.text }).to_string();
    let resp = agent
        .post(&post.url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes());
    match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            if (200..300).contains(&status) {
                return Outcome::Sent;
            }
            let after =
                super::retry_after(r.headers().get("retry-after").and_then(|v| v.to_str().ok()));
            let text: String = r
                .into_body()
                .read_to_string()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            let why = format!("HTTP {status} {}", text.trim());
            if status == 429 {
                Outcome::RateLimited { why, after }
            } else if status == 408 || status >= 500 {
                Outcome::Retry(why)
            } else {
                Outcome::Permanent(why)
            }
        }
        // Never the URL itself in an error (its path is the secret).
        Err(ureq::Error::BadUri(_)) => Outcome::Permanent("the webhook URL is not valid".into()),
        Err(e @ ureq::Error::InvalidProxyUrl) => Outcome::Permanent(e.to_string()),
        Err(e) => Outcome::Unreachable(scrub(&e.to_string(), &post.url)),
    }
}

/// A webhook URL as it may be shown: scheme and host, never the path (which is the secret
/// of a Slack-style hook).
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    if scheme.is_empty() {
        "(webhook)".into()
    } else {
        format!("{scheme}://{host}/…")
    }
}

/// `text` with the URL (or its path) replaced by its redacted form.
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact(url));
    if let Some((_, rest)) = url.split_once("://") {
        if let Some(i) = rest.find('/') {
            let path = &rest[i..];
            if path.len() > 1 {
                out = out.replace(path, "/…");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_the_chat_and_mention_nobody() {
        let slack = escape("<!channel> & <@U1|x> *b*", Dialect::Slack);
        assert_eq!(slack, "&lt;!channel&gt; &amp; &lt;@\u{200B}U1|x&gt; *b*");
        let md = escape("@everyone *b* [x](http://e) `c` <x>", Dialect::Markdown);
        assert_eq!(
            md,
            "@\u{200B}everyone \\*b\\* \\[x\\]\\(http://e\\) \\`c\\` \\<x\\>"
        );
        assert_eq!(escape("mail a@b", Dialect::Slack), "mail a@\u{200B}b");
        assert_eq!(escape("DRILL 1", Dialect::Markdown), "DRILL 1");
        assert_eq!(
            Dialect::of("https://hooks.slack.com/services/T/B/x"),
            Dialect::Slack
        );
        assert_eq!(
            Dialect::of("https://discord.com/api/webhooks/1/x"),
            Dialect::Markdown
        );
        assert_eq!(
            Dialect::of("http://user@slack.com.evil/x"),
            Dialect::Markdown
        );
        // The template itself is the lab's and keeps its markup.
        let e = Event::MachineStarted {
            machine: "<!here>",
            member: "@channel",
        };
        assert_eq!(
            e.render_in(Some("*{member}* on {machine}"), Dialect::Slack),
            "*@\u{200B}channel* on &lt;!here&gt;"
        );
    }

    #[test]
    fn urls_are_shown_without_their_secret_path() {
        let url = "https://user:pw@hooks.slack.com/services/T0/B0/s3cret?x=1";
        assert_eq!(redact(url), "https://hooks.slack.com/…");
        assert_eq!(redact("not a url"), "(webhook)");
        let e = format!("bad uri {url}: nope; path /services/T0/B0/s3cret?x=1");
        let s = scrub(&e, url);
        assert!(!s.contains("s3cret") && !s.contains("pw@"), "{s}");
    }

    fn hook(url: &str, events: &[&str], templates: &[(&str, &str)]) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            templates: templates
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn templates_and_defaults_render() {
        let stop = Event::MachineStopped {
            machine: "LASER 1",
            member: "Carla C",
            seconds: 3900,
        };
        assert_eq!(
            stop.render(None),
            "Carla C stopped LASER 1 after 1 h 05 min"
        );
        assert_eq!(
            stop.render(Some(":stop_sign: {machine} free ({duration}, {member})")),
            ":stop_sign: LASER 1 free (1 h 05 min, Carla C)"
        );
        assert_eq!(Event::SignedIn { member: "Anna" }.template(), "signed_in");
        assert_eq!(format_duration(45), "45 s");
        assert_eq!(format_duration(720), "12 min");
    }

    #[test]
    fn one_row_per_interested_webhook_and_no_url_kept_once_sent() {
        let dir = tempfile::tempdir().unwrap();
        let s = store::Store::open(&dir.path().join("l.db"), crate::config::Synchronous::Normal)
            .unwrap();
        let db = s.connect().unwrap();
        let hooks = [
            hook("http://a/secret", &["machine_started"], &[]),
            hook(
                "http://b/secret",
                &["machine_started", "presence"],
                &[("machine_started", "{machine} on")],
            ),
        ];
        let ev = Event::MachineStarted {
            machine: "DRILL 1",
            member: "Anna A",
        };
        assert_eq!(notify_to(&db, &hooks, &ev).unwrap(), 2);
        assert_eq!(
            notify_to(&db, &hooks, &Event::Alert { text: "x" }).unwrap(),
            0
        );
        let rows = store::outbox_due(&db, store::now(), 10).unwrap();
        let posts: Vec<Post> = rows
            .iter()
            .map(|r| serde_json::from_str(&r.payload).unwrap())
            .collect();
        assert_eq!(posts[0].text, "Anna A started DRILL 1");
        assert_eq!(posts[1].text, "DRILL 1 on");
        let kept = sent_summary(&rows[0].payload);
        assert!(
            !kept.contains("secret") && kept.contains("DRILL 1"),
            "{kept}"
        );
    }
}
