//! RTSP sessions that outlive their connection. RFC 2326 ties a session to its `Session` id,
//! not to a TCP connection: a player receiving over UDP may close its control connection and
//! keep playing, then tear the session down (or keep it alive with GET_PARAMETER/OPTIONS) from
//! a new connection naming it. So when a playing UDP player's connection closes, its `Player`
//! stays, under a connection id no socket has (`DETACHED_IDS`): media goes on to its UDP ports,
//! its receiver reports keep it alive, and it ends on TEARDOWN from a new connection, on the
//! session timeout, or when a new session plays to the same UDP ports. It still counts against the player limits and in the metrics. A
//! TCP-interleaved player has its media in the connection: it ends with it.
//!
//! A request naming another session (`ServerOutput::Foreign`) is answered by that session if it
//! plays and its player connected from the same address (a guessed id from elsewhere gets 454
//! like an unknown one), and the answer goes back on the connection the request came on.

use super::*;
use crate::rtsp::framing::Message;

/// Ids of players without a connection start here: far above the loop's slab keys, so a new
/// connection never gets the id of a detached session.
const DETACHED_IDS: usize = usize::MAX / 2 + 1;

impl Player {
    /// Its session goes on without its connection: it plays over UDP, and the gateway did not
    /// close it (timeout, protocol error, its stream failed).
    pub(super) fn outlives_connection(&self) -> bool {
        !self.closing
            && !self.detached
            && self.stream.is_some()
            && self.session.is_playing()
            && self.transport() == Some(PlayerTransport::Udp)
    }
}

impl Gateway {
    /// Player `conn`'s connection closed; its UDP session goes on under a new id.
    pub(super) fn detach_player(&mut self, conn: ConnId, now: Instant) {
        let Some(mut p) = self.players.remove(&conn) else {
            return;
        };
        let mut key = DETACHED_IDS.saturating_add(conn.0);
        while self.players.contains_key(&ConnId(key)) {
            key = key.wrapping_add(1).max(DETACHED_IDS);
        }
        let id = ConnId(key);
        p.detached = true;
        p.write_asked = false;
        p.scheduled = None;
        // What was queued for the connection (answers, interleaved RTCP) has nowhere to go.
        p.out.consume(p.out.queued());
        if let Some(s) = p.stream.and_then(|s| self.streams.get_mut(&s)) {
            for c in s.players.iter_mut().filter(|c| **c == conn) {
                *c = id;
            }
        }
        for c in self.udp_players.values_mut().filter(|c| **c == conn) {
            *c = id;
        }
        tracing::info!(
            conn = conn.0,
            "rtsp player's connection closed; its UDP session goes on until TEARDOWN or timeout"
        );
        self.players.insert(id, p);
        self.schedule_player(id, now);
    }

    /// Player `conn` now plays over UDP to addresses a session without a connection sends to:
    /// that session's client is gone (a restarted player on fixed ports, say), so it ends
    /// rather than send everything twice until its timeout.
    pub(super) fn end_sessions_replaced_by(&mut self, conn: ConnId, now: Instant) {
        let Some(mine) = self.players.get(&conn).map(|p| &p.routes) else {
            return;
        };
        let udp = |r: &PlayerRoute| match r {
            PlayerRoute::Udp(rtp, rtcp) => Some([udp_key(*rtp), udp_key(*rtcp)]),
            PlayerRoute::Tcp(..) => None,
        };
        let mine: Vec<SocketAddr> = mine.iter().flatten().filter_map(udp).flatten().collect();
        if mine.is_empty() {
            return;
        }
        let replaced: Vec<ConnId> = (self.players.iter())
            .filter(|(c, p)| {
                **c != conn
                    && p.detached
                    && (p.routes.iter().flatten().filter_map(udp).flatten())
                        .any(|a| mine.contains(&a))
            })
            .map(|(c, _)| *c)
            .collect();
        for old in replaced {
            tracing::info!(
                conn = old.0,
                "rtsp session replaced by a new one to its UDP ports"
            );
            self.remove_player(old, now);
        }
    }

    /// A request on player `conn`'s connection that names another session: answered there by
    /// that session, if it plays and its player connected from the same address; else 454.
    pub(super) fn foreign_request(
        &mut self,
        conn: ConnId,
        now: Instant,
        session: &str,
        request: Message,
    ) {
        let Some(ip) = self.players.get(&conn).map(|p| p.peer.ip().to_canonical()) else {
            return;
        };
        let owner = self.players.iter().find(|(c, p)| {
            **c != conn
                && p.session.session_id() == session
                && p.session.is_playing()
                && p.peer.ip().to_canonical() == ip
        });
        let Some(owner) = owner.map(|(c, _)| *c) else {
            let refusal = self.players[&conn].session.refusal(&request);
            return self.queue_answer(conn, &refusal);
        };
        let p = self.players.get_mut(&owner).expect("found just above");
        p.session.handle_foreign(now, request);
        while let Some(o) = (self.players.get_mut(&owner)).and_then(|p| p.session.poll_output()) {
            match o {
                ServerOutput::Send(bytes) => self.queue_answer(conn, &bytes),
                ServerOutput::Stop => {
                    self.player_stop(owner, now);
                    if self.players.get(&owner).is_some_and(|p| p.detached) {
                        tracing::info!(
                            conn = owner.0,
                            "rtsp session torn down from a new connection"
                        );
                        self.remove_player(owner, now);
                    }
                }
                ServerOutput::Close(_) => self.close_player(owner, now),
                // A playing session looks nothing up, starts nothing, and names only itself.
                ServerOutput::Lookup { .. }
                | ServerOutput::Play { .. }
                | ServerOutput::Foreign { .. } => {}
            }
        }
        self.schedule_player(owner, now);
    }
}
