//! Viewer tokens: signed, expiring permissions to play one stream (or the streams under a prefix),
//! minted by camgate's admin REST call or offline by any backend holding the server's secret.
//!
//! Format (docs/SECURITY.md has Node and PHP snippets):
//!
//! ```text
//! v1.<base64url(payload)>.<base64url(HMAC-SHA256(secret, "v1." + base64url(payload)))>
//! payload = "<expiry, unix seconds>:<stream>"
//! ```
//!
//! base64url is RFC 4648 §5 without padding. `stream` is a stream name or camera URL as the
//! viewer asks for it, or a prefix ending in `*` (`*` alone: every stream). Pure logic: the
//! caller passes the time in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// Tokens longer than this are refused unread (a URL and a MAC fit many times over).
pub const MAX_TOKEN_LEN: usize = 4096;

const PREFIX: &str = "v1.";

/// Why a viewer token does not let its bearer play a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// No token at all.
    Missing,
    /// Not of the `v1.` format (or not base64url, or too long).
    Malformed,
    /// The MAC does not match: tampered, or signed with another secret.
    BadSignature,
    /// Signed, but its expiry has passed.
    Expired,
    /// Signed and current, but for another stream.
    WrongStream,
}

impl TokenError {
    /// The reason a viewer is shown (FAILED info, HTTP error body). Never the token itself.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "Unauthorized: missing token",
            Self::Malformed => "Unauthorized: malformed token",
            Self::BadSignature => "Unauthorized: bad token signature",
            Self::Expired => "Unauthorized: token expired",
            Self::WrongStream => "Forbidden: token is for another stream",
        }
    }

    /// A token that authenticates nobody (401), as opposed to a valid one that does not cover
    /// what is asked (403).
    pub fn is_unauthenticated(self) -> bool {
        !matches!(self, Self::WrongStream)
    }
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// A stream name or URL, or a prefix ending in `*`.
    pub stream: String,
    /// Unix seconds after which the token is refused.
    pub expires: u64,
}

impl Grant {
    /// Whether the grant covers `stream` (a name or URL, exactly as the viewer asks for it).
    pub fn covers(&self, stream: &str) -> bool {
        match self.stream.strip_suffix('*') {
            Some(prefix) => stream.starts_with(prefix),
            None => self.stream == stream,
        }
    }
}

/// The server's secret, ready to sign and verify.
pub struct ViewerTokenKey(hmac::Key);

impl std::fmt::Debug for ViewerTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewerTokenKey(..)") // never the secret
    }
}

impl ViewerTokenKey {
    /// A key from the configured secret's bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// A token for `stream` (name, URL, or prefix ending in `*`) valid until `expires` (unix s).
    pub fn mint(&self, stream: &str, expires: u64) -> String {
        let body = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(format!("{expires}:{stream}"))
        );
        let tag = hmac::sign(&self.0, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// What `token` grants, if it is well formed, correctly signed and not expired at
    /// `now_unix`. The MAC is checked (in constant time) before the payload is read.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Grant, TokenError> {
        if token.len() > MAX_TOKEN_LEN || !token.starts_with(PREFIX) {
            return Err(TokenError::Malformed);
        }
        let Some((body, mac)) = token.rsplit_once('.') else {
            return Err(TokenError::Malformed);
        };
        let encoded = &body[PREFIX.len().min(body.len())..];
        if body.len() < PREFIX.len()
            || encoded.is_empty()
            || mac.is_empty()
            || encoded.contains('.')
        {
            return Err(TokenError::Malformed);
        }
        let (Ok(payload), Ok(mac)) = (URL_SAFE_NO_PAD.decode(encoded), URL_SAFE_NO_PAD.decode(mac))
        else {
            return Err(TokenError::Malformed);
        };
        hmac::verify(&self.0, body.as_bytes(), &mac).map_err(|_| TokenError::BadSignature)?;
        // Signed by someone holding the secret: only a buggy minter gets past here with nonsense.
        let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let (expires, stream) = payload.split_once(':').ok_or(TokenError::Malformed)?;
        if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed);
        }
        let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if stream.is_empty() {
            return Err(TokenError::Malformed);
        }
        if now_unix >= expires {
            return Err(TokenError::Expired);
        }
        Ok(Grant {
            stream: stream.to_owned(),
            expires,
        })
    }

    /// Whether `token` (if any) lets its bearer play `stream` at `now_unix`.
    pub fn check(
        &self,
        token: Option<&str>,
        stream: &str,
        now_unix: u64,
    ) -> Result<Grant, TokenError> {
        let grant = self.verify(token.ok_or(TokenError::Missing)?, now_unix)?;
        if grant.covers(stream) {
            Ok(grant)
        } else {
            Err(TokenError::WrongStream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key() -> ViewerTokenKey {
        ViewerTokenKey::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_minted_token_plays_its_stream_until_it_expires() {
        let t = key().mint("lobby", NOW + 60);
        assert!(t.starts_with("v1."));
        let g = key().check(Some(&t), "lobby", NOW).unwrap();
        assert_eq!(g.expires, NOW + 60);
        assert_eq!(key().check(Some(&t), "lobby", NOW + 59), Ok(g));
        assert_eq!(
            key().check(Some(&t), "lobby", NOW + 60),
            Err(TokenError::Expired)
        );
        assert_eq!(
            key().check(Some(&t), "garage", NOW),
            Err(TokenError::WrongStream)
        );
        assert_eq!(
            key().check(Some(&t), "lobby2", NOW),
            Err(TokenError::WrongStream),
            "exact names are exact"
        );
        assert_eq!(key().check(None, "lobby", NOW), Err(TokenError::Missing));
    }

    #[test]
    fn prefixes_and_urls() {
        let t = key().mint("rtsp://10.0.0.7/*", NOW + 60);
        assert!(key().check(Some(&t), "rtsp://10.0.0.7/ch1", NOW).is_ok());
        assert_eq!(
            key().check(Some(&t), "rtsp://10.0.0.70/ch1", NOW),
            Err(TokenError::WrongStream)
        );
        let all = key().mint("*", NOW + 60);
        assert!(key().check(Some(&all), "anything", NOW).is_ok());
        // A colon in the stream stays in the stream.
        let t = key().mint("rtsp://u:p@cam:554/x", NOW + 60);
        assert!(key().check(Some(&t), "rtsp://u:p@cam:554/x", NOW).is_ok());
    }

    #[test]
    fn tampering_and_other_secrets_are_bad_signatures() {
        let t = key().mint("lobby", NOW + 60);
        let (body, mac) = t.rsplit_once('.').unwrap();
        // Another stream (or a later expiry) in the payload, with the old MAC.
        let forged = format!(
            "v1.{}.{mac}",
            URL_SAFE_NO_PAD.encode(format!("{}:garage", NOW + 60))
        );
        assert_eq!(key().verify(&forged, NOW), Err(TokenError::BadSignature));
        let mut flipped = mac.as_bytes().to_vec();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{body}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(key().verify(&flipped, NOW), Err(TokenError::BadSignature));
        let other = ViewerTokenKey::new(b"another secret, just as long....");
        assert_eq!(other.verify(&t, NOW), Err(TokenError::BadSignature));
        // A truncated MAC does not pass either.
        assert_eq!(
            key().verify(&t[..t.len() - 3], NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens() {
        let t = key().mint("lobby", NOW + 60);
        for bad in [
            "",
            "v1",
            "v1.",
            "v1..",
            "v2.abc.def",
            "guess-1234",
            "v1.abc",
            "v1.a.b.c",
            "v1.!!!.abc",
            &format!("{t}="),
            &format!("{t}{}", "A".repeat(MAX_TOKEN_LEN)),
        ] {
            assert_eq!(
                key().verify(bad, NOW),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
        // Signed nonsense (a buggy minter) is malformed, not a grant.
        for payload in [
            "lobby",
            ":lobby",
            "12x:lobby",
            "99999999999999999999999:x",
            "5:",
        ] {
            let body = format!("v1.{}", URL_SAFE_NO_PAD.encode(payload));
            let tag = hmac::sign(&key().0, body.as_bytes());
            let t = format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            assert_eq!(
                key().verify(&t, 0),
                Err(TokenError::Malformed),
                "{payload:?}"
            );
        }
    }

    /// The documented format, computed by hand: a backend following docs/SECURITY.md mints
    /// tokens camgate accepts (the Node snippet itself is run by server/tests/viewer_tokens.rs).
    #[test]
    fn the_documented_format() {
        let body = format!(
            "v1.{}",
            URL_SAFE_NO_PAD.encode(format!("{}:lobby", NOW + 5))
        );
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef"),
            body.as_bytes(),
        );
        let t = format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert_eq!(t, key().mint("lobby", NOW + 5));
        assert!(key().check(Some(&t), "lobby", NOW).is_ok());
    }

    #[test]
    fn reasons_are_distinct() {
        use TokenError::*;
        let all = [Missing, Malformed, BadSignature, Expired, WrongStream];
        let reasons: std::collections::BTreeSet<_> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        assert!(!WrongStream.is_unauthenticated());
        assert!(Expired.is_unauthenticated());
    }
}
