//! The Pi's health, read from the kernel: SoC temperature, under-voltage/throttling flags,
//! free space for the data, uptime, the process's memory, clock synchronisation. Used by
//! `/metrics`, `fabgate doctor` and the panel's system page. Every reading is an `Option`:
//! `None` where this machine does not offer it (an x86 CI box has no throttling flags), so
//! callers show "unknown" rather than fail. Nothing here writes or caches.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const THERMAL_ZONE: &str = "/sys/class/thermal/thermal_zone0/temp";
/// The firmware's throttling word without spawning vcgencmd (Raspberry Pi kernels).
const THROTTLED_SYSFS: &str = "/sys/devices/platform/soc/soc:firmware/get_throttled";

/// SoC temperature in °C.
pub fn soc_temperature() -> Option<f64> {
    let milli: f64 = std::fs::read_to_string(THERMAL_ZONE)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(milli / 1000.0)
}

/// The Raspberry Pi firmware's throttling word (`vcgencmd get_throttled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub u32);

impl Throttled {
    pub fn under_voltage_now(self) -> bool {
        self.0 & 0x1 != 0
    }
    pub fn throttled_now(self) -> bool {
        self.0 & 0x4 != 0
    }
    /// Under-voltage happened since boot: a weak power supply, the first suspect of SD
    /// card corruption.
    pub fn under_voltage_since_boot(self) -> bool {
        self.0 & 0x10000 != 0
    }
    pub fn throttled_since_boot(self) -> bool {
        self.0 & 0x40000 != 0
    }

    /// Words for a person: "ok", or the flags that are set.
    pub fn describe(self) -> String {
        let flags = [
            (self.under_voltage_now(), "under-voltage now"),
            (self.0 & 0x2 != 0, "ARM frequency capped now"),
            (self.throttled_now(), "throttled now"),
            (self.0 & 0x8 != 0, "soft temperature limit now"),
            (self.under_voltage_since_boot(), "under-voltage since boot"),
            (self.0 & 0x20000 != 0, "frequency capped since boot"),
            (self.throttled_since_boot(), "throttled since boot"),
            (self.0 & 0x80000 != 0, "soft temperature limit since boot"),
        ];
        let set: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
        if set.is_empty() {
            "ok".into()
        } else {
            set.join(", ")
        }
    }
}

/// Throttling flags from sysfs, else from `vcgencmd get_throttled`.
pub fn throttled() -> Option<Throttled> {
    if let Ok(text) = std::fs::read_to_string(THROTTLED_SYSFS) {
        return parse_hex(text.trim()).map(Throttled);
    }
    let out = Command::new("vcgencmd")
        .arg("get_throttled")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let value = text.trim().strip_prefix("throttled=")?;
    parse_hex(value).map(Throttled)
}

fn parse_hex(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    u32::from_str_radix(digits, 16).ok()
}

/// Space on the file system holding `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes an unprivileged process may still write.
    pub available: u64,
    pub total: u64,
}

/// `statvfs(2)` of `path` (the data directory).
pub fn disk_space(path: &Path) -> Option<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we own from a NUL-terminated path we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as u64;
    Some(DiskSpace {
        available: (st.f_bavail as u64).saturating_mul(frag),
        total: (st.f_blocks as u64).saturating_mul(frag),
    })
}

/// Time since boot.
pub fn uptime() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// Resident memory of this process in bytes (`VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Is the system clock synchronised (NTP)? A Pi has no RTC: until it syncs, session times
/// are wrong. `timedatectl` when systemd runs, else the kernel's `adjtimex` state.
pub fn clock_synchronised() -> Option<bool> {
    if let Ok(out) = Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
    {
        if out.status.success() {
            match String::from_utf8_lossy(&out.stdout).trim() {
                "yes" => return Some(true),
                "no" => return Some(false),
                _ => {}
            }
        }
    }
    kernel_clock_synchronised()
}

/// The kernel's own word (`adjtimex`): synchronised once an NTP client (timesyncd, chrony,
/// ntpd) has disciplined the clock. Works without systemd and without spawning anything.
pub fn kernel_clock_synchronised() -> Option<bool> {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into our struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    match state {
        -1 => None,
        libc::TIME_ERROR => Some(false),
        _ => Some(tx.status & libc::STA_UNSYNC == 0),
    }
}

/// Is this a Raspberry Pi (no battery clock: it boots on a stale time)?
pub fn is_raspberry_pi() -> bool {
    std::fs::read_to_string("/proc/device-tree/model").is_ok_and(|m| m.contains("Raspberry Pi"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_never_fail_and_make_sense_where_present() {
        if let Some(t) = soc_temperature() {
            assert!((-40.0..150.0).contains(&t), "{t}");
        }
        let d = disk_space(Path::new("/")).expect("statvfs of / works");
        assert!(d.total > 0 && d.available <= d.total);
        assert!(disk_space(Path::new("/no/such/dir")).is_none());
        assert!(uptime().unwrap() > Duration::ZERO);
        assert!(rss_bytes().unwrap() > 100_000);
    }

    #[test]
    fn clock_and_throttling_readings_agree_with_the_system() {
        // The kernel's own answer: adjtimex's TIME_ERROR means "not synchronised". Where
        // timedatectl answers, it decides; either way a reading is there on Linux.
        let sync = clock_synchronised();
        // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        let state = unsafe { libc::adjtimex(&mut tx) };
        let timedatectl = Command::new("timedatectl")
            .args(["show", "-p", "NTPSynchronized", "--value"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        match timedatectl.as_deref() {
            Some("yes") => assert_eq!(sync, Some(true)),
            Some("no") => assert_eq!(sync, Some(false)),
            _ if state == -1 => assert_eq!(sync, None),
            _ => assert_eq!(
                sync,
                Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
            ),
        }
        // Off a Pi (no sysfs file, no vcgencmd) there is no reading; on one it parses.
        let t = throttled();
        let sysfs = std::fs::read_to_string(THROTTLED_SYSFS).ok();
        match sysfs {
            Some(text) => assert_eq!(t, parse_hex(text.trim()).map(Throttled)),
            None if Command::new("vcgencmd")
                .arg("get_throttled")
                .output()
                .is_err() =>
            {
                assert_eq!(t, None)
            }
            None => {}
        }
    }

    #[test]
    fn throttling_flags_in_words() {
        assert_eq!(Throttled(0).describe(), "ok");
        let t = Throttled(parse_hex("0x50005").unwrap());
        assert!(t.under_voltage_now() && t.throttled_now() && t.under_voltage_since_boot());
        assert_eq!(
            t.describe(),
            "under-voltage now, throttled now, under-voltage since boot, throttled since boot"
        );
    }
}
