//! Load generator: N simulated Fab-O-Matic boards over real MQTT connections, each cycling
//! `checkuser → startuse → inuse → stopuse` and waiting for every reply as the firmware does.
//! Prints requests/s, latency percentiles, errors, and the daemon's RSS and CPU.
//!
//!     cargo run --release --example loadgen -- --boards 200 --seconds 20
//!
//! By default it starts its own daemon (the same `Daemon::start` as the `fabgate` binary) as
//! a child process on a free port with a fresh database, so the daemon's memory and CPU are
//! measured alone. `--sync normal` measures without one fsync per batch.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Args {
    boards: usize,
    seconds: u64,
    sync: String,
    serve: Option<String>,
    /// Extra TOML lines for the daemon's [broker] section, e.g. "inbox_segment_size = 65536".
    broker: Vec<String>,
    /// Pause of each board between two queries (0 = saturate). The firmware's own pace is
    /// one query every few seconds; this models a busy lab without saturating the daemon.
    think_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        boards: 50,
        seconds: 10,
        sync: "full".into(),
        serve: None,
        broker: vec![],
        think_ms: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--boards" => a.boards = v().parse().expect("--boards N"),
            "--seconds" => a.seconds = v().parse().expect("--seconds S"),
            "--sync" => a.sync = v(),
            "--serve" => a.serve = Some(v()),
            "--broker" => a.broker.push(v()),
            "--think-ms" => a.think_ms = v().parse().expect("--think-ms N"),
            "--help" | "-h" => {
                println!("loadgen [--boards N] [--seconds S] [--sync full|normal] [--think-ms N] [--broker 'key = value']...");
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
        return serve(&config);
    }
    let dir = tempfile::tempdir().unwrap();
    prepare_lab(dir.path(), a.boards);
    let config = dir.path().join("fabgate.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndata_dir = {:?}\nsynchronous = {:?}\n[broker]\nlisten = \"127.0.0.1:0\"\n{}\n[web]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n",
            dir.path().display().to_string(),
            a.sync,
            a.broker.join("\n")
        ),
    )
    .unwrap();

    let spawned = Instant::now();
    // LOADGEN_WRAP runs the daemon under a tool, e.g. "valgrind --tool=massif".
    let wrap: Vec<String> = std::env::var("LOADGEN_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrap.split_first() {
        Some((tool, args)) => {
            let mut c = Command::new(tool);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child = cmd
        .arg("--serve")
        .arg(&config)
        // As the systemd unit sets them (research/deps.md §8).
        .env("MALLOC_ARENA_MAX", "2")
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("daemon prints its MQTT address");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first_reply = rt.block_on(first_reply(addr));
    let first_reply_ms = spawned.elapsed().as_secs_f64() * 1000.0;
    let _ = first_reply;
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kb(pid);

    let stats = rt.block_on(run_load(
        addr,
        a.boards,
        Duration::from_secs(a.seconds),
        Duration::from_millis(a.think_ms),
        pid,
    ));
    let peak = hwm_kb(pid);
    if std::env::var_os("LOADGEN_SMAPS").is_some() {
        print_smaps(pid);
    }
    if wrap.is_empty() {
        let _ = child.kill();
    } else {
        // Let the wrapping tool write its report.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    let _ = child.wait();

    let mut lat = stats.latencies_us.clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0
    };
    let secs = stats.elapsed.as_secs_f64();
    let n = lat.len() as f64;
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("fabgate");
    println!(
        "fabgate loadgen: {} boards, {:.1} s, synchronous={}",
        a.boards, secs, a.sync
    );
    println!(
        "  requests        {} ({} errors/timeouts)",
        lat.len(),
        stats.errors
    );
    println!("  throughput      {:.0} requests/s", n / secs);
    println!(
        "  latency ms      p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        lat.last().map_or(f64::NAN, |&m| m as f64 / 1000.0)
    );
    println!("  daemon RSS      idle {:.1} MB, {} boards connected {:.1} MB, end {:.1} MB, peak {:.1} MB",
        idle_rss as f64 / 1024.0, a.boards, stats.connected_rss_kb as f64 / 1024.0, stats.end_rss_kb as f64 / 1024.0, peak as f64 / 1024.0);
    println!(
        "  daemon CPU      {:.3} s total, {:.4} CPU-s per 1,000 requests",
        stats.cpu_s,
        stats.cpu_s / n * 1000.0
    );
    println!("  first reply     {first_reply_ms:.0} ms after process start");
    if let Ok(meta) = std::fs::metadata(&bin) {
        println!(
            "  binary          {} = {:.2} MB",
            bin.display(),
            meta.len() as f64 / 1e6
        );
    }
}

/// Child mode: run the daemon and print its MQTT address.
fn serve(config: &str) {
    let cfg = fabgate::config::Config::load(std::path::Path::new(config)).unwrap();
    fabgate::logging::init(log::LevelFilter::Warn);
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
    let salt = b"loadgen-salt".to_vec();
    tx.execute(
        "INSERT INTO board_credentials (username, salt, hash, created_at) VALUES ('user', ?1, ?2, 0)",
        rusqlite::params![salt.clone(), fabgate::broker::hash_password(&salt, "password")],
    )
    .unwrap();
    tx.commit().unwrap();
}

struct Board {
    client: AsyncClient,
    replies: tokio::sync::mpsc::UnboundedReceiver<()>,
    id: usize,
}

async fn connect(addr: std::net::SocketAddr, id: usize) -> Board {
    connect_as(addr, id, format!("LOAD{id}")).await
}

async fn connect_as(addr: std::net::SocketAddr, id: usize, client_id: String) -> Board {
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
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
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

async fn first_reply(addr: std::net::SocketAddr) -> Duration {
    let t0 = Instant::now();
    let mut b = connect_as(addr, 1, "LOADPROBE".into()).await;
    loop {
        if b.ask(r#"{"action":"checkmachine"}"#.into()).await.is_some() {
            let _ = b.client.disconnect().await;
            return t0.elapsed();
        }
    }
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
    cpu_s: f64,
    connected_rss_kb: u64,
    end_rss_kb: u64,
}

async fn run_load(
    addr: std::net::SocketAddr,
    boards: usize,
    duration: Duration,
    think: Duration,
    pid: u32,
) -> Stats {
    let mut connected = Vec::new();
    for id in 1..=boards {
        connected.push(connect(addr, id).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = Rc::new(RefCell::new(Stats {
        connected_rss_kb: rss_kb(pid),
        ..Stats::default()
    }));
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let local = tokio::task::LocalSet::new();
    for mut b in connected {
        let stats = stats.clone();
        local.spawn_local(async move {
            let uid = format!("{:08x}", 0x1000_0000 + b.id);
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let cycle = [
                    format!(r#"{{"action":"checkuser","uid":"{uid}"}}"#),
                    format!(r#"{{"action":"startuse", "uid":"{uid}"}}"#),
                    format!(r#"{{"action":"inuse", "uid":"{uid}","duration":{i}}}"#),
                    format!(r#"{{"action":"stopuse", "uid":"{uid}","duration":{i}}}"#),
                ];
                for q in cycle {
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                    match b.ask(q).await {
                        Some(d) => stats.borrow_mut().latencies_us.push(d.as_micros() as u32),
                        None => {
                            stats.borrow_mut().errors += 1;
                            if std::env::var_os("LOADGEN_DEBUG").is_some() {
                                eprintln!(
                                    "board {} cycle {i}: no reply at {:?}",
                                    b.id,
                                    t0.elapsed()
                                );
                            }
                        }
                    }
                }
            }
        });
    }
    local.await;
    let mut s = Rc::try_unwrap(stats).ok().unwrap().into_inner();
    s.elapsed = t0.elapsed();
    s.cpu_s = cpu_seconds(pid) - cpu0;
    s.end_rss_kb = rss_kb(pid);
    s
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

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Debug aid (LOADGEN_SMAPS=1): the daemon's largest memory mappings.
fn print_smaps(pid: u32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut name = String::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if line.contains('-') && !line.starts_with(|c: char| c.is_ascii_uppercase()) {
            name = line
                .split_whitespace()
                .nth(5)
                .unwrap_or("[anon]")
                .to_string();
            name = format!("{} {}", line.split_whitespace().next().unwrap_or(""), name);
        } else if let Some(v) = line.strip_prefix("Rss:") {
            let kb: u64 = v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0);
            rows.push((kb, name.clone()));
        }
    }
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
    for (kb, n) in rows.iter().take(8) {
        eprintln!("  smaps {kb:>7} kB  {n}");
    }
}
