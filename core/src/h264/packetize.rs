//! NAL units → RTP payloads (RFC 6184 packetization-mode 1): single NAL unit packets when they
//! fit, FU-A fragments when they don't, and optional STAP-A aggregation of small units.
//!
//! The core is [`Piece`]: a payload described as a ≤2-byte prefix plus a borrowed body, so the
//! relay can turn each piece into exactly one `Arc<[u8]>` without an intermediate buffer.

use std::sync::Arc;

use super::nal::{nal_type, NAL_FU_A, NAL_STAP_A};

/// Smallest usable payload size: FU indicator + FU header + one byte of data.
pub const MIN_PAYLOAD: usize = 3;

/// One RTP payload: `prefix` (nothing, a NAL header, or FU indicator + FU header; H.265's are a
/// byte longer) then `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    prefix: [u8; 3],
    prefix_len: u8,
    /// The borrowed part that follows the prefix.
    pub body: &'a [u8],
}

impl<'a> Piece<'a> {
    /// A piece that is `body` unchanged (forwarding).
    pub fn whole(body: &'a [u8]) -> Piece<'a> {
        Piece {
            prefix: [0; 3],
            prefix_len: 0,
            body,
        }
    }

    /// `prefix` (at most 3 bytes: a NAL or payload header; more are cut) then `body`.
    pub fn with_prefix(prefix: &[u8], body: &'a [u8]) -> Piece<'a> {
        let mut p = [0; 3];
        let n = prefix.len().min(3);
        p[..n].copy_from_slice(&prefix[..n]);
        Piece {
            prefix: p,
            prefix_len: n as u8,
            body,
        }
    }

    /// The bytes written before `body`: 0 to 3 of them.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len).min(3)]
    }

    /// Payload size in bytes, prefix included.
    pub fn len(&self) -> usize {
        self.prefix().len() + self.body.len()
    }

    /// Whether the payload has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload copied into a new `Vec`, as [`Packetizer`] hands them out (the relay uses
    /// `to_arc`).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(self.prefix());
        v.extend_from_slice(self.body);
        v
    }

    /// The payload as a shared buffer, in a single allocation (the chained slice iterators are
    /// exact-size, so `Arc`'s `FromIterator` allocates once; checked by the allocation test).
    pub fn to_arc(&self) -> Arc<[u8]> {
        self.prefix().iter().chain(self.body).copied().collect()
    }
}

/// FU-A fragments of one NAL unit (or of one incoming fragment being re-fragmented).
///
/// `nal_header` supplies F/NRI/type, `data` is the NAL payload after its header byte (or the
/// incoming fragment's data). `start`/`end` say whether `data` begins/ends the NAL unit: only then
/// do the first/last fragments carry S/E, so a piece of a fragment never claims a start or end it
/// does not have.
pub fn fu_a_fragments(
    nal_header: u8,
    data: &[u8],
    start: bool,
    end: bool,
    max_payload: usize,
) -> FuFragments<'_> {
    let prefix = [(nal_header & 0xE0) | NAL_FU_A, nal_type(nal_header), 0];
    fu_fragments(prefix, 2, data, start, end, max_payload)
}

/// Fragments of `data` behind a `prefix_len`-byte FU prefix (H.264: indicator + FU header,
/// H.265: payload header + FU header) whose last byte is the FU header without S and E.
pub fn fu_fragments(
    prefix: [u8; 3],
    prefix_len: u8,
    data: &[u8],
    start: bool,
    end: bool,
    max_payload: usize,
) -> FuFragments<'_> {
    let prefix_len = prefix_len.clamp(2, 3);
    FuFragments {
        prefix,
        prefix_len,
        rest: data,
        chunk: max_payload.max(usize::from(prefix_len) + 1) - usize::from(prefix_len),
        first: true,
        start,
        end,
        done: false,
    }
}

/// Iterator of [`fu_a_fragments`] and [`fu_fragments`]. Yields at least one fragment, even for
/// empty `data`.
#[derive(Debug, Clone)]
pub struct FuFragments<'a> {
    prefix: [u8; 3],
    prefix_len: u8,
    rest: &'a [u8],
    chunk: usize,
    first: bool,
    start: bool,
    end: bool,
    done: bool,
}

impl<'a> Iterator for FuFragments<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if self.done {
            return None;
        }
        let n = self.chunk.min(self.rest.len());
        let (body, rest) = self.rest.split_at(n);
        self.rest = rest;
        self.done = rest.is_empty();
        let s = self.first && self.start;
        let e = self.done && self.end;
        self.first = false;
        let mut prefix = self.prefix;
        prefix[usize::from(self.prefix_len) - 1] |= (u8::from(s) << 7) | (u8::from(e) << 6);
        Some(Piece {
            prefix,
            prefix_len: self.prefix_len,
            body,
        })
    }
}

/// The tail of an FU-fragmented NAL unit not written yet. Cameras send fragments bigger than the
/// WebRTC payload (1,388 bytes against 1,198); splitting each on its own gives a full packet and
/// a small one per fragment (+51 % packets). Carrying the tail into the next output packet keeps
/// packets full: about ceil(NAL size / payload) packets per NAL unit. Less than one payload of
/// data is carried, and never past the unit's end fragment or the access unit's end.
#[derive(Debug)]
pub struct FuCarry {
    buf: Vec<u8>,
    /// FU prefix of the carried bytes (S and E clear) and its length.
    prefix: [u8; 3],
    prefix_len: u8,
    rtp_time: u32,
}

impl FuCarry {
    /// An empty carry; its buffer is allocated here, once (a relay pushes without allocating).
    pub fn new(max_payload: usize) -> FuCarry {
        FuCarry {
            buf: Vec::with_capacity(max_payload),
            prefix: [0; 3],
            prefix_len: 2,
            rtp_time: 0,
        }
    }

    /// Whether nothing is carried.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether a fragment with this FU `prefix` (S and E clear; the fragment itself without S)
    /// and RTP time continues the carried NAL unit.
    pub fn continues(&self, prefix: &[u8], rtp_time: u32) -> bool {
        !self.buf.is_empty()
            && prefix == &self.prefix[..usize::from(self.prefix_len)]
            && rtp_time == self.rtp_time
    }

    /// The carried bytes as one fragment with neither S nor E (the unit was interrupted without
    /// a loss: a receiver gets the bytes the camera sent), and their RTP time; emptied.
    pub fn take(&mut self) -> Option<(Arc<[u8]>, u32)> {
        if self.buf.is_empty() {
            return None;
        }
        let prefix = &self.prefix[..usize::from(self.prefix_len)];
        let arc = prefix.iter().chain(&self.buf).copied().collect();
        self.buf.clear();
        Some((arc, self.rtp_time))
    }

    /// Drops the carried bytes (after a loss: gluing them to what follows would make a corrupt
    /// NAL unit a receiver cannot detect).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Writes the fragment `data` of a NAL unit behind `prefix` (`prefix_len` bytes, the last
    /// the FU header with S and E clear) as full payloads, the carried bytes first; less than a
    /// payload's worth is kept for the next fragment unless `flush` (E, or the access unit's
    /// marker). `start`/`end`: the fragment's S/E, put on the first/last payload written. The
    /// caller ends a carry that [`FuCarry::continues`] denies before calling this.
    #[allow(clippy::too_many_arguments)]
    pub fn fragment(
        &mut self,
        prefix: [u8; 3],
        prefix_len: u8,
        mut data: &[u8],
        (start, end, flush): (bool, bool, bool),
        max_payload: usize,
        rtp_time: u32,
        mut push: impl FnMut(Arc<[u8]>),
    ) {
        let plen = usize::from(prefix_len.clamp(2, 3));
        let chunk = max_payload.max(plen + 1) - plen;
        let write = |push: &mut dyn FnMut(Arc<[u8]>), head: &[u8], body: &[u8], s, e| {
            let mut p = prefix;
            p[plen - 1] |= (u8::from(s) << 7) | (u8::from(e) << 6);
            // Exact-size chain: one allocation, straight into the Arc.
            push(p[..plen].iter().chain(head).chain(body).copied().collect());
        };
        let mut s = start;
        if !self.buf.is_empty() {
            let need = chunk.saturating_sub(self.buf.len()).max(1);
            if data.len() < need && !flush {
                self.buf.extend_from_slice(data);
                return;
            }
            let n = need.min(data.len());
            write(
                &mut push,
                &self.buf,
                &data[..n],
                false,
                end && n == data.len(),
            );
            self.buf.clear();
            if n == data.len() {
                return;
            }
            data = &data[n..];
            s = false;
        }
        loop {
            if data.len() < chunk && !flush {
                self.buf.extend_from_slice(data);
                self.prefix = prefix;
                self.prefix_len = plen as u8;
                self.rtp_time = rtp_time;
                return;
            }
            let n = chunk.min(data.len());
            let last = n == data.len();
            write(&mut push, &[], &data[..n], s, end && last);
            if last {
                return;
            }
            data = &data[n..];
            s = false;
        }
    }
}

/// Payloads for one NAL unit given as header byte + rest: a single NAL unit packet if it fits,
/// FU-A fragments otherwise.
pub fn nal_pieces(header: u8, rest: &[u8], max_payload: usize) -> NalPieces<'_> {
    // Header byte + rest must fit.
    if rest.len() < max_payload.max(MIN_PAYLOAD) {
        NalPieces::Single(Some(Piece::with_prefix(&[header], rest)))
    } else {
        NalPieces::Fu(fu_a_fragments(header, rest, true, true, max_payload))
    }
}

/// Payloads for one whole NAL unit; nothing for an empty slice.
pub fn packetize_nal(nal: &[u8], max_payload: usize) -> NalPieces<'_> {
    match nal.split_first() {
        Some((&h, rest)) => nal_pieces(h, rest, max_payload),
        None => NalPieces::Single(None),
    }
}

/// Iterator of [`nal_pieces`].
#[derive(Debug, Clone)]
pub enum NalPieces<'a> {
    /// The unit fits one payload: yields it once (or nothing for an empty unit).
    Single(Option<Piece<'a>>),
    /// The unit is too big: yields its FU-A fragments.
    Fu(FuFragments<'a>),
}

impl<'a> Iterator for NalPieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        match self {
            NalPieces::Single(p) => p.take(),
            NalPieces::Fu(f) => f.next(),
        }
    }
}

/// Builds a STAP-A payload from NAL units (each at most 65535 bytes; longer ones are skipped as
/// they cannot be aggregated). F is the OR, NRI the maximum of the units' (RFC 6184 5.7.1).
pub fn stap_a<N: AsRef<[u8]>>(nals: &[N]) -> Vec<u8> {
    let units = || {
        nals.iter()
            .map(AsRef::as_ref)
            .filter(|n| !n.is_empty() && n.len() <= usize::from(u16::MAX))
    };
    let f = units().fold(0, |acc, n| acc | (n[0] & 0x80));
    let nri = units().map(|n| n[0] & 0x60).max().unwrap_or(0);
    let mut p = Vec::with_capacity(1 + units().map(|n| n.len() + 2).sum::<usize>());
    p.push(f | nri | NAL_STAP_A);
    for n in units() {
        p.extend_from_slice(&(n.len() as u16).to_be_bytes());
        p.extend_from_slice(n);
    }
    p
}

/// Turns access units (lists of NAL units) into RTP payloads for a given maximum payload size.
#[derive(Debug, Clone, Copy)]
pub struct Packetizer {
    max_payload: usize,
    aggregate: bool,
}

impl Packetizer {
    /// Packetizer with STAP-A aggregation of consecutive small units.
    pub fn new(max_payload: usize) -> Packetizer {
        Packetizer {
            max_payload: max_payload.max(MIN_PAYLOAD),
            aggregate: true,
        }
    }

    /// Packetizer that only emits single NAL unit packets and FU-A.
    pub fn without_aggregation(max_payload: usize) -> Packetizer {
        Packetizer {
            aggregate: false,
            ..Packetizer::new(max_payload)
        }
    }

    /// The largest payload it emits (never below [`MIN_PAYLOAD`]).
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends the payloads of one access unit to `out`. The last one appended is the one that
    /// gets the RTP marker bit. Empty NAL units are skipped.
    pub fn packetize_au<N: AsRef<[u8]>>(&self, nals: &[N], out: &mut Vec<Vec<u8>>) {
        let nals: Vec<&[u8]> = nals
            .iter()
            .map(AsRef::as_ref)
            .filter(|n| !n.is_empty())
            .collect();
        let mut i = 0;
        while i < nals.len() {
            let mut j = i;
            if self.aggregate {
                let mut size = 1;
                while let Some(n) = nals.get(j) {
                    if n.len() > usize::from(u16::MAX) || size + 2 + n.len() > self.max_payload {
                        break;
                    }
                    size += 2 + n.len();
                    j += 1;
                }
            }
            // Aggregating a single unit would only add overhead.
            if j - i >= 2 {
                out.push(stap_a(&nals[i..j]));
                i = j;
            } else {
                out.extend(packetize_nal(nals[i], self.max_payload).map(|p| p.to_vec()));
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_nal_is_single() {
        let nal = [0x65, 1, 2, 3];
        let v: Vec<Vec<u8>> = packetize_nal(&nal, 4).map(|p| p.to_vec()).collect();
        assert_eq!(v, vec![nal.to_vec()]);
    }

    #[test]
    fn large_nal_is_fu_a() {
        let nal = [0x65, 1, 2, 3, 4, 5];
        let v: Vec<Vec<u8>> = packetize_nal(&nal, 4).map(|p| p.to_vec()).collect();
        assert_eq!(
            v,
            vec![
                vec![0x7C, 0x85, 1, 2],
                vec![0x7C, 0x05, 3, 4],
                vec![0x7C, 0x45, 5]
            ]
        );
        for p in packetize_nal(&nal, 4) {
            assert_eq!(&*p.to_arc(), &p.to_vec()[..]);
        }
    }

    #[test]
    fn fragment_of_fragment_keeps_flags_honest() {
        // A middle fragment re-fragmented: neither S nor E anywhere.
        let v: Vec<Piece> = fu_a_fragments(0x41, &[1, 2, 3, 4, 5], false, false, 4).collect();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|p| p.prefix()[1] & 0xC0 == 0));
        // Empty data still gives one fragment.
        assert_eq!(fu_a_fragments(0x41, &[], true, true, 1200).count(), 1);
        // Silly max sizes are clamped to something that makes progress.
        assert_eq!(fu_a_fragments(0x41, &[1, 2, 3], true, true, 0).count(), 3);
    }

    #[test]
    fn carry_fills_packets_and_keeps_flags_honest() {
        let data: Vec<u8> = (0..=255u8).cycle().take(30).collect();
        let mut c = FuCarry::new(8);
        let mut out: Vec<Arc<[u8]>> = Vec::new();
        let prefix = [0x7C, 0x05, 0];
        // Fragments of 7, 7, 7 (no E), 9 (E) bytes at 6 data bytes a packet: 30 bytes → 5.
        let mut at = 0;
        for (n, s, e) in [
            (7, true, false),
            (7, false, false),
            (7, false, false),
            (9, false, true),
        ] {
            assert!(at == 0 || c.continues(&prefix[..2], 5));
            let flags = (s, e, e);
            c.fragment(prefix, 2, &data[at..at + n], flags, 8, 5, |a| out.push(a));
            at += n;
        }
        assert!(c.is_empty());
        let heads: Vec<u8> = out.iter().map(|p| p[1]).collect();
        assert_eq!(heads, [0x85, 0x05, 0x05, 0x05, 0x45]);
        assert!(out[..4].iter().all(|p| p.len() == 8));
        let got: Vec<u8> = out.iter().flat_map(|p| p[2..].to_vec()).collect();
        assert_eq!(got, data);
        // A small fragment only adds to the carry; an empty E fragment writes it out.
        out.clear();
        c.fragment(prefix, 2, &data[..7], (true, false, false), 8, 9, |a| {
            out.push(a)
        });
        c.fragment(prefix, 2, &data[7..8], (false, false, false), 8, 9, |a| {
            out.push(a)
        });
        assert_eq!(out.len(), 1);
        assert!(!c.continues(&prefix[..2], 10), "another access unit");
        c.fragment(prefix, 2, &[], (false, true, true), 8, 9, |a| out.push(a));
        assert_eq!(&out[1][..], &[0x7C, 0x45, 6, 7]);
        // Interrupted: the tail as a fragment without S or E.
        c.fragment(prefix, 2, &data[..9], (true, false, false), 8, 9, |a| {
            out.push(a)
        });
        assert_eq!(
            c.take().map(|(a, t)| (a.to_vec(), t)),
            Some((vec![0x7C, 0x05, 6, 7, 8], 9))
        );
        assert!(c.is_empty() && c.take().is_none());
    }

    #[test]
    fn aggregation() {
        let p = Packetizer::new(20);
        let mut out = Vec::new();
        let nals: [&[u8]; 4] = [
            &[0x67, 1, 2],
            &[0x68, 3],
            &[],
            &[0x25, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        ];
        p.packetize_au(&nals, &mut out);
        // 1 + (2+3) + (2+2) = 10; adding 2+11 would make 23 > 20.
        assert_eq!(out[0], vec![0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3]);
        assert_eq!(out[1], nals[3]);
        assert_eq!(out.len(), 2);
    }
}
