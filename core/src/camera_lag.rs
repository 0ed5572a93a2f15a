//! Is camgate reading a camera's media late? Media that arrives seconds after it was captured
//! is worth less than nothing to a live viewer: relaying it costs the same CPU as live media
//! and keeps every viewer that far behind.
//!
//! It happens when camgate falls behind its input (starved of CPU, a stall). Over UDP the
//! kernel's receive queue shows it (see `camgate_io`'s backlog check), but over a
//! TCP-interleaved connection the backlog sits in the *camera's* send buffer, which camgate
//! cannot see: measured with 200 viewers at 4 Mbit/s and camgate held to 20 % of a core, its
//! own receive queue never held 2 MiB while viewers fell 8 s behind. What camgate can see is
//! the media's age: RTP time advances with the camera's clock, arrival time with ours, and the
//! difference (the offset) only grows when packets wait somewhere.
//!
//! The lag is the offset now less the smallest offset of the last `WINDOW` (the path's delay
//! when nothing waits). Taking the minimum over a window, not over all time, lets it follow a
//! camera whose clock runs a little fast or slow (50 ppm is 1 ms in 20 s; even 1 % is 0.2 s,
//! under the threshold). Past `BEHIND` the packets are dropped until the lag is back under
//! `CAUGHT_UP`: reading without relaying is cheap, so camgate catches up, and viewers resume
//! on the first keyframe that is live again.

use std::time::{Duration, Instant};

/// Lag past which media is dropped.
pub const BEHIND: Duration = Duration::from_secs(2);
/// Lag under which relaying resumes.
pub const CAUGHT_UP: Duration = Duration::from_millis(500);
/// The no-wait offset is the smallest of this long (`BUCKETS` buckets).
const WINDOW: Duration = Duration::from_secs(20);
const BUCKETS: usize = 4;
/// A jump in RTP time this large is a new timeline (the camera restarted its clock), not lag;
/// backwards, a smaller one is too (B-frames go back a few frames, a backlog never does).
const JUMP: Duration = Duration::from_secs(30);
const JUMP_BACK: Duration = Duration::from_secs(1);
/// A packet after this long without one starts a new timeline: the camera paused (or camgate
/// got no CPU at all, whose backlog the socket checks see), and whether its RTP time went on
/// with the clock or where it stopped, nothing can be judged against the time before.
const GAP: Duration = Duration::from_secs(1);
/// Behind, a backlog shrinks (packets come faster than real time: reading without relaying is
/// cheap) by at least this much...
const PROGRESS: Duration = Duration::from_millis(100);
/// ... within this long; an offset that stays put is a shifted timeline (a camera that stopped
/// sending and went on with its RTP time where it had stopped), not a backlog: it becomes the
/// new timeline. (Or camgate cannot even read in real time: then relaying resumes, late, and
/// the next 2 s of growth drop again.)
const NO_PROGRESS: Duration = Duration::from_secs(1);

/// One camera track's lag (its RTP packets, in arrival order).
#[derive(Debug, Clone)]
pub struct CameraLag {
    clock_rate: u32,
    /// Arrival and RTP time of the first packet of this timeline.
    base: Option<(Instant, u32)>,
    /// When the last packet arrived.
    last_at: Option<Instant>,
    /// The last packet's RTP time, extended past wraps, relative to `base`.
    last_rtp: i64,
    /// Smallest offset (ms) of each bucket; the current one is `minimums[current]`.
    minimums: [i64; BUCKETS],
    current: usize,
    bucket_started: Option<Instant>,
    /// Behind since `FellBehind`: the smallest offset since, and when it was reached.
    behind: Option<(i64, Instant)>,
}

/// What a packet tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Live: relay it.
    Live,
    /// This packet made camgate fall behind: drop it, and resync viewers.
    FellBehind,
    /// Still behind: drop it.
    Behind,
}

impl CameraLag {
    /// A track whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            base: None,
            last_at: None,
            last_rtp: 0,
            minimums: [i64::MAX; BUCKETS],
            current: 0,
            bucket_started: None,
            behind: None,
        }
    }

    /// A packet with RTP time `rtp_time` read at `now`.
    pub fn on_packet(&mut self, now: Instant, rtp_time: u32) -> Lag {
        let paused = self
            .last_at
            .replace(now)
            .is_none_or(|t| now.saturating_duration_since(t) > GAP);
        let Some((base_at, base_rtp)) = self.base.filter(|_| !paused) else {
            self.restart(now, rtp_time);
            return Lag::Live;
        };
        // Extend past wraps: the step from the last packet, as a signed 32-bit difference.
        let last = base_rtp.wrapping_add(self.last_rtp as u32);
        let step = i64::from(rtp_time.wrapping_sub(last) as i32);
        let jump = Duration::from_millis(step.unsigned_abs() * 1000 / u64::from(self.clock_rate));
        if jump > JUMP || (step < 0 && jump > JUMP_BACK) {
            self.restart(now, rtp_time);
            return Lag::Live;
        }
        self.last_rtp += step;
        let arrived_ms = now.saturating_duration_since(base_at).as_millis() as i64;
        let offset = arrived_ms - self.last_rtp * 1000 / i64::from(self.clock_rate);
        let lag = offset.saturating_sub(self.no_wait_offset().unwrap_or(offset));
        if let Some((best, at)) = self.behind {
            if lag < CAUGHT_UP.as_millis() as i64 {
                self.behind = None;
            } else if offset <= best - PROGRESS.as_millis() as i64 {
                self.behind = Some((offset, now));
                return Lag::Behind;
            } else if now.saturating_duration_since(at) > NO_PROGRESS {
                self.restart(now, rtp_time);
                return Lag::Live;
            } else {
                return Lag::Behind;
            }
        } else if lag > BEHIND.as_millis() as i64 {
            self.behind = Some((offset, now));
            return Lag::FellBehind;
        }
        self.note_offset(now, offset);
        Lag::Live
    }

    /// Whether packets are being dropped (since `FellBehind`, until caught up).
    pub fn is_behind(&self) -> bool {
        self.behind.is_some()
    }

    /// The smallest offset of the window.
    fn no_wait_offset(&self) -> Option<i64> {
        self.minimums
            .iter()
            .copied()
            .filter(|m| *m != i64::MAX)
            .min()
    }

    /// Keeps `offset` in the window (only live packets': a late one's offset is the wait).
    fn note_offset(&mut self, now: Instant, offset: i64) {
        let bucket = WINDOW / BUCKETS as u32;
        let started = *self.bucket_started.get_or_insert(now);
        if now.saturating_duration_since(started) >= bucket {
            self.current = (self.current + 1) % BUCKETS;
            self.minimums[self.current] = i64::MAX;
            self.bucket_started = Some(now);
        }
        let m = &mut self.minimums[self.current];
        *m = (*m).min(offset);
    }

    fn restart(&mut self, now: Instant, rtp_time: u32) {
        *self = Self::new(self.clock_rate);
        self.base = Some((now, rtp_time));
        self.last_at = Some(now);
        self.note_offset(now, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u32 = 90; // RTP ticks per ms at 90 kHz

    /// Packets every 40 ms of RTP time, arriving `delay(i)` ms after they were due.
    fn feed(
        lag: &mut CameraLag,
        t0: Instant,
        frames: std::ops::Range<u32>,
        delay: impl Fn(u32) -> u64,
    ) -> Vec<Lag> {
        frames
            .map(|i| {
                let at = t0 + Duration::from_millis(u64::from(i) * 40 + delay(i));
                lag.on_packet(at, 1_000_000u32.wrapping_add(i * 40 * MS))
            })
            .collect()
    }

    #[test]
    fn jitter_is_live_and_a_backlog_is_dropped_until_caught_up() {
        let t0 = Instant::now();
        let mut lag = CameraLag::new(90_000);
        // 10 s of packets with up to 300 ms of jitter: all live.
        let jittery = feed(&mut lag, t0, 0..250, |i| u64::from(i * 37 % 300));
        assert!(jittery.iter().all(|l| *l == Lag::Live));
        // camgate stalls: packets come later and later, 100 ms more each (a backlog building),
        // then it reads faster than real time until caught up.
        let delay = |i: u32| match i {
            250..=271 => u64::from(i - 250) * 100,
            272..=291 => 2100 - u64::from(i - 271) * 100,
            _ => 0,
        };
        let got = feed(&mut lag, t0, 250..330, delay);
        let first_dropped = got.iter().position(|l| *l != Lag::Live).unwrap();
        assert_eq!(got[first_dropped], Lag::FellBehind);
        assert_eq!(250 + first_dropped, 271, "dropped once over 2 s late");
        let resumed = first_dropped
            + got[first_dropped..]
                .iter()
                .position(|l| *l == Lag::Live)
                .unwrap();
        assert_eq!(250 + resumed, 288, "live again under 0.5 s late");
        assert!(got[first_dropped + 1..resumed]
            .iter()
            .all(|l| *l == Lag::Behind));
        assert!(got[resumed..].iter().all(|l| *l == Lag::Live));
        assert_eq!(got.iter().filter(|l| **l == Lag::FellBehind).count(), 1);
    }

    #[test]
    fn a_timeline_that_resumes_where_it_stopped_is_live_again_within_a_second() {
        let t0 = Instant::now();
        let mut lag = CameraLag::new(90_000);
        // 4 s of packets, a 5 s silence, then the camera's RTP time goes on where it stopped:
        // after a silence nothing is judged against the time before it.
        let got = feed(&mut lag, t0, 0..200, |i| if i < 100 { 0 } else { 5000 });
        assert!(got.iter().all(|l| *l == Lag::Live));
        // Without a silence (packets every 0.9 s meanwhile, each 40 ms of RTP time on): the
        // offset grows 0.86 s a packet; past 2 s it falls behind, and as it does not shrink,
        // 1 s later that is the new timeline.
        let mut at = t0 + Duration::from_secs(20);
        let mut rtp = 0u32;
        let mut got = Vec::new();
        for _ in 0..40 {
            got.push(lag.on_packet(at, rtp));
            at += Duration::from_millis(40);
            rtp = rtp.wrapping_add(40 * MS);
        }
        for _ in 0..4 {
            at += Duration::from_millis(900);
            rtp = rtp.wrapping_add(40 * MS);
            got.push(lag.on_packet(at, rtp));
        }
        for _ in 0..40 {
            at += Duration::from_millis(40);
            rtp = rtp.wrapping_add(40 * MS);
            got.push(lag.on_packet(at, rtp));
        }
        assert!(got[..40].iter().all(|l| *l == Lag::Live), "{got:?}");
        let fell = got.iter().position(|l| *l == Lag::FellBehind).unwrap();
        assert_eq!(fell, 42, "{got:?}");
        let live_again = fell + got[fell..].iter().position(|l| *l == Lag::Live).unwrap();
        assert!(live_again > fell + 1 && live_again <= fell + 30, "{got:?}");
        assert!(got[live_again..].iter().all(|l| *l == Lag::Live), "{got:?}");
    }

    #[test]
    fn a_camera_clock_off_by_one_percent_is_never_behind() {
        let t0 = Instant::now();
        let mut lag = CameraLag::new(90_000);
        // An hour: the camera's clock 1 % slow, so arrival drifts 36 s from RTP time.
        let got = feed(&mut lag, t0, 0..90_000, |i| u64::from(i) * 40 / 100);
        assert!(got.iter().all(|l| *l == Lag::Live));
    }

    #[test]
    fn rtp_time_wraps_and_jumps_without_false_lag() {
        let t0 = Instant::now();
        let mut lag = CameraLag::new(90_000);
        let mut at = t0;
        let mut rtp = u32::MAX - 20 * 40 * MS; // wraps after 20 packets
        for _ in 0..100 {
            assert_eq!(lag.on_packet(at, rtp), Lag::Live);
            at += Duration::from_millis(40);
            rtp = rtp.wrapping_add(40 * MS);
        }
        // The camera restarts its timeline (a reconnect, a new session): not lag; nor when it
        // goes back 10 s.
        for jump in [0x4000_0000, 0u32.wrapping_sub(10_000 * MS)] {
            rtp = rtp.wrapping_add(jump);
            for _ in 0..100 {
                assert_eq!(lag.on_packet(at, rtp), Lag::Live);
                at += Duration::from_millis(40);
                rtp = rtp.wrapping_add(40 * MS);
            }
        }
    }
}
