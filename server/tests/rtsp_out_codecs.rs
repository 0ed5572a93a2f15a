//! Every codec of the test cameras through camgate's RTSP server, read by FFmpeg's `ffprobe`
//! (Debian `ffmpeg`): the camera's payloads pass through unchanged (no transcoding on this path),
//! so a player decodes what the camera encoded — H.265 and VP8 video, and the audio codecs
//! browsers get transcoded (PCMA, G.722, L16, Speex, AAC-LATM) or passed (Opus).
//!
//! Not served (see docs/COMPATIBILITY.md): tracks camgate does not set up at all, i.e. MJPEG
//! video (the stream is refused: 503) and audio such as G.726 (left out of the description).

mod common;

use common::{camgate_with, decoded_frames_in, GstCamera};

/// Frames ffprobe decoded per stream in its first 3 s of the camera's stream through camgate,
/// over `transport`.
fn frames_through_camgate(video: &str, audio: &str, transport: &str) -> Vec<(String, u64)> {
    let camera = GstCamera::start(&["--video", video, "--audio", audio]);
    let (_cg, url) = camgate_with(&camera, "");
    decoded_frames_in(&url, Some(transport), "%+3")
}

/// Asserts ffprobe decoded at least `min` frames of each of `codecs` (FFmpeg's names).
fn assert_decoded(got: &[(String, u64)], codecs: &[(&str, u64)], what: &str) {
    for &(codec, min) in codecs {
        let n = got.iter().find(|(c, _)| c == codec).map(|(_, n)| *n);
        assert!(
            n.is_some_and(|n| n >= min),
            "{what}: {codec} decoded {n:?} frames (want >= {min}); ffprobe saw {got:?}"
        );
    }
}

// Minimums: a third of 3 s at the camera's rate (30 fps video; audio packets of 20 ms, or
// 120 ms for GStreamer's G.711 payloader, or 1,024 samples at 16 kHz for AAC), so a slow start
// on a loaded machine passes but a track that is missing or stalls does not.

#[test]
fn h265_and_pcma_over_tcp_and_udp() {
    for transport in ["tcp", "udp"] {
        let got = frames_through_camgate("h265", "pcma", transport);
        assert_decoded(&got, &[("hevc", 30), ("pcm_alaw", 8)], transport);
    }
}

#[test]
fn vp8_and_g722() {
    let got = frames_through_camgate("vp8", "g722", "tcp");
    assert_decoded(&got, &[("vp8", 20), ("adpcm_g722", 50)], "vp8+g722");
}

#[test]
fn h264_with_l16_speex_opus_and_aac_latm() {
    for (audio, codec, min) in [
        ("l16", "pcm_s16be", 30),
        ("speex", "speex", 50),
        ("opus", "opus", 50),
        ("aac-latm", "aac", 15),
    ] {
        let got = frames_through_camgate("h264", audio, "tcp");
        assert_decoded(&got, &[("h264", 30), (codec, min)], audio);
    }
}
