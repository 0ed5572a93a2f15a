//! The VP8 relay path (RFC 7741): camera RTP payloads in, viewer-ready RTP payloads out, with the
//! same output as the H.264 relay ([`VideoPacket`]) so the gateway, GOP cache and viewers handle both
//! codecs alike.
//!
//! Every payload is forwarded exactly as the camera sent it: one `Arc<[u8]>` per source packet,
//! shared by all viewers, nothing else allocated. Output sequence numbers follow the same rules as
//! [`crate::h264::H264Relay`]: +1 per packet plus the size of any gap in the source sequence (so
//! downstream sees losses as losses); late and duplicate packets are dropped; an SSRC change or
//! sequence restart shows up as a one-packet loss.
//!
//! # Keyframes
//!
//! A viewer may start at a packet marked `keyframe_start`: the first packet of a keyframe, i.e. the
//! payload descriptor has S set and partition index 0, and the VP8 payload header that follows has
//! the P (inverse key frame) bit clear *and* carries the keyframe start code `9d 01 2a` (a packet
//! claiming a keyframe without it is corrupt and not offered as a starting point). The keyframe's
//! width and height are kept for stream info ([`Vp8Relay::last_keyframe_size`]).
//!
//! # Oversized packets
//!
//! Unlike H.264 (where a NAL unit can be re-fragmented with FU-A), a VP8 packet can only be split by
//! re-packetizing the frame: the descriptor's PictureID / TL0PICIDX / partition fields would need
//! re-deriving and the marker moved. Cameras pick their own MTU and practically never exceed
//! 1200–1400 bytes, so a packet larger than `max_payload` is forwarded anyway and counted
//! ([`Vp8Relay::oversized`]); a non-zero count tells the operator to lower the camera's MTU.
//!
//! # Malformed packets
//!
//! Empty payloads (keepalives) are dropped silently. A payload whose descriptor is truncated or
//! carries no VP8 data is dropped and counted ([`Vp8Relay::malformed`]); it is reported downstream
//! as a lost packet, since the frame it belonged to is damaged either way.

use std::sync::Arc;

use crate::media::VideoPacket;
use crate::rtp::{RtpPacket, SeqStep, SeqTracker};

/// The keyframe start code, after the 3-byte frame tag (RFC 6386 9.1).
const START_CODE: [u8; 3] = [0x9D, 0x01, 0x2A];

/// PictureID from the payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureId {
    /// M bit clear: 7 bits.
    Short(u8),
    /// M bit set: 15 bits.
    Long(u16),
}

/// The VP8 payload descriptor (RFC 7741 4.2) at the start of every VP8 RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// N: the frame can be discarded without affecting others.
    pub non_reference: bool,
    /// S: this packet starts a VP8 partition.
    pub start: bool,
    /// PID: partition index (0..=7).
    pub partition: u8,
    /// PictureID, when the I bit says it is present: numbers the frames.
    pub picture_id: Option<PictureId>,
    /// TL0PICIDX, when the L bit says it is present: numbers the base temporal layer's frames.
    pub tl0_pic_idx: Option<u8>,
    /// TID (0..=3) and Y (layer sync), when T is set.
    pub tid: Option<(u8, bool)>,
    /// KEYIDX (0..=31), when K is set.
    pub key_idx: Option<u8>,
    /// Descriptor length in bytes: the VP8 data starts at this offset.
    pub len: usize,
}

impl Vp8Descriptor {
    /// Parses the descriptor of a VP8 RTP payload. `None` if it is truncated or no VP8 data follows
    /// it (RFC 7741 requires at least one byte). Reserved bits are ignored, as the RFC asks.
    pub fn parse(payload: &[u8]) -> Option<Vp8Descriptor> {
        let b0 = *payload.first()?;
        let mut d = Vp8Descriptor {
            non_reference: b0 & 0x20 != 0,
            start: b0 & 0x10 != 0,
            partition: b0 & 0x07,
            picture_id: None,
            tl0_pic_idx: None,
            tid: None,
            key_idx: None,
            len: 1,
        };
        if b0 & 0x80 != 0 {
            let x = *payload.get(1)?;
            d.len = 2;
            if x & 0x80 != 0 {
                let p0 = *payload.get(d.len)?;
                if p0 & 0x80 != 0 {
                    let p1 = *payload.get(d.len + 1)?;
                    d.picture_id = Some(PictureId::Long(u16::from(p0 & 0x7F) << 8 | u16::from(p1)));
                    d.len += 2;
                } else {
                    d.picture_id = Some(PictureId::Short(p0));
                    d.len += 1;
                }
            }
            if x & 0x40 != 0 {
                d.tl0_pic_idx = Some(*payload.get(d.len)?);
                d.len += 1;
            }
            // T and K share one byte: TID|Y|KEYIDX.
            if x & 0x30 != 0 {
                let tk = *payload.get(d.len)?;
                d.len += 1;
                if x & 0x20 != 0 {
                    d.tid = Some((tk >> 6, tk & 0x20 != 0));
                }
                if x & 0x10 != 0 {
                    d.key_idx = Some(tk & 0x1F);
                }
            }
        }
        (payload.len() > d.len).then_some(d)
    }

    /// First packet of a frame: S set, partition 0.
    pub fn starts_frame(&self) -> bool {
        self.start && self.partition == 0
    }
}

/// Width and height of a keyframe, from the start of its VP8 data (the bytes after the payload
/// descriptor of a frame's first packet): the P bit clear, the start code `9d 01 2a` and two
/// little-endian 14-bit sizes (the top 2 bits are the scaling mode). `None` for interframes and
/// anything malformed.
pub fn keyframe_size(vp8: &[u8]) -> Option<(u16, u16)> {
    let h = vp8.get(..10)?;
    if h[0] & 0x01 != 0 || h[3..6] != START_CODE {
        return None;
    }
    let width = u16::from_le_bytes([h[6], h[7]]) & 0x3FFF;
    let height = u16::from_le_bytes([h[8], h[9]]) & 0x3FFF;
    Some((width, height))
}

/// Relays one VP8 track. See the module docs.
#[derive(Debug)]
pub struct Vp8Relay {
    max_payload: usize,
    seq: SeqTracker,
    ssrc: Option<u32>,
    /// Next output sequence number; `None` until the first packet.
    out_seq: Option<u16>,
    /// Source packets lost (or discontinuities) not yet reflected in `out_seq`.
    pending_gap: u16,
    last_keyframe_size: Option<(u16, u16)>,
    keyframes: u64,
    oversized: u64,
    malformed: u64,
}

impl Vp8Relay {
    /// `max_payload`: the largest RTP payload viewers should get (e.g. 1200); larger packets are
    /// still forwarded, and counted by [`Vp8Relay::oversized`].
    pub fn new(max_payload: usize) -> Vp8Relay {
        Vp8Relay {
            max_payload,
            seq: SeqTracker::new(),
            ssrc: None,
            out_seq: None,
            pending_gap: 0,
            last_keyframe_size: None,
            keyframes: 0,
            oversized: 0,
            malformed: 0,
        }
    }

    /// Width and height of the latest keyframe; `None` until one has passed.
    pub fn last_keyframe_size(&self) -> Option<(u16, u16)> {
        self.last_keyframe_size
    }

    /// Keyframes seen (packets marked `keyframe_start`).
    pub fn keyframes(&self) -> u64 {
        self.keyframes
    }

    /// Packets forwarded although larger than `max_payload` (VP8 can't be re-split here).
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    /// Non-empty packets dropped because their payload descriptor was truncated.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Feeds one camera packet of this track; appends 0 or 1 packet to `out`.
    pub fn push(&mut self, pkt: &RtpPacket<'_>, out: &mut Vec<VideoPacket>) {
        if self.ssrc.is_some_and(|s| s != pkt.ssrc) {
            // New SSRC: the camera restarted the stream; sequence numbers start over.
            self.seq.reset();
            self.pending_gap = self.pending_gap.wrapping_add(1);
        }
        self.ssrc = Some(pkt.ssrc);
        match self.seq.step(pkt.sequence) {
            // Reordered or duplicate: forwarding it would scramble the output order.
            SeqStep::Late => return,
            SeqStep::First | SeqStep::InOrder => {}
            SeqStep::Gap(n) => self.pending_gap = self.pending_gap.wrapping_add(n),
            // Sequence restart: make downstream see a loss so it drops any partial frame.
            SeqStep::Reset => self.pending_gap = self.pending_gap.wrapping_add(1),
        }
        if self.out_seq.is_none() {
            // Start where the camera is, so an untouched stream keeps its numbers.
            self.out_seq = Some(pkt.sequence);
        }
        let p = pkt.payload;
        if p.is_empty() {
            // Keepalive: dropped; any pending gap carries over to the next packet.
            return;
        }
        let Some(d) = Vp8Descriptor::parse(p) else {
            self.malformed += 1;
            self.pending_gap = self.pending_gap.wrapping_add(1);
            return;
        };
        let mut keyframe_start = false;
        if d.starts_frame() {
            if let Some(size) = keyframe_size(&p[d.len..]) {
                keyframe_start = true;
                self.keyframes += 1;
                self.last_keyframe_size = Some(size);
            }
        }
        if p.len() > self.max_payload {
            self.oversized += 1;
        }
        let seq = self
            .out_seq
            .unwrap_or(0)
            .wrapping_add(std::mem::take(&mut self.pending_gap));
        self.out_seq = Some(seq.wrapping_add(1));
        out.push(VideoPacket {
            payload: Arc::from(p),
            marker: pkt.marker,
            rtp_time: pkt.timestamp,
            seq,
            keyframe_start,
        });
    }
}
