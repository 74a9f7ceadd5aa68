//! Is the clock synchronised (issue 12)? A Pi has no battery clock: it boots on a stale
//! time and NTP jumps it later. Until the clock is synchronised the time-based jobs wait
//! (a backup or a closing time on a stale clock happens at the wrong moment) and the
//! dashboard says so. Where the answer comes from is `[store] clock_sync`, so tests and
//! machines without NTP can say it themselves.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockSync {
    /// Never wait.
    Assume,
    /// The kernel's word (`adjtimex`).
    Kernel,
    /// Synchronised once this file exists.
    File(PathBuf),
}

impl ClockSync {
    pub fn from_config(value: &str) -> ClockSync {
        match value {
            "kernel" => ClockSync::Kernel,
            "none" => ClockSync::Assume,
            "auto" if crate::health::is_raspberry_pi() => ClockSync::Kernel,
            "auto" => ClockSync::Assume,
            other => other
                .strip_prefix("file:")
                .map_or(ClockSync::Assume, |p| ClockSync::File(p.into())),
        }
    }

    /// Synchronised now? An unknown kernel state counts as synchronised: waiting forever
    /// for an answer that never comes would stop the backups.
    pub fn synchronised(&self) -> bool {
        match self {
            ClockSync::Assume => true,
            ClockSync::Kernel => crate::health::kernel_clock_synchronised().unwrap_or(true),
            ClockSync::File(p) => p.exists(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_comes_from_the_config() {
        assert_eq!(ClockSync::from_config("none"), ClockSync::Assume);
        assert_eq!(ClockSync::from_config("kernel"), ClockSync::Kernel);
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("synchronized");
        let c = ClockSync::from_config(&format!("file:{}", flag.display()));
        assert!(!c.synchronised());
        std::fs::write(&flag, "").unwrap();
        assert!(c.synchronised());
        let _ = ClockSync::Kernel.synchronised();
    }
}
