//! SD-card wear: bytes the daemon writes to storage per hour for N boards at the
//! firmware's real cadence (protocol.md §2: `checkmachine` every 30 s, `alive` every 2 min,
//! `inuse` every 30 s during a session), with a few sessions started and stopped.
//!
//!     cargo run --release --example sdwear -- --boards 50 --seconds 150
//!
//! Starts the daemon (`Daemon::start`, as the `fabgate` binary does) as a child process
//! with its data on the real disk (not tmpfs: `/proc/<pid>/io` counts block-layer writes),
//! daily backups and the retention purge off (they run once a day: add the database size
//! once a day for the backup). Measures after a warm-up: `write_bytes` of `/proc/<pid>/io`
//! (what reached the block layer, fsyncs included), `wchar` (bytes passed to write()),
//! and the growth of the database and WAL files; prints them per hour.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHECK_EVERY: Duration = Duration::from_secs(30);
const ALIVE_EVERY: Duration = Duration::from_secs(120);
const INUSE_EVERY: Duration = Duration::from_secs(30);
const SESSION_LENGTH: Duration = Duration::from_secs(60);

fn main() {
    let mut boards = 50usize;
    let mut seconds = 150u64;
    let mut sync = "full".to_string();
    // Boards that run one 60 s session (start, inuse every 30 s, stop) during the run.
    let mut sessions = 10usize;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--boards" => boards = v().parse().expect("--boards N"),
            "--seconds" => seconds = v().parse().expect("--seconds S"),
            "--sync" => sync = v(),
            "--sessions" => sessions = v().parse().expect("--sessions N"),
            "--serve" => return serve(&v()),
            other => panic!(
                "unknown argument {other} (--boards N --seconds S --sessions N --sync full|normal)"
            ),
        }
    }
    // Real disk: the target directory, next to the binary.
    let base = std::env::current_exe().unwrap();
    let base = base.parent().unwrap().parent().unwrap().join("tmp");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    prepare_lab(dir.path(), boards);
    let config = dir.path().join("fabgate.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndata_dir = {:?}\nsynchronous = {sync:?}\n[broker]\nlisten = \"127.0.0.1:0\"\n\
             [backup]\nenabled = false\n[retention]\nenabled = false\n[log]\nlevel = \"info\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("daemon prints its address");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = dir.path().join("fabgate.db");
    let (io0, files0, secs) = rt.block_on(async {
        let mut clients = Vec::new();
        for id in 1..=boards {
            clients.push(connect(addr, id).await);
        }
        // Warm-up: every board says hello (alive + checkmachine), as after a reconnect.
        for c in &clients {
            publish(
                c,
                r#"{"action":"alive","version":"5.0","ip":"10.0.0.9","serial":"AB","heap":150000}"#,
            )
            .await;
            publish(c, r#"{"action":"checkmachine"}"#).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let io0 = proc_io(pid);
        let files0 = file_bytes(&db);
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(seconds);
        let local = tokio::task::LocalSet::new();
        for (i, c) in clients.into_iter().enumerate() {
            let every = (boards / sessions.max(1)).max(1);
            let session = sessions > 0 && i % every == 0 && i / every < sessions;
            local.spawn_local(board(c, i, session, t0, end));
        }
        local.await;
        (io0, files0, t0.elapsed().as_secs_f64())
    });
    let io1 = proc_io(pid);
    let files1 = file_bytes(&db);
    let _ = child.kill();
    let _ = child.wait();

    let per_hour = |b: u64| b as f64 / secs * 3600.0 / 1024.0;
    let write = io1.0.saturating_sub(io0.0);
    let wchar = io1.1.saturating_sub(io0.1);
    println!(
        "fabgate sdwear: {boards} boards at firmware cadence, {sessions} sessions, {secs:.0} s, synchronous={sync}"
    );
    println!(
        "  block writes   {} KiB measured = {:.0} KiB/hour ({:.1} MiB/day)",
        write / 1024,
        per_hour(write),
        per_hour(write) * 24.0 / 1024.0
    );
    println!(
        "  write() bytes  {} KiB measured = {:.0} KiB/hour",
        wchar / 1024,
        per_hour(wchar)
    );
    println!(
        "  db+wal size    {} KiB -> {} KiB",
        files0 / 1024,
        files1 / 1024
    );
}

/// One board: checkmachine every 30 s, alive every 2 min, maybe one session.
async fn board(c: Board, i: usize, session: bool, t0: Instant, end: Instant) {
    let uid = format!("{:08x}", 0x1000_0000 + c.id);
    // Spread the boards over the period, as real boards boot at different times.
    let offset = CHECK_EVERY.mul_f64(i as f64 / 50.0 % 1.0);
    let session = session.then(|| {
        let start = t0 + offset + Duration::from_secs(5);
        (start, start + SESSION_LENGTH)
    });
    let (mut next_check, mut next_alive) = (t0 + offset, t0 + offset + ALIVE_EVERY);
    let mut next_inuse = None;
    let mut started = false;
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        if now >= next_check {
            ask(&c, r#"{"action":"checkmachine"}"#).await;
            next_check += CHECK_EVERY;
        }
        if now >= next_alive {
            publish(
                &c,
                r#"{"action":"alive","version":"5.0","ip":"10.0.0.9","serial":"AB","heap":150000}"#,
            )
            .await;
            next_alive += ALIVE_EVERY;
        }
        if let Some((start, stop)) = session {
            if !started && now >= start {
                ask(&c, &format!(r#"{{"action":"checkuser","uid":"{uid}"}}"#)).await;
                ask(&c, &format!(r#"{{"action":"startuse","uid":"{uid}"}}"#)).await;
                started = true;
                next_inuse = Some(now + INUSE_EVERY);
            }
            if let Some(t) = next_inuse {
                if now >= stop {
                    let d = (now - start).as_secs();
                    ask(
                        &c,
                        &format!(r#"{{"action":"stopuse","uid":"{uid}","duration":{d}}}"#),
                    )
                    .await;
                    next_inuse = None;
                } else if now >= t {
                    let d = (now - start).as_secs();
                    ask(
                        &c,
                        &format!(r#"{{"action":"inuse","uid":"{uid}","duration":{d}}}"#),
                    )
                    .await;
                    next_inuse = Some(t + INUSE_EVERY);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (write_bytes, wchar) of a process.
fn proc_io(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let get = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("write_bytes:"), get("wchar:"))
}

fn file_bytes(db: &std::path::Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| {
            let mut p = db.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        })
        .sum()
}

/// Child mode: the daemon, printing its MQTT address.
fn serve(config: &str) {
    let cfg = fabgate::config::Config::load(std::path::Path::new(config)).unwrap();
    fabgate::logging::init(log::LevelFilter::Info);
    let d = fabgate::daemon::Daemon::start(&cfg).unwrap();
    println!("{}", d.mqtt_addr);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn prepare_lab(dir: &std::path::Path, boards: usize) {
    let store = fabgate::store::Store::open(
        &dir.join("fabgate.db"),
        fabgate::config::Synchronous::Normal,
    )
    .unwrap();
    let mut conn = store.connect().unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "DELETE FROM members; DELETE FROM roles; DELETE FROM machine_types;
         INSERT INTO roles (role_id, role_name) VALUES (1, 'users');
         INSERT INTO machine_types (type_id, type_name, timeout_min) VALUES (1, 'LASER', 120);",
    )
    .unwrap();
    for i in 1..=boards as i64 {
        tx.execute(
            "INSERT INTO machines (machine_id, machine_name, type_id) VALUES (?1, ?2, 1)",
            rusqlite::params![i, format!("Machine {i}")],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO members (member_id, name, role_id, card_uid, created_at) VALUES (?1, ?2, 1, ?3, 0)",
            rusqlite::params![i, format!("Member {i}"), format!("{:08x}", 0x1000_0000 + i)],
        )
        .unwrap();
        tx.execute("INSERT INTO authorizations VALUES (?1, ?1)", [i])
            .unwrap();
    }
    let salt = b"sdwear-salt".to_vec();
    tx.execute(
        "INSERT INTO board_credentials (username, salt, hash, created_at) VALUES ('user', ?1, ?2, 0)",
        rusqlite::params![salt.clone(), fabgate::broker::hash_password(&salt, "password")],
    )
    .unwrap();
    tx.commit().unwrap();
}

struct Board {
    client: AsyncClient,
    replies: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>,
    id: usize,
}

async fn connect(addr: std::net::SocketAddr, id: usize) -> Board {
    let mut opts = MqttOptions::new(format!("WEAR{id}"), addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_credentials("user", "password");
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    let _ = tx.send(());
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
        .subscribe(format!("machine/{id}/reply"), QoS::AtMostOnce)
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
    Board {
        client,
        replies: tokio::sync::Mutex::new(rx),
        id,
    }
}

async fn publish(c: &Board, payload: &str) {
    let _ = c
        .client
        .publish(
            format!("machine/{}", c.id),
            QoS::AtMostOnce,
            false,
            payload.as_bytes().to_vec(),
        )
        .await;
}

/// Publishes and waits up to 2 s for the reply, like the firmware.
async fn ask(c: &Board, payload: &str) {
    let mut rx = c.replies.lock().await;
    while rx.try_recv().is_ok() {}
    publish(c, payload).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
}
