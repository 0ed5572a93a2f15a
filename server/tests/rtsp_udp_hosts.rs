//! UDP players on another host, over IPv4 and IPv6. Each test moves its thread into a network
//! namespace of its own ("the server host": camgate, its GStreamer camera on that namespace's
//! loopback, and /metrics), and makes a second one for the players ("the player host"), joined
//! by a veth pair; documentation addresses only:
//!
//!   server host: cg0 192.0.2.1/24, 2001:db8::1/64  ==veth==  player host: pl0 192.0.2.2/24, 2001:db8::2/64
//!                cg0 also 198.51.100.1/32 and 2001:db8:5::1/128 (second addresses, routed
//!                through the first from the player host)
//!
//! camgate's RTSP server listens on the server host's veth address (so its players are not on
//! loopback and need the stream's `rtsp_users`). Players: ffmpeg and GStreamer's rtspsrc over
//! UDP, decoding frames, and a minimal RTSP client (`Probe`) that checks the `Transport`
//! answer and that every RTP datagram comes from the address and `server_port` it was told.
//! Needs root (network namespaces); skips with a message otherwise. The namespaces go away
//! with the test's processes and thread.

// unshare(2)/setns(2) for the test's own threads: each block says why it is sound.
#![allow(unsafe_code)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{temp_file, Camgate, GstCamera};

const USER: &str = "viewer";
const PASSWORD: &str = "udp-hosts-pw";

/// The player host: a process holding a fresh network namespace (`unshare --net sleep`), joined
/// to this thread's namespace by a veth pair. Killed on drop, which ends the namespace.
struct PlayerHost {
    holder: Child,
}

impl PlayerHost {
    /// `cmd` inside the player host's namespace.
    fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .arg("--")
            .arg(cmd);
        c
    }

    /// Runs `f` on a thread inside the player host's namespace.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.holder.id()))
            .expect("the player host's namespace");
        std::thread::spawn(move || {
            // SAFETY: setns(2) with an open namespace descriptor; it only changes this
            // thread's network namespace, which nothing else shares.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for PlayerHost {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves this thread into a new network namespace (the server host) and makes the player
/// host; `None` (and a message) when not root.
fn two_hosts() -> Option<PlayerHost> {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: network namespaces need root (run the test as root)");
        return None;
    }
    // SAFETY: unshare(2) with CLONE_NEWNET only: this thread (and the processes it starts)
    // get a namespace of their own; other threads keep theirs.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let holder = Command::new("unshare")
        .args(["--net", "--", "sleep", "300"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) runs");
    let host = PlayerHost { holder };
    let ns = format!("/proc/{}/ns/net", host.holder.id());
    let end = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(&ns).ok().is_none_or(|l| l == ours) {
        assert!(Instant::now() < end, "the player host has no namespace");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = host.holder.id().to_string();
    let ip = |args: &[&str]| sh(Command::new("ip").args(args));
    ip(&["link", "set", "lo", "up"]);
    ip(&[
        "link", "add", "cg0", "type", "veth", "peer", "name", "pl0", "netns", &pid,
    ]);
    ip(&["addr", "add", "192.0.2.1/24", "dev", "cg0"]);
    ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", "cg0", "nodad"]);
    ip(&["addr", "add", "198.51.100.1/32", "dev", "cg0"]);
    ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:5::1/128",
        "dev",
        "cg0",
        "nodad",
    ]);
    ip(&["link", "set", "cg0", "up"]);
    let there = |args: &[&str]| sh(host.command("ip").args(args));
    there(&["link", "set", "lo", "up"]);
    there(&["addr", "add", "192.0.2.2/24", "dev", "pl0"]);
    there(&["-6", "addr", "add", "2001:db8::2/64", "dev", "pl0", "nodad"]);
    there(&["link", "set", "pl0", "up"]);
    there(&["route", "add", "198.51.100.1/32", "via", "192.0.2.1"]);
    there(&[
        "-6",
        "route",
        "add",
        "2001:db8:5::1/128",
        "via",
        "2001:db8::1",
    ]);
    Some(host)
}

/// camgate on this (server) host with the camera as `[streams.cam]`, playable by `USER`, its
/// RTSP server on `rtsp` (a veth address, port 0); `name` tells the tests' configs apart.
fn camgate_on(camera: &GstCamera, rtsp: &str, name: &str) -> Camgate {
    let config = temp_file(
        &format!("rtsp_udp_hosts_{name}_{}.toml", camera.port()),
        &format!(
            "[streams.cam]\nuri = \"{}\"\nrtsp_users = [{{ user = \"{USER}\", password = \"{PASSWORD}\" }}]\n",
            camera.url
        ),
    );
    Camgate::start(&[
        "--config",
        config.to_str().unwrap(),
        "--rtsp-server",
        rtsp,
        "--workers",
        "1",
        "--no-demo",
    ])
}

const UDP_DROPPED: &str = "camgate_rtsp_player_packets_dropped_total{transport=\"udp\"}";

/// A minimal RTSP client on the player host: DESCRIBE, SETUP over UDP to `client_port`, PLAY
/// (Basic credentials), then counts the RTP datagrams that come from the server's address and
/// `server_port`, and those from anywhere else.
struct Probe {
    /// The SETUP answer's Transport header.
    transport: String,
    from_server: Arc<AtomicUsize>,
    from_elsewhere: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Probe {
    fn start(host: &PlayerHost, server: SocketAddr, client_port: u16) -> Probe {
        let from_server: Arc<AtomicUsize> = Arc::default();
        let from_elsewhere: Arc<AtomicUsize> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let counts = (Arc::clone(&from_server), Arc::clone(&from_elsewhere));
        let stopped = Arc::clone(&stop);
        let thread = host.spawn(move || {
            probe_run(server, client_port, tx, counts, stopped);
        });
        let transport = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("the probe got its SETUP answer");
        Probe {
            transport,
            from_server,
            from_elsewhere,
            stop,
            thread,
        }
    }

    fn received(&self) -> usize {
        self.from_server.load(Ordering::Relaxed)
    }

    /// `server_port=a-b` of the Transport answer.
    fn server_ports(&self) -> (u16, u16) {
        let v = (self.transport.split(';'))
            .find_map(|p| p.strip_prefix("server_port="))
            .unwrap_or_else(|| panic!("no server_port in {}", self.transport));
        let (a, b) = v.split_once('-').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    }

    /// Stops (TEARDOWN) and returns the datagrams from elsewhere.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the probe ran");
        self.from_elsewhere.load(Ordering::Relaxed)
    }
}

/// One request on `conn`; the answer's head and body. Panics unless 200.
fn request(conn: &mut TcpStream, text: &str) -> (String, String) {
    conn.write_all(text.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed after {text}");
        got.extend_from_slice(&buf[..n]);
        let s = String::from_utf8_lossy(&got).into_owned();
        let Some((head, body)) = s.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = (head.lines())
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        if body.len() >= length {
            assert!(head.starts_with("RTSP/1.0 200"), "{text}\n→ {head}");
            return (head.to_owned(), body.to_owned());
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

fn probe_run(
    server: SocketAddr,
    client_port: u16,
    setup_answer: mpsc::Sender<String>,
    (from_server, from_elsewhere): (Arc<AtomicUsize>, Arc<AtomicUsize>),
    stop: Arc<AtomicBool>,
) {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => [0, 0, 0, 0].into(),
        SocketAddr::V6(_) => [0u16; 8].into(),
    };
    let rtp = UdpSocket::bind((any, client_port)).expect("the probe's RTP port");
    let _rtcp = UdpSocket::bind((any, client_port + 1)).expect("the probe's RTCP port");
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut conn = TcpStream::connect(server).expect("the probe reaches camgate");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("rtsp://{server}/cam");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let (_, sdp) = request(
        &mut conn,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nAuthorization: Basic {auth}\r\n\r\n"),
    );
    let control = (sdp.lines())
        .find_map(|l| l.trim().strip_prefix("a=control:"))
        .expect("a track control")
        .to_owned();
    let (head, _) = request(
        &mut conn,
        &format!(
            "SETUP {url}/{control} RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port={client_port}-{}\r\nAuthorization: Basic {auth}\r\n\r\n",
            client_port + 1
        ),
    );
    let transport = header(&head, "Transport").to_owned();
    let session = header(&head, "Session")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let server_rtp: u16 = (transport.split(';'))
        .find_map(|p| p.strip_prefix("server_port="))
        .and_then(|v| v.split('-').next()?.parse().ok())
        .unwrap_or(0);
    request(
        &mut conn,
        &format!("PLAY {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\nAuthorization: Basic {auth}\r\n\r\n"),
    );
    setup_answer.send(transport).unwrap();
    let expected = SocketAddr::new(server.ip(), server_rtp);
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match rtp.recv_from(&mut buf) {
            Ok((n, from)) if from == expected && n > 12 => {
                from_server.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                from_elsewhere.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {} // timeout: look at `stop`
        }
    }
    request(
        &mut conn,
        &format!("TEARDOWN {url}/ RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\nAuthorization: Basic {auth}\r\n\r\n"),
    );
}

/// Waits up to `within` for `cond`.
fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("the player runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// rtspsrc over UDP on the player host decodes 40 H.264 frames of `url`.
fn gstreamer_decodes(host: &PlayerHost, url: &str) -> (bool, String) {
    let launch = format!(
        "rtspsrc location={url} protocols=udp ! rtph264depay ! h264parse ! avdec_h264 \
         ! identity error-after=40 ! fakesink"
    );
    let (_, text) = run(host
        .command("timeout")
        .args(["30", "gst-launch-1.0"])
        .args(launch.split_whitespace()));
    (text.contains("Failed after iterations as requested"), text)
}

/// IPv4: a player host reaches camgate at 192.0.2.1. The probe is told camgate's UDP pair and
/// gets its media from exactly 192.0.2.1 and that port. Then sends to the probe's ports fail
/// (`ip rule … prohibit` on the server host: EACCES for each datagram, as a send the socket
/// refuses): its datagrams are dropped and counted while ffmpeg on the same host decodes 60
/// frames; once the rule goes, the probe gets media again.
#[test]
fn a_udp_player_on_another_host_gets_its_media_from_the_address_it_connected_to() {
    let Some(host) = two_hosts() else { return };
    let camera = GstCamera::start(&["--video", "h264"]);
    let cg = camgate_on(&camera, "192.0.2.1:0", "v4");
    let server = cg.rtsp.expect("camgate logs its RTSP server");
    assert_eq!(server.ip(), IpAddr::from([192, 0, 2, 1]));

    let probe = Probe::start(&host, server, 41000);
    assert!(
        probe
            .transport
            .starts_with("RTP/AVP;unicast;client_port=41000-41001;"),
        "{}",
        probe.transport
    );
    let (rtp, rtcp) = probe.server_ports();
    assert_eq!((rtp % 2, rtcp), (0, rtp + 1), "{}", probe.transport);
    assert!(
        eventually(Duration::from_secs(10), || probe.received() >= 60),
        "{} datagrams from {}:{rtp}",
        probe.received(),
        server.ip()
    );

    // Sends to the probe now fail, one datagram at a time.
    let rule = [
        "rule",
        "add",
        "to",
        "192.0.2.2",
        "ipproto",
        "udp",
        "dport",
        "41000-41001",
        "prohibit",
    ];
    sh(Command::new("ip").args(rule));
    std::thread::sleep(Duration::from_millis(300));
    let (dropped, held) = (cg.metric(UDP_DROPPED), probe.received());
    let url = format!("rtsp://{USER}:{PASSWORD}@{server}/cam");
    let (ok, text) = run(host.command("ffmpeg").args([
        "-v",
        "error",
        "-rtsp_transport",
        "udp",
        "-i",
        &url,
        "-frames:v",
        "60",
        "-f",
        "framecrc",
        "-",
    ]));
    let decoded = text.lines().filter(|l| l.starts_with("0,")).count();
    let lost = cg.metric(UDP_DROPPED) - dropped;
    let during = probe.received() - held;
    sh(Command::new("ip")
        .args(["rule", "del", "to", "192.0.2.2", "ipproto", "udp"])
        .args(["dport", "41000-41001", "prohibit"]));
    eprintln!(
        "refused player: {lost} datagrams dropped and counted, {during} reached it; ffmpeg \
         beside it decoded {decoded} frames"
    );
    assert!(
        ok && decoded >= 60,
        "ffmpeg over UDP beside a refused player: {decoded} frames: {text}"
    );
    assert!(
        lost >= 30,
        "{lost} datagrams to the refused player counted as dropped"
    );
    assert!(during <= 2, "{during} datagrams reached the refused player");

    // The rule gone, the probe's media flows again; the session stayed.
    let resumed = probe.received();
    assert!(
        eventually(Duration::from_secs(5), || probe.received() >= resumed + 30),
        "the probe got no media after the rule went"
    );
    assert_eq!(probe.finish(), 0, "datagrams from another address or port");
    assert_eq!(cg.metric("camgate_rtsp_connects_total"), 1);
    let logs = cg.logs();
    assert!(
        logs.iter().all(|l| !l.contains(PASSWORD)),
        "a log line holds the password"
    );
}

/// IPv6: camgate's RTSP server on [2001:db8::1], a player host at 2001:db8::2. The probe's
/// Transport answer and datagrams are right for the IPv6 address it connected to, and
/// GStreamer's rtspsrc decodes 40 frames over UDP.
#[test]
fn a_udp_player_on_another_host_plays_over_ipv6() {
    let Some(host) = two_hosts() else { return };
    let camera = GstCamera::start(&["--video", "h264"]);
    let cg = camgate_on(&camera, "[2001:db8::1]:0", "v6");
    let server = cg.rtsp.expect("camgate logs its RTSP server");
    assert_eq!(server.ip(), "2001:db8::1".parse::<IpAddr>().unwrap());

    let probe = Probe::start(&host, server, 41000);
    let (rtp, rtcp) = probe.server_ports();
    assert_eq!((rtp % 2, rtcp), (0, rtp + 1), "{}", probe.transport);
    assert!(
        eventually(Duration::from_secs(10), || probe.received() >= 60),
        "{} datagrams from [{}]:{rtp}",
        probe.received(),
        server.ip()
    );

    let url = format!("rtsp://{USER}:{PASSWORD}@{server}/cam");
    let (ok, text) = gstreamer_decodes(&host, &url);
    assert!(
        ok,
        "rtspsrc over UDP and IPv6 decoded fewer than 40 frames: {text}"
    );
    assert_eq!(probe.finish(), 0, "datagrams from another address or port");
    assert_eq!(cg.metric(UDP_DROPPED), 0);
    assert_eq!(cg.metric("camgate_rtsp_connects_total"), 1);
}

/// camgate's RTSP server on a wildcard address ([::], dual-stack) of a host with two addresses
/// per family. A player that connects to the second one (198.51.100.1, or 2001:db8:5::1) gets
/// its media from exactly that address and the `server_port` it was told, where the kernel
/// alone would send from the first (192.0.2.1, 2001:db8::1: the route's source): a NAT or
/// firewall in front of the player drops such datagrams.
#[test]
fn a_wildcard_server_sends_from_the_address_each_player_connected_to() {
    let Some(host) = two_hosts() else { return };
    let camera = GstCamera::start(&["--video", "h264"]);
    let cg = camgate_on(&camera, "[::]:0", "any");
    let port = cg.rtsp.expect("camgate logs its RTSP server").port();
    let v4 = Probe::start(&host, SocketAddr::from(([198, 51, 100, 1], port)), 41000);
    let v6 = Probe::start(
        &host,
        format!("[2001:db8:5::1]:{port}").parse().unwrap(),
        41002,
    );
    for probe in [&v4, &v6] {
        let (rtp, rtcp) = probe.server_ports();
        assert_eq!((rtp % 2, rtcp), (0, rtp + 1), "{}", probe.transport);
    }
    let both = eventually(Duration::from_secs(10), || {
        v4.received() >= 60 && v6.received() >= 60
    });
    let got = (v4.received(), v6.received());
    let elsewhere = (v4.finish(), v6.finish());
    assert!(both, "{got:?} datagrams from the addresses connected to");
    assert_eq!(elsewhere, (0, 0), "datagrams from another address or port");
    assert_eq!(cg.metric("camgate_rtsp_connects_total"), 1);
}
