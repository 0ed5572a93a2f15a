//! Which handler answers an HTTP request: the one routing table, with the CORS preflight and
//! the bearer token handled here before any handler runs. (The CORS headers every answer
//! carries are written by [`Response`].)

use std::time::Instant;

use camgate_core::gateway::Gateway;
use camgate_io::ConnId;

use super::http::{percent_decode, Request, Response};
use super::{metrics, pages, rest, State, Web};
use crate::access::{bearer, Denial, OriginCheck};

/// The routes that take the bearer token (when one is configured). API errors are JSON.
fn is_api(route: &str) -> bool {
    route.starts_with("/rest-api/")
        || route.starts_with("/whep/")
        || route == "/api/streams"
        || route == "/metrics"
}

impl Web {
    /// Answers a request (other than a WebSocket upgrade); `None` when the answer waits for
    /// the gateway (a WHEP offer).
    pub(super) fn route(
        &mut self,
        conn: ConnId,
        req: &Request,
        now: Instant,
        gateway: &mut Gateway,
    ) -> Option<Response> {
        match self.check_origin(conn, req) {
            Err(refused) => Some(refused),
            Ok(None) => self.answer(conn, req, now, gateway),
            Ok(Some(origin)) => self
                .answer(conn, req, now, gateway)
                .map(|r| r.allow_origin(origin)),
        }
    }

    /// `cors_origins`: a page of another site gets 403 before anything is done; `Some`: the
    /// origin the answer is for (`None`: any origin may read it).
    pub(super) fn check_origin<'r>(
        &self,
        conn: ConnId,
        req: &Request<'r>,
    ) -> Result<Option<&'r str>, Response> {
        let text = |name| req.header(name).and_then(|v| std::str::from_utf8(v).ok());
        let origin = text("origin");
        match self.settings.access.check_origin(origin, text("host")) {
            OriginCheck::Any => Ok(None),
            OriginCheck::Allowed => Ok(origin),
            OriginCheck::Refused => {
                tracing::info!(conn = conn.0, route = %req.route, origin = %origin.unwrap_or(""), "request refused: origin not in cors_origins");
                Err(Response::error(403, "origin not allowed"))
            }
        }
    }

    fn answer(
        &mut self,
        conn: ConnId,
        req: &Request,
        now: Instant,
        gateway: &mut Gateway,
    ) -> Option<Response> {
        let (method, route) = (req.method, req.route);
        if method == "OPTIONS" {
            return Some(preflight());
        }
        let access = &self.settings.access;
        let is_api = is_api(route);
        let peer = self.conns.get(&conn).map(|c| c.peer);
        if let Some(peer) = peer.filter(|_| is_api && access.token.is_some()) {
            if self.throttle.blocked(peer, now) {
                let r = Response::error(429, "too many failed authentications: try again later")
                    .header(
                        "Retry-After",
                        crate::auth_throttle::BLOCK.as_secs().to_string(),
                    );
                return Some(r);
            }
        }
        if is_api {
            if let Err(denial) = self.authorize(req) {
                if let Some(peer) = peer.filter(|_| denial.unauthenticated()) {
                    self.throttle.failed(peer, now);
                }
                let reason = denial.reason();
                let route = shown_route(route);
                tracing::info!(conn = conn.0, %route, reason, "API call refused");
                let mut r = Response::error(denial.status(), reason);
                if denial.status() == 401 {
                    r = r.header("WWW-Authenticate", "Bearer");
                }
                return Some(r);
            }
        }
        let access = &self.settings.access;
        let r = match (method, route) {
            ("GET", "/api/streams") => rest::streams(gateway, access),
            ("GET", "/metrics") => {
                let counts = metrics::WebCounts {
                    sessions: self.signaling_sessions(),
                    auth_failures: self.throttle.failures,
                    auth_refused: self.throttle.refused,
                };
                let name_of = |masked: &str| access.name_of(masked).map(str::to_owned);
                let (streams, stats) = (gateway.streams(), gateway.stats());
                let text = metrics::render(&streams, &stats, counts, &name_of);
                Response::new(200, metrics::CONTENT_TYPE, text)
            }
            (_, route) if route.starts_with("/rest-api/") => {
                rest::handle(method, route, req.body, gateway, access, now)
            }
            ("DELETE", route) if route.starts_with("/whep/session/") => {
                let id = &route["/whep/session/".len()..];
                self.wheps.delete(id, now, gateway)
            }
            ("POST", route)
                if route.starts_with("/whep/") && !route.starts_with("/whep/session/") =>
            {
                let stream = &route["/whep/".len()..];
                let r = self.wheps.offer(conn, stream, req, access, now, gateway);
                if r.is_none() {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.state = State::WhepWait;
                    }
                }
                return r;
            }
            (_, route) if route.starts_with("/whep/") => {
                // Trickle ICE (PATCH) is optional in WHEP; our answer has every candidate.
                Response::error(405, "method not allowed").header("Allow", "POST, DELETE")
            }
            // A wrong method on an API answers JSON too: `POST /api/streams` and
            // `POST /metrics` got text/plain (found by the `rest_body` fuzz target).
            _ if is_api => Response::error(405, "method not allowed"),
            ("GET", route) => pages::get(
                route,
                &self.settings.default_url,
                &self.settings.ice_servers,
            )
            .unwrap_or_else(|| Response::new(404, "text/plain", "not found")),
            _ => Response::new(405, "text/plain", "method not allowed"),
        };
        Some(r)
    }

    /// Whether the request's bearer token allows its API call: a WHEP play needs the admin
    /// token or a viewer token for that stream, a WHEP session's end any of our tokens, the
    /// rest (REST, /metrics, /api/streams) the admin token.
    fn authorize(&self, req: &Request) -> Result<(), Denial> {
        let access = &self.settings.access;
        let presented = bearer(req.header("authorization"));
        let unix = crate::ice::unix_now(); // tokens expire on the wall clock
        let route = req.route;
        if let Some(rest) = route.strip_prefix("/whep/") {
            if req.method == "POST" && !rest.starts_with("session/") {
                return access
                    .authorize_play(presented, &percent_decode(rest), unix)
                    .map(|_| ());
            }
            return access.authorize_whep_delete(presented, unix);
        }
        access.authorize_admin(presented, unix)
    }

    /// Open signaling sessions, WebSocket and WHEP, for `/metrics`.
    fn signaling_sessions(&self) -> usize {
        let websockets = self
            .conns
            .values()
            .filter(|c| matches!(c.state, State::Ws(_)));
        websockets.count() + self.wheps.len()
    }
}

/// A route for logs: a WHEP stream given as a camera URL has its password masked.
fn shown_route(route: &str) -> String {
    match route.strip_prefix("/whep/") {
        Some(stream) if !stream.starts_with("session/") => {
            let stream = percent_decode(stream);
            if stream.contains("://") {
                format!("/whep/{}", super::mask(&stream))
            } else {
                format!("/whep/{stream}")
            }
        }
        Some(_) => "/whep/session/…".into(), // the id is the session's capability
        None => route.to_owned(),
    }
}

/// The answer to a CORS preflight: given without the token, which the real request must carry.
fn preflight() -> Response {
    Response::new(204, "text/plain", "")
        .header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        .header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type",
        )
        .header("Access-Control-Max-Age", "600")
}
