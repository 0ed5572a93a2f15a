//! Splits the RTSP TCP byte stream into messages and `$`-interleaved frames (RFC 2326 §10.12).
//!
//! Input may arrive split or merged at any byte. Complete interleaved frames inside the current
//! read are handed out as slices of that read (no copy); only an incomplete tail is buffered, and
//! a buffered frame is completed by copying exactly the bytes it still needs.

use std::fmt;

/// Largest header block accepted (start line + headers).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest message body accepted (an SDP is a few KiB; anything near this is not a camera).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Start line of an RTSP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `RTSP/1.0 200 OK`: the camera answering one of our requests.
    Response {
        /// The status code, e.g. 401 for a challenge.
        status: u16,
        /// The reason phrase, for logs.
        reason: String,
    },
    /// `DESCRIBE rtsp://… RTSP/1.0`: a request, as the demo and test cameras receive them and
    /// as a camera may send the client (OPTIONS pings, ANNOUNCE).
    Request {
        /// The method name as sent.
        method: String,
        /// The request-URI as sent.
        uri: String,
    },
}

/// One RTSP request or response with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or response line.
    pub start: StartLine,
    /// Headers in order, names as sent; repeated names are kept (e.g. `WWW-Authenticate`).
    pub headers: Vec<(String, String)>,
    /// `Content-Length` bytes after the headers (an SDP for DESCRIBE); empty without it.
    pub body: Vec<u8>,
}

impl Message {
    /// First header of that name (case-insensitive), value trimmed.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    /// All headers of that name, values trimmed.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// The CSeq, if present and numeric. Trailing whitespace is trimmed (Longse cameras).
    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq")?.parse().ok()
    }
}

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole request or response.
    Message(Message),
    /// A `$`-framed RTP or RTCP packet of RTSP over TCP.
    Interleaved {
        /// The channel from the `interleaved=` transport parameter: which track, RTP or RTCP.
        channel: u8,
        /// The packet, borrowed from the read when it was complete there.
        data: &'a [u8],
    },
}

/// The byte stream is not RTSP, or a message exceeds the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub String);

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stateful splitter; keep one per connection.
#[derive(Debug, Default)]
pub struct Framer {
    /// Incomplete frame or message carried over from earlier reads.
    buf: Vec<u8>,
}

enum Parsed<'a> {
    Frame(Frame<'a>, usize),
    /// Bytes to drop without a frame (stray CRLF).
    Skip(usize),
    Incomplete,
}

impl Framer {
    /// A framer for a new connection, with nothing buffered.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Feeds bytes read from TCP; calls `on_frame` for each complete frame, in order.
    ///
    /// `on_frame` returns `false` to stop (the rest of `data` is dropped, e.g. after a fatal
    /// error). After an `Err` the stream is unusable.
    pub fn push(
        &mut self,
        mut data: &[u8],
        on_frame: &mut dyn FnMut(Frame<'_>) -> bool,
    ) -> Result<(), FramingError> {
        // First finish what an earlier read left incomplete.
        while !self.buf.is_empty() {
            if data.is_empty() {
                return Ok(());
            }
            let old = self.buf.len();
            // For an interleaved frame we know its size once the 4-byte header is in: copy only
            // what it needs so the frames after it stay zero-copy. For a message, copy it all
            // and give back whatever follows the message.
            let take = match interleaved_len(&self.buf) {
                Some(total) => total.saturating_sub(old).min(data.len()),
                None if self.buf[0] == b'$' => (4 - old.min(4)).min(data.len()),
                None => data.len(),
            };
            self.buf.extend_from_slice(&data[..take]);
            let used = match parse_one(&self.buf)? {
                Parsed::Incomplete => {
                    data = &data[take..];
                    continue;
                }
                Parsed::Skip(n) => n,
                Parsed::Frame(frame, n) => {
                    if !on_frame(frame) {
                        self.buf.clear();
                        return Ok(());
                    }
                    n
                }
            };
            // `used` bytes of buf were consumed; buf held `old` bytes before this round.
            let from_data = used.saturating_sub(old);
            if used < old {
                // Only a Skip of leading CRLF can end inside the old bytes.
                self.buf.drain(..used);
                self.buf.truncate(self.buf.len() - take);
                continue;
            }
            self.buf.clear();
            data = data.get(from_data..).unwrap_or(&[]);
        }
        // Zero-copy path: frames straight out of `data`.
        loop {
            if data.is_empty() {
                return Ok(());
            }
            match parse_one(data)? {
                Parsed::Incomplete => {
                    self.buf.extend_from_slice(data);
                    return Ok(());
                }
                Parsed::Skip(n) => data = data.get(n..).unwrap_or(&[]),
                Parsed::Frame(frame, n) => {
                    if !on_frame(frame) {
                        return Ok(());
                    }
                    data = data.get(n..).unwrap_or(&[]);
                }
            }
        }
    }

    /// Bytes currently held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Appends `data` to `out` as an interleaved frame on `channel` (RFC 2326 §10.12): `$`, the
/// channel, the length as u16, the data. For servers and test cameras; `data` must fit in
/// 65535 bytes (an RTP or RTCP packet always does).
pub fn write_interleaved(out: &mut Vec<u8>, channel: u8, data: &[u8]) {
    debug_assert!(
        data.len() <= usize::from(u16::MAX),
        "interleaved frame too long"
    );
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Total size of the interleaved frame at the start of `b`, once its header is known.
fn interleaved_len(b: &[u8]) -> Option<usize> {
    match b {
        [b'$', _, hi, lo, ..] => Some(4 + usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

fn parse_one(b: &[u8]) -> Result<Parsed<'_>, FramingError> {
    let Some(&first) = b.first() else {
        return Ok(Parsed::Incomplete);
    };
    // Some servers end a message with an extra CRLF before `$` data (retina sees this too).
    if first == b'\r' || first == b'\n' {
        let n = b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
        return Ok(Parsed::Skip(n));
    }
    if first == b'$' {
        let Some(total) = interleaved_len(b) else {
            return Ok(Parsed::Incomplete);
        };
        return Ok(match b.get(4..total) {
            Some(data) => Parsed::Frame(
                Frame::Interleaved {
                    channel: b[1],
                    data,
                },
                total,
            ),
            None => Parsed::Incomplete,
        });
    }
    check_start(b)?;
    let Some(head_len) = find_header_end(b) else {
        if b.len() > MAX_HEADER_BYTES {
            return Err(FramingError(format!(
                "RTSP header block larger than {MAX_HEADER_BYTES} bytes"
            )));
        }
        return Ok(Parsed::Incomplete);
    };
    if head_len > MAX_HEADER_BYTES {
        return Err(FramingError(format!(
            "RTSP header block larger than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let head = String::from_utf8_lossy(&b[..head_len]);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = parse_start_line(lines.next().unwrap_or(""))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete header folding: continue the previous value.
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        // A header line without ':' is junk; skip it rather than lose the whole response.
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let body_len = match headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
    {
        None => 0,
        Some((_, v)) => v
            .parse::<usize>()
            .map_err(|_| FramingError("bad Content-Length".into()))?,
    };
    if body_len > MAX_BODY_BYTES {
        return Err(FramingError(format!(
            "RTSP body larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let total = head_len + body_len;
    let Some(body) = b.get(head_len..total) else {
        return Ok(Parsed::Incomplete);
    };
    Ok(Parsed::Frame(
        Frame::Message(Message {
            start,
            headers,
            body: body.to_vec(),
        }),
        total,
    ))
}

/// Rejects garbage as early as possible, even from a partial start line, so a stream that is
/// not RTSP fails at once instead of after 64 KiB.
fn check_start(b: &[u8]) -> Result<(), FramingError> {
    const RESP: &[u8] = b"RTSP/";
    let n = b.len().min(RESP.len());
    if b[..n] == RESP[..n] {
        return Ok(());
    }
    // A request from the server: METHOD SP ... with METHOD an upper-case token.
    let method_len = b
        .iter()
        .take_while(|c| c.is_ascii_uppercase() || **c == b'_' || **c == b'-')
        .count();
    match b.get(method_len) {
        None if method_len <= 32 => Ok(()),
        Some(b' ') if (1..=32).contains(&method_len) => Ok(()),
        _ => Err(FramingError("not an RTSP message".into())),
    }
}

/// Length of the header block including the empty line; accepts CRLF or bare LF endings.
fn find_header_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = b.get(i..)?.iter().position(|&c| c == b'\n') {
        let nl = i + p;
        match b.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if b.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

fn parse_start_line(line: &str) -> Result<StartLine, FramingError> {
    let bad = || FramingError("bad RTSP start line".into());
    if let Some(rest) = line.strip_prefix("RTSP/") {
        let mut parts = rest.splitn(3, ' ');
        let _version = parts.next();
        let status = parts
            .next()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .filter(|s| (100..=999).contains(s))
            .ok_or_else(bad)?;
        let reason = parts.next().unwrap_or("").trim().to_owned();
        return Ok(StartLine::Response { status, reason });
    }
    let mut parts = line.split(' ').filter(|s| !s.is_empty());
    let method = parts.next().ok_or_else(bad)?.to_owned();
    let uri = parts.next().ok_or_else(bad)?.to_owned();
    match parts.next() {
        Some(v) if v.starts_with("RTSP/") => Ok(StartLine::Request { method, uri }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Msg(Message),
        Data(u8, Vec<u8>),
    }

    fn feed(framer: &mut Framer, chunks: &[&[u8]]) -> Result<Vec<Owned>, FramingError> {
        let mut out = Vec::new();
        for c in chunks {
            framer.push(c, &mut |f| {
                out.push(match f {
                    Frame::Message(m) => Owned::Msg(m),
                    Frame::Interleaved { channel, data } => Owned::Data(channel, data.to_vec()),
                });
                true
            })?;
        }
        Ok(out)
    }

    #[test]
    fn written_interleaved_frames_frame_back() {
        let mut out = Vec::new();
        write_interleaved(&mut out, 3, b"rtcp");
        write_interleaved(&mut out, 0, &[7; 300]);
        assert_eq!(&out[..8], b"$\x03\x00\x04rtcp");
        let got = feed(&mut Framer::new(), &[&out]).unwrap();
        assert_eq!(
            got,
            vec![
                Owned::Data(3, b"rtcp".to_vec()),
                Owned::Data(0, vec![7; 300])
            ]
        );
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nhello");
        s.extend_from_slice(b"$\x00\x00\x03abc");
        s.extend_from_slice(b"\r\n"); // stray CRLF before `$`
        s.extend_from_slice(b"$\x01\x00\x00");
        s.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 3 \r\nContent-Length: 3\r\n\r\nv=0");
        s.extend_from_slice(b"$\x02\x01\x00");
        s.extend(std::iter::repeat_n(7u8, 256));
        s.extend_from_slice(b"$\x00\x00\x02xy");
        s
    }

    #[test]
    fn any_split_yields_the_same_frames() {
        let s = stream();
        let whole = feed(&mut Framer::new(), &[&s]).unwrap();
        assert_eq!(whole.len(), 6);
        match &whole[0] {
            Owned::Msg(m) => {
                assert_eq!(m.cseq(), Some(2));
                assert_eq!(m.body, b"hello");
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(whole[1], Owned::Data(0, b"abc".to_vec()));
        assert_eq!(whole[2], Owned::Data(1, vec![]));
        match &whole[3] {
            Owned::Msg(m) => assert_eq!((m.cseq(), m.body.as_slice()), (Some(3), &b"v=0"[..])),
            o => panic!("{o:?}"),
        }
        assert_eq!(whole[4], Owned::Data(2, vec![7; 256]));
        for i in 0..=s.len() {
            let mut f = Framer::new();
            let got = feed(&mut f, &[&s[..i], &s[i..]]).unwrap();
            assert_eq!(got, whole, "split at {i}");
            assert_eq!(f.buffered(), 0);
            // Three pieces, to cover a buffered tail completed across two later reads.
            for j in i..=s.len().min(i + 40) {
                let got = feed(&mut Framer::new(), &[&s[..i], &s[i..j], &s[j..]]).unwrap();
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(feed(&mut Framer::new(), &bytes).unwrap(), whole);
    }

    #[test]
    fn complete_frames_are_not_copied() {
        let s = stream();
        let mut f = Framer::new();
        let range = s.as_ptr_range();
        let mut n = 0;
        f.push(&s, &mut |fr| {
            if let Frame::Interleaved { data, .. } = fr {
                assert!(range.contains(&data.as_ptr()) || data.is_empty());
                n += 1;
            }
            true
        })
        .unwrap();
        assert_eq!(n, 4);
    }

    #[test]
    fn server_request_is_parsed() {
        let got = feed(
            &mut Framer::new(),
            &[b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n"],
        )
        .unwrap();
        match &got[0] {
            Owned::Msg(m) => {
                assert_eq!(
                    m.start,
                    StartLine::Request {
                        method: "OPTIONS".into(),
                        uri: "*".into()
                    }
                );
                assert_eq!(m.cseq(), Some(9));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn oversized_header_is_an_error() {
        let mut s = b"RTSP/1.0 200 OK\r\n".to_vec();
        while s.len() <= MAX_HEADER_BYTES {
            s.extend_from_slice(b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(feed(&mut Framer::new(), &[&s]).is_err());
        let chunks: Vec<&[u8]> = s.chunks(1000).collect();
        assert!(feed(&mut Framer::new(), &chunks).is_err());
        let big = b"RTSP/1.0 200 OK\r\nContent-Length: 2000000\r\n\r\n";
        assert!(feed(&mut Framer::new(), &[big]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for g in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"\x00\x01\x02",
            b"hello world",
            b"RTSP/1.0 abc OK\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n",
            b"GET\r\n\r\n",
        ] {
            assert!(feed(&mut Framer::new(), &[g]).is_err(), "{g:?}");
        }
        // Pseudo-random bytes, fed in odd chunks: any result is fine, panics are not.
        let mut x: u32 = 12345;
        let mut junk = Vec::new();
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let b = (x >> 16) as u8;
            junk.push(match b % 7 {
                0 => b'$',
                1 => b'\r',
                2 => b'\n',
                _ => b,
            });
        }
        for start in 0..50 {
            let mut f = Framer::new();
            for c in junk[start..].chunks(97) {
                if f.push(c, &mut |_| true).is_err() {
                    break;
                }
            }
        }
        let mut f = Framer::new();
        let _ = f.push(
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 0\r\n\r\n",
            &mut |_| true,
        );
        let _ = f.push(&junk, &mut |_| true);
    }

    #[test]
    fn stop_drops_the_rest() {
        let s = stream();
        let mut n = 0;
        Framer::new()
            .push(&s, &mut |_| {
                n += 1;
                false
            })
            .unwrap();
        assert_eq!(n, 1);
    }
}
