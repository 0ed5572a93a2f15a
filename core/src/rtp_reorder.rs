//! RTP reorder buffer for media that arrives over UDP: packets are handed on in sequence order,
//! duplicates and late packets are dropped, and a gap is waited for at most `window` (or until
//! `depth` packets are held) before it is counted as loss.
//!
//! Allocation-free in steady state: the held packets live in a fixed ring of owned buffers that
//! keep their capacity, and a packet that arrives in order while nothing is held is handed on as
//! the caller's slice without a copy.

use std::time::{Duration, Instant};

/// A forward jump of at least this many packets is a new stream, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind is late or a duplicate; farther back, the stream restarted.
const MAX_MISORDER: u16 = 100;

#[derive(Debug, Default)]
struct Slot {
    full: bool,
    seq: u16,
    arrived: Option<Instant>,
    buf: Vec<u8>,
}

/// What happened to one pushed packet, for tests and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Handed on at once (maybe followed by held packets it unblocked).
    Delivered,
    /// Held until the gap before it fills or times out.
    Held,
    /// Duplicate, or later than what was already handed on.
    Dropped,
    /// A huge sequence jump: everything held was flushed and the sequence restarted here.
    Reset,
}

/// Reorders the RTP packets of one SSRC.
#[derive(Debug)]
pub struct RtpReorder {
    window: Duration,
    slots: Vec<Slot>,
    /// Slot of `next`.
    head: usize,
    /// Next sequence number to hand on; `None` before the first packet.
    next: Option<u16>,
    held: usize,
    /// Sequence wraps seen in the packets handed on.
    cycles: u32,
    last_out: Option<u16>,
    delivered: u64,
    lost: u64,
    dropped: u64,
}

impl RtpReorder {
    /// `depth` packets held at most (at least 1); a gap is waited for at most `window`.
    pub fn new(depth: usize, window: Duration) -> RtpReorder {
        let depth = depth.clamp(1, usize::from(MAX_DROPOUT));
        RtpReorder {
            window,
            slots: (0..depth).map(|_| Slot::default()).collect(),
            head: 0,
            next: None,
            held: 0,
            cycles: 0,
            last_out: None,
            delivered: 0,
            lost: 0,
            dropped: 0,
        }
    }

    /// Packets handed on.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Sequence numbers given up on (gaps skipped after the window or for want of room).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Duplicates and late packets dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Extended highest sequence number handed on (wraps counted in the high 16 bits), as in
    /// RTCP receiver reports; `None` before the first packet.
    pub fn extended_highest(&self) -> Option<u32> {
        self.last_out.map(|s| (self.cycles << 16) | u32::from(s))
    }

    /// Forgets the sequence and drops what is held, without counting anything as lost.
    pub fn clear(&mut self) {
        for s in &mut self.slots {
            s.full = false;
        }
        self.held = 0;
        self.next = None;
        self.head = 0;
    }

    /// When [`RtpReorder::handle_timeout`] must run to release packets held past the window.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.held == 0 {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.full)
            .filter_map(|s| s.arrived)
            .min()
            .map(|t| t + self.window)
    }

    /// Releases what waited for a gap longer than the window (the gap counts as loss).
    pub fn handle_timeout(&mut self, now: Instant, out: &mut dyn FnMut(u16, &[u8])) {
        while self.poll_timeout().is_some_and(|t| now >= t) {
            // Skip to the first held packet, then hand on the run that follows it.
            let Some(next) = self.next else {
                return;
            };
            let depth = self.slots.len();
            let Some(k) = (0..depth).find(|k| self.slots[(self.head + k) % depth].full) else {
                return;
            };
            self.advance_to(next.wrapping_add(k as u16), out);
            self.drain(out);
        }
    }

    /// One RTP packet with sequence number `seq`; what is in order goes to `out`.
    pub fn push(
        &mut self,
        now: Instant,
        seq: u16,
        data: &[u8],
        out: &mut dyn FnMut(u16, &[u8]),
    ) -> Pushed {
        self.handle_timeout(now, out);
        let Some(next) = self.next else {
            self.next = Some(seq);
            return self.deliver_now(seq, data, out);
        };
        let ahead = seq.wrapping_sub(next);
        let depth = self.slots.len();
        if ahead == 0 {
            let r = self.deliver_now(seq, data, out);
            self.drain(out);
            return r;
        }
        if ahead < MAX_DROPOUT {
            if usize::from(ahead) >= depth {
                // No room: give up on the oldest gaps so `seq` fits in the last slot.
                self.advance_to(seq.wrapping_sub(depth as u16 - 1), out);
                self.drain(out);
                if self.next == Some(seq) {
                    let r = self.deliver_now(seq, data, out);
                    self.drain(out);
                    return r;
                }
            }
            let next = self.next.unwrap_or(seq);
            let k = usize::from(seq.wrapping_sub(next));
            let slot = &mut self.slots[(self.head + k) % depth];
            if slot.full {
                self.dropped += 1;
                return Pushed::Dropped;
            }
            slot.full = true;
            slot.seq = seq;
            slot.arrived = Some(now);
            slot.buf.clear();
            slot.buf.extend_from_slice(data);
            self.held += 1;
            return Pushed::Held;
        }
        if ahead > u16::MAX - MAX_MISORDER {
            // Behind what was handed on: a duplicate or too late.
            self.dropped += 1;
            return Pushed::Dropped;
        }
        // A huge jump either way: the camera restarted its sequence. Flush and start over.
        while self.held > 0 {
            let Some(next) = self.next else { break };
            let Some(k) = (0..depth).find(|k| self.slots[(self.head + k) % depth].full) else {
                break;
            };
            self.advance_to(next.wrapping_add(k as u16), out);
            self.drain(out);
        }
        self.head = 0;
        self.next = Some(seq);
        // The extended sequence restarts within the current cycle count.
        self.last_out = None;
        self.deliver_now(seq, data, out);
        Pushed::Reset
    }

    /// Hands on `data` (which is `next`) and moves past it.
    fn deliver_now(&mut self, seq: u16, data: &[u8], out: &mut dyn FnMut(u16, &[u8])) -> Pushed {
        self.note_out(seq);
        out(seq, data);
        self.step();
        Pushed::Delivered
    }

    fn note_out(&mut self, seq: u16) {
        if let Some(last) = self.last_out {
            if seq < last && last - seq > 0x8000 {
                self.cycles = self.cycles.wrapping_add(1);
            }
        }
        self.last_out = Some(seq);
        self.delivered += 1;
    }

    fn step(&mut self) {
        self.next = self.next.map(|n| n.wrapping_add(1));
        self.head = (self.head + 1) % self.slots.len();
    }

    /// Hands on the held run that starts at `next`.
    fn drain(&mut self, out: &mut dyn FnMut(u16, &[u8])) {
        while self.held > 0 && self.slots[self.head].full {
            let i = self.head;
            let seq = self.slots[i].seq;
            self.slots[i].full = false;
            self.held -= 1;
            self.note_out(seq);
            out(seq, &self.slots[i].buf);
            self.step();
        }
    }

    /// Moves `next` forward to `target`, handing on held packets on the way and counting the
    /// empty slots as lost.
    fn advance_to(&mut self, target: u16, out: &mut dyn FnMut(u16, &[u8])) {
        while let Some(next) = self.next {
            if next == target {
                break;
            }
            let i = self.head;
            if self.slots[i].full {
                let seq = self.slots[i].seq;
                self.slots[i].full = false;
                self.held -= 1;
                self.note_out(seq);
                out(seq, &self.slots[i].buf);
            } else {
                self.lost += 1;
            }
            self.step();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(r: &mut RtpReorder, now: Instant, seqs: &[u16]) -> Vec<u16> {
        let mut got = Vec::new();
        for &s in seqs {
            r.push(now, s, &s.to_be_bytes(), &mut |q, d| {
                assert_eq!(d, q.to_be_bytes());
                got.push(q)
            });
        }
        got
    }

    #[test]
    fn in_order_passes_straight_through_without_copy() {
        let t = Instant::now();
        let mut r = RtpReorder::new(8, Duration::from_millis(100));
        let data = [1u8, 2, 3];
        for s in 10..20u16 {
            let mut seen = None;
            let res = r.push(t, s, &data, &mut |_, d| seen = Some(d.as_ptr()));
            assert_eq!(res, Pushed::Delivered);
            assert_eq!(seen, Some(data.as_ptr()), "the caller's slice, not a copy");
        }
        assert_eq!((r.delivered(), r.lost(), r.held()), (10, 0, 0));
        assert_eq!(r.extended_highest(), Some(19));
        assert!(r.slots.iter().all(|s| s.buf.capacity() == 0));
    }

    #[test]
    fn reordered_within_depth_is_released_in_order() {
        let t = Instant::now();
        let mut r = RtpReorder::new(8, Duration::from_millis(100));
        assert_eq!(
            run(&mut r, t, &[1, 3, 4, 2, 6, 5, 7]),
            [1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!((r.lost(), r.held(), r.dropped()), (0, 0, 0));
    }

    #[test]
    fn duplicates_and_late_packets_are_dropped() {
        let t = Instant::now();
        let mut r = RtpReorder::new(8, Duration::from_millis(100));
        assert_eq!(run(&mut r, t, &[1, 2, 2, 4, 4, 1, 3]), [1, 2, 3, 4]);
        assert_eq!(r.dropped(), 3);
    }

    #[test]
    fn gap_older_than_the_window_is_released_as_loss() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut r = RtpReorder::new(8, ms(100));
        assert_eq!(run(&mut r, t, &[1, 2, 5, 6]), [1, 2]);
        assert_eq!(r.poll_timeout(), Some(t + ms(100)));
        let mut got = Vec::new();
        r.handle_timeout(t + ms(99), &mut |s, _| got.push(s));
        assert!(got.is_empty());
        r.handle_timeout(t + ms(100), &mut |s, _| got.push(s));
        assert_eq!(got, [5, 6]);
        assert_eq!((r.lost(), r.held(), r.poll_timeout()), (2, 0, None));
        // The late ones are dropped.
        assert!(run(&mut r, t + ms(101), &[3, 4]).is_empty());
        assert_eq!(run(&mut r, t + ms(101), &[7]), [7]);
        // A push after the window releases too, without a timer.
        assert_eq!(run(&mut r, t + ms(200), &[9]), Vec::<u16>::new());
        assert_eq!(run(&mut r, t + ms(301), &[11]), [9]);
        assert_eq!(r.lost(), 3);
    }

    #[test]
    fn full_buffer_gives_up_on_the_oldest_gap() {
        let t = Instant::now();
        let mut r = RtpReorder::new(4, Duration::from_secs(10));
        assert_eq!(run(&mut r, t, &[0, 2, 3, 4]), [0]);
        // 5 does not fit behind the gap at 1: 1 is lost, 2..5 go out.
        assert_eq!(run(&mut r, t, &[5]), [2, 3, 4, 5]);
        assert_eq!(r.lost(), 1);
        // Far ahead but within MAX_DROPOUT: 6..=16 are lost, 20 waits for 17..=19.
        assert!(run(&mut r, t, &[20]).is_empty());
        assert_eq!((r.lost(), r.held()), (12, 1));
        assert_eq!(run(&mut r, t, &[18, 17, 19]), [17, 18, 19, 20]);
    }

    #[test]
    fn sequence_wraps() {
        let t = Instant::now();
        let mut r = RtpReorder::new(8, Duration::from_millis(100));
        assert_eq!(
            run(&mut r, t, &[65533, 65535, 65534, 1, 0, 2]),
            [65533, 65534, 65535, 0, 1, 2]
        );
        assert_eq!(r.extended_highest(), Some(0x1_0002));
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn huge_jump_resets_the_sequence() {
        let t = Instant::now();
        let mut r = RtpReorder::new(8, Duration::from_millis(100));
        assert_eq!(run(&mut r, t, &[100, 102]), [100]);
        assert_eq!(r.push(t, 40000, &[0, 0], &mut |_, _| {}), Pushed::Reset);
        assert_eq!(run(&mut r, t, &[40001, 40002]), [40001, 40002]);
        // Backwards far beyond reordering: a restarted camera.
        assert_eq!(run(&mut r, t, &[7, 8]), [7, 8]);
        assert_eq!(r.held(), 0);
        assert_eq!(r.lost(), 1);
    }

    #[test]
    fn buffers_are_reused() {
        let t = Instant::now();
        let mut r = RtpReorder::new(4, Duration::from_millis(100));
        let big = [0u8; 1400];
        let mut n = 0;
        r.push(t, 0, &big, &mut |_, _| n += 1);
        for round in 0..100u16 {
            let base = round * 4 + 1;
            for s in [base + 1, base + 2, base + 3, base] {
                r.push(t, s, &big, &mut |_, _| n += 1);
            }
        }
        assert_eq!(n, 401);
        let caps: Vec<usize> = r.slots.iter().map(|s| s.buf.capacity()).collect();
        for round in 100..200u16 {
            let base = round * 4 + 1;
            for s in [base + 1, base + 2, base + 3, base] {
                r.push(t, s, &big, &mut |_, _| {});
            }
        }
        assert_eq!(
            caps,
            r.slots.iter().map(|s| s.buf.capacity()).collect::<Vec<_>>()
        );
    }
}
