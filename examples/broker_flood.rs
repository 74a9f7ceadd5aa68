//! Broker flood benchmark (issue 10): 50 boards keep their normal traffic while attackers
//! on the LAN (with the lab-wide password) subscribe 50,000 distinct filters, publish on
//! 2,000 new topics, open sockets that never send CONNECT (200/s from 8 addresses) and
//! guess passwords. Prints the boards' reply latency before and during the attack, how
//! long a rebooting board waits for its CONNACK during it, and the daemon's RSS.
//!
//!     cargo run --release --example broker_flood -- [--boards 50] [--seconds 10] [--think-ms 100]
//!
//! Targets on the x86 dev machine: p99 under 50 ms during the attack, RSS growth under
//! 5 MB. The daemon runs as a child process (like examples/loadgen.rs), so its RSS is its
//! own.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    boards: usize,
    seconds: u64,
    think_ms: u64,
    serve: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        boards: 50,
        seconds: 10,
        think_ms: 100,
        serve: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--boards" => a.boards = v().parse().expect("--boards N"),
            "--seconds" => a.seconds = v().parse().expect("--seconds S"),
            "--think-ms" => a.think_ms = v().parse().expect("--think-ms N"),
            "--serve" => a.serve = Some(v()),
            "--help" | "-h" => {
                println!("broker_flood [--boards N] [--seconds S] [--think-ms N]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    if let Some(config) = a.serve {
        let cfg = fabgate::config::Config::load(std::path::Path::new(&config)).unwrap();
        fabgate::logging::init(log::LevelFilter::Warn);
        let d = fabgate::daemon::Daemon::start(&cfg).unwrap();
        println!("{}", d.mqtt_addr);
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    prepare_lab(dir.path(), a.boards);
    let config = dir.path().join("fabgate.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndata_dir = {:?}\nsynchronous = \"normal\"\n[broker]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(&config)
        .env("MALLOC_ARENA_MAX", "2")
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().expect("daemon prints its MQTT address");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let phase = Duration::from_secs(a.seconds);
    let think = Duration::from_millis(a.think_ms);
    let report = rt.block_on(run(addr, a.boards, phase, think, pid));
    let _ = child.kill();
    let _ = child.wait();

    println!(
        "fabgate broker_flood: {} boards, one query each every {} ms, {} s per phase",
        a.boards, a.think_ms, a.seconds
    );
    let show = |name: &str, l: &[u32], errors: u64| {
        let mut l = l.to_vec();
        l.sort_unstable();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .map_or(f64::NAN, |&v| v as f64 / 1000.0)
        };
        println!(
            "  {name:<15} {} replies ({errors} lost), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.len(),
            pct(0.50),
            pct(0.99),
            l.last().map_or(f64::NAN, |&v| v as f64 / 1000.0)
        );
    };
    show("before attack", &report.before, report.before_errors);
    show("during attack", &report.during, report.during_errors);
    let att = &report.attack;
    println!(
        "  attack          {} filters subscribed ({} granted), {} publishes on new topics, {} idle sockets opened, {} password guesses ({} checked)",
        att.filters.load(Ordering::Relaxed),
        att.filters_granted.load(Ordering::Relaxed),
        att.publishes.load(Ordering::Relaxed),
        att.sockets.load(Ordering::Relaxed),
        att.guesses.load(Ordering::Relaxed),
        att.guesses_checked.load(Ordering::Relaxed),
    );
    match report.reboot_connack {
        Some(d) => println!(
            "  rebooting board CONNACK after {:.1} ms during the attack",
            d.as_secs_f64() * 1000.0
        ),
        None => println!("  rebooting board got NO CONNACK during the attack"),
    }
    println!(
        "  daemon RSS      before {:.1} MB, end of attack {:.1} MB, after {:.1} MB, growth {:+.1} MB, peak {:.1} MB",
        report.rss_before as f64 / 1024.0,
        report.rss_during as f64 / 1024.0,
        report.rss_after as f64 / 1024.0,
        (report.rss_after as f64 - report.rss_before as f64) / 1024.0,
        report.rss_peak as f64 / 1024.0
    );
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
    for i in 1..=boards {
        tx.execute(
            "INSERT INTO machines (machine_id, machine_name, type_id) VALUES (?1, ?2, 1)",
            rusqlite::params![i as i64, format!("Machine {i}")],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO members (member_id, name, role_id, card_uid, created_at) VALUES (?1, ?2, 1, ?3, 0)",
            rusqlite::params![i as i64, format!("Member {i}"), format!("{:08x}", 0x1000_0000 + i)],
        )
        .unwrap();
        tx.execute("INSERT INTO authorizations VALUES (?1, ?1)", [i as i64])
            .unwrap();
    }
    let salt = b"flood-salt".to_vec();
    tx.execute(
        "INSERT INTO board_credentials (username, salt, hash, created_at) VALUES ('user', ?1, ?2, 0)",
        rusqlite::params![salt.clone(), fabgate::broker::hash_password(&salt, "password")],
    )
    .unwrap();
    tx.commit().unwrap();
}

// ---- boards (rumqttc, as examples/loadgen.rs) ----

struct Board {
    client: AsyncClient,
    replies: tokio::sync::mpsc::UnboundedReceiver<()>,
    id: usize,
}

async fn board(addr: SocketAddr, id: usize, client_id: String) -> Board {
    let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
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
        replies: rx,
        id,
    }
}

impl Board {
    async fn ask(&mut self, payload: String) -> Option<Duration> {
        while self.replies.try_recv().is_ok() {}
        let t0 = Instant::now();
        self.client
            .publish(
                format!("machine/{}", self.id),
                QoS::AtMostOnce,
                false,
                payload.into_bytes(),
            )
            .await
            .ok()?;
        match tokio::time::timeout(Duration::from_secs(2), self.replies.recv()).await {
            Ok(Some(())) => Some(t0.elapsed()),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Samples {
    before: Vec<u32>,
    during: Vec<u32>,
    before_errors: u64,
    during_errors: u64,
}

struct Report {
    before: Vec<u32>,
    during: Vec<u32>,
    before_errors: u64,
    during_errors: u64,
    attack: Arc<AttackCounts>,
    reboot_connack: Option<Duration>,
    rss_before: u64,
    rss_during: u64,
    rss_after: u64,
    rss_peak: u64,
}

async fn run(
    addr: SocketAddr,
    boards: usize,
    phase: Duration,
    think: Duration,
    pid: u32,
) -> Report {
    let mut connected = Vec::new();
    for id in 1..=boards {
        connected.push(board(addr, id, format!("BOARD{id}")).await);
    }
    let samples = Rc::new(RefCell::new(Samples::default()));
    let attacking = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let warmup = Duration::from_secs(1);
    let attack_at = t0 + warmup + phase;
    let end = attack_at + phase;
    let local = tokio::task::LocalSet::new();
    for mut b in connected {
        let samples = samples.clone();
        let attacking = attacking.clone();
        local.spawn_local(async move {
            let uid = format!("{:08x}", 0x1000_0000 + b.id);
            while Instant::now() < end {
                tokio::time::sleep(think).await;
                let warm = Instant::now() > t0 + warmup;
                let during = attacking.load(Ordering::Relaxed);
                let r = b
                    .ask(format!(r#"{{"action":"checkuser","uid":"{uid}"}}"#))
                    .await;
                if !warm {
                    continue;
                }
                let mut s = samples.borrow_mut();
                match (r, during) {
                    (Some(d), false) => s.before.push(d.as_micros() as u32),
                    (Some(d), true) => s.during.push(d.as_micros() as u32),
                    (None, false) => s.before_errors += 1,
                    (None, true) => s.during_errors += 1,
                }
            }
        });
    }
    let counts = Arc::new(AttackCounts::default());
    let control = {
        let attacking = attacking.clone();
        let counts = counts.clone();
        async move {
            tokio::time::sleep_until(attack_at.into()).await;
            let rss_before = rss_kb(pid);
            attacking.store(true, Ordering::Relaxed);
            let stop = Arc::new(AtomicBool::new(false));
            let attackers = start_attack(addr, counts.clone(), stop.clone());
            // A board rebooting in the middle of the attack.
            tokio::time::sleep(phase / 2).await;
            let reboot = tokio::task::spawn_blocking(move || reboot_connack(addr))
                .await
                .ok()
                .flatten();
            tokio::time::sleep_until(end.into()).await;
            let rss_during = rss_kb(pid);
            stop.store(true, Ordering::Relaxed);
            attacking.store(false, Ordering::Relaxed);
            tokio::task::spawn_blocking(move || {
                for a in attackers {
                    let _ = a.join();
                }
            })
            .await
            .unwrap();
            // Idle sockets are closed by the CONNECT deadline (3 s); the attackers'
            // connections are gone.
            tokio::time::sleep(Duration::from_secs(4)).await;
            (rss_before, rss_during, rss_kb(pid), hwm_kb(pid), reboot)
        }
    };
    let (rss_before, rss_during, rss_after, rss_peak, reboot_connack) =
        local.run_until(control).await;
    local.await;
    let s = Rc::try_unwrap(samples).ok().unwrap().into_inner();
    Report {
        before: s.before,
        during: s.during,
        before_errors: s.before_errors,
        during_errors: s.during_errors,
        attack: counts,
        reboot_connack,
        rss_before,
        rss_during,
        rss_after,
        rss_peak,
    }
}

// ---- attackers (raw MQTT over blocking sockets, one thread each) ----

#[derive(Default)]
struct AttackCounts {
    filters: AtomicU64,
    filters_granted: AtomicU64,
    publishes: AtomicU64,
    sockets: AtomicU64,
    guesses: AtomicU64,
    guesses_checked: AtomicU64,
}

fn start_attack(
    addr: SocketAddr,
    counts: Arc<AttackCounts>,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    {
        // 50,000 distinct filters in SUBSCRIBEs of 100, then 2,000 publishes on new topics.
        let (counts, stop) = (counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let Some(mut s) = mqtt_session(addr, "flooder", "password") else {
                return;
            };
            let mut n = 0u32;
            let mut pkid = 0u16;
            while n < 50_000 && !stop.load(Ordering::Relaxed) {
                pkid = pkid.wrapping_add(1).max(1);
                let filters: Vec<String> = (n..n + 100)
                    .map(|i| {
                        if i % 2 == 0 {
                            format!("flood/{i}/x")
                        } else {
                            format!("machine/{}/reply", 10_000 + i % 89_999)
                        }
                    })
                    .collect();
                n += 100;
                if s.write_all(&subscribe(pkid, &filters)).is_err() {
                    return;
                }
                counts.filters.fetch_add(100, Ordering::Relaxed);
                if let Some(codes) = read_suback(&mut s) {
                    let granted = codes.iter().filter(|c| **c != 0x80).count();
                    counts
                        .filters_granted
                        .fetch_add(granted as u64, Ordering::Relaxed);
                }
            }
            for i in 0..2000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let topic = if i % 2 == 0 {
                    format!("new/topic/{i}")
                } else {
                    format!("machine/{}", 1000 + i)
                };
                if s.write_all(&publish(&topic, br#"{"action":"synccache"}"#, true))
                    .is_err()
                {
                    return;
                }
                counts.publishes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        // 200 sockets/s that never send CONNECT, from 8 addresses.
        let (counts, stop) = (counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut i = 0u32;
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let due = t0 + Duration::from_millis(5) * i;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let host = Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8);
                if let Ok(s) = connect_from(host, addr) {
                    held.push(s);
                    counts.sockets.fetch_add(1, Ordering::Relaxed);
                }
                // Keep the newest ones open; the broker closes them at its deadline.
                if held.len() > 1000 {
                    held.drain(..500);
                }
                i += 1;
            }
        }));
    }
    {
        // Password guessing from one address, as fast as the broker answers.
        threads.push(std::thread::spawn(move || {
            let host = Ipv4Addr::new(127, 0, 0, 20);
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let Ok(mut s) = connect_from(host, addr) else {
                    continue;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(&connect("guesser", "user", &format!("guess{i}")))
                    .is_err()
                {
                    continue;
                }
                counts.guesses.fetch_add(1, Ordering::Relaxed);
                let mut ack = [0u8; 4];
                if s.read_exact(&mut ack).is_ok() && ack[3] == 4 {
                    counts.guesses_checked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    threads
}

/// Time for a new board connection to get its CONNACK.
fn reboot_connack(addr: SocketAddr) -> Option<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&connect("REBOOTED", "user", "password")).ok()?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).ok()?;
    (ack[0] == 0x20 && ack[3] == 0).then(|| t0.elapsed())
}

fn mqtt_session(addr: SocketAddr, id: &str, password: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&connect(id, "user", password)).ok()?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).ok()?;
    (ack[3] == 0).then_some(s)
}

fn read_suback(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 1];
    s.read_exact(&mut head).ok()?;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).ok()?;
        len |= ((b[0] & 0x7F) as usize) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    (head[0] & 0xF0 == 0x90).then(|| body.get(2..).unwrap_or(&[]).to_vec())
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![header];
    varint(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

fn connect(id: &str, user: &str, password: &str) -> Vec<u8> {
    let mut b = Vec::new();
    string(b"MQTT", &mut b);
    b.extend_from_slice(&[4, 0xC2, 0, 30]);
    string(id.as_bytes(), &mut b);
    string(user.as_bytes(), &mut b);
    string(password.as_bytes(), &mut b);
    packet(0x10, &b)
}

fn subscribe(pkid: u16, filters: &[String]) -> Vec<u8> {
    let mut b = pkid.to_be_bytes().to_vec();
    for f in filters {
        string(f.as_bytes(), &mut b);
        b.push(0);
    }
    packet(0x82, &b)
}

fn publish(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
    let mut b = Vec::new();
    string(topic.as_bytes(), &mut b);
    b.extend_from_slice(payload);
    packet(0x30 | u8::from(retain), &b)
}

/// A TCP connection from a chosen loopback address (another "host" of the LAN).
fn connect_from(local: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    let SocketAddr::V4(to) = addr else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket/bind/connect calls with checked results; the fd is owned.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = OwnedFd::from_raw_fd(fd);
        let from = sockaddr(local, 0);
        if libc::bind(fd, &from as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let dest = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, &dest as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(TcpStream::from_raw_fd(owned.into_raw_fd()))
    }
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

fn hwm_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}
