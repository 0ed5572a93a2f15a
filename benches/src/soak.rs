//! The soak run (issue 7): camgate under churn, bounded, on loopback. Steady viewers keep
//! playing one camera while
//! - viewers of it join and leave (signaling, str0m offer, answer, close), `viewer_cycles` times;
//! - other cameras are pulled and terminated over REST, `camera_cycles` times.
//!
//! Then camgate's RSS after the churn is compared with before, and the steady viewers must
//! still be receiving packets.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::camera;
use crate::targets::{self, Kind};
use crate::viewers::{Shared, Worker};

#[derive(Debug)]
pub struct SoakResult {
    pub viewer_cycles: usize,
    pub viewer_cycles_failed: usize,
    pub camera_cycles: usize,
    pub camera_cycles_failed: usize,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub steady_viewers: usize,
    pub steady_still_playing: usize,
    pub seconds: f64,
}

impl SoakResult {
    /// One Markdown table row: cycles, failures, RSS before and after, viewers still playing.
    pub fn row(&self) -> String {
        format!(
            "| {} ({} failed) | {} ({} failed) | {:.1} | {:.1} | {:+.1} | {} of {} | {:.0} |",
            self.viewer_cycles,
            self.viewer_cycles_failed,
            self.camera_cycles,
            self.camera_cycles_failed,
            self.rss_before_kb as f64 / 1024.0,
            self.rss_after_kb as f64 / 1024.0,
            (self.rss_after_kb as f64 - self.rss_before_kb as f64) / 1024.0,
            self.steady_still_playing,
            self.steady_viewers,
            self.seconds
        )
    }
}

pub fn run(
    camgate: &std::path::Path,
    viewer_cycles: usize,
    camera_cycles: usize,
) -> Result<SoakResult, String> {
    let started = Instant::now();
    let log = camera::new_log();
    let cam = camera::Camera::start(2_000_000, log.clone()).map_err(|e| e.to_string())?;
    let url = cam.url("steady");
    let server = targets::start_camgate(camgate, 0, None)?;
    let pid = server.pid();
    let Kind::Camgate { http, ws } = server.kind else {
        return Err("not camgate".into());
    };
    targets::camgate_startup(http, &url)?;
    std::thread::sleep(Duration::from_millis(2500));
    let shared = Shared::new(log.clone());
    let worker = Worker::spawn(shared.clone());
    let steady = 5;
    for i in 0..steady {
        worker.add(targets::camgate_viewer(ws, &url, i, false, false)?);
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss_before_kb = targets::proc_rss_kb(pid);

    let mut viewer_cycles_failed = 0;
    for i in 0..viewer_cycles {
        // Join (answer received), then leave by closing the WebSocket.
        match targets::camgate_viewer(ws, &url, 1000 + i, false, false) {
            Ok(ready) => drop(ready),
            Err(_) => viewer_cycles_failed += 1,
        }
    }
    let mut camera_cycles_failed = 0;
    for i in 0..camera_cycles {
        let other = cam.url(&format!("churn{i}"));
        let ok = targets::camgate_startup(http, &other).is_ok() && {
            std::thread::sleep(Duration::from_millis(150));
            targets::http(
                http,
                "POST",
                "/rest-api/rtsp/terminate",
                Some(&serde_json::json!({ "uri": other })),
            )
            .is_ok()
        };
        if !ok {
            camera_cycles_failed += 1;
        }
    }
    // Let lingering sessions and connections close (8 s, past the 5 s linger), then measure;
    // the steady viewers' packets in those 8 s show they kept playing.
    let w0 = Instant::now();
    shared.window.w0.store(log.ns(w0), Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(8));
    shared
        .window
        .w1
        .store(log.ns(Instant::now()), Ordering::Relaxed);
    let rss_after_kb = targets::proc_rss_kb(pid);
    std::thread::sleep(Duration::from_millis(500));
    shared.stop.store(true, Ordering::Relaxed);
    let res = worker.join();
    // A 2 Mbit/s camera sends ~280 packets/s: a viewer still playing gets well over 100/s.
    let steady_still_playing = res
        .viewers
        .iter()
        .filter(|v| v.connected && !v.failed && v.rx_window >= 8 * 100)
        .count();
    drop(server);
    Ok(SoakResult {
        viewer_cycles,
        viewer_cycles_failed,
        camera_cycles,
        camera_cycles_failed,
        rss_before_kb,
        rss_after_kb,
        steady_viewers: steady,
        steady_still_playing,
        seconds: started.elapsed().as_secs_f64(),
    })
}
