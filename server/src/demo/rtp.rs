//! RTP packets of the demo clip (H.264, RFC 6184 packetization-mode=1, with core's
//! packetizer) and RTCP sender reports.
//!
//! Pure functions of the frame index, so looping and wrap-around are testable without clocks.

use std::time::{SystemTime, UNIX_EPOCH};

use camgate_core::h264::packetize::packetize_nal;
use camgate_core::rtp::RtpPacket;

use super::clip::AccessUnit;

pub const PAYLOAD_TYPE: u8 = 96;
pub const CLOCK_RATE: u32 = 90_000;
/// 90 kHz / 30 fps.
pub const TICKS_PER_FRAME: u32 = CLOCK_RATE / super::clip::FRAME_RATE;
/// Max RTP payload: keeps packets well under a 1500-byte MTU even through tunnels.
pub const MAX_PAYLOAD: usize = 1200;
const CNAME: &[u8] = b"camgate-demo";

/// Per-stream RTP state: sequence numbers run on across loops of the clip.
#[derive(Debug, Clone)]
pub struct Packetizer {
    pub ssrc: u32,
    pub next_seq: u16,
    pub ts_base: u32,
    /// Sender statistics for RTCP SR (payload octets, RFC 3550 §6.4.1).
    pub packet_count: u32,
    pub octet_count: u32,
}

impl Packetizer {
    pub fn new(ssrc: u32, first_seq: u16, ts_base: u32) -> Self {
        Packetizer {
            ssrc,
            next_seq: first_seq,
            ts_base,
            packet_count: 0,
            octet_count: 0,
        }
    }

    /// RTP timestamp of the `frame`-th frame since PLAY: rises by 3000 per frame forever
    /// (mod 2^32), whichever loop of the clip the frame comes from.
    pub fn timestamp(&self, frame: u64) -> u32 {
        self.ts_base
            .wrapping_add(frame.wrapping_mul(u64::from(TICKS_PER_FRAME)) as u32)
    }

    /// Emits the RTP packets of one access unit (a single NAL unit packet per NAL unit that
    /// fits, FU-A fragments otherwise); the marker bit is set on the last one.
    pub fn packetize(&mut self, frame: u64, au: &AccessUnit<'_>, mut emit: impl FnMut(&[u8])) {
        let ts = self.timestamp(frame);
        let mut pkt = Vec::with_capacity(12 + MAX_PAYLOAD);
        let count = au.nals.len();
        for (i, nal) in au.nals.iter().enumerate() {
            let last_nal = i + 1 == count;
            let mut pieces = packetize_nal(nal, MAX_PAYLOAD).peekable();
            while let Some(piece) = pieces.next() {
                let marker = last_nal && pieces.peek().is_none();
                self.header(&mut pkt, ts, marker);
                pkt.extend_from_slice(piece.prefix());
                pkt.extend_from_slice(piece.body);
                self.finish(&pkt, &mut emit);
            }
        }
    }

    fn header(&mut self, pkt: &mut Vec<u8>, timestamp: u32, marker: bool) {
        pkt.clear();
        RtpPacket {
            payload_type: PAYLOAD_TYPE,
            marker,
            sequence: self.next_seq,
            timestamp,
            ssrc: self.ssrc,
            payload: &[],
        }
        .write_to(pkt);
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    fn finish(&mut self, pkt: &[u8], emit: &mut impl FnMut(&[u8])) {
        self.packet_count = self.packet_count.wrapping_add(1);
        self.octet_count = self.octet_count.wrapping_add((pkt.len() - 12) as u32);
        emit(pkt);
    }

    /// Compound RTCP packet: SR + SDES(CNAME), as RFC 3550 §6.1 requires.
    /// `wallclock` and `rtp_ts` must denote the same instant: receivers use the pair
    /// to map RTP time to real time (lip sync, latency measurement).
    pub fn sender_report(&self, wallclock: SystemTime, rtp_ts: u32) -> Vec<u8> {
        let since_unix = wallclock.duration_since(UNIX_EPOCH).unwrap_or_default();
        // NTP epoch is 1900-01-01, 70 years (17 leap days) before the Unix epoch.
        let ntp_secs = since_unix.as_secs().wrapping_add(2_208_988_800) as u32;
        let ntp_frac = ((u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000) as u32;
        let mut p = Vec::with_capacity(28 + 24);
        p.extend_from_slice(&[0x80, 200, 0, 6]); // SR, no report blocks, 7 words
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(&ntp_secs.to_be_bytes());
        p.extend_from_slice(&ntp_frac.to_be_bytes());
        p.extend_from_slice(&rtp_ts.to_be_bytes());
        p.extend_from_slice(&self.packet_count.to_be_bytes());
        p.extend_from_slice(&self.octet_count.to_be_bytes());
        // SDES chunk: SSRC, CNAME item, then a zero "end" byte padded to a 32-bit boundary.
        let chunk_len = (4 + 2 + CNAME.len() + 1).div_ceil(4) * 4;
        let words = (4 + chunk_len) / 4 - 1;
        p.extend_from_slice(&[0x81, 202, 0, words as u8]);
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(&[1, CNAME.len() as u8]);
        p.extend_from_slice(CNAME);
        p.resize(28 + 4 + chunk_len, 0);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camgate_core::h264::nal::NAL_FU_A;

    fn au<'a>(nals: &[&'a [u8]]) -> AccessUnit<'a> {
        AccessUnit {
            nals: nals.to_vec(),
            idr: false,
        }
    }

    fn collect(p: &mut Packetizer, frame: u64, au: &AccessUnit<'_>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        p.packetize(frame, au, |pkt| out.push(pkt.to_vec()));
        out
    }

    #[test]
    fn small_nals_go_single_with_marker_on_last() {
        let mut p = Packetizer::new(0x1234_5678, 65534, 10);
        let pkts = collect(&mut p, 0, &au(&[&[0x67, 1, 2], &[0x68, 3], &[0x65, 9, 9]]));
        assert_eq!(pkts.len(), 3);
        let seqs: Vec<u16> = pkts
            .iter()
            .map(|p| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        assert_eq!(seqs, vec![65534, 65535, 0], "sequence wraps");
        assert_eq!(pkts[0][0], 0x80);
        assert_eq!(
            pkts.iter().map(|p| p[1]).collect::<Vec<_>>(),
            vec![96, 96, 0x80 | 96]
        );
        assert_eq!(&pkts[1][12..], &[0x68, 3]);
        assert_eq!(&pkts[2][8..12], &0x1234_5678u32.to_be_bytes());
        assert_eq!(p.packet_count, 3);
        assert_eq!(p.octet_count, 8);
    }

    #[test]
    fn large_nal_is_fragmented_fu_a_and_reassembles() {
        let mut nal = vec![0x65u8];
        nal.extend((0..3000u32).map(|i| (i % 251) as u8 + 1));
        let mut p = Packetizer::new(1, 0, 0);
        let pkts = collect(&mut p, 0, &au(&[&nal]));
        assert_eq!(pkts.len(), 3);
        let mut rebuilt = vec![(pkts[0][12] & 0xe0) | (pkts[0][13] & 0x1f)];
        for (i, pkt) in pkts.iter().enumerate() {
            assert!(pkt.len() - 12 <= MAX_PAYLOAD);
            assert_eq!(pkt[12] & 0x1f, NAL_FU_A);
            assert_eq!(pkt[13] & 0x80 != 0, i == 0, "S bit");
            assert_eq!(pkt[13] & 0x40 != 0, i == 2, "E bit");
            assert_eq!(
                pkt[1] & 0x80 != 0,
                i == 2,
                "marker only on the AU's last packet"
            );
            rebuilt.extend_from_slice(&pkt[14..]);
        }
        assert_eq!(rebuilt, nal);
    }

    #[test]
    fn timestamps_keep_rising_across_loops_and_wrap() {
        let p = Packetizer::new(1, 0, u32::MAX - 4000);
        assert_eq!(p.timestamp(0), u32::MAX - 4000);
        assert_eq!(p.timestamp(1), u32::MAX - 1000);
        assert_eq!(p.timestamp(2), 1999, "mod 2^32");
        // Frame 300 is the first frame of the second loop: it continues, not restarts.
        let q = Packetizer::new(1, 0, 1000);
        assert_eq!(q.timestamp(300), 1000 + 300 * 3000);
        assert_eq!(q.timestamp(301) - q.timestamp(300), TICKS_PER_FRAME);
    }

    #[test]
    fn sender_report_layout() {
        let mut p = Packetizer::new(0xdead_beef, 0, 0);
        p.packet_count = 7;
        p.octet_count = 700;
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        let sr = p.sender_report(t, 4242);
        assert_eq!(sr.len() % 4, 0);
        assert_eq!(&sr[..4], &[0x80, 200, 0, 6]);
        assert_eq!(
            u32::from_be_bytes(sr[8..12].try_into().unwrap()),
            2_208_988_801
        );
        assert_eq!(
            u32::from_be_bytes(sr[12..16].try_into().unwrap()),
            1 << 31,
            "0.5 s"
        );
        assert_eq!(u32::from_be_bytes(sr[16..20].try_into().unwrap()), 4242);
        assert_eq!(u32::from_be_bytes(sr[20..24].try_into().unwrap()), 7);
        assert_eq!(u32::from_be_bytes(sr[24..28].try_into().unwrap()), 700);
        // SDES length field matches the bytes present.
        assert_eq!(sr[29], 202);
        assert_eq!((usize::from(sr[31]) + 1) * 4, sr.len() - 28);
        assert_eq!(&sr[38..38 + CNAME.len()], CNAME);
    }
}
