//! Starts the real `camgate` binary on loopback with ephemeral ports and reads the addresses it
//! logs, so tests talk to it over real sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The lines a child prints, read on a thread of their own.
pub fn lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A recvonly offer, as the SDK or a WHEP player makes it: video, and audio if `audio`.
pub fn recvonly_offer(audio: bool) -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    let candidate = str0m::Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap();
    rtc.add_local_candidate(candidate);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    if audio {
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

/// A JSON body, or a panic that shows it.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// GStreamer's RTSP server (`tests/rtsp_server.py` on an ephemeral port, mount `/cam`, then
/// `args`), killed on drop.
pub struct GstCamera {
    child: Child,
    /// The URL it printed (`rtsp://127.0.0.1:PORT/cam`, or rtsps).
    pub url: String,
}

impl GstCamera {
    pub fn start(args: &[&str]) -> GstCamera {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/rtsp_server.py");
        // Debian's python has the GStreamer bindings (see the script's header).
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(["--port", "0", "--path", "/cam"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tests/rtsp_server.py starts (python3-gi, gir1.2-gst-rtsp-server-1.0)");
        let rx = lines(child.stdout.take().expect("piped stdout"));
        let url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the camera prints READY");
            if let Some(url) = line.strip_prefix("READY ") {
                break url.trim().to_owned();
            }
        };
        GstCamera { child, url }
    }

    /// The camera's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        (self.url.split_once("://127.0.0.1:"))
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a camera on 127.0.0.1: {}", self.url))
    }
}

impl Drop for GstCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Camgate {
    child: Child,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    /// HTTPS and WSS listeners (absent with `--no-tls`).
    pub https: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
    pub demo_url: String,
    /// The RTSP server for players (with `--rtsp-server`).
    pub rtsp: Option<SocketAddr>,
    /// Lines logged up to the last listener address.
    pub startup_log: Vec<String>,
    pub log: mpsc::Receiver<String>,
}

impl Camgate {
    /// Starts camgate on loopback with every port ephemeral, plus `extra` flags.
    pub fn start(extra: &[&str]) -> Camgate {
        Camgate::start_via(Command::new(env!("CARGO_BIN_EXE_camgate")), extra)
    }

    /// Like `start`, with the process's open files limit (`ulimit -n`) set to `limit` by
    /// util-linux `prlimit`, which execs camgate (the child process is camgate itself).
    pub fn start_with_open_files_limit(extra: &[&str], limit: u64) -> Camgate {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={limit}:{limit}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_camgate"));
        Camgate::start_via(command, extra)
    }

    /// `start` through `command`: camgate, or a wrapper that execs it.
    fn start_via(command: Command, extra: &[&str]) -> Camgate {
        let defaults = [
            ("--bind", "127.0.0.1"),
            ("--http-port", "0"),
            ("--ws-port", "0"),
            ("--https-port", "0"),
            ("--wss-port", "0"),
            ("--webrtc-port", "0"),
            ("--announce-ip", "127.0.0.1"),
            ("--rtsp-server", "127.0.0.1:0"),
            ("--log", "info"),
        ];
        // A flag given in `extra` replaces its default (clap refuses repeated flags).
        let mut args: Vec<&str> = defaults
            .iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|(flag, value)| [*flag, *value])
            .collect();
        args.extend_from_slice(extra);
        Camgate::spawn(command, &args)
    }

    /// Starts camgate with exactly these arguments and waits for the addresses it logs.
    pub fn start_raw(args: &[&str]) -> Camgate {
        Camgate::spawn(Command::new(env!("CARGO_BIN_EXE_camgate")), args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> Camgate {
        let mut child = command
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("camgate starts");
        let rx = lines(child.stdout.take().expect("piped stdout"));
        let (mut http, mut ws, mut demo_url) = (None, None, None);
        let (mut https, mut wss, mut rtsp) = (None, None, None);
        // The demo camera and TLS are optional; the UDP media line comes after every listener.
        let mut media = false;
        let mut startup_log = Vec::new();
        while http.is_none() || ws.is_none() || !media {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("camgate logs its addresses");
            let plain = strip_ansi(&line);
            startup_log.push(plain.clone());
            if let Some(rest) = plain.split("player page on http://").nth(1) {
                http = rest
                    .trim_end_matches('/')
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok());
            } else if let Some(rest) = plain.split("player page on https://").nth(1) {
                https = rest
                    .trim_end_matches('/')
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok());
            } else if let Some(rest) = plain
                .split("signaling (Flashphoner WebSocket) on ws://")
                .nth(1)
            {
                ws = rest.trim().parse().ok();
            } else if let Some(rest) = plain
                .split("signaling (Flashphoner WebSocket) on wss://")
                .nth(1)
            {
                wss = rest.trim().parse().ok();
            } else if let Some(rest) = plain.split("RTSP server for players on rtsp://").nth(1) {
                rtsp = rest.split('/').next().and_then(|a| a.parse().ok());
            } else if plain.contains("WebRTC media on udp") {
                media = true;
            } else if let Some(rest) = plain.split("demo camera at ").nth(1) {
                demo_url = Some(rest.trim().to_owned());
            }
        }
        Camgate {
            child,
            http: http.unwrap(),
            ws: ws.unwrap(),
            https,
            wss,
            demo_url: demo_url.unwrap_or_default(),
            rtsp,
            startup_log,
            log: rx,
        }
    }

    /// The value of `series` (name and labels) in /metrics.
    pub fn metric(&self, series: &str) -> u64 {
        let (status, body) = self.request("GET", "/metrics", None);
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {body}"))
    }

    /// One HTTP/1.1 request; returns (status, body).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let r = self.request_with(method, path, &[("Content-Type", "application/json")], body);
        (r.status, r.body)
    }

    /// One HTTP/1.1 request with extra headers, on the plain HTTP port.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> HttpResponse {
        let mut stream = TcpStream::connect(self.http).expect("connect to camgate");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        exchange(&mut stream, self.http, method, path, headers, body)
    }

    /// `request_with` from the local address `source` (another loopback address: a second
    /// client machine, as far as camgate can tell).
    pub fn request_from(
        &self,
        source: std::net::IpAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let mut stream = connect_from(source, self.http);
        exchange(&mut stream, self.http, method, path, headers, None)
    }

    /// One HTTPS request to the TLS port, accepting its (self-signed) certificate.
    pub fn https_request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> HttpResponse {
        let addr = self.https.expect("camgate serves HTTPS");
        let mut stream = tls_connect(addr);
        exchange(&mut stream, addr, method, path, headers, body)
    }

    /// Log lines so far (drained).
    pub fn logs(&self) -> Vec<String> {
        self.log.try_iter().map(|l| strip_ansi(&l)).collect()
    }

    /// The process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Camgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct HttpResponse {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

fn exchange(
    stream: &mut dyn ReadWrite,
    host: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify; what was read so far is the response.
    let _ = stream.read_to_end(&mut raw);
    let response = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A TCP connection to `to` from the local address `source`.
pub fn connect_from(source: std::net::IpAddr, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&to.into()).expect("connect to camgate");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TLS client connection that accepts any certificate: the server's is self-signed.
pub fn tls_connect(addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).expect("connect to camgate over TLS");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[derive(Debug)]
struct AcceptAnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Writes `text` to a fresh file under the system temp directory and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("camgate-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A signaling session over plain TCP, as the Flashphoner SDK opens it.
pub type Ws = tungstenite::WebSocket<std::net::TcpStream>;

/// A WebSocket session that asked to play `name`.
pub fn play(cg: &Camgate, name: &str) -> Ws {
    let stream = std::net::TcpStream::connect(cg.ws).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", cg.ws), stream).expect("handshake");
    let connection = serde_json::json!({"message": "connection", "data": [{
        "appKey": "defaultApp", "mediaProviders": ["WebRTC"]}]});
    let play = serde_json::json!({"message": "playStream", "data": [{"mediaSessionId": "m1",
        "name": name, "published": false, "status": "PENDING", "sdp": recvonly_offer(false)}]});
    for msg in [connection, play] {
        ws.send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
    }
    ws
}

/// The stream status messages of `ws` until FAILED or the socket closes: the FAILED info.
pub fn failed_info(ws: &mut Ws) -> String {
    loop {
        let msg = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => json(t.as_str()),
            Ok(_) => continue,
            Err(e) => panic!("closed before FAILED: {e}"),
        };
        let data = &msg["data"][0];
        if msg["message"] == "notifyStreamStatusEvent" && data["status"] == "FAILED" {
            return data["info"].as_str().unwrap_or_default().to_owned();
        }
    }
}

/// A WebSocket session from `source` whose `connection` message carries `connection` (extra
/// fields: `authToken`, `custom`) and that asks to play `name` with `stream_custom` as the
/// stream options' `custom` (as the Flashphoner SDK sends them).
pub fn play_with(
    cg: &Camgate,
    source: std::net::IpAddr,
    name: &str,
    connection: serde_json::Value,
    stream_custom: Option<serde_json::Value>,
) -> Ws {
    let stream = connect_from(source, cg.ws);
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", cg.ws), stream).expect("handshake");
    let mut hello = serde_json::json!({"appKey": "defaultApp", "mediaProviders": ["WebRTC"]});
    if let (Some(h), Some(extra)) = (hello.as_object_mut(), connection.as_object()) {
        h.extend(extra.clone());
    }
    let connection = serde_json::json!({"message": "connection", "data": [hello]});
    let mut play = serde_json::json!({"mediaSessionId": "m1", "name": name, "published": false,
        "status": "PENDING", "sdp": recvonly_offer(false)});
    if let Some(custom) = stream_custom {
        play["custom"] = custom;
    }
    let play = serde_json::json!({"message": "playStream", "data": [play]});
    for msg in [connection, play] {
        ws.send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
    }
    ws
}

/// How a play went: the gateway answered the offer, or the stream FAILED (with its info), or
/// the session was closed before either.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Failed(String),
    Closed,
}

/// Reads `ws` until the play's answer, its FAILED status, or the end of the session.
pub fn outcome(ws: &mut Ws) -> Outcome {
    loop {
        let msg = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => json(t.as_str()),
            Ok(tungstenite::Message::Close(_)) | Err(_) => return Outcome::Closed,
            Ok(_) => continue,
        };
        let data = &msg["data"][0];
        if msg["message"] == "setRemoteSDP" {
            return Outcome::Answered;
        }
        if msg["message"] == "notifyStreamStatusEvent" && data["status"] == "FAILED" {
            return Outcome::Failed(data["info"].as_str().unwrap_or_default().to_owned());
        }
    }
}

/// `s` percent-encoded for a URL path segment (a camera URL as a WHEP stream).
pub fn percent_encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// RTSP players of camgate's RTSP server (server/tests/rtsp_out*.rs).

/// camgate with `camera` as `[streams.cam]` and the RTSP server on an ephemeral port, plus
/// `settings` (top-level TOML lines); the stream's `rtsp://` URL.
pub fn camgate_with(camera: &GstCamera, settings: &str) -> (Camgate, String) {
    camgate_pulling(
        &camera.url,
        &format!("rtsp_out_{}", camera.port()),
        settings,
    )
}

/// camgate with `uri` as `[streams.cam]` (config file `tag`.toml) and the RTSP server on an
/// ephemeral port, plus `settings`; the stream's `rtsp://` URL.
pub fn camgate_pulling(uri: &str, tag: &str, settings: &str) -> (Camgate, String) {
    let config = temp_file(
        &format!("{tag}.toml"),
        &format!("{settings}[streams.cam]\nuri = \"{uri}\"\n"),
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

/// Runs `cmd` to its end: success, and stdout then stderr.
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .expect("the client runs (Debian ffmpeg / gstreamer1.0-tools)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `decoded_frames` reading `interval` (ffprobe's `-read_intervals`). Over UDP a time window can
/// end early on a loaded machine (ffprobe rebases timestamps when the first sender report comes
/// in; seen straight from the camera too), a packet count cannot.
pub fn decoded_frames_in(
    input: &str,
    transport: Option<&str>,
    interval: &str,
) -> Vec<(String, u64)> {
    let options: Vec<&str> = transport.map_or(vec![], |t| vec!["-rtsp_transport", t]);
    decoded_frames_with(input, &options, interval)
}

/// Frames ffprobe decoded per stream of `input` (FFmpeg's codec name, count) in `interval`,
/// with input `options` (`-rtsp_transport udp`, `-allowed_media_types audio`...).
pub fn decoded_frames_with(input: &str, options: &[&str], interval: &str) -> Vec<(String, u64)> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(options);
    let (ok, text) = run(cmd.args([
        "-v",
        "error",
        "-read_intervals",
        interval,
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
