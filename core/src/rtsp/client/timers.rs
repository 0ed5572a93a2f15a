//! Time: what is due when, and what happens when it is.

use std::time::Instant;

use super::request::ReqKind;
use super::{RtspClient, RtspError, RtspTransport, State};

impl RtspClient {
    /// When `handle_timeout` must be called next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::Connecting => Some(self.connect_deadline),
            _ => {
                let requests = self
                    .pending
                    .iter()
                    .filter(|p| p.kind != ReqKind::Keepalive)
                    .map(|p| p.deadline);
                let playing = (self.state == State::Playing)
                    .then(|| {
                        [
                            Some(self.liveness() + self.config.no_data_timeout),
                            self.next_keepalive,
                            self.udp.first_deadline,
                            self.udp.next_rr,
                        ]
                    })
                    .into_iter()
                    .flatten()
                    .flatten();
                let ports = self
                    .udp
                    .port_wait
                    .map(|w| w.since + self.config.response_timeout);
                requests.chain(playing).chain(ports).min()
            }
        }
    }

    /// Runs what is due at `now`: request and connect timeouts, keepalives, receiver reports,
    /// the UDP fallback.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Connecting => {
                if now >= self.connect_deadline {
                    self.fail(RtspError::ConnectFailed);
                }
                return;
            }
            _ => {}
        }
        if let Some(p) = self
            .pending
            .iter()
            .find(|p| p.kind != ReqKind::Keepalive && now >= p.deadline)
        {
            let what = p.kind.timeout_what();
            self.fail(RtspError::Timeout(what));
            return;
        }
        // A keepalive nobody answered is forgotten, not fatal: data keeps the stream alive.
        self.pending
            .retain(|p| p.kind != ReqKind::Keepalive || now < p.deadline);
        if let Some(w) = self.udp.port_wait {
            if now >= w.since + self.config.response_timeout {
                self.udp.port_wait = None;
                self.udp.requests.clear();
                self.udp.unavailable = true;
                self.udp_impossible(now, w.track, "no UDP port pair from the driver in time");
                return;
            }
        }
        if self.state != State::Playing {
            return;
        }
        if self.udp.first_deadline.is_some_and(|t| now >= t) {
            self.udp.first_deadline = None;
            if !self.switch_transport(now, RtspTransport::Tcp, 0, "no RTP over UDP", true) {
                self.fail(RtspError::Timeout("no data from camera"));
            }
            return;
        }
        if now >= self.liveness() + self.config.no_data_timeout {
            self.fail(RtspError::Timeout("no data from camera"));
            return;
        }
        if self.udp.next_rr.is_some_and(|t| now >= t) {
            self.udp.next_rr = Some(now + self.config.receiver_report_interval);
            for i in 0..self.udp.tracks.len() {
                self.queue_rr(now, i);
            }
        }
        if self.next_keepalive.is_some_and(|t| now >= t) {
            self.send_keepalive(now);
        }
    }

    /// Playing: when media last came (UDP: datagrams only, as the RTSP connection may live on
    /// while the media is gone).
    pub(super) fn liveness(&self) -> Instant {
        if self.current == RtspTransport::Udp {
            self.udp.last_rx
        } else {
            self.last_rx
        }
    }
}
