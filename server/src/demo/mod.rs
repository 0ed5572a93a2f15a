//! Built-in demo camera: a tiny RTSP server that loops a 10 s H.264 clip shipped in
//! the binary, live and with ever-increasing timestamps, at `rtsp://127.0.0.1:8554/demo`
//! by default. It lets `camgate` show something without a camera and is the synthetic
//! camera of the server and browser tests, so it behaves like a well-mannered real one
//! (RTP over TCP interleaved or UDP, RTCP SRs, session timeouts, real-time pacing).
//!
//! Blocking std sockets and one or two threads per client: this is a test source,
//! not the relay path, and simplicity beats scalability here.

pub mod clip;
mod rtp;
mod rtsp_server;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// The clip (see `server/assets/README.md`), compiled into the binary.
pub const CLIP_BYTES: &[u8] = include_bytes!("../../assets/demo.h264");
pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8554);
pub const DEFAULT_PATH: &str = "demo";
pub const DEFAULT_URL: &str = "rtsp://127.0.0.1:8554/demo";

/// The clip parsed once per process; every client shares it.
fn shipped_clip() -> io::Result<&'static clip::Clip<'static>> {
    static CLIP: OnceLock<Result<clip::Clip<'static>, String>> = OnceLock::new();
    CLIP.get_or_init(|| clip::Clip::parse(CLIP_BYTES).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.clone()))
}

/// A running demo RTSP server. Dropping it stops the server and all its streams.
#[must_use = "dropping the DemoSource stops the server"]
pub struct DemoSource {
    local_addr: SocketAddr,
    path: String,
    shared: Arc<rtsp_server::Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl DemoSource {
    /// Binds the listener (e.g. 127.0.0.1:8554, or port 0 for any free port) and starts
    /// serving in background threads; returns once bound. `path` is the stream path
    /// (`"demo"` or `"/demo"`): the stream is then `rtsp://<addr>/demo`.
    pub fn start(bind: SocketAddr, path: &str) -> io::Result<DemoSource> {
        let clip = shipped_clip()?;
        let path = path.trim_matches('/').to_string();
        let (local_addr, shared, accept_thread) = rtsp_server::spawn(bind, &path, clip)?;
        Ok(DemoSource {
            local_addr,
            path,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `rtsp://<addr>/<path>`; a wildcard bind address is shown as loopback so the URL
    /// is connectable as is.
    pub fn url(&self) -> String {
        format!("rtsp://{}/{}", connectable(self.local_addr), self.path)
    }
}

fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

impl std::fmt::Debug for DemoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoSource")
            .field("url", &self.url())
            .finish()
    }
}

impl Drop for DemoSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // The accept loop blocks in accept(): a throwaway connection wakes it up.
        let _ = TcpStream::connect_timeout(&connectable(self.local_addr), Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        // Client threads notice `stop` within one read-timeout tick / one frame.
    }
}
