//! The servers under test: camgate (Flashphoner WebSocket signaling) and Janus 1.1.2 (streaming
//! plugin, HTTP API), each started as a child process, plus /proc readings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use str0m::Candidate;
use tungstenite::Message;

use crate::viewers::{new_rtc, Ready, ViewerSocket};

pub type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(ctx: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{ctx}: {e}")
}

pub struct Server {
    pub child: Child,
    pub kind: Kind,
    _dir: Option<PathBuf>,
    /// SRTP profiles the server reported negotiating (camgate: its DTLS debug line).
    pub srtp: Arc<Mutex<Vec<String>>>,
    /// The configuration files it ran with (Janus), for the report.
    pub config: String,
    /// camgate's RTSP server for players, when it serves the camera as a named stream.
    pub rtsp: Option<SocketAddr>,
}

pub enum Kind {
    Camgate { ws: SocketAddr, http: SocketAddr },
    Janus { http: SocketAddr },
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self._dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `taskset -c CPUS PROGRAM` when `cpus` is given (the server pinned away from the load generator).
fn pinned(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

pub fn start_camgate(bin: &Path, workers: usize, cpus: Option<&str>) -> Res<Server> {
    start_camgate_with(bin, workers, cpus, None)
}

/// The name of the bench camera's stream in camgate's RTSP server (`rtsp://ADDR/bench`).
pub const STREAM_NAME: &str = "bench";

/// `start_camgate`; with `named` (the camera's URL), camgate also serves that camera as the named
/// stream [`STREAM_NAME`] (pulled at start) from its RTSP server on an ephemeral loopback port.
/// `BENCH_CALLGRIND=FILE` runs it under callgrind with instrumentation off until
/// `callgrind::instr` turns it on.
pub fn start_camgate_with(
    bin: &Path,
    workers: usize,
    cpus: Option<&str>,
    named: Option<&str>,
) -> Res<Server> {
    // camgate's own per-stream and total viewer limits (500 and 2,000 by default) are raised out
    // of the way: the capacity search measures the machine, not the default configuration.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("camgate-bench-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(err("mkdir"))?;
    let mut config = String::from("max_viewers = 100000\nmax_viewers_per_stream = 100000\n");
    if let Some(url) = named {
        config += &format!("[streams.{STREAM_NAME}]\nuri = \"{url}\"\npull_at_start = true\n");
    }
    let config_file = dir.join("camgate.toml");
    std::fs::write(&config_file, config).map_err(err("write config"))?;
    let rtsp_server = if named.is_some() {
        "127.0.0.1:0"
    } else {
        "off"
    };
    let rtsp_args: Vec<String> = vec![
        "--config".into(),
        config_file.display().to_string(),
        "--rtsp-server".into(),
        rtsp_server.into(),
    ];
    let callgrind = std::env::var("BENCH_CALLGRIND").ok();
    let mut cmd = match &callgrind {
        Some(out) => {
            let mut c = pinned(Path::new("valgrind"), cpus);
            c.args(["--tool=callgrind", "--instr-atstart=no"])
                .arg(format!("--callgrind-out-file={out}"))
                .arg(bin);
            c
        }
        None => pinned(bin, cpus),
    };
    let mut child = cmd
        .args(["--workers", &workers.to_string()])
        .args([
            "--bind",
            "127.0.0.1",
            "--http-port",
            "0",
            "--ws-port",
            "0",
            "--https-port",
            "0",
            "--wss-port",
            "0",
            "--no-tls",
            "--webrtc-port",
            "0",
            "--announce-ip",
            "127.0.0.1",
            "--no-demo",
            "--log",
            // camgate::dtls=debug: one line per viewer with the negotiated SRTP profile.
            "info,str0m=warn,dimpl=warn,camgate::dtls=debug",
        ])
        .args(&rtsp_args)
        // For A/B runs of one binary, e.g. BENCH_CAMGATE_ARGS=--no-udp-gso.
        .args(
            std::env::var("BENCH_CAMGATE_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(err("spawn camgate"))?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // BENCH_CAMGATE_LOG=FILE: camgate's log is kept there too.
    let mut keep =
        std::env::var_os("BENCH_CAMGATE_LOG").and_then(|f| std::fs::File::create(f).ok());
    let srtp = Arc::new(Mutex::new(Vec::new()));
    let srtp2 = srtp.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(f) = keep.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if let Some(p) = line.split("srtp=").nth(1) {
                let p = p.split_whitespace().next().unwrap_or("").trim_matches('"');
                let p = p
                    .trim_start_matches("Some(")
                    .trim_end_matches(')')
                    .trim_matches('"');
                let mut v = srtp2.lock().unwrap();
                if !v.iter().any(|x| x == p) {
                    v.push(p.to_string());
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    let (mut ws, mut media, mut http, mut rtsp) = (None, false, None, None);
    // Under valgrind start-up takes far longer.
    let deadline = Instant::now() + Duration::from_secs(if callgrind.is_some() { 120 } else { 20 });
    while ws.is_none() || !media || http.is_none() || (named.is_some() && rtsp.is_none()) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| "camgate did not log its addresses".to_string())?;
        if let Some(rest) = line
            .split("signaling (Flashphoner WebSocket) on ws://")
            .nth(1)
        {
            ws = rest.trim().parse().ok();
        } else if let Some(rest) = line.split("player page on http://").nth(1) {
            http = rest.trim().trim_end_matches('/').parse().ok();
        } else if line.contains("WebRTC media on udp") {
            media = true;
        } else if let Some(rest) = line.split("RTSP server for players on rtsp://").nth(1) {
            rtsp = rest.trim().trim_end_matches("/NAME").parse().ok();
        }
    }
    Ok(Server {
        child,
        kind: Kind::Camgate {
            ws: ws.unwrap(),
            http: http.unwrap(),
        },
        _dir: Some(dir),
        srtp,
        config: String::new(),
        rtsp,
    })
}

fn bind_udp(ip: &str) -> Res<(std::net::UdpSocket, SocketAddr)> {
    let sock = std::net::UdpSocket::bind((ip, 0)).map_err(err("udp bind"))?;
    let _ = set_rcvbuf(&sock, 1 << 20);
    let local = sock.local_addr().map_err(err("udp addr"))?;
    Ok((sock, local))
}

#[allow(unsafe_code)] // setsockopt through libc: std has no buffer size setter
pub(crate) fn set_rcvbuf(sock: &std::net::UdpSocket, bytes: libc::c_int) -> libc::c_int {
    // SAFETY: the socket is open for the call; `bytes` is a live c_int whose size is passed.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    }
}

/// One camgate viewer: `connection` → `getUserData`, `playStream` (offer) → `setRemoteSDP`.
/// `tcp`: the viewer asks for `transport: "TCP"` and connects to the answer's ICE-TCP
/// candidate (RFC 6544 active side) instead of using a UDP socket.
pub fn camgate_viewer(
    ws_addr: SocketAddr,
    url: &str,
    n: usize,
    tcp: bool,
    opus: bool,
) -> Res<Ready> {
    let mut rtc = new_rtc(Instant::now(), opus);
    let udp = if tcp {
        None
    } else {
        let (sock, local) = bind_udp("127.0.0.1")?;
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(err("candidate"))?);
        Some((sock, local))
    };
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("no offer")?;
    let stream = TcpStream::connect(ws_addr).map_err(err("ws connect"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(err("timeout"))?;
    stream.set_nodelay(true).ok();
    let (mut ws, _) =
        tungstenite::client(format!("ws://{ws_addr}/"), stream).map_err(err("ws handshake"))?;
    let send = |ws: &mut tungstenite::WebSocket<TcpStream>, v: Value| {
        ws.send(Message::text(v.to_string()))
            .map_err(err("ws send"))
    };
    send(
        &mut ws,
        json!({"message": "connection", "data": [{"appKey": "defaultApp", "mediaProviders": ["WebRTC"]}]}),
    )?;
    let read = |ws: &mut tungstenite::WebSocket<TcpStream>, want: &str| -> Res<Value> {
        loop {
            let m = ws.read().map_err(err("ws read"))?;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).map_err(err("json"))?;
            if v["message"] == want {
                return Ok(v);
            }
            if v["message"] == "notifyStreamStatusEvent" && v["data"][0]["status"] == "FAILED" {
                return Err(format!("FAILED: {}", v["data"][0]["info"]));
            }
        }
    };
    read(&mut ws, "getUserData")?;
    let play_sent = Instant::now();
    send(
        &mut ws,
        json!({"message": "playStream", "data": [{"mediaSessionId": format!("bench-{n}"), "name": url,
            "published": false, "hasVideo": true, "hasAudio": true, "status": "PENDING",
            "transport": if tcp { "TCP" } else { "UDP" },
            "sdp": offer.to_sdp_string()}]}),
    )?;
    let v = read(&mut ws, "setRemoteSDP")?;
    let answer_sdp = v["data"][1].as_str().ok_or("no sdp")?;
    let answer = SdpAnswer::from_sdp_string(answer_sdp).map_err(err("answer"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(err("accept answer"))?;
    let (sock, local) = match udp {
        Some((sock, local)) => (ViewerSocket::Udp(sock), local),
        None => {
            // a=candidate:… 1 tcp PRIO ADDR PORT typ host tcptype passive
            let server: SocketAddr = answer_sdp
                .lines()
                .filter(|l| l.starts_with("a=candidate:") && l.contains(" tcptype passive"))
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    format!("{}:{}", f.get(4)?, f.get(5)?).parse().ok()
                })
                .ok_or("no ICE-TCP candidate in the answer")?;
            let stream = TcpStream::connect(server).map_err(err("ice-tcp connect"))?;
            stream.set_nodelay(true).ok();
            let local = stream.local_addr().map_err(err("ice-tcp addr"))?;
            let candidate = Candidate::builder()
                .tcp()
                .host(local)
                .tcptype(str0m::net::TcpType::Active)
                .build()
                .map_err(err("candidate"))?;
            rtc.add_local_candidate(candidate);
            (ViewerSocket::Tcp(stream, server), local)
        }
    };
    Ok(Ready {
        rtc,
        sock,
        local,
        ws: Some(ws),
        play_sent,
        index: n,
        janus_ids: None,
    })
}

// ------------------------------------------------------------------------------------------
// Janus
// ------------------------------------------------------------------------------------------

pub const JANUS_PORT: u16 = 18088;
pub const JANUS_ADMIN_PORT: u16 = 17088;
const JANUS_ADMIN_SECRET: &str = "bench";

/// Janus configured as its documentation advises for many viewers of one stream:
/// `event_loops` = the cores it runs on (static loops, not a thread per viewer), the streaming
/// plugin's keyframe buffering (`videobufferkf`) for instant start. It has no receive-buffer
/// setting: its RTSP sockets get the kernel's `net.core.rmem_default` (printed with the results).
pub fn start_janus(
    camera_url: &str,
    dir: &Path,
    event_loops: usize,
    cpus: Option<&str>,
) -> Res<Server> {
    std::fs::create_dir_all(dir).map_err(err("mkdir"))?;
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let d = dir.display();
    let files = [
        (
            "janus.jcfg",
            format!(
                r#"general: {{
	configs_folder = "{d}"
	plugins_folder = "{lib}/plugins"
	transports_folder = "{lib}/transports"
	events_folder = "{lib}/events"
	loggers_folder = "{lib}/loggers"
	debug_level = 3
	session_timeout = 0
	event_loops = {event_loops}
}}
media: {{
	rtp_port_range = "40000-49999"
}}
nat: {{
	nice_debug = false
	ice_enforce_list = "d0"
}}
plugins: {{
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_videoroom.so,libjanus_voicemail.so"
}}
transports: {{
	disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
events: {{
	broadcast = false
}}
"#
            ),
        ),
        (
            "janus.transport.http.jcfg",
            format!(
                "general: {{\n json = \"compact\"\n base_path = \"/janus\"\n http = true\n port = {JANUS_PORT}\n ip = \"127.0.0.1\"\n https = false\n}}\nadmin: {{\n admin_base_path = \"/admin\"\n admin_http = true\n admin_port = {JANUS_ADMIN_PORT}\n admin_ip = \"127.0.0.1\"\n admin_https = false\n}}\n"
            ),
        ),
        (
            "janus.plugin.streaming.jcfg",
            format!(
                r#"general: {{
	rtp_port_range = "20000-20999"
	events = false
}}
cam1: {{
	type = "rtsp"
	id = 1
	description = "bench camera"
	url = "{camera_url}"
	video = true
	audio = true
	rtsp_failcheck = true
	rtsp_reconnect_delay = 5
	rtsp_timeout = 10
	rtsp_conn_timeout = 5
	videobufferkf = true
}}
"#
            ),
        ),
    ];
    let mut config = String::new();
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).map_err(err("write jcfg"))?;
        config.push_str(&format!("# {name}\n{text}\n"));
    }
    // The admin API (for the negotiated SRTP profile) needs its secret in janus.jcfg.
    let jcfg = dir.join("janus.jcfg");
    let text = std::fs::read_to_string(&jcfg)
        .map_err(err("read jcfg"))?
        .replacen(
            "general: {",
            &format!("general: {{\n\tadmin_secret = \"{JANUS_ADMIN_SECRET}\""),
            1,
        );
    std::fs::write(&jcfg, text).map_err(err("write jcfg"))?;
    // What Janus reads, as written.
    config.clear();
    for (name, _) in &files {
        let text = std::fs::read_to_string(dir.join(name)).map_err(err("read jcfg"))?;
        config.push_str(&format!("# {name}\n{text}\n"));
    }
    let log = std::fs::File::create(dir.join("janus.log")).map_err(err("log"))?;
    let child = pinned(Path::new("janus"), cpus)
        .arg("-F")
        .arg(dir)
        .arg("-C")
        .arg(dir.join("janus.jcfg"))
        .stdout(log.try_clone().map_err(err("log"))?)
        .stderr(log)
        .spawn()
        .map_err(err("spawn janus"))?;
    let http: SocketAddr = ([127, 0, 0, 1], JANUS_PORT).into();
    let server = Server {
        child,
        kind: Kind::Janus { http },
        _dir: Some(dir.to_path_buf()),
        srtp: Arc::new(Mutex::new(Vec::new())),
        config,
        rtsp: None,
    };
    // Wait for the HTTP API, then for the mountpoint to have fresh media.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if Instant::now() > deadline {
            return Err("janus mountpoint got no media in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(300));
        let Ok(s) = janus_post(
            http,
            "/janus",
            json!({"janus": "create", "transaction": "w1"}),
        ) else {
            continue;
        };
        let Some(sid) = s["data"]["id"].as_u64() else {
            continue;
        };
        let h = janus_post(
            http,
            &format!("/janus/{sid}"),
            json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": "w2"}),
        )?;
        let hid = h["data"]["id"].as_u64().ok_or("attach")?;
        let info = janus_post(
            http,
            &format!("/janus/{sid}/{hid}"),
            json!({"janus": "message", "transaction": "w3", "body": {"request": "info", "id": 1}}),
        )?;
        let _ = janus_post(
            http,
            &format!("/janus/{sid}"),
            json!({"janus": "destroy", "transaction": "w4"}),
        );
        let media = &info["plugindata"]["data"]["info"]["media"];
        let fresh = media.as_array().is_some_and(|m| {
            m.len() == 2
                && m.iter()
                    .all(|x| x["age_ms"].as_u64().is_some_and(|a| a < 1000))
        });
        if fresh {
            return Ok(server);
        }
    }
}

pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Res<Value> {
    let mut s = TcpStream::connect(addr).map_err(err("http connect"))?;
    s.set_read_timeout(Some(Duration::from_secs(40))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(err("http write"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(err("http read"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("http: no body")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).map_err(|e| format!("http json: {e}: {body}"))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Pulls the camera without viewers (REST startup), as Janus's mountpoint does.
pub fn camgate_startup(http_addr: SocketAddr, url: &str) -> Res<()> {
    let v = http(
        http_addr,
        "POST",
        "/rest-api/rtsp/startup",
        Some(&json!({ "uri": url })),
    )?;
    if v["status"] == "PENDING" || v["status"] == "PLAYING" {
        Ok(())
    } else {
        Err(format!("startup: {v}"))
    }
}

fn janus_post(addr: SocketAddr, path: &str, body: Value) -> Res<Value> {
    http(addr, "POST", path, Some(&body))
}

/// The SRTP profile Janus reports for a handle (admin API `handle_info`).
pub fn janus_srtp(sid: u64, hid: u64) -> Option<String> {
    let v = janus_post(
        ([127, 0, 0, 1], JANUS_ADMIN_PORT).into(),
        &format!("/admin/{sid}/{hid}"),
        json!({"janus": "handle_info", "transaction": "i", "admin_secret": JANUS_ADMIN_SECRET}),
    )
    .ok()?;
    fn find(v: &Value) -> Option<String> {
        match v {
            Value::Object(m) => m
                .get("srtp-profile")
                .and_then(|p| p.as_str().map(str::to_string))
                .or_else(|| m.values().find_map(find)),
            Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    find(&v)
}

/// One Janus viewer: create, attach, `watch` → offer (long poll), answer with `start`.
pub fn janus_viewer(addr: SocketAddr, n: usize) -> Res<Ready> {
    let s = janus_post(
        addr,
        "/janus",
        json!({"janus": "create", "transaction": format!("c{n}")}),
    )?;
    let sid = s["data"]["id"]
        .as_u64()
        .ok_or_else(|| format!("create: {s}"))?;
    let h = janus_post(
        addr,
        &format!("/janus/{sid}"),
        json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": format!("a{n}")}),
    )?;
    let hid = h["data"]["id"]
        .as_u64()
        .ok_or_else(|| format!("attach: {h}"))?;
    let play_sent = Instant::now();
    janus_post(
        addr,
        &format!("/janus/{sid}/{hid}"),
        json!({"janus": "message", "transaction": format!("w{n}"), "body": {"request": "watch", "id": 1}}),
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let offer = loop {
        if Instant::now() > deadline {
            return Err("janus: no offer".into());
        }
        let evs = http(addr, "GET", &format!("/janus/{sid}?maxev=5"), None)?;
        let list = match evs {
            Value::Array(a) => a,
            v => vec![v],
        };
        if let Some(sdp) = list.iter().find_map(|e| e["jsep"]["sdp"].as_str()) {
            if n == 0 && std::env::var_os("BENCH_DEBUG_SDP").is_some() {
                eprintln!("OFFER:\n{sdp}");
            }
            break sdp.to_string();
        }
    };
    // libnice ignores a remote candidate on 127.0.0.1 here: the viewers of Janus sit on the
    // namespace's 127.0.0.2 (the ifb device), as Chromium's candidates would.
    let (sock, local) = bind_udp("127.0.0.2")?;
    let mut rtc = new_rtc(Instant::now(), false);
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(err("candidate"))?);
    let offer = SdpOffer::from_sdp_string(&offer).map_err(err("offer"))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(err("accept offer"))?;
    if n == 0 && std::env::var_os("BENCH_DEBUG_SDP").is_some() {
        eprintln!("ANSWER:\n{}", answer.to_sdp_string());
    }
    janus_post(
        addr,
        &format!("/janus/{sid}/{hid}"),
        json!({"janus": "message", "transaction": format!("s{n}"), "body": {"request": "start"},
               "jsep": {"type": "answer", "sdp": answer.to_sdp_string(), "trickle": false}}),
    )?;
    Ok(Ready {
        rtc,
        sock: ViewerSocket::Udp(sock),
        local,
        ws: None,
        play_sent,
        index: n,
        janus_ids: Some((sid, hid)),
    })
}

// ------------------------------------------------------------------------------------------
// /proc
// ------------------------------------------------------------------------------------------

#[allow(unsafe_code)] // sysconf through libc
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf takes any name and only returns a number.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// utime + stime of a process.
/// CPU time a process spent in user space and in the kernel (its `stime` includes softirq work, such as loopback
/// delivery into the receiver's socket, that ran while it was on the CPU).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcCpu {
    pub user: Duration,
    pub system: Duration,
}

impl ProcCpu {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
    pub fn since(&self, earlier: &ProcCpu) -> ProcCpu {
        ProcCpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

pub fn proc_cpu(pid: u32) -> ProcCpu {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after the comm: state(0) ... utime is field 14 overall → index 11 here, stime index 12.
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let d = |ticks: u64| Duration::from_nanos(ticks * 1_000_000_000 / clk_tck());
    ProcCpu {
        user: d(t(11)),
        system: d(t(12)),
    }
}

/// Voluntary and involuntary context switches of all the process's threads (voluntary: mostly
/// a loop going to sleep in `epoll_wait`; involuntary: preempted while it had work).
pub fn proc_ctxt_switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let mut v = (0, 0);
    for t in tasks.flatten() {
        let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for l in s.lines() {
            let n = || l.split_whitespace().nth(1)?.parse::<u64>().ok();
            if l.starts_with("voluntary_ctxt_switches:") {
                v.0 += n().unwrap_or(0);
            } else if l.starts_with("nonvoluntary_ctxt_switches:") {
                v.1 += n().unwrap_or(0);
            }
        }
    }
    v
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Pins the calling thread (and the threads it spawns afterwards) to `cpus` ("1", "0-1", "1,3").
#[allow(unsafe_code)] // sched_setaffinity through libc
pub fn pin_self(cpus: &str) -> Res<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity get its
    // address and true size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for part in cpus.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (usize, usize) = (
                a.trim().parse().map_err(err("cpu list"))?,
                b.trim().parse().map_err(err("cpu list"))?,
            );
            for c in a..=b {
                libc::CPU_SET(c, &mut set);
            }
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "sched_setaffinity {cpus}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

pub fn proc_rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Jiffies of the whole machine, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
    /// Time in softirq: on loopback, mostly delivering datagrams into the receivers' sockets.
    pub softirq: u64,
}

pub fn machine_cpu() -> MachineCpu {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let l = s.lines().next().unwrap_or("");
    let v: Vec<u64> = l
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let total: u64 = v.iter().sum();
    // user nice system idle iowait irq softirq ...
    MachineCpu {
        busy: total - at(3) - at(4),
        total,
        softirq: at(6),
    }
}
