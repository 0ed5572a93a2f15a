//! Media that comes before the driver knows the tracks: held, bounded, until the first input
//! after the PLAY answer.

use std::net::SocketAddr;
use std::time::Instant;

use super::{MediaPacket, RtspClient, State};

/// Media a camera sent between PLAY and its answer, bounded: copies, made only while a stream
/// starts.
#[derive(Default)]
pub(super) struct EarlyMedia {
    packets: Vec<EarlyPacket>,
    bytes: usize,
    /// Packets past the bounds, dropped.
    dropped: usize,
}

pub(super) struct EarlyPacket {
    track: usize,
    rtcp: bool,
    /// The sender, for UDP (checked on release like any datagram); `None` when interleaved.
    source: Option<SocketAddr>,
    data: Vec<u8>,
}

impl EarlyMedia {
    /// About a second of a 4 Mbit/s camera: more than any camera sends before its answer.
    const MAX_PACKETS: usize = 512;
    const MAX_BYTES: usize = 1 << 20;

    pub(super) fn hold(
        &mut self,
        track: usize,
        rtcp: bool,
        source: Option<SocketAddr>,
        data: &[u8],
    ) {
        if self.packets.len() >= Self::MAX_PACKETS || self.bytes + data.len() > Self::MAX_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += data.len();
        self.packets.push(EarlyPacket {
            track,
            rtcp,
            source,
            data: data.to_vec(),
        });
    }
}

impl RtspClient {
    /// At the first input after PLAY was answered (the driver has seen `Playing` since), hands
    /// on the media held until then and lets media through from now on.
    pub(super) fn open_media(&mut self, now: Instant, on_media: &mut dyn FnMut(MediaPacket<'_>)) {
        if self.media_open || self.state != State::Playing {
            return;
        }
        self.media_open = true;
        let early = std::mem::take(&mut self.early);
        if early.packets.is_empty() {
            return;
        }
        tracing::debug!(
            url = %self.url,
            packets = early.packets.len(),
            dropped = early.dropped,
            "media that came with or before the PLAY answer, delivered now"
        );
        for p in &early.packets {
            match p.source {
                Some(source) => {
                    let datagram = super::udp::Received {
                        track: p.track,
                        rtcp: p.rtcp,
                        source,
                        data: &p.data,
                    };
                    self.receive_udp(now, datagram, on_media)
                }
                None => on_media(MediaPacket {
                    track: p.track,
                    rtcp: p.rtcp,
                    data: &p.data,
                }),
            }
        }
    }
}
