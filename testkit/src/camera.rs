//! A scripted RTSP camera for tests that drive the sans-IO gateway: bytes in, bytes out, no
//! sockets. It answers like gst-rtsp-server over TCP-interleaved transport and sends what a
//! test tells it to (H.264 or PCMU RTP, recorded packets, sender reports). Its RTP packets are
//! at most 1,400 bytes, gst-rtsp-server's default MTU, as cameras send them.

use camgate_core::h264::packetize::fu_a_fragments;
use camgate_core::rtp::RtpPacket;
use camgate_core::rtsp::framing::write_interleaved;

use crate::nal::filler;

/// The SPS (base64) the camera's SDP advertises unless [`FakeCamera::sps_b64`] says otherwise.
pub const SPS_B64: &str = "Z0LAHtkDxWhAAAADAEAAAA8jxgyS";
/// The PPS (base64) of the camera's SDP.
pub const PPS_B64: &str = "aM4yyA==";

/// Largest RTP packet the camera sends: gst-rtsp-server's (and GStreamer payloaders') default
/// MTU, typical of IP cameras. Larger than the gateway's WebRTC payload (1,200 bytes by default),
/// so the gateway re-fragments what it relays, as it does with real cameras.
pub const CAMERA_MTU: usize = 1400;
/// RTP header the camera writes (no CSRC, no extension).
const RTP_HEADER: usize = 12;

/// A camera that answers OPTIONS/DESCRIBE/SETUP/PLAY/TEARDOWN like gst-rtsp-server does.
#[derive(Default)]
pub struct FakeCamera {
    /// Received bytes not yet a whole request.
    pub inbox: Vec<u8>,
    /// Every request received (its head), in order.
    pub requests: Vec<String>,
    /// Between an answered PLAY and TEARDOWN.
    pub playing: bool,
    /// Bytes for the gateway (responses, interleaved RTP/RTCP); the test takes them.
    pub to_gateway: Vec<u8>,
    /// Sequence number of the last video packet.
    pub seq: u16,
    /// Sequence number of the last audio packet.
    pub audio_seq: u16,
    /// Added to every RTP timestamp (changes when the camera "reboots").
    pub time_base: u32,
    /// Answer DESCRIBE with this status instead of the SDP.
    pub describe_status: Option<&'static str>,
    /// The SDP also offers a PCMU audio track.
    pub with_audio: bool,
    /// Another audio media section instead of PCMU's (rtpmap, fmtp, control included).
    pub audio_sdp: Option<String>,
    /// The video is VP8 instead of H.264.
    pub vp8: bool,
    /// The video's SDP media section (m=, a=rtpmap, a=fmtp lines) instead of H.264 or VP8: for
    /// recorded streams sent with `send_video_packet`.
    pub video_sdp: Option<String>,
    /// Answer the next DESCRIBE with a redirect to this URL.
    pub redirect_to: Option<String>,
    /// Another SPS in the SDP (another H.264 profile).
    pub sps_b64: Option<&'static str>,
    /// Sends its first keyframe before answering PLAY (v4l2rtspserver, Reolink).
    pub keyframe_before_play_answer: bool,
}

impl FakeCamera {
    pub fn receive(&mut self, data: &[u8]) {
        self.inbox.extend_from_slice(data);
        while let Some(end) = self.inbox.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.inbox[..end + 4]).into_owned();
            self.inbox.drain(..end + 4);
            self.answer(&head);
            self.requests.push(head);
        }
    }

    fn answer(&mut self, request: &str) {
        let method = request.split(' ').next().unwrap_or("");
        let cseq = request
            .lines()
            .find_map(|l| l.strip_prefix("CSeq:").map(|v| v.trim().to_owned()))
            .unwrap_or_default();
        let (status, headers, body) = match method {
            "OPTIONS" => (
                "200 OK",
                "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n".into(),
                String::new(),
            ),
            "DESCRIBE" => match self.describe_status {
                _ if self.redirect_to.is_some() => {
                    let to = self.redirect_to.take().unwrap_or_default();
                    (
                        "302 Moved Temporarily",
                        format!("Location: {to}\r\n"),
                        String::new(),
                    )
                }
                Some(status) => (status, String::new(), String::new()),
                None => {
                    let sdp = format!(
                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n{}a=control:track1\r\n{}",
                        if let Some(sdp) = &self.video_sdp {
                            sdp.clone()
                        } else if self.vp8 {
                            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n".to_owned()
                        } else {
                            format!(
                                "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                                 a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;\
                                 sprop-parameter-sets={},{PPS_B64}\r\n",
                                self.sps_b64.unwrap_or(SPS_B64)
                            )
                        },
                        match (&self.audio_sdp, self.with_audio) {
                            (Some(sdp), _) => sdp.as_str(),
                            (None, true) => {
                                "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:track2\r\n"
                            }
                            (None, false) => "",
                        }
                    );
                    (
                        "200 OK",
                        "Content-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1:8554/cam/\r\n".into(),
                        sdp,
                    )
                }
            },
            "SETUP" => {
                // Echo the channels the client asked for, as most cameras do.
                let transport = request
                    .lines()
                    .find_map(|l| l.strip_prefix("Transport:"))
                    .unwrap_or("RTP/AVP/TCP;unicast;interleaved=0-1")
                    .trim()
                    .to_owned();
                (
                    "200 OK",
                    format!("Transport: {transport}\r\nSession: 1234;timeout=60\r\n"),
                    String::new(),
                )
            }
            "PLAY" => {
                self.playing = true;
                if self.keyframe_before_play_answer {
                    self.send_frame(0, &[filler(5, 4000)]);
                }
                ("200 OK", "Session: 1234\r\nRTP-Info: url=rtsp://127.0.0.1:8554/cam/track1;seq=1;rtptime=0\r\n".into(), String::new())
            }
            "TEARDOWN" => {
                self.playing = false;
                ("200 OK", "Session: 1234\r\n".into(), String::new())
            }
            _ => ("200 OK", "Session: 1234\r\n".into(), String::new()),
        };
        let response = format!(
            "RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.to_gateway.extend_from_slice(response.as_bytes());
    }

    /// Sends one 20 ms PCMU packet on the interleaved channel 2.
    pub fn send_audio(&mut self, rtp_time: u32) {
        self.audio_seq = self.audio_seq.wrapping_add(1);
        let payload: Vec<u8> = (0..160).map(|i| (i * 7) as u8).collect();
        let packet = rtp(0, false, self.audio_seq, rtp_time, 0x0a0b_0c0d, &payload);
        write_interleaved(&mut self.to_gateway, 2, &packet);
    }

    /// Sends a recorded RTP packet as is on the interleaved channel 0 (the video track).
    pub fn send_video_packet(&mut self, packet: &[u8]) {
        write_interleaved(&mut self.to_gateway, 0, packet);
    }

    /// Sends a recorded RTP packet as is on the interleaved channel 2 (the audio track).
    pub fn send_audio_packet(&mut self, packet: &[u8]) {
        write_interleaved(&mut self.to_gateway, 2, packet);
    }

    /// Sends an RTCP sender report on `channel` (1: video, 3: audio) mapping `rtp` to `ntp`.
    pub fn send_sender_report(&mut self, channel: u8, ntp_secs: f64, rtp: u32) {
        let ntp = ((ntp_secs.floor() as u64) << 32) | ((ntp_secs.fract() * 4_294_967_296.0) as u64);
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&(0x1234_5678u32 + u32::from(channel)).to_be_bytes());
        sr.extend_from_slice(&ntp.to_be_bytes());
        sr.extend_from_slice(
            &rtp.wrapping_add(if channel == 1 { self.time_base } else { 0 })
                .to_be_bytes(),
        );
        sr.extend_from_slice(&[0; 8]);
        write_interleaved(&mut self.to_gateway, channel, &sr);
    }

    /// Sends one access unit as RTP over the interleaved channel 0: one NAL per packet, H.264
    /// NALs too large for [`CAMERA_MTU`] as FU-A fragments (as rtph264pay does). VP8 payloads
    /// go as given (one packet each).
    pub fn send_frame(&mut self, rtp_time: u32, nals: &[Vec<u8>]) {
        let max_payload = CAMERA_MTU - RTP_HEADER;
        let ts = rtp_time.wrapping_add(self.time_base);
        for (i, nal) in nals.iter().enumerate() {
            let last_nal = i + 1 == nals.len();
            if self.vp8 || nal.len() <= max_payload {
                self.send_video_rtp(last_nal, ts, nal);
                continue;
            }
            let mut fragments =
                fu_a_fragments(nal[0], &nal[1..], true, true, max_payload).peekable();
            while let Some(fragment) = fragments.next() {
                let marker = last_nal && fragments.peek().is_none();
                self.send_video_rtp(marker, ts, &fragment.to_vec());
            }
        }
    }

    /// One RTP packet of the video track, numbered in sequence.
    fn send_video_rtp(&mut self, marker: bool, ts: u32, payload: &[u8]) {
        self.seq = self.seq.wrapping_add(1);
        let packet = rtp(96, marker, self.seq, ts, 0x1234_5678, payload);
        write_interleaved(&mut self.to_gateway, 0, &packet);
    }
}

/// A plain RTP packet (no CSRC, extension or padding).
fn rtp(
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    RtpPacket {
        payload_type,
        marker,
        sequence,
        timestamp,
        ssrc,
        payload,
    }
    .write_to(&mut out);
    out
}
