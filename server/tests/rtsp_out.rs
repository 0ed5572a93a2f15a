//! camgate as an RTSP server for its named streams, read by real RTSP clients: FFmpeg's
//! `ffprobe`/`ffmpeg` (Debian `ffmpeg`) and GStreamer's `rtspsrc`, over TCP-interleaved
//! transport, from a GStreamer camera (`tests/rtsp_server.py`, H.264 + AAC) that camgate pulls
//! once for every player and browser.

mod common;

use std::process::Command;

use common::{recvonly_offer, temp_file, Camgate, GstCamera};

/// camgate with the camera as `[streams.cam]` and the RTSP server on an ephemeral port.
fn camgate_for(camera: &GstCamera) -> (Camgate, String) {
    let config = temp_file(
        &format!("rtsp_out_{}.toml", camera.port()),
        &format!("[streams.cam]\nuri = \"{}\"\n", camera.url),
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
    let url = format!(
        "rtsp://{}/cam",
        cg.rtsp.expect("camgate logs its RTSP server")
    );
    (cg, url)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .expect("the client runs (Debian ffmpeg / gstreamer1.0-tools)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `camgate_rtsp_connects_total` from /metrics.
fn camera_connects(cg: &Camgate) -> u64 {
    let (status, body) = cg.request("GET", "/metrics", None);
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix("camgate_rtsp_connects_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no camgate_rtsp_connects_total in {body}"))
}

/// Frames of each stream ffprobe decoded: `codec_name,nb_read_frames` lines.
fn decoded_frames(input: &str, tcp: bool) -> Vec<(String, u64)> {
    let mut cmd = Command::new("ffprobe");
    if tcp {
        cmd.args(["-rtsp_transport", "tcp"]);
    }
    let (ok, text) = run(cmd.args([
        "-v",
        "error",
        "-read_intervals",
        "%+3",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,nb_read_frames",
        "-of",
        "csv=p=0",
        input,
    ]));
    assert!(ok, "ffprobe {input}: {text}");
    text.lines()
        .filter_map(|l| {
            let (codec, n) = l.trim().split_once(',')?;
            Some((codec.to_owned(), n.parse().ok()?))
        })
        .collect()
}

#[test]
fn ffmpeg_and_gstreamer_play_a_named_stream_over_tcp_on_one_camera_connection() {
    let camera = GstCamera::start(&["--video", "h264", "--audio", "aac"]);
    let (cg, url) = camgate_for(&camera);

    // ffprobe decodes 3 s of both tracks through camgate.
    let streams = decoded_frames(&url, true);
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
    let written = decoded_frames(mp4.to_str().unwrap(), false);
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
    let (_, metrics) = cg.request("GET", "/metrics", None);
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(counter("camgate_rtsp_players_joined_total"), 3);
    assert!(counter("camgate_rtsp_player_packets_out_total") > 300);
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

/// camgate B pulls `rtsp://A/cam` from camgate A (its client offers UDP first, gets 461, goes
/// on over TCP) and serves it again: ffprobe decodes through both, and A pulled the camera once.
#[test]
fn a_second_camgate_pulls_from_the_first() {
    let camera = GstCamera::start(&["--video", "h264", "--audio", "pcma"]);
    let (a, a_url) = camgate_for(&camera);
    let config = temp_file(
        &format!("rtsp_out_chain_{}.toml", camera.port()),
        &format!("[streams.cam]\nuri = \"{a_url}\"\n"),
    );
    let b = Camgate::start(&[
        "--config",
        config.to_str().unwrap(),
        "--rtsp-server",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--no-demo",
    ]);
    let b_url = format!("rtsp://{}/cam", b.rtsp.unwrap());
    let streams = decoded_frames(&b_url, true);
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
    let streams = decoded_frames(&format!("rtsp://viewer:s3cret-pw@{addr}/cam"), true);
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
