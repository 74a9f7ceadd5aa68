use crate::link::local::{LinkError, LinkRx, LinkTx};
use crate::link::network;
use crate::link::network::Network;
use crate::local::LinkBuilder;
use crate::gate::{ConnectInfo, Session};
use crate::protocol::{
    ConnAck, Connect, ConnectReturnCode, Login, Packet, Protocol, PubAck, PubAckReason, SubAck,
    SubscribeReasonCode,
};
use crate::router::{Event, Notification};
use crate::{ConnectionId, ConnectionSettings};

use flume::{RecvError, SendError, Sender, TrySendError};
use std::cmp::min;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::time::error::Elapsed;
use tokio::{select, time};
use tracing::{trace, Span};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O")]
    Io(#[from] io::Error),
    #[error("Zero keep alive")]
    ZeroKeepAlive,
    #[error("Not connect packet")]
    NotConnectPacket(Packet),
    #[error("Network {0}")]
    Network(#[from] network::Error),
    #[error("Timeout")]
    Timeout(#[from] Elapsed),
    #[error("Channel send error")]
    Send(#[from] SendError<(ConnectionId, Event)>),
    #[error("Channel recv error")]
    Recv(#[from] RecvError),
    #[error("Got new session, disconnecting old one")]
    SessionEnd,
    #[error("Persistent session requires valid client id")]
    InvalidClientId,
    #[error("Unexpected router message")]
    NotConnectionAck,
    #[error("ConnAck error {0}")]
    ConnectionAck(String),
    #[error("Authentication error")]
    InvalidAuth,
    #[error("Channel try send error")]
    TrySend(#[from] TrySendError<(ConnectionId, Event)>),
    #[error("Link error = {0}")]
    Link(#[from] LinkError),
}

/// Orchestrates between Router and Network.
pub struct RemoteLink<P> {
    connect: Connect,
    pub(crate) connection_id: ConnectionId,
    network: Network<P>,
    link_tx: LinkTx,
    link_rx: LinkRx,
    notifications: VecDeque<Notification>,
    pub(crate) will_delay_interval: u32,
    /// fabgate patch: the gate's view of this client (ACL), and for SUBSCRIBEs the gate
    /// refused in part, which filters were refused (patched into the router's SUBACK).
    session: Option<Box<dyn Session>>,
    refused_filters: HashMap<u16, Vec<bool>>,
    /// fabgate patch: generation of this link's router connection (see `Event::LinkClosed`).
    pub(crate) generation: u64,
}

impl<P: Protocol> RemoteLink<P> {
    pub async fn new(
        router_tx: Sender<(ConnectionId, Event)>,
        tenant_id: Option<String>,
        mut network: Network<P>,
        connect_packet: Packet,
        dynamic_filters: bool,
        assigned_client_id: Option<String>,
        session: Option<Box<dyn Session>>,
    ) -> Result<RemoteLink<P>, Error> {
        let Packet::Connect(connect, props, lastwill, lastwill_props, _) = connect_packet else {
            return Err(Error::NotConnectPacket(connect_packet));
        };

        // Register this connection with the router. Router replys with ack which if ok will
        // start the link. Router can sometimes reject the connection (ex max connection limit)
        let client_id = assigned_client_id.as_ref().unwrap_or(&connect.client_id);
        let clean_session = connect.clean_session;

        let topic_alias_max = props.as_ref().and_then(|p| p.topic_alias_max);
        let session_expiry = props
            .as_ref()
            .and_then(|p| p.session_expiry_interval)
            .unwrap_or(0);

        let delay_interval = lastwill_props
            .as_ref()
            .and_then(|f| f.delay_interval)
            .unwrap_or(0);

        // The Server delays publishing the Client’s Will Message until
        // the Will Delay Interval has passed or the Session ends, whichever happens first
        let will_delay_interval = min(session_expiry, delay_interval);

        let (link_tx, link_rx, notification) = LinkBuilder::new(client_id, router_tx)
            .tenant_id(tenant_id)
            .clean_session(clean_session)
            .last_will(lastwill)
            .last_will_properties(lastwill_props)
            .dynamic_filters(dynamic_filters)
            .topic_alias_max(topic_alias_max.unwrap_or(0))
            // fabgate patch: never block the listener's runtime while the router answers.
            .build_async()
            .await?;

        let id = link_rx.id();
        let generation = link_rx.generation;
        Span::current().record("connection_id", id);

        if let Some(mut packet) = notification.into() {
            if let Packet::ConnAck(_ack, props) = &mut packet {
                let mut new_props = props.clone().unwrap_or_default();
                new_props.assigned_client_identifier = assigned_client_id;
                *props = Some(new_props);
                // fabgate patch: the router holds this connection now; if the client is
                // already gone, release it (upstream leaked it, and its client id).
                if let Err(e) = network.write(packet).await {
                    link_tx.close(generation);
                    return Err(e.into());
                }
            }
        }

        Ok(RemoteLink {
            connect,
            connection_id: id,
            network,
            link_tx,
            link_rx,
            notifications: VecDeque::new(), // fabgate patch: grow on demand
            will_delay_interval,
            session,
            refused_filters: HashMap::new(),
            generation,
        })
    }

    pub async fn start(&mut self) -> Result<(), Error> {
        // fabgate patch: keep alive 0 means "no keep alive" (MQTT 3.1.1 §3.1.2.10).
        self.network.set_keepalive(self.connect.keep_alive);

        // Note:
        // Shouldn't result in bounded queue deadlocks because of blocking n/w send
        loop {
            select! {
                o = self.network.read() => {
                    let packet = o?;
                    // fabgate patch: packets are read and screened by the gate here, and
                    // only then handed to the router (which may take the shared buffer
                    // at any time).
                    let mut packets = VecDeque::new();
                    packets.push_back(packet);
                    self.network.readv(&mut packets)?;
                    let mut replies = VecDeque::new();
                    self.screen(&mut packets, &mut replies)?;
                    if !replies.is_empty() {
                        self.network.writev(replies).await?;
                    }
                    if packets.is_empty() {
                        continue;
                    }
                    let len = {
                        let mut buffer = self.link_tx.buffer();
                        buffer.extend(packets);
                        buffer.len()
                    };

                    trace!("Packets read from network, count = {}", len);
                    self.link_tx.notify().await?;
                }
                // Receive from router when previous when state isn't in collision
                // due to previously received data request
                o = self.link_rx.exchange(&mut self.notifications) => {
                    o?;
                    let mut packets = VecDeque::new();
                    let mut unscheduled = false;

                    for notif in self.notifications.drain(..) {
                        if let Some(mut packet) = notif.into() {
                            if let Packet::SubAck(ack, _) = &mut packet {
                                if let Some(refused) = self.refused_filters.remove(&ack.pkid) {
                                    merge_suback(ack, &refused);
                                }
                            }
                            packets.push_back(packet);
                        } else {
                            unscheduled = true;
                        }

                    }
                    self.network.writev(packets).await?;
                    if unscheduled {
                        self.link_rx.wake().await?;
                    }
                }
            }
        }
    }
}

impl<P> RemoteLink<P> {
    /// fabgate patch: applies the gate's ACL to packets from the client. Refused
    /// publishes are dropped (QoS 1/2 still acknowledged so the client moves on),
    /// refused filters get SUBACK 0x80.
    fn screen(
        &mut self,
        packets: &mut VecDeque<Packet>,
        replies: &mut VecDeque<Packet>,
    ) -> Result<(), Error> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let refused_filters = &mut self.refused_filters;
        let mut close = false;
        packets.retain_mut(|packet| match packet {
            Packet::Publish(publish, _) => {
                if session.publish(&publish.topic, publish.retain) {
                    return true;
                }
                match publish.qos {
                    crate::protocol::QoS::AtMostOnce => {}
                    crate::protocol::QoS::AtLeastOnce => replies.push_back(Packet::PubAck(
                        PubAck {
                            pkid: publish.pkid,
                            reason: PubAckReason::NotAuthorized,
                        },
                        None,
                    )),
                    // The router would not know the PUBREL that follows a PUBREC: a
                    // refused QoS 2 publish closes the connection instead.
                    crate::protocol::QoS::ExactlyOnce => close = true,
                }
                false
            }
            Packet::Subscribe(subscribe, _) => {
                let refused: Vec<bool> = subscribe
                    .filters
                    .iter()
                    .map(|f| !session.subscribe(&f.path))
                    .collect();
                if !refused.iter().any(|r| *r) {
                    return true;
                }
                if refused.iter().all(|r| *r) {
                    replies.push_back(Packet::SubAck(
                        SubAck {
                            pkid: subscribe.pkid,
                            return_codes: vec![SubscribeReasonCode::Failure; refused.len()],
                        },
                        None,
                    ));
                    return false;
                }
                let mut i = 0;
                subscribe.filters.retain(|_| {
                    i += 1;
                    !refused[i - 1]
                });
                refused_filters.insert(subscribe.pkid, refused);
                true
            }
            Packet::Unsubscribe(unsubscribe, _) => {
                for f in &unsubscribe.filters {
                    session.unsubscribe(f);
                }
                true
            }
            _ => true,
        });
        if close {
            return Err(Error::InvalidAuth);
        }
        Ok(())
    }
}

/// fabgate patch: the router acknowledged only the filters the gate let through; put
/// 0x80 back at the refused positions.
fn merge_suback(ack: &mut SubAck, refused: &[bool]) {
    let mut granted = std::mem::take(&mut ack.return_codes).into_iter();
    ack.return_codes = refused
        .iter()
        .map(|r| {
            if *r {
                SubscribeReasonCode::Failure
            } else {
                granted.next().unwrap_or(SubscribeReasonCode::Failure)
            }
        })
        .collect();
}

/// Read MQTT connect packet from network and verify it.
/// authentication and checks are done here.
pub async fn mqtt_connect<P>(
    config: Arc<ConnectionSettings>,
    network: &mut Network<P>,
    session: Option<&mut Box<dyn Session>>,
) -> Result<Packet, Error>
where
    P: Protocol,
{
    // Wait for MQTT connect packet and error out if it's not received in time to prevent
    // DOS attacks by filling total connections that the server can handle with idle open
    // connections which results in server rejecting new connections
    let connection_timeout_ms = config.connection_timeout_ms.into();
    let packet = time::timeout(Duration::from_millis(connection_timeout_ms), async {
        let packet = network.read().await?;
        Ok::<_, network::Error>(packet)
    })
    .await??;

    let (connect, _props, will, login) = match packet {
        Packet::Connect(ref connect, ref props, ref will, _, ref login) => {
            (connect, props, will, login)
        }
        packet => return Err(Error::NotConnectPacket(packet)),
    };

    Span::current().record("client_id", &connect.client_id);

    // fabgate patch: a refused login gets its CONNACK return code (4 bad credentials,
    // 5 not authorized, 2 client id, 3 unavailable) instead of a bare close.
    let refused = match session {
        Some(session) => {
            let will_topic = will
                .as_ref()
                .map(|w| (std::str::from_utf8(&w.topic).unwrap_or("\u{0}"), w.retain));
            let info = ConnectInfo {
                client_id: &connect.client_id,
                username: login.as_ref().map(|l| l.username.as_str()),
                password: login.as_ref().map(|l| l.password.as_str()),
                clean_session: connect.clean_session,
                will: will_topic,
            };
            session.login(&info).err()
        }
        None => handle_auth(config.clone(), login.as_ref(), &connect.client_id)
            .await
            .err()
            .map(|_| ConnectReturnCode::BadUserNamePassword),
    };
    if let Some(code) = refused {
        let ack = ConnAck {
            session_present: false,
            code,
        };
        network.write(Packet::ConnAck(ack, None)).await?;
        return Err(Error::InvalidAuth);
    }

    // fabgate patch: keep alive 0 is allowed by MQTT 3.1.1 (§3.1.2.10): no keep alive.

    let empty_client_id = connect.client_id.is_empty();
    let clean_session = connect.clean_session;

    if empty_client_id && !clean_session {
        let ack = ConnAck {
            session_present: false,
            code: ConnectReturnCode::ClientIdentifierNotValid,
        };

        let packet = Packet::ConnAck(ack, None);
        network.write(packet).await?;

        return Err(Error::InvalidClientId);
    }

    // Ok((connect, props, lastwill, lastwill_props))
    Ok(packet)
}

async fn handle_auth(
    config: Arc<ConnectionSettings>,
    login: Option<&Login>,
    client_id: &str,
) -> Result<(), Error> {
    if config.auth.is_none() && config.external_auth.is_none() {
        return Ok(());
    }

    // if authentication is configured and connect packet doesn't have login details
    // return an error
    let Some(login) = login else {
        return Err(Error::InvalidAuth);
    };

    let username = &login.username;
    let password = &login.password;

    if let Some(auth) = &config.external_auth {
        if !auth(
            client_id.to_owned(),
            username.to_owned(),
            password.to_owned(),
        )
        .await
        {
            return Err(Error::InvalidAuth);
        }

        return Ok(());
    }

    if let Some(pairs) = &config.auth {
        if let Some(stored_password) = pairs.get(username) {
            if stored_password.as_bytes().ct_eq(password.as_bytes()).into() {
                return Ok(());
            }
        }

        return Err(Error::InvalidAuth);
    }

    Err(Error::InvalidAuth)
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Arc};

    use crate::{protocol::Login, ConnectionSettings};

    use super::handle_auth;

    fn config() -> ConnectionSettings {
        ConnectionSettings {
            connection_timeout_ms: 0,
            max_payload_size: 0,
            max_inflight_count: 0,
            auth: None,
            external_auth: None,
            dynamic_filters: false,
        }
    }

    fn login() -> Login {
        Login {
            username: "u".to_owned(),
            password: "p".to_owned(),
        }
    }

    #[tokio::test]
    async fn no_login_no_auth() {
        let cfg = Arc::new(config());
        let r = handle_auth(cfg, None, "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn some_login_no_auth() {
        let cfg = Arc::new(config());
        let login = login();
        let r = handle_auth(cfg, Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_matches_static_auth() {
        let login = login();
        let mut map = HashMap::<String, String>::new();
        map.insert(login.username.clone(), login.password.clone());

        let mut cfg = config();
        cfg.auth = Some(map);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_fails_static_no_external() {
        let login = login();
        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let mut cfg = config();
        cfg.auth = Some(map);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn login_fails_static_matches_external() {
        let login = login();

        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let dynamic = |_: String, _: String, _: String| async { true };

        let mut cfg = config();
        cfg.auth = Some(map);
        cfg.set_auth_handler(dynamic);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_fails_static_fails_external() {
        let login = login();

        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let dynamic = |_: String, _: String, _: String| async { false };

        let mut cfg = config();
        cfg.auth = Some(map);
        cfg.set_auth_handler(dynamic);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn external_auth_clousre_or_fnptr_type_check_or_fail_compile() {
        let closure = |_: String, _: String, _: String| async { false };
        async fn fnptr(_: String, _: String, _: String) -> bool {
            true
        }

        let mut cfg = config();
        cfg.set_auth_handler(closure);
        cfg.set_auth_handler(fnptr);
    }
}
