//! Media over UDP: port pairs from the driver, datagrams checked and reordered, receiver
//! reports and pinholes towards the camera.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

#[cfg(doc)]
use super::RtspConfig;
use super::{
    MediaPacket, ReceivedMedia, RtspClient, RtspTransport, State, UdpDestination, UdpPortRequest,
};
use crate::rtp_reorder::RtpReorder;

/// The UDP side of a client: kept across transport switches (the ports) or reset with the
/// session (the rest).
#[derive(Debug)]
pub(super) struct UdpSession {
    /// No local UDP port could be bound, or the driver answered no port request: TCP only.
    pub(super) unavailable: bool,
    /// Local RTP ports the driver bound, by `set_up` index; kept for the client's lifetime.
    pub(super) ports: Vec<Option<u16>>,
    pub(super) requests: VecDeque<UdpPortRequest>,
    pub(super) port_wait: Option<PortWait>,
    /// By `set_up` index, while the session is on UDP.
    pub(super) tracks: Vec<UdpTrack>,
    pub(super) transmit: VecDeque<Datagram>,
    /// After PLAY on UDP, until the first RTP: no RTP by then → fallback (`Auto`) or failure.
    pub(super) first_deadline: Option<Instant>,
    pub(super) last_rx: Instant,
    pub(super) next_rr: Option<Instant>,
    /// Our SSRC in receiver reports and punch packets.
    pub(super) local_ssrc: u32,
}

/// A datagram from one of a track's UDP sockets.
#[derive(Clone, Copy)]
pub(super) struct Received<'a> {
    pub(super) track: usize,
    /// From the track's RTCP socket.
    pub(super) rtcp: bool,
    pub(super) source: SocketAddr,
    pub(super) data: &'a [u8],
}

impl UdpSession {
    pub(super) fn new(local_ssrc: u32, now: Instant) -> UdpSession {
        UdpSession {
            unavailable: false,
            ports: Vec::new(),
            requests: VecDeque::new(),
            port_wait: None,
            tracks: Vec::new(),
            transmit: VecDeque::new(),
            first_deadline: None,
            last_rx: now,
            next_rr: None,
            local_ssrc,
        }
    }
}

/// A datagram for the camera, before its destination is looked up.
#[derive(Debug)]
pub(super) struct Datagram {
    pub(super) track: usize,
    pub(super) rtcp: bool,
    pub(super) data: Vec<u8>,
}

/// A port pair asked of the driver for the SETUP of `tracks[track]`, which becomes
/// `set_up[index]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct PortWait {
    pub(super) track: usize,
    pub(super) index: usize,
    pub(super) since: Instant,
}

/// A track set up over UDP.
#[derive(Debug)]
pub(super) struct UdpTrack {
    pub(super) dest: UdpDestination,
    /// Datagrams from other addresses are dropped; `None` when the server is known by name only.
    pub(super) source_ip: Option<IpAddr>,
    /// From the Transport answer, then from the packets.
    pub(super) ssrc: Option<u32>,
    pub(super) reorder: RtpReorder,
    /// Middle 32 bits of the last sender report's NTP time, and when it arrived.
    pub(super) last_sr: Option<(u32, Instant)>,
    /// Counts at the previous receiver report, for the fraction lost.
    pub(super) expected_prior: u64,
    pub(super) lost_prior: u64,
}

impl RtspClient {
    /// The driver bound `rtp_port` (even) and `rtp_port + 1` for `track`: SETUP goes out with
    /// `client_port=rtp_port-(rtp_port+1)`.
    pub fn handle_udp_ports(&mut self, now: Instant, track: usize, rtp_port: u16) {
        if rtp_port == 0 || rtp_port == u16::MAX {
            self.handle_udp_ports_failed(now, track);
            return;
        }
        if self.udp.ports.len() <= track {
            self.udp.ports.resize(track + 1, None);
        }
        self.udp.ports[track] = Some(rtp_port);
        let Some(w) = self.udp.port_wait.filter(|w| w.index == track) else {
            return;
        };
        self.udp.port_wait = None;
        if self.state == State::Setup {
            self.send_udp_setup(now, w.track, rtp_port);
        }
    }

    /// No port pair could be bound for `track`: `Auto` falls back to TCP, `Udp` fails.
    pub fn handle_udp_ports_failed(&mut self, now: Instant, track: usize) {
        let Some(w) = self.udp.port_wait.filter(|w| w.index == track) else {
            return;
        };
        self.udp.port_wait = None;
        self.udp.requests.clear();
        self.udp.unavailable = true;
        self.udp_impossible(now, w.track, "no local UDP port could be bound");
    }

    /// A datagram that arrived on a track's UDP socket (RTP or RTCP socket) from `source`.
    /// RTP goes through a reorder buffer ([`RtspConfig::reorder_depth`] packets,
    /// [`RtspConfig::reorder_window`]); RTCP is passed on at once. Media comes out exactly
    /// like interleaved media, once PLAY has been answered. Datagrams from anywhere but
    /// the camera (its address when known as an IP, its announced ports when given), for tracks
    /// not on UDP, or that are not RTP/RTCP version 2 are dropped. Packets held past the window
    /// are released at the next `handle_udp_input` or `handle_input`. Returns the media, as
    /// [`RtspClient::handle_input`] does.
    pub fn handle_udp_input<'a>(
        &'a mut self,
        now: Instant,
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &'a [u8],
    ) -> ReceivedMedia<'a> {
        let mut out = std::mem::take(&mut self.received);
        out.clear();
        let datagram = Received {
            track,
            rtcp,
            source,
            data,
        };
        self.input_udp(now, datagram, &mut |m| out.record(data, m));
        self.received = out;
        ReceivedMedia::new(data, &self.received)
    }

    pub(super) fn input_udp(
        &mut self,
        now: Instant,
        d: Received<'_>,
        on_media: &mut dyn FnMut(MediaPacket<'_>),
    ) {
        if self.current != RtspTransport::Udp {
            return;
        }
        self.open_media(now, on_media);
        match self.state {
            State::Playing if self.media_open => self.receive_udp(now, d, on_media),
            // A camera that streams before answering PLAY (see `handle_input`).
            State::Play | State::Playing => {
                self.early.hold(d.track, d.rtcp, Some(d.source), d.data)
            }
            _ => {}
        }
    }

    pub(super) fn receive_udp(
        &mut self,
        now: Instant,
        d: Received<'_>,
        on_media: &mut dyn FnMut(MediaPacket<'_>),
    ) {
        let Received {
            track,
            rtcp,
            source,
            data,
        } = d;
        self.release_expired(now, on_media);
        let Some(u) = self.udp.tracks.get_mut(track) else {
            return;
        };
        if let Some(ip) = u.source_ip {
            if source.ip().to_canonical() != ip {
                return;
            }
        }
        // Either port of the announced pair: some cameras send RTCP from the RTP port.
        if u.dest.rtp_port != 0
            && source.port() != u.dest.rtp_port
            && source.port() != u.dest.rtcp_port
        {
            return;
        }
        if data.len() < 8 || data[0] >> 6 != 2 {
            return;
        }
        // RTCP on the RTP port (RFC 5761 demultiplexing by payload type).
        let rtcp = rtcp || (192..=223).contains(&data[1]);
        if rtcp {
            self.udp.last_rx = now;
            // A sender report: remember it for LSR/DLSR.
            if data[1] == 200 && data.len() >= 20 {
                let lsr = u32::from_be_bytes([data[10], data[11], data[12], data[13]]);
                u.last_sr = Some((lsr, now));
            }
            on_media(MediaPacket {
                track,
                rtcp: true,
                data,
            });
            return;
        }
        if data.len() < 12 {
            return;
        }
        self.udp.last_rx = now;
        self.udp.first_deadline = None;
        u.ssrc = Some(u32::from_be_bytes([data[8], data[9], data[10], data[11]]));
        let seq = u16::from_be_bytes([data[2], data[3]]);
        u.reorder.push(now, seq, data, &mut |_, d| {
            on_media(MediaPacket {
                track,
                rtcp: false,
                data: d,
            })
        });
    }

    /// Where the camera expects a track's UDP traffic; `None` when the track is not on UDP or
    /// the camera announced no `server_port`.
    pub fn udp_destination(&self, track: usize) -> Option<UdpDestination> {
        if self.current != RtspTransport::Udp {
            return None;
        }
        self.udp
            .tracks
            .get(track)
            .filter(|u| u.dest.rtp_port != 0)
            .map(|u| u.dest.clone())
    }

    /// Hands on UDP packets held past the reorder window.
    pub(super) fn release_expired(
        &mut self,
        now: Instant,
        on_media: &mut dyn FnMut(MediaPacket<'_>),
    ) {
        for (track, u) in self.udp.tracks.iter_mut().enumerate() {
            u.reorder.handle_timeout(now, &mut |_, d| {
                on_media(MediaPacket {
                    track,
                    rtcp: false,
                    data: d,
                })
            });
        }
    }

    /// An RTCP receiver report (RFC 3550 §6.4.2) for `set_up[track]`: one report block once the
    /// track's SSRC is known, empty before.
    pub(super) fn queue_rr(&mut self, now: Instant, track: usize) {
        let local_ssrc = self.udp.local_ssrc;
        let Some(u) = self.udp.tracks.get_mut(track) else {
            return;
        };
        if u.dest.rtcp_port == 0 {
            return;
        }
        let mut p = Vec::with_capacity(32);
        match u.ssrc {
            None => {
                p.extend_from_slice(&[0x80, 201, 0, 1]);
                p.extend_from_slice(&local_ssrc.to_be_bytes());
            }
            Some(ssrc) => {
                let lost = u.reorder.lost();
                let expected = u.reorder.delivered() + lost;
                let expected_interval = expected - u.expected_prior;
                let lost_interval = lost - u.lost_prior;
                u.expected_prior = expected;
                u.lost_prior = lost;
                let fraction = (lost_interval << 8)
                    .checked_div(expected_interval)
                    .map_or(0, |f| f.min(255) as u8);
                let cumulative = lost.min(0x7f_ffff) as u32;
                let (lsr, dlsr) = match u.last_sr {
                    Some((lsr, at)) => {
                        let d = now.saturating_duration_since(at);
                        let dlsr = (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32;
                        (lsr, dlsr)
                    }
                    None => (0, 0),
                };
                p.extend_from_slice(&[0x81, 201, 0, 7]);
                p.extend_from_slice(&local_ssrc.to_be_bytes());
                p.extend_from_slice(&ssrc.to_be_bytes());
                p.push(fraction);
                p.extend_from_slice(&cumulative.to_be_bytes()[1..]);
                p.extend_from_slice(&u.reorder.extended_highest().unwrap_or(0).to_be_bytes());
                p.extend_from_slice(&0u32.to_be_bytes()); // jitter: not measured
                p.extend_from_slice(&lsr.to_be_bytes());
                p.extend_from_slice(&dlsr.to_be_bytes());
            }
        }
        self.udp.transmit.push_back(Datagram {
            track,
            rtcp: true,
            data: p,
        });
    }

    /// Forgets the UDP session state (not the bound ports).
    pub(super) fn reset_udp(&mut self) {
        self.udp.port_wait = None;
        self.udp.requests.clear();
        self.udp.tracks.clear();
        self.udp.transmit.clear();
        self.udp.first_deadline = None;
        self.udp.next_rr = None;
    }
}
