//! HTTP/1.1 on the web connections: gathering a request from the bytes as they come, parsing it
//! with httparse, and writing answers. One request per connection: every answer closes it
//! (or upgrades it to a WebSocket).

use serde_json::{json, Value};

/// Largest HTTP request head we accept; bigger ones are answered 431 and closed.
pub(super) const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Headers a request may carry; more is a 400.
const MAX_HEADERS: usize = 32;

/// The bytes of a request still arriving.
#[derive(Default)]
pub(super) struct RequestBuffer {
    /// Head and body so far.
    pub(super) bytes: Vec<u8>,
    /// Once the head is complete: the length head + body must reach before the request
    /// is parsed again.
    pub(super) wait_for: Option<usize>,
}

impl RequestBuffer {
    /// Adds bytes from the client; true when parsing again can change the answer.
    pub(super) fn push(&mut self, data: &[u8]) -> bool {
        self.bytes.extend_from_slice(data);
        // httparse skips empty lines before a request; drop them here so that a stream of
        // newlines is not rescanned on every read.
        let blank = self
            .bytes
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        self.bytes.drain(..blank);
        // Parse again only when a line ended (the head is still incomplete), the body is all
        // there, or the head is over its limit. Parsing the whole buffer on every read let a
        // client trickling one byte per segment cost the loop O(n²): ~1 s of CPU per 16 KiB
        // of head, and a 16 KiB head times a 64 KiB body when trickling the body (found by
        // the slow `http_request` fuzz inputs; test `trickled_requests_are_answered`).
        match self.wait_for {
            Some(total) => self.bytes.len() >= total,
            None => data.contains(&b'\n') || self.bytes.len() > MAX_REQUEST_HEAD,
        }
    }
}

/// A complete request, borrowed from its buffer.
pub(super) struct Request<'b> {
    pub(super) method: &'b str,
    /// The path without its query string.
    pub(super) route: &'b str,
    headers: [httparse::Header<'b>; MAX_HEADERS],
    header_count: usize,
    pub(super) body: &'b [u8],
    /// Bytes after the body: WebSocket frames sent along with an upgrade request.
    pub(super) rest: &'b [u8],
}

impl<'b> Request<'b> {
    pub(super) fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers[..self.header_count]
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Whether a header's value starts with `prefix`, ASCII case aside.
    pub(super) fn header_starts_with(&self, name: &str, prefix: &str) -> bool {
        self.header(name).is_some_and(|v| {
            v.get(..prefix.len())
                .is_some_and(|v| v.eq_ignore_ascii_case(prefix.as_bytes()))
        })
    }
}

/// Why the bytes so far are no request to answer.
pub(super) enum NoRequest {
    /// Not all there yet: parse again once the buffer holds this many bytes (`None`: at the
    /// next line end).
    Incomplete(Option<usize>),
    /// Malformed or too large: answer this and close.
    Refused(Response),
}

/// Parses a request from the start of `buf`, with a body of at most `max_body` bytes.
pub(super) fn parse(buf: &[u8], max_body: usize) -> Result<Request<'_>, NoRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_REQUEST_HEAD => {
            return Err(NoRequest::Incomplete(None));
        }
        Ok(httparse::Status::Partial) => {
            let r = Response::new(431, "text/plain", "request header too large");
            return Err(NoRequest::Refused(r));
        }
        Err(e) => {
            let r = Response::new(400, "text/plain", format!("bad request: {e}"));
            return Err(NoRequest::Refused(r));
        }
    };
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("/");
    let header_count = req.headers.len();
    let mut req = Request {
        method,
        route: path.split_once('?').map_or(path, |(route, _query)| route),
        headers,
        header_count,
        body: &[],
        rest: &[],
    };
    let content_length = req
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if content_length > max_body {
        return Err(NoRequest::Refused(Response::error(
            413,
            "request body too large",
        )));
    }
    let end = head_len + content_length;
    if buf.len() < end {
        return Err(NoRequest::Incomplete(Some(end))); // the body is still arriving
    }
    req.body = &buf[head_len..end];
    req.rest = &buf[end..];
    Ok(req)
}

/// An HTTP answer.
pub(super) struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// The one origin allowed to read this answer (`cors_origins`); `None`: any (`*`).
    allow_origin: Option<String>,
}

impl Response {
    pub(super) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            allow_origin: None,
        }
    }

    pub(super) fn json(status: u16, value: &Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    /// An API error: `{"status", "error"}` (docs/API.md).
    pub(super) fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({"status": status, "error": message}))
    }

    /// The answer to a WebSocket upgrade request: the connection stays open.
    pub(super) fn switching_protocols(accept: String) -> Self {
        Self::new(101, "", "")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Accept", accept)
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Only `origin` may read this answer (instead of any).
    pub(super) fn allow_origin(mut self, origin: &str) -> Self {
        self.allow_origin = Some(origin.to_owned());
        self
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        if self.status != 101 {
            // CORS: WHEP players and dashboards live on other origins; the bearer token is
            // never an ambient credential, so `*` gives nothing away. With `cors_origins` set,
            // only the allowed origin (other origins are refused before anything is done).
            let origin = match &self.allow_origin {
                Some(origin) => format!("{origin}\r\nVary: Origin"),
                None => "*".to_owned(),
            };
            head.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
                 Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Expose-Headers: Location, Link\r\n\
                 Connection: close\r\n",
                self.content_type,
                self.body.len()
            ));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// Decodes `%XX` escapes of a URL path segment (a stream name or an rtsp:// URL).
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("rtsp%3A%2F%2Fu%3Ap%40cam%2Fx"),
            "rtsp://u:p@cam/x"
        );
        assert_eq!(percent_decode("lobby"), "lobby");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%41"), "aA");
    }

    #[test]
    fn upgrade_answer_keeps_the_connection_open() {
        let text =
            String::from_utf8(Response::switching_protocols("abc=".into()).into_bytes()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: abc=\r\n\r\n"
        );
    }

    #[test]
    fn request_with_body_and_trailing_bytes() {
        let buf = b"POST /a?x=1 HTTP/1.1\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhiREST";
        let req = parse(buf, 10).ok().expect("a complete request");
        assert_eq!((req.method, req.route), ("POST", "/a"));
        assert_eq!((req.body, req.rest), (&b"hi"[..], &b"REST"[..]));
        assert_eq!(req.header("x-a"), Some(&b"b"[..]));
        assert!(matches!(
            parse(&buf[..buf.len() - 5], 10),
            Err(NoRequest::Incomplete(Some(53)))
        ));
        assert!(matches!(parse(buf, 1), Err(NoRequest::Refused(_))));
    }
}
