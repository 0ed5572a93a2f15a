//! camgate benchmark. `benches/run.sh` is the entry point; see docs/PERFORMANCE.md.
//!
//! - `camgate-bench suite [--quick] [--no-janus] [--out FILE] [--camgate BIN] [--counts 1,10]
//!   [--bitrates 2,4] [--window SECS] [--rounds N] [--camera x264|synthetic] [--search]
//!   [--search-only] [--search-max N] [--server-cpus 0] [--loadgen-cpus 1] [--no-micro]`:
//!   camera → server → N str0m viewers, each cell `--rounds` times, for camgate and Janus. Every
//!   run is appended to `<out>.raw.jsonl` and the report is regenerated from that file.
//!   `--targets camgate,camgate-tcp,camgate-aac,janus,camgate-rtsp-tcp,camgate-rtsp-udp` picks the
//!   servers; `camgate-tcp` is camgate with its viewers on ICE-TCP, `camgate-aac` camgate with an
//!   AAC camera (transcoded to Opus), `camgate-rtsp-tcp` / `-udp` camgate serving the camera as a
//!   named stream to N RTSP players (`players.rs`) over TCP-interleaved RTP / UDP unicast.
//!   `--search`: the largest viewer count each server holds at < 1 % loss with 1 and 2 workers.
//!   `--append`: add to the raw file instead of starting it afresh (one report, several runs).
//!   Exits 1 if any run failed.
//! - `camgate-bench report [--raw FILE] [--out FILE]`: regenerates the report from raw results.
//! - `camgate-bench micro [--counts ...]`: the in-process relay cost (no sockets).

mod callgrind;
mod camera;
mod micro;
mod players;
mod report;
mod rxstamp;
mod soak;
mod starve;
mod targets;
mod transcode;
mod viewers;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use targets::{Kind, Server};
use viewers::{percentile, Shared, Worker, BUCKETS};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunResult {
    target: String,
    /// camgate `--workers` / Janus `event_loops`.
    workers: usize,
    mbps: u32,
    n: usize,
    /// 1-based round of this cell; 0 in the multi-core search.
    round: usize,
    /// CPUs the server and the load generator were pinned to ("" = not pinned).
    server_cpus: String,
    loadgen_cpus: String,
    setup_failed: usize,
    viewers_lost: usize,
    expected_per_viewer: u64,
    loss_pct: f64,
    delivered: u64,
    pkts_per_viewer_s: f64,
    /// Audio packets (PCMU or Opus) each viewer received per second, median over viewers.
    audio_pkts_per_viewer_s: f64,
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
    /// Frame latency: the camera's last packet of a frame sent → the server's send of that
    /// frame's last packet to a viewer (kernel stamp), over every viewer and frame of the window.
    frame_p50_ms: Option<f64>,
    frame_p99_ms: Option<f64>,
    frames_measured: u64,
    /// Each viewer's own frame-latency p99, then the min / median / max of those across viewers.
    viewer_p99_min_ms: Option<f64>,
    viewer_p99_median_ms: Option<f64>,
    viewer_p99_max_ms: Option<f64>,
    /// Mean per-viewer p99 of the first and of the last tenth of viewers by join order (the
    /// server's viewer list order), and Spearman's rank correlation of join order with p99.
    first_tenth_p99_ms: Option<f64>,
    last_tenth_p99_ms: Option<f64>,
    position_rho: Option<f64>,
    ttfk_p50_ms: Option<f64>,
    ttfk_max_ms: Option<f64>,
    /// The server's voluntary / involuntary context switches per second (all threads).
    server_vcsw_s: f64,
    server_ivcsw_s: f64,
    /// The load generator's (this process: camera and viewers).
    loadgen_vcsw_s: f64,
    loadgen_ivcsw_s: f64,
    loadgen_cpu_pct: f64,
    machine_busy_pct: f64,
    /// CPU of everything else on the box (other users' builds...), % of one core.
    other_cpu_pct: f64,
    /// 1-minute load average just before the run started and at the end of its window.
    loadavg_before: f64,
    loadavg_end: f64,
    /// Other processes used ≥ 20 % of a core in the window, or the load average before the run
    /// was ≥ 1: figures from a busy machine.
    busy: bool,
    /// The load generator used ≥ 90 % of the CPUs it was pinned to: the limit may be it.
    loadgen_limited: bool,
    /// SRTP profile(s) in the DTLS ServerHello the viewers saw / the server reported.
    srtp_viewer: String,
    srtp_server: String,
    /// Under `BENCH_CALLGRIND`: the server's instructions (callgrind's Ir) in the window per
    /// delivered viewer-packet (its CPU figures are then valgrind's, not the server's).
    instr_per_pkt: Option<f64>,
    error: Option<String>,
}

/// One multi-core search: the largest viewer count held at < 1 % loss.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchResult {
    target: String,
    workers: usize,
    mbps: u32,
    server_cpus: String,
    /// Largest count that held (no setup failure, no lost viewer, loss < 1 %).
    held: Option<usize>,
    /// Smallest count that did not, and why.
    failed_at: Option<usize>,
    failed_why: String,
    /// Every (count, loss %, ok) tried, in order.
    steps: Vec<(usize, f64, bool)>,
    reached_cap: bool,
    loadgen_limited: bool,
    loadgen_cpus: String,
    /// Steps taken on a busy machine (see `RunResult::busy`), and the most CPU other processes
    /// used in a step (% of one core).
    busy_steps: usize,
    max_other_cpu_pct: f64,
}

/// What the whole run was: machine, versions, camera, Janus configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    started: String,
    finished: String,
    command: String,
    machine: String,
    cpu_model: String,
    cores: usize,
    kernel: String,
    loadavg_start: f64,
    camgate: String,
    rustc: String,
    janus: String,
    janus_config: String,
    rmem_default: String,
    /// The benchmark's scheduling priority: its autogroup's nice and its own.
    scheduling: String,
    camera: String,
    viewers: String,
    window_s: u64,
    rounds: usize,
    quick: bool,
}

/// The Janus configurations used (for the report).
static JANUS_CONFIGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// One line of the raw results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Raw {
    Meta(Box<Meta>),
    Micro(Vec<micro::MicroResult>),
    Transcode(Vec<transcode::TranscodeResult>),
    Run(Box<RunResult>),
    Search(SearchResult),
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
    rounds: usize,
    camera: String,
    capture_dir: PathBuf,
    server_cpus: Option<String>,
    loadgen_cpus: Option<String>,
    search: bool,
    search_max: usize,
    no_micro: bool,
    no_matrix: bool,
    /// Keep the raw file's earlier records (several invocations, one report).
    append: bool,
}

fn parse_list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

/// CPUs online on the machine (not `available_parallelism`, which shrinks once this process
/// pins itself to the load generator's CPUs).
#[allow(unsafe_code)] // sysconf through libc
fn cores() -> usize {
    // SAFETY: sysconf takes any name and only returns a number.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// "a-b", or "a" when a == b.
fn cpu_range(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
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
        rounds: 3,
        camera: "x264".into(),
        capture_dir: PathBuf::from("target/bench-data"),
        server_cpus: None,
        loadgen_cpus: None,
        search: false,
        search_max: 1600,
        no_micro: false,
        no_matrix: false,
        append: false,
    };
    let mut raw_in = None;
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
            "--rounds" => o.rounds = val().parse().unwrap_or(3).max(1),
            "--camera" => o.camera = val(),
            "--capture-dir" => o.capture_dir = PathBuf::from(val()),
            "--server-cpus" => o.server_cpus = Some(val()),
            "--loadgen-cpus" => o.loadgen_cpus = Some(val()),
            "--search" => o.search = true,
            "--search-only" => {
                o.search = true;
                o.no_matrix = true;
            }
            "--search-max" => o.search_max = val().parse().unwrap_or(1600),
            "--no-micro" => o.no_micro = true,
            "--append" => o.append = true,
            "--raw" => raw_in = Some(PathBuf::from(val())),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    // Default pinning: the server on CPU 0, the load generator on the others.
    if o.server_cpus.is_none() && cores() >= 2 {
        o.server_cpus = Some("0".into());
        o.loadgen_cpus = Some(cpu_range(1, cores() - 1));
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
        "suite" => {
            let failed = suite(&o);
            if failed > 0 {
                eprintln!(
                    "{failed} run(s) failed: see the rows marked failed in {}",
                    o.out.display()
                );
                std::process::exit(1);
            }
        }
        "report" => {
            // Regenerates the report from a raw results file (one JSON record a line).
            let raw = raw_in.unwrap_or_else(|| o.out.with_extension("raw.jsonl"));
            match read_raw(&raw) {
                Ok(records) => report::write(&o.out, &records),
                Err(e) => {
                    eprintln!("{}: {e}", raw.display());
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: camgate-bench suite|report|micro|transcode|soak [options]");
            std::process::exit(2);
        }
    }
}

fn read_raw(path: &std::path::Path) -> Result<Vec<Raw>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect()
}

/// Appends one record to the raw file and regenerates the report from the whole file.
fn record(o: &Opts, raw: &std::path::Path, r: Raw) {
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(raw)
    {
        let _ = writeln!(f, "{}", serde_json::to_string(&r).unwrap_or_default());
    }
    if let Ok(all) = read_raw(raw) {
        report::write(&o.out, &all);
    }
}

/// x264 through GStreamer, packetized as gst-rtsp-server does (`rtph264pay mtu=1400`, SPS/PPS
/// before every IDR): 10 s of 720p30 at `mbps`, 1 s GOP, made once and replayed in a loop.
fn x264_capture(o: &Opts, mbps: u32) -> Result<Arc<camera::Recorded>, String> {
    let path = o.capture_dir.join(format!("x264-720p30-{mbps}M.rtp"));
    if !path.exists() {
        std::fs::create_dir_all(&o.capture_dir).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        let pipeline = format!(
            "videotestsrc num-buffers=300 pattern=smpte horizontal-speed=4 ! \
             video/x-raw,width=1280,height=720,framerate=30/1 ! timeoverlay font-desc=\"Sans 48\" ! \
             x264enc tune=zerolatency speed-preset=veryfast bitrate={} key-int-max=30 ! \
             video/x-h264,profile=constrained-baseline ! rtph264pay mtu=1400 config-interval=-1 pt=96 ! \
             rtpstreampay ! filesink location={}",
            mbps * 1000,
            tmp.display()
        );
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("gst-launch-1.0 -q {pipeline}"))
            .status()
            .map_err(|e| format!("gst-launch-1.0: {e}"))?;
        if !ok.success() {
            return Err(format!("gst-launch-1.0 failed ({ok}): {pipeline}"));
        }
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    camera::Recorded::load(&path).map(Arc::new)
}

fn aac_track() -> Result<Arc<camera::RecordedAudio>, String> {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/data/audio/aac_hbr_48000_mono");
    camera::RecordedAudio::load(&base).map(Arc::new)
}

fn media_for(o: &Opts, target: &str, mbps: u32) -> Result<camera::Media, String> {
    let video = match o.camera.as_str() {
        "x264" => Some(x264_capture(o, mbps)?),
        "synthetic" => None,
        other => return Err(format!("unknown --camera {other} (x264, synthetic)")),
    };
    let audio = if target == "camgate-aac" {
        Some(aac_track()?)
    } else {
        None
    };
    Ok(camera::Media { video, audio })
}

fn camera_description(o: &Opts) -> String {
    let mut s = String::new();
    match o.camera.as_str() {
        "x264" => {
            let _ = write!(
                s,
                "x264 (GStreamer `videotestsrc pattern=smpte horizontal-speed=4 ! timeoverlay ! x264enc tune=zerolatency \
                 speed-preset=veryfast bitrate=<rate> key-int-max=30`, constrained baseline 1280×720 30 fps, 1 s GOP) \
                 packetized by `rtph264pay mtu=1400 config-interval=-1` as gst-rtsp-server does, recorded once \
                 (`{}`) and replayed packet for packet by the bench's RTSP server, each frame as a burst at its \
                 timestamp, looped with continuing sequence numbers and timestamps.",
                o.capture_dir.display()
            );
            for &mbps in &o.bitrates {
                if let Ok(r) = x264_capture(o, mbps) {
                    let _ = write!(
                        s,
                        " At {mbps} Mbit/s: {:.0} B per frame ({:.0} B per IDR), {:.1} RTP packets per frame of {:.0} B mean.",
                        r.mean_frame_bytes, r.mean_idr_bytes, r.packets_per_frame, r.mean_packet_bytes
                    );
                }
            }
        }
        _ => s.push_str(
            "synthetic H.264 (random content, 1 s GOP, keyframe ≈ 9× a P-frame, FU-A in 1400-byte RTP packets)",
        ),
    }
    s.push_str(
        " The last 12 bytes of every slice packet are overwritten with a packet id (the relay does not decode video); \
         SPS, PPS, SEI and AUD packets are left intact. Audio: PCMU 8 kHz in 20 ms packets (with ids); in the \
         `camgate-aac` rows a recorded AAC-hbr 48 kHz mono track (`core/tests/data/audio/aac_hbr_48000_mono`, no ids) \
         that camgate transcodes to Opus (Janus does not transcode: it has no such row).",
    );
    s
}

fn suite(o: &Opts) -> usize {
    let counts = if !o.counts.is_empty() {
        o.counts.clone()
    } else if o.quick {
        vec![1, 10]
    } else {
        vec![1, 10, 100, 300]
    };
    let bitrates = if o.quick { vec![2] } else { o.bitrates.clone() };
    let o = &Opts {
        bitrates: bitrates.clone(),
        rounds: if o.quick { 1 } else { o.rounds },
        ..clone_opts(o)
    };
    let mut targets: Vec<String> = if o.targets.is_empty() {
        vec!["camgate".into(), "janus".into(), "camgate-aac".into()]
    } else {
        o.targets.clone()
    };
    let mut failed = 0;
    if !o.janus {
        targets.retain(|t| t != "janus");
    }
    let janus_version = sh("janus --version 2>/dev/null | head -1");
    if targets.iter().any(|t| t == "janus") && janus_version.is_empty() {
        eprintln!("janus not installed: its runs fail (pass --no-janus to leave it out)");
    }
    let raw = o.out.with_extension("raw.jsonl");
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    if !o.append {
        let _ = std::fs::remove_file(&raw);
    }
    let cpu_model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let mut meta = Meta {
        started: now_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: sh("uname -n"),
        cpu_model: cpu_model.trim().to_string(),
        cores: cores(),
        kernel: sh("uname -r"),
        loadavg_start: targets::loadavg(),
        camgate: format!(
            "{} ({})",
            std::env::var("BENCH_REV_LABEL").unwrap_or_else(|_| sh("git describe --always --dirty")),
            o.camgate.display()
        ),
        rustc: sh("rustc --version"),
        janus: if janus_version.is_empty() { "not installed".into() } else { janus_version },
        janus_config: String::new(),
        rmem_default: format!(
            "net.core.rmem_default = {}, net.core.rmem_max = {}",
            sh("cat /proc/sys/net/core/rmem_default"),
            sh("cat /proc/sys/net/core/rmem_max")
        ),
        scheduling: format!(
            "autogroup {}, process nice {}",
            sh("cat /proc/self/autogroup"),
            sh("nice")
        ),
        camera: camera_description(o),
        viewers: format!(
            "str0m 0.25 peers (real ICE, DTLS, SRTP), {} threads, one UDP socket each, in the same process as the camera \
             (the load generator); everything on loopback inside a private network namespace. Steady window {} s, \
             taken 2 s after every viewer had its first keyframe. RTSP players (targets `camgate-rtsp-tcp` / \
             `camgate-rtsp-udp`): the bench's own RTSP client (DESCRIBE, SETUP of video and audio, PLAY; \
             TCP-interleaved, or UDP with an RTP/RTCP port pair per track) on the same threads' model, playing \
             `rtsp://127.0.0.1:PORT/bench` from camgate's RTSP server (the camera as a named stream, pulled at start); \
             no encryption on that path.",
            o.threads,
            o.window.as_secs()
        ),
        window_s: o.window.as_secs(),
        rounds: o.rounds,
        quick: o.quick,
        ..Default::default()
    };
    record(o, &raw, Raw::Meta(Box::new(meta.clone())));
    if !o.no_micro && !o.no_matrix {
        eprintln!("micro-benchmark…");
        let micro_counts = if o.quick {
            vec![1, 10]
        } else {
            vec![1, 10, 100]
        };
        record(
            o,
            &raw,
            Raw::Micro(micro::run(&micro_counts, if o.quick { 90 } else { 300 })),
        );
        eprintln!("audio transcoding…");
        record(
            o,
            &raw,
            Raw::Transcode(transcode::run(if o.quick { 10 } else { 30 })),
        );
    }
    if !o.no_matrix {
        for &mbps in &bitrates {
            // Rounds outermost: a slow spell on a shared box hits one round of every cell,
            // not every round of one cell.
            for round in 1..=o.rounds {
                for target in &targets {
                    let workers = server_cpu_count(o, 1);
                    for &n in &counts {
                        eprintln!(
                            "{target} {mbps} Mbit/s, {n} viewers, round {round}/{}…",
                            o.rounds
                        );
                        let mut r = run_one(
                            o,
                            target,
                            workers,
                            o.server_cpus.clone(),
                            o.loadgen_cpus.clone(),
                            mbps,
                            n,
                        );
                        r.round = round;
                        eprintln!("  → {}", brief(&r));
                        // A run that could not be measured; viewers a saturated server failed to
                        // set up are a result (column "viewers lost"), not a failed run.
                        if r.error.is_some() {
                            failed += 1;
                        }
                        let saturated =
                            r.error.is_some() || r.loss_pct > 5.0 || r.viewers_lost * 10 > n;
                        record(o, &raw, Raw::Run(Box::new(r)));
                        if saturated && n >= 100 {
                            eprintln!("  {target} saturated at {n}: not going higher this round");
                            break;
                        }
                    }
                }
            }
        }
    }
    if o.search {
        let mbps = bitrates[0];
        let all = (0..cores())
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",");
        for target in targets.iter().filter(|t| *t == "camgate" || *t == "janus") {
            for workers in [1usize, 2] {
                // workers = 1: the server on CPU 0, the load generator on the rest; workers = 2 on
                // a 2-core box: both share both cores (no core is left to separate them).
                let (scpus, lcpus) = if workers == 1 {
                    (o.server_cpus.clone(), o.loadgen_cpus.clone())
                } else if cores() > workers {
                    (
                        Some(cpu_range(0, workers - 1)),
                        Some(cpu_range(workers, cores() - 1)),
                    )
                } else {
                    (Some(all.clone()), Some(all.clone()))
                };
                let s = search(o, target, workers, scpus, lcpus, mbps, &mut failed);
                record(o, &raw, Raw::Search(s));
            }
        }
    }
    meta.finished = now_string();
    meta.janus_config = JANUS_CONFIGS.lock().unwrap().join("\n");
    record(o, &raw, Raw::Meta(Box::new(meta)));
    failed
}

/// Doubles the viewer count from 100 while it holds, then bisects to about 10 %.
fn search(
    o: &Opts,
    target: &str,
    workers: usize,
    scpus: Option<String>,
    lcpus: Option<String>,
    mbps: u32,
    failed: &mut usize,
) -> SearchResult {
    let mut s = SearchResult {
        target: target.into(),
        workers,
        mbps,
        server_cpus: scpus.clone().unwrap_or_default(),
        loadgen_cpus: lcpus.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut try_n = |n: usize, s: &mut SearchResult| -> bool {
        eprintln!("search: {target} workers={workers} {mbps} Mbit/s, {n} viewers…");
        let o2 = Opts {
            window: Duration::from_secs(o.window.as_secs().min(6)),
            ..clone_opts(o)
        };
        let r = run_one(&o2, target, workers, scpus.clone(), lcpus.clone(), mbps, n);
        eprintln!("  → {}", brief(&r));
        if r.error.is_some() {
            *failed += 1;
        }
        let ok =
            r.error.is_none() && r.setup_failed == 0 && r.viewers_lost == 0 && r.loss_pct < 1.0;
        s.steps.push((n, r.loss_pct, ok));
        s.loadgen_limited |= r.loadgen_limited;
        s.busy_steps += usize::from(r.busy);
        s.max_other_cpu_pct = s.max_other_cpu_pct.max(r.other_cpu_pct);
        if !ok {
            s.failed_why = match &r.error {
                Some(e) => e.clone(),
                None => format!(
                    "loss {:.2} %, {} of {n} viewers lost ({} failed to set up)",
                    r.loss_pct, r.viewers_lost, r.setup_failed
                ),
            };
        }
        ok
    };
    let (mut lo, mut hi) = (0usize, None);
    let mut n = 100;
    let mut steps = 0;
    while n <= o.search_max && steps < 8 {
        steps += 1;
        if try_n(n, &mut s) {
            lo = n;
            n *= 2;
        } else {
            hi = Some(n);
            break;
        }
    }
    if hi.is_none() && lo > 0 {
        s.reached_cap = true;
    }
    while let Some(h) = hi {
        if steps >= 8 || h - lo <= (lo / 10).max(10) {
            break;
        }
        steps += 1;
        let mid = if lo == 0 { h / 2 } else { (lo + h) / 2 };
        if mid == 0 {
            break;
        }
        if try_n(mid, &mut s) {
            lo = mid;
        } else {
            hi = Some(mid);
        }
    }
    s.held = (lo > 0).then_some(lo);
    s.failed_at = hi;
    s
}

fn server_cpu_count(o: &Opts, default: usize) -> usize {
    o.server_cpus
        .as_deref()
        .map(|c| {
            c.split(',')
                .map(|p| match p.split_once('-') {
                    Some((a, b)) => {
                        b.trim().parse::<usize>().unwrap_or(0) + 1
                            - a.trim().parse::<usize>().unwrap_or(0)
                    }
                    None => 1,
                })
                .sum()
        })
        .unwrap_or(default)
}

fn clone_opts(o: &Opts) -> Opts {
    Opts {
        quick: o.quick,
        janus: o.janus,
        out: o.out.clone(),
        camgate: o.camgate.clone(),
        counts: o.counts.clone(),
        bitrates: o.bitrates.clone(),
        window: o.window,
        threads: o.threads,
        targets: o.targets.clone(),
        rounds: o.rounds,
        camera: o.camera.clone(),
        capture_dir: o.capture_dir.clone(),
        server_cpus: o.server_cpus.clone(),
        loadgen_cpus: o.loadgen_cpus.clone(),
        search: o.search,
        search_max: o.search_max,
        no_micro: o.no_micro,
        no_matrix: o.no_matrix,
        append: o.append,
    }
}

fn brief(r: &RunResult) -> String {
    if let Some(e) = &r.error {
        return format!("FAILED: {e}");
    }
    format!(
        "loss {:.2} % lost {} cpu {:.1} % {:.2} µs/pkt{} frame p50/p99 {} / {} ms viewer p99 {}–{} ms rho {} loadgen {:.0} % other {:.0} % load {:.2} srtp {} / {}",
        r.loss_pct,
        r.viewers_lost,
        r.server_cpu_pct,
        r.us_per_pkt,
        r.instr_per_pkt
            .map_or(String::new(), |i| format!(" {i:.0} instructions/pkt (callgrind)")),
        f(r.frame_p50_ms, 2),
        f(r.frame_p99_ms, 2),
        f(r.viewer_p99_min_ms, 2),
        f(r.viewer_p99_max_ms, 2),
        f(r.position_rho, 2),
        r.loadgen_cpu_pct,
        r.other_cpu_pct,
        r.loadavg_end,
        r.srtp_viewer,
        r.srtp_server
    )
}

fn run_one(
    o: &Opts,
    target: &str,
    workers: usize,
    server_cpus: Option<String>,
    loadgen_cpus: Option<String>,
    mbps: u32,
    n: usize,
) -> RunResult {
    let mut r = RunResult {
        target: target.into(),
        workers,
        mbps,
        n,
        server_cpus: server_cpus.clone().unwrap_or_default(),
        loadgen_cpus: loadgen_cpus.clone().unwrap_or_default(),
        loadavg_before: targets::loadavg(),
        ..Default::default()
    };
    if let Err(e) = run_inner(o, target, mbps, n, &mut r) {
        r.error = Some(e);
    }
    r.busy = report::busy_window(r.other_cpu_pct);
    r
}

#[allow(unsafe_code)] // getrusage through libc
fn self_ctxt_switches() -> (u64, u64) {
    // SAFETY: a zeroed rusage is valid for getrusage to fill.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        (u.ru_nvcsw as u64, u.ru_nivcsw as u64)
    }
}

/// Percentile (0..=1) of sorted values.
fn pct_sorted(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

/// Spearman's rank correlation of (x, y) (no tie correction beyond average ranks).
fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 3 {
        return None;
    }
    let rank = |vals: Vec<f64>| -> Vec<f64> {
        let mut idx: Vec<usize> = (0..vals.len()).collect();
        idx.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        let mut ranks = vec![0.0; vals.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && vals[idx[j + 1]] == vals[idx[i]] {
                j += 1;
            }
            for k in i..=j {
                ranks[idx[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        ranks
    };
    let rx = rank(pairs.iter().map(|p| p.0).collect());
    let ry = rank(pairs.iter().map(|p| p.1).collect());
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn run_inner(o: &Opts, target: &str, mbps: u32, n: usize, r: &mut RunResult) -> Result<(), String> {
    if !r.loadgen_cpus.is_empty() {
        // Camera and viewer threads are spawned below and inherit this.
        targets::pin_self(&r.loadgen_cpus)?;
    }
    let scpus = (!r.server_cpus.is_empty()).then_some(r.server_cpus.as_str());
    let media = media_for(o, target, mbps)?;
    let log = camera::new_log();
    let cam = camera::Camera::start_with(mbps * 1_000_000, media, log.clone())
        .map_err(|e| e.to_string())?;
    let url = cam.url("cam1");
    // RTSP players: over TCP (Some(true)) or UDP (Some(false)); None: WebRTC viewers.
    let rtsp_tcp = match target {
        "camgate-rtsp-tcp" => Some(true),
        "camgate-rtsp-udp" => Some(false),
        _ => None,
    };
    let server: Server = match target {
        "camgate" | "camgate-tcp" | "camgate-aac" => {
            targets::start_camgate(&o.camgate, r.workers, scpus)?
        }
        "camgate-rtsp-tcp" | "camgate-rtsp-udp" => {
            targets::start_camgate_with(&o.camgate, r.workers, scpus, Some(&url))?
        }
        "janus" => {
            let dir =
                std::env::temp_dir().join(format!("camgate-bench-janus-{}", std::process::id()));
            let s = targets::start_janus(&url, &dir, r.workers, scpus)?;
            // Kept once per distinct configuration (the camera's port and the folder vary).
            let text = s
                .config
                .replace(&url, "rtsp://127.0.0.1:<camera port>/cam1")
                .replace(&dir.display().to_string(), "<run folder>");
            let mut seen = JANUS_CONFIGS.lock().unwrap();
            if !seen.contains(&text) {
                seen.push(text);
            }
            s
        }
        other => return Err(format!("unknown target {other}")),
    };
    let pid = server.pid();
    if let Kind::Camgate { http, .. } = &server.kind {
        // Warm like Janus's mountpoint: camera pulled and a GOP seen before the first viewer
        // (a named stream is pulled at start).
        if rtsp_tcp.is_none() {
            targets::camgate_startup(*http, &url)?;
        }
        std::thread::sleep(Duration::from_millis(2500));
    }
    let player_url = server
        .rtsp
        .map(|a| format!("rtsp://{a}/{}", targets::STREAM_NAME))
        .unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    let rss_base = targets::proc_rss_kb(pid);
    let shared = Shared::new(log.clone());
    let workers: Vec<LoadWorker> = (0..o.threads.max(1))
        .map(|_| match rtsp_tcp {
            Some(_) => LoadWorker::Players(players::Worker::spawn(shared.clone())),
            None => LoadWorker::Viewers(Worker::spawn(shared.clone())),
        })
        .collect();
    let setup_deadline = Instant::now() + Duration::from_secs(30 + n as u64 / 5);
    let mut janus_first = None;
    for i in 0..n {
        if Instant::now() > setup_deadline {
            r.setup_failed += n - i;
            break;
        }
        let ready = match (&server.kind, rtsp_tcp, &workers[i % workers.len()]) {
            (_, Some(tcp), LoadWorker::Players(w)) => {
                players::connect(&player_url, tcp, i).map(|p| w.add(p))
            }
            (Kind::Camgate { ws, .. }, None, LoadWorker::Viewers(w)) => targets::camgate_viewer(
                *ws,
                &url,
                i,
                target == "camgate-tcp",
                target == "camgate-aac",
            )
            .map(|v| w.add(v)),
            (Kind::Janus { http }, None, LoadWorker::Viewers(w)) => targets::janus_viewer(*http, i)
                .map(|v| {
                    if janus_first.is_none() {
                        janus_first = v.janus_ids;
                    }
                    w.add(v)
                }),
            _ => Err("no load generator for this target".into()),
        };
        match ready {
            Ok(()) => {}
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
    let udp0 = udp_snmp();
    let sw0 = targets::proc_ctxt_switches(pid);
    let me_sw0 = self_ctxt_switches();
    let (cpu0, me0, m0) = (
        targets::proc_cpu(pid),
        targets::proc_cpu(std::process::id()),
        targets::machine_cpu(),
    );
    shared.window.w0.store(log.ns(t0), Ordering::Relaxed);
    let callgrind_out = std::env::var("BENCH_CALLGRIND").ok();
    if callgrind_out.is_some() {
        callgrind::instr(pid, true);
    }
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
    let instructions = callgrind_out.as_deref().and_then(|out| {
        let ir = callgrind::dump(pid, out);
        callgrind::instr(pid, false);
        ir
    });
    let sw1 = targets::proc_ctxt_switches(pid);
    if std::env::var_os("BENCH_DEBUG").is_some() {
        // Where UDP datagrams were dropped in the window (this network namespace's counters).
        let udp1 = udp_snmp();
        let d: Vec<String> = udp1
            .iter()
            .zip(&udp0)
            .map(|((k, b), (_, a))| format!("{k} {}", b.saturating_sub(*a)))
            .collect();
        eprintln!("  kernel UDP in the window: {}", d.join(", "));
        if let Kind::Camgate { http, .. } = &server.kind {
            for l in metrics_text(*http).lines() {
                if l.starts_with("camgate_rtsp_player_packets") {
                    eprintln!("  {l}");
                }
            }
        }
    }
    let me_sw1 = self_ctxt_switches();
    let (cpu1, me1, m1) = (
        targets::proc_cpu(pid),
        targets::proc_cpu(std::process::id()),
        targets::machine_cpu(),
    );
    r.loadavg_end = targets::loadavg();
    let rss = targets::proc_rss_kb(pid);
    if let Some((sid, hid)) = janus_first {
        r.srtp_server = targets::janus_srtp(sid, hid).unwrap_or_else(|| "not reported".into());
    }
    // Late packets of the window still count.
    std::thread::sleep(Duration::from_millis(1000));
    shared.stop.store(true, Ordering::Relaxed);
    let mut stats = Vec::new();
    let mut hist = vec![0u64; BUCKETS];
    let mut relay_hist = vec![0u64; BUCKETS];
    let mut frame_hist = vec![0u64; BUCKETS];
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
        for (a, b) in frame_hist.iter_mut().zip(res.frame_hist) {
            *a += u64::from(b);
        }
    }
    if let Kind::Camgate { .. } = server.kind {
        r.srtp_server = server.srtp.lock().unwrap().join(", ");
        if r.srtp_server.is_empty() {
            r.srtp_server = "not reported".into();
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
    let mut profiles: Vec<String> = stats
        .iter()
        .map(|s| {
            s.srtp_profile
                .map_or("not seen".into(), viewers::srtp_profile_name)
        })
        .collect();
    profiles.sort();
    profiles.dedup();
    r.srtp_viewer = profiles.join(", ");
    if rtsp_tcp.is_some() {
        r.srtp_viewer = "none (plain RTP)".into();
        r.srtp_server = "none (plain RTP)".into();
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
    let mut audio: Vec<f64> = stats.iter().map(|s| s.audio_window as f64 / secs).collect();
    audio.sort_by(|a, b| a.total_cmp(b));
    r.audio_pkts_per_viewer_s = pct_sorted(&audio, 0.5).unwrap_or(0.0);
    let cpu = cpu1.since(&cpu0);
    let per_pkt_us = |d: Duration| d.as_secs_f64() * 1e6 / r.delivered.max(1) as f64;
    r.server_cpu_pct = 100.0 * cpu.total().as_secs_f64() / secs;
    r.us_per_pkt = per_pkt_us(cpu.total());
    r.instr_per_pkt = instructions.map(|ir| ir as f64 / r.delivered.max(1) as f64);
    r.us_per_pkt_kernel = per_pkt_us(cpu.system);
    r.us_per_pkt_softirq = per_pkt_us(Duration::from_nanos(
        (m1.softirq - m0.softirq) * 1_000_000_000 / targets::clk_tck(),
    ));
    r.server_vcsw_s = sw1.0.saturating_sub(sw0.0) as f64 / secs;
    r.server_ivcsw_s = sw1.1.saturating_sub(sw0.1) as f64 / secs;
    r.loadgen_vcsw_s = me_sw1.0.saturating_sub(me_sw0.0) as f64 / secs;
    r.loadgen_ivcsw_s = me_sw1.1.saturating_sub(me_sw0.1) as f64 / secs;
    r.loadgen_cpu_pct = 100.0 * me1.since(&me0).total().as_secs_f64() / secs;
    let loadgen_cores = if r.loadgen_cpus.is_empty() {
        cores()
    } else {
        let c = r.loadgen_cpus.clone();
        server_cpu_count(
            &Opts {
                server_cpus: Some(c),
                ..clone_opts(o)
            },
            cores(),
        )
    };
    r.loadgen_limited = r.loadgen_cpu_pct >= 90.0 * loadgen_cores as f64;
    r.machine_busy_pct = 100.0 * (m1.busy - m0.busy) as f64 / (m1.total - m0.total).max(1) as f64;
    r.other_cpu_pct =
        (r.machine_busy_pct * cores() as f64 - r.server_cpu_pct - r.loadgen_cpu_pct).max(0.0);
    r.rss_base_mb = rss_base as f64 / 1024.0;
    r.rss_mb = rss as f64 / 1024.0;
    r.rss_per_viewer_kb = (rss as f64 - rss_base as f64) / n.max(1) as f64;
    r.p50_ms = percentile(&hist, 0.5).map(|u| u / 1000.0);
    r.p99_ms = percentile(&hist, 0.99).map(|u| u / 1000.0);
    r.relay_p50_ms = percentile(&relay_hist, 0.5).map(|u| u / 1000.0);
    r.relay_p99_ms = percentile(&relay_hist, 0.99).map(|u| u / 1000.0);
    r.frame_p50_ms = percentile(&frame_hist, 0.5).map(|u| u / 1000.0);
    r.frame_p99_ms = percentile(&frame_hist, 0.99).map(|u| u / 1000.0);
    r.frames_measured = frame_hist.iter().sum();
    // Per viewer: its own p99, by join order.
    let mut per: Vec<(f64, f64)> = stats
        .iter_mut()
        .filter(|s| !s.frame_us.is_empty())
        .map(|s| {
            s.frame_us.sort_unstable();
            let v: Vec<f64> = s.frame_us.iter().map(|&u| f64::from(u) / 1000.0).collect();
            (s.index as f64, pct_sorted(&v, 0.99).unwrap_or(0.0))
        })
        .collect();
    per.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut p99s: Vec<f64> = per.iter().map(|p| p.1).collect();
    let tenth = (per.len() / 10).max(1);
    let mean = |s: &[(f64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len().max(1) as f64;
    if !per.is_empty() {
        r.first_tenth_p99_ms = Some(mean(&per[..tenth]));
        r.last_tenth_p99_ms = Some(mean(&per[per.len() - tenth..]));
    }
    r.position_rho = spearman(&per);
    p99s.sort_by(|a, b| a.total_cmp(b));
    r.viewer_p99_min_ms = p99s.first().copied();
    r.viewer_p99_median_ms = pct_sorted(&p99s, 0.5);
    r.viewer_p99_max_ms = p99s.last().copied();
    let mut kf: Vec<f64> = stats
        .iter()
        .filter_map(|s| s.first_keyframe.map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    kf.sort_by(|a, b| a.total_cmp(b));
    r.ttfk_p50_ms = kf.get(kf.len() / 2).copied();
    r.ttfk_max_ms = kf.last().copied();
    Ok(())
}

/// camgate's `/metrics` page (empty on any error).
fn metrics_text(http: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(http) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The kernel's UDP counters (`/proc/net/snmp`), name and value.
fn udp_snmp() -> Vec<(String, u64)> {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Vec::new();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// A load generator thread: WebRTC viewers or RTSP players.
enum LoadWorker {
    Viewers(Worker),
    Players(players::Worker),
}

impl LoadWorker {
    fn join(self) -> viewers::WorkerResult {
        match self {
            LoadWorker::Viewers(w) => w.join(),
            LoadWorker::Players(w) => w.join(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_sees_growth_with_position() {
        let grows: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 1.0 + i as f64 * 0.1)).collect();
        assert!((spearman(&grows).unwrap() - 1.0).abs() < 1e-9);
        let falls: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 5.0 - i as f64 * 0.1)).collect();
        assert!((spearman(&falls).unwrap() + 1.0).abs() < 1e-9);
        // Flat latency: no rank variance, no correlation to claim.
        let flat: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 2.0)).collect();
        assert_eq!(spearman(&flat), None);
    }

    #[test]
    fn percentile_of_sorted_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct_sorted(&v, 0.99), Some(99.0));
        assert_eq!(pct_sorted(&v, 0.5), Some(50.0));
        assert_eq!(pct_sorted(&[], 0.5), None);
    }

    #[test]
    fn raw_records_round_trip() {
        let r = RunResult {
            target: "camgate".into(),
            n: 10,
            frame_p99_ms: Some(1.5),
            error: Some("x".into()),
            ..Default::default()
        };
        let line = serde_json::to_string(&Raw::Run(Box::new(r))).unwrap();
        let Raw::Run(back) = serde_json::from_str(&line).unwrap() else {
            panic!("not a run: {line}");
        };
        assert_eq!(
            (back.n, back.frame_p99_ms, back.error.as_deref()),
            (10, Some(1.5), Some("x"))
        );
    }
}
