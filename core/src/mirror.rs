//! Mirrors: the viewers of one camera spread over several workers.
//!
//! One worker pulls a camera (its origin). When that worker serves more viewers than another
//! worker by a margin, new viewers of the camera are served by the other worker, from a
//! *mirror* stream there: the origin hands it every relayed packet (the `Arc` payload, not a
//! copy), the mirror keeps its own GOP cache and fans the packets out to its own viewers. So
//! each worker encrypts and sends only for its own viewers, and one camera can keep every core
//! busy.
//!
//! Packets go through a `MediaLane` per (origin worker, mirror worker) pair: a vector behind a
//! mutex that the origin appends to and the mirror swaps out whole, so the steady state
//! allocates nothing (both vectors keep their capacity) and the mirror's loop is woken only
//! when the lane goes from empty to not empty. The few control messages that must stay in
//! order with the packets (ready, resync, failed) take the same lane; the mirror's requests
//! to the origin (subscribe, unsubscribe) are `gateway::Forward`s.

use std::sync::Mutex;
use std::time::Instant;

use crate::audio_relay::{AudioOut, AudioPacket};
use crate::gateway::StreamId;
use crate::media::VideoPacket;
use crate::video_relay::VideoCodec;

/// What a mirror needs to answer its viewers' offers and tell them what plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub video: VideoCodec,
    /// The audio sent to browsers, if the camera's audio plays.
    pub audio: Option<AudioOut>,
    /// The stream info of the PLAYING status ("video H264 42c01e; audio ...").
    pub info: String,
}

/// One thing an origin tells a mirror. `mirror` is the mirror stream's id on its own worker.
#[derive(Debug, Clone)]
pub enum MirrorItem {
    /// A relayed video packet, with the wall-clock instant it was captured at (for RTCP).
    Video {
        mirror: StreamId,
        packet: VideoPacket,
        wall: Instant,
    },
    /// A relayed audio packet; `fallback`: the Opus fallback of passed-through G.711.
    Audio {
        mirror: StreamId,
        packet: AudioPacket,
        wall: Instant,
        fallback: bool,
    },
    /// The camera plays (or what plays changed): viewers can be answered. `origin`: the
    /// camera stream's id on its worker.
    Ready {
        mirror: StreamId,
        origin: StreamId,
        described: Box<Described>,
    },
    /// The camera was reconnected: viewers wait for its next keyframe.
    Resync { mirror: StreamId },
    /// The camera failed or was terminated: the mirror's viewers get FAILED with `info`.
    Failed { mirror: StreamId, info: String },
}

/// Media from one worker to another (see the module docs).
#[derive(Default)]
pub struct MediaLane {
    items: Mutex<Vec<MirrorItem>>,
}

impl MediaLane {
    /// Appends `items`; true when the lane was empty, i.e. its reader must be woken.
    pub fn push(&self, items: impl IntoIterator<Item = MirrorItem>) -> bool {
        let mut lane = self.lock();
        let was_empty = lane.is_empty();
        lane.extend(items);
        was_empty && !lane.is_empty()
    }

    /// Takes everything in the lane into `into` (which must be empty); `into`'s old buffer
    /// becomes the lane's, so neither side allocates once both have grown.
    pub fn take(&self, into: &mut Vec<MirrorItem>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut *self.lock(), into);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<MirrorItem>> {
        // Pushes and swaps leave the vector consistent even if a holder panicked.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The newest (RTP time, wall clock) pair a mirror got: how it dates the packets of a GOP
/// replay without the camera's clock mapping, which only the origin has.
#[derive(Debug, Clone, Copy)]
pub struct MirrorClock {
    rtp_time: u32,
    wall: Instant,
}

impl MirrorClock {
    pub fn new(rtp_time: u32, wall: Instant) -> Self {
        Self { rtp_time, wall }
    }

    /// The wall clock of `rtp_time` at 90 kHz (the video clock of H.264 and VP8).
    pub fn wallclock(&self, rtp_time: u32) -> Instant {
        let behind = self.rtp_time.wrapping_sub(rtp_time) as i32;
        let offset = std::time::Duration::from_micros(u64::from(behind.unsigned_abs()) * 100 / 9);
        if behind >= 0 {
            self.wall.checked_sub(offset).unwrap_or(self.wall)
        } else {
            self.wall + offset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn video(mirror: u64, seq: u16) -> MirrorItem {
        MirrorItem::Video {
            mirror: StreamId(mirror),
            packet: VideoPacket {
                payload: Arc::from(&[1u8, 2, 3][..]),
                marker: true,
                rtp_time: 0,
                seq,
                keyframe_start: false,
            },
            wall: Instant::now(),
        }
    }

    #[test]
    fn a_lane_wakes_its_reader_only_when_it_was_empty_and_keeps_order() {
        let lane = MediaLane::default();
        assert!(lane.push([video(1, 1)]), "empty lane: wake");
        assert!(
            !lane.push([video(1, 2), video(1, 3)]),
            "reader not done yet"
        );
        assert!(!lane.push(std::iter::empty()), "nothing pushed: no wake");
        let mut got = Vec::new();
        lane.take(&mut got);
        let seqs: Vec<u16> = got
            .iter()
            .map(|i| match i {
                MirrorItem::Video { packet, .. } => packet.seq,
                _ => 0,
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        got.clear();
        assert!(
            lane.push([video(1, 4)]),
            "drained: the next push wakes again"
        );
    }

    #[test]
    fn swapping_buffers_reuses_their_capacity() {
        let lane = MediaLane::default();
        let mut reader = Vec::with_capacity(64);
        lane.push((0..32).map(|i| video(1, i)));
        lane.take(&mut reader);
        reader.clear();
        // The lane now holds the reader's old 64-slot buffer.
        lane.push((0..64).map(|i| video(1, i)));
        let lane_capacity = lane.lock().capacity();
        assert_eq!(lane_capacity, 64, "pushing 64 items reallocated nothing");
    }

    #[test]
    fn the_mirror_clock_dates_earlier_and_later_timestamps() {
        let wall = Instant::now() + Duration::from_secs(10);
        let clock = MirrorClock::new(90_000, wall);
        assert_eq!(clock.wallclock(0), wall - Duration::from_secs(1));
        assert_eq!(
            clock.wallclock(90_000 + 9_000),
            wall + Duration::from_millis(100)
        );
        // Across the 32-bit wrap.
        let clock = MirrorClock::new(100, wall);
        assert_eq!(
            clock.wallclock(u32::MAX - 799),
            wall - Duration::from_micros(10_000)
        );
    }
}
