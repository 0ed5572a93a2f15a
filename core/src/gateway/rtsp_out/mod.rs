//! RTSP players (ffmpeg, GStreamer, an NVR, another camgate) of the named streams: each
//! player connection has a `ServerSession` and a `MediaOut`, and joins the stream's one camera
//! connection, the same one its browsers use. They get the camera's RTP packets as they came,
//! of every track its RTSP client set up, whatever the codec (MJPEG and G.726 too, which
//! browsers are refused or play without: see `Stream::browser_refusal`), with SSRC, sequence
//! and timestamps rewritten to stay continuous across camera reconnects,
//! starting on the camera's packets since its last keyframe (`RawGop`, kept while the stream has
//! players, or always for a named stream, so its first player starts at once too) or else at the next keyframe: TCP-interleaved players through a bounded queue, UDP
//! players as datagrams (`PlayerDatagrams`) that the loop sends from the server's RTP/RTCP
//! ports at once or drops (a UDP player never holds anything up); a new UDP player gets the
//! cached GOP paced over a few milliseconds (`replay`), not in one burst.
//!
//! Driver protocol: `handle_player_opened`, then `handle_player_data` with its bytes; on
//! `GatewayOutput::PlayerWrite` write `player_pending` and report `player_written` until it is
//! empty (the output comes again when bytes are queued on an empty queue);
//! `GatewayOutput::PlayerClose` closes it (after writing what is pending);
//! `handle_player_closed` when the peer closed (a playing UDP player's session goes on without
//! its connection: no output ever names that connection again). UDP: after camera input and outputs, the loop
//! calls `send_player_datagrams`, and also whenever `handle_rtsp_data` stopped short or
//! `player_datagrams_due` says so (a slice of camera input fanned out to hundreds of players); every datagram its RTP/RTCP ports receive goes to
//! `handle_player_udp` (receiver reports keep a UDP player's session alive).
//!
//! Players of a camera another worker pulls (the RTSP server listens on one worker) play from
//! a mirror of it there, which also asks for the camera's packets as they came (`mirrored`).
//! A UDP player's session outlives its RTSP connection until TEARDOWN (on a new connection) or
//! its timeout (`detached`).

mod detached;
mod media;
mod mirrored;
mod replay;

use super::*;
use crate::ids::ConnId;
use crate::media::TrackInfo;
use crate::rtsp::server::{
    LookupError, MediaOut, Pushed, ServerOutput, ServerSession, TrackTransport,
};
pub(super) use media::RawGop;

/// One RTSP player connection.
pub(super) struct Player {
    session: ServerSession,
    /// The stream played (after `Play`), or looked up and waiting for its camera's tracks.
    stream: Option<StreamId>,
    /// The path of a look-up waiting for the camera's description.
    waiting: Option<String>,
    /// Camera track → where its RTP and RTCP go, while playing.
    routes: Vec<Option<PlayerRoute>>,
    out: MediaOut,
    /// The RTSP connection's peer: UDP media goes to its address.
    peer: SocketAddr,
    /// Connected from this host: may play streams without RTSP users.
    loopback: bool,
    /// Who may play the stream looked up.
    users: Vec<crate::rtsp::auth::Credentials>,
    /// A video keyframe went out (a JPEG frame's first packet for MJPEG): media flows (before
    /// it, a player would get P-frames).
    started: bool,
    /// It set up a video track, so it starts on a keyframe; a player of the audio alone starts
    /// on any packet.
    needs_keyframe: bool,
    /// A UDP player's paced start on the cached GOP, until it reaches live.
    replay: Option<replay::Replay>,
    /// `PlayerWrite` was output and the driver has not drained the queue since.
    write_asked: bool,
    closing: bool,
    /// Its connection closed and its UDP session goes on (see `detached`): no bytes to write.
    detached: bool,
    scheduled: Option<Instant>,
}

/// Where a playing player's packets of one track go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlayerRoute {
    /// Interleaved in the RTSP connection on these RTP and RTCP channels.
    Tcp(u8, u8),
    /// Datagrams to these RTP and RTCP addresses of the player.
    Udp(SocketAddr, SocketAddr),
}

/// Datagrams for UDP players, waiting for the loop (`Gateway::send_player_datagrams`): one
/// buffer and one index, both reused, so relaying allocates nothing per packet.
#[derive(Debug, Default)]
pub struct PlayerDatagrams {
    bytes: Vec<u8>,
    /// (destination, RTCP, start, end) in `bytes`.
    items: Vec<(SocketAddr, bool, usize, usize)>,
    /// Datagrams dropped because the loop had not taken the queue (a driver that sends them
    /// when due never reaches the bound; this only bounds memory).
    overflowed: u64,
}

/// What `send_player_datagrams`'s driver calls with the index of each datagram the socket did
/// not take.
pub type Refused<'a> = &'a mut dyn FnMut(usize);

/// Bytes of datagrams for UDP players past which they are due: the driver sends them before
/// it feeds more camera input (`Gateway::player_datagrams_due`). A 64 KiB slice of camera
/// input fanned out to 300 players is 19 MB; fed in pieces (`player_input_piece`), the queue
/// stays near this, and its buffer is reused, whatever the number of players.
pub const PLAYER_DATAGRAMS_DUE: usize = 1 << 20;
/// Bytes of datagrams kept for the loop at most.
const MAX_PLAYER_DATAGRAM_BYTES: usize = 8 << 20;
/// Camera input is fed in pieces of at least this many bytes (about a packet).
const MIN_INPUT_PIECE: usize = 1500;

impl PlayerDatagrams {
    /// Appends one datagram to `to`, written by `write` (false: nothing to send).
    fn push(&mut self, to: SocketAddr, rtcp: bool, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        if self.bytes.len() >= MAX_PLAYER_DATAGRAM_BYTES {
            self.overflowed += 1;
            return;
        }
        let start = self.bytes.len();
        if write(&mut self.bytes) {
            self.items.push((to, rtcp, start, self.bytes.len()));
        } else {
            self.bytes.truncate(start);
        }
    }

    /// Past `PLAYER_DATAGRAMS_DUE`.
    pub(super) fn due(&self) -> bool {
        self.bytes.len() >= PLAYER_DATAGRAMS_DUE
    }

    /// How many datagrams wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// None waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `i`-th datagram, in the order queued: (destination, RTCP, bytes). Each player's
    /// datagrams must leave in this order; different players' may be sent in any order.
    pub fn get(&self, i: usize) -> (SocketAddr, bool, &[u8]) {
        let (to, rtcp, a, b) = self.items[i];
        (to, rtcp, &self.bytes[a..b])
    }
}

/// The key of `udp_players`: the address as the loop reports a datagram's source (an IPv4
/// peer of a dual-stack socket may come as `::ffff:a.b.c.d`).
fn udp_key(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// How a playing player gets its media (for the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlayerTransport {
    Tcp,
    Udp,
}

impl Player {
    /// How it gets its media; `None` before PLAY.
    pub(super) fn transport(&self) -> Option<PlayerTransport> {
        match self.routes.iter().flatten().next()? {
            PlayerRoute::Tcp(..) => Some(PlayerTransport::Tcp),
            PlayerRoute::Udp(..) => Some(PlayerTransport::Udp),
        }
    }

    /// The camera's session started over: wait for its next keyframe, continue the numbering.
    pub(super) fn restart(&mut self) {
        self.started = false;
        self.replay = None;
        self.out.source_restarted();
    }
}

impl Gateway {
    /// A player connected to the RTSP server (`conn`: its connection, numbered by the loop)
    /// from `peer`.
    pub fn handle_player_opened(&mut self, conn: ConnId, peer: SocketAddr, now: Instant) {
        let id = format!("{:016x}", self.rng.next_u64());
        let ssrc = self.rng.next_u64() as u32;
        let mut session = ServerSession::new(self.config.rtsp_server.clone(), id, ssrc, now);
        session.set_ipv6(peer.ip().to_canonical().is_ipv6());
        let out = MediaOut::new(self.config.player_queue, ssrc, &[]);
        // (Tracks are set at PLAY, once the camera's are known.)
        self.players.insert(
            conn,
            Player {
                session,
                stream: None,
                waiting: None,
                routes: Vec::new(),
                out,
                peer,
                loopback: peer.ip().to_canonical().is_loopback(),
                users: Vec::new(),
                started: false,
                needs_keyframe: false,
                replay: None,
                write_asked: false,
                closing: false,
                detached: false,
                scheduled: None,
            },
        );
        self.stats.players_joined += 1;
        self.schedule_player(conn, now);
    }

    /// Bytes from player `conn`.
    pub fn handle_player_data(&mut self, conn: ConnId, now: Instant, data: &[u8]) {
        self.advance(now);
        let Some(p) = self.players.get_mut(&conn) else {
            return;
        };
        p.session.handle_input(now, data);
        self.after_player_input(conn, now);
    }

    /// The player's connection closed (or failed). A UDP player that plays keeps its session
    /// (see `detached`); any other goes.
    pub fn handle_player_closed(&mut self, conn: ConnId, now: Instant) {
        if self
            .players
            .get(&conn)
            .is_some_and(Player::outlives_connection)
        {
            return self.detach_player(conn, now);
        }
        self.remove_player(conn, now);
    }

    /// Player `conn` and its session are gone.
    fn remove_player(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.players.remove(&conn) else {
            return;
        };
        forget_udp(&mut self.udp_players, conn, &p.routes);
        if let Some(id) = p.stream {
            if let Some(s) = self.streams.get_mut(&id) {
                s.players.retain(|c| *c != conn);
                s.waiting_players.retain(|c| *c != conn);
            }
            self.players_left(id, now);
        }
    }

    /// Bytes queued for player `conn`.
    pub fn player_pending(&self, conn: ConnId) -> &[u8] {
        self.players.get(&conn).map_or(&[], |p| p.out.pending())
    }

    /// The socket took `n` bytes of `player_pending`.
    pub fn player_written(&mut self, conn: ConnId, n: usize) {
        if let Some(p) = self.players.get_mut(&conn) {
            p.out.consume(n);
            if p.out.queued() == 0 {
                p.write_asked = false;
            }
        }
    }

    /// Players connected to this worker.
    pub fn player_count(&self) -> usize {
        self.players.len()
    }

    /// A datagram from `source` reached the RTSP server's RTP or RTCP port (a receiver report,
    /// or a client opening its NAT): keeps the session of the UDP player there alive. False
    /// when no player receives at that address.
    pub fn handle_player_udp(&mut self, now: Instant, source: SocketAddr) -> bool {
        let Some(conn) = self.udp_players.get(&udp_key(source)).copied() else {
            return false;
        };
        match self.players.get_mut(&conn) {
            Some(p) => {
                p.session.handle_keepalive(now);
                true
            }
            None => false,
        }
    }

    /// True while datagrams for UDP players wait for `send_player_datagrams`.
    pub fn player_datagrams_queued(&self) -> bool {
        !self.player_udp.items.is_empty()
    }

    /// True when so many datagrams wait for UDP players (`PLAYER_DATAGRAMS_DUE`) that the
    /// driver sends them before it feeds the gateway more camera input (`handle_rtsp_data`
    /// stops by itself when they come due; between camera datagrams the driver checks this).
    pub fn player_datagrams_due(&self) -> bool {
        self.player_udp.due()
    }

    /// Hands every queued datagram for UDP players to `send(datagrams, refused)` at once (the
    /// driver batches them), which sends each from the server's RTP port (RTCP port if its
    /// RTCP flag is set) and calls `refused(i)` for each the socket did not take: that one is
    /// dropped, and counted (a datagram is never waited for).
    pub fn send_player_datagrams(&mut self, send: &mut dyn FnMut(&PlayerDatagrams, Refused<'_>)) {
        let d = &mut self.player_udp;
        let rtp = d.items.iter().filter(|(_, rtcp, ..)| !rtcp).count() as u64;
        let mut dropped = 0;
        send(d, &mut |i| {
            if d.items.get(i).is_some_and(|(_, rtcp, ..)| !rtcp) {
                dropped += 1;
            }
        });
        self.stats.player_udp_packets_out += rtp - dropped.min(rtp);
        self.stats.player_udp_packets_dropped += dropped + std::mem::take(&mut d.overflowed);
        d.items.clear();
        d.bytes.clear();
    }

    /// How many bytes of a camera's TCP input to relay at a time, so that a piece makes about
    /// `PLAYER_DATAGRAMS_DUE` for the stream's players (all of it when there are none).
    pub(super) fn player_input_piece(&self, stream: StreamId) -> usize {
        match self.streams.get(&stream).map_or(0, |s| s.players.len()) {
            0 => usize::MAX,
            n => (PLAYER_DATAGRAMS_DUE / n).max(MIN_INPUT_PIECE),
        }
    }

    pub(super) fn schedule_player(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.players.get_mut(&conn) else {
            return;
        };
        let replay = p.replay.map(|r| r.due);
        let Some(t) = [p.session.poll_timeout(), replay]
            .into_iter()
            .flatten()
            .min()
        else {
            return;
        };
        let t = t.min(now + MAX_SLEEP);
        if p.scheduled.is_none_or(|old| t < old) {
            p.scheduled = Some(t);
            self.timers.push(Reverse((t, TimerKey::Player(conn))));
        }
    }

    pub(super) fn player_timer(&mut self, conn: ConnId, t: Instant, now: Instant) {
        let Some(p) = self.players.get_mut(&conn) else {
            return;
        };
        if p.scheduled != Some(t) {
            return;
        }
        p.scheduled = None;
        p.session.handle_timeout(now);
        self.replay_step(conn, now);
        self.after_player_input(conn, now);
    }

    /// Carries out what the player's session asks.
    fn after_player_input(&mut self, conn: ConnId, now: Instant) {
        while let Some(o) = self
            .players
            .get_mut(&conn)
            .and_then(|p| p.session.poll_output())
        {
            match o {
                ServerOutput::Send(bytes) => self.queue_answer(conn, &bytes),
                ServerOutput::Lookup { path } => self.player_lookup(conn, now, path),
                ServerOutput::Play { tracks, .. } => {
                    self.player_play(conn, now, &tracks);
                    self.end_sessions_replaced_by(conn, now);
                }
                ServerOutput::Stop => self.player_stop(conn, now),
                ServerOutput::Close(reason) => {
                    tracing::info!(conn = conn.0, ?reason, "rtsp player closed");
                    self.close_player(conn, now);
                }
                ServerOutput::Foreign { session, request } => {
                    self.foreign_request(conn, now, &session, request)
                }
            }
        }
        self.schedule_player(conn, now);
    }

    /// Queues an RTSP answer for player `conn` (none for a player without a connection).
    fn queue_answer(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(p) = self.players.get_mut(&conn).filter(|p| !p.detached) else {
            return;
        };
        p.out.push_bytes(bytes);
        if !p.write_asked && p.out.queued() > 0 {
            p.write_asked = true;
            self.outputs.push_back(GatewayOutput::PlayerWrite { conn });
        }
    }

    /// Ends player `conn`: its connection closes (the loop then reports it closed), or, for a
    /// session whose connection closed already, it goes at once.
    fn close_player(&mut self, conn: ConnId, now: Instant) {
        match self.players.get_mut(&conn) {
            Some(p) if p.detached => self.remove_player(conn, now),
            Some(p) if !p.closing => {
                p.closing = true;
                self.outputs.push_back(GatewayOutput::PlayerClose { conn });
            }
            _ => {}
        }
    }

    /// Which camera `path` names, and its tracks if it is described; joins the stream (pulling
    /// the camera if nobody does yet, or mirroring it from the worker that does), so the player
    /// waits for it like a browser.
    fn player_lookup(&mut self, conn: ConnId, now: Instant, path: String) {
        let url = self
            .config
            .named_streams
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(_, url)| url.clone());
        let users: Vec<_> = (self.config.rtsp_users.iter())
            .filter(|(name, _)| *name == path)
            .map(|(_, c)| c.clone())
            .collect();
        let loopback = self.players.get(&conn).is_some_and(|p| p.loopback);
        let found = match url {
            None => Err(LookupError::NotFound),
            // Without users a stream is this host's only (checked before pulling anything).
            Some(_) if users.is_empty() && !loopback => Err(LookupError::Forbidden),
            Some(url) => match self.by_url.get(&url).copied() {
                Some(id) => Ok(id),
                None => self.open_for_player(&url, now).map_err(|info| {
                    tracing::info!(conn = conn.0, "rtsp player refused: {info}");
                    LookupError::Unavailable
                }),
            },
        };
        let id = match found {
            Ok(id) => id,
            Err(e) => {
                if let Some(p) = self.players.get_mut(&conn) {
                    p.session.handle_stream(&path, Err(e));
                }
                return;
            }
        };
        // A session serves one stream: leave one looked up before.
        if let Some(old) = self.players.get(&conn).and_then(|p| p.stream) {
            if old != id {
                if let Some(s) = self.streams.get_mut(&old) {
                    s.waiting_players.retain(|c| *c != conn);
                }
                self.players_left(old, now);
            }
        }
        // Players count against the viewer limits: per stream (with its browsers on every
        // worker, from the placement table), and this worker's players.
        let everywhere = self.browsers_everywhere(id);
        let s = &self.streams[&id];
        let browsers = (s.viewers.len() + s.pending.len()).max(everywhere);
        let watchers = browsers + s.players.len();
        let joined = s.waiting_players.contains(&conn) || s.players.contains(&conn);
        let full = watchers + s.waiting_players.len() >= self.config.max_viewers_per_stream
            || self.players.len() > self.config.max_viewers;
        if full && !joined {
            tracing::info!(
                conn = conn.0,
                stream = id.0,
                "rtsp player refused: too many viewers"
            );
            if let Some(p) = self.players.get_mut(&conn) {
                p.session
                    .handle_stream(&path, Err(LookupError::Unavailable));
            }
            self.linger_if_unwatched(id, now);
            return;
        }
        let s = self
            .streams
            .get_mut(&id)
            .expect("found or pulled just above");
        s.linger_until = None;
        if !s.waiting_players.contains(&conn) {
            s.waiting_players.push(conn);
        }
        let tracks = (!s.tracks.is_empty()).then(|| s.tracks.clone());
        let p = self.players.get_mut(&conn).expect("the player asked");
        p.stream = Some(id);
        p.users = users;
        match tracks {
            Some(t) => p
                .session
                .handle_stream_with_users(&path, Ok(t), p.users.clone()),
            None => p.waiting = Some(path),
        }
        self.want_camera_packets(id);
    }

    /// The camera of stream `id` described its tracks: answer the players waiting for them.
    pub(super) fn answer_players(&mut self, id: StreamId, now: Instant, tracks: &[TrackInfo]) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        for conn in s.waiting_players.clone() {
            if let Some(p) = self.players.get_mut(&conn) {
                if let Some(path) = p.waiting.take() {
                    let users = p.users.clone();
                    p.session
                        .handle_stream_with_users(&path, Ok(tracks.to_vec()), users);
                }
            }
            // Answers queue in the session; carry them out.
            self.drain_player_outputs(conn, now);
        }
    }

    /// Stream `id` failed for good: its players' look-ups fail, and playing players close.
    pub(super) fn fail_players(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let waiting = std::mem::take(&mut s.waiting_players);
        let playing = std::mem::take(&mut s.players);
        for conn in waiting {
            if let Some(p) = self.players.get_mut(&conn) {
                p.stream = None;
                if let Some(path) = p.waiting.take() {
                    p.session
                        .handle_stream(&path, Err(LookupError::Unavailable));
                }
            }
            self.drain_player_outputs(conn, now);
        }
        for conn in playing {
            if let Some(p) = self.players.get_mut(&conn) {
                p.stream = None;
            }
            self.close_player(conn, now);
        }
    }

    fn drain_player_outputs(&mut self, conn: ConnId, now: Instant) {
        while let Some(o) = self
            .players
            .get_mut(&conn)
            .and_then(|p| p.session.poll_output())
        {
            match o {
                ServerOutput::Send(bytes) => self.queue_answer(conn, &bytes),
                ServerOutput::Play { tracks, .. } => {
                    self.player_play(conn, now, &tracks);
                    self.end_sessions_replaced_by(conn, now);
                }
                ServerOutput::Close(_) => self.close_player(conn, now),
                ServerOutput::Foreign { session, request } => {
                    self.foreign_request(conn, now, &session, request)
                }
                // A second look-up or a TEARDOWN pipelined behind the first: the next input
                // from the player runs them (it will send one: it waits for our answers).
                ServerOutput::Lookup { .. } | ServerOutput::Stop => {}
            }
        }
    }

    fn player_play(&mut self, conn: ConnId, now: Instant, tracks: &[usize]) {
        let Some(p) = self.players.get_mut(&conn) else {
            return;
        };
        let Some(id) = p.stream else {
            return;
        };
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let ip = p.peer.ip();
        let mut routes = vec![None; s.tracks.len()];
        for &t in tracks {
            let route = match p.session.route(t) {
                Some(TrackTransport::Interleaved {
                    rtp_channel,
                    rtcp_channel,
                }) => PlayerRoute::Tcp(rtp_channel, rtcp_channel),
                Some(TrackTransport::Udp {
                    rtp_port,
                    rtcp_port,
                }) => PlayerRoute::Udp(
                    SocketAddr::new(ip, rtp_port),
                    SocketAddr::new(ip, rtcp_port),
                ),
                None => continue,
            };
            if let Some(r) = routes.get_mut(t) {
                *r = Some(route);
            }
        }
        for route in routes.iter().flatten() {
            if let PlayerRoute::Udp(rtp, rtcp) = route {
                self.udp_players.insert(udp_key(*rtp), conn);
                self.udp_players.insert(udp_key(*rtcp), conn);
            }
        }
        p.needs_keyframe = (s.tracks.iter().zip(&routes))
            .any(|(t, r)| r.is_some() && t.kind == crate::media::MediaKind::Video);
        let rates: Vec<u32> = s.tracks.iter().map(|t| t.clock_rate).collect();
        // Not a new MediaOut: the PLAY answer is queued in it.
        p.out.set_tracks(&rates);
        // Start on the cached GOP, if there is one: the picture at once (over UDP, paced).
        p.started = false;
        p.replay = None;
        let udp = routes
            .iter()
            .flatten()
            .any(|r| matches!(r, PlayerRoute::Udp(..)));
        if udp {
            p.replay = replay::Replay::start(&s.raw_gop, now);
            p.started = p.replay.is_some();
        } else {
            for (i, (track, data)) in s.raw_gop.packets().enumerate() {
                if let Some(Some(PlayerRoute::Tcp(channel, _))) = routes.get(track) {
                    // Counted like live packets (`camgate_rtsp_player_packets_out_total`).
                    match p.out.push_interleaved(now, track, *channel, data, i == 0) {
                        Pushed::Queued => self.stats.player_packets_out += 1,
                        Pushed::Skipped => self.stats.player_packets_skipped += 1,
                        Pushed::DropClient => {}
                    }
                    p.started = true;
                }
            }
            p.out.queued_burst();
        }
        p.routes = routes;
        s.waiting_players.retain(|c| *c != conn);
        if !s.players.contains(&conn) {
            s.players.push(conn);
        }
        tracing::info!(conn = conn.0, stream = id.0, url = %s.redacted, "rtsp player playing");
        self.replay_step(conn, now);
        self.schedule_player(conn, now);
    }

    fn player_stop(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.players.get_mut(&conn) else {
            return;
        };
        forget_udp(&mut self.udp_players, conn, &p.routes);
        p.routes.clear();
        p.replay = None;
        if let Some(id) = p.stream.take() {
            if let Some(s) = self.streams.get_mut(&id) {
                s.players.retain(|c| *c != conn);
            }
            self.players_left(id, now);
        }
    }
}

/// Takes a player's UDP addresses out of the index (those still pointing at it).
fn forget_udp(index: &mut Map<SocketAddr, ConnId>, conn: ConnId, routes: &[Option<PlayerRoute>]) {
    for route in routes.iter().flatten() {
        if let PlayerRoute::Udp(rtp, rtcp) = route {
            for a in [rtp, rtcp] {
                if index.get(&udp_key(*a)) == Some(&conn) {
                    index.remove(&udp_key(*a));
                }
            }
        }
    }
}
