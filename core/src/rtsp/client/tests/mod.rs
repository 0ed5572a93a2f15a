//! Client tests: recorded gst-rtsp-server answers replayed into the state machine, plus
//! hand-written camera answers for auth, errors, timeouts and quirks. Time is a fixed `Instant`
//! plus offsets. Here: the harness and the helpers every file uses.

mod auth;
mod keepalive;
mod quirks;
mod redirect;
mod session;
mod tracks;
mod udp;

use std::collections::VecDeque;

use super::setup::{parse_udp_transport, UdpTransportAnswer};
use super::*;
use crate::media::MediaKind;
use crate::rtsp::framing::{Frame, Framer, Message, StartLine};

// Recorded from gst-rtsp-server 1.x (see testdata/README.md) for `rtsp://127.0.0.1:18554/test`.
const GST_OPTIONS: &str = include_str!("../../testdata/gst_options.txt");
const GST_DESCRIBE: &str = include_str!("../../testdata/gst_describe.txt");
const GST_SETUP: &str = include_str!("../../testdata/gst_setup.txt");
const GST_PLAY: &str = include_str!("../../testdata/gst_play.txt");
const GST_RTP: &str = include_str!("../../testdata/gst_rtp_after_play.hex");
const GST_URL: &str = "rtsp://127.0.0.1:18554/test";

/// Most tests script a TCP-interleaved camera: TCP forced, no UDP port requests.
fn tcp() -> RtspConfig {
    RtspConfig {
        transport: RtspTransport::Tcp,
        ..RtspConfig::default()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Testdata keeps CRLF (`.gitattributes`), but be safe if a checkout converted it.
fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn hex_frames(s: &str) -> Vec<Vec<u8>> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

struct Harness {
    c: RtspClient,
    t0: Instant,
    media: Vec<(usize, bool, Vec<u8>)>,
    /// What `poll_output` handed out, by kind, not looked at yet.
    out: Outputs,
}

#[derive(Default)]
struct Outputs {
    sent: Vec<Vec<u8>>,
    udp_requests: Vec<UdpPortRequest>,
    udp_sent: Vec<UdpTransmit>,
    redirects: VecDeque<Redirect>,
    events: Vec<RtspEvent>,
}

impl Harness {
    fn new(url: &str) -> Harness {
        Harness::with_config(url, tcp())
    }

    fn with_config(url: &str, config: RtspConfig) -> Harness {
        let t0 = Instant::now();
        let c = RtspClient::new(url, config, t0).unwrap();
        Harness {
            c,
            t0,
            media: Vec::new(),
            out: Outputs::default(),
        }
    }

    fn at(&self, s: u64) -> Instant {
        self.t0 + secs(s)
    }

    fn input(&mut self, at: Instant, data: &[u8]) {
        let media = self.c.handle_input(at, data);
        self.media
            .extend(media.map(|p| (p.track, p.rtcp, p.data.to_vec())));
    }

    /// Sorts everything `poll_output` has into `out`.
    fn drain(&mut self) {
        while let Some(o) = self.c.poll_output() {
            match o {
                RtspOutput::Transmit(b) => self.out.sent.push(b),
                RtspOutput::OpenUdp(r) => self.out.udp_requests.push(r),
                RtspOutput::UdpTransmit(t) => self.out.udp_sent.push(t),
                RtspOutput::Redirect(r) => self.out.redirects.push_back(r),
                RtspOutput::Event(e) => self.out.events.push(e),
            }
        }
    }

    /// The bytes written since the last call, as written.
    fn sent_bytes(&mut self) -> Vec<Vec<u8>> {
        self.drain();
        std::mem::take(&mut self.out.sent)
    }

    /// The next redirect asked for.
    fn redirect(&mut self) -> Option<Redirect> {
        self.drain();
        self.out.redirects.pop_front()
    }

    /// The driver's next read, after it has taken the `Playing` event: media that came with or
    /// before the PLAY answer is handed out then.
    fn next_input(&mut self, at: Instant) {
        self.input(at, b"");
    }

    /// All requests queued since the last call, parsed back.
    fn sent(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        let mut f = Framer::new();
        for b in self.sent_bytes() {
            f.push(&b, &mut |fr| {
                if let Frame::Message(m) = fr {
                    out.push(m);
                }
                true
            })
            .unwrap();
        }
        out
    }

    fn sent_one(&mut self) -> Message {
        let mut s = self.sent();
        assert_eq!(s.len(), 1, "{s:?}");
        s.remove(0)
    }

    fn events(&mut self) -> Vec<RtspEvent> {
        self.drain();
        std::mem::take(&mut self.out.events)
    }
}

/// Server messages from a `testdata/*.txt` script: `#` lines are comments, a `---` line
/// separates messages, line ends become CRLF (`#! body-lf` keeps bare LF in bodies, `#! lf`
/// everywhere),
/// `Content-Length: auto` is filled in, and `{name}` placeholders are replaced from `vars`.
fn script(text: &str, vars: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let all_lf = text.lines().any(|l| l.trim() == "#! lf");
    let body_lf = all_lf || text.lines().any(|l| l.trim() == "#! body-lf");
    let eol = if all_lf { "\n" } else { "\r\n" };
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = Vec::new();
    for chunk in text.split("\n---\n") {
        let mut chunk = chunk.trim_matches('\n').to_owned();
        for (k, v) in vars {
            chunk = chunk.replace(&format!("{{{k}}}"), v);
        }
        let (head, body) = chunk.split_once("\n\n").unwrap_or((&chunk, ""));
        let body = if body.is_empty() {
            String::new()
        } else if body_lf {
            format!("{body}\n")
        } else {
            format!("{}\r\n", body.replace('\n', "\r\n"))
        };
        let head = head.replace(
            "Content-Length: auto",
            &format!("Content-Length: {}", body.len()),
        );
        out.push(format!("{}{eol}{eol}{body}", head.replace('\n', eol)).into_bytes());
    }
    out
}

fn method_uri(m: &Message) -> (&str, &str) {
    match &m.start {
        StartLine::Request { method, uri } => (method, uri),
        s => panic!("not a request: {s:?}"),
    }
}

/// Drives OPTIONS → DESCRIBE → SETUP → PLAY against the recorded gst-rtsp-server answers.
fn gst_playing() -> Harness {
    let mut h = Harness::new(GST_URL);
    let now = h.at(0);
    h.c.handle_connected(now);
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("OPTIONS", GST_URL));
    assert_eq!(m.cseq(), Some(1));
    assert_eq!(
        m.header("User-Agent"),
        Some(&*RtspConfig::default().user_agent)
    );
    h.input(now, &crlf(GST_OPTIONS));

    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("DESCRIBE", GST_URL));
    assert_eq!(
        (m.cseq(), m.header("Accept")),
        (Some(2), Some("application/sdp"))
    );
    h.input(now, &crlf(GST_DESCRIBE));

    let m = h.sent_one();
    assert_eq!(
        method_uri(&m),
        ("SETUP", "rtsp://127.0.0.1:18554/test/stream=0")
    );
    assert_eq!(m.cseq(), Some(3));
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(m.header("Session"), None);
    h.input(now, &crlf(GST_SETUP));
    assert_eq!(h.c.session_id(), Some("+CvwHE46xGwVesFw"));

    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("PLAY", "rtsp://127.0.0.1:18554/test/"));
    assert_eq!(m.cseq(), Some(4));
    assert_eq!(m.header("Session"), Some("+CvwHE46xGwVesFw"));
    assert_eq!(m.header("Range"), Some("npt=0.000-"));
    assert!(h.events().is_empty());
    h
}

/// The value of `key="..."` in an Authorization header.
fn digest_param<'a>(h: &'a str, key: &str) -> &'a str {
    let start = h.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
    let rest = &h[start..];
    &rest[..rest.find('"').unwrap()]
}

/// A terminal event as a viewer would read it.
fn ev_string(e: &RtspEvent) -> String {
    match e {
        RtspEvent::Failed(e) => e.to_string(),
        e => format!("{e:?}"),
    }
}

/// The Hikvision-style camera of `setup_audio_refused.txt`, shared by the track and keepalive
/// tests.
const AUDIO_REFUSED: &str = include_str!("../../testdata/setup_audio_refused.txt");
const HIK_BASE: &str = "rtsp://192.168.1.64:554/Streaming/Channels/101/";
