//! ICE servers: the STUN servers camgate asks for its own public address (`stun_servers`), and
//! the STUN/TURN servers handed to browsers (`ice_servers`) in the player page and in WHEP
//! answers' `Link` headers, with TURN credentials minted per viewer session.
//!
//! Time-limited TURN credentials follow the TURN REST API scheme (draft-uberti-behave-turn-rest,
//! coturn's `use-auth-secret` + `static-auth-secret`): username `<unix expiry>:<name>`,
//! password `base64(HMAC-SHA1(secret, username))`. Secrets and credentials are never logged:
//! `Debug` masks them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use camgate_core::stun::StunServer;

/// One `[[ice_servers]]` entry: URLs of one server, and how its credentials are made.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// "stun:host:3478", "turn:host:3478?transport=udp", "turns:host:5349?transport=tcp".
    pub urls: Vec<String>,
    /// Static TURN username (with `credential`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Static TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The TURN server's shared secret (coturn `static-auth-secret`): each viewer session gets
    /// its own time-limited username and password made from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<String>,
    /// How long minted credentials stay valid (TURN refreshes need them for the whole session).
    #[serde(default = "default_ttl")]
    pub credential_ttl_secs: u64,
}

fn default_ttl() -> u64 {
    86_400
}

impl std::fmt::Debug for IceServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServerConfig")
            .field("urls", &self.urls)
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("credential", &self.credential.as_ref().map(|_| "***"))
            .field("auth_secret", &self.auth_secret.as_ref().map(|_| "***"))
            .field("credential_ttl_secs", &self.credential_ttl_secs)
            .finish()
    }
}

/// A server as a browser's `RTCIceServer` wants it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

/// The TURN REST API credentials for `name`, valid until `expiry` (Unix seconds).
pub fn turn_rest_credentials(secret: &str, name: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{name}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = ring::hmac::sign(&key, username.as_bytes());
    (username, BASE64.encode(tag.as_ref()))
}

/// The servers for one viewer session named `name` at Unix time `now`: static credentials as
/// configured, shared-secret ones minted.
pub fn mint(servers: &[IceServerConfig], name: &str, now: u64) -> Vec<IceServer> {
    servers
        .iter()
        .map(|s| {
            let (username, credential) = match &s.auth_secret {
                Some(secret) => {
                    let (u, p) = turn_rest_credentials(secret, name, now + s.credential_ttl_secs);
                    (Some(u), Some(p))
                }
                None => (s.username.clone(), s.credential.clone()),
            };
            IceServer {
                urls: s.urls.clone(),
                username,
                credential,
            }
        })
        .collect()
}

/// Unix time now (the wall clock: TURN servers compare expiries with theirs).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// A name for one viewer session's credentials: random, so sessions can't be told apart by
/// others, and saying it is camgate's.
pub fn session_name() -> String {
    let raw: [u8; 6] = ring::rand::generate(&ring::rand::SystemRandom::new())
        .map(|r| r.expose())
        .unwrap_or_default();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("camgate-{hex}")
}

/// WHEP `Link` header values (draft-ietf-wish-whep, RFC 8288), one per URL.
pub fn link_headers(servers: &[IceServer]) -> Vec<String> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = Vec::new();
    for s in servers {
        for url in &s.urls {
            let mut v = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(u), Some(c)) = (&s.username, &s.credential) {
                v.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote(u),
                    quote(c)
                ));
            }
            out.push(v);
        }
    }
    out
}

/// "stun:host", "stun:host:port" (RFC 7064) → host and port (3478 by default).
fn parse_stun_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("stun:")
        .ok_or_else(|| format!("{url}: a STUN server is stun:host[:port]"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    if let Some(v6) = rest.strip_prefix('[') {
        let (host, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url}: unclosed ["))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{url}: bad port"))?,
            None => 3478,
        };
        return Ok((host.to_owned(), port));
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_owned(),
            port.parse().map_err(|_| format!("{url}: bad port"))?,
        )),
        None if !rest.is_empty() => Ok((rest.to_owned(), 3478)),
        None => Err(format!("{url}: no host")),
    }
}

/// The configured `stun_servers`, resolved (IPv4: the media sockets are): the ones whose name
/// does not resolve are left out with a warning.
pub fn resolve_stun_servers(urls: &[String]) -> Result<Vec<StunServer>, String> {
    let mut out = Vec::new();
    for url in urls {
        let (host, port) = parse_stun_url(url)?;
        let addr: Option<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| tracing::warn!("stun server {url}: {e}"))
            .ok()
            .and_then(|mut a| a.find(SocketAddr::is_ipv4));
        match addr {
            Some(addr) => out.push(StunServer {
                url: url.clone(),
                addr,
            }),
            None => tracing::warn!("stun server {url}: no IPv4 address; not used"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_rest_credentials_as_coturn_checks_them() {
        // Reference: python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
        //   b"north", b"1700000000:camgate-x", hashlib.sha1).digest()).decode())'
        let (u, p) = turn_rest_credentials("north", "camgate-x", 1_700_000_000);
        assert_eq!(u, "1700000000:camgate-x");
        assert_eq!(p, "o6FQmw3ERY52T44YlM8xDUlM9m8=");
    }

    #[test]
    fn minted_per_session_static_as_configured() {
        let servers = vec![
            IceServerConfig {
                urls: vec!["stun:198.51.100.1:3478".into()],
                username: None,
                credential: None,
                auth_secret: None,
                credential_ttl_secs: 60,
            },
            IceServerConfig {
                urls: vec![
                    "turn:198.51.100.1:3478?transport=udp".into(),
                    "turn:198.51.100.1:3478?transport=tcp".into(),
                ],
                username: None,
                credential: None,
                auth_secret: Some("s3cret".into()),
                credential_ttl_secs: 600,
            },
        ];
        let a = mint(&servers, "camgate-a", 1000);
        let b = mint(&servers, "camgate-b", 1000);
        assert_eq!(a[0].username, None);
        assert_eq!(a[1].username.as_deref(), Some("1600:camgate-a"));
        assert_ne!(a[1].credential, b[1].credential);
        let links = link_headers(&a);
        assert_eq!(links[0], "<stun:198.51.100.1:3478>; rel=\"ice-server\"");
        assert_eq!(
            links[1],
            format!(
                "<turn:198.51.100.1:3478?transport=udp>; rel=\"ice-server\"; \
                 username=\"1600:camgate-a\"; credential=\"{}\"; credential-type=\"password\"",
                a[1].credential.as_deref().unwrap()
            )
        );
        assert_eq!(links.len(), 3);
        // Never in logs.
        let shown = format!("{:?} {:?}", servers, a);
        assert!(
            !shown.contains("s3cret") && !shown.contains("camgate-a"),
            "{shown}"
        );
    }

    #[test]
    fn stun_urls() {
        assert_eq!(
            parse_stun_url("stun:stun.example.net").unwrap(),
            ("stun.example.net".into(), 3478)
        );
        assert_eq!(
            parse_stun_url("stun:198.51.100.1:19302").unwrap(),
            ("198.51.100.1".into(), 19302)
        );
        assert!(parse_stun_url("turn:x").is_err());
        assert!(parse_stun_url("stun:").is_err());
        let r = resolve_stun_servers(&["stun:127.0.0.1:3478".into()]).unwrap();
        assert_eq!(r[0].addr, "127.0.0.1:3478".parse().unwrap());
    }
}
