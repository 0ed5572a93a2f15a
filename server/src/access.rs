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
