//! `fabgate doctor`: checks that this machine can run the lab and says what to fix.
//! Essential checks (configuration, MQTT port, writable data directory, sound database,
//! disk space) decide the exit code; the others (clock, SPI/GPIO, power, backups) are
//! advice. Readings come from `health`, database checks from `store::backup`.

use super::admin::emit;
use crate::config::Config;
use crate::health;
use crate::store::{self, backup};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    /// Works, but worth a look.
    Warn,
    /// fabgate cannot run (or loses data) until fixed.
    Fail,
}

struct Report {
    lines: String,
    failed: usize,
    warned: usize,
}

impl Report {
    fn add(&mut self, level: Level, what: &str, text: &str, fix: Option<&str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => {
                self.warned += 1;
                "WARN"
            }
            Level::Fail => {
                self.failed += 1;
                "FAIL"
            }
        };
        self.lines.push_str(&format!("{tag}  {what}: {text}\n"));
        if let Some(fix) = fix {
            self.lines.push_str(&format!("      fix: {fix}\n"));
        }
    }
}

/// Below this, the daily backups and the WAL may not fit: a warning.
const LOW_DISK: u64 = 200 * 1024 * 1024;
/// Below this, SQLite may fail to commit: essential.
const FULL_DISK: u64 = 20 * 1024 * 1024;

pub fn run(config: &Config) -> super::anyhow_lite::Result {
    let mut r = Report {
        lines: String::new(),
        failed: 0,
        warned: 0,
    };
    r.add(Level::Ok, "configuration", "valid", None);
    let daemon_running = store::is_locked(&config.store.data_dir);
    port(&mut r, "MQTT port", config.broker.listen, daemon_running);
    if let Some(addr) = config.metrics_addr() {
        port(&mut r, "metrics port", addr, daemon_running);
    }
    data_dir(&mut r, &config.store.data_dir);
    database(&mut r, config);
    writes(&mut r, &config.database_path());
    disk(&mut r, &config.store.data_dir);
    clock(&mut r);
    devices(&mut r);
    power(&mut r);
    backups(&mut r, config);
    r.lines.push_str(&format!(
        "\n{} essential problem(s), {} warning(s){}\n",
        r.failed,
        r.warned,
        if daemon_running {
            "; the daemon is running"
        } else {
            "; the daemon is not running"
        }
    ));
    emit(&r.lines)?;
    if r.failed > 0 {
        return Err(format!("doctor found {} essential problem(s)", r.failed));
    }
    Ok(())
}

fn port(r: &mut Report, what: &str, addr: SocketAddr, daemon_running: bool) {
    if addr.port() == 0 {
        r.add(Level::Ok, what, "any free port (port 0)", None);
        return;
    }
    match TcpListener::bind(addr) {
        Ok(_) => r.add(Level::Ok, what, &format!("{addr} is free"), None),
        Err(_) if daemon_running => r.add(
            Level::Ok,
            what,
            &format!("{addr} is held by the running fabgate"),
            None,
        ),
        Err(e) => r.add(
            Level::Fail,
            what,
            &format!("cannot bind {addr}: {e}"),
            Some("stop the program holding it (`ss -ltnp` shows it; often mosquitto: `systemctl disable --now mosquitto`) or change the port in the config"),
        ),
    }
}

fn data_dir(r: &mut Report, dir: &Path) {
    let probe = dir.join(".fabgate-doctor");
    let result = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b"probe"))
        .and_then(|_| std::fs::remove_file(&probe));
    match result {
        Ok(()) => r.add(Level::Ok, "data directory", &format!("{} is writable", dir.display()), None),
        Err(e) => r.add(
            Level::Fail,
            "data directory",
            &format!("{} is not writable: {e}", dir.display()),
            Some("run as the fabgate user (sudo -u fabgate fabgate doctor) or fix the owner: chown -R fabgate: /var/lib/fabgate"),
        ),
    }
}

fn database(r: &mut Report, config: &Config) {
    let path = &config.database_path();
    if !path.exists() {
        r.add(
            Level::Ok,
            "database",
            &format!("{} not created yet (the daemon creates it)", path.display()),
            None,
        );
        return;
    }
    match backup::inspect(path) {
        Ok(i) => r.add(
            Level::Ok,
            "database",
            &format!(
                "{} passes its integrity check (schema {}, {} members, {} machines, {} uses)",
                path.display(),
                i.schema_version,
                i.members,
                i.machines,
                i.uses
            ),
            None,
        ),
        Err(e) => {
            let fix = match store::startup::newest_backup(&config.backup_dir()) {
                Some(b) => format!(
                    "stop fabgate and restore the newest backup: fabgate restore {}",
                    b.display()
                ),
                None => format!(
                    "stop fabgate and restore a backup (fabgate restore FILE); none in {}",
                    config.backup_dir().display()
                ),
            };
            r.add(Level::Fail, "database", &e.to_string(), Some(&fix))
        }
    }
}

/// A real write, committed and undone: the only way to see that the store takes writes
/// (a full disk, a file system turned read-only, damage where the daemon writes).
fn writes(r: &mut Report, path: &Path) {
    if !store::startup::database_present(path) {
        return;
    }
    let probe = || -> store::Result<()> {
        let store = store::Store::open_existing(path, crate::config::Synchronous::Normal)?;
        let mut conn = store.connect()?;
        let tx = conn.transaction()?;
        store::set_setting(&tx, "doctor_probe", &store::now().to_string())?;
        tx.commit()?;
        conn.execute("DELETE FROM settings WHERE key = 'doctor_probe'", [])?;
        Ok(())
    };
    match probe() {
        Ok(()) => r.add(Level::Ok, "database writes", "a test write was committed", None),
        Err(e) => r.add(
            Level::Fail,
            "database writes",
            &format!(
                "writes fail: {}; boards get no reply to starts and stops until it is fixed",
                crate::metrics::describe_store_error(&e.to_string())
            ),
            Some("free space (old backups, journalctl --vacuum-size=50M), check the SD card (dmesg: read-only remount), or restore a damaged database"),
        ),
    }
}

fn disk(r: &mut Report, dir: &Path) {
    let Some(d) = health::disk_space(dir) else {
        r.add(Level::Warn, "disk space", "unknown", None);
        return;
    };
    let text = format!(
        "{} MiB free of {} MiB",
        d.available / (1024 * 1024),
        d.total / (1024 * 1024)
    );
    let (level, fix) = if d.available < FULL_DISK {
        (
            Level::Fail,
            Some("free space: old backups, journalctl --vacuum-size=50M"),
        )
    } else if d.available < LOW_DISK {
        (
            Level::Warn,
            Some("free space soon: old backups, journalctl --vacuum-size=50M"),
        )
    } else {
        (Level::Ok, None)
    };
    r.add(level, "disk space", &text, fix);
}

fn clock(r: &mut Report) {
    match health::clock_synchronised() {
        Some(true) => r.add(Level::Ok, "clock", "synchronised", None),
        Some(false) => r.add(
            Level::Warn,
            "clock",
            "not synchronised: a Pi has no battery clock, so session times are wrong until it syncs",
            Some("enable NTP: timedatectl set-ntp true (and check network access to an NTP server)"),
        ),
        None => r.add(Level::Warn, "clock", "synchronisation unknown", None),
    }
}

fn devices(r: &mut Report) {
    for (dev, what, fix) in [
        (
            "/dev/spidev0.0",
            "SPI (RFID readers on the Pi)",
            "enable SPI with dtparam=spi=on in /boot/firmware/config.txt, then reboot",
        ),
        (
            "/dev/gpiomem",
            "GPIO",
            "use Raspberry Pi OS, or load the GPIO driver for this board",
        ),
    ] {
        if Path::new(dev).exists() {
            r.add(Level::Ok, what, &format!("{dev} present"), None);
        } else {
            r.add(
                Level::Warn,
                what,
                &format!("{dev} not found (only needed for readers wired to the Pi)"),
                Some(fix),
            );
        }
    }
}

fn power(r: &mut Report) {
    if let Some(t) = health::soc_temperature() {
        let level = if t >= 80.0 { Level::Warn } else { Level::Ok };
        let fix =
            (level == Level::Warn).then_some("add a heatsink or a fan; check the case's airflow");
        r.add(level, "SoC temperature", &format!("{t:.1} °C"), fix);
    }
    match health::throttled() {
        Some(t) if t.0 != 0 => r.add(
            Level::Warn,
            "power",
            &t.describe(),
            Some("use the official power supply: under-voltage corrupts SD cards"),
        ),
        Some(_) => r.add(
            Level::Ok,
            "power",
            "no under-voltage or throttling since boot",
            None,
        ),
        None => {}
    }
    if let Some(up) = health::uptime() {
        r.add(
            Level::Ok,
            "uptime",
            &format!(
                "{} days {} h",
                up.as_secs() / 86_400,
                up.as_secs() % 86_400 / 3600
            ),
            None,
        );
    }
}

fn backups(r: &mut Report, config: &Config) {
    if !config.backup.enabled {
        r.add(
            Level::Warn,
            "backups",
            "daily backups are off",
            Some("set [backup] enabled = true"),
        );
        return;
    }
    let dir = config.backup_dir();
    match backup::daily_backups(&dir).last() {
        Some((t, path)) => {
            let age_h = (store::now() - t) / 3600;
            let level = if age_h > 48 { Level::Warn } else { Level::Ok };
            r.add(
                level,
                "backups",
                &format!("newest {} ({age_h} h old)", path.display()),
                (level == Level::Warn)
                    .then_some("is the daemon running? see journalctl -u fabgate"),
            );
        }
        None => r.add(
            Level::Ok,
            "backups",
            &format!("none yet in {} (the daemon makes one a day)", dir.display()),
            None,
        ),
    }
}
