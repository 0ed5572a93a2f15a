//! The demo server's media side: pacing the clip's RTP (and RTCP sender reports) to one client.

use super::*;

// ---------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------

pub(super) enum Sink {
    Tcp {
        writer: Arc<Mutex<TcpStream>>,
        rtp_ch: u8,
        rtcp_ch: u8,
    },
    Udp {
        rtp: UdpSocket,
        rtcp: UdpSocket,
    },
}

pub(super) struct Streamer {
    pub(super) clip: &'static Clip<'static>,
    pub(super) packetizer: Packetizer,
    pub(super) sink: Sink,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) shared: Arc<Shared>,
    /// To wake the connection thread when the stream dies.
    pub(super) conn: TcpStream,
    pub(super) activity: Arc<Activity>,
}

/// When frame `n` is due relative to PLAY; computed from the start (not accumulated)
/// so rounding and scheduling delays never drift.
pub(super) fn frame_offset(n: u64) -> Duration {
    Duration::from_nanos((u128::from(n) * 1_000_000_000 / u128::from(FRAME_RATE)) as u64)
}

impl Streamer {
    pub(super) fn run(mut self) {
        if self.stream().is_err() {
            // Peer gone or not reading: end the whole connection, like a camera would.
            let _ = self.conn.shutdown(Shutdown::Both);
        }
    }

    pub(super) fn stream(&mut self) -> io::Result<()> {
        let start = Instant::now();
        let mut next_sr = start;
        let count = self.clip.access_units.len() as u64;
        let mut out = Vec::with_capacity(64 * 1024);
        for frame in 0u64.. {
            if self.stop.load(Ordering::SeqCst) || self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let due = start + frame_offset(frame);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            // Every client starts at frame 0, an IDR, and the clip loops on an IDR.
            let au = &self.clip.access_units[(frame % count) as usize];
            out.clear();
            match &self.sink {
                Sink::Tcp { writer, rtp_ch, .. } => {
                    self.packetizer
                        .packetize(frame, au, |pkt| write_interleaved(&mut out, *rtp_ch, pkt));
                    lock(writer).write_all(&out)?;
                }
                Sink::Udp { rtp, .. } => {
                    // Send errors (ICMP port unreachable) are not fatal: UDP clients end by
                    // TEARDOWN, closing the RTSP connection, or the session timeout.
                    self.packetizer.packetize(frame, au, |pkt| {
                        let _ = rtp.send(pkt);
                    });
                }
            }
            if Instant::now() >= next_sr {
                next_sr += SR_INTERVAL;
                self.send_sr(start)?;
            }
            if let Sink::Udp { rtcp, .. } = &self.sink {
                let mut b = [0u8; 1500];
                while rtcp.recv(&mut b).is_ok() {
                    self.activity.touch(); // receiver reports keep the session alive
                }
            }
        }
        Ok(())
    }

    pub(super) fn send_sr(&self, start: Instant) -> io::Result<()> {
        // Wallclock and RTP time of the same instant: RTP time advances 90 per ms from PLAY.
        let (now, wall) = (Instant::now(), SystemTime::now());
        let ticks = (now - start).as_nanos() * u128::from(CLOCK_RATE) / 1_000_000_000;
        let rtp_ts = self.packetizer.ts_base.wrapping_add(ticks as u64 as u32);
        let sr = self.packetizer.sender_report(wall, rtp_ts);
        match &self.sink {
            Sink::Tcp {
                writer, rtcp_ch, ..
            } => {
                let mut out = Vec::with_capacity(sr.len() + 4);
                write_interleaved(&mut out, *rtcp_ch, &sr);
                lock(writer).write_all(&out)
            }
            Sink::Udp { rtcp, .. } => {
                let _ = rtcp.send(&sr);
                Ok(())
            }
        }
    }
}
