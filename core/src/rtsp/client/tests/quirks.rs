//! What real cameras get wrong: bare LF, odd Content-Base, changing session ids.

use super::*;

const CHEAP: &str = include_str!("../../testdata/quirks_lf_cheap_camera.txt");
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
