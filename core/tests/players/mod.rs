//! RTSP players beyond one connection on the camera's worker: players of a camera another
//! worker pulls (through a mirror), and UDP sessions that outlive their RTSP connection.

use super::*;

const CAM: &str = "rtsp://127.0.0.1:8554/cam";

impl Harness {
    /// Two workers with the named stream `cam` (the RTSP server is worker 0's, as in the
    /// server), spreading a camera's browsers past `margin`; worker 0 already pulls another
    /// camera, so `cam` goes to worker 1.
    fn with_cam_on_worker_1(margin: usize) -> Self {
        Self::with_cam_on_worker_1_of(margin, named_cam)
    }

    /// `with_cam_on_worker_1`, each worker's other settings from `base`.
    fn with_cam_on_worker_1_of(margin: usize, base: fn() -> GatewayConfig) -> Self {
        let placements = camgate_io::workers::placements(2);
        let config = |w: usize| GatewayConfig {
            dtls_cert: test_certificate(),
            candidates: vec![SocketAddr::from(([127, 0, 0, 1], 20000 + w as u16))],
            placement: Some(placements[w].clone()),
            viewer_spread_margin: margin,
            ..base()
        };
        let mut h = Self::with_config(config(0));
        h.others = vec![Gateway::new(config(1))];
        let busy = "rtsp://127.0.0.1:8554/elsewhere";
        assert_eq!(placements[0].with(|w| w.place(busy, busy, 10)), Ok(0));
        h
    }

    /// The camera sends frames `frames` (an IDR every 10th), a sender report after frame
    /// `report_after`; its video packets as it wrote them, by frame.
    pub(crate) fn camera_frames_kept(
        &mut self,
        frames: std::ops::Range<u32>,
        report_after: Option<u32>,
    ) -> Vec<Vec<Vec<u8>>> {
        let mut sent = Vec::new();
        for frame in frames {
            let nals = if frame % 10 == 0 {
                vec![nal(5, 4000)]
            } else {
                vec![nal(1, 600)]
            };
            self.camera.send_frame(frame * 3600, &nals);
            sent.push(camera_packets(&self.camera.to_gateway));
            self.run_for(Duration::from_millis(40));
            if report_after == Some(frame) {
                self.camera
                    .send_sender_report(1, 3_900_000_000.5, frame * 3600);
            }
        }
        sent
    }

    /// Player `p`'s connection closes without TEARDOWN (its process stopped reading RTSP, or
    /// a proxy cut it); it goes on receiving (and reporting) over UDP.
    fn close_player_connection(&mut self, p: usize) {
        let (conn, now) = (self.players[p].conn, self.now);
        self.players[p].sends_requests = false;
        self.players[p].reading = false;
        self.gateway.handle_player_closed(conn, now);
    }

    /// A new connection `conn` from `peer` sends `request`; its answer (the connection then
    /// closes).
    fn request_on_new_connection(&mut self, conn: usize, peer: &str, request: &str) -> String {
        let (conn, now) = (ConnId(conn), self.now);
        self.gateway
            .handle_player_opened(conn, peer.parse().unwrap(), now);
        self.gateway
            .handle_player_data(conn, now, request.as_bytes());
        let answer = self.gateway.player_pending(conn).to_vec();
        self.gateway.player_written(conn, answer.len());
        self.gateway.handle_player_closed(conn, now);
        String::from_utf8(answer).unwrap()
    }
}

/// The first packets of each frame from `from` on, concatenated.
fn packets_from(sent: &[Vec<Vec<u8>>], from: usize) -> Vec<Vec<u8>> {
    sent[from..].concat()
}

/// Received packets match the camera's: payload, marker and type, timestamp; sequence numbers
/// continuous.
fn assert_camera_packets(got: &[(usize, Vec<u8>)], want: &[Vec<u8>]) {
    assert_eq!(got.len(), want.len(), "every camera packet");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.0, &g.1[12..], &g.1[..2], &g.1[4..8]),
            (0, &w[12..], &w[..2], &w[4..8])
        );
    }
    let seqs: Vec<u16> = got
        .iter()
        .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
}

/// The RTSP server is worker 0's; a browser made worker 1 pull the camera. A player of it on
/// worker 0 plays from a mirror there on the same camera connection: at once, from the GOP
/// worker 1 keeps, then every camera packet as it came, and its sender reports. A second player
/// starts at once on the mirror's copy of the GOP. When both leave, the mirror goes; the camera
/// stays for the browser. (Before, worker 0 opened a second camera connection for the player;
/// then the first player waited for the camera's next keyframe.)
#[test]
fn a_player_plays_a_camera_another_worker_pulls_on_its_one_connection() {
    let mut h = Harness::with_cam_on_worker_1(GatewayConfig::default().viewer_spread_margin);
    let b = h.play(CAM);
    h.run_for(Duration::from_millis(300));
    let before = h.camera_frames_kept(0..13, None);
    assert_eq!((h.connects, h.camera_worker), (1, 1));

    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert!(
        matches!(h.players[p].events.first(), Some(RtspEvent::Playing { tracks }) if tracks[0].encoding == "H264"),
        "{:?}",
        h.players[p].events
    );
    let sent = h.camera_frames_kept(13..45, Some(22));
    assert_eq!(
        h.connects, 1,
        "one camera connection for the browser and the player"
    );
    // It started on frame 10's keyframe, the GOP worker 1 had when the player came.
    let want = [packets_from(&before, 10), packets_from(&sent, 0)].concat();
    assert_camera_packets(&h.players[p].media, &want);
    let srs: Vec<_> = (h.players[p].rtcp.iter())
        .filter(|(t, d)| *t == 0 && d[1] == 200)
        .collect();
    assert_eq!(srs.len(), 1, "the camera's sender report");
    let frame22 = (22 * 3600u32)
        .wrapping_add(h.camera.time_base)
        .to_be_bytes();
    let got22 = (h.players[p].media.iter())
        .find(|(_, d)| d[4..8] == frame22)
        .unwrap();
    assert_eq!(
        (&srs[0].1[16..20], &srs[0].1[4..8]),
        (&got22.1[4..8], &got22.1[8..12])
    );
    assert_eq!(
        h.gateway.local_stats().camera_packets_in,
        0,
        "worker 0 pulls nothing"
    );
    assert_eq!(
        h.gateway.local_stats().player_packets_out,
        h.players[p].media.len() as u64
    );
    assert!(h.browsers[b].frames.len() >= 40);

    // A late player: frames 40..=44 at once, from the mirror's GOP.
    let late = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert_camera_packets(&h.players[late].media, &packets_from(&sent, 40 - 13));

    // Steady state (buffers grown): per camera packet, the relay's payload and one shared copy
    // for the mirror's players; nothing per player.
    for n in 45..200 {
        h.steady_frame(n);
    }
    let (ingest0, got0) = (h.ingest_allocs, h.players[late].media.len());
    for n in 200..300 {
        h.steady_frame(n);
    }
    assert_eq!(h.players[late].media.len() - got0, 100);
    let (early, late_n) = (h.players[p].media.len(), h.players[late].media.len());
    let ahead = before[10..].concat().len() + sent[..40 - 13].concat().len();
    assert_eq!(early - late_n, ahead);
    assert_eq!(
        h.ingest_allocs - ingest0,
        200,
        "allocations taking 100 camera packets in, both workers"
    );

    for q in [p, late] {
        h.players[q].client.teardown(h.now);
    }
    h.run_for(Duration::from_millis(100));
    assert_eq!(
        h.gateway.resident().streams,
        0,
        "the mirror went with its players"
    );
    let before = h.browsers[b].frames.len();
    h.camera_frames(45..50);
    assert!(!h.rtsp_closed);
    assert!(h.browsers[b].frames.len() >= before + 5);
}

/// 300 UDP players on worker 0 of a camera worker 1 pulls, and a slice of 59 camera packets
/// (a 60 kB keyframe and P-frames) reaching the mirror in one lane's batch: 25 MB of datagrams.
/// `handle_mirrored` stops whenever they come due and the driver sends them: nothing is
/// dropped and every player gets every packet. (Taken in one call, as before, 8 MiB of it was
/// queued and the rest dropped.)
#[test]
fn three_hundred_udp_players_of_a_mirror_lose_nothing_of_a_large_batch() {
    let mut h =
        Harness::with_cam_on_worker_1_of(GatewayConfig::default().viewer_spread_margin, udp_server);
    let _b = h.play(CAM);
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..13);
    assert_eq!((h.connects, h.camera_worker), (1, 1));
    let players: Vec<usize> = (0..300)
        .map(|_| h.add_udp_player("rtsp://box:8554/cam"))
        .collect();
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.gateway.local_stats().players_udp, 300);
    let before: Vec<usize> = players.iter().map(|&p| h.players[p].media.len()).collect();
    let dropped0 = h.gateway.local_stats().player_udp_packets_dropped;
    // Live for every player by now (each started on the GOP when it joined).
    h.camera.send_frame(13 * 3600, &[nal(5, 60_000)]);
    for n in 14..29 {
        h.camera.send_frame(n * 3600, &[nal(1, 1300)]);
    }
    let sent = camera_packets(&h.camera.to_gateway);
    assert_eq!(sent.len(), 59);
    h.run_for(Duration::from_millis(100));
    assert_eq!(
        h.gateway.local_stats().player_udp_packets_dropped - dropped0,
        0
    );
    for (&p, &n) in players.iter().zip(&before) {
        let got: Vec<&[u8]> = (h.players[p].media[n..].iter())
            .map(|(_, d)| &d[12..])
            .collect();
        let want: Vec<&[u8]> = sent.iter().map(|d| &d[12..]).collect();
        let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            got == want,
            "player {p}: {} of {} packets, first difference at {first_diff:?}, dropped {}",
            got.len(),
            want.len(),
            h.gateway.local_stats().player_udp_packets_dropped - dropped0
        );
    }
}

/// Worker 0 already mirrors the camera for a browser (spread from worker 1): a player there
/// joins that mirror. It keeps its session across a camera reconnect, resuming on the next
/// keyframe with continuous numbering. (Before, it never got an answer: a mirror knew no
/// camera tracks.)
#[test]
fn a_player_joins_a_mirror_of_browsers_and_keeps_playing_across_a_reconnect() {
    let mut h = Harness::with_cam_on_worker_1(0);
    let on_origin = h.play(CAM);
    h.run_for(Duration::from_millis(300));
    let first = h.camera_frames_kept(0..5, None);
    let mirrored = h.play(CAM);
    h.run_for(Duration::from_millis(200));
    assert_eq!(
        (h.others[0].viewer_count(), h.gateway.viewer_count()),
        (1, 1)
    );

    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert!(
        matches!(h.players[p].events.first(), Some(RtspEvent::Playing { .. })),
        "{:?}",
        h.players[p].events
    );
    let sent = h.camera_frames_kept(5..25, None);
    // At once on the GOP worker 1 kept (frame 0's keyframe on), then live.
    let want = [packets_from(&first, 0), packets_from(&sent, 0)].concat();
    assert_camera_packets(&h.players[p].media, &want);

    let before = h.players[p].media.len();
    let stream = h.stream.unwrap();
    let now = h.now;
    h.gw(1).handle_rtsp_lost(stream, now);
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.connects, 2, "reconnected, by worker 1");
    // The new camera session starts mid-GOP: the player waits for the keyframe at 10.
    let again = h.camera_frames_kept(5..25, None);
    let after = &h.players[p].media[before..];
    assert_eq!(after.len(), packets_from(&again, 10 - 5).len());
    assert_eq!(
        after[0].1[12] & 0x1f,
        28,
        "resumes on the keyframe's first fragment"
    );
    let seqs: Vec<u16> = (h.players[p].media.iter())
        .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    for b in [on_origin, mirrored] {
        assert!(h.browsers[b].frames.len() >= 30, "browser {b}");
    }
    assert!(
        (h.players[p].events.iter()).all(|e| !matches!(e, RtspEvent::Failed(_))),
        "{:?}",
        h.players[p].events
    );
}

/// RFC 2326: a UDP session outlives its RTSP connection. Its media goes on, its receiver
/// reports keep it past the session timeout, and it still counts as a UDP player; a
/// TCP-interleaved player ends with its connection. A TEARDOWN naming it from another host, or
/// naming another id, gets 454; a keepalive and then a TEARDOWN from a new connection of its
/// host end it: no more datagrams, and the camera lingers and closes.
#[test]
fn a_udp_session_outlives_its_connection_until_a_teardown_from_a_new_one() {
    let mut h = Harness::with_config(udp_server()); // 5 s session timeout
    let p = h.add_udp_player("rtsp://box:8554/cam");
    let tcp = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    let session = h.players[p].client.session_id().unwrap().to_owned();
    h.close_player_connection(p);
    h.close_player_connection(tcp);
    let stats = h.gateway.stats();
    assert_eq!((stats.players_udp, stats.players_tcp), (1, 0));
    assert_eq!(h.gateway.player_count(), 1);

    let before = h.players[p].media.len();
    let sent = h.camera_frames_kept(5..200, None); // 7.8 s
    assert_eq!(
        h.players[p].media.len() - before,
        sent.concat().len(),
        "every packet"
    );
    assert_eq!(
        h.gateway.stats().players_udp,
        1,
        "kept alive by its receiver reports"
    );

    let teardown = |cseq: u32, id: &str| {
        format!("TEARDOWN rtsp://box:8554/cam RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {id}\r\n\r\n")
    };
    let a = h.request_on_new_connection(990, "192.0.2.7:40000", &teardown(1, &session));
    assert!(a.starts_with("RTSP/1.0 454 "), "another host: {a}");
    let a = h.request_on_new_connection(991, "127.0.0.1:40001", &teardown(1, "0123456789abcdef"));
    assert!(a.starts_with("RTSP/1.0 454 "), "another id: {a}");
    let keepalive = format!(
        "GET_PARAMETER rtsp://box:8554/cam RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    );
    let a = h.request_on_new_connection(992, "127.0.0.1:40002", &keepalive);
    assert!(a.starts_with("RTSP/1.0 200 OK\r\nCSeq: 2\r\n"), "{a}");
    assert!(a.contains(&format!("Session: {session};timeout=5")), "{a}");
    h.camera_frames(200..203);
    assert_eq!(h.gateway.stats().players_udp, 1);

    let a = h.request_on_new_connection(993, "127.0.0.1:40003", &teardown(3, &session));
    assert!(a.starts_with("RTSP/1.0 200 OK\r\nCSeq: 3\r\n"), "{a}");
    assert_eq!(h.gateway.player_count(), 0);
    assert_eq!(h.gateway.stats().players_udp, 0);
    let stopped = h.players[p].media.len();
    h.camera_frames(203..210);
    assert_eq!(
        h.players[p].media.len(),
        stopped,
        "no datagram after TEARDOWN"
    );
    h.run_for(Duration::from_secs(7));
    assert!(
        h.rtsp_closed,
        "nobody left: the camera closed after its linger"
    );
}

/// A UDP session whose connection closed and whose player went silent (no receiver reports)
/// times out like any: its addresses are forgotten, and the camera lingers and closes.
#[test]
fn a_udp_session_without_its_connection_times_out_when_silent() {
    let mut h = Harness::with_config(udp_server());
    let p = h.add_udp_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    let resident = h.gateway.resident();
    h.close_player_connection(p);
    h.players[p].sends_rtcp = false;
    h.camera_frames(5..50); // 1.8 s: still playing
    assert_eq!(h.gateway.stats().players_udp, 1);
    let before = h.players[p].media.len();
    h.camera_frames(50..150); // 4 s more: past the 5 s timeout
    assert_eq!(h.gateway.stats().players_udp, 0, "timed out");
    assert_eq!(h.gateway.player_count(), 0);
    assert_eq!(
        h.gateway.resident().learned_addresses,
        resident.learned_addresses - 2,
        "its RTP and RTCP addresses are forgotten"
    );
    let after = h.players[p].media.len();
    assert!(after > before, "played until the timeout");
    h.camera_frames(150..155);
    assert_eq!(h.players[p].media.len(), after, "nothing after");
    h.run_for(Duration::from_secs(7));
    assert!(h.rtsp_closed);
}

/// `max_viewers_per_stream` counts a mirror's players with the camera's browsers on every
/// worker. (Before, a mirror counted only its own watchers: both players got in.)
#[test]
fn players_on_a_mirror_count_against_the_stream_limit_with_browsers_elsewhere() {
    let placements = camgate_io::workers::placements(2);
    let config = |w: usize| GatewayConfig {
        dtls_cert: test_certificate(),
        candidates: vec![SocketAddr::from(([127, 0, 0, 1], 20000 + w as u16))],
        placement: Some(placements[w].clone()),
        max_viewers_per_stream: 2,
        ..named_cam()
    };
    let mut h = Harness::with_config(config(0));
    h.others = vec![Gateway::new(config(1))];
    let busy = "rtsp://127.0.0.1:8554/elsewhere";
    placements[0].with(|w| w.place(busy, busy, 10)).unwrap();
    h.play(CAM);
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.camera_worker, 1);
    let first = h.add_player("rtsp://box:8554/cam");
    let extra = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert!(
        matches!(
            h.players[first].events.first(),
            Some(RtspEvent::Playing { .. })
        ),
        "{:?}",
        h.players[first].events
    );
    assert!(
        matches!(h.players[extra].events.as_slice(), [RtspEvent::Failed(e)] if e.to_string().contains("503")),
        "{:?}",
        h.players[extra].events
    );
}

/// A player restarted on the same UDP ports (an NVR with fixed ports) replaces the session its
/// old process left without TEARDOWN: one session sends there, not two until the timeout.
#[test]
fn a_new_udp_session_to_the_same_ports_ends_the_one_left_behind() {
    let mut h = Harness::with_config(udp_server());
    let old = h.add_udp_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    h.close_player_connection(old);
    assert_eq!(h.gateway.stats().players_udp, 1);
    let new = h.add_udp_player("rtsp://box:8554/cam");
    h.players[new].udp_base = h.players[old].udp_base;
    h.run_for(Duration::from_millis(300));
    assert!(
        matches!(
            h.players[new].events.first(),
            Some(RtspEvent::Playing { .. })
        ),
        "{:?}",
        h.players[new].events
    );
    assert_eq!(h.gateway.stats().players_udp, 1, "the old session ended");
    assert_eq!(h.gateway.player_count(), 1);
}

/// The built-in demo played by worker 1 (for a browser there) reaches a player on worker 0
/// through a mirror too: the clip's packets, from a keyframe, numbered continuously.
#[test]
fn a_player_plays_the_demo_another_worker_plays() {
    const URL: &str = "rtsp://127.0.0.1:8554/demo";
    let clip =
        camgate_core::demo::DemoClip::parse(include_bytes!("../../../server/assets/demo.h264"))
            .unwrap();
    let clip = std::sync::Arc::new(clip);
    let placements = camgate_io::workers::placements(2);
    let config = |w: usize| GatewayConfig {
        dtls_cert: test_certificate(),
        candidates: vec![SocketAddr::from(([127, 0, 0, 1], 20000 + w as u16))],
        placement: Some(placements[w].clone()),
        named_streams: vec![("demo".into(), URL.into())],
        demo: Some(camgate_core::gateway::DemoConfig {
            url: URL.into(),
            clip: clip.clone(),
        }),
        ..GatewayConfig::default()
    };
    let mut h = Harness::with_config(config(0));
    h.others = vec![Gateway::new(config(1))];
    let busy = "rtsp://127.0.0.1:8554/elsewhere";
    placements[0].with(|w| w.place(busy, busy, 10)).unwrap();
    let b = h.play(URL);
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.others[0].viewer_count(), 1, "the demo plays on worker 1");
    let p = h.add_player("rtsp://box:8554/demo");
    h.run_for(Duration::from_secs(4));
    assert_eq!(h.connects, 0);
    // (Before, worker 0 played a second copy of the clip for its player.)
    assert_eq!(
        h.gateway.local_stats().camera_packets_in,
        0,
        "worker 0 plays no copy of the clip"
    );
    let media = &h.players[p].media;
    let pictures = media.iter().filter(|(_, d)| d[1] & 0x80 != 0).count();
    assert!(pictures >= 30, "{pictures} pictures to the player");
    assert_eq!(media[0].1[12] & 0x1f, 7, "the player starts on an SPS");
    let seqs: Vec<u16> = media
        .iter()
        .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert!(h.browsers[b].frames.len() >= 100);
}

/// The reason browsers get for an MJPEG camera, as before RTSP players could play one.
const MJPEG_REFUSED: &str = "Camera video MJPEG (JPEG) cannot be played over WebRTC (camgate plays H264, VP8, H265): set the camera's stream to H.264";

impl Harness {
    /// The camera sends MJPEG (static payload type 26, no rtpmap, as cameras write it) and
    /// PCMU.
    fn mjpeg_camera(&mut self) {
        self.camera.video_sdp = Some("m=video 0 RTP/AVP 26\r\n".into());
        self.camera.with_audio = true;
    }

    /// The camera sends packets `parts` of MJPEG frame `n` (RFC 2435: three fragments of 1,300
    /// bytes, the last with the marker) and, after its first fragment, 20 ms of PCMU; its video
    /// packets as it wrote them.
    fn mjpeg_frame(&mut self, n: u32, parts: std::ops::Range<u32>) -> Vec<Vec<u8>> {
        let ts = n * 3000;
        for part in parts {
            let offset = (part * 1300).to_be_bytes();
            // Type-specific, fragment offset (24 bits), type 1, Q 50, 640x360.
            let mut payload = vec![0, offset[1], offset[2], offset[3], 1, 50, 80, 45];
            payload.extend((0..1300).map(|i| (i * 7 + n) as u8));
            self.camera.seq = self.camera.seq.wrapping_add(1);
            let mut packet = Vec::new();
            camgate_core::rtp::RtpPacket {
                payload_type: 26,
                marker: part == 2,
                sequence: self.camera.seq,
                timestamp: ts,
                ssrc: 0x1234_5678,
                payload: &payload,
            }
            .write_to(&mut packet);
            self.camera.send_video_packet(&packet);
            if part == 0 {
                self.camera.send_audio(n * 160);
            }
        }
        let sent = camera_packets(&self.camera.to_gateway);
        self.run_for(Duration::from_millis(33));
        sent
    }
}

/// Player `p`'s video packets (track 0) match `want` as the camera sent them; its audio
/// (track 1) is PCMU.
fn assert_mjpeg_packets(h: &Harness, p: usize, want: &[Vec<u8>]) {
    let video: Vec<(usize, Vec<u8>)> = (h.players[p].media.iter())
        .filter(|(t, _)| *t == 0)
        .cloned()
        .collect();
    assert_camera_packets(&video, want);
    assert!(
        (h.players[p].media.iter()).any(|(t, d)| *t == 1 && d[1] & 0x7f == 0),
        "PCMU on track 1"
    );
}

/// An MJPEG camera (which WebRTC cannot carry) plays for RTSP players on its one connection:
/// every JPEG packet and the audio, unchanged; a late player (TCP, and UDP through its paced
/// replay) starts at once on the current frame's first fragment (every JPEG frame is a
/// keyframe). Its browsers, before and
/// after, get FAILED with the reason they always got, and nothing is depacketized or decoded
/// for them. (Before, the camera was refused outright: the players got 503.)
#[test]
fn an_mjpeg_camera_plays_for_players_while_browsers_get_failed_with_the_reason() {
    let mut h = Harness::with_config(udp_server());
    h.mjpeg_camera();
    let b = h.play(CAM);
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let failed = h.browsers[b].failed();
    assert_eq!(failed["data"][0]["info"], MJPEG_REFUSED);
    match h.players[p].events.first() {
        Some(RtspEvent::Playing { tracks }) => {
            let got: Vec<(&str, u8, u32)> = (tracks.iter())
                .map(|t| (t.encoding.as_str(), t.payload_type, t.clock_rate))
                .collect();
            assert_eq!(got, [("JPEG", 26, 90000), ("PCMU", 0, 8000)]);
        }
        e => panic!("{e:?}"),
    }
    assert!(!h.rtsp_closed, "the camera stays for the player");

    let mut sent = Vec::new();
    for n in 0..10 {
        sent.extend(h.mjpeg_frame(n, 0..3));
    }
    assert_eq!(sent.len(), 30);
    assert_mjpeg_packets(&h, p, &sent);
    let stats = h.gateway.stats();
    assert_eq!(
        (stats.camera_packets_in, stats.audio_packets_transcoded),
        (0, 0),
        "nothing relayed or decoded for browsers"
    );
    assert_eq!(stats.player_packets_out, 40, "30 JPEG and 10 PCMU packets");

    // Late players join after two fragments of frame 10: they start on its first one (not
    // on a later fragment, which no decoder starts from, nor at frame 11).
    let mut late_sent = h.mjpeg_frame(10, 0..2);
    let tcp = h.add_player("rtsp://box:8554/cam");
    let udp = h.add_udp_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    late_sent.extend(h.mjpeg_frame(10, 2..3));
    for n in 11..13 {
        late_sent.extend(h.mjpeg_frame(n, 0..3));
    }
    for late in [tcp, udp] {
        assert_mjpeg_packets(&h, late, &late_sent);
    }

    // A later browser is refused at once, without touching the camera.
    let again = h.play(CAM);
    h.run_for(Duration::from_millis(50));
    assert_eq!(h.browsers[again].failed()["data"][0]["info"], MJPEG_REFUSED);
    assert_eq!(h.connects, 1, "one camera connection throughout");
    let listed = &h.gateway.streams()[0];
    assert_eq!(listed.info, format!("RTSP players only: {MJPEG_REFUSED}"));
    assert_eq!(listed.status(), "PLAYING", "for its players");

    for q in [p, tcp, udp] {
        h.players[q].client.teardown(h.now);
    }
    h.run_for(Duration::from_secs(7));
    assert!(h.rtsp_closed, "the camera lingered and closed");
}

/// Worker 1 pulls the MJPEG camera for a browser while a player on worker 0 (the RTSP
/// server's) already waits for it through a mirror: the browser gets FAILED with the reason,
/// the camera stays, and the player plays every packet from the mirror.
#[test]
fn an_mjpeg_camera_another_worker_pulls_plays_for_a_player_through_a_mirror() {
    let mut h = Harness::with_cam_on_worker_1(GatewayConfig::default().viewer_spread_margin);
    h.mjpeg_camera();
    let b = h.play(CAM);
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert_eq!((h.connects, h.camera_worker), (1, 1));
    assert_eq!(h.browsers[b].failed()["data"][0]["info"], MJPEG_REFUSED);
    assert!(
        matches!(h.players[p].events.first(), Some(RtspEvent::Playing { tracks }) if tracks[0].encoding == "JPEG"),
        "{:?}",
        h.players[p].events
    );
    let mut sent = Vec::new();
    for n in 0..10 {
        sent.extend(h.mjpeg_frame(n, 0..3));
    }
    assert_mjpeg_packets(&h, p, &sent);
    assert!(!h.rtsp_closed);
    // A later browser, wherever it is served, is refused the same way.
    let again = h.play(CAM);
    h.run_for(Duration::from_millis(100));
    assert_eq!(h.browsers[again].failed()["data"][0]["info"], MJPEG_REFUSED);
    assert_eq!(h.connects, 1);
}

/// A camera of G.726 audio alone (nothing browsers play: they get the reason they always got)
/// plays for a player, which starts on the first audio packet: no video keyframe to wait for.
#[test]
fn a_camera_of_g726_alone_plays_for_a_player_from_its_first_packet() {
    let mut h = Harness::with_config(named_cam());
    h.camera.video_sdp = Some(String::new());
    h.camera.audio_sdp =
        Some("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 G726-32/8000\r\na=control:track2\r\n".into());
    let b = h.play(CAM);
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let failed = h.browsers[b].failed();
    assert_eq!(
        failed["data"][0]["info"],
        "No supported audio or video track"
    );
    assert!(
        matches!(h.players[p].events.first(), Some(RtspEvent::Playing { tracks })
            if tracks.len() == 1 && tracks[0].encoding == "G726-32" && tracks[0].payload_type == 97),
        "{:?}",
        h.players[p].events
    );
    let mut sent = Vec::new();
    for n in 0..25u16 {
        let mut packet = Vec::new();
        let payload = vec![n as u8; 80];
        camgate_core::rtp::RtpPacket {
            payload_type: 97,
            marker: false,
            sequence: 100 + n,
            timestamp: u32::from(n) * 160,
            ssrc: 0x0a0b_0c0d,
            payload: &payload,
        }
        .write_to(&mut packet);
        // The camera's one track is on interleaved channel 0.
        h.camera.send_video_packet(&packet);
        h.run_for(Duration::from_millis(20));
        sent.push(packet);
    }
    let got = &h.players[p].media;
    assert_eq!(got.len(), sent.len(), "from the first packet on");
    for (g, w) in got.iter().zip(&sent) {
        assert_eq!((g.0, &g.1[12..], &g.1[..2]), (0, &w[12..], &w[..2]));
    }
    assert_eq!(h.gateway.stats().audio_packets_transcoded, 0);
    assert!(!h.rtsp_closed);
}

/// A camera only players can play (MJPEG) is reconnected like any when it drops: the player
/// keeps its session and resumes on the first fragment of a frame of the new camera session,
/// numbered on from before; no browser is involved, none is needed to keep it.
#[test]
fn an_mjpeg_camera_of_players_only_reconnects_and_its_player_resumes_on_a_frame_start() {
    let mut h = Harness::with_config(named_cam());
    h.mjpeg_camera();
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    for n in 0..5 {
        h.mjpeg_frame(n, 0..3);
    }
    let before = h.players[p].media.len();
    assert_eq!(before, 20, "15 JPEG and 5 PCMU packets");
    h.gateway.handle_rtsp_lost(h.stream.unwrap(), h.now);
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.connects, 2, "reconnected");
    // The new session starts mid-frame: its last fragments are not played.
    h.mjpeg_frame(5, 1..3);
    let mut sent = Vec::new();
    for n in 6..9 {
        sent.extend(h.mjpeg_frame(n, 0..3));
    }
    let after: Vec<(usize, Vec<u8>)> = (h.players[p].media[before..].iter())
        .filter(|(t, _)| *t == 0)
        .cloned()
        .collect();
    assert_eq!(after.len(), sent.len(), "frames 6, 7, 8");
    assert_eq!(
        &after[0].1[12..],
        &sent[0][12..],
        "frame 6's first fragment"
    );
    let seqs: Vec<u16> = (h.players[p].media.iter())
        .filter(|(t, _)| *t == 0)
        .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    assert!(
        (h.players[p].events.iter()).all(|e| !matches!(e, RtspEvent::Failed(_))),
        "{:?}",
        h.players[p].events
    );
}

/// A mirror that subscribes to a camera served to RTSP players only (its browser came to
/// another worker) is told at once that browsers are refused, with the reason, rather than
/// waiting for a description that never comes; the camera plays on for its player.
#[test]
fn a_mirror_subscribing_to_a_players_only_camera_is_told_browsers_are_refused() {
    let mut h = Harness::with_config(named_cam());
    h.mjpeg_camera();
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let now = h.now;
    let subscribe = camgate_core::gateway::Forward::Subscribe {
        url: CAM.into(),
        mirror: StreamId(77),
    };
    h.gateway.handle_forward(1, subscribe, now);
    let told: Vec<_> = h.gateway.mirror_outbox(1).drain(..).collect();
    assert!(
        matches!(told.as_slice(), [MirrorItem::BrowsersRefused { mirror: StreamId(77), info }] if info == MJPEG_REFUSED),
        "{told:?}"
    );
    // (The harness has no worker 1: its notice of the outbox is dropped.)
    while h.gateway.poll_output().is_some() {}
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.extend(h.mjpeg_frame(n, 0..3));
    }
    assert_mjpeg_packets(&h, p, &sent);
    assert_eq!(h.connects, 1);
}

/// A stream only RTSP players play spends nothing on audio for browsers: its AAC is neither
/// decoded nor encoded (the players get the camera's AAC unchanged). Once a browser plays, it
/// gets Opus from the next packets on. (Before, the AAC was transcoded to Opus for nobody:
/// 0.3-0.4 % of a core per stream.)
#[test]
fn aac_is_transcoded_only_while_a_browser_plays() {
    let (sdp, packets) = aac_capture();
    let mut h = Harness::with_config(named_cam());
    h.camera.audio_sdp = Some(sdp);
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let half = packets.len() / 2;
    let mut frame = 0;
    let mut send = |h: &mut Harness, packets: &[Vec<u8>]| {
        for (i, packet) in packets.iter().enumerate() {
            h.camera.send_audio_packet(packet);
            if i % 2 == 0 {
                h.camera_frames(frame..frame + 1);
                frame += 1;
            }
        }
    };
    send(&mut h, &packets[..half]);
    assert_eq!(h.gateway.stats().audio_packets_transcoded, 0);
    let audio_to_player =
        |h: &Harness| (h.players[p].media.iter()).filter(|(t, _)| *t == 1).count();
    // (The first AAC packet came before the first keyframe, where the player starts.)
    assert_eq!(
        audio_to_player(&h),
        half - 1,
        "the player gets the camera's AAC"
    );

    let b = h.play(CAM);
    h.run_for(Duration::from_millis(300));
    send(&mut h, &packets[half..]);
    h.run_for(Duration::from_millis(200));
    let transcoded = h.gateway.stats().audio_packets_transcoded;
    assert!(
        transcoded + 3 >= (packets.len() - half) as u64,
        "{transcoded}"
    );
    let opus = (h.browsers[b].audio.iter())
        .filter(|(c, _)| *c == str0m::format::Codec::Opus)
        .count();
    assert!(opus >= 15, "{opus} Opus packets for 0.5 s of AAC");
    assert_eq!(audio_to_player(&h), packets.len() - 1);
}
