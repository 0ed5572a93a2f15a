//! RTP (single NAL / STAP-A / FU-A) → whole NAL units grouped into access units.
//!
//! Not on the relay path (the relay forwards payloads without reassembly): the tests and the
//! fuzz harness use it to check that what the relay sends decodes to whole NAL units. It
//! allocates freely.

use crate::rtp::{RtpPacket, SeqStep, SeqTracker};

use super::nal::{nal_type, split_annex_b, stap_a_units, NAL_FU_A, NAL_IDR, NAL_STAP_A};

/// Upper bound for one reassembled NAL unit; a stream of FU-A middles without an end must not grow
/// memory without limit.
pub const MAX_NAL_SIZE: usize = 4 << 20;

/// The NAL units of one picture (one RTP timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The RTP timestamp shared by the access unit's packets.
    pub rtp_time: u32,
    /// NAL units without start codes, in stream order.
    pub nals: Vec<Vec<u8>>,
    /// Something of this access unit was lost or unusable (sequence gap, broken FU-A, malformed
    /// packet); the units present are whole, but units may be missing.
    pub damaged: bool,
}

impl AccessUnit {
    /// Contains an IDR slice.
    pub fn is_keyframe(&self) -> bool {
        self.nals
            .iter()
            .any(|n| n.first().map(|&h| nal_type(h)) == Some(NAL_IDR))
    }
}

/// Reassembles NAL units and access units from RTP packets of one H.264 track.
#[derive(Debug, Default)]
pub struct Depacketizer {
    seq: SeqTracker,
    cur: Option<AccessUnit>,
    /// FU-A being reassembled (starts with the rebuilt NAL header).
    fu: Option<Vec<u8>>,
}

impl Depacketizer {
    /// A depacketizer waiting for its first packet.
    pub fn new() -> Depacketizer {
        Depacketizer::default()
    }

    /// Feeds one packet; returns the access units it completed (0, 1, or 2 when a timestamp
    /// change ends one and the marker bit of this packet ends the next). Access units without any
    /// NAL unit are not returned.
    pub fn push(&mut self, pkt: &RtpPacket<'_>) -> Vec<AccessUnit> {
        let mut done = Vec::new();
        let lost = match self.seq.step(pkt.sequence) {
            SeqStep::Late => return done,
            SeqStep::First | SeqStep::InOrder => false,
            SeqStep::Gap(_) | SeqStep::Reset => true,
        };
        if lost {
            // The lost packets belong to the current AU or the next one; mark both.
            self.damage();
        }
        if self
            .cur
            .as_ref()
            .is_some_and(|au| au.rtp_time != pkt.timestamp)
        {
            // Timestamp change without marker: the marker packet was lost or the camera omits it.
            self.finish(&mut done);
        }
        let au = self.cur.get_or_insert_with(|| AccessUnit {
            rtp_time: pkt.timestamp,
            nals: Vec::new(),
            damaged: false,
        });
        au.damaged |= lost;
        self.payload(pkt.payload);
        if pkt.marker {
            self.finish(&mut done);
        }
        done
    }

    /// Returns the access unit in progress, if any (end of stream).
    pub fn flush(&mut self) -> Option<AccessUnit> {
        let mut done = Vec::new();
        self.finish(&mut done);
        done.pop()
    }

    fn damage(&mut self) {
        // A partial NAL unit is useless: drop it rather than hand out a corrupt one.
        self.fu = None;
        if let Some(au) = &mut self.cur {
            au.damaged = true;
        }
    }

    fn finish(&mut self, done: &mut Vec<AccessUnit>) {
        if self.fu.is_some() {
            self.damage();
        }
        if let Some(au) = self.cur.take() {
            if !au.nals.is_empty() {
                done.push(au);
            }
        }
    }

    fn add_nal(&mut self, nal: &[u8]) {
        let Some(au) = &mut self.cur else { return };
        match nal.first().map(|&h| nal_type(h)) {
            // Type 0 is unspecified, 24.. are RTP packet types that cannot nest.
            Some(1..=23) => au.nals.push(nal.to_vec()),
            _ => au.damaged = true,
        }
    }

    fn payload(&mut self, p: &[u8]) {
        let Some(&h) = p.first() else {
            // Quirk: some cameras send empty payloads as keepalives; nothing to do.
            return;
        };
        let t = nal_type(h);
        if t != NAL_FU_A && self.fu.is_some() {
            // An FU-A was interrupted by another packet: it can never complete.
            self.damage();
        }
        match t {
            NAL_STAP_A => {
                let mut units = stap_a_units(p);
                for unit in units.by_ref() {
                    // Quirk: Annex-B start codes inside units.
                    for nal in split_annex_b(unit) {
                        self.add_nal(nal);
                    }
                }
                if units.malformed() {
                    self.damage();
                }
            }
            NAL_FU_A => self.fu_a(p),
            // Quirk: Annex-B start codes in single NAL unit packets (splitting a clean NAL is a
            // no-op).
            0..=23 => {
                for nal in split_annex_b(p) {
                    self.add_nal(nal);
                }
            }
            // STAP-B, MTAP, FU-B are not allowed in packetization-mode 1.
            _ => self.damage(),
        }
    }

    fn fu_a(&mut self, p: &[u8]) {
        let Some(&[indicator, fu_header]) = p.get(..2) else {
            self.damage();
            return;
        };
        let data = &p[2..];
        let start = fu_header & 0x80 != 0;
        let end = fu_header & 0x40 != 0;
        // The R bit is ignored; F and NRI come from the indicator.
        let header = (indicator & 0xE0) | nal_type(fu_header);
        if start {
            if self.fu.is_some() {
                // Previous FU-A never ended.
                self.damage();
            }
            let mut buf = Vec::with_capacity(1 + data.len());
            buf.push(header);
            buf.extend_from_slice(data);
            self.fu = Some(buf);
        } else if let Some(buf) = &mut self.fu {
            if buf.len() + data.len() > MAX_NAL_SIZE {
                self.damage();
                return;
            }
            buf.extend_from_slice(data);
        } else {
            // Continuation without its start (lost): the NAL unit is broken.
            self.damage();
            return;
        }
        // Quirk: FU-A with both S and E is a whole NAL unit in one fragment; handled here too.
        if end {
            if let Some(nal) = self.fu.take() {
                self.add_nal(&nal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket<'_> {
        RtpPacket {
            payload_type: 96,
            marker,
            sequence: seq,
            timestamp: ts,
            ssrc: 1,
            payload,
        }
    }

    #[test]
    fn fu_a_and_stap_a() {
        let mut d = Depacketizer::new();
        assert!(d
            .push(&pkt(1, 10, false, &[0x78, 0, 2, 0x67, 1, 0, 1, 0x68]))
            .is_empty());
        assert!(d.push(&pkt(2, 10, false, &[0x7C, 0x85, 1, 2])).is_empty());
        let aus = d.push(&pkt(3, 10, true, &[0x7C, 0x45, 3]));
        assert_eq!(aus.len(), 1);
        assert_eq!(
            aus[0].nals,
            vec![vec![0x67, 1], vec![0x68], vec![0x65, 1, 2, 3]]
        );
        assert!(aus[0].is_keyframe());
        assert!(!aus[0].damaged);
    }

    #[test]
    fn timestamp_change_and_marker_in_one_push() {
        let mut d = Depacketizer::new();
        assert!(d.push(&pkt(1, 10, false, &[0x41, 1])).is_empty());
        let aus = d.push(&pkt(2, 20, true, &[0x41, 2]));
        assert_eq!(aus.len(), 2);
        assert_eq!((aus[0].rtp_time, aus[1].rtp_time), (10, 20));
        assert!(d.flush().is_none());
    }

    #[test]
    fn loss_inside_fu_a_drops_the_nal() {
        let mut d = Depacketizer::new();
        d.push(&pkt(1, 10, false, &[0x41, 9]));
        d.push(&pkt(2, 10, false, &[0x5C, 0x81, 1]));
        // seq 3 lost
        let aus = d.push(&pkt(4, 10, true, &[0x5C, 0x41, 3]));
        assert_eq!(aus.len(), 1);
        assert_eq!(aus[0].nals, vec![vec![0x41, 9]]);
        assert!(aus[0].damaged);
        // Late duplicate ignored.
        assert!(d.push(&pkt(4, 10, true, &[0x41])).is_empty());
        assert!(d.flush().is_none());
    }

    #[test]
    fn quirks() {
        let mut d = Depacketizer::new();
        d.push(&pkt(1, 10, false, &[]));
        d.push(&pkt(2, 10, false, &[0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2]));
        d.push(&pkt(3, 10, false, &[0x7C, 0xC5, 7])); // S and E together
        let au = d.flush().unwrap();
        assert_eq!(au.nals, vec![vec![0x67, 1], vec![0x68, 2], vec![0x65, 7]]);
        assert!(!au.damaged);
    }
}
