//! The gateway: every camera URL being played, every viewer, every signaling session.
//!
//! `Gateway` is the sans-IO heart of camgate. The event loop feeds it bytes and time
//! (`handle_*`), and takes out what to do (`poll_output`, `poll_transmit`, `poll_timeout`):
//!
//! - one RTSP connection per camera URL, shared by every viewer of exactly that URL;
//! - the connection is torn down `stream_linger` after its last viewer left;
//! - each camera RTP packet is parsed and relayed once by the stream's `MediaPipeline`, then
//!   written to each viewer's `Rtc` with its payload shared (`Arc<[u8]>`) by its `FanOut`;
//! - signaling follows the Flashphoner Web SDK protocol (see `signaling`).
//!
//! One concern per file: `types` (what the API takes and gives), `sessions` (signaling),
//! `rest` (startup/terminate), `streams` (a stream's lifecycle), `camera` (driving its RTSP
//! client), `pipeline` (its media), `fanout` (to its viewers and mirrors), `replays` (GOP
//! replays, spread over loop turns), `mirrors` (cameras other workers pull), `viewers` (the
//! shared WebRTC socket), `timers`, `outputs`.
//!
//! Timers are kept in a min-heap with lazy invalidation: an entity is scheduled again only
//! when its deadline moves earlier, and a popped entry whose deadline no longer matches is
//! dropped. Waking an entity early is harmless (all state machines accept any `now`).

mod camera;
mod fanout;
mod mirrors;
mod outputs;
mod pipeline;
mod replays;
mod rest;
mod rtsp_out;
mod sessions;
mod streams;
mod timers;
mod types;
mod viewers;

use camera::*;
use fanout::*;
use pipeline::*;
use rtsp_out::*;
pub use rtsp_out::{PlayerDatagrams, Refused, PLAYER_DATAGRAMS_DUE};
use sessions::*;
use streams::*;
use timers::*;
pub use types::*;
use viewers::*;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;
use str0m::net::{Protocol, Transmit};

use crate::audio_relay::AudioOut;
use crate::bandwidth::LinkMonitor;
use crate::ids::StreamIds;
use crate::mirror::MirrorItem;
use crate::placement::{Placement, ViewerLimits, ViewerRefused, PUBLISH_INTERVAL};
use crate::rng::SplitMix64;
use crate::rtsp::{MediaPacket, RtspClient, RtspConfig, RtspError, RtspEvent, RtspOutput, RtspUrl};
use crate::signaling::{self, ClientMessage, StreamStatus};
use crate::stun;
use crate::viewer::{Negotiation, Viewer};

/// Longest a timer entry sleeps. Entries of removed viewers and streams can't be taken out of
/// the heap; capping every deadline (waking early is harmless) makes them fall due and go
/// within a second instead of piling up with far-future deadlines.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The gateway's hash maps: keyed from its seed, so iteration order (which decides the order
/// of some outputs, e.g. pings) is the same for the same seed, and unpredictable to peers.
type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// Timers run this late mean camgate itself did not get the CPU (a quota, a busy box): what
/// viewers seemed to do meanwhile says nothing about them (see `note_lateness`).
const STALL: Duration = Duration::from_millis(500);

/// Receiver reports are not judged this long after a stall: they describe packets camgate
/// sent late, in bursts, and would make good links look congested.
const STALL_MEMORY: Duration = Duration::from_secs(3);

/// How long a viewer whose connection died may still say `stopStream` before it gets FAILED.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// One worker's cameras, viewers and signaling sessions (see the module docs).
pub struct Gateway {
    config: GatewayConfig,
    stream_ids: StreamIds,
    streams: Map<StreamId, Stream>,
    by_url: Map<String, StreamId>,
    viewers: ViewerTable,
    sessions: Map<SessionId, Session>,
    /// Learned source address → viewer: the fast path of the shared UDP socket.
    by_addr: Map<(Protocol, SocketAddr), ViewerId>,
    /// camgate's ICE ufrag of each viewer → viewer: how a browser's first datagram from a new
    /// address (always a STUN check naming it) finds its viewer in one lookup.
    by_ufrag: Map<String, ViewerId>,
    /// With full ICE: the browsers' candidates from their offers → viewer. camgate's own checks
    /// go there, and the answer to one may be the first datagram from that address (it names
    /// no ufrag).
    by_candidate: Map<SocketAddr, ViewerId>,
    /// Learns the media sockets' public addresses (`stun_servers`); made at the first tick.
    stun: Option<stun::StunClient>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    next_ping: Option<Instant>,
    outputs: VecDeque<GatewayOutput>,
    transmits: VecDeque<Transmit>,
    /// Viewers written to since their last flush; flushed when datagrams are taken, so a
    /// batch of camera packets costs each viewer one str0m tick (see `Viewer::flush`).
    unflushed: Vec<ViewerId>,
    /// How far `flush_next_viewers` got through `unflushed`.
    unflushed_next: usize,
    /// Viewers with a GOP replay under way, oldest first (see `replays`).
    replaying: Vec<ViewerId>,
    /// Counts media batches; each starts its fan-out at a different viewer (see `FanOut`).
    fanout_turn: usize,
    /// When the loop last ran its timers late by `STALL` or more (see `note_lateness`).
    stalled_at: Option<Instant>,
    /// When the gateway was last given time: the instant of the deferred flushes.
    last_now: Option<Instant>,
    /// What waits for each other worker's mirrors, by worker (see `mirror_outbox`).
    mirror_out: Vec<Vec<MirrorItem>>,
    stats: GatewayStats,
    /// Remote sessions: (origin worker, id there) → local id.
    remote_ids: Map<(usize, SessionId), SessionId>,
    next_remote_id: u64,
    /// When the stream list is next published for the other workers.
    next_publish: Option<Instant>,
    /// RTSP players (clients of the RTSP server) by connection.
    players: Map<crate::ids::ConnId, Player>,
    /// UDP players' RTP and RTCP addresses → player: whose receiver report came in.
    udp_players: Map<SocketAddr, crate::ids::ConnId>,
    /// Datagrams for UDP players, until the loop sends them.
    player_udp: PlayerDatagrams,
    /// Everything random the gateway decides, from `config.seed`: RTSP clients' seeds, and
    /// the seed of str0m's generator before each viewer's `Rtc` is made.
    rng: SplitMix64,
}

impl Gateway {
    /// A gateway with no camera, viewer or session yet.
    pub fn new(config: GatewayConfig) -> Self {
        let here = config.placement.as_ref().map_or(0, |p| p.here());
        let mut rng = SplitMix64::new(config.seed);
        let keys = ahash::RandomState::with_seeds(
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        );
        Self {
            config,
            stream_ids: StreamIds::for_worker(here),
            streams: Map::with_hasher(keys.clone()),
            by_url: Map::with_hasher(keys.clone()),
            viewers: ViewerTable::default(),
            sessions: Map::with_hasher(keys.clone()),
            by_addr: Map::with_hasher(keys.clone()),
            by_ufrag: Map::with_hasher(keys.clone()),
            by_candidate: Map::with_hasher(keys.clone()),
            stun: None,
            timers: BinaryHeap::new(),
            next_ping: None,
            outputs: VecDeque::new(),
            transmits: VecDeque::with_capacity(1024),
            unflushed: Vec::with_capacity(1024),
            unflushed_next: 0,
            replaying: Vec::new(),
            fanout_turn: 0,
            stalled_at: None,
            last_now: None,
            mirror_out: Vec::new(),
            stats: GatewayStats::default(),
            remote_ids: Map::with_hasher(keys.clone()),
            next_remote_id: 0,
            next_publish: None,
            players: Map::with_hasher(keys.clone()),
            udp_players: Map::with_hasher(keys.clone()),
            player_udp: PlayerDatagrams::default(),
            rng,
        }
    }

    /// The settings it was made with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Streams being pulled (by every worker), with masked URLs.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut list = self.local_streams();
        if let Some(p) = &self.config.placement {
            list.extend(p.with(|w| w.others()).0);
        }
        // Mirrors' viewers count for their camera's entry.
        let (mirrors, mut list): (Vec<_>, Vec<_>) = list.into_iter().partition(|s| s.mirror);
        for m in mirrors {
            if let Some(s) = list.iter_mut().find(|s| s.id == m.id) {
                s.viewers += m.viewers;
            }
        }
        list.sort_by_key(|s| s.id);
        list
    }

    /// Streams pulled by this worker, and its mirrors' viewer counts.
    fn local_streams(&self) -> Vec<StreamInfo> {
        let mut list: Vec<_> = self
            .streams
            .iter()
            .filter_map(|(id, s)| {
                let (id, mirror) = match &s.source {
                    Source::Camera(_) | Source::Demo(_) => (*id, false),
                    Source::Mirror(m) => (m.origin_stream?, true),
                };
                Some(StreamInfo {
                    id,
                    url: s.redacted.clone(),
                    // For RTSP players only, it plays all the same.
                    playing: (s.pipeline.has_video_track() || s.browser_refusal.is_some())
                        && s.reconnect_at.is_none(),
                    viewers: s.viewers.len() + s.pending.len(),
                    pinned: s.pinned,
                    reconnecting: s.reconnect_at.is_some(),
                    dropped_tracks: s.pipeline.dropped_tracks().to_vec(),
                    info: match &s.browser_refusal {
                        Some(why) => format!("RTSP players only: {why}"),
                        None => s.pipeline.info(),
                    },
                    mirror,
                    video: s.pipeline.video_facts(),
                })
            })
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    /// Totals of every worker.
    pub fn stats(&self) -> GatewayStats {
        let mut stats = self.local_stats();
        if let Some(p) = &self.config.placement {
            stats.add(&p.with(|w| w.others()).1);
        }
        stats
    }

    /// The event loop spent `spent` reading a camera's sockets and handing the input to this
    /// gateway (`handle_rtsp_data`, `handle_rtsp_udp`): counted for the metrics. Core reads no
    /// clock; the loop measures.
    pub fn record_camera_input_time(&mut self, spent: Duration) {
        self.stats.camera_input_nanos += spent.as_nanos() as u64;
    }

    /// Totals of this worker alone.
    pub fn local_stats(&self) -> GatewayStats {
        let mut stats = self.stats;
        for (_, e) in self.viewers.iter() {
            let Some(viewer) = e.viewer.as_ref() else {
                continue;
            };
            match viewer.transport() {
                Some(_) if viewer.relayed() => stats.viewers_relayed += 1,
                Some(Protocol::Udp) => stats.viewers_udp += 1,
                Some(Protocol::Tcp) => stats.viewers_tcp += 1,
                _ => {}
            }
        }
        for p in self.players.values() {
            match p.transport() {
                Some(PlayerTransport::Tcp) => stats.players_tcp += 1,
                Some(PlayerTransport::Udp) => stats.players_udp += 1,
                None => {}
            }
        }
        stats
    }

    /// How many entries each of the gateway's tables holds: after every viewer and camera is gone
    /// they must all be back to zero (the leak check of the tests and the soak script).
    pub fn resident(&self) -> Resident {
        Resident {
            streams: self.streams.len() + self.by_url.len(),
            viewers: self.viewers.len(),
            players: self.players.len(),
            sessions: self.sessions.len(),
            learned_addresses: self.by_addr.len()
                + self.by_ufrag.len()
                + self.by_candidate.len()
                + self.udp_players.len(),
            timers: self.timers.len(),
            queued: self.replaying.len()
                + self.outputs.len()
                + self.transmits.len()
                + self.player_udp.len()
                + self.mirror_out.iter().map(Vec::len).sum::<usize>(),
        }
    }

    /// The public address STUN found for media socket `local` (see `GatewayConfig::stun_servers`).
    pub fn public_address(&self, local: SocketAddr) -> Option<SocketAddr> {
        self.stun.as_ref().and_then(|s| s.mapped(local))
    }

    /// Viewers on this worker, answered or waiting.
    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }
}
