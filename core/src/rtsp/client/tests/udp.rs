//! Media over UDP: ports, punch packets, reordering, receiver reports, early media, `Auto`
//! fallbacks in both directions.

use super::*;

const VLC_UDP: &str = include_str!("../../testdata/vlc_udp.txt");
const HIK_UDP: &str = include_str!("../../testdata/udp_hikvision.txt");
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

#[test]
fn rtsps_never_asks_for_udp_whatever_the_transport_setting() {
    // Plain UDP media next to a TLS connection would bypass TLS: rtsps is TCP-interleaved.
    for transport in [RtspTransport::Auto, RtspTransport::Udp] {
        let url = "rtsps://192.168.1.64:554/Streaming/Channels/101";
        let mut h = Harness::with_config(url, with_transport(transport));
        let msgs = script(HIK_UDP, &[("c1", "50000-50001"), ("c2", "50002-50003")]);
        let now = h.at(0);
        h.c.handle_connected(now);
        h.sent_one();
        h.input(now, &msgs[0]);
        h.sent_one();
        h.input(now, &msgs[1]);
        assert!(h.udp_requests().is_empty(), "{transport:?}");
        let m = h.sent_one();
        assert_eq!(method_uri(&m).0, "SETUP");
        assert_eq!(
            m.header("Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1"),
            "{transport:?}"
        );
    }
}
