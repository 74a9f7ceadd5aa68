//! Wire types of the Fab-O-Matic protocol (protocol.md §2): queries the boards send and
//! the replies they parse. Parsing is strict where FabOMatic crashed (§8.6): anything
//! malformed is an error the caller logs and drops, never a reply.

use serde::Serialize;
use serde_json::{Map, Value};

/// A query from a board on `machine/<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    CheckMachine,
    CheckUser {
        uid: String,
    },
    StartUse {
        uid: String,
        replay: bool,
    },
    InUse {
        uid: String,
        duration: i64,
    },
    StopUse {
        uid: String,
        duration: i64,
        replay: bool,
    },
    Maintenance {
        uid: String,
        replay: bool,
    },
    Alive {
        version: String,
        ip: String,
        serial: String,
        heap: i64,
    },
    SyncCache,
}

impl Query {
    /// The action name, for logs and metrics.
    pub fn action(&self) -> &'static str {
        match self {
            Query::CheckMachine => "checkmachine",
            Query::CheckUser { .. } => "checkuser",
            Query::StartUse { .. } => "startuse",
            Query::InUse { .. } => "inuse",
            Query::StopUse { .. } => "stopuse",
            Query::Maintenance { .. } => "maintenance",
            Query::Alive { .. } => "alive",
            Query::SyncCache => "synccache",
        }
    }

    /// Does this query change usage records (so its reply waits for the commit)?
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Query::StartUse { .. }
                | Query::StopUse { .. }
                | Query::Maintenance { .. }
                | Query::CheckUser { .. }
                | Query::InUse { .. }
        )
    }
}

/// Why a payload was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload is not a JSON object")]
    NotObject,
    #[error("missing \"action\"")]
    MissingAction,
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("missing or invalid field \"{0}\"")]
    BadField(&'static str),
}

/// Longest card UID accepted: boards send 8 hex digits; 7- or 10-byte UIDs need 20.
const MAX_UID_LEN: usize = 32;
/// Longest version / ip / serial string kept from an `alive`.
const MAX_INFO_LEN: usize = 64;

pub fn parse(payload: &[u8]) -> Result<Query, Malformed> {
    let text = std::str::from_utf8(payload).map_err(|_| Malformed::NotUtf8)?;
    let value: Value = serde_json::from_str(text).map_err(|e| Malformed::NotJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(Malformed::NotObject);
    };
    let action = match obj.get("action") {
        Some(Value::String(a)) => a.as_str(),
        Some(_) => return Err(Malformed::BadField("action")),
        None => return Err(Malformed::MissingAction),
    };
    Ok(match action {
        "checkmachine" => Query::CheckMachine,
        "synccache" => Query::SyncCache,
        "checkuser" => Query::CheckUser { uid: uid(&obj)? },
        "startuse" => Query::StartUse {
            uid: uid(&obj)?,
            replay: replay(&obj)?,
        },
        "inuse" => Query::InUse {
            uid: uid(&obj)?,
            duration: duration(&obj)?,
        },
        "stopuse" => Query::StopUse {
            uid: uid(&obj)?,
            duration: duration(&obj)?,
            replay: replay(&obj)?,
        },
        "maintenance" => Query::Maintenance {
            uid: uid(&obj)?,
            replay: replay(&obj)?,
        },
        "alive" => Query::Alive {
            version: info(&obj, "version")?.ok_or(Malformed::BadField("version"))?,
            ip: info(&obj, "ip")?.ok_or(Malformed::BadField("ip"))?,
            serial: info(&obj, "serial")?.unwrap_or_default(),
            heap: heap(&obj),
        },
        other => return Err(Malformed::UnknownAction(truncate(other, 32).to_string())),
    })
}

/// Card UIDs are matched lowercase (protocol.md §8.17: firmware sends lowercase hex).
/// Anything but hex digits is refused here, at the edge (issue 11): no invented "UID"
/// reaches the database, an alert or a chat message.
fn uid(obj: &Map<String, Value>) -> Result<String, Malformed> {
    match obj.get("uid") {
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_UID_LEN
                && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(s.to_ascii_lowercase())
        }
        _ => Err(Malformed::BadField("uid")),
    }
}

fn duration(obj: &Map<String, Value>) -> Result<i64, Malformed> {
    obj.get("duration")
        .and_then(Value::as_i64)
        .ok_or(Malformed::BadField("duration"))
}

fn replay(obj: &Map<String, Value>) -> Result<bool, Malformed> {
    match obj.get("replay") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Malformed::BadField("replay")),
    }
}

fn info(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, Malformed> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(truncate(s, MAX_INFO_LEN).to_string())),
        Some(_) => Err(Malformed::BadField(key)),
    }
}

/// Firmware sends the free heap as a string, FabOMatic's tests as a number (§8.18).
fn heap(obj: &Map<String, Value>) -> i64 {
    match obj.get("heap") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Cuts a string to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reply to `checkmachine` (§2.1). Field order as FabOMatic's.
#[derive(Debug, Serialize)]
pub struct MachineReply<'a> {
    pub request_ok: bool,
    pub is_valid: bool,
    pub maintenance: bool,
    pub allowed: bool,
    pub name: &'a str,
    pub logoff: i64,
    #[serde(rename = "type")]
    pub type_id: i64,
    pub grace: Option<i64>,
    pub description: &'a str,
}

/// Reply to `checkuser` (§2.2).
#[derive(Debug, Serialize)]
pub struct UserReply<'a> {
    pub request_ok: bool,
    pub is_valid: bool,
    pub name: &'a str,
    pub missing_auth: bool,
    pub level: u8,
}

/// Reply to `startuse`, `inuse`, `stopuse`, `maintenance`, and to any query for an
/// unknown machine.
#[derive(Debug, Serialize)]
pub struct SimpleReply<'a> {
    pub request_ok: bool,
    pub message: &'a str,
}

#[derive(Debug, Serialize)]
pub struct CardEntry<'a> {
    pub uid: &'a str,
    pub level: u8,
}

/// Reply to `synccache` (§2.8).
#[derive(Debug, Serialize)]
pub struct SyncReply<'a> {
    pub request_ok: bool,
    pub cards: Vec<CardEntry<'a>>,
}

/// Remote start/stop on `machine/<id>/request` (§2.9).
#[derive(Debug, Serialize)]
pub struct BoardRequest<'a> {
    pub request_type: &'a str,
    pub uid: &'a str,
}

/// Serialises a reply compactly (the firmware's buffer is 300 bytes, §1.4).
pub fn to_bytes<T: Serialize>(reply: &T) -> Vec<u8> {
    serde_json::to_vec(reply).expect("reply types always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_firmware_payloads_exactly() {
        let cases: &[(&str, Query)] = &[
            (r#"{"action":"checkmachine"}"#, Query::CheckMachine),
            (
                r#"{"action":"checkuser","uid":"aabbccd3"}"#,
                Query::CheckUser {
                    uid: "aabbccd3".into(),
                },
            ),
            (
                r#"{"action":"startuse", "uid":"aabbccd3"}"#,
                Query::StartUse {
                    uid: "aabbccd3".into(),
                    replay: false,
                },
            ),
            (
                r#"{"action":"startuse", "uid":"aabbccd3", "replay":true}"#,
                Query::StartUse {
                    uid: "aabbccd3".into(),
                    replay: true,
                },
            ),
            (
                r#"{"action":"inuse", "uid":"aabbccd3","duration":930}"#,
                Query::InUse {
                    uid: "aabbccd3".into(),
                    duration: 930,
                },
            ),
            (
                r#"{"action":"stopuse", "uid":"AABBCCD3","duration":600, "replay":true}"#,
                Query::StopUse {
                    uid: "aabbccd3".into(),
                    duration: 600,
                    replay: true,
                },
            ),
            (
                r#"{"action":"maintenance", "uid":"aabbccd2"}"#,
                Query::Maintenance {
                    uid: "aabbccd2".into(),
                    replay: false,
                },
            ),
            (
                r#"{"action":"alive","version":"hardware-rev0-it_IT,1.0.1","ip":"192.168.1.42","serial":"a0b1c2d3e4f5","heap":"183452"}"#,
                Query::Alive {
                    version: "hardware-rev0-it_IT,1.0.1".into(),
                    ip: "192.168.1.42".into(),
                    serial: "a0b1c2d3e4f5".into(),
                    heap: 183452,
                },
            ),
            (
                r#"{"action":"alive","version":"0.5.2","ip":"10.0.0.5"}"#,
                Query::Alive {
                    version: "0.5.2".into(),
                    ip: "10.0.0.5".into(),
                    serial: String::new(),
                    heap: 0,
                },
            ),
            (
                r#"{"action":"alive","version":"1","ip":"1","heap":77,"serial":null}"#,
                Query::Alive {
                    version: "1".into(),
                    ip: "1".into(),
                    serial: String::new(),
                    heap: 77,
                },
            ),
            (r#"{"action":"synccache"}"#, Query::SyncCache),
        ];
        for (payload, want) in cases {
            assert_eq!(&parse(payload.as_bytes()).unwrap(), want, "{payload}");
        }
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"{\"action\":\"checkuser\",\"uid\":",
            b"[1,2]",
            b"42",
            b"null",
            b"\"checkmachine\"",
            b"{\"uid\":\"aabbccd3\"}",
            b"{\"action\":\"reboot\"}",
            b"{\"action\":7}",
            b"{\"action\":\"checkuser\"}",
            b"{\"action\":\"checkuser\",\"uid\":12345678}",
            b"{\"action\":\"checkuser\",\"uid\":\"\"}",
            b"{\"action\":\"checkuser\",\"uid\":\"<!channel>\"}",
            b"{\"action\":\"checkuser\",\"uid\":\"aabbccdg\"}",
            b"{\"action\":\"checkuser\",\"uid\":\"aabb ccdd\"}",
            b"{\"action\":\"startuse\",\"uid\":\"*bold*\"}",
            b"{\"action\":\"inuse\",\"uid\":\"aabbccd3\"}",
            b"{\"action\":\"inuse\",\"uid\":\"aabbccd3\",\"duration\":\"30\"}",
            b"{\"action\":\"inuse\",\"uid\":\"aabbccd3\",\"duration\":30.5}",
            b"{\"action\":\"stopuse\",\"uid\":\"aabbccd3\",\"duration\":1e300}",
            b"{\"action\":\"stopuse\",\"uid\":\"aabbccd3\",\"duration\":99999999999999999999999}",
            b"{\"action\":\"startuse\",\"uid\":\"aabbccd3\",\"replay\":\"yes\"}",
            b"{\"action\":\"alive\",\"ip\":\"1.2.3.4\"}",
            b"\xff\xfe{\"action\":\"checkmachine\"}",
        ];
        for payload in cases {
            assert!(
                parse(payload).is_err(),
                "{:?}",
                String::from_utf8_lossy(payload)
            );
        }
        let long_uid = format!(
            "{{\"action\":\"checkuser\",\"uid\":\"{}\"}}",
            "a".repeat(33)
        );
        assert_eq!(parse(long_uid.as_bytes()), Err(Malformed::BadField("uid")));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("àèìòù", 3), "à");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
