//! AAC's two RTP payload formats: RFC 3640 (mpeg4-generic, AU headers) and RFC 6416 (MP4A-LATM with
//! `cpresent=0`).

use super::super::bits::BitReader;
/// More AU headers than this in one packet is garbage (a 1500-byte packet holds a few dozen real AUs at most).
const MAX_AUS_PER_PACKET: usize = 64;

/// RFC 3640 (mpeg4-generic) depacketizer: AU headers, several AUs per packet, one AU fragmented over several
/// packets (reassembled by AU-size and timestamp, so it needs no marker bit; a lost fragment drops the AU).
pub(crate) struct Rfc3640 {
    size_length: u32,
    index_length: u32,
    index_delta_length: u32,
    /// Timestamp increment between AUs of one packet, in RTP clock units.
    au_duration: u32,
    frag: Vec<u8>,
    frag_size: usize,
    frag_ts: u32,
    sizes: Vec<usize>,
}

/// What a depacketizer did with one packet beyond the AUs it handed out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DepacketizeResult {
    pub malformed: bool,
    pub lost_fragments: bool,
}

impl Rfc3640 {
    pub(crate) fn new(
        size_length: u32,
        index_length: u32,
        index_delta_length: u32,
        au_duration: u32,
    ) -> Rfc3640 {
        Rfc3640 {
            size_length,
            index_length,
            index_delta_length,
            au_duration,
            frag: Vec::new(),
            frag_size: 0,
            frag_ts: 0,
            sizes: Vec::new(),
        }
    }

    pub(crate) fn push(
        &mut self,
        ts: u32,
        payload: &[u8],
        emit: &mut dyn FnMut(u32, &[u8]),
    ) -> DepacketizeResult {
        let mut res = DepacketizeResult::default();
        let bad = DepacketizeResult {
            malformed: true,
            ..res
        };
        if payload.len() < 2 {
            return bad;
        }
        let header_bits = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
        let header_bytes = header_bits.div_ceil(8);
        let Some(headers) = payload.get(2..2 + header_bytes) else {
            return bad;
        };
        let data = &payload[2 + header_bytes..];
        let per_au = (self.size_length + self.index_length) as usize;
        let r = &mut BitReader::new(headers);
        self.sizes.clear();
        while r.position() < header_bits && per_au > 0 {
            let index_bits = if self.sizes.is_empty() {
                self.index_length
            } else {
                self.index_delta_length
            };
            let (Some(size), Some(_index)) = (r.read(self.size_length), r.read(index_bits)) else {
                return bad;
            };
            self.sizes.push(size as usize);
            if self.sizes.len() > MAX_AUS_PER_PACKET {
                return bad;
            }
        }
        if self.sizes.is_empty() {
            return bad;
        }
        if self.sizes.len() == 1 && self.sizes[0] > data.len() {
            // A fragment of one AU. Continuations repeat the whole AU's size and timestamp.
            let size = self.sizes[0];
            if self.frag.is_empty() || self.frag_ts != ts || self.frag_size != size {
                res.lost_fragments = !self.frag.is_empty();
                self.frag.clear();
                self.frag_ts = ts;
                self.frag_size = size;
            }
            self.frag.extend_from_slice(data);
            if self.frag.len() == size {
                emit(ts, &self.frag);
                self.frag.clear();
            } else if self.frag.len() > size {
                self.frag.clear();
                res.lost_fragments = true;
            }
            return res;
        }
        if !self.frag.is_empty() {
            // The AU whose start we held never finished.
            self.frag.clear();
            res.lost_fragments = true;
        }
        let mut offset = 0usize;
        for (i, &size) in self.sizes.iter().enumerate() {
            let Some(au) = data.get(offset..offset + size) else {
                res.malformed = true;
                break;
            };
            emit(ts.wrapping_add(self.au_duration.wrapping_mul(i as u32)), au);
            offset += size;
        }
        res
    }
}

/// RFC 6416 MP4A-LATM depacketizer for `cpresent=0` (config out of band): each AudioMuxElement is
/// `numSubFrames + 1` times PayloadLengthInfo (runs of 0xFF) + PayloadMux. Several elements may share a packet;
/// one element may span packets of one timestamp (reassembled; dropped if the timestamp changes first).
pub(crate) struct Latm {
    num_sub_frames: u32,
    au_duration: u32,
    pending: Vec<u8>,
    pending_ts: u32,
}

const MAX_PENDING: usize = 1 << 16;

impl Latm {
    pub(crate) fn new(num_sub_frames: u32, au_duration: u32) -> Latm {
        Latm {
            num_sub_frames,
            au_duration,
            pending: Vec::new(),
            pending_ts: 0,
        }
    }

    /// Parses one AudioMuxElement at the start of `data`: `Some(consumed)` after emitting its AUs, or `None`
    /// when `data` ends before the element does.
    fn element(
        &self,
        data: &[u8],
        ts: &mut u32,
        emit: &mut dyn FnMut(u32, &[u8]),
    ) -> Option<usize> {
        // First check that the whole element is present, then emit, so a partial element emits nothing.
        let mut spans = [(0usize, 0usize); 64];
        let mut pos = 0usize;
        for span in spans.iter_mut().take(self.num_sub_frames as usize + 1) {
            let mut len = 0usize;
            loop {
                let b = *data.get(pos)?;
                pos += 1;
                len += usize::from(b);
                if b != 0xFF {
                    break;
                }
            }
            if data.len() - pos < len {
                return None;
            }
            *span = (pos, len);
            pos += len;
        }
        for &(start, len) in spans.iter().take(self.num_sub_frames as usize + 1) {
            if len > 0 {
                emit(*ts, &data[start..start + len]);
            }
            *ts = ts.wrapping_add(self.au_duration);
        }
        Some(pos)
    }

    pub(crate) fn push(
        &mut self,
        ts: u32,
        payload: &[u8],
        emit: &mut dyn FnMut(u32, &[u8]),
    ) -> DepacketizeResult {
        let mut res = DepacketizeResult::default();
        if !self.pending.is_empty() && self.pending_ts != ts {
            self.pending.clear();
            res.lost_fragments = true;
        }
        let joined;
        let data: &[u8] = if self.pending.is_empty() {
            payload
        } else {
            self.pending.extend_from_slice(payload);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let mut offset = 0;
        let mut au_ts = ts;
        while offset < data.len() {
            match self.element(&data[offset..], &mut au_ts, emit) {
                Some(n) => offset += n,
                None => {
                    if data.len() - offset <= MAX_PENDING {
                        self.pending.extend_from_slice(&data[offset..]);
                        self.pending_ts = ts;
                    } else {
                        res.malformed = true;
                    }
                    break;
                }
            }
        }
        res
    }
}
