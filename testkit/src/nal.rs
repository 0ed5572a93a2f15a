//! H.264 NAL units for tests.

use crate::Rng;

/// A NAL unit of type `kind` (NRI 3) and `len` bytes (at least 1): a counting pattern that
/// never contains `00`, so no start code or emulation prevention byte appears in it.
pub fn filler(kind: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0x60 | kind];
    v.extend((0..len.saturating_sub(1)).map(|i| (i % 251) as u8 + 1));
    v
}

/// A NAL unit of type `kind` (NRI 3) and `len` bytes (at least 1) that looks like real data:
/// random bytes with no `00 00` run (as emulation prevention guarantees, so no false start
/// codes) and no trailing zero.
pub fn random(rng: &mut Rng, kind: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0x60 | kind];
    let mut prev = 0xFF;
    while v.len() < len {
        let mut b = rng.next_u64() as u8;
        if b == 0 && (prev == 0 || v.len() + 1 == len) {
            b = 0x5A;
        }
        v.push(b);
        prev = b;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use camgate_core::h264::nal::{has_start_code, nal_type};

    #[test]
    fn shapes() {
        let f = filler(5, 4000);
        assert_eq!((f.len(), nal_type(f[0])), (4000, 5));
        assert!(!f.contains(&0));
        let mut rng = Rng::new(3);
        for len in 1..300 {
            let r = random(&mut rng, 1, len);
            assert_eq!(r.len(), len);
            assert!(!has_start_code(&r) && r.last() != Some(&0));
        }
    }
}
