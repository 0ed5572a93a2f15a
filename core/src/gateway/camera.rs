use super::*;
use std::net::IpAddr;

use crate::camera_lag::Lag;
use crate::rtsp::RtspUrl;

/// A camera that stays behind is logged again after this long (the loop reports a backlog on
/// every read while it lasts).
const BEHIND_LOG_EVERY: Duration = Duration::from_secs(10);

/// The FAILED info of a stream whose camera connection would go to a host the rules refuse
/// (the target is in the log only: it may be a camera's internal redirect).
pub(super) const HOST_NOT_ALLOWED: &str = "camera host not allowed";

/// Bytes from a camera, on its RTSP connection or one of its UDP sockets.
#[derive(Clone, Copy)]
pub(super) enum CameraInput<'a> {
    Tcp(&'a [u8]),
    Udp {
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &'a [u8],
    },
}

impl Gateway {
    /// The TCP connection of `RtspConnect` is up: the RTSP client starts its requests.
    pub fn handle_rtsp_connected(&mut self, stream: StreamId, now: Instant) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        client.handle_connected(now);
        self.after_stream_input(stream, now);
    }

    /// The camera connection failed or closed: the stream reconnects (if it had played) or
    /// fails its viewers.
    pub fn handle_rtsp_lost(&mut self, stream: StreamId, now: Instant) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        client.handle_connection_lost(now);
        self.after_stream_input(stream, now);
    }

    /// Whether camgate may connect the camera connection of `stream` to `ip`, the address
    /// its current host (after redirects, after the name lookup) leads to; the loop connects
    /// to exactly this address. If not, the stream fails with "camera host not allowed" and
    /// the target is logged.
    pub fn camera_address_allowed(&mut self, stream: StreamId, now: Instant, ip: IpAddr) -> bool {
        let Some(s) = self.streams.get(&stream) else {
            return false;
        };
        let Source::Camera(client) = &s.source else {
            return true;
        };
        let host = client.url().host().to_owned();
        if self.host_allowed(&s.url, &host, |rules| rules.allows_address(&host, ip)) {
            return true;
        }
        tracing::warn!(stream = stream.0, url = %s.redacted, target = %host, %ip, "camera host not allowed: not connecting");
        self.fail_stream(stream, now, HOST_NOT_ALLOWED);
        false
    }

    /// `check` on the host rules, unless there are none or `host` is the host of the named
    /// stream whose URL is `url` (the operator's own camera).
    fn host_allowed(
        &self,
        url: &str,
        host: &str,
        check: impl FnOnce(&crate::host_rules::HostRules) -> bool,
    ) -> bool {
        let rules = &self.config.host_rules;
        let operators = || {
            self.config.named_streams.iter().any(|(_, named)| {
                named == url && RtspUrl::parse(named).is_ok_and(|u| u.host() == host)
            })
        };
        rules.is_open() || operators() || check(rules)
    }

    /// The TLS session of an `rtsps://` camera failed: the stream fails (or, if it had played,
    /// reconnects) with `why` in its FAILED info. `why` is the loop's account of the failure,
    /// e.g. the fingerprint of the certificate the camera presented.
    pub fn handle_rtsp_tls_failed(&mut self, stream: StreamId, now: Instant, why: String) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        client.handle_tls_failed(now, why);
        self.after_stream_input(stream, now);
    }

    /// The loop found a backlog in `stream`'s camera connection: camgate fell behind (starved
    /// of CPU). Its viewers (and players, and mirrors' viewers) skip to the next keyframe: the
    /// backlog is then only depacketized, which is cheap, instead of encrypted for every viewer
    /// as stale video, so camgate catches up within seconds and viewers resume on a keyframe.
    /// Called again for as long as the backlog lasts.
    pub fn handle_camera_behind(&mut self, stream: StreamId, now: Instant) {
        self.advance(now);
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        self.stats.camera_backlog_skips += 1;
        if s.behind_logged
            .is_none_or(|t| now.duration_since(t) >= BEHIND_LOG_EVERY)
        {
            s.behind_logged = Some(now);
            tracing::warn!(
                stream = stream.0,
                url = %s.redacted,
                "camgate fell behind this camera (its unread input is over the bound, or its media arrives over 2 s late: e.g. after a CPU stall): viewers skip the backlog to the next keyframe"
            );
        }
        let mirrors = s.mirrors.clone();
        self.resync_viewers(stream);
        for (worker, mirror) in mirrors {
            self.push_mirror(worker, [MirrorItem::Resync { mirror }]);
        }
    }

    /// Bytes from a camera connection: RTSP responses and interleaved RTP, split anywhere.
    /// Returns how many it took: all of them, unless datagrams for UDP players came due
    /// (`player_datagrams_due`) on the way. Then the driver sends them
    /// (`send_player_datagrams`) and hands over the rest: however many players a stream has,
    /// what waits for them stays near `PLAYER_DATAGRAMS_DUE`.
    #[must_use = "the bytes not taken must be handed over again"]
    pub fn handle_rtsp_data(&mut self, stream: StreamId, now: Instant, data: &[u8]) -> usize {
        self.feed_camera(stream, now, CameraInput::Tcp(data))
    }

    /// A datagram on one of a camera's UDP sockets (RTP or RTCP of `track`). The driver sends
    /// datagrams for UDP players whenever they are due (`player_datagrams_due`) before the next.
    pub fn handle_rtsp_udp(
        &mut self,
        stream: StreamId,
        now: Instant,
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &[u8],
    ) {
        self.feed_camera(
            stream,
            now,
            CameraInput::Udp {
                track,
                rtcp,
                source,
                data,
            },
        );
    }

    /// The loop bound a UDP port pair (`rtp_port`, `rtp_port + 1`) for a camera track, or
    /// could not (`None`): the client sets the track up over UDP or falls back to TCP.
    pub fn handle_rtsp_udp_ports(
        &mut self,
        stream: StreamId,
        now: Instant,
        track: usize,
        rtp_port: Option<u16>,
    ) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        match rtp_port {
            Some(port) => client.handle_udp_ports(now, track, port),
            None => client.handle_udp_ports_failed(now, track),
        }
        self.after_stream_input(stream, now);
    }

    /// Feeds a camera's input to its client and relays the media; returns the bytes taken (see
    /// `handle_rtsp_data`; a datagram is always taken whole).
    pub(super) fn feed_camera(
        &mut self,
        stream: StreamId,
        now: Instant,
        input: CameraInput<'_>,
    ) -> usize {
        self.advance(now);
        let len = match input {
            CameraInput::Tcp(data) | CameraInput::Udp { data, .. } => data.len(),
        };
        let piece = self.player_input_piece(stream);
        let raw_mirrors = self.take_raw_mirrors(stream);
        let mut lag = self.streams.get_mut(&stream).and_then(|s| s.lag.take());
        let Some((Source::Camera(client), pipeline, mut fan_out)) = self.media_of(stream, now)
        else {
            self.stats.camera_bytes_in += len as u64;
            self.put_raw_mirrors(stream, raw_mirrors);
            return len;
        };
        // Mirrors' players start on this worker's GOP (`camera_packets_wanted`).
        fan_out.keep_raw_gop |= !raw_mirrors.is_empty();
        let mut news = MediaNews::Nothing;
        // Set once the media relayed so far left `PLAYER_DATAGRAMS_DUE` waiting for UDP players.
        let due = std::cell::Cell::new(false);
        let (mut fell_behind, mut late) = (false, 0u64);
        let mut on_media = |m: MediaPacket<'_>| {
            // Media that arrives seconds late is dropped until camgate has caught up (see
            // `camera_lag`); sender reports go on (they only map times).
            if let Some((track, lag)) = lag.as_mut().filter(|_| !m.rtcp) {
                if m.track == *track && m.data.len() >= 12 {
                    let rtp_time = u32::from_be_bytes([m.data[4], m.data[5], m.data[6], m.data[7]]);
                    fell_behind |= lag.on_packet(now, rtp_time) == Lag::FellBehind;
                }
                if lag.is_behind() {
                    late += 1;
                    pipeline.skip_late(&m);
                    return;
                }
            }
            fan_out.send_to_players(&m);
            due.set(fan_out.player_udp.due());
            fan_out.send_raw_to_mirrors(&raw_mirrors, &m);
            if pipeline.on_media(now, MediaIn::Camera(m), &mut fan_out) == MediaNews::BFrames {
                news = MediaNews::BFrames;
            }
        };
        // Last line of defence: a bug reached by one camera's bytes (in parsing, relaying or
        // transcoding) fails that stream, not the server.
        let mut taken = 0;
        let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match input {
            // In pieces that each make about `PLAYER_DATAGRAMS_DUE` for UDP players, up to
            // the piece after which they are due.
            CameraInput::Tcp(data) => {
                // At least one piece, due or not: every call moves on.
                while taken < data.len() {
                    let end = data.len().min(taken.saturating_add(piece));
                    (client.handle_input(now, &data[taken..end])).for_each(&mut on_media);
                    taken = end;
                    if due.get() {
                        break;
                    }
                }
            }
            CameraInput::Udp {
                track,
                rtcp,
                source,
                data,
            } => {
                (client.handle_udp_input(now, track, rtcp, source, data)).for_each(&mut on_media);
                taken = data.len();
            }
        }));
        self.stats.camera_bytes_in += taken as u64;
        self.put_raw_mirrors(stream, raw_mirrors);
        if let Some(s) = self.streams.get_mut(&stream) {
            // Unless the camera replayed meanwhile (a new session sets a new one).
            if s.lag.is_none() {
                s.lag = lag;
            }
        }
        self.stats.camera_late_packets += late;
        if fell_behind {
            self.handle_camera_behind(stream, now);
        }
        if fed.is_err() {
            tracing::error!(
                stream = stream.0,
                "internal error while handling the camera's data; stream closed"
            );
            self.fail_stream(
                stream,
                now,
                "Failed by error: internal error while handling the camera's data",
            );
            return len;
        }
        if news == MediaNews::BFrames {
            if let Some(s) = self.streams.get(&stream) {
                let warning = s.pipeline.b_frames_warning().unwrap_or_default();
                tracing::warn!(url = %s.redacted, "{warning}");
            }
            self.describe_to_mirrors(stream);
        }
        self.schedule_watchers(stream, now);
        self.after_stream_input(stream, now);
        taken
    }

    /// The demo clip's frames due by `now`, relayed like a camera's packets.
    pub(super) fn feed_demo(&mut self, stream: StreamId, now: Instant) {
        let raw_mirrors = self.take_raw_mirrors(stream);
        let Some((Source::Demo(demo), pipeline, mut fan_out)) = self.media_of(stream, now) else {
            return self.put_raw_mirrors(stream, raw_mirrors);
        };
        fan_out.keep_raw_gop |= !raw_mirrors.is_empty();
        demo.handle_timeout(now, |m| {
            fan_out.send_to_players(&m);
            fan_out.send_raw_to_mirrors(&raw_mirrors, &m);
            pipeline.on_media(now, MediaIn::Camera(m), &mut fan_out);
        });
        self.put_raw_mirrors(stream, raw_mirrors);
        self.schedule_watchers(stream, now);
        self.schedule_stream(stream, now);
    }

    /// Writing media moved every watching viewer's str0m timers (indexing, not cloning the
    /// list: this runs for every camera read).
    pub(super) fn schedule_watchers(&mut self, stream: StreamId, now: Instant) {
        let count = self.streams.get(&stream).map_or(0, |s| s.viewers.len());
        for i in 0..count {
            let v = self.streams[&stream].viewers[i];
            let flushing = self.viewers.get(v).and_then(|e| e.viewer.as_ref());
            if flushing.is_some_and(|viewer| viewer.awaiting_flush()) {
                continue; // `flush_viewers` sets its timer after the tick it is due anyway
            }
            self.schedule_viewer(v, now);
        }
    }

    /// Drains a camera client after any input: its bytes to send and its events.
    pub(super) fn after_stream_input(&mut self, id: StreamId, now: Instant) {
        loop {
            let Some(s) = self.streams.get_mut(&id) else {
                return;
            };
            let Source::Camera(client) = &mut s.source else {
                return;
            };
            let event = match client.poll_output() {
                None => break,
                Some(RtspOutput::Transmit(data)) => {
                    self.outputs
                        .push_back(GatewayOutput::RtspSend { stream: id, data });
                    continue;
                }
                Some(RtspOutput::OpenUdp(request)) => {
                    self.outputs.push_back(GatewayOutput::RtspUdpOpen {
                        stream: id,
                        track: request.track,
                    });
                    continue;
                }
                Some(RtspOutput::UdpTransmit(t)) => {
                    self.outputs.push_back(GatewayOutput::RtspUdpSend {
                        stream: id,
                        track: t.track,
                        rtcp: t.rtcp,
                        host: t.host,
                        port: t.port,
                        data: t.data,
                    });
                    continue;
                }
                Some(RtspOutput::Redirect(redirect)) => {
                    // The client wants another server: a new TCP connection, same stream.
                    tracing::info!(stream = id.0, host = %redirect.host, port = redirect.port, "camera redirects");
                    let url = s.url.clone();
                    if !self.host_allowed(&url, &redirect.host, |rules| {
                        rules.allows_request(&redirect.host)
                    }) {
                        let url =
                            RtspUrl::parse(&url).map_or_else(|_| "?".into(), |u| u.redacted());
                        tracing::warn!(stream = id.0, %url, target = %redirect.host, "camera host not allowed: the camera redirected outside allowed_hosts; not following");
                        self.outputs
                            .push_back(GatewayOutput::RtspClose { stream: id });
                        self.fail_stream(id, now, HOST_NOT_ALLOWED);
                        return;
                    }
                    self.outputs
                        .push_back(GatewayOutput::RtspClose { stream: id });
                    self.outputs.push_back(GatewayOutput::RtspConnect {
                        stream: id,
                        host: redirect.host,
                        port: redirect.port,
                        tls: redirect.tls,
                    });
                    continue;
                }
                Some(RtspOutput::Event(event)) => event,
            };
            match event {
                RtspEvent::Playing { tracks } => {
                    let dropped_tracks: Vec<String> = client
                        .dropped_tracks()
                        .iter()
                        .map(|(t, why)| {
                            let track = format!("{:?} {}", t.kind, t.encoding).to_lowercase();
                            format!("{track}: {why}")
                        })
                        .collect();
                    if !self.source_playing(id, now, tracks, dropped_tracks) {
                        return;
                    }
                }
                RtspEvent::Failed(e) => {
                    let info = failure_info(&e);
                    if s.played && (s.pinned || !s.unwatched()) {
                        self.schedule_reconnect(id, now, &info);
                    } else {
                        self.fail_stream(id, now, &info);
                    }
                    return;
                }
                RtspEvent::Closed => {
                    self.close_stream(id);
                    return;
                }
            }
        }
        self.schedule_stream(id, now);
    }

    /// The stream's source (its camera, or the demo clip) plays `tracks`: its viewers and
    /// players are answered, or resume. False if the stream failed (nothing plays).
    pub(super) fn source_playing(
        &mut self,
        id: StreamId,
        now: Instant,
        tracks: Vec<crate::media::TrackInfo>,
        dropped_tracks: Vec<String>,
    ) -> bool {
        let Some(s) = self.streams.get_mut(&id) else {
            return false;
        };
        for why in &dropped_tracks {
            tracing::warn!(stream = id.0, url = %s.redacted, "track left out: {why}");
        }
        let resumed = s.played;
        tracing::info!(stream = id.0, url = %s.redacted, tracks = tracks.len(), resumed, "camera playing");
        let started = Started {
            resumed,
            max_payload: self.config.max_payload,
            fail_on_track_error: self.config.rtsp.fail_on_track_error,
            stream: id.0,
            redacted: &s.redacted,
        };
        let refusal = s
            .pipeline
            .camera_playing(&tracks, dropped_tracks, started)
            .err();
        if let Some(info) = refusal.as_deref().filter(|_| !s.has_players()) {
            // Nobody but browsers: the camera is refused as a whole.
            self.fail_stream(id, now, info);
            return false;
        }
        let was_refused = std::mem::replace(&mut s.browser_refusal, refusal.clone()).is_some();
        s.played = true;
        s.reconnect_attempts = 0;
        s.tracks = tracks.clone();
        // A new session is a new timeline (and maybe new tracks).
        let judged = (tracks
            .iter()
            .position(|t| t.kind == crate::media::MediaKind::Video))
        .or((!tracks.is_empty()).then_some(0));
        s.lag = judged.map(|t| (t, crate::camera_lag::CameraLag::new(tracks[t].clock_rate)));
        self.answer_players(id, now, &tracks);
        self.tracks_to_mirrors(id);
        if resumed {
            // Same relays: their output sequences continue, so viewers keep their
            // WebRTC sessions and resume on the camera's next keyframe.
            self.resync_viewers(id);
            for (worker, mirror) in self.streams[&id].mirrors.clone() {
                self.push_mirror(worker, [MirrorItem::Resync { mirror }]);
            }
        }
        if let Some(info) = refusal {
            // MJPEG and the like: RTSP players get it, browsers get FAILED with the reason.
            tracing::info!(stream = id.0, "camera served to RTSP players only: {info}");
            self.refuse_browsers(id, now, &info);
        } else if !resumed || was_refused {
            self.answer_pending(id, now);
            self.describe_to_mirrors(id);
        }
        true
    }

    /// The camera dropped after playing: close its connection and try again later, with
    /// backoff (1, 2, 4, ... 30 s), while the viewers stay connected.
    pub(super) fn schedule_reconnect(&mut self, id: StreamId, now: Instant, info: &str) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let delay =
            Duration::from_secs(1u64 << s.reconnect_attempts.min(5)).min(Duration::from_secs(30));
        s.reconnect_attempts += 1;
        s.reconnect_at = Some(now + delay);
        s.pipeline.clear_gop();
        s.raw_gop.clear();
        tracing::warn!(stream = id.0, url = %s.redacted, attempt = s.reconnect_attempts,
            "camera lost: {info}; reconnecting in {delay:?}");
        self.stats.rtsp_errors += 1;
        self.outputs
            .push_back(GatewayOutput::RtspClose { stream: id });
        self.schedule_stream(id, now);
    }

    pub(super) fn reconnect(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.reconnect_at = None;
        if !s.pinned && s.unwatched() {
            self.close_stream(id); // everyone left while the camera was down
            return;
        }
        let config = client_config(&self.config.rtsp, &mut self.rng);
        match RtspClient::new(&s.url, config, now) {
            Ok(client) => {
                let connect = rtsp_connect(id, client.url());
                s.source = Source::Camera(Box::new(client));
                tracing::info!(stream = id.0, url = %s.redacted, "reconnecting to camera");
                self.stats.rtsp_reconnects += 1;
                self.stats.rtsp_connects += 1;
                self.outputs.push_back(connect);
            }
            // The URL parsed before, so this can't happen; fail cleanly if it does.
            Err(e) => self.fail_stream(id, now, &e.to_string()),
        }
        self.schedule_stream(id, now);
    }

    /// After a reconnect the camera's stream starts over: every viewer waits for its next
    /// keyframe rather than decode P-frames that reference pictures it never got.
    pub(super) fn resync_viewers(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        for c in &s.players {
            if let Some(p) = self.players.get_mut(c) {
                p.restart();
            }
        }
        for &v in &s.viewers {
            let Some(entry) = self.viewers.get_mut(v) else {
                continue;
            };
            // The source paused (a camera reconnect, a skipped backlog) and the next keyframe
            // leaves as a burst: receiver reports spanning that say nothing of the viewer's
            // link (seen: a browser held to 90 kbit/s right after a camera restart). Its link is
            // judged afresh, as after a stall of camgate itself (`note_lateness`).
            entry.link = LinkMonitor::new();
            if let Some(viewer) = entry.viewer.as_mut() {
                viewer.wait_for_keyframe();
            }
        }
    }
}

/// The `info` a viewer sees when its camera fails, in the words of the Flashphoner SDK where it
/// has some ("Failed to connect to rtsp stream", "Rtsp stream not found", ...).
pub(super) fn failure_info(e: &RtspError) -> String {
    e.to_string()
}

/// The output that opens camera connection `stream` to `url`'s server.
pub(super) fn rtsp_connect(stream: StreamId, url: &RtspUrl) -> GatewayOutput {
    GatewayOutput::RtspConnect {
        stream,
        host: url.host().to_owned(),
        port: url.port(),
        tls: url.is_tls(),
    }
}

/// The configuration of the next RTSP client: every client gets its own seed, drawn from the
/// gateway's (`GatewayConfig::seed`).
pub(super) fn client_config(rtsp: &RtspConfig, rng: &mut SplitMix64) -> RtspConfig {
    RtspConfig {
        seed: rng.next_u64(),
        ..rtsp.clone()
    }
}
