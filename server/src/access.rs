//! Access control (off by default) and named streams: which camera a request may reach, and
//! with which credentials.
//!
//! - `auth_token`: the REST, WHEP and metrics APIs need `Authorization: Bearer TOKEN`; a
//!   signaling session must send it as `authToken` in its `connection` message.
//! - `allowed_hosts`: camera URLs asked for by clients must point at one of these hosts.
//!   Named streams are the operator's own and are always allowed.
//! - `[streams.NAME]`: a client plays NAME; the server swaps in the configured URL.

use std::collections::BTreeMap;

pub use camgate_core::host_rules::{HostRule, HostRules};
use camgate_core::rtsp::RtspUrl;

use crate::config::{Config, NamedStream};

/// What the web side needs to decide who may play what.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub token: Option<String>,
    rules: HostRules,
    streams: BTreeMap<String, NamedStream>,
    /// `cors_origins`; `None`: any origin (`*`).
    cors_origins: Option<Vec<String>>,
}

/// What a browser's request gets for its `Origin` (`cors_origins`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginCheck {
    /// Any origin may (`cors_origins` has `*`): `Access-Control-Allow-Origin: *`.
    Any,
    /// This origin may, or the request names none (not a cross-origin browser request).
    Allowed,
    /// Another site's page: refused before anything is done or answered.
    Refused,
}

/// Why a requested stream is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The camera's host is not in `allowed_hosts`.
    Restricted,
}

impl Access {
    pub fn new(config: &Config) -> Access {
        Access {
            token: config.auth_token.clone().filter(|t| !t.is_empty()),
            rules: config.host_rules(),
            cors_origins: (!config.cors_origins.iter().any(|o| o == "*"))
                .then(|| config.cors_origins.clone()),
            streams: config.streams.clone(),
        }
    }

    /// Whether `presented` is the configured token (always true without one).
    pub fn token_ok(&self, presented: Option<&str>) -> bool {
        match &self.token {
            None => true,
            Some(token) => {
                presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes()))
            }
        }
    }

    /// Whether an `Authorization` header value carries the token.
    pub fn bearer_ok(&self, header: Option<&[u8]>) -> bool {
        if self.token.is_none() {
            return true;
        }
        let value = header
            .and_then(|h| std::str::from_utf8(h).ok())
            .unwrap_or("");
        let presented = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        self.token_ok(presented)
    }

    /// The camera URL to hand to the gateway for what a client asked for: a configured
    /// stream's URL for its name, else the request itself (checked against `allowed_hosts`).
    pub fn resolve(&self, requested: &str) -> Result<String, Refusal> {
        if let Some(s) = self.streams.get(requested) {
            return Ok(s.uri.clone());
        }
        if self.rules.is_open() {
            return Ok(requested.to_owned());
        }
        match RtspUrl::parse(requested) {
            Ok(url) if self.rules.allows_request(url.host()) => Ok(requested.to_owned()),
            // A malformed URL is the gateway's to refuse with its own "Bad URI" reason.
            Err(_) => Ok(requested.to_owned()),
            Ok(_) => Err(Refusal::Restricted),
        }
    }

    /// Whether a request with `Origin: origin` (and `Host: host`) may be served. camgate's own
    /// pages are always allowed: an origin on the request's own host, whatever the port (the
    /// player page on `http_port` talks to `ws_port`).
    pub fn check_origin(&self, origin: Option<&str>, host: Option<&str>) -> OriginCheck {
        let Some(allowed) = &self.cors_origins else {
            return OriginCheck::Any;
        };
        let Some(origin) = origin else {
            return OriginCheck::Allowed;
        };
        let own = host.is_some_and(|h| {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            host_part(origin_host).eq_ignore_ascii_case(host_part(h))
        });
        if own || allowed.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            OriginCheck::Allowed
        } else {
            OriginCheck::Refused
        }
    }

    /// Whether `requested` is a configured stream name.
    pub fn is_named(&self, requested: &str) -> bool {
        self.streams.contains_key(requested)
    }

    /// The name under which a stream (masked URL, as the gateway reports it) is published.
    pub fn name_of(&self, masked: &str) -> Option<&str> {
        self.streams
            .iter()
            .find(|(_, s)| {
                RtspUrl::parse(&s.uri)
                    .map(|u| u.redacted() == masked)
                    .unwrap_or(false)
            })
            .map(|(name, _)| name.as_str())
    }

    /// Streams to pull at start: (name, URL).
    pub fn pulled_at_start(&self) -> impl Iterator<Item = (&str, &str)> {
        self.streams
            .iter()
            .filter(|(_, s)| s.pull_at_start)
            .map(|(n, s)| (n.as_str(), s.uri.as_str()))
    }
}

/// The host of `host[:port]` (IPv6 in brackets kept whole).
fn host_part(authority: &str) -> &str {
    let authority = authority.split('/').next().unwrap_or(authority);
    match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => authority.split(':').next().unwrap_or(authority),
    }
}

/// Compares without an early exit, so response timing doesn't leak the token's prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(hosts: &[&str]) -> Access {
        let mut config = Config {
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        };
        config.streams.insert(
            "lobby".into(),
            NamedStream {
                uri: "rtsp://admin:secret@10.9.9.9/live".into(),
                pull_at_start: false,
                tls_fingerprint: None,
                rtsp_users: Vec::new(),
            },
        );
        Access::new(&config)
    }

    #[test]
    fn hosts_ips_and_cidrs() {
        let a = access(&["192.168.1.0/24", "cam.example.com", "*.cams.local", "::1"]);
        assert!(a.resolve("rtsp://192.168.1.77/x").is_ok());
        assert!(a.resolve("rtsp://u:p@192.168.2.77/x").is_err());
        assert!(a.resolve("rtsp://CAM.example.com/x").is_ok());
        assert!(a.resolve("rtsp://evil.com/x").is_err());
        assert!(a.resolve("rtsp://a.cams.local/x").is_ok());
        assert!(a.resolve("rtsp://cams.local/x").is_err());
        assert!(a.resolve("rtsp://[::1]:8554/x").is_ok());
        // Named streams bypass the list; malformed URLs go on to the gateway's "Bad URI".
        assert_eq!(
            a.resolve("lobby").unwrap(),
            "rtsp://admin:secret@10.9.9.9/live"
        );
        assert!(a.resolve("rtsp://bad host/x").is_ok());
        assert!(access(&[]).resolve("rtsp://anything/x").is_ok());
        assert!(HostRule::parse("10.0.0.0/33").is_err());
        assert!(HostRule::parse("not a host").is_err());
        assert_eq!(
            HostRule::parse("0.0.0.0/0").unwrap(),
            HostRule::Net("0.0.0.0".parse().unwrap(), 0)
        );
        assert!(HostRule::parse("0.0.0.0/0").unwrap().matches("8.8.8.8"));
    }

    #[test]
    fn ipv6_camera_hosts() {
        let a = access(&["2001:db8::/32", "[fd00:c::2]", "192.168.1.0/24"]);
        assert!(a.resolve("rtsp://u:p@[2001:db8::10]/x").is_ok());
        assert!(a.resolve("rtsp://[2001:DB8:0:0::10]:8554/x").is_ok());
        assert!(a.resolve("rtsp://[2001:db9::1]/x").is_err());
        assert!(a.resolve("rtsps://[fd00:c::2]/x").is_ok());
        assert!(a.resolve("rtsp://[fd00:c::3]/x").is_err());
        // An IPv4-mapped camera address matches the IPv4 block, and only that.
        assert!(a.resolve("rtsp://[::ffff:192.168.1.7]/x").is_ok());
        assert!(a.resolve("rtsp://[::ffff:10.0.0.1]/x").is_err());
    }

    #[test]
    fn origins_are_checked_against_cors_origins() {
        let mut config = Config::default();
        assert_eq!(
            Access::new(&config).check_origin(Some("https://evil.example"), Some("box:8081")),
            OriginCheck::Any,
            "the default is *"
        );
        config.cors_origins = vec!["https://portal.example".into()];
        let a = Access::new(&config);
        let check = |origin, host| a.check_origin(origin, host);
        assert_eq!(
            check(Some("https://portal.example"), Some("box:8081")),
            OriginCheck::Allowed
        );
        assert_eq!(
            check(Some("https://evil.example"), Some("box:8081")),
            OriginCheck::Refused
        );
        assert_eq!(
            check(None, Some("box:8081")),
            OriginCheck::Allowed,
            "no browser origin"
        );
        // camgate's own page: same host, another port; IPv6 too.
        assert_eq!(
            check(Some("http://box:8081"), Some("box:8080")),
            OriginCheck::Allowed
        );
        assert_eq!(
            check(Some("http://[::1]:8081"), Some("[::1]:8080")),
            OriginCheck::Allowed
        );
        assert_eq!(
            check(Some("http://box.evil:8081"), Some("box:8080")),
            OriginCheck::Refused
        );
        assert_eq!(check(Some("null"), Some("box:8080")), OriginCheck::Refused);
    }

    #[test]
    fn names_map_back_from_masked_urls() {
        let a = access(&[]);
        assert_eq!(a.name_of("rtsp://admin:***@10.9.9.9/live"), Some("lobby"));
        assert_eq!(a.name_of("rtsp://10.9.9.9/live"), None);
    }

    #[test]
    fn bearer_tokens() {
        let mut a = access(&[]);
        assert!(a.bearer_ok(None));
        a.token = Some("s3cret".into());
        assert!(!a.bearer_ok(None));
        assert!(!a.bearer_ok(Some(b"Bearer wrong")));
        assert!(!a.bearer_ok(Some(b"Basic s3cret")));
        assert!(a.bearer_ok(Some(b"Bearer s3cret")));
        assert!(a.bearer_ok(Some(b"bearer  s3cret")));
    }
}
