//! Access control (off by default) and named streams: which camera a request may reach, and
//! with which credentials.
//!
//! - `auth_token` (the admin token): the REST and metrics APIs need `Authorization: Bearer
//!   TOKEN`; it also plays any stream (WHEP bearer, or `authToken` of a signaling session's
//!   `connection` message).
//! - `viewer_token_secret`: viewer tokens (`camgate_core::viewer_token`) play the stream they
//!   name and nothing else: WHEP bearer, signaling `authToken` or `custom.token` (session) or
//!   the `playStream`'s `custom.token`. Without it, playing needs the admin token as before.
//! - `allowed_hosts`: camera URLs asked for by clients must point at one of these hosts.
//!   Named streams are the operator's own and are always allowed.
//! - `[streams.NAME]`: a client plays NAME; the server swaps in the configured URL.

use std::collections::BTreeMap;

pub use camgate_core::host_rules::{HostRule, HostRules};
use camgate_core::rtsp::RtspUrl;
pub use camgate_core::viewer_token::{Grant, TokenError, ViewerTokenKey};

use crate::config::{Config, NamedStream};

/// What the web side needs to decide who may play what.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The admin token (`auth_token`).
    pub token: Option<String>,
    /// Verifies viewer tokens (`viewer_token_secret`).
    viewer_key: Option<std::sync::Arc<ViewerTokenKey>>,
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
            viewer_key: config
                .viewer_token_secret
                .as_deref()
                .map(|s| std::sync::Arc::new(ViewerTokenKey::new(s.as_bytes()))),
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

    /// Whether an `Authorization` header value carries the admin token.
    pub fn bearer_ok(&self, header: Option<&[u8]>) -> bool {
        self.token.is_none() || self.token_ok(bearer(header))
    }

    /// Whether viewer tokens are configured.
    pub fn viewer_tokens(&self) -> bool {
        self.viewer_key.is_some()
    }

    /// The viewer-token key, for minting (`None`: no `viewer_token_secret`).
    pub fn viewer_key(&self) -> Option<&ViewerTokenKey> {
        self.viewer_key.as_deref()
    }

    /// Admin-only calls (REST, /metrics): the admin token, else why not.
    pub fn authorize_admin(&self, presented: Option<&str>, now_unix: u64) -> Result<(), Denial> {
        if self.token.is_none() || self.token_ok(presented) {
            return Ok(());
        }
        match (presented, &self.viewer_key) {
            (None, _) => Err(Denial::Missing),
            (Some(_), None) => Err(Denial::WrongToken),
            // A viewer's own valid token gets 403, not 401: it authenticates, it just is not
            // the admin's.
            (Some(t), Some(key)) => match key.verify(t, now_unix) {
                Ok(_) => Err(Denial::AdminOnly),
                Err(e) => Err(Denial::Viewer(e)),
            },
        }
    }

    /// Playing `stream` (a name or URL, as the viewer asks for it) with `presented`: the admin
    /// token, or a viewer token covering the stream.
    pub fn authorize_play(
        &self,
        presented: Option<&str>,
        stream: &str,
        now_unix: u64,
    ) -> Result<Who, Denial> {
        if self.token.is_none() || self.token_ok(presented) {
            return Ok(Who::Admin);
        }
        match (presented, &self.viewer_key) {
            (None, None) => Err(Denial::Missing),
            (Some(_), None) => Err(Denial::WrongToken),
            (_, Some(key)) => key
                .check(presented, stream, now_unix)
                .map(Who::Viewer)
                .map_err(Denial::Viewer),
        }
    }

    /// Ending a WHEP session (its unguessable id is the capability): the admin token, or any
    /// viewer token signed with our secret, even expired (the player may outlive its token).
    pub fn authorize_whep_delete(
        &self,
        presented: Option<&str>,
        now_unix: u64,
    ) -> Result<(), Denial> {
        match self.authorize_admin(presented, now_unix) {
            Ok(()) | Err(Denial::AdminOnly | Denial::Viewer(TokenError::Expired)) => Ok(()),
            Err(d) => Err(d),
        }
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

/// Who a credential authenticates for a play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The admin token, or no access control at all.
    Admin,
    /// A viewer token, with what it grants.
    Viewer(Grant),
}

/// Why a credential is refused. `reason()` is what the client is told (and what is logged):
/// never the credential itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No credential.
    Missing,
    /// Not the admin token (and viewer tokens are off).
    WrongToken,
    /// A viewer token, refused (`Missing` when none came).
    Viewer(TokenError),
    /// A valid viewer token on an admin-only call.
    AdminOnly,
}

impl Denial {
    pub fn reason(self) -> &'static str {
        match self {
            Denial::Missing => "Unauthorized: missing token",
            Denial::WrongToken => "Unauthorized: wrong token",
            Denial::Viewer(e) => e.reason(),
            Denial::AdminOnly => "Forbidden: this call needs the admin token",
        }
    }

    /// HTTP status: 401 for no valid credential, 403 for a valid one that does not allow this.
    pub fn status(self) -> u16 {
        if self.unauthenticated() {
            401
        } else {
            403
        }
    }

    /// A failed authentication (counted by the guessing throttle), as opposed to a valid
    /// credential asking for more than it allows.
    pub fn unauthenticated(self) -> bool {
        match self {
            Denial::Missing | Denial::WrongToken => true,
            Denial::Viewer(e) => e.is_unauthenticated(),
            Denial::AdminOnly => false,
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(header: Option<&[u8]>) -> Option<&str> {
    let value = std::str::from_utf8(header?).ok()?;
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
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
/// Compares SHA-256 digests rather than the tokens, so neither the position of the first
/// differing byte nor the token's length shows in the time taken.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use ring::digest::{digest, SHA256};
    let (a, b) = (digest(&SHA256, a), digest(&SHA256, b));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
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
    fn token_comparison_needs_every_byte_and_the_length() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret-token", b"secret-token-longer"));
        assert!(!constant_time_eq(b"", b"x"));
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

    #[test]
    fn admin_and_viewer_tokens() {
        let config = Config {
            auth_token: Some("admin-secret".into()),
            viewer_token_secret: Some("v".repeat(32)),
            ..Default::default()
        };
        let a = Access::new(&config);
        let now = 1_800_000_000;
        let key = ViewerTokenKey::new("v".repeat(32).as_bytes());
        let lobby = key.mint("lobby", now + 60);
        let old = key.mint("lobby", now - 1);
        let play = |t: Option<&str>, s| a.authorize_play(t, s, now);
        assert_eq!(play(Some("admin-secret"), "anything"), Ok(Who::Admin));
        assert!(matches!(play(Some(&lobby), "lobby"), Ok(Who::Viewer(_))));
        let denied = |r: Result<Who, Denial>| r.unwrap_err();
        assert_eq!(denied(play(Some(&lobby), "garage")).status(), 403);
        assert_eq!(
            denied(play(Some(&old), "lobby")),
            Denial::Viewer(TokenError::Expired)
        );
        assert_eq!(
            denied(play(None, "lobby")),
            Denial::Viewer(TokenError::Missing)
        );
        assert_eq!(denied(play(Some("guess"), "lobby")).status(), 401);
        // A viewer token is never the admin's.
        assert_eq!(a.authorize_admin(Some(&lobby), now), Err(Denial::AdminOnly));
        assert_eq!(a.authorize_admin(Some("admin-secret"), now), Ok(()));
        assert_eq!(a.authorize_admin(None, now), Err(Denial::Missing));
        assert_eq!(
            a.authorize_admin(Some("guess"), now).unwrap_err().status(),
            401
        );
        assert_eq!(a.authorize_whep_delete(Some(&old), now), Ok(()));
        assert!(a.authorize_whep_delete(Some("guess"), now).is_err());
        // Without viewer tokens, playing takes the admin token as before; open without either.
        let admin_only = Access::new(&Config {
            auth_token: Some("admin-secret".into()),
            ..Default::default()
        });
        assert_eq!(
            admin_only.authorize_play(Some(&lobby), "lobby", now),
            Err(Denial::WrongToken)
        );
        let open = Access::new(&Config::default());
        assert_eq!(open.authorize_play(None, "lobby", now), Ok(Who::Admin));
        assert_eq!(open.authorize_admin(None, now), Ok(()));
    }
}
