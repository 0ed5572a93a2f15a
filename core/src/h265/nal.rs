//! H.265 NAL unit types and RTP payload structures (RFC 7798 4.4): the 2-byte NAL unit header,
//! aggregation packets (type 48) and fragmentation units (type 49). Nothing here allocates.

use crate::h264::nal::{size_prefixed_units, StapIter};
use crate::h264::packetize::{fu_fragments, FuFragments, NalPieces, Piece};

/// First IRAP type (BLA_W_LP); IRAP pictures are 16..=21 (BLA, IDR_W_RADL, IDR_N_LP, CRA), where
/// a decoder can start.
pub const NAL_BLA_W_LP: u8 = 16;
/// Last IRAP type in use (CRA_NUT: x265's open-GOP keyframes after the first).
pub const NAL_CRA: u8 = 21;
/// Video parameter set.
pub const NAL_VPS: u8 = 32;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// Picture parameter set.
pub const NAL_PPS: u8 = 34;
/// Aggregation packet.
pub const NAL_AP: u8 = 48;
/// Fragmentation unit.
pub const NAL_FU: u8 = 49;

/// Smallest usable payload: payload header, FU header and one byte of data.
pub const MIN_PAYLOAD: usize = 4;

/// The 6-bit type of a NAL unit (or payload) header's first byte.
pub fn nal_type(header0: u8) -> u8 {
    (header0 >> 1) & 0x3F
}

/// A picture a decoder can start at (given VPS, SPS and PPS).
pub fn is_irap(t: u8) -> bool {
    (NAL_BLA_W_LP..=NAL_CRA).contains(&t)
}

/// Coded slice segments (VCL NAL unit types 0..=31).
pub fn is_vcl(t: u8) -> bool {
    t < 32
}

/// The NAL units of an aggregation packet (payload header first). DONL fields are not expected:
/// a camera using them is refused when it is set up.
pub fn ap_units(payload: &[u8]) -> StapIter<'_> {
    size_prefixed_units(payload.get(2..).unwrap_or(&[]))
}

/// The payload header of a fragmentation unit of a NAL unit with header `h0 h1`: its F,
/// LayerId and TID, type 49.
pub fn fu_payload_header(h0: u8, h1: u8) -> [u8; 2] {
    [(h0 & 0x81) | (NAL_FU << 1), h1]
}

/// FU fragments of `data` (NAL unit payload after its 2-byte header, or an incoming fragment's
/// data), S and E only where `start` / `end` say `data` begins / ends the NAL unit.
pub fn fu_pieces(
    h0: u8,
    h1: u8,
    data: &[u8],
    start: bool,
    end: bool,
    max_payload: usize,
) -> FuFragments<'_> {
    let [p0, p1] = fu_payload_header(h0, h1);
    fu_fragments([p0, p1, nal_type(h0)], 3, data, start, end, max_payload)
}

/// Payloads for one whole NAL unit: itself if it fits, FU fragments otherwise; nothing for a
/// unit shorter than its header.
pub fn nal_pieces(nal: &[u8], max_payload: usize) -> NalPieces<'_> {
    match nal {
        [h0, h1, rest @ ..] if nal.len() > max_payload.max(MIN_PAYLOAD) => {
            NalPieces::Fu(fu_pieces(*h0, *h1, rest, true, true, max_payload))
        }
        [_, _, ..] => NalPieces::Single(Some(Piece::whole(nal))),
        _ => NalPieces::Single(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_nal_becomes_fus_with_honest_flags() {
        // IDR_W_RADL (19): header 26 01.
        let nal = [0x26, 0x01, 1, 2, 3, 4, 5];
        let v: Vec<Vec<u8>> = nal_pieces(&nal, 5).map(|p| p.to_vec()).collect();
        assert_eq!(
            v,
            vec![
                vec![0x62, 0x01, 0x80 | 19, 1, 2],
                vec![0x62, 0x01, 19, 3, 4],
                vec![0x62, 0x01, 0x40 | 19, 5],
            ]
        );
        let whole: Vec<Vec<u8>> = nal_pieces(&nal, 7).map(|p| p.to_vec()).collect();
        assert_eq!(whole, vec![nal.to_vec()]);
        assert_eq!(nal_pieces(&[0x26], 1200).count(), 0);
        // A middle fragment re-fragmented claims neither start nor end.
        assert!(fu_pieces(0x02, 0x01, &[1, 2, 3, 4], false, false, 5)
            .all(|p| p.prefix()[2] & 0xC0 == 0));
    }

    #[test]
    fn types() {
        assert_eq!(nal_type(0x40), NAL_VPS);
        assert_eq!(nal_type(0x42), NAL_SPS);
        assert_eq!(nal_type(0x44), NAL_PPS);
        assert_eq!(nal_type(0x2A), NAL_CRA);
        assert!(is_irap(19) && is_irap(21) && !is_irap(1) && !is_irap(22));
        let ap = [0x60, 0x01, 0, 2, 0x40, 0x01, 0, 3, 0x42, 0x01, 7];
        let units: Vec<&[u8]> = ap_units(&ap).collect();
        assert_eq!(units, vec![&[0x40, 1][..], &[0x42, 1, 7]]);
    }
}
