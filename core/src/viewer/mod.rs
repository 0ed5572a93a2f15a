//! One browser watching one stream: a str0m `Rtc` in ICE-lite, RTP mode.
//!
//! The viewer never re-packetizes: the gateway hands it the relay's packets (`Arc<[u8]>`
//! payloads shared by every viewer) and the viewer only rebases sequence numbers, so each
//! browser sees its own stream start at a low sequence number (str0m needs that to derive the
//! SRTP rollover counter) while gaps in the camera's stream stay gaps.
//!
//! Here: the answer to the browser's offer and what it settled; `media`: writing media to the
//! `Rtc`, pacing a congested viewer, and taking its datagrams.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::rtp::{Extension, RtpWrite, SeqNo};
use str0m::{Candidate, CandidateKind, Event, IceConnectionState, Input, Output, Rtc};

use crate::audio_relay::{AudioOut, AudioPacket};
use crate::bandwidth::{LinkReport, STATS_INTERVAL};
use crate::gop::{GopCache, ReplayCursor};
use crate::media::VideoPacket;
use crate::video_relay::VideoCodec;

mod media;

/// Why a browser's offer cannot become a viewer; `Display` gives the text of the FAILED status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerError {
    /// str0m could not parse or accept the offer SDP.
    BadOffer(String),
    /// The browser offered none of the camera's video codec (H.264 packetization-mode 1 or
    /// VP8), or no video at all.
    NoCommonCodec,
    /// The camera sends H.265 (`camera`: its profile) and the browser offered no H.265 of that
    /// profile; `browser`: the video codecs it offered.
    NoH265 {
        /// "H.265 Main", or "H.265" when the profile is unknown.
        camera: String,
        /// "H264, VP8, VP9, AV1".
        browser: String,
    },
}

impl std::fmt::Display for ViewerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadOffer(why) => write!(f, "Bad SDP offer: {why}"),
            Self::NoCommonCodec => write!(
                f,
                "No common codecs: the browser offers none of the camera's video codec (H.264 packetization-mode=1 or VP8)"
            ),
            Self::NoH265 { camera, browser } => write!(
                f,
                "No common codecs: camera sends {camera}; this browser decodes {browser}: use the \
                 camera's H.264 sub-stream, or a browser that decodes H.265 (Safari 17+, Chrome or \
                 Edge with hardware HEVC decoding)"
            ),
        }
    }
}

/// Profiles we also answer with, so a browser that lacks the camera's exact profile still plays:
/// the decoder reads the real profile from the SPS in-band (constrained baseline, baseline, main, high).
const FALLBACK_PROFILES: [u32; 4] = [0x42e01f, 0x42001f, 0x4d001f, 0x64001f];

/// The `a=mid` of the offer's first section of `kind` ("video", "audio"). (str0m reports remote m-lines only once
/// the connection is up, but the answer must be chosen now.)
fn first_mid(sdp: &str, kind: &str) -> Option<Mid> {
    let mut in_kind = false;
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            in_kind = m.starts_with(kind);
        } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_kind) {
            return Some(Mid::from(mid.trim()));
        }
    }
    None
}

/// The video codecs an offer lists in its first video section ("H264, VP8, H265 Main"),
/// without retransmission and error-correction formats.
fn offered_video_codecs(sdp: &str) -> String {
    let mut in_video = false;
    let mut names: Vec<String> = Vec::new();
    let lines: Vec<&str> = sdp.lines().map(str::trim).collect();
    for line in &lines {
        if let Some(m) = line.strip_prefix("m=") {
            if in_video {
                break;
            }
            in_video = m.starts_with("video");
            continue;
        }
        let Some((pt, name)) = line
            .strip_prefix("a=rtpmap:")
            .filter(|_| in_video)
            .and_then(|r| {
                let (pt, rest) = r.split_once(' ')?;
                Some((pt, rest.split('/').next()?.to_ascii_uppercase()))
            })
        else {
            continue;
        };
        if matches!(name.as_str(), "RTX" | "RED" | "ULPFEC" | "FLEXFEC-03") {
            continue;
        }
        let name = if name == "H265" {
            // Which H.265 profile: the fmtp's profile-id (Main when absent, RFC 7798 7.1).
            let fmtp = format!("a=fmtp:{pt} ");
            let profile = (lines.iter())
                .find_map(|l| l.strip_prefix(fmtp.as_str()))
                .and_then(|f| crate::h264::params::fmtp_param(f, "profile-id"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            format!("H265 {}", crate::h265::sps::profile_name(profile))
        } else {
            name
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        "no video".into()
    } else {
        names.join(", ")
    }
}

/// The H.264 profile a profile-level-id names (RFC 6184 table 5), which is what decides whether a
/// browser can decode it: constrained baseline, baseline, main, extended, high, ...
fn profile_class(profile_level_id: u32) -> (u8, bool) {
    let idc = (profile_level_id >> 16) as u8;
    let flags = (profile_level_id >> 8) as u8;
    let constrained_baseline = match idc {
        0x42 => flags & 0x40 != 0,
        0x4d => flags & 0x80 != 0,
        0x58 => flags & 0xc0 == 0xc0,
        _ => false,
    };
    if constrained_baseline {
        (0x42, true)
    } else {
        (idc, false)
    }
}

/// A browser silent this long (no STUN, DTLS or RTCP) is gone.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a viewer may take from the answer to a working connection (ICE and DTLS) by default
/// (`GatewayConfig::ice_timeout`). Browsers start checking at once and a healthy path connects
/// in well under a second; 10 s still covers a DTLS flight lost twice (retransmits after 1 s,
/// then 2 s, 4 s), while a viewer whose path is blocked learns why before giving up on a black
/// picture.
pub const ICE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many (local, remote) address pairs of connectivity checks are remembered per
/// viewer, for the reason of a failed connection.
const CHECKS_KEPT: usize = 4;

/// At most this many packets of history per viewer to answer NACKs (`RTX_MAX_AGE` usually
/// keeps it smaller): 300 video packets are 0.6 s at 4 Mbit/s. Each entry is a record of about
/// 430 bytes (the payload is the shared `Arc`), so the history is the largest part of a
/// viewer's memory: str0m's default of 1000 cost about 0.3 MB more per viewer than 300 (see
/// benches/ANALYSIS.md).
const VIDEO_SEND_BUFFER: usize = 300;
/// Packets of a GOP replay written to str0m between two flushes (one viewer's share of a loop
/// turn): a 2 Mbit/s keyframe is about 50 packets, so its queue stays at its steady size.
pub const REPLAY_SLICE: usize = 48;
/// Audio: 50 packets per second, so 1 s.
const AUDIO_SEND_BUFFER: usize = 50;
/// How old a packet str0m still resends on a NACK. The history grows only to what this span
/// holds (str0m's default of 3 s filled all 300 entries at any bitrate above 0.7 Mbit/s): at
/// 2 Mbit/s about 120 packets, in a buffer that grows in steps to 150-200 entries (65-85 KB per
/// viewer instead of 127 KB; measured RSS: 25 KB less per viewer). Half a second is a NACK
/// round trip on any path a live viewer can use, and more than a browser's jitter buffer
/// waits for a resend (Janus keeps 200 ms by default, more on long round trips).
const RTX_MAX_AGE: Duration = Duration::from_millis(500);
/// str0m's default: queued resends are dropped when they exceed 15 % of what was sent.
const RTX_RATIO_CAP: Option<f32> = Some(0.15);

/// Shortest time between two answers to a browser's keyframe requests from the GOP cache.
pub const MIN_REPLAY_INTERVAL: Duration = Duration::from_secs(1);

/// Lifecycle milestones the gateway reports to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewerState {
    /// DTLS is up: media can flow.
    pub connected: bool,
    /// The first keyframe has been written: the browser has something to decode.
    pub playing: bool,
    /// ICE gave up or DTLS failed: the viewer is gone.
    pub failed: bool,
    /// The browser asked for a keyframe (PLI/FIR) since the gateway last looked.
    pub keyframe_requested: bool,
}

/// One browser's WebRTC connection to one stream: answers its offer, sends it the relay's
/// packets, and reports its state and link quality to the gateway.
pub struct Viewer {
    rtc: Rtc,
    video: Option<(Mid, Pt)>,
    /// The H.264 profile-level-id negotiated for `video` (what the browser was told).
    negotiated_profile: Option<u32>,
    audio: Option<(Mid, Pt)>,
    /// Like `last_seq`, for the audio stream.
    audio_last_seq: Option<(u16, u64)>,
    /// The codec the browser gets its audio in.
    audio_codec: Option<AudioOut>,
    /// Relay sequence number of the last packet written, and its extended output counterpart.
    last_seq: Option<(u16, u64)>,
    /// Skip everything up to the next keyframe (the camera's stream restarted).
    awaiting_keyframe: bool,
    /// RTP timestamp of the last video packet written.
    last_video_ts: Option<u32>,
    /// When a keyframe request was last answered from the GOP cache.
    last_replay: Option<Instant>,
    /// Last datagram from the browser. str0m's ICE-lite never reports a browser that went
    /// silent as disconnected when its offer had no candidates (the SDK's never do), so
    /// liveness is judged here: browsers send STUN consent checks and RTCP every few seconds.
    last_heard: Instant,
    state: ViewerState,
    /// camgate's ICE username fragment in this viewer's answer.
    ice_ufrag: String,
    /// Packets were written since the last flush, and the gateway has been told (`wants_flush`).
    unflushed: bool,
    flush_queued: bool,
    /// str0m's next deadline as the last drain left it; `None` once str0m was touched since.
    /// Saves a `poll_output` pass (all of str0m's timer arithmetic) per viewer per batch.
    next_timeout: Option<Instant>,
    /// Video payload bytes written, for the link judgement.
    video_bytes: u64,
    /// The browser's latest receiver report not yet taken by the gateway, and the last one seen
    /// (received sequence, lost) so that each report is taken once.
    link_report: Option<LinkReport>,
    last_rr: Option<(u64, u64)>,
    /// While the browser's link is congested: the rate it is held to (see `bandwidth`).
    budget: Option<media::Budget>,
    /// The last video packet written ended a frame: the next one may be skipped.
    at_frame_start: bool,
    /// Skips to the next keyframe made for the budget, not yet counted by the gateway.
    skips: u64,
    /// The connection must be up by then (answer time + `ice_timeout`); `None` once it is.
    connect_deadline: Option<Instant>,
    ice_timeout: Duration,
    /// What the answer offered the browser ("UDP 127.0.0.1:20000"), read back from its
    /// candidates, so whatever kinds of candidate the answer carries name themselves.
    local_candidates: Vec<String>,
    /// Where the browser's connectivity checks arrived: (protocol, local, remote).
    checks: Vec<(Protocol, SocketAddr, SocketAddr)>,
    /// str0m reported ICE connected (a check was nominated).
    ice_connected: bool,
    /// Why the connection never came up, once the deadline passed.
    failure: Option<String>,
    /// The transport of the pair str0m sends on (the one the browser nominated), once known.
    transport: Option<Protocol>,
    /// The browser's relay (TURN) candidates from its offer: media to one of them is relayed.
    relay_addrs: Vec<SocketAddr>,
    /// Media goes to one of `relay_addrs` (the browser nominated a TURN relay).
    relayed: bool,
}

/// Puts every m-line of an answer in one MediaStream: one `a=msid` stream id for all of them.
///
/// str0m gives each answered m-line a random stream id of its own, so the browser made one
/// MediaStream for the audio and another for the video. The Flashphoner Web SDK sets
/// `video.srcObject = event.streams[0]` on every `ontrack`: the last track's stream wins, and
/// the audio track was never attached to an element (video played, silent).
pub fn one_media_stream(answer: &str) -> String {
    let Some(stream) = answer.lines().find_map(|l| {
        let id = l.strip_prefix("a=msid:")?.split_whitespace().next()?;
        (id != "-").then_some(id)
    }) else {
        return answer.to_owned();
    };
    let mut out = String::with_capacity(answer.len());
    for line in answer.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = &line[body.len()..];
        if let Some(rest) = body.strip_prefix("a=msid:") {
            // a=msid:<stream> <track>
            let track = rest.split_once(' ').map_or("", |(_, t)| t);
            out.push_str(&format!("a=msid:{stream} {track}"));
        } else if let Some((head, rest)) = body
            .split_once(" msid:")
            .filter(|(h, _)| h.starts_with("a=ssrc:"))
        {
            // a=ssrc:<ssrc> msid:<stream> <track>
            let track = rest.split_once(' ').map_or("", |(_, t)| t);
            out.push_str(&format!("{head} msid:{stream} {track}"));
        } else if let Some(rest) = body.strip_prefix("a=msid-semantic:") {
            // a=msid-semantic: WMS <stream> <stream>…
            let semantic = rest.split_whitespace().next().unwrap_or("WMS");
            out.push_str(&format!("a=msid-semantic: {semantic} {stream}"));
        } else {
            out.push_str(body);
        }
        out.push_str(eol);
    }
    out
}

/// The candidates of an answer as a reason names them: "UDP 127.0.0.1:20000",
/// "TCP [::1]:20000", "UDP 203.0.113.7:20000 (server-reflexive)".
fn answer_candidates(answer: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in answer.lines() {
        let Some(c) = line
            .trim()
            .strip_prefix("a=")
            .filter(|l| l.starts_with("candidate:"))
            .and_then(|l| Candidate::from_sdp_string(l).ok())
        else {
            continue;
        };
        let kind = match c.kind() {
            CandidateKind::Host => "",
            CandidateKind::ServerReflexive => " (server-reflexive)",
            CandidateKind::PeerReflexive => " (peer-reflexive)",
            CandidateKind::Relayed => " (relayed)",
        };
        let text = format!(
            "{} {}{kind}",
            c.proto().to_string().to_uppercase(),
            c.addr()
        );
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// The UDP addresses of an offer's `a=candidate` lines (mDNS names, which camgate cannot
/// resolve, and TCP candidates are left out).
pub fn offer_candidates(sdp: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in sdp.lines() {
        let Some(c) = line.trim().strip_prefix("a=candidate:") else {
            continue;
        };
        let f: Vec<&str> = c.split_whitespace().collect();
        if f.len() < 6 || !f[2].eq_ignore_ascii_case("udp") {
            continue;
        }
        if let (Ok(ip), Ok(port)) = (f[4].parse::<std::net::IpAddr>(), f[5].parse::<u16>()) {
            let addr = SocketAddr::new(ip, port);
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// The addresses of an offer's relay (`typ relay`, TURN) candidates: a browser that nominates
/// one reaches camgate through its TURN server.
fn offer_relay_candidates(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=candidate:"))
        .filter_map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            if f.len() < 8 || f[6] != "typ" || f[7] != "relay" {
                return None;
            }
            Some(SocketAddr::new(f[4].parse().ok()?, f[5].parse().ok()?))
        })
        .collect()
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// What a viewer's answer is made from (see `Viewer::accept_offer`).
#[derive(Clone, Copy)]
pub struct Negotiation<'a> {
    /// The browser's recvonly offer.
    pub offer_sdp: &'a str,
    /// The camera's video, passed through.
    pub video: VideoCodec,
    /// The audio sent to browsers, if the camera's audio plays.
    pub audio: Option<AudioOut>,
    /// The addresses of camgate's shared UDP socket(s) as browsers should reach them.
    pub candidates: &'a [SocketAddr],
    /// Public addresses STUN found for those sockets: (public, socket), announced as
    /// server-reflexive candidates.
    pub reflexive: &'a [(SocketAddr, SocketAddr)],
    /// Full ICE (camgate checks the browser's candidates too) instead of ICE-lite.
    pub full_ice: bool,
    /// The addresses of camgate's ICE-TCP listeners (passive candidates, RFC 6544).
    pub tcp_candidates: &'a [SocketAddr],
    /// Offer only the TCP candidates (the Flashphoner SDK's `transport: "TCP"`).
    pub tcp_only: bool,
    /// The certificate every viewer shares (`GatewayConfig::dtls_cert`); `None`: str0m makes one.
    pub dtls_cert: Option<&'a DtlsCert>,
    /// How long ICE and DTLS may take before the viewer fails (`GatewayConfig::ice_timeout`).
    pub ice_timeout: Duration,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("video", &self.video)
            .field("state", &self.state)
            .finish()
    }
}

impl Viewer {
    /// Answers a browser's recvonly offer: the viewer, and the answer SDP.
    pub fn accept_offer(
        now: Instant,
        n: &Negotiation<'_>,
    ) -> Result<(Viewer, String), ViewerError> {
        // str0m treats inconsistencies as bugs and panics; a browser's offer must never take
        // the server down with it, so a panic here only refuses this viewer.
        std::panic::catch_unwind(|| Self::negotiate(now, n)).unwrap_or_else(|_| {
            Err(ViewerError::BadOffer(
                "internal error while negotiating".into(),
            ))
        })
    }

    fn negotiate(now: Instant, n: &Negotiation<'_>) -> Result<(Viewer, String), ViewerError> {
        let Negotiation {
            offer_sdp,
            video,
            audio,
            candidates,
            reflexive,
            full_ice,
            tcp_candidates,
            tcp_only,
            dtls_cert,
            ice_timeout,
        } = *n;
        // TCP only, unless there is no TCP to offer (ICE-TCP turned off).
        let tcp_only = tcp_only && !tcp_candidates.is_empty();
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| ViewerError::BadOffer(e.to_string()))?;
        // Statistics carry the browser's receiver reports, from which the gateway judges whether
        // the link carries the stream (see `bandwidth`). No `enable_bwe`: its pacer would hold
        // media back.
        let mut config = Rtc::builder()
            // Full ICE: camgate's own checks open its NAT's mapping toward the browser (the
            // browser's checks alone are dropped by a NAT that forwards no media port). camgate
            // answers, so it is the controlled agent.
            .set_ice_lite(!full_ice)
            .set_rtp_mode(true)
            // Only the header extensions viewers use: the MID (BUNDLE demultiplexing until
            // the browser reports on the SSRC) and transport-wide sequence numbers (the
            // browser's TWCC feedback, camgate's fast congestion signal). str0m writes every
            // mapped extension into every packet, abs-send-time computed each time: its
            // standard map cost 1,180 of a datagram's 12,490 instructions (PERFORMANCE.md).
            .clear_extension_map()
            .set_extension(3, Extension::TransportSequenceNumber)
            .set_extension(4, Extension::RtpMid)
            .set_stats_interval(Some(STATS_INTERVAL))
            .set_send_buffer_video(VIDEO_SEND_BUFFER)
            .set_send_buffer_audio(AUDIO_SEND_BUFFER)
            .clear_codecs();
        if let Some(cert) = dtls_cert {
            config = config.set_dtls_cert(cert.clone());
        }
        let codecs = config.codec_config();
        let mut pt = 96u8;
        let camera = match video {
            VideoCodec::H264 { profile_level_id } => {
                profile_level_id.map(|p| u32::from_be_bytes([0, p[0], p[1], p[2]]))
            }
            VideoCodec::Vp8 | VideoCodec::H265 { .. } => None,
        };
        if video == VideoCodec::Vp8 {
            codecs.enable_vp8(true);
        } else if let VideoCodec::H265 { profile_tier_level } = video {
            // The camera's profile and tier (which must match the browser's), and its level;
            // unknown: Main, Main tier, level 6 (what browsers offer).
            let [profile, tier, level] = profile_tier_level.unwrap_or([1, 0, 180]);
            codecs.add_h265(pt.into(), Some((pt + 1).into()), profile, tier, level);
        } else {
            // One payload type per profile class: str0m panics when two local H.264 configs
            // claim the same offered payload type (42c01e and 42e01f are both constrained
            // baseline).
            let camera_class = camera.map(profile_class);
            let fallbacks = FALLBACK_PROFILES
                .into_iter()
                .filter(|p| Some(profile_class(*p)) != camera_class);
            for profile in camera.into_iter().chain(fallbacks) {
                codecs.add_h264(pt.into(), Some((pt + 1).into()), true, profile);
                pt += 2;
            }
        }
        // Audio is accepted even when the camera has none: str0m puts the ICE candidates in the
        // first m-line, and a rejected audio line (port 0) would hide them from the browser.
        codecs.enable_opus(true, false);
        codecs.enable_pcmu(true, false);
        codecs.enable_pcma(true, false);
        codecs.enable_g722(true, false);
        let mut rtc = config.build(now);
        // UDP host candidates carry a higher priority (type preference 126) than TCP ones (90):
        // a browser that can use both picks UDP.
        let udp = candidates
            .iter()
            .filter(|_| !tcp_only)
            .map(|a| (*a, Candidate::host(*a, "udp")));
        let tcp = tcp_candidates.iter().map(|a| {
            let c = Candidate::builder().tcp().host(*a);
            (*a, c.tcptype(TcpType::Passive).build())
        });
        for (addr, candidate) in udp.chain(tcp) {
            match candidate {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, "unusable local candidate: {e}"),
            }
        }
        for (public, base) in reflexive.iter().filter(|_| !tcp_only) {
            if public == base || !candidates.contains(base) {
                continue;
            }
            match Candidate::server_reflexive(*public, *base, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%public, "unusable reflexive candidate: {e}"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| ViewerError::BadOffer(e.to_string()))?;
        let mut viewer = Viewer {
            rtc,
            video: None,
            negotiated_profile: None,
            audio: None,
            audio_last_seq: None,
            audio_codec: None,
            last_seq: None,
            awaiting_keyframe: false,
            last_video_ts: None,
            last_replay: None,
            last_heard: now,
            state: ViewerState::default(),
            ice_ufrag: String::new(),
            unflushed: false,
            flush_queued: false,
            next_timeout: None,
            video_bytes: 0,
            link_report: None,
            last_rr: None,
            budget: None,
            at_frame_start: true,
            skips: 0,
            connect_deadline: Some(now + ice_timeout),
            ice_timeout,
            local_candidates: Vec::new(),
            checks: Vec::new(),
            ice_connected: false,
            failure: None,
            transport: None,
            relay_addrs: offer_relay_candidates(offer_sdp),
            relayed: false,
        };
        viewer.ice_ufrag = viewer.rtc.direct_api().local_ice_credentials().ufrag;
        let mut sink = VecDeque::new();
        viewer.drain(&mut sink);
        let no_codec = || match video {
            VideoCodec::H265 { profile_tier_level } => ViewerError::NoH265 {
                camera: profile_tier_level.map_or("H.265".into(), |[p, ..]| {
                    format!("H.265 {}", crate::h265::sps::profile_name(p))
                }),
                browser: offered_video_codecs(offer_sdp),
            },
            _ => ViewerError::NoCommonCodec,
        };
        let mid = first_mid(offer_sdp, "video").ok_or_else(no_codec)?;
        let pt = match video {
            VideoCodec::Vp8 => viewer.choose_pt(mid, Codec::Vp8),
            VideoCodec::H265 { .. } => viewer.choose_pt(mid, Codec::H265),
            VideoCodec::H264 { .. } => viewer.choose_video_pt(mid, camera),
        }
        .ok_or_else(no_codec)?;
        viewer.video = Some((mid, pt));
        viewer.set_video_rtx_cache();
        viewer.negotiated_profile = viewer
            .rtc
            .codec_config()
            .find(|p| p.pt() == pt)
            .and_then(|p| p.spec().format.profile_level_id);
        // Audio is best effort: a browser without the codec still gets the video.
        // G.711/G.722 the browser didn't offer comes as Opus instead (the stream transcodes it).
        if let (Some(out), Some(mid)) = (audio, first_mid(offer_sdp, "audio")) {
            let choice = viewer
                .choose_audio_pt(mid, out)
                .map(|pt| (pt, out))
                .or_else(|| {
                    viewer
                        .choose_audio_pt(mid, AudioOut::Opus)
                        .map(|pt| (pt, AudioOut::Opus))
                });
            if let Some((pt, codec)) = choice {
                viewer.audio = Some((mid, pt));
                viewer.audio_codec = Some(codec);
            }
        }
        if full_ice {
            // str0m's ICE agent schedules no check before its first timeout: tick it at once,
            // or camgate's first check (the one that opens its NAT) waits for the next tick.
            viewer.next_timeout = Some(now);
        }
        let answer = one_media_stream(&answer.to_sdp_string());
        viewer.local_candidates = answer_candidates(&answer);
        Ok((viewer, answer))
    }

    /// Picks the negotiated H.264 payload type closest to the camera's profile: the exact
    /// profile-level-id, else the same profile, else any packetization-mode 1 H.264.
    fn choose_video_pt(&self, mid: Mid, camera: Option<u32>) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let config = self.rtc.codec_config();
        let candidates = media.remote_pts().iter().filter_map(|pt| {
            let params = config.find(|p| p.pt() == *pt)?;
            let spec = params.spec();
            (spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1))
                .then_some((*pt, spec.format.profile_level_id))
        });
        let score = |plid: Option<u32>| match (plid, camera) {
            (Some(a), Some(b)) if a == b => 3,
            (Some(a), Some(b)) if a >> 8 == b >> 8 => 2,
            (Some(a), Some(b)) if a >> 16 == b >> 16 => 1,
            _ => 0,
        };
        // On a tie, constrained baseline: the one profile every WebRTC browser decodes
        // (Safari and hardware decoders included).
        let universal = |plid: Option<u32>| plid.is_some_and(|p| profile_class(p) == (0x42, true));
        candidates
            .max_by_key(|(_, plid)| (score(*plid), universal(*plid)))
            .map(|(pt, _)| pt)
    }

    fn choose_audio_pt(&self, mid: Mid, out: AudioOut) -> Option<Pt> {
        let wanted = match out {
            AudioOut::Opus => Codec::Opus,
            AudioOut::Pcmu => Codec::PCMU,
            AudioOut::Pcma => Codec::PCMA,
            AudioOut::G722 => Codec::G722,
        };
        self.choose_pt(mid, wanted)
    }

    /// The first payload type of `codec` the browser offered for `mid`.
    fn choose_pt(&self, mid: Mid, wanted: Codec) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let config = self.rtc.codec_config();
        media.remote_pts().iter().copied().find(|pt| {
            config
                .find(|p| p.pt() == *pt)
                .is_some_and(|p| p.spec().codec == wanted)
        })
    }

    /// When the browser was given another H.264 profile than the camera sends (e.g. Firefox
    /// offers only constrained baseline): what to tell the viewer. The stream goes out
    /// unchanged; browsers that decode with FFmpeg/libavcodec play any profile.
    pub fn profile_note(&self, camera: Option<[u8; 3]>) -> Option<String> {
        let camera = camera.map(|p| u32::from_be_bytes([0, p[0], p[1], p[2]]))?;
        let negotiated = self.negotiated_profile?;
        (profile_class(negotiated) != profile_class(camera)).then(|| {
            format!("browser negotiated H264 {negotiated:06x}, the camera's {camera:06x} is sent unchanged")
        })
    }

    /// The audio codec negotiated with the browser (None: it gets no audio).
    pub fn audio_codec(&self) -> Option<AudioOut> {
        self.audio_codec
    }

    /// Whether the browser takes the stream's audio (it offered the codec).
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// The payload type the answer gave the video, which every video packet carries.
    pub fn video_pt(&self) -> Option<u8> {
        self.video.map(|(_, pt)| *pt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_candidates_are_read_from_the_offer() {
        // Chromium's lines: host, srflx and relay (TURN) candidates; TCP and mDNS ones too.
        let sdp = "v=0\r\n\
            a=candidate:1 1 udp 2122260223 192.0.2.5 50000 typ host generation 0\r\n\
            a=candidate:2 1 udp 1686052607 198.51.100.7 40000 typ srflx raddr 192.0.2.5 rport 50000\r\n\
            a=candidate:3 1 udp 41885439 203.0.113.10 49411 typ relay raddr 198.51.100.7 rport 40000\r\n\
            a=candidate:4 1 tcp 1518280447 192.0.2.5 9 typ host tcptype active\r\n\
            a=candidate:5 1 udp 2122260223 3f1c.local 50001 typ host\r\n";
        assert_eq!(
            offer_relay_candidates(sdp),
            ["203.0.113.10:49411".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(offer_candidates(sdp).len(), 3, "UDP with an address");
    }
}
