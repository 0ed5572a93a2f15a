//! HTTP-style authentication for RTSP: Digest (RFC 2617 / RFC 7616: MD5, MD5-sess, SHA-256,
//! SHA-256-sess) and Basic.
//!
//! Like retina and gortsplib, the client only authenticates after a 401 and, among several
//! `WWW-Authenticate` headers, prefers SHA-256 Digest, then MD5 Digest, then Basic. Unlike
//! gortsplib it also does `qop=auth` (nc/cnonce), which some cameras require; without `qop` (or
//! with [`Authenticator::with_cnonce`]`(false)`) it sends plain RFC 2069 digests.

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
    /// Keeps the pair for answering the camera's challenges.
    pub fn new(username: String, password: String) -> Credentials {
        Credentials { username, password }
    }
    /// The user name, safe to log (the password has no public getter).
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

/// Digest hash algorithm (RFC 7616 §3.3). `-sess` variants hash the client nonce into HA1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`, also what a challenge without `algorithm=` means.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616).
    Sha256,
    /// `SHA-256-sess` (RFC 7616).
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Option<Algorithm> {
        let s = s.trim();
        [
            ("MD5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, a)| a)
    }

    /// The token sent back in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    fn is_sha256(self) -> bool {
        matches!(self, Algorithm::Sha256 | Algorithm::Sha256Sess)
    }

    fn hex(self, s: &str) -> String {
        if self.is_sha256() {
            sha256_hex(s)
        } else {
            md5_hex(s)
        }
    }
}

/// Which `qop` the server offered that we can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// No `qop` in the challenge: RFC 2069 digest.
    None,
    /// `qop=auth`: the response also covers `nc` and `cnonce`.
    Auth,
    /// Only `auth-int` offered: our requests have no body, so H(entity-body) is H("").
    AuthInt,
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic`: base64 of user:password on every request.
    Basic,
    /// `Digest`: a hash of the credentials with the server's nonce.
    Digest {
        /// Hashed into HA1 and echoed back.
        realm: String,
        /// The server's nonce, echoed back and hashed into the response.
        nonce: String,
        /// Echoed back unchanged when present.
        opaque: Option<String>,
        /// Which quality of protection the response uses.
        qop: Qop,
        /// The hash function (and whether HA1 includes the cnonce).
        algorithm: Algorithm,
        /// `stale=true`: the nonce expired but the credentials were right (RFC 7616 §3.3).
        stale: bool,
    },
}

impl Challenge {
    /// Parses one header value; `None` for schemes or algorithms we cannot answer
    /// (e.g. Digest with `algorithm=SHA-512-256`, or an unknown `qop`).
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
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
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a)?,
        };
        let qop = match get("qop") {
            None => Qop::None,
            Some(q) => {
                let offered =
                    |name: &str| q.split(',').any(|q| q.trim().eq_ignore_ascii_case(name));
                if offered("auth") {
                    Qop::Auth
                } else if offered("auth-int") {
                    Qop::AuthInt
                } else {
                    return None;
                }
            }
        };
        Some(Challenge::Digest {
            realm: get("realm").unwrap_or_default(),
            nonce: get("nonce")?,
            opaque: get("opaque"),
            qop,
            algorithm,
            stale: get("stale").is_some_and(|s| s.trim().eq_ignore_ascii_case("true")),
        })
    }

    /// The challenge to answer among all `WWW-Authenticate` headers: SHA-256 Digest, then MD5
    /// Digest, then Basic (gortsplib's order; RFC 7616 §3.7 asks clients to prefer the
    /// strongest). Among equals the first one offered wins.
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let rank = |c: &Challenge| match c {
            Challenge::Basic => 0,
            Challenge::Digest { algorithm, .. } if algorithm.is_sha256() => 2,
            Challenge::Digest { .. } => 1,
        };
        let mut best: Option<Challenge> = None;
        for c in values.into_iter().filter_map(Challenge::parse) {
            if best.as_ref().is_none_or(|b| rank(&c) > rank(b)) {
                best = Some(c);
            }
        }
        best
    }

    /// A Digest challenge saying only the nonce expired.
    pub fn is_stale(&self) -> bool {
        matches!(self, Challenge::Digest { stale: true, .. })
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
    /// Send `qop`/`nc`/`cnonce` when the server offers `qop` (RFC 2617/7616). Off: RFC 2069
    /// digests even then, for cameras that reject the newer fields.
    use_cnonce: bool,
}

impl Authenticator {
    /// `cnonce` is passed in so the core stays deterministic; the client draws it at random.
    pub fn new(creds: Credentials, challenge: Challenge, cnonce: String) -> Authenticator {
        Authenticator {
            creds,
            challenge,
            cnonce,
            nc: 0,
            use_cnonce: true,
        }
    }

    /// `false`: answer `qop` challenges RFC 2069 style, without `qop`, `nc` and `cnonce`
    /// ([`crate::rtsp::RtspConfig::digest_cnonce`]). `-sess` algorithms still send `cnonce`,
    /// which their HA1 needs.
    pub fn with_cnonce(mut self, use_cnonce: bool) -> Authenticator {
        self.use_cnonce = use_cnonce;
        self
    }

    /// The challenge this authenticator answers (e.g. to log its scheme).
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
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
                qop,
                algorithm,
                stale: _,
            } => {
                let alg = *algorithm;
                let cnonce = &self.cnonce;
                let mut ha1 = alg.hex(&format!("{user}:{realm}:{pass}"));
                if alg.is_sess() {
                    ha1 = alg.hex(&format!("{ha1}:{nonce}:{cnonce}"));
                }
                let qop = if self.use_cnonce { *qop } else { Qop::None };
                let ha2 = match qop {
                    Qop::AuthInt => alg.hex(&format!("{method}:{uri}:{}", alg.hex(""))),
                    _ => alg.hex(&format!("{method}:{uri}")),
                };
                let mut h = format!(
                    "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
                    quote(user),
                    quote(realm),
                    quote(nonce),
                    quote(uri)
                );
                let qop_name = match qop {
                    Qop::None => None,
                    Qop::Auth => Some("auth"),
                    Qop::AuthInt => Some("auth-int"),
                };
                if let Some(qop_name) = qop_name {
                    // nc counts requests sent with this nonce, so the server can spot replays.
                    self.nc = self.nc.wrapping_add(1);
                    let nc = format!("{:08x}", self.nc);
                    let resp = alg.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop_name}:{ha2}"));
                    h += &format!(
                        ", response=\"{resp}\", qop={qop_name}, nc={nc}, cnonce=\"{cnonce}\""
                    );
                } else {
                    let resp = alg.hex(&format!("{ha1}:{nonce}:{ha2}"));
                    h += &format!(", response=\"{resp}\"");
                    if alg.is_sess() {
                        h += &format!(", cnonce=\"{cnonce}\"");
                    }
                }
                if let Some(o) = opaque {
                    h += &format!(", opaque=\"{}\"", quote(o));
                }
                h += ", algorithm=";
                h += alg.name();
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
            .field("use_cnonce", &self.use_cnonce)
            .finish_non_exhaustive()
    }
}

/// Server side: does `authorization` (a request's `Authorization` value) prove one of `users`
/// for `method`? Basic, or MD5 Digest (RFC 2069 or `qop=auth`) against our `realm` and
/// `nonce`. The password is compared only through hashes or in full, never logged.
pub fn verify(
    authorization: &str,
    method: &str,
    users: &[Credentials],
    realm: &str,
    nonce: &str,
) -> bool {
    let authorization = authorization.trim();
    let (scheme, rest) = authorization.split_once(' ').unwrap_or((authorization, ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, pass)) = pair.split_once(':') else {
            return false;
        };
        return users
            .iter()
            .any(|c| c.username == user && same(c.password.as_bytes(), pass.as_bytes()));
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return false;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let (Some(user), Some(uri), Some(response)) = (get("username"), get("uri"), get("response"))
    else {
        return false;
    };
    if get("realm") != Some(realm) || get("nonce") != Some(nonce) {
        return false;
    }
    if get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
        return false;
    }
    let Some(c) = users.iter().find(|c| c.username == user) else {
        return false;
    };
    let ha1 = md5_hex(&format!("{user}:{realm}:{}", c.password));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let expected = match get("qop") {
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else {
                return false;
            };
            md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
        }
        Some(_) => return false,
    };
    same(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    )
}

/// Compares without stopping at the first difference (no timing hint of how much matched).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

fn sha256_hex(s: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
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
    fn rfc7616_sha256_and_md5_examples() {
        // RFC 7616 §3.9.1 (values re-checked with python3 hashlib).
        let challenge = |alg: &str| {
            format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        let creds = || Credentials::new("Mufasa".into(), "Circle of Life".into());
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, expected) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let c = Challenge::parse(&challenge(alg)).unwrap();
            let mut a = Authenticator::new(creds(), c, cnonce.into());
            let h = a.authorization("GET", "/dir/index.html");
            assert_eq!(param(&h, "response"), expected, "{alg}");
            assert_eq!(param(&h, "algorithm"), alg);
            assert_eq!(param(&h, "qop"), "auth");
            assert_eq!(param(&h, "nc"), "00000001");
            assert_eq!(param(&h, "cnonce"), cnonce);
            assert_eq!(
                param(&h, "opaque"),
                "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
            );
        }
    }

    /// Expected values from python3 hashlib, user admin / p@ss, realm IPCAM, nonce 4e6f6e6365,
    /// cnonce 0a4f113b, DESCRIBE rtsp://10.0.0.5:554/h264:
    /// `ha1 = H("admin:IPCAM:p@ss")`, `-sess`: `ha1 = H(ha1 + ":4e6f6e6365:0a4f113b")`,
    /// `ha2 = H("DESCRIBE:rtsp://10.0.0.5:554/h264")` (auth-int: `+ ":" + H("")`),
    /// qop: `H(ha1:nonce:00000001:0a4f113b:qop:ha2)`, else `H(ha1:nonce:ha2)`.
    #[test]
    fn sess_auth_int_and_rfc2069_variants() {
        let creds = || Credentials::new("admin".into(), "p@ss".into());
        let uri = "rtsp://10.0.0.5:554/h264";
        let run = |challenge: &str, use_cnonce: bool| {
            let c = Challenge::parse(challenge).unwrap();
            let mut a = Authenticator::new(creds(), c, "0a4f113b".into()).with_cnonce(use_cnonce);
            a.authorization("DESCRIBE", uri)
        };
        let h = run(
            "Digest realm=\"IPCAM\", nonce=\"4e6f6e6365\", qop=\"auth\", algorithm=MD5-sess",
            true,
        );
        assert_eq!(param(&h, "response"), "4c1938d180da8fbd2f359d9260fce46d");
        assert_eq!(param(&h, "algorithm"), "MD5-sess");
        let h = run(
            "Digest realm=\"IPCAM\", nonce=\"4e6f6e6365\", algorithm=md5-sess",
            true,
        );
        assert_eq!(param(&h, "response"), "9a1432ca2f2678bbcd6075d98cc44fa1");
        assert_eq!(param(&h, "cnonce"), "0a4f113b", "-sess needs the cnonce");
        assert!(!h.contains("qop") && !h.contains("nc="), "{h}");
        let h = run(
            "Digest realm=\"IPCAM\", nonce=\"4e6f6e6365\", qop=auth, algorithm=SHA-256-sess",
            true,
        );
        assert_eq!(
            param(&h, "response"),
            "ffc4f5440315215c6adf8463ffa607784d31c1f24be40b89bb29a21e74e6d35f"
        );
        let h = run(
            "Digest realm=\"IPCAM\", nonce=\"4e6f6e6365\", qop=\"auth-int\"",
            true,
        );
        assert_eq!(param(&h, "response"), "f91f997862662b9140b112b6c9de3695");
        assert_eq!(param(&h, "qop"), "auth-int");
        // digest_cnonce = false: a qop challenge answered RFC 2069 style.
        let h = run(
            "Digest realm=\"IPCAM\", nonce=\"4e6f6e6365\", qop=\"auth\"",
            false,
        );
        assert_eq!(param(&h, "response"), "09f6073a21be7db164029d98d8435535");
        assert!(
            !h.contains("qop") && !h.contains("nc=") && !h.contains("cnonce"),
            "{h}"
        );
    }

    #[test]
    fn pick_prefers_sha256_then_md5_then_basic() {
        let basic = "Basic realm=\"cam\"";
        let md5 = "Digest realm=\"cam\", nonce=\"m\"";
        let sha = "Digest realm=\"cam\", nonce=\"s\", algorithm=SHA-256";
        let alg = |c: Option<Challenge>| match c {
            Some(Challenge::Digest { algorithm, .. }) => Some(algorithm),
            Some(Challenge::Basic) => None,
            None => panic!("no challenge"),
        };
        assert_eq!(
            alg(Challenge::pick([basic, md5, sha])),
            Some(Algorithm::Sha256)
        );
        assert_eq!(
            alg(Challenge::pick([sha, md5, basic])),
            Some(Algorithm::Sha256)
        );
        assert_eq!(alg(Challenge::pick([basic, md5])), Some(Algorithm::Md5));
        assert_eq!(alg(Challenge::pick([md5, basic])), Some(Algorithm::Md5));
        assert_eq!(alg(Challenge::pick([basic])), None);
        // An algorithm we cannot answer does not hide the others.
        let sha512 = "Digest realm=\"cam\", nonce=\"x\", algorithm=SHA-512-256";
        assert_eq!(alg(Challenge::pick([sha512, md5])), Some(Algorithm::Md5));
        // stale is read case-insensitively, quoted or not.
        assert!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", stale=TRUE")
                .unwrap()
                .is_stale()
        );
        assert!(
            !Challenge::parse("Digest realm=\"r\", nonce=\"n\", stale=\"FALSE\"")
                .unwrap()
                .is_stale()
        );
    }

    #[test]
    fn unusable_challenges() {
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            None
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\""),
            None
        );
        assert_eq!(Challenge::parse("Digest realm=\"r\""), None);
        assert_eq!(Challenge::parse("Bearer x"), None);
        assert_eq!(Challenge::parse(""), None);
        assert_eq!(Challenge::pick(["garbage=\"", "Negotiate abc"]), None);
    }

    #[test]
    fn the_server_verifies_what_our_client_answers() {
        let users = [Credentials::new("admin".into(), "s3cr:t/@".into())];
        let challenge = |qop| Challenge::Digest {
            realm: "camgate".into(),
            nonce: "abc123".into(),
            opaque: None,
            qop,
            algorithm: Algorithm::Md5,
            stale: false,
        };
        let uri = "rtsp://127.0.0.1:8554/cam";
        for (c, cnonce) in [
            (challenge(Qop::Auth), true),
            (challenge(Qop::None), true),
            (Challenge::Basic, true),
            (challenge(Qop::Auth), false),
        ] {
            let mut a = Authenticator::new(users[0].clone(), c.clone(), "0a4f113b".into())
                .with_cnonce(cnonce);
            for _ in 0..2 {
                // nc counts up: both requests verify.
                let h = a.authorization("DESCRIBE", uri);
                assert!(
                    verify(&h, "DESCRIBE", &users, "camgate", "abc123"),
                    "{c:?}: {h}"
                );
                assert!(
                    !verify(&h, "DESCRIBE", &users, "camgate", "other-nonce")
                        || c == Challenge::Basic
                );
                if c != Challenge::Basic {
                    assert!(
                        !verify(&h, "PLAY", &users, "camgate", "abc123"),
                        "method is hashed"
                    );
                    assert!(!verify(&h, "DESCRIBE", &users, "realm2", "abc123"));
                }
            }
            let wrong = [Credentials::new("admin".into(), "s3cr:t/!".into())];
            let h = Authenticator::new(wrong[0].clone(), c.clone(), "x".into())
                .authorization("DESCRIBE", uri);
            assert!(
                !verify(&h, "DESCRIBE", &users, "camgate", "abc123"),
                "wrong password"
            );
            let other = [Credentials::new("guest".into(), "s3cr:t/@".into())];
            let h = Authenticator::new(other[0].clone(), c.clone(), "x".into())
                .authorization("DESCRIBE", uri);
            assert!(
                !verify(&h, "DESCRIBE", &users, "camgate", "abc123"),
                "unknown user"
            );
        }
        let sha = Challenge::Digest {
            realm: "camgate".into(),
            nonce: "abc123".into(),
            opaque: None,
            qop: Qop::Auth,
            algorithm: Algorithm::Sha256,
            stale: false,
        };
        let h =
            Authenticator::new(users[0].clone(), sha, "x".into()).authorization("DESCRIBE", uri);
        assert!(
            !verify(&h, "DESCRIBE", &users, "camgate", "abc123"),
            "only MD5 is offered"
        );
        for junk in [
            "",
            "Basic",
            "Basic !!!",
            "Digest",
            "Digest username=admin",
            "Bearer x",
        ] {
            assert!(
                !verify(junk, "DESCRIBE", &users, "camgate", "abc123"),
                "{junk}"
            );
        }
    }
}
