//! WHEP (`POST /whep/{stream}`, `DELETE /whep/session/{id}`): gateway signaling sessions with
//! no WebSocket. The server speaks the SDK protocol to the gateway on the client's behalf and
//! turns the answer into the HTTP response.

use std::collections::HashMap;
use std::time::Instant;

use camgate_core::gateway::{Gateway, SessionId};
use camgate_core::signaling::StreamStatus;
use camgate_io::ConnId;
use serde_json::{json, Value};

use super::http::{percent_decode, Request, Response};
use super::{mask, Out};
use crate::access::{Access, Refusal};

struct Whep {
    /// The public id in `/whep/session/{id}`: random, so sessions can't be guessed.
    id: String,
    /// The HTTP request waiting for the answer (until it is sent).
    pending: Option<ConnId>,
    /// What the client asked for, for logs (a name, or a masked URL).
    shown: String,
}

/// The open WHEP sessions.
pub(super) struct Wheps {
    sessions: HashMap<SessionId, Whep>,
    ids: HashMap<String, SessionId>,
    next: u64,
    rng: ring::rand::SystemRandom,
    /// STUN/TURN servers for the clients, as `Link` headers of each answer.
    ice_servers: Vec<crate::ice::IceServerConfig>,
}

impl Wheps {
    pub(super) fn new(ice_servers: Vec<crate::ice::IceServerConfig>) -> Self {
        Self {
            ice_servers,
            sessions: HashMap::new(),
            ids: HashMap::new(),
            next: 0,
            rng: ring::rand::SystemRandom::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Starts a WHEP session for `POST /whep/{stream}`; `None` when the response waits for
    /// the gateway's answer.
    pub(super) fn offer(
        &mut self,
        conn: ConnId,
        stream: &str,
        req: &Request,
        access: &Access,
        now: Instant,
        gateway: &mut Gateway,
    ) -> Option<Response> {
        if !req.header_starts_with("content-type", "application/sdp") {
            return Some(Response::error(
                415,
                "a WHEP offer is Content-Type: application/sdp",
            ));
        }
        let Play { uri, shown, offer } = match Play::of(stream, req.body, access) {
            Ok(play) => play,
            Err(refusal) => return Some(refusal),
        };
        let mut raw = [0u8; 16];
        if ring::rand::SecureRandom::fill(&self.rng, &mut raw).is_err() {
            return Some(Response::error(500, "no randomness"));
        }
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let session = SessionId::Whep(self.next);
        self.next += 1;
        tracing::info!(session = %session, stream = %shown, "WHEP offer");
        let whep = Whep {
            id: id.clone(),
            pending: Some(conn),
            shown,
        };
        self.sessions.insert(session, whep);
        self.ids.insert(id.clone(), session);
        gateway.handle_session_opened(session, now);
        let hello = json!({"message": "connection", "data": [{"appKey": "whep",
            "authToken": access.token}]});
        gateway.handle_session_message(session, now, &hello.to_string());
        let play = json!({"message": "playStream", "data": [{"mediaSessionId": id,
            "name": uri, "published": false, "hasVideo": true, "hasAudio": true,
            "status": "PENDING", "sdp": offer}]});
        gateway.handle_session_message(session, now, &play.to_string());
        None
    }

    /// `DELETE /whep/session/{id}`.
    pub(super) fn delete(&mut self, id: &str, now: Instant, gateway: &mut Gateway) -> Response {
        let Some(session) = self.ids.get(id).copied() else {
            return Response::error(404, "no such WHEP session");
        };
        let stop = json!({"message": "stopStream", "data": [{"mediaSessionId": id}]});
        gateway.handle_session_message(session, now, &stop.to_string());
        self.end(session, now, gateway, "deleted by the client");
        Response::new(200, "text/plain", "")
    }

    /// The client of `conn` left: if it was still waiting for an answer, nothing will ever
    /// play.
    pub(super) fn client_left(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway) {
        let waiting = self
            .sessions
            .iter()
            .find(|(_, w)| w.pending == Some(conn))
            .map(|(s, _)| *s);
        if let Some(session) = waiting {
            self.end(session, now, gateway, "client left before the answer");
        }
    }

    /// The gateway closed a session.
    pub(super) fn closed_by_gateway(
        &mut self,
        session: SessionId,
        now: Instant,
        gateway: &mut Gateway,
        out: &mut Out,
    ) {
        if let Some(conn) = self
            .sessions
            .get_mut(&session)
            .and_then(|w| w.pending.take())
        {
            out.respond(conn, Response::error(504, "no answer from the gateway"));
        }
        self.end(session, now, gateway, "closed by the gateway");
    }

    /// Forgets a WHEP session and releases its viewer in the gateway.
    fn end(&mut self, session: SessionId, now: Instant, gateway: &mut Gateway, why: &str) {
        if let Some(w) = self.sessions.remove(&session) {
            self.ids.remove(&w.id);
            tracing::info!(session = %session, stream = %w.shown, "WHEP session ended: {why}");
            gateway.handle_session_closed(session, now);
        }
    }

    /// The gateway's signaling for a WHEP session: the answer, failures, pings.
    pub(super) fn message(
        &mut self,
        session: SessionId,
        text: &str,
        now: Instant,
        gateway: &mut Gateway,
        out: &mut Out,
    ) {
        let Some(whep) = self.sessions.get_mut(&session) else {
            return;
        };
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let data = &value["data"];
        match value["message"].as_str().unwrap_or("") {
            "setRemoteSDP" => {
                let sdp = data[1].as_str().unwrap_or("").to_owned();
                if let Some(conn) = whep.pending.take() {
                    let location = format!("/whep/session/{}", whep.id);
                    let mut r =
                        Response::new(201, "application/sdp", sdp).header("Location", location);
                    // WHEP: the client may use these servers (TURN credentials minted for
                    // this session, named after it).
                    let name = format!("camgate-{}", &whep.id[..12]);
                    let servers =
                        crate::ice::mint(&self.ice_servers, &name, crate::ice::unix_now());
                    for link in crate::ice::link_headers(&servers) {
                        r = r.header("Link", link);
                    }
                    out.respond(conn, r);
                }
            }
            "notifyStreamStatusEvent" => {
                let status = data[0]["status"].as_str().unwrap_or("");
                if status != StreamStatus::Failed.as_str()
                    && status != StreamStatus::Stopped.as_str()
                {
                    return;
                }
                let info = data[0]["info"].as_str().unwrap_or(status).to_owned();
                if let Some(conn) = whep.pending.take() {
                    out.respond(conn, Response::error(failure_status(&info), &info));
                }
                self.end(session, now, gateway, &info);
            }
            "ping" => {
                // Nobody is behind this session to answer; the viewer's own ICE consent
                // checks tell when the player is gone.
                gateway.handle_session_message(session, now, r#"{"message":"pong","data":[null]}"#);
            }
            _ => {}
        }
    }
}

/// What a WHEP offer asks to play.
struct Play<'a> {
    /// The camera URL for the gateway.
    uri: String,
    /// How logs show it: a name, or the masked URL.
    shown: String,
    offer: &'a str,
}

impl<'a> Play<'a> {
    /// The play asked for by an offer to `/whep/{stream}`, or the answer refusing it.
    fn of(stream: &str, offer: &'a [u8], access: &Access) -> Result<Self, Response> {
        let requested = percent_decode(stream);
        if requested.is_empty() {
            return Err(Response::error(404, "no stream in the WHEP URL"));
        }
        let Ok(offer) = std::str::from_utf8(offer) else {
            return Err(Response::error(400, "the offer is not UTF-8"));
        };
        let named = access.is_named(&requested);
        if !named && !requested.contains("://") {
            return Err(Response::error(404, "no such stream"));
        }
        let shown = if named {
            requested.clone()
        } else {
            mask(&requested)
        };
        match access.resolve(&requested) {
            Ok(uri) => Ok(Play { uri, shown, offer }),
            Err(Refusal::Restricted) => {
                tracing::info!(stream = %shown, "WHEP play refused: host not in allowed_hosts");
                Err(Response::error(403, "Restricted access"))
            }
        }
    }
}

/// The HTTP status a failed WHEP play is answered with.
fn failure_status(info: &str) -> u16 {
    if info.starts_with("Bad URI") {
        400
    } else if info == "Restricted access" {
        403
    } else if info.contains("not found") || info.starts_with("404") {
        404
    } else if info.starts_with("No common codecs: camera sends")
        || info.starts_with("No common codecs: the browser")
    {
        // The client's offer lacks the camera's codec: its fault, and the reason says what to do.
        406
    } else {
        // The camera failed (unreachable, 401 from it, no H.264 or VP8 video): our upstream's fault.
        502
    }
}

#[cfg(test)]
mod tests {
    use camgate_core::viewer::ViewerError;

    use super::failure_status;

    #[test]
    fn an_offer_without_the_cameras_codec_is_not_acceptable() {
        let no_h265 = ViewerError::NoH265 {
            camera: "H.265 Main".into(),
            browser: "H264, VP8".into(),
        };
        assert_eq!(failure_status(&no_h265.to_string()), 406);
        assert_eq!(failure_status(&ViewerError::NoCommonCodec.to_string()), 406);
        // The camera's fault stays the upstream's.
        let camera = "No common codecs: the camera sends neither H.264, H.265 nor VP8 video";
        assert_eq!(failure_status(camera), 502);
    }
}
