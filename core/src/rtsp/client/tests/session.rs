//! A whole exchange against recorded gst-rtsp-server answers, zero-copy media, keepalive
//! basics, teardown, error statuses, timeouts and what garbage from a camera does.

use super::*;

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
    // (Unplayable video next to it would fail the stream: see mjpeg_video_fails_naming_the_codec.)
    let sdp = "v=0 \r\ns=cam \r\nm=audio 0 RTP/AVP 0 \r\na=control: trackID=5 \r\n";
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
    // Only an ONVIF metadata section: no audio or video track to set up.
    let mut h = Harness::new("rtsp://cam/x");
    h.c.handle_connected(h.at(0));
    let sdp = "v=0\r\nm=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n";
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
fn mjpeg_video_and_g726_audio_are_set_up_like_any_track() {
    // MJPEG by static payload type (no rtpmap) and G.726, which browsers cannot play: set up
    // all the same (RTSP players take them; the gateway leaves them out for browsers).
    // (Before, the MJPEG stream failed here with no SETUP, and G.726 was never set up.)
    let mut h = Harness::new("rtsp://cam/x");
    h.c.handle_connected(h.at(0));
    let sdp = "v=0\r\nm=video 0 RTP/AVP 26\r\na=control:v\r\n\
               m=audio 0 RTP/AVP 97\r\na=rtpmap:97 G726-32/8000\r\na=control:a\r\n";
    let d = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.input(h.at(0), d.as_bytes());
    assert!(h.events().is_empty());
    let m = h.sent().pop().expect("OPTIONS, DESCRIBE, SETUP");
    assert_eq!(method_uri(&m), ("SETUP", "rtsp://cam/x/v"));
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
    );
    let m = h.sent_one();
    assert_eq!(method_uri(&m), ("SETUP", "rtsp://cam/x/a"));
    h.input(
        h.at(0),
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n",
    );
    assert_eq!(method_uri(&h.sent_one()).0, "PLAY");
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 1\r\n\r\n");
    match &h.events()[..] {
        [RtspEvent::Playing { tracks }] => {
            let got: Vec<(&str, u8)> = (tracks.iter())
                .map(|t| (t.encoding.as_str(), t.payload_type))
                .collect();
            assert_eq!(got, [("JPEG", 26), ("G726-32", 97)]);
        }
        e => panic!("{e:?}"),
    }
    assert!(h.c.dropped_tracks().is_empty());
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
