//! The `Transport` header of a client's SETUP (RFC 2326 §12.39): which of the offered
//! transports the server takes, and the header it answers with.

/// How one track's packets reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackTransport {
    /// `$`-framed in the RTSP connection: RTP on `rtp_channel`, RTCP on `rtcp_channel`.
    Interleaved {
        /// Channel of the track's RTP packets.
        rtp_channel: u8,
        /// Channel of its RTCP packets (the client's receiver reports come in on it too).
        rtcp_channel: u8,
    },
    /// UDP unicast to the RTSP client's address, to its `client_port` pair, sent from the
    /// server's shared RTP/RTCP ports ([`super::ServerConfig::udp_server_ports`]).
    Udp {
        /// The client's RTP port...
        rtp_port: u16,
        /// ...and RTCP port.
        rtcp_port: u16,
    },
}

/// Why no offered transport was taken (answered with 461 Unsupported Transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// Picks the first transport spec the server supports, in the client's order of preference
/// (ffmpeg offers UDP, then retries with TCP after a 461). `track` numbers default channels;
/// `udp` says whether UDP is on.
pub(crate) fn choose(header: &str, track: usize, udp: bool) -> Result<TrackTransport, Unsupported> {
    for spec in header.split(',') {
        let mut params = spec.split(';').map(str::trim);
        let proto = params.next().unwrap_or("").to_ascii_uppercase();
        let mut multicast = false;
        let mut interleaved = None;
        let mut client_port = None;
        let mut bad = false;
        for p in params {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.to_ascii_lowercase().as_str() {
                "multicast" => multicast = true,
                "interleaved" => match pair(v) {
                    Some((a, b)) if a <= 255 && b <= 255 => interleaved = Some((a as u8, b as u8)),
                    _ => bad = true,
                },
                "client_port" => match pair(v) {
                    Some((a, b)) if a > 0 && b > 0 => client_port = Some((a, b)),
                    _ => bad = true,
                },
                _ => {}
            }
        }
        if bad || multicast {
            continue;
        }
        match proto.as_str() {
            "RTP/AVP/TCP" => {
                // Without `interleaved=`, the server picks the pair (RFC 2326 §12.39).
                let (rtp, rtcp) = interleaved.unwrap_or_else(|| {
                    let c = (track.min(127) * 2) as u8;
                    (c, c + 1)
                });
                return Ok(TrackTransport::Interleaved {
                    rtp_channel: rtp,
                    rtcp_channel: rtcp,
                });
            }
            "RTP/AVP" | "RTP/AVP/UDP" if udp => {
                if let Some((rtp, rtcp)) = client_port {
                    return Ok(TrackTransport::Udp {
                        rtp_port: rtp,
                        rtcp_port: rtcp,
                    });
                }
            }
            _ => {}
        }
    }
    Err(Unsupported)
}

/// `a-b` (or `a` alone, meaning `a-(a+1)`).
fn pair(v: &str) -> Option<(u16, u16)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: u16 = v.trim().parse().ok()?;
            Some((a, a.checked_add(1)?))
        }
    }
}

/// The `Transport` header of the SETUP answer.
pub(crate) fn answer(t: &TrackTransport, server_ports: Option<(u16, u16)>, ssrc: u32) -> String {
    match *t {
        TrackTransport::Interleaved {
            rtp_channel,
            rtcp_channel,
        } => {
            format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X}")
        }
        TrackTransport::Udp {
            rtp_port,
            rtcp_port,
        } => {
            let (s_rtp, s_rtcp) = server_ports.unwrap_or((0, 0));
            format!(
                "RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};server_port={s_rtp}-{s_rtcp};ssrc={ssrc:08X}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_supported_spec_wins() {
        // ffmpeg's default offer: UDP first.
        let ffmpeg_udp = "RTP/AVP/UDP;unicast;client_port=5000-5001";
        assert_eq!(
            choose(ffmpeg_udp, 0, true),
            Ok(TrackTransport::Udp {
                rtp_port: 5000,
                rtcp_port: 5001
            })
        );
        assert_eq!(choose(ffmpeg_udp, 0, false), Err(Unsupported));
        // GStreamer offers several at once.
        let gst = "RTP/AVP;multicast;client_port=6000-6001,RTP/AVP;unicast;client_port=6002-6003,RTP/AVP/TCP;unicast;interleaved=2-3";
        assert_eq!(
            choose(gst, 1, true),
            Ok(TrackTransport::Udp {
                rtp_port: 6002,
                rtcp_port: 6003
            })
        );
        assert_eq!(
            choose(gst, 1, false),
            Ok(TrackTransport::Interleaved {
                rtp_channel: 2,
                rtcp_channel: 3
            })
        );
    }

    #[test]
    fn tcp_without_channels_gets_the_tracks_pair() {
        assert_eq!(
            choose("RTP/AVP/TCP;unicast", 2, false),
            Ok(TrackTransport::Interleaved {
                rtp_channel: 4,
                rtcp_channel: 5
            })
        );
    }

    #[test]
    fn malformed_specs_are_skipped() {
        for h in [
            "",
            "RTP/AVP/TCP;interleaved=300-301",
            "RTP/AVP;client_port=x-y",
            "RTP/AVP;client_port=0-1",
            "RTP/SAVP/TCP;interleaved=0-1",
            "RTP/AVP;unicast",
        ] {
            assert_eq!(choose(h, 0, true), Err(Unsupported), "{h}");
        }
    }
}
