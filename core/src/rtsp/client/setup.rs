//! SETUP of each track over TCP-interleaved or UDP, then PLAY; refused tracks, and the
//! `Auto` switches between the two transports.

use std::net::IpAddr;
use std::time::Instant;

use super::request::{status_error, ReqKind};
use super::udp::{Datagram, PortWait, UdpTrack};
use super::{
    RtspClient, RtspError, RtspTransport, State, UdpDestination, UdpPortRequest,
    DEFAULT_SESSION_TIMEOUT,
};
use crate::rtp_reorder::RtpReorder;
use crate::rtsp::framing::Message;

/// Transport switches (`Auto`) per client: UDP → TCP → UDP at most, so a camera that refuses
/// both, or a network that drops UDP, cannot loop us.
const MAX_TRANSPORT_SWITCHES: u8 = 2;

impl RtspClient {
    pub(super) fn send_setup(&mut self, now: Instant, track: usize) {
        if track >= self.tracks.len() {
            return;
        }
        if self.current == RtspTransport::Udp {
            let index = self.set_up.len();
            match self.udp.ports.get(index).copied().flatten() {
                Some(port) => self.send_udp_setup(now, track, port),
                None => {
                    self.udp.requests.push_back(UdpPortRequest { track: index });
                    self.udp.port_wait = Some(PortWait {
                        track,
                        index,
                        since: now,
                    });
                }
            }
            return;
        }
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let uri = t.control.clone();
        // Propose the next free even/odd pair; the server may pick others.
        let Some(channel) = (0..=254u8).step_by(2).find(|c| {
            self.channels[usize::from(*c)].is_none() && self.channels[usize::from(*c) + 1].is_none()
        }) else {
            self.fail(RtspError::Protocol("no free interleaved channel".into()));
            return;
        };
        let transport = format!(
            "RTP/AVP/TCP;unicast;interleaved={}-{}",
            channel,
            u16::from(channel) + 1
        );
        // No `mode=` in Transport: it upsets some servers (gortsplib).
        let extra = vec![("Transport", transport)];
        self.send(
            now,
            ReqKind::Setup { track, channel },
            "SETUP",
            uri,
            extra,
            false,
        );
    }

    pub(super) fn on_setup(&mut self, now: Instant, m: &Message, track: usize, proposed: u8) {
        self.take_session(m);
        // Accept the camera's channels when it picks others than proposed; without an
        // `interleaved` parameter assume ours.
        let (rtp, rtcp) = m
            .header("Transport")
            .and_then(parse_interleaved)
            .unwrap_or((proposed, proposed.checked_add(1)));
        let index = self.set_up.len();
        self.set_up.push(self.tracks[track].clone());
        self.channels[usize::from(rtp)] = Some((index, false));
        if let Some(rtcp) = rtcp {
            if rtcp != rtp {
                self.channels[usize::from(rtcp)] = Some((index, true));
            }
        }
        self.after_setup(now, track);
    }

    /// SETUP answered with an error. A 4xx drops that track (cameras list audio they cannot
    /// send, or refuse TCP for it with 461); anything else, or `fail_on_track_error`, is fatal.
    pub(super) fn on_setup_refused(
        &mut self,
        now: Instant,
        kind: ReqKind,
        track: usize,
        status: u16,
        reason: String,
    ) {
        // 461 Unsupported Transport: in `Auto`, the other transport for this track, unless it
        // was refused too.
        if status == 461 && self.config.transport == RtspTransport::Auto {
            let udp = matches!(kind, ReqKind::SetupUdp { .. });
            if self.refused.len() <= track {
                self.refused.resize(track + 1, [false; 2]);
            }
            self.refused[track][usize::from(!udp)] = true;
            let other = if udp {
                RtspTransport::Tcp
            } else {
                RtspTransport::Udp
            };
            if !self.refused[track][usize::from(udp)]
                && self.switch_transport(now, other, track, "SETUP answered 461", false)
            {
                return;
            }
        }
        let err = status_error(status, reason.clone());
        if !(400..500).contains(&status) || self.config.fail_on_track_error {
            self.fail(err);
            return;
        }
        let t = self.tracks[track].clone();
        let why = format!("SETUP answered {status} {reason}")
            .trim_end()
            .to_owned();
        tracing::warn!(
            url = %self.url,
            kind = ?t.kind,
            encoding = %t.encoding,
            %why,
            "camera track dropped, playing the others"
        );
        self.dropped.push((t, why));
        self.setup_error.get_or_insert(err);
        self.after_setup(now, track);
    }

    /// SETUP of the next track, or PLAY once all were tried.
    pub(super) fn after_setup(&mut self, now: Instant, track: usize) {
        if track + 1 < self.tracks.len() {
            self.send_setup(now, track + 1);
        } else if self.set_up.is_empty() {
            let err = self
                .setup_error
                .take()
                .unwrap_or(RtspError::NoSupportedTracks);
            self.fail(err);
        } else {
            self.state = State::Play;
            let uri = self.aggregate_url.clone();
            // Range is mandatory for some servers (Parrot Streaming Server, per gortsplib).
            let extra = vec![("Range", "npt=0.000-".to_owned())];
            self.send(now, ReqKind::Play, "PLAY", uri, extra, false);
            // Open NAT/firewall pinholes towards the camera before its media comes.
            for i in 0..self.udp.tracks.len() {
                if self.udp.tracks[i].dest.rtp_port != 0 {
                    let mut rtp = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
                    rtp.extend_from_slice(&self.udp.local_ssrc.to_be_bytes());
                    self.udp.transmit.push_back(Datagram {
                        track: i,
                        rtcp: false,
                        data: rtp,
                    });
                }
                self.queue_rr(now, i);
            }
        }
    }

    pub(super) fn send_udp_setup(&mut self, now: Instant, track: usize, rtp_port: u16) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let uri = t.control.clone();
        let transport = format!(
            "RTP/AVP;unicast;client_port={}-{}",
            rtp_port,
            rtp_port.saturating_add(1)
        );
        let extra = vec![("Transport", transport)];
        self.send(
            now,
            ReqKind::SetupUdp { track, rtp_port },
            "SETUP",
            uri,
            extra,
            false,
        );
    }

    pub(super) fn on_udp_setup(&mut self, now: Instant, m: &Message, track: usize, rtp_port: u16) {
        let transport = m.header("Transport").unwrap_or("");
        // The camera answered with TCP (some Hikvision): start over with TCP (gortsplib).
        if parse_interleaved(transport).is_some() {
            self.take_session(m);
            if !self.switch_transport(
                now,
                RtspTransport::Tcp,
                track,
                "UDP SETUP answered with TCP",
                true,
            ) {
                self.fail(RtspError::Protocol(
                    "UDP SETUP answered with a TCP transport".into(),
                ));
            }
            return;
        }
        self.take_session(m);
        let t = parse_udp_transport(transport);
        if t.client_port.is_some_and(|c| c != rtp_port) {
            tracing::debug!(url = %self.url, transport, "camera changed our client_port, ignored");
        }
        let host_ip = |h: &str| {
            h.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .ok()
                .map(|ip| ip.to_canonical())
        };
        let source_ip = match &t.source {
            Some(s) => host_ip(s),
            None => host_ip(self.url.host()),
        };
        let (rtp, rtcp) = t.server_port.unwrap_or((0, 0));
        self.set_up.push(self.tracks[track].clone());
        self.udp.tracks.push(UdpTrack {
            dest: UdpDestination {
                host: t.source,
                rtp_port: rtp,
                rtcp_port: rtcp,
            },
            source_ip,
            ssrc: t.ssrc,
            reorder: RtpReorder::new(self.config.reorder_depth, self.config.reorder_window),
            last_sr: None,
            expected_prior: 0,
            lost_prior: 0,
        });
        debug_assert_eq!(self.udp.tracks.len(), self.set_up.len());
        self.after_setup(now, track);
    }

    /// UDP cannot be used at all (no ports): TCP in `Auto`, failure in `Udp`.
    pub(super) fn udp_impossible(&mut self, now: Instant, track: usize, why: &'static str) {
        // `switch_transport` refuses in `Udp` mode.
        if !self.switch_transport(now, RtspTransport::Tcp, track, why, false) {
            self.fail(RtspError::Protocol(why.into()));
        }
    }

    /// `Auto` only: go on with `to`, SETting UP `tracks[track]` again on the same session, or,
    /// when tracks are already set up with the other transport or `restart`, TEARDOWN and start
    /// over at DESCRIBE on the same connection. `false` when no switch is allowed.
    pub(super) fn switch_transport(
        &mut self,
        now: Instant,
        to: RtspTransport,
        track: usize,
        why: &str,
        restart: bool,
    ) -> bool {
        if self.config.transport != RtspTransport::Auto
            || self.current == to
            || self.switches >= MAX_TRANSPORT_SWITCHES
            || (to == RtspTransport::Udp && self.udp.unavailable)
        {
            return false;
        }
        self.switches += 1;
        let restart = restart || !self.set_up.is_empty();
        tracing::info!(
            url = %self.url,
            from = ?self.current,
            to = ?to,
            why,
            restart,
            "rtsp transport switch"
        );
        self.current = to;
        if !restart {
            self.udp.port_wait = None;
            self.udp.requests.clear();
            self.send_setup(now, track);
            return true;
        }
        if self.session.is_some() {
            let uri = self.aggregate_url.clone();
            self.send(now, ReqKind::Keepalive, "TEARDOWN", uri, Vec::new(), false);
        }
        // Pending answers of the old session (a keepalive, the TEARDOWN) are matched by CSeq
        // and ignored.
        self.pending.retain(|p| p.kind == ReqKind::Keepalive);
        self.forget_session();
        self.state = State::Describe;
        let uri = self.url.request_url().to_owned();
        let extra = vec![("Accept", "application/sdp".to_owned())];
        self.send(now, ReqKind::Describe, "DESCRIBE", uri, extra, false);
        true
    }
}

/// `interleaved=a-b` (or a lone `a`) from a Transport header.
pub(super) fn parse_interleaved(transport: &str) -> Option<(u8, Option<u8>)> {
    let v = transport
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("interleaved"))?
        .1
        .trim();
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok())),
        None => {
            let a: u8 = v.parse().ok()?;
            Some((a, a.checked_add(1)))
        }
    }
}

/// The UDP parameters of a SETUP answer's Transport header.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct UdpTransportAnswer {
    pub(super) server_port: Option<(u16, u16)>,
    pub(super) client_port: Option<u16>,
    pub(super) ssrc: Option<u32>,
    pub(super) source: Option<String>,
}

/// `server_port=a-b` (or a lone `a`: RTCP on a+1), `client_port`, `ssrc=` (hex, as RFC 2326
/// says; some cameras pad or prefix it) and `source=`. Port 0 and junk count as absent.
pub(super) fn parse_udp_transport(transport: &str) -> UdpTransportAnswer {
    let mut t = UdpTransportAnswer::default();
    let pair = |v: &str| -> Option<(u16, u16)> {
        let (a, b) = match v.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()),
            None => (v.parse::<u16>().ok()?, None),
        };
        let b = b.or_else(|| a.checked_add(1))?;
        (a != 0 && b != 0).then_some((a, b))
    };
    for p in transport.split(';') {
        let Some((k, v)) = p.trim().split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "server_port" => t.server_port = pair(v),
            "client_port" => t.client_port = pair(v).map(|p| p.0),
            "ssrc" => {
                let h = v.trim_start_matches("0x").trim_start_matches("0X");
                t.ssrc = u32::from_str_radix(h, 16)
                    .ok()
                    .or_else(|| h.parse::<u32>().ok());
            }
            "source" if !v.is_empty() => t.source = Some(v.to_owned()),
            _ => {}
        }
    }
    t
}

impl RtspClient {
    /// Forgets the session and everything set up in it (tracks, channels, UDP ports), to start
    /// again with DESCRIBE: on another transport, or at another server.
    pub(super) fn forget_session(&mut self) {
        self.session = None;
        self.session_timeout = DEFAULT_SESSION_TIMEOUT;
        self.tracks.clear();
        self.set_up.clear();
        self.dropped.clear();
        self.setup_error = None;
        self.channels.iter_mut().for_each(|c| *c = None);
        self.next_keepalive = None;
        self.reset_udp();
    }
}
