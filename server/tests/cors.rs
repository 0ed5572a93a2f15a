//! `cors_origins`: the real binary answers only the configured site's pages (and its own), and
//! refuses other sites' requests and WebSocket sessions before doing anything.

mod common;

use std::net::TcpStream;

use common::Camgate;

#[test]
fn only_allowed_origins_and_camgates_own_pages_are_served() {
    let cg = Camgate::start(&["--no-demo", "--cors-origin", "https://portal.example"]);
    let get = |origin: &str| cg.request_with("GET", "/metrics", &[("Origin", origin)], None);

    let allowed = get("https://portal.example");
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://portal.example")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));

    let other = get("https://evil.example");
    assert_eq!(other.status, 403, "{}", other.body);
    assert!(
        !other.body.contains("camgate_"),
        "nothing of the answer leaks"
    );
    // The preflight too: the browser never sends the real request.
    let preflight = cg.request_with(
        "OPTIONS",
        "/rest-api/rtsp/startup",
        &[("Origin", "https://evil.example")],
        None,
    );
    assert_eq!(preflight.status, 403);
    // A state-changing call from another site's page is refused, not performed.
    let startup = cg.request_with(
        "POST",
        "/rest-api/rtsp/startup",
        &[
            ("Origin", "https://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        Some(r#"{"uri":"rtsp://127.0.0.1:9/cam"}"#),
    );
    assert_eq!(startup.status, 403);
    assert_eq!(cg.request("GET", "/api/streams", None).1, "[]");

    // Signaling: another site's page cannot open a session; camgate's own page can.
    let ws = |origin: String| {
        let stream = TcpStream::connect(cg.ws).unwrap();
        let request = tungstenite::http::Request::builder()
            .uri(format!("ws://{}/", cg.ws))
            .header("Host", cg.ws.to_string())
            .header("Origin", origin)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header(
                "Sec-WebSocket-Key",
                tungstenite::handshake::client::generate_key(),
            )
            .body(())
            .unwrap();
        tungstenite::client(request, stream).is_ok()
    };
    assert!(!ws("https://evil.example".into()));
    assert!(
        ws(format!("http://{}", cg.http)),
        "the player page's own origin"
    );
    assert!(ws("https://portal.example".into()));
}

#[test]
fn by_default_any_origin_may_read() {
    let cg = Camgate::start(&["--no-demo"]);
    let r = cg.request_with(
        "GET",
        "/metrics",
        &[("Origin", "https://any.example")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}
