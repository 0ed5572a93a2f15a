//! What a client hands its driver: [`RtspOutput`] from `poll_output`, media from the
//! input calls, and the types they carry.

use std::fmt;

#[cfg(doc)]
use super::{RtspClient, RtspConfig};

use crate::media::TrackInfo;

/// The client needs a local UDP port pair (even RTP port, odd RTCP port = RTP + 1) for the track
/// it is about to SET UP; answer with [`RtspClient::handle_udp_ports`] or
/// [`RtspClient::handle_udp_ports_failed`] (no answer within
/// [`RtspConfig::response_timeout`]: `Auto` goes on over TCP). A new request for the same
/// index replaces the previous pair (the driver closes the old sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPortRequest {
    /// The index the track will have in [`RtspEvent::Playing`]'s tracks (=
    /// [`MediaPacket::track`], the `track` of [`RtspClient::handle_udp_input`]).
    pub track: usize,
}

/// A datagram for the camera: RTCP receiver reports every
/// [`RtspConfig::receiver_report_interval`] and, as PLAY goes out, one empty RTP packet and one
/// receiver report per track to open NAT/firewall pinholes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpTransmit {
    /// Send from this track's sockets...
    pub track: usize,
    /// ...its RTCP socket (`true`) or its RTP socket...
    pub rtcp: bool,
    /// ...to this host (`None`: the RTSP server's)...
    pub host: Option<String>,
    /// ...and port (the camera's `server_port` for RTP or RTCP).
    pub port: u16,
    /// The RTP or RTCP packet.
    pub data: Vec<u8>,
}

/// Where the camera expects a track's UDP traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDestination {
    /// `source=` of the SETUP answer; `None` = the RTSP server's host.
    pub host: Option<String>,
    /// `server_port=` of the SETUP answer: RTP...
    pub rtp_port: u16,
    /// ...and RTCP.
    pub rtcp_port: u16,
}

/// Why a stream could not be played. `Display` is what a viewer is shown; no variant ever holds
/// a password or the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspError {
    /// The URL is not a usable `rtsp://` URL (why).
    BadUri(String),
    /// No TCP connection within [`RtspConfig::connect_timeout`], or it was refused.
    ConnectFailed,
    /// 401 without credentials, with credentials that were refused, or with no challenge we
    /// can answer.
    Unauthorized,
    /// 404.
    NotFound,
    /// Any other error status.
    Status {
        /// The status code.
        code: u16,
        /// The reason phrase, as sent.
        reason: String,
    },
    /// Something did not come in time (what).
    Timeout(&'static str),
    /// The camera broke RTSP (how).
    Protocol(String),
    /// The SDP has no audio or video track (or none SETUP accepted). The gateway also fails
    /// browsers with this text when the tracks it has are none they can play.
    NoSupportedTracks,
    /// The camera closed the connection.
    ConnectionClosed,
    /// The TLS session of an `rtsps://` camera failed (why, from the driver: e.g. the
    /// certificate it presented and why it was not accepted).
    Tls(String),
}

impl fmt::Display for RtspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtspError::BadUri(r) => write!(f, "Bad URI: {r}"),
            RtspError::ConnectFailed => f.write_str("Failed to connect to rtsp stream"),
            RtspError::Unauthorized => f.write_str("401 Unauthorized"),
            RtspError::NotFound => f.write_str("Rtsp stream not found"),
            RtspError::Status { code, reason } => write!(f, "{code} {reason}"),
            RtspError::Timeout(what) => write!(f, "Timeout: {what}"),
            RtspError::Protocol(what) => write!(f, "Rtsp protocol error: {what}"),
            RtspError::NoSupportedTracks => f.write_str("No supported audio or video track"),
            RtspError::ConnectionClosed => f.write_str("Rtsp connection closed"),
            RtspError::Tls(why) => write!(f, "TLS: {why}"),
        }
    }
}

impl std::error::Error for RtspError {}

/// One RTP or RTCP packet from the camera, borrowed from the bytes passed to `handle_input` or
/// `handle_udp_input` (or, rarely, from the client: a packet split across reads, reordered or
/// early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPacket<'a> {
    /// Index into the tracks of [`RtspEvent::Playing`].
    pub track: usize,
    /// RTCP (odd channel of the pair, or the RTCP socket), else RTP.
    pub rtcp: bool,
    /// The whole RTP or RTCP packet.
    pub data: &'a [u8],
}

/// A change of the stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspEvent {
    /// PLAY succeeded; media follows from the next input on. Comes again after a transport
    /// switch, with the tracks of the new session.
    Playing {
        /// The tracks set up, indexed by [`MediaPacket::track`].
        tracks: Vec<TrackInfo>,
    },
    /// Terminal: write what is left to send, then close the socket.
    Failed(RtspError),
    /// Terminal, after [`RtspClient::teardown`]: write what is left to send, then close.
    Closed,
}

/// What the client asks of its driver; see [`RtspClient::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspOutput {
    /// Bytes to write to the TCP connection, in order.
    Transmit(Vec<u8>),
    /// Bind a local UDP port pair for a track.
    OpenUdp(UdpPortRequest),
    /// Send a datagram to the camera.
    UdpTransmit(UdpTransmit),
    /// Close the connection and connect elsewhere.
    Redirect(Redirect),
    /// The stream started playing, failed or closed.
    Event(RtspEvent),
}

/// The camera redirected the client elsewhere ([`RtspConfig::follow_redirects`]).
///
/// Driver protocol: write what came before it to the current socket, close it, open a TCP
/// connection to `host`:`port`, and call [`RtspClient::handle_connected`] when it is up (or
/// `handle_connection_lost` if it fails; the connect timeout runs again from the redirect).
/// The next `handle_connected` starts over with OPTIONS on the new URL ([`RtspClient::url`]),
/// keeping the old credentials when the new URL names none. At most 3 redirects are followed;
/// the 4th fails with `Protocol("too many redirects")`, and a redirect to anything but
/// `rtsp://` fails with `Protocol("redirect to a non-rtsp URL")`. For `305 Use Proxy`,
/// `host`:`port` is the proxy and the request URL stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Host to connect to.
    pub host: String,
    /// TCP port to connect to.
    pub port: u16,
    /// The new connection is TLS (`rtsps://`).
    pub tls: bool,
}

/// Where each media packet of the current input is: a range of the input, or of `held` for the
/// few that are not in it. Reused from input to input, so steady state allocates nothing.
#[derive(Debug, Default)]
pub(super) struct MediaOut {
    packets: Vec<(usize, bool, Place)>,
    /// Copies of packets that are not slices of the input: completed from bytes buffered by an
    /// earlier read, released by the reorder buffer, or held as early media.
    held: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Input(usize, usize),
    Held(usize, usize),
}

impl MediaOut {
    pub(super) fn clear(&mut self) {
        self.packets.clear();
        self.held.clear();
    }

    pub(super) fn record(&mut self, input: &[u8], m: MediaPacket<'_>) {
        // Only addresses are compared: is `m.data` inside `input`?
        let (start, len) = (m.data.as_ptr() as usize, m.data.len());
        let base = input.as_ptr() as usize;
        let place = if start >= base && start + len <= base + input.len() {
            Place::Input(start - base, len)
        } else {
            self.held.extend_from_slice(m.data);
            Place::Held(self.held.len() - len, len)
        };
        self.packets.push((m.track, m.rtcp, place));
    }
}

/// The media of one input, in arrival order; see [`RtspClient::handle_input`]. Media not taken
/// before the next call into the client is gone.
#[must_use = "the camera's media is dropped unless iterated"]
#[derive(Debug)]
pub struct ReceivedMedia<'a> {
    input: &'a [u8],
    out: &'a MediaOut,
    next: usize,
}

impl<'a> ReceivedMedia<'a> {
    pub(super) fn new(input: &'a [u8], out: &'a MediaOut) -> ReceivedMedia<'a> {
        ReceivedMedia {
            input,
            out,
            next: 0,
        }
    }
}

impl<'a> Iterator for ReceivedMedia<'a> {
    type Item = MediaPacket<'a>;

    fn next(&mut self) -> Option<MediaPacket<'a>> {
        let &(track, rtcp, place) = self.out.packets.get(self.next)?;
        self.next += 1;
        let data = match place {
            Place::Input(at, len) => &self.input[at..at + len],
            Place::Held(at, len) => &self.out.held[at..at + len],
        };
        Some(MediaPacket { track, rtcp, data })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.out.packets.len() - self.next;
        (n, Some(n))
    }
}
