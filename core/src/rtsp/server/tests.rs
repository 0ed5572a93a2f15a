//! Server session tests. Time is a fixed `Instant` plus offsets. A `Pair` connects the
//! session to camgate's own RTSP client (the one that pulls cameras, and the client of a
//! chained camgate) in memory, quinn-proto style; the rest send hand-written requests as
//! ffmpeg and GStreamer write them.

use std::time::{Duration, Instant};

use super::*;
use crate::media::MediaKind;
use crate::rtsp::framing::write_interleaved;
use crate::rtsp::{RtspClient, RtspConfig, RtspEvent, RtspOutput, RtspTransport};

const SESSION: &str = "5f3a9c21d0e4b876";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn tracks() -> Vec<TrackInfo> {
    vec![
        TrackInfo {
            kind: MediaKind::Video,
            encoding: "H264".into(),
            payload_type: 96,
            clock_rate: 90000,
            channels: None,
            fmtp: Some(
                "packetization-mode=1;sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==".into(),
            ),
            control: "rtsp://10.0.0.5/Streaming/Channels/101/trackID=1".into(),
        },
        TrackInfo {
            kind: MediaKind::Audio,
            encoding: "PCMA".into(),
            payload_type: 8,
            clock_rate: 8000,
            channels: Some(1),
            fmtp: None,
            control: "rtsp://10.0.0.5/Streaming/Channels/101/trackID=2".into(),
        },
    ]
}

/// A session and what it output, sorted by kind.
struct Server {
    s: ServerSession,
    t0: Instant,
    sent: Vec<u8>,
    lookups: Vec<String>,
    plays: Vec<(String, Vec<usize>)>,
    stops: usize,
    closed: Option<CloseReason>,
    /// Sessions other requests named.
    foreign: Vec<String>,
}

impl Server {
    fn new(config: ServerConfig) -> Server {
        let t0 = Instant::now();
        Server {
            s: ServerSession::new(config, SESSION.into(), 0x1234_5678, t0),
            t0,
            sent: Vec::new(),
            lookups: Vec::new(),
            plays: Vec::new(),
            stops: 0,
            closed: None,
            foreign: Vec::new(),
        }
    }

    fn at(&self, s: u64) -> Instant {
        self.t0 + secs(s)
    }

    fn drain(&mut self) {
        while let Some(o) = self.s.poll_output() {
            match o {
                ServerOutput::Send(b) => {
                    assert!(self.closed.is_none(), "sent after Close");
                    self.sent.extend_from_slice(&b);
                }
                ServerOutput::Lookup { path } => self.lookups.push(path),
                ServerOutput::Play { path, tracks } => self.plays.push((path, tracks)),
                ServerOutput::Stop => self.stops += 1,
                ServerOutput::Close(r) => {
                    assert!(self.closed.is_none(), "closed twice");
                    self.closed = Some(r);
                }
                // As a driver that knows no other session.
                ServerOutput::Foreign { session, request } => {
                    assert_ne!(session, SESSION);
                    let b = self.s.refusal(&request);
                    self.sent.extend_from_slice(&b);
                    self.foreign.push(session);
                }
            }
        }
    }

    fn input(&mut self, at: u64, data: &[u8]) {
        let now = self.at(at);
        self.s.handle_input(now, data);
        self.drain();
    }

    /// Answers the pending look-up (which must be for `path`).
    fn found(&mut self, path: &str, r: Result<Vec<TrackInfo>, LookupError>) {
        assert_eq!(self.lookups.pop().as_deref(), Some(path));
        self.s.handle_stream(path, r);
        self.drain();
    }

    /// Answers the pending look-up with the tracks and these users.
    fn found_with_users(&mut self, path: &str, users: Vec<crate::rtsp::auth::Credentials>) {
        assert_eq!(self.lookups.pop().as_deref(), Some(path));
        self.s.handle_stream_with_users(path, Ok(tracks()), users);
        self.drain();
    }

    /// The answers written since the last call, parsed back.
    fn answers(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        Framer::new()
            .push(&std::mem::take(&mut self.sent), &mut |f| {
                if let Frame::Message(m) = f {
                    out.push(m);
                }
                true
            })
            .expect("well-formed answers");
        out
    }

    fn answer(&mut self) -> Message {
        let mut a = self.answers();
        assert_eq!(a.len(), 1, "{a:?}");
        a.remove(0)
    }
}

fn status(m: &Message) -> u16 {
    match m.start {
        StartLine::Response { status, .. } => status,
        _ => panic!("not a response: {m:?}"),
    }
}

fn req(method: &str, uri: &str, cseq: u32, extra: &str) -> Vec<u8> {
    format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: Lavf59.27.100\r\n{extra}\r\n")
        .into_bytes()
}

const URL: &str = "rtsp://127.0.0.1:8554/front";

/// ffmpeg -rtsp_transport tcp: OPTIONS, DESCRIBE, SETUP per track, PLAY, keepalive, TEARDOWN.
#[test]
fn lifecycle_over_tcp() {
    let mut s = Server::new(ServerConfig::default());
    s.input(0, &req("OPTIONS", URL, 1, ""));
    let a = s.answer();
    assert_eq!((status(&a), a.cseq()), (200, Some(1)));
    assert!(a.header("Public").unwrap().contains("DESCRIBE"));
    assert_eq!(a.header("Session"), None);

    s.input(0, &req("DESCRIBE", URL, 2, "Accept: application/sdp\r\n"));
    assert!(s.sent.is_empty(), "DESCRIBE waits for the look-up");
    s.found("front", Ok(tracks()));
    let a = s.answer();
    assert_eq!(status(&a), 200);
    assert_eq!(
        a.header("Content-Base"),
        Some("rtsp://127.0.0.1:8554/front/")
    );
    assert_eq!(a.header("Content-Type"), Some("application/sdp"));
    let p = crate::rtsp::sdp::parse(&a.body, a.header("Content-Base").unwrap()).unwrap();
    assert_eq!(p.tracks.len(), 2);
    assert_eq!(p.tracks[0].fmtp, tracks()[0].fmtp, "SPS/PPS passed through");

    for (i, t) in p.tracks.iter().enumerate() {
        let ch = 2 * i;
        let session = if i == 0 {
            String::new()
        } else {
            format!("Session: {SESSION}\r\n")
        };
        s.input(
            0,
            &req(
                "SETUP",
                &t.control,
                3 + i as u32,
                &format!(
                    "Transport: RTP/AVP/TCP;unicast;interleaved={ch}-{}\r\n{session}",
                    ch + 1
                ),
            ),
        );
        let a = s.answer();
        assert_eq!(status(&a), 200, "{a:?}");
        assert_eq!(
            a.header("Session"),
            Some(format!("{SESSION};timeout=60").as_str())
        );
        assert_eq!(
            a.header("Transport"),
            Some(
                format!(
                    "RTP/AVP/TCP;unicast;interleaved={ch}-{};ssrc=12345678",
                    ch + 1
                )
                .as_str()
            )
        );
    }
    assert_eq!(s.s.route(0), None, "no media before PLAY");

    s.input(
        1,
        &req(
            "PLAY",
            &format!("{URL}/"),
            5,
            &format!("Session: {SESSION}\r\nRange: npt=0.000-\r\n"),
        ),
    );
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.plays, vec![("front".to_owned(), vec![0, 1])]);
    assert_eq!(
        s.s.route(1),
        Some(TrackTransport::Interleaved {
            rtp_channel: 2,
            rtcp_channel: 3
        })
    );

    // Keepalive, and the client's receiver reports interleaved.
    let mut rr = Vec::new();
    write_interleaved(&mut rr, 1, &[0x81, 201, 0, 1, 0, 0, 0, 1]);
    s.input(30, &rr);
    assert!(s.sent.is_empty());
    s.input(
        31,
        &req("GET_PARAMETER", URL, 6, &format!("Session: {SESSION}\r\n")),
    );
    assert_eq!(status(&s.answer()), 200);

    s.input(
        40,
        &req("TEARDOWN", URL, 7, &format!("Session: {SESSION}\r\n")),
    );
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.stops, 1);
    assert_eq!(s.s.route(0), None);
    assert_eq!(
        s.closed, None,
        "the connection may stay open after TEARDOWN"
    );
}

/// The answers do not depend on how TCP cut the requests.
#[test]
fn requests_split_anywhere_get_the_same_answers() {
    let mut all = req("OPTIONS", URL, 1, "");
    all.extend(req("DESCRIBE", URL, 2, ""));
    all.extend(req(
        "SETUP",
        &format!("{URL}/trackID=1"),
        3,
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
    ));
    all.extend(req("PLAY", URL, 4, &format!("Session: {SESSION}\r\n")));
    let run = |cuts: &[usize]| {
        let mut s = Server::new(ServerConfig::default());
        let mut last = 0;
        for &c in cuts.iter().chain([all.len()].iter()) {
            s.input(0, &all[last..c]);
            if s.lookups.len() == 1 {
                s.found("front", Ok(tracks()));
            }
            last = c;
        }
        (s.sent, s.plays)
    };
    let whole = run(&[]);
    assert_eq!(whole.1, vec![("front".to_owned(), vec![1])]);
    for i in 0..=all.len() {
        assert_eq!(run(&[i]), whole, "split at {i}");
    }
}

/// Requests pipelined behind a look-up wait for it and are answered in order.
#[test]
fn pipelined_requests_wait_for_the_lookup() {
    let mut s = Server::new(ServerConfig::default());
    let mut all = req(
        "SETUP",
        &format!("{URL}/trackID=0"),
        1,
        "Transport: RTP/AVP/TCP;unicast\r\n",
    );
    all.extend(req("PLAY", URL, 2, &format!("Session: {SESSION}\r\n")));
    s.input(0, &all);
    assert_eq!(s.lookups, vec!["front".to_owned()]);
    assert!(s.sent.is_empty());
    s.found("front", Ok(tracks()));
    let a = s.answers();
    assert_eq!(
        a.iter().map(|m| (m.cseq(), status(m))).collect::<Vec<_>>(),
        vec![(Some(1), 200), (Some(2), 200)]
    );
    assert_eq!(
        a[0].header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=12345678")
    );
}

#[test]
fn unknown_and_unavailable_streams() {
    let mut s = Server::new(ServerConfig::default());
    s.input(0, &req("DESCRIBE", "rtsp://127.0.0.1:8554/nope", 1, ""));
    s.found("nope", Err(LookupError::NotFound));
    assert_eq!(status(&s.answer()), 404);
    s.input(0, &req("DESCRIBE", URL, 2, ""));
    s.found("front", Err(LookupError::Unavailable));
    assert_eq!(status(&s.answer()), 503);
    // A stream with no tracks cannot be played either.
    s.input(0, &req("DESCRIBE", URL, 3, ""));
    s.found("front", Ok(Vec::new()));
    assert_eq!(status(&s.answer()), 404);
    // And the next try, once the camera is up, works.
    s.input(0, &req("DESCRIBE", URL, 4, ""));
    s.found("front", Ok(tracks()));
    assert_eq!(status(&s.answer()), 200);
    // An answer for a path nobody asked for changes nothing.
    s.s.handle_stream("other", Ok(tracks()));
    s.drain();
    assert!(s.sent.is_empty());
    for uri in [
        "*",
        "rtsp://127.0.0.1:8554",
        "rtsp://127.0.0.1:8554/",
        "front",
    ] {
        s.input(0, &req("DESCRIBE", uri, 5, ""));
        assert_eq!(status(&s.answer()), 404, "{uri}");
    }
    // A track that does not exist.
    s.input(
        0,
        &req(
            "SETUP",
            &format!("{URL}/trackID=7"),
            6,
            "Transport: RTP/AVP/TCP;unicast\r\n",
        ),
    );
    assert_eq!(status(&s.answer()), 404);
    assert!(s.lookups.is_empty());
}

/// ffmpeg's default asks for UDP first and retries over TCP after 461.
#[test]
fn udp_offer_without_udp_gets_461_then_tcp_works() {
    let mut s = Server::new(ServerConfig::default());
    s.input(0, &req("DESCRIBE", URL, 1, ""));
    s.found("front", Ok(tracks()));
    let _ = s.answers();
    let track0 = format!("{URL}/trackID=0");
    s.input(
        0,
        &req(
            "SETUP",
            &track0,
            2,
            "Transport: RTP/AVP/UDP;unicast;client_port=5000-5001\r\n",
        ),
    );
    let a = s.answer();
    assert_eq!(status(&a), 461);
    assert_eq!(a.header("Session"), None);
    s.input(
        0,
        &req(
            "SETUP",
            &track0,
            3,
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    );
    assert_eq!(status(&s.answer()), 200);
}

#[test]
fn udp_setup_answers_the_server_ports_and_one_transport_per_session() {
    let mut s = Server::new(ServerConfig {
        udp_server_ports: Some((8000, 8001)),
        ..ServerConfig::default()
    });
    s.input(
        0,
        &req(
            "SETUP",
            &format!("{URL}/trackID=0"),
            1,
            "Transport: RTP/AVP;unicast;client_port=5000-5001\r\n",
        ),
    );
    s.found("front", Ok(tracks()));
    let a = s.answer();
    assert_eq!(status(&a), 200);
    assert_eq!(
        a.header("Transport"),
        Some("RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=12345678")
    );
    // The second track over TCP would split the session: refused.
    s.input(
        0,
        &req(
            "SETUP",
            &format!("{URL}/trackID=1"),
            2,
            &format!("Transport: RTP/AVP/TCP;unicast\r\nSession: {SESSION}\r\n"),
        ),
    );
    assert_eq!(status(&s.answer()), 461);
    s.input(0, &req("PLAY", URL, 3, &format!("Session: {SESSION}\r\n")));
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(
        s.s.route(0),
        Some(TrackTransport::Udp {
            rtp_port: 5000,
            rtcp_port: 5001
        })
    );
    assert_eq!(s.s.route(1), None);
    assert_eq!(s.plays, vec![("front".to_owned(), vec![0])]);
}

/// Every track carries the session's SSRC: two tracks on one client port could not be told
/// apart (nor could the driver tell whose receiver report came in). Multicast is not served.
#[test]
fn udp_tracks_need_client_ports_of_their_own_and_multicast_gets_461() {
    let mut s = Server::new(ServerConfig {
        udp_server_ports: Some((8000, 8001)),
        ..ServerConfig::default()
    });
    let setup = |s: &mut Server, track: usize, cseq: u32, transport: &str| {
        let session = if cseq > 2 {
            format!("Session: {SESSION}\r\n")
        } else {
            String::new()
        };
        s.input(
            0,
            &req(
                "SETUP",
                &format!("{URL}/trackID={track}"),
                cseq,
                &format!("Transport: {transport}\r\n{session}"),
            ),
        );
        s.answer()
    };
    s.input(0, &req("DESCRIBE", URL, 1, ""));
    s.found("front", Ok(tracks()));
    assert_eq!(status(&s.answer()), 200);
    // ffmpeg's `-rtsp_transport udp_multicast`, and RFC 2326's default delivery.
    assert_eq!(status(&setup(&mut s, 0, 2, "RTP/AVP;multicast")), 461);
    assert_eq!(
        status(&setup(
            &mut s,
            0,
            2,
            "RTP/AVP;multicast;client_port=5000-5001"
        )),
        461
    );
    let a = setup(&mut s, 0, 2, "RTP/AVP/UDP;unicast;client_port=5000-5001");
    assert_eq!(status(&a), 200);
    assert!(a
        .header("Transport")
        .is_some_and(|t| t.contains("client_port=5000-5001;server_port=8000-8001")));
    for taken in ["5000-5001", "5001-5002", "4999-5000", "5000"] {
        let t = format!("RTP/AVP;unicast;client_port={taken}");
        assert_eq!(status(&setup(&mut s, 1, 3, &t)), 461, "{taken}");
    }
    // Set up again on its own ports: fine.
    let t = "RTP/AVP;unicast;client_port=5000-5001";
    assert_eq!(status(&setup(&mut s, 0, 4, t)), 200);
    let t = "RTP/AVP;unicast;client_port=5002-5003";
    assert_eq!(status(&setup(&mut s, 1, 5, t)), 200);
    s.input(0, &req("PLAY", URL, 6, &format!("Session: {SESSION}\r\n")));
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(
        (s.s.route(0), s.s.route(1)),
        (
            Some(TrackTransport::Udp {
                rtp_port: 5000,
                rtcp_port: 5001
            }),
            Some(TrackTransport::Udp {
                rtp_port: 5002,
                rtcp_port: 5003
            })
        )
    );
}

#[test]
fn session_times_out_without_input() {
    let mut s = Server::new(ServerConfig::default());
    assert_eq!(
        s.s.poll_timeout(),
        Some(s.at(60)),
        "an idle connection times out too"
    );
    s.input(30, &req("OPTIONS", URL, 1, ""));
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.s.poll_timeout(), Some(s.at(90)));
    // RTCP over UDP, which the driver matched to this session.
    let at = s.at(50);
    s.s.handle_keepalive(at);
    assert_eq!(s.s.poll_timeout(), Some(s.at(110)));
    let at = s.at(109);
    s.s.handle_timeout(at);
    s.drain();
    assert_eq!(s.closed, None);
    let at = s.at(110);
    s.s.handle_timeout(at);
    s.drain();
    assert_eq!(s.closed, Some(CloseReason::Timeout));
    assert_eq!(s.s.poll_timeout(), None);
    assert!(s.s.is_closed());
    // Nothing more after Close.
    s.input(111, &req("OPTIONS", URL, 2, ""));
    assert!(s.sent.is_empty());
}

#[test]
fn wrong_states_and_requests() {
    let mut s = Server::new(ServerConfig::default());
    // No CSeq: 400, without one.
    s.input(0, b"OPTIONS * RTSP/1.0\r\n\r\n");
    let a = s.answer();
    assert_eq!((status(&a), a.cseq()), (400, None));
    // PLAY before SETUP.
    s.input(0, &req("PLAY", URL, 1, ""));
    assert_eq!(status(&s.answer()), 455);
    // Any session id before SETUP made one.
    s.input(
        0,
        &req("GET_PARAMETER", URL, 2, &format!("Session: {SESSION}\r\n")),
    );
    assert_eq!(status(&s.answer()), 454);
    s.input(0, &req("ANNOUNCE", URL, 3, ""));
    let a = s.answer();
    assert_eq!(status(&a), 501);
    assert!(a.header("Public").is_some());
    // A session set up...
    s.input(
        0,
        &req(
            "SETUP",
            &format!("{URL}/trackID=1"),
            4,
            "Transport: RTP/AVP/TCP;unicast\r\n",
        ),
    );
    s.found("front", Ok(tracks()));
    assert_eq!(status(&s.answer()), 200);
    // ...refuses another id, another stream, and PAUSE.
    s.input(0, &req("PLAY", URL, 5, "Session: 0000\r\n"));
    assert_eq!(status(&s.answer()), 454);
    s.input(
        0,
        &req(
            "SETUP",
            "rtsp://127.0.0.1:8554/back/trackID=0",
            6,
            "Transport: RTP/AVP/TCP;unicast\r\n",
        ),
    );
    assert_eq!(status(&s.answer()), 455);
    assert!(s.lookups.is_empty());
    s.input(0, &req("PLAY", URL, 7, &format!("Session: {SESSION}\r\n")));
    assert_eq!(status(&s.answer()), 200);
    s.input(0, &req("PAUSE", URL, 8, &format!("Session: {SESSION}\r\n")));
    assert_eq!(status(&s.answer()), 455);
    assert!(s.s.route(1).is_some(), "PAUSE refused: still playing");
    s.input(
        0,
        &req(
            "SETUP",
            &format!("{URL}/trackID=0"),
            9,
            &format!("Transport: RTP/AVP/TCP;unicast\r\nSession: {SESSION}\r\n"),
        ),
    );
    assert_eq!(status(&s.answer()), 455, "no SETUP while playing");
    // A second PLAY is answered but starts nothing new.
    s.input(0, &req("PLAY", URL, 10, &format!("Session: {SESSION}\r\n")));
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.plays.len(), 1);
}

#[test]
fn garbage_closes_after_answering_what_came_before() {
    let mut s = Server::new(ServerConfig::default());
    let mut b = req("OPTIONS", URL, 1, "");
    b.extend_from_slice(b"\x16\x03\x01\x02\x00 TLS hello on the plain port");
    s.input(0, &b);
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.closed, Some(CloseReason::Protocol));
}

#[test]
fn too_many_pipelined_requests_close() {
    let mut s = Server::new(ServerConfig::default());
    let mut b = Vec::new();
    for i in 0..40 {
        b.extend(req("DESCRIBE", URL, i, ""));
    }
    s.input(0, &b);
    assert_eq!(s.closed, Some(CloseReason::Protocol));
    assert_eq!(s.lookups.len(), 1);
}

#[test]
fn credentials_in_the_url_are_not_echoed() {
    let mut s = Server::new(ServerConfig::default());
    s.input(
        0,
        &req("DESCRIBE", "rtsp://admin:hunter2@box:8554/front?x=1", 1, ""),
    );
    s.found("front", Ok(tracks()));
    let a = s.answer();
    assert_eq!(a.header("Content-Base"), Some("rtsp://box:8554/front/"));
    assert!(!String::from_utf8_lossy(&a.body).contains("hunter2"));
    // A `/` left unescaped in the password (found by the rtsp_server fuzz target).
    s.input(
        0,
        &req("DESCRIBE", "rtsp://admin:hun/ter2@box:8554/front", 2, ""),
    );
    let a = s.answer();
    assert_eq!(
        (status(&a), a.header("Content-Base")),
        (200, Some("rtsp://box:8554/front/"))
    );
}

#[test]
fn nested_paths_and_relative_uris() {
    for (uri, path, track) in [
        ("rtsp://h/a/b", "a/b", None),
        ("rtsp://h/a/b/", "a/b", None),
        ("rtsp://h/a/b/trackID=3", "a/b", Some(3)),
        ("rtsp://[::1]:8554/front/trackID=0", "front", Some(0)),
        ("/front/trackID=1", "front", Some(1)),
    ] {
        let t = Target::parse(uri).unwrap();
        assert_eq!((t.path.as_str(), t.track), (path, track), "{uri}");
    }
    assert_eq!(Target::parse("rtsp://h/front/trackID=x"), None);
    assert_eq!(Target::parse("rtsp://h/trackID=0"), None);
}

// ---------------------------------------------------------------------------------------------
// camgate's own RTSP client against the session, in memory.

/// One client connection to one server session, bytes carried both ways by `step`.
struct Pair {
    server: Server,
    client: RtspClient,
    now: Instant,
    events: Vec<RtspEvent>,
    media: Vec<(usize, bool, Vec<u8>)>,
    to_server: Vec<u8>,
}

impl Pair {
    fn new(url: &str) -> Pair {
        let server = Server::new(ServerConfig::default());
        let now = server.t0;
        let config = RtspConfig {
            transport: RtspTransport::Tcp,
            ..RtspConfig::default()
        };
        let mut client = RtspClient::new(url, config, now).unwrap();
        client.handle_connected(now);
        Pair {
            server,
            client,
            now,
            events: Vec::new(),
            media: Vec::new(),
            to_server: Vec::new(),
        }
    }

    fn drain_client(&mut self) {
        while let Some(o) = self.client.poll_output() {
            match o {
                RtspOutput::Transmit(b) => self.to_server.extend_from_slice(&b),
                RtspOutput::Event(e) => self.events.push(e),
                o => panic!("unexpected over TCP: {o:?}"),
            }
        }
    }

    /// Carries bytes until neither side has anything to say; the server's look-ups are
    /// answered with `tracks`.
    fn drive(&mut self) {
        for _ in 0..20 {
            self.drain_client();
            let up = std::mem::take(&mut self.to_server);
            if !up.is_empty() {
                self.server.s.handle_input(self.now, &up);
                self.server.drain();
            }
            while let Some(path) = self.server.lookups.pop() {
                self.server.s.handle_stream(&path, Ok(tracks()));
                self.server.drain();
            }
            let down = std::mem::take(&mut self.server.sent);
            if up.is_empty() && down.is_empty() {
                return;
            }
            self.deliver(&down);
        }
        panic!("no quiescence");
    }

    fn deliver(&mut self, down: &[u8]) {
        let media = self.client.handle_input(self.now, down);
        self.media
            .extend(media.map(|p| (p.track, p.rtcp, p.data.to_vec())));
    }

    /// The gateway's job after `Play`: each packet to the track's route.
    fn send_media(&mut self, track: usize, packet: &[u8]) {
        let mut out = Vec::new();
        match self.server.s.route(track) {
            Some(TrackTransport::Interleaved { rtp_channel, .. }) => {
                write_interleaved(&mut out, rtp_channel, packet)
            }
            r => panic!("route {r:?}"),
        }
        self.deliver(&out);
    }
}

fn rtp(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x80,
        pt,
        (seq >> 8) as u8,
        seq as u8,
        0,
        0,
        0,
        9,
        0x12,
        0x34,
        0x56,
        0x78,
    ];
    p.extend_from_slice(payload);
    p
}

#[test]
fn camgate_client_plays_from_the_session() {
    let mut p = Pair::new("rtsp://127.0.0.1:8554/front");
    p.drive();
    let playing = p.events.iter().find_map(|e| match e {
        RtspEvent::Playing { tracks } => Some(tracks.clone()),
        _ => None,
    });
    let got = playing.unwrap_or_else(|| panic!("not playing: {:?}", p.events));
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(tracks()) {
        assert_eq!(
            (&g.encoding, g.payload_type, &g.fmtp),
            (&w.encoding, w.payload_type, &w.fmtp)
        );
    }
    assert_eq!(p.server.plays, vec![("front".to_owned(), vec![0, 1])]);
    // The client's tracks are in SDP order; so are ours: packets arrive on the right track.
    let video = rtp(96, 1, &[0x65, 1, 2, 3]);
    let audio = rtp(8, 7, &[0xd5; 160]);
    p.send_media(0, &video);
    p.send_media(1, &audio);
    assert_eq!(p.media, vec![(0, false, video), (1, false, audio)]);
    // The client's keepalives (GET_PARAMETER every 30 s) keep the session open well past its
    // timeout.
    for s in (5..=300).step_by(5) {
        p.now = p.server.t0 + secs(s);
        // Media keeps the client's no-data timer quiet (the session's timer ignores it).
        p.send_media(0, &rtp(96, s as u16, &[0x41, 0]));
        p.client.handle_timeout(p.now);
        p.server.s.handle_timeout(p.now);
        p.server.drain();
        p.drive();
    }
    assert_eq!(p.server.closed, None);
    assert!(
        !p.events.iter().any(|e| matches!(e, RtspEvent::Failed(_))),
        "{:?}",
        p.events
    );
    // And its TEARDOWN ends it.
    p.client.teardown(p.now);
    p.drive();
    assert_eq!(p.server.stops, 1);
    assert!(p.events.contains(&RtspEvent::Closed), "{:?}", p.events);
}

// ---------------------------------------------------------------------------------------------
// Access

fn admin() -> Vec<crate::rtsp::auth::Credentials> {
    vec![crate::rtsp::auth::Credentials::new(
        "admin".into(),
        "pa:ss/w@rd".into(),
    )]
}

/// camgate's client with right, wrong and no credentials against a stream with a user.
#[test]
fn a_stream_with_users_asks_for_digest_and_takes_only_theirs() {
    for (userinfo, plays) in [
        ("admin:pa%3Ass%2Fw%40rd@", true),
        ("admin:nope@", false),
        ("", false),
    ] {
        let mut p = Pair::new(&format!("rtsp://{userinfo}127.0.0.1:8554/front"));
        // Answer the look-up with the user before the generic `drive` would.
        p.drain_client();
        let up = std::mem::take(&mut p.to_server);
        p.server.s.handle_input(p.now, &up);
        p.server.drain();
        let down = std::mem::take(&mut p.server.sent);
        p.deliver(&down); // OPTIONS answered
        p.drain_client();
        let up = std::mem::take(&mut p.to_server);
        p.server.s.handle_input(p.now, &up);
        p.server.drain();
        let path = p
            .server
            .lookups
            .pop()
            .expect("DESCRIBE looks the stream up");
        p.server
            .s
            .handle_stream_with_users(&path, Ok(tracks()), admin());
        p.server.drain();
        p.drive();
        let playing = p
            .events
            .iter()
            .any(|e| matches!(e, RtspEvent::Playing { .. }));
        assert_eq!(playing, plays, "{userinfo}: {:?}", p.events);
        if !plays {
            assert!(
                p.events
                    .iter()
                    .any(|e| matches!(e, RtspEvent::Failed(crate::rtsp::RtspError::Unauthorized))),
                "{:?}",
                p.events
            );
            assert!(p.server.plays.is_empty());
        } else {
            assert_eq!(p.server.plays.len(), 1);
        }
    }
}

#[test]
fn every_request_on_a_protected_stream_needs_credentials() {
    let mut s = Server::new(ServerConfig::default());
    s.input(0, &req("DESCRIBE", URL, 1, ""));
    s.found_with_users("front", admin());
    let a = s.answer();
    assert_eq!(status(&a), 401);
    let challenges: Vec<&str> = a.headers_named("WWW-Authenticate").collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].starts_with("Digest realm=\"camgate\", nonce=\""));
    assert!(
        !challenges[0].contains(SESSION),
        "the nonce does not give the session id away"
    );
    // Basic works too, on every request.
    let basic = "Authorization: Basic YWRtaW46cGE6c3Mvd0ByZA==\r\n"; // admin:pa:ss/w@rd
    s.input(0, &req("DESCRIBE", URL, 2, basic));
    assert_eq!(status(&s.answer()), 200);
    let track = format!("{URL}/trackID=0");
    s.input(
        0,
        &req("SETUP", &track, 3, "Transport: RTP/AVP/TCP;unicast\r\n"),
    );
    assert_eq!(status(&s.answer()), 401);
    s.input(
        0,
        &req(
            "SETUP",
            &track,
            4,
            &format!("Transport: RTP/AVP/TCP;unicast\r\n{basic}"),
        ),
    );
    assert_eq!(status(&s.answer()), 200);
    s.input(0, &req("PLAY", URL, 5, &format!("Session: {SESSION}\r\n")));
    assert_eq!(status(&s.answer()), 401);
    assert!(s.plays.is_empty());
    s.input(
        0,
        &req("PLAY", URL, 6, &format!("Session: {SESSION}\r\n{basic}")),
    );
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.plays.len(), 1);
}

// Sessions named on other connections

/// A UDP session set up and playing on `s`.
fn playing_over_udp(users: Vec<crate::rtsp::auth::Credentials>) -> Server {
    let mut s = Server::new(ServerConfig {
        udp_server_ports: Some((8000, 8001)),
        session_timeout: secs(60),
        ..ServerConfig::default()
    });
    s.input(
        0,
        &req(
            "SETUP",
            &format!("{URL}/trackID=0"),
            1,
            "Transport: RTP/AVP;unicast;client_port=5000-5001\r\n",
        ),
    );
    s.found_with_users("front", users.clone());
    if !users.is_empty() {
        assert_eq!(status(&s.answer()), 401);
        s.input(0, &req("SETUP", &format!("{URL}/trackID=0"), 2,
            "Transport: RTP/AVP;unicast;client_port=5000-5001\r\nAuthorization: Basic YWRtaW46cGE6c3Mvd0ByZA==\r\n"));
    }
    assert_eq!(status(&s.answer()), 200);
    let auth = if users.is_empty() {
        ""
    } else {
        "Authorization: Basic YWRtaW46cGE6c3Mvd0ByZA==\r\n"
    };
    s.input(
        0,
        &req("PLAY", URL, 3, &format!("Session: {SESSION}\r\n{auth}")),
    );
    assert_eq!(status(&s.answer()), 200);
    assert!(s.s.is_playing());
    s
}

/// What a fresh connection's session makes of `request`: the `Foreign` output it gives.
fn foreign(request: &[u8]) -> Message {
    let t0 = Instant::now();
    let mut other = ServerSession::new(ServerConfig::default(), "0fe1d2c3b4a59687".into(), 1, t0);
    other.handle_input(t0, request);
    match other.poll_output() {
        Some(ServerOutput::Foreign { session, request }) => {
            assert_eq!(session, SESSION);
            assert!(other.poll_output().is_none(), "nothing answered by itself");
            request
        }
        o => panic!("{o:?}"),
    }
}

/// RFC 2326: a session is its id, not its connection. A request naming another session is the
/// driver's to route; the session it names answers it (keepalive, TEARDOWN) for writing on the
/// connection it came on, and only requests naming it.
#[test]
fn a_session_answers_requests_naming_it_from_another_connection() {
    let mut s = playing_over_udp(Vec::new());
    // Pipelined behind the foreign request, an OPTIONS of the new connection's own: the
    // Foreign output comes first, so the driver can answer in order.
    let t0 = Instant::now();
    let mut other = ServerSession::new(ServerConfig::default(), "0fe1d2c3b4a59687".into(), 1, t0);
    let mut two = req("GET_PARAMETER", URL, 1, &format!("Session: {SESSION}\r\n"));
    two.extend(req("OPTIONS", URL, 2, ""));
    other.handle_input(t0, &two);
    assert!(matches!(
        other.poll_output(),
        Some(ServerOutput::Foreign { .. })
    ));
    assert!(
        matches!(other.poll_output(), Some(ServerOutput::Send(b)) if b.starts_with(b"RTSP/1.0 200"))
    );

    let keepalive = foreign(&req(
        "GET_PARAMETER",
        URL,
        7,
        &format!("Session: {SESSION}\r\n"),
    ));
    let at = s.at(50);
    s.s.handle_foreign(at, keepalive);
    s.drain();
    let a = s.answer();
    assert_eq!((status(&a), a.cseq()), (200, Some(7)));
    assert_eq!(
        a.header("Session"),
        Some(format!("{SESSION};timeout=60").as_str())
    );
    assert_eq!(s.s.poll_timeout(), Some(s.at(110)), "kept alive");

    // A request naming yet another session is not this one's: ignored (no loop).
    let at = s.at(51);
    let mut elsewhere = foreign(&req("TEARDOWN", URL, 8, &format!("Session: {SESSION}\r\n")));
    for (name, value) in &mut elsewhere.headers {
        if name == "Session" {
            *value = "0000".into();
        }
    }
    s.s.handle_foreign(at, elsewhere);
    s.drain();
    assert!(s.sent.is_empty() && s.stops == 0);

    let at = s.at(52);
    s.s.handle_foreign(
        at,
        foreign(&req("TEARDOWN", URL, 9, &format!("Session: {SESSION}\r\n"))),
    );
    s.drain();
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.stops, 1);
    assert!(!s.s.is_playing());
    assert_eq!(s.s.route(0), None);

    // The 454 a driver writes for an unknown session carries the request's CSeq only.
    let refusal = s.s.refusal(&foreign(&req(
        "TEARDOWN",
        URL,
        10,
        &format!("Session: {SESSION}\r\n"),
    )));
    let text = String::from_utf8(refusal).unwrap();
    assert!(
        text.starts_with("RTSP/1.0 454 Session Not Found\r\nCSeq: 10\r\n"),
        "{text}"
    );
    assert!(!text.contains("Session:"), "{text}");
}

/// A protected stream's session wants the stream's credentials on a foreign TEARDOWN too.
#[test]
fn a_foreign_teardown_of_a_protected_stream_needs_credentials() {
    let mut s = playing_over_udp(admin());
    let at = s.at(5);
    s.s.handle_foreign(
        at,
        foreign(&req("TEARDOWN", URL, 8, &format!("Session: {SESSION}\r\n"))),
    );
    s.drain();
    assert_eq!(status(&s.answer()), 401);
    assert_eq!(s.stops, 0);
    assert!(s.s.is_playing());
    let with = format!("Session: {SESSION}\r\nAuthorization: Basic YWRtaW46cGE6c3Mvd0ByZA==\r\n");
    s.s.handle_foreign(at, foreign(&req("TEARDOWN", URL, 9, &with)));
    s.drain();
    assert_eq!(status(&s.answer()), 200);
    assert_eq!(s.stops, 1);
}
