//! camgate benchmark. `benches/run.sh` is the entry point; see docs/PERFORMANCE.md.
//!
//! - `camgate-bench suite [--quick] [--no-janus] [--out FILE] [--camgate BIN] [--counts 1,10]
//!   [--bitrates 2,4] [--window SECS]`: synthetic camera → server → N str0m viewers, for camgate
//!   and Janus, then writes the report. `--targets camgate,camgate-tcp,janus` picks the servers;
//!   `camgate-tcp` is camgate with its viewers on ICE-TCP (`transport: "TCP"`, RFC 4571 framing).
//! - `camgate-bench micro [--counts ...]`: the in-process relay cost (no sockets).

mod camera;
mod micro;
mod soak;
mod starve;
mod targets;
mod transcode;
mod viewers;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use targets::{Kind, Server};
use viewers::{percentile, Shared, Worker, BUCKETS};

#[derive(Debug, Clone, Default)]
pub struct RunResult {
    target: String,
    mbps: u32,
    n: usize,
    setup_failed: usize,
    viewers_lost: usize,
    expected_per_viewer: u64,
    loss_pct: f64,
    delivered: u64,
    pkts_per_viewer_s: f64,
    server_cpu_pct: f64,
    us_per_pkt: f64,
    /// The part of `us_per_pkt` the server spent in the kernel (its `stime`).
    us_per_pkt_kernel: f64,
    /// The machine's softirq time per delivered packet: on loopback, the receive half of each datagram's trip,
    /// charged to whichever process was sending (mostly the server). A real NIC does not charge it to the server.
    us_per_pkt_softirq: f64,
    rss_base_mb: f64,
    rss_mb: f64,
    rss_per_viewer_kb: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// Camera send → the server's send (kernel receive stamp at the viewer's socket).
    relay_p50_ms: Option<f64>,
    relay_p99_ms: Option<f64>,
    ttfk_p50_ms: Option<f64>,
    ttfk_max_ms: Option<f64>,
    /// The server's context switches per second (its threads going to sleep and being woken).
    server_switches_per_s: f64,
    loadgen_cpu_pct: f64,
    machine_busy_pct: f64,
    /// CPU of everything else on the box (other users' builds...), % of one core.
    other_cpu_pct: f64,
    error: Option<String>,
}

struct Opts {
    quick: bool,
    janus: bool,
    out: PathBuf,
    camgate: PathBuf,
    counts: Vec<usize>,
    bitrates: Vec<u32>,
    window: Duration,
    threads: usize,
    targets: Vec<String>,
}

fn parse_list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("suite");
    if cmd == "starve" {
        std::process::exit(starve::main(&args[1..]));
    }
    let mut o = Opts {
        quick: false,
        janus: true,
        out: PathBuf::from("docs/PERFORMANCE.md"),
        camgate: PathBuf::from("target/release/camgate"),
        counts: vec![],
        bitrates: vec![2, 4],
        window: Duration::from_secs(10),
        threads: 2,
        targets: vec![],
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--quick" => o.quick = true,
            "--no-janus" => o.janus = false,
            "--out" => o.out = PathBuf::from(val()),
            "--camgate" => o.camgate = PathBuf::from(val()),
            "--counts" => o.counts = parse_list(&val()),
            "--bitrates" => o.bitrates = parse_list(&val()),
            "--window" => o.window = Duration::from_secs(val().parse().unwrap_or(10)),
            "--threads" => o.threads = val().parse().unwrap_or(2),
            "--targets" => o.targets = val().split(',').map(str::to_string).collect(),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    match cmd {
        "micro" => {
            let counts = if o.counts.is_empty() {
                vec![1, 10, 100]
            } else {
                o.counts.clone()
            };
            for r in micro::run(&counts, if o.quick { 90 } else { 300 }) {
                println!("{r:?}");
            }
        }
        "soak" => {
            let (viewers, cameras) = if o.quick { (100, 10) } else { (1000, 100) };
            match soak::run(&o.camgate, viewers, cameras) {
                Ok(r) => {
                    println!("| viewer join/leave cycles | camera connect/terminate cycles | RSS before MB | RSS after MB | growth MB | steady viewers still playing | seconds |");
                    println!("|---:|---:|---:|---:|---:|---|---:|");
                    println!("{}", r.row());
                    let ok = r.viewer_cycles_failed == 0
                        && r.camera_cycles_failed == 0
                        && r.steady_still_playing == r.steady_viewers;
                    std::process::exit(if ok { 0 } else { 1 });
                }
                Err(e) => {
                    eprintln!("soak: {e}");
                    std::process::exit(1);
                }
            }
        }
        "transcode" => {
            for r in transcode::run(if o.quick { 10 } else { 60 }) {
                println!("{r:?}");
            }
        }
        "suite" => suite(&o),
        _ => {
            eprintln!("usage: camgate-bench suite|micro|transcode|soak [options]");
            std::process::exit(2);
        }
    }
}

fn suite(o: &Opts) {
    let counts = if !o.counts.is_empty() {
        o.counts.clone()
    } else if o.quick {
        vec![1, 10]
    } else {
        vec![1, 10, 50, 100, 200, 300]
    };
    let bitrates = if o.quick { vec![2] } else { o.bitrates.clone() };
    let mut targets: Vec<String> = if o.targets.is_empty() {
        vec!["camgate".into(), "janus".into()]
    } else {
        o.targets.clone()
    };
    if !o.janus {
        targets.retain(|t| t != "janus");
    }
    if targets.iter().any(|t| t == "janus")
        && Command::new("janus").arg("--version").output().is_err()
    {
        eprintln!("janus not installed: skipping it");
        targets.retain(|t| t != "janus");
    }
    let started = now_string();
    eprintln!("micro-benchmark…");
    let micro_counts = if o.quick {
        vec![1, 10]
    } else {
        vec![1, 10, 50, 100, 200]
    };
    let micro = micro::run(&micro_counts, if o.quick { 90 } else { 300 });
    eprintln!("audio transcoding…");
    let transcoding = transcode::run(if o.quick { 10 } else { 60 });
    let micro = (micro, transcoding);
    let mut results: Vec<RunResult> = Vec::new();
    write_report(o, &started, &micro, &results);
    for &mbps in &bitrates {
        for target in &targets {
            for &n in &counts {
                eprintln!("{target} {mbps} Mbit/s, {n} viewers…");
                let r = run_one(o, target, mbps, n);
                eprintln!("  → {r:?}");
                let saturated = r.error.is_some() || r.loss_pct > 5.0 || r.viewers_lost * 10 > n;
                results.push(r);
                write_report(o, &started, &micro, &results);
                if saturated && n >= 100 {
                    eprintln!("  {target} saturated at {n}: not going higher");
                    break;
                }
            }
        }
    }
    let raw = o.out.with_extension("json");
    let _ = std::fs::write(
        std::env::temp_dir().join(raw.file_name().unwrap()),
        format!("{results:#?}"),
    );
}

fn run_one(o: &Opts, target: &str, mbps: u32, n: usize) -> RunResult {
    let mut r = RunResult {
        target: target.into(),
        mbps,
        n,
        ..Default::default()
    };
    if let Err(e) = run_inner(o, target, mbps, n, &mut r) {
        r.error = Some(e);
    }
    r
}

fn run_inner(o: &Opts, target: &str, mbps: u32, n: usize, r: &mut RunResult) -> Result<(), String> {
    let log = camera::new_log();
    let cam = camera::Camera::start(mbps * 1_000_000, log.clone()).map_err(|e| e.to_string())?;
    let url = cam.url("cam1");
    let server: Server = match target {
        "camgate" | "camgate-tcp" => targets::start_camgate(&o.camgate)?,
        _ => {
            let dir =
                std::env::temp_dir().join(format!("camgate-bench-janus-{}", std::process::id()));
            targets::start_janus(&url, &dir)?
        }
    };
    let pid = server.pid();
    if let Kind::Camgate { http, .. } = &server.kind {
        // Warm like Janus's mountpoint: camera pulled and a GOP seen before the first viewer.
        targets::camgate_startup(*http, &url)?;
        std::thread::sleep(Duration::from_millis(2500));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_base = targets::proc_rss_kb(pid);
    let shared = Shared::new(log.clone());
    let workers: Vec<Worker> = (0..o.threads.max(1))
        .map(|_| Worker::spawn(shared.clone()))
        .collect();
    let setup_deadline = Instant::now() + Duration::from_secs(30 + n as u64 / 5);
    for i in 0..n {
        if Instant::now() > setup_deadline {
            r.setup_failed += n - i;
            break;
        }
        let ready = match &server.kind {
            Kind::Camgate { ws, .. } => {
                targets::camgate_viewer(*ws, &url, i, target == "camgate-tcp")
            }
            Kind::Janus { http } => targets::janus_viewer(*http, i),
        };
        match ready {
            Ok(v) => workers[i % workers.len()].add(v),
            Err(e) => {
                if r.setup_failed == 0 {
                    eprintln!("  viewer {i}: {e}");
                }
                r.setup_failed += 1;
            }
        }
    }
    // All viewers with a keyframe (or a timeout), then 2 s to settle.
    let ok = (n - r.setup_failed) as u64;
    let wait_until = Instant::now() + Duration::from_secs(10);
    while shared.started.load(Ordering::Relaxed) < ok && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let switches0 = targets::proc_ctxt_switches(pid);
    let (cpu0, me0, m0) = (
        targets::proc_cpu(pid),
        targets::proc_cpu(std::process::id()),
        targets::machine_cpu(),
    );
    shared.window.w0.store(log.ns(t0), Ordering::Relaxed);
    // BENCH_PERF=FILE: profile the server over the window (perf must be installed).
    let perf = std::env::var("BENCH_PERF").ok().and_then(|out| {
        Command::new("perf")
            .args([
                "record",
                "-F",
                "499",
                "-g",
                "-o",
                &out,
                "-p",
                &pid.to_string(),
                "--",
                "sleep",
            ])
            .arg(o.window.as_secs().to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()
    });
    std::thread::sleep(o.window);
    if let Some(mut p) = perf {
        let _ = p.wait();
    }
    let t1 = Instant::now();
    shared.window.w1.store(log.ns(t1), Ordering::Relaxed);
    let switches1 = targets::proc_ctxt_switches(pid);
    let (cpu1, me1, m1) = (
        targets::proc_cpu(pid),
        targets::proc_cpu(std::process::id()),
        targets::machine_cpu(),
    );
    let rss = targets::proc_rss_kb(pid);
    // Late packets of the window still count.
    std::thread::sleep(Duration::from_millis(1000));
    shared.stop.store(true, Ordering::Relaxed);
    let mut stats = Vec::new();
    let mut hist = vec![0u64; BUCKETS];
    let mut relay_hist = vec![0u64; BUCKETS];
    for w in workers {
        let res = w.join();
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!("  viewer thread CPU {:?}", res.cpu);
        }
        stats.extend(res.viewers);
        for (a, b) in hist.iter_mut().zip(res.hist) {
            *a += u64::from(b);
        }
        for (a, b) in relay_hist.iter_mut().zip(res.relay_hist) {
            *a += u64::from(b);
        }
    }
    drop(server);
    drop(cam);
    if std::env::var_os("BENCH_DEBUG").is_some() {
        for (i, s) in stats.iter().enumerate().take(5) {
            eprintln!(
                "  viewer {i}: connected {:?} first rtp {:?} first keyframe {:?} udp rx {} tx {} failed {}",
                s.connected_after, s.first_rtp, s.first_keyframe, s.udp_rx, s.udp_tx, s.failed
            );
        }
    }
    let secs = (t1 - t0).as_secs_f64();
    let expected = log.count_between(log.ns(t0), log.ns(t1));
    r.expected_per_viewer = expected;
    let received: u64 = stats.iter().map(|s| s.ids_window.min(expected)).sum();
    let all_expected = expected * n as u64;
    r.loss_pct = if all_expected > 0 {
        100.0 * (all_expected - received) as f64 / all_expected as f64
    } else {
        100.0
    };
    r.viewers_lost = r.setup_failed
        + stats
            .iter()
            .filter(|s| s.failed || s.first_keyframe.is_none() || s.ids_window * 2 < expected)
            .count();
    r.delivered = stats.iter().map(|s| s.rx_window).sum();
    r.pkts_per_viewer_s = r.delivered as f64 / secs / n.max(1) as f64;
    let cpu = cpu1.since(&cpu0);
    let per_pkt_us = |d: Duration| d.as_secs_f64() * 1e6 / r.delivered.max(1) as f64;
    r.server_cpu_pct = 100.0 * cpu.total().as_secs_f64() / secs;
    r.us_per_pkt = per_pkt_us(cpu.total());
    r.us_per_pkt_kernel = per_pkt_us(cpu.system);
    r.us_per_pkt_softirq = per_pkt_us(Duration::from_nanos(
        (m1.softirq - m0.softirq) * 1_000_000_000 / targets::clk_tck(),
    ));
    r.server_switches_per_s = switches1.saturating_sub(switches0) as f64 / secs;
    r.loadgen_cpu_pct = 100.0 * me1.since(&me0).total().as_secs_f64() / secs;
    r.machine_busy_pct = 100.0 * (m1.busy - m0.busy) as f64 / (m1.total - m0.total).max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    r.other_cpu_pct = (r.machine_busy_pct * cores - r.server_cpu_pct - r.loadgen_cpu_pct).max(0.0);
    r.rss_base_mb = rss_base as f64 / 1024.0;
    r.rss_mb = rss as f64 / 1024.0;
    r.rss_per_viewer_kb = (rss as f64 - rss_base as f64) / n.max(1) as f64;
    r.p50_ms = percentile(&hist, 0.5).map(|u| u / 1000.0);
    r.p99_ms = percentile(&hist, 0.99).map(|u| u / 1000.0);
    r.relay_p50_ms = percentile(&relay_hist, 0.5).map(|u| u / 1000.0);
    r.relay_p99_ms = percentile(&relay_hist, 0.99).map(|u| u / 1000.0);
    let mut kf: Vec<f64> = stats
        .iter()
        .filter_map(|s| s.first_keyframe.map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    kf.sort_by(|a, b| a.total_cmp(b));
    r.ttfk_p50_ms = kf.get(kf.len() / 2).copied();
    r.ttfk_max_ms = kf.last().copied();
    Ok(())
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn now_string() -> String {
    sh("date -u '+%Y-%m-%d %H:%M UTC'")
}

fn f(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.prec$}"))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

fn write_report(
    o: &Opts,
    started: &str,
    (micro, transcoding): &(Vec<micro::MicroResult>, Vec<transcode::TranscodeResult>),
    results: &[RunResult],
) {
    let mut s = String::new();
    let cpu_model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let _ = writeln!(s, "# camgate performance\n");
    let _ = writeln!(
        s,
        "Generated by `benches/run.sh{}` (crate `benches/`, binary `camgate-bench`). Do not edit the \
         tables by hand: rerun the command. The analysis at the end comes from `benches/ANALYSIS.md`.\n",
        if o.quick { " --quick" } else { "" }
    );
    let _ = writeln!(s, "- Run: {started}");
    let _ = writeln!(
        s,
        "- Machine: {} cores, {}, Linux {}",
        sh("nproc"),
        cpu_model.trim(),
        sh("uname -r")
    );
    let _ = writeln!(
        s,
        "- camgate {} ({}), {}, str0m 0.25 on both ends",
        std::env::var("BENCH_REV_LABEL").unwrap_or_else(|_| sh("git describe --always --dirty")),
        o.camgate.display(),
        sh("rustc --version")
    );
    let jv = sh("janus --version 2>/dev/null | head -1");
    let _ = writeln!(
        s,
        "- Janus: {}",
        if jv.is_empty() { "not run".into() } else { jv }
    );
    let _ = writeln!(
        s,
        "- Camera: synthetic RTSP (in the bench process), H.264 30 fps, 1 s GOP, keyframe ≈ 9× a P-frame, FU-A in 1400-byte RTP packets (gst-rtsp-server's MTU; camgate re-fragments to 1200 B), \
         SPS/PPS before every IDR, plus PCMU 8 kHz in 20 ms packets. camgate pulls it with its default `rtsp_transport = auto` (UDP first), Janus over UDP (it has no TCP mode); both pull it before the first viewer (camgate by REST `startup`, Janus at mountpoint creation).\n\
         - Viewers: str0m 0.25 peers (real ICE, DTLS, SRTP), {} threads, one UDP socket each (target `camgate-tcp`: one ICE-TCP connection each, `transport: \"TCP\"`, RFC 4571 framing; no kernel receive stamp there, so no relay latency), in the same process as the camera; \
         everything on loopback inside a private network namespace. Steady window {} s, taken 2 s after every viewer had its first keyframe.\n",
        o.threads,
        o.window.as_secs()
    );
    let _ = writeln!(s, "## Audio transcoding per stream\n");
    let _ = writeln!(
        s,
        "Real captures (test tones encoded by GStreamer, `core/tests/data/audio/`) looped with continuing timestamps \
         through camgate's audio relay (decode, resample, Opus encode); one thread, wall clock.\n"
    );
    let _ = writeln!(s, "| capture | path | audio s | ms of one core per s of audio | % of one core |\n|---|---|---:|---:|---:|");
    for t in transcoding {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.2} | {:.2} |",
            t.capture,
            t.description,
            t.audio_secs,
            t.ms_per_audio_sec,
            t.ms_per_audio_sec / 10.0
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## Relay path in-process (no sockets)\n");
    let _ = writeln!(
        s,
        "`camgate_core::gateway::Gateway` fed interleaved RTP of a 2 Mbit/s camera (+PCMU) with N str0m viewers connected in memory; \
         time spent inside the gateway (parse, relay, str0m packetize + SRTP encrypt) per datagram it emits. One thread, wall clock.\n"
    );
    let _ = writeln!(
        s,
        "| viewers | datagrams out | ns per viewer-packet |\n|---:|---:|---:|"
    );
    for m in micro {
        if m.datagrams == 0 {
            // The in-memory camera/viewers do not speak what the gateway expects (e.g. a new RTSP step).
            let _ = writeln!(
                s,
                "| {} | 0 | failed: no datagrams left the gateway |",
                m.viewers
            );
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} |",
            m.viewers, m.datagrams, m.ns_per_packet
        );
    }
    for &mbps in &o.bitrates {
        let rows: Vec<&RunResult> = results.iter().filter(|r| r.mbps == mbps).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n## {mbps} Mbit/s camera over the network stack\n");
        let _ = writeln!(
            s,
            "| server | viewers | pkt/s per viewer | server CPU % | µs CPU per viewer-packet | of it kernel / softirq µs | loss % | viewers lost | RSS base → steady MB | RSS per viewer KB | relay latency p50 / p99 ms | viewer latency p50 / p99 ms | first keyframe p50 / max ms | load generator CPU % | machine busy % | other processes CPU % |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &rows {
            if let Some(e) = &r.error {
                let _ = writeln!(
                    s,
                    "| {} | {} | failed: {} ||||||||||||||",
                    r.target,
                    r.n,
                    e.replace('|', "/")
                );
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.1} | {:.2} | {:.2} / {:.2} | {:.2} | {} | {:.1} → {:.1} | {:.0} | {} / {} | {} / {} | {} / {} | {:.0} | {:.0} | {:.0} |",
                r.target, r.n, r.pkts_per_viewer_s, r.server_cpu_pct, r.us_per_pkt, r.us_per_pkt_kernel,
                r.us_per_pkt_softirq, r.loss_pct, r.viewers_lost,
                r.rss_base_mb, r.rss_mb, r.rss_per_viewer_kb, f(r.relay_p50_ms, 2), f(r.relay_p99_ms, 2),
                f(r.p50_ms, 2), f(r.p99_ms, 2),
                f(r.ttfk_p50_ms, 0), f(r.ttfk_max_ms, 0), r.loadgen_cpu_pct, r.machine_busy_pct, r.other_cpu_pct
            );
        }
        let pairs: Vec<(&RunResult, &RunResult)> = rows
            .iter()
            .filter(|r| r.target == "camgate" && r.error.is_none())
            .filter_map(|c| {
                rows.iter()
                    .find(|j| j.target == "janus" && j.n == c.n && j.error.is_none())
                    .map(|j| (*c, *j))
            })
            .collect();
        if !pairs.is_empty() {
            let _ = writeln!(s, "\ncamgate / Janus (below 1 means camgate uses less):\n");
            let _ = writeln!(s, "| viewers | CPU per viewer-packet | RSS per viewer | relay latency p50 | relay latency p99 | first keyframe p50 |\n|---:|---:|---:|---:|---:|---:|");
            for (c, j) in pairs {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    c.n,
                    ratio(c.us_per_pkt, j.us_per_pkt),
                    ratio(c.rss_per_viewer_kb, j.rss_per_viewer_kb),
                    ratio(
                        c.relay_p50_ms.unwrap_or(f64::NAN),
                        j.relay_p50_ms.unwrap_or(0.0)
                    ),
                    ratio(
                        c.relay_p99_ms.unwrap_or(f64::NAN),
                        j.relay_p99_ms.unwrap_or(0.0)
                    ),
                    ratio(
                        c.ttfk_p50_ms.unwrap_or(f64::NAN),
                        j.ttfk_p50_ms.unwrap_or(0.0)
                    ),
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\nColumns: *µs CPU per viewer-packet* = the server process's utime+stime over the window divided by the RTP packets \
         all viewers received in it; *of it kernel* = the part of that in the kernel (`stime`); *softirq* = the whole \
         machine's softirq time over the window per delivered packet: on loopback, delivering a datagram into the \
         receiver's socket runs as softirq in whichever process sent it (mostly the server, and it is inside its \
         `stime`), work a real NIC would not charge to the server; *loss* = camera packets sent in the window that a viewer never got (by packet id); \
         *viewers lost* = viewers that failed to set up, never got a keyframe or got under half the packets; *relay latency* = \
         the kernel's receive stamp of the datagram at the viewer's socket (`SO_TIMESTAMPNS`, taken when the server's \
         send hands it to loopback) − camera send of the same packet (ids carried in the payload): the server's own \
         delay, including its queueing; *viewer latency* = the viewer's read − camera send, which adds the load \
         generator's own queueing when it is busy; *first keyframe* = `playStream` (camgate) / `watch` (Janus) sent → \
         the last packet of the first complete IDR received; *RSS per viewer* = (steady RSS − RSS before any viewer) / N \
         (both servers already pull the camera then; N=1 still carries one-off allocations such as allocator arenas). A load-generator CPU % near \
         200 or a machine busy % near 100 means the box, not the server, is the limit.\n"
    );
    if let Ok(a) = std::fs::read_to_string("benches/ANALYSIS.md") {
        s.push('\n');
        s.push_str(&a);
    }
    if let Some(dir) = o.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&o.out, s);
}
