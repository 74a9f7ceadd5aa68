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
    let d = TestDaemon::spawn_env(
        &lab.config_path(),
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut seen = Vec::new();
    assert!(wait_datagram(&sock, "READY=1", &mut seen), "{seen:?}");
    // The daemon lives through two of its own stats ticks (1 s apart here: twice the
    // 500 ms ping interval of the test above), then stops: every datagram it ever sent
    // is in `seen` by STOPPING=1, and none is a watchdog ping.
    let b = d.board("1");
    b.client
        .subscribe("stats/fabgate", rumqttc::QoS::AtMostOnce)
        .unwrap();
    for _ in 0..2 {
        assert!(b.next_on("stats/fabgate", WAIT).is_some(), "no stats tick");
    }
    d.stop();
    assert!(wait_datagram(&sock, "STOPPING=1", &mut seen), "{seen:?}");
    assert!(
        !seen.iter().any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "{seen:?}"
    );
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

/// A plain HTTP/1.1 GET; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn metrics_are_served_in_prometheus_format() {
    let mut lab = Lab::new();
    fixture_f(&lab);
    // No staff alerts: fixture F's CNC 1 is due for maintenance, and the alert email the
    // jobs thread queues at start would race the `fabgate_outbox_pending 0` line below.
    lab.extra_config = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[sync]\nalerts = false\n".into();
    let d = lab.start();
    let addr = {
        assert!(d.wait_log("metrics on http://"));
        let log = d.log.lock().unwrap();
        let line = log
            .iter()
            .find(|l| l.contains("metrics on http://"))
            .unwrap();
        line.split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let b = d.board("1");
    b.must(r#"{"action":"checkmachine"}"#);
    b.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
    b.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
    b.publish(r#"{"action":"bogus"}"#);
    b.publish(r#"{"action":"alive","version":"1","ip":"1.2.3.4","serial":"s","heap":1}"#);
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = http_get(&addr, "/metrics");
        if body.contains("outcome=\"silent\"") || started.elapsed() > TIMEOUT {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.contains("200"), "{status}");
    for line in [
        "fabgate_board_messages_total{action=\"checkuser\",outcome=\"replied\"} 2",
        "fabgate_board_messages_total{action=\"checkmachine\",outcome=\"replied\"} 1",
        "fabgate_board_messages_total{action=\"invalid\",outcome=\"dropped\"} 1",
        "fabgate_board_messages_total{action=\"alive\",outcome=\"silent\"} 1",
        "fabgate_reply_latency_seconds_bucket{le=\"+Inf\"} 3",
        "fabgate_reply_latency_seconds_count 3",
        "fabgate_boards_online 1",
        "fabgate_outbox_pending 0",
        "fabgate_outbox_failed 0",
        "# TYPE fabgate_reply_latency_seconds histogram",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    for prefix in [
        "fabgate_database_bytes ",
        "fabgate_process_resident_memory_bytes ",
        "fabgate_data_disk_available_bytes ",
        "fabgate_reply_latency_seconds_bucket{le=\"0.0005\"} ",
        "fabgate_reply_latency_seconds_bucket{le=\"0.5\"} ",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(prefix)),
            "missing {prefix:?} in\n{body}"
        );
    }
    let (status, _) = http_get(&addr, "/nope");
    assert!(status.contains("404"), "{status}");
}

#[test]
fn doctor_reports_what_to_fix_and_passes_on_a_sound_lab() {
    let lab = Lab::new();
    let out = lab.ok(&["doctor"]);
    for needle in [
        "configuration: valid",
        "data directory",
        "disk space",
        "clock",
    ] {
        assert!(out.contains(needle), "{out}");
    }
    if !std::path::Path::new("/dev/spidev0.0").exists() {
        assert!(
            out.contains("not found")
                && out.contains("dtparam=spi=on in /boot/firmware/config.txt"),
            "{out}"
        );
    }
    // Port held by the running daemon: still fine.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = lab.dir.path().join("port.toml");
    // Free ports of our own for the panel (never the default 8443, which parallel tests
    // and other programs share).
    let write_cfg = |mqtt: std::net::SocketAddr, panel: std::net::SocketAddr| {
        std::fs::write(
            &cfg,
            format!(
                "[store]\ndata_dir = {:?}\n[broker]\nlisten = \"{mqtt}\"\n[web]\nlisten = \"{panel}\"\nhttps = false\n",
                lab.dir.path().display().to_string()
            ),
        )
        .unwrap();
    };
    let panel_holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    write_cfg(
        holder.local_addr().unwrap(),
        panel_holder.local_addr().unwrap(),
    );
    let out = fabgate_bin()
        .args(["--config", cfg.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  MQTT port") && stdout.contains("fix:"),
        "{stdout}"
    );
    // The ports held by a running fabgate on this data directory are fine: the daemon
    // takes free ports (port 0), and the doctor is told the ones it got.
    drop((holder, panel_holder));
    let d = lab.start();
    write_cfg(d.mqtt, d.panel);
    let out = fabgate_bin()
        .args(["--config", cfg.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("held by the running fabgate"), "{stdout}");
}
