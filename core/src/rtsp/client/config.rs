//! What a client is told: timeouts, transport, identity, seed.

use std::time::Duration;

#[cfg(doc)]
use super::{Redirect, RtspClient};

/// Timeouts and identity of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspConfig {
    /// No `handle_connected()` by then → `Failed(ConnectFailed)`.
    pub connect_timeout: Duration,
    /// Per request, from the time it was queued.
    pub response_timeout: Duration,
    /// While playing: no byte at all from the server for this long → `Failed(Timeout)`.
    pub no_data_timeout: Duration,
    /// `User-Agent` of every request; empty sends none.
    pub user_agent: String,
    /// Answer Digest `qop` challenges with `qop`, `nc` and `cnonce` (RFC 2617/7616). `false`
    /// sends RFC 2069 digests instead, for cameras that reject those fields. Default `true`.
    pub digest_cnonce: bool,
    /// Follow 301/302/303/305/307 answers to OPTIONS and DESCRIBE by asking the driver to
    /// reconnect (see [`Redirect`]). Default `false`: such an answer fails the stream
    /// (`Failed(Status { 302, .. })`).
    pub follow_redirects: bool,
    /// A track whose SETUP is answered 4xx fails the stream. Default `false`: the track is
    /// dropped (see [`RtspClient::dropped_tracks`]) and the others play; only when no track
    /// could be set up does the stream fail.
    pub fail_on_track_error: bool,
    /// How media travels: UDP first with TCP fallback (default), or one forced.
    pub transport: RtspTransport,
    /// UDP: no RTP on any track this long after PLAY → `Auto` falls back to TCP, `Udp` fails.
    pub udp_no_data_timeout: Duration,
    /// UDP: RTCP receiver report period, per track.
    pub receiver_report_interval: Duration,
    /// UDP: a packet held for a missing predecessor is released after this long (the gap
    /// counts as loss).
    pub reorder_window: Duration,
    /// UDP: packets held per track while waiting for a missing one.
    pub reorder_depth: usize,
    /// Seeds the client's random numbers (Digest client nonces, the SSRC of its receiver
    /// reports): the same seed gives the same values, so the client is a pure function of its
    /// inputs. Callers draw it from the OS once and give each client its own; the default, 0,
    /// is only for tests.
    pub seed: u64,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10),
            no_data_timeout: Duration::from_secs(10),
            user_agent: format!("camgate/{}", env!("CARGO_PKG_VERSION")),
            digest_cnonce: true,
            follow_redirects: false,
            fail_on_track_error: false,
            transport: RtspTransport::Auto,
            udp_no_data_timeout: Duration::from_secs(3),
            receiver_report_interval: Duration::from_secs(5),
            reorder_window: Duration::from_millis(100),
            reorder_depth: 64,
            seed: 0,
        }
    }
}

/// How RTP reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// UDP first; TCP-interleaved when UDP is refused (461), no local port can be bound, or no
    /// RTP arrives within [`RtspConfig::udp_no_data_timeout`] after PLAY.
    #[default]
    Auto,
    /// TCP-interleaved only.
    Tcp,
    /// UDP only, never falls back.
    Udp,
}
