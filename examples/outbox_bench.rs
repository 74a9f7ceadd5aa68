//! What the outbox costs.
//!
//! (a) Queueing: a typical change (a use recorded and the machine's hours added) in one
//!     transaction, with and without an `enqueue` of an email in the same transaction,
//!     interleaved, many iterations; prints the mean and median in µs for both
//!     `synchronous` settings.
//! (b) Delivery: 1,000 queued emails delivered by the sync worker's code to a plain-SMTP
//!     sink written here (127.0.0.1, one thread per connection); prints the seconds and
//!     the extra RSS.
//!
//! `cargo run --release --example outbox_bench [ITERATIONS] [EMAILS]`; with
//! `BENCH_QUICKACK=1` the sink acknowledges every segment at once (no delayed ACK).

use fabgate::config::{SyncConfig, Synchronous};
use fabgate::store::{self, Store};
use fabgate::sync::outbox::{enqueue_email, reminder_email};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn lab(dir: &std::path::Path, sync: Synchronous) -> (Store, rusqlite::Connection) {
    let s = Store::open(&dir.join("bench.db"), sync).unwrap();
    let db = s.connect().unwrap();
    db.execute_batch(
        "INSERT INTO roles (role_id, role_name) VALUES (100, 'bench');
         INSERT INTO members (member_id, name, role_id, email, created_at)
           VALUES (100, 'Anna', 100, 'anna@example.org', 0);
         INSERT INTO machines (machine_id, machine_name) VALUES (100, 'BENCH 1');",
    )
    .unwrap();
    (s, db)
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v.iter().sum::<f64>() / v.len() as f64, v[v.len() / 2])
}

fn queueing(iterations: usize, sync: Synchronous) {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut db) = lab(dir.path(), sync);
    let mail = reminder_email(false, "Anna", "anna@example.org", "18:30");
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    for i in 0..iterations * 2 {
        let queue = i % 2 == 1;
        let t = Instant::now();
        let tx = db.transaction().unwrap();
        let now = store::now();
        store::insert_use(&tx, 100, 100, now - 600, now, Some(now), Some(false)).unwrap();
        store::add_machine_seconds(&tx, 100, 600).unwrap();
        if queue {
            enqueue_email(&tx, &mail, None).unwrap();
        }
        tx.commit().unwrap();
        let us = t.elapsed().as_secs_f64() * 1e6;
        if queue {
            with.push(us)
        } else {
            plain.push(us)
        }
    }
    let (pm, pmed) = stats(plain);
    let (wm, wmed) = stats(with);
    println!(
        "(a) synchronous={sync:?}: change alone mean {pm:.1} µs (median {pmed:.1}); \
         with enqueue mean {wm:.1} µs (median {wmed:.1}); enqueue adds {:.1} µs mean, {:.1} µs median \
         ({iterations} iterations each)",
        wm - pm,
        wmed - pmed
    );
}

/// A plain-SMTP sink: accepts everything, counts messages.
fn sink(received: Arc<AtomicUsize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let received = received.clone();
            std::thread::spawn(move || session(stream, &received));
        }
    });
    port
}

fn session(stream: TcpStream, received: &AtomicUsize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let quickack = std::env::var_os("BENCH_QUICKACK").is_some();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    // lettre writes the body and the final "." separately: with Nagle on its side and a
    // delayed ACK on ours, each message waits ~40 ms. BENCH_QUICKACK=1 acks at once.
    let ack = move || {
        if quickack {
            let one: libc::c_int = 1;
            // SAFETY: a valid socket and a c_int option value.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    &one as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    };
    let mut out = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    out.write_all(b"220 sink ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            out.write_all(b"250-sink\r\n250 8BITMIME\r\n")?;
        } else if cmd.starts_with("DATA") {
            out.write_all(b"354 go ahead\r\n")?;
            loop {
                line.clear();
                ack();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
            }
            received.fetch_add(1, Ordering::SeqCst);
            out.write_all(b"250 queued\r\n")?;
        } else if cmd.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"250 ok\r\n")?;
        }
    }
}

fn delivery(emails: usize) {
    let received = Arc::new(AtomicUsize::new(0));
    let port = sink(received.clone());
    let dir = tempfile::tempdir().unwrap();
    let (store, mut db) = lab(dir.path(), Synchronous::Normal);
    for (k, v) in [
        ("smtp_host", "127.0.0.1".to_string()),
        ("smtp_port", port.to_string()),
        ("smtp_tls", "none".into()),
        ("smtp_from", "lab@example.org".into()),
    ] {
        store::set_setting(&db, k, &v).unwrap();
    }
    let tx = db.transaction().unwrap();
    for i in 0..emails {
        let mail = reminder_email(i % 2 == 0, "Anna", &format!("m{i}@example.org"), "18:30");
        enqueue_email(&tx, &mail, None).unwrap();
    }
    tx.commit().unwrap();
    let worker = fabgate::sync::Worker {
        store,
        config: SyncConfig {
            smtp_timeout_s: 10,
            ..SyncConfig::default()
        },
    };
    let rss_before = rss_kib("VmRSS:");
    let t = Instant::now();
    while worker.deliver_due(&db).unwrap() > 0 {}
    let secs = t.elapsed().as_secs_f64();
    let rss_after = rss_kib("VmRSS:");
    std::thread::sleep(Duration::from_millis(100));
    let (pending, failed) = store::outbox_counts(&db).unwrap();
    println!(
        "(b) {emails} emails delivered to a local plain-SMTP sink in {secs:.2} s ({:.1} ms each, \
         {} received, {pending} pending, {failed} failed); RSS {rss_before} KiB before, \
         {rss_after} KiB after (+{} KiB), peak {} KiB",
        secs * 1000.0 / emails as f64,
        received.load(Ordering::SeqCst),
        rss_after.saturating_sub(rss_before),
        rss_kib("VmHWM:")
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let emails = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    queueing(iterations, Synchronous::Normal);
    queueing(iterations, Synchronous::Full);
    delivery(emails);
}
