use super::*;

pub(super) struct ViewerEntry {
    pub(super) session: SessionId,
    pub(super) media_session_id: String,
    pub(super) stream: StreamId,
    pub(super) offer: Option<String>,
    pub(super) viewer: Option<Viewer>,
    pub(super) playing_sent: bool,
    /// The cached GOP was offered once the connection came up.
    pub(super) primed: bool,
    /// Where its GOP replay (a join, or a keyframe answer) has got to, while one is under way:
    /// it gets no live video until it has caught up (see `replays`).
    pub(super) replay: Option<crate::gop::ReplayCursor>,
    /// When the browser's WebRTC connection died; FAILED follows unless a `stopStream` does.
    pub(super) lost_at: Option<Instant>,
    /// Source addresses learned for this viewer: on the shared UDP socket, and of its ICE-TCP
    /// connections.
    pub(super) addrs: Vec<(Protocol, SocketAddr)>,
    /// Answer with TCP candidates only (the SDK's `transport: "TCP"`).
    pub(super) tcp_only: bool,
    pub(super) scheduled: Option<Instant>,
    /// Whether the browser's link carries the stream, from its receiver reports.
    pub(super) link: LinkMonitor,
}

/// A viewer of this gateway: its key in the [`ViewerTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ViewerId(usize);

/// Every viewer of this gateway, by id (ids are reused once a viewer is gone).
#[derive(Default)]
pub(super) struct ViewerTable(Slab<ViewerEntry>);

impl ViewerTable {
    pub(super) fn insert(&mut self, entry: ViewerEntry) -> ViewerId {
        ViewerId(self.0.insert(entry))
    }

    pub(super) fn remove(&mut self, v: ViewerId) -> ViewerEntry {
        self.0.remove(v.0)
    }

    pub(super) fn contains(&self, v: ViewerId) -> bool {
        self.0.contains(v.0)
    }

    pub(super) fn get(&self, v: ViewerId) -> Option<&ViewerEntry> {
        self.0.get(v.0)
    }

    pub(super) fn get_mut(&mut self, v: ViewerId) -> Option<&mut ViewerEntry> {
        self.0.get_mut(v.0)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (ViewerId, &ViewerEntry)> {
        self.0.iter().map(|(k, e)| (ViewerId(k), e))
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut ViewerEntry> {
        self.0.iter_mut().map(|(_, e)| e)
    }
}

impl std::ops::Index<ViewerId> for ViewerTable {
    type Output = ViewerEntry;

    fn index(&self, v: ViewerId) -> &ViewerEntry {
        &self.0[v.0]
    }
}

impl std::ops::IndexMut<ViewerId> for ViewerTable {
    fn index_mut(&mut self, v: ViewerId) -> &mut ViewerEntry {
        &mut self.0[v.0]
    }
}

impl Gateway {
    pub(super) fn remove_viewer(&mut self, v: ViewerId, now: Instant) {
        if !self.viewers.contains(v) {
            return;
        }
        let mut entry = self.viewers.remove(v);
        self.stats.viewers_left += 1;
        if entry.replay.is_some() {
            self.end_replay(v);
        }
        if let Some(p) = &self.config.placement {
            // Always counted out of its worker; out of its camera too while that is placed.
            let url = self
                .streams
                .get(&entry.stream)
                .map_or("", |s| s.url.as_str());
            p.with(|w| w.remove_viewer(url));
        }
        if let Some(viewer) = entry.viewer.as_mut() {
            viewer.close();
        }
        // By value: the `Viewer` (and its ufrag) may be gone already (connection lost).
        self.by_ufrag.retain(|_, x| *x != v);
        if !self.by_candidate.is_empty() {
            self.by_candidate.retain(|_, x| *x != v);
        }
        for key in &entry.addrs {
            self.by_addr.remove(key);
        }
        if let Some(s) = self.sessions.get_mut(&entry.session) {
            s.viewers.retain(|x| *x != v);
        }
        if let Some(s) = self.streams.get_mut(&entry.stream) {
            s.viewers.retain(|x| *x != v);
            s.pending.retain(|x| *x != v);
            self.linger_if_unwatched(entry.stream, now);
        }
    }

    /// A datagram on the shared WebRTC socket.
    pub fn handle_udp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.handle_packet(now, Protocol::Udp, source, destination, data);
    }

    /// One RFC 4571 frame from the ICE-TCP connection of `source` to our listener at
    /// `destination`. False: the frame is not for any viewer (a first frame that is not a STUN
    /// check naming one of ours, or not a WebRTC packet at all): the loop closes the
    /// connection.
    pub fn handle_tcp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        self.handle_packet(now, Protocol::Tcp, source, destination, data)
    }

    /// The ICE-TCP connection from `source` closed: its address no longer leads to a viewer
    /// (the viewer itself stays while it has another path, and goes silent otherwise).
    pub fn handle_tcp_closed(&mut self, source: SocketAddr) {
        let key = (Protocol::Tcp, source);
        if let Some(v) = self.by_addr.remove(&key) {
            if let Some(e) = self.viewers.get_mut(v) {
                e.addrs.retain(|a| *a != key);
            }
        }
    }

    /// The TCP connection to `destination` could not take a packet (its send queue is full):
    /// its viewer skips to the next keyframe instead of getting a broken picture.
    pub fn handle_tcp_backlog(&mut self, destination: SocketAddr) {
        let Some(&v) = self.by_addr.get(&(Protocol::Tcp, destination)) else {
            return;
        };
        if let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) {
            viewer.wait_for_keyframe();
            self.stats.tcp_backlog_drops += 1;
        }
    }

    /// A datagram from an unknown UDP address that routes to no viewer (a TCP one closes its
    /// connection instead).
    fn count_unmatched(&mut self, proto: Protocol) {
        if proto == Protocol::Udp {
            self.stats.udp_unmatched += 1;
        }
    }

    fn handle_packet(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        self.advance(now);
        // The answer to camgate's own STUN request (its public address), not a viewer's.
        if let (Some(client), Protocol::Udp) = (self.stun.as_mut(), proto) {
            if client.is_server(source) && client.handle_response(now, destination, source, data) {
                self.log_stun_events();
                return true;
            }
        }
        let known = self
            .by_addr
            .get(&(proto, source))
            .copied()
            .filter(|v| self.viewers.contains(*v));
        let v = match known {
            Some(v) => v,
            // Unknown source: only a STUN check naming one of our viewers opens an address
            // (ICE always starts that way); anything else is dropped without a scan.
            None => {
                // With full ICE, also the browser's answer to camgate's check: it names no
                // ufrag, and comes from a candidate of that viewer's offer (UDP: camgate's TCP
                // candidates are passive, it never checks over TCP first).
                let v = stun::local_ufrag(data)
                    .and_then(|u| self.by_ufrag.get(u))
                    .or_else(|| {
                        (proto == Protocol::Udp && stun::is_stun(data))
                            .then(|| self.by_candidate.get(&source))
                            .flatten()
                    });
                let Some(&v) = v else {
                    self.count_unmatched(proto);
                    return false;
                };
                let accepted = self
                    .viewers
                    .get(v)
                    .and_then(|e| e.viewer.as_ref())
                    .is_some_and(|x| x.accepts(now, proto, source, destination, data));
                if !accepted {
                    self.count_unmatched(proto);
                    return false;
                }
                self.by_addr.insert((proto, source), v);
                self.viewers[v].addrs.push((proto, source));
                v
            }
        };
        let Some(viewer) = self.viewers[v].viewer.as_mut() else {
            return false;
        };
        let ok = viewer.handle_receive(now, proto, source, destination, data, &mut self.transmits);
        self.after_viewer_input(v, now);
        ok
    }

    pub(super) fn after_viewer_input(&mut self, v: ViewerId, now: Instant) {
        let Some(entry) = self.viewers.get_mut(v) else {
            return;
        };
        if let Some(lost) = entry.lost_at {
            if now >= lost + STOP_GRACE {
                tracing::info!(
                    session = %entry.session,
                    "viewer connection lost (ICE/DTLS)"
                );
                self.send_status(v, StreamStatus::Failed, Some("Failed by ICE timeout"));
                self.remove_viewer(v, now);
            }
            return;
        }
        let Some(viewer) = entry.viewer.as_mut() else {
            return;
        };
        if let Some(reason) = viewer.connect_failure_reason() {
            // Never connected: no DTLS close can race a `stopStream` here, so FAILED at once.
            let reason = reason.to_owned();
            tracing::info!(session = %entry.session, "viewer failed: {reason}");
            self.stats.ice_timeouts += 1;
            self.send_status(v, StreamStatus::Failed, Some(&reason));
            self.remove_viewer(v, now);
            return;
        }
        if !viewer.is_alive() {
            // The Flashphoner SDK closes its peer connection the moment the user presses Stop,
            // and the DTLS close can beat the `stopStream` message: stop sending at once, but
            // report FAILED only if no `stopStream` follows shortly.
            entry.viewer = None;
            entry.lost_at = Some(now);
            for addr in entry.addrs.drain(..) {
                self.by_addr.remove(&addr);
            }
            let at = now + STOP_GRACE;
            entry.scheduled = Some(at);
            self.timers.push(Reverse((at, TimerKey::Viewer(v))));
            return;
        }
        // The browser's receiver reports: does its link carry the stream? A congested viewer
        // skips to the next keyframe rather than queue what its link can't carry.
        let mut event = None;
        let report = viewer.take_link_report();
        let stalled = self
            .stalled_at
            .is_some_and(|t| now.saturating_duration_since(t) < STALL_MEMORY);
        if let Some(report) = report.filter(|_| !stalled) {
            let stream_bps = self
                .streams
                .get_mut(&entry.stream)
                .and_then(|s| s.pipeline.bitrate_bps(now));
            let verdict = entry.link.on_report(report, stream_bps);
            viewer.set_rate_limit(now, verdict.limit);
            if let Some(backlog) = verdict.skip {
                tracing::debug!(
                    viewer = v.0,
                    backlog,
                    limit = verdict.limit,
                    "link congested: skipping to the next keyframe"
                );
                viewer.skip_backlog(backlog);
            }
            event = verdict.event;
        }
        self.stats.congestion_skips += viewer.take_skips();
        // A PLI can't be forwarded to an RTSP camera: the cached GOP answers it (a GOP too big
        // to send again waits for the camera's next keyframe instead, and so does a congested
        // viewer; one being replayed the GOP starts on a keyframe already).
        let mut answer = None;
        if viewer.take_keyframe_request() && entry.primed && entry.replay.is_none() {
            if entry.link.congested() {
                viewer.wait_for_keyframe();
            } else if let Some(gop) =
                (self.streams.get(&entry.stream)).and_then(|s| s.pipeline.keyframe_gop())
            {
                answer = viewer.answer_keyframe_request(now, gop);
            }
        }
        if let Some((remote, network)) = event {
            let name = self
                .streams
                .get(&entry.stream)
                .map_or("", |s| s.redacted.as_str());
            tracing::info!(
                session = %entry.session,
                url = %name,
                "not enough bandwidth: the link carries {} kbit/s of the stream's {} kbit/s; \
                 skipping to keyframes",
                network / 1000,
                remote / 1000
            );
            let text =
                signaling::not_enough_bandwidth(&entry.media_session_id, name, remote, network);
            let session = entry.session;
            self.stats.not_enough_bandwidth += 1;
            self.send(session, text);
        }
        if let Some(cursor) = answer {
            self.stats.keyframe_requests_answered += 1;
            tracing::debug!(viewer = v.0, "keyframe request answered from the GOP cache");
            self.begin_replay(v, cursor);
        }
        self.schedule_viewer(v, now);
    }
}
