//! A viewer's media: packets written to its `Rtc` (rebased, paced when its link is congested,
//! replayed from the GOP cache), what comes back from the browser, and the datagrams out.

use super::*;

/// The video a congested viewer may be sent: whole frames while the credit lasts, then
/// nothing until a keyframe once it has recovered. The link's queue stays short, and what
/// the browser shows is late by at most about `MAX_DEBT`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Bytes per second.
    rate: f64,
    /// Bytes that may still be sent (negative: owed).
    credit: f64,
    at: Instant,
}

/// Credit saved up while skipping: a keyframe can go out in one burst.
const MAX_CREDIT: Duration = Duration::from_secs(1);
/// Owed this much (in time at the rate), a viewer skips to the next keyframe.
const MAX_DEBT: Duration = Duration::from_millis(500);

impl Budget {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.credit = (self.credit + self.rate * elapsed).min(self.rate * MAX_CREDIT.as_secs_f64());
    }

    fn over(&self) -> bool {
        self.credit < -self.rate * MAX_DEBT.as_secs_f64()
    }
}

impl Viewer {
    /// Sends nothing until the next keyframe, without a gap in the sequence numbers.
    pub fn wait_for_keyframe(&mut self) {
        if self.last_seq.is_some() {
            self.awaiting_keyframe = true;
        }
    }

    /// Connection state and flags, for the gateway to act on after each input.
    pub fn state(&self) -> ViewerState {
        self.state
    }

    /// Holds the video to `bps` bit/s of payload (None: no limit): whole frames go out while
    /// the rate allows, then the viewer skips to the next keyframe.
    pub fn set_rate_limit(&mut self, now: Instant, bps: Option<u64>) {
        match (bps, self.budget.as_mut()) {
            (None, _) => self.budget = None,
            (Some(bps), Some(b)) => {
                b.refill(now);
                b.rate = bps as f64 / 8.0;
            }
            (Some(bps), None) => {
                self.budget = Some(Budget {
                    rate: bps as f64 / 8.0,
                    credit: 0.0,
                    at: now,
                })
            }
        }
    }

    /// The link is congested: skip to the next keyframe and send nothing more until `bytes`
    /// (what sits in the link's queue) have had time to go through at the rate limit (call
    /// `set_rate_limit` first).
    pub fn skip_backlog(&mut self, bytes: u64) {
        if let Some(b) = self.budget.as_mut() {
            b.credit = b.credit.min(-(bytes as f64));
        }
        if self.last_seq.is_some() && !self.awaiting_keyframe {
            self.awaiting_keyframe = true;
            self.skips += 1;
            self.drop_resends();
        }
    }

    /// Forgets the packets str0m could resend. After a skip for congestion the browser still
    /// NACKs what the congested link lost, and resending frames it will never show would fill
    /// that link again (seen with real Chromium behind a 256 kbit/s bottleneck: up to 95 % of
    /// what it received for seconds after the skip were resends).
    fn drop_resends(&mut self) {
        self.set_video_rtx_cache();
    }

    /// (Re)makes str0m's resend history for the video, empty, with camgate's limits.
    pub(super) fn set_video_rtx_cache(&mut self) {
        let Some((mid, _)) = self.video else { return };
        self.guarded(|this| {
            if let Some(tx) = this.rtc.direct_api().stream_tx_by_mid(mid, None) {
                tx.set_rtx_cache(VIDEO_SEND_BUFFER, RTX_MAX_AGE, RTX_RATIO_CAP);
            }
        });
    }

    /// Skips to a keyframe made for congestion since the last call.
    pub fn take_skips(&mut self) -> u64 {
        std::mem::take(&mut self.skips)
    }

    /// The browser's newest receiver report on the video, with what had been sent by then
    /// (once per report).
    pub fn take_link_report(&mut self) -> Option<LinkReport> {
        self.link_report.take()
    }

    /// Clears the keyframe request flag; returns whether one was pending.
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.state.keyframe_requested)
    }

    /// Answers the browser's keyframe request (PLI/FIR) from the GOP cache: a camera behind
    /// RTSP can't be asked for a keyframe, and waiting for its next one freezes the picture
    /// for up to a GOP. The cached packets go out again as new packets: fresh sequence numbers
    /// after the last sent, and timestamps one tick apart just after the last sent frame, so
    /// the decoder takes them as the newest frames and the live ones that follow still come
    /// later. At most once per `MIN_REPLAY_INTERVAL` (browsers repeat PLIs until a keyframe
    /// arrives). Returns the replay to write (the gateway moves it over loop turns, see
    /// `GopCache::replay_from`), or `None` when there is no answer.
    pub fn answer_keyframe_request(
        &mut self,
        now: Instant,
        gop: &GopCache,
    ) -> Option<ReplayCursor> {
        let (Some((_, ext)), Some(last_ts)) = (self.last_seq, self.last_video_ts) else {
            return None;
        };
        let (first_seq, _) = gop.first_seq_and_last_ts()?;
        if self.awaiting_keyframe
            || !self.state.connected
            || self
                .last_replay
                .is_some_and(|t| now.saturating_duration_since(t) < MIN_REPLAY_INTERVAL)
        {
            return None;
        }
        let cursor = gop.cursor(Some(last_ts))?;
        self.last_replay = Some(now);
        self.last_seq = Some((first_seq.wrapping_sub(1), ext));
        Some(cursor)
    }

    /// A replay starts over at a keyframe whose relay sequence number is `first_seq` (a new
    /// GOP began while it was under way): what was skipped of the old one is no loss, the
    /// browser must not NACK it.
    pub fn restart_replay_at(&mut self, first_seq: u16) {
        if let Some((_, ext)) = self.last_seq {
            self.last_seq = Some((first_seq.wrapping_sub(1), ext));
        }
    }

    /// Whether the video waits for the next keyframe (a skip, a congested link, a resync).
    pub fn is_awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// camgate's ICE ufrag for this viewer: browsers' connectivity checks name it.
    pub fn ice_ufrag(&self) -> &str {
        &self.ice_ufrag
    }

    /// Whether a datagram (or, over TCP, a frame) from `source` belongs to this viewer (STUN
    /// username or known address).
    pub fn accepts(
        &self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        match Receive::new(proto, source, destination, data) {
            Ok(r) => self.rtc.accepts(&Input::Receive(now, r)),
            Err(_) => false,
        }
    }

    /// Runs one mutation of the `Rtc`; a panic inside str0m ends this viewer, not the server.
    fn guarded(&mut self, f: impl FnOnce(&mut Self)) {
        self.next_timeout = None;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if result.is_err() {
            tracing::error!("viewer's WebRTC stack panicked; dropping the viewer");
            self.state.failed = true;
        }
    }

    /// One datagram from the browser (STUN, DTLS, SRTP or SRTCP), or one RFC 4571 frame of
    /// its TCP connection; replies are appended to `out`. False: not a WebRTC packet.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        out: &mut VecDeque<Transmit>,
    ) -> bool {
        // A STUN message (first two bits zero, RFC 7983): the browser's connectivity check.
        let check = (proto, destination, source);
        if self.connect_deadline.is_some()
            && data.first().is_some_and(|b| *b < 4)
            && self.checks.len() < CHECKS_KEPT
            && !self.checks.contains(&check)
        {
            self.checks.push(check);
        }
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            return false; // not STUN, DTLS, RTP or RTCP: garbage on the shared port
        };
        self.last_heard = now;
        self.guarded(|this| {
            if let Err(e) = this.rtc.handle_input(Input::Receive(now, receive)) {
                tracing::debug!("viewer input rejected: {e}");
            }
            this.drain(out);
        });
        true
    }

    /// The transport of the candidate pair media goes out on (`None` before DTLS starts).
    pub fn transport(&self) -> Option<Protocol> {
        self.transport
    }

    /// The browser nominated one of its TURN relay candidates (media reaches it relayed).
    pub fn relayed(&self) -> bool {
        self.relayed
    }

    /// `transport` for logs and metrics: "udp", "tcp", "relay" (through the browser's TURN
    /// server), or "unknown" (not connected yet).
    pub fn transport_label(&self) -> &'static str {
        if self.relayed {
            return "relay";
        }
        match self.transport {
            Some(Protocol::Udp) => "udp",
            Some(Protocol::Tcp) => "tcp",
            Some(_) => "other",
            None => "unknown",
        }
    }

    /// camgate itself was stalled until `now`: the browser's silence until then is not held
    /// against it (its datagrams waited in, or were dropped by, camgate's socket).
    pub fn excuse_silence(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// Advances the viewer's timers to `now` (ICE, DTLS retransmits, RTCP); a browser silent for
    /// `SILENCE_TIMEOUT` is marked failed.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut VecDeque<Transmit>) {
        if let Some(deadline) = self.connect_deadline {
            if now >= deadline {
                if self.failure.is_none() {
                    self.failure = Some(self.connect_failure());
                }
                self.state.failed = true;
                return;
            }
        } else if now.saturating_duration_since(self.last_heard) > SILENCE_TIMEOUT {
            if !self.state.failed {
                tracing::info!("viewer silent for {SILENCE_TIMEOUT:?}: gone");
            }
            self.state.failed = true;
            return;
        }
        self.guarded(|this| {
            if let Err(e) = this.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!("viewer timeout error: {e}");
            }
            this.drain(out);
        });
    }

    /// Writes one audio packet captured at `wallclock` (on the stream's shared timeline, for lip
    /// sync). Audio starts with the first packet after the connection is up.
    pub fn send_audio(&mut self, packet: &AudioPacket, wallclock: Instant) {
        let Some((mid, pt)) = self.audio else { return };
        if !self.state.connected {
            return;
        }
        let seq = match self.audio_last_seq {
            None => 1,
            Some((last, ext)) => {
                let step = packet.seq.wrapping_sub(last);
                if step == 0 || step >= 0x8000 {
                    return;
                }
                ext + u64::from(step)
            }
        };
        self.audio_last_seq = Some((packet.seq, seq));
        let write = RtpWrite::new(
            pt,
            SeqNo::from(seq),
            packet.rtp_time,
            wallclock,
            packet.payload.clone(),
        );
        self.write_rtp(mid, write);
    }

    /// Packets were written and the gateway listed this viewer for `flush`, which will set its
    /// timer: scheduling it before then would only tick str0m twice.
    pub fn awaiting_flush(&self) -> bool {
        self.flush_queued
    }

    /// True once after packets were written: the gateway then lists this viewer for `flush`.
    pub fn wants_flush(&mut self) -> bool {
        if self.unflushed && !self.flush_queued {
            self.flush_queued = true;
            return true;
        }
        false
    }

    /// Sends what `send_video`/`send_audio` wrote since the last flush. Written packets wait
    /// in str0m's queue until a timeout tick; ticking once per batch of camera packets rather
    /// than once per packet saves str0m's per-tick work (timers, statistics, DTLS and ICE
    /// polling) for all but one packet of each batch.
    /// True if it ticked str0m (something was written since the last flush).
    pub fn flush(&mut self, now: Instant, out: &mut VecDeque<Transmit>) -> bool {
        self.flush_queued = false;
        if !std::mem::take(&mut self.unflushed) {
            return false;
        }
        self.guarded(|this| {
            let _ = this.rtc.handle_input(Input::Timeout(now));
            this.drain(out);
        });
        true
    }

    /// Writes one relay packet with the RTP timestamp `rtp_time` (the camera's, or a replayed
    /// one) captured at `wallclock` (the stream's shared timeline, for lip sync). Before the
    /// first keyframe nothing is sent: a decoder can't use it.
    pub fn send_video(
        &mut self,
        now: Instant,
        packet: &VideoPacket,
        rtp_time: u32,
        wallclock: Instant,
    ) {
        let Some((mid, pt)) = self.video else { return };
        if !self.state.connected || (self.last_seq.is_none() && !packet.keyframe_start) {
            return;
        }
        if let Some(b) = self.budget.as_mut() {
            b.refill(now);
            // Owing too much at a frame boundary: skip to the next keyframe.
            if !self.awaiting_keyframe && self.at_frame_start && b.over() {
                self.awaiting_keyframe = true;
                self.skips += 1;
                self.drop_resends();
            }
        }
        if self.awaiting_keyframe {
            // A congested viewer resumes only once it has paid off its debt.
            let broke = self.budget.is_some_and(|b| b.credit < 0.0);
            if !packet.keyframe_start || broke {
                // Skipped packets are not losses: the browser must not NACK them.
                if let Some((_, ext)) = self.last_seq {
                    self.last_seq = Some((packet.seq.wrapping_sub(1), ext));
                }
                return;
            }
            self.awaiting_keyframe = false;
            if let Some((_, ext)) = self.last_seq {
                self.last_seq = Some((packet.seq.wrapping_sub(1), ext));
            }
        }
        let seq = match self.last_seq {
            // Start at 1: str0m derives the SRTP rollover counter from the extended number.
            None => 1,
            Some((last, ext)) => {
                let step = packet.seq.wrapping_sub(last);
                if step == 0 || step >= 0x8000 {
                    return; // already sent (a cached packet the live stream caught up with)
                }
                // Relay gaps stay gaps, so the browser sees losses and can NACK them.
                ext + u64::from(step)
            }
        };
        self.last_seq = Some((packet.seq, seq));
        self.last_video_ts = Some(rtp_time);
        self.video_bytes += packet.payload.len() as u64;
        self.at_frame_start = packet.marker;
        if let Some(b) = self.budget.as_mut() {
            b.credit -= packet.payload.len() as f64;
        }
        let write = RtpWrite::new(
            pt,
            SeqNo::from(seq),
            rtp_time,
            wallclock,
            packet.payload.clone(),
        )
        .marker(packet.marker)
        .nackable(true);
        if packet.keyframe_start {
            self.state.playing = true;
        }
        self.write_rtp(mid, write);
    }

    /// Queues one packet on the stream of `mid`; `flush` makes it leave.
    fn write_rtp(&mut self, mid: Mid, write: RtpWrite) {
        self.guarded(|this| {
            let mut api = this.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                return;
            };
            tx.write_rtp(write);
            this.unflushed = true;
        });
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.next_timeout.is_some() {
            return self.next_timeout;
        }
        // Draining is cheap when idle and leaves `Timeout` as the next output.
        match self.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                // Until connected, the connect deadline is a deadline too.
                let t = self.connect_deadline.map_or(t, |d| t.min(d));
                self.next_timeout = Some(t);
                Some(t)
            }
            _ => None,
        }
    }

    /// Why the connection did not come up within the ICE timeout (`None`: it did, or the
    /// timeout has not passed). The text names what was tried, for the viewer's FAILED status.
    pub fn connect_failure_reason(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn connect_failure(&self) -> String {
        let secs = self.ice_timeout.as_secs_f32();
        let ours = if self.local_candidates.is_empty() {
            "camgate's answer had no candidates (announce_ips?)".to_owned()
        } else {
            format!("camgate's {}", and_list(&self.local_candidates))
        };
        if self.checks.is_empty() {
            return format!(
                "no ICE connectivity: {ours} got no check from the browser within {secs} s \
                 (a firewall or NAT between them?)"
            );
        }
        let pairs: Vec<String> = (self.checks.iter())
            .map(|(proto, local, remote)| {
                format!("{} {local} from {remote}", proto.to_string().to_uppercase())
            })
            .collect();
        let pairs = and_list(&pairs);
        if self.ice_connected {
            format!(
                "no DTLS: the browser's ICE checks reached camgate ({pairs}) but the DTLS \
                 handshake did not complete within {secs} s (DTLS blocked on the path, or the \
                 certificate refused?)"
            )
        } else {
            format!(
                "ICE did not complete: the browser's checks reached camgate ({pairs}) but it \
                 never nominated a pair within {secs} s (camgate's answers do not reach it?)"
            )
        }
    }

    /// Ends the connection when the gateway drops the viewer; `is_alive` turns false.
    pub fn close(&mut self) {
        self.next_timeout = None;
        self.rtc.disconnect();
    }

    /// Whether the viewer is still usable: not closed or disconnected by str0m, and not failed.
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive() && !self.state.failed
    }

    pub(super) fn drain(&mut self, out: &mut VecDeque<Transmit>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = Some(self.connect_deadline.map_or(t, |d| t.min(d)));
                    break;
                }
                // Full ICE pairs every local candidate with every remote one: a loopback socket
                // can't send to another host (the kernel says EINVAL), so don't try.
                Ok(Output::Transmit(t))
                    if t.source.ip().is_loopback() != t.destination.ip().is_loopback() => {}
                Ok(Output::Transmit(t)) => {
                    // DTLS and media go on the pair the browser nominated (STUN answers go
                    // back on every pair it checks): their transport is the viewer's.
                    let stun = t.contents.first().is_some_and(|b| *b < 4);
                    if !stun && self.transport != Some(t.proto) {
                        self.transport = Some(t.proto);
                    }
                    if !stun {
                        self.relayed = self.relay_addrs.contains(&t.destination);
                    }
                    out.push_back(t)
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.state.connected = true;
                        self.connect_deadline = None;
                    }
                    Event::IceConnectionStateChange(
                        IceConnectionState::Connected | IceConnectionState::Completed,
                    ) => self.ice_connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.state.failed = true
                    }
                    Event::KeyframeRequest(_) => self.state.keyframe_requested = true,
                    Event::MediaEgressStats(stats) => {
                        let (Some((mid, _)), Some(remote), Some((_, sent_seq))) =
                            (self.video, stats.remote.as_ref(), self.last_seq)
                        else {
                            continue;
                        };
                        let rr = (*remote.maximum_sequence_number, remote.packets_lost);
                        if stats.mid != mid || self.last_rr == Some(rr) {
                            continue;
                        }
                        self.last_rr = Some(rr);
                        self.link_report = Some(LinkReport {
                            at: stats.timestamp,
                            received_seq: rr.0,
                            lost: rr.1,
                            loss: stats.loss,
                            sent_seq,
                            sent_bytes: self.video_bytes,
                        });
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::info!("viewer failed: {e}");
                    self.state.failed = true;
                    break;
                }
            }
        }
    }
}
