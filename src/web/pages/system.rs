//! Boards, the daemon and the Pi, a consistent database backup, and run-time settings
//! (lab name, time zone, default language; each staff member's own language).

use super::{Ctx, Method};
use crate::store::{self, BoardInfo};
use crate::web::http::Resp;
use crate::web::i18n::{tr, Lang};
use crate::web::layout::{csrf_field, notice};
use crate::web::time;
use maud::html;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// Italian texts of this area (see `web::i18n`).
pub const IT: &[(&str, &str)] = &[
    ("Writes to the database fail since", "Le scritture sul database falliscono dalle"),
    ("Boards get no reply to starts and stops and keep them until it is fixed; fabgate recovers by itself.", "Le schede non ricevono risposta ad avvii e arresti e li conservano finché non è risolto; fabgate riprende da solo."),
    ("The database is damaged:", "Il database è danneggiato:"),
    ("Stop fabgate and restore the newest backup (fabgate restore FILE).", "Ferma fabgate e ripristina il backup più recente (fabgate restore FILE)."),
    ("Clock not synchronised: backups, purges, closing times and summaries wait until it is.", "Orologio non sincronizzato: backup, pulizie, orari di chiusura e riepiloghi aspettano che lo sia."),
    ("replies withheld", "risposte trattenute"),
    ("Retention is paused for the history imported on", "La conservazione è sospesa per lo storico importato il"),
    ("Uses and interventions older than the retention period will be anonymised and old unknown cards deleted once you apply it; a backup is taken first.", "Utilizzi e interventi più vecchi del periodo di conservazione saranno anonimizzati e le vecchie tessere sconosciute eliminate quando la applichi; prima viene fatto un backup."),
    ("Apply retention", "Applica la conservazione"),
    ("store errors", "errori del database"),
    ("Boards", "Schede"),
    ("Machine", "Macchina"),
    ("Firmware", "Firmware"),
    ("IP address", "Indirizzo IP"),
    ("Serial", "Seriale"),
    ("Free heap", "Memoria libera"),
    ("Last seen", "Ultimo contatto"),
    ("State", "Stato"),
    (
        "No board has reported yet.",
        "Nessuna scheda si è ancora presentata.",
    ),
    ("Daemon", "Demone"),
    ("Version", "Versione"),
    ("Uptime", "In funzione da"),
    ("Memory", "Memoria"),
    ("Database", "Database"),
    ("Boards online", "Schede in linea"),
    ("Board messages", "Messaggi delle schede"),
    ("received", "ricevuti"),
    ("answered", "risposti"),
    ("dropped", "scartati"),
    ("Download a backup", "Scarica un backup"),
    ("The stored password cannot be opened with this Pi's key file (a backup from elsewhere?): enter it again.", "La password salvata non si apre con il file chiave di questo Pi (un backup da un altro?): inseriscila di nuovo."),
    ("Secrets stay out of it: the SMTP password, board credentials, sessions and reset links. After restoring it, enter the SMTP password again and give the boards new credentials (fabgate board add).", "Non contiene segreti: password SMTP, credenziali delle schede, sessioni e link di reimpostazione. Dopo averlo ripristinato, inserisci di nuovo la password SMTP e dai nuove credenziali alle schede (fabgate board add)."),
    (
        "A consistent copy of the database, taken while the lab runs.",
        "Una copia coerente del database, presa mentre il laboratorio funziona.",
    ),
    ("Lab name", "Nome del laboratorio"),
    ("Time zone", "Fuso orario"),
    ("Default language", "Lingua predefinita"),
    ("My language", "La mia lingua"),
    ("Browser's language", "Lingua del browser"),
    ("Settings saved.", "Impostazioni salvate."),
    (
        "Unknown time zone: use a name like Europe/Rome.",
        "Fuso orario sconosciuto: usa un nome come Europe/Rome.",
    ),
    (
        "The lab name must be 1 to 100 characters of plain text.",
        "Il nome del laboratorio deve avere da 1 a 100 caratteri di testo semplice.",
    ),
    ("Lab", "Laboratorio"),
    ("MQTT clients connected", "Client MQTT connessi"),
    ("The Pi", "Il Pi"),
    ("Outgoing messages", "Messaggi in uscita"),
    ("waiting", "in attesa"),
    ("failed", "falliti"),
    ("Outbox", "Posta in uscita"),
    ("SoC temperature", "Temperatura del SoC"),
    ("Power and throttling", "Alimentazione e limitazioni"),
    ("Free disk", "Disco libero"),
    ("Clock synchronised", "Orologio sincronizzato"),
    ("yes", "sì"),
    ("no: session times may be wrong", "no: gli orari delle sessioni possono essere errati"),
    ("Up since boot", "Acceso da"),
    ("How the lab sends mail (password resets, summaries, alerts). Stored passwords are never shown.", "Come il laboratorio invia la posta (reimpostazione password, riepiloghi, avvisi). Le password salvate non vengono mai mostrate."),
    ("SMTP server", "Server SMTP"),
    ("Port", "Porta"),
    ("Security", "Sicurezza"),
    ("none (local relay only)", "nessuna (solo relay locale)"),
    ("Username", "Nome utente"),
    ("stored; leave empty to keep it", "salvata; lascia vuoto per mantenerla"),
    ("Forget the stored password", "Dimentica la password salvata"),
    ("Sender address", "Indirizzo del mittente"),
    ("Check the email settings: server name, port 1-65535, sender address.", "Controlla le impostazioni email: nome del server, porta 1-65535, indirizzo del mittente."),
];

/// The URLs of this area; `None` when the path is not one of them.
pub fn route(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    Some(match (method, segments) {
        (Method::Get, ["system"]) | (Method::Get, ["boards"]) => system(cx),
        (Method::Get, ["backup"]) => backup(cx),
        (Method::Get, ["settings"]) => settings(cx, None, None),
        (Method::Post, ["settings"]) => save_settings(cx),
        (Method::Post, ["settings", "language"]) => save_language(cx),
        (Method::Post, ["settings", "email"]) => save_email(cx),
        (Method::Post, ["system", "retention"]) => confirm_retention(cx),
        _ => return None,
    })
}

/// Whether the clock is synchronised, asked at most once a minute (it runs `timedatectl`).
fn clock_synchronised() -> Option<bool> {
    static LAST: std::sync::Mutex<Option<(std::time::Instant, Option<bool>)>> =
        std::sync::Mutex::new(None);
    let mut last = LAST.lock().ok()?;
    match *last {
        Some((at, value)) if at.elapsed() < std::time::Duration::from_secs(60) => value,
        _ => {
            let value = crate::health::clock_synchronised();
            *last = Some((std::time::Instant::now(), value));
            value
        }
    }
}

/// MQTT clients connected now: established TCP connections to the broker's port, read
/// from the kernel (rumqttd does not expose its connection count).
fn mqtt_clients(port: u16) -> Option<usize> {
    let mut n = 0;
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        for line in text.lines().skip(1) {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1).unwrap_or("");
            let state = cols.nth(1).unwrap_or("");
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 01 = ESTABLISHED; our own loopback probes are not clients.
            if state == "01" && local_port == Some(port) {
                n += 1;
            }
        }
    }
    readable.then_some(n)
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn system(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let machines = match store::machines(cx.db) {
        Ok(m) => m,
        Err(e) => return cx.failure(&e),
    };
    let stored = match store::boards(cx.db) {
        Ok(b) => b,
        Err(e) => return cx.failure(&e),
    };
    // Boards as stored, overlaid with what arrived since the last flush.
    let mut boards: BTreeMap<i64, BoardInfo> = stored
        .into_iter()
        .map(|b| {
            let info = BoardInfo {
                ip: b.ip_address,
                fw_version: b.fw_version,
                serial: b.serial,
                heap: b.heap,
                last_seen: b.last_seen,
            };
            (b.machine_id, info)
        })
        .collect();
    let seen: BTreeMap<i64, Option<i64>> = {
        let Ok(hot) = cx.app.hot.lock() else {
            return cx.failure(&store::Error::Invalid("hot state poisoned".into()));
        };
        for (id, b) in hot.boards() {
            boards.insert(id, b.clone());
        }
        machines
            .iter()
            .map(|m| (m.id, hot.machine_last_seen(m.id).max(m.last_seen)))
            .collect()
    };
    let window = cx.app.rules.online_window_s;
    let online = seen
        .values()
        .filter(|s| crate::lab::is_online(**s, cx.now, window))
        .count();
    let names: BTreeMap<i64, &str> = machines.iter().map(|m| (m.id, m.name.as_str())).collect();
    let db_path = cx.app.store.path().to_path_buf();
    let db_bytes = file_size(&db_path) + file_size(&db_path.with_extension("db-wal"));
    let stats = &cx.app.stats;
    let uptime = cx.app.started.elapsed().as_secs() as i64;
    let outbox = store::outbox_counts(cx.db).unwrap_or((0, 0));
    let (soc, throttled) = (crate::health::soc_temperature(), crate::health::throttled());
    let disk = crate::health::disk_space(db_path.parent().unwrap_or(std::path::Path::new(".")));
    let (clock, boot) = (clock_synchronised(), crate::health::uptime());
    let body = html! {
        h1 { (tr(lang, "System")) }
        (fault_notices(cx))
        @if let Ok(Some(since)) = crate::lab::retention::held_since(cx.db) {
            div.notice.info role="status" {
                p { (tr(lang, "Retention is paused for the history imported on")) " " (time::datetime(&cx.tz, since)) ". "
                    (tr(lang, "Uses and interventions older than the retention period will be anonymised and old unknown cards deleted once you apply it; a backup is taken first.")) }
                form method="post" action="/system/retention" {
                    (csrf_field(cx.csrf()))
                    button.danger type="submit" { (tr(lang, "Apply retention")) }
                }
            }
        }
        section.counters {
            div.counter { b { (online) } span { (tr(lang, "Boards online")) } }
            div.counter { b { (crate::health::rss_bytes().map_or("?".into(), |b| format!("{:.1} MB", b as f64 / 1e6))) } span { (tr(lang, "Memory")) } }
            div.counter { b { (format!("{:.1} MB", db_bytes as f64 / 1e6)) } span { (tr(lang, "Database")) } }
        }
        h2 { (tr(lang, "Boards")) }
        @if boards.is_empty() {
            p.muted { (tr(lang, "No board has reported yet.")) }
        } @else {
            div.scroll { table {
                thead { tr {
                    th { (tr(lang, "Machine")) } th { (tr(lang, "State")) } th { (tr(lang, "Firmware")) }
                    th { (tr(lang, "IP address")) } th { (tr(lang, "Serial")) } th { (tr(lang, "Free heap")) }
                    th { (tr(lang, "Last seen")) }
                } }
                tbody {
                    @for (id, b) in &boards {
                        @let last = seen.get(id).copied().flatten().max(Some(b.last_seen));
                        @let up = crate::lab::is_online(last, cx.now, window);
                        tr {
                            td { (id) " · " (names.get(id).copied().unwrap_or("?")) }
                            td { span class={"badge " (if up { "free" } else { "offline" })} {
                                (if up { tr(lang, "online") } else { tr(lang, "offline") }) } }
                            td { (b.fw_version) }
                            td { (b.ip) }
                            td { (b.serial) }
                            td { (if b.heap > 0 { format!("{} KiB", b.heap / 1024) } else { "—".into() }) }
                            td { (last.map_or("—".into(), |t| time::datetime(&cx.tz, t))) }
                        }
                    }
                }
            } }
        }
        h2 { (tr(lang, "The Pi")) }
        div.scroll { table { tbody {
            tr { th { (tr(lang, "SoC temperature")) } td { (soc.map_or("—".into(), |t| format!("{t:.1} °C"))) } }
            tr { th { (tr(lang, "Power and throttling")) } td {
                @match throttled {
                    Some(t) => { (t.describe()) }
                    None => { "—" }
                }
            } }
            tr { th { (tr(lang, "Free disk")) } td { (disk.map_or("—".into(), |d| format!("{:.1} GB of {:.1} GB", d.available as f64 / 1e9, d.total as f64 / 1e9))) } }
            tr { th { (tr(lang, "Clock synchronised")) } td { (match clock { Some(true) => tr(lang, "yes"), Some(false) => tr(lang, "no: session times may be wrong"), None => "—" }) } }
            tr { th { (tr(lang, "Up since boot")) } td { (boot.map_or("—".into(), |u| time::duration(u.as_secs() as i64))) } }
        } } }
        h2 { (tr(lang, "Daemon")) }
        div.scroll { table { tbody {
            tr { th { (tr(lang, "Version")) } td { "fabgate " (env!("CARGO_PKG_VERSION")) } }
            tr { th { (tr(lang, "Uptime")) } td { (time::duration(uptime)) } }
            tr { th { (tr(lang, "MQTT clients connected")) } td { (mqtt_clients(cx.app.mqtt_port).map_or("?".into(), |n| n.to_string())) } }
            tr { th { (tr(lang, "Board messages")) } td {
                (stats.received.load(Ordering::Relaxed)) " " (tr(lang, "received")) " · "
                (stats.sent.load(Ordering::Relaxed)) " " (tr(lang, "answered")) " · "
                (stats.dropped.load(Ordering::Relaxed)) " " (tr(lang, "dropped")) " · "
                (stats.faults.withheld.load(Ordering::Relaxed)) " " (tr(lang, "replies withheld")) " · "
                (stats.faults.store_errors.load(Ordering::Relaxed)) " " (tr(lang, "store errors")) } }
            tr { th { (tr(lang, "Database")) } td { (db_path.display()) } }
            tr { th { (tr(lang, "Outgoing messages")) } td {
                (outbox.0) " " (tr(lang, "waiting")) " · " (outbox.1) " " (tr(lang, "failed")) " · "
                a href="/outbox" { (tr(lang, "Outbox")) }
            } }
        } } }
        h2 { (tr(lang, "Download a backup")) }
        p { (tr(lang, "A consistent copy of the database, taken while the lab runs.")) " "
            (tr(lang, "Secrets stay out of it: the SMTP password, board credentials, sessions and reset links. After restoring it, enter the SMTP password again and give the boards new credentials (fabgate board add).")) " "
            a.button.secondary href="/backup" { (tr(lang, "Download a backup")) } }
    };
    cx.page(tr(lang, "System"), "/system", body)
}

/// A consistent copy (`VACUUM INTO`: readers and the boards keep working while it is
/// taken) without the lab's secrets (`backup::shareable_copy`).
fn backup(cx: &mut Ctx) -> Resp {
    // Written beside the database (the data directory is ours and writable), read, removed.
    let path = cx
        .app
        .store
        .path()
        .with_file_name(format!(".backup-{}.db", crate::broker::random_hex(6)));
    let taken = store::backup::shareable_copy(cx.db, &path);
    let bytes = taken.and_then(|_| {
        std::fs::read(&path).map_err(|e| store::Error::Invalid(format!("reading the backup: {e}")))
    });
    let _ = std::fs::remove_file(&path);
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return cx.failure(&e),
    };
    let stamp = jiff::Timestamp::from_second(cx.now)
        .map(|t| {
            t.to_zoned(cx.tz.clone())
                .strftime("%Y%m%d-%H%M")
                .to_string()
        })
        .unwrap_or_default();
    log::info!("panel: database backup downloaded ({} bytes)", bytes.len());
    Resp::new(200, "application/vnd.sqlite3", bytes).header(
        "Content-Disposition",
        &format!("attachment; filename=\"fabgate-{stamp}.db\""),
    )
}

fn settings(
    cx: &mut Ctx,
    message: Option<(&str, &str)>,
    entered: Option<(&str, &str, &str)>,
) -> Resp {
    let lang = cx.lang;
    let saved = cx.req.param("ok") == "saved";
    let get = |k: &str| store::setting(cx.db, k).ok().flatten().unwrap_or_default();
    let (name, zone, default_lang) = match entered {
        Some((n, z, l)) => (n.to_string(), z.to_string(), l.to_string()),
        None => (
            crate::web::accounts::lab_name(cx.db),
            get("timezone"),
            get("language"),
        ),
    };
    let email = EmailSettings::load(cx.db);
    let system_zone = jiff::tz::TimeZone::system()
        .iana_name()
        .unwrap_or("UTC")
        .to_string();
    let mine = cx
        .session
        .as_ref()
        .and_then(|s| s.language.clone())
        .unwrap_or_default();
    let langs = [("en", "English"), ("it", "Italiano")];
    let admin = cx.can(crate::web::access::Capability::Administrator);
    let body = html! {
        h1 { (tr(lang, "Settings")) }
        @if saved { (notice("ok", tr(lang, "Settings saved."))) }
        @if let Some((kind, text)) = message { (notice(kind, text)) }
        @if admin {
        div.panel {
            h2 { (tr(lang, "Lab")) }
            form.stack method="post" action="/settings" {
                (csrf_field(cx.csrf()))
                label { (tr(lang, "Lab name")) input name="lab_name" value=(name) maxlength="100" required; }
                label { (tr(lang, "Time zone"))
                    input name="timezone" value=(zone) placeholder=(system_zone) list="zones"; }
                datalist id="zones" {
                    @for z in ["Europe/Rome", "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Madrid", "UTC", "America/New_York"] { option value=(z) {} }
                }
                label { (tr(lang, "Default language"))
                    select name="language" {
                        option value="" selected[default_lang.is_empty()] { (tr(lang, "Browser's language")) }
                        @for (code, label) in langs { option value=(code) selected[default_lang == code] { (label) } }
                    }
                }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
        div.panel.spaced id="email" {
            h2 { (tr(lang, "Email")) }
            p.muted { (tr(lang, "How the lab sends mail (password resets, summaries, alerts). Stored passwords are never shown.")) }
            form.stack method="post" action="/settings/email" {
                (csrf_field(cx.csrf()))
                label { (tr(lang, "SMTP server")) input name="smtp_host" value=(email.host) placeholder="smtp.example.org" maxlength="253"; }
                label { (tr(lang, "Port")) input type="number" name="smtp_port" value=(email.port) min="1" max="65535"; }
                label { (tr(lang, "Security"))
                    select name="smtp_tls" {
                        @for (code, label) in [("starttls", "STARTTLS"), ("tls", "TLS"), ("none", tr(lang, "none (local relay only)"))] {
                            option value=(code) selected[email.tls == code] { (label) }
                        }
                    }
                }
                label { (tr(lang, "Username")) input name="smtp_user" value=(email.user) autocomplete="off" maxlength="254"; }
                label { (tr(lang, "Password"))
                    input type="password" name="smtp_password" value="" autocomplete="new-password"
                        placeholder=(if email.has_password { tr(lang, "stored; leave empty to keep it") } else { "" }); }
                @if email.unreadable { p.notice.error { (tr(lang, "The stored password cannot be opened with this Pi's key file (a backup from elsewhere?): enter it again.")) } }
                label.check { input type="checkbox" name="smtp_forget" value="1"; (tr(lang, "Forget the stored password")) }
                label { (tr(lang, "Sender address")) input type="email" name="smtp_from" value=(email.from) placeholder="fablab@example.org" maxlength="254"; }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
        }
        div.panel.spaced {
            h2 { (tr(lang, "My language")) }
            form.stack method="post" action="/settings/language" {
                (csrf_field(cx.csrf()))
                select name="language" {
                    option value="" selected[mine.is_empty()] { (tr(lang, "Browser's language")) }
                    @for (code, label) in langs { option value=(code) selected[mine == code] { (label) } }
                }
                button type="submit" { (tr(lang, "Save")) }
            }
        }
    };
    cx.page(tr(lang, "Settings"), "/settings", body)
}

fn save_settings(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let (name, zone, language) = (
        cx.req.field("lab_name").to_string(),
        cx.req.field("timezone").to_string(),
        cx.req.field("language").to_string(),
    );
    let entered = (name.as_str(), zone.as_str(), language.as_str());
    let Ok(name) = crate::validate::text("lab name", &name, 1, crate::validate::NAME_MAX) else {
        return settings(
            cx,
            Some((
                "error",
                tr(
                    lang,
                    "The lab name must be 1 to 100 characters of plain text.",
                ),
            )),
            Some(entered),
        )
        .status(400);
    };
    if !zone.is_empty() && jiff::tz::TimeZone::get(&zone).is_err() {
        return settings(
            cx,
            Some((
                "error",
                tr(lang, "Unknown time zone: use a name like Europe/Rome."),
            )),
            Some(entered),
        )
        .status(400);
    }
    let language = Lang::from_code(&language).map(|l| l.code()).unwrap_or("");
    let result = (|| {
        let tx = cx.db.transaction()?;
        store::set_setting(&tx, "lab_name", &name)?;
        store::set_setting(&tx, "timezone", &zone)?;
        store::set_setting(&tx, "language", language)?;
        tx.commit()?;
        Ok::<_, store::Error>(())
    })();
    match result {
        Ok(()) => Resp::redirect("/settings?ok=saved"),
        Err(e) => cx.failure(&e),
    }
}

/// Outgoing mail settings as the panel shows them: the password only as "stored or not".
struct EmailSettings {
    host: String,
    port: String,
    tls: String,
    user: String,
    from: String,
    has_password: bool,
    /// Stored, but the key file here does not open it (a backup from another Pi).
    unreadable: bool,
}

impl EmailSettings {
    fn load(db: &rusqlite::Connection) -> EmailSettings {
        let get = |k: &str| store::setting(db, k).ok().flatten().unwrap_or_default();
        EmailSettings {
            host: get("smtp_host"),
            port: get("smtp_port"),
            tls: get("smtp_tls"),
            user: get("smtp_user"),
            from: get("smtp_from"),
            has_password: store::has_secret(db, "smtp_password").unwrap_or(false),
            unreadable: store::has_secret(db, "smtp_password").unwrap_or(false)
                && store::secret(db, "smtp_password").ok().flatten().is_none(),
        }
    }
}

fn save_email(cx: &mut Ctx) -> Resp {
    let lang = cx.lang;
    let f = |k: &str| cx.req.field(k).to_string();
    let (host, port, tls, user, password, from) = (
        f("smtp_host"),
        f("smtp_port"),
        f("smtp_tls"),
        f("smtp_user"),
        cx.req
            .form
            .iter()
            .find(|(k, _)| k == "smtp_password")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        f("smtp_from"),
    );
    let bad_host = !host.is_empty()
        && (host.len() > 253
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
    let bad_port = !port.is_empty() && port.parse::<u16>().map_or(true, |p| p == 0);
    let bad_tls = !["starttls", "tls", "none", ""].contains(&tls.as_str());
    let bad_from = !from.is_empty() && crate::validate::email(&from).is_err();
    let bad_user = crate::validate::text("username", &user, 0, 254).is_err();
    let bad_password = password.len() > 512 || password.chars().any(char::is_control);
    if bad_host || bad_port || bad_tls || bad_from || bad_user || bad_password {
        return settings(
            cx,
            Some((
                "error",
                tr(
                    lang,
                    "Check the email settings: server name, port 1-65535, sender address.",
                ),
            )),
            None,
        )
        .status(400);
    }
    let forget = cx.req.field("smtp_forget") == "1";
    let result = (|| {
        let tx = cx.db.transaction()?;
        // The stored password goes only where it was typed for: a new server, port,
        // security or username without a new password forgets it (else whoever may edit
        // settings could point the host at their own server and receive it).
        let get = |k: &str| store::setting(&tx, k).map(Option::unwrap_or_default);
        let moved = get("smtp_host")? != host
            || get("smtp_port")? != port
            || get("smtp_tls")? != tls
            || get("smtp_user")? != user;
        for (k, v) in [
            ("smtp_host", &host),
            ("smtp_port", &port),
            ("smtp_tls", &tls),
            ("smtp_user", &user),
            ("smtp_from", &from),
        ] {
            store::set_setting(&tx, k, v)?;
        }
        if !password.is_empty() && !forget {
            store::set_secret(&tx, "smtp_password", &password)?;
        } else if forget || moved {
            if moved && store::has_secret(&tx, "smtp_password")? {
                log::info!("panel: SMTP server settings changed: the stored password is forgotten");
            }
            store::set_secret(&tx, "smtp_password", "")?;
        }
        // Emails waiting for the old settings are tried with the new ones now.
        store::outbox_due_now(&tx, "email", None, cx.now)?;
        tx.commit()?;
        Ok::<_, store::Error>(())
    })();
    match result {
        Ok(()) => {
            crate::sync::holds::release_kind("email");
            crate::sync::wake();
            Resp::redirect("/settings?ok=saved")
        }
        Err(e) => cx.failure(&e),
    }
}

fn save_language(cx: &mut Ctx) -> Resp {
    let Some(member) = cx.session.as_ref().map(|s| s.member_id) else {
        return Resp::redirect("/login");
    };
    let language = Lang::from_code(cx.req.field("language")).map(|l| l.code());
    match cx.db.execute(
        "UPDATE members SET language = ?2 WHERE member_id = ?1",
        rusqlite::params![member, language],
    ) {
        Ok(_) => Resp::redirect("/settings?ok=saved"),
        Err(e) => cx.failure(&e.into()),
    }
}

/// Red lines for store faults and the clock (issue 12), on the dashboard and this page:
/// nothing while all is well.
pub fn fault_notices(cx: &Ctx) -> maud::Markup {
    let lang = cx.lang;
    let faults = &cx.app.stats.faults;
    html! {
        @if let Some(f) = faults.write_fault() {
            p.notice.error role="alert" {
                (tr(lang, "Writes to the database fail since")) " " (time::datetime(&cx.tz, f.since)) ": "
                (f.cause) ". " (tr(lang, "Boards get no reply to starts and stops and keep them until it is fixed; fabgate recovers by itself."))
            }
        }
        @if let Some(f) = faults.damage() {
            p.notice.error role="alert" {
                (tr(lang, "The database is damaged:")) " " (f.cause) ". "
                (tr(lang, "Stop fabgate and restore the newest backup (fabgate restore FILE)."))
            }
        }
        @if !faults.clock_synchronised() {
            p.notice.error role="status" {
                (tr(lang, "Clock not synchronised: backups, purges, closing times and summaries wait until it is."))
            }
        }
    }
}

/// Staff confirm the retention of an imported history; the jobs thread purges within a
/// minute (with a backup first).
fn confirm_retention(cx: &mut Ctx) -> Resp {
    let me = cx.session.as_ref().map_or(0, |s| s.member_id);
    match crate::lab::retention::confirm(cx.db) {
        Ok(_) => {
            log::info!("panel: member {me} confirmed the retention of the imported history");
            Resp::redirect("/system")
        }
        Err(e) => cx.failure(&e),
    }
}
