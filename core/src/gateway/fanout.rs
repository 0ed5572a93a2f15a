//! Where a stream's media goes: its viewers' WebRTC sessions and its mirrors on other workers.

use std::collections::VecDeque;
use std::time::Instant;

use super::pipeline::{MediaPipeline, MediaSink};
use super::rtsp_out::{Player, PlayerDatagrams, RawGop};
use super::streams::Source;
use super::viewers::{ViewerEntry, ViewerId, ViewerTable};
use super::{Gateway, GatewayOutput, GatewayStats, Map, StreamId};
use crate::audio_relay::{AudioOut, AudioPacket};
use crate::gop::GopCache;
use crate::ids::ConnId;
use crate::media::TrackInfo;
use crate::media::VideoPacket;
use crate::mirror::MirrorItem;
use crate::signaling::{self, StreamStatus};
use crate::video_relay::VideoCodec;

/// The PLAYING status (with the stream info) for a viewer.
pub(super) fn playing_status(entry: &ViewerEntry, redacted: &str, info: &str) -> GatewayOutput {
    GatewayOutput::WsSend {
        session: entry.session,
        text: signaling::stream_status(
            &entry.media_session_id,
            redacted,
            StreamStatus::Playing,
            Some(info),
        ),
    }
}

/// PLAYING (with the stream info, and a note when the browser decodes another H.264 profile)
/// once the viewer's first keyframe was written.
pub(super) fn announce_playing(
    entry: &mut ViewerEntry,
    redacted: &str,
    codec: VideoCodec,
    info: impl FnOnce() -> String,
    outputs: &mut VecDeque<GatewayOutput>,
) {
    let Some(viewer) = entry.viewer.as_ref() else {
        return;
    };
    if entry.playing_sent || !viewer.state().playing {
        return;
    }
    tracing::info!(
        url = %redacted,
        transport = viewer.transport_label(),
        "viewer playing"
    );
    let mut info = info();
    let camera_profile = match codec {
        VideoCodec::H264 { profile_level_id } => profile_level_id,
        VideoCodec::Vp8 | VideoCodec::H265 { .. } => None,
    };
    if let Some(note) = viewer.profile_note(camera_profile) {
        info.push_str("; ");
        info.push_str(&note);
    }
    entry.playing_sent = true;
    outputs.push_back(playing_status(entry, redacted, &info));
}

/// Queues `items` for worker `worker`'s mirrors; the event loop is told (`Mirrored`) when that
/// worker's outbox was empty, and carries the items over (see `Gateway::mirror_outbox`).
pub(super) fn push_lane(
    mirror_out: &mut Vec<Vec<MirrorItem>>,
    outputs: &mut VecDeque<GatewayOutput>,
    worker: usize,
    items: impl IntoIterator<Item = MirrorItem>,
) {
    let outbox = outbox(mirror_out, worker);
    let was_empty = outbox.is_empty();
    outbox.extend(items);
    if was_empty && !outbox.is_empty() {
        outputs.push_back(GatewayOutput::Mirrored { worker });
    }
}

/// The items waiting for worker `worker`'s mirrors.
pub(super) fn outbox(mirror_out: &mut Vec<Vec<MirrorItem>>, worker: usize) -> &mut Vec<MirrorItem> {
    if mirror_out.len() <= worker {
        mirror_out.resize_with(worker + 1, Vec::new);
    }
    &mut mirror_out[worker]
}

/// What writes one stream's media to its viewers and mirrors: the parts of the gateway it
/// needs, borrowed next to the stream's pipeline (see `Gateway::media_of`).
pub(super) struct FanOut<'a> {
    pub(super) viewers: &'a mut ViewerTable,
    pub(super) unflushed: &'a mut Vec<ViewerId>,
    /// Viewers with a GOP replay under way (see `replays`).
    pub(super) replaying: &'a mut Vec<ViewerId>,
    pub(super) outputs: &'a mut VecDeque<GatewayOutput>,
    pub(super) stats: &'a mut GatewayStats,
    /// Items for other workers' mirrors, by worker (see `push_lane`).
    pub(super) mirror_out: &'a mut Vec<Vec<MirrorItem>>,
    /// The stream's viewers that have an answer.
    pub(super) watching: &'a [ViewerId],
    /// Where in `watching` this batch starts: viewers are written (and flushed) one after
    /// another, so a fixed order would always make the same viewers wait for all the others.
    pub(super) first: usize,
    /// The stream's mirrors on other workers: (worker, mirror stream there).
    pub(super) mirrors: &'a [(usize, StreamId)],
    /// The stream's URL with its password masked.
    pub(super) redacted: &'a str,
    /// RTSP players of every stream (see `rtsp_out`)...
    pub(super) players: &'a mut Map<ConnId, Player>,
    /// ...of which these play this stream...
    pub(super) player_conns: &'a [ConnId],
    /// ...whose camera tracks are these...
    pub(super) tracks: &'a [TrackInfo],
    /// ...and whose recent packets are kept here while it has players (set up or playing).
    pub(super) raw_gop: &'a mut RawGop,
    /// ...and where UDP players' datagrams wait for the loop.
    pub(super) player_udp: &'a mut PlayerDatagrams,
    pub(super) keep_raw_gop: bool,
    pub(super) now: Instant,
}

impl Gateway {
    /// Stream `id`, split into what its media needs: the stream (less its pipeline) for its
    /// source, its pipeline, and the fan-out to its viewers and mirrors.
    pub(super) fn media_of(
        &mut self,
        id: StreamId,
        now: Instant,
    ) -> Option<(&mut Source, &mut MediaPipeline, FanOut<'_>)> {
        // Disjoint fields: the stream's, and the gateway's that the fan-out writes to.
        let s = self.streams.get_mut(&id)?;
        self.fanout_turn = self.fanout_turn.wrapping_add(1);
        let fan_out = FanOut {
            viewers: &mut self.viewers,
            unflushed: &mut self.unflushed,
            replaying: &mut self.replaying,
            outputs: &mut self.outputs,
            stats: &mut self.stats,
            mirror_out: &mut self.mirror_out,
            watching: &s.viewers,
            first: self.fanout_turn % s.viewers.len().max(1),
            mirrors: &s.mirrors,
            redacted: &s.redacted,
            players: &mut self.players,
            player_conns: &s.players,
            tracks: &s.tracks,
            raw_gop: &mut s.raw_gop,
            player_udp: &mut self.player_udp,
            keep_raw_gop: s.named || !s.players.is_empty() || !s.waiting_players.is_empty(),
            now,
        };
        Some((&mut s.source, &mut s.pipeline, fan_out))
    }
}

/// `ids` starting at `first`, wrapping around.
fn rotated(ids: &[ViewerId], first: usize) -> impl Iterator<Item = &ViewerId> {
    let (head, tail) = ids.split_at(first.min(ids.len()));
    tail.iter().chain(head)
}

impl MediaSink for FanOut<'_> {
    fn stats(&mut self) -> &mut GatewayStats {
        self.stats
    }

    /// Writes the batch to every watching viewer, and to the mirrors. A newly connected viewer
    /// starts from the cached GOP instead (which already holds the batch): its replay is
    /// written over the next loop turns (see `replays`), and until it has caught up with the
    /// cache the live packets reach it from there. Started here, on media, not on the
    /// Connected event: str0m drops RTP written before its SRTP context is up, which happens
    /// just after that event.
    fn video(
        &mut self,
        gop: &GopCache,
        (packets, walls): (&[VideoPacket], &[Instant]),
        codec: VideoCodec,
        info: impl Fn() -> String,
    ) {
        let now = self.now;
        for &v in rotated(self.watching, self.first) {
            let Some(entry) = self.viewers.get_mut(v) else {
                continue;
            };
            let Some(viewer) = entry.viewer.as_mut() else {
                continue;
            };
            if viewer.state().connected && !entry.primed {
                entry.primed = true;
                if let Some(cursor) = gop.cursor(None) {
                    entry.replay = Some(cursor);
                    self.replaying.push(v);
                }
            }
            if entry.replay.is_some() {
                continue; // the replay brings this batch from the cache
            }
            for (p, wall) in packets.iter().zip(walls) {
                viewer.send_video(now, p, p.rtp_time, *wall);
            }
            self.stats.viewer_packets_out += packets.len() as u64;
            if viewer.wants_flush() {
                self.unflushed.push(v);
            }
            announce_playing(entry, self.redacted, codec, &info, self.outputs);
        }
        for &(worker, mirror) in self.mirrors {
            let items = packets
                .iter()
                .zip(walls)
                .map(|(p, wall)| MirrorItem::Video {
                    mirror,
                    packet: p.clone(),
                    wall: *wall,
                });
            push_lane(self.mirror_out, self.outputs, worker, items);
        }
    }

    fn audio(
        &mut self,
        output: AudioOut,
        main: (&[AudioPacket], &[Instant]),
        fallback: (&[AudioPacket], &[Instant]),
    ) {
        for &v in rotated(self.watching, self.first) {
            let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) else {
                continue;
            };
            let (packets, walls) = if viewer.audio_codec() == Some(output) {
                main
            } else {
                fallback
            };
            for (p, wall) in packets.iter().zip(walls) {
                viewer.send_audio(p, *wall);
            }
            if viewer.wants_flush() {
                self.unflushed.push(v);
            }
        }
        for &(worker, mirror) in self.mirrors {
            let item = |fallback| {
                move |(p, wall): (&AudioPacket, &Instant)| MirrorItem::Audio {
                    mirror,
                    packet: p.clone(),
                    wall: *wall,
                    fallback,
                }
            };
            let items = (main.0.iter().zip(main.1).map(item(false)))
                .chain(fallback.0.iter().zip(fallback.1).map(item(true)));
            push_lane(self.mirror_out, self.outputs, worker, items);
        }
    }

    fn wants_audio(&self) -> bool {
        !self.watching.is_empty() || !self.mirrors.is_empty()
    }

    fn playing_again(&mut self, info: &str) {
        for &v in self.watching {
            let Some(entry) = self.viewers.get(v).filter(|e| e.playing_sent) else {
                continue;
            };
            self.outputs
                .push_back(playing_status(entry, self.redacted, info));
        }
    }
}
