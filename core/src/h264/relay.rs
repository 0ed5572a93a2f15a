//! The H.264 relay path: camera RTP payloads in, viewer-ready RTP payloads out.
//!
//! Payloads are forwarded as they are whenever possible (one `Arc<[u8]>` per source packet,
//! shared by all viewers, nothing else allocated). Only oversized or quirky packets are rewritten;
//! rewriting necessarily allocates one `Arc` per output packet.
//!
//! # Keyframes and parameter sets
//!
//! A viewer may only start at a packet marked `keyframe_start`, and from there it must find SPS,
//! PPS and an IDR. Design: packets of an access unit that carry no slice data (SPS, PPS, SEI,
//! AUD, …) are *held back* until the first slice packet of the same access unit shows whether
//! this is a keyframe. Then:
//! - IDR, and the held packets (or this packet, for STAP-A [SPS, PPS, IDR]) contain both SPS and
//!   PPS: the first held packet that starts an SPS/PPS is marked `keyframe_start`; no injection.
//! - IDR, and the camera did not send both in this access unit: a STAP-A [SPS, PPS] from the
//!   store is injected right before the IDR packet and marked `keyframe_start`.
//! - not an IDR (or no SPS/PPS known at all): held packets go out unmarked.
//!
//! Either way the marked packet is the first one carrying parameter sets in front of the IDR; a
//! viewer starting there may miss an AUD or SEI of that access unit, which decoders do not need.
//!
//! Holding costs at most one packet of delay and only for non-slice packets, which never carry
//! the marker bit in sane streams (if one does, the access unit is over and everything is flushed
//! at once). The alternative — always injecting — would duplicate the camera's SPS/PPS on every
//! keyframe, and marking the camera's SPS packet as soon as it arrives would mislead viewers when
//! a camera repeats SPS/PPS before non-IDR frames.

use std::iter::FlatMap;
use std::sync::Arc;

use crate::media::VideoPacket;
use crate::nal_relay::{end_carry, Ingest};
use crate::rtp::RtpPacket;

use super::nal::{
    has_start_code, is_vcl, nal_type, split_annex_b, stap_a_is_clean, stap_a_units, AnnexBIter,
    StapIter, NAL_FU_A, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS, NAL_STAP_A,
};
use super::packetize::{nal_pieces, packetize_nal, FuCarry, MIN_PAYLOAD};
use super::params::{fmtp_param, parse_profile_level_id, ParameterSets};
use super::slice::{slice_type, SliceType};

/// Longest run of non-slice packets held back in one access unit; beyond that they are
/// forwarded unmarked (bounds memory and delay against odd streams).
const HOLD_MAX: usize = 8;

/// Largest SPS/PPS reassembled from FU-A (real ones are tens of bytes).
const MAX_FU_PARAM: usize = 4096;

/// How a source payload is turned into output packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Single NAL unit packet (types 1..=23), forwardable.
    Single,
    /// Well-formed STAP-A, forwardable.
    Stap,
    /// FU-A fragment, forwardable.
    Fu,
    /// Quirk: Annex-B start codes in a single NAL unit packet; its units are re-emitted.
    AnnexB,
    /// Quirk: malformed STAP-A or start codes inside its units; valid units are re-emitted.
    DirtyStap,
    /// Quirk: FU-A with both S and E set (forbidden by RFC 6184); re-emitted as a single NAL unit
    /// because receivers disagree on how to handle it.
    FuWhole,
}

/// What a packet contains, as far as keyframe handling cares.
#[derive(Debug, Clone, Copy, Default)]
struct Facts {
    /// Carries (part of) a slice.
    vcl: bool,
    /// Starts an IDR slice (single, inside a STAP-A, or FU-A with S).
    idr_start: bool,
    /// A complete SPS / PPS was learned from this packet.
    sps: bool,
    pps: bool,
    /// SPS / PPS seen in this packet before its IDR (STAP-A [SPS, PPS, IDR]).
    sps_before_idr: bool,
    pps_before_idr: bool,
    /// This packet begins an SPS or PPS: where a viewer may start.
    param_start: bool,
}

/// A non-slice packet waiting for its access unit's first slice.
#[derive(Debug)]
struct Held {
    payload: Arc<[u8]>,
    shape: Shape,
    marker: bool,
    rtp_time: u32,
    gap: u16,
    facts: Facts,
}

/// A source payload about to be emitted.
struct Src<'a> {
    bytes: &'a [u8],
    /// Already-allocated shared copy of `bytes`, if any.
    arc: Option<&'a Arc<[u8]>>,
    shape: Shape,
    marker: bool,
    rtp_time: u32,
    gap: u16,
}

impl<'a> Src<'a> {
    /// A camera packet's payload, not copied yet.
    fn of(pkt: &RtpPacket<'a>, shape: Shape, gap: u16) -> Self {
        Src {
            bytes: pkt.payload,
            arc: None,
            shape,
            marker: pkt.marker,
            rtp_time: pkt.timestamp,
            gap,
        }
    }
}

/// Relays one H.264 track. See the module docs.
#[derive(Debug)]
pub struct H264Relay {
    max_payload: usize,
    params: ParameterSets,
    fmtp_profile_level_id: Option<[u8; 3]>,
    /// Sequence numbers, losses and access units, in and out.
    ingest: Ingest,
    /// This access unit's keyframe decision is made (keyframe_start at most once per AU).
    au_keyframe_done: bool,
    held: Vec<Held>,
    /// SPS/PPS being reassembled from FU-A (rare; capacity is kept across uses).
    fu_param: Vec<u8>,
    fu_param_active: bool,
    /// A B-slice was seen (sticky; slice headers are no longer parsed once set).
    b_frames: bool,
    /// Tail of an oversized FU-A fragment, written with the next fragment of its NAL unit.
    carry: FuCarry,
}

impl H264Relay {
    /// `fmtp`: the SDP's fmtp parameters (sprop-parameter-sets, profile-level-id), if any.
    /// `max_payload`: largest RTP payload to emit (e.g. 1200); clamped to at least 3.
    pub fn new(fmtp: Option<&str>, max_payload: usize) -> H264Relay {
        let mut params = ParameterSets::new();
        if let Some(f) = fmtp {
            params.learn_fmtp(f);
        }
        H264Relay {
            max_payload: max_payload.max(MIN_PAYLOAD),
            params,
            fmtp_profile_level_id: fmtp
                .and_then(|f| fmtp_param(f, "profile-level-id"))
                .and_then(parse_profile_level_id),
            ingest: Ingest::default(),
            au_keyframe_done: false,
            held: Vec::with_capacity(HOLD_MAX),
            fu_param: Vec::new(),
            fu_param_active: false,
            b_frames: false,
            carry: FuCarry::new(max_payload.max(MIN_PAYLOAD)),
        }
    }

    /// Whether the camera's stream uses B-slices (sticky once one is seen). Found by reading
    /// `slice_type` from the first bytes of each slice start (single NAL, STAP-A entry, FU-A
    /// start fragment); costs a few bit operations per slice, and nothing once set.
    pub fn has_b_frames(&self) -> bool {
        self.b_frames
    }

    /// Notes a B-slice; `after_header`: the slice's bytes after its NAL header (a prefix will do).
    fn check_slice(&mut self, after_header: &[u8]) {
        if !self.b_frames {
            self.b_frames = slice_type(after_header) == Some(SliceType::B);
        }
    }

    /// profile-level-id from the SPS (sprop or in-band); `None` until an SPS is known.
    pub fn profile_level_id(&self) -> Option<[u8; 3]> {
        self.params.profile_level_id()
    }

    /// What the SDP announced, if anything (may disagree with the SPS on real cameras).
    pub fn fmtp_profile_level_id(&self) -> Option<[u8; 3]> {
        self.fmtp_profile_level_id
    }

    /// Whether both SPS and PPS are known (from the SDP or in-band).
    pub fn has_parameter_sets(&self) -> bool {
        self.params.is_complete()
    }

    /// STAP-A [SPS, PPS] with the latest parameter sets.
    pub fn parameter_sets_packet(&self) -> Option<Arc<[u8]>> {
        self.params.stap_a().cloned()
    }

    /// The parameter set store (latest SPS / PPS).
    pub fn parameter_sets(&self) -> &ParameterSets {
        &self.params
    }

    /// Feeds one camera packet of this track; appends 0..n packets to `out`.
    pub fn push(&mut self, pkt: &RtpPacket<'_>, out: &mut Vec<VideoPacket>) {
        let Some(step) = self.ingest.step(pkt) else {
            return;
        };
        if step.lost || step.restart {
            // A lost fragment breaks any SPS/PPS being reassembled.
            self.fu_param_active = false;
        }
        if step.new_au {
            // New access unit (or a restart): anything still held belongs to the previous one
            // (e.g. a camera that stamps SPS/PPS with a different time than the IDR) and goes
            // out unmarked.
            self.flush_held(None, out);
            self.au_keyframe_done = false;
        }

        let Some((shape, facts)) = self.inspect(pkt.payload) else {
            // Dropped: empty payload (some cameras send them as keepalives), unknown or
            // forbidden packet types. Any gap carries over to the next emitted packet.
            if pkt.marker {
                self.flush_held(None, out);
            }
            return;
        };
        let gap = self.ingest.take_gap();

        if !facts.vcl {
            if !pkt.marker && self.held.len() < HOLD_MAX {
                self.held.push(Held {
                    payload: Arc::from(pkt.payload),
                    shape,
                    marker: pkt.marker,
                    rtp_time: pkt.timestamp,
                    gap,
                    facts,
                });
            } else {
                self.flush_held(None, out);
                self.emit(Src::of(pkt, shape, gap), false, out);
            }
            return;
        }

        let mut mark_held = None;
        let mut mark_here = false;
        let mut inject = false;
        if facts.idr_start && !self.au_keyframe_done {
            self.au_keyframe_done = true;
            if self.params.is_complete() {
                // A viewer starting at the mark must find SPS and PPS *from the mark on*: an SPS
                // learned from an FU-A end fragment whose start already left (hold overflow,
                // interrupted FU-A) counts only if it is wholly after the mark (found by fuzzing).
                let mark = self.held.iter().position(|h| h.facts.param_start);
                let tail = mark.map_or(&self.held[..0], |m| &self.held[m..]);
                let sps = facts.sps_before_idr || tail.iter().any(|h| h.facts.sps);
                let pps = facts.pps_before_idr || tail.iter().any(|h| h.facts.pps);
                let own_complete = facts.sps_before_idr && facts.pps_before_idr;
                if sps && pps && (mark.is_some() || own_complete) {
                    mark_held = mark;
                    mark_here = mark.is_none();
                } else {
                    inject = true;
                }
            }
        }
        self.flush_held(mark_held, out);
        let mut src = Src::of(pkt, shape, gap);
        if inject {
            self.inject_parameter_sets(pkt.timestamp, gap, out);
            src.gap = 0;
        }
        self.emit(src, mark_here, out);
    }

    /// Classifies a payload and learns any SPS/PPS in it. `None`: drop the packet.
    fn inspect(&mut self, p: &[u8]) -> Option<(Shape, Facts)> {
        let t = nal_type(*p.first()?);
        let shape = match t {
            // Quirk: Annex-B framing leaking into the payload (a payload starting with a start
            // code has type 0). A valid NAL unit never contains 00 00 01, so the scan is exact.
            0..=23 if has_start_code(p) => Shape::AnnexB,
            1..=23 => Shape::Single,
            NAL_STAP_A if stap_a_is_clean(p) => Shape::Stap,
            NAL_STAP_A => Shape::DirtyStap,
            NAL_FU_A => {
                let fu_header = *p.get(1)?;
                if !(1..=23).contains(&nal_type(fu_header)) {
                    return None;
                }
                let shape = if fu_header & 0xC0 == 0xC0 {
                    Shape::FuWhole
                } else {
                    Shape::Fu
                };
                return Some((shape, self.inspect_fu(p)));
            }
            // Type 0 without start code, STAP-B, MTAP16/24, FU-B, 30, 31: not valid in
            // packetization-mode 1 and not decodable by browsers.
            _ => return None,
        };
        // Any other packet interrupts an SPS/PPS being reassembled from FU-A fragments: its
        // remaining fragments must not complete it out of order.
        self.fu_param_active = false;
        let mut facts = Facts::default();
        let mut any = false;
        for nal in units(p, shape) {
            let t = nal_type(nal[0]);
            if !(1..=23).contains(&t) {
                continue;
            }
            any = true;
            let learned = self.params.learn(nal);
            match t {
                NAL_SPS => {
                    facts.param_start = true;
                    facts.sps |= learned;
                }
                NAL_PPS => {
                    facts.param_start = true;
                    facts.pps |= learned;
                }
                _ => {}
            }
            if is_vcl(t) {
                facts.vcl = true;
                if t == NAL_SLICE || t == NAL_IDR {
                    self.check_slice(&nal[1..]);
                }
                if t == NAL_IDR && !facts.idr_start {
                    facts.idr_start = true;
                    facts.sps_before_idr = facts.sps;
                    facts.pps_before_idr = facts.pps;
                }
            }
        }
        // A rewritten packet with nothing valid inside would emit nothing: drop it.
        any.then_some((shape, facts))
    }

    /// Facts of an FU-A fragment (with at least 2 bytes); reassembles SPS/PPS sent as FU-A.
    fn inspect_fu(&mut self, p: &[u8]) -> Facts {
        let (indicator, fu_header, data) = (p[0], p[1], &p[2..]);
        let t = nal_type(fu_header);
        let start = fu_header & 0x80 != 0;
        let end = fu_header & 0x40 != 0;
        if start && (t == NAL_SLICE || t == NAL_IDR) {
            self.check_slice(data);
        }
        let mut facts = Facts {
            vcl: is_vcl(t),
            idr_start: start && t == NAL_IDR,
            param_start: start && (t == NAL_SPS || t == NAL_PPS),
            ..Facts::default()
        };
        if t != NAL_SPS && t != NAL_PPS {
            self.fu_param_active = false;
            return facts;
        }
        if start {
            self.fu_param.clear();
            self.fu_param.push((indicator & 0xE0) | t);
            self.fu_param_active = true;
        }
        if self.fu_param_active {
            if self.fu_param.len() + data.len() > MAX_FU_PARAM {
                self.fu_param_active = false;
                return facts;
            }
            self.fu_param.extend_from_slice(data);
            if end {
                self.fu_param_active = false;
                if self.params.learn(&self.fu_param) {
                    facts.sps = t == NAL_SPS;
                    facts.pps = t == NAL_PPS;
                }
            }
        }
        facts
    }

    fn flush_held(&mut self, mark: Option<usize>, out: &mut Vec<VideoPacket>) {
        if self.held.is_empty() {
            return;
        }
        // Taken out and put back so its capacity is reused (no allocation).
        let mut held = std::mem::take(&mut self.held);
        for (i, h) in held.drain(..).enumerate() {
            let src = Src {
                bytes: &h.payload,
                arc: Some(&h.payload),
                shape: h.shape,
                marker: h.marker,
                rtp_time: h.rtp_time,
                gap: h.gap,
            };
            self.emit(src, mark == Some(i), out);
        }
        self.held = held;
    }

    /// Emits STAP-A [SPS, PPS] (marked keyframe_start); needs complete parameter sets.
    fn inject_parameter_sets(&mut self, rtp_time: u32, gap: u16, out: &mut Vec<VideoPacket>) {
        let Some(stap) = self.params.stap_a() else {
            return;
        };
        // The cached packet is shared (no allocation). If SPS+PPS are too big for one packet
        // (rare), `emit` splits the STAP-A into single NAL / FU-A packets.
        let stap = Arc::clone(stap);
        let src = Src {
            bytes: &stap,
            arc: Some(&stap),
            shape: Shape::Stap,
            marker: false,
            rtp_time,
            gap,
        };
        self.emit(src, true, out);
    }

    /// Emits one source payload: forwarded if it fits and is well-formed, rewritten otherwise.
    /// The first output packet gets `keyframe_start`, the last the source's marker.
    fn emit(&mut self, src: Src<'_>, keyframe_start: bool, out: &mut Vec<VideoPacket>) {
        let max = self.max_payload;
        let p = src.bytes;
        // The FU-A prefix (indicator, FU header without S/E) of a fragment.
        let fu_prefix = match (src.shape, p) {
            (Shape::Fu, [indicator, fu_header, ..]) => {
                Some([(indicator & 0xE0) | NAL_FU_A, nal_type(*fu_header), 0])
            }
            _ => None,
        };
        let continues = src.gap == 0
            && fu_prefix
                .is_some_and(|f| p[1] & 0x80 == 0 && self.carry.continues(&f[..2], src.rtp_time));
        if !continues && !self.carry.is_empty() {
            end_carry(&mut self.carry, &mut self.ingest, src.gap, out);
        }
        let mut w = self.ingest.writer(out, src.gap, src.rtp_time);
        let mut push = |payload: Arc<[u8]>| w.push(payload);
        match src.shape {
            Shape::Single | Shape::Stap | Shape::Fu if p.len() <= max && !continues => {
                // The hot path: the one allocation per source packet, or none if already shared.
                push(src.arc.map_or_else(|| Arc::from(p), Arc::clone));
            }
            Shape::Single => {
                if let Some((&h, rest)) = p.split_first() {
                    nal_pieces(h, rest, max).for_each(|piece| push(piece.to_arc()));
                }
            }
            Shape::Fu | Shape::FuWhole => {
                if let Some(&[indicator, fu_header]) = p.get(..2) {
                    let header = (indicator & 0xE0) | nal_type(fu_header);
                    let data = &p[2..];
                    if src.shape == Shape::FuWhole {
                        nal_pieces(header, data, max).for_each(|piece| push(piece.to_arc()));
                    } else if let Some(prefix) = fu_prefix {
                        // S only on the first piece and E only on the last, and only if the
                        // source fragment had them: a fragment after a loss never gains a start.
                        // The tail goes with the next fragment unless the unit or AU ends here.
                        let (s, e) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
                        let flags = (s, e, e || src.marker);
                        let t = src.rtp_time;
                        self.carry.fragment(prefix, 2, data, flags, max, t, push);
                    }
                }
            }
            Shape::AnnexB | Shape::Stap | Shape::DirtyStap => {
                for nal in units(p, src.shape) {
                    if (1..=23).contains(&nal_type(nal[0])) {
                        packetize_nal(nal, max).for_each(|piece| push(piece.to_arc()));
                    }
                }
            }
        }
        w.finish(keyframe_start, src.marker);
    }
}

type StapUnits<'a> = FlatMap<StapIter<'a>, AnnexBIter<'a>, fn(&'a [u8]) -> AnnexBIter<'a>>;

/// The NAL units of a non-FU payload (never empty slices), splitting Annex-B quirks.
enum Units<'a> {
    /// A clean single NAL unit packet: already scanned, no need to split again.
    One(Option<&'a [u8]>),
    Single(AnnexBIter<'a>),
    Stap(StapUnits<'a>),
}

fn units(p: &[u8], shape: Shape) -> Units<'_> {
    match shape {
        Shape::Stap | Shape::DirtyStap => {
            Units::Stap(stap_a_units(p).flat_map(split_annex_b as fn(&[u8]) -> AnnexBIter<'_>))
        }
        Shape::Single => Units::One(Some(p).filter(|p| !p.is_empty())),
        _ => Units::Single(split_annex_b(p)),
    }
}

impl<'a> Iterator for Units<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Units::One(it) => it.take(),
            Units::Single(it) => it.next(),
            Units::Stap(it) => it.next(),
        }
    }
}
