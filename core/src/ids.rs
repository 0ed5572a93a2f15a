//! The ids the crates share: web connections, signaling sessions and streams. Each kind of
//! session is its own variant, so ids of different kinds never collide and nobody carves
//! ranges out of a number.

use std::fmt;

/// A web client connection, numbered by the event loop (the slab key of its socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub usize);

impl ConnId {
    /// Web connections that become WebSockets are signaling sessions.
    pub fn session(self) -> SessionId {
        SessionId::WebSocket(self)
    }
}

/// A signaling session: whom the gateway exchanges signaling messages with.
///
/// Variants are in the order the numbered ids had (WebSocket, remote, WHEP), so sorting is
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionId {
    /// A browser's WebSocket, on web connection `ConnId`.
    WebSocket(ConnId),
    /// A session of another worker attached here (see `hub::Forward::Attach`), numbered by
    /// this worker's gateway.
    Remote(u64),
    /// A WHEP session, which the web app opens for an HTTP request and numbers itself.
    Whep(u64),
}

/// As in logs and in `getUserData`: a WebSocket's session is its connection's number.
impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WebSocket(conn) => write!(f, "{}", conn.0),
            Self::Remote(n) => write!(f, "remote-{n}"),
            Self::Whep(n) => write!(f, "whep-{n}"),
        }
    }
}

/// A camera connection (or a mirror of one), numbered by the gateway; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Hands out a worker's stream ids. Each worker numbers from its own range, so ids are unique
/// across workers (the APIs show them side by side).
#[derive(Debug)]
pub(crate) struct StreamIds {
    next: u64,
}

impl StreamIds {
    /// Room for 2^40 streams per worker.
    pub(crate) fn for_worker(worker: usize) -> Self {
        Self {
            next: ((worker as u64) << 40) + 1,
        }
    }

    pub(crate) fn next_id(&mut self) -> StreamId {
        let id = StreamId(self.next);
        self.next += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_of_two_workers_differ() {
        let (mut a, mut b) = (StreamIds::for_worker(0), StreamIds::for_worker(1));
        let ids = [a.next_id(), a.next_id(), b.next_id(), b.next_id()];
        assert_eq!(ids[0], StreamId(1));
        assert_eq!(ids[1], StreamId(2));
        assert_eq!(ids[2], StreamId((1 << 40) + 1));
        assert_eq!(ids[3], StreamId((1 << 40) + 2));
    }

    #[test]
    fn a_websocket_session_shows_as_its_connection_number() {
        assert_eq!(ConnId(12).session().to_string(), "12");
        assert_eq!(SessionId::Whep(12).to_string(), "whep-12");
        assert_ne!(SessionId::Whep(12), ConnId(12).session());
    }
}
