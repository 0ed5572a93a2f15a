//! The SDP of a DESCRIBE answer, written from the camera's tracks as the gateway's RTSP client
//! set them up: the camera's payload types, `rtpmap` and `fmtp` (so `sprop-parameter-sets`
//! and the AAC `config` reach the player unchanged), with control URLs of our own
//! (`trackID=N`, relative to the `Content-Base` we send).

use std::fmt::Write as _;

use crate::media::{MediaKind, TrackInfo};

/// The control attribute of track `i`, relative to `Content-Base`.
pub(crate) fn track_control(i: usize) -> String {
    format!("trackID={i}")
}

/// SDP for `tracks`, in their order (track `i` is `trackID=i`). `name` is the session name;
/// `ipv6`: the client connected over IPv6, so the addresses are `IN IP6` (GStreamer's rtspsrc
/// opens its UDP ports in the family of the SDP's `c=` line: with `IP4` its RTCP to an IPv6
/// server fails with "Invalid address family" and it stops).
pub(crate) fn describe(name: &str, tracks: &[TrackInfo], ipv6: bool) -> String {
    let mut s = String::with_capacity(256 + 128 * tracks.len());
    // No session-level `a=control`: clients then take Content-Base as the aggregate URL, which
    // every client tested resolves; `*` is not understood by all of them.
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let any = if ipv6 { "IP6 ::" } else { "IP4 0.0.0.0" };
    let _ = write!(
        s,
        "v=0\r\no=- 0 0 IN {any}\r\ns={name}\r\nc=IN {any}\r\nt=0 0\r\na=tool:camgate\r\n"
    );
    for (i, t) in tracks.iter().enumerate() {
        let kind = match t.kind {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        };
        let pt = t.payload_type;
        let _ = write!(s, "m={kind} 0 RTP/AVP {pt}\r\n");
        let _ = write!(s, "a=rtpmap:{pt} {}/{}", t.encoding, t.clock_rate);
        if let (MediaKind::Audio, Some(ch)) = (t.kind, t.channels) {
            let _ = write!(s, "/{ch}");
        }
        s.push_str("\r\n");
        if let Some(f) = t.fmtp.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            let _ = write!(s, "a=fmtp:{pt} {f}\r\n");
        }
        let _ = write!(s, "a=control:{}\r\n", track_control(i));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_parameters_pass_through_and_it_parses_back() {
        let tracks = vec![
            TrackInfo {
                kind: MediaKind::Video,
                encoding: "H264".into(),
                payload_type: 96,
                clock_rate: 90000,
                channels: None,
                fmtp: Some(
                    "packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH9kAUAW7ARAAAAMAEAAAAwPI8YMkgA==,aMuMsg=="
                        .into(),
                ),
                control: "rtsp://cam/x/trackID=1".into(),
            },
            TrackInfo {
                kind: MediaKind::Audio,
                encoding: "MPEG4-GENERIC".into(),
                payload_type: 97,
                clock_rate: 16000,
                channels: Some(1),
                fmtp: Some("streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1408".into()),
                control: "rtsp://cam/x/trackID=2".into(),
            },
        ];
        let sdp = describe("front\r\ndoor", &tracks, false);
        assert!(sdp.contains("s=frontdoor\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 0.0.0.0\r\n"), "{sdp}");
        let v6 = describe("front", &tracks, true);
        assert!(v6.contains("o=- 0 0 IN IP6 ::\r\n") && v6.contains("c=IN IP6 ::\r\n"));
        assert!(crate::rtsp::sdp::parse(v6.as_bytes(), "rtsp://[2001:db8::1]/front/").is_ok());
        // Our own client reads it back as the same tracks, resolved against our Content-Base.
        let p = crate::rtsp::sdp::parse(sdp.as_bytes(), "rtsp://box:8554/front/").unwrap();
        assert_eq!(p.aggregate_url, "rtsp://box:8554/front/");
        assert_eq!(p.tracks.len(), 2);
        for (i, (got, want)) in p.tracks.iter().zip(&tracks).enumerate() {
            assert_eq!(got.control, format!("rtsp://box:8554/front/trackID={i}"));
            assert_eq!(
                (&got.encoding, got.payload_type, got.clock_rate, &got.fmtp),
                (
                    &want.encoding,
                    want.payload_type,
                    want.clock_rate,
                    &want.fmtp
                )
            );
        }
        assert_eq!(p.tracks[1].channels, Some(1));
    }
}
