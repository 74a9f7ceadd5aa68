//! fabgate patch: admission and authorization hooks for remote connections.
//!
//! The embedding application decides, per TCP connection, whether it may start (before
//! any byte is read), whether its CONNECT is accepted (with which CONNACK code if not),
//! and then every PUBLISH topic, SUBSCRIBE filter and will it carries. The `Session`
//! object lives exactly as long as the connection task: dropping it releases whatever
//! the gate counted for it (pre-auth slot, connection slot, client id).

use crate::protocol::ConnectReturnCode;
use std::net::SocketAddr;

/// What a CONNECT packet asks for.
pub struct ConnectInfo<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub clean_session: bool,
    /// Will topic and retain flag, when the client sets a will.
    pub will: Option<(&'a str, bool)>,
}

pub trait Gate: Send + Sync + 'static {
    /// A new TCP connection from `peer`. `None` closes it at once.
    fn accept(&self, peer: SocketAddr) -> Option<Box<dyn Session>>;
}

/// One connection's standing with the gate.
pub trait Session: Send + 'static {
    /// The CONNECT arrived: accept it, or refuse it with this CONNACK code.
    fn login(&mut self, connect: &ConnectInfo<'_>) -> Result<(), ConnectReturnCode>;
    /// May the client publish on `topic` (retain flag as sent)? A refused publish is
    /// dropped (QoS 1 still gets its PUBACK so the client does not resend it forever).
    fn publish(&mut self, topic: &[u8], retain: bool) -> bool;
    /// May the client subscribe to `filter`? A refused filter gets SUBACK 0x80.
    fn subscribe(&mut self, filter: &str) -> bool;
    /// The client unsubscribed `filter`.
    fn unsubscribe(&mut self, _filter: &str) {}
}
