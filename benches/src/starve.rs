//! The starvation test (issue 19): camgate held to a fraction of one core by a CFS quota while
//! viewers play a camera, then given the CPU back. It must cost frames, not memory or viewers:
//! RSS stays under a bound, and every viewer is back at the camera's full rate within a few
//! seconds of the quota being lifted, none dropped.
//!
//! The quota is a cgroup made for camgate alone: cgroup v2 `cpu.max` when the unified hierarchy
//! has the cpu controller, else cgroup v1 `cpu.cfs_quota_us` (root needed). The cgroup is
//! removed on every exit path (camgate is killed first so it is empty).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::camera;
use crate::targets::{self, Kind};
use crate::viewers::{Shared, Worker};

const PERIOD_US: u64 = 100_000;

pub struct Opts {
    pub viewers: usize,
    pub mbps: u32,
    pub quota_pct: u64,
    pub starve: Duration,
    /// After the quota is lifted: how long camgate has to catch up before the check window.
    pub recover: Duration,
    /// The check window: every viewer must get the camera's packets sent in it.
    pub window: Duration,
    pub rss_bound_mb: u64,
    pub threads: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            viewers: 200,
            mbps: 4,
            quota_pct: 20,
            starve: Duration::from_secs(60),
            recover: Duration::from_secs(5),
            window: Duration::from_secs(5),
            rss_bound_mb: 400,
            threads: 2,
        }
    }
}

/// `camgate-bench starve [--viewers N] [--mbps M] [--quota-pct P] [--starve-secs S]
/// [--recover-secs R] [--window-secs W] [--rss-bound-mb B] [--threads T] [--camgate BIN]`;
/// exits 0 when camgate passed.
pub fn main(args: &[String]) -> i32 {
    let mut o = Opts::default();
    let mut camgate = PathBuf::from("target/release/camgate");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_default();
        let num = || v.parse::<u64>().unwrap_or(0);
        match a.as_str() {
            "--viewers" => o.viewers = num() as usize,
            "--mbps" => o.mbps = num() as u32,
            "--quota-pct" => o.quota_pct = num(),
            "--starve-secs" => o.starve = Duration::from_secs(num()),
            "--recover-secs" => o.recover = Duration::from_secs(num()),
            "--window-secs" => o.window = Duration::from_secs(num()),
            "--rss-bound-mb" => o.rss_bound_mb = num(),
            "--threads" => o.threads = num() as usize,
            "--camgate" => camgate = PathBuf::from(v),
            other => {
                eprintln!("starve: unknown argument {other}");
                return 2;
            }
        }
    }
    match run(&camgate, &o) {
        Ok(r) => {
            println!("{}", r.describe(&o));
            i32::from(!r.passed(&o))
        }
        Err(e) => {
            eprintln!("starve: {e}");
            1
        }
    }
}

#[derive(Debug, Default)]
pub struct StarveResult {
    pub cgroup: String,
    pub setup_failed: usize,
    pub rss_before_kb: u64,
    pub rss_peak_kb: u64,
    pub rss_after_kb: u64,
    /// Camera packets sent in the check window.
    pub expected: u64,
    /// Viewers that got at least 95 % of them.
    pub recovered: usize,
    /// Viewers whose peer failed (ICE disconnected, DTLS or signaling closed).
    pub dropped: usize,
    /// The fewest packets of the window a viewer got, and its share.
    pub worst: u64,
    pub camgate_alive: bool,
    /// camgate's `camgate_camera_backlog_skips_total` at the end: how often it found the
    /// camera's unread input over its bound and skipped it (None: /metrics not read).
    pub backlog_skips: Option<u64>,
}

impl StarveResult {
    fn ok_viewers(&self, o: &Opts) -> usize {
        o.viewers - self.setup_failed
    }

    pub fn passed(&self, o: &Opts) -> bool {
        self.setup_failed == 0
            && self.camgate_alive
            && self.dropped == 0
            && self.recovered == o.viewers
            && self.rss_peak_kb < o.rss_bound_mb * 1024
    }

    pub fn describe(&self, o: &Opts) -> String {
        format!(
            "starvation: {} viewers of a {} Mbit/s camera, camgate at {} % of one core for {} s ({}): \
             RSS {:.0} MB before, peak {:.0} MB (bound {} MB), {:.0} MB after; \
             {} of {} viewers back at full rate {} s after the quota was lifted \
             (worst: {} of {} camera packets), {} dropped, {} failed to start; camera backlog skipped {} times; \
             camgate {}; {}",
            o.viewers,
            o.mbps,
            o.quota_pct,
            o.starve.as_secs(),
            self.cgroup,
            self.rss_before_kb as f64 / 1024.0,
            self.rss_peak_kb as f64 / 1024.0,
            o.rss_bound_mb,
            self.rss_after_kb as f64 / 1024.0,
            self.recovered,
            self.ok_viewers(o),
            (o.recover + o.window).as_secs(),
            self.worst,
            self.expected,
            self.dropped,
            self.setup_failed,
            self.backlog_skips
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            if self.camgate_alive {
                "running"
            } else {
                "EXITED"
            },
            if self.passed(o) { "PASS" } else { "FAIL" },
        )
    }
}

/// One counter from camgate's /metrics (Prometheus text), read with a plain HTTP/1.0 GET.
fn metric(http: std::net::SocketAddr, name: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// camgate's own cpu cgroup; removed on drop (once camgate has exited, see `run`).
struct Cgroup {
    dir: PathBuf,
    v2: bool,
}

impl Cgroup {
    fn create(pid: u32) -> Result<Cgroup, String> {
        // Named after the calling script when there is one (it removes the group if we are killed).
        let name = match std::env::var("CAMGATE_STARVE_TAG") {
            Ok(tag) => format!("camgate-starve-{tag}-{}", std::process::id()),
            Err(_) => format!("camgate-starve-{}", std::process::id()),
        };
        let unified = Path::new("/sys/fs/cgroup/cgroup.controllers");
        let v2 = std::fs::read_to_string(unified)
            .map(|c| c.split_whitespace().any(|x| x == "cpu"))
            .unwrap_or(false);
        let dir = if v2 {
            // The root's subtree must delegate cpu to its children.
            let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
            Path::new("/sys/fs/cgroup").join(&name)
        } else {
            Path::new("/sys/fs/cgroup/cpu").join(&name)
        };
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cg = Cgroup { dir, v2 };
        cg.write("cgroup.procs", &pid.to_string())?;
        Ok(cg)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("write {value} to {}/{file}: {e}", self.dir.display()))
    }

    /// Limits the group to `pct` % of one core; `None` lifts the limit.
    fn limit(&self, pct: Option<u64>) -> Result<(), String> {
        let quota = pct.map(|p| PERIOD_US * p / 100);
        if self.v2 {
            let q = quota.map_or("max".to_string(), |q| q.to_string());
            self.write("cpu.max", &format!("{q} {PERIOD_US}"))
        } else {
            self.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
            let q = quota.map_or("-1".to_string(), |q| q.to_string());
            self.write("cpu.cfs_quota_us", &q)
        }
    }

    fn describe(&self) -> String {
        let v = if self.v2 {
            "cgroup v2 cpu.max"
        } else {
            "cgroup v1 cpu.cfs_quota_us"
        };
        format!("{v}, {}", self.dir.display())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.limit(None);
        // rmdir fails while a task is in the group: camgate is gone by now, give it a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("starve: could not remove {}", self.dir.display());
    }
}

pub fn run(camgate: &Path, o: &Opts) -> Result<StarveResult, String> {
    let mut r = StarveResult::default();
    let log = camera::new_log();
    let cam = camera::Camera::start(o.mbps * 1_000_000, log.clone()).map_err(|e| e.to_string())?;
    let url = cam.url("starve");
    let mut server = targets::start_camgate(camgate, 0, None)?;
    let pid = server.pid();
    let Kind::Camgate { http, ws } = server.kind else {
        return Err("not camgate".into());
    };
    // Declared after `server`, so dropped (removed) after camgate is killed.
    let cg = Cgroup::create(pid)?;
    r.cgroup = cg.describe();
    cg.limit(None)?;
    targets::camgate_startup(http, &url)?;
    std::thread::sleep(Duration::from_millis(2500));
    let shared = Shared::new(log.clone());
    let workers: Vec<Worker> = (0..o.threads.max(1))
        .map(|_| Worker::spawn(shared.clone()))
        .collect();
    for i in 0..o.viewers {
        match targets::camgate_viewer(ws, &url, i, false, false) {
            Ok(v) => workers[i % workers.len()].add(v),
            Err(e) => {
                if r.setup_failed == 0 {
                    eprintln!("  viewer {i}: {e}");
                }
                r.setup_failed += 1;
            }
        }
    }
    let ok = (o.viewers - r.setup_failed) as u64;
    let wait_until = Instant::now() + Duration::from_secs(15);
    while shared.started.load(Ordering::Relaxed) < ok && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    r.rss_before_kb = targets::proc_rss_kb(pid);
    eprintln!(
        "  {} viewers playing, RSS {} MB: starving camgate at {} % for {} s",
        shared.started.load(Ordering::Relaxed),
        r.rss_before_kb / 1024,
        o.quota_pct,
        o.starve.as_secs()
    );
    cg.limit(Some(o.quota_pct))?;
    let until = Instant::now() + o.starve;
    r.rss_peak_kb = r.rss_before_kb;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        r.rss_peak_kb = r.rss_peak_kb.max(targets::proc_rss_kb(pid));
    }
    cg.limit(None)?;
    eprintln!(
        "  quota lifted; RSS peak {} MB; checking recovery",
        r.rss_peak_kb / 1024
    );
    let until = Instant::now() + o.recover;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        r.rss_peak_kb = r.rss_peak_kb.max(targets::proc_rss_kb(pid));
    }
    let w0 = Instant::now();
    shared.window.w0.store(log.ns(w0), Ordering::Relaxed);
    std::thread::sleep(o.window);
    let w1 = Instant::now();
    shared.window.w1.store(log.ns(w1), Ordering::Relaxed);
    // Packets sent at the window's end are still on their way.
    std::thread::sleep(Duration::from_millis(500));
    r.rss_after_kb = targets::proc_rss_kb(pid);
    r.rss_peak_kb = r.rss_peak_kb.max(r.rss_after_kb);
    r.expected = log.count_between(log.ns(w0), log.ns(w1));
    r.camgate_alive = matches!(server.child.try_wait(), Ok(None));
    r.backlog_skips = metric(http, "camgate_camera_backlog_skips_total");
    shared.stop.store(true, Ordering::Relaxed);
    let mut worst = u64::MAX;
    for w in workers {
        for v in w.join().viewers {
            if v.failed || !v.connected {
                r.dropped += 1;
            }
            // 95 %: a packet lost on loopback now and then is not a viewer left behind.
            if !v.failed && v.ids_window * 100 >= r.expected * 95 {
                r.recovered += 1;
            }
            worst = worst.min(v.ids_window);
        }
    }
    r.worst = if worst == u64::MAX { 0 } else { worst };
    drop(server);
    drop(cg);
    Ok(r)
}
