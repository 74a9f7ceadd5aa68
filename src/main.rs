//! The `fabgate` binary: parses the command line and hands over to the library.

use clap::Parser;
use fabgate::cli::{self, Cli, Command};
use fabgate::daemon::{Daemon, StartOptions};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    // Files the daemon and the CLI create (database, backups, exports, TLS key) are
    // 0640 and directories 0750 whoever starts them, as systemd's UMask=0027 gives the
    // service; secrets are 0600 on their own (issue 11).
    // SAFETY: umask only sets this process's file mode mask.
    unsafe {
        libc::umask(0o027);
    }
    let args = Cli::parse();
    let command = args.command.unwrap_or(Command::Run);
    // `config check` must work when the --config file is the broken one.
    if let Command::Config(cmd) = command {
        return exit(cli::run_config(cmd, args.config.as_deref()));
    }
    let config = match cli::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fabgate: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Run => run_daemon(
            &config,
            &StartOptions {
                new_lab: args.new_lab,
                config_arg: args.config.clone(),
            },
        ),
        command => {
            let level =
                fabgate::config::log_level(&config.log.level).unwrap_or(log::LevelFilter::Info);
            fabgate::logging::init(level.min(log::LevelFilter::Warn));
            exit(cli::run_admin(command, &config))
        }
    }
}

/// Administration commands: their error once, exit code 1.
fn exit(result: cli::anyhow_lite::Result) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fabgate: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_daemon(config: &fabgate::config::Config, opts: &StartOptions) -> ExitCode {
    let level = fabgate::config::log_level(&config.log.level).unwrap_or(log::LevelFilter::Info);
    fabgate::logging::init(level);
    // A panic in any thread (broker, board link, jobs) ends the process, so systemd restarts
    // a whole daemon instead of leaving one that accepts boards but answers nobody.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("fatal: {info}");
        default_hook(info);
        std::process::abort();
    }));
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            log::error!("cannot handle signal {signal}: {e}");
        }
    }
    let daemon = match Daemon::start_with(config, opts) {
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
