//! WebSocket signaling connections: the upgrade, tungstenite's framing over an in-memory
//! buffer (so tungstenite never touches a socket and never blocks the loop), and the glue
//! between a browser's messages and its gateway signaling session: the `authToken` check and
//! stream names in place of camera URLs.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::time::Instant;

use camgate_core::gateway::Gateway;
use camgate_core::signaling::{self, StreamStatus};
use camgate_io::ConnId;
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tungstenite::Message;

use super::http::{Request, Response};
use super::{mask, Out};
use crate::access::{Access, Refusal};
use crate::auth_throttle::AuthThrottle;

/// Bytes tungstenite reads at a time into each WebSocket's buffer (allocated per connection).
const WS_READ_BUFFER: usize = 4096;

/// Input buffer capacity a connection keeps once it has read everything.
const KEEP_INPUT: usize = 16 * 1024;

/// Bytes in from the socket, bytes out to it: the "stream" tungstenite works on.
#[derive(Default)]
struct MemStream {
    input: Vec<u8>,
    read_pos: usize,
    output: Vec<u8>,
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = &self.input[self.read_pos..];
        if available.is_empty() {
            self.input.clear();
            self.read_pos = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.read_pos += n;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A browser's signaling connection.
pub(super) struct WsConn {
    ws: WebSocket<MemStream>,
    /// Who the `connection` message said this is (`None` until it came).
    auth: Option<SessionAuth>,
    /// mediaSessionId → the stream name the browser asked for, for streams played by name:
    /// statuses going back carry this name instead of the camera URL.
    names: HashMap<String, String>,
}

impl WsConn {
    /// Accepts an upgrade request: the connection and its 101 answer, or the refusal.
    pub(super) fn upgrade(
        req: &Request,
        max_message: usize,
        access: &Access,
    ) -> Result<(WsConn, Response), Response> {
        let Some(key) = req.header("sec-websocket-key") else {
            return Err(Response::new(
                400,
                "text/plain",
                "missing Sec-WebSocket-Key",
            ));
        };
        let accept = tungstenite::handshake::derive_accept_key(key);
        // tungstenite allocates its read buffer up front, 128 KiB by default: that was a
        // fifth of a viewer's memory. Signaling messages are a few KiB (an SDP offer is the
        // largest); a longer one takes a few more reads from memory.
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let ws = WebSocket::from_raw_socket(MemStream::default(), Role::Server, Some(config));
        let conn = WsConn {
            ws,
            // Without an admin token there is no access control (nor viewer tokens).
            auth: access.token.is_none().then_some(SessionAuth::Admin),
            names: HashMap::new(),
        };
        Ok((conn, Response::switching_protocols(accept)))
    }

    /// Bytes from the browser: decodes its messages and hands them on.
    pub(super) fn received(
        &mut self,
        conn: ConnId,
        data: &[u8],
        mut auth: Auth<'_>,
        now: Instant,
        gateway: &mut Gateway,
        out: &mut Out,
    ) {
        self.ws.get_mut().input.extend_from_slice(data);
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => match inbound(self, &mut auth, now, conn, text.as_str())
                {
                    Inbound::Forward(text) => {
                        gateway.handle_session_message(conn.session(), now, &text)
                    }
                    Inbound::Reply(text) => {
                        let _ = self.ws.send(Message::text(text));
                    }
                    Inbound::Refuse => {
                        // The SDK fails the session when the socket closes before
                        // `getUserData`; 1008 says why to anyone looking.
                        let _ = self.ws.close(Some(CloseFrame {
                            code: CloseCode::Policy,
                            reason: "Unauthorized".into(),
                        }));
                        break self.flush_and_close(conn, out);
                    }
                },
                Ok(Message::Close(_)) => break self.flush_and_close(conn, out),
                Ok(_) => {} // binary, ping, pong: tungstenite answers pings itself
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    break self.flush(conn, out);
                }
                Err(e) => {
                    tracing::info!(conn = conn.0, "websocket error: {e}");
                    break self.flush_and_close(conn, out);
                }
            }
        }
        let input = &mut self.ws.get_mut().input;
        if input.is_empty() && input.capacity() > KEEP_INPUT {
            // A burst (a long message, many at once) is read: its buffer goes back.
            *input = Vec::new();
        }
    }

    /// A message from the gateway to the browser.
    pub(super) fn send(&mut self, conn: ConnId, text: &str, out: &mut Out) {
        let renamed = outbound(self, text);
        let text = renamed.as_deref().unwrap_or(text);
        if let Err(e) = self.ws.send(Message::text(text)) {
            tracing::info!(conn = conn.0, "websocket send failed: {e}");
            out.close(conn);
        }
        self.take_output(conn, out);
    }

    fn flush(&mut self, conn: ConnId, out: &mut Out) {
        let _ = self.ws.flush();
        self.take_output(conn, out);
    }

    fn flush_and_close(&mut self, conn: ConnId, out: &mut Out) {
        self.flush(conn, out);
        out.close(conn);
    }

    fn take_output(&mut self, conn: ConnId, out: &mut Out) {
        let buf = &mut self.ws.get_mut().output;
        if !buf.is_empty() {
            out.write(conn, std::mem::take(buf));
        }
    }
}

/// A signaling session's credential, from its `connection` message.
enum SessionAuth {
    /// The admin token, or no access control: plays anything.
    Admin,
    /// Viewer tokens are on and this is not the admin: each play is checked against the
    /// `playStream`'s `custom.token`, else this one (`authToken` or `custom.token` of the
    /// `connection`; unverified until a play).
    Viewer(Option<String>),
}

/// What to do with a signaling message from a browser.
enum Inbound {
    Forward(String),
    /// Answer the browser directly; the gateway never sees the message.
    Reply(String),
    /// Close the session (bad token).
    Refuse,
}

/// Applies access control and stream names to a browser's message before the gateway sees it.
/// Who may open a session: the token, and the guessing throttle for this client's address.
pub(super) struct Auth<'a> {
    pub(super) access: &'a Access,
    pub(super) throttle: &'a mut AuthThrottle,
    pub(super) peer: IpAddr,
}

fn inbound(
    wsc: &mut WsConn,
    auth: &mut Auth<'_>,
    now: Instant,
    conn: ConnId,
    text: &str,
) -> Inbound {
    let access = auth.access;
    // Only `connection` and `playStream` concern us; everything else passes untouched (once
    // the session is authenticated). A name written with JSON escapes (`play\u0053tream`)
    // is still that message to the gateway's parser: such text is parsed here too.
    let interesting =
        text.contains("\"connection\"") || text.contains("\"playStream\"") || text.contains('\\');
    let mut value = match interesting.then(|| serde_json::from_str::<Value>(text)) {
        Some(Ok(v)) => v,
        _ if wsc.auth.is_some() => return Inbound::Forward(text.to_owned()),
        _ => return Inbound::Refuse,
    };
    let message = value["message"].as_str().unwrap_or("").to_owned();
    let Some(session) = &wsc.auth else {
        // A client blocked for guessing is refused unread (logged when it was blocked).
        if auth.throttle.blocked(auth.peer, now) {
            return Inbound::Refuse;
        }
        if message != "connection" {
            auth.throttle.failed(auth.peer, now);
            tracing::info!(
                conn = conn.0,
                "signaling session refused: no connection message"
            );
            return Inbound::Refuse;
        }
        let first = &value["data"][0];
        let auth_token = first["authToken"].as_str().filter(|t| !t.is_empty());
        let custom_token = first["custom"]["token"].as_str().filter(|t| !t.is_empty());
        if access.token.is_none() || access.token_ok(auth_token) || access.token_ok(custom_token) {
            wsc.auth = Some(SessionAuth::Admin);
            return Inbound::Forward(text.to_owned());
        }
        if access.viewer_tokens() {
            // Each play is judged on its own, with a reason the viewer sees (FAILED).
            let token = custom_token.or(auth_token).map(str::to_owned);
            wsc.auth = Some(SessionAuth::Viewer(token));
            return Inbound::Forward(text.to_owned());
        }
        auth.throttle.failed(auth.peer, now);
        tracing::info!(
            conn = conn.0,
            "signaling session refused: missing or wrong authToken"
        );
        return Inbound::Refuse;
    };
    if message != "playStream" {
        return Inbound::Forward(text.to_owned());
    }
    // `get_mut`, not `value["data"][0]`: serde_json's `IndexMut` panics on a missing index, and
    // `{"message":"playStream","data":[]}` took the whole server down (found reviewing the
    // `websocket` fuzz target; test `ws_play_stream_without_data`).
    let Some(first) = value.get_mut("data").and_then(|d| d.get_mut(0)) else {
        return Inbound::Forward(text.to_owned()); // malformed: the gateway says why
    };
    let (Some(name), Some(msid)) = (first["name"].as_str(), first["mediaSessionId"].as_str())
    else {
        return Inbound::Forward(text.to_owned()); // malformed: the gateway says why
    };
    if let SessionAuth::Viewer(session_token) = session {
        let token = first["custom"]["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .or(session_token.as_deref());
        let shown = if name.contains("://") {
            mask(name)
        } else {
            name.to_owned()
        };
        let refused = if auth.throttle.blocked(auth.peer, now) {
            Some("Too many failed authentications: try again later")
        } else {
            match access.authorize_play(token, name, crate::ice::unix_now()) {
                Ok(_) => None,
                Err(denial) => {
                    if denial.unauthenticated() {
                        auth.throttle.failed(auth.peer, now);
                    }
                    let reason = denial.reason();
                    tracing::info!(conn = conn.0, stream = %shown, reason, "play refused");
                    Some(reason)
                }
            }
        };
        if let Some(reason) = refused {
            return Inbound::Reply(signaling::stream_status(
                msid,
                &shown,
                StreamStatus::Failed,
                Some(reason),
            ));
        }
    }
    let (name, msid) = (name.to_owned(), msid.to_owned());
    match access.resolve(&name) {
        Ok(uri) if uri == name => Inbound::Forward(text.to_owned()),
        Ok(uri) => {
            tracing::info!(conn = conn.0, stream = %name, "playing a named stream");
            wsc.names.insert(msid, name);
            first["name"] = Value::from(uri);
            Inbound::Forward(value.to_string())
        }
        Err(Refusal::Restricted) => {
            tracing::info!(conn = conn.0, url = %mask(&name), "play refused: host not in allowed_hosts");
            Inbound::Reply(signaling::stream_status(
                &msid,
                &mask(&name),
                StreamStatus::Failed,
                Some("Restricted access"),
            ))
        }
    }
}

/// Statuses for a browser that played by name carry the name, never the camera URL.
fn outbound(wsc: &mut WsConn, text: &str) -> Option<String> {
    if wsc.names.is_empty() || !text.contains("notifyStreamStatusEvent") {
        return None;
    }
    let mut value: Value = serde_json::from_str(text).ok()?;
    let first = value.get_mut("data")?.get_mut(0)?; // no `IndexMut`: it panics (see `inbound`)
    let msid = first["mediaSessionId"].as_str()?;
    let name = wsc.names.get(msid)?.clone();
    let status = first["status"].as_str().unwrap_or("");
    if status == StreamStatus::Failed.as_str() || status == StreamStatus::Stopped.as_str() {
        wsc.names.remove(msid);
    }
    first["name"] = Value::from(name);
    Some(value.to_string())
}
