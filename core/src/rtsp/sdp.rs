//! A camera's DESCRIBE answer (SDP) → the tracks the gateway sets up, and which of them the
//! browser path can play.
//!
//! Parsing goes through `sdp_types`, made tolerant: cameras send SDP that strict parsers refuse
//! (missing `o=`, junk media sections, trailing spaces), so lines are normalised first and, if
//! the strict parse still fails, retried with only the lines we need.

use crate::media::{MediaKind, TrackInfo};

/// Video encodings the gateway can forward to WebRTC, the one more browsers decode first.
/// (RTSP players get any encoding: these only rank a camera's tracks and name what browsers
/// cannot play.)
const VIDEO: &[&str] = &["H264", "VP8", "H265"];
/// Audio encodings the gateway can forward or transcode.
const AUDIO: &[&str] = &[
    "PCMU",
    "PCMA",
    "MPEG4-GENERIC",
    "MP4A-LATM",
    "SPEEX",
    "OPUS",
    "G722",
    "L16",
];

/// The parts of a DESCRIBE answer the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// Every audio/video media section, with its best payload type (a supported one if any).
    pub tracks: Vec<TrackInfo>,
    /// URL for aggregate requests (PLAY, keepalive, TEARDOWN).
    pub aggregate_url: String,
}

/// Parses the SDP; `base` is Content-Base, else Content-Location, else the request URL.
pub fn parse(body: &[u8], base: &str) -> Result<Presentation, String> {
    let text = String::from_utf8_lossy(body);
    // Cameras pad lines with spaces (e.g. "a=rtpmap:96 H264/90000 ") and mix line endings.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let session = sdp_types::Session::parse(lines.join("\r\n").as_bytes())
        .or_else(|_| {
            // Keep only what we read; drop media sections sdp_types refuses (TP-Link sends
            // some) along with their attributes.
            let mut kept = vec!["v=0".to_owned(), "s=-".to_owned(), "t=0 0".to_owned()];
            let mut skip_media = false;
            for l in &lines {
                if let Some(m) = l.strip_prefix("m=") {
                    skip_media = !media_line_ok(m);
                    if !skip_media {
                        kept.push((*l).to_owned());
                    }
                } else if l.starts_with("a=") && !skip_media {
                    kept.push((*l).to_owned());
                }
            }
            sdp_types::Session::parse(kept.join("\r\n").as_bytes())
        })
        .map_err(|e| format!("bad SDP: {e}"))?;

    let base = base.trim();
    let session_control = attr(&session.attributes, "control");
    let aggregate_url = match session_control {
        Some(c) => join_control(base, c),
        None => base.to_owned(),
    };
    let tracks = session
        .medias
        .iter()
        .filter_map(|m| track_of(m, base))
        .collect();
    Ok(Presentation {
        tracks,
        aggregate_url,
    })
}

/// When the camera sends video but none in an encoding the gateway can forward: why, naming
/// the camera's encodings, for the stream's FAILED info (e.g. MJPEG, which WebRTC cannot carry).
pub fn unplayable_video(tracks: &[TrackInfo]) -> Option<String> {
    let video: Vec<&TrackInfo> = tracks
        .iter()
        .filter(|t| t.kind == MediaKind::Video)
        .collect();
    if video.is_empty() || video.iter().any(|t| VIDEO.contains(&t.encoding.as_str())) {
        return None;
    }
    let names: Vec<String> = video
        .iter()
        .map(|t| match t.encoding.as_str() {
            "JPEG" => "MJPEG (JPEG)".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    Some(format!(
        "Camera video {} cannot be played over WebRTC (camgate plays {}): set the camera's stream to H.264",
        names.join(", "),
        VIDEO.join(", ")
    ))
}

/// Audio tracks left out because no audio track has an encoding the gateway plays (G.726,
/// G.729...), each with why: the video plays on and the stream info names them.
pub fn unplayable_audio(tracks: &[TrackInfo]) -> Vec<(TrackInfo, String)> {
    let audio = || tracks.iter().filter(|t| t.kind == MediaKind::Audio);
    if audio().any(|t| AUDIO.contains(&t.encoding.as_str())) {
        return Vec::new();
    }
    audio()
        .map(|t| {
            let why = format!(
                "camera audio {} cannot be played (camgate plays {})",
                t.encoding,
                AUDIO.join(", ")
            );
            (t.clone(), why)
        })
        .collect()
}

/// Whether browsers can be given `track` (passed through or transcoded to WebRTC); RTSP
/// players take any track.
pub fn browser_plays(track: &TrackInfo) -> bool {
    let playable = match track.kind {
        MediaKind::Video => VIDEO,
        MediaKind::Audio => AUDIO,
    };
    playable.contains(&track.encoding.as_str())
}

/// The tracks to set up: the first video track and the first audio track, whatever their
/// encoding (RTSP players get them as they are), preferring one browsers can play when the
/// SDP has several of a kind; in SDP order.
pub fn select(tracks: &[TrackInfo]) -> Vec<TrackInfo> {
    let first = |kind: MediaKind| {
        let of_kind = || tracks.iter().position(|t| t.kind == kind);
        (tracks.iter())
            .position(|t| t.kind == kind && browser_plays(t))
            .or_else(of_kind)
    };
    let mut chosen: Vec<usize> = [first(MediaKind::Video), first(MediaKind::Audio)]
        .into_iter()
        .flatten()
        .collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| tracks[i].clone()).collect()
}

fn media_line_ok(m: &str) -> bool {
    let mut f = m.split_whitespace();
    f.next().is_some()
        && f.next()
            .is_some_and(|p| p.split('/').all(|n| n.parse::<u16>().is_ok()))
        && f.next().is_some()
        && f.next().is_some()
}

fn attr<'a>(attrs: &'a [sdp_types::Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.attribute.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_deref().unwrap_or("").trim())
}

fn track_of(m: &sdp_types::Media, base: &str) -> Option<TrackInfo> {
    let kind = match m.media.to_ascii_lowercase().as_str() {
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        _ => return None,
    };
    let supported = match kind {
        MediaKind::Video => VIDEO,
        MediaKind::Audio => AUDIO,
    };
    let candidates: Vec<TrackInfo> = m
        .fmt
        .split_whitespace()
        .filter_map(|pt| pt.parse::<u8>().ok())
        .filter(|pt| *pt < 128)
        .filter_map(|pt| payload(m, kind, pt, base))
        .collect();
    // A section offering several video codecs: the one more browsers decode (H.264 before
    // H.265); audio, and otherwise, in SDP order.
    let rank = |t: &TrackInfo| {
        let at = supported.iter().position(|e| *e == t.encoding)?;
        Some(if kind == MediaKind::Video { at } else { 0 })
    };
    let best = (candidates.iter().enumerate())
        .filter_map(|(i, t)| Some((rank(t)?, i)))
        .min()
        .map_or(0, |(_, i)| i);
    candidates.into_iter().nth(best)
}

fn payload(m: &sdp_types::Media, kind: MediaKind, pt: u8, base: &str) -> Option<TrackInfo> {
    let for_pt = |name: &str| {
        m.attributes
            .iter()
            .filter(|a| a.attribute.eq_ignore_ascii_case(name))
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let v = v.trim();
                let (p, rest) = v.split_once([' ', '\t']).unwrap_or((v, ""));
                (p.parse::<u8>().ok() == Some(pt)).then(|| rest.trim())
            })
    };
    let (encoding, clock_rate, channels) = match for_pt("rtpmap") {
        Some(map) => {
            // "H264/90000", "MPEG4-GENERIC/16000/2", with stray spaces around the parts.
            let mut parts = map.split('/').map(str::trim);
            let enc = parts.next().filter(|e| !e.is_empty())?.to_ascii_uppercase();
            let rate = parts.next().and_then(|r| r.parse().ok())?;
            let ch = parts.next().and_then(|c| c.parse().ok());
            (enc, rate, ch)
        }
        // Static payload types (RFC 3551 tables 4 and 5) may come without rtpmap. Those
        // browsers cannot play are kept too: RTSP players get them, and refusals name them.
        None => {
            let (name, rate, channels) = match pt {
                0 => ("PCMU", 8000, Some(1)),
                3 => ("GSM", 8000, Some(1)),
                4 => ("G723", 8000, Some(1)),
                5 => ("DVI4", 8000, Some(1)),
                6 => ("DVI4", 16000, Some(1)),
                7 => ("LPC", 8000, Some(1)),
                8 => ("PCMA", 8000, Some(1)),
                9 => ("G722", 8000, Some(1)),
                10 => ("L16", 44100, Some(2)),
                11 => ("L16", 44100, Some(1)),
                12 => ("QCELP", 8000, Some(1)),
                14 => ("MPA", 90000, None),
                15 => ("G728", 8000, Some(1)),
                16 => ("DVI4", 11025, Some(1)),
                17 => ("DVI4", 22050, Some(1)),
                18 => ("G729", 8000, Some(1)),
                26 => ("JPEG", 90000, None),
                31 => ("H261", 90000, None),
                32 => ("MPV", 90000, None),
                34 => ("H263", 90000, None),
                _ => return None,
            };
            (name.to_owned(), rate, channels)
        }
    };
    // Ubiquiti sends "a=fmtp:96" with no parameters: treat it as absent.
    let fmtp = for_pt("fmtp")
        .map(|f| f.trim().trim_end_matches(';').trim())
        .filter(|f| !f.is_empty())
        .map(str::to_owned);
    let control = match attr(&m.attributes, "control") {
        Some(c) => join_control(base, c),
        // A single-stream camera may omit the media control: SETUP the base URL.
        None => base.to_owned(),
    };
    Some(TrackInfo {
        kind,
        encoding,
        payload_type: pt,
        clock_rate,
        channels,
        fmtp,
        control,
    })
}

/// Resolves an `a=control` value against the base URL the way live555 and ffmpeg do (not RFC
/// 3986): "trackID=1" on "rtsp://cam/live" gives "rtsp://cam/live/trackID=1", because cameras
/// are written against those clients (retina issue #9 has the details).
pub fn join_control(base: &str, control: &str) -> String {
    let control = control.trim();
    if control.is_empty() || control == "*" {
        return base.to_owned();
    }
    let lower = control.to_ascii_lowercase();
    if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
        return control.to_owned();
    }
    if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GST: &str = include_str!("testdata/gst_describe.txt");

    fn body(resp: &str) -> &str {
        resp.split_once("\r\n\r\n").unwrap().1
    }

    #[test]
    fn gstreamer_sdp() {
        let p = parse(body(GST).as_bytes(), "rtsp://127.0.0.1:18554/test/").unwrap();
        assert_eq!(p.aggregate_url, "rtsp://127.0.0.1:18554/test/");
        assert_eq!(p.tracks.len(), 1);
        let t = &p.tracks[0];
        assert_eq!(t.kind, MediaKind::Video);
        assert_eq!(
            (t.encoding.as_str(), t.payload_type, t.clock_rate),
            ("H264", 96, 90000)
        );
        assert_eq!(t.control, "rtsp://127.0.0.1:18554/test/stream=0");
        assert!(t
            .fmtp_param("sprop-parameter-sets")
            .unwrap()
            .starts_with("Z0LAHt"));
    }

    #[test]
    fn odd_whitespace_static_pt_and_selection() {
        // No o= line, trailing spaces, a spaced-out rtpmap, PCMU by static PT only, an
        // unsupported video track before the supported one, a data track, empty fmtp.
        let sdp = "v=0 \n\
                   s=cam\r\n\
                   a=control: rtsp://10.0.0.2/live/ \r\n\
                   m=video 0 RTP/AVP 26\r\n\
                   a=control:trackID=0\r\n\
                   m=video 0 RTP/AVP 97 96\r\n\
                   a=rtpmap:96  h264/90000 \r\n\
                   a=rtpmap:97 H265/90000\r\n\
                   a=fmtp:96\r\n\
                   a=control:trackID=1\r\n\
                   m=audio 0 RTP/AVP 0\r\n\
                   a=control:rtsp://10.0.0.2/live/trackID=2\r\n\
                   m=audio 0 RTP/AVP 97\r\n\
                   a=rtpmap:97 MPEG4-GENERIC/16000/2\r\n\
                   m=application 0 RTP/AVP 107\r\n\
                   a=rtpmap:107 vnd.onvif.metadata/90000\r\n";
        let p = parse(sdp.as_bytes(), "rtsp://10.0.0.2/live").unwrap();
        assert_eq!(p.aggregate_url, "rtsp://10.0.0.2/live/");
        // PT 26 (JPEG) without rtpmap is a track (not selected); the application section is not one.
        assert_eq!(p.tracks.len(), 4);
        assert_eq!(
            (p.tracks[0].encoding.as_str(), p.tracks[0].clock_rate),
            ("JPEG", 90000)
        );
        let sel = select(&p.tracks);
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[0].encoding, "H264");
        assert_eq!(sel[0].payload_type, 96);
        assert_eq!(sel[0].fmtp, None);
        assert_eq!(sel[0].control, "rtsp://10.0.0.2/live/trackID=1");
        assert_eq!(
            (
                sel[1].encoding.as_str(),
                sel[1].payload_type,
                sel[1].clock_rate
            ),
            ("PCMU", 0, 8000)
        );
        assert_eq!(sel[1].control, "rtsp://10.0.0.2/live/trackID=2");
    }

    #[test]
    fn broken_media_section_is_skipped() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
                   m=video abc RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                   m=video 0 RTP/AVP 98\r\na=rtpmap:98 VP8/90000\r\na=control:*\r\n";
        let p = parse(sdp.as_bytes(), "rtsp://cam/s").unwrap();
        assert_eq!(p.tracks.len(), 1);
        assert_eq!(p.tracks[0].encoding, "VP8");
        assert_eq!(p.tracks[0].control, "rtsp://cam/s");
    }

    #[test]
    fn control_joining() {
        assert_eq!(
            join_control("rtsp://a/b", "trackID=1"),
            "rtsp://a/b/trackID=1"
        );
        assert_eq!(
            join_control("rtsp://a/b/", "trackID=1"),
            "rtsp://a/b/trackID=1"
        );
        assert_eq!(join_control("rtsp://a/b/", "*"), "rtsp://a/b/");
        assert_eq!(join_control("rtsp://a/b", "RTSP://c/d"), "RTSP://c/d");
    }

    #[test]
    fn static_audio_payload_types_and_unplayable_video() {
        // G.722 (PT 9, 8000 Hz RTP clock), L16 stereo/mono (PT 10/11, 44.1 kHz) without rtpmap;
        // MJPEG (PT 26) as the only video.
        let sdp = "v=0\r\ns=cam\r\n\
                   m=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n\
                   m=audio 0 RTP/AVP 9\r\na=control:trackID=1\r\n\
                   m=audio 0 RTP/AVP 10\r\na=control:trackID=2\r\n\
                   m=audio 0 RTP/AVP 11\r\na=control:trackID=3\r\n\
                   m=audio 0 RTP/AVP 97\r\na=rtpmap:97 L16/16000/2\r\na=control:trackID=4\r\n";
        let p = parse(sdp.as_bytes(), "rtsp://cam/s").unwrap();
        let got: Vec<(&str, u8, u32, Option<u16>)> = p
            .tracks
            .iter()
            .map(|t| {
                (
                    t.encoding.as_str(),
                    t.payload_type,
                    t.clock_rate,
                    t.channels,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("JPEG", 26, 90000, None),
                ("G722", 9, 8000, Some(1)),
                ("L16", 10, 44100, Some(2)),
                ("L16", 11, 44100, Some(1)),
                ("L16", 97, 16000, Some(2)),
            ]
        );
        // MJPEG is set up all the same (for RTSP players), and named as what browsers cannot
        // play; the first audio track goes with it.
        let sel = select(&p.tracks);
        let names: Vec<&str> = sel.iter().map(|t| t.encoding.as_str()).collect();
        assert_eq!(names, ["JPEG", "G722"]);
        assert!(!browser_plays(&sel[0]) && browser_plays(&sel[1]));
        assert!(unplayable_audio(&p.tracks).is_empty());
        let why = unplayable_video(&p.tracks).unwrap();
        assert!(
            why.contains("MJPEG (JPEG)") && why.contains("H264"),
            "{why}"
        );
        assert_eq!(unplayable_video(&sel).as_deref(), Some(why.as_str()));
        // Any playable video track (or none at all) is not refused here.
        assert_eq!(unplayable_video(&sel[1..]), None);
        let h264 = parse(
            b"v=0\r\ns=x\r\nm=video 0 RTP/AVP 26 96\r\na=rtpmap:96 H264/90000\r\n",
            "rtsp://cam/s",
        )
        .unwrap();
        assert_eq!(unplayable_video(&h264.tracks), None);
        // G.726 beside H.264: left out with its name; the video is selected.
        let g726 = parse(
            b"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
              m=audio 0 RTP/AVP 97\r\na=rtpmap:97 G726-32/8000\r\n",
            "rtsp://cam/s",
        )
        .unwrap();
        let sel = select(&g726.tracks);
        let names: Vec<&str> = sel.iter().map(|t| t.encoding.as_str()).collect();
        assert_eq!(
            names,
            ["H264", "G726-32"],
            "G.726 is set up for RTSP players"
        );
        let left = unplayable_audio(&g726.tracks);
        assert_eq!(left.len(), 1);
        assert!(left[0].1.contains("G726-32"), "{}", left[0].1);
    }

    #[test]
    fn the_first_track_of_each_kind_is_set_up_preferring_what_browsers_play() {
        // G.726 before PCMU, MJPEG after H.265: the playable ones; G.729 and MJPEG by static
        // payload type alone; the ONVIF metadata section is no track.
        let sdp = "v=0\r\ns=x\r\n\
                   m=audio 0 RTP/AVP 97\r\na=rtpmap:97 G726-32/8000\r\na=control:a0\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=control:v0\r\n\
                   m=audio 0 RTP/AVP 0\r\na=control:a1\r\n\
                   m=video 0 RTP/AVP 26\r\na=control:v1\r\n\
                   m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n";
        let p = parse(sdp.as_bytes(), "rtsp://cam/s").unwrap();
        let sel = select(&p.tracks);
        let got: Vec<&str> = sel.iter().map(|t| t.control.as_str()).collect();
        assert_eq!(got, ["rtsp://cam/s/v0", "rtsp://cam/s/a1"]);
        // Without a playable one of a kind, the first of that kind; metadata stays out.
        let sdp = "v=0\r\ns=x\r\n\
                   m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n\
                   m=audio 0 RTP/AVP 18\r\n\
                   m=video 0 RTP/AVP 26\r\n\
                   m=audio 0 RTP/AVP 97\r\na=rtpmap:97 G726-32/8000\r\n";
        let p = parse(sdp.as_bytes(), "rtsp://cam/s").unwrap();
        let sel = select(&p.tracks);
        let got: Vec<(&str, u32)> = (sel.iter())
            .map(|t| (t.encoding.as_str(), t.clock_rate))
            .collect();
        assert_eq!(got, [("G729", 8000), ("JPEG", 90000)]);
        assert!(sel.iter().all(|t| !browser_plays(t)));
    }

    #[test]
    fn garbage_does_not_panic() {
        for g in [
            "",
            "m=",
            "a=rtpmap:",
            "m=video 0 RTP/AVP 300\r\na=rtpmap:300 H264",
            "\u{0}\u{1}",
        ] {
            let _ = parse(g.as_bytes(), "rtsp://x/");
        }
    }
}
