//! HTTP-style authentication for RTSP (RFC 2617 Digest with MD5, and Basic).
//!
//! Like retina and gortsplib, the client only authenticates after a 401 and picks Digest over
//! Basic when a camera offers both. Unlike gortsplib it also does `qop=auth` (nc/cnonce), which
//! some cameras require; without `qop` it falls back to plain RFC 2069 digests.

use std::fmt;

use base64::Engine as _;
use md5::{Digest as _, Md5};

/// User name and password from the URL. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: String, password: String) -> Credentials {
        Credentials { username, password }
    }
    pub fn username(&self) -> &str {
        &self.username
    }
    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Digest {
        realm: String,
        nonce: String,
        opaque: Option<String>,
        /// The server offered `qop=auth`: send `qop`, `nc` and `cnonce`.
        qop_auth: bool,
    },
}

impl Challenge {
    /// Parses one header value; `None` for schemes or algorithms we cannot answer
    /// (e.g. Digest with `algorithm=SHA-256`, or `qop=auth-int` only).
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if let Some(alg) = get("algorithm") {
            if !alg.eq_ignore_ascii_case("md5") {
                return None;
            }
        }
        let qop_auth = match get("qop") {
            None => false,
            Some(q) if q.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")) => true,
            Some(_) => return None,
        };
        Some(Challenge::Digest {
            realm: get("realm").unwrap_or_default(),
            nonce: get("nonce")?,
            opaque: get("opaque"),
            qop_auth,
        })
    }

    /// The challenge to answer among all `WWW-Authenticate` headers: Digest over Basic.
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let mut basic = None;
        for v in values {
            match Challenge::parse(v) {
                Some(c @ Challenge::Digest { .. }) => return Some(c),
                Some(c) => basic = Some(c),
                None => {}
            }
        }
        basic
    }
}

/// `key=value, key="quoted, value"` pairs of a challenge.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, c)) = chars.next() {
                            v.push(c);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &q[end.min(q.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.push((key, value));
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Produces `Authorization` values for every request after a challenge was accepted.
pub struct Authenticator {
    creds: Credentials,
    challenge: Challenge,
    cnonce: String,
    nc: u32,
}

impl Authenticator {
    /// `cnonce` is passed in so the core stays deterministic; the client draws it at random.
    pub fn new(creds: Credentials, challenge: Challenge, cnonce: String) -> Authenticator {
        Authenticator {
            creds,
            challenge,
            cnonce,
            nc: 0,
        }
    }

    /// The `Authorization` header value for `method` on `uri` (the request-URI as sent).
    pub fn authorization(&mut self, method: &str, uri: &str) -> String {
        let user = self.creds.username();
        let pass = self.creds.password();
        match &self.challenge {
            Challenge::Basic => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                format!("Basic {token}")
            }
            Challenge::Digest {
                realm,
                nonce,
                opaque,
                qop_auth,
            } => {
                let ha1 = md5_hex(&format!("{user}:{realm}:{pass}"));
                let ha2 = md5_hex(&format!("{method}:{uri}"));
                let mut h = format!(
                    "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
                    quote(user),
                    quote(realm),
                    quote(nonce),
                    quote(uri)
                );
                if *qop_auth {
                    // nc counts requests sent with this nonce, so the server can spot replays.
                    self.nc = self.nc.wrapping_add(1);
                    let nc = format!("{:08x}", self.nc);
                    let resp = md5_hex(&format!("{ha1}:{nonce}:{nc}:{}:auth:{ha2}", self.cnonce));
                    h += &format!(
                        ", response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"{}\"",
                        self.cnonce
                    );
                } else {
                    let resp = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
                    h += &format!(", response=\"{resp}\"");
                }
                if let Some(o) = opaque {
                    h += &format!(", opaque=\"{}\"", quote(o));
                }
                h += ", algorithm=MD5";
                h
            }
        }
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("creds", &self.creds)
            .field("challenge", &self.challenge)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'a>(h: &'a str, key: &str) -> &'a str {
        let start = h.find(&format!("{key}=")).unwrap() + key.len() + 1;
        let rest = &h[start..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        &rest[..rest.find(['"', ',']).unwrap_or(rest.len())]
    }

    #[test]
    fn digest_matches_rfc2617_example() {
        // RFC 2617 §3.5.
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let creds = Credentials::new("Mufasa".into(), "Circle Of Life".into());
        let mut a = Authenticator::new(creds, c, "0a4f113b".into());
        let h = a.authorization("GET", "/dir/index.html");
        assert_eq!(param(&h, "response"), "6629fae49393a05397450978507c4ef1");
        assert_eq!(param(&h, "nc"), "00000001");
        assert_eq!(param(&h, "opaque"), "5ccc069c403ebaf9f0171e9517f40e41");
        let h = a.authorization("GET", "/dir/index.html");
        assert_eq!(param(&h, "nc"), "00000002");
        assert!(!h.contains("Circle"));
    }

    #[test]
    fn digest_without_qop_is_rfc2069() {
        // Expected values from python3 hashlib:
        // md5(md5("admin:IP Camera(12345):p@ss") + ":c0ffee0123:" + md5("DESCRIBE:rtsp://10.0.0.2/live"))
        let c = Challenge::pick([
            "Basic realm=\"IP Camera(12345)\"",
            "Digest realm=\"IP Camera(12345)\", nonce=\"c0ffee0123\", stale=\"FALSE\"",
        ])
        .unwrap();
        let creds = Credentials::new("admin".into(), "p@ss".into());
        let mut a = Authenticator::new(creds, c, "unused".into());
        let h = a.authorization("DESCRIBE", "rtsp://10.0.0.2/live");
        assert_eq!(param(&h, "response"), "40f91f2f662c24cf43e1c834103e8767");
        assert!(!h.contains("qop") && !h.contains("cnonce"));
        let h = a.authorization("SETUP", "rtsp://10.0.0.2/live/trackID=1");
        assert_eq!(param(&h, "response"), "002cefc71f5112976da5fd2bf2a38a69");
        assert_eq!(param(&h, "uri"), "rtsp://10.0.0.2/live/trackID=1");
    }

    #[test]
    fn basic_header() {
        let c = Challenge::pick(["Basic realm=\"cam\""]).unwrap();
        let mut a = Authenticator::new(
            Credentials::new("admin".into(), "p@ss".into()),
            c,
            "x".into(),
        );
        assert_eq!(
            a.authorization("DESCRIBE", "rtsp://x/"),
            "Basic YWRtaW46cEBzcw=="
        );
        assert!(!format!("{a:?}").contains("p@ss"));
    }

    #[test]
    fn unusable_challenges() {
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"),
            None
        );
        assert_eq!(Challenge::parse("Digest realm=\"r\""), None);
        assert_eq!(Challenge::parse("Bearer x"), None);
        assert_eq!(Challenge::parse(""), None);
        assert_eq!(Challenge::pick(["garbage=\"", "Negotiate abc"]), None);
    }
}
