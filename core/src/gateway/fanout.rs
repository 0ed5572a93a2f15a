use super::*;

/// The PLAYING status (with the stream info) for a viewer.
pub(super) fn playing_status(entry: &ViewerEntry, redacted: &str, info: &str) -> GatewayOutput {
    GatewayOutput::WsSend {
        session: entry.session,
        text: signaling::stream_status(
            &entry.media_session_id,
            redacted,
            StreamStatus::Playing,
            Some(info),
        ),
    }
}

/// What writes media to a stream's viewers: the parts of the gateway it needs, so the camera
/// path (with the stream borrowed) and the mirror path share it.
pub(super) struct FanOut<'a> {
    pub(super) viewers: &'a mut Slab<ViewerEntry>,
    pub(super) unflushed: &'a mut Vec<usize>,
    /// Where a GOP replay's slices go (see `Viewer::send_replayed`).
    pub(super) transmits: &'a mut VecDeque<Transmit>,
    pub(super) outputs: &'a mut VecDeque<GatewayOutput>,
    pub(super) stats: &'a mut GatewayStats,
    pub(super) now: Instant,
}

/// What a viewer's PLAYING status says: `info` is computed only when one is sent.
pub(super) struct PlayingInfo<'a, F: Fn() -> String> {
    pub(super) redacted: &'a str,
    pub(super) codec: VideoCodec,
    pub(super) info: F,
}

impl FanOut<'_> {
    /// Writes a batch of relayed video (`packets` with their capture instants) to every
    /// viewer in `watching`. A newly connected viewer starts from the cached GOP instead
    /// (which already holds the batch). Done here, on media, not on the Connected event:
    /// str0m drops RTP written before its SRTP context is up, which happens just after that
    /// event. `gop_wall` dates the GOP's replayed timestamps.
    pub(super) fn video<F: Fn() -> String>(
        &mut self,
        watching: &[usize],
        gop: &GopCache,
        (packets, walls): (&[RelayPacket], &[Instant]),
        gop_wall: impl Fn(u32) -> Instant,
        playing: PlayingInfo<'_, F>,
    ) {
        let now = self.now;
        for &v in watching {
            let Some(entry) = self.viewers.get_mut(v) else {
                continue;
            };
            let Some(viewer) = entry.viewer.as_mut() else {
                continue;
            };
            if viewer.state().connected && !entry.primed {
                entry.primed = true;
                let mut written = 0;
                gop.replay(|p, ts| {
                    viewer.send_replayed(now, p, ts, gop_wall(ts), &mut written, self.transmits)
                });
            } else {
                for (p, wall) in packets.iter().zip(walls) {
                    viewer.send_video(now, p, p.rtp_time, *wall);
                }
                self.stats.viewer_packets_out += packets.len() as u64;
            }
            if viewer.wants_flush() {
                self.unflushed.push(v);
            }
            if !entry.playing_sent && viewer.state().playing {
                entry.playing_sent = true;
                tracing::info!(url = %playing.redacted, "viewer playing");
                let mut info = (playing.info)();
                let camera_profile = match playing.codec {
                    VideoCodec::H264 { profile_level_id } => profile_level_id,
                    VideoCodec::Vp8 => None,
                };
                if let Some(note) = viewer.profile_note(camera_profile) {
                    info.push_str("; ");
                    info.push_str(&note);
                }
                self.outputs
                    .push_back(playing_status(entry, playing.redacted, &info));
            }
        }
    }

    /// Writes a batch of audio to every viewer in `watching`: `main` (in `output`) to those
    /// that take it, `fallback` (Opus for a browser without the camera's G.711 law) to the
    /// others.
    pub(super) fn audio(
        &mut self,
        watching: &[usize],
        output: AudioOut,
        main: (&[AudioPacket], &[Instant]),
        fallback: (&[AudioPacket], &[Instant]),
    ) {
        for &v in watching {
            let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) else {
                continue;
            };
            let (packets, walls) = if viewer.audio_codec() == Some(output) {
                main
            } else {
                fallback
            };
            for (p, wall) in packets.iter().zip(walls) {
                viewer.send_audio(p, *wall);
            }
            if viewer.wants_flush() {
                self.unflushed.push(v);
            }
        }
    }

    /// PLAYING again, with new stream info, to the viewers that have had it.
    pub(super) fn playing_again(&mut self, watching: &[usize], redacted: &str, info: &str) {
        for &v in watching {
            let Some(entry) = self.viewers.get(v).filter(|e| e.playing_sent) else {
                continue;
            };
            self.outputs
                .push_back(playing_status(entry, redacted, info));
        }
    }
}
