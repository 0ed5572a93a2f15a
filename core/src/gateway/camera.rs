use super::*;

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
    pub fn handle_rtsp_connected(&mut self, stream: StreamId, now: Instant) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        client.handle_connected(now);
        self.after_stream_input(stream, now);
    }

    pub fn handle_rtsp_lost(&mut self, stream: StreamId, now: Instant) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        client.handle_connection_lost(now);
        self.after_stream_input(stream, now);
    }

    /// Bytes from a camera connection: RTSP responses and interleaved RTP, split anywhere.
    pub fn handle_rtsp_data(&mut self, stream: StreamId, now: Instant, data: &[u8]) {
        self.feed_camera(stream, now, CameraInput::Tcp(data));
    }

    /// A datagram on one of a camera's UDP sockets (RTP or RTCP of `track`).
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

    pub(super) fn feed_camera(&mut self, stream: StreamId, now: Instant, input: CameraInput<'_>) {
        self.advance(now);
        let Gateway {
            config,
            streams,
            viewers,
            unflushed,
            transmits,
            relay_out,
            audio_out,
            audio_fallback,
            relay_walls,
            audio_walls,
            fallback_walls,
            outputs,
            stats,
            ..
        } = self;
        let stopwatch = config.stopwatch;
        let placement = config.placement.as_ref();
        stats.camera_bytes_in += match input {
            CameraInput::Tcp(data) | CameraInput::Udp { data, .. } => data.len() as u64,
        };
        let Some(s) = streams.get_mut(&stream) else {
            return;
        };
        let Stream {
            source,
            relay,
            video_track,
            viewers: watching,
            mirrors,
            redacted,
            gop,
            bitrate,
            seq,
            audio_track,
            audio,
            b_frames,
            dropped_tracks,
            clock,
            video_clock,
            audio_clock,
            ..
        } = s;
        let Source::Camera(client) = source else {
            return;
        };
        let mut fan_out = FanOut {
            viewers,
            unflushed,
            transmits,
            outputs,
            stats,
            now,
        };
        let mut described_changed = false;
        let mut on_media = |m: MediaPacket<'_>| {
            if m.rtcp {
                // The camera's sender reports tie each track's RTP clock to its NTP clock.
                if let Some(sr) = parse_sender_report(m.data) {
                    if Some(m.track) == *video_track {
                        video_clock.sender_report(clock, now, sr.ntp_time, sr.rtp_time);
                    } else if Some(m.track) == *audio_track {
                        audio_clock.sender_report(clock, now, sr.ntp_time, sr.rtp_time);
                    }
                }
                return;
            }
            if Some(m.track) == *audio_track {
                let (Some(audio), Ok(packet)) = (audio.as_mut(), RtpPacket::parse(m.data)) else {
                    return;
                };
                audio_out.clear();
                audio_fallback.clear();
                if audio.is_transcoding() || audio.has_opus_fallback() {
                    let started = stopwatch.map(|clock| clock());
                    audio.push(&packet, audio_out);
                    fan_out.stats.audio_packets_transcoded += 1;
                    if let (Some(clock), Some(started)) = (stopwatch, started) {
                        fan_out.stats.transcode_nanos +=
                            clock().saturating_duration_since(started).as_nanos() as u64;
                    }
                } else {
                    audio.push(&packet, audio_out);
                }
                audio.take_fallback(audio_fallback);
                audio_walls.clear();
                for p in audio_out.iter() {
                    let input = audio.input_time(p.rtp_time).unwrap_or(packet.timestamp);
                    audio_walls.push(audio_clock.wallclock(clock, input, now));
                }
                fallback_walls.clear();
                for p in audio_fallback.iter() {
                    let input = audio
                        .fallback_input_time(p.rtp_time)
                        .unwrap_or(packet.timestamp);
                    fallback_walls.push(audio_clock.wallclock(clock, input, now));
                }
                fan_out.audio(
                    watching,
                    audio.output(),
                    (audio_out, audio_walls),
                    (audio_fallback, fallback_walls),
                );
                for &(worker, mirror) in mirrors.iter() {
                    let item = |fallback| {
                        move |(p, wall): (&AudioPacket, &Instant)| MirrorItem::Audio {
                            mirror,
                            packet: p.clone(),
                            wall: *wall,
                            fallback,
                        }
                    };
                    let main = audio_out.iter().zip(audio_walls.iter()).map(item(false));
                    let fallback = audio_fallback.iter().zip(fallback_walls.iter());
                    let items = main.chain(fallback.map(item(true)));
                    push_lane(placement, fan_out.outputs, worker, items);
                }
                return;
            }
            if Some(m.track) != *video_track {
                return;
            }
            let (Some(relay), Ok(packet)) = (relay.as_mut(), RtpPacket::parse(m.data)) else {
                return;
            };
            fan_out.stats.camera_packets_in += 1;
            if let SeqStep::Gap(missing) = seq.step(packet.sequence) {
                fan_out.stats.camera_packets_lost += u64::from(missing);
            }
            relay_out.clear();
            relay.push(&packet, relay_out);
            if !*b_frames && relay.has_b_frames() {
                // B-slices show up only after the keyframe, so viewers already got PLAYING:
                // tell them again, with the warning in the info.
                *b_frames = true;
                described_changed = true;
                tracing::warn!(url = %redacted, "{B_FRAMES_WARNING}");
                let info = stream_info(Some(&*relay), audio.as_ref(), true, dropped_tracks);
                fan_out.playing_again(watching, redacted, &info);
            }
            relay_walls.clear();
            for p in relay_out.iter() {
                bitrate.add(now, p.payload.len());
                gop.push(p);
                relay_walls.push(video_clock.wallclock(clock, p.rtp_time, now));
            }
            let relay = &*relay;
            fan_out.video(
                watching,
                gop,
                (relay_out, relay_walls),
                |ts| video_clock.wallclock(clock, ts, now),
                PlayingInfo {
                    redacted,
                    codec: relay.codec(),
                    info: || stream_info(Some(relay), audio.as_ref(), *b_frames, dropped_tracks),
                },
            );
            for &(worker, mirror) in mirrors.iter() {
                let items =
                    relay_out
                        .iter()
                        .zip(relay_walls.iter())
                        .map(|(p, wall)| MirrorItem::Video {
                            mirror,
                            packet: p.clone(),
                            wall: *wall,
                        });
                push_lane(placement, fan_out.outputs, worker, items);
            }
        };
        // Last line of defence: a bug reached by one camera's bytes (in parsing, relaying or
        // transcoding) fails that stream, not the server.
        let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match input {
            CameraInput::Tcp(data) => client.handle_input(now, data, &mut on_media),
            CameraInput::Udp {
                track,
                rtcp,
                source,
                data,
            } => client.handle_udp_input(now, track, rtcp, source, data, &mut on_media),
        }));
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
            return;
        }
        if described_changed {
            self.describe_to_mirrors(stream);
        }
        self.schedule_watchers(stream, now);
        self.after_stream_input(stream, now);
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
            if let Some(data) = client.poll_transmit() {
                self.outputs
                    .push_back(GatewayOutput::RtspSend { stream: id, data });
                continue;
            }
            if let Some(request) = client.poll_udp_request() {
                self.outputs.push_back(GatewayOutput::RtspUdpOpen {
                    stream: id,
                    track: request.track,
                });
                continue;
            }
            if let Some(t) = client.poll_udp_transmit() {
                if let Some(dest) = client.udp_destination(t.track) {
                    let port = if t.rtcp {
                        dest.rtcp_port
                    } else {
                        dest.rtp_port
                    };
                    self.outputs.push_back(GatewayOutput::RtspUdpSend {
                        stream: id,
                        track: t.track,
                        rtcp: t.rtcp,
                        host: dest.host,
                        port,
                        data: t.data,
                    });
                }
                continue;
            }
            if let Some(redirect) = client.poll_redirect() {
                // The client wants another server: a new TCP connection, same stream.
                tracing::info!(stream = id.0, host = %redirect.host, port = redirect.port, "camera redirects");
                self.outputs
                    .push_back(GatewayOutput::RtspClose { stream: id });
                self.outputs.push_back(GatewayOutput::RtspConnect {
                    stream: id,
                    host: redirect.host,
                    port: redirect.port,
                });
                continue;
            }
            let Some(event) = client.poll_event() else {
                break;
            };
            match event {
                RtspEvent::Playing { tracks } => {
                    let video = tracks.iter().position(|t| {
                        t.kind == MediaKind::Video
                            && VideoRelay::for_track(t, self.config.max_payload).is_some()
                    });
                    s.dropped_tracks = client
                        .dropped_tracks()
                        .iter()
                        .map(|(t, why)| {
                            format!("{:?} {}: {why}", t.kind, t.encoding).to_lowercase()
                        })
                        .collect();
                    for why in &s.dropped_tracks {
                        tracing::warn!(stream = id.0, url = %s.redacted, "track left out: {why}");
                    }
                    let resumed = s.played;
                    tracing::info!(stream = id.0, url = %s.redacted, tracks = tracks.len(), resumed, "camera playing");
                    let Some(index) = video else {
                        let info = "No common codecs: the camera sends neither H.264 nor VP8 video";
                        self.fail_stream(id, now, info);
                        return;
                    };
                    s.played = true;
                    s.reconnect_attempts = 0;
                    s.video_track = Some(index);
                    // A (re)started camera session brings its own clock mapping.
                    s.clock = StreamClock::default();
                    s.video_clock = TrackClock::new(tracks[index].clock_rate);
                    if !resumed {
                        s.relay = VideoRelay::for_track(&tracks[index], self.config.max_payload);
                    }
                    // Audio: the first audio track the camera set up, passed through or
                    // transcoded; one that can't be played is reported, the video plays on.
                    // After a reconnect the relay is kept so its output sequence continues.
                    let first_audio = tracks
                        .iter()
                        .enumerate()
                        .find(|(_, t)| t.kind == MediaKind::Audio);
                    s.audio_track = first_audio.map(|(a, _)| a);
                    if let Some((_, track)) = first_audio {
                        s.audio_clock = TrackClock::new(track.clock_rate);
                    }
                    if let Some((_, track)) = first_audio.filter(|_| s.audio.is_none()) {
                        match AudioRelay::new(track) {
                            Ok(relay) => {
                                tracing::info!(stream = id.0, url = %s.redacted, "audio: {}", relay.description());
                                s.audio = Some(relay);
                            }
                            Err(e) if self.config.rtsp.fail_on_track_error => {
                                let info = format!("Audio track can't be played: {e}");
                                self.fail_stream(id, now, &info);
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(stream = id.0, url = %s.redacted, "audio left out: {e}");
                                s.audio_track = None;
                                s.dropped_tracks
                                    .push(format!("audio {}: {e}", track.encoding.to_lowercase()));
                            }
                        }
                    }
                    if resumed {
                        // Same relays: their output sequences continue, so viewers keep their
                        // WebRTC sessions and resume on the camera's next keyframe.
                        self.resync_viewers(id);
                        for (worker, mirror) in self.streams[&id].mirrors.clone() {
                            self.push_mirror(worker, [MirrorItem::Resync { mirror }]);
                        }
                    } else {
                        self.answer_pending(id, now);
                        self.describe_to_mirrors(id);
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
        s.gop.clear();
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
        match RtspClient::new(&s.url, self.config.rtsp.clone(), now) {
            Ok(client) => {
                let (host, port) = (client.url().host().to_owned(), client.url().port());
                s.source = Source::Camera(Box::new(client));
                tracing::info!(stream = id.0, url = %s.redacted, "reconnecting to camera");
                self.stats.rtsp_reconnects += 1;
                self.stats.rtsp_connects += 1;
                self.outputs.push_back(GatewayOutput::RtspConnect {
                    stream: id,
                    host,
                    port,
                });
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
        for &v in &s.viewers {
            if let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) {
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
