//! Operating camgate: HTTPS/WSS, the config file, named streams, access control, metrics and
//! WHEP, each against the real binary over real sockets.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{json, percent_encode_segment, recvonly_offer, temp_file, tls_connect, Camgate};
use serde_json::Value;
use tungstenite::Message;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Ws = tungstenite::WebSocket<Box<dyn common::ReadWrite>>;

fn ws_connect(addr: std::net::SocketAddr, tls: bool) -> Ws {
    let stream: Box<dyn common::ReadWrite> = if tls {
        Box::new(tls_connect(addr))
    } else {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Box::new(s)
    };
    let scheme = if tls { "wss" } else { "ws" };
    let (ws, _) = tungstenite::client(format!("{scheme}://{addr}/"), stream).expect("handshake");
    ws
}

/// The next text message, or None when the server closed the socket.
fn next_text(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(json(t.as_str())),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).unwrap();
}

fn connection(token: Option<&str>) -> Value {
    serde_json::json!({"message": "connection", "data": [{"appKey": "defaultApp",
        "authToken": token, "mediaProviders": ["WebRTC"]}]})
}

fn play(name: &str) -> Value {
    serde_json::json!({"message": "playStream", "data": [{"mediaSessionId": "m1",
        "name": name, "published": false, "status": "PENDING", "sdp": recvonly_offer(true)}]})
}

/// Status messages for `m1` until one with `status`, skipping other messages.
fn wait_status(ws: &mut Ws, status: &str) -> Value {
    loop {
        let msg = next_text(ws).unwrap_or_else(|| panic!("closed before {status}"));
        if msg["message"] == "notifyStreamStatusEvent" && msg["data"][0]["status"] == status {
            return msg["data"][0].clone();
        }
    }
}

/// A message longer than the WebSocket read buffer (4 KiB) arrives whole: a browser's SDP offer
/// with many codecs and candidates is 5-10 KiB.
#[test]
fn a_signaling_message_longer_than_the_read_buffer_is_read_whole() {
    let cg = Camgate::start(&[]);
    let mut ws = ws_connect(cg.ws, false);
    let mut msg = connection(None);
    msg["data"][0]["custom"] = serde_json::json!({ "note": "x".repeat(20_000) });
    send(&mut ws, msg);
    let reply = next_text(&mut ws).expect("an answer, not a close");
    assert_eq!(reply["message"], "getUserData", "{reply}");
}

#[test]
fn https_rest_and_wss_signaling_with_the_self_signed_certificate() {
    let cg = Camgate::start(&[]);
    let logs = cg.startup_log.join("\n");
    assert!(
        logs.contains("self-signed certificate, SHA-256 fingerprint"),
        "{logs}"
    );
    let page = cg.https_request_with("GET", "/", &[], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&cg.demo_url));
    let none = cg.https_request_with("GET", "/rest-api/rtsp/find_all", &[], None);
    assert_eq!(none.status, 404, "{}", none.body);
    let start = format!(r#"{{"uri":"{}"}}"#, cg.demo_url);
    let r = cg.https_request_with(
        "POST",
        "/rest-api/rtsp/startup",
        &[("Content-Type", "application/json")],
        Some(&start),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let mut ws = ws_connect(cg.wss.unwrap(), true);
    send(&mut ws, connection(None));
    let hello = next_text(&mut ws).expect("getUserData");
    assert_eq!(hello["message"], "getUserData");
    send(&mut ws, play(&cg.demo_url));
    let answer = loop {
        let msg = next_text(&mut ws).expect("an answer");
        if msg["message"] == "setRemoteSDP" {
            break msg;
        }
    };
    assert!(answer["data"][1].as_str().unwrap().contains("m=video"));
}

#[test]
fn print_config_parses_back_to_the_defaults_and_every_setting_is_documented() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = run(&["--print-config"]);
    let defaults: toml::Table = toml::from_str(&printed).expect("printed config is TOML");
    assert_eq!(defaults["ws_port"].as_integer(), Some(8080));
    assert_eq!(defaults["http_port"].as_integer(), Some(8081));
    assert_eq!(defaults["wss_port"].as_integer(), Some(8443));
    assert_eq!(defaults["https_port"].as_integer(), Some(8444));
    // Fed back as a config file, it changes nothing.
    let path = temp_file("printed.toml", &printed);
    assert_eq!(
        run(&["--config", path.to_str().unwrap(), "--print-config"]),
        printed
    );

    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md")).unwrap();
    for line in printed.lines() {
        let line = line.trim_start_matches("# ");
        if let Some((key, _)) = line.split_once(" = ") {
            assert!(
                doc.contains(&format!("{key}`")),
                "{key} is not in docs/CONFIG.md"
            );
        }
    }
}

#[test]
fn a_config_file_is_honoured() {
    let (http, demo) = (free_port(), free_port());
    let config = format!(
        r#"bind = "127.0.0.1"
http_port = {http}
ws_port = 0
https_port = 0
wss_port = 0
webrtc_port = 0
announce_ips = ["127.0.0.1"]
rtsp_server = "127.0.0.1:{demo}"
tls = false
"#
    );
    let path = temp_file("ports.toml", &config);
    let cg = Camgate::start_raw(&["--config", path.to_str().unwrap()]);
    assert_eq!(cg.http.port(), http);
    assert!(cg.https.is_none(), "tls = false serves no HTTPS");
    assert_eq!(cg.demo_url, format!("rtsp://127.0.0.1:{demo}/demo"));
    assert_eq!(cg.request("GET", "/", None).0, 200);
}

/// Another RTSP server on the RTSP server's port (MediaMTX, go2rtc and many NVRs default to
/// 8554) must not stop camgate: it serves without its RTSP server and the demo, warns once
/// naming the port and the setting that moves it, and neither the page nor the APIs offer the
/// demo URL.
#[test]
fn a_taken_demo_port_turns_the_demo_off_and_camgate_keeps_serving() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let mut cg = Camgate::start(&["--rtsp-server", &bind]);
    assert_eq!(
        cg.demo_url, "",
        "no demo camera runs: {:#?}",
        cg.startup_log
    );

    let (status, page) = cg.request("GET", "/", None);
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-default-url="""#), "{page}");
    assert!(!page.contains(&format!(":{port}/")), "{page}");
    let (status, streams) = cg.request("GET", "/api/streams", None);
    assert_eq!((status, streams.as_str()), (200, "[]"));
    let (status, _) = cg.request("GET", "/rest-api/rtsp/find_all", None);
    assert_eq!(status, 404, "no stream, the demo included");

    std::thread::sleep(Duration::from_millis(300));
    assert!(cg.is_running());
    let mut log = cg.startup_log.clone();
    log.extend(cg.logs());
    let about_demo: Vec<_> = log.iter().filter(|l| l.contains("demo")).collect();
    assert_eq!(about_demo.len(), 1, "one line about the demo: {log:#?}");
    let warning = about_demo[0];
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(warning.contains(&format!("port {port} ")), "{warning}");
    assert!(warning.contains("is taken"), "{warning}");
    assert!(warning.contains("--rtsp-server"), "{warning}");
    assert!(warning.contains("rtsp_server"), "{warning}");
    drop(taken);
}

#[test]
fn metrics_are_prometheus_text() {
    let cg = Camgate::start(&[]);
    // A camera connection: the demo through camgate's own RTSP server (the demo's own URL
    // would play the clip with no connection).
    let camera = cg.demo_url.replace("127.0.0.1", "localhost");
    let start = format!(r#"{{"uri":"{camera}"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&start)).0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = cg.request_with("GET", "/metrics", &[], None);
        assert_eq!(r.status, 200);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let mut typed = std::collections::HashMap::new();
        let mut values = std::collections::HashMap::new();
        for line in r.body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind == "gauge" || kind == "counter", "{line}");
                typed.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(typed.contains_key(name), "no TYPE before {line}");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
                values.insert(series.to_owned(), value);
            }
        }
        for name in [
            "camgate_viewers",
            "camgate_camera_bytes_in_total",
            "camgate_camera_packets_in_total",
            "camgate_camera_packets_lost_total",
            "camgate_datagrams_out_total",
            "camgate_rtsp_connects_total",
            "camgate_rtsp_errors_total",
        ] {
            assert!(values.contains_key(name), "{name} missing:\n{}", r.body);
        }
        assert_eq!(values["camgate_rtsp_connects_total"], 1.0);
        // The camera's stream and the demo's it pulls.
        if values["camgate_streams{state=\"playing\"}"] == 2.0
            && values["camgate_camera_packets_in_total"] > 0.0
        {
            assert!(values["camgate_camera_bytes_in_total"] > 0.0);
            // Measured by the event loop around the camera's reads (core reads no clock).
            assert!(values["camgate_camera_input_seconds_total"] > 0.0);
            // What each stream's video is, one info series per stream.
            let video: Vec<_> = (values.iter())
                .filter(|(s, _)| s.starts_with("camgate_stream_video_info{"))
                .collect();
            assert_eq!(video.len(), 2, "{}", r.body);
            for url in [&camera, &cg.demo_url] {
                let stream = format!("{{stream=\"{url}\",codec=\"H264\",profile=\"");
                let (series, value) = (video.iter())
                    .find(|(s, _)| s.contains(&stream))
                    .unwrap_or_else(|| panic!("{stream}: {}", r.body));
                assert!(**value == 1.0, "{series}");
                assert!(!series.contains("profile=\"\""), "a profile: {series}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "never playing:\n{}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_auth_token_guards_the_apis_and_signaling() {
    let cg = Camgate::start(&["--auth-token", "s3cret"]);
    // Refused without or with a wrong token, with a JSON reason.
    for auth in [None, Some("Bearer nope"), Some("Basic s3cret")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        for path in ["/rest-api/rtsp/find_all", "/metrics", "/api/streams"] {
            let r = cg.request_with("GET", path, &headers, None);
            assert_eq!(r.status, 401, "{path} with {auth:?}");
            assert_eq!(json(&r.body)["status"], 401);
        }
    }
    let ok = [("Authorization", "Bearer s3cret")];
    assert_eq!(
        cg.request_with("GET", "/rest-api/rtsp/find_all", &ok, None)
            .status,
        404
    );
    assert_eq!(cg.request_with("GET", "/metrics", &ok, None).status, 200);
    // The page itself is public.
    assert_eq!(cg.request("GET", "/", None).0, 200);

    // Signaling: a wrong token closes the socket before any getUserData.
    let mut ws = ws_connect(cg.ws, false);
    send(&mut ws, connection(Some("nope")));
    assert_eq!(next_text(&mut ws), None);
    // So does playing without a connection message.
    let mut ws = ws_connect(cg.ws, false);
    send(&mut ws, play(&cg.demo_url));
    assert_eq!(next_text(&mut ws), None);
    let mut ws = ws_connect(cg.ws, false);
    send(&mut ws, connection(Some("s3cret")));
    assert_eq!(next_text(&mut ws).unwrap()["message"], "getUserData");
    send(&mut ws, play(&cg.demo_url));
    wait_status(&mut ws, "PENDING");
}

#[test]
fn allowed_hosts_refuse_other_cameras() {
    let cg = Camgate::start(&[
        "--allowed-host",
        "10.1.2.0/24",
        "--allowed-host",
        "cam.test",
    ]);
    let start = format!(r#"{{"uri":"{}"}}"#, cg.demo_url);
    let (status, body) = cg.request("POST", "/rest-api/rtsp/startup", Some(&start));
    assert_eq!(status, 403);
    assert_eq!(json(&body)["error"], "Restricted access");
    let mut ws = ws_connect(cg.ws, false);
    send(&mut ws, connection(None));
    next_text(&mut ws).unwrap();
    send(&mut ws, play(&cg.demo_url));
    let failed = wait_status(&mut ws, "FAILED");
    assert_eq!(failed["info"], "Restricted access");
    let r = cg.request_with(
        "POST",
        &format!("/whep/{}", percent_encode_segment(&cg.demo_url)),
        &[("Content-Type", "application/sdp")],
        Some(&recvonly_offer(true)),
    );
    assert_eq!(r.status, 403);
    drop(cg);

    let cg = Camgate::start(&["--allowed-host", "127.0.0.0/8"]);
    let start = format!(r#"{{"uri":"{}"}}"#, cg.demo_url);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&start)).0,
        200
    );
}

#[test]
fn named_streams_hide_the_camera_url() {
    let demo = free_port();
    let config = format!(
        r#"allowed_hosts = ["10.0.0.1"]

[streams.lobby]
uri = "rtsp://admin:hunter2@127.0.0.1:{demo}/demo"

[streams.yard]
uri = "rtsp://admin:hunter2@127.0.0.1:{demo}/demo?yard"
pull_at_start = true
"#
    );
    let path = temp_file("named.toml", &config);
    let rtsp_server = format!("127.0.0.1:{demo}");
    let cg = Camgate::start(&[
        "--config",
        path.to_str().unwrap(),
        "--rtsp-server",
        &rtsp_server,
    ]);

    // Pulled at start, listed by name.
    let (status, body) = cg.request("GET", "/rest-api/rtsp/find_all", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)[0]["uri"], "yard", "{body}");

    // REST by name: named streams are allowed whatever allowed_hosts says.
    let (status, body) = cg.request("POST", "/rest-api/rtsp/startup", Some(r#"{"uri":"lobby"}"#));
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["uri"], "lobby");
    let (_, body) = cg.request("GET", "/rest-api/rtsp/find_all", None);
    assert!(
        body.contains("\"lobby\"") && !body.contains("hunter2"),
        "{body}"
    );

    // A browser plays by name and hears only the name back.
    let mut ws = ws_connect(cg.ws, false);
    send(&mut ws, connection(None));
    next_text(&mut ws).unwrap();
    send(&mut ws, play("lobby"));
    let mut seen = Vec::new();
    loop {
        let msg = next_text(&mut ws).expect("messages until the answer");
        let text = msg.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("rtsp://"),
            "{text}"
        );
        seen.push(msg.clone());
        if msg["message"] == "setRemoteSDP" {
            break;
        }
    }
    let pending = seen
        .iter()
        .find(|m| m["message"] == "notifyStreamStatusEvent")
        .expect("a status before the answer");
    assert_eq!(pending["data"][0]["name"], "lobby");

    assert_eq!(
        cg.request(
            "POST",
            "/rest-api/rtsp/terminate",
            Some(r#"{"uri":"lobby"}"#)
        )
        .0,
        200
    );
    std::thread::sleep(Duration::from_millis(300));
    let logs = cg.logs().join("\n");
    assert!(!logs.contains("hunter2"), "{logs}");
}

#[test]
fn whep_offer_answer_and_delete() {
    let demo = free_port();
    let config = format!(
        r#"[streams.lobby]
uri = "rtsp://127.0.0.1:{demo}/demo"
"#
    );
    let path = temp_file("whep.toml", &config);
    let rtsp_server = format!("127.0.0.1:{demo}");
    let cg = Camgate::start(&[
        "--config",
        path.to_str().unwrap(),
        "--rtsp-server",
        &rtsp_server,
    ]);
    let sdp = [("Content-Type", "application/sdp")];

    for target in [percent_encode_segment(&cg.demo_url), "lobby".to_owned()] {
        let r = cg.request_with(
            "POST",
            &format!("/whep/{target}"),
            &sdp,
            Some(&recvonly_offer(true)),
        );
        assert_eq!(r.status, 201, "{target}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/sdp"));
        assert!(
            r.body.starts_with("v=0") && r.body.contains("m=video"),
            "{}",
            r.body
        );
        let location = r.header("location").expect("Location").to_owned();
        assert!(location.starts_with("/whep/session/"), "{location}");
        let (status, body) = cg.request("GET", "/api/streams", None);
        assert_eq!(status, 200);
        assert_eq!(json(&body)[0]["viewers"], 1, "{body}");
        assert_eq!(cg.request_with("DELETE", &location, &[], None).status, 200);
        assert_eq!(cg.request_with("DELETE", &location, &[], None).status, 404);
    }

    // Over HTTPS too.
    let r = cg.https_request_with("POST", "/whep/lobby", &sdp, Some(&recvonly_offer(true)));
    assert_eq!(r.status, 201, "{}", r.body);

    // Unknown names, wrong content type, a camera that isn't there.
    assert_eq!(
        cg.request_with("POST", "/whep/nope", &sdp, Some(&recvonly_offer(true)))
            .status,
        404
    );
    let r = cg.request_with(
        "POST",
        "/whep/lobby",
        &[("Content-Type", "text/plain")],
        Some("x"),
    );
    assert_eq!(r.status, 415);
    let dead = percent_encode_segment("rtsp://127.0.0.1:9/none");
    let r = cg.request_with(
        "POST",
        &format!("/whep/{dead}"),
        &sdp,
        Some(&recvonly_offer(true)),
    );
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(json(&r.body)["error"].is_string());
    assert_eq!(
        cg.request_with("DELETE", "/whep/session/nope", &[], None)
            .status,
        404
    );
}

/// A WHEP player that never connects (its ICE checks never come) is ended at `ice_timeout_secs`
/// with the reason in the log, and stops counting as a viewer; the camera goes on for others.
#[test]
fn a_whep_session_whose_ice_never_completes_ends_with_the_reason() {
    let cg = Camgate::start(&["--ice-timeout-secs", "1"]);
    let sdp = [("Content-Type", "application/sdp")];
    let target = format!("/whep/{}", percent_encode_segment(&cg.demo_url));
    // Before the POST: the timeout runs from the answer, which a loaded box may send late.
    let posted = Instant::now();
    let r = cg.request_with("POST", &target, &sdp, Some(&recvonly_offer(true)));
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("location").expect("Location").to_owned();
    let viewers = || json(&cg.request("GET", "/api/streams", None).1)[0]["viewers"].clone();
    assert_eq!(viewers(), 1);
    let deadline = posted + Duration::from_secs(5);
    while viewers() != 0 {
        assert!(
            Instant::now() < deadline,
            "the WHEP viewer is still counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = posted.elapsed();
    assert!(after >= Duration::from_millis(900), "ended after {after:?}");
    assert_eq!(cg.request_with("DELETE", &location, &[], None).status, 404);
    let ended = cg
        .logs()
        .into_iter()
        .find(|l| l.contains("WHEP session ended"))
        .expect("a log line for the end");
    assert!(
        ended.contains("no ICE connectivity: camgate's UDP 127.0.0.1:")
            && ended.contains("got no check from the browser within 1 s"),
        "{ended}"
    );
    // The camera stays pulled (it lingers) and plays for the next viewer.
    let r = cg.request_with("POST", &target, &sdp, Some(&recvonly_offer(true)));
    assert_eq!(r.status, 201, "{}", r.body);
}
