//! Running for years on a Pi: the systemd unit, READY/WATCHDOG notifications, the data
//! directory lock.

use crate::common::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/fabgate.service");

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for directive in [
        "Type=notify",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "User=fabgate",
        "StateDirectory=fabgate",
        "ConfigurationDirectory=fabgate",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/gpiomem rw",
        "DeviceAllow=/dev/spidev0.0 rw",
        "DeviceAllow=char-input r",
        "SupplementaryGroups=gpio spi input",
        "SystemCallFilter=@system-service",
        "\nCapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(directive), "unit lacks {directive:?}");
    }
    assert!(
        !unit.lines().any(|l| l.starts_with("PrivateDevices")),
        "PrivateDevices hides GPIO/SPI"
    );
    assert!(unit.contains("ExecStart=/usr/bin/fabgate "));

    // `verify` insists that ExecStart exists: check a copy that runs the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("fabgate.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/fabgate", env!("CARGO_BIN_EXE_fabgate")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs Debian's systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // Unknown or misspelt directives are only warnings: none is allowed.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

/// Reads datagrams from the fake notify socket until one contains `needle`.
fn wait_datagram(sock: &UnixDatagram, needle: &str, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = text.lines().any(|l| l == needle);
            seen.push(text);
            if hit {
                return true;
            }
        }
    }
    false
}

#[test]
fn the_daemon_notifies_ready_and_pings_the_watchdog() {
    let lab = Lab::new();
    fixture_f(&lab);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let d = TestDaemon::spawn_env(
        &lab.config_path(),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            // 1 s: the daemon pings every 500 ms.
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut seen = Vec::new();
    assert!(wait_datagram(&sock, "READY=1", &mut seen), "{seen:?}");
    assert!(
        seen.iter().any(|m| m.contains("STATUS=fabgate")),
        "{seen:?}"
    );
    // Boards are served as soon as READY=1 is out.
    d.board("1").must(r#"{"action":"checkmachine"}"#);
    for _ in 0..3 {
        assert!(wait_datagram(&sock, "WATCHDOG=1", &mut seen), "{seen:?}");
    }
    d.stop();
    assert!(wait_datagram(&sock, "STOPPING=1", &mut seen), "{seen:?}");
}

#[test]
fn no_watchdog_pings_without_watchdog_usec() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _d = TestDaemon::spawn_env(
        &lab.config_path(),
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut seen = Vec::new();
    assert!(wait_datagram(&sock, "READY=1", &mut seen), "{seen:?}");
    std::thread::sleep(Duration::from_millis(600));
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!text.contains("WATCHDOG=1"), "{text}");
    }
}

#[test]
fn a_second_daemon_on_the_same_data_refuses_to_start() {
    let lab = Lab::new();
    let _d = lab.start();
    let out = lab.run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another fabgate daemon is running") && err.contains("fabgate.lock"),
        "{err}"
    );
}
