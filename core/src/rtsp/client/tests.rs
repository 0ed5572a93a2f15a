//! Client tests: recorded gst-rtsp-server answers replayed into the state machine, plus
//! hand-written camera answers for auth, errors, timeouts and quirks. Time is a fixed `Instant`
//! plus offsets.

use std::collections::VecDeque;

use super::setup::{parse_udp_transport, UdpTransportAnswer};
use super::*;
use crate::media::MediaKind;
use crate::rtsp::framing::{Frame, Framer, Message, StartLine};

// Recorded from gst-rtsp-server 1.x (see testdata/README.md) for `rtsp://127.0.0.1:18554/test`.
const GST_OPTIONS: &str = include_str!("../testdata/gst_options.txt");
const GST_DESCRIBE: &str = include_str!("../testdata/gst_describe.txt");
const GST_SETUP: &str = include_str!("../testdata/gst_setup.txt");
const GST_PLAY: &str = include_str!("../testdata/gst_play.txt");
const GST_RTP: &str = include_str!("../testdata/gst_rtp_after_play.hex");
const GST_URL: &str = "rtsp://127.0.0.1:18554/test";

/// The TCP-interleaved tests predate UDP: they force TCP.
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

#[test]
fn recorded_gstreamer_exchange() {
    let mut h = gst_playing();
    let now = h.at(0);
    // RTP sent before the PLAY answer (v4l2rtspserver/Reolink quirk) waits for the answer.
    let frames = hex_frames(GST_RTP);
    h.input(now, &frames[0]);
    assert!(h.media.is_empty());
    // PLAY answer and the first RTP in one read, as gst-rtsp-server sends them.
    let mut read = crlf(GST_PLAY);
    for f in &frames {
        read.extend_from_slice(f);
    }
    read.extend_from_slice(b"$\x05\x00\x02zz"); // unknown channel: ignored
    h.input(now, &read);
    // Held until the driver has taken `Playing` and knows the tracks (gst-rtsp-server's first
    // RTP, the first keyframe, comes in the PLAY answer's read).
    assert!(h.media.is_empty());
    match h.events().as_slice() {
        [RtspEvent::Playing { tracks }] => {
            assert_eq!(tracks.len(), 1);
            let t = &tracks[0];
            assert_eq!(t.kind, MediaKind::Video);
            assert_eq!(
                (t.encoding.as_str(), t.payload_type, t.clock_rate),
                ("H264", 96, 90000)
            );
            assert_eq!(
                t.fmtp_param("sprop-parameter-sets"),
                Some("Z0LAHtkAoC/5cBagwMDUoAAAAwAgAAAHkeLFyQ==,aMuMsg==")
            );
            assert_eq!(t.control, "rtsp://127.0.0.1:18554/test/stream=0");
        }
        e => panic!("{e:?}"),
    }
    h.next_input(now);
    // The early frame first, then the read's frames (a repeat of it among them: the relay
    // drops duplicates by sequence number).
    assert_eq!(h.media.len(), 4);
    assert_eq!(h.media[0].2, frames[0][4..]);
    for (got, f) in h.media[1..].iter().zip(&frames) {
        assert_eq!((got.0, got.1), (0, false));
        assert_eq!(got.2, f[4..]);
        assert_eq!(got.2[1] & 0x7f, 96, "RTP payload type");
    }
    // RTCP on the odd channel.
    h.input(now, b"$\x01\x00\x04\x80\xc8\x00\x06");
    assert!(h.media.last().unwrap().1, "RTCP flag");
}

#[test]
fn whole_frames_come_out_as_slices_of_the_input_and_split_ones_complete() {
    let mut h = gst_playing();
    h.input(h.at(0), &crlf(GST_PLAY));
    h.events();
    let frames = hex_frames(GST_RTP);
    let mut read: Vec<u8> = frames.concat();
    // The last frame is cut: its tail comes with the next read.
    let cut = read.len() - 3;
    let inside = |d: &[u8], read: &[u8]| {
        let (a, b) = (read.as_ptr() as usize, d.as_ptr() as usize);
        b >= a && b + d.len() <= a + read.len()
    };
    let media: Vec<&[u8]> =
        h.c.handle_input(h.at(0), &read[..cut])
            .map(|m| m.data)
            .collect();
    assert_eq!(media.len(), frames.len() - 1);
    for (d, f) in media.iter().zip(&frames) {
        assert_eq!(*d, &f[4..]);
        assert!(inside(d, &read), "copied, not a slice of the read");
    }
    let tail = read.split_off(cut);
    let media: Vec<Vec<u8>> =
        h.c.handle_input(h.at(0), &tail)
            .map(|m| m.data.to_vec())
            .collect();
    assert_eq!(media, [frames.last().unwrap()[4..].to_vec()]);
}

#[test]
fn keepalive_uses_get_parameter_at_half_the_session_timeout() {
    let mut h = gst_playing();
    h.input(h.at(0), &crlf(GST_PLAY));
    h.events();
    // gst-rtsp-server announces no timeout: default 60 s → keepalive every 30 s.
    assert_eq!(h.c.poll_timeout(), Some(h.at(10))); // no-data timeout comes first
    for s in [5, 10, 15, 20, 25] {
        h.input(h.at(s), b"$\x00\x00\x00");
    }
    assert_eq!(h.c.poll_timeout(), Some(h.at(30)));
    h.c.handle_timeout(h.at(29));
    assert!(h.sent().is_empty());
    h.c.handle_timeout(h.at(30));
    let m = h.sent_one();
    assert_eq!(
        method_uri(&m),
        ("GET_PARAMETER", "rtsp://127.0.0.1:18554/test/")
    );
    assert_eq!(m.header("Session"), Some("+CvwHE46xGwVesFw"));
    assert_eq!(m.header("Content-Length"), None);
    assert!(m.body.is_empty());
    // The camera never answers the keepalive: no failure while data flows.
    for s in (31..75).step_by(3) {
        h.input(h.at(s), b"$\x00\x00\x00");
        h.c.handle_timeout(h.at(s));
    }
    assert!(!h.c.is_closed(), "{:?}", h.events());
    // Next keepalive 30 s after the first one.
    assert_eq!(h.sent().len(), 1);
    // Then silence: Failed(Timeout) after no_data_timeout.
    let deadline = h.at(73) + secs(10);
    assert_eq!(h.c.poll_timeout(), Some(deadline.min(h.at(90))));
    h.c.handle_timeout(deadline);
    assert_eq!(
        h.events(),
        vec![RtspEvent::Failed(RtspError::Timeout("no data from camera"))]
    );
    assert_eq!(h.c.poll_timeout(), None);
}

#[test]
fn keepalive_falls_back_to_options_and_honours_session_timeout() {
    let mut h = Harness::new("rtsp://cam/live");
    h.c.handle_connected(h.at(0));
    h.sent();
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n",
    );
    h.sent();
    let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n";
    let d = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.input(h.at(0), d.as_bytes());
    assert_eq!(method_uri(&h.sent_one()).1, "rtsp://cam/live/trackID=1");
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1234;timeout=20\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
    assert_eq!(h.sent_one().header("Session"), Some("1234"));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n");
    h.input(h.at(5), b"x");
    assert!(h.c.is_closed(), "garbage after PLAY is a protocol error");
    assert!(matches!(
        h.events().last(),
        Some(RtspEvent::Failed(RtspError::Protocol(_)))
    ));

    // Same again without the garbage, checking the 10 s keepalive.
    let mut h2 = Harness::new("rtsp://cam/live");
    h2.c.handle_connected(h2.at(0));
    for r in [
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n".to_owned(),
        d.clone(),
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1234;timeout=20\r\n\r\n".to_owned(),
        "RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n".to_owned(),
    ] {
        h2.input(h2.at(0), r.as_bytes());
    }
    h2.sent();
    assert_eq!(h2.c.poll_timeout(), Some(h2.at(10)));
    h2.input(h2.at(9), b"$\x00\x00\x00");
    h2.c.handle_timeout(h2.at(10));
    let m = h2.sent_one();
    assert_eq!(method_uri(&m), ("OPTIONS", "rtsp://cam/live"));
    assert_eq!(m.header("Session"), Some("1234"));
    // A late keepalive answer is swallowed.
    h2.input(h2.at(11), b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n");
    assert!(!h2.c.is_closed());
}

#[test]
fn teardown_sends_the_session() {
    let mut h = gst_playing();
    h.input(h.at(0), &crlf(GST_PLAY));
    h.events();
    h.c.teardown(h.at(3));
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("TEARDOWN", "rtsp://127.0.0.1:18554/test/"));
    assert_eq!(m.header("Session"), Some("+CvwHE46xGwVesFw"));
    assert_eq!(m.cseq(), Some(5));
    assert_eq!(h.events(), vec![RtspEvent::Closed]);
    assert!(h.c.is_closed());
    assert_eq!(h.c.poll_timeout(), None);
    // Nothing more after close.
    h.c.handle_connection_lost(h.at(4));
    h.c.teardown(h.at(4));
    assert!(h.events().is_empty());
    assert!(h.sent().is_empty());

    // Before any session: no TEARDOWN, just Closed.
    let mut h = Harness::new(GST_URL);
    h.c.handle_connected(h.at(0));
    h.sent();
    h.c.teardown(h.at(1));
    assert!(h.sent().is_empty());
    assert_eq!(h.events(), vec![RtspEvent::Closed]);
}

const DIGEST_401: &str = "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n\
    WWW-Authenticate: Basic realm=\"IP Camera(12345)\"\r\n\
    WWW-Authenticate: Digest realm=\"IP Camera(12345)\", nonce=\"c0ffee0123\", stale=\"FALSE\"\r\n\r\n";

fn unauthorized(cseq: u32) -> Vec<u8> {
    DIGEST_401.replace("{cseq}", &cseq.to_string()).into_bytes()
}

fn digest_param<'a>(h: &'a str, key: &str) -> &'a str {
    let start = h.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
    let rest = &h[start..];
    &rest[..rest.find('"').unwrap()]
}

#[test]
fn digest_401_is_retried_with_authorization() {
    let mut h = Harness::new("rtsp://admin:p%40ss@10.0.0.2/live");
    h.c.handle_connected(h.at(0));
    assert_eq!(h.sent_one().header("Authorization"), None);
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("DESCRIBE", "rtsp://10.0.0.2/live"));
    assert_eq!(m.header("Authorization"), None);
    h.input(h.at(0), &unauthorized(2));
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("DESCRIBE", "rtsp://10.0.0.2/live"));
    assert_eq!(m.cseq(), Some(3));
    let a = m.header("Authorization").unwrap();
    assert!(a.starts_with("Digest "), "Digest preferred over Basic: {a}");
    assert_eq!(digest_param(a, "username"), "admin");
    assert_eq!(digest_param(a, "uri"), "rtsp://10.0.0.2/live");
    // python3: md5(md5("admin:IP Camera(12345):p@ss") + ":c0ffee0123:" + md5("DESCRIBE:rtsp://10.0.0.2/live"))
    assert_eq!(
        digest_param(a, "response"),
        "40f91f2f662c24cf43e1c834103e8767"
    );
    let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n";
    let d = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.input(h.at(0), d.as_bytes());
    // Authorization is computed per request: method and URI of the SETUP.
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("SETUP", "rtsp://10.0.0.2/live/trackID=1"));
    let a = m.header("Authorization").unwrap();
    assert_eq!(
        digest_param(a, "response"),
        "002cefc71f5112976da5fd2bf2a38a69"
    );
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 77\r\n\r\n",
    );
    let m = h.sent_one();
    assert!(m.header("Authorization").is_some());
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n");
    assert!(matches!(h.events().as_slice(), [RtspEvent::Playing { .. }]));
    assert!(!format!("{:?}", h.c).contains("p@ss"));
}

#[test]
fn digest_qop_auth_counts_nonces() {
    let mut h = Harness::new("rtsp://admin:pw@cam/live");
    h.c.handle_connected(h.at(0));
    h.sent();
    h.input(h.at(0), b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\r\n\r\n");
    let a1 = h.sent_one().header("Authorization").unwrap().to_owned();
    assert!(
        a1.contains("qop=auth") && a1.contains("nc=00000001"),
        "{a1}"
    );
    assert!(!digest_param(&a1, "cnonce").is_empty());
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n");
    let a2 = h.sent_one().header("Authorization").unwrap().to_owned();
    assert!(a2.contains("nc=00000002"), "{a2}");
}

#[test]
fn wrong_password_fails_with_unauthorized() {
    let mut h = Harness::new("rtsp://admin:wrong@10.0.0.2/live");
    h.c.handle_connected(h.at(0));
    h.sent();
    h.input(h.at(0), &unauthorized(1));
    assert!(h.sent_one().header("Authorization").is_some());
    h.input(h.at(0), &unauthorized(2));
    let ev = h.events();
    assert_eq!(ev, vec![RtspEvent::Failed(RtspError::Unauthorized)]);
    if let RtspEvent::Failed(e) = &ev[0] {
        assert_eq!(e.to_string(), "401 Unauthorized");
    }
    assert!(h.c.is_closed());
    assert!(h.sent().is_empty());
}

#[test]
fn unauthorized_without_credentials() {
    let mut h = Harness::new("rtsp://10.0.0.2/live");
    h.c.handle_connected(h.at(0));
    h.sent();
    h.input(h.at(0), &unauthorized(1));
    assert_eq!(h.events(), vec![RtspEvent::Failed(RtspError::Unauthorized)]);
    assert!(h.sent().is_empty());
    // 401 without any challenge we can answer.
    let mut h = Harness::new("rtsp://a:b@10.0.0.2/live");
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\r\n");
    assert_eq!(h.events(), vec![RtspEvent::Failed(RtspError::Unauthorized)]);
}

#[test]
fn not_found_and_other_statuses() {
    let mut h = Harness::new("rtsp://cam/nope");
    h.c.handle_connected(h.at(0));
    // OPTIONS 404 is tolerated (some cameras don't implement it); DESCRIBE 404 is not.
    h.input(h.at(0), b"RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n");
    assert_eq!(h.sent().len(), 2);
    h.input(h.at(0), b"RTSP/1.0 404 Not Found\r\nCSeq: 2\r\n\r\n");
    let ev = h.events();
    assert_eq!(ev, vec![RtspEvent::Failed(RtspError::NotFound)]);
    if let RtspEvent::Failed(e) = &ev[0] {
        assert_eq!(e.to_string(), "Rtsp stream not found");
    }

    let mut h = Harness::new("rtsp://cam/x");
    h.c.handle_connected(h.at(0));
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 503 Service Unavailable\r\nCSeq: 2\r\n\r\n",
    );
    let ev = h.events();
    assert_eq!(
        ev,
        vec![RtspEvent::Failed(RtspError::Status {
            code: 503,
            reason: "Service Unavailable".into()
        })]
    );
    if let RtspEvent::Failed(e) = &ev[0] {
        assert_eq!(e.to_string(), "503 Service Unavailable");
    }
}

#[test]
fn connect_timeout_and_connect_failure() {
    let mut h = Harness::new(GST_URL);
    let deadline = h.at(0) + RtspConfig::default().connect_timeout;
    assert_eq!(h.c.poll_timeout(), Some(deadline));
    h.c.handle_timeout(deadline - Duration::from_millis(1));
    assert!(h.events().is_empty());
    h.c.handle_timeout(deadline);
    let ev = h.events();
    assert_eq!(ev, vec![RtspEvent::Failed(RtspError::ConnectFailed)]);
    assert_eq!(ev_string(&ev[0]), "Failed to connect to rtsp stream");

    let mut h = Harness::new(GST_URL);
    h.c.handle_connection_lost(h.at(1));
    assert_eq!(
        h.events(),
        vec![RtspEvent::Failed(RtspError::ConnectFailed)]
    );
    let mut h = gst_playing();
    h.c.handle_connection_lost(h.at(1));
    assert_eq!(
        h.events(),
        vec![RtspEvent::Failed(RtspError::ConnectionClosed)]
    );
}

fn ev_string(e: &RtspEvent) -> String {
    match e {
        RtspEvent::Failed(e) => e.to_string(),
        e => format!("{e:?}"),
    }
}

#[test]
fn response_timeout() {
    let mut h = Harness::new(GST_URL);
    h.c.handle_connected(h.at(1));
    h.input(h.at(2), &crlf(GST_OPTIONS));
    // DESCRIBE queued at 2 s: its answer is due by 12 s.
    assert_eq!(h.c.poll_timeout(), Some(h.at(12)));
    h.c.handle_timeout(h.at(11));
    assert!(!h.c.is_closed());
    h.c.handle_timeout(h.at(12));
    let ev = h.events();
    assert_eq!(
        ev,
        vec![RtspEvent::Failed(RtspError::Timeout(
            "no response to DESCRIBE"
        ))]
    );
    assert_eq!(ev_string(&ev[0]), "Timeout: no response to DESCRIBE");
}

#[test]
fn camera_picks_other_interleaved_channels() {
    let mut h = Harness::new("rtsp://cam:8554/live/");
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
               m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n\
               m=audio 0 RTP/AVP 8\r\na=control:trackID=1\r\n";
    // Content-Base without scheme (Anjvision).
    let d = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: cam:8554/live/\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.sent();
    h.input(h.at(0), d.as_bytes());
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("SETUP", "rtsp://cam:8554/live/trackID=0"));
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=6-7\r\n\r\n");
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("SETUP", "rtsp://cam:8554/live/trackID=1"));
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(m.header("Session"), Some("abc"));
    // A camera that changes the session id between SETUPs: keep the first.
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: other\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n");
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("PLAY", "rtsp://cam:8554/live/"));
    assert_eq!(m.header("Session"), Some("abc"));
    // Answer without CSeq: matched to the PLAY.
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\n\r\n");
    match h.events().as_slice() {
        [RtspEvent::Playing { tracks }] => {
            assert_eq!(tracks[0].encoding, "H264");
            assert_eq!(
                (tracks[1].encoding.as_str(), tracks[1].clock_rate),
                ("PCMA", 8000)
            );
        }
        e => panic!("{e:?}"),
    }
    h.input(
        h.at(1),
        b"$\x06\x00\x01a$\x07\x00\x01b$\x02\x00\x01c$\x03\x00\x01d$\x00\x00\x01e",
    );
    let got: Vec<_> = h.media.iter().map(|(t, r, d)| (*t, *r, d[0])).collect();
    assert_eq!(
        got,
        vec![
            (0, false, b'a'),
            (0, true, b'b'),
            (1, false, b'c'),
            (1, true, b'd')
        ]
    );
}

#[test]
fn sdp_with_odd_whitespace_and_static_pt() {
    let mut h = Harness::new("rtsp://cam/audio");
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    let sdp = "v=0 \r\ns=cam \r\nm=audio 0 RTP/AVP 0 \r\na=control: trackID=5 \r\n\
               m=video 0 RTP/AVP 98\r\na=rtpmap:98 MJPEG/90000\r\n";
    // No Content-Type, no Content-Base: the request URL is the base.
    let d = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.input(h.at(0), d.as_bytes());
    let s = h.sent();
    assert_eq!(method_uri(&s[2]), ("SETUP", "rtsp://cam/audio/trackID=5"));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1\r\n\r\n");
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n");
    match h.events().as_slice() {
        [RtspEvent::Playing { tracks }] => {
            assert_eq!(tracks.len(), 1);
            let t = &tracks[0];
            assert_eq!(t.kind, MediaKind::Audio);
            assert_eq!(
                (t.encoding.as_str(), t.payload_type, t.clock_rate),
                ("PCMU", 0, 8000)
            );
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn no_supported_tracks() {
    let mut h = Harness::new("rtsp://cam/x");
    h.c.handle_connected(h.at(0));
    let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n";
    let d = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.input(h.at(0), d.as_bytes());
    assert_eq!(
        h.events(),
        vec![RtspEvent::Failed(RtspError::NoSupportedTracks)]
    );
}

#[test]
fn server_requests_are_answered() {
    let mut h = gst_playing();
    h.input(h.at(0), &crlf(GST_PLAY));
    h.events();
    h.input(
        h.at(1),
        b"OPTIONS * RTSP/1.0\r\nCSeq: 42\r\n\r\nANNOUNCE rtsp://x/ RTSP/1.0\r\nCSeq: 43\r\nContent-Length: 3\r\n\r\nv=0",
    );
    let mut out = Vec::new();
    for b in h.sent_bytes() {
        out.extend(b);
    }
    let mut msgs = Vec::new();
    Framer::new()
        .push(&out, &mut |f| {
            if let Frame::Message(m) = f {
                msgs.push(m);
            }
            true
        })
        .unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(matches!(
        msgs[0].start,
        StartLine::Response { status: 200, .. }
    ));
    assert_eq!(msgs[0].cseq(), Some(42));
    assert!(matches!(
        msgs[1].start,
        StartLine::Response { status: 501, .. }
    ));
    assert_eq!(msgs[1].cseq(), Some(43));
    assert!(!h.c.is_closed());
}

#[test]
fn replay_split_at_every_byte() {
    // The whole server side of the gst exchange, in one stream, split at each offset.
    let frames = hex_frames(GST_RTP);
    let mut stream_bytes = Vec::new();
    let answers = [GST_OPTIONS, GST_DESCRIBE, GST_SETUP, GST_PLAY];
    for a in answers {
        stream_bytes.extend(crlf(a));
    }
    for f in &frames {
        stream_bytes.extend_from_slice(f);
    }
    for i in 0..=stream_bytes.len() {
        let mut h = Harness::new(GST_URL);
        h.c.handle_connected(h.at(0));
        h.input(h.at(0), &stream_bytes[..i]);
        h.input(h.at(0), &stream_bytes[i..]);
        h.next_input(h.at(0));
        assert_eq!(h.sent().len(), 4, "split at {i}");
        assert!(
            matches!(h.events().as_slice(), [RtspEvent::Playing { .. }]),
            "split at {i}"
        );
        assert_eq!(h.media.len(), frames.len(), "split at {i}");
    }
}

#[test]
fn bad_uri_at_once_and_no_password_in_debug() {
    let e = RtspClient::new("rtsp://", RtspConfig::default(), Instant::now()).unwrap_err();
    assert!(matches!(e, RtspError::BadUri(_)));
    let c = RtspClient::new(
        "rtsp://u:hunter2@cam/x",
        RtspConfig::default(),
        Instant::now(),
    )
    .unwrap();
    assert_eq!(c.url().redacted(), "rtsp://u:***@cam/x");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn garbage_from_the_camera_never_panics() {
    let mut x: u32 = 7;
    for round in 0..200 {
        let mut h = gst_playing();
        if round % 2 == 0 {
            h.input(h.at(0), &crlf(GST_PLAY));
        }
        let mut junk = Vec::new();
        for _ in 0..300 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let b = (x >> 16) as u8;
            junk.push(match b % 5 {
                0 => b'$',
                1 => b'\n',
                _ => b,
            });
        }
        h.input(h.at(1), &junk);
        h.c.handle_timeout(h.at(100));
        let _ = h.events();
        let _ = h.sent();
    }
}

#[test]
fn oversized_answer_is_a_protocol_error() {
    let mut h = Harness::new("rtsp://cam/x");
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 5000000\r\n\r\nv=0",
    );
    match h.events().as_slice() {
        [RtspEvent::Failed(RtspError::Protocol(why))] => assert!(why.contains("body"), "{why}"),
        e => panic!("{e:?}"),
    }
    assert!(h.c.is_closed());
}

#[test]
fn error_display_is_what_viewers_see() {
    for (e, s) in [
        (
            RtspError::BadUri("missing host".into()),
            "Bad URI: missing host",
        ),
        (RtspError::ConnectFailed, "Failed to connect to rtsp stream"),
        (RtspError::Unauthorized, "401 Unauthorized"),
        (RtspError::NotFound, "Rtsp stream not found"),
        (
            RtspError::Status {
                code: 454,
                reason: "Session Not Found".into(),
            },
            "454 Session Not Found",
        ),
        (
            RtspError::Timeout("no data from camera"),
            "Timeout: no data from camera",
        ),
        (RtspError::Protocol("x".into()), "Rtsp protocol error: x"),
        (
            RtspError::NoSupportedTracks,
            "No supported audio or video track",
        ),
        (RtspError::ConnectionClosed, "Rtsp connection closed"),
    ] {
        assert_eq!(e.to_string(), s);
    }
}

// ---- Digest auth (issue 4, item 1) -------------------------------------------------------

const AXIS_AUTH: &str = include_str!("../testdata/auth_sha256_md5_basic.txt");
const AXIS_URL: &str = "rtsp://admin:p%40ss@10.0.0.5:554/axis-media/media.amp";
const AXIS_REQ_URL: &str = "rtsp://10.0.0.5:554/axis-media/media.amp";

/// OPTIONS → DESCRIBE (401, three challenges) → DESCRIBE → two SETUPs → PLAY against the Axis
/// script; returns the harness playing, with the Authorization headers seen on the way.
fn axis_playing(config: RtspConfig) -> (Harness, Vec<String>) {
    let msgs = script(AXIS_AUTH, &[]);
    let mut h = Harness::with_config(AXIS_URL, config);
    let mut auths = Vec::new();
    h.c.handle_connected(h.at(0));
    assert_eq!(method_uri(&h.sent_one()), ("OPTIONS", AXIS_REQ_URL));
    h.input(h.at(0), &msgs[0]);
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("DESCRIBE", AXIS_REQ_URL));
    assert_eq!(
        m.header("Authorization"),
        None,
        "no credentials before a 401"
    );
    h.input(h.at(0), &msgs[1]);
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("DESCRIBE", AXIS_REQ_URL));
    auths.push(m.header("Authorization").unwrap().to_owned());
    h.input(h.at(0), &msgs[2]);
    let session = "Session: 6B3B2F5E;timeout=60";
    for (i, cseq) in [(0, 4), (1, 5)] {
        let m = h.sent_one();
        assert_eq!(
            method_uri(&m).1,
            format!("{AXIS_REQ_URL}/stream={i}"),
            "absolute a=control"
        );
        auths.push(m.header("Authorization").unwrap().to_owned());
        let r = format!(
            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{session}\r\nTransport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n\r\n",
            2 * i,
            2 * i + 1
        );
        h.input(h.at(0), r.as_bytes());
    }
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("PLAY", AXIS_REQ_URL));
    auths.push(m.header("Authorization").unwrap().to_owned());
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 6\r\nSession: 6B3B2F5E\r\n\r\n",
    );
    assert!(matches!(h.events().as_slice(), [RtspEvent::Playing { tracks }] if tracks.len() == 2));
    (h, auths)
}

fn unquoted_param<'a>(h: &'a str, key: &str) -> &'a str {
    let start = h.find(&format!(" {key}=")).unwrap() + key.len() + 2;
    let rest = &h[start..];
    &rest[..rest.find(',').unwrap_or(rest.len())]
}

#[test]
fn digest_sha256_preferred_over_md5_and_basic() {
    let (h, auths) = axis_playing(tcp());
    let a = &auths[0];
    assert!(a.starts_with("Digest "), "{a}");
    assert_eq!(unquoted_param(a, "algorithm"), "SHA-256");
    assert_eq!(digest_param(a, "realm"), "AXIS_ACCC8E012345");
    assert_eq!(digest_param(a, "uri"), AXIS_REQ_URL);
    assert_eq!(unquoted_param(a, "qop"), "auth");
    assert_eq!(unquoted_param(a, "nc"), "00000001");
    // The first nonce drawn after the SSRC from seed 0 (SplitMix64).
    assert_eq!(digest_param(a, "cnonce"), "b382a305f4414f5e");
    // python3: H = sha256 hex; ha1 = H("admin:AXIS_ACCC8E012345:p@ss");
    // H(ha1 + ":0024e47aY398109708de9ccd8056c58a068a59540a99d3:00000001:b382a305f4414f5e:auth:"
    //   + H("DESCRIBE:rtsp://10.0.0.5:554/axis-media/media.amp"))
    assert_eq!(
        digest_param(a, "response"),
        "6faefd9c056408cf2c7f2f26cfe9f67e312c00c2246cd9bb2103effc26e4f7fb"
    );
    // Same nonce, nc 2, SETUP of stream=0.
    let a = &auths[1];
    assert_eq!(unquoted_param(a, "nc"), "00000002");
    assert_eq!(
        digest_param(a, "response"),
        "48921a04665fde816e3edab9c27b67fd22bf6f081a5023f4fc3543a83c78bc12"
    );
    assert_eq!(unquoted_param(&auths[3], "nc"), "00000004");
    for a in &auths {
        assert!(!a.contains("p@ss") && !a.contains("p%40ss"));
    }
    assert!(!format!("{:?}", h.c).contains("p@ss"));
}

#[test]
fn the_seed_decides_the_client_nonce_and_the_ssrc() {
    let with_seed = |seed| {
        let (h, auths) = axis_playing(RtspConfig { seed, ..tcp() });
        (
            digest_param(&auths[0], "cnonce").to_owned(),
            h.c.udp.local_ssrc,
        )
    };
    let a = with_seed(7);
    assert_eq!(a, with_seed(7), "same seed, same values");
    let b = with_seed(8);
    assert!(a.0 != b.0 && a.1 != b.1, "{a:?} {b:?}");
}

#[test]
fn digest_cnonce_off_sends_rfc2069_digests() {
    let config = RtspConfig {
        digest_cnonce: false,
        ..tcp()
    };
    let (_h, auths) = axis_playing(config);
    let a = &auths[0];
    assert!(
        !a.contains("qop") && !a.contains("nc=") && !a.contains("cnonce"),
        "{a}"
    );
    assert_eq!(unquoted_param(a, "algorithm"), "SHA-256");
    // python3: H(ha1 + ":0024e47aY398109708de9ccd8056c58a068a59540a99d3:" + H("DESCRIBE:" + url))
    assert_eq!(
        digest_param(a, "response"),
        "737fb1d1ea1e7268f7d1f79fe80797ad7f708746769b2215dc1cccfaa8c75972"
    );
}

#[test]
fn md5_digest_when_sha256_is_not_offered() {
    // The same exchange with the SHA-256 challenge removed: MD5 Digest beats Basic.
    let text: String = AXIS_AUTH
        .lines()
        .filter(|l| !l.contains("SHA-256"))
        .map(|l| format!("{l}\n"))
        .collect();
    let msgs = script(&text, &[]);
    let mut h = Harness::new(AXIS_URL);
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), &msgs[0]);
    h.input(h.at(0), &msgs[1]);
    let s = h.sent();
    let a = s.last().unwrap().header("Authorization").unwrap();
    assert_eq!(unquoted_param(a, "algorithm"), "MD5");
    assert!(!a.contains("qop"), "the MD5 challenge has no qop: {a}");
    // python3: md5; H(ha1 + ":" + nonce + ":" + H("DESCRIBE:" + url))
    assert_eq!(
        digest_param(a, "response"),
        "5390cd82532d8e57925c3b39b7730540"
    );
}

const STALE: &str = include_str!("../testdata/auth_stale_nonce.txt");

#[test]
fn stale_nonce_is_renewed_without_failing_the_login() {
    let (mut h, _) = axis_playing(tcp());
    // Session timeout 60 s → keepalive at 30 s, GET_PARAMETER (listed in Public).
    h.input(h.at(25), b"$\x00\x00\x00");
    h.c.handle_timeout(h.at(30));
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("GET_PARAMETER", AXIS_REQ_URL));
    assert_eq!(m.cseq(), Some(7));
    assert_eq!(m.header("Session"), Some("6B3B2F5E"));
    assert!(m.header("Authorization").is_some());
    let msgs = script(
        STALE,
        &[("cseq", "7"), ("cseq2", "8"), ("session", "6B3B2F5E")],
    );
    h.input(h.at(30), &msgs[0]);
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("GET_PARAMETER", AXIS_REQ_URL));
    let a = m.header("Authorization").unwrap();
    assert_eq!(digest_param(a, "nonce"), "2ab7d5e1c9f34f0a");
    assert_eq!(
        unquoted_param(a, "nc"),
        "00000001",
        "nc restarts with a new nonce"
    );
    // python3: md5; ha1 = H("admin:Login to 4L0123PAZ:p@ss");
    // H(ha1 + ":2ab7d5e1c9f34f0a:00000001:631a9154fbabf717:auth:"
    //   + H("GET_PARAMETER:rtsp://10.0.0.5:554/axis-media/media.amp")), with the next nonce
    //   drawn from seed 0.
    assert_eq!(
        digest_param(a, "response"),
        "a29afc0e5126b850d1095f3f88a63a8e"
    );
    h.input(h.at(30), &msgs[1]);
    assert!(!h.c.is_closed());
    assert!(h.events().is_empty());

    // A stale renewal of a request that was already resent after a 401 is also fine...
    h.input(h.at(55), b"$\x00\x00\x00");
    h.c.handle_timeout(h.at(60));
    assert_eq!(h.sent_one().cseq(), Some(9));
    h.input(h.at(60), &unauthorized(9)); // not stale: one retry
    assert_eq!(h.sent_one().cseq(), Some(10));
    let stale = |cseq: u32| {
        script(
            STALE,
            &[("cseq", &cseq.to_string()), ("cseq2", "0"), ("session", "")],
        )
        .remove(0)
    };
    // ...up to three times in a row; the fourth stale 401 is a refused login.
    for cseq in 10..13 {
        h.input(h.at(60), &stale(cseq));
        assert_eq!(h.sent_one().cseq(), Some(cseq + 1));
        assert!(!h.c.is_closed());
    }
    h.input(h.at(60), &stale(13));
    let ev = h.events();
    assert_eq!(ev, vec![RtspEvent::Failed(RtspError::Unauthorized)]);
    assert_eq!(ev_string(&ev[0]), "401 Unauthorized");
}

#[test]
fn refused_login_after_challenge_is_unauthorized_even_if_stale_first() {
    // stale=true on the very first 401 is just a challenge; a second 401 without stale is a
    // refused login.
    let mut h = Harness::new("rtsp://admin:bad@10.0.0.5/live");
    h.c.handle_connected(h.at(0));
    h.sent();
    let msgs = script(STALE, &[("cseq", "1"), ("cseq2", "0"), ("session", "")]);
    h.input(h.at(0), &msgs[0]);
    assert_eq!(h.sent_one().cseq(), Some(2));
    h.input(h.at(0), &unauthorized(2));
    assert_eq!(h.events(), vec![RtspEvent::Failed(RtspError::Unauthorized)]);
    assert!(h.sent().is_empty());
    assert!(!format!("{:?}", h.c).contains("bad@"));
}

// ---- Redirects (issue 4, item 2) ---------------------------------------------------------

const REDIRECT: &str = include_str!("../testdata/redirect_302.txt");

fn follow() -> RtspConfig {
    RtspConfig {
        follow_redirects: true,
        ..tcp()
    }
}

fn redirect_answer(cseq: u32, status: &str, location: &str) -> Vec<u8> {
    format!("RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nLocation: {location}\r\n\r\n").into_bytes()
}

#[test]
fn describe_302_reconnects_elsewhere_with_the_same_credentials() {
    let msgs = script(REDIRECT, &[]);
    let mut h = Harness::with_config("rtsp://admin:p%40ss@10.0.0.2/cam1", follow());
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), &msgs[0]);
    assert_eq!(
        method_uri(&h.sent()[1]),
        ("DESCRIBE", "rtsp://10.0.0.2/cam1")
    );
    // The 302 and junk after it in the same read (meant for the old connection).
    let mut read = msgs[1].clone();
    read.extend_from_slice(b"$\x00\x00\x02zzRTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n");
    h.input(h.at(1), &read);
    assert_eq!(
        h.redirect(),
        Some(Redirect {
            host: "10.0.0.9".into(),
            port: 8554
        })
    );
    assert_eq!(h.redirect(), None);
    assert!(h.events().is_empty() && h.sent().is_empty() && h.media.is_empty());
    assert_eq!(h.c.url().redacted(), "rtsp://admin:***@10.0.0.9:8554/cam1");
    // Waiting for the new connection: the connect timeout runs again from the redirect.
    assert_eq!(
        h.c.poll_timeout(),
        Some(h.at(1) + RtspConfig::default().connect_timeout)
    );
    h.input(h.at(1), b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n"); // old socket: ignored
    assert!(h.sent().is_empty());

    h.c.handle_connected(h.at(2));
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("OPTIONS", "rtsp://10.0.0.9:8554/cam1"));
    assert_eq!(m.cseq(), Some(3));
    h.input(h.at(2), &msgs[2]);
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("DESCRIBE", "rtsp://10.0.0.9:8554/cam1"));
    assert_eq!(m.header("Authorization"), None);
    h.input(h.at(2), &msgs[3]);
    let m = h.sent_one();
    let a = m.header("Authorization").unwrap();
    // python3: md5; H(H("admin:mediamtx:p@ss") + ":74ec8bc7bd4d4dc4b0a1c1e5d37a9d21:"
    //   + H("DESCRIBE:rtsp://10.0.0.9:8554/cam1"))
    assert_eq!(
        digest_param(a, "response"),
        "c22f1a843f07d8f00a01b7057ba19f30"
    );
    h.input(h.at(2), &msgs[4]);
    let m = h.sent_one();
    assert_eq!(
        method_uri(&m),
        ("SETUP", "rtsp://10.0.0.9:8554/cam1/trackID=0")
    );
    h.input(
        h.at(2),
        b"RTSP/1.0 200 OK\r\nCSeq: 6\r\nSession: 12345678\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
    );
    assert_eq!(
        method_uri(&h.sent_one()),
        ("PLAY", "rtsp://10.0.0.9:8554/cam1/")
    );
    h.input(h.at(2), b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n\r\n");
    assert!(matches!(h.events().as_slice(), [RtspEvent::Playing { .. }]));
}

#[test]
fn redirect_statuses_on_options_and_describe() {
    for status in [
        "301 Moved Permanently",
        "302 Moved Temporarily",
        "303 See Other",
        "307 Temporary Redirect",
    ] {
        // On OPTIONS.
        let mut h = Harness::with_config("rtsp://cam/a", follow());
        h.c.handle_connected(h.at(0));
        h.sent();
        h.input(
            h.at(0),
            &redirect_answer(1, status, "rtsp://u:v@cam2:10554/b"),
        );
        assert_eq!(
            h.redirect(),
            Some(Redirect {
                host: "cam2".into(),
                port: 10554
            }),
            "{status}"
        );
        h.c.handle_connected(h.at(1));
        assert_eq!(
            method_uri(&h.sent_one()),
            ("OPTIONS", "rtsp://cam2:10554/b")
        );
        // The new URL's own credentials win.
        assert_eq!(h.c.url().redacted(), "rtsp://u:***@cam2:10554/b");
    }
    // A relative Location on DESCRIBE.
    let mut h = Harness::with_config("rtsp://cam/a", follow());
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    h.input(h.at(0), &redirect_answer(2, "302 Found", "/live/ch2"));
    assert!(h.redirect().is_some());
    assert_eq!(h.c.url().request_url(), "rtsp://cam/live/ch2");
}

#[test]
fn use_proxy_305_connects_to_the_proxy_for_the_same_url() {
    let mut h = Harness::with_config("rtsp://a:b@cam/live", follow());
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    h.input(
        h.at(0),
        &redirect_answer(2, "305 Use Proxy", "rtsp://proxy.lan:5540/"),
    );
    assert_eq!(
        h.redirect(),
        Some(Redirect {
            host: "proxy.lan".into(),
            port: 5540
        })
    );
    h.sent();
    h.c.handle_connected(h.at(1));
    assert_eq!(method_uri(&h.sent_one()), ("OPTIONS", "rtsp://cam/live"));
}

#[test]
fn at_most_three_redirects() {
    let mut h = Harness::with_config("rtsp://cam0/x", follow());
    let mut cseq = 0;
    for hop in 1..=4 {
        h.c.handle_connected(h.at(hop));
        cseq += 1;
        assert_eq!(h.sent_one().cseq(), Some(cseq));
        h.input(
            h.at(hop),
            &redirect_answer(cseq, "302 Found", &format!("rtsp://cam{hop}/x")),
        );
        if hop < 4 {
            assert_eq!(h.redirect().unwrap().host, format!("cam{hop}"));
            assert!(h.events().is_empty());
        }
    }
    assert_eq!(h.redirect(), None);
    let ev = h.events();
    assert_eq!(
        ev,
        vec![RtspEvent::Failed(RtspError::Protocol(
            "too many redirects".into()
        ))]
    );
    assert_eq!(ev_string(&ev[0]), "Rtsp protocol error: too many redirects");
}

#[test]
fn redirect_to_another_scheme_is_refused() {
    for location in [
        "http://cam/x",
        "rtsps://cam/x",
        "rtspu://cam/x",
        "file:///etc/passwd",
    ] {
        let mut h = Harness::with_config("rtsp://cam/x", follow());
        h.c.handle_connected(h.at(0));
        h.input(h.at(0), &redirect_answer(1, "302 Found", location));
        assert_eq!(h.redirect(), None);
        assert_eq!(
            h.events(),
            vec![RtspEvent::Failed(RtspError::Protocol(
                "redirect to a non-rtsp URL".into()
            ))],
            "{location}"
        );
    }
}

#[test]
fn redirects_not_followed_unless_asked() {
    // Default config: the driver may not know about redirects.
    let msgs = script(REDIRECT, &[]);
    let mut h = Harness::new("rtsp://cam/cam1");
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), &msgs[0]);
    h.input(h.at(0), &msgs[1]);
    assert_eq!(h.redirect(), None);
    let ev = h.events();
    assert_eq!(
        ev,
        vec![RtspEvent::Failed(RtspError::Status {
            code: 302,
            reason: "Found".into()
        })]
    );
    // A 3xx without Location is an ordinary failure even when following.
    let mut h = Harness::with_config("rtsp://cam/cam1", follow());
    h.c.handle_connected(h.at(0));
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 302 Found\r\nCSeq: 2\r\n\r\n",
    );
    assert!(matches!(
        h.events().as_slice(),
        [RtspEvent::Failed(RtspError::Status { code: 302, .. })]
    ));
    // Connect failure after a redirect.
    let mut h = Harness::with_config("rtsp://cam/cam1", follow());
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), &redirect_answer(1, "302 Found", "rtsp://gone/x"));
    assert!(h.redirect().is_some());
    h.c.handle_timeout(h.at(10));
    assert_eq!(
        h.events(),
        vec![RtspEvent::Failed(RtspError::ConnectFailed)]
    );
}

// ---- A refused track does not kill the stream (issue 4, item 3) ---------------------------

const AUDIO_REFUSED: &str = include_str!("../testdata/setup_audio_refused.txt");
const HIK_BASE: &str = "rtsp://192.168.1.64:554/Streaming/Channels/101/";

/// Runs the Hikvision-style script with the audio SETUP answered `audio_status`; returns the
/// harness after the audio SETUP answer.
fn audio_refused(audio_status: &str, config: RtspConfig) -> Harness {
    let msgs = script(AUDIO_REFUSED, &[("audio_status", audio_status)]);
    let mut h = Harness::with_config("rtsp://192.168.1.64:554/Streaming/Channels/101", config);
    h.c.handle_connected(h.at(0));
    for m in &msgs[..3] {
        h.input(h.at(0), m);
    }
    let s = h.sent();
    assert_eq!(
        method_uri(&s[2]),
        ("SETUP", &*format!("{HIK_BASE}trackID=1"))
    );
    assert_eq!(
        method_uri(&s[3]),
        ("SETUP", &*format!("{HIK_BASE}trackID=2"))
    );
    assert_eq!(s[3].header("Session"), Some("1273222592"));
    h.input(h.at(0), &msgs[3]);
    h
}

#[test]
fn refused_audio_setup_drops_the_track_and_plays_video() {
    for (status, why) in [
        (
            "461 Unsupported Transport",
            "SETUP answered 461 Unsupported Transport",
        ),
        ("404 Not Found", "SETUP answered 404 Not Found"),
    ] {
        let mut h = audio_refused(status, tcp());
        let m = h.sent_one();
        assert_eq!(method_uri(&m), ("PLAY", HIK_BASE));
        let msgs = script(AUDIO_REFUSED, &[("audio_status", status)]);
        let mut read = msgs[4].clone();
        read.extend_from_slice(b"$\x00\x00\x02v1$\x01\x00\x02r1$\x02\x00\x02a1");
        h.input(h.at(0), &read);
        h.next_input(h.at(0));
        match h.events().as_slice() {
            [RtspEvent::Playing { tracks }] => {
                assert_eq!(tracks.len(), 1);
                assert_eq!(tracks[0].encoding, "H264");
            }
            e => panic!("{e:?}"),
        }
        let dropped = h.c.dropped_tracks();
        assert_eq!(dropped.len(), 1);
        assert_eq!(
            (dropped[0].0.encoding.as_str(), dropped[0].0.kind),
            ("PCMA", MediaKind::Audio)
        );
        assert_eq!(dropped[0].1, why);
        // Video RTP and RTCP reach track 0; nothing arrives for the dropped audio.
        let got: Vec<_> = h
            .media
            .iter()
            .map(|(t, r, d)| (*t, *r, d.clone()))
            .collect();
        assert_eq!(
            got,
            vec![(0, false, b"v1".to_vec()), (0, true, b"r1".to_vec())]
        );
    }
}

#[test]
fn fail_on_track_error_makes_a_refused_track_fatal() {
    let config = RtspConfig {
        fail_on_track_error: true,
        ..tcp()
    };
    let mut h = audio_refused("461 Unsupported Transport", config.clone());
    assert!(h.sent().is_empty(), "no PLAY");
    assert_eq!(
        h.events(),
        vec![RtspEvent::Failed(RtspError::Status {
            code: 461,
            reason: "Unsupported Transport".into()
        })]
    );
    let mut h = audio_refused("404 Not Found", config);
    assert_eq!(h.events(), vec![RtspEvent::Failed(RtspError::NotFound)]);
    // A 5xx is fatal whatever the setting.
    let mut h = audio_refused("500 Internal Server Error", tcp());
    assert!(matches!(
        h.events().as_slice(),
        [RtspEvent::Failed(RtspError::Status { code: 500, .. })]
    ));
}

#[test]
fn refused_first_track_plays_the_second_and_none_left_fails() {
    let mut h = Harness::new("rtsp://cam/live");
    h.c.handle_connected(h.at(0));
    let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n\
               m=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\n";
    let d = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.input(h.at(0), d.as_bytes());
    h.input(
        h.at(0),
        b"RTSP/1.0 461 Unsupported Transport\r\nCSeq: 3\r\n\r\n",
    );
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: s1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
    );
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n$\x00\x00\x01a");
    h.next_input(h.at(0));
    match h.events().as_slice() {
        [RtspEvent::Playing { tracks }] => {
            assert_eq!(tracks.len(), 1);
            assert_eq!(tracks[0].encoding, "PCMU");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(h.media, vec![(0, false, b"a".to_vec())]);
    assert_eq!(h.c.dropped_tracks()[0].0.encoding, "H264");

    // Every SETUP refused: Failed with the first refusal.
    let mut h = Harness::new("rtsp://cam/live");
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), d.as_bytes());
    h.input(
        h.at(0),
        b"RTSP/1.0 461 Unsupported Transport\r\nCSeq: 3\r\n\r\n",
    );
    h.input(h.at(0), b"RTSP/1.0 404 Not Found\r\nCSeq: 4\r\n\r\n");
    assert_eq!(
        h.events(),
        vec![RtspEvent::Failed(RtspError::Status {
            code: 461,
            reason: "Unsupported Transport".into()
        })]
    );
    assert_eq!(h.c.dropped_tracks().len(), 2);
    assert!(h.c.is_closed());
}

// ---- Camera quirks (issue 4, item 4) ------------------------------------------------------

const CHEAP: &str = include_str!("../testdata/quirks_lf_cheap_camera.txt");
const CHEAP_URL: &str = "rtsp://10.0.0.7/live/main";

fn cheap_msgs() -> Vec<Vec<u8>> {
    script(CHEAP, &[("sp", " ")])
}

/// Checks the requests the client made during the cheap-camera exchange and what it reported.
fn check_cheap_exchange(h: &mut Harness) {
    let s = h.sent();
    let lines: Vec<_> = s
        .iter()
        .map(|m| {
            (
                method_uri(m).0.to_owned(),
                method_uri(m).1.to_owned(),
                m.cseq(),
            )
        })
        .collect();
    let want = [
        ("OPTIONS", CHEAP_URL.to_owned()),
        ("DESCRIBE", CHEAP_URL.to_owned()),
        ("SETUP", format!("{CHEAP_URL}/track1")),
        ("SETUP", format!("{CHEAP_URL}/track2")),
        ("PLAY", CHEAP_URL.to_owned()),
    ];
    assert_eq!(lines.len(), want.len(), "{lines:?}");
    for (i, ((m, u, c), (wm, wu))) in lines.iter().zip(&want).enumerate() {
        assert_eq!(
            (m.as_str(), u.as_str(), *c),
            (*wm, wu.as_str(), Some(i as u32 + 1))
        );
    }
    assert_eq!(
        s[2].header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(
        s[3].header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=2-3")
    );
    // The first session id, without its parameters, on every later request.
    assert_eq!(s[3].header("Session"), Some("AAAA1111"));
    assert_eq!(s[4].header("Session"), Some("AAAA1111"));
    assert_eq!(h.c.session_id(), Some("AAAA1111"));
    match h.events().as_slice() {
        [RtspEvent::Playing { tracks }] => {
            assert_eq!(tracks.len(), 2);
            let v = &tracks[0];
            assert_eq!((v.encoding.as_str(), v.clock_rate), ("H264", 90000));
            // No SPS/PPS in the SDP: the track is still there, its fmtp without sprop.
            assert_eq!(
                v.fmtp.as_deref(),
                Some("packetization-mode=1;profile-level-id=42001f")
            );
            assert_eq!(v.fmtp_param("sprop-parameter-sets"), None);
            assert_eq!(v.fmtp_param("profile-level-id"), Some("42001f"));
            assert_eq!(tracks[1].encoding, "PCMU");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn cheap_camera_quirks_in_one_exchange() {
    let msgs = cheap_msgs();
    // CSeq with trailing spaces parses to the number (Longse).
    let mut cseqs = Vec::new();
    for m in &msgs {
        Framer::new()
            .push(m, &mut |f| {
                if let Frame::Message(m) = f {
                    cseqs.push(m.cseq());
                }
                true
            })
            .unwrap();
    }
    assert_eq!(cseqs, [1, 2, 3, 4, 5].map(Some));
    assert!(
        msgs[0].ends_with(b"TEARDOWN, PLAY\n\n"),
        "bare LF, no Content-Length"
    );

    let mut h = Harness::new(CHEAP_URL);
    h.c.handle_connected(h.at(0));
    for m in &msgs[..4] {
        h.input(h.at(0), m);
    }
    // Reolink sends RTCP sender reports and v4l2rtspserver RTP before the PLAY answer: kept,
    // and delivered once it comes (often the stream's first keyframe).
    h.input(h.at(0), b"$\x01\x00\x04SR!!$\x00\x00\x03rtp");
    assert!(h.media.is_empty());
    let mut read = msgs[4].clone();
    // RTCP on the odd channel before any RTP, then audio RTP on the proposed channel 2.
    read.extend_from_slice(b"$\x01\x00\x02sr$\x00\x00\x02v1$\x03\x00\x02ar$\x02\x00\x02a1");
    h.input(h.at(0), &read);
    h.next_input(h.at(0));
    check_cheap_exchange(&mut h);
    let got: Vec<_> = h
        .media
        .iter()
        .map(|(t, r, d)| (*t, *r, d.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, true, b"SR!!".to_vec()),
            (0, false, b"rtp".to_vec()),
            (0, true, b"sr".to_vec()),
            (0, false, b"v1".to_vec()),
            (1, true, b"ar".to_vec()),
            (1, false, b"a1".to_vec()),
        ]
    );

    // Keepalive (item 5): OPTIONS (GET_PARAMETER not in Public) at half the announced 30 s,
    // to the base URL, with the first session id.
    assert_eq!(h.c.poll_timeout(), Some(h.at(10)), "no-data timeout first");
    h.input(h.at(9), b"$\x00\x00\x00");
    assert_eq!(h.c.poll_timeout(), Some(h.at(15)));
    h.c.handle_timeout(h.at(15));
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("OPTIONS", CHEAP_URL));
    assert_eq!(m.header("Session"), Some("AAAA1111"));
    assert_eq!(m.cseq(), Some(6));
    // The answer, bare LF, no Content-Length, CSeq with a trailing space.
    h.input(
        h.at(16),
        b"RTSP/1.0 200 OK\nCSeq: 6 \nSession: AAAA1111\n\n",
    );
    assert_eq!(h.c.poll_timeout(), Some(h.at(26)));
    h.input(h.at(24), b"$\x00\x00\x00");
    h.c.handle_timeout(h.at(30));
    assert_eq!(method_uri(&h.sent_one()), ("OPTIONS", CHEAP_URL));
    assert!(!h.c.is_closed());
}

#[test]
fn cheap_camera_answers_one_byte_per_read() {
    // The whole server side, PLAY answer and media included, one byte per TCP read.
    let mut stream_bytes: Vec<u8> = cheap_msgs().concat();
    stream_bytes.extend_from_slice(b"$\x01\x00\x02sr$\x00\x00\x02v1");
    let mut h = Harness::new(CHEAP_URL);
    h.c.handle_connected(h.at(0));
    for b in &stream_bytes {
        h.input(h.at(0), std::slice::from_ref(b));
    }
    check_cheap_exchange(&mut h);
    assert_eq!(
        h.media,
        vec![(0, true, b"sr".to_vec()), (0, false, b"v1".to_vec())]
    );
}

#[test]
fn session_id_change_keeps_the_first_for_keepalive_and_teardown() {
    let msgs = cheap_msgs();
    let mut h = Harness::new(CHEAP_URL);
    h.c.handle_connected(h.at(0));
    for m in &msgs {
        h.input(h.at(0), m);
    }
    h.sent();
    h.events();
    // A camera that also answers a keepalive with the other id does not change ours.
    h.input(h.at(9), b"$\x00\x00\x00");
    h.c.handle_timeout(h.at(15));
    h.input(
        h.at(15),
        b"RTSP/1.0 200 OK\r\nCSeq: 6\r\nSession: BBBB2222\r\n\r\n",
    );
    h.c.teardown(h.at(16));
    let s = h.sent();
    assert_eq!(method_uri(&s[1]), ("TEARDOWN", CHEAP_URL));
    assert_eq!(s[1].header("Session"), Some("AAAA1111"));
}

#[test]
fn content_base_variants_and_absolute_controls() {
    // (Content-Base header, SDP controls, expected SETUP URL, expected PLAY URL)
    let cases = [
        // No trailing slash + relative control (live555/ffmpeg join, retina issue #9).
        (
            Some("rtsp://cam/live/main"),
            "a=control:trackID=1",
            "rtsp://cam/live/main/trackID=1",
            "rtsp://cam/live/main",
        ),
        // Absolute control pointing elsewhere than the base (Hikvision, Axis).
        (
            Some("rtsp://cam/live/"),
            "a=control:rtsp://cam:554/live/trackID=1",
            "rtsp://cam:554/live/trackID=1",
            "rtsp://cam/live/",
        ),
        // Content-Base without scheme (Anjvision), control `*`-less relative.
        (
            Some("cam:8554/stream0/"),
            "a=control:track0",
            "rtsp://cam:8554/stream0/track0",
            "rtsp://cam:8554/stream0/",
        ),
        // `/`-relative Content-Base.
        (
            Some("/other/"),
            "a=control:t1",
            "rtsp://cam/other/t1",
            "rtsp://cam/other/",
        ),
        // No Content-Base, no control: SETUP and PLAY the request URL.
        (None, "", "rtsp://cam/live/main", "rtsp://cam/live/main"),
    ];
    for (base, control, setup, play) in cases {
        let mut h = Harness::new("rtsp://cam/live/main");
        h.c.handle_connected(h.at(0));
        h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
        let sdp = format!("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n{control}\r\n");
        let base = base
            .map(|b| format!("Content-Base: {b}\r\n"))
            .unwrap_or_default();
        let d = format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\n{base}Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        h.input(h.at(0), d.as_bytes());
        h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1\r\n\r\n");
        let s = h.sent();
        assert_eq!(method_uri(&s[2]), ("SETUP", setup), "{base}{control}");
        assert_eq!(method_uri(&s[3]), ("PLAY", play), "{base}{control}");
    }
}

// ---- Keepalive (issue 4, item 5) ----------------------------------------------------------

/// Plays a one-track stream whose OPTIONS answer carries `public` header lines and whose
/// SETUP answers `session`; returns the harness just after `Playing`.
fn playing_with(public: &str, session: &str) -> Harness {
    let mut h = Harness::new("rtsp://cam/live");
    h.c.handle_connected(h.at(0));
    let sdp = "v=0\r\na=control:rtsp://cam/live/agg\r\nm=video 0 RTP/AVP 96\r\n\
               a=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n";
    let answers = [
        format!("RTSP/1.0 200 OK\r\nCSeq: 1\r\n{public}\r\n"),
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://cam/live/\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
        format!("RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
        "RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n".to_owned(),
    ];
    for a in &answers {
        h.input(h.at(0), a.as_bytes());
    }
    h.sent();
    assert!(matches!(h.events().as_slice(), [RtspEvent::Playing { .. }]));
    h
}

/// Keeps data flowing until `until` seconds and returns the keepalives sent, with their time.
fn keepalives_until(h: &mut Harness, until: u64) -> Vec<(u64, String, String, Option<String>)> {
    let mut out = Vec::new();
    for s in 1..=until {
        h.input(h.at(s), b"$\x00\x00\x00");
        if h.c.poll_timeout().is_some_and(|t| t <= h.at(s)) {
            h.c.handle_timeout(h.at(s));
        }
        for m in h.sent() {
            let (method, uri) = method_uri(&m);
            out.push((
                s,
                method.to_owned(),
                uri.to_owned(),
                m.header("Session").map(str::to_owned),
            ));
        }
    }
    out
}

#[test]
fn keepalive_method_interval_and_target() {
    let ka = |t: u64, m: &str| {
        (
            t,
            m.to_owned(),
            "rtsp://cam/live/agg".to_owned(),
            Some("s1".to_owned()),
        )
    };
    // GET_PARAMETER listed in lower case across two Public headers, no timeout → 60 s / 2.
    let mut h = playing_with(
        "Public: OPTIONS, DESCRIBE\r\nPublic: setup,play,get_parameter\r\n",
        "s1",
    );
    assert_eq!(
        keepalives_until(&mut h, 95),
        vec![
            ka(30, "GET_PARAMETER"),
            ka(60, "GET_PARAMETER"),
            ka(90, "GET_PARAMETER")
        ]
    );
    // SET_PARAMETER alone is not used (Tapo answers it with 400 and a wrong CSeq): OPTIONS.
    // Announced timeout 8 s → every 4 s, to the session-level control URL.
    let mut h = playing_with("Public: OPTIONS, SET_PARAMETER\r\n", "s1 ; timeout = 8");
    assert_eq!(
        keepalives_until(&mut h, 12),
        vec![ka(4, "OPTIONS"), ka(8, "OPTIONS"), ka(12, "OPTIONS")]
    );
    // timeout=0 or junk: the 60 s default, not a keepalive storm.
    for session in ["s1;timeout=0", "s1;timeout=abc", "s1;timeout="] {
        let mut h = playing_with("", session);
        assert_eq!(
            keepalives_until(&mut h, 31),
            vec![ka(30, "OPTIONS")],
            "{session}"
        );
    }
    // Before PLAY is answered there is no keepalive, whatever the time.
    let mut h = Harness::new("rtsp://cam/live");
    h.c.handle_connected(h.at(0));
    h.sent();
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: GET_PARAMETER\r\n\r\n",
    );
    assert_eq!(method_uri(&h.sent_one()).0, "DESCRIBE");
    assert_eq!(
        h.c.poll_timeout(),
        Some(h.at(10)),
        "only the DESCRIBE deadline"
    );
}

#[test]
fn keepalive_on_the_hikvision_script_uses_get_parameter_on_the_session_control() {
    let msgs = script(AUDIO_REFUSED, &[("audio_status", "200 OK")]);
    let mut h = Harness::new("rtsp://192.168.1.64:554/Streaming/Channels/101");
    h.c.handle_connected(h.at(0));
    for m in &msgs {
        h.input(h.at(0), m);
    }
    h.sent();
    assert!(matches!(h.events().as_slice(), [RtspEvent::Playing { tracks }] if tracks.len() == 2));
    let got = keepalives_until(&mut h, 31);
    assert_eq!(
        got,
        vec![(
            30,
            "GET_PARAMETER".to_owned(),
            HIK_BASE.to_owned(),
            Some("1273222592".to_owned())
        )]
    );
}

// ---- UDP transport ----

const VLC_UDP: &str = include_str!("../testdata/vlc_udp.txt");
const HIK_UDP: &str = include_str!("../testdata/udp_hikvision.txt");
const HIK_URL: &str = "rtsp://192.168.1.64:554/Streaming/Channels/101";
const VLC_URL: &str = "rtsp://192.168.1.20:8554/cam";

fn with_transport(transport: RtspTransport) -> RtspConfig {
    RtspConfig {
        transport,
        ..RtspConfig::default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn from(addr: &str) -> std::net::SocketAddr {
    addr.parse().unwrap()
}

/// An RTP packet: V=2, PT 96, `seq`, timestamp 0, `ssrc`, one payload byte = low byte of seq.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.push(seq as u8);
    p
}

fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

/// A minimal answer for hand-driven steps.
fn answer(cseq: u32, status: &str, headers: &str) -> Vec<u8> {
    format!("RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{headers}\r\n").into_bytes()
}

/// The fields of an RTCP receiver report with one block.
#[derive(Debug, PartialEq, Eq)]
struct Rr {
    reporter: u32,
    source: u32,
    fraction: u8,
    lost: u32,
    highest: u32,
    lsr: u32,
    dlsr: u32,
}

fn parse_rr(p: &[u8]) -> Option<Rr> {
    assert_eq!((p[0] >> 6, p[1]), (2, 201), "not an RR: {p:?}");
    let w = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    if p[0] & 0x1f == 0 {
        assert_eq!(p.len(), 8);
        return None;
    }
    assert_eq!(
        (p[0] & 0x1f, p.len(), u16::from_be_bytes([p[2], p[3]])),
        (1, 32, 7)
    );
    Some(Rr {
        reporter: w(4),
        source: w(8),
        fraction: p[12],
        lost: w(12) & 0xff_ffff,
        highest: w(16),
        lsr: w(24),
        dlsr: w(28),
    })
}

impl Harness {
    fn udp_requests(&mut self) -> Vec<usize> {
        self.drain();
        std::mem::take(&mut self.out.udp_requests)
            .into_iter()
            .map(|r| r.track)
            .collect()
    }

    fn udp_sent(&mut self) -> Vec<UdpTransmit> {
        self.drain();
        std::mem::take(&mut self.out.udp_sent)
    }

    fn udp(&mut self, at: Instant, track: usize, rtcp: bool, src: &str, data: &[u8]) {
        let media = self.c.handle_udp_input(at, track, rtcp, from(src), data);
        self.media
            .extend(media.map(|p| (p.track, p.rtcp, p.data.to_vec())));
    }

    fn media_seqs(&mut self) -> Vec<(usize, u16)> {
        std::mem::take(&mut self.media)
            .into_iter()
            .filter(|m| !m.1)
            .map(|m| (m.0, seq_of(&m.2)))
            .collect()
    }
}

/// The Hikvision-style camera played over UDP up to the PLAY answer (not yet fed).
fn hik_udp_until_play(transport: RtspTransport) -> (Harness, Vec<Vec<u8>>) {
    let mut h = Harness::with_config(HIK_URL, with_transport(transport));
    let msgs = script(HIK_UDP, &[("c1", "50000-50001"), ("c2", "50002-50003")]);
    let now = h.at(0);
    h.c.handle_connected(now);
    h.sent_one();
    h.input(now, &msgs[0]);
    h.sent_one();
    h.input(now, &msgs[1]);
    // No SETUP before the driver has bound ports for the video track.
    assert!(h.sent().is_empty());
    assert_eq!(h.udp_requests(), [0]);
    assert_eq!(
        h.c.poll_timeout(),
        Some(now + RtspConfig::default().response_timeout)
    );
    h.c.handle_udp_ports(now, 0, 50000);
    let m = h.sent_one();
    assert_eq!(
        method_uri(&m),
        (
            "SETUP",
            "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1"
        )
    );
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP;unicast;client_port=50000-50001")
    );
    h.input(now, &msgs[2]);
    assert_eq!(h.udp_requests(), [1]);
    h.c.handle_udp_ports(now, 1, 50002);
    let m = h.sent_one();
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP;unicast;client_port=50002-50003")
    );
    assert_eq!(m.header("Session"), Some("1273222592"));
    h.input(now, &msgs[3]);
    let m = h.sent_one();
    assert_eq!(method_uri(&m).0, "PLAY");
    (h, msgs)
}

#[test]
fn udp_happy_path_with_punch_reorder_and_receiver_reports() {
    let (mut h, msgs) = hik_udp_until_play(RtspTransport::Udp);
    let now = h.at(0);
    assert_eq!(
        h.c.udp_destination(0),
        Some(UdpDestination {
            host: None,
            rtp_port: 8218,
            rtcp_port: 8219
        })
    );
    assert_eq!(
        h.c.udp_destination(1),
        Some(UdpDestination {
            host: Some("192.168.1.64".into()),
            rtp_port: 8220,
            rtcp_port: 8221
        })
    );
    assert_eq!(h.c.udp_destination(2), None);
    // Punch: an empty RTP packet and a receiver report per track, as PLAY goes out.
    let punch = h.udp_sent();
    assert_eq!(
        punch.iter().map(|t| (t.track, t.rtcp)).collect::<Vec<_>>(),
        [(0, false), (0, true), (1, false), (1, true)]
    );
    assert_eq!(punch[0].data.len(), 12);
    assert_eq!(punch[0].data[0], 0x80);
    let rr = parse_rr(&punch[1].data).unwrap();
    assert_eq!((rr.source, rr.lost, rr.highest), (0x5e2a4b3c, 0, 0));
    assert_eq!(parse_rr(&punch[3].data).unwrap().source, 0x1f0e0d0c);
    assert_eq!(h.c.transport_in_use(), None);

    h.input(now, &msgs[4]);
    assert_eq!(h.events().len(), 1);
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Udp));
    let cam_v = "192.168.1.64:8218";
    let ssrc = 0x11223344;
    // Out of order within the window: released in order; a duplicate is dropped.
    for s in [100u16, 101, 103, 102, 102, 104] {
        h.udp(now, 0, false, cam_v, &rtp(s, ssrc));
    }
    assert_eq!(
        h.media_seqs(),
        [(0, 100), (0, 101), (0, 102), (0, 103), (0, 104)]
    );
    // From another host, or another port than the announced pair: dropped.
    h.udp(now, 0, false, "192.168.1.99:8218", &rtp(105, ssrc));
    h.udp(now, 0, false, "192.168.1.64:9999", &rtp(105, ssrc));
    // IPv4-mapped IPv6 (a dual-stack socket) is the same host.
    h.udp(now, 0, false, "[::ffff:192.168.1.64]:8218", &rtp(105, ssrc));
    assert_eq!(h.media_seqs(), [(0, 105)]);
    // RTCP passes at once; a sender report on the audio track is remembered for LSR/DLSR.
    let mut sr = vec![0x80, 200, 0, 6, 0x1f, 0x0e, 0x0d, 0x0c];
    sr.extend_from_slice(&[0xaa, 0xbb, 0x12, 0x34, 0x56, 0x78, 0xcc, 0xdd]);
    sr.extend_from_slice(&[0; 12]);
    h.udp(now, 1, true, "192.168.1.64:8221", &sr);
    h.udp(now, 1, false, "192.168.1.64:8220", &rtp(7, 0x1f0e0d0c));
    assert_eq!(
        h.media.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        [(1, true), (1, false)]
    );
    h.media.clear();
    // 106 lost: 107 waits for the reorder window, then goes out with the next datagram.
    h.udp(now, 0, false, cam_v, &rtp(107, ssrc));
    assert!(h.media_seqs().is_empty());
    h.udp(now + ms(150), 0, false, cam_v, &rtp(108, ssrc));
    assert_eq!(h.media_seqs(), [(0, 107), (0, 108)]);

    // The first receiver reports come 5 s after PLAY.
    assert!(h.c.poll_timeout().unwrap() <= h.at(5));
    h.c.handle_timeout(h.at(4));
    assert!(h.udp_sent().is_empty());
    h.c.handle_timeout(h.at(5));
    let rrs = h.udp_sent();
    assert_eq!(rrs.len(), 2);
    assert!(rrs.iter().all(|t| t.rtcp));
    let v = parse_rr(&rrs[0].data).unwrap();
    assert_eq!(
        (v.source, v.fraction, v.lost, v.highest),
        (ssrc, 28, 1, 108), // 1 lost of 9: 256 / 9
        "{v:?}"
    );
    let a = parse_rr(&rrs[1].data).unwrap();
    assert_eq!(
        (a.source, a.lsr, a.dlsr),
        (0x1f0e0d0c, 0x12345678, 5 * 65536)
    );
    assert_eq!(a.reporter, v.reporter);
    // Liveness comes from the datagrams; the next report 5 s later, without new loss.
    h.udp(h.at(6), 0, false, cam_v, &rtp(109, ssrc));
    h.c.handle_timeout(h.at(10));
    let v = parse_rr(&h.udp_sent()[0].data).unwrap();
    assert_eq!((v.fraction, v.lost, v.highest), (0, 1, 109));
    assert!(h.events().is_empty());
    // Then silence over UDP fails the stream after no_data_timeout, whatever TCP does.
    h.input(h.at(15), &answer(99, "200 OK", ""));
    h.c.handle_timeout(h.at(16));
    assert_eq!(
        h.events(),
        [RtspEvent::Failed(RtspError::Timeout("no data from camera"))]
    );
}

#[test]
fn udp_media_sent_before_the_play_answer_is_delivered_after_it() {
    let (mut h, msgs) = hik_udp_until_play(RtspTransport::Udp);
    let now = h.at(0);
    let cam_v = "192.168.1.64:8218";
    let ssrc = 0x11223344;
    // The camera streams as soon as it takes PLAY; its answer comes after the first packets
    // (the stream's first keyframe, which the viewers would otherwise wait a GOP for).
    for s in [100u16, 101, 102] {
        h.udp(now, 0, false, cam_v, &rtp(s, ssrc));
    }
    // A stranger's datagram is held too, and checked like any other on release.
    h.udp(now, 0, false, "192.168.1.99:8218", &rtp(500, ssrc));
    assert!(h.media.is_empty(), "nothing before the answer");
    h.input(now, &msgs[4]);
    assert_eq!(h.events().len(), 1);
    // The next datagram comes after the driver took `Playing`: the held ones go first.
    assert!(h.media.is_empty());
    h.udp(now, 0, false, cam_v, &rtp(103, ssrc));
    assert_eq!(h.media_seqs(), [(0, 100), (0, 101), (0, 102), (0, 103)]);
}

#[test]
fn media_held_before_the_play_answer_is_bounded_and_gone_with_a_refused_play() {
    let (mut h, msgs) = hik_udp_until_play(RtspTransport::Udp);
    let now = h.at(0);
    let big = {
        let mut p = rtp(0, 0x11223344);
        p.resize(1400, 0);
        p
    };
    // 2000 datagrams of 1400 bytes before the answer: the first 512 are kept.
    for s in 0..2000u16 {
        let mut p = big.clone();
        p[2..4].copy_from_slice(&s.to_be_bytes());
        h.udp(now, 0, false, "192.168.1.64:8218", &p);
    }
    h.input(now, &msgs[4]);
    h.next_input(now);
    let seqs = h.media_seqs();
    assert_eq!(seqs.len(), 512);
    assert_eq!(seqs.first(), Some(&(0, 0)));
    // A PLAY refused after early media: nothing is delivered, the stream fails.
    let (mut h, _) = hik_udp_until_play(RtspTransport::Udp);
    h.udp(now, 0, false, "192.168.1.64:8218", &rtp(1, 0x11223344));
    h.input(now, &answer(5, "454 Session Not Found", ""));
    assert!(h.media.is_empty());
    assert!(h.c.is_closed());
}

#[test]
fn udp_sequence_wrap_and_camera_restart_through_the_client() {
    let (mut h, msgs) = hik_udp_until_play(RtspTransport::Udp);
    let now = h.at(0);
    h.input(now, &msgs[4]);
    let cam = "192.168.1.64:8218";
    for s in [65534u16, 0, 65535, 1, 1, 2] {
        h.udp(now, 0, false, cam, &rtp(s, 1));
    }
    assert_eq!(
        h.media_seqs(),
        [(0, 65534), (0, 65535), (0, 0), (0, 1), (0, 2)]
    );
    // A camera that restarts its sequence far away is followed at once.
    h.udp(now, 0, false, cam, &rtp(30000, 1));
    h.udp(now, 0, false, cam, &rtp(30001, 1));
    assert_eq!(h.media_seqs(), [(0, 30000), (0, 30001)]);
}

#[test]
fn auto_461_on_the_first_udp_setup_retries_it_over_tcp() {
    let mut h = Harness::new_auto(GST_URL);
    let now = h.at(0);
    h.c.handle_connected(now);
    h.sent_one();
    h.input(now, &crlf(GST_OPTIONS));
    h.sent_one();
    h.input(now, &crlf(GST_DESCRIBE));
    assert_eq!(h.udp_requests(), [0]);
    h.c.handle_udp_ports(now, 0, 40000);
    let m = h.sent_one();
    assert_eq!(m.cseq(), Some(3));
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP;unicast;client_port=40000-40001")
    );
    h.input(now, &answer(3, "461 Unsupported Transport", ""));
    // Same connection, same track, TCP now; no TEARDOWN since nothing was set up.
    let m = h.sent_one();
    assert_eq!(
        method_uri(&m),
        ("SETUP", "rtsp://127.0.0.1:18554/test/stream=0")
    );
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(m.cseq(), Some(4));
    h.input(now, &crlf(&GST_SETUP.replace("CSeq: 3", "CSeq: 4")));
    assert_eq!(method_uri(&h.sent_one()).0, "PLAY");
    assert!(h.udp_sent().is_empty());
    h.input(now, &crlf(&GST_PLAY.replace("CSeq: 4", "CSeq: 5")));
    assert!(matches!(h.events()[..], [RtspEvent::Playing { .. }]));
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Tcp));
    assert_eq!(h.c.udp_destination(0), None);
    assert!(h.c.dropped_tracks().is_empty());
    // Interleaved media flows; datagrams are ignored.
    h.input(now, &hex_frames(GST_RTP)[0]);
    h.udp(now, 0, false, "127.0.0.1:5000", &rtp(1, 1));
    assert_eq!(h.media.len(), 1);
}

impl Harness {
    fn new_auto(url: &str) -> Harness {
        Harness::with_config(url, RtspConfig::default())
    }
}

#[test]
fn auto_461_on_a_later_udp_setup_restarts_the_session_over_tcp() {
    let mut h = Harness::new_auto(HIK_URL);
    let msgs = script(HIK_UDP, &[("c1", "50000-50001"), ("c2", "50002-50003")]);
    let now = h.at(0);
    h.c.handle_connected(now);
    h.sent_one();
    h.input(now, &msgs[0]);
    h.sent_one();
    h.input(now, &msgs[1]);
    assert_eq!(h.udp_requests(), [0]);
    h.c.handle_udp_ports(now, 0, 50000);
    h.sent_one();
    h.input(now, &msgs[2]);
    assert_eq!(h.udp_requests(), [1]);
    h.c.handle_udp_ports(now, 1, 50002);
    assert_eq!(h.sent_one().cseq(), Some(4));
    h.input(
        now,
        &answer(4, "461 Unsupported Transport", "Session: 1273222592\r\n"),
    );
    // One transport per session: TEARDOWN the UDP one, DESCRIBE again, SETUP both over TCP.
    let s = h.sent();
    assert_eq!(
        s.iter().map(|m| method_uri(m).0).collect::<Vec<_>>(),
        ["TEARDOWN", "DESCRIBE"]
    );
    assert_eq!(s[0].header("Session"), Some("1273222592"));
    assert_eq!(s[1].header("Session"), None);
    h.input(now, &answer(5, "200 OK", ""));
    h.input(now, &msgs[1].replace_cseq(2, 6));
    let m = h.sent_one();
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    h.input(
        now,
        &answer(
            7,
            "200 OK",
            "Session: 777\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    );
    let m = h.sent_one();
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=2-3")
    );
    // Audio refused over TCP as well: both transports tried, the track is dropped.
    h.input(
        now,
        &answer(8, "461 Unsupported Transport", "Session: 777\r\n"),
    );
    let m = h.sent_one();
    assert_eq!(
        (method_uri(&m).0, m.header("Session")),
        ("PLAY", Some("777"))
    );
    assert!(h.udp_requests().is_empty());
    h.input(now, &answer(9, "200 OK", "Session: 777\r\n"));
    match &h.events()[..] {
        [RtspEvent::Playing { tracks }] => assert_eq!(tracks.len(), 1),
        e => panic!("{e:?}"),
    }
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Tcp));
    assert_eq!(h.c.dropped_tracks().len(), 1);
}

trait ReplaceCseq {
    fn replace_cseq(&self, from: u32, to: u32) -> Vec<u8>;
}

impl ReplaceCseq for Vec<u8> {
    fn replace_cseq(&self, from: u32, to: u32) -> Vec<u8> {
        String::from_utf8(self.clone())
            .unwrap()
            .replacen(&format!("CSeq: {from}\r"), &format!("CSeq: {to}\r"), 1)
            .replacen(&format!("Cseq: {from}\r"), &format!("Cseq: {to}\r"), 1)
            .into_bytes()
    }
}

/// VLC over UDP in `Auto`, up to Playing.
fn vlc_playing() -> (Harness, Vec<Vec<u8>>) {
    let mut h = Harness::new_auto(VLC_URL);
    let msgs = script(
        VLC_UDP,
        &[
            ("rtp", "41000"),
            ("rtcp", "41001"),
            ("setup_cseq", "3"),
            ("play_cseq", "4"),
            ("tcp_cseq", "0"),
        ],
    );
    let now = h.at(0);
    h.c.handle_connected(now);
    h.sent_one();
    h.input(now, &msgs[0]);
    assert_eq!(method_uri(&h.sent_one()).0, "DESCRIBE");
    h.input(now, &msgs[1]);
    assert_eq!(h.udp_requests(), [0]);
    h.c.handle_udp_ports(now, 0, 41000);
    let m = h.sent_one();
    assert_eq!(
        (method_uri(&m), m.header("Transport")),
        (
            ("SETUP", "rtsp://192.168.1.20:8554/cam/trackID=0"),
            Some("RTP/AVP;unicast;client_port=41000-41001")
        )
    );
    h.input(now, &msgs[2]);
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("PLAY", VLC_URL));
    assert_eq!(m.header("Session"), Some("5b1b6d1bc3a1a3c6"));
    h.input(now, &msgs[3]);
    assert!(matches!(h.events()[..], [RtspEvent::Playing { .. }]));
    (h, msgs)
}

#[test]
fn vlc_like_server_plays_over_udp_in_auto() {
    let (mut h, _) = vlc_playing();
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Udp));
    assert_eq!(
        h.c.udp_destination(0),
        Some(UdpDestination {
            host: None,
            rtp_port: 56942,
            rtcp_port: 56943
        })
    );
    let punch = h.udp_sent();
    assert_eq!(punch.len(), 2);
    assert_eq!(parse_rr(&punch[1].data).unwrap().source, 0x3de1c74b);
    for s in 29385u16..29395 {
        h.udp(h.at(1), 0, false, "192.168.1.20:56942", &rtp(s, 0x3de1c74b));
    }
    assert_eq!(h.media_seqs().len(), 10);
    // Past the 3 s first-data deadline: still on UDP.
    h.c.handle_timeout(h.at(3));
    h.c.handle_timeout(h.at(5));
    assert!(h.events().is_empty());
    assert!(h.sent().iter().all(|m| method_uri(m).0 != "TEARDOWN"));
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Udp));
    let rr = h.udp_sent();
    assert_eq!(rr.len(), 1);
    let rr = parse_rr(&rr[0].data).unwrap();
    assert_eq!((rr.lost, rr.highest), (0, 29394));
}

#[test]
fn auto_without_udp_data_tears_down_and_plays_over_tcp() {
    let (mut h, msgs) = hik_udp_until_play(RtspTransport::Auto);
    let now = h.at(0);
    h.input(now, &msgs[4]);
    assert_eq!(h.events().len(), 1);
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Udp));
    h.udp_sent();
    // RTCP alone does not count: the first RTP decides.
    h.udp(
        h.at(1),
        1,
        true,
        "192.168.1.64:8221",
        &[0x80, 200, 0, 1, 0, 0, 0, 0],
    );
    assert_eq!(h.c.poll_timeout(), Some(h.at(3)));
    h.c.handle_timeout(h.at(3));
    let s = h.sent();
    assert_eq!(
        s.iter().map(|m| method_uri(m).0).collect::<Vec<_>>(),
        ["TEARDOWN", "DESCRIBE"]
    );
    assert_eq!(s[0].header("Session"), Some("1273222592"));
    assert_eq!(h.c.transport_in_use(), None);
    assert!(h.events().is_empty(), "no failure on the way");
    h.input(h.at(3), &answer(6, "200 OK", "Session: 1273222592\r\n"));
    h.input(h.at(3), &msgs[1].replace_cseq(2, 7));
    let m = h.sent_one();
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(m.header("Session"), None);
    h.input(
        h.at(3),
        &answer(
            8,
            "200 OK",
            "Session: 99\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    );
    h.sent_one();
    h.input(
        h.at(3),
        &answer(
            9,
            "200 OK",
            "Session: 99\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n",
        ),
    );
    assert_eq!(method_uri(&h.sent_one()).0, "PLAY");
    h.input(h.at(3), &answer(10, "200 OK", "Session: 99\r\n"));
    match &h.events()[..] {
        [RtspEvent::Playing { tracks }] => assert_eq!(tracks.len(), 2),
        e => panic!("{e:?}"),
    }
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Tcp));
    // The camera's RTP on the old UDP ports is ignored; interleaved media flows.
    h.udp(h.at(4), 0, false, "192.168.1.64:8218", &rtp(1, 1));
    let mut frame = vec![b'$', 2, 0, 13];
    frame.extend_from_slice(&rtp(5, 2));
    h.input(h.at(4), &frame);
    assert_eq!(h.media_seqs(), [(1, 5)]);
    assert!(h.udp_sent().is_empty());
    // TCP liveness rules now: 10 s of bytes, not UDP.
    h.c.handle_timeout(h.at(13));
    assert!(h.events().is_empty());
}

#[test]
fn tcp_461_after_a_fallback_goes_back_to_udp_with_the_same_ports() {
    // VLC: UDP first, but (say) a firewall eats the media; the TCP retry is refused with 461.
    let (mut h, msgs) = vlc_playing();
    h.udp_sent();
    h.c.handle_timeout(h.at(3));
    assert_eq!(
        h.sent().iter().map(|m| method_uri(m).0).collect::<Vec<_>>(),
        ["TEARDOWN", "DESCRIBE"]
    );
    h.input(h.at(3), &answer(5, "200 OK", ""));
    h.input(h.at(3), &msgs[1].replace_cseq(2, 6));
    let m = h.sent_one();
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    h.input(h.at(3), &msgs[4].replace_cseq(0, 7));
    // Back to UDP: the ports the driver bound are reused, no new request.
    let m = h.sent_one();
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP;unicast;client_port=41000-41001")
    );
    assert!(h.udp_requests().is_empty());
    h.input(h.at(3), &msgs[2].replace_cseq(3, 8));
    assert_eq!(method_uri(&h.sent_one()).0, "PLAY");
    h.input(h.at(3), &msgs[3].replace_cseq(4, 9));
    assert!(matches!(h.events()[..], [RtspEvent::Playing { .. }]));
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Udp));
    // Switches are bounded: silence again now fails instead of looping.
    h.c.handle_timeout(h.at(6));
    assert_eq!(
        h.events(),
        [RtspEvent::Failed(RtspError::Timeout("no data from camera"))]
    );
}

#[test]
fn forced_udp_without_data_fails() {
    let (mut h, msgs) = hik_udp_until_play(RtspTransport::Udp);
    h.input(h.at(0), &msgs[4]);
    h.events();
    h.sent();
    h.c.handle_timeout(h.at(2));
    assert!(h.events().is_empty());
    assert_eq!(h.c.poll_timeout(), Some(h.at(3)));
    h.c.handle_timeout(h.at(3));
    assert_eq!(
        h.events(),
        [RtspEvent::Failed(RtspError::Timeout("no data from camera"))]
    );
    assert!(
        h.sent().is_empty(),
        "no TEARDOWN/DESCRIBE: Udp never falls back"
    );
}

#[test]
fn forced_udp_461_drops_the_track_like_tcp_does() {
    let mut h = Harness::with_config(GST_URL, with_transport(RtspTransport::Udp));
    let now = h.at(0);
    h.c.handle_connected(now);
    h.sent_one();
    h.input(now, &crlf(GST_OPTIONS));
    h.sent_one();
    h.input(now, &crlf(GST_DESCRIBE));
    assert_eq!(h.udp_requests(), [0]);
    h.c.handle_udp_ports(now, 0, 40000);
    h.sent_one();
    h.input(now, &answer(3, "461 Unsupported Transport", ""));
    assert_eq!(
        h.events(),
        [RtspEvent::Failed(RtspError::Status {
            code: 461,
            reason: "Unsupported Transport".into()
        })]
    );
}

fn describe_then_port_request(config: RtspConfig) -> Harness {
    let mut h = Harness::with_config(GST_URL, config);
    let now = h.at(0);
    h.c.handle_connected(now);
    h.sent_one();
    h.input(now, &crlf(GST_OPTIONS));
    h.sent_one();
    h.input(now, &crlf(GST_DESCRIBE));
    h
}

#[test]
fn port_request_failure_falls_back_to_tcp_or_fails_when_forced() {
    let mut h = describe_then_port_request(RtspConfig::default());
    assert_eq!(h.udp_requests(), [0]);
    h.c.handle_udp_ports_failed(h.at(0), 0);
    let m = h.sent_one();
    assert_eq!(
        m.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    h.input(h.at(0), &crlf(GST_SETUP));
    h.sent_one();
    h.input(h.at(0), &crlf(GST_PLAY));
    assert_eq!(h.c.transport_in_use(), Some(RtspTransport::Tcp));

    let mut h = describe_then_port_request(with_transport(RtspTransport::Udp));
    assert_eq!(h.udp_requests(), [0]);
    h.c.handle_udp_ports_failed(h.at(0), 0);
    assert!(h.sent().is_empty());
    assert!(matches!(
        &h.events()[..],
        [RtspEvent::Failed(RtspError::Protocol(_))]
    ));

    // A port the driver cannot have bound (odd pair overflow) counts as a failure.
    let mut h = describe_then_port_request(RtspConfig::default());
    h.udp_requests();
    h.c.handle_udp_ports(h.at(0), 0, u16::MAX);
    assert_eq!(
        h.sent_one().header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );

    // The driver took the request and never answered: TCP after the response timeout.
    let mut h = describe_then_port_request(RtspConfig::default());
    h.udp_requests();
    let t = h.at(0) + RtspConfig::default().response_timeout;
    assert_eq!(h.c.poll_timeout(), Some(t));
    h.c.handle_timeout(t);
    assert_eq!(
        h.sent_one().header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
}

#[test]
fn udp_answer_without_server_port_and_with_tcp_transport() {
    // No server_port: media from any port of the camera; nothing to send to.
    let mut h = describe_then_port_request(with_transport(RtspTransport::Udp));
    h.udp_requests();
    h.c.handle_udp_ports(h.at(0), 0, 40000);
    h.sent_one();
    h.input(
        h.at(0),
        &answer(
            3,
            "200 OK",
            "Session: 1\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n",
        ),
    );
    h.sent_one();
    assert!(h.udp_sent().is_empty(), "no destination, no punch");
    h.input(h.at(0), &answer(4, "200 OK", "Session: 1\r\n"));
    assert_eq!(h.c.udp_destination(0), None);
    h.udp(h.at(1), 0, false, "127.0.0.1:6970", &rtp(1, 9));
    h.udp(h.at(1), 0, false, "127.0.0.1:6971", &rtp(2, 9));
    assert_eq!(h.media_seqs(), [(0, 1), (0, 2)]);
    h.c.handle_timeout(h.at(5));
    assert!(h.udp_sent().is_empty());

    // A UDP SETUP answered with an interleaved transport (some Hikvision): start over on TCP.
    let mut h = describe_then_port_request(RtspConfig::default());
    h.udp_requests();
    h.c.handle_udp_ports(h.at(0), 0, 40000);
    h.sent_one();
    h.input(
        h.at(0),
        &answer(
            3,
            "200 OK",
            "Session: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    );
    assert_eq!(
        h.sent().iter().map(|m| method_uri(m).0).collect::<Vec<_>>(),
        ["TEARDOWN", "DESCRIBE"]
    );
}

#[test]
fn udp_transport_answers_are_parsed_leniently() {
    let t = parse_udp_transport(
        "RTP/AVP/UDP;unicast;client_port=5000-5001;server_port=6000-6001;ssrc=3DE1C74B;mode=play",
    );
    assert_eq!(
        t,
        UdpTransportAnswer {
            server_port: Some((6000, 6001)),
            client_port: Some(5000),
            ssrc: Some(0x3de1c74b),
            source: None
        }
    );
    let t = parse_udp_transport("RTP/AVP;SERVER_PORT=7000;Source=\"10.0.0.9\";ssrc=0x0000ABCD");
    assert_eq!(t.server_port, Some((7000, 7001)));
    assert_eq!(t.source.as_deref(), Some("10.0.0.9"));
    assert_eq!(t.ssrc, Some(0xabcd));
    for junk in [
        "",
        ";;;",
        "server_port=0-0",
        "server_port=65535",
        "server_port=a-b;ssrc=zz;source=",
        "server_port=-;client_port==",
    ] {
        let t = parse_udp_transport(junk);
        assert_eq!((t.server_port, t.source), (None, None), "{junk}");
    }
}

#[test]
fn garbage_datagrams_never_panic() {
    let (mut h, msgs) = hik_udp_until_play(RtspTransport::Udp);
    h.input(h.at(0), &msgs[4]);
    let mut x: u32 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for i in 0..20_000u32 {
        let len = (next() % 40) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && !d.is_empty() {
            d[0] = 0x80 | (d[0] & 0x3f);
        }
        let track = (next() % 4) as usize;
        let rtcp = next() % 2 == 0;
        let port = [8218, 8219, 8220, 8221][(next() % 4) as usize];
        let at = h.at(0) + ms(u64::from(i / 10));
        h.udp(at, track, rtcp, &format!("192.168.1.64:{port}"), &d);
        h.c.handle_timeout(at);
        h.udp_sent();
    }
    assert!(h.media.iter().all(|m| m.0 < 2));
    assert!(!h.media.is_empty());
}
