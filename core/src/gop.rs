//! The last group of pictures of a stream, kept so a viewer who joins mid-GOP starts at once
//! instead of waiting up to a GOP for the camera's next keyframe.
//!
//! The cache holds the relay's packets (their payloads are shared `Arc`s, so caching copies no
//! media) from the latest `keyframe_start` on. Replaying it to a new viewer with the original
//! timestamps would make the browser play the past second in real time and keep that second
//! of latency; so a replay pulls every access unit cached when it began but the newest to one
//! RTP tick apart just before it: the browser decodes them all at once and shows the present.
//!
//! A replay is a [`ReplayCursor`] (a few integers, no allocation) that the gateway moves a
//! slice at a time, over several loop turns: the cache keeps growing with the live stream
//! meanwhile, and the cursor walks on through what was added until it has caught up.

use crate::media::VideoPacket;

/// The packets from a stream's latest keyframe on, replayed to viewers who join mid-GOP.
pub struct GopCache {
    packets: Vec<VideoPacket>,
    bytes: usize,
    /// False until the first keyframe, and after an overflow until the next one.
    valid: bool,
    max_bytes: usize,
    /// Changes whenever the cached packets stop being a prefix of what comes next (a new
    /// keyframe, an overflow, a clear): cursors into the earlier content are stale.
    generation: u64,
}

/// Where one viewer's replay of a [`GopCache`] has got to (see `GopCache::replay_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCursor {
    /// The cache's generation when the replay began.
    generation: u64,
    /// Index of the next packet to send.
    next: usize,
    /// Packets cached when the replay began: their access units are pulled together.
    end: usize,
    /// Access units among those `end` packets.
    access_units: u32,
    /// Access unit (counted from 0) of the packet before `next`.
    unit: u32,
    /// The camera's RTP time of the newest of those packets.
    end_ts: u32,
    /// Added to the pulled-together timestamps (a keyframe answer follows what was sent).
    shift: u32,
    /// The RTP time the replayed frames follow (a keyframe answer: the last frame sent); a
    /// join's end at the newest frame's own time.
    after: Option<u32>,
}

impl ReplayCursor {
    /// Whether nothing was sent from it yet.
    pub fn is_unstarted(&self) -> bool {
        self.next == 0
    }

    /// The RTP time its frames follow (see `GopCache::cursor`).
    pub fn after(&self) -> Option<u32> {
        self.after
    }
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
            generation: 0,
        }
    }

    /// Records one relayed packet. Allocation-free once the vector has grown to a GOP.
    pub fn push(&mut self, packet: &VideoPacket) {
        if packet.keyframe_start {
            self.packets.clear();
            self.bytes = 0;
            self.valid = true;
            self.generation += 1;
        }
        if !self.valid {
            return;
        }
        self.bytes += packet.payload.len();
        if self.bytes > self.max_bytes {
            self.packets.clear();
            self.valid = false;
            self.generation += 1;
            return;
        }
        self.packets.push(packet.clone());
    }

    /// Forgets the GOP (the camera's stream starts over after a reconnect).
    pub fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
        self.valid = false;
        self.generation += 1;
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

    /// Hands each cached packet to `send` with the timestamp to use for a joining viewer, in
    /// one go (see `replay_from`).
    pub fn replay(&self, send: impl FnMut(&VideoPacket, u32)) {
        if let Some(mut cursor) = self.cursor(None) {
            self.replay_from(&mut cursor, usize::MAX, send);
        }
    }

    /// A replay of the cache from its keyframe; `None` while there is no GOP to start from.
    /// The frames cached now go one tick apart, the newest at its own time, or (a keyframe
    /// answer) the first one tick `after` the last frame sent, so the decoder takes them as
    /// the newest frames and the live ones that follow still come later.
    pub fn cursor(&self, after: Option<u32>) -> Option<ReplayCursor> {
        let last = self.packets.last().filter(|_| self.valid)?;
        let access_units = self.access_units();
        let shift = after.map_or(0, |t| {
            t.wrapping_add(access_units).wrapping_sub(last.rtp_time)
        });
        Some(ReplayCursor {
            generation: self.generation,
            next: 0,
            end: self.packets.len(),
            access_units,
            unit: 0,
            end_ts: last.rtp_time,
            shift,
            after,
        })
    }

    /// Whether `cursor` points into an earlier GOP: a keyframe started a new one, or the
    /// cache overflowed or was emptied since the replay began.
    pub fn is_stale(&self, cursor: &ReplayCursor) -> bool {
        cursor.generation != self.generation
    }

    /// Whether `cursor` has sent every cached packet: what comes next is live.
    pub fn caught_up(&self, cursor: &ReplayCursor) -> bool {
        !self.is_stale(cursor) && cursor.next >= self.packets.len()
    }

    /// Hands the next packets (at most `max`) from `cursor` on to `send` with their timestamps
    /// and moves the cursor past them; returns how many (none for a stale cursor). Packets
    /// cached when the replay began get their access units one tick apart, the newest at its
    /// own time (plus `shift`); packets cached since keep the camera's time, as live ones do
    /// (the rest of that newest access unit excepted: it keeps the time its start got).
    pub fn replay_from(
        &self,
        cursor: &mut ReplayCursor,
        max: usize,
        mut send: impl FnMut(&VideoPacket, u32),
    ) -> usize {
        if self.is_stale(cursor) {
            return 0;
        }
        let start = cursor.next;
        let stop = self.packets.len().min(start.saturating_add(max));
        for i in start..stop {
            let packet = &self.packets[i];
            let ts = if i < cursor.end {
                if i > 0 && self.packets[i - 1].rtp_time != packet.rtp_time {
                    cursor.unit += 1;
                }
                let behind = cursor.access_units - 1 - cursor.unit;
                cursor
                    .end_ts
                    .wrapping_sub(behind)
                    .wrapping_add(cursor.shift)
            } else if packet.rtp_time == cursor.end_ts {
                cursor.end_ts.wrapping_add(cursor.shift)
            } else {
                packet.rtp_time
            };
            send(packet, ts);
        }
        cursor.next = stop;
        stop - start
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

    /// A GOP of three frames: packets 1-2 (keyframe), 3, 4.
    fn three_frames() -> GopCache {
        let mut gop = GopCache::new(1 << 20);
        gop.push(&packet(90_000, 1, true, 10));
        gop.push(&packet(90_000, 2, false, 10));
        gop.push(&packet(93_000, 3, false, 10));
        gop.push(&packet(96_000, 4, false, 10));
        gop
    }

    #[test]
    fn a_replay_in_slices_gives_what_one_in_one_go_gives() {
        let gop = three_frames();
        let mut whole = Vec::new();
        gop.replay(|p, ts| whole.push((p.seq, ts)));
        for slice in 1..5 {
            let mut cursor = gop.cursor(None).expect("a GOP");
            let mut seen = Vec::new();
            while !gop.caught_up(&cursor) {
                let n = gop.replay_from(&mut cursor, slice, |p, ts| seen.push((p.seq, ts)));
                assert!(n > 0 && n <= slice);
            }
            assert_eq!(seen, whole, "slices of {slice}");
        }
    }

    #[test]
    fn a_replay_walks_on_through_what_the_live_stream_adds_with_its_times() {
        let mut gop = three_frames();
        let mut cursor = gop.cursor(None).expect("a GOP");
        let mut seen = Vec::new();
        gop.replay_from(&mut cursor, 3, |p, ts| seen.push((p.seq, ts)));
        // The newest frame goes on (its second packet), then the next frame comes.
        gop.push(&packet(96_000, 5, false, 10));
        gop.push(&packet(99_000, 6, false, 10));
        assert!(!gop.caught_up(&cursor));
        gop.replay_from(&mut cursor, 10, |p, ts| seen.push((p.seq, ts)));
        assert!(gop.caught_up(&cursor));
        assert_eq!(
            seen,
            [
                (1, 95_998),
                (2, 95_998),
                (3, 95_999),
                (4, 96_000),
                (5, 96_000),
                (6, 99_000)
            ]
        );
    }

    #[test]
    fn a_keyframe_answer_follows_the_last_frame_sent() {
        let mut gop = three_frames();
        gop.push(&packet(96_000, 5, false, 10));
        // The viewer's last frame went out at 96 007: the answer's three frames follow it.
        let mut cursor = gop.cursor(Some(96_007)).expect("a GOP");
        // The rest of the newest frame, then a later one, arrive during the answer.
        gop.push(&packet(96_000, 6, false, 10));
        gop.push(&packet(99_000, 7, false, 10));
        let mut seen = Vec::new();
        gop.replay_from(&mut cursor, usize::MAX, |p, ts| seen.push((p.seq, ts)));
        let times: Vec<u32> = seen.iter().map(|s| s.1).collect();
        assert_eq!(
            times,
            [96_008, 96_008, 96_009, 96_010, 96_010, 96_010, 99_000]
        );
    }

    #[test]
    fn a_new_keyframe_overflow_or_clear_makes_a_cursor_stale() {
        let mut gop = three_frames();
        let cursor = gop.cursor(None).expect("a GOP");
        gop.push(&packet(99_000, 5, false, 10));
        assert!(!gop.is_stale(&cursor), "the GOP only grew");
        gop.push(&packet(102_000, 6, true, 10));
        assert!(gop.is_stale(&cursor));
        let mut stale = cursor;
        assert_eq!(gop.replay_from(&mut stale, 10, |_, _| panic!("stale")), 0);
        assert!(!gop.caught_up(&stale));

        let cursor = gop.cursor(None).expect("the new GOP");
        assert_eq!(cursor.end, 1);
        gop.clear();
        assert!(gop.is_stale(&cursor) && gop.cursor(None).is_none());

        let mut small = GopCache::new(15);
        small.push(&packet(0, 1, true, 10));
        let cursor = small.cursor(None).expect("a GOP");
        small.push(&packet(3000, 2, false, 10));
        assert!(
            small.is_stale(&cursor) && small.cursor(None).is_none(),
            "overflowed"
        );
    }
}
