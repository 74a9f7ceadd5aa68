//! The live dashboard: every machine as a card (free / in use / blocked / maintenance due /
//! board offline) with counters on top. `/events` streams a `change` event whenever a
//! board message arrives or another process commits, and `live.js` re-fetches the cards.

use super::Ctx;
use crate::lab;
use crate::web::http::{Body, Resp};
use crate::web::i18n::{tr, Lang};
use crate::web::time;
use jiff::tz::TimeZone;
use maud::{html, Markup};
use rusqlite::Connection;
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One machine as the dashboard shows it.
pub struct Card {
    pub id: i64,
    pub name: String,
    pub type_name: Option<String>,
    pub blocked: bool,
    pub online: bool,
    pub last_seen: Option<i64>,
    /// (member name, since) of the open use.
    pub in_use: Option<(String, i64)>,
    pub due: bool,
    pub firmware: Option<String>,
    pub ip: Option<String>,
}

pub struct Counters {
    pub in_use: usize,
    pub members_today: i64,
    pub hours_week: f64,
}

pub fn cards(cx: &Ctx) -> crate::store::Result<Vec<Card>> {
    let db: &Connection = cx.db;
    let machines = crate::store::machines(db)?;
    let mut open: HashMap<i64, (String, i64)> = HashMap::new();
    {
        let mut st = db.prepare_cached(
            "SELECT u.machine_id, m.name || CASE WHEN m.surname <> '' THEN ' ' || m.surname ELSE '' END, u.start_ts
             FROM uses u JOIN members m ON m.member_id = u.member_id WHERE u.end_ts IS NULL ORDER BY u.use_id",
        )?;
        for row in st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (machine, who, since) = row?;
            open.entry(machine).or_insert((who, since));
        }
    }
    let mut boards: HashMap<i64, (String, String, i64)> = HashMap::new();
    {
        let mut st =
            db.prepare_cached("SELECT machine_id, fw_version, ip_address, last_seen FROM boards")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))? {
            let (id, b) = row?;
            boards.insert(id, b);
        }
    }
    let due = due_machines(db)?;
    let hot = cx
        .app
        .hot
        .lock()
        .map_err(|_| crate::store::Error::Invalid("hot state poisoned".into()))?;
    Ok(machines
        .into_iter()
        .map(|m| {
            let seen = hot.machine_last_seen(m.id).max(m.last_seen);
            let board = hot
                .board(m.id)
                .map(|b| (b.fw_version.clone(), b.ip.clone()))
                .or_else(|| {
                    boards
                        .get(&m.id)
                        .map(|(fw, ip, _)| (fw.clone(), ip.clone()))
                });
            Card {
                id: m.id,
                online: lab::is_online(seen, cx.now, cx.app.rules.online_window_s),
                last_seen: seen,
                in_use: open.remove(&m.id),
                due: due.contains(&m.id),
                firmware: board
                    .as_ref()
                    .map(|b| b.0.clone())
                    .filter(|s| !s.is_empty()),
                ip: board.map(|b| b.1).filter(|s| !s.is_empty()),
                name: m.name,
                type_name: m.type_name,
                blocked: m.blocked,
            }
        })
        .collect())
}

/// Machines with at least one overdue maintenance plan (the rule is `lab::overdue`).
fn due_machines(db: &Connection) -> crate::store::Result<Vec<i64>> {
    let mut st = db.prepare_cached(
        "SELECT p.machine_id, p.hours_between,
           (SELECT COALESCE(SUM(u.end_ts - u.start_ts), 0) FROM uses u
            WHERE u.machine_id = p.machine_id AND u.end_ts IS NOT NULL AND u.start_ts > COALESCE(
              (SELECT MAX(i.timestamp) FROM interventions i
               WHERE i.maintenance_id = p.maintenance_id AND i.machine_id = p.machine_id), 0))
         FROM maintenances p",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut due = Vec::new();
    for row in rows {
        let (machine, hours, used) = row?;
        if lab::overdue(hours, used) && !due.contains(&machine) {
            due.push(machine);
        }
    }
    Ok(due)
}

/// Uses that overlap a period are found by range scans on `uses(start_ts)`: those that
/// started in it, plus those that started up to `LOOKBACK` before it (a session longer than
/// that is an error in old data and is left out), plus the open ones.
const LOOKBACK: i64 = 2 * 86_400;

pub fn counters(cx: &Ctx, cards: &[Card]) -> crate::store::Result<Counters> {
    let (day, week) = time::day_and_week_start(&cx.tz, cx.now);
    let members_today: i64 = cx
        .db
        .prepare_cached(
            "SELECT COUNT(DISTINCT member_id) FROM (
           SELECT member_id FROM uses WHERE start_ts >= ?1 - ?2 AND (start_ts >= ?1 OR end_ts >= ?1)
           UNION ALL SELECT member_id FROM uses WHERE end_ts IS NULL)",
        )?
        .query_row([day, LOOKBACK], |r| r.get(0))?;
    let seconds: i64 = cx.db.prepare_cached(
        "SELECT COALESCE(SUM(MIN(COALESCE(end_ts, ?3), ?3) - MAX(start_ts, ?1)), 0) FROM (
           SELECT start_ts, end_ts FROM uses WHERE start_ts >= ?1 - ?2 AND start_ts < ?3 AND end_ts > ?1
           UNION ALL SELECT start_ts, end_ts FROM uses WHERE end_ts IS NULL)",
    )?.query_row([week, LOOKBACK, cx.now], |r| r.get(0))?;
    Ok(Counters {
        in_use: cards.iter().filter(|c| c.in_use.is_some()).count(),
        members_today,
        hours_week: seconds.max(0) as f64 / 3600.0,
    })
}

pub fn page(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let (cards, counters) = match cards(cx).and_then(|c| counters(cx, &c).map(|n| (c, n))) {
        Ok(v) => v,
        Err(e) => return cx.failure(&e),
    };
    let body = html! {
        h1 { (tr(lang, "Dashboard")) " " span id="live-dot" class="live" { (tr(lang, "Live")) } }
        (super::system::fault_notices(cx))
        (sync_notice(cx))
        section.counters {
            div.counter { b { (counters.in_use) } span { (tr(lang, "In use now")) } }
            div.counter { b { (counters.members_today) } span { (tr(lang, "Members today")) } }
            div.counter { b { (format!("{:.1}", counters.hours_week)) } span { (tr(lang, "Hours this week")) } }
        }
        div id="live-cards" { (render_cards(&cards, lang, &cx.tz, cx.now)) }
        script src="/assets/live.js" defer {}
        noscript { p.muted { "Reload the page to see changes." } }
    };
    cx.page(tr(lang, "Dashboard"), "/", body)
}

/// Upstream sync at a glance: nothing while mail and calendars flow; a line when messages
/// failed for good or wait for the network.
fn sync_notice(cx: &Ctx) -> Markup {
    let lang = cx.lang;
    let (pending, failed) = crate::store::outbox_counts(cx.db).unwrap_or((0, 0));
    let offline = crate::sync::status().online() == Some(false);
    html! {
        @if pending > 0 {
            (super::outbox::settings_notices(cx, &crate::sync::holds::settings_problems(cx.now), "/"))
        }
        @if failed > 0 {
            p.notice.error role="status" {
                (failed) " " (tr(lang, if failed == 1 {
                    "message could not be delivered."
                } else {
                    "messages could not be delivered."
                })) " "
                a href="/outbox" { (tr(lang, "Outbox")) }
            }
        }
        @if offline && pending > 0 {
            p.notice.info role="status" {
                (pending) " " (tr(lang, if pending == 1 {
                    "message waits for the network; it is sent when it is back."
                } else {
                    "messages wait for the network; they are sent when it is back."
                })) " "
                a href="/outbox" { (tr(lang, "Outbox")) }
            }
        }
    }
}

/// The cards alone, for live updates.
pub fn fragment(cx: &mut Ctx) -> Resp {
    match cards(cx) {
        Ok(cards) => Resp::html(render_cards(&cards, cx.lang, &cx.tz, cx.now)),
        Err(e) => cx.failure(&e),
    }
}

pub fn render_cards(cards: &[Card], lang: Lang, tz: &TimeZone, now: i64) -> Markup {
    html! {
        @if cards.is_empty() { p.muted { (tr(lang, "No machines yet.")) } }
        div.cards {
            @for c in cards {
                @let (class, label) = if c.blocked {
                    ("blocked", tr(lang, "blocked"))
                } else if c.in_use.is_some() {
                    ("busy", tr(lang, "in use"))
                } else if !c.online {
                    ("offline", tr(lang, "offline"))
                } else {
                    ("free", tr(lang, "free"))
                };
                article class={"card " (class)} data-machine=(c.id) {
                    h3 { a href={"/machines/" (c.id)} { (c.name) } span class={"badge " (class)} { (label) } }
                    @if let Some((who, since)) = &c.in_use {
                        div { span.who { (who) } " · " (time::duration(now - since)) }
                    }
                    div {
                        @if c.due { span.badge.due { (tr(lang, "maintenance due")) } " " }
                        @if c.in_use.is_some() && !c.online { span.badge.offline { (tr(lang, "offline")) } }
                    }
                    div.meta {
                        @if let Some(t) = &c.type_name { (t) " · " }
                        (tr(lang, "Board")) " "
                        @match c.last_seen {
                            Some(ts) => { (tr(lang, "last seen")) " " (time::datetime(tz, ts)) }
                            None => { (tr(lang, "never seen")) }
                        }
                        @if let Some(fw) = &c.firmware { br; (fw) }
                        @if let Some(ip) = &c.ip { " · " (ip) }
                    }
                }
            }
        }
    }
}

/// `/events`: Server-Sent Events announcing changes. Refused (503) above the cap.
pub fn events(cx: &mut Ctx) -> Resp {
    let app = cx.app;
    let now_live = app.live_clients.fetch_add(1, Ordering::SeqCst);
    if now_live >= app.cfg.max_live_clients {
        app.live_clients.fetch_sub(1, Ordering::SeqCst);
        return Resp::text(503, "Too many live dashboards open.").header("Retry-After", "30");
    }
    let conn = match app.store.connect() {
        Ok(c) => c,
        Err(e) => {
            app.live_clients.fetch_sub(1, Ordering::SeqCst);
            return cx.failure(&e);
        }
    };
    let stream = Changes {
        stats: app.stats.clone(),
        live: app.live_clients.clone(),
        conn,
        seen: None,
        pending: b"retry: 2000\n\n".to_vec(),
        last_write: Instant::now(),
    };
    Resp {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "text/event-stream".into()),
            ("Cache-Control".into(), "no-cache".into()),
            ("X-Accel-Buffering".into(), "no".into()),
        ],
        body: Body::Stream(Box::new(stream)),
    }
}

/// How often the stream looks for changes, and how often it sends a keep-alive comment
/// (a write to a vanished browser fails, which ends the stream and frees its thread).
const POLL: Duration = Duration::from_millis(250);
const KEEPALIVE: Duration = Duration::from_secs(15);

struct Changes {
    stats: std::sync::Arc<crate::terminals::Stats>,
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    conn: Connection,
    seen: Option<(u64, i64)>,
    pending: Vec<u8>,
    last_write: Instant,
}

impl Changes {
    fn version(&self) -> (u64, i64) {
        let received = self.stats.received.load(Ordering::Relaxed);
        let data: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap_or(0);
        (received, data)
    }
}

impl Read for Changes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                self.last_write = Instant::now();
                return Ok(n);
            }
            let v = self.version();
            match self.seen {
                Some(old) if old == v => {}
                Some(_) => self
                    .pending
                    .extend_from_slice(b"event: change\ndata: 1\n\n"),
                None => {}
            }
            self.seen = Some(v);
            if self.pending.is_empty() {
                if self.last_write.elapsed() >= KEEPALIVE {
                    self.pending.extend_from_slice(b": keep-alive\n\n");
                } else {
                    std::thread::sleep(POLL);
                }
            }
        }
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}
