//! The WebSocket signaling protocol of the Flashphoner Web SDK, as far as playback needs it.
//!
//! Every frame in both directions is `{"message": NAME, "data": [...]}`. The SDK parses
//! `data[0]` before it looks at the name, so every server message carries a `data` array, even
//! `ping` (`[null]`); without it the SDK drops the frame silently.

use serde_json::{json, Value};

/// What a browser can say to camgate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// First message of a session; `auth_token` is set when the page configured one.
    Connection {
        /// The page's `authToken`; the web layer checks it before the gateway sees the message.
        auth_token: Option<String>,
    },
    /// Play `name` (a camera URL) answering the browser's `sdp` offer.
    PlayStream {
        /// The SDK's id for this playback; every later message about it carries it.
        media_session_id: String,
        /// The camera's RTSP URL (the web layer has already swapped a configured stream name
        /// for its URL).
        name: String,
        /// The browser's WebRTC offer.
        sdp: String,
        /// The page asked for media over TCP (`transport: "TCP"`): the answer carries ICE-TCP
        /// candidates only.
        tcp: bool,
    },
    /// Stop the playback `media_session_id`.
    StopStream {
        /// Which playback of the session to stop.
        media_session_id: String,
    },
    /// The answer to our `ping`: the browser is still there.
    Pong,
    /// A message camgate does not act on (publishing, SIP, metrics...), by name.
    Other(String),
}

/// Why a browser's message could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalingError {
    /// Not JSON, or no `"message"` name in it.
    NotJson,
    /// A field the message needs (e.g. `sdp` of `playStream`) is missing or not a string.
    MissingField(&'static str),
}

impl std::fmt::Display for SignalingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson => write!(f, "message is not a JSON object with a \"message\" name"),
            Self::MissingField(field) => write!(f, "message lacks the field \"{field}\""),
        }
    }
}

impl ClientMessage {
    /// Reads one WebSocket text frame from the browser; unknown message names are `Other`.
    pub fn parse(text: &str) -> Result<Self, SignalingError> {
        let value: Value = serde_json::from_str(text).map_err(|_| SignalingError::NotJson)?;
        let name = value
            .get("message")
            .and_then(Value::as_str)
            .ok_or(SignalingError::NotJson)?;
        let first = value
            .get("data")
            .and_then(|d| d.get(0))
            .unwrap_or(&Value::Null);
        let field = |key: &'static str| -> Result<String, SignalingError> {
            first
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(SignalingError::MissingField(key))
        };
        Ok(match name {
            "connection" => Self::Connection {
                auth_token: first
                    .get("authToken")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            "playStream" => Self::PlayStream {
                media_session_id: field("mediaSessionId")?,
                name: field("name")?,
                sdp: field("sdp")?,
                tcp: first
                    .get("transport")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("TCP")),
            },
            "stopStream" => Self::StopStream {
                media_session_id: field("mediaSessionId")?,
            },
            "pong" => Self::Pong,
            other => Self::Other(other.to_owned()),
        })
    }
}

/// Stream statuses the SDK knows (`STREAM_STATUS` in its constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// The `playStream` was accepted; the camera and WebRTC are being set up.
    Pending,
    /// Media flows; sent with the stream info.
    Playing,
    /// Ended by the browser's `stopStream`.
    Stopped,
    /// Ended by an error (camera, ICE timeout, ...), with the reason as info.
    Failed,
}

impl StreamStatus {
    /// The name the SDK expects in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Playing => "PLAYING",
            Self::Stopped => "STOPPED",
            Self::Failed => "FAILED",
        }
    }
}

fn envelope(message: &str, data: Value) -> String {
    json!({ "message": message, "data": data }).to_string()
}

/// Answer to `connection`: the SDK turns the session ESTABLISHED on this message.
pub fn get_user_data(session_id: &str) -> String {
    envelope(
        "getUserData",
        json!([{
            "status": "ESTABLISHED",
            "sessionId": session_id,
            "mediaProviders": ["WebRTC"],
            "useWsTunnel": false,
            "server": concat!("camgate/", env!("CARGO_PKG_VERSION")),
        }]),
    )
}

/// The SDP answer for a `playStream`; positional, as the SDK expects.
pub fn set_remote_sdp(media_session_id: &str, sdp: &str) -> String {
    envelope("setRemoteSDP", json!([media_session_id, sdp]))
}

/// A stream status change. `name` must already have its password masked.
pub fn stream_status(
    media_session_id: &str,
    name: &str,
    status: StreamStatus,
    info: Option<&str>,
) -> String {
    let mut obj = json!({
        "mediaSessionId": media_session_id,
        "name": name,
        "published": false,
        "status": status.as_str(),
    });
    if let Some(info) = info {
        obj["info"] = Value::from(info);
    }
    envelope("notifyStreamStatusEvent", json!([obj]))
}

/// The `notEnoughBandwidth` stream event: the viewer's link carries `network_bps` of the
/// stream's `remote_bps` (bit/s). The SDK reads `type` and splits `payload.info` on "/" into
/// `getRemoteBitrate()` and `getNetworkBandwidth()`. `name` must have its password masked.
pub fn not_enough_bandwidth(
    media_session_id: &str,
    name: &str,
    remote_bps: u64,
    network_bps: u64,
) -> String {
    envelope(
        "notifyStreamEvent",
        json!([{
            "mediaSessionId": media_session_id,
            "streamName": name,
            "type": "notEnoughBandwidth",
            "payload": { "info": format!("{remote_bps}/{network_bps}") },
        }]),
    )
}

/// Keepalive the server sends to established sessions; a session silent for three intervals
/// is closed.
pub fn ping() -> String {
    envelope("ping", json!([null]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sdk_play_stream() {
        let text = r#"{"message":"playStream","data":[{"mediaSessionId":"a1","name":"rtsp://u:p@cam/x",
            "published":false,"hasVideo":true,"hasAudio":true,"status":"PENDING","sdp":"v=0\r\n"}]}"#;
        assert_eq!(
            ClientMessage::parse(text).unwrap(),
            ClientMessage::PlayStream {
                media_session_id: "a1".into(),
                name: "rtsp://u:p@cam/x".into(),
                sdp: "v=0\r\n".into(),
                tcp: false,
            }
        );
        // What the SDK sends for `playStream` with `transport: "TCP"`.
        let tcp = text.replace("\"status\"", "\"transport\":\"TCP\",\"status\"");
        assert!(matches!(
            ClientMessage::parse(&tcp).unwrap(),
            ClientMessage::PlayStream { tcp: true, .. }
        ));
    }

    #[test]
    fn parses_connection_stop_pong_and_unknown() {
        let conn = r#"{"message":"connection","data":[{"appKey":"defaultApp","authToken":"t"}]}"#;
        assert_eq!(
            ClientMessage::parse(conn).unwrap(),
            ClientMessage::Connection {
                auth_token: Some("t".into())
            }
        );
        let stop = r#"{"message":"stopStream","data":[{"mediaSessionId":"a1","name":"x"}]}"#;
        assert_eq!(
            ClientMessage::parse(stop).unwrap(),
            ClientMessage::StopStream {
                media_session_id: "a1".into()
            }
        );
        assert_eq!(
            ClientMessage::parse(r#"{"message":"pong","data":[null]}"#).unwrap(),
            ClientMessage::Pong
        );
        assert_eq!(
            ClientMessage::parse(r#"{"message":"publishStream","data":[{}]}"#).unwrap(),
            ClientMessage::Other("publishStream".into())
        );
    }

    #[test]
    fn rejects_garbage_and_missing_fields() {
        assert_eq!(
            ClientMessage::parse("not json"),
            Err(SignalingError::NotJson)
        );
        assert_eq!(ClientMessage::parse("[1,2]"), Err(SignalingError::NotJson));
        assert_eq!(
            ClientMessage::parse(r#"{"message":"playStream","data":[{"mediaSessionId":"a"}]}"#),
            Err(SignalingError::MissingField("name"))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"message":"playStream"}"#),
            Err(SignalingError::MissingField("mediaSessionId"))
        );
    }

    #[test]
    fn every_server_message_carries_a_data_array() {
        for text in [
            get_user_data("s"),
            set_remote_sdp("a1", "v=0"),
            stream_status(
                "a1",
                "rtsp://cam/x",
                StreamStatus::Failed,
                Some("401 Unauthorized"),
            ),
            ping(),
            not_enough_bandwidth("a1", "rtsp://cam/x", 2_000_000, 300_000),
        ] {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v["data"].is_array(), "{text}");
            assert!(v["data"].get(0).is_some(), "{text}");
        }
        let v: Value = serde_json::from_str(&set_remote_sdp("a1", "v=0")).unwrap();
        assert_eq!(v["data"], json!(["a1", "v=0"]));
        let v: Value =
            serde_json::from_str(&stream_status("a1", "n", StreamStatus::Failed, Some("why")))
                .unwrap();
        assert_eq!(v["data"][0]["status"], "FAILED");
        assert_eq!(v["data"][0]["info"], "why");
        let v: Value =
            serde_json::from_str(&not_enough_bandwidth("a1", "n", 2_000_000, 300_000)).unwrap();
        assert_eq!(v["message"], "notifyStreamEvent");
        assert_eq!(v["data"][0]["mediaSessionId"], "a1");
        assert_eq!(v["data"][0]["type"], "notEnoughBandwidth");
        assert_eq!(v["data"][0]["payload"]["info"], "2000000/300000");
    }
}
