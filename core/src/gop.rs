//! The last group of pictures of a stream, kept so a viewer who joins mid-GOP starts at once
//! instead of waiting up to a GOP for the camera's next keyframe.
//!
//! The cache holds the relay's packets (their payloads are shared `Arc`s, so caching copies no
//! media) from the latest `keyframe_start` on. Replaying it to a new viewer with the original
//! timestamps would make the browser play the past second in real time and keep that second
//! of latency; so `replay` pulls every cached access unit but the newest to one RTP tick
//! apart just before it: the browser decodes them all at once and shows the present.

use crate::media::VideoPacket;

/// The packets from a stream's latest keyframe on, replayed to viewers who join mid-GOP.
pub struct GopCache {
    packets: Vec<VideoPacket>,
    bytes: usize,
    /// False until the first keyframe, and after an overflow until the next one.
    valid: bool,
    max_bytes: usize,
}

impl GopCache {
    /// `max_bytes` bounds memory for cameras with very long GOPs; past it, late joiners wait
    /// for the next keyframe as if there were no cache.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            packets: Vec::new(),
            bytes: 0,
            valid: false,
            max_bytes,
        }
    }

    /// Records one relayed packet. Allocation-free once the vector has grown to a GOP.
    pub fn push(&mut self, packet: &VideoPacket) {
        if packet.keyframe_start {
            self.packets.clear();
            self.bytes = 0;
            self.valid = true;
        }
        if !self.valid {
            return;
        }
        self.bytes += packet.payload.len();
        if self.bytes > self.max_bytes {
            self.packets.clear();
            self.valid = false;
            return;
        }
        self.packets.push(packet.clone());
    }

    /// Forgets the GOP (the camera's stream starts over after a reconnect).
    pub fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
        self.valid = false;
    }

    /// Whether a joining viewer can start from the cache (it holds a GOP from its keyframe).
    pub fn is_ready(&self) -> bool {
        self.valid && !self.packets.is_empty()
    }

    /// Relay sequence number of the first cached packet, and timestamp of the last.
    pub fn first_seq_and_last_ts(&self) -> Option<(u16, u32)> {
        Some((self.packets.first()?.seq, self.packets.last()?.rtp_time))
    }

    /// Payload bytes cached.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Access units (frames) cached: `replay` spaces them one RTP tick apart.
    pub fn access_units(&self) -> u32 {
        if self.packets.is_empty() {
            return 0;
        }
        1 + self
            .packets
            .windows(2)
            .filter(|w| w[0].rtp_time != w[1].rtp_time)
            .count() as u32
    }

    /// Packets cached.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// The cached packets as relayed (for a mirror on another worker to cache them too).
    pub fn packets(&self) -> &[VideoPacket] {
        &self.packets
    }

    /// Whether no packet is cached.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Hands each cached packet to `send` with the timestamp to use for a joining viewer.
    pub fn replay(&self, mut send: impl FnMut(&VideoPacket, u32)) {
        let Some(last) = self.packets.last() else {
            return;
        };
        let access_units = self.access_units();
        let mut index = 0u32;
        for (i, packet) in self.packets.iter().enumerate() {
            if i > 0 && self.packets[i - 1].rtp_time != packet.rtp_time {
                index += 1;
            }
            let behind = access_units - 1 - index;
            send(packet, last.rtp_time.wrapping_sub(behind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn packet(rtp_time: u32, seq: u16, keyframe_start: bool, len: usize) -> VideoPacket {
        VideoPacket {
            payload: Arc::from(vec![0u8; len]),
            marker: false,
            rtp_time,
            seq,
            keyframe_start,
        }
    }

    #[test]
    fn keeps_the_latest_gop_only() {
        let mut gop = GopCache::new(1 << 20);
        gop.push(&packet(0, 1, false, 10));
        assert!(!gop.is_ready(), "nothing before the first keyframe");
        gop.push(&packet(3000, 2, true, 10));
        gop.push(&packet(3000, 3, false, 10));
        gop.push(&packet(6000, 4, false, 10));
        assert_eq!(gop.len(), 3);
        gop.push(&packet(9000, 5, true, 10));
        assert_eq!(gop.len(), 1);
    }

    #[test]
    fn replay_compresses_old_frames_to_just_before_the_newest() {
        let mut gop = GopCache::new(1 << 20);
        gop.push(&packet(90_000, 1, true, 10));
        gop.push(&packet(90_000, 2, false, 10));
        gop.push(&packet(93_000, 3, false, 10));
        gop.push(&packet(96_000, 4, false, 10));
        let mut seen = Vec::new();
        gop.replay(|p, ts| seen.push((p.seq, ts)));
        assert_eq!(seen, [(1, 95_998), (2, 95_998), (3, 95_999), (4, 96_000)]);
    }

    #[test]
    fn an_oversized_gop_is_dropped_until_the_next_keyframe() {
        let mut gop = GopCache::new(100);
        gop.push(&packet(0, 1, true, 60));
        gop.push(&packet(3000, 2, false, 60));
        assert!(!gop.is_ready());
        gop.push(&packet(6000, 3, false, 10));
        assert!(!gop.is_ready());
        gop.push(&packet(9000, 4, true, 10));
        assert!(gop.is_ready());
        assert_eq!(gop.len(), 1);
    }

    #[test]
    fn timestamps_wrap_correctly() {
        let mut gop = GopCache::new(1 << 20);
        gop.push(&packet(u32::MAX - 1000, 1, true, 10));
        gop.push(&packet(1999, 2, false, 10));
        let mut seen = Vec::new();
        gop.replay(|_, ts| seen.push(ts));
        assert_eq!(seen, [1998, 1999]);
    }
}
