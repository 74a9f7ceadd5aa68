//! Topic ACL: what each kind of credential may publish and subscribe to. One rule
//! function (`decide`) over a `Credential` enum, so a new kind of client (telemetry
//! devices on `telemetry/<device>`, a read-only Home Assistant login) is one more enum
//! variant and one more match arm, checked by the table test below.
//!
//! Boards publish queries on `machine/<id>` and read `machine/<id>/reply` and
//! `machine/<id>/request`; only the daemon (in-process links, never checked here)
//! publishes replies and requests. Nobody may retain, use wildcards, `$share` or `$SYS`.

use crate::config::ProtocolConfig;

/// The topic layout, from `[protocol]`.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `machine`
    pub prefix: String,
    /// `/reply`
    pub reply: String,
    /// `/request`
    pub request: String,
    /// `stats/fabgate`: the daemon's statistics, readable (exact topic only) by any login.
    pub stats: String,
}

impl Topics {
    pub fn from_config(p: &ProtocolConfig) -> Topics {
        Topics {
            prefix: p.topic.trim_matches('/').to_string(),
            reply: p.reply_subtopic.clone(),
            request: p.request_subtopic.clone(),
            stats: format!("{}/{}", p.stats_topic.trim_matches('/'), p.stats_id),
        }
    }

    /// The machine segment of `<prefix>/<id><suffix>`, if `topic` has that shape with an id
    /// of 1 to 5 ASCII digits (the firmware's range, protocol.md §1.2).
    fn machine_in<'t>(&self, topic: &'t str, suffix: &str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let id = rest.strip_suffix(suffix)?;
        let ok = (1..=5).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit());
        ok.then_some(id)
    }
}

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A per-board credential: rights on its own machine only.
    Board { machine: String },
    /// The lab-wide password (or no password where anonymous boards are allowed): bound to
    /// the first machine id the connection uses, then the same rights as `Board`.
    Lab,
}

impl Credential {
    /// Label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Board { .. } => "board",
            Credential::Lab => "lab",
        }
    }
}

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    Publish {
        topic: &'a str,
        retain: bool,
    },
    Subscribe {
        filter: &'a str,
    },
    /// A last will: a publish deferred to the disconnection, judged like one.
    Will {
        topic: &'a str,
        retain: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed, and the connection is now bound to this machine id.
    Bind(String),
    Deny(&'static str),
}

/// The rule. `bound` is the machine id a lab-wide connection is already bound to.
pub fn decide(topics: &Topics, who: &Credential, bound: Option<&str>, action: Action) -> Verdict {
    let machine = match action {
        Action::Publish { retain: true, .. } | Action::Will { retain: true, .. } => {
            return Verdict::Deny("retained messages are not allowed")
        }
        Action::Publish { topic, .. } | Action::Will { topic, .. } => {
            match topics.machine_in(topic, "") {
                Some(id) => id,
                None => return Verdict::Deny("not the client's query topic"),
            }
        }
        Action::Subscribe { filter } => {
            if filter == topics.stats {
                return Verdict::Allow;
            }
            match topics
                .machine_in(filter, &topics.reply)
                .or_else(|| topics.machine_in(filter, &topics.request))
            {
                Some(id) => id,
                None => return Verdict::Deny("not the client's reply or request topic"),
            }
        }
    };
    match (who, bound) {
        (Credential::Board { machine: own }, _) if own == machine => Verdict::Allow,
        (Credential::Board { .. }, _) => Verdict::Deny("another machine's topic"),
        (Credential::Lab, None) => Verdict::Bind(machine.to_string()),
        (Credential::Lab, Some(b)) if b == machine => Verdict::Allow,
        (Credential::Lab, Some(_)) => Verdict::Deny("bound to another machine"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics::from_config(&ProtocolConfig::default())
    }

    fn publish(topic: &str) -> Action<'_> {
        Action::Publish {
            topic,
            retain: false,
        }
    }

    fn sub(filter: &str) -> Action<'_> {
        Action::Subscribe { filter }
    }

    #[test]
    fn the_acl_table() {
        let board1 = Credential::Board {
            machine: "1".into(),
        };
        let lab = Credential::Lab;
        use Verdict::*;
        let deny = |v: &Verdict| matches!(v, Deny(_));
        #[rustfmt::skip]
        let table: Vec<(&Credential, Option<&str>, Action, Verdict)> = vec![
            // A per-board credential: its own machine only.
            (&board1, None, publish("machine/1"), Allow),
            (&board1, None, sub("machine/1/reply"), Allow),
            (&board1, None, sub("machine/1/request"), Allow),
            (&board1, None, sub("stats/fabgate"), Allow),
            (&board1, None, publish("machine/2"), Deny("")),
            (&board1, None, publish("machine/01"), Deny("")),
            (&board1, None, sub("machine/2/reply"), Deny("")),
            (&board1, None, publish("machine/1/reply"), Deny("")),
            (&board1, None, publish("machine/1/request"), Deny("")),
            (&board1, None, publish("stats/fabgate"), Deny("")),
            (&board1, None, Action::Publish { topic: "machine/1", retain: true }, Deny("")),
            (&board1, None, Action::Will { topic: "machine/1/reply", retain: false }, Deny("")),
            (&board1, None, Action::Will { topic: "machine/1", retain: true }, Deny("")),
            (&board1, None, Action::Will { topic: "machine/1", retain: false }, Allow),
            // Wildcards, shared subscriptions, $SYS, other trees: never.
            (&board1, None, sub("#"), Deny("")),
            (&board1, None, sub("machine/+/reply"), Deny("")),
            (&board1, None, sub("machine/1/#"), Deny("")),
            (&board1, None, sub("machine/+"), Deny("")),
            (&board1, None, sub("$share/g/machine/1/reply"), Deny("")),
            (&board1, None, sub("$SYS/#"), Deny("")),
            (&board1, None, sub("stats/#"), Deny("")),
            (&board1, None, publish("shelly/relay/0"), Deny("")),
            (&board1, None, publish("machine/123456"), Deny("")),
            (&board1, None, publish("machine/"), Deny("")),
            // The lab-wide credential binds on first use, then acts as that board.
            (&lab, None, publish("machine/7"), Bind("7".into())),
            (&lab, None, sub("machine/7/reply"), Bind("7".into())),
            (&lab, Some("7"), sub("machine/7/request"), Allow),
            (&lab, Some("7"), publish("machine/7"), Allow),
            (&lab, Some("7"), publish("machine/8"), Deny("")),
            (&lab, Some("7"), sub("machine/8/reply"), Deny("")),
            (&lab, None, sub("#"), Deny("")),
            (&lab, None, publish("machine/7/reply"), Deny("")),
            (&lab, None, sub("$share/g/machine/7/reply"), Deny("")),
            (&lab, None, Action::Publish { topic: "machine/7", retain: true }, Deny("")),
        ];
        for (who, bound, action, want) in table {
            let got = decide(&topics(), who, bound, action);
            let same = match &want {
                Deny(_) => deny(&got),
                w => w == &got,
            };
            assert!(
                same,
                "{who:?} bound {bound:?} {action:?}: want {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn other_topic_layouts_follow_the_config() {
        let p = ProtocolConfig {
            topic: "/lab/".into(),
            reply_subtopic: "/r".into(),
            ..ProtocolConfig::default()
        };
        let t = Topics::from_config(&p);
        let b = Credential::Board {
            machine: "3".into(),
        };
        assert_eq!(decide(&t, &b, None, publish("lab/3")), Verdict::Allow);
        assert_eq!(decide(&t, &b, None, sub("lab/3/r")), Verdict::Allow);
        assert!(matches!(
            decide(&t, &b, None, sub("machine/3/reply")),
            Verdict::Deny(_)
        ));
    }
}
