//! A track SETUP refuses is dropped and the others play.

use super::*;

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
