//! The H.265 relay path (RFC 7798 without DONL): camera RTP payloads in, viewer-ready RTP
//! payloads out.
//!
//! As for H.264, payloads that fit the WebRTC MTU are forwarded as they are (one `Arc<[u8]>` per
//! source packet, shared by all viewers); larger single NAL unit packets and fragmentation units
//! are re-fragmented into FUs, larger aggregation packets split into their units.
//!
//! # Keyframes
//!
//! Before the first packet of every IRAP picture (IDR, CRA, BLA) an aggregation packet
//! [VPS, SPS, PPS] with the latest parameter sets is injected and marked `keyframe_start`: a
//! viewer starting there can decode. Unlike the H.264 relay nothing is held back to reuse the
//! camera's own parameter sets: cameras commonly send them only before IDRs (rtph265pay's
//! `config-interval=-1` does), not before the CRAs x265's open GOP makes of later keyframes, and
//! the ~100 bytes repeated per keyframe are cheaper than an access unit's worth of holding.
//! Parameter sets are learned from the SDP and from single and aggregated NAL units (cameras
//! don't fragment sets of a few dozen bytes).

use std::sync::Arc;

use crate::h264::nal::{has_start_code, split_annex_b, units_are_clean};
use crate::h264::packetize::{FuCarry, Piece};
use crate::h264::params::fmtp_param;
use crate::media::VideoPacket;
use crate::nal_relay::{end_carry, Ingest};
use crate::rtp::RtpPacket;

use super::nal::{
    ap_units, fu_payload_header, fu_pieces, is_irap, nal_pieces, nal_type, MIN_PAYLOAD, NAL_AP,
    NAL_FU,
};
use super::params::ParameterSets;
use super::sps::SpsInfo;

/// How a source payload is turned into output packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Single NAL unit packet (types 0..=47).
    Single,
    /// Well-formed aggregation packet.
    Ap,
    /// Fragmentation unit.
    Fu,
    /// Quirk: an FU with both S and E set (forbidden by RFC 7798): re-emitted as the single NAL
    /// unit it is, because receivers disagree on how to handle it.
    FuWhole,
    /// Quirk: Annex-B start codes in a single NAL unit packet, or a malformed aggregation
    /// packet: its valid units are re-emitted one by one.
    Units,
}

/// Relays one H.265 track. See the module docs.
#[derive(Debug)]
pub struct H265Relay {
    max_payload: usize,
    params: ParameterSets,
    /// profile-id, tier-flag, level-id as the SDP announced them, if it did.
    fmtp_profile_tier_level: Option<[u8; 3]>,
    ingest: Ingest,
    /// This access unit's keyframe decision is made (at most one injection per picture).
    au_keyframe_done: bool,
    /// Tail of an oversized FU, written with the next fragment of its NAL unit.
    carry: FuCarry,
}

impl H265Relay {
    /// `fmtp`: the SDP's fmtp parameters (sprop-vps/sps/pps), if any. `max_payload`: largest
    /// RTP payload to emit (e.g. 1200).
    pub fn new(fmtp: Option<&str>, max_payload: usize) -> H265Relay {
        let mut params = ParameterSets::default();
        if let Some(f) = fmtp {
            params.learn_fmtp(f);
        }
        H265Relay {
            max_payload: max_payload.max(MIN_PAYLOAD),
            params,
            fmtp_profile_tier_level: fmtp.and_then(|f| {
                let num = |key| fmtp_param(f, key)?.parse::<u8>().ok();
                Some([num("profile-id")?, num("tier-flag")?, num("level-id")?])
            }),
            ingest: Ingest::default(),
            au_keyframe_done: false,
            carry: FuCarry::new(max_payload.max(MIN_PAYLOAD)),
        }
    }

    /// What the latest SPS says (profile, tier, level, size, reordering), once known.
    pub fn sps_info(&self) -> Option<SpsInfo> {
        self.params.sps_info()
    }

    /// profile-id, tier-flag and level-id: the SPS's, else the SDP's; `None` until known.
    pub fn profile_tier_level(&self) -> Option<[u8; 3]> {
        let sps = self.sps_info();
        sps.map(|i| [i.profile_idc, u8::from(i.high_tier), i.level_idc])
            .or(self.fmtp_profile_tier_level)
    }

    /// The parameter set store.
    pub fn parameter_sets(&self) -> &ParameterSets {
        &self.params
    }

    /// Feeds one camera packet of this track; appends 0..n packets to `out`.
    pub fn push(&mut self, pkt: &RtpPacket<'_>, out: &mut Vec<VideoPacket>) {
        let Some(step) = self.ingest.step(pkt) else {
            return;
        };
        if step.new_au {
            self.au_keyframe_done = false;
        }
        let Some((shape, irap_start)) = self.inspect(pkt.payload) else {
            // Empty, PACI or reserved types: dropped; any gap carries over to the next packet.
            return;
        };
        let gap = self.ingest.take_gap();
        let mut keyframe = false;
        if irap_start && !self.au_keyframe_done {
            self.au_keyframe_done = true;
            if let Some(ap) = self.params.ap().cloned() {
                self.emit(
                    &ap,
                    Some(&ap),
                    Shape::Ap,
                    (gap, pkt.timestamp, false),
                    true,
                    out,
                );
                keyframe = true;
            }
        }
        let gap = if keyframe { 0 } else { gap };
        let meta = (gap, pkt.timestamp, pkt.marker);
        self.emit(pkt.payload, None, shape, meta, false, out);
    }

    /// Classifies a payload, learns the parameter sets in it and says whether it starts an
    /// IRAP picture. `None`: drop it.
    fn inspect(&mut self, p: &[u8]) -> Option<(Shape, bool)> {
        let (&h0, &h1) = (p.first()?, p.get(1)?);
        let t = nal_type(h0);
        if h1 & 0x07 == 0 {
            // TID+1 = 0 is forbidden: garbage, or an Annex-B start code (00 00 01 ...).
            return has_start_code(p)
                .then(|| self.inspect_units(p, Shape::Units))
                .flatten();
        }
        match t {
            NAL_FU => {
                let fu = *p.get(2)?;
                let inner = fu & 0x3F;
                let shape = if fu & 0xC0 == 0xC0 {
                    Shape::FuWhole
                } else {
                    Shape::Fu
                };
                (inner < NAL_AP && p.len() > 3).then_some((shape, fu & 0x80 != 0 && is_irap(inner)))
            }
            NAL_AP if units_are_clean(ap_units(p)) => self.inspect_units(p, Shape::Ap),
            NAL_AP => self.inspect_units(p, Shape::Units),
            0..=47 if has_start_code(p) => self.inspect_units(p, Shape::Units),
            0..=47 => {
                self.params.learn(p);
                Some((Shape::Single, is_irap(t)))
            }
            // PACI (50) and reserved types: nothing a browser decodes.
            _ => None,
        }
    }

    /// Learns from the NAL units of an AP or a quirky single packet; whether one is an IRAP.
    /// `None` if there is no valid unit in it (it would emit nothing).
    fn inspect_units(&mut self, p: &[u8], shape: Shape) -> Option<(Shape, bool)> {
        let (mut any, mut irap) = (false, false);
        for nal in units(p, shape) {
            self.params.learn(nal);
            irap |= is_irap(nal_type(nal[0]));
            any = true;
        }
        any.then_some((shape, irap))
    }

    /// Emits one source payload, forwarded if it fits and is well-formed, rewritten otherwise;
    /// `meta`: (gap before it, RTP time, marker). The first packet written gets
    /// `keyframe_start`, the last the marker.
    fn emit(
        &mut self,
        p: &[u8],
        shared: Option<&Arc<[u8]>>,
        shape: Shape,
        (gap, rtp_time, marker): (u16, u32, bool),
        keyframe_start: bool,
        out: &mut Vec<VideoPacket>,
    ) {
        let max = self.max_payload;
        // The FU prefix (payload header, FU header without S/E) of a fragment.
        let fu_prefix = (shape == Shape::Fu).then(|| {
            let [p0, p1] = fu_payload_header(p[0], p[1]);
            [p0, p1, p[2] & 0x3F]
        });
        let continues = gap == 0
            && fu_prefix.is_some_and(|f| p[2] & 0x80 == 0 && self.carry.continues(&f, rtp_time));
        if !continues && !self.carry.is_empty() {
            end_carry(&mut self.carry, &mut self.ingest, gap, out);
        }
        let mut w = self.ingest.writer(out, gap, rtp_time);
        match shape {
            Shape::Single | Shape::Ap | Shape::Fu if p.len() <= max && !continues => {
                // The hot path: the one allocation per source packet, or none if already shared.
                w.push(shared.map_or_else(|| Arc::from(p), Arc::clone));
            }
            Shape::Single => nal_pieces(p, max).for_each(|piece| w.push(piece.to_arc())),
            Shape::Fu | Shape::FuWhole => {
                // The NAL unit header this FU stands for: its F, LayerId and TID, the FU's type.
                let fu = p[2];
                let h0 = (p[0] & 0x81) | ((fu & 0x3F) << 1);
                let (s, e) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if shape == Shape::FuWhole && p.len() - 1 <= max {
                    w.push(Piece::with_prefix(&[h0, p[1]], &p[3..]).to_arc());
                } else if let Some(prefix) = fu_prefix.filter(|_| shape == Shape::Fu) {
                    // The tail goes with the next fragment unless the unit or AU ends here.
                    let flags = (s, e, e || marker);
                    let push = |a| w.push(a);
                    self.carry
                        .fragment(prefix, 3, &p[3..], flags, max, rtp_time, push);
                } else {
                    for piece in fu_pieces(h0, p[1], &p[3..], s, e, max) {
                        w.push(piece.to_arc());
                    }
                }
            }
            Shape::Ap | Shape::Units => {
                for nal in units(p, shape) {
                    nal_pieces(nal, max).for_each(|piece| w.push(piece.to_arc()));
                }
            }
        }
        w.finish(keyframe_start, marker);
    }
}

/// The NAL units (at least 2 bytes, allowed types) of an AP or a quirky single NAL packet.
fn units(p: &[u8], shape: Shape) -> impl Iterator<Item = &[u8]> {
    let ap = (shape == Shape::Ap || nal_type(p[0]) == NAL_AP) && p[1] & 0x07 != 0;
    let (from_ap, single) = if ap {
        (Some(ap_units(p).flat_map(split_annex_b)), None)
    } else {
        (None, Some(split_annex_b(p)))
    };
    from_ap
        .into_iter()
        .flatten()
        .chain(single.into_iter().flatten())
        .filter(|n| n.len() >= 2 && n[1] & 0x07 != 0 && nal_type(n[0]) < NAL_AP)
}
