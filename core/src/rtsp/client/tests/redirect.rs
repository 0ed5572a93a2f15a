//! 3xx answers to OPTIONS and DESCRIBE, followed only when asked.

use super::*;

const REDIRECT: &str = include_str!("../../testdata/redirect_302.txt");

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
            port: 8554,
            tls: false
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
                port: 10554,
                tls: false
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
            port: 5540,
            tls: false
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
    for location in ["http://cam/x", "rtspu://cam/x", "file:///etc/passwd"] {
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

#[test]
fn rtsps_redirects_stay_on_tls() {
    let mut h = Harness::with_config("rtsps://a:b@cam/live", follow());
    h.c.handle_connected(h.at(0));
    h.input(h.at(0), b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    h.input(h.at(0), &redirect_answer(2, "302 Found", "/live/ch2"));
    assert_eq!(
        h.redirect(),
        Some(Redirect {
            host: "cam".into(),
            port: 322,
            tls: true
        })
    );
    h.c.handle_connected(h.at(1));
    let options = h.sent().pop().unwrap();
    let cseq = options.header("CSeq").unwrap().parse().unwrap();
    h.input(
        h.at(1),
        &redirect_answer(cseq, "302 Found", "rtsp://cam/live/ch2"),
    );
    assert_eq!(h.redirect(), None);
    let events = h.events().iter().map(ev_string).collect::<Vec<_>>();
    assert!(
        events
            .iter()
            .any(|e| e.contains("redirect from rtsps:// to rtsp:// refused")),
        "{events:?}"
    );
}
