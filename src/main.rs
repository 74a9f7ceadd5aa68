//! The `fabgate` binary: parses the command line and hands over to the library.

use clap::Parser;
use fabgate::cli::{self, Cli, Command};
use fabgate::daemon::Daemon;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    let args = Cli::parse();
    let config = match cli::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fabgate: {e}");
            return ExitCode::from(2);
        }
    };
    match args.command.unwrap_or(Command::Run) {
        Command::Run => run_daemon(&config),
        command => {
            let level =
                fabgate::config::log_level(&config.log.level).unwrap_or(log::LevelFilter::Info);
            fabgate::logging::init(level.min(log::LevelFilter::Warn));
            match cli::run_admin(command, &config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fabgate: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn run_daemon(config: &fabgate::config::Config) -> ExitCode {
    let level = fabgate::config::log_level(&config.log.level).unwrap_or(log::LevelFilter::Info);
    fabgate::logging::init(level);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            log::error!("cannot handle signal {signal}: {e}");
        }
    }
    let daemon = match Daemon::start(config) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    log::info!("stopping");
    daemon.shutdown();
    ExitCode::SUCCESS
}
