//! camgate as an RTSP server for its named streams, read by real RTSP clients: FFmpeg's
//! `ffprobe`/`ffmpeg` (Debian `ffmpeg`) and GStreamer's `rtspsrc`, over TCP-interleaved and
//! UDP unicast transport, from a GStreamer camera (`tests/rtsp_server.py`, H.264 + AAC) that
//! camgate pulls once for every player and browser.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    camgate_pulling, camgate_with, decoded_frames_in, recvonly_offer, run, temp_file, Camgate,
    GstCamera,
};

/// camgate with the camera as `[streams.cam]` and the RTSP server on an ephemeral port.
fn camgate_for(camera: &GstCamera) -> (Camgate, String) {
    camgate_with(camera, "")
}

/// An even UDP port whose successor is free too, on loopback (free when asked).
fn free_even_udp_port() -> u16 {
    loop {
        let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port.is_multiple_of(2) && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// `camgate_rtsp_connects_total` from /metrics.
fn camera_connects(cg: &Camgate) -> u64 {
    cg.metric("camgate_rtsp_connects_total")
}

/// RTSP players playing over `transport` ("tcp" or "udp") now.
fn rtsp_clients(cg: &Camgate, transport: &str) -> u64 {
    cg.metric(&format!(
        "camgate_rtsp_clients{{transport=\"{transport}\"}}"
    ))
}

/// Waits up to `within` for `cond`.
fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// Frames of each stream ffprobe decoded in its first 3 s: `codec_name,nb_read_frames` lines.
/// `transport`: its `-rtsp_transport` (for an RTSP input).
fn decoded_frames(input: &str, transport: Option<&str>) -> Vec<(String, u64)> {
    decoded_frames_in(input, transport, "%+3")
}

#[test]
fn ffmpeg_and_gstreamer_play_a_named_stream_over_tcp_on_one_camera_connection() {
    let camera = GstCamera::start(&["--video", "h264", "--audio", "aac"]);
    let (cg, url) = camgate_for(&camera);

    // ffprobe decodes 3 s of both tracks through camgate.
    let streams = decoded_frames(&url, Some("tcp"));
    let frames = |codec: &str| {
        streams
            .iter()
            .find(|(c, _)| c == codec)
            .map_or(0, |(_, n)| *n)
    };
    assert!(frames("h264") >= 30, "{streams:?}");
    assert!(frames("aac") >= 30, "{streams:?}");

    // A browser (WHEP) and ffmpeg writing an MP4 (-c copy: the camera's own bitstream) at once.
    let whep = cg.request_with(
        "POST",
        "/whep/cam",
        &[("Content-Type", "application/sdp")],
        Some(&recvonly_offer(true)),
    );
    assert_eq!(whep.status, 201, "{}", whep.body);
    let mp4 = std::env::temp_dir().join(format!("camgate-rtsp-out-{}.mp4", std::process::id()));
    let (ok, text) = run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-y",
        "-rtsp_transport",
        "tcp",
        "-i",
        &url,
        "-t",
        "3",
        "-c",
        "copy",
        mp4.to_str().unwrap(),
    ]));
    assert!(ok, "ffmpeg -c copy: {text}");
    let written = decoded_frames(mp4.to_str().unwrap(), None);
    let _ = std::fs::remove_file(&mp4);
    assert!(
        written.iter().any(|(c, n)| c == "h264" && *n >= 30)
            && written.iter().any(|(c, n)| c == "aac" && *n >= 30),
        "the MP4 plays: {written:?}"
    );

    // GStreamer's rtspsrc over TCP decodes the video (audio decoded too, then dropped).
    let launch = format!(
        "rtspsrc location={url} protocols=tcp name=s \
         s. ! rtph264depay ! h264parse ! avdec_h264 ! identity error-after=40 ! fakesink \
         s. ! decodebin ! fakesink"
    );
    let (_, text) = run(Command::new("timeout")
        .args(["20", "gst-launch-1.0"])
        .args(launch.split_whitespace()));
    // identity errors out after 40 decoded frames: the sign they arrived.
    assert!(
        text.contains("Failed after iterations as requested"),
        "rtspsrc decoded fewer than 40 frames: {text}"
    );

    assert_eq!(
        camera_connects(&cg),
        1,
        "one camera connection for ffprobe, ffmpeg, rtspsrc and the browser"
    );
    assert_eq!(cg.metric("camgate_rtsp_players_joined_total"), 3);
    assert!(cg.metric("camgate_rtsp_player_packets_out_total{transport=\"tcp\"}") > 300);
}

/// The same clients asking for UDP unicast only (`-rtsp_transport udp`, `protocols=udp`): they
/// get it, with the server's RTP/RTCP ports, and decode both tracks. Multicast gets 461.
#[test]
fn ffmpeg_and_gstreamer_play_a_named_stream_over_udp() {
    let camera = GstCamera::start(&["--video", "h264", "--audio", "aac"]);
    // The UDP pair is set (`rtsp_server_udp_port`), as for a firewall: camgate holds exactly it.
    let rtp_port = free_even_udp_port();
    let (cg, url) = camgate_with(&camera, &format!("rtsp_server_udp_port = {rtp_port}\n"));
    for port in [rtp_port, rtp_port + 1] {
        assert!(
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
            "camgate holds UDP {port}"
        );
    }

    let streams = decoded_frames_in(&url, Some("udp"), "%+#300");
    let frames = |codec: &str| {
        streams
            .iter()
            .find(|(c, _)| c == codec)
            .map_or(0, |(_, n)| *n)
    };
    assert!(frames("h264") >= 30, "{streams:?}");
    assert!(frames("aac") >= 30, "{streams:?}");

    // ffmpeg decodes 60 video frames and the audio beside them: framecrc lists each decoded
    // frame by stream index.
    let (ok, text) = run(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-rtsp_transport",
        "udp",
        "-i",
        &url,
        "-frames:v",
        "60",
        "-map",
        "0",
        "-f",
        "framecrc",
        "-",
    ]));
    assert!(ok, "ffmpeg over UDP: {text}");
    let decoded = |index: &str| text.lines().filter(|l| l.starts_with(index)).count();
    let (video, audio) = (decoded("0,"), decoded("1,"));
    assert!(
        video >= 60 && audio >= 20,
        "{video} video, {audio} audio frames"
    );

    // rtspsrc over UDP only decodes the video (audio decoded too, then dropped).
    let launch = format!(
        "rtspsrc location={url} protocols=udp name=s \
         s. ! rtph264depay ! h264parse ! avdec_h264 ! identity error-after=40 ! fakesink \
         s. ! decodebin ! fakesink"
    );
    let (_, text) = run(Command::new("timeout")
        .args(["20", "gst-launch-1.0"])
        .args(launch.split_whitespace()));
    assert!(
        text.contains("Failed after iterations as requested"),
        "rtspsrc over UDP decoded fewer than 40 frames: {text}"
    );

    let (ok, text) = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-rtsp_transport",
        "udp_multicast",
        &url,
    ]));
    assert!(!ok && text.contains("461"), "multicast: {text}");

    assert_eq!(camera_connects(&cg), 1);
    assert_eq!(cg.metric("camgate_rtsp_players_joined_total"), 4);
    let udp_out = cg.metric("camgate_rtsp_player_packets_out_total{transport=\"udp\"}");
    assert!(udp_out > 300, "{udp_out}");
    assert_eq!(
        cg.metric("camgate_rtsp_player_packets_out_total{transport=\"tcp\"}"),
        0,
        "nothing went over TCP"
    );
    // All gone (TEARDOWN or their connection closed).
    assert!(eventually(Duration::from_secs(3), || rtsp_clients(
        &cg, "udp"
    ) == 0));
}

/// An ffmpeg over UDP that stops (SIGSTOP: no more receiver reports or keepalives, its TCP
/// connection still open, as with a hung host) is timed out after `rtsp_session_timeout_secs`
/// and its session freed; while it ran, its keepalives held the session past that timeout.
#[test]
fn a_udp_player_that_goes_silent_is_timed_out() {
    let camera = GstCamera::start(&["--video", "h264"]);
    let (cg, url) = camgate_with(&camera, "rtsp_session_timeout_secs = 2\n");
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-rtsp_transport", "udp", "-i", &url])
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    let pid = ffmpeg.id().to_string();
    let playing = eventually(Duration::from_secs(10), || rtsp_clients(&cg, "udp") == 1);
    let stop = |signal: &str| {
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs")
    };
    if !playing {
        stop("-KILL");
        panic!("ffmpeg did not play over UDP");
    }
    std::thread::sleep(Duration::from_secs(5));
    let kept = rtsp_clients(&cg, "udp");
    stop("-STOP");
    let freed = eventually(Duration::from_secs(6), || rtsp_clients(&cg, "udp") == 0);
    stop("-KILL");
    let _ = ffmpeg.wait();
    assert_eq!(kept, 1, "5 s of play outlived the 2 s session timeout");
    assert!(freed, "the stopped player is still counted");
    let logs = cg.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("rtsp player closed") && l.contains("Timeout")),
        "{logs:#?}"
    );
}

#[test]
fn an_unknown_name_is_not_found() {
    let camera = GstCamera::start(&["--video", "h264"]);
    let (cg, url) = camgate_for(&camera);
    let (ok, text) = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        &url.replace("/cam", "/nope"),
    ]));
    assert!(!ok);
    assert!(text.contains("404"), "{text}");
    assert_eq!(camera_connects(&cg), 0);
}

/// camgate B pulls `rtsp://A/cam` from camgate A (its client offers UDP first, and gets it) and
/// serves it again: ffprobe decodes through both, and A pulled the camera once.
#[test]
fn a_second_camgate_pulls_from_the_first() {
    let camera = GstCamera::start(&["--video", "h264", "--audio", "pcma"]);
    let (a, a_url) = camgate_for(&camera);
    let (b, b_url) = camgate_pulling(&a_url, &format!("rtsp_out_chain_{}", camera.port()), "");
    let streams = decoded_frames(&b_url, Some("tcp"));
    // ffprobe counts 89 H.264 and 24 PCMA frames (8 packets a second) in 3 s from the camera
    // itself.
    assert!(
        streams.iter().any(|(c, n)| c == "h264" && *n >= 30)
            && streams.iter().any(|(c, n)| c == "pcm_alaw" && *n >= 20),
        "{streams:?}"
    );
    // A browser on B too: still one connection from B to A, one from A to the camera.
    let whep = b.request_with(
        "POST",
        "/whep/cam",
        &[("Content-Type", "application/sdp")],
        Some(&recvonly_offer(true)),
    );
    assert_eq!(whep.status, 201, "{}", whep.body);
    assert_eq!(camera_connects(&b), 1);
    assert_eq!(camera_connects(&a), 1);
    assert_eq!(rtsp_clients(&a, "udp"), 1, "B plays from A over UDP");
}

/// A stream with an RTSP user: ffprobe with the right credentials decodes (ffmpeg answers the
/// Digest challenge), with wrong or none gets 401; the password is in no log line.
#[test]
fn a_stream_with_a_user_takes_right_credentials_only() {
    let camera = GstCamera::start(&["--video", "h264"]);
    let config = temp_file(
        &format!("rtsp_out_users_{}.toml", camera.port()),
        &format!(
            "[streams.cam]\nuri = \"{}\"\nrtsp_users = [{{ user = \"viewer\", password = \"s3cret-pw\" }}]\n",
            camera.url
        ),
    );
    let cg = Camgate::start(&[
        "--config",
        config.to_str().unwrap(),
        "--rtsp-server",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--no-demo",
    ]);
    let addr = cg.rtsp.unwrap();
    let streams = decoded_frames(&format!("rtsp://viewer:s3cret-pw@{addr}/cam"), Some("tcp"));
    assert!(
        streams.iter().any(|(c, n)| c == "h264" && *n >= 30),
        "{streams:?}"
    );
    for url in [
        format!("rtsp://viewer:wrong@{addr}/cam"),
        format!("rtsp://{addr}/cam"),
    ] {
        let (ok, text) =
            run(Command::new("ffprobe").args(["-v", "error", "-rtsp_transport", "tcp", &url]));
        assert!(!ok && text.contains("401"), "{url}: {text}");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = cg.logs();
    assert!(!logs.is_empty());
    assert!(
        logs.iter().all(|l| !l.contains("s3cret")),
        "a log line holds the password"
    );
}

/// Writes `request` on `conn` and reads its answer (headers, and a body of `Content-Length`).
fn exchange(conn: &mut std::net::TcpStream, request: &str) -> String {
    use std::io::{Read, Write};
    conn.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let body = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if got.len() >= end + 4 + body {
                return String::from_utf8_lossy(&got[..end + 4 + body]).into_owned();
            }
        }
        let n = conn.read(&mut buf).expect("an answer");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// RTP datagrams `socket` receives within `window`.
fn datagrams_within(socket: &std::net::UdpSocket, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if socket.recv(&mut buf).is_ok() {
            n += 1;
        }
    }
    n
}

/// RFC 2326 lets a UDP session outlive its RTSP connection. A hand-written client sets up UDP
/// to its own sockets, plays, and closes its TCP connection: the RTP keeps coming and camgate
/// counts the player; a TEARDOWN naming the session on a new connection stops it. (ffmpeg and
/// GStreamer always tear down on the connection they opened.)
#[test]
fn a_udp_session_outlives_its_connection_until_a_teardown_on_a_new_one() {
    let camera = GstCamera::start(&["--video", "h264"]);
    let (cg, url) = camgate_for(&camera);
    let addr = cg.rtsp.unwrap();
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ports = (
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port(),
    );

    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let a = exchange(
        &mut conn,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert!(
        a.starts_with("RTSP/1.0 200 ") && a.contains("a=control:trackID=0"),
        "{a}"
    );
    let a = exchange(
        &mut conn,
        &format!(
            "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port={}-{}\r\n\r\n",
            ports.0, ports.1
        ),
    );
    assert!(a.starts_with("RTSP/1.0 200 "), "{a}");
    let session = a
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|s| s.split(';').next())
        .expect("a session")
        .to_owned();
    let a = exchange(
        &mut conn,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    );
    assert!(a.starts_with("RTSP/1.0 200 "), "{a}");
    assert!(
        datagrams_within(&rtp, Duration::from_secs(2)) > 10,
        "RTP while connected"
    );

    drop(conn);
    std::thread::sleep(Duration::from_millis(300));
    let after_close = datagrams_within(&rtp, Duration::from_secs(2));
    assert!(
        after_close > 10,
        "{after_close} RTP datagrams in 2 s after the connection closed"
    );
    assert_eq!(rtsp_clients(&cg, "udp"), 1);

    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let a = exchange(
        &mut conn,
        &format!("TEARDOWN {url} RTSP/1.0\r\nCSeq: 1\r\nSession: {session}\r\n\r\n"),
    );
    assert!(a.starts_with("RTSP/1.0 200 OK\r\nCSeq: 1\r\n"), "{a}");
    std::thread::sleep(Duration::from_millis(300));
    datagrams_within(&rtp, Duration::from_millis(100)); // what was on the way
    assert_eq!(
        datagrams_within(&rtp, Duration::from_secs(1)),
        0,
        "RTP after TEARDOWN"
    );
    assert_eq!(rtsp_clients(&cg, "udp"), 0);
    let logs = cg.logs();
    assert!(
        logs.iter().any(|l| l.contains("its UDP session goes on")),
        "{logs:#?}"
    );
}

/// With two workers the RTSP server is worker 0's, and a camera may be pulled by worker 1 (the
/// demo, pulled first, took worker 0). ffprobe plays it over TCP and over UDP from a mirror on
/// worker 0, decoding frames, on the camera's one connection.
#[test]
fn a_camera_another_worker_pulls_plays_on_its_one_connection() {
    let camera = GstCamera::start(&["--video", "h264", "--audio", "aac"]);
    let config = temp_file(
        &format!("rtsp_out_workers_{}.toml", camera.port()),
        &format!("[streams.cam]\nuri = \"{}\"\n", camera.url),
    );
    let cg = Camgate::start(&["--config", config.to_str().unwrap(), "--workers", "2"]);
    for uri in [cg.demo_url.as_str(), camera.url.as_str()] {
        let body = format!(r#"{{"uri":"{uri}"}}"#);
        assert_eq!(
            cg.request("POST", "/rest-api/rtsp/startup", Some(&body)).0,
            200
        );
    }
    // The REST call placed the camera on worker 1 before it answered.
    let url = format!("rtsp://{}/cam", cg.rtsp.unwrap());
    for transport in ["tcp", "udp"] {
        let streams = decoded_frames_in(&url, Some(transport), "%+#300");
        assert!(
            streams.iter().any(|(c, n)| c == "h264" && *n >= 30)
                && streams.iter().any(|(c, n)| c == "aac" && *n >= 20),
            "{transport}: {streams:?}"
        );
    }
    assert_eq!(camera_connects(&cg), 1, "one connection to the camera");
    let logs = cg.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("mirroring the camera of worker 1")),
        "{logs:#?}"
    );
}
