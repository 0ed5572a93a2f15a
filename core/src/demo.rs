//! The built-in demo camera as a stream source: a looped H.264 clip, played live with
//! ever-increasing timestamps, fed to the gateway like a camera's packets. Browsers and RTSP
//! players (the RTSP server's stream `demo`) get it like any other stream; it needs no socket.
//!
//! The clip is an Annex-B byte stream whose frame boundaries are rebuilt here (H.264
//! §7.4.1.2.3); its packets are single NAL units or FU-A (RFC 6184, packetization-mode=1).
//! Time is given (`now`): the frame index decides the RTP timestamp, so nothing drifts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::h264::nal::{
    is_vcl, nal_type, split_annex_b, NAL_AUD, NAL_FILLER, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS,
};
use crate::h264::packetize::packetize_nal;
use crate::media::{MediaKind, TrackInfo};
use crate::rtp::RtpPacket;
use crate::rtsp::MediaPacket;

/// Frames per second of the shipped clip (made by `scripts/make-demo-clip.sh`).
pub const FRAME_RATE: u32 = 30;
/// The dynamic payload type of the track.
pub const PAYLOAD_TYPE: u8 = 96;
/// H.264's RTP clock.
pub const CLOCK_RATE: u32 = 90_000;
/// 90 kHz / 30 fps.
pub const TICKS_PER_FRAME: u32 = CLOCK_RATE / FRAME_RATE;
/// Max RTP payload: keeps packets well under a 1500-byte MTU even through tunnels.
pub const MAX_PAYLOAD: usize = 1200;
/// A source this late (the loop was stalled) starts again from now instead of bursting.
const MAX_LAG: Duration = Duration::from_secs(1);

/// One coded picture with the parameter sets / SEI that precede it.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// NAL units without start codes, in decoding order.
    pub nals: Vec<Vec<u8>>,
    /// True when the picture is an IDR (a decoder can start here).
    pub idr: bool,
}

/// The parsed clip, shared by every worker's demo stream.
#[derive(Debug, Clone)]
pub struct DemoClip {
    /// The pictures in decoding order.
    pub access_units: Vec<AccessUnit>,
    /// First SPS / PPS of the stream, advertised out of band in the SDP.
    pub sps: Vec<u8>,
    /// See `sps`.
    pub pps: Vec<u8>,
}

impl DemoClip {
    /// Parses the clip and checks what looping relies on: it starts with an IDR (so looping
    /// is seamless and every viewer starts decodable) and has SPS/PPS.
    pub fn parse(data: &[u8]) -> Result<DemoClip, String> {
        let bad = |m: &str| format!("demo clip: {m}");
        let mut access_units: Vec<AccessUnit> = Vec::new();
        let mut cur = AccessUnit {
            nals: Vec::new(),
            idr: false,
        };
        let mut cur_has_vcl = false;
        let (mut sps, mut pps) = (None, None);
        for nal in split_annex_b(data) {
            let t = nal_type(nal[0]);
            // §7.4.1.2.3: an AUD, SPS, PPS, SEI or types 14..=18 after a picture's slices
            // open the next access unit; so does a slice with first_mb_in_slice == 0
            // (ue(v) == 0 is the single bit '1'). x264 writes several slices per picture.
            let starts_au = match t {
                6..=9 | 14..=18 => true,
                NAL_SLICE | NAL_IDR => nal.get(1).is_some_and(|b| b & 0x80 != 0),
                _ => false,
            };
            if starts_au && cur_has_vcl {
                access_units.push(std::mem::replace(
                    &mut cur,
                    AccessUnit {
                        nals: Vec::new(),
                        idr: false,
                    },
                ));
                cur_has_vcl = false;
            }
            match t {
                // Delimiters and filler carry nothing useful over RTP (RFC 6184 §5.2).
                NAL_AUD | NAL_FILLER => continue,
                NAL_SPS if sps.is_none() => sps = Some(nal.to_vec()),
                NAL_PPS if pps.is_none() => pps = Some(nal.to_vec()),
                _ => {}
            }
            if is_vcl(t) {
                cur_has_vcl = true;
                cur.idr |= t == NAL_IDR;
            }
            cur.nals.push(nal.to_vec());
        }
        if cur_has_vcl {
            access_units.push(cur);
        }
        let sps = sps.ok_or_else(|| bad("no SPS"))?;
        let pps = pps.ok_or_else(|| bad("no PPS"))?;
        if sps.len() < 4 {
            return Err(bad("SPS too short"));
        }
        let first = access_units.first().ok_or_else(|| bad("no pictures"))?;
        if !first.idr {
            return Err(bad("does not start with an IDR"));
        }
        Ok(DemoClip {
            access_units,
            sps,
            pps,
        })
    }

    /// profile_idc, constraint flags and level_idc from the SPS as 6 hex digits (RFC 6184 §8.1).
    pub fn profile_level_id(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.sps[1], self.sps[2], self.sps[3])
    }

    /// `sprop-parameter-sets` value for the SDP fmtp line.
    pub fn sprop_parameter_sets(&self) -> String {
        format!("{},{}", BASE64.encode(&self.sps), BASE64.encode(&self.pps))
    }

    /// The one track, as a camera's SDP would describe it.
    pub fn track(&self) -> TrackInfo {
        TrackInfo {
            kind: MediaKind::Video,
            encoding: "H264".to_owned(),
            payload_type: PAYLOAD_TYPE,
            clock_rate: CLOCK_RATE,
            channels: None,
            fmtp: Some(format!(
                "packetization-mode=1;profile-level-id={};sprop-parameter-sets={}",
                self.profile_level_id(),
                self.sprop_parameter_sets()
            )),
            control: "trackID=0".to_owned(),
        }
    }
}

/// When frame `n` is due after the start; computed from the start (not accumulated) so
/// rounding never drifts.
fn frame_offset(n: u64) -> Duration {
    Duration::from_nanos((u128::from(n) * 1_000_000_000 / u128::from(FRAME_RATE)) as u64)
}

/// One running demo stream: the clip from its first IDR, in real time, looping.
pub struct DemoSource {
    clip: Arc<DemoClip>,
    start: Instant,
    next_frame: u64,
    ssrc: u32,
    next_seq: u16,
    ts_base: u32,
    buf: Vec<u8>,
}

impl DemoSource {
    /// Starts at `now`; `seed` picks the SSRC, first sequence number and timestamp.
    pub fn new(clip: Arc<DemoClip>, now: Instant, seed: u64) -> Self {
        DemoSource {
            clip,
            start: now,
            next_frame: 0,
            ssrc: seed as u32,
            next_seq: (seed >> 32) as u16,
            ts_base: (seed >> 16) as u32,
            buf: Vec::with_capacity(12 + MAX_PAYLOAD),
        }
    }

    /// The tracks it plays (one H.264 video).
    pub fn tracks(&self) -> Vec<TrackInfo> {
        vec![self.clip.track()]
    }

    /// When the next frame is due.
    pub fn poll_timeout(&self) -> Instant {
        self.start + frame_offset(self.next_frame)
    }

    /// RTP timestamp of the `frame`-th frame: +3000 per frame forever (mod 2^32), whichever
    /// loop of the clip the frame comes from.
    pub fn timestamp(&self, frame: u64) -> u32 {
        self.ts_base
            .wrapping_add(frame.wrapping_mul(u64::from(TICKS_PER_FRAME)) as u32)
    }

    /// Emits the RTP packets of every frame due by `now`.
    pub fn handle_timeout(&mut self, now: Instant, mut emit: impl FnMut(MediaPacket<'_>)) {
        if now.saturating_duration_since(self.poll_timeout()) > MAX_LAG {
            self.start = now - frame_offset(self.next_frame);
        }
        while self.poll_timeout() <= now {
            let frame = self.next_frame;
            self.next_frame += 1;
            self.packetize(frame, &mut emit);
        }
    }

    /// The packets of one access unit (a single NAL unit packet per NAL unit that fits, FU-A
    /// fragments otherwise); the marker bit on the last one.
    fn packetize(&mut self, frame: u64, emit: &mut impl FnMut(MediaPacket<'_>)) {
        let clip = self.clip.clone();
        let au = &clip.access_units[(frame % clip.access_units.len() as u64) as usize];
        let timestamp = self.timestamp(frame);
        for (i, nal) in au.nals.iter().enumerate() {
            let last_nal = i + 1 == au.nals.len();
            let mut pieces = packetize_nal(nal, MAX_PAYLOAD).peekable();
            while let Some(piece) = pieces.next() {
                self.buf.clear();
                RtpPacket {
                    payload_type: PAYLOAD_TYPE,
                    marker: last_nal && pieces.peek().is_none(),
                    sequence: self.next_seq,
                    timestamp,
                    ssrc: self.ssrc,
                    payload: &[],
                }
                .write_to(&mut self.buf);
                self.next_seq = self.next_seq.wrapping_add(1);
                self.buf.extend_from_slice(piece.prefix());
                self.buf.extend_from_slice(piece.body);
                emit(MediaPacket {
                    track: 0,
                    rtcp: false,
                    data: &self.buf,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::nal::NAL_FU_A;

    /// SPS, PPS, IDR (3000 bytes: FU-A), then a P slice: two access units.
    fn tiny_clip() -> Vec<u8> {
        let mut data = vec![0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9];
        data.extend([0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        data.extend([0, 0, 0, 1, 0x65, 0x88]);
        data.extend((0..3000u32).map(|i| (i % 250) as u8 + 2));
        data.extend([0, 0, 0, 1, 0x41, 0x9a, 1, 2, 3]);
        data
    }

    #[test]
    fn clip_splits_into_access_units_with_parameter_sets() {
        let clip = DemoClip::parse(&tiny_clip()).unwrap();
        assert_eq!(clip.access_units.len(), 2);
        assert!(clip.access_units[0].idr && !clip.access_units[1].idr);
        assert_eq!(clip.access_units[0].nals.len(), 3, "SPS, PPS, IDR");
        assert_eq!(clip.profile_level_id(), "42c01e");
        let sprop = crate::h264::params::parse_sprop_parameter_sets(&clip.sprop_parameter_sets());
        assert_eq!(sprop, vec![clip.sps.clone(), clip.pps.clone()]);
        assert!(DemoClip::parse(&[]).is_err());
        assert!(
            DemoClip::parse(&[0, 0, 1, 0x41, 0x80]).is_err(),
            "no SPS/IDR"
        );
    }

    #[test]
    fn frames_come_in_real_time_with_rising_timestamps_across_loops() {
        let clip = Arc::new(DemoClip::parse(&tiny_clip()).unwrap());
        let t0 = Instant::now();
        let mut src = DemoSource::new(clip, t0, 0x0000_fffe_0000_1234);
        let mut got: Vec<Vec<u8>> = Vec::new();
        src.handle_timeout(t0, |m| got.push(m.data.to_vec()));
        // Frame 0: SPS, PPS, and the 3001-byte IDR in 3 FU-A fragments.
        assert_eq!(got.len(), 5);
        assert_eq!(got[2][12] & 0x1f, NAL_FU_A);
        let markers: Vec<bool> = got.iter().map(|p| p[1] & 0x80 != 0).collect();
        assert_eq!(markers, [false, false, false, false, true]);
        let seqs: Vec<u16> = got
            .iter()
            .map(|p| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        assert_eq!(seqs, [0xfffe, 0xffff, 0, 1, 2], "sequence wraps");
        assert_eq!(src.poll_timeout(), t0 + frame_offset(1));
        got.clear();
        // 100 ms later: frames 1, 2, 3 (the P slice, then the loop's IDR, then the P slice).
        src.handle_timeout(t0 + Duration::from_millis(100), |m| {
            got.push(m.data.to_vec())
        });
        let ts: Vec<u32> = got
            .iter()
            .map(|p| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
            .collect();
        assert_eq!(got.len(), 1 + 5 + 1);
        assert_eq!(ts[0], src.timestamp(1));
        assert_eq!(
            ts[6] - ts[0],
            2 * TICKS_PER_FRAME,
            "keeps rising across the loop"
        );
    }

    #[test]
    fn a_stalled_source_starts_again_from_now_without_a_burst() {
        let clip = Arc::new(DemoClip::parse(&tiny_clip()).unwrap());
        let t0 = Instant::now();
        let mut src = DemoSource::new(clip, t0, 1);
        let mut n = 0;
        src.handle_timeout(t0 + Duration::from_secs(60), |_| n += 1);
        assert_eq!(n, 5, "one frame, not 1800");
    }
}
