//! NAL unit helpers shared by the depacketizer, packetizer and relay: type constants, Annex-B
//! splitting and STAP-A walking. All of them borrow and never allocate.

/// Non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// IDR coded slice: a decoder can start here (given SPS and PPS).
pub const NAL_IDR: u8 = 5;
/// Supplemental enhancement information: metadata a decoder may ignore.
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set: needed, with the PPS, before the first slice can be decoded.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter: marks the start of a picture, carries nothing to decode.
pub const NAL_AUD: u8 = 9;
/// Filler data: padding for constant bit rate, nothing to decode.
pub const NAL_FILLER: u8 = 12;
/// RTP aggregation packet (RFC 6184 5.7.1).
pub const NAL_STAP_A: u8 = 24;
/// RTP fragmentation unit (RFC 6184 5.8).
pub const NAL_FU_A: u8 = 28;

/// The 5-bit type of a NAL header byte. The F and NRI bits are deliberately ignored: some cameras
/// set F on perfectly good NAL units.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1F
}

/// Coded slice types (1..=5): the picture data itself, as opposed to parameter sets, SEI, AUD.
pub fn is_vcl(t: u8) -> bool {
    (1..=5).contains(&t)
}

/// Position of the first `00 00 01` at or after `from`.
fn find_start_code(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 2 < b.len() {
        // Fast skip: the third byte of a start code is 1, and a nonzero byte at i+2 that is not 1
        // means no start code can begin at i, i+1 or i+2.
        let c = b[i + 2];
        if c > 1 {
            i += 3;
        } else if c == 1 && b[i] == 0 && b[i + 1] == 0 {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// Whether an Annex-B start code appears in `b`. A well-formed NAL unit never contains
/// `00 00 01` (emulation prevention forbids it), so this is an exact test for the camera quirk of
/// byte-stream framing leaking into RTP payloads.
pub fn has_start_code(b: &[u8]) -> bool {
    find_start_code(b, 0).is_some()
}

/// Splits Annex-B data (`[00] 00 00 01 NAL ...`) into NAL units. Bytes before the first start
/// code count as a NAL unit too (cameras that put one NAL normally and glue more on with start
/// codes); trailing zero bytes (the leading zero of a 4-byte start code, `trailing_zero_8bits`) are
/// stripped, which is safe because a NAL unit never ends in 0x00. Empty pieces are skipped.
pub fn split_annex_b(b: &[u8]) -> AnnexBIter<'_> {
    AnnexBIter { rest: b }
}

/// Iterator of [`split_annex_b`].
#[derive(Debug, Clone)]
pub struct AnnexBIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AnnexBIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (piece, rest) = match find_start_code(self.rest, 0) {
                Some(i) => (&self.rest[..i], &self.rest[i + 3..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let end = piece.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1);
            if end > 0 {
                return Some(&piece[..end]);
            }
        }
    }
}

/// Walks the NAL units of a STAP-A payload (`payload[0]` is the STAP-A header). Zero-length
/// entries are skipped; a size running past the end stops the walk and sets
/// [`StapIter::malformed`].
pub fn stap_a_units(payload: &[u8]) -> StapIter<'_> {
    size_prefixed_units(payload.get(1..).unwrap_or(&[]))
}

/// Walks `[16-bit size][NAL unit]...` as aggregation packets carry them after their header
/// (H.264 STAP-A, H.265 AP without DONL), with the same rules as [`stap_a_units`].
pub fn size_prefixed_units(units: &[u8]) -> StapIter<'_> {
    StapIter {
        rest: units,
        malformed: false,
    }
}

/// Iterator of [`stap_a_units`].
#[derive(Debug, Clone)]
pub struct StapIter<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl StapIter<'_> {
    /// True once the walk hit a truncated entry (or trailing garbage shorter than a size field).
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for StapIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let Some(&[hi, lo]) = self.rest.get(..2) else {
                self.malformed = true;
                self.rest = &[];
                return None;
            };
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(unit) = self.rest.get(2..2 + len) else {
                self.malformed = true;
                self.rest = &[];
                return None;
            };
            self.rest = &self.rest[2 + len..];
            if !unit.is_empty() {
                return Some(unit);
            }
        }
    }
}

/// Whether a STAP-A payload is clean: well-formed, at least one unit, no Annex-B start codes
/// inside units. Clean STAP-As can be forwarded as they are.
pub fn stap_a_is_clean(payload: &[u8]) -> bool {
    units_are_clean(stap_a_units(payload))
}

/// Whether an aggregation walk yields at least one unit, none with a start code inside, and
/// ends cleanly.
pub fn units_are_clean(mut it: StapIter<'_>) -> bool {
    let mut any = false;
    for unit in it.by_ref() {
        if has_start_code(unit) {
            return false;
        }
        any = true;
    }
    any && !it.malformed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_split() {
        let b = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4,
        ];
        let v: Vec<&[u8]> = split_annex_b(&b).collect();
        assert_eq!(v, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        // A NAL without start code in front, followed by a start code.
        let b = [0x41, 9, 0, 0, 1, 0x41, 8];
        let v: Vec<&[u8]> = split_annex_b(&b).collect();
        assert_eq!(v, vec![&[0x41, 9][..], &[0x41, 8]]);
        assert!(has_start_code(&b));
        assert!(!has_start_code(&[0x41, 0, 0, 3, 1, 0, 0]));
        assert_eq!(split_annex_b(&[0, 0, 1, 0, 0, 1]).count(), 0);
        assert_eq!(split_annex_b(&[0x41, 0, 0, 3, 1]).count(), 1);
    }

    #[test]
    fn stap_walk() {
        let p = [24, 0, 2, 0x67, 1, 0, 0, 0, 1, 0x68];
        let mut it = stap_a_units(&p);
        assert_eq!(it.next(), Some(&[0x67, 1][..]));
        assert_eq!(it.next(), Some(&[0x68][..]));
        assert_eq!(it.next(), None);
        assert!(!it.malformed());
        assert!(stap_a_is_clean(&p));
        let bad = [24, 0, 5, 0x67];
        assert!(!stap_a_is_clean(&bad));
        assert!(!stap_a_is_clean(&[24]));
        assert!(!stap_a_is_clean(&[24, 0, 1, 0x67, 0]));
    }
}
