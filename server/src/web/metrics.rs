//! `GET /metrics`: the gateway's state and running totals in the Prometheus text format
//! (version 0.0.4), rendered by hand: a fixed set of gauges and counters needs no crate.

use std::fmt::Write;

use camgate_core::gateway::{GatewayStats, StreamInfo};

pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) fn render(streams: &[StreamInfo], stats: &GatewayStats, web_sessions: usize) -> String {
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
        "camgate_signaling_sessions",
        "gauge",
        "Open signaling sessions (WebSocket and WHEP).",
    );
    sample(&mut out, "camgate_signaling_sessions", web_sessions as u64);
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

/// The integer counters: name, help, value.
fn counters(stats: &GatewayStats) -> [(&'static str, &'static str, u64); 19] {
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
            "RTSP players (clients of the RTSP server, TCP-interleaved) that connected.",
            stats.players_joined,
        ),
        (
            "camgate_rtsp_player_packets_out_total",
            "Camera RTP packets queued for RTSP players (TCP-interleaved).",
            stats.player_packets_out,
        ),
        (
            "camgate_rtsp_player_packets_skipped_total",
            "Camera RTP packets RTSP players missed because they fell behind (skipped to the next keyframe).",
            stats.player_packets_skipped,
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
        }];
        let stats = GatewayStats {
            camera_bytes_in: 1234,
            ..Default::default()
        };
        let text = render(&streams, &stats, 3);
        assert!(text.contains("camgate_streams{state=\"playing\"} 1\n"));
        assert!(text.contains("camgate_viewers 2\n"));
        assert!(text.contains("camgate_camera_bytes_in_total 1234\n"));
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
}
