//! Administration subcommands.

use super::{Command, ConfigCmd};
use crate::config::Config;

pub fn run(command: Command, config: &Config) -> super::anyhow_lite::Result {
    match command {
        Command::Config(ConfigCmd::Default) => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Command::Config(ConfigCmd::Check { file }) => {
            let _ = (file, config);
            Ok(())
        }
        other => Err(format!("not implemented yet: {other:?}")),
    }
}
