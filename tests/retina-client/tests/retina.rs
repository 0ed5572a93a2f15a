//! The Rust `retina` RTSP client plays camgate's RTSP server: the demo camera (the RTSP server's
//! stream `demo`) over TCP-interleaved, frames counted and checked.
//!
//! Starts the release binary (`CAMGATE_BIN`, default `../../target/release/camgate`) on free ports.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;

struct Camgate(Child);

impl Drop for Camgate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// camgate on free loopback ports; returns it and the demo's URL from its log.
fn start_camgate() -> (Camgate, String) {
    let bin = std::env::var("CAMGATE_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/camgate").to_owned()
    });
    let rtsp = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(&bin)
        .args([
            "--bind",
            "127.0.0.1",
            "--no-tls",
            "--announce-ip",
            "127.0.0.1",
        ])
        .args(["--http-port", "0", "--ws-port", "0", "--webrtc-port", "0"])
        .args(["--rtsp-server", &rtsp, "--log", "info"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (cargo build --release -p camgate first)"));
    let stdout = child.stdout.take().unwrap();
    let camgate = Camgate(child);
    // The log is drained for as long as camgate runs, so it never blocks on a full pipe; the
    // demo's URL is logged once its RTSP server listens.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("demo camera at ").nth(1) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("camgate logs its demo camera");
    (camgate, url)
}

#[tokio::test(flavor = "current_thread")]
async fn retina_plays_the_demo_through_camgates_rtsp_server() {
    let (_camgate, url) = start_camgate();
    let url = url::Url::parse(&url).unwrap();
    let mut session = Session::describe(url, SessionOptions::default())
        .await
        .expect("DESCRIBE");
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
        .expect("an H.264 video stream in camgate's SDP");
    session
        .setup(
            video,
            SetupOptions::default().transport(Transport::Tcp(Default::default())),
        )
        .await
        .expect("SETUP");
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("PLAY")
        .demuxed()
        .expect("demuxed");

    let start = Instant::now();
    let (mut frames, mut keyframes, mut first_random_access) = (0u32, 0u32, None);
    let mut last_ts = None;
    while start.elapsed() < Duration::from_secs(3) {
        let item = tokio::time::timeout(Duration::from_secs(2), demuxed.next())
            .await
            .expect("a frame within 2 s")
            .expect("the stream goes on")
            .expect("no error");
        if let CodecItem::VideoFrame(f) = item {
            if first_random_access.is_none() {
                first_random_access = Some(f.is_random_access_point());
            }
            keyframes += u32::from(f.is_random_access_point());
            let ts = f.timestamp().timestamp();
            if let Some(prev) = last_ts {
                assert_eq!(ts - prev, 3000, "30 fps at 90 kHz, no gap");
            }
            last_ts = Some(ts);
            assert!(!f.data().is_empty());
            frames += 1;
        }
    }
    println!("retina: {frames} frames, {keyframes} keyframes in 3 s");
    assert_eq!(first_random_access, Some(true), "starts on a keyframe");
    // 90 in 3 s, plus the frames of the GOP cache a late player starts on (under 30).
    assert!(
        (80..=120).contains(&frames),
        "about 90 frames in 3 s: {frames}"
    );
    assert!(keyframes >= 2, "one keyframe a second: {keyframes}");
    let params = demuxed.streams()[video].parameters();
    assert!(
        matches!(params, Some(retina::codec::ParametersRef::Video(v)) if v.pixel_dimensions() == (640, 360)),
        "SPS from camgate's SDP: {params:?}"
    );
}
