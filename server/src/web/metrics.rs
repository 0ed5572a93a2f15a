//! `GET /metrics`: the gateway's state and running totals in the Prometheus text format
//! (version 0.0.4), rendered by hand: a fixed set of gauges and counters needs no crate.

use std::fmt::Write;

use camgate_core::gateway::{GatewayStats, StreamInfo};

pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `name_of`: the configured name of a stream, given its masked URL (`Access::name_of`).
/// What the web side counts itself.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WebCounts {
    /// Open signaling sessions (WebSocket and WHEP).
    pub(super) sessions: usize,
    /// Failed authentications (wrong or missing token).
    pub(super) auth_failures: u64,
    /// Requests refused because their client was blocked after failing too often.
    pub(super) auth_refused: u64,
}

pub(super) fn render(
    streams: &[StreamInfo],
    stats: &GatewayStats,
    web: WebCounts,
    name_of: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(2048);
    // By the word the REST API reports: PLAYING, PENDING, RECONNECTING.
    let in_state = |word: &str| streams.iter().filter(|s| s.status() == word).count() as u64;
    let viewers: usize = streams.iter().map(|s| s.viewers).sum();
    let pinned = streams.iter().filter(|s| s.pinned).count();
    family(
        &mut out,
        "camgate_streams",
        "gauge",
        "Camera streams by state.",
    );
    for word in ["PLAYING", "PENDING", "RECONNECTING"] {
        let series = format!("camgate_streams{{state=\"{}\"}}", word.to_ascii_lowercase());
        sample(&mut out, &series, in_state(word));
    }
    family(
        &mut out,
        "camgate_streams_pinned",
        "gauge",
        "Streams kept up without viewers (REST startup, pull_at_start).",
    );
    sample(&mut out, "camgate_streams_pinned", pinned as u64);
    family(
        &mut out,
        "camgate_viewers",
        "gauge",
        "Viewers watching or about to.",
    );
    sample(&mut out, "camgate_viewers", viewers as u64);
    family(
        &mut out,
        "camgate_viewers_by_transport",
        "gauge",
        "Connected viewers by the transport of the ICE pair their browser nominated (relay: through the browser's TURN server).",
    );
    let by_transport = [
        ("udp", stats.viewers_udp),
        ("tcp", stats.viewers_tcp),
        ("relay", stats.viewers_relayed),
    ];
    for (transport, n) in by_transport {
        let series = format!("camgate_viewers_by_transport{{transport=\"{transport}\"}}");
        sample(&mut out, &series, n);
    }
    rtsp_players(&mut out, stats);
    family(
        &mut out,
        "camgate_signaling_sessions",
        "gauge",
        "Open signaling sessions (WebSocket and WHEP).",
    );
    sample(&mut out, "camgate_signaling_sessions", web.sessions as u64);
    for (name, help, value) in [
        (
            "camgate_auth_failures_total",
            "Failed authentications: a missing or wrong token (REST, metrics, WHEP, signaling).",
            web.auth_failures,
        ),
        (
            "camgate_auth_refused_total",
            "Requests refused unread because their client failed to authenticate too often (see auth_throttle).",
            web.auth_refused,
        ),
    ] {
        family(&mut out, name, "counter", help);
        sample(&mut out, name, value);
    }
    video_info(&mut out, streams, name_of);
    for (name, help, value) in counters(stats) {
        family(&mut out, name, "counter", help);
        sample(&mut out, name, value);
    }
    family(
        &mut out,
        "camgate_camera_input_seconds_total",
        "counter",
        "Time spent reading camera sockets and relaying their media (transcoding included).",
    );
    let _ = writeln!(
        out,
        "camgate_camera_input_seconds_total {:.6}",
        stats.camera_input_nanos as f64 / 1e9
    );
    out
}

/// The RTSP server's players by transport: how many play, packets out, packets dropped.
fn rtsp_players(out: &mut String, stats: &GatewayStats) {
    let families = [
        (
            "camgate_rtsp_clients",
            "gauge",
            "RTSP players playing, by transport (tcp: interleaved in the RTSP connection; udp: unicast).",
            [stats.players_tcp, stats.players_udp],
        ),
        (
            "camgate_rtsp_player_packets_out_total",
            "counter",
            "Camera RTP packets for RTSP players: tcp queued in their connection, udp sent.",
            [stats.player_packets_out, stats.player_udp_packets_out],
        ),
        (
            "camgate_rtsp_player_packets_dropped_total",
            "counter",
            "Camera RTP packets RTSP players did not get: tcp skipped while the player fell behind (to the next keyframe; dropped past drop_after), udp not taken by the socket at once (never waited for).",
            [stats.player_packets_skipped, stats.player_udp_packets_dropped],
        ),
    ];
    for (name, kind, help, [tcp, udp]) in families {
        family(out, name, kind, help);
        sample(out, &format!("{name}{{transport=\"tcp\"}}"), tcp);
        sample(out, &format!("{name}{{transport=\"udp\"}}"), udp);
    }
}

/// `camgate_stream_video_info`: one series of value 1 per stream whose video is known, its facts
/// in labels (empty: not known), as `info` and `find_all` describe it in words.
fn video_info(out: &mut String, streams: &[StreamInfo], name_of: &dyn Fn(&str) -> Option<String>) {
    family(
        out,
        "camgate_stream_video_info",
        "gauge",
        "Each camera stream's video: codec, profile, level, size, B-frames and pictures reordered (empty: not known yet).",
    );
    for s in streams {
        let Some(v) = &s.video else { continue };
        let stream = name_of(&s.url).unwrap_or_else(|| without_userinfo(&s.url));
        let (width, height) = v.size.map_or((String::new(), String::new()), |(w, h)| {
            (w.to_string(), h.to_string())
        });
        let labels = [
            ("stream", stream),
            ("codec", v.codec.to_owned()),
            ("profile", v.profile.clone().unwrap_or_default()),
            ("level", v.level.clone().unwrap_or_default()),
            ("width", width),
            ("height", height),
            ("b_frames", u8::from(v.b_frames).to_string()),
            (
                "reorder",
                v.reorder.map(|r| r.to_string()).unwrap_or_default(),
            ),
        ];
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        sample(
            out,
            &format!("camgate_stream_video_info{{{}}}", labels.join(",")),
            1,
        );
    }
}

/// A masked camera URL without its userinfo at all: a label must not carry even the user name.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Label value escaping of the text format: backslash, double quote, line feed.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The integer counters: name, help, value.
fn counters(stats: &GatewayStats) -> [(&'static str, &'static str, u64); 22] {
    [
        (
            "camgate_camera_bytes_in_total",
            "Bytes read from camera connections.",
            stats.camera_bytes_in,
        ),
        (
            "camgate_camera_packets_in_total",
            "RTP packets received from cameras.",
            stats.camera_packets_in,
        ),
        (
            "camgate_camera_packets_lost_total",
            "Camera RTP packets missing from their sequence.",
            stats.camera_packets_lost,
        ),
        (
            "camgate_viewer_packets_out_total",
            "RTP packets handed to viewers (one per viewer per packet).",
            stats.viewer_packets_out,
        ),
        (
            "camgate_keyframe_requests_answered_total",
            "Browsers' keyframe requests (PLI/FIR) answered from the GOP cache.",
            stats.keyframe_requests_answered,
        ),
        (
            "camgate_viewer_ice_timeouts_total",
            "Viewers failed because ICE and DTLS did not complete within ice_timeout_secs.",
            stats.ice_timeouts,
        ),
        (
            "camgate_not_enough_bandwidth_total",
            "notEnoughBandwidth events sent: a viewer's link carried less than its stream's bitrate for 3 s.",
            stats.not_enough_bandwidth,
        ),
        (
            "camgate_congestion_skips_total",
            "Times a congested viewer skipped to the next keyframe instead of queueing video.",
            stats.congestion_skips,
        ),
        (
            "camgate_camera_backlog_skips_total",
            "Times camgate found a camera's unread input over its bound (it fell behind, starved of CPU) and the stream's viewers skipped the backlog to the next keyframe.",
            stats.camera_backlog_skips,
        ),
        (
            "camgate_camera_late_packets_dropped_total",
            "Camera packets dropped because they arrived over 2 s late (camgate behind its input, e.g. starved of CPU, with the backlog in the camera's TCP send buffer), until it caught up.",
            stats.camera_late_packets,
        ),
        (
            "camgate_udp_unmatched_total",
            "Datagrams on the WebRTC port from an address of no viewer that opened none (strays, scans, late packets).",
            stats.udp_unmatched,
        ),
        (
            "camgate_viewer_ticks_total",
            "Times a viewer's WebRTC stack was ticked: once per batch of camera packets written to it, and at its own timers.",
            stats.viewer_ticks,
        ),
        (
            "camgate_datagrams_out_total",
            "UDP datagrams sent to viewers (media, RTCP, STUN, DTLS).",
            stats.datagrams_out,
        ),
        (
            "camgate_datagram_bytes_out_total",
            "Bytes of UDP datagrams sent to viewers.",
            stats.datagram_bytes_out,
        ),
        (
            "camgate_ice_tcp_backlog_drops_total",
            "Packets dropped because a viewer's ICE-TCP connection had its send queue full (it then waits for a keyframe).",
            stats.tcp_backlog_drops,
        ),
        (
            "camgate_rtsp_connects_total",
            "Camera connections opened.",
            stats.rtsp_connects,
        ),
        (
            "camgate_rtsp_reconnects_total",
            "Camera reconnections after a drop.",
            stats.rtsp_reconnects,
        ),
        (
            "camgate_rtsp_errors_total",
            "Camera connections that ended in an error.",
            stats.rtsp_errors,
        ),
        (
            "camgate_rtsp_players_joined_total",
            "RTSP players (clients of the RTSP server) that connected.",
            stats.players_joined,
        ),
        (
            "camgate_viewers_joined_total",
            "Viewers that joined.",
            stats.viewers_joined,
        ),
        (
            "camgate_viewers_left_total",
            "Viewers that left or failed.",
            stats.viewers_left,
        ),
        (
            "camgate_audio_packets_transcoded_total",
            "Camera audio packets decoded and re-encoded to Opus (AAC, Speex, odd G.711).",
            stats.audio_packets_transcoded,
        ),
    ]
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, series: &str, value: u64) {
    let _ = writeln!(out, "{series} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use camgate_core::gateway::StreamId;
    use camgate_core::video_relay::VideoFacts;

    #[test]
    fn every_sample_follows_its_type_line() {
        let streams = [StreamInfo {
            id: StreamId(1),
            url: "rtsp://cam/x".into(),
            playing: true,
            viewers: 2,
            pinned: false,
            reconnecting: false,
            dropped_tracks: Vec::new(),
            info: String::new(),
            mirror: false,
            video: None,
        }];
        let stats = GatewayStats {
            camera_bytes_in: 1234,
            viewers_tcp: 1,
            ..Default::default()
        };
        let text = render(
            &streams,
            &stats,
            WebCounts {
                sessions: 3,
                ..Default::default()
            },
            &|_| None,
        );
        assert!(text.contains("camgate_streams{state=\"playing\"} 1\n"));
        assert!(text.contains("camgate_viewers 2\n"));
        assert!(text.contains("camgate_viewers_by_transport{transport=\"tcp\"} 1\n"));
        assert!(text.contains("camgate_camera_bytes_in_total 1234\n"));
        assert!(text.contains("# TYPE camgate_stream_video_info gauge\n"));
        assert!(
            !text.contains("camgate_stream_video_info{"),
            "no video known: no series"
        );
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{line} has no TYPE line before it");
            }
        }
    }

    #[test]
    fn video_facts_per_stream_without_credentials() {
        let stream = |id, url: &str, video| StreamInfo {
            id: StreamId(id),
            url: url.into(),
            playing: true,
            viewers: 1,
            pinned: false,
            reconnecting: false,
            dropped_tracks: Vec::new(),
            info: String::new(),
            mirror: false,
            video,
        };
        let h265 = VideoFacts {
            codec: "H265",
            profile: Some("Main".into()),
            level: Some("2.1".into()),
            size: Some((640, 360)),
            b_frames: true,
            reorder: Some(2),
        };
        let h264 = VideoFacts {
            codec: "H264",
            profile: Some("High".into()),
            level: Some("3.1".into()),
            size: None,
            b_frames: false,
            reorder: None,
        };
        let streams = [
            stream(1, "rtsp://admin:***@10.0.0.5:554/Streaming/101", Some(h265)),
            stream(2, "rtsps://user@cam.lan/live?channel=1", Some(h264)),
            stream(3, "rtsp://named:***@cam/x", None),
            stream(
                4,
                "rtsp://viewer:***@door/\"odd\"",
                Some(VideoFacts {
                    codec: "VP8",
                    profile: None,
                    level: None,
                    size: None,
                    b_frames: false,
                    reorder: Some(0),
                }),
            ),
        ];
        let name_of =
            |masked: &str| (masked == "rtsp://viewer:***@door/\"odd\"").then(|| "door".to_owned());
        let text = render(
            &streams,
            &GatewayStats::default(),
            WebCounts::default(),
            &name_of,
        );
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("camgate_stream_video_info{"))
            .collect();
        assert_eq!(
            series,
            [
                "camgate_stream_video_info{stream=\"rtsp://10.0.0.5:554/Streaming/101\",codec=\"H265\",profile=\"Main\",level=\"2.1\",width=\"640\",height=\"360\",b_frames=\"1\",reorder=\"2\"} 1",
                "camgate_stream_video_info{stream=\"rtsps://cam.lan/live?channel=1\",codec=\"H264\",profile=\"High\",level=\"3.1\",width=\"\",height=\"\",b_frames=\"0\",reorder=\"\"} 1",
                "camgate_stream_video_info{stream=\"door\",codec=\"VP8\",profile=\"\",level=\"\",width=\"\",height=\"\",b_frames=\"0\",reorder=\"0\"} 1",
            ]
        );
        assert!(!text.contains("admin") && !text.contains("user@") && !text.contains("***"));
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(without_userinfo("rtsp://cam/a@b"), "rtsp://cam/a@b");
    }
}
