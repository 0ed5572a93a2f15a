//! Every codec of the test cameras through camgate's RTSP server, read by FFmpeg's `ffprobe`
//! (Debian `ffmpeg`): the camera's payloads pass through unchanged (no transcoding on this path),
//! so a player decodes what the camera encoded — H.265 and VP8 video, and the audio codecs
//! browsers get transcoded (PCMA, G.722, L16, Speex, AAC-LATM) or passed (Opus).
//!
//! Codecs browsers cannot get reach players all the same: MJPEG video (browsers of it get FAILED
//! with the reason, as before) and G.726 audio (left out for browsers only).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    camgate_with, decoded_frames_in, decoded_frames_with, failed_info, play, recvonly_offer,
    GstCamera,
};

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

/// The FAILED info browsers get for an MJPEG camera (before and after players could play it).
const MJPEG_REFUSED: &str = "Camera video MJPEG (JPEG) cannot be played over WebRTC (camgate plays H264, VP8, H265): set the camera's stream to H.264";

/// An MJPEG camera (RFC 2435, GStreamer's `jpegenc ! rtpjpegpay`, with PCMU): a first player
/// (ffmpeg over TCP, decoding for 10 s) pulls it; ffprobe joins late over TCP and over UDP and
/// decodes JPEG frames at once (each frame is a keyframe: nothing to wait for) and the audio.
/// A browser asking meanwhile gets FAILED with the reason it always got (WHEP: 502 with it); the
/// camera had one connection for all. (Before, camgate refused the camera: every player got 503.)
#[test]
fn mjpeg_and_pcmu_reach_late_players_over_tcp_and_udp_while_browsers_are_refused() {
    let camera = GstCamera::start(&["--video", "mjpeg", "--audio", "pcmu"]);
    let (cg, url) = camgate_with(&camera, "");
    let first = Command::new("ffmpeg")
        .args(["-v", "error", "-nostats", "-progress", "pipe:1"])
        .args(["-rtsp_transport", "tcp", "-i", &url, "-t", "10"])
        .args(["-map", "0", "-f", "null", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Debian ffmpeg");
    std::thread::sleep(Duration::from_secs(2));
    for transport in ["tcp", "udp"] {
        let got = decoded_frames_in(&url, Some(transport), "%+3");
        eprintln!("late {transport} player decoded {got:?}");
        assert_decoded(&got, &[("mjpeg", 30), ("pcm_mulaw", 8)], transport);
    }
    let mut ws = play(&cg, "cam");
    assert_eq!(failed_info(&mut ws), MJPEG_REFUSED);
    // WHEP as before: the camera's fault (502), with the reason.
    let sdp = [("Content-Type", "application/sdp")];
    let r = cg.request_with("POST", "/whep/cam", &sdp, Some(&recvonly_offer(true)));
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains(MJPEG_REFUSED), "{}", r.body);
    let out = first.wait_with_output().expect("ffmpeg ran");
    let progress = String::from_utf8_lossy(&out.stdout);
    let frames: u64 = (progress.lines().rev())
        .filter_map(|l| l.strip_prefix("frame="))
        .find_map(|n| n.trim().parse().ok())
        .unwrap_or(0);
    eprintln!("first player (ffmpeg, tcp) decoded {frames} MJPEG frames in 10 s");
    assert!(
        out.status.success() && frames >= 150,
        "{frames} frames: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        cg.metric("camgate_rtsp_connects_total"),
        1,
        "one camera connection for three players and a browser"
    );
}

/// H.264 with G.726 audio (`avenc_g726 bitrate=32000 ! rtpg726pay`): players get both tracks
/// over TCP and UDP and decode the audio (browsers get the video, the G.726 left out); a
/// player of the audio alone (`-allowed_media_types audio`: it sets up no video) starts on
/// the first audio packet, without waiting for a video keyframe. (Before, G.726 was not set up:
/// no audio stream for players.)
#[test]
fn h264_and_g726_reach_players_and_the_audio_alone_plays_too() {
    let camera = GstCamera::start(&["--video", "h264", "--audio", "g726"]);
    let (_cg, url) = camgate_with(&camera, "");
    for transport in ["tcp", "udp"] {
        let got = decoded_frames_in(&url, Some(transport), "%+3");
        eprintln!("{transport} player decoded {got:?}");
        // GStreamer sends 4 packets of G.726 a second; FFmpeg names RFC 3551's packing g726le.
        assert_decoded(&got, &[("h264", 30), ("adpcm_g726le", 4)], transport);
    }
    let options = ["-rtsp_transport", "tcp", "-allowed_media_types", "audio"];
    let got = decoded_frames_with(&url, &options, "%+3");
    eprintln!("audio-only player decoded {got:?}");
    assert_eq!(got.len(), 1, "the audio alone: {got:?}");
    assert_decoded(&got, &[("adpcm_g726le", 4)], "audio alone");
}
