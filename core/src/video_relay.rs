//! A stream's video on its way to browsers, whatever the camera's codec: H.264 (re-fragmented
//! where needed, SPS/PPS before every keyframe) or VP8 (forwarded as is). Both hand out the
//! same `VideoPacket`s, so the gateway, the GOP cache and the viewers don't care which.

use crate::h264::H264Relay;
use crate::media::TrackInfo;
use crate::media::VideoPacket;
use crate::rtp::RtpPacket;
use crate::vp8::Vp8Relay;

/// What a browser must be able to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264, matched against the browser's offered profiles.
    H264 {
        /// profile_idc, constraint flags, level_idc of the camera's SPS (or SDP); `None`
        /// until either is known.
        profile_level_id: Option<[u8; 3]>,
    },
    /// VP8.
    Vp8,
}

/// A stream's video relay, one variant per camera codec.
pub enum VideoRelay {
    /// H.264: re-fragments oversized packets, puts SPS/PPS before keyframes.
    H264(Box<H264Relay>),
    /// VP8: forwards the camera's packets, renumbered.
    Vp8(Vp8Relay),
}

impl VideoRelay {
    /// The relay for a camera video track, or None for a codec camgate can't pass to browsers.
    pub fn for_track(track: &TrackInfo, max_payload: usize) -> Option<VideoRelay> {
        match track.encoding.to_ascii_uppercase().as_str() {
            "H264" => Some(Self::H264(Box::new(H264Relay::new(
                track.fmtp.as_deref(),
                max_payload,
            )))),
            "VP8" => Some(Self::Vp8(Vp8Relay::new(max_payload))),
            _ => None,
        }
    }

    /// One camera RTP packet in; the packets for browsers it completes are appended to `out`.
    pub fn push(&mut self, packet: &RtpPacket<'_>, out: &mut Vec<VideoPacket>) {
        match self {
            Self::H264(r) => r.push(packet, out),
            Self::Vp8(r) => r.push(packet, out),
        }
    }

    /// What a browser must decode to take this stream, as far as known now.
    pub fn codec(&self) -> VideoCodec {
        match self {
            Self::H264(r) => VideoCodec::H264 {
                profile_level_id: r.profile_level_id().or_else(|| r.fmtp_profile_level_id()),
            },
            Self::Vp8(_) => VideoCodec::Vp8,
        }
    }

    /// B-frames can't be shown smoothly over WebRTC (browsers decode but mistime them).
    pub fn has_b_frames(&self) -> bool {
        matches!(self, Self::H264(r) if r.has_b_frames())
    }

    /// "H264 42c01e" / "VP8 640x360", for logs and stream info.
    pub fn describe(&self) -> String {
        match self {
            Self::H264(r) => match r.profile_level_id().or_else(|| r.fmtp_profile_level_id()) {
                Some(p) => format!("H264 {:02x}{:02x}{:02x}", p[0], p[1], p[2]),
                None => "H264".to_owned(),
            },
            Self::Vp8(r) => match r.last_keyframe_size() {
                Some((w, h)) => format!("VP8 {w}x{h}"),
                None => "VP8".to_owned(),
            },
        }
    }
}
