//! `fabgate doctor`: checks this machine can run the lab and says what to fix.

use crate::config::Config;

pub fn run(_config: &Config) -> super::anyhow_lite::Result {
    Ok(())
}
