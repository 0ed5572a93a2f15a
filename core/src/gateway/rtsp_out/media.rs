//! What RTSP players get: each camera packet, rewritten, to every playing player
//! (`FanOut::send_to_players`), and the camera's packets since the last keyframe (`RawGop`)
//! that a new player starts on.

use super::*;
use crate::rtsp::MediaPacket;

/// Does this camera packet start a picture a decoder can start from? H.264: an SPS, or an IDR
/// slice (single, in a STAP-A, or an FU-A start); H.265: a VPS/SPS or an IRAP slice; MJPEG
/// (RFC 2435, every frame a keyframe): a frame's first packet (fragment offset 0).
pub(super) fn raw_keyframe_start(encoding: &str, payload: &[u8]) -> bool {
    match encoding {
        "H264" => match payload.first().map(|b| b & 0x1F) {
            Some(5 | 7) => true,
            Some(24) => {
                // STAP-A: 16-bit sizes, then NAL units.
                let mut rest = &payload[1..];
                while let [hi, lo, tail @ ..] = rest {
                    let n = usize::from(u16::from_be_bytes([*hi, *lo]));
                    match tail.first().map(|b| b & 0x1F) {
                        Some(5 | 7) => return true,
                        Some(_) if n <= tail.len() => rest = &tail[n..],
                        _ => return false,
                    }
                }
                false
            }
            Some(28) => payload
                .get(1)
                .is_some_and(|h| h & 0x80 != 0 && h & 0x1F == 5),
            _ => false,
        },
        "H265" => {
            let kind = |b: u8| (b >> 1) & 0x3F;
            match payload.first().map(|b| kind(*b)) {
                Some(16..=21 | 32 | 33) => true,
                Some(48) => payload
                    .get(4)
                    .is_some_and(|b| matches!(kind(*b), 16..=21 | 32 | 33)),
                Some(49) => payload
                    .get(2)
                    .is_some_and(|h| h & 0x80 != 0 && matches!(h & 0x3F, 16..=21)),
                _ => false,
            }
        }
        // JPEG header: type-specific (8 bits), then the fragment offset (24 bits).
        "JPEG" => payload.get(1..4) == Some(&[0, 0, 0]),
        // VP8 and others: every packet may start (a player of VP8 waits for its keyframe).
        _ => true,
    }
}

impl FanOut<'_> {
    /// One camera packet to every playing player of the stream, unchanged but for SSRC,
    /// sequence and timestamp (see `MediaOut::rewrite`).
    pub(in crate::gateway) fn send_to_players(&mut self, m: &MediaPacket<'_>) {
        if !self.keep_raw_gop {
            self.raw_gop.clear();
            return;
        }
        if m.rtcp {
            // The camera's sender reports, in each player's numbering (lip sync).
            let Some(sr) = crate::rtp::parse_sender_report(m.data) else {
                return;
            };
            for conn in self.player_conns {
                let Some(p) = self.players.get_mut(conn) else {
                    continue;
                };
                if !p.started || p.closing {
                    continue;
                }
                match p.routes.get(m.track).copied() {
                    Some(Some(PlayerRoute::Tcp(_, rtcp))) => {
                        p.out
                            .push_sender_report(m.track, rtcp, sr.ntp_time, sr.rtp_time);
                        if !p.write_asked && p.out.queued() > 0 {
                            p.write_asked = true;
                            self.outputs
                                .push_back(GatewayOutput::PlayerWrite { conn: *conn });
                        }
                    }
                    Some(Some(PlayerRoute::Udp(_, to))) => {
                        if let Some(r) = p.out.sender_report(m.track, sr.ntp_time, sr.rtp_time) {
                            self.player_udp.push(to, true, |b| {
                                b.extend_from_slice(&r);
                                true
                            });
                        }
                    }
                    _ => {}
                }
            }
            return;
        }
        let Some(track) = self.tracks.get(m.track) else {
            return;
        };
        let video = track.kind == crate::media::MediaKind::Video;
        let key =
            video && rtp_payload(m.data).is_some_and(|p| raw_keyframe_start(&track.encoding, p));
        if key {
            self.finish_replays();
        }
        self.raw_gop.push(m.track, m.data, key);
        for conn in self.player_conns {
            let Some(p) = self.players.get_mut(conn) else {
                continue;
            };
            if p.closing {
                continue;
            }
            let Some(Some(route)) = p.routes.get(m.track).copied() else {
                continue;
            };
            if let Some(r) = p.replay {
                if r.walks(self.raw_gop) {
                    // In the GOP its replay walks: it comes in order, through the replay.
                    continue;
                }
                // The GOP it walked is gone (a camera reconnect, an overflow): live from the
                // next keyframe.
                p.replay = None;
                p.started = self.raw_gop.len() > 0;
            }
            // A player of audio alone starts on any packet (and may resume on any).
            let resumable = key || !p.needs_keyframe;
            if !p.started {
                if !resumable {
                    continue;
                }
                p.started = true;
            }
            let channel = match route {
                PlayerRoute::Tcp(channel, _) => channel,
                PlayerRoute::Udp(to, _) => {
                    // Sent (or dropped, and counted) by the loop right after this batch.
                    let (out, now) = (&mut p.out, self.now);
                    self.player_udp
                        .push(to, false, |b| out.rewrite(now, m.track, m.data, b));
                    continue;
                }
            };
            match p
                .out
                .push_interleaved(self.now, m.track, channel, m.data, resumable)
            {
                Pushed::Queued => self.stats.player_packets_out += 1,
                Pushed::Skipped => self.stats.player_packets_skipped += 1,
                Pushed::DropClient => {
                    tracing::info!(conn = conn.0, "rtsp player too slow: dropped");
                    p.closing = true;
                    self.outputs
                        .push_back(GatewayOutput::PlayerClose { conn: *conn });
                    continue;
                }
            }
            if !p.write_asked && p.out.queued() > 0 {
                p.write_asked = true;
                self.outputs
                    .push_back(GatewayOutput::PlayerWrite { conn: *conn });
            }
        }
    }
}

/// The camera's packets (every track) since its last video keyframe, as they came, kept while
/// a stream has players: a player that starts playing gets them at once instead of waiting up
/// to a GOP for the next keyframe. One buffer for all, reused: no allocation per packet.
#[derive(Debug, Default)]
pub(in crate::gateway) struct RawGop {
    bytes: Vec<u8>,
    /// (track, start, end) in `bytes`.
    packets: Vec<(usize, usize, usize)>,
    /// A keyframe started it (and it did not overflow since).
    valid: bool,
    /// Counts the GOPs kept (each clear starts another): a UDP player's paced replay
    /// (`Replay`) knows whether the packets it walks are still there.
    generation: u64,
    /// The RTP timestamp of the keyframe it starts with: the SPS, PPS and IDR slice of one
    /// keyframe come as separate packets that each may start it, and a later one of the same
    /// picture must not drop the earlier ones.
    keyframe_time: Option<u32>,
}

/// A GOP larger than this (a camera with a minute-long GOP at a high rate) is not kept:
/// players of it wait for the next keyframe.
const MAX_RAW_GOP: usize = 8 << 20;

impl RawGop {
    fn push(&mut self, track: usize, data: &[u8], keyframe_start: bool) {
        let time = data
            .get(4..8)
            .map(|t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]));
        if keyframe_start && !(self.valid && self.keyframe_time == time) {
            self.clear();
            self.valid = true;
            self.keyframe_time = time;
        }
        if !self.valid {
            return;
        }
        if self.bytes.len() + data.len() > MAX_RAW_GOP {
            self.clear();
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.packets.push((track, start, self.bytes.len()));
    }

    pub(in crate::gateway) fn clear(&mut self) {
        self.bytes.clear();
        self.packets.clear();
        self.valid = false;
        self.generation += 1;
    }

    /// The kept packets, oldest first; empty when there is no keyframe to start from.
    pub(super) fn packets(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        self.packets_from(0)
    }

    /// `packets` from the `first`-th on.
    pub(super) fn packets_from(&self, first: usize) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let n = self.len();
        self.packets[first.min(n)..n]
            .iter()
            .map(|&(t, a, b)| (t, &self.bytes[a..b]))
    }

    /// How many packets `packets` has.
    pub(super) fn len(&self) -> usize {
        if self.valid {
            self.packets.len()
        } else {
            0
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }
}

/// The payload of an RTP packet (after CSRCs and the extension); `None` if malformed.
fn rtp_payload(p: &[u8]) -> Option<&[u8]> {
    let cc = usize::from(p.first()? & 0x0F);
    let mut at = 12 + 4 * cc;
    if p[0] & 0x10 != 0 {
        let len = u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]);
        at += 4 + 4 * usize::from(len);
    }
    p.get(at..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_starts_of_camera_packets() {
        assert!(raw_keyframe_start("H264", &[0x67, 0x42]));
        assert!(raw_keyframe_start("H264", &[0x65, 0x88]));
        assert!(!raw_keyframe_start("H264", &[0x41, 0x9a]));
        // STAP-A of SPS and PPS; of an SEI then an IDR; of P slices.
        assert!(raw_keyframe_start(
            "H264",
            &[0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce]
        ));
        assert!(raw_keyframe_start(
            "H264",
            &[0x78, 0, 2, 0x06, 0x05, 0, 2, 0x65, 0x88]
        ));
        assert!(!raw_keyframe_start(
            "H264",
            &[0x78, 0, 2, 0x41, 0x9a, 0, 9, 0x41]
        ));
        // FU-A: IDR start, IDR middle, P start.
        assert!(raw_keyframe_start("H264", &[0x7c, 0x85, 1]));
        assert!(!raw_keyframe_start("H264", &[0x7c, 0x05, 1]));
        assert!(!raw_keyframe_start("H264", &[0x7c, 0x81, 1]));
        // MJPEG: a frame's first fragment, not its next ones.
        assert!(raw_keyframe_start("JPEG", &[0, 0, 0, 0, 1, 255, 80, 45]));
        assert!(!raw_keyframe_start(
            "JPEG",
            &[0, 0, 0x05, 0x78, 1, 255, 80, 45]
        ));
        assert!(!raw_keyframe_start("JPEG", &[0, 0]));
        // H.265: VPS, IDR_W_RADL, TRAIL_R, FU of a CRA start.
        assert!(raw_keyframe_start("H265", &[0x40, 0x01]));
        assert!(raw_keyframe_start("H265", &[0x26, 0x01]));
        assert!(!raw_keyframe_start("H265", &[0x02, 0x01]));
        assert!(raw_keyframe_start("H265", &[0x62, 0x01, 0x95]));
        assert!(!raw_keyframe_start("H264", &[]));
    }
}
