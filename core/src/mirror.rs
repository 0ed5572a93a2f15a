//! Mirrors: the viewers of one camera spread over several workers.
//!
//! One worker pulls a camera (its origin). When that worker serves more viewers than another
//! worker by a margin, new viewers of the camera are served by the other worker, from a
//! *mirror* stream there: the origin hands it every relayed packet (the `Arc` payload, not a
//! copy), the mirror keeps its own GOP cache and fans the packets out to its own viewers. So
//! each worker encrypts and sends only for its own viewers, and one camera can keep every core
//! busy.
//!
//! The origin's gateway queues `MirrorItem`s per mirror worker (`Gateway::mirror_outbox`); the
//! event loop carries them to the mirror's gateway (`Gateway::handle_mirrored`) through a
//! media lane between the two threads (`camgate_io::lanes`). The few control messages that
//! must stay in order with the packets (ready, resync, failed) are items too; the mirror's
//! requests to the origin (subscribe, unsubscribe) are `gateway::Forward`s. A mirror with RTSP
//! players also gets the camera's packets as they came (`Raw`, after its `Tracks`), which
//! players need and the relayed ones are not (see `gateway::rtsp_out`).

use std::time::Instant;

use crate::audio_relay::{AudioOut, AudioPacket};
use crate::gateway::StreamId;
use crate::media::VideoPacket;
use crate::video_relay::VideoCodec;

/// What a mirror needs to answer its viewers' offers and tell them what plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The video codec browsers get (the camera's, passed through).
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
        /// The mirror stream.
        mirror: StreamId,
        /// The packet, its payload shared with the origin's viewers.
        packet: VideoPacket,
        /// When it was captured.
        wall: Instant,
    },
    /// A relayed audio packet.
    Audio {
        /// The mirror stream.
        mirror: StreamId,
        /// The packet, its payload shared with the origin's viewers.
        packet: AudioPacket,
        /// When it was captured.
        wall: Instant,
        /// The Opus fallback of passed-through G.711 (else the main output).
        fallback: bool,
    },
    /// The camera plays (or what plays changed): viewers can be answered.
    Ready {
        /// The mirror stream.
        mirror: StreamId,
        /// The camera stream's id on its worker.
        origin: StreamId,
        /// What plays.
        described: Box<Described>,
    },
    /// A camera packet as it came (RTP or RTCP), for the mirror's RTSP players: only to
    /// mirrors that asked (`gateway::Forward::CameraPackets`).
    Raw {
        /// The mirror stream.
        mirror: StreamId,
        /// The camera track.
        track: usize,
        /// RTCP (a sender report), else RTP.
        rtcp: bool,
        /// The whole packet, shared by every mirror worker that gets it.
        packet: std::sync::Arc<[u8]>,
    },
    /// The camera's tracks, for the mirror's RTSP players (before its `Raw` packets, and again
    /// when the camera describes them anew).
    Tracks {
        /// The mirror stream.
        mirror: StreamId,
        /// As the camera's RTSP client set them up.
        tracks: Vec<crate::media::TrackInfo>,
    },
    /// The camera was reconnected: viewers wait for its next keyframe.
    Resync {
        /// The mirror stream.
        mirror: StreamId,
    },
    /// Browsers cannot play what the camera sends (MJPEG...), RTSP players can: the mirror's
    /// browsers get FAILED with `info` (later ones at once); its players play on.
    BrowsersRefused {
        /// The mirror stream.
        mirror: StreamId,
        /// The reason, as the browsers' FAILED status says it.
        info: String,
    },
    /// The camera failed or was terminated: the mirror's viewers get FAILED with `info`.
    Failed {
        /// The mirror stream.
        mirror: StreamId,
        /// The reason, as the viewers' FAILED status says it.
        info: String,
    },
}

/// The newest (RTP time, wall clock) pair a mirror got: how it dates the packets of a GOP
/// replay without the camera's clock mapping, which only the origin has.
#[derive(Debug, Clone, Copy)]
pub struct MirrorClock {
    rtp_time: u32,
    wall: Instant,
}

impl MirrorClock {
    /// A clock that dates `rtp_time` at `wall`.
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
    use std::time::Duration;

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
