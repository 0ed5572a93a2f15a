//! `rtsp://` and `rtsps://` URLs as users type them: credentials in the userinfo, a default port
//! of 554 (322 for `rtsps://`, RTSP over TLS).
//!
//! The request URL that goes on the wire never carries the credentials (they travel in
//! `Authorization`), and nothing here ever prints the password: [`RtspUrl::redacted`] is the only
//! string form, and `Debug` is written by hand.

use std::fmt;

use super::auth::Credentials;
use super::client::RtspError;

/// A parsed `rtsp[s]://[user[:password]@]host[:port][/path][?query]` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspUrl {
    /// `rtsps://`: the connection is TLS (the driver's business) and media is TCP-interleaved.
    tls: bool,
    /// The URL without userinfo: what is sent in request lines and used to resolve relative URLs.
    request: url::Url,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

/// Port used when the URL names none (RFC 2326 §3.2).
pub const DEFAULT_PORT: u16 = 554;
/// Port of `rtsps://` URLs that name none (IANA's rtsps, RFC 7826 §19.2).
pub const DEFAULT_TLS_PORT: u16 = 322;

impl RtspUrl {
    /// Parses a camera URL: `rtsp://` or `rtsps://`.
    ///
    /// The URL must already be escaped: a space or any other character that RFC 3986 does not
    /// allow raw is an error rather than silently percent-encoded, because the camera would
    /// then see a different path than the one the user configured.
    pub fn parse(s: &str) -> Result<RtspUrl, RtspError> {
        let bad = |reason: &str| RtspError::BadUri(reason.to_owned());
        // Reasons never quote the URL itself: it may hold a password.
        if let Some(c) = s.chars().find(|&c| {
            !c.is_ascii() || c.is_ascii_control() || c == ' ' || "\"<>\\^`{|}".contains(c)
        }) {
            return Err(if c == ' ' {
                bad("contains a space")
            } else {
                bad("contains a character that must be percent-encoded")
            });
        }
        let scheme_end = s.find("://").ok_or_else(|| bad("not an rtsp:// URL"))?;
        let tls = match &s[..scheme_end] {
            scheme if scheme.eq_ignore_ascii_case("rtsp") => false,
            scheme if scheme.eq_ignore_ascii_case("rtsps") => true,
            _ => return Err(bad("not an rtsp:// URL")),
        };
        let mut parsed = url::Url::parse(s).map_err(|e| match e {
            url::ParseError::InvalidPort => bad("invalid port"),
            url::ParseError::EmptyHost => bad("missing host"),
            _ => bad("malformed URL"),
        })?;
        let host = match parsed.host() {
            // Without brackets, so the driver can hand (host, port) to the resolver.
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            _ => return Err(bad("missing host")),
        };
        let port = match parsed.port() {
            Some(0) => return Err(bad("invalid port")),
            Some(p) => p,
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        let credentials = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            let user = percent_decode(parsed.username()).ok_or_else(|| bad("bad user name"))?;
            let pass = percent_decode(parsed.password().unwrap_or(""))
                .ok_or_else(|| bad("bad password encoding"))?;
            Some(Credentials::new(user, pass))
        };
        // Both setters only fail for URLs that cannot have a host, which we ruled out above.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        Ok(RtspUrl {
            tls,
            request: parsed,
            host,
            port,
            credentials,
        })
    }

    /// Host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `rtsps://`: RTSP over TLS, media interleaved in the TLS connection.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Port to connect to, 554 (322 for `rtsps://`) when the URL has none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL with the password replaced by `***`, for logs and API output.
    pub fn redacted(&self) -> String {
        let Some(creds) = &self.credentials else {
            return self.request.as_str().to_owned();
        };
        let mut u = self.request.clone();
        let _ = u.set_username(&percent_encode_userinfo(creds.username()));
        if !creds.password().is_empty() {
            let _ = u.set_password(Some("***"));
        }
        u.as_str().to_owned()
    }

    /// The URL as sent in request lines: no userinfo.
    pub fn request_url(&self) -> &str {
        self.request.as_str()
    }

    /// Percent-decoded credentials from the userinfo, if any.
    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Resolves a redirect's `Location` against this URL: absolute, or `/`-relative. The
    /// result keeps this URL's credentials unless it names its own. From `rtsps://` only to
    /// `rtsps://`: a camera (or whoever sits in the path) can't talk the client out of TLS.
    pub(crate) fn redirect(&self, location: &str) -> Result<RtspUrl, RtspError> {
        let location = location.trim();
        let mut next = if location.contains("://") {
            RtspUrl::parse(location)?
        } else {
            let joined = self
                .request
                .join(location)
                .map_err(|_| RtspError::BadUri("malformed URL".into()))?;
            RtspUrl::parse(joined.as_str())?
        };
        if self.tls && !next.tls {
            return Err(RtspError::BadUri(
                "redirect from rtsps:// to rtsp://".into(),
            ));
        }
        if next.credentials.is_none() {
            next.credentials = self.credentials.clone();
        }
        Ok(next)
    }
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RtspUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Decodes `%XX` escapes; `None` for a broken escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_percent_decoded_and_stripped_from_the_request_url() {
        let u = RtspUrl::parse("rtsp://admin:p%40ss%3Aw@cam.local/Streaming/101").unwrap();
        assert_eq!(u.host(), "cam.local");
        assert_eq!(u.port(), 554);
        let c = u.credentials().unwrap();
        assert_eq!(c.username(), "admin");
        assert_eq!(c.password(), "p@ss:w");
        assert_eq!(u.request_url(), "rtsp://cam.local/Streaming/101");
    }

    #[test]
    fn ports_and_hosts() {
        let u = RtspUrl::parse("rtsp://10.0.0.2:8554/live?ch=1").unwrap();
        assert_eq!((u.host(), u.port()), ("10.0.0.2", 8554));
        assert_eq!(u.request_url(), "rtsp://10.0.0.2:8554/live?ch=1");
        assert!(u.credentials().is_none());
        let u = RtspUrl::parse("RTSP://[::1]:10554/x").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 10554));
        let u = RtspUrl::parse("rtsp://cam").unwrap();
        assert_eq!((u.host(), u.port()), ("cam", 554));
    }

    #[test]
    fn ipv6_literals() {
        let u = RtspUrl::parse("rtsp://user:p%40ss@[2001:DB8::10]/Streaming/101").unwrap();
        // Without brackets for the resolver; the request URL keeps them (and its usual form).
        assert_eq!((u.host(), u.port()), ("2001:db8::10", 554));
        assert_eq!(u.request_url(), "rtsp://[2001:db8::10]/Streaming/101");
        let c = u.credentials().unwrap();
        assert_eq!((c.username(), c.password()), ("user", "p@ss"));
        assert_eq!(u.redacted(), "rtsp://user:***@[2001:db8::10]/Streaming/101");
        let u = RtspUrl::parse("rtsp://[::1]:8554/cam").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 8554));
        assert_eq!(u.request_url(), "rtsp://[::1]:8554/cam");
        let u = RtspUrl::parse("rtsps://[fd00:c::2]/x").unwrap();
        assert_eq!((u.host(), u.port()), ("fd00:c::2", 322));
        // An IPv4-mapped address stays what it is.
        let u = RtspUrl::parse("rtsp://[::ffff:192.0.2.1]/x").unwrap();
        assert_eq!(u.host(), "::ffff:192.0.2.1");
        // A relative redirect stays on the IPv6 host; an absolute one may change family.
        let n = RtspUrl::parse("rtsp://a:b@[::1]:8554/cam")
            .unwrap()
            .redirect("/other")
            .unwrap();
        assert_eq!(n.request_url(), "rtsp://[::1]:8554/other");
        assert_eq!(n.credentials().unwrap().username(), "a");
        let n = u.redirect("rtsp://10.0.0.9/y").unwrap();
        assert_eq!(n.host(), "10.0.0.9");
        for bad in ["rtsp://[::1/x", "rtsp://[2001:db8::g]/x", "rtsp://::1/x"] {
            assert!(RtspUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_uris() {
        for (s, why) in [
            ("rtsp://cam/my stream", "contains a space"),
            ("rtsp:///stream", "missing host"),
            ("rtsp://", "missing host"),
            ("rtsp://cam:99999/x", "invalid port"),
            ("rtsp://cam:abc/x", "invalid port"),
            ("rtsp://cam:0/x", "invalid port"),
            ("http://cam/x", "not an rtsp:// URL"),
            ("cam/x", "not an rtsp:// URL"),
            (
                "rtsp://cam/a{b}",
                "contains a character that must be percent-encoded",
            ),
            ("rtsp://u:p%4@cam/", "bad password encoding"),
        ] {
            match RtspUrl::parse(s) {
                Err(RtspError::BadUri(r)) => assert_eq!(r, why, "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
        let e = RtspUrl::parse("rtsp://cam/my stream").unwrap_err();
        assert_eq!(e.to_string(), "Bad URI: contains a space");
    }

    #[test]
    fn redirect_keeps_or_replaces_credentials() {
        let u = RtspUrl::parse("rtsp://admin:pw@cam/live").unwrap();
        let n = u.redirect("rtsp://10.0.0.9:8554/ch01").unwrap();
        assert_eq!((n.host(), n.port()), ("10.0.0.9", 8554));
        assert_eq!(n.request_url(), "rtsp://10.0.0.9:8554/ch01");
        assert_eq!(n.credentials().unwrap().password(), "pw");
        let n = u.redirect("rtsp://other:secret@10.0.0.9/x").unwrap();
        assert_eq!(n.credentials().unwrap().username(), "other");
        let n = u.redirect("/other/path?x=1").unwrap();
        assert_eq!(n.request_url(), "rtsp://cam/other/path?x=1");
        assert_eq!(n.credentials().unwrap().username(), "admin");
        assert!(u.redirect("http://cam/x").is_err());
        // rtsp -> rtsps is an upgrade; rtsps -> rtsp would drop TLS and is refused.
        let n = u.redirect("rtsps://cam/x").unwrap();
        assert!(n.is_tls());
        assert_eq!(n.port(), 322);
        assert!(n.redirect("rtsp://cam/x").is_err());
        let n = n.redirect("/y").unwrap();
        assert!(n.is_tls());
        assert_eq!(n.request_url(), "rtsps://cam/y");
    }

    #[test]
    fn rtsps_defaults_to_port_322() {
        let u = RtspUrl::parse("rtsps://admin:pw@cam.local/live").unwrap();
        assert!(u.is_tls());
        assert_eq!((u.host(), u.port()), ("cam.local", 322));
        assert_eq!(u.request_url(), "rtsps://cam.local/live");
        assert_eq!(u.redacted(), "rtsps://admin:***@cam.local/live");
        let u = RtspUrl::parse("RTSPS://10.0.0.2:7441/x").unwrap();
        assert_eq!((u.host(), u.port(), u.is_tls()), ("10.0.0.2", 7441, true));
        assert!(!RtspUrl::parse("rtsp://cam/x").unwrap().is_tls());
    }

    #[test]
    fn redacted_hides_the_password() {
        let u = RtspUrl::parse("rtsp://admin:s3cr%40t@cam:554/live").unwrap();
        assert_eq!(u.redacted(), "rtsp://admin:***@cam:554/live");
        assert!(!format!("{u:?} {u}").contains("s3cr"));
        let u = RtspUrl::parse("rtsp://admin@cam/live").unwrap();
        assert_eq!(u.redacted(), "rtsp://admin@cam/live");
        // A password that fails to parse must not leak through the error either.
        let e = RtspUrl::parse("rtsp://admin:s3cr%zzt@cam/live").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("s3cr"));
    }
}
