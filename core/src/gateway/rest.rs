use super::*;

impl Gateway {
    /// Starts pulling `url` with no viewer (REST `/rtsp/startup`); the connection stays up
    /// until `terminate`, and viewers who join find it running.
    pub fn startup(&mut self, url: &str, now: Instant) -> Result<StreamId, StartupError> {
        let Some(placement) = self.config.placement.clone() else {
            return self.startup_here(url, None, now);
        };
        let parsed = RtspUrl::parse(url).map_err(|e| StartupError::BadUri(e.to_string()))?;
        match placement.with(|w| w.place_pinned(url, &parsed.redacted(), self.config.max_streams)) {
            Err(_) => Err(StartupError::TooManyStreams(self.config.max_streams)),
            Ok(None) => Err(StartupError::AlreadyPulled),
            Ok(Some((w, ticket))) if w == placement.here() => {
                self.startup_here(url, Some(ticket), now)
            }
            Ok(Some((worker, ticket))) => {
                self.outputs.push_back(GatewayOutput::Forward {
                    worker,
                    forward: Forward::Startup {
                        url: url.to_owned(),
                        ticket,
                    },
                });
                Ok(StreamId(0))
            }
        }
    }

    /// `startup` on the worker it was placed on; `ticket` is its placement entry's.
    pub(super) fn startup_here(
        &mut self,
        url: &str,
        ticket: Option<u64>,
        now: Instant,
    ) -> Result<StreamId, StartupError> {
        // A `terminate` that overtook a forwarded startup took its entry out of the table:
        // then the stream must not come back, not even for a moment.
        let claim = |this: &Self, id: StreamId| match (&this.config.placement, ticket) {
            (Some(p), Some(ticket)) => p.with(|w| w.claim(url, ticket, id)),
            _ => true,
        };
        if let Some(id) = self.by_url.get(url).copied() {
            if !claim(self, id) {
                tracing::info!(stream = id.0, "startup overtaken by terminate");
                return Ok(id);
            }
            let s = self
                .streams
                .get_mut(&id)
                .expect("by_url points at live streams");
            if s.pinned {
                return Err(StartupError::AlreadyPulled);
            }
            // Pulled for viewers only so far: now it stays.
            s.pinned = true;
            s.linger_until = None;
            return Ok(id);
        }
        if self.camera_count() >= self.config.max_streams {
            return Err(StartupError::TooManyStreams(self.config.max_streams));
        }
        let id = self.open_source(url, now).map_err(StartupError::BadUri)?;
        self.streams.get_mut(&id).expect("just added").pinned = true;
        if !claim(self, id) {
            tracing::info!(stream = id.0, "startup overtaken by terminate");
            self.terminate_here(url, now);
        }
        Ok(id)
    }

    /// Stops pulling the stream with this URL (exact, or as masked in `streams()`); its
    /// viewers get FAILED "Stopped by rest /terminate". False when there is no such stream.
    pub fn terminate(&mut self, url: &str, now: Instant) -> bool {
        let Some(placement) = self.config.placement.clone() else {
            return self.terminate_here(url, now);
        };
        // Out of the shared table before answering, so the next REST call (on any worker)
        // no longer lists it, even while its worker is still closing it.
        let Some((worker, exact)) = placement.with(|w| w.terminate(url)) else {
            return false;
        };
        if worker == placement.here() {
            return self.terminate_here(&exact, now);
        }
        self.outputs.push_back(GatewayOutput::Forward {
            worker,
            forward: Forward::Terminate { url: exact },
        });
        true
    }

    pub(super) fn terminate_here(&mut self, url: &str, now: Instant) -> bool {
        let found = self.by_url.get(url).copied().or_else(|| {
            self.streams
                .iter()
                .find(|(_, s)| s.redacted == url)
                .map(|(id, _)| *id)
        });
        let Some(id) = found else { return false };
        let s = &self.streams[&id];
        if !s.source.is_origin() {
            return false; // a mirror: its camera's worker terminates it
        }
        tracing::info!(stream = id.0, url = %s.redacted, "terminated by REST");
        self.fail_viewers(id, now, "Stopped by rest /terminate");
        let s = self.streams.get_mut(&id).expect("still there");
        match &mut s.source {
            Source::Camera(client) => client.teardown(now),
            // Nothing to tear down: its RTSP players go too, like a camera's that closed.
            _ => {
                self.fail_players(id, now);
                self.close_stream(id);
            }
        }
        self.after_stream_input(id, now);
        // A client with no session to tear down closes at once; otherwise `Closed` follows.
        if let Some(s) = self.streams.get_mut(&id) {
            s.pinned = false;
            s.linger_until = None;
        }
        true
    }
}
