//! One RTSP client's outgoing media: the camera's RTP packets with their SSRC, sequence
//! numbers and timestamps rewritten to one continuous stream per track (the camera's change
//! when the gateway reconnects to it; the client's session must not notice), and, for
//! TCP-interleaved clients, a bounded send queue.
//!
//! A client that stops reading must not hold up anyone else: once its queue is over
//! [`MediaOutConfig::max_queued`], its media is dropped until the next keyframe finds the
//! queue drained below half of that; if it stays behind for [`MediaOutConfig::drop_after`], it
//! is dropped ([`Pushed::DropClient`]).

use std::time::{Duration, Instant};

use crate::rtsp::framing::write_interleaved;

/// Limits of one client's queue.
#[derive(Debug, Clone, Copy)]
pub struct MediaOutConfig {
    /// Bytes queued (not yet taken by the socket) above which media is skipped.
    pub max_queued: usize,
    /// How long a client may stay behind (skipping) before it is dropped.
    pub drop_after: Duration,
}

impl Default for MediaOutConfig {
    fn default() -> Self {
        // 4 MiB: about 8 s of a 4 Mbit/s camera, far beyond any jitter of a live link.
        MediaOutConfig {
            max_queued: 4 << 20,
            drop_after: Duration::from_secs(10),
        }
    }
}

/// What [`MediaOut::push_interleaved`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Skipped: the client is behind and waits for a keyframe.
    Skipped,
    /// The client has been behind too long: close its connection.
    DropClient,
}

/// Per-track rewriting state.
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    /// The camera's SSRC of the last packet, and what was added to its sequence numbers and
    /// timestamps; `None` before the first packet.
    input: Option<(u32, u16, u32)>,
    /// The last packet written: sequence number, timestamp, when.
    last_out: Option<(u16, u32, Instant)>,
    clock_rate: u32,
    /// RTP packets and payload bytes written (for sender reports).
    packets: u32,
    octets: u32,
}

/// One client's media (see the module docs).
#[derive(Debug)]
pub struct MediaOut {
    config: MediaOutConfig,
    ssrc: u32,
    tracks: Vec<Track>,
    /// Queued interleaved bytes; `queue[sent..]` is still to be written.
    queue: Vec<u8>,
    sent: usize,
    /// Skipping since then, waiting for a keyframe.
    behind_since: Option<Instant>,
    skipped: u64,
    /// A GOP was queued at once (a player starting): once written, the queue gives back what
    /// it grew to (a GOP is 10-100 times what a live turn queues).
    burst: bool,
}

/// Capacity the queue keeps after a burst: far more than a live turn's packets.
const KEPT_CAPACITY: usize = 64 * 1024;

impl MediaOut {
    /// For a session announcing `ssrc`, with tracks of these RTP clock rates.
    pub fn new(config: MediaOutConfig, ssrc: u32, clock_rates: &[u32]) -> Self {
        MediaOut {
            config,
            ssrc,
            tracks: clock_rates
                .iter()
                .map(|&clock_rate| Track {
                    clock_rate,
                    ..Track::default()
                })
                .collect(),
            queue: Vec::new(),
            sent: 0,
            behind_since: None,
            skipped: 0,
            burst: false,
        }
    }

    /// What was just queued is a burst (the GOP a player starts on): see `burst`.
    pub fn queued_burst(&mut self) {
        self.burst = true;
    }

    /// Starts the tracks afresh (a new PLAY), keeping what is queued (the PLAY answer).
    pub fn set_tracks(&mut self, clock_rates: &[u32]) {
        self.tracks = clock_rates
            .iter()
            .map(|&clock_rate| Track {
                clock_rate,
                ..Track::default()
            })
            .collect();
        self.behind_since = None;
    }

    /// The camera's RTP session started over (the gateway reconnected to it): the next packet
    /// of each track continues the client's numbering, whatever its SSRC (many cameras keep a
    /// fixed SSRC across sessions, so a new SSRC alone does not tell).
    pub fn source_restarted(&mut self) {
        for t in &mut self.tracks {
            t.input = None;
        }
    }

    /// Appends `packet` (RTP of `track`), rewritten, to `out`. Returns false (and writes
    /// nothing) for a packet that is not RTP or a track that does not exist.
    ///
    /// The first packet after an SSRC change or [`source_restarted`](Self::source_restarted)
    /// continues the previous numbering: sequence +1, timestamp advanced by the wall time
    /// between them.
    pub fn rewrite(
        &mut self,
        now: Instant,
        track: usize,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(t) = self.tracks.get_mut(track) else {
            return false;
        };
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return false;
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let (seq_add, ts_add) = match (t.input, t.last_out) {
            (Some((s, seq_add, ts_add)), _) if s == ssrc => (seq_add, ts_add),
            (_, Some((last_seq, last_ts, at))) => {
                // A new camera session: carry on from where the client is.
                let elapsed = now.saturating_duration_since(at);
                let ticks = (elapsed.as_secs_f64() * f64::from(t.clock_rate)) as u64;
                let next_ts = last_ts.wrapping_add(ticks.max(1) as u32);
                (
                    last_seq.wrapping_add(1).wrapping_sub(seq),
                    next_ts.wrapping_sub(ts),
                )
            }
            (_, None) => (0, 0),
        };
        t.input = Some((ssrc, seq_add, ts_add));
        let (seq, ts) = (seq.wrapping_add(seq_add), ts.wrapping_add(ts_add));
        // Keep the newest: with reordering the last written may be older, which only shifts
        // where a future reconnect continues from by a packet.
        t.last_out = Some((seq, ts, now));
        t.packets = t.packets.wrapping_add(1);
        t.octets = t.octets.wrapping_add((packet.len() - 12) as u32);
        out.extend_from_slice(&packet[..2]);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&packet[12..]);
        true
    }

    /// Queues `packet` of `track` as an interleaved frame on `channel`, unless the client is
    /// behind (see the module docs). `keyframe_start`: a client that is behind may resume here.
    pub fn push_interleaved(
        &mut self,
        now: Instant,
        track: usize,
        channel: u8,
        packet: &[u8],
        keyframe_start: bool,
    ) -> Pushed {
        if let Some(since) = self.behind_since {
            if now.saturating_duration_since(since) >= self.config.drop_after {
                return Pushed::DropClient;
            }
            if !(keyframe_start && self.queued() <= self.config.max_queued / 2) {
                self.skipped += 1;
                return Pushed::Skipped;
            }
            self.behind_since = None;
        } else if self.queued() >= self.config.max_queued {
            self.behind_since = Some(now);
            self.skipped += 1;
            return Pushed::Skipped;
        }
        let mut scratch = std::mem::take(&mut self.queue);
        if self.sent > 0 && self.sent == scratch.len() {
            scratch.clear();
            self.sent = 0;
        }
        let at = scratch.len();
        scratch.extend_from_slice(&[0; 4]);
        if self.rewrite(now, track, packet, &mut scratch) && scratch.len() - at - 4 <= 0xFFFF {
            let len = (scratch.len() - at - 4) as u16;
            scratch[at] = b'$';
            scratch[at + 1] = channel;
            scratch[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        } else {
            scratch.truncate(at);
        }
        self.queue = scratch;
        Pushed::Queued
    }

    /// Queues an RTSP answer or other bytes that must not be skipped (they do not count
    /// against the client being behind: they are few).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.queue.extend_from_slice(bytes);
    }

    /// The camera's sender report for `track` (its NTP time and the RTP time it pairs with),
    /// translated to this client's numbering and queued on `channel`: players pair audio and
    /// video by these. Nothing before the track's first packet (no offset is known yet).
    pub fn push_sender_report(&mut self, track: usize, channel: u8, ntp_time: u64, rtp_time: u32) {
        if let Some(sr) = self.sender_report(track, ntp_time, rtp_time) {
            self.push_rtcp(channel, &sr);
        }
    }

    /// The sender report of [`push_sender_report`](Self::push_sender_report), for a UDP
    /// client's RTCP port instead of the queue.
    pub fn sender_report(&self, track: usize, ntp_time: u64, rtp_time: u32) -> Option<[u8; 28]> {
        let t = self.tracks.get(track)?;
        let (_, _, ts_add) = t.input?;
        let mut sr = [0u8; 28];
        sr[..4].copy_from_slice(&[0x80, 200, 0, 6]);
        sr[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        sr[8..16].copy_from_slice(&ntp_time.to_be_bytes());
        sr[16..20].copy_from_slice(&rtp_time.wrapping_add(ts_add).to_be_bytes());
        sr[20..24].copy_from_slice(&t.packets.to_be_bytes());
        sr[24..28].copy_from_slice(&t.octets.to_be_bytes());
        Some(sr)
    }

    /// Queues an RTCP packet (a sender report) as an interleaved frame, never skipped.
    pub fn push_rtcp(&mut self, channel: u8, packet: &[u8]) {
        if packet.len() <= 0xFFFF {
            write_interleaved(&mut self.queue, channel, packet);
        }
    }

    /// Bytes waiting for the socket.
    pub fn pending(&self) -> &[u8] {
        &self.queue[self.sent..]
    }

    /// The socket took `n` bytes of [`pending`](Self::pending).
    pub fn consume(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.queue.len());
        if self.sent == self.queue.len() {
            self.queue.clear();
            self.sent = 0;
            if std::mem::take(&mut self.burst) {
                self.queue.shrink_to(KEPT_CAPACITY);
            }
        } else if self.sent > 64 * 1024 && self.sent * 2 > self.queue.len() {
            // Compact once most of the buffer is written: bounded memory, rare copies.
            self.queue.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queue.len() - self.sent
    }

    /// Packets skipped so far (for metrics).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::framing::{Frame, Framer};

    fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0x60];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn fields(p: &[u8]) -> (u16, u32, u32, &[u8]) {
        (
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            &p[12..],
        )
    }

    #[test]
    fn a_camera_reconnect_continues_the_clients_numbering() {
        let t0 = Instant::now();
        let mut m = MediaOut::new(MediaOutConfig::default(), 0xAABB_CCDD, &[90000]);
        let mut out = Vec::new();
        for i in 0..3u16 {
            out.clear();
            assert!(m.rewrite(
                t0,
                0,
                &rtp(1000 + i, 5000 + 3000 * u32::from(i), 7, b"x"),
                &mut out
            ));
            // First session: numbers pass through, SSRC is the session's.
            assert_eq!(
                fields(&out),
                (1000 + i, 5000 + 3000 * u32::from(i), 0xAABB_CCDD, &b"x"[..])
            );
        }
        // The camera comes back 2 s later with a new SSRC, sequence and timestamp base.
        let t1 = t0 + Duration::from_secs(2);
        for i in 0..3u16 {
            out.clear();
            assert!(m.rewrite(
                t1,
                0,
                &rtp(50 + i, 9 + 3000 * u32::from(i), 8, b"y"),
                &mut out
            ));
            let (seq, ts, ssrc, payload) = fields(&out);
            assert_eq!(seq, 1003 + i);
            assert_eq!(ts, 11000 + 180_000 + 3000 * u32::from(i));
            assert_eq!((ssrc, payload), (0xAABB_CCDD, &b"y"[..]));
        }
        // A camera that keeps its SSRC across sessions: told by the gateway.
        m.source_restarted();
        let t2 = t1 + Duration::from_secs(1);
        out.clear();
        assert!(m.rewrite(t2, 0, &rtp(7000, 123, 8, b"z"), &mut out));
        assert_eq!(fields(&out).0, 1006);
        assert_eq!(fields(&out).1, 11000 + 180_000 + 6000 + 90_000);
        // Wrapping sequence numbers and timestamps stay continuous.
        out.clear();
        assert!(m.rewrite(t1, 0, &rtp(u16::MAX, u32::MAX, 9, b""), &mut out));
        assert!(
            !m.rewrite(t1, 1, &rtp(1, 1, 9, b""), &mut out),
            "no such track"
        );
        assert!(
            !m.rewrite(t1, 0, &[0x80, 0x60, 0, 1], &mut out),
            "too short"
        );
    }

    fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        Framer::new()
            .push(bytes, &mut |f| {
                if let Frame::Interleaved { channel, data } = f {
                    v.push((channel, data.to_vec()));
                }
                true
            })
            .unwrap();
        v
    }

    /// The GOP a player starts on grows the queue to hundreds of KB; once written, that goes
    /// back (measured: 218 KB RSS per TCP player at 100 players of a 2 Mbit/s camera, against
    /// 53 KB before players started on the GOP). Live turns keep their capacity: no allocation
    /// per turn.
    #[test]
    fn the_queue_gives_back_a_start_burst_once_written() {
        let t0 = Instant::now();
        let mut m = MediaOut::new(MediaOutConfig::default(), 1, &[90000]);
        let packet = rtp(1, 1, 5, &[0; 1400]);
        for _ in 0..200 {
            m.push_interleaved(t0, 0, 0, &packet, true);
        }
        m.queued_burst();
        assert!(m.queue.capacity() >= 200 * 1400);
        let n = m.pending().len();
        m.consume(n);
        assert!(
            m.queue.capacity() <= KEPT_CAPACITY,
            "{}",
            m.queue.capacity()
        );
        // A large live batch (a keyframe) keeps what it grew to.
        for _ in 0..100 {
            m.push_interleaved(t0, 0, 0, &packet, false);
        }
        let grown = m.queue.capacity();
        let n = m.pending().len();
        m.consume(n);
        assert_eq!(m.queue.capacity(), grown);
    }

    #[test]
    fn queued_packets_frame_back() {
        let t0 = Instant::now();
        let mut m = MediaOut::new(MediaOutConfig::default(), 1, &[90000, 8000]);
        assert_eq!(
            m.push_interleaved(t0, 0, 0, &rtp(1, 1, 5, b"video"), true),
            Pushed::Queued
        );
        m.push_rtcp(1, &[0x80, 200, 0, 6]);
        assert_eq!(
            m.push_interleaved(t0, 1, 2, &rtp(9, 9, 6, b"audio"), false),
            Pushed::Queued
        );
        let f = frames(m.pending());
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].0, fields(&f[0].1).3), (0, &b"video"[..]));
        assert_eq!(f[1], (1, vec![0x80, 200, 0, 6]));
        assert_eq!((f[2].0, fields(&f[2].1).2), (2, 1));
        // Partial writes.
        let all = m.pending().to_vec();
        m.consume(5);
        assert_eq!(m.pending(), &all[5..]);
        m.consume(all.len());
        assert_eq!(m.queued(), 0);
    }

    #[test]
    fn sender_reports_follow_the_rewritten_timestamps() {
        let t0 = Instant::now();
        let mut m = MediaOut::new(MediaOutConfig::default(), 0xAB, &[90000]);
        m.push_sender_report(0, 1, 42, 1000);
        assert_eq!(m.queued(), 0, "no report before the first packet");
        m.push_interleaved(t0, 0, 0, &rtp(10, 1000, 5, b"abc"), true);
        // The camera comes back with other numbers, then reports.
        m.source_restarted();
        m.push_interleaved(
            t0 + Duration::from_secs(1),
            0,
            0,
            &rtp(500, 77_000, 5, b"de"),
            true,
        );
        m.push_sender_report(0, 1, 0x1122_3344_5566_7788, 77_000);
        let f = frames(m.pending());
        let (channel, sr) = &f[2];
        assert_eq!(*channel, 1);
        assert_eq!(sr.len(), 28);
        assert_eq!(&sr[..2], &[0x80, 200]);
        assert_eq!(u32::from_be_bytes(sr[4..8].try_into().unwrap()), 0xAB);
        assert_eq!(
            u64::from_be_bytes(sr[8..16].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        // The RTP time of the packet it pairs with, as the client got it.
        let (_, sent_ts, _, _) = fields(&f[1].1);
        assert_eq!(u32::from_be_bytes(sr[16..20].try_into().unwrap()), sent_ts);
        assert_eq!(
            u32::from_be_bytes(sr[20..24].try_into().unwrap()),
            2,
            "packets"
        );
        assert_eq!(
            u32::from_be_bytes(sr[24..28].try_into().unwrap()),
            5,
            "payload bytes"
        );
    }

    /// A client that stops reading: skipped from the overflow to a keyframe found with the
    /// queue drained, and dropped if it never drains.
    #[test]
    fn a_stalled_client_skips_to_a_keyframe_then_is_dropped() {
        let t0 = Instant::now();
        let config = MediaOutConfig {
            max_queued: 10_000,
            drop_after: Duration::from_secs(10),
        };
        let mut m = MediaOut::new(config, 1, &[90000]);
        let payload = [0u8; 988]; // 1,000-byte packets, 1,004 bytes framed
        let mut seq = 0u16;
        let mut push = |m: &mut MediaOut, at: Duration, key: bool| {
            seq += 1;
            m.push_interleaved(t0 + at, 0, 0, &rtp(seq, 0, 5, &payload), key)
        };
        for _ in 0..10 {
            assert_eq!(push(&mut m, Duration::ZERO, false), Pushed::Queued);
        }
        // Full: skipped, keyframe or not, while the queue stays over half full.
        assert_eq!(push(&mut m, Duration::from_secs(1), false), Pushed::Skipped);
        assert_eq!(push(&mut m, Duration::from_secs(2), true), Pushed::Skipped);
        m.consume(4_000);
        assert_eq!(
            push(&mut m, Duration::from_secs(3), true),
            Pushed::Skipped,
            "still over half"
        );
        m.consume(2_000);
        assert_eq!(
            push(&mut m, Duration::from_secs(4), false),
            Pushed::Skipped,
            "not a keyframe"
        );
        assert_eq!(push(&mut m, Duration::from_secs(5), true), Pushed::Queued);
        assert_eq!(push(&mut m, Duration::from_secs(5), false), Pushed::Queued);
        assert_eq!(m.skipped(), 4);
        // Now it stops reading for good.
        while push(&mut m, Duration::from_secs(6), false) == Pushed::Queued {}
        assert_eq!(push(&mut m, Duration::from_secs(15), true), Pushed::Skipped);
        assert_eq!(
            push(&mut m, Duration::from_secs(16), true),
            Pushed::DropClient
        );
        assert!(m.queued() <= 10_000 + 1_004);
    }
}
