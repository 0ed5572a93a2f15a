use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    Stream(StreamId),
    Viewer(ViewerId),
    Player(crate::ids::ConnId),
    Ping,
}

impl Gateway {
    pub(super) fn schedule_stream(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let client = match &s.source {
            Source::Camera(client) => client.poll_timeout(),
            Source::Mirror(_) => None,
            Source::Demo(demo) => Some(demo.poll_timeout()),
        };
        let due = [client, s.linger_until, s.reconnect_at]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.min(now + MAX_SLEEP));
        if let Some(t) = due {
            if s.scheduled.is_none_or(|old| t < old) {
                s.scheduled = Some(t);
                self.timers.push(Reverse((t, TimerKey::Stream(id))));
            }
        }
    }

    pub(super) fn schedule_viewer(&mut self, v: ViewerId, now: Instant) {
        let Some(entry) = self.viewers.get_mut(v) else {
            return;
        };
        let Some(t) = entry.viewer.as_mut().and_then(|x| x.poll_timeout()) else {
            return;
        };
        let t = t.min(now + MAX_SLEEP);
        if entry.scheduled.is_none_or(|old| t < old) {
            entry.scheduled = Some(t);
            self.timers.push(Reverse((t, TimerKey::Viewer(v))));
        }
    }

    /// The earliest instant at which `handle_timeout` has work: at once (the last time given)
    /// while GOP replays wait for their next turn's share (see `replays`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        let stun = self.stun.as_ref().and_then(|s| s.poll_timeout());
        let replays = self.last_now.filter(|_| self.replays_pending());
        [timer, self.next_publish, stun, replays]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: runs every deadline up to `now` (see `poll_timeout`), then writes this
    /// turn's share of the GOP replays. The event loop calls it once per turn. Deadlines are
    /// left for the next turn once datagrams for UDP players are due (`player_datagrams_due`):
    /// `poll_timeout` then says they are due already.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_deadlines(now);
        self.run_replays(now);
    }

    fn handle_deadlines(&mut self, now: Instant) {
        self.advance(now);
        self.drive_stun(now);
        if let Some(p) = &self.config.placement {
            if self.next_publish.is_none_or(|t| t <= now) {
                self.next_publish = Some(now + PUBLISH_INTERVAL);
                p.with(|w| w.publish(self.local_streams(), self.local_stats()));
            }
        }
        if let Some(Reverse((t, _))) = self.timers.peek() {
            self.note_lateness(now.saturating_duration_since(*t), now);
        }
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            // Datagrams for UDP players came due (a join storm's GOP replays): the rest waits
            // for the driver to send them (`poll_timeout` says it is due now).
            if t > now || self.player_udp.due() {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Stream(id) => {
                    let Some(s) = self.streams.get_mut(&id) else {
                        continue;
                    };
                    if s.scheduled != Some(t) {
                        continue; // superseded by an earlier deadline that already ran
                    }
                    s.scheduled = None;
                    if s.reconnect_at.is_some_and(|r| r <= now) {
                        self.reconnect(id, now);
                        continue;
                    }
                    let unwatched = s.unwatched();
                    if let Source::Demo(_) = s.source {
                        if s.linger_until.is_some_and(|l| l <= now) && unwatched {
                            tracing::info!(stream = id.0, url = %s.redacted, "no viewers left: tearing down");
                            self.close_stream(id);
                        } else {
                            self.feed_demo(id, now);
                        }
                        continue;
                    }
                    let Source::Camera(client) = &mut s.source else {
                        continue;
                    };
                    if s.linger_until.is_some_and(|l| l <= now) && unwatched {
                        s.linger_until = None;
                        tracing::info!(stream = id.0, url = %s.redacted, "no viewers left: tearing down");
                        if client.is_closed() {
                            // Down and waiting to reconnect: nothing to tear down.
                            self.close_stream(id);
                            continue;
                        }
                        client.teardown(now);
                    } else {
                        client.handle_timeout(now);
                    }
                    self.after_stream_input(id, now);
                }
                TimerKey::Viewer(v) => {
                    let Some(entry) = self.viewers.get_mut(v) else {
                        continue;
                    };
                    if entry.scheduled != Some(t) {
                        continue;
                    }
                    entry.scheduled = None;
                    if let Some(viewer) = entry.viewer.as_mut() {
                        viewer.handle_timeout(now, &mut self.transmits);
                        self.stats.viewer_ticks += 1;
                    }
                    self.after_viewer_input(v, now);
                }
                TimerKey::Player(conn) => self.player_timer(conn, t, now),
                TimerKey::Ping => self.ping_sessions(now),
            }
        }
    }

    /// The earliest timer ran `late`. Late by `STALL` or more, camgate was starved (a CPU
    /// quota, a busy box): the browsers' datagrams waited in the socket or were dropped there,
    /// and what was sent went out late, in bursts. That silence and those receiver reports
    /// are camgate's doing, not the viewers': silence is excused up to now, links judged
    /// congested meanwhile start afresh, and reports are not judged for `STALL_MEMORY`.
    pub(super) fn note_lateness(&mut self, late: Duration, now: Instant) {
        if late < STALL {
            return;
        }
        if self
            .stalled_at
            .is_none_or(|t| now.saturating_duration_since(t) >= STALL_MEMORY)
        {
            tracing::warn!(
                late_ms = late.as_millis() as u64,
                "camgate is not getting the CPU it needs (timers late): viewers are not judged \
                 on silence or bandwidth until it catches up"
            );
        }
        self.stalled_at = Some(now);
        for entry in self.viewers.values_mut() {
            entry.link = LinkMonitor::new();
            if let Some(viewer) = entry.viewer.as_mut() {
                viewer.excuse_silence(now);
                viewer.set_rate_limit(now, None);
            }
        }
    }

    pub(super) fn ping_sessions(&mut self, now: Instant) {
        let interval = self.config.ping_interval;
        let mut dead = Vec::new();
        for (id, s) in &self.sessions {
            if s.origin.is_some() {
                continue; // pinged by its own worker, which tells when it is gone
            }
            // Three missed pings: the browser is gone without closing its socket.
            if s.last_heard
                .is_some_and(|h| now.saturating_duration_since(h) > interval * 3)
            {
                dead.push(*id);
            } else if s.established {
                self.outputs.push_back(GatewayOutput::WsSend {
                    session: *id,
                    text: signaling::ping(),
                });
            }
        }
        for id in dead {
            tracing::info!(session = %id, "no answer to pings: closing the session");
            self.outputs
                .push_back(GatewayOutput::WsClose { session: id });
            self.handle_session_closed(id, now);
        }
        if self.sessions.is_empty() {
            self.next_ping = None;
        } else {
            let at = now + interval;
            self.next_ping = Some(at);
            self.timers.push(Reverse((at, TimerKey::Ping)));
        }
    }
}
