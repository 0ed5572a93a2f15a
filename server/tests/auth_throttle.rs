//! Token guessing is slowed: the real binary with an `auth_token`, one client address sending
//! 1,000 wrong tokens over REST and the WebSocket while a client at another address, holding the
//! right token, is served throughout.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{connect_from, Camgate};
use tungstenite::Message;

const TOKEN: &str = "right-token-7f3a";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A counter from /metrics, read with the right token from `source`.
fn counter(cg: &Camgate, source: IpAddr, name: &str) -> u64 {
    let auth = format!("Bearer {TOKEN}");
    let r = cg.request_from(source, "GET", "/metrics", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Opens a signaling session from `source` with `token`: whether camgate let it in (the
/// session is refused by closing the socket; accepted, the connection message is answered).
fn ws_session(cg: &Camgate, source: IpAddr, token: &str) -> bool {
    let stream = connect_from(source, cg.ws);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", cg.ws), stream).expect("handshake");
    let connection = serde_json::json!({"message": "connection", "data": [{
        "appKey": "defaultApp", "mediaProviders": ["WebRTC"], "authToken": token}]});
    ws.send(Message::text(connection.to_string())).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.contains("ESTABLISHED") || t.contains("getUserData") => {
                return true
            }
            Ok(Message::Close(_)) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

#[test]
fn a_thousand_wrong_tokens_from_one_address_are_throttled_and_others_are_served() {
    let cg = Camgate::start(&["--no-demo", "--auth-token", TOKEN]);
    let (attacker, viewer) = (ip("127.0.0.1"), ip("127.0.0.2"));
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..1000 {
        let wrong = format!("Bearer guess-{i}");
        let r = cg.request_from(
            attacker,
            "POST",
            "/rest-api/rtsp/find_all",
            &[("Authorization", &wrong)],
        );
        *statuses.entry(r.status).or_insert(0) += 1;
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("300"));
        }
        // The other client is served all along, with the right token.
        if i % 100 == 0 {
            let auth = format!("Bearer {TOKEN}");
            let ok = cg.request_from(viewer, "GET", "/metrics", &[("Authorization", &auth)]);
            assert_eq!(ok.status, 200, "the viewer's address is not throttled");
        }
    }
    // Twenty wrong guesses are judged (401), then the address is refused unread (429). (The right
    // token gets 404 from find_all here: no stream yet, as the Flashphoner server answers.)
    assert_eq!(statuses, [(401, 20), (429, 980)].into_iter().collect());
    // Even the right token is refused from the blocked address, for the block's duration.
    let auth = format!("Bearer {TOKEN}");
    let blocked = cg.request_from(
        attacker,
        "POST",
        "/rest-api/rtsp/find_all",
        &[("Authorization", &auth)],
    );
    assert_eq!(blocked.status, 429);
    // Signaling: refused from the blocked address, whatever the token; open elsewhere.
    assert!(!ws_session(&cg, attacker, TOKEN));
    assert!(ws_session(&cg, viewer, TOKEN));
    assert!(
        !ws_session(&cg, viewer, "wrong"),
        "a wrong token is still refused"
    );

    assert_eq!(counter(&cg, viewer, "camgate_auth_failures_total"), 21);
    assert_eq!(counter(&cg, viewer, "camgate_auth_refused_total"), 982);
    // Logged once for the burst, with the address.
    let log = cg.logs();
    let blocks: Vec<_> = log
        .iter()
        .filter(|l| l.contains("refusing this client"))
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:#?}");
    assert!(blocks[0].contains("127.0.0.1"), "{}", blocks[0]);
    assert!(
        !log.iter().any(|l| l.contains(TOKEN)),
        "the token is never logged"
    );
}
