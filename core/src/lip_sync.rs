//! Lip sync: one wallclock for every track of a stream.
//!
//! Browsers line audio up with video using the RTCP sender reports they get, which map each
//! track's RTP clock to NTP time. str0m writes those reports from the wallclock given with each
//! packet, so camgate must hand it, per packet, the instant the *camera* says the media was
//! captured: the camera's own sender reports map its RTP timestamps to its NTP clock, and the
//! first report of the stream pins that NTP clock to our `Instant`. Until a track's first
//! report arrives, its packets are placed at their arrival time.

use std::time::{Duration, Instant};

/// Seconds between the NTP epoch (1900) and the sender-report times, as a 32.32 fixed point.
fn ntp_to_duration(ntp: u64) -> Duration {
    let secs = ntp >> 32;
    let frac = ntp & 0xffff_ffff;
    Duration::from_secs(secs) + Duration::from_nanos((frac * 1_000_000_000) >> 32)
}

/// The stream-wide link between the camera's NTP clock and our monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamClock {
    /// (our instant, camera NTP) when the stream's first sender report arrived.
    epoch: Option<(Instant, Duration)>,
}

/// One track's mapping from RTP time to the camera's NTP time.
#[derive(Debug, Clone, Copy)]
pub struct TrackClock {
    clock_rate: u32,
    /// The latest sender report: (camera NTP, RTP time).
    report: Option<(Duration, u32)>,
}

impl TrackClock {
    /// A clock for a track at `clock_rate` Hz, unmapped until its first sender report.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            report: None,
        }
    }

    /// A camera sender report for this track arrived at `now`.
    pub fn sender_report(
        &mut self,
        stream: &mut StreamClock,
        now: Instant,
        ntp: u64,
        rtp_time: u32,
    ) {
        let ntp = ntp_to_duration(ntp);
        if stream.epoch.is_none() {
            stream.epoch = Some((now, ntp));
        }
        self.report = Some((ntp, rtp_time));
    }

    /// The instant the camera captured media stamped `rtp_time`, on our clock; `arrival` until
    /// the track has a sender report.
    pub fn wallclock(&self, stream: &StreamClock, rtp_time: u32, arrival: Instant) -> Instant {
        let (Some((report_ntp, report_rtp)), Some((epoch_at, epoch_ntp))) =
            (self.report, stream.epoch)
        else {
            return arrival;
        };
        // Signed distance from the report, in RTP units: packets may precede it.
        let ticks = i64::from(rtp_time.wrapping_sub(report_rtp) as i32);
        let offset_ns = ticks * 1_000_000_000 / i64::from(self.clock_rate);
        let base = epoch_at + report_ntp.saturating_sub(epoch_ntp);
        let placed = if offset_ns >= 0 {
            base + Duration::from_nanos(offset_ns as u64)
        } else {
            base.checked_sub(Duration::from_nanos(offset_ns.unsigned_abs()))
                .unwrap_or(base)
        };
        // A camera clock that jumped far from ours would stall or flood the browser's jitter
        // buffer; beyond 10 s the report is not trusted.
        if placed.max(arrival) - placed.min(arrival) > Duration::from_secs(10) {
            return arrival;
        }
        placed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntp(secs: f64) -> u64 {
        let whole = secs.floor() as u64;
        let frac = ((secs - secs.floor()) * 4_294_967_296.0) as u64;
        (whole << 32) | frac
    }

    #[test]
    fn before_any_report_packets_sit_at_their_arrival() {
        let now = Instant::now();
        let clock = TrackClock::new(90_000);
        assert_eq!(clock.wallclock(&StreamClock::default(), 1234, now), now);
    }

    #[test]
    fn audio_and_video_with_a_known_offset_land_on_one_timeline() {
        // The camera says: video RTP 900_000 and audio RTP 16_000 were both captured at
        // NTP 1000.0 s. The audio packets arrive 300 ms late (a camera buffering its audio).
        let t0 = Instant::now();
        let mut stream = StreamClock::default();
        let mut video = TrackClock::new(90_000);
        let mut audio = TrackClock::new(8_000);
        video.sender_report(&mut stream, t0, ntp(1000.0), 900_000);
        audio.sender_report(
            &mut stream,
            t0 + Duration::from_millis(300),
            ntp(1000.0),
            16_000,
        );

        // One second of media later, in each clock.
        let v = video.wallclock(&stream, 900_000 + 90_000, t0 + Duration::from_millis(1000));
        let a = audio.wallclock(&stream, 16_000 + 8_000, t0 + Duration::from_millis(1300));
        assert_eq!(v, t0 + Duration::from_secs(1));
        assert_eq!(
            a,
            t0 + Duration::from_secs(1),
            "the 300 ms arrival skew is gone"
        );
    }

    #[test]
    fn packets_before_the_report_and_across_the_rtp_wrap() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut stream = StreamClock::default();
        let mut video = TrackClock::new(90_000);
        video.sender_report(&mut stream, t0, ntp(50.5), u32::MAX - 44_999);
        // 0.5 s before the report, and 0.5 s after it (past the 32-bit wrap).
        assert_eq!(
            video.wallclock(&stream, u32::MAX - 89_999, t0),
            t0 - Duration::from_millis(500)
        );
        assert_eq!(
            video.wallclock(&stream, 0, t0),
            t0 + Duration::from_millis(500)
        );
    }

    #[test]
    fn an_implausible_report_is_ignored() {
        let t0 = Instant::now();
        let mut stream = StreamClock::default();
        let mut video = TrackClock::new(90_000);
        video.sender_report(&mut stream, t0, ntp(10.0), 0);
        // A packet stamped an hour after the report, arriving now: not trusted.
        let arrival = t0 + Duration::from_millis(40);
        assert_eq!(video.wallclock(&stream, 90_000 * 3600, arrival), arrival);
    }
}
