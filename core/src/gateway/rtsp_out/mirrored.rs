//! Players of a camera that another worker pulls. The RTSP server listens on one worker, but a
//! camera may be pulled by any (for its browsers). Such a player joins a mirror of the camera
//! on its own worker (see `crate::mirror`), and the mirror asks the camera's worker for the
//! camera's packets as they came (`Forward::CameraPackets`) besides the relayed ones its
//! browsers get: each camera packet goes once into an `Arc<[u8]>` shared by every worker that
//! asked (`MirrorItem::Raw`), on the same bounded lane, in order with the rest; the mirror
//! keeps its own `RawGop` and fans the packets out to its players as the camera's worker does
//! to its own. So the camera has one connection, and players and browsers on every worker
//! share it.
//!
//! Why not move the player's connection to the camera's worker instead: its UDP packets leave
//! from the RTSP server's one port pair and its receiver reports arrive there, and a TEARDOWN
//! may come on a new connection (see `detached`), all on the listener's worker; moving
//! sockets and sessions between loops would need all of that forwarded. A mirror already has
//! the lane, its bound and its resync; this adds two item kinds (`Raw`, `Tracks`). Cost: one
//! allocation and copy per camera packet on the camera's worker while another worker has
//! players of it (as the relay's one payload per packet), none per player. Every player starts at
//! once: the first of a camera on a mirror on the GOP the camera's worker keeps (handed over
//! with the tracks), later ones on the mirror's own copy.

use std::sync::Arc;

use super::*;

/// Packets of a GOP handed to a mirror at most: half of what a lane holds
/// (`camgate_io::lanes::MAX_ITEMS`, 2,048), about 2 s of a 4 Mbit/s camera.
const MAX_GOP_TO_MIRROR: usize = 1024;

impl Gateway {
    /// A new stream of `url` for a player: a mirror when another worker pulls the camera,
    /// else the camera pulled here.
    pub(super) fn open_for_player(&mut self, url: &str, now: Instant) -> Result<StreamId, String> {
        match self.mirror_origin(url) {
            Some(origin) => {
                let redacted = RtspUrl::parse(url).map_err(|e| e.to_string())?.redacted();
                Ok(self.add_mirror(url.to_owned(), redacted, origin))
            }
            None => self.pull(url, now),
        }
    }

    /// Browsers of stream `id`'s camera on every worker (0 without a placement table).
    pub(super) fn browsers_everywhere(&self, id: StreamId) -> usize {
        match (&self.config.placement, self.streams.get(&id)) {
            (Some(p), Some(s)) => p.with(|w| w.viewers_of(&s.url)),
            _ => 0,
        }
    }

    /// Stream `id` has a player: if it is a mirror, it asks for the camera's packets (once).
    pub(super) fn want_camera_packets(&mut self, id: StreamId) {
        self.ask_camera_packets(id, true);
    }

    /// Players left stream `id`: a mirror without players stops the camera's packets, and a
    /// stream nobody watches lingers (or, a mirror, closes).
    pub(super) fn players_left(&mut self, id: StreamId, now: Instant) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.players.is_empty() && s.waiting_players.is_empty())
        {
            self.ask_camera_packets(id, false);
        }
        self.linger_if_unwatched(id, now);
    }

    fn ask_camera_packets(&mut self, id: StreamId, wanted: bool) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let Source::Mirror(m) = &mut s.source else {
            return;
        };
        if m.camera_packets == wanted {
            return;
        }
        m.camera_packets = wanted;
        if !wanted {
            s.raw_gop.clear();
        }
        let forward = Forward::CameraPackets {
            url: s.url.clone(),
            mirror: id,
            wanted,
        };
        let worker = m.origin;
        self.outputs
            .push_back(GatewayOutput::Forward { worker, forward });
    }

    /// On the camera's worker: mirror `mirror` of worker `from` wants (or no longer wants) the
    /// camera's packets for its players; it gets the camera's tracks first.
    pub(in crate::gateway) fn camera_packets_wanted(
        &mut self,
        from: usize,
        url: &str,
        mirror: StreamId,
        wanted: bool,
    ) {
        let Some(s) = self.by_url.get(url).and_then(|id| self.streams.get_mut(id)) else {
            return;
        };
        // Only for a mirror this stream feeds (`Subscribe` came first, on the same channel).
        if !s.mirrors.contains(&(from, mirror)) {
            return;
        }
        s.raw_mirrors.retain(|m| *m != (from, mirror));
        if !wanted {
            return;
        }
        s.raw_mirrors.push((from, mirror));
        if s.tracks.is_empty() {
            return;
        }
        let tracks = s.tracks.clone();
        // The GOP kept here (a named stream keeps one always) follows the tracks, so the
        // mirror's first player starts at once, as one here would, rather than at the camera's
        // next keyframe. One copy per packet, once per mirror that asks. A GOP that would fill
        // most of the lane is not sent: the lane would drop media and resync the mirror anyway.
        let gop = (s.raw_gop.len() <= MAX_GOP_TO_MIRROR).then_some(&s.raw_gop);
        let packets = gop.into_iter().flat_map(|g| g.packets());
        let items: Vec<MirrorItem> = std::iter::once(MirrorItem::Tracks { mirror, tracks })
            .chain(packets.map(|(track, data)| MirrorItem::Raw {
                mirror,
                track,
                rtcp: false,
                packet: Arc::from(data),
            }))
            .collect();
        self.push_mirror(from, items);
    }

    /// The camera of stream `id` (re)described its tracks: mirrors with players learn them.
    pub(in crate::gateway) fn tracks_to_mirrors(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        let (to, tracks) = (s.raw_mirrors.clone(), s.tracks.clone());
        for (worker, mirror) in to {
            let tracks = tracks.clone();
            self.push_mirror(worker, [MirrorItem::Tracks { mirror, tracks }]);
        }
    }

    /// The list of mirrors that want stream `id`'s camera packets, taken out while a camera
    /// read runs (its fan-out borrows the gateway); `put_raw_mirrors` puts it back.
    pub(in crate::gateway) fn take_raw_mirrors(&mut self, id: StreamId) -> Vec<(usize, StreamId)> {
        (self.streams.get_mut(&id)).map_or_else(Vec::new, |s| std::mem::take(&mut s.raw_mirrors))
    }

    /// Puts back what `take_raw_mirrors` took, less mirrors that went meanwhile.
    pub(in crate::gateway) fn put_raw_mirrors(
        &mut self,
        id: StreamId,
        mut raw: Vec<(usize, StreamId)>,
    ) {
        if let Some(s) = self.streams.get_mut(&id) {
            raw.retain(|m| s.mirrors.contains(m));
            s.raw_mirrors = raw;
        }
    }

    /// On a mirror: the camera's tracks, for its players' look-ups and keyframe detection.
    pub(in crate::gateway) fn mirror_tracks(
        &mut self,
        mirror: StreamId,
        now: Instant,
        tracks: Vec<crate::media::TrackInfo>,
    ) {
        let Some(s) = self.streams.get_mut(&mirror) else {
            return;
        };
        s.tracks = tracks.clone();
        self.answer_players(mirror, now, &tracks);
    }

    /// On a mirror: one camera packet for its players.
    pub(in crate::gateway) fn raw_to_players(
        &mut self,
        mirror: StreamId,
        now: Instant,
        packet: &MediaPacket<'_>,
    ) {
        if let Some((Source::Mirror(_), _, mut fan_out)) = self.media_of(mirror, now) {
            fan_out.send_to_players(packet);
        }
    }
}

impl FanOut<'_> {
    /// One camera packet to the mirrors in `to` (their players'), shared: one copy for all.
    pub(in crate::gateway) fn send_raw_to_mirrors(
        &mut self,
        to: &[(usize, StreamId)],
        m: &MediaPacket<'_>,
    ) {
        if to.is_empty() {
            return;
        }
        let packet: Arc<[u8]> = Arc::from(m.data);
        for &(worker, mirror) in to {
            let item = MirrorItem::Raw {
                mirror,
                track: m.track,
                rtcp: m.rtcp,
                packet: packet.clone(),
            };
            push_lane(self.mirror_out, self.outputs, worker, [item]);
        }
    }
}
