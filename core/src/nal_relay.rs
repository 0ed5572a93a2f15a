//! What the H.264 and H.265 relays share: following the camera's sequence numbers, SSRC and
//! access units on the way in, and numbering and marking the packets they write on the way out.

use std::sync::Arc;

use crate::h264::packetize::FuCarry;
use crate::media::VideoPacket;
use crate::rtp::{RtpPacket, SeqStep, SeqTracker};

/// The camera's packet stream as a NAL relay sees it: losses, restarts, access units, and the
/// output sequence numbers that reflect them.
#[derive(Debug, Default)]
pub(crate) struct Ingest {
    seq: SeqTracker,
    ssrc: Option<u32>,
    /// Next output sequence number; `None` until the first packet.
    out_seq: Option<u16>,
    /// Source packets lost (or discontinuities) not yet reflected in `out_seq`.
    pending_gap: u16,
    au_time: Option<u32>,
    /// The last packet carried the marker bit: the next one starts a new access unit even with
    /// the same timestamp.
    au_ended: bool,
}

/// What one camera packet means for the relay's state (see [`Ingest::step`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    /// Packets were lost just before this one.
    pub(crate) lost: bool,
    /// The camera restarted its stream (new SSRC, sequence jump): nothing before carries over.
    pub(crate) restart: bool,
    /// This packet begins a new access unit.
    pub(crate) new_au: bool,
}

impl Ingest {
    /// Accounts for one camera packet; `None`: reordered or duplicate, drop it (forwarding it
    /// would scramble the output order).
    pub(crate) fn step(&mut self, pkt: &RtpPacket<'_>) -> Option<Step> {
        let mut step = Step {
            lost: false,
            restart: false,
            new_au: false,
        };
        if self.ssrc.is_some_and(|s| s != pkt.ssrc) {
            // New SSRC: the camera restarted the stream; sequence numbers start over.
            self.seq.reset();
            self.discontinuity();
            step.restart = true;
        }
        self.ssrc = Some(pkt.ssrc);
        match self.seq.step(pkt.sequence) {
            SeqStep::Late => return None,
            SeqStep::First | SeqStep::InOrder => {}
            SeqStep::Gap(n) => {
                self.pending_gap = self.pending_gap.wrapping_add(n);
                step.lost = true;
            }
            SeqStep::Reset => {
                self.discontinuity();
                step.restart = true;
            }
        }
        if self.out_seq.is_none() {
            // Start where the camera is, so an untouched stream keeps its numbers.
            self.out_seq = Some(pkt.sequence);
        }
        step.new_au = self.au_ended || self.au_time != Some(pkt.timestamp);
        if step.new_au {
            self.au_time = Some(pkt.timestamp);
        }
        self.au_ended = pkt.marker;
        Some(step)
    }

    /// Downstream must see a loss, so it drops any partial picture.
    fn discontinuity(&mut self) {
        self.pending_gap = self.pending_gap.wrapping_add(1);
        self.au_time = None;
        self.au_ended = false;
    }

    /// The gap to put before the next packet written (taken: it is reported once).
    pub(crate) fn take_gap(&mut self) -> u16 {
        std::mem::take(&mut self.pending_gap)
    }

    /// Starts writing the packets made of one source payload, `gap` numbers after the last.
    pub(crate) fn writer<'o>(
        &mut self,
        out: &'o mut Vec<VideoPacket>,
        gap: u16,
        rtp_time: u32,
    ) -> Writer<'o, '_> {
        Writer {
            first: out.len(),
            seq: self.out_seq.unwrap_or(0).wrapping_add(gap),
            out,
            rtp_time,
            next_seq: &mut self.out_seq,
        }
    }
}

/// Appends the output packets of one source payload: consecutive sequence numbers, a
/// `keyframe_start` on the first and the source's marker on the last ([`Writer::finish`]).
pub(crate) struct Writer<'o, 's> {
    out: &'o mut Vec<VideoPacket>,
    first: usize,
    seq: u16,
    rtp_time: u32,
    next_seq: &'s mut Option<u16>,
}

impl Writer<'_, '_> {
    /// One output packet.
    pub(crate) fn push(&mut self, payload: Arc<[u8]>) {
        self.out.push(VideoPacket {
            payload,
            marker: false,
            rtp_time: self.rtp_time,
            seq: self.seq,
            keyframe_start: false,
        });
        self.seq = self.seq.wrapping_add(1);
    }

    /// Marks the first packet written `keyframe_start` and the last with `marker`.
    pub(crate) fn finish(self, keyframe_start: bool, marker: bool) {
        *self.next_seq = Some(self.seq);
        let written = &mut self.out[self.first..];
        if let Some(pkt) = written.first_mut() {
            pkt.keyframe_start = keyframe_start;
        }
        if let Some(pkt) = written.last_mut().filter(|_| marker) {
            pkt.marker = true;
        }
    }
}

/// Ends a carried FU tail that the next payload does not continue: written as a fragment of its
/// own if nothing was lost in between, dropped otherwise (the loss already tells the receiver the
/// unit is broken; glued to later bytes it would look whole).
pub(crate) fn end_carry(
    carry: &mut FuCarry,
    ingest: &mut Ingest,
    gap: u16,
    out: &mut Vec<VideoPacket>,
) {
    match carry.take() {
        Some((payload, rtp_time)) if gap == 0 => {
            let mut w = ingest.writer(out, 0, rtp_time);
            w.push(payload);
            w.finish(false, false);
        }
        _ => {}
    }
}
