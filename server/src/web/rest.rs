//! The REST API of Flashphoner WCS for RTSP pulls, on the HTTP port:
//!
//! - `POST /rest-api/rtsp/startup {"uri": ...}`: 200 started, 409 already pulled, 400 bad body/URI;
//! - `GET|POST /rest-api/rtsp/find_all`: 200 `[{"uri", "status", "info"}]`, 404 when none;
//! - `POST /rest-api/rtsp/find {"uri"}`: like find_all, filtered;
//! - `POST /rest-api/rtsp/terminate {"uri": ...}`: 200 stopped, 404 unknown.
//!
//! Returned URIs have their password masked; `terminate` accepts the masked form too.
//! A configured stream name (`[streams.NAME]`) works wherever a URI does, and streams are
//! listed under their name. With `allowed_hosts`, `startup` of another host is 403.
//!
//! camgate's own `GET /api/streams` lists every stream with its viewers, and
//! `POST /rest-api/token/mint {"stream", "ttl_secs"}` mints a viewer token (200
//! `{"token", "stream", "expires"}`; 400 without `viewer_token_secret`). All are admin-only.

use std::time::Instant;

use camgate_core::gateway::{Gateway, StartupError};
use serde_json::{json, Value};

use super::http::Response;
use crate::access::{Access, Refusal};

/// A call to `/rest-api/...`.
pub(super) fn handle(
    method: &str,
    route: &str,
    body: &[u8],
    gateway: &mut Gateway,
    access: &Access,
    now: Instant,
) -> Response {
    let route = route.trim_end_matches('/');
    // A stream name stands for its configured URI; URIs are checked against allowed_hosts.
    let resolve = |body: &[u8]| -> Result<String, Response> {
        let uri = uri_of(body).map_err(|e| Response::error(400, &e))?;
        access.resolve(&uri).map_err(|Refusal::Restricted| {
            tracing::info!("REST call refused: host not in allowed_hosts");
            Response::error(403, "Restricted access")
        })
    };
    match (method, route) {
        ("POST", "/rest-api/rtsp/startup") => match resolve(body) {
            Err(e) => e,
            Ok(uri) => match gateway.startup(&uri, now) {
                Ok(_) => {
                    let info = gateway
                        .streams()
                        .into_iter()
                        .find(|s| s.pinned && masked_eq(&s.url, &uri));
                    let shown = info.map(|s| shown(access, &s.url)).unwrap_or_default();
                    tracing::info!(uri = %shown, "REST startup");
                    Response::json(200, &json!({"uri": shown, "status": "PENDING"}))
                }
                Err(StartupError::AlreadyPulled) => {
                    Response::error(409, "this uri is already pulled")
                }
                Err(StartupError::BadUri(why)) => Response::error(400, &why),
                Err(e @ StartupError::TooManyStreams(_)) => Response::error(503, &e.to_string()),
            },
        },
        ("POST", "/rest-api/token/mint") => mint(body, access),
        ("GET" | "POST", "/rest-api/rtsp/find_all") => list(gateway, access, None),
        ("POST", "/rest-api/rtsp/find") => match resolve(body) {
            Err(e) => e,
            Ok(uri) => list(gateway, access, Some(&uri)),
        },
        ("POST", "/rest-api/rtsp/terminate") => match resolve(body) {
            Err(e) => e,
            Ok(uri) if gateway.terminate(&uri, now) => Response::json(200, &json!({})),
            Ok(_) => Response::error(404, "no such stream"),
        },
        (
            _,
            "/rest-api/rtsp/startup"
            | "/rest-api/rtsp/find_all"
            | "/rest-api/rtsp/find"
            | "/rest-api/rtsp/terminate"
            | "/rest-api/token/mint",
        ) => Response::error(405, "method not allowed"),
        _ => Response::error(404, "no such REST method"),
    }
}

/// Longest viewer token the mint call makes: a year (a backend minting offline may choose).
const MAX_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// `POST /rest-api/token/mint {"stream": NAME_URL_OR_PREFIX*, "ttl_secs": N}`.
fn mint(body: &[u8], access: &Access) -> Response {
    let Some(key) = access.viewer_key() else {
        return Response::error(400, "viewer tokens are off: set viewer_token_secret");
    };
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Response::error(400, "body is not JSON: {\"stream\", \"ttl_secs\"}");
    };
    let Some(stream) = value
        .get("stream")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Response::error(400, "body lacks a \"stream\" string");
    };
    let ttl = match value.get("ttl_secs").and_then(Value::as_u64) {
        Some(t) if (1..=MAX_TOKEN_TTL_SECS).contains(&t) => t,
        _ => {
            let why = format!("\"ttl_secs\" must be 1 to {MAX_TOKEN_TTL_SECS}");
            return Response::error(400, &why);
        }
    };
    let expires = crate::ice::unix_now() + ttl;
    let token = key.mint(stream, expires);
    // The stream may be a camera URL with its password: logged masked.
    let shown = if stream.contains("://") {
        super::mask(stream)
    } else {
        stream.to_owned()
    };
    tracing::info!(stream = %shown, expires, "REST viewer token minted");
    Response::json(
        200,
        &json!({"token": token, "stream": stream, "expires": expires}),
    )
}

/// How a stream is listed: by its configured name, else by its masked URL.
fn shown(access: &Access, masked: &str) -> String {
    access.name_of(masked).unwrap_or(masked).to_owned()
}

/// `GET /api/streams`: every stream with its viewers, for the player page and dashboards.
pub(super) fn streams(gateway: &Gateway, access: &Access) -> Response {
    let list: Vec<_> = gateway
        .streams()
        .into_iter()
        .map(|s| {
            let uri = access.name_of(&s.url).unwrap_or(&s.url);
            json!({"id": s.id.0, "uri": uri, "status": s.status(),
                "viewers": s.viewers, "pinned": s.pinned, "info": s.info,
                "dropped_tracks": s.dropped_tracks})
        })
        .collect();
    Response::json(200, &Value::from(list))
}

fn list(gateway: &Gateway, access: &Access, uri: Option<&str>) -> Response {
    let items: Vec<Value> = gateway
        .streams()
        .into_iter()
        .filter(|s| uri.is_none_or(|u| masked_eq(&s.url, u)))
        .map(|s| json!({"uri": shown(access, &s.url), "status": s.status(), "info": s.info}))
        .collect();
    if items.is_empty() {
        Response::error(404, "no streams")
    } else {
        Response::json(200, &Value::from(items))
    }
}

/// Whether a masked URL from `streams()` names the URL a client sent (masked or not).
fn masked_eq(masked: &str, sent: &str) -> bool {
    masked == sent
        || camgate_core::rtsp::RtspUrl::parse(sent)
            .map(|u| u.redacted() == masked)
            .unwrap_or(false)
}

fn uri_of(body: &[u8]) -> Result<String, String> {
    if body.is_empty() {
        return Err("missing JSON body with \"uri\"".into());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    match value.get("uri").and_then(Value::as_str) {
        Some(uri) if !uri.trim().is_empty() => Ok(uri.to_owned()),
        _ => Err("body lacks a \"uri\" string".into()),
    }
}
