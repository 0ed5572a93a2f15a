//! RTP header parsing (RFC 3550) and a minimal RTCP sender-report reader.
//!
//! Everything here borrows from the input buffer and never allocates: it runs once per media
//! packet on the relay path. Every index is checked, so arbitrary bytes give `Err`/`None`, never a
//! panic.

use std::fmt;

/// One RTP packet, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Which SDP format (track) the packet belongs to.
    pub payload_type: u8,
    /// Marker bit: for video, the last packet of a picture.
    pub marker: bool,
    /// Sequence number, +1 per packet sent: shows loss and reordering.
    pub sequence: u16,
    /// Media time in the track's clock rate.
    pub timestamp: u32,
    /// Synchronization source: ties the packet to the track's sender reports.
    pub ssrc: u32,
    /// Payload with CSRCs, header extension and padding removed.
    pub payload: &'a [u8],
}

/// Why a buffer is not a usable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    TooShort(usize),
    /// Version field other than 2 (e.g. RTCP or STUN mixed into the port, or garbage).
    BadVersion(u8),
    /// The CSRC list runs past the end of the buffer.
    TruncatedCsrc,
    /// The header extension runs past the end of the buffer.
    TruncatedExtension,
    /// The padding count is zero or larger than the payload.
    BadPadding(u8),
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtpError::TooShort(n) => write!(f, "RTP packet too short ({n} bytes)"),
            RtpError::BadVersion(v) => write!(f, "RTP version {v}, expected 2"),
            RtpError::TruncatedCsrc => f.write_str("RTP CSRC list truncated"),
            RtpError::TruncatedExtension => f.write_str("RTP header extension truncated"),
            RtpError::BadPadding(n) => write!(f, "RTP padding count {n} invalid"),
        }
    }
}

impl std::error::Error for RtpError {}

const FIXED_HEADER: usize = 12;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> RtpPacket<'a> {
    /// Parses an RTP packet; CSRCs and the header extension are skipped and padding removed.
    pub fn parse(buf: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if buf.len() < FIXED_HEADER {
            return Err(RtpError::TooShort(buf.len()));
        }
        let b0 = buf[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0F);
        let b1 = buf[1];

        let mut start = FIXED_HEADER + 4 * csrc_count;
        if start > buf.len() {
            return Err(RtpError::TruncatedCsrc);
        }
        if has_extension {
            // 16-bit profile id, 16-bit length in 32-bit words, then the words.
            let words = be16(buf, start + 2).ok_or(RtpError::TruncatedExtension)?;
            start += 4 + 4 * usize::from(words);
            if start > buf.len() {
                return Err(RtpError::TruncatedExtension);
            }
        }
        let mut end = buf.len();
        if has_padding {
            // The last byte counts the padding including itself, so 0 is invalid, and it may not
            // eat into the header.
            let n = buf[end - 1];
            if n == 0 || usize::from(n) > end - start {
                return Err(RtpError::BadPadding(n));
            }
            end -= usize::from(n);
        }
        Ok(RtpPacket {
            payload_type: b1 & 0x7F,
            marker: b1 & 0x80 != 0,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: &buf[start..end],
        })
    }

    /// Serializes a plain header (no CSRC, extension or padding) and the payload; used by tests and
    /// tools that need to build packets.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// How a packet's sequence number relates to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStep {
    /// First packet seen.
    First,
    /// Exactly the next number.
    InOrder,
    /// This many packets went missing just before this one.
    Gap(u16),
    /// Older than or equal to the last one (reordered or duplicate): drop it.
    Late,
    /// A jump too large to be loss, e.g. the camera restarted its sequence: start over.
    Reset,
}

/// Classifies sequence numbers like RFC 3550 A.1: small forward jumps are loss, small backward
/// jumps are late packets, anything else restarts the sequence.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqTracker {
    last: Option<u16>,
}

impl SeqTracker {
    /// Forward jumps up to this many numbers count as loss.
    pub const MAX_DROPOUT: u16 = 3000;
    /// Backward jumps up to this many numbers count as reordering.
    pub const MAX_MISORDER: u16 = 100;

    /// A tracker that has seen no packet yet.
    pub fn new() -> SeqTracker {
        SeqTracker::default()
    }

    /// Classifies the next sequence number received; late ones do not move the tracker.
    pub fn step(&mut self, seq: u16) -> SeqStep {
        let Some(last) = self.last else {
            self.last = Some(seq);
            return SeqStep::First;
        };
        let d = seq.wrapping_sub(last.wrapping_add(1));
        let step = match d {
            0 => SeqStep::InOrder,
            1..=Self::MAX_DROPOUT => SeqStep::Gap(d),
            // d == 0xFFFF is a duplicate of `last`.
            _ if d >= u16::MAX - Self::MAX_MISORDER => return SeqStep::Late,
            _ => SeqStep::Reset,
        };
        self.last = Some(seq);
        step
    }

    /// Forgets the last number: the next one counts as `First`.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// The clock pair of an RTCP sender report, enough for lip sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// The source (track) the report is about.
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high half, fraction in the low half).
    pub ntp_time: u64,
    /// The RTP timestamp corresponding to `ntp_time`.
    pub rtp_time: u32,
}

const RTCP_SR: u8 = 200;

/// Returns the first sender report in a (possibly compound) RTCP packet.
///
/// Walks the packets by their length fields and stops at the first malformed one; cameras often
/// put SR + SDES in one datagram, and some put RR first.
pub fn parse_sender_report(buf: &[u8]) -> Option<SenderReport> {
    let mut rest = buf;
    while rest.len() >= 4 {
        if rest[0] >> 6 != 2 {
            return None;
        }
        let len = (usize::from(be16(rest, 2)?) + 1) * 4;
        let pkt = rest.get(..len)?;
        // An SR is at least header + SSRC + NTP (8) + RTP time + two counters = 28 bytes.
        if pkt[1] == RTCP_SR && pkt.len() >= 28 {
            let ntp_hi = be32(pkt, 8)?;
            let ntp_lo = be32(pkt, 12)?;
            return Some(SenderReport {
                ssrc: be32(pkt, 4)?,
                ntp_time: (u64::from(ntp_hi) << 32) | u64::from(ntp_lo),
                rtp_time: be32(pkt, 16)?,
            });
        }
        rest = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(b0: u8, b1: u8) -> Vec<u8> {
        vec![b0, b1, 0x12, 0x34, 0, 0, 0x10, 0x00, 0xDE, 0xAD, 0xBE, 0xEF]
    }

    #[test]
    fn parses_plain_header() {
        let mut buf = header(0x80, 0x80 | 96);
        buf.extend_from_slice(&[0x65, 1, 2, 3]);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.payload_type, 96);
        assert!(p.marker);
        assert_eq!(p.sequence, 0x1234);
        assert_eq!(p.timestamp, 0x1000);
        assert_eq!(p.ssrc, 0xDEADBEEF);
        assert_eq!(p.payload, &[0x65, 1, 2, 3]);
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        // V=2, P=1, X=1, CC=2
        let mut buf = header(0x80 | 0x20 | 0x10 | 2, 96);
        buf.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // CSRCs
        buf.extend_from_slice(&[0xBE, 0xDE, 0, 2, 9, 9, 9, 9, 8, 8, 8, 8]); // extension, 2 words
        buf.extend_from_slice(&[0x41, 0xAA, 0xBB]); // payload
        buf.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(!p.marker);
        assert_eq!(p.payload, &[0x41, 0xAA, 0xBB]);

        // Padding that eats the whole payload is legal and leaves it empty.
        let mut buf = header(0xA0, 96);
        buf.extend_from_slice(&[0, 0, 3]);
        assert_eq!(RtpPacket::parse(&buf).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn write_parse_round_trip() {
        let p = RtpPacket {
            payload_type: 97,
            marker: true,
            sequence: 65535,
            timestamp: 0xFFFF_FFFF,
            ssrc: 7,
            payload: &[1, 2, 3],
        };
        let mut buf = Vec::new();
        p.write_to(&mut buf);
        assert_eq!(RtpPacket::parse(&buf).unwrap(), p);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::TooShort(0)));
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        assert_eq!(
            RtpPacket::parse(&header(0x40, 0)),
            Err(RtpError::BadVersion(1))
        );
        assert_eq!(
            RtpPacket::parse(&header(0x81, 0)),
            Err(RtpError::TruncatedCsrc)
        );
        assert_eq!(
            RtpPacket::parse(&header(0x90, 0)),
            Err(RtpError::TruncatedExtension)
        );
        let mut ext = header(0x90, 0);
        ext.extend_from_slice(&[0, 0, 0, 5, 1, 2, 3, 4]);
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::TruncatedExtension));
        let mut pad = header(0xA0, 0);
        pad.push(0);
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::BadPadding(0)));
        let mut pad = header(0xA0, 0);
        pad.extend_from_slice(&[1, 9]);
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::BadPadding(9)));
        assert!(!RtpError::TruncatedCsrc.to_string().is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = camgate_testkit::Rng::new(0x1234_5678);
        for len in 0..200usize {
            for _ in 0..50 {
                let buf = rng.bytes(len);
                let _ = RtpPacket::parse(&buf);
                let mut v2 = buf.clone();
                if let Some(b) = v2.first_mut() {
                    *b = (*b & 0x3F) | 0x80;
                }
                if let Ok(p) = RtpPacket::parse(&v2) {
                    assert!(p.payload.len() <= len.saturating_sub(12));
                }
                let _ = parse_sender_report(&buf);
                let _ = parse_sender_report(&v2);
            }
        }
    }

    #[test]
    fn sequence_steps() {
        let mut t = SeqTracker::new();
        assert_eq!(t.step(65534), SeqStep::First);
        assert_eq!(t.step(65535), SeqStep::InOrder);
        assert_eq!(t.step(0), SeqStep::InOrder);
        assert_eq!(t.step(3), SeqStep::Gap(2));
        assert_eq!(t.step(3), SeqStep::Late);
        assert_eq!(t.step(1), SeqStep::Late);
        assert_eq!(t.step(4), SeqStep::InOrder);
        assert_eq!(t.step(40_000), SeqStep::Reset);
        assert_eq!(t.step(40_001), SeqStep::InOrder);
    }

    #[test]
    fn sender_report_in_compound_packet() {
        // RR (empty, 1 word after header) first, then SR with no report blocks, then SDES.
        let mut buf = vec![0x80, 201, 0, 1, 0, 0, 0, 9];
        buf.extend_from_slice(&[0x80, 200, 0, 6]);
        buf.extend_from_slice(&0xCAFEu32.to_be_bytes());
        buf.extend_from_slice(&0x8000_0001u32.to_be_bytes());
        buf.extend_from_slice(&0x4000_0000u32.to_be_bytes());
        buf.extend_from_slice(&90_000u32.to_be_bytes());
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 1]);
        let sr = parse_sender_report(&buf).unwrap();
        assert_eq!(
            sr,
            SenderReport {
                ssrc: 0xCAFE,
                ntp_time: 0x8000_0001_4000_0000,
                rtp_time: 90_000
            }
        );
        // Truncated SR, or only RR: nothing.
        assert_eq!(parse_sender_report(&buf[..20]), None);
        assert_eq!(parse_sender_report(&buf[..8]), None);
    }
}
