use super::*;

impl Gateway {
    /// The latest time given to the gateway (never backwards: str0m wants time to move on).
    pub(super) fn advance(&mut self, now: Instant) {
        if self.last_now.is_none_or(|t| t < now) {
            self.last_now = Some(now);
        }
    }

    /// Flushes the viewers written to since their last flush, in order, until one of them has
    /// datagrams queued: encrypting for the next viewers waits until the loop took (and sent)
    /// those. The first viewers' packets leave before the last viewers' are encrypted, and the
    /// SRTP buffers in flight are a few viewers' worth rather than the whole batch's.
    pub(super) fn flush_next_viewers(&mut self) {
        let Some(now) = self.last_now else { return };
        while self.transmits.is_empty() && self.unflushed_next < self.unflushed.len() {
            let v = self.unflushed[self.unflushed_next];
            self.unflushed_next += 1;
            if let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) {
                if viewer.flush(now, &mut self.transmits) {
                    self.stats.viewer_ticks += 1;
                }
                // The flush's drain left str0m's next deadline: no second pass to find it.
                self.schedule_viewer(v, now);
            }
        }
        if self.unflushed_next == self.unflushed.len() {
            self.unflushed.clear();
            self.unflushed_next = 0;
        }
    }

    /// The next thing the event loop must do; `None` when there is nothing (until more input).
    pub fn poll_output(&mut self) -> Option<GatewayOutput> {
        loop {
            let output = self.outputs.pop_front()?;
            match output {
                // A remote session's messages go back to the worker holding its WebSocket
                // (and nowhere once it is gone).
                GatewayOutput::WsSend { session, text }
                    if matches!(session, SessionId::Remote(_)) =>
                {
                    let Some((worker, session)) =
                        self.sessions.get(&session).and_then(|s| s.origin)
                    else {
                        continue;
                    };
                    return Some(GatewayOutput::Forward {
                        worker,
                        forward: Forward::Send { session, text },
                    });
                }
                output => return Some(output),
            }
        }
    }

    /// True while datagrams already encrypted wait in the queue: the next `poll_transmit` will not
    /// start on another viewer. The loop sends in chunks that end where this turns false, so a
    /// viewer's run of datagrams (one GSO message) is not split between chunks.
    pub fn transmit_queued(&self) -> bool {
        !self.transmits.is_empty()
    }

    /// The next datagram for the shared WebRTC socket.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.flush_next_viewers();
        }
        let t = self.transmits.pop_front()?;
        self.stats.datagrams_out += 1;
        self.stats.datagram_bytes_out += t.contents.len() as u64;
        Some(t)
    }
}

impl Gateway {
    /// Runs the STUN client (made at the first call, when there are servers): its requests
    /// join the datagram queue, from the media socket they name.
    pub(super) fn drive_stun(&mut self, now: Instant) {
        if self.stun.is_none() && !self.config.stun_servers.is_empty() {
            self.stun = stun::StunClient::new(
                self.config.stun_servers.clone(),
                &self.config.candidates,
                now,
            );
        }
        let Some(client) = self.stun.as_mut() else {
            return;
        };
        if client.poll_timeout().is_some_and(|t| t <= now) {
            let rng = &mut self.rng;
            client.handle_timeout(now, &mut || rng.next_u64());
        }
        while let Some(r) = client.poll_request() {
            self.transmits.push_back(Transmit {
                proto: str0m::net::Protocol::Udp,
                source: r.source,
                destination: r.destination,
                contents: r.data.into(),
            });
        }
        self.log_stun_events();
    }

    pub(super) fn log_stun_events(&mut self) {
        let Some(client) = self.stun.as_mut() else {
            return;
        };
        while let Some(event) = client.poll_event() {
            match event {
                stun::StunEvent::Mapped {
                    local,
                    public,
                    old: None,
                    server,
                } => tracing::info!(
                    "public address for UDP {}: {public} via {server} (local {local})",
                    local.port()
                ),
                stun::StunEvent::Mapped {
                    local,
                    public,
                    old: Some(old),
                    server,
                } => tracing::warn!(
                    "public address for UDP {} changed from {old} to {public} via {server} \
                     (local {local}); new viewers get the new one",
                    local.port()
                ),
                stun::StunEvent::Failed {
                    local,
                    servers,
                    retry_in,
                } => tracing::warn!(
                    "no public address for UDP {} (local {local}): no answer from {servers}; \
                     retrying in {} s",
                    local.port(),
                    retry_in.as_secs()
                ),
            }
        }
    }
}
