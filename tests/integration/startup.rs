//! Starting the daemon: embedded defaults, bad configuration, a taken port, quiet logs.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn bad_config_stops_the_start_with_file_key_and_hint() {
    let lab = Lab::bare();
    let bad = lab.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[broker]\nlisten = \"127.0.0.1:0\"\nlisten_port = 1883\n",
    )
    .unwrap();
    let out = fabgate_bin()
        .arg("--config")
        .arg(&bad)
        .env_remove("FABGATE_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("listen_port") && err.contains("hint"),
        "{err}"
    );
    // The same through FABGATE_CONFIG.
    let out = fabgate_bin().env("FABGATE_CONFIG", &bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_port"));
}

#[test]
fn a_taken_port_is_reported_clearly() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let lab = Lab::bare();
    let cfg = lab.dir.path().join("taken.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\ndata_dir = {:?}\n[broker]\nlisten = \"127.0.0.1:{port}\"\n",
            lab.dir.path().display().to_string()
        ),
    )
    .unwrap();
    let out = fabgate_bin().arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&port.to_string()) && err.contains("hint"),
        "{err}"
    );
}

#[test]
fn no_arguments_starts_a_working_lab_on_embedded_defaults() {
    // `fabgate` alone: data under ./data, broker on 1883, panel on 8443. These are the
    // only fixed ports of the suite (the defaults are what is tested); another program or
    // a parallel suite may hold one, and then the clear refusal naming it is the expected
    // behaviour. Either way the outcome is an event: the ready line or the exit.
    let dir = tempfile::tempdir().unwrap();
    let mut child = fabgate_bin()
        .current_dir(dir.path())
        .env_remove("FABGATE_CONFIG")
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ready: MQTT on") {
                let _ = tx.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let ready = rx.recv_timeout(WAIT).is_ok();
    if !ready {
        // Not ready in time: a refusal has exited already; a hang is ended (and fails).
        let _ = child.kill();
    }
    if ready {
        assert!(dir.path().join("data/fabgate.db").exists());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    if ready {
        assert!(log.contains("ready: MQTT on 0.0.0.0:1883"), "{log}");
        assert!(log.contains("panel on http"), "{log}");
        assert!(log.contains(":8443"), "{log}");
        assert!(log.contains("no board credentials yet"), "{log}");
        assert!(status.success(), "{log}");
    } else {
        assert!(!status.success(), "neither ready nor failed: {log}");
        assert!(
            (log.contains("1883") || log.contains("8443")) && log.contains("hint"),
            "{log}"
        );
    }
}

#[test]
fn broker_log_noise_is_filtered() {
    // rumqttd's tracing spans would log ~8 ERROR lines per message (research/deps.md §9).
    let (_lab, d) = start_f();
    let b = d.board("1");
    for _ in 0..20 {
        b.must(r#"{"action":"checkmachine"}"#);
    }
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .all(|l| !l.contains("incoming_payload") && !l.contains("remote_link")),
        "{log:#?}"
    );
    let errors = log.iter().filter(|l| l.starts_with("<3>")).count();
    assert_eq!(errors, 0, "{log:#?}");
}
