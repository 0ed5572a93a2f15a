//! The demo server's request side: parsing requests and Transport headers, status reasons.

use super::*;

// ---------------------------------------------------------------------------------------
// Request parsing
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) uri: String,
    pub(super) message: Message,
}

impl Request {
    pub(super) fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.message.header(name)
    }

    /// Session id without the `;timeout=` parameter.
    pub(super) fn session(&self) -> Option<&str> {
        self.header("Session")
            .map(|v| v.split(';').next().unwrap_or("").trim())
    }
}

/// A request, or the status to answer before closing (we cannot resynchronise).
pub(super) type Parsed = Result<Request, u16>;

/// Feeds bytes read from the client to core's RTSP framer and appends what they complete to
/// `out`: requests, or one error status after which nothing more is read. Interleaved frames
/// (the client's RTCP) are dropped.
pub(super) fn parse(framer: &mut Framer, data: &[u8], out: &mut Vec<Parsed>) {
    let res = framer.push(data, &mut |frame| {
        let Frame::Message(message) = frame else {
            return true;
        };
        let parsed = match &message.start {
            // A response sent to a server.
            StartLine::Response { .. } => Err(400),
            StartLine::Request { .. } if message.body.len() > MAX_BODY => Err(413),
            StartLine::Request { method, uri } => Ok(Request {
                method: method.clone(),
                uri: uri.clone(),
                message,
            }),
        };
        let ok = parsed.is_ok();
        out.push(parsed);
        ok
    });
    if res.is_err() {
        out.push(Err(400));
    }
}

/// Path of an RTSP URI without scheme, host, query and surrounding slashes.
pub(super) fn uri_path(uri: &str) -> &str {
    let rest = match uri.find("://") {
        Some(i) => uri[i + 3..].find('/').map_or("", |j| &uri[i + 3 + j..]),
        None => uri,
    };
    rest.split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_matches('/')
}

/// `uri` without query, if it is an absolute rtsp URL (to echo the client's own spelling).
pub(super) fn absolute_base(uri: &str) -> Option<&str> {
    let lower = uri.get(..7)?.to_ascii_lowercase();
    (lower == "rtsp://").then(|| {
        uri.split(['?', '#'])
            .next()
            .unwrap_or(uri)
            .trim_end_matches('/')
    })
}

#[derive(Debug, PartialEq)]
pub(super) enum TransportReq {
    Tcp(u8, u8),
    Udp(u16, u16),
}

/// Parses one alternative of a `Transport` header; None for what we cannot serve.
pub(super) fn parse_transport(spec: &str) -> Option<TransportReq> {
    let mut parts = spec.trim().split(';');
    let tcp = match parts.next()?.trim().to_ascii_uppercase().as_str() {
        "RTP/AVP/TCP" => true,
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        _ => return None,
    };
    let (mut interleaved, mut client_port) = (None, None);
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "multicast" => return None,
            "interleaved" => interleaved = Some(parse_pair(v)?),
            "client_port" => client_port = Some(parse_pair(v)?),
            "mode" if !v.eq_ignore_ascii_case("play") => return None,
            _ => {}
        }
    }
    if tcp {
        // Channels are optional in the request (the server may pick); echo them when given.
        let (a, b) = interleaved.unwrap_or((0, 1));
        Some(TransportReq::Tcp(
            u8::try_from(a).ok()?,
            u8::try_from(b).ok()?,
        ))
    } else {
        let (a, b) = client_port?;
        (a != 0).then_some(TransportReq::Udp(a, b))
    }
}

pub(super) fn parse_pair(v: &str) -> Option<(u16, u16)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: u16 = v.parse().ok()?;
            Some((a, a.checked_add(1)?))
        }
    }
}

pub(super) fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "Error",
    }
}

// ---------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------
