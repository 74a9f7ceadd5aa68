//! The embedded MQTT broker (rumqttd through `Router` + `Server` + `LinkBuilder`, see
//! research/deps.md §1, with the patches of vendor/rumqttd/PATCHES.md). It moves bytes
//! and knows no lab rules: the daemon's own in-process links are handed to `terminals`
//! and `jobs`.
//!
//! What a network client may do is decided by the gate (`gate.rs`: connection caps,
//! login backoff, client id takeover rules) and the topic ACL (`acl.rs`). The daemon's
//! links use random client ids with a reserved prefix that devices are refused.
//!
//! The listener socket is bound at start (connections queue in the kernel) but served
//! only after `open()`, which the board link calls once it is subscribed: a board's
//! first query after a restart is never published before anyone listens.
//!
//! Failures: the release build aborts on panic, so rumqttd's panics reachable from a
//! socket were turned into errors at their causes (PATCHES.md). A listener loop that
//! ends with an error is restarted on the same socket; a dead link is rebuilt by its
//! owner (the board link rebuilds itself); the router thread only ends when every
//! sender is gone, i.e. at shutdown.

mod acl;
mod auth;
mod gate;

pub use acl::{Credential, Topics};
pub use auth::{board_secret, hash_password, random_bytes, random_hex, Authenticator};
pub use gate::GateCounters;

use crate::config::{BrokerConfig, ProtocolConfig};
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::{ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Client ids starting with this are the daemon's own and refused to devices.
pub const RESERVED_PREFIX: &str = "fabgate-";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for MQTT on {addr}: {source}\nhint: another broker (mosquitto?) may hold the port; stop it or change broker.listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the broker: {0}")]
    Start(String),
}

type LinkFactory = dyn Fn(&str) -> Result<(LinkTx, LinkRx), String> + Send + Sync;

/// A running broker. Cheap to clone; links can be made at any time.
#[derive(Clone)]
pub struct Broker {
    addr: SocketAddr,
    make_link: Arc<LinkFactory>,
    /// Taken by the first `open()`: lets the listener thread serve.
    open: Arc<Mutex<Option<mpsc::Sender<()>>>>,
    counters: Arc<GateCounters>,
}

impl Broker {
    /// Starts the router thread and binds the MQTT 3.1.1 listener; connections are
    /// served after `open()`. `auth` None = anonymous boards allowed (lab-wide rights).
    pub fn start(
        cfg: &BrokerConfig,
        auth: Option<Authenticator>,
        protocol: &ProtocolConfig,
    ) -> Result<Broker, Error> {
        let listener = TcpListener::bind(cfg.listen).map_err(|source| Error::Bind {
            addr: cfg.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: cfg.listen,
            source,
        })?;
        let topics = Topics::from_config(protocol);
        let mut custom = HashMap::new();
        custom.insert(
            format!("{}/+", topics.prefix),
            rumqttd::SegmentConfig {
                max_segment_size: cfg.inbox_segment_size,
                max_segment_count: 2,
            },
        );
        let router_cfg = RouterConfig {
            max_connections: cfg.max_connections + 8,
            max_outgoing_packet_count: 256,
            max_segment_size: cfg.segment_size,
            max_segment_count: cfg.segment_count,
            custom_segment: Some(custom),
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
            // Every filter keeps a small log that is never freed (a few hundred bytes
            // while empty): two per machine id ever used, a few of ours.
            max_filters: 4 * cfg.max_connections + 64,
            max_saved_sessions: cfg.max_connections,
        };
        let router_tx = rumqttd::Router::new(0, router_cfg).spawn();
        let gate = gate::LabGate::new(gate::Limits::from_config(cfg), auth, topics);
        let counters = gate.counters();
        let settings = ServerSettings {
            name: "boards".into(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections: ConnectionSettings {
                connection_timeout_ms: cfg.connection_timeout_s.saturating_mul(1000),
                max_payload_size: cfg.max_payload_size,
                max_inflight_count: 16,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
                gate: Some(Arc::new(gate)),
            },
        };
        let (open_tx, open_rx) = mpsc::channel::<()>();
        let server_tx = router_tx.clone();
        let make_server = move || {
            rumqttd::Server::new(
                settings.clone(),
                server_tx.clone(),
                rumqttd::protocol::v4::V4,
            )
        };
        std::thread::Builder::new()
            .name("mqtt-listener".into())
            .spawn(move || {
                if open_rx.recv().is_err() {
                    return; // the broker was dropped before anyone listened
                }
                serve(make_server, listener, addr)
            })
            .map_err(|e| Error::Start(e.to_string()))?;
        let make_link = move |id: &str| -> Result<(LinkTx, LinkRx), String> {
            let built = LinkBuilder::new(id, router_tx.clone())
                .clean_session(true)
                .build();
            let (tx, rx, _) =
                built.map_err(|e: LinkError| format!("cannot link to the router: {e}"))?;
            Ok((tx, rx))
        };
        Ok(Broker {
            addr,
            make_link: Arc::new(make_link),
            open: Arc::new(Mutex::new(Some(open_tx))),
            counters,
        })
    }

    /// Starts serving MQTT clients (connections made since the bind were queued by the
    /// kernel). Called by the board link once it is subscribed; later calls do nothing.
    pub fn open(&self) {
        let tx = self.open.lock().map(|mut o| o.take()).unwrap_or(None);
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }

    /// Login and ACL counters, for `/metrics`.
    pub fn counters(&self) -> Arc<GateCounters> {
        self.counters.clone()
    }

    /// The address the listener is bound to (the real port when 0 was configured).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new in-process link with an unguessable client id `fabgate-<role>-<random>`;
    /// returns the id too.
    pub fn link(&self, role: &str) -> Result<(String, LinkTx, LinkRx), String> {
        let id = format!("{RESERVED_PREFIX}{role}-{}", auth::random_hex(8));
        let (tx, rx) = (self.make_link)(&id)?;
        Ok((id, tx, rx))
    }

    /// A link with a chosen client id: lets tests play an impostor taking a link over.
    #[cfg(test)]
    pub(crate) fn link_as(&self, id: &str) -> Result<(LinkTx, LinkRx), String> {
        (self.make_link)(id)
    }
}

/// The listener loop on its own current-thread runtime. A loop that ends with an error
/// (it never ends otherwise) is restarted on the same socket after a pause.
fn serve(
    make_server: impl Fn() -> rumqttd::Server<rumqttd::protocol::v4::V4>,
    listener: TcpListener,
    addr: SocketAddr,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the MQTT runtime: {e}");
            return;
        }
    };
    loop {
        let socket = match listener.try_clone() {
            Ok(s) => s,
            Err(e) => {
                log::error!("MQTT listener on {addr}: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut server = make_server();
        let serve = server.start_with_listener(socket, rumqttd::LinkType::Remote);
        if let Err(e) = rt.block_on(serve) {
            log::error!("MQTT listener on {addr} stopped: {e}; restarting it");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    use std::time::{Duration, Instant};

    /// rumqttd alone, without the gate (which refuses `$share`): the router must survive
    /// what aborted the process in issue 10 (routing.rs `expect("group must exists")`).
    #[test]
    fn the_router_survives_a_persistent_shared_subscriber_leaving() {
        let router_tx = rumqttd::Router::new(
            0,
            rumqttd::RouterConfig {
                max_connections: 16,
                max_outgoing_packet_count: 16,
                max_segment_size: 4096,
                max_segment_count: 1,
                ..Default::default()
            },
        )
        .spawn();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let settings = rumqttd::ServerSettings {
            name: "test".into(),
            listen: listener.local_addr().unwrap(),
            tls: None,
            next_connection_delay_ms: 0,
            connections: rumqttd::ConnectionSettings {
                connection_timeout_ms: 2000,
                max_payload_size: 4096,
                max_inflight_count: 16,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
                gate: None,
            },
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut server = rumqttd::Server::new(settings, router_tx, rumqttd::protocol::v4::V4);
            let _ = rt.block_on(server.start_with_listener(listener, rumqttd::LinkType::Remote));
        });

        let client = |id: &str, clean: bool| {
            let mut o = MqttOptions::new(id, "127.0.0.1", port);
            o.set_clean_session(clean);
            o.set_manual_acks(true);
            o.set_keep_alive(Duration::from_secs(5));
            Client::new(o, 16)
        };
        let (sharer, mut sharer_events) = client("sharer", false);
        sharer.subscribe("$share/g/t/1", QoS::AtLeastOnce).unwrap();
        let (publisher, mut publisher_events) = client("publisher", true);
        std::thread::spawn(move || for _ in publisher_events.iter() {});
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = false;
        let mut subscribed = false;
        while !got {
            assert!(
                Instant::now() < deadline,
                "no message for the shared subscriber"
            );
            if let Ok(Ok(e)) = sharer_events.recv_timeout(Duration::from_millis(100)) {
                match e {
                    Event::Incoming(Packet::SubAck(_)) => subscribed = true,
                    Event::Incoming(Packet::Publish(_)) => got = true, // not acked on purpose
                    _ => {}
                }
            }
            if subscribed && !got {
                publisher
                    .publish("t/1", QoS::AtLeastOnce, false, b"m".to_vec())
                    .unwrap();
            }
        }
        sharer.disconnect().unwrap();
        for _ in 0..10 {
            if sharer_events
                .recv_timeout(Duration::from_millis(50))
                .is_err()
            {
                break;
            }
        }
        drop(sharer_events);

        // The router still registers new clients and delivers to them.
        let (probe, mut probe_events) = client("probe", true);
        probe.subscribe("p/1", QoS::AtMostOnce).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline, "the router stopped serving");
            match probe_events.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == "p/1" => break,
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) | Err(_) => {
                    let _ = publisher.publish("p/1", QoS::AtMostOnce, false, b"x".to_vec());
                }
                _ => {}
            }
        }
    }
}
