//! `rtsps://` cameras: the real binary against GStreamer's RTSP server serving RTSP over TLS
//! (`tests/rtsp_server.py --tls-cert`, a self-signed certificate made here), with a pinned, a
//! wrong and a missing `tls_fingerprint`, and each `rtsps_verify` mode. Viewers play over the
//! Flashphoner WebSocket protocol, as the Web SDK does; FAILED carries the reason.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{failed_info, json, play, temp_file, Camgate, GstCamera};

const PASSWORD: &str = "s3cret-Pw";

/// `tests/rtsp_server.py` serving rtsps:// with `cert`/`key`.
fn tls_camera(cert: &Path, key: &Path, extra: &[&str]) -> GstCamera {
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    plain_camera(&[&tls[..], extra].concat())
}

/// Without `--tls-cert` the camera serves plain rtsp://.
fn plain_camera(args: &[&str]) -> GstCamera {
    let video = [
        "--video", "h264", "--width", "320", "--height", "180", "--fps", "15",
    ];
    GstCamera::start(&[&video[..], args].concat())
}

/// A self-signed certificate: (cert.pem, key.pem, its SHA-256 as openssl prints it
/// ("AB:CD:…"), and as camgate reports it ("sha256:abcd…")).
fn certificate(tag: &str) -> (PathBuf, PathBuf, String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["camera.test".into()]).unwrap();
    let cert = temp_file(&format!("rtsps-{tag}-cert.pem"), &certified.cert.pem());
    let key = temp_file(
        &format!("rtsps-{tag}-key.pem"),
        &certified.signing_key.serialize_pem(),
    );
    // Computed here, not with camgate's code, so a wrong digest in camgate can't agree with it.
    let digest = ring::digest::digest(&ring::digest::SHA256, certified.cert.der());
    let bytes = digest.as_ref();
    let colons = bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let reported = format!(
        "sha256:{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    (cert, key, colons, reported)
}

/// `find_all`'s entry for `uri`: (status, info).
fn entry(cg: &Camgate, uri: &str) -> Option<(String, String)> {
    let (status, body) = cg.request("GET", "/rest-api/rtsp/find_all", None);
    if status != 200 {
        return None;
    }
    json(&body).as_array()?.iter().find_map(|s| {
        (s["uri"] == uri).then(|| {
            let field = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (field("status"), field("info"))
        })
    })
}

/// Waits until `uri` is listed with a status in `wanted`; returns (status, info).
fn wait_status(
    cg: &Camgate,
    log: &mut Vec<String>,
    uri: &str,
    wanted: &[&str],
) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((status, info)) = entry(cg, uri) {
            if wanted.contains(&status.as_str()) {
                return (status, info);
            }
        }
        if Instant::now() > deadline {
            log.extend(cg.logs());
            let (_, all) = cg.request("GET", "/rest-api/rtsp/find_all", None);
            panic!("{uri}: never {wanted:?}: {all}\n{}", log.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `camgate_camera_packets_in_total` from /metrics.
fn packets_in(cg: &Camgate) -> u64 {
    let (_, text) = cg.request("GET", "/metrics", None);
    text.lines()
        .find_map(|l| l.strip_prefix("camgate_camera_packets_in_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no camera packet count in /metrics:\n{text}"))
}

fn start(config: &str, tag: &str, extra: &[&str]) -> Camgate {
    let path = temp_file(&format!("rtsps-{tag}.toml"), config);
    let mut args = vec!["--config", path.to_str().unwrap(), "--no-demo"];
    args.extend_from_slice(extra);
    Camgate::start(&args)
}

#[test]
fn pinned_plays_wrong_and_missing_fail_with_the_presented_fingerprint() {
    let (cert, key, colons, reported) = certificate("a");
    // The camera asks for credentials too: they must not show up anywhere.
    let camera = tls_camera(&cert, &key, &["--user", "admin", "--password", PASSWORD]);
    let second = tls_camera(&cert, &key, &["--user", "admin", "--password", PASSWORD]);
    let third = tls_camera(&cert, &key, &["--user", "admin", "--password", PASSWORD]);
    let wrong_pin = "sha256:".to_owned() + &"ab".repeat(32);
    // A pin belongs to a camera's host:port: one camera each (they present the same certificate).
    let config = format!(
        r#"
[streams.pinned]
uri = "rtsps://admin:{PASSWORD}@127.0.0.1:{a}/cam"
tls_fingerprint = "{colons}"

[streams.wrong]
uri = "rtsps://admin:{PASSWORD}@127.0.0.1:{b}/cam"
tls_fingerprint = "{wrong_pin}"

[streams.missing]
uri = "rtsps://admin:{PASSWORD}@127.0.0.1:{c}/cam"
"#,
        a = camera.port(),
        b = second.port(),
        c = third.port(),
    );
    let cg = start(&config, "a", &[]);
    let mut log = cg.startup_log.clone();

    let _viewer = play(&cg, "pinned");
    wait_status(&cg, &mut log, "pinned", &["PLAYING"]);
    let before = packets_in(&cg);
    std::thread::sleep(Duration::from_millis(1500));
    let after = packets_in(&cg);
    assert!(
        after > before + 10,
        "packets from the rtsps camera: {before} -> {after}"
    );
    // Its video in the metrics, labelled with the stream's name, not its URL.
    let (_, metrics) = cg.request("GET", "/metrics", None);
    let video = r#"camgate_stream_video_info{stream="pinned",codec="H264",profile=""#;
    assert!(metrics.contains(video), "{metrics}");
    assert!(!metrics.contains("admin"), "{metrics}");

    let info = failed_info(&mut play(&cg, "wrong"));
    assert!(info.contains(&reported), "wrong pin, info: {info}");
    assert!(info.contains("does not match"), "{info}");

    let info = failed_info(&mut play(&cg, "missing"));
    assert!(info.contains(&reported), "missing pin, info: {info}");
    assert!(info.contains("not trusted"), "{info}");
    assert!(
        info.contains(&format!("tls_fingerprint = \"{reported}\"")),
        "tells how to pin: {info}"
    );

    // Nothing camgate says carries the password: logs, find_all, metrics.
    std::thread::sleep(Duration::from_millis(200));
    log.extend(cg.logs());
    let (_, all) = cg.request("GET", "/rest-api/rtsp/find_all", None);
    let (_, metrics) = cg.request("GET", "/metrics", None);
    for (what, text) in [
        ("log", log.join("\n")),
        ("find_all", all),
        ("metrics", metrics),
    ] {
        assert!(!text.contains(PASSWORD), "password in the {what}:\n{text}");
    }
}

#[test]
fn verify_none_plays_unpinned_with_a_warning_keeps_pins_and_system_refuses_self_signed() {
    let (cert, key, colons, reported) = certificate("b");
    let camera = tls_camera(&cert, &key, &[]);
    let second = tls_camera(&cert, &key, &[]);
    let plain = plain_camera(&[]);
    let config = format!(
        r#"
[streams.cam]
uri = "rtsps://127.0.0.1:{}/cam"
"#,
        camera.port()
    );
    // Under `none` a pin is still a pin.
    let wrong_pin = format!(
        "[streams.wrong]\nuri = \"rtsps://127.0.0.1:{}/cam\"\ntls_fingerprint = \"sha256:{}\"\n",
        second.port(),
        "ab".repeat(32)
    );
    let cg = start(
        &format!("{config}{wrong_pin}"),
        "b-none",
        &["--rtsps-verify", "none"],
    );
    let mut log = cg.startup_log.clone();
    let _viewer = play(&cg, "cam");
    wait_status(&cg, &mut log, "cam", &["PLAYING"]);
    let info = failed_info(&mut play(&cg, "wrong"));
    assert!(
        info.contains(&reported) && info.contains("does not match"),
        "{info}"
    );
    // rtsps:// to a camera that speaks plain RTSP: said so, not a bare "corrupt message".
    let rtsp_url = format!("rtsps://127.0.0.1:{}/cam", plain.port());
    let info = failed_info(&mut play(&cg, &rtsp_url));
    assert!(info.contains("plain rtsp://"), "{info}");
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("rtsps_verify = \"none\"")),
        "a warning for none:\n{}",
        log.join("\n")
    );
    drop(cg);

    // `system`: a pin alone is not enough, the chain must reach a system root.
    let pinned = format!("{config}tls_fingerprint = \"{colons}\"\n");
    let cg = start(&pinned, "b-system", &["--rtsps-verify", "system"]);
    let info = failed_info(&mut play(&cg, "cam"));
    assert!(
        info.contains(&reported) && info.contains("not trusted"),
        "{info}"
    );
}
