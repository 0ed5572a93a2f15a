//! Keepalive method, interval and target.

use super::*;

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
