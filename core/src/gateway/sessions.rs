use super::*;

/// Where a signaling message is handled.
pub(super) enum Routed {
    /// Sent to another worker, or answered already.
    Done,
    /// Here; `counted`: a `playStream` already counts as a viewer of this worker.
    Here { counted: bool },
}

#[derive(Default)]
pub(super) struct Session {
    pub(super) established: bool,
    pub(super) viewers: Vec<ViewerId>,
    pub(super) last_heard: Option<Instant>,
    /// A session of another worker attached here: (that worker, its id there). Its messages
    /// go back there; it is not pinged (the origin does that).
    pub(super) origin: Option<(usize, SessionId)>,
    /// Viewers of this session served by other workers: (mediaSessionId, worker).
    pub(super) remote_viewers: Vec<(String, usize)>,
    /// Workers this session is attached to.
    pub(super) attached: Vec<usize>,
}

impl Gateway {
    /// A signaling session (WebSocket or WHEP) opened; it is pinged from now on.
    pub fn handle_session_opened(&mut self, session: SessionId, now: Instant) {
        self.sessions.insert(
            session,
            Session {
                last_heard: Some(now),
                ..Default::default()
            },
        );
        if self.next_ping.is_none() {
            let at = now + self.config.ping_interval;
            self.next_ping = Some(at);
            self.timers.push(Reverse((at, TimerKey::Ping)));
        }
    }

    /// A signaling message (Flashphoner protocol JSON) from a session's browser.
    pub fn handle_session_message(&mut self, session: SessionId, now: Instant, text: &str) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.last_heard = Some(now);
        let message = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(session = %session, "bad signaling message: {e}");
                return;
            }
        };
        let counted = match self.route_elsewhere(session, &message, text) {
            Routed::Done => return,
            Routed::Here { counted } => counted,
        };
        match message {
            ClientMessage::Connection { .. } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.established = true;
                }
                tracing::info!(session = %session, "signaling session established");
                self.send(session, signaling::get_user_data(&session.to_string()));
            }
            ClientMessage::PlayStream {
                media_session_id,
                name,
                sdp,
                tcp,
            } => {
                let offer = PlayOffer { sdp, tcp_only: tcp };
                self.play(session, now, media_session_id, name, offer, counted)
            }
            ClientMessage::StopStream { media_session_id } => {
                self.stop(session, now, &media_session_id)
            }
            ClientMessage::Pong => {}
            ClientMessage::Other(name) => {
                tracing::debug!(session = %session, "ignored message {name}")
            }
        }
    }

    /// With several workers: decides which worker serves a `playStream` (see
    /// `Placement::place_viewer`) and sends it there, or refuses it at once; sends a
    /// `stopStream` to where its viewer is.
    pub(super) fn route_elsewhere(
        &mut self,
        session: SessionId,
        message: &ClientMessage,
        text: &str,
    ) -> Routed {
        let Some(placement) = &self.config.placement else {
            return Routed::Here { counted: false };
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return Routed::Done;
        };
        if s.origin.is_some() {
            // Forwarded here to be served here, and counted for this worker when routed.
            return Routed::Here { counted: true };
        }
        let worker = match message {
            ClientMessage::PlayStream {
                media_session_id,
                name,
                ..
            } => {
                // A bad URL is answered by `play`.
                let Ok(url) = RtspUrl::parse(name) else {
                    return Routed::Here { counted: false };
                };
                let limits = ViewerLimits {
                    max_streams: self.config.max_streams,
                    max_viewers: self.config.max_viewers,
                    max_viewers_per_stream: self.config.max_viewers_per_stream,
                };
                let margin = self.config.viewer_spread_margin;
                let worker = match placement
                    .with(|w| w.place_viewer(name, &url.redacted(), &limits, margin))
                {
                    Ok(worker) => worker,
                    Err(refused) => {
                        let info = match refused {
                            ViewerRefused::TooManyViewers => self.too_many_viewers(),
                            ViewerRefused::TooManyStreams => self.too_many_streams(),
                            ViewerRefused::TooManyViewersOfStream => self.too_many_of_stream(),
                        };
                        self.refuse_play(session, media_session_id, &info);
                        return Routed::Done;
                    }
                };
                if worker == placement.here() {
                    return Routed::Here { counted: true };
                }
                s.remote_viewers.push((media_session_id.clone(), worker));
                worker
            }
            ClientMessage::StopStream { media_session_id } => {
                let Some(i) = s
                    .remote_viewers
                    .iter()
                    .position(|(m, _)| m == media_session_id)
                else {
                    return Routed::Here { counted: false };
                };
                s.remote_viewers.swap_remove(i).1
            }
            _ => return Routed::Here { counted: false },
        };
        if !s.attached.contains(&worker) {
            s.attached.push(worker);
            self.outputs.push_back(GatewayOutput::Forward {
                worker,
                forward: Forward::Attach { session },
            });
        }
        self.outputs.push_back(GatewayOutput::Forward {
            worker,
            forward: Forward::Message {
                session,
                text: text.to_owned(),
            },
        });
        Routed::Done
    }

    pub(super) fn too_many_viewers(&self) -> String {
        format!(
            "Too many viewers: this server serves at most {}",
            self.config.max_viewers
        )
    }

    pub(super) fn too_many_of_stream(&self) -> String {
        format!(
            "Too many viewers of this stream: at most {} per stream",
            self.config.max_viewers_per_stream
        )
    }

    pub(super) fn too_many_streams(&self) -> String {
        format!(
            "Too many streams: this server pulls at most {} cameras",
            self.config.max_streams
        )
    }

    /// FAILED for a `playStream` that gets no viewer.
    pub(super) fn refuse_play(&mut self, session: SessionId, media_session_id: &str, info: &str) {
        tracing::info!(session = %session, "play refused: {info}");
        let text = signaling::stream_status(media_session_id, "", StreamStatus::Failed, Some(info));
        self.send(session, text);
    }

    /// What another worker's gateway sent this one (see `Forward`).
    pub fn handle_forward(&mut self, from: usize, forward: Forward, now: Instant) {
        match forward {
            Forward::Attach { session } => {
                let id = SessionId::Remote(self.next_remote_id);
                self.next_remote_id += 1;
                self.remote_ids.insert((from, session), id);
                self.sessions.insert(
                    id,
                    Session {
                        established: true,
                        origin: Some((from, session)),
                        ..Default::default()
                    },
                );
            }
            Forward::Message { session, text } => {
                if let Some(id) = self.remote_ids.get(&(from, session)).copied() {
                    self.handle_session_message(id, now, &text);
                }
            }
            Forward::Closed { session } => {
                if let Some(id) = self.remote_ids.get(&(from, session)).copied() {
                    self.handle_session_closed(id, now);
                }
            }
            Forward::Send { session, text } => self.send(session, text),
            Forward::Startup { url, ticket } => {
                if let Err(e) = self.startup_here(&url, Some(ticket), now) {
                    tracing::info!("forwarded startup failed: {e}");
                }
            }
            Forward::Terminate { url } => {
                self.terminate_here(&url, now);
            }
            Forward::Subscribe { url, mirror } => self.subscribe(from, url, mirror, now),
            Forward::Unsubscribe { url, mirror } => {
                let Some(id) = self.by_url.get(&url).copied() else {
                    return;
                };
                let s = self
                    .streams
                    .get_mut(&id)
                    .expect("by_url points at live streams");
                s.mirrors.retain(|m| *m != (from, mirror));
                tracing::debug!(stream = id.0, worker = from, "mirror gone");
                self.linger_if_unwatched(id, now);
            }
            Forward::CameraPackets {
                url,
                mirror,
                wanted,
            } => self.camera_packets_wanted(from, &url, mirror, wanted),
            Forward::OpusFallback { url } => {
                if let Some(id) = self.by_url.get(&url).copied() {
                    self.enable_opus_fallback(id);
                }
            }
        }
    }

    /// The WebSocket is gone: release everything it held, silently.
    pub fn handle_session_closed(&mut self, session: SessionId, now: Instant) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        if let Some(origin) = s.origin {
            self.remote_ids.remove(&origin);
        }
        for worker in &s.attached {
            self.outputs.push_back(GatewayOutput::Forward {
                worker: *worker,
                forward: Forward::Closed { session },
            });
        }
        tracing::info!(
            session = %session,
            viewers = s.viewers.len(),
            "signaling session closed"
        );
        for viewer in s.viewers {
            self.remove_viewer(viewer, now);
        }
    }

    pub(super) fn send(&mut self, session: SessionId, text: String) {
        self.outputs
            .push_back(GatewayOutput::WsSend { session, text });
    }

    pub(super) fn send_status(
        &mut self,
        viewer: ViewerId,
        status: StreamStatus,
        info: Option<&str>,
    ) {
        let Some(entry) = self.viewers.get(viewer) else {
            return;
        };
        let name = self
            .streams
            .get(&entry.stream)
            .map(|s| s.redacted.as_str())
            .unwrap_or("");
        let text = signaling::stream_status(&entry.media_session_id, name, status, info);
        self.send(entry.session, text);
    }

    /// Answers a `playStream`: a viewer of `name` for this offer, or a FAILED status.
    pub(super) fn play(
        &mut self,
        session: SessionId,
        now: Instant,
        media_session_id: String,
        name: String,
        offer: PlayOffer,
        counted: bool,
    ) {
        let PlayOffer { sdp, tcp_only } = offer;
        let admitted = counted
            || match &self.config.placement {
                Some(p) => p.with(|w| w.add_viewer(&name, self.config.max_viewers)),
                None => self.viewers.len() < self.config.max_viewers,
            };
        if !admitted {
            let info = self.too_many_viewers();
            return self.refuse_play(session, &media_session_id, &info);
        }
        // Counted as a viewer of this worker by now: refusals from here on give the slot back.
        let refuse = |this: &mut Self, info: &str| {
            if let Some(p) = &this.config.placement {
                p.with(|w| w.remove_viewer(&name));
            }
            this.refuse_play(session, &media_session_id, info)
        };
        let stream_id = match self.by_url.get(&name) {
            Some(id) => *id,
            None => match self.mirror_origin(&name) {
                // Another worker pulls it: serve this viewer from a mirror of it.
                Some(origin) => match RtspUrl::parse(&name) {
                    Ok(url) => self.add_mirror(name.clone(), url.redacted(), origin),
                    Err(e) => return refuse(self, &e.to_string()),
                },
                None => match self.pull(&name, now) {
                    Ok(id) => id,
                    Err(info) => return refuse(self, &info),
                },
            },
        };
        let s = &self.streams[&stream_id];
        if let Some(info) = s.browser_refusal.clone() {
            // Its camera plays for RTSP players only (MJPEG...).
            return refuse(self, &info);
        }
        if s.viewers.len() + s.pending.len() >= self.config.max_viewers_per_stream {
            let info = self.too_many_of_stream();
            return refuse(self, &info);
        }
        let entry = ViewerEntry {
            session,
            media_session_id,
            stream: stream_id,
            offer: Some(sdp),
            viewer: None,
            playing_sent: false,
            primed: false,
            replay: None,
            lost_at: None,
            addrs: Vec::new(),
            tcp_only,
            scheduled: None,
            link: LinkMonitor::new(),
        };
        let viewer = self.viewers.insert(entry);
        self.stats.viewers_joined += 1;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.viewers.push(viewer);
        }
        let stream = self
            .streams
            .get_mut(&stream_id)
            .expect("stream was just found or added");
        stream.linger_until = None;
        stream.pending.push(viewer);
        tracing::info!(session = %session, stream = stream_id.0, url = %stream.redacted, "viewer joined");
        self.send_status(viewer, StreamStatus::Pending, None);
        if self.streams[&stream_id].pipeline.video_codec().is_some() {
            self.answer_pending(stream_id, now);
        }
    }

    /// The other worker that pulls `url`, if one does (exact URL: a masked password must not
    /// reach a stream pulled with the real one).
    pub(super) fn mirror_origin(&self, url: &str) -> Option<usize> {
        let p = self.config.placement.as_ref()?;
        p.with(|w| w.worker_of(url)).filter(|w| *w != p.here())
    }

    /// Starts pulling the camera `url` here, within `max_streams`; the refusal's text if not.
    pub(super) fn pull(&mut self, url: &str, now: Instant) -> Result<StreamId, String> {
        if self.camera_count() >= self.config.max_streams {
            return Err(self.too_many_streams());
        }
        let id = self.open_source(url, now)?;
        if let Some(p) = &self.config.placement {
            p.with(|w| w.opened(url, &self.streams[&id].redacted, id));
        }
        Ok(id)
    }

    /// Cameras pulled by this worker (mirrors don't count).
    pub(super) fn camera_count(&self) -> usize {
        self.streams
            .values()
            .filter(|s| s.source.is_origin())
            .count()
    }

    pub(super) fn stop(&mut self, session: SessionId, now: Instant, media_session_id: &str) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        let found = s
            .viewers
            .iter()
            .copied()
            .find(|v| self.viewers[*v].media_session_id == media_session_id);
        if let Some(viewer) = found {
            self.send_status(viewer, StreamStatus::Stopped, Some("Stopped by user"));
            self.remove_viewer(viewer, now);
        }
    }
}

/// A browser's offer to play: its SDP, and whether it asked for media over TCP only.
pub(super) struct PlayOffer {
    pub(super) sdp: String,
    pub(super) tcp_only: bool,
}
