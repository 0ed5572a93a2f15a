//! Sans-IO RTSP client: pulls one camera stream over UDP or TCP-interleaved RTP.
//!
//! - [`framing`] splits the TCP byte stream into RTSP messages and `$` frames;
//! - [`url`] parses `rtsp://` URLs and keeps the password out of every printed form;
//! - [`auth`] answers Digest (MD5, MD5-sess, SHA-256) and Basic challenges;
//! - [`sdp`] turns the camera's SDP into [`crate::media::TrackInfo`]s;
//! - [`server`] answers RTSP players (one [`server::ServerSession`] per connection) with the
//!   gateway's streams;
//! - [`client`] runs OPTIONS → DESCRIBE → SETUP → PLAY, keepalives and TEARDOWN, follows
//!   redirects (opt-in) and drops tracks the camera refuses to set up; over UDP (`Auto`: UDP
//!   first, TCP fallback) it asks the driver for port pairs, reorders RTP
//!   ([`crate::rtp_reorder`]) and sends receiver reports.

pub mod auth;
pub mod client;
pub mod framing;
pub mod sdp;
pub mod server;
pub mod url;

pub use client::{
    MediaPacket, ReceivedMedia, Redirect, RtspClient, RtspConfig, RtspError, RtspEvent, RtspOutput,
    RtspTransport, UdpDestination, UdpPortRequest, UdpTransmit,
};
pub use url::RtspUrl;
