//! Log lines for journald: no timestamp (journald adds it), a `<N>` syslog priority
//! prefix so `journalctl -p warning` works. rumqttd's tracing spans arrive as ERROR
//! records (research/deps.md §9), so the broker crate is silenced unless `RUST_LOG` asks.

use std::io::Write;

pub fn init(level: log::LevelFilter) {
    let mut b = env_logger::Builder::new();
    b.filter_level(level)
        .filter_module("rumqttd", log::LevelFilter::Off)
        .filter_module("tracing", log::LevelFilter::Off);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|buf, record| {
        let prio = match record.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        writeln!(buf, "<{prio}>{}", record.args())
    });
    let _ = b.try_init();
}
