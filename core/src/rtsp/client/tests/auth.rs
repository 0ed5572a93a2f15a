//! 401 challenges: Basic, Digest (MD5, MD5-sess, SHA-256, with and without qop), stale
//! nonces, refused credentials, the seeded client nonce.

use super::*;

const DIGEST_401: &str = "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n\
    WWW-Authenticate: Basic realm=\"IP Camera(12345)\"\r\n\
    WWW-Authenticate: Digest realm=\"IP Camera(12345)\", nonce=\"c0ffee0123\", stale=\"FALSE\"\r\n\r\n";

fn unauthorized(cseq: u32) -> Vec<u8> {
    DIGEST_401.replace("{cseq}", &cseq.to_string()).into_bytes()
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

const AXIS_AUTH: &str = include_str!("../../testdata/auth_sha256_md5_basic.txt");
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

const STALE: &str = include_str!("../../testdata/auth_stale_nonce.txt");

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
