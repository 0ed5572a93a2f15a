//! The built-in demo camera: a 10 s H.264 clip shipped in the binary. The gateway plays it as
//! a stream (`camgate_core::demo`), with no camera connection; the RTSP server serves it as its
//! stream `demo`, and browsers play it by that URL, `rtsp://127.0.0.1:8554/demo` by default.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use camgate_core::demo::DemoClip;

/// The clip (see `server/assets/README.md`), compiled into the binary.
pub const CLIP_BYTES: &[u8] = include_bytes!("../../assets/demo.h264");
/// The RTSP server's name of the demo stream.
pub const NAME: &str = "demo";

/// The clip parsed once per process; every worker shares it.
pub fn shipped_clip() -> Result<Arc<DemoClip>, String> {
    static CLIP: OnceLock<Result<Arc<DemoClip>, String>> = OnceLock::new();
    CLIP.get_or_init(|| DemoClip::parse(CLIP_BYTES).map(Arc::new))
        .clone()
}

/// The demo's URL on the RTSP server listening on `addr`: `rtsp://<addr>/demo`, a wildcard
/// address shown as loopback so the URL is connectable as is.
pub fn url(addr: SocketAddr) -> String {
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    format!("rtsp://{addr}/{NAME}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use camgate_core::h264::nal::{is_vcl, nal_type, NAL_AUD, NAL_PPS, NAL_SPS};

    #[test]
    fn shipped_clip_is_ten_seconds_at_30fps_in_one_second_gops() {
        let clip = shipped_clip().expect("shipped clip parses");
        assert_eq!(clip.access_units.len(), 300);
        for (i, au) in clip.access_units.iter().enumerate() {
            let types: Vec<u8> = au.nals.iter().map(|n| nal_type(n[0])).collect();
            assert!(types.iter().any(|t| is_vcl(*t)), "AU {i}: {types:?}");
            assert!(!types.contains(&NAL_AUD), "no delimiters leak into RTP");
            assert_eq!(au.idr, i % 30 == 0, "AU {i}");
            if au.idr {
                // SPS/PPS before every IDR so a late joiner can decode.
                assert!(
                    types.contains(&NAL_SPS) && types.contains(&NAL_PPS),
                    "AU {i}"
                );
            }
        }
    }

    #[test]
    fn profile_level_id_is_constrained_baseline() {
        let pli = shipped_clip().unwrap().profile_level_id();
        assert_eq!(&pli[..2], "42", "baseline profile_idc");
        let flags = u8::from_str_radix(&pli[2..4], 16).unwrap();
        assert!(flags & 0x40 != 0, "constraint_set1 in {pli}");
        assert!(matches!(&pli[4..], "1e" | "1f"), "level 3.0/3.1 in {pli}");
    }

    #[test]
    fn wildcard_addresses_become_loopback_in_the_url() {
        assert_eq!(
            url("0.0.0.0:8554".parse().unwrap()),
            "rtsp://127.0.0.1:8554/demo"
        );
        assert_eq!(url("[::]:9554".parse().unwrap()), "rtsp://[::1]:9554/demo");
        assert_eq!(
            url("10.0.0.2:8554".parse().unwrap()),
            "rtsp://10.0.0.2:8554/demo"
        );
    }
}
