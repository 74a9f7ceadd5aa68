//! The embedded MQTT broker (rumqttd through `Router` + `Server` + `LinkBuilder`, see
//! research/deps.md §1). It moves bytes and knows no rules: the daemon's own in-process
//! links are handed to `terminals` and `jobs`.
//!
//! Around rumqttd's gaps: segment sizes are tiny per board filter and larger for our own
//! inbox filter (its defaults grow to ~1 GB per filter); our links use random client ids
//! that devices cannot guess, ids with our prefix are refused at CONNECT, and a dead link
//! is rebuilt by its owner. rumqttd has no topic ACL: any authenticated client may publish
//! on any topic, so the protocol layer validates what it receives.

mod auth;

pub use auth::{hash_password, random_bytes, random_hex, Authenticator};

use crate::config::BrokerConfig;
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::{ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Client ids starting with this are the daemon's own and refused to devices.
pub const RESERVED_PREFIX: &str = "fabgate-";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for MQTT on {addr}: {source}\nhint: another broker (mosquitto?) may hold the port; stop it or change broker.listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the MQTT listener on {0} did not come up")]
    NotListening(SocketAddr),
    #[error("cannot start the broker: {0}")]
    Start(String),
}

type LinkFactory = dyn Fn(&str) -> Result<(LinkTx, LinkRx), String> + Send + Sync;

/// A running broker. Cheap to clone; links can be made at any time.
#[derive(Clone)]
pub struct Broker {
    addr: SocketAddr,
    make_link: Arc<LinkFactory>,
}

impl Broker {
    /// Starts the router thread and the MQTT 3.1.1 listener thread, and returns once the
    /// listener accepts connections. `inbox_filter` gets a larger log segment.
    pub fn start(
        cfg: &BrokerConfig,
        auth: Option<Authenticator>,
        inbox_filter: &str,
    ) -> Result<Broker, Error> {
        let listener = TcpListener::bind(cfg.listen).map_err(|source| Error::Bind {
            addr: cfg.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: cfg.listen,
            source,
        })?;
        let mut custom = HashMap::new();
        custom.insert(
            inbox_filter.to_string(),
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
        };
        let router_tx = rumqttd::Router::new(0, router_cfg).spawn();
        let mut settings = ServerSettings {
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
            },
        };
        if let Some(auth) = auth {
            settings.set_auth_handler(move |client_id, user, pass| {
                std::future::ready(auth.check(&client_id, &user, &pass))
            });
        }
        let mut server =
            rumqttd::Server::new(settings, router_tx.clone(), rumqttd::protocol::v4::V4);
        std::thread::Builder::new()
            .name("mqtt-listener".into())
            .spawn(move || {
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
                let serve = server.start_with_listener(listener, rumqttd::LinkType::Remote);
                if let Err(e) = rt.block_on(serve) {
                    log::error!("MQTT listener on {addr} stopped: {e}");
                }
            })
            .map_err(|e| Error::Start(e.to_string()))?;
        wait_listening(addr)?;
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
        })
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

/// Waits until the listener accepts TCP connections (rumqttd binds asynchronously).
fn wait_listening(addr: SocketAddr) -> Result<(), Error> {
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            addr.port(),
        )
    } else {
        addr
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::NotListening(addr))
}
