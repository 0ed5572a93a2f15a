//! The media of one stream, from what comes in to what its viewers and mirrors get.
//!
//! A camera stream's pipeline parses each RTP packet once, relays its video (`VideoRelay`),
//! passes through or transcodes its audio (`AudioRelay`), keeps the current GOP for viewers who
//! join or ask for a keyframe, measures the video bitrate and dates every packet for lip sync
//! from the camera's sender reports. A mirror's pipeline gets those packets already relayed and
//! dated by the camera's worker. Both hand their output to a [`MediaSink`] (the gateway's
//! `FanOut`), through the one entry point [`MediaPipeline::on_media`].

use std::time::Instant;

use super::GatewayStats;
use crate::audio_relay::{AudioOut, AudioPacket, AudioRelay};
use crate::bandwidth::BitrateMeter;
use crate::gop::GopCache;
use crate::lip_sync::{StreamClock, TrackClock};
use crate::media::{MediaKind, TrackInfo, VideoPacket};
use crate::mirror::{Described, MirrorClock};
use crate::rtp::{parse_sender_report, RtpPacket, SeqStep, SeqTracker};
use crate::rtsp::{sdp, MediaPacket};
#[cfg(test)]
use crate::video_relay::H264_B_FRAMES_WARNING as B_FRAMES_WARNING;
use crate::video_relay::{VideoCodec, VideoFacts, VideoRelay};

/// Largest cached GOP sent again to answer a browser's keyframe request (a burst to one viewer).
const MAX_REPLAY_BYTES: usize = 1 << 20;

/// Bound of a stream's GOP cache; a camera with a longer GOP (in bytes) gets no instant start.
const MAX_GOP_BYTES: usize = 4 << 20;

/// One piece of media for a stream.
pub(super) enum MediaIn<'a> {
    /// An RTP or RTCP packet of one of the camera's tracks.
    Camera(MediaPacket<'a>),
    /// Video the camera's worker relayed, with its capture instant (a mirror's input).
    MirroredVideo { packet: VideoPacket, wall: Instant },
    /// Audio the camera's worker relayed; `fallback`: the Opus fallback of G.711.
    MirroredAudio {
        packet: AudioPacket,
        wall: Instant,
        fallback: bool,
    },
}

/// Where a pipeline's output goes: the stream's viewers and mirrors (`FanOut`), or a recorder
/// in tests. Batches come with each packet's capture instant.
pub(super) trait MediaSink {
    /// The counters the pipeline adds to.
    fn stats(&mut self) -> &mut GatewayStats;

    /// A batch of relayed video, already in `gop`. A viewer that has just connected starts from
    /// the GOP instead of the batch; `codec` and `info` are for the PLAYING status (`info` is
    /// computed only when one is sent).
    fn video(
        &mut self,
        gop: &GopCache,
        batch: (&[VideoPacket], &[Instant]),
        codec: VideoCodec,
        info: impl Fn() -> String,
    );

    /// A batch of audio: `main` (in `output`) for the viewers that take it, `fallback` (Opus
    /// for a browser without the camera's G.711 law) for the others.
    fn audio(
        &mut self,
        output: AudioOut,
        main: (&[AudioPacket], &[Instant]),
        fallback: (&[AudioPacket], &[Instant]),
    );

    /// What plays changed: PLAYING again, with `info`, to the viewers that have had it.
    fn playing_again(&mut self, info: &str);
}

/// What the pipeline learned from a piece of media that the gateway acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaNews {
    Nothing,
    /// The camera's H.264 turned out to have B-frames: the stream info changed (viewers were
    /// told; mirrors are to be told).
    BFrames,
}

/// The media state of one stream (see the module documentation).
pub(super) struct MediaPipeline {
    feed: Feed,
    /// The current GOP, replayed to viewers who join mid-GOP or ask for a keyframe.
    gop: GopCache,
    /// Video payload bitrate, measured once for all viewers (see `bandwidth`).
    bitrate: BitrateMeter,
}

enum Feed {
    Camera(Box<CameraMedia>),
    Mirror(MirroredMedia),
}

/// A camera's tracks, relays and clocks, and buffers reused between its packets.
struct CameraMedia {
    /// Index of the video track among the client's tracks, once playing.
    video_track: Option<usize>,
    relay: Option<VideoRelay>,
    /// Index of the audio track among the client's tracks, and its relay, when it plays.
    audio_track: Option<usize>,
    audio: Option<AudioRelay>,
    /// The camera's video sequence numbers, for loss accounting.
    seq: SeqTracker,
    /// The camera's H.264 has B-frames (reported once).
    b_frames: bool,
    /// Why tracks of the camera were left out (e.g. audio SETUP refused), for the stream info.
    dropped_tracks: Vec<String>,
    /// Lip sync: the camera's NTP clock, and each track's RTP-to-NTP mapping.
    clock: StreamClock,
    video_clock: TrackClock,
    audio_clock: TrackClock,
    /// Reused between packets so relaying allocates nothing but each packet's `Arc`, with the
    /// capture instant of each packet (computed once, used per viewer and mirror).
    video_out: Vec<VideoPacket>,
    video_walls: Vec<Instant>,
    audio_out: Vec<AudioPacket>,
    audio_walls: Vec<Instant>,
    /// The Opus fallback of passed-through G.711, for browsers without that law.
    fallback_out: Vec<AudioPacket>,
    fallback_walls: Vec<Instant>,
}

/// A mirror's view of the camera another worker pulls.
#[derive(Default)]
struct MirroredMedia {
    /// What plays, from the origin's `Ready`; viewers wait for it.
    described: Option<Described>,
    /// Dates packets of a GOP replay.
    clock: Option<MirrorClock>,
}

impl MediaPipeline {
    /// The pipeline of a camera this worker pulls.
    pub(super) fn camera() -> Self {
        Self::with_feed(Feed::Camera(Box::new(CameraMedia {
            video_track: None,
            relay: None,
            audio_track: None,
            audio: None,
            seq: SeqTracker::new(),
            b_frames: false,
            dropped_tracks: Vec::new(),
            clock: StreamClock::default(),
            video_clock: TrackClock::new(90_000),
            audio_clock: TrackClock::new(8_000),
            video_out: Vec::with_capacity(64),
            video_walls: Vec::with_capacity(64),
            audio_out: Vec::with_capacity(8),
            audio_walls: Vec::with_capacity(8),
            fallback_out: Vec::with_capacity(8),
            fallback_walls: Vec::with_capacity(8),
        })))
    }

    /// The pipeline of a mirror of a camera another worker pulls.
    pub(super) fn mirror() -> Self {
        Self::with_feed(Feed::Mirror(MirroredMedia::default()))
    }

    fn with_feed(feed: Feed) -> Self {
        Self {
            feed,
            gop: GopCache::new(MAX_GOP_BYTES),
            bitrate: BitrateMeter::new(),
        }
    }

    /// The camera plays `tracks` (again, after a reconnect, when `resumed`): picks the video
    /// track and the first audio track, and makes their relays. After a reconnect the relays
    /// are kept so their output sequences continue. `Err`: browsers cannot play the stream,
    /// with that info (RTSP players still can: they take the tracks as they come). Tracks in
    /// encodings browsers cannot play get no relay, so their packets cost nothing here.
    pub(super) fn camera_playing(
        &mut self,
        tracks: &[TrackInfo],
        dropped_tracks: Vec<String>,
        started: Started<'_>,
    ) -> Result<(), String> {
        let Feed::Camera(c) = &mut self.feed else {
            return Ok(());
        };
        c.dropped_tracks = dropped_tracks;
        // Until a track is picked below, the camera's packets go to RTSP players only.
        c.video_track = None;
        c.audio_track = None;
        let video = tracks.iter().position(|t| {
            t.kind == MediaKind::Video && VideoRelay::for_track(t, started.max_payload).is_some()
        });
        let Some(index) = video else {
            return Err(browser_refusal(tracks));
        };
        c.video_track = Some(index);
        // A (re)started camera session brings its own clock mapping.
        c.clock = StreamClock::default();
        c.video_clock = TrackClock::new(tracks[index].clock_rate);
        if !started.resumed || c.relay.is_none() {
            c.relay = VideoRelay::for_track(&tracks[index], started.max_payload);
        }
        // Audio: the first audio track the camera set up, passed through or transcoded; one
        // that can't be played is reported, the video plays on.
        let Some((a, track)) =
            (tracks.iter().enumerate()).find(|(_, t)| t.kind == MediaKind::Audio)
        else {
            return Ok(());
        };
        if !sdp::browser_plays(track) {
            // G.726, G.729...: set up for RTSP players, never decoded here.
            if let Some((_, why)) = sdp::unplayable_audio(std::slice::from_ref(track)).pop() {
                let left_out = format!("audio {}: {why}", track.encoding.to_lowercase());
                tracing::warn!(stream = started.stream, url = %started.redacted, "track left out for browsers: {left_out}");
                c.dropped_tracks.push(left_out);
            }
            return Ok(());
        }
        c.audio_track = Some(a);
        c.audio_clock = TrackClock::new(track.clock_rate);
        if c.audio.is_none() {
            match AudioRelay::new(track) {
                Ok(relay) => {
                    tracing::info!(stream = started.stream, url = %started.redacted, "audio: {}", relay.description());
                    c.audio = Some(relay);
                }
                Err(e) if started.fail_on_track_error => {
                    return Err(format!("Audio track can't be played: {e}"));
                }
                Err(e) => {
                    tracing::warn!(stream = started.stream, url = %started.redacted, "audio left out: {e}");
                    c.audio_track = None;
                    c.dropped_tracks
                        .push(format!("audio {}: {e}", track.encoding.to_lowercase()));
                }
            }
        }
        Ok(())
    }

    /// A camera packet dropped unrelayed because it came too late (see `camera_lag`): its
    /// sequence number is taken, so the gap it leaves is not counted as the camera's loss.
    pub(super) fn skip_late(&mut self, m: &MediaPacket<'_>) {
        let Feed::Camera(c) = &mut self.feed else {
            return;
        };
        if !m.rtcp && Some(m.track) == c.video_track {
            if let Ok(packet) = RtpPacket::parse(m.data) {
                c.seq.step(packet.sequence);
            }
        }
    }

    /// The one entry point of media: relays `input` and hands the result to `sink`.
    pub(super) fn on_media(
        &mut self,
        now: Instant,
        input: MediaIn<'_>,
        sink: &mut impl MediaSink,
    ) -> MediaNews {
        let Self { feed, gop, bitrate } = self;
        match (feed, input) {
            (Feed::Camera(c), MediaIn::Camera(m)) => c.on_packet(now, m, gop, bitrate, sink),
            (Feed::Mirror(m), MediaIn::MirroredVideo { packet, wall }) => {
                m.clock = Some(MirrorClock::new(packet.rtp_time, wall));
                let Some(described) = m.described.as_ref() else {
                    return MediaNews::Nothing;
                };
                bitrate.add(now, packet.payload.len());
                gop.push(&packet);
                sink.video(
                    gop,
                    (std::slice::from_ref(&packet), std::slice::from_ref(&wall)),
                    described.video,
                    || described.info.clone(),
                );
                MediaNews::Nothing
            }
            (
                Feed::Mirror(m),
                MediaIn::MirroredAudio {
                    packet,
                    wall,
                    fallback,
                },
            ) => {
                let Some(output) = m.described.as_ref().and_then(|d| d.audio) else {
                    return MediaNews::Nothing;
                };
                let one = (std::slice::from_ref(&packet), std::slice::from_ref(&wall));
                let none: (&[AudioPacket], &[Instant]) = (&[], &[]);
                let (main, fallback) = if fallback { (none, one) } else { (one, none) };
                sink.audio(output, main, fallback);
                MediaNews::Nothing
            }
            _ => MediaNews::Nothing,
        }
    }

    /// A mirror learned what plays; returns what it knew before.
    pub(super) fn describe(&mut self, described: Described) -> Option<Described> {
        match &mut self.feed {
            Feed::Mirror(m) => m.described.replace(described),
            Feed::Camera(_) => None,
        }
    }

    /// The camera's stream starts over (it reconnected): the cached GOP no longer decodes.
    pub(super) fn clear_gop(&mut self) {
        self.gop.clear();
    }

    /// The cached GOP, to answer a viewer's keyframe request (PLI/FIR, which can't be
    /// forwarded to an RTSP camera); `None` while there is no complete GOP or it is too big
    /// to send again to one viewer.
    pub(super) fn keyframe_gop(&self) -> Option<&GopCache> {
        (self.gop.is_ready() && self.gop.bytes() <= MAX_REPLAY_BYTES).then_some(&self.gop)
    }

    /// The cached GOP, which replays read (see `replays`).
    pub(super) fn gop(&self) -> &GopCache {
        &self.gop
    }

    /// The packets of the cached GOP.
    pub(super) fn gop_packets(&self) -> &[VideoPacket] {
        self.gop.packets()
    }

    /// The stream's video bitrate, once measured.
    pub(super) fn bitrate_bps(&mut self, now: Instant) -> Option<u64> {
        self.bitrate.bps(now)
    }

    /// The camera's video track is known (it played).
    pub(super) fn has_video_track(&self) -> bool {
        matches!(&self.feed, Feed::Camera(c) if c.video_track.is_some())
    }

    /// The video codec viewers get, once known.
    pub(super) fn video_codec(&self) -> Option<VideoCodec> {
        match &self.feed {
            Feed::Camera(c) => c.relay.as_ref().map(VideoRelay::codec),
            Feed::Mirror(m) => m.described.as_ref().map(|d| d.video),
        }
    }

    /// The audio viewers get, if any.
    pub(super) fn audio_output(&self) -> Option<AudioOut> {
        match &self.feed {
            Feed::Camera(c) => c.audio.as_ref().map(AudioRelay::output),
            Feed::Mirror(m) => m.described.as_ref().and_then(|d| d.audio),
        }
    }

    /// The capture instant of video RTP time `ts`: from the camera's clock mapping here, from
    /// the newest mirrored packet in a mirror.
    pub(super) fn video_wallclock(&self, ts: u32, now: Instant) -> Instant {
        match &self.feed {
            Feed::Camera(c) => c.video_clock.wallclock(&c.clock, ts, now),
            Feed::Mirror(m) => m.clock.map_or(now, |c| c.wallclock(ts)),
        }
    }

    /// What a camera stream plays, for its mirrors; `None` until it plays (and in a mirror).
    pub(super) fn described(&self) -> Option<Described> {
        let Feed::Camera(_) = self.feed else {
            return None;
        };
        Some(Described {
            video: self.video_codec()?,
            audio: self.audio_output(),
            info: self.info(),
        })
    }

    /// "video H264 42c01e; audio PCMU 8000 Hz (passed through)" plus warnings and dropped tracks.
    pub(super) fn info(&self) -> String {
        match &self.feed {
            Feed::Camera(c) => c.info(),
            Feed::Mirror(m) => m
                .described
                .as_ref()
                .map(|d| d.info.clone())
                .unwrap_or_default(),
        }
    }

    /// What the camera's video is (codec, profile, size, reordering); `None` for a mirror (its
    /// camera's stream reports it) or before the video track is set up.
    pub(super) fn video_facts(&self) -> Option<VideoFacts> {
        match &self.feed {
            Feed::Camera(c) => c.relay.as_ref().map(VideoRelay::facts),
            Feed::Mirror(_) => None,
        }
    }

    /// What the camera's B-frames mean for viewers, once it is known to send them.
    pub(super) fn b_frames_warning(&self) -> Option<String> {
        match &self.feed {
            Feed::Camera(c) => c.relay.as_ref().and_then(VideoRelay::b_frames_warning),
            Feed::Mirror(_) => None,
        }
    }

    /// Why tracks of the camera were left out.
    pub(super) fn dropped_tracks(&self) -> &[String] {
        match &self.feed {
            Feed::Camera(c) => &c.dropped_tracks,
            Feed::Mirror(_) => &[],
        }
    }

    /// Adds the Opus fallback of the camera's passed-through G.711 (see `AudioRelay`): `None`
    /// when there is no audio or it has the fallback already, else the outcome (the audio's
    /// description, or why there is no fallback).
    pub(super) fn enable_opus_fallback(&mut self) -> Option<Result<String, String>> {
        let Feed::Camera(c) = &mut self.feed else {
            return None;
        };
        let audio = c.audio.as_mut()?;
        if audio.has_opus_fallback() {
            return None;
        }
        Some(match audio.enable_opus_fallback() {
            Ok(()) => Ok(audio.description().to_owned()),
            Err(e) => Err(e.to_string()),
        })
    }
}

/// Why browsers cannot play a camera whose `tracks` have no video they take, in the words
/// they got when the camera was refused outright: the video's codec named (MJPEG), the H.265
/// feature refused, or no track at all they could play.
fn browser_refusal(tracks: &[TrackInfo]) -> String {
    if let Some(why) = sdp::unplayable_video(tracks) {
        return why;
    }
    if let Some(why) = tracks.iter().find_map(VideoRelay::refusal) {
        return format!("No common codecs: {why}");
    }
    if !tracks.iter().any(sdp::browser_plays) {
        return crate::rtsp::RtspError::NoSupportedTracks.to_string();
    }
    "No common codecs: the camera sends neither H.264, H.265 nor VP8 video".into()
}

/// About the camera session that started playing, for `camera_playing`.
pub(super) struct Started<'a> {
    pub(super) resumed: bool,
    pub(super) max_payload: usize,
    pub(super) fail_on_track_error: bool,
    /// For logs.
    pub(super) stream: u64,
    pub(super) redacted: &'a str,
}

impl CameraMedia {
    fn on_packet(
        &mut self,
        now: Instant,
        m: MediaPacket<'_>,
        gop: &mut GopCache,
        bitrate: &mut BitrateMeter,
        sink: &mut impl MediaSink,
    ) -> MediaNews {
        if m.rtcp {
            // The camera's sender reports tie each track's RTP clock to its NTP clock.
            if let Some(sr) = parse_sender_report(m.data) {
                if Some(m.track) == self.video_track {
                    (self.video_clock).sender_report(
                        &mut self.clock,
                        now,
                        sr.ntp_time,
                        sr.rtp_time,
                    );
                } else if Some(m.track) == self.audio_track {
                    (self.audio_clock).sender_report(
                        &mut self.clock,
                        now,
                        sr.ntp_time,
                        sr.rtp_time,
                    );
                }
            }
            return MediaNews::Nothing;
        }
        if Some(m.track) == self.audio_track {
            if let Ok(packet) = RtpPacket::parse(m.data) {
                self.on_audio(now, &packet, sink);
            }
            return MediaNews::Nothing;
        }
        if Some(m.track) != self.video_track {
            return MediaNews::Nothing;
        }
        let (Some(relay), Ok(packet)) = (self.relay.as_mut(), RtpPacket::parse(m.data)) else {
            return MediaNews::Nothing;
        };
        let stats = sink.stats();
        stats.camera_packets_in += 1;
        if let SeqStep::Gap(missing) = self.seq.step(packet.sequence) {
            stats.camera_packets_lost += u64::from(missing);
        }
        self.video_out.clear();
        relay.push(&packet, &mut self.video_out);
        let mut news = MediaNews::Nothing;
        if !self.b_frames && relay.has_b_frames() {
            // B-slices show up only after the keyframe, so viewers already got PLAYING:
            // tell them again, with the warning in the info.
            self.b_frames = true;
            news = MediaNews::BFrames;
            sink.playing_again(&self.info());
        }
        self.video_walls.clear();
        for p in &self.video_out {
            bitrate.add(now, p.payload.len());
            gop.push(p);
            (self.video_walls).push(self.video_clock.wallclock(&self.clock, p.rtp_time, now));
        }
        let codec = self.relay.as_ref().map(VideoRelay::codec);
        sink.video(
            gop,
            (&self.video_out, &self.video_walls),
            codec.expect("the relay pushed"),
            || self.info(),
        );
        news
    }

    fn on_audio(&mut self, now: Instant, packet: &RtpPacket<'_>, sink: &mut impl MediaSink) {
        let Some(audio) = self.audio.as_mut() else {
            return;
        };
        self.audio_out.clear();
        self.fallback_out.clear();
        if audio.is_transcoding() || audio.has_opus_fallback() {
            sink.stats().audio_packets_transcoded += 1;
        }
        audio.push(packet, &mut self.audio_out);
        audio.take_fallback(&mut self.fallback_out);
        self.audio_walls.clear();
        for p in &self.audio_out {
            let input = audio.input_time(p.rtp_time).unwrap_or(packet.timestamp);
            (self.audio_walls).push(self.audio_clock.wallclock(&self.clock, input, now));
        }
        self.fallback_walls.clear();
        for p in &self.fallback_out {
            let input = audio
                .fallback_input_time(p.rtp_time)
                .unwrap_or(packet.timestamp);
            (self.fallback_walls).push(self.audio_clock.wallclock(&self.clock, input, now));
        }
        sink.audio(
            audio.output(),
            (&self.audio_out, &self.audio_walls),
            (&self.fallback_out, &self.fallback_walls),
        );
    }

    fn info(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.relay {
            parts.push(format!("video {}", v.describe()));
        }
        if let Some(a) = &self.audio {
            parts.push(format!("audio {}", a.description()));
        }
        if let Some(warning) = self.relay.as_ref().and_then(VideoRelay::b_frames_warning) {
            parts.push(format!("warning: {warning}"));
        }
        for d in &self.dropped_tracks {
            parts.push(format!("left out: {d}"));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SPROP: &str = "Z0LAHtkDxWhAAAADAEAAAA8jxgyS,aM4yyA==";

    /// What a stream's viewers and mirrors would have been given.
    #[derive(Default)]
    struct Recorder {
        stats: GatewayStats,
        /// Each video batch: its packets, their capture instants, and the GOP after it.
        video: Vec<(Vec<VideoPacket>, Vec<Instant>, Vec<VideoPacket>)>,
        /// The PLAYING info a viewer would get with the latest video batch.
        info: String,
        /// Each audio batch: its output, main packets and instants, fallback packet count.
        audio: Vec<(AudioOut, Vec<AudioPacket>, Vec<Instant>, usize)>,
        playing_again: Vec<String>,
    }

    impl MediaSink for Recorder {
        fn stats(&mut self) -> &mut GatewayStats {
            &mut self.stats
        }
        fn video(
            &mut self,
            gop: &GopCache,
            (packets, walls): (&[VideoPacket], &[Instant]),
            _codec: VideoCodec,
            info: impl Fn() -> String,
        ) {
            self.video
                .push((packets.to_vec(), walls.to_vec(), gop.packets().to_vec()));
            self.info = info();
        }
        fn audio(
            &mut self,
            output: AudioOut,
            main: (&[AudioPacket], &[Instant]),
            fallback: (&[AudioPacket], &[Instant]),
        ) {
            (self.audio).push((output, main.0.to_vec(), main.1.to_vec(), fallback.0.len()));
        }
        fn playing_again(&mut self, info: &str) {
            self.playing_again.push(info.to_owned());
        }
    }

    fn track(kind: MediaKind, encoding: &str, pt: u8, rate: u32, fmtp: Option<&str>) -> TrackInfo {
        TrackInfo {
            kind,
            encoding: encoding.into(),
            payload_type: pt,
            clock_rate: rate,
            channels: None,
            fmtp: fmtp.map(str::to_owned),
            control: String::new(),
        }
    }

    fn h264() -> TrackInfo {
        let fmtp =
            format!("packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets={SPROP}");
        track(MediaKind::Video, "H264", 96, 90_000, Some(&fmtp))
    }

    fn pcmu() -> TrackInfo {
        track(MediaKind::Audio, "PCMU", 0, 8000, None)
    }

    fn started(fail_on_track_error: bool) -> Started<'static> {
        Started {
            resumed: false,
            max_payload: 1200,
            fail_on_track_error,
            stream: 1,
            redacted: "rtsp://cam",
        }
    }

    /// A camera with video on track 0 and PCMU on track 1.
    fn playing_camera() -> MediaPipeline {
        let mut p = MediaPipeline::camera();
        p.camera_playing(&[h264(), pcmu()], Vec::new(), started(false))
            .expect("plays");
        p
    }

    fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// An RTCP sender report mapping `rtp_time` to NTP second `ntp_secs`.
    fn sender_report(ntp_secs: u32, rtp_time: u32) -> Vec<u8> {
        let mut v = vec![0x80, 200, 0, 6];
        v.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        v.extend_from_slice(&ntp_secs.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&rtp_time.to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        v
    }

    fn nal(kind: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0x60 | kind];
        v.extend((0..len - 1).map(|i| (i % 251) as u8 + 1));
        v
    }

    /// A P-slice (first_mb_in_slice 0, slice_type 0).
    fn p_slice() -> Vec<u8> {
        [vec![0x21, 0x88], vec![0x55; 300]].concat()
    }

    /// A B-slice (first_mb_in_slice 0, slice_type 1).
    fn b_slice() -> Vec<u8> {
        [vec![0x01, 0xA0], vec![0x55; 300]].concat()
    }

    fn camera(track: usize, rtcp: bool, data: &[u8]) -> MediaIn<'_> {
        MediaIn::Camera(MediaPacket { track, rtcp, data })
    }

    /// One access unit of one NAL on the video track.
    fn frame(
        p: &mut MediaPipeline,
        sink: &mut Recorder,
        now: Instant,
        seq: u16,
        ts: u32,
        nal: &[u8],
    ) -> MediaNews {
        let packet = rtp(96, seq, ts, true, nal);
        p.on_media(now, camera(0, false, &packet), sink)
    }

    #[test]
    fn a_keyframe_starts_the_gop_that_new_viewers_start_from() {
        let now = Instant::now();
        let (mut p, mut sink) = (playing_camera(), Recorder::default());
        frame(&mut p, &mut sink, now, 1, 0, &p_slice());
        assert!(p.keyframe_gop().is_none(), "no GOP before a keyframe");
        assert!(sink.video.iter().all(|(_, _, gop)| gop.is_empty()));

        frame(&mut p, &mut sink, now, 2, 3600, &nal(5, 2000));
        let (batch, walls, gop) = sink
            .video
            .last()
            .cloned()
            .expect("the keyframe was relayed");
        assert!(batch[0].keyframe_start, "the batch starts a GOP");
        assert_eq!(walls.len(), batch.len());
        assert_eq!(gop, batch, "the GOP is the keyframe");
        assert!(sink.info.starts_with("video H264"), "{}", sink.info);

        frame(&mut p, &mut sink, now, 3, 7200, &p_slice());
        let gop = &sink.video.last().expect("relayed").2;
        assert_eq!(gop.len(), batch.len() + 1, "P-frames join the GOP");
        assert_eq!(p.gop_packets(), &gop[..]);
        assert_eq!(sink.stats.camera_packets_in, 3);
    }

    #[test]
    fn a_keyframe_request_is_answered_from_the_gop_unless_too_big() {
        let now = Instant::now();
        let (mut p, mut sink) = (playing_camera(), Recorder::default());
        frame(&mut p, &mut sink, now, 1, 0, &nal(5, 2000));
        frame(&mut p, &mut sink, now, 2, 3600, &p_slice());
        {
            let gop = p.keyframe_gop().expect("a complete GOP");
            assert!(gop.packets()[0].keyframe_start);
            assert_eq!(gop.packets().len(), p.gop_packets().len());
            assert_eq!(
                p.video_wallclock(3600, now),
                now,
                "no sender report yet: dated at arrival"
            );
        }

        // A GOP over MAX_REPLAY_BYTES is not burst to one viewer.
        frame(
            &mut p,
            &mut sink,
            now,
            3,
            7200,
            &nal(5, MAX_REPLAY_BYTES + 1000),
        );
        assert!(p.gop_packets()[0].keyframe_start);
        assert!(p.keyframe_gop().is_none());

        frame(&mut p, &mut sink, now, 4, 10800, &nal(5, 2000));
        assert!(
            p.keyframe_gop().is_some(),
            "the next keyframe starts a small GOP"
        );
        p.clear_gop();
        assert!(p.keyframe_gop().is_none(), "a reconnect empties it");
    }

    #[test]
    fn audio_reaches_the_sink_in_lip_sync_with_the_video() {
        let t0 = Instant::now();
        let (mut p, mut sink) = (playing_camera(), Recorder::default());
        // Both tracks' sender reports put RTP 90 000 (video) and 8 000 (audio) at NTP 100 s.
        p.on_media(t0, camera(0, true, &sender_report(100, 90_000)), &mut sink);
        p.on_media(t0, camera(1, true, &sender_report(100, 8_000)), &mut sink);
        assert!(
            sink.video.is_empty() && sink.audio.is_empty(),
            "RTCP is no media"
        );

        // 100 ms after the reports, in each track's clock, arriving later.
        let later = t0 + Duration::from_millis(250);
        frame(&mut p, &mut sink, later, 1, 90_000 + 9_000, &nal(5, 500));
        let audio = rtp(0, 1, 8_000 + 800, false, &[0x7f; 160]);
        p.on_media(later, camera(1, false, &audio), &mut sink);

        let (output, packets, walls, fallback) = sink.audio.last().expect("audio reached the sink");
        assert_eq!(*output, AudioOut::Pcmu);
        assert_eq!((packets.len(), *fallback), (1, 0));
        assert_eq!(packets[0].payload.len(), 160, "passed through");
        let video_wall = sink.video.last().expect("video").1[0];
        assert_eq!(walls[0], t0 + Duration::from_millis(100));
        assert_eq!(video_wall, walls[0], "both tracks on one clock");
        assert_eq!(p.video_wallclock(90_000 + 9_000, later), video_wall);
    }

    #[test]
    fn source_gaps_count_as_lost_packets() {
        let now = Instant::now();
        let (mut p, mut sink) = (playing_camera(), Recorder::default());
        frame(&mut p, &mut sink, now, 10, 0, &nal(5, 500));
        frame(&mut p, &mut sink, now, 11, 3600, &p_slice());
        frame(&mut p, &mut sink, now, 14, 7200, &p_slice());
        assert_eq!(sink.stats.camera_packets_in, 3);
        assert_eq!(sink.stats.camera_packets_lost, 2);
    }

    #[test]
    fn b_frames_are_news_once_and_change_the_info() {
        let now = Instant::now();
        let (mut p, mut sink) = (playing_camera(), Recorder::default());
        assert_eq!(
            frame(&mut p, &mut sink, now, 1, 0, &nal(5, 500)),
            MediaNews::Nothing
        );
        assert!(!p.info().contains("B-frames"));
        let news = frame(&mut p, &mut sink, now, 2, 3600, &b_slice());
        assert_eq!(news, MediaNews::BFrames);
        assert_eq!(sink.playing_again.len(), 1);
        assert!(sink.playing_again[0].contains(B_FRAMES_WARNING));
        assert_eq!(
            frame(&mut p, &mut sink, now, 3, 7200, &b_slice()),
            MediaNews::Nothing
        );
        assert_eq!(sink.playing_again.len(), 1, "told once");
        let described = p.described().expect("a playing camera");
        assert!(described.info.contains(B_FRAMES_WARNING));
    }

    #[test]
    fn tracks_that_cannot_play_are_left_out_or_fail_the_stream() {
        let odd = track(MediaKind::Audio, "X-ODD", 97, 8000, None);
        let mut p = MediaPipeline::camera();
        p.camera_playing(
            &[h264(), odd.clone()],
            vec!["video h265: no".into()],
            started(false),
        )
        .expect("the video plays on");
        assert_eq!(p.audio_output(), None);
        assert_eq!(p.dropped_tracks().len(), 2);
        assert!(p.dropped_tracks()[1].starts_with("audio x-odd: "));
        assert!(p.info().contains("left out: video h265: no"));

        // An encoding browsers never get is left out even when track errors fail the stream
        // (it is set up for RTSP players); one camgate plays but can't decode here fails it.
        let mut p = MediaPipeline::camera();
        p.camera_playing(&[h264(), odd], Vec::new(), started(true))
            .expect("the video plays on");
        assert!(p
            .info()
            .contains("left out: audio x-odd: camera audio X-ODD cannot be played"));
        let aac = track(MediaKind::Audio, "MPEG4-GENERIC", 97, 16000, None);
        let mut p = MediaPipeline::camera();
        let err = p.camera_playing(&[h264(), aac], Vec::new(), started(true));
        assert!(err
            .expect_err("fails")
            .starts_with("Audio track can't be played"));

        let mut p = MediaPipeline::camera();
        let err = p.camera_playing(&[pcmu()], Vec::new(), started(false));
        assert!(err.expect_err("no video").starts_with("No common codecs"));
    }

    #[test]
    fn a_mirror_relays_once_described_dated_by_the_origin() {
        let now = Instant::now();
        let (mut camera_side, mut relayed) = (playing_camera(), Recorder::default());
        frame(&mut camera_side, &mut relayed, now, 1, 0, &nal(5, 500));
        frame(&mut camera_side, &mut relayed, now, 2, 3600, &p_slice());
        let packets: Vec<VideoPacket> = relayed.video.iter().flat_map(|v| v.0.clone()).collect();
        let wall = now - Duration::from_millis(30);

        let (mut p, mut sink) = (MediaPipeline::mirror(), Recorder::default());
        let video = |packet: &VideoPacket| MediaIn::MirroredVideo {
            packet: packet.clone(),
            wall,
        };
        p.on_media(now, video(&packets[0]), &mut sink);
        assert!(sink.video.is_empty(), "viewers wait for the description");
        assert_eq!(p.video_codec(), None);

        let described = camera_side.described().expect("plays");
        assert!(p.describe(described.clone()).is_none());
        assert_eq!(p.video_codec(), Some(described.video));
        assert_eq!(p.audio_output(), Some(AudioOut::Pcmu));
        assert_eq!(p.info(), described.info);
        for packet in &packets {
            p.on_media(now, video(packet), &mut sink);
        }
        assert_eq!(sink.video.len(), packets.len());
        assert_eq!(sink.video[0].1, vec![wall], "dated as the origin said");
        assert_eq!(p.gop_packets(), &packets[..]);
        let last = packets.last().expect("some").rtp_time;
        assert_eq!(
            p.video_wallclock(last + 9_000, now),
            wall + Duration::from_millis(100)
        );

        let audio = AudioPacket {
            payload: vec![0u8; 160].into(),
            rtp_time: 0,
            seq: 0,
        };
        let input = |fallback| MediaIn::MirroredAudio {
            packet: audio.clone(),
            wall,
            fallback,
        };
        p.on_media(now, input(false), &mut sink);
        p.on_media(now, input(true), &mut sink);
        let counts: Vec<_> = sink.audio.iter().map(|a| (a.1.len(), a.3)).collect();
        assert_eq!(counts, [(1, 0), (0, 1)], "main, then fallback");
        assert!(
            p.described().is_none(),
            "a mirror describes nothing to others"
        );
    }

    #[test]
    fn an_h265_camera_with_decoding_order_numbers_fails_with_the_reason() {
        let fmtp = Some("sprop-max-don-diff=2");
        let don = track(MediaKind::Video, "H265", 96, 90_000, fmtp);
        let mut p = MediaPipeline::camera();
        let err = p.camera_playing(&[don], Vec::new(), started(false));
        let err = err.expect_err("refused");
        let want = "No common codecs: the camera's H.265 uses decoding order numbers";
        assert!(err.starts_with(want), "{err}");
        let mjpeg = track(MediaKind::Video, "JPEG", 26, 90_000, None);
        let err = p.camera_playing(&[mjpeg.clone(), pcmu()], Vec::new(), started(false));
        let want = "Camera video MJPEG (JPEG) cannot be played over WebRTC (camgate plays H264, VP8, H265): set the camera's stream to H.264";
        assert_eq!(err.expect_err("refused"), want);
        let g726 = track(MediaKind::Audio, "G726-32", 97, 8000, None);
        let err = p.camera_playing(std::slice::from_ref(&g726), Vec::new(), started(false));
        assert_eq!(
            err.expect_err("refused"),
            "No supported audio or video track"
        );
        // Refused for browsers: none of the camera's packets is relayed or decoded.
        let mut sink = Recorder::default();
        let now = Instant::now();
        p.camera_playing(&[mjpeg, g726], Vec::new(), started(false))
            .expect_err("refused");
        let jpeg = rtp(26, 1, 0, true, &[0, 0, 0, 0, 1, 255, 80, 45]);
        p.on_media(now, camera(0, false, &jpeg), &mut sink);
        let audio = rtp(97, 1, 0, false, &[0x55; 80]);
        p.on_media(now, camera(1, false, &audio), &mut sink);
        assert!(sink.video.is_empty() && sink.audio.is_empty());
        assert_eq!(sink.stats.camera_packets_in, 0);
        assert_eq!((p.video_codec(), p.audio_output()), (None, None));
    }
}
