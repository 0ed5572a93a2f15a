//! Bandwidth awareness: is a viewer's link carrying its stream?
//!
//! camgate relays one bitrate (the camera's) and can't re-encode, so a viewer whose link can't
//! carry it has two outcomes: packets queue up somewhere on the path (the picture falls
//! further and further behind) or the picture skips. We choose to skip. When a viewer's link
//! turns out congested it skips to the camera's next keyframe and sends nothing more until the
//! link's queue has had time to drain; from then on it is held to 85% of the bandwidth
//! measured (`Viewer::set_rate_limit`: whole frames while the credit lasts, then a skip to the
//! next keyframe). While the link carries all it is sent and holds no queue, the limit grows by
//! a quarter per report, and the viewer is back to normal once it reaches the stream's bitrate.
//! After `EVENT_AFTER` the Flashphoner SDK is told with the `notEnoughBandwidth` stream event
//! it knows ("<stream bit/s>/<network bit/s>"), at most once per `EVENT_INTERVAL`.
//!
//! Why not str0m's bandwidth estimator (`RtcConfig::enable_bwe`): it comes with a leaky-bucket
//! pacer that holds written RTP in str0m's queue and releases it at 1.1× the estimate. Every
//! keyframe burst would then leave later than written, every viewer would depend on its
//! estimate having ramped up to the camera's bitrate, and a congested viewer's latency would
//! build in our own queue (up to str0m's 2 s queue limit) rather than be cut. So there is no
//! pacer: packets leave when written, and congestion is read from what the browser reports
//! anyway. Its RTCP receiver reports (str0m's `MediaEgressStats`, polled every
//! `STATS_INTERVAL`) say how far in our sequence it has received and how many packets it lost;
//! against what we sent in the same time that gives the share of our packets that got
//! through, and the rate at which they did (the network's bandwidth, when it is the
//! bottleneck). Every browser sends receiver reports; nothing here needs TWCC or REMB.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often str0m is asked for the viewer's send statistics (which carry the latest receiver
/// report); short, so a report is compared with what we had sent when it arrived.
pub const STATS_INTERVAL: Duration = Duration::from_millis(250);

/// Reports are compared over at least this span: shorter ones are dominated by a keyframe
/// burst in flight or by a report's age.
const MIN_SPAN: Duration = Duration::from_secs(2);

/// Reports kept (they come about once a second).
const HISTORY: usize = 8;

/// Fewer packets sent in the span than this, or less than this share of the stream's bitrate
/// (of the limit, for a viewer held to one), tell nothing: the viewer is skipping or the
/// camera is idle, and a report's age (packets sent after the browser wrote it) would weigh
/// too much.
const MIN_PACKETS: u64 = 20;
const BUSY_SHARE: f64 = 0.5;

/// The link is the bottleneck when less than this share of the packets sent got through...
const DELIVERED_SHARE: f64 = 0.75;

/// ... or when the browser reports this much loss.
const LOSS: f32 = 0.10;

/// ... or, for a viewer already held to a rate, when what was sent and not yet received would
/// take this long to go through at that rate: a queue is building on the path. (A report is up to
/// `STATS_INTERVAL` plus a round trip old, so a healthy link shows some of this too.)
const QUEUE: Duration = Duration::from_secs(1);

/// Longest a skip waits for the link's queue to drain (see `judge_span`).
const MAX_DRAIN: Duration = Duration::from_secs(2);

/// A held-back viewer is allowed more only while the path holds less than this.
const PROBE_QUEUE: Duration = Duration::from_millis(300);

/// A link that carried this share of the stream's bitrate without loss or backlog is fine again.
const RECOVERED_SHARE: f64 = 0.75;

/// The stream event goes out once the link has been short this long (measured from the start of
/// the first report span that showed it), and over at least two reports.
pub const EVENT_AFTER: Duration = Duration::from_secs(3);

/// At most one event per viewer this often.
pub const EVENT_INTERVAL: Duration = Duration::from_secs(30);

/// Bytes of video payload over a sliding window of `BUCKETS` × `BUCKET`: the stream's bitrate,
/// counted once per stream (not per viewer), without allocating.
#[derive(Debug, Clone)]
pub struct BitrateMeter {
    buckets: [u64; BUCKETS],
    current: usize,
    /// Start of the current bucket.
    bucket_start: Option<Instant>,
    /// First byte counted (the window is shorter until it is full).
    started: Option<Instant>,
}

const BUCKET: Duration = Duration::from_millis(250);
const BUCKETS: usize = 16;

impl Default for BitrateMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl BitrateMeter {
    /// An empty meter; the window starts at the first `add`.
    pub fn new() -> Self {
        Self {
            buckets: [0; BUCKETS],
            current: 0,
            bucket_start: None,
            started: None,
        }
    }

    fn advance(&mut self, now: Instant) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            self.started = Some(now);
            return;
        };
        let steps = (now.saturating_duration_since(start).as_nanos() / BUCKET.as_nanos()) as u32;
        if steps == 0 {
            return;
        }
        for _ in 0..(steps as usize).min(BUCKETS) {
            self.current = (self.current + 1) % BUCKETS;
            self.buckets[self.current] = 0;
        }
        self.bucket_start = Some(start + BUCKET * steps);
    }

    /// Counts `bytes` of video payload sent at `now`.
    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.advance(now);
        self.buckets[self.current] += bytes as u64;
    }

    /// Bits per second over the window; None before a second's worth has been seen.
    pub fn bps(&mut self, now: Instant) -> Option<u64> {
        let started = self.started?;
        self.advance(now);
        let full =
            BUCKET * (BUCKETS as u32 - 1) + now.saturating_duration_since(self.bucket_start?);
        let span = now.saturating_duration_since(started).min(full);
        if span < Duration::from_secs(1) {
            return None;
        }
        let bytes: u64 = self.buckets.iter().sum();
        Some((bytes as f64 * 8.0 / span.as_secs_f64()) as u64)
    }

    /// Forgets everything counted: `bps` waits for a new second of data.
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

/// One receiver report of the browser, with what had been sent when it was read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkReport {
    /// When str0m produced the stats the report was read from.
    pub at: Instant,
    /// Highest (extended) sequence number the browser has received.
    pub received_seq: u64,
    /// Packets the browser counts as lost, in all.
    pub lost: u64,
    /// Fraction lost since the previous reports, as str0m averages it.
    pub loss: Option<f32>,
    /// Extended sequence number of the last video packet sent.
    pub sent_seq: u64,
    /// Video payload bytes sent to this viewer so far.
    pub sent_bytes: u64,
}

/// What the gateway should do after a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkVerdict {
    /// The link just turned out congested: skip to the next keyframe, and send nothing more
    /// until the link has had time to carry this many bytes (its queue).
    pub skip: Option<u64>,
    /// The rate (bit/s of video payload) the viewer may be sent from now on; None: no limit.
    pub limit: Option<u64>,
    /// Send the `notEnoughBandwidth` event: (stream bitrate, network bandwidth) in bit/s.
    pub event: Option<(u64, u64)>,
}

/// A congested viewer is sent this share of the bandwidth measured, so its queue drains.
const LIMIT_SHARE: f64 = 0.85;

/// While the link carries all it is sent, the limit grows by this factor per report: how a
/// congested viewer finds out that its link got better.
const PROBE_STEP: f64 = 1.25;

/// Per-viewer judgement of its link from its receiver reports, with hysteresis.
#[derive(Debug, Clone, Default)]
pub struct LinkMonitor {
    history: VecDeque<LinkReport>,
    /// Since when the link has carried less than the stream (None: it is fine, or unknown).
    short_since: Option<Instant>,
    last_event: Option<Instant>,
    /// The last measured bandwidth while short.
    estimate: Option<u64>,
    /// The rate the viewer is held to while congested.
    limit: Option<u64>,
    /// Reports in a row that found the link short.
    short_reports: u32,
}

impl LinkMonitor {
    /// A monitor with no reports yet: the link counts as fine until reports show otherwise.
    pub fn new() -> Self {
        Self {
            history: VecDeque::with_capacity(HISTORY),
            ..Self::default()
        }
    }

    /// Whether the viewer is congested: it skips to keyframes and gets no GOP bursts.
    pub fn congested(&self) -> bool {
        self.short_since.is_some()
    }

    /// The network bandwidth last measured while congested, in bit/s.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate.filter(|_| self.congested())
    }

    /// Takes a new receiver report. `stream_bps`: the stream's bitrate (video payload).
    pub fn on_report(&mut self, report: LinkReport, stream_bps: Option<u64>) -> LinkVerdict {
        let mut verdict = self.judge(report, stream_bps);
        verdict.limit = self.limit;
        verdict
    }

    fn judge(&mut self, report: LinkReport, stream_bps: Option<u64>) -> LinkVerdict {
        let verdict = LinkVerdict::default();
        let now = report.at;
        let base = self
            .history
            .iter()
            .rev()
            .find(|r| now.saturating_duration_since(r.at) >= MIN_SPAN)
            .copied();
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(report);
        let (Some(base), Some(stream_bps)) = (base, stream_bps.filter(|b| *b > 0)) else {
            return verdict;
        };
        let mut verdict = verdict;
        // The smallest backlog (packets sent, not yet received) any report of the span showed.
        let least_backlog = self
            .history
            .iter()
            .filter(|r| r.at >= base.at)
            .map(|r| r.sent_seq.saturating_sub(r.received_seq))
            .min()
            .unwrap_or(0);
        let short = self.judge_span((base, report), least_backlog, stream_bps, &mut verdict);
        // The event: the link has been short for a while, and a later report has not shown
        // it recovered (a viewer held to a rate below the stream's stays short). It goes out
        // only on a report that itself found the link short: a held viewer whose link got
        // better stays short while its limit climbs back, and must not be told again then with
        // an old estimate (seen in Chromium: a second event 30 s later, on a restored link).
        if let (Some(since), Some(estimate)) = (self.short_since, self.estimate) {
            self.short_reports += 1;
            if short
                && report.at.saturating_duration_since(since) >= EVENT_AFTER
                && self.short_reports >= 2
                && self
                    .last_event
                    .is_none_or(|t| report.at.saturating_duration_since(t) >= EVENT_INTERVAL)
            {
                self.last_event = Some(report.at);
                verdict.event = Some((stream_bps, estimate));
            }
        }
        verdict
    }

    /// Judges the span from `base` to `report`: congested (limit, maybe skip), fine (probe
    /// upwards, maybe recovered), or nothing to tell. True when it found the link short.
    fn judge_span(
        &mut self,
        (base, report): (LinkReport, LinkReport),
        least_backlog: u64,
        stream_bps: u64,
        verdict: &mut LinkVerdict,
    ) -> bool {
        let span = report.at.saturating_duration_since(base.at).as_secs_f64();
        let sent = report.sent_seq.saturating_sub(base.sent_seq);
        let sent_bytes = report.sent_bytes.saturating_sub(base.sent_bytes);
        let delivered = report
            .received_seq
            .saturating_sub(base.received_seq)
            .saturating_sub(report.lost.saturating_sub(base.lost))
            .min(sent.max(1) * 2);
        let sent_bps = sent_bytes as f64 * 8.0 / span;
        // Skipping, idle (a camera outage) or too few packets: a report's age would dominate.
        let expected = self.limit.unwrap_or(stream_bps) as f64;
        if sent < MIN_PACKETS || sent_bps < BUSY_SHARE * expected {
            return false;
        }
        let packet_bytes = sent_bytes as f64 / sent as f64;
        let network_bps = (delivered as f64 * packet_bytes * 8.0 / span) as u64;
        // What was sent and not yet received: in flight, or in a queue on the path; and, for
        // a viewer held to a rate, how long that takes to go through.
        let backlog =
            (report.sent_seq.saturating_sub(report.received_seq) as f64 * packet_bytes) as u64;
        let queue = self.limit.map_or(Duration::ZERO, |limit| {
            Duration::from_secs_f64(backlog as f64 * 8.0 / network_bps.max(limit).max(1) as f64)
        });
        let saturated = (delivered as f64) < DELIVERED_SHARE * sent as f64
            || report.loss.is_some_and(|l| l >= LOSS)
            || queue > QUEUE;
        // A held viewer's limit goes down only for a queue that lasted the whole span, or for
        // loss: a backlog that comes and goes is a keyframe burst in flight, not a smaller link
        // (lowering the limit on it made the limit ratchet down report after report).
        let lost = report.lost.saturating_sub(base.lost);
        let lower = self.limit.is_none_or(|limit| {
            let lasting = least_backlog as f64 * packet_bytes * 8.0 / limit.max(1) as f64;
            lasting > PROBE_QUEUE.as_secs_f64()
                || report.loss.is_some_and(|l| l >= LOSS)
                || lost as f64 >= (1.0 - DELIVERED_SHARE) * sent as f64
        });
        if saturated && network_bps < stream_bps {
            if lower {
                self.estimate = Some(network_bps);
                self.limit = Some((network_bps as f64 * LIMIT_SHARE) as u64);
            }
            if self.short_since.is_none() || queue > QUEUE {
                // Drain at most `MAX_DRAIN` at the limit: the backlog counts every packet sent
                // since the browser's report, and when the link is first found short that is
                // seconds of the full stream, most of it dropped on the way rather than queued
                // (seen in Chromium behind a 2 s queue: 4-5 s sending nothing). A longer queue
                // shows again in the next report and is drained then.
                let cap = self.limit.map_or(backlog, |l| {
                    (l as f64 / 8.0 * MAX_DRAIN.as_secs_f64()) as u64
                });
                verdict.skip = Some(backlog.min(cap));
            }
            self.short_since.get_or_insert(base.at);
            return true;
        } else if !saturated {
            let recovered = match self.limit {
                Some(_) if queue > PROBE_QUEUE => false,
                Some(limit) => {
                    let raised = (limit as f64 * PROBE_STEP) as u64;
                    self.limit = Some(raised);
                    raised >= stream_bps
                }
                None => sent_bps >= RECOVERED_SHARE * stream_bps as f64,
            };
            if recovered {
                self.short_since = None;
                self.estimate = None;
                self.limit = None;
                self.short_reports = 0;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_measures_a_steady_stream_over_its_window() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::new();
        assert_eq!(m.bps(t0), None);
        // 25 packets of 1000 bytes a second: 200 kbit/s.
        for i in 0..250u32 {
            m.add(t0 + Duration::from_millis(40) * i, 1000);
        }
        let bps = m.bps(t0 + Duration::from_secs(10)).unwrap();
        assert!((190_000..=210_000).contains(&bps), "{bps}");
        // Silence empties the window.
        assert_eq!(m.bps(t0 + Duration::from_secs(30)), Some(0));
    }

    fn report(t0: Instant, secs: f64, sent: u64, received: u64, lost: u64) -> LinkReport {
        LinkReport {
            at: t0 + Duration::from_secs_f64(secs),
            received_seq: received,
            lost,
            loss: None,
            sent_seq: sent,
            sent_bytes: sent * 1000,
        }
    }

    #[test]
    fn a_link_carrying_half_the_stream_is_reported_after_three_seconds_once() {
        let t0 = Instant::now();
        let mut m = LinkMonitor::new();
        let stream = Some(200_000);
        let mut events = Vec::new();
        let mut skips = 0;
        // 25 packets/s sent; 12.5 get through.
        for s in 0..40u64 {
            let v = m.on_report(report(t0, s as f64, 25 * s, 12 * s + s / 2, 0), stream);
            skips += usize::from(v.skip.is_some());
            if s >= 2 {
                let limit = v.limit.unwrap();
                assert!((75_000..=95_000).contains(&limit), "{limit}");
            }
            if let Some(e) = v.event {
                events.push((s, e));
            }
        }
        assert_eq!(events.len(), 2, "{events:?}"); // at 3 s and 30 s later
        let (at, (remote, network)) = events[0];
        assert_eq!(at, 3);
        assert_eq!(remote, 200_000);
        assert!((90_000..=110_000).contains(&network), "{network}");
        // The sender here ignores the limit, so the queue keeps growing: skip after skip.
        assert!(skips >= 30, "{skips}");
        assert!(m.congested());
    }

    #[test]
    fn a_link_that_keeps_up_is_never_reported_and_recovery_clears_it() {
        let t0 = Instant::now();
        let mut m = LinkMonitor::new();
        let stream = Some(200_000);
        for s in 0..20u64 {
            // Reports lag what was sent by a few packets: in flight.
            let v = m.on_report(
                report(t0, s as f64, 25 * s, (25 * s).saturating_sub(5), 0),
                stream,
            );
            assert_eq!(v, LinkVerdict::default(), "at {s}");
        }
        // Congested for a while, then fine again.
        let mut m = LinkMonitor::new();
        for s in 0..6u64 {
            m.on_report(report(t0, s as f64, 25 * s, 10 * s, 0), stream);
        }
        assert!(m.congested());
        // It carries all it is sent: the limit grows until it no longer holds anything back.
        for s in 6..12u64 {
            m.on_report(report(t0, s as f64, 25 * s, 25 * s - 5, 0), stream);
        }
        assert!(!m.congested());
        assert_eq!(
            m.on_report(report(t0, 12.0, 300, 295, 0), stream).limit,
            None
        );
    }

    #[test]
    fn a_held_viewers_limit_does_not_ratchet_down_on_keyframe_bursts_in_flight() {
        let t0 = Instant::now();
        let mut m = LinkMonitor::new();
        let stream = Some(200_000);
        // Congested: 10 of 25 packets a second get through, so it is held to 85 % of 80 kbit/s.
        for s in 0..6u64 {
            m.on_report(report(t0, s as f64, 25 * s, 10 * s, 0), stream);
        }
        let held = m.limit.unwrap();
        assert!((60_000..=75_000).contains(&held), "{held}");
        // The queue drains while nothing is sent.
        for s in 6..9u64 {
            m.on_report(report(t0, s as f64, 150, 150, 0), stream);
        }
        // Now it is sent 8 packets a second (64 kbit/s, within the limit) and the link carries
        // them all; every third report is read just after a keyframe burst of 12 packets was
        // written, which is still in flight.
        let mut sent = 150;
        for s in 9..30u64 {
            let burst = s % 3 == 0;
            sent += if burst { 12 } else { 8 };
            let in_flight = if burst { 12 } else { 1 };
            let v = m.on_report(report(t0, s as f64, sent, sent - in_flight, 0), stream);
            let limit = v.limit.unwrap_or(u64::MAX);
            assert!(
                limit >= held,
                "at {s}: the limit fell from {held} to {limit}"
            );
        }
        // Its limit has climbed meanwhile (the link carried all). The link then shrinks to 4
        // packets a second while it is sent 12: the queue lasts, so the limit follows.
        let (mut received, mut lowered) = (sent - 1, None);
        for s in 30..40u64 {
            sent += 12;
            received += 4;
            lowered = m
                .on_report(report(t0, s as f64, sent, received, 0), stream)
                .limit;
        }
        let lowered = lowered.unwrap();
        assert!((20_000..=35_000).contains(&lowered), "{lowered}");
    }

    #[test]
    fn a_skipping_viewer_is_neither_judged_nor_released() {
        let t0 = Instant::now();
        let mut m = LinkMonitor::new();
        let stream = Some(200_000);
        for s in 0..4u64 {
            m.on_report(report(t0, s as f64, 25 * s, 10 * s, 0), stream);
        }
        assert!(m.congested());
        // Nothing sent for a while: the queue drains, the state stays.
        for s in 4..8u64 {
            let v = m.on_report(report(t0, s as f64, 75, 75, 0), stream);
            assert_eq!(v.skip, None);
        }
        assert!(m.congested());
    }
}
