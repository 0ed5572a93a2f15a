use super::*;

/// Where a stream's media comes from.
pub(super) enum Source {
    /// This worker pulls the camera (boxed: a mirror needs none of its state).
    Camera(Box<RtspClient>),
    /// Worker `origin` pulls it and hands this worker its relayed packets (see `mirror`).
    Mirror(MirrorSource),
    /// The built-in demo camera's clip (`GatewayConfig::demo`), played here.
    Demo(Box<crate::demo::DemoSource>),
}

impl Source {
    /// This worker makes the stream's media (a camera or the demo), not a mirror.
    pub(super) fn is_origin(&self) -> bool {
        !matches!(self, Source::Mirror(_))
    }
}

pub(super) struct MirrorSource {
    pub(super) origin: usize,
    /// The camera stream's id on the origin (for the APIs).
    pub(super) origin_stream: Option<StreamId>,
    /// The Opus fallback of G.711 was asked for.
    pub(super) fallback_asked: bool,
    /// The camera's packets were asked for, for this worker's RTSP players (see `rtsp_out`).
    pub(super) camera_packets: bool,
}

pub(super) struct Stream {
    /// The URL exactly as viewers asked for it: the sharing key (credentials included).
    pub(super) url: String,
    /// The URL with its password masked, for logs and status messages.
    pub(super) redacted: String,
    pub(super) source: Source,
    /// Mirrors of this camera on other workers: (worker, mirror stream there).
    pub(super) mirrors: Vec<(usize, StreamId)>,
    /// Those of them that also get the camera's packets as they came, for their RTSP players.
    pub(super) raw_mirrors: Vec<(usize, StreamId)>,
    /// Relays, GOP cache, lip sync and bitrate of the stream's media.
    pub(super) pipeline: MediaPipeline,
    /// Viewers that have an answer and receive media.
    pub(super) viewers: Vec<ViewerId>,
    /// Viewers waiting for the camera's description before they can be answered.
    pub(super) pending: Vec<ViewerId>,
    /// RTSP players receiving the camera's packets.
    pub(super) players: Vec<crate::ids::ConnId>,
    /// RTSP players waiting for the camera's description, or set up and not playing yet.
    pub(super) waiting_players: Vec<crate::ids::ConnId>,
    /// Served to RTSP players by name (`[streams.NAME]`, or the demo): its raw GOP is kept even
    /// before the first player, so that player starts at once like a browser does.
    pub(super) named: bool,
    /// The camera's packets since its last keyframe, while it has players or is named (see
    /// `RawGop`).
    pub(super) raw_gop: super::rtsp_out::RawGop,
    /// The camera's tracks as its RTSP client set them up (empty until it plays).
    pub(super) tracks: Vec<crate::media::TrackInfo>,
    /// Browsers cannot play what the camera sends (MJPEG...): why, as their FAILED info. The
    /// stream plays on for its RTSP players; browsers asking for it are refused at once.
    pub(super) browser_refusal: Option<String>,
    /// When the last viewer left: the connection closes at this instant.
    pub(super) linger_until: Option<Instant>,
    /// When a backlog of this camera's input was last logged (once per episode, not per read).
    pub(super) behind_logged: Option<Instant>,
    /// How late the camera's media arrives, on the track it is judged by (the video, else the
    /// first): `(track, lag)`, set when the camera plays.
    pub(super) lag: Option<(usize, crate::camera_lag::CameraLag)>,
    /// Started by the REST API: stays connected without viewers until terminated.
    pub(super) pinned: bool,
    /// The camera has played at least once: later failures reconnect instead of failing viewers.
    pub(super) played: bool,
    /// Failed attempts since the camera last played; sets the reconnect backoff.
    pub(super) reconnect_attempts: u32,
    /// When the next reconnect attempt starts (the camera is down until then).
    pub(super) reconnect_at: Option<Instant>,
    pub(super) scheduled: Option<Instant>,
}

impl Gateway {
    /// A new stream of `url` made here: the demo clip if `url` is the demo camera's, else a
    /// connection to the camera.
    pub(super) fn open_source(&mut self, url: &str, now: Instant) -> Result<StreamId, String> {
        if let Some(demo) = self.config.demo.as_ref().filter(|d| d.url == url) {
            let source = crate::demo::DemoSource::new(demo.clip.clone(), now, self.rng.next_u64());
            let tracks = source.tracks();
            let id = self.stream_ids.next_id();
            tracing::info!(stream = id.0, url, "playing the demo clip");
            self.by_url.insert(url.to_owned(), id);
            let source = Source::Demo(Box::new(source));
            let mut stream = Stream::new(url.into(), url.into(), source, MediaPipeline::camera());
            stream.named = true;
            self.streams.insert(id, stream);
            self.source_playing(id, now, tracks, Vec::new());
            self.schedule_stream(id, now);
            return Ok(id);
        }
        let config = client_config(&self.config.rtsp, &mut self.rng);
        let client = RtspClient::new(url, config, now).map_err(|e| e.to_string())?;
        Ok(self.add_stream(url.to_owned(), client, now))
    }

    pub(super) fn add_stream(&mut self, url: String, client: RtspClient, now: Instant) -> StreamId {
        let id = self.stream_ids.next_id();
        let redacted = client.url().redacted();
        let connect = rtsp_connect(id, client.url());
        tracing::info!(stream = id.0, url = %redacted, "connecting to camera");
        self.by_url.insert(url.clone(), id);
        let named = self.config.named_streams.iter().any(|(_, u)| *u == url);
        let mut stream = Stream::new(
            url,
            redacted,
            Source::Camera(Box::new(client)),
            MediaPipeline::camera(),
        );
        stream.named = named;
        self.streams.insert(id, stream);
        self.stats.rtsp_connects += 1;
        self.outputs.push_back(connect);
        self.schedule_stream(id, now);
        id
    }

    /// A mirror of the camera `url` pulled by worker `origin`, which is asked to feed it.
    pub(super) fn add_mirror(&mut self, url: String, redacted: String, origin: usize) -> StreamId {
        let id = self.stream_ids.next_id();
        tracing::info!(stream = id.0, url = %redacted, origin, "mirroring the camera of worker {origin}");
        self.outputs.push_back(GatewayOutput::Forward {
            worker: origin,
            forward: Forward::Subscribe {
                url: url.clone(),
                mirror: id,
            },
        });
        self.by_url.insert(url.clone(), id);
        let source = Source::Mirror(MirrorSource {
            origin,
            origin_stream: None,
            fallback_asked: false,
            camera_packets: false,
        });
        let stream = Stream::new(url, redacted, source, MediaPipeline::mirror());
        self.streams.insert(id, stream);
        id
    }

    pub(super) fn answer_pending(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let (audio_out, Some(video)) = (s.pipeline.audio_output(), s.pipeline.video_codec()) else {
            return;
        };
        let pending = std::mem::take(&mut s.pending);
        for v in pending {
            let Some(entry) = self.viewers.get_mut(v) else {
                continue;
            };
            let offer = entry.offer.take().unwrap_or_default();
            // str0m draws the viewer's ICE credentials and SSRCs from the thread's fastrand.
            fastrand::seed(self.rng.next_u64());
            let reflexive: Vec<(SocketAddr, SocketAddr)> =
                self.stun.iter().flat_map(|s| s.mappings()).collect();
            let full_ice = !self.config.stun_servers.is_empty();
            let negotiation = Negotiation {
                offer_sdp: &offer,
                video,
                audio: audio_out,
                candidates: &self.config.candidates,
                reflexive: &reflexive,
                full_ice,
                tcp_candidates: &self.config.tcp_candidates,
                tcp_only: entry.tcp_only,
                dtls_cert: self.config.dtls_cert.as_ref(),
                ice_timeout: self.config.ice_timeout,
            };
            match Viewer::accept_offer(now, &negotiation) {
                Ok((viewer, answer)) => {
                    let needs_opus = viewer.audio_codec() == Some(AudioOut::Opus)
                        && audio_out.is_some_and(|out| out != AudioOut::Opus);
                    self.by_ufrag.insert(viewer.ice_ufrag().to_owned(), v);
                    if full_ice {
                        for addr in crate::viewer::offer_candidates(&offer) {
                            self.by_candidate.entry(addr).or_insert(v);
                        }
                    }
                    entry.viewer = Some(viewer);
                    let text = signaling::set_remote_sdp(&entry.media_session_id, &answer);
                    let session = entry.session;
                    self.send(session, text);
                    let stream = self.streams.get_mut(&id).expect("stream exists");
                    stream.viewers.push(v);
                    if needs_opus {
                        self.enable_opus_fallback(id);
                    }
                    self.schedule_viewer(v, now);
                }
                Err(e) => {
                    tracing::info!(stream = id.0, "offer refused: {e}");
                    self.send_status(v, StreamStatus::Failed, Some(&e.to_string()));
                    self.remove_viewer(v, now);
                }
            }
        }
    }

    /// The camera failed: every viewer of it gets FAILED with the reason, and the stream goes.
    pub(super) fn fail_stream(&mut self, id: StreamId, now: Instant, info: &str) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        tracing::warn!(stream = id.0, url = %s.redacted, "camera failed: {info}");
        if matches!(s.source, Source::Camera(_)) {
            self.stats.rtsp_errors += 1;
        }
        self.fail_viewers(id, now, info);
        self.fail_players(id, now);
        self.close_stream(id);
    }

    /// Every viewer of stream `id`, here and on mirrors, gets FAILED with `info` and goes.
    pub(super) fn fail_viewers(&mut self, id: StreamId, now: Instant, info: &str) {
        self.fail_mirrors(id, info);
        let s = &self.streams[&id];
        let all: Vec<ViewerId> = s.viewers.iter().chain(s.pending.iter()).copied().collect();
        for v in all {
            self.send_status(v, StreamStatus::Failed, Some(info));
            self.remove_viewer(v, now);
        }
    }

    /// Browsers cannot play stream `id` (its camera sends MJPEG...), but its RTSP players can:
    /// its browsers, here and on its mirrors, get FAILED with `info` and go, later ones are
    /// refused at once, and the camera plays on for the players.
    pub(super) fn refuse_browsers(&mut self, id: StreamId, now: Instant, info: &str) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.browser_refusal = Some(info.to_owned());
        let mirrors = if s.source.is_origin() {
            s.mirrors.clone()
        } else {
            Vec::new()
        };
        let all: Vec<ViewerId> = s.viewers.iter().chain(s.pending.iter()).copied().collect();
        for (worker, mirror) in mirrors {
            let info = info.to_owned();
            self.push_mirror(worker, [MirrorItem::BrowsersRefused { mirror, info }]);
        }
        for v in all {
            self.send_status(v, StreamStatus::Failed, Some(info));
            self.remove_viewer(v, now);
        }
        // A mirror that served browsers only goes (its camera stays for the players).
        self.linger_if_unwatched(id, now);
    }

    pub(super) fn close_stream(&mut self, id: StreamId) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        if self.by_url.get(&s.url) == Some(&id) {
            self.by_url.remove(&s.url);
        }
        let camera = matches!(s.source, Source::Camera(_));
        match s.source {
            Source::Camera(_) | Source::Demo(_) => {
                tracing::info!(stream = id.0, url = %s.redacted, "camera connection closed");
                if let Some(p) = &self.config.placement {
                    p.with(|w| w.closed(&s.url, id));
                }
                for (worker, mirror) in s.mirrors {
                    let info = "Failed by error: the camera connection closed".to_owned();
                    self.push_mirror(worker, [MirrorItem::Failed { mirror, info }]);
                }
                if camera {
                    self.outputs
                        .push_back(GatewayOutput::RtspClose { stream: id });
                }
            }
            Source::Mirror(m) => {
                tracing::info!(stream = id.0, url = %s.redacted, "mirror closed");
                let forward = Forward::Unsubscribe {
                    url: s.url,
                    mirror: id,
                };
                self.outputs.push_back(GatewayOutput::Forward {
                    worker: m.origin,
                    forward,
                });
            }
        }
    }

    /// A camera nobody watches (no viewers, no mirrors) and nobody pinned closes after
    /// `stream_linger`; a mirror without viewers closes at once.
    pub(super) fn linger_if_unwatched(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if !s.unwatched() || s.pinned {
            return;
        }
        if matches!(s.source, Source::Mirror(_)) {
            return self.close_stream(id);
        }
        s.linger_until = Some(now + self.config.stream_linger);
        tracing::info!(
            stream = id.0,
            "last viewer left; closing in {:?}",
            self.config.stream_linger
        );
        self.schedule_stream(id, now);
    }
}

impl Stream {
    pub(super) fn new(
        url: String,
        redacted: String,
        source: Source,
        pipeline: MediaPipeline,
    ) -> Self {
        Stream {
            url,
            redacted,
            source,
            mirrors: Vec::new(),
            raw_mirrors: Vec::new(),
            pipeline,
            viewers: Vec::new(),
            pending: Vec::new(),
            players: Vec::new(),
            waiting_players: Vec::new(),
            tracks: Vec::new(),
            browser_refusal: None,
            named: false,
            raw_gop: Default::default(),
            linger_until: None,
            behind_logged: None,
            lag: None,
            pinned: false,
            played: false,
            reconnect_attempts: 0,
            reconnect_at: None,
            scheduled: None,
        }
    }

    /// The camera client, when this worker pulls the camera.
    pub(super) fn client(&mut self) -> Option<&mut RtspClient> {
        match &mut self.source {
            Source::Camera(client) => Some(client.as_mut()),
            Source::Mirror(_) | Source::Demo(_) => None,
        }
    }

    /// RTSP players play it or wait for it, here or on mirrors that asked for its packets.
    pub(super) fn has_players(&self) -> bool {
        !self.players.is_empty() || !self.waiting_players.is_empty() || !self.raw_mirrors.is_empty()
    }

    /// No viewers, none waiting, no mirrors, no RTSP players.
    pub(super) fn unwatched(&self) -> bool {
        self.viewers.is_empty()
            && self.pending.is_empty()
            && self.mirrors.is_empty()
            && self.players.is_empty()
            && self.waiting_players.is_empty()
    }
}
