//! The administration CLI, run as the real binary against a lab in a temp directory.
//! State the CLI cannot create (uses, interventions, boards seen) is written straight into
//! the database file with rusqlite, as the daemon would.

use crate::common::{fabgate_bin, Lab};
use serde_json::Value;
use std::path::Path;

/// The CLI tests' labs start without board credentials.
trait Basics {
    fn with_basics(self) -> Lab;
}

impl Basics for Lab {
    /// Roles, a machine type, two machines and three members most tests start from.
    fn with_basics(self) -> Lab {
        self.ok(&["machine-type", "add", "LASER", "--timeout-min", "120"]);
        self.ok(&["machine", "add", "LASER 1", "--type", "LASER", "--id", "1"]);
        self.ok(&["machine", "add", "LATHE", "--type", "Default type"]);
        self.ok(&[
            "user",
            "add",
            "Anna",
            "--surname",
            "Rossi",
            "--card",
            "AABBCCD1",
        ]);
        self.ok(&[
            "user", "add", "Bruno", "--card", "aabbccd2", "--email", "b@x.org",
        ]);
        self.ok(&[
            "user",
            "add",
            "Carla",
            "--card",
            "aabbccd3",
            "--role",
            "Fab Staff",
        ]);
        self
    }
}

fn rows(v: &Value) -> &Vec<Value> {
    v.as_array().expect("a JSON array")
}

/// The row of a JSON array whose `key` equals `want`.
fn find<'a>(v: &'a Value, key: &str, want: impl Into<Value>) -> &'a Value {
    let want = want.into();
    rows(v)
        .iter()
        .find(|r| r[key] == want)
        .unwrap_or_else(|| panic!("no row with {key} = {want} in {v:#}"))
}

#[test]
fn help_of_every_subcommand_exits_0() {
    let lab = Lab::bare();
    let commands: &[&[&str]] = &[
        &[],
        &["run"],
        &["import-fabomatic"],
        &["user"],
        &["user", "add"],
        &["user", "list"],
        &["user", "disable"],
        &["user", "enable"],
        &["role"],
        &["role", "add"],
        &["role", "list"],
        &["machine-type"],
        &["machine-type", "add"],
        &["machine-type", "list"],
        &["machine"],
        &["machine", "add"],
        &["machine", "list"],
        &["machine", "block"],
        &["machine", "unblock"],
        &["machine", "start"],
        &["machine", "stop"],
        &["authorize"],
        &["maintenance"],
        &["maintenance", "add"],
        &["maintenance", "list"],
        &["board"],
        &["board", "add"],
        &["board", "list"],
        &["board", "remove"],
        &["uses"],
        &["uses", "list"],
        &["export"],
        &["config"],
        &["config", "check"],
        &["config", "default"],
    ];
    for args in commands {
        let mut with_help = args.to_vec();
        with_help.push("--help");
        let out = lab.ok(&with_help);
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    assert!(
        !lab.dir.path().join("data").exists(),
        "--help touched the database"
    );
}

#[test]
fn a_fresh_lab_has_the_seed_roles_and_type() {
    let lab = Lab::bare();
    let roles = lab.json(&["role", "list", "--json"]);
    let names: Vec<&str> = rows(&roles)
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admins", "Fab Staff", "Fab Users", "Anonymous"]);
    assert_eq!(find(&roles, "name", "Fab Users")["authorize_all"], false);
    let types = lab.json(&["machine-type", "list", "--json"]);
    assert_eq!(types[0]["name"], "Default type");
    assert_eq!(types[0]["timeout_min"], 480);
    assert_eq!(types[0]["grace_min"], 2);
    assert_eq!(types[0]["access_open"], false);
    let table = lab.ok(&["role", "list"]);
    assert!(table.starts_with("ID  NAME"), "{table}");
}

#[test]
fn members_machines_and_authorizations() {
    let lab = Lab::bare().with_basics();
    let out = lab.ok(&["role", "add", "Hosts", "--maintenance", "--panel"]);
    assert!(out.contains("added role 5: Hosts"), "{out}");
    lab.fail(&["role", "add", "hosts"]);

    // Members: default role, cards lowercased, found by id, card and email.
    let members = lab.json(&["user", "list", "--json"]);
    let anna = find(&members, "name", "Anna");
    assert_eq!(anna["card_uid"], "aabbccd1");
    assert_eq!(anna["role"], "Fab Users");
    assert_eq!(anna["has_password"], false);
    assert_eq!(find(&members, "name", "Carla")["role"], "Fab Staff");
    let table = lab.ok(&["user", "list"]);
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("ID  NAME"), "{table}");
    let anna_line = table.lines().find(|l| l.contains("Anna Rossi")).unwrap();
    // Columns line up with the header.
    assert_eq!(anna_line.find("Fab Users"), header.find("ROLE"), "{table}");

    let err = lab.fail(&["user", "add", "Zed", "--card", "AABBCCD1"]);
    assert!(
        err.contains("card aabbccd1 already belongs to Anna Rossi (id 1)"),
        "{err}"
    );
    let err = lab.fail(&["user", "add", "Zed", "--email", "B@X.org"]);
    assert!(err.contains("already belongs to Bruno (id 2)"), "{err}");
    lab.fail(&["user", "add", "Zed", "--card", "not-hex"]);
    let out = lab.run(&["user", "add", "Short", "--card", "abc"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: card UID abc has 3 digits"));

    // Machines.
    let machines = lab.json(&["machine", "list", "--json"]);
    assert_eq!(find(&machines, "name", "LATHE")["id"], 2);
    assert_eq!(find(&machines, "name", "LASER 1")["type_name"], "LASER");
    let err = lab.fail(&["machine", "add", "DRILL", "--type", "LASER", "--id", "1"]);
    assert!(err.contains("machine id 1 is taken by 'LASER 1'"), "{err}");
    lab.fail(&["machine", "add", "laser 1", "--type", "LASER"]);
    let err = lab.fail(&["machine", "add", "DRILL", "--type", "WELDER"]);
    assert!(
        err.contains("no machine type named or numbered 'WELDER'"),
        "{err}"
    );

    // Authorizations: idempotent, found by any key, clear errors.
    let out = lab.ok(&["authorize", "aabbccd1", "LASER 1"]);
    assert!(
        out.contains("authorized Anna Rossi (id 1) on machine 1 (LASER 1)"),
        "{out}"
    );
    let out = lab.ok(&["authorize", "1", "laser 1"]);
    assert!(out.contains("already authorized"), "{out}");
    let err = lab.fail(&["authorize", "1", "LASR"]);
    assert!(err.contains("no machine named or numbered 'LASR'"), "{err}");
    let err = lab.fail(&["authorize", "nobody@x.org", "1"]);
    assert!(
        err.contains("no member with id, card or email 'nobody@x.org'"),
        "{err}"
    );
    lab.ok(&["authorize", "b@x.org", "2"]);
    let out = lab.ok(&["authorize", "B@X.ORG", "LATHE", "--revoke"]);
    assert!(out.contains("revoked"), "{out}");
    let out = lab.ok(&["authorize", "2", "LATHE", "--revoke"]);
    assert!(out.contains("was not authorized"), "{out}");
    let pairs: Vec<(i64, i64)> = lab
        .db()
        .prepare("SELECT member_id, machine_id FROM authorizations")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pairs, [(1, 1)]);

    // Disable / enable.
    let out = lab.ok(&["user", "disable", "aabbccd1"]);
    assert!(out.contains("disabled member Anna Rossi (id 1)"), "{out}");
    assert!(lab
        .ok(&["user", "disable", "1"])
        .contains("already disabled"));
    assert_eq!(
        find(&lab.json(&["user", "list", "--json"]), "id", 1)["disabled"],
        true
    );
    assert!(lab.ok(&["user", "list"]).contains("disabled"));
    lab.ok(&["user", "enable", "1"]);
    assert_eq!(
        find(&lab.json(&["user", "list", "--json"]), "id", 1)["disabled"],
        false
    );

    // Block / unblock.
    lab.ok(&["machine", "block", "LATHE"]);
    assert_eq!(
        find(&lab.json(&["machine", "list", "--json"]), "id", 2)["blocked"],
        true
    );
    assert!(lab
        .ok(&["machine", "block", "2"])
        .contains("already blocked"));
    lab.ok(&["machine", "unblock", "2"]);
}

#[test]
fn hostile_input_is_stored_verbatim_or_refused() {
    let lab = Lab::bare();
    let hostile = "<script>alert('x')</script> \"Bobby\"; DROP TABLE members;--";
    lab.ok(&["user", "add", hostile, "--surname", "O'Brien"]);
    let members = lab.json(&["user", "list", "--json"]);
    assert_eq!(members[0]["name"], hostile);
    assert_eq!(members[0]["surname"], "O'Brien");
    for bad in ["two\nlines", "", "   ", "tab\there", "esc\u{1b}[31m"] {
        lab.fail(&["user", "add", bad]);
        lab.fail(&["machine-type", "add", bad]);
    }
    let long = "x".repeat(101);
    let err = lab.fail(&["machine-type", "add", &long]);
    assert!(err.contains("too long"), "{err}");
    lab.ok(&["machine-type", "add", &"é".repeat(100)]);
    let err = lab.fail(&["machine", "add", "42", "--type", "1"]);
    assert!(err.contains("only digits"), "{err}");
    // A hostile value echoed in an error is escaped, never raw.
    let err = lab.fail(&["machine", "block", "a\nb"]);
    assert!(err.contains("'a\\nb'"), "{err}");
    lab.fail(&["uses", "list", "--limit", "0"]);
    lab.fail(&[
        "maintenance",
        "add",
        "1",
        "--hours",
        "1",
        "--description",
        "x",
    ]);
    assert_eq!(rows(&lab.json(&["user", "list", "--json"])).len(), 1);
}

#[test]
fn board_credentials_show_the_password_once() {
    let lab = Lab::bare().with_basics();
    let out = lab.ok(&["board", "add", "--machine", "LASER 1"]);
    assert!(out.contains("credentials 'board-1' for machine 1"), "{out}");
    let line = out.lines().find(|l| l.starts_with("password: ")).unwrap();
    assert!(
        line.ends_with("(shown once; flash it into the board)"),
        "{out}"
    );
    let password = line.split(' ').nth(1).unwrap().to_string();
    assert_eq!(password.len(), 16);
    assert!(password.bytes().all(|b| b.is_ascii_hexdigit()));

    // The stored hash checks the printed password, the way the broker does.
    let (salt, hash): (Vec<u8>, Vec<u8>) = lab
        .db()
        .query_row(
            "SELECT salt, hash FROM board_credentials WHERE username = 'board-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(salt.len(), 16);
    // argon2id over hex(SHA-256(salt || password)) (issue 11: a slow hash for boards too).
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let phc = String::from_utf8(hash).unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let input = hex::encode(fabgate::broker::hash_password(&salt, &password));
    assert!(argon2::Argon2::default()
        .verify_password(input.as_bytes(), &PasswordHash::new(&phc).unwrap())
        .is_ok());

    lab.fail(&["board", "add", "--lab"]);
    let out = lab.ok(&[
        "board",
        "add",
        "--lab",
        "--username",
        "lab",
        "--password",
        "s3cret",
    ]);
    assert!(out.contains("added lab-wide credentials 'lab'"), "{out}");
    assert!(!out.contains("password:"), "{out}");
    let out = lab.ok(&[
        "board",
        "add",
        "--lab",
        "--username",
        "lab",
        "--password",
        "n3w",
    ]);
    assert!(out.contains("replaced the password"), "{out}");
    let err = lab.fail(&["board", "add", "--machine", "2", "--username", "lab"]);
    assert!(err.contains("already taken"), "{err}");
    lab.fail(&["board", "add", "--machine", "9"]);

    lab.db()
        .execute_batch(
            "INSERT INTO boards (machine_id, ip_address, fw_version, serial, heap, last_seen)
             VALUES (1, '192.168.1.31', '1.4.2', 'SN-0031', 81234, 1795356180),
                    (2, '192.168.1.32', '1.4.1', 'SN-0032', 70000, 1795356000)",
        )
        .unwrap();
    let table = lab.ok(&["board", "list"]);
    let json = lab.ok(&["board", "list", "--json"]);
    for text in [&table, &json] {
        assert!(!text.contains(&password), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("n3w"), "{text}");
        assert!(!text.contains("salt") && !text.contains("hash"), "{text}");
    }
    assert!(table.contains("lab-wide"), "{table}");
    let board1 = table.lines().find(|l| l.starts_with("board-1")).unwrap();
    for want in [
        "machine 1 (LASER 1)",
        "1.4.2",
        "192.168.1.31",
        "SN-0031",
        "81234",
        "2026-11-22 14:03:00Z",
    ] {
        assert!(board1.contains(want), "{want}: {table}");
    }
    let list: Value = serde_json::from_str(&json).unwrap();
    let seen_only = rows(&list).iter().find(|r| r["machine_id"] == 2).unwrap();
    assert_eq!(seen_only["username"], Value::Null);
    assert_eq!(seen_only["fw_version"], "1.4.1");

    assert!(lab.ok(&["board", "remove", "board-1"]).contains("removed"));
    let err = lab.fail(&["board", "remove", "board-1"]);
    assert!(
        err.contains("no board credentials with username 'board-1'"),
        "{err}"
    );
    assert!(!lab.ok(&["board", "list"]).contains("board-1"));
}

#[test]
fn maintenance_is_due_after_enough_hours_of_use() {
    let lab = Lab::bare().with_basics();
    let err = lab.fail(&[
        "maintenance",
        "add",
        "1",
        "--hours",
        "2",
        "--description",
        "Lens",
        "--lcd",
        "Clean the lens, please",
    ]);
    assert!(err.contains("16") && err.contains("hint"), "{err}");
    lab.ok(&[
        "maintenance",
        "add",
        "LASER 1",
        "--hours",
        "2",
        "--description",
        "Clean the lens",
        "--lcd",
        "CLEAN LENS",
        "--url",
        "https://wiki.example.org/laser",
    ]);
    lab.ok(&[
        "maintenance",
        "add",
        "LATHE",
        "--hours",
        "10",
        "--description",
        "Oil",
    ]);
    lab.fail(&[
        "maintenance",
        "add",
        "LATHE",
        "--hours=-1",
        "--description",
        "Oil",
    ]);
    lab.fail(&[
        "maintenance",
        "add",
        "LATHE",
        "--hours",
        "NaN",
        "--description",
        "Oil",
    ]);

    let plans = lab.json(&["maintenance", "list", "--json"]);
    assert_eq!(find(&plans, "description", "Clean the lens")["due"], false);

    // 1.5 h + 1 h of closed use on the laser, an open use (does not count), and 1 h on the lathe.
    let db = lab.db();
    db.execute_batch(
        "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts) VALUES
           (1, 1, 1000, 6400, 6400), (2, 1, 10000, 13600, 13600), (3, 1, 20000, 90000, NULL),
           (1, 2, 1000, 4600, 4600)",
    )
    .unwrap();
    let plans = lab.json(&["maintenance", "list", "--json"]);
    let lens = find(&plans, "description", "Clean the lens");
    assert_eq!(lens["due"], true);
    assert_eq!(lens["hours_used"], 2.5);
    assert_eq!(lens["machine_name"], "LASER 1");
    assert_eq!(find(&plans, "description", "Oil")["due"], false);
    let table = lab.ok(&["maintenance", "list"]);
    let lens_line = table
        .lines()
        .find(|l| l.contains("Clean the lens"))
        .unwrap();
    assert!(
        lens_line.contains("DUE") && lens_line.contains("2.5"),
        "{table}"
    );
    assert!(!table
        .lines()
        .find(|l| l.contains("Oil"))
        .unwrap()
        .contains("DUE"));

    // An intervention after the first use restarts the counter: 1 h left, not due.
    db.execute_batch(
        "INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp)
         VALUES (1, 1, 3, 7000)",
    )
    .unwrap();
    let plans = lab.json(&["maintenance", "list", "--json"]);
    let lens = find(&plans, "description", "Clean the lens");
    assert_eq!(
        (lens["due"].clone(), lens["hours_used"].clone()),
        (Value::Bool(false), 1.0.into())
    );
}

#[test]
fn uses_list_is_newest_first_and_filtered() {
    let lab = Lab::bare().with_basics();
    lab.db()
        .execute_batch(
            "INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts, replay) VALUES
               (1, 1, 1795356180, 1795359780, 1795359780, 0),
               (2, 2, 1795360000, 1795360060, 1795360090, 1),
               (3, 1, 1795370000, 1795370600, NULL, NULL)",
        )
        .unwrap();
    let all = lab.json(&["uses", "list", "--json"]);
    let ids: Vec<i64> = rows(&all)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2, 1]);
    assert_eq!(all[2]["member"], "Anna Rossi");
    assert_eq!(all[2]["machine"], "LASER 1");
    assert_eq!(all[2]["start_utc"], "2026-11-22 14:03:00Z");
    assert_eq!(all[2]["duration_s"], 3600);
    assert_eq!(all[1]["replay"], true);
    assert_eq!(all[0]["end"], Value::Null);

    let laser = lab.json(&["uses", "list", "--machine", "laser 1", "--json"]);
    assert_eq!(rows(&laser).len(), 2);
    let open = lab.json(&["uses", "list", "--open", "--json"]);
    assert_eq!(rows(&open).len(), 1);
    assert_eq!(open[0]["id"], 3);
    assert_eq!(
        rows(&lab.json(&["uses", "list", "--limit", "1", "--json"])).len(),
        1
    );
    let none = lab.json(&["uses", "list", "--machine", "2", "--open", "--json"]);
    assert!(rows(&none).is_empty());
    lab.fail(&["uses", "list", "--machine", "LASR"]);

    let table = lab.ok(&["uses", "list"]);
    let first = table.lines().nth(1).unwrap();
    assert!(first.contains("open") && first.contains("Carla"), "{table}");
    let last = table.lines().last().unwrap();
    assert!(
        last.contains("2026-11-22 14:03:00Z") && last.contains("1:00:00"),
        "{table}"
    );
    // Machine list shows who is on a machine now.
    let machines = lab.json(&["machine", "list", "--json"]);
    assert_eq!(find(&machines, "id", 1)["in_use_by"], "Carla");
}

#[test]
fn machine_start_and_stop_are_queued_for_the_daemon() {
    let lab = Lab::bare().with_basics();
    let out = lab.run(&["machine", "start", "LASER 1", "--card", "AABBCCD1"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("queued: the daemon sends it if machine 1 is online"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("never been seen"));
    lab.ok(&["machine", "stop", "2", "--card", "aabbccd3"]);
    let err = lab.fail(&["machine", "start", "1", "--card", "ffffffff"]);
    assert!(err.contains("unknown card"), "{err}");
    lab.ok(&["user", "disable", "2"]);
    let err = lab.fail(&["machine", "start", "1", "--card", "aabbccd2"]);
    assert!(
        err.contains("Bruno (id 2)") && err.contains("disabled"),
        "{err}"
    );
    lab.fail(&["machine", "start", "9", "--card", "aabbccd1"]);
    let queued: Vec<(i64, String, String)> = lab
        .db()
        .prepare("SELECT machine_id, request_type, card_uid FROM board_requests ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        queued,
        [
            (1, "start".to_string(), "aabbccd1".to_string()),
            (2, "stop".to_string(), "aabbccd3".to_string())
        ]
    );
}

#[test]
fn export_has_every_key_and_no_secret() {
    let lab = Lab::bare().with_basics();
    lab.ok(&["authorize", "1", "1"]);
    lab.ok(&[
        "maintenance",
        "add",
        "1",
        "--hours",
        "1",
        "--description",
        "Lens",
    ]);
    lab.ok(&[
        "board",
        "add",
        "--lab",
        "--username",
        "lab",
        "--password",
        "s3cret",
    ]);
    let db = lab.db();
    db.execute_batch(
        "UPDATE members SET password_hash = 'pbkdf2:sha256:600000$SALT$HASHVALUE' WHERE member_id = 1;
         INSERT INTO interventions (maintenance_id, machine_id, member_id, timestamp) VALUES (1, 1, 3, 5);
         INSERT INTO unknown_cards (card_uid, machine_id, timestamp) VALUES ('deadbeef', 1, 7);
         INSERT INTO boards (machine_id, ip_address, fw_version, serial, heap, last_seen)
           VALUES (1, '10.0.0.1', '1.4.2', 'S1', 1, 9);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 22000)
         INSERT INTO uses (member_id, machine_id, start_ts, last_seen, end_ts, replay)
           SELECT 1 + x % 3, 1 + x % 2, 1700000000 + x * 600, 1700000000 + x * 600 + 300,
                  1700000000 + x * 600 + 300, x % 7 = 0 FROM n;",
    )
    .unwrap();

    // A lab-sized export (22,000 uses, FabOMatic's biggest sample); its speed is a
    // benchmark matter, not asserted here.
    let text = lab.ok(&["export", "--json"]);

    assert!(
        !text.contains("password_hash"),
        "the export names password_hash"
    );
    assert!(!text.contains("HASHVALUE") && !text.contains("s3cret"));
    assert!(!text.contains("salt"), "board credentials leaked");
    let doc: Value = serde_json::from_str(&text).unwrap();
    for key in [
        "fabgate_version",
        "schema_version",
        "exported_at",
        "roles",
        "members",
        "machine_types",
        "machines",
        "authorizations",
        "maintenances",
        "interventions",
        "uses",
        "unknown_cards",
        "boards",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}");
    }
    assert_eq!(doc["fabgate_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["schema_version"], fabgate::store::schema_version());
    assert_eq!(doc["uses"].as_array().unwrap().len(), 22_000);
    assert_eq!(doc["members"][0]["has_password"], true);
    assert_eq!(doc["members"][1]["has_password"], false);
    assert_eq!(doc["authorizations"][0]["member_id"], 1);
    assert_eq!(doc["unknown_cards"][0]["card_uid"], "deadbeef");
    assert_eq!(doc["boards"][0]["fw_version"], "1.4.2");
    assert_eq!(doc["machines"].as_array().unwrap().len(), 2);
    assert!(doc.get("board_credentials").is_none());

    lab.fail(&["export"]);
}

#[test]
fn config_check_reports_the_file_or_the_bad_key() {
    let lab = Lab::bare();
    let out = lab.ok(&["config", "check"]);
    assert_eq!(out.trim(), format!("ok: {}", lab.config_path().display()));
    let good = lab.dir.path().join("good.toml");
    std::fs::write(&good, "[broker]\nlisten = \"127.0.0.1:1884\"\n").unwrap();
    let out = lab.ok(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("ok: {}", good.display()));

    let bad = lab.dir.path().join("bad.toml");
    std::fs::write(&bad, "[broker]\nlisten_port = 1883\n").unwrap();
    let err = lab.fail(&["config", "check", bad.to_str().unwrap()]);
    assert!(
        err.contains("listen_port") && err.contains("bad.toml"),
        "{err}"
    );

    // The broken file given with --config is checked, not a startup failure.
    let out = fabgate_bin()
        .args(["--config", bad.to_str().unwrap(), "config", "check"])
        .env_remove("FABGATE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_port"));

    // Neither file nor --config: the embedded defaults.
    let out = fabgate_bin()
        .args(["config", "check"])
        .env_remove("FABGATE_CONFIG")
        .current_dir(lab.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: embedded defaults"));

    let default = lab.ok(&["config", "default"]);
    assert!(default.contains("[store]"));
    let missing = Path::new("/nonexistent/fabgate.toml");
    let err = lab.fail(&["config", "check", missing.to_str().unwrap()]);
    assert!(err.contains("cannot read"), "{err}");
}
