//! CPU cost of polling a reader: drives the real MFRC522 driver against the
//! register-level chip simulation (`fabgate::readers::SimMfrc522`, the `mfrc522-sim`
//! reader kind, card in a file) every `--poll-ms` for `--seconds`, half of the time with
//! no card (each poll waits for the chip's no-card timer) and half with a card lying on
//! the antenna (each poll runs WUPA, the anticollision cascade, SELECT with CRC_A and
//! HLTA). CPU time comes from `/proc/self/stat` (utime + stime).
//!
//!     cargo run --release --example reader_poll -- --seconds 30 --poll-ms 100

use fabgate::readers::{Debounce, Reader, SimMfrc522};
use std::time::{Duration, Instant};

/// User + system CPU seconds of this process, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// The same from getrusage(2), in microseconds (/proc's 10 ms ticks are coarse for this).
fn rusage_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = arg("--seconds", 30);
    let poll = Duration::from_millis(arg("--poll-ms", 100));
    let dir = std::env::temp_dir().join(format!("reader_poll_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let card = dir.join("card");
    std::fs::write(&card, "").unwrap();
    let mut reader =
        SimMfrc522::with_field(Default::default(), card.clone()).expect("simulated chip");
    let mut debounce = Debounce::new(1500);
    println!("{}", reader.describe());
    for (phase, uid) in [("no card", ""), ("card on the antenna", "aabbccd3")] {
        std::fs::write(&card, uid).unwrap();
        let (mut polls, mut seen, mut taps) = (0u64, 0u64, 0u64);
        let (cpu0, ru0, t0) = (cpu_seconds(), rusage_seconds(), Instant::now());
        let mut next = Instant::now();
        while t0.elapsed() < Duration::from_secs(seconds) / 2 {
            let got = reader.poll().expect("poll");
            polls += 1;
            seen += u64::from(got.is_some());
            let ms = t0.elapsed().as_millis() as i64;
            taps += u64::from(debounce.feed(got, ms).is_some());
            next += poll;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
        let ru = rusage_seconds() - ru0;
        println!(
            "{phase}: {polls} polls in {wall:.1} s, card seen {seen} times ({taps} tap); \
             /proc/self/stat CPU {cpu:.2} s = {:.3} % of one core; \
             getrusage {ru:.4} s = {:.3} %, {:.0} µs per poll",
            100.0 * cpu / wall,
            100.0 * ru / wall,
            1e6 * ru / polls as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
