//! Admin token vs viewer tokens, against the real binary: a viewer token plays the stream it
//! names over signaling (session `authToken`, session `custom.token`, stream `custom.token`) and
//! WHEP, and nothing else; expired, other-stream, tampered and missing tokens get distinct
//! refusals (FAILED info; 401 vs 403), each logged once without the token; REST and metrics
//! stay the admin's. Tokens come from the REST mint call, from camgate-core's minter, and from
//! the Node snippet in docs/SECURITY.md.

mod common;

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camgate_core::viewer_token::ViewerTokenKey;
use common::{outcome, percent_encode_segment, play_with, recvonly_offer, Camgate, Outcome};
use serde_json::json;

const ADMIN: &str = "admin-token-5b1e9c";
const SECRET: &str = "viewer-secret-0123456789abcdef-0123";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn start() -> Camgate {
    Camgate::start(&["--auth-token", ADMIN, "--viewer-token-secret", SECRET])
}

fn key() -> ViewerTokenKey {
    ViewerTokenKey::new(SECRET.as_bytes())
}

/// The token with the first character of its payload changed (another expiry, same MAC).
fn tampered(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let first = parts[1].remove(0);
    parts[1].insert(0, if first == 'A' { 'B' } else { 'A' });
    parts.join(".")
}

/// A token minted by the admin's REST call.
fn mint(cg: &Camgate, stream: &str, ttl: u64) -> String {
    let auth = format!("Bearer {ADMIN}");
    let body = json!({"stream": stream, "ttl_secs": ttl}).to_string();
    let r = cg.request_with(
        "POST",
        "/rest-api/token/mint",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = common::json(&r.body);
    assert_eq!(v["stream"], stream);
    let expires = v["expires"].as_u64().unwrap();
    assert!(expires.abs_diff(unix_now() + ttl) <= 2, "{expires}");
    v["token"].as_str().unwrap().to_owned()
}

/// How a signaling play of `name` goes with `connection` fields and a stream `custom`.
fn ws_play(
    cg: &Camgate,
    name: &str,
    connection: serde_json::Value,
    custom: Option<serde_json::Value>,
) -> Outcome {
    outcome(&mut play_with(
        cg,
        ip("127.0.0.1"),
        name,
        connection,
        custom,
    ))
}

/// Log lines so far, waiting a little for the last ones.
fn settle_logs(cg: &Camgate) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(300));
    cg.logs()
}

#[test]
fn signaling_plays_only_what_the_viewer_token_names() {
    let cg = start();
    let demo = cg.demo_url.clone();
    let other = "rtsp://127.0.0.1:9/other";
    let valid = mint(&cg, &demo, 600);
    let expired = key().mint(&demo, unix_now() - 1);
    let for_other = key().mint(other, unix_now() + 600);
    let bad = tampered(&valid);

    // Valid: as the SDK's createSession({authToken}), createSession({custom: {token}}) and
    // createStream({custom: {token}}).
    assert_eq!(
        ws_play(&cg, &demo, json!({"authToken": valid}), None),
        Outcome::Answered
    );
    assert_eq!(
        ws_play(&cg, &demo, json!({"custom": {"token": valid}}), None),
        Outcome::Answered
    );
    assert_eq!(
        ws_play(&cg, &demo, json!({}), Some(json!({"token": valid}))),
        Outcome::Answered
    );
    // A prefix covers the streams under it.
    let prefix = key().mint("rtsp://127.0.0.1:*", unix_now() + 600);
    assert_eq!(
        ws_play(&cg, &demo, json!({"authToken": prefix}), None),
        Outcome::Answered
    );
    // The admin token plays anything.
    assert_eq!(
        ws_play(&cg, &demo, json!({"authToken": ADMIN}), None),
        Outcome::Answered
    );

    let failed = |s: &str| Outcome::Failed(s.to_owned());
    let _ = cg.logs();
    assert_eq!(
        ws_play(&cg, &demo, json!({"authToken": expired}), None),
        failed("Unauthorized: token expired")
    );
    assert_eq!(
        ws_play(&cg, &demo, json!({"custom": {"token": for_other}}), None),
        failed("Forbidden: token is for another stream")
    );
    assert_eq!(
        ws_play(&cg, &demo, json!({}), Some(json!({"token": bad}))),
        failed("Unauthorized: bad token signature")
    );
    assert_eq!(
        ws_play(&cg, &demo, json!({}), None),
        failed("Unauthorized: missing token")
    );
    assert_eq!(
        ws_play(&cg, &demo, json!({"authToken": "guess"}), None),
        failed("Unauthorized: malformed token")
    );
    // The token for the demo does not play another camera.
    assert_eq!(
        ws_play(&cg, other, json!({"authToken": valid}), None),
        failed("Forbidden: token is for another stream")
    );
    // Each refusal logged once, with its reason, never with the token.
    let log = settle_logs(&cg);
    let refusals: Vec<_> = log.iter().filter(|l| l.contains("play refused")).collect();
    assert_eq!(refusals.len(), 6, "{refusals:#?}");
    for reason in [
        "token expired",
        "token is for another stream",
        "bad token signature",
        "missing token",
        "malformed token",
    ] {
        assert!(
            refusals.iter().any(|l| l.contains(reason)),
            "{reason}: {refusals:#?}"
        );
    }
    for t in [&valid, &expired, &for_other, &bad] {
        let mac = t.rsplit('.').next().unwrap();
        assert!(!log.iter().any(|l| l.contains(mac)), "a token in the log");
    }
}

/// A `playStream` whose name is written with a JSON escape is the same message to the
/// gateway's parser: it must be checked like any other, not forwarded unread.
#[test]
fn an_escaped_play_stream_is_checked_too() {
    let cg = start();
    let demo = cg.demo_url.clone();
    let valid = key().mint(&demo, unix_now() + 600);
    let stream = common::connect_from(ip("127.0.0.1"), cg.ws);
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", cg.ws), stream).unwrap();
    let connection = json!({"message": "connection", "data": [{"appKey": "defaultApp",
        "authToken": valid}]});
    ws.send(tungstenite::Message::text(connection.to_string()))
        .unwrap();
    let play = json!({"message": "playStream", "data": [{"mediaSessionId": "m1",
        "name": "rtsp://127.0.0.1:9/other", "sdp": recvonly_offer(false)}]})
    .to_string()
    .replace("\"playStream\"", "\"play\\u0053tream\"");
    ws.send(tungstenite::Message::text(play)).unwrap();
    assert_eq!(
        outcome(&mut ws),
        Outcome::Failed("Forbidden: token is for another stream".into())
    );
}

#[test]
fn whep_takes_a_viewer_token_for_its_stream_only() {
    let cg = start();
    let demo = cg.demo_url.clone();
    let path = format!("/whep/{}", percent_encode_segment(&demo));
    let offer = recvonly_offer(true);
    let whep = |token: Option<&str>, path: &str| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/sdp")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        cg.request_with("POST", path, &headers, Some(&offer))
    };
    let valid = mint(&cg, &demo, 600);
    let r = whep(Some(&valid), &path);
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("location").unwrap().to_owned();
    assert_eq!(whep(Some(ADMIN), &path).status, 201);

    let _ = cg.logs();
    let expect = |r: common::HttpResponse, status: u16, reason: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(common::json(&r.body)["error"], reason);
        assert_eq!(r.header("www-authenticate").is_some(), status == 401);
    };
    let expired = key().mint(&demo, unix_now() - 1);
    expect(
        whep(Some(&expired), &path),
        401,
        "Unauthorized: token expired",
    );
    let other = key().mint("rtsp://127.0.0.1:9/other", unix_now() + 600);
    expect(
        whep(Some(&other), &path),
        403,
        "Forbidden: token is for another stream",
    );
    expect(
        whep(Some(&tampered(&valid)), &path),
        401,
        "Unauthorized: bad token signature",
    );
    expect(whep(None, &path), 401, "Unauthorized: missing token");
    let other_path = format!(
        "/whep/{}",
        percent_encode_segment("rtsp://127.0.0.1:9/other")
    );
    expect(
        whep(Some(&valid), &other_path),
        403,
        "Forbidden: token is for another stream",
    );
    let log = settle_logs(&cg);
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("API call refused"))
            .count(),
        5,
        "{log:#?}"
    );
    assert!(!log
        .iter()
        .any(|l| l.contains(valid.rsplit('.').next().unwrap())));

    // The viewer ends its session with its own token; a stranger cannot.
    let del = |token: &str| {
        let auth = format!("Bearer {token}");
        cg.request_with("DELETE", &location, &[("Authorization", &auth)], None)
            .status
    };
    assert_eq!(del("guess"), 401);
    assert_eq!(del(&valid), 200);
}

#[test]
fn rest_and_metrics_stay_the_admins() {
    let cg = start();
    let viewer = mint(&cg, "*", 600);
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        cg.request_with(method, path, &headers, body)
    };
    let startup = format!(r#"{{"uri":"{}"}}"#, cg.demo_url);
    let mint_body = r#"{"stream":"*","ttl_secs":60}"#;
    let admin_calls = [
        ("POST", "/rest-api/rtsp/startup", Some(startup.as_str())),
        ("POST", "/rest-api/rtsp/find_all", None),
        ("POST", "/rest-api/rtsp/terminate", Some(startup.as_str())),
        ("GET", "/api/streams", None),
        ("GET", "/metrics", None),
        ("POST", "/rest-api/token/mint", Some(mint_body)),
    ];
    for (method, path, body) in admin_calls {
        let r = call(method, path, Some(&viewer), body);
        assert_eq!(r.status, 403, "{path} with a viewer token: {}", r.body);
        assert_eq!(
            common::json(&r.body)["error"],
            "Forbidden: this call needs the admin token"
        );
        assert_eq!(call(method, path, None, body).status, 401, "{path}");
    }
    // Nothing was started by the viewer; the admin can.
    assert_eq!(
        call("POST", "/rest-api/rtsp/find_all", Some(ADMIN), None).status,
        404
    );
    assert_eq!(
        call(
            "POST",
            "/rest-api/rtsp/startup",
            Some(ADMIN),
            Some(&startup)
        )
        .status,
        200
    );
    // Bad mint requests.
    for body in [
        r#"{"stream":"x"}"#,
        r#"{"stream":"","ttl_secs":5}"#,
        r#"{"stream":"x","ttl_secs":0}"#,
        "nope",
    ] {
        assert_eq!(
            call("POST", "/rest-api/token/mint", Some(ADMIN), Some(body)).status,
            400,
            "{body}"
        );
    }
    // 403s are not failed authentications; 401s are.
    let metrics = call("GET", "/metrics", Some(ADMIN), None).body;
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("camgate_auth_failures_total "))
        .unwrap();
    assert_eq!(failures, "6", "the six calls without a token");
}

#[test]
fn without_a_secret_there_are_no_viewer_tokens() {
    let cg = Camgate::start(&["--no-demo", "--auth-token", ADMIN]);
    let auth = format!("Bearer {ADMIN}");
    let r = cg.request_with(
        "POST",
        "/rest-api/token/mint",
        &[("Authorization", &auth)],
        Some(r#"{"stream":"x","ttl_secs":60}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // A token signed with some secret is just a wrong token here: the session is closed as
    // before.
    let token = key().mint("x", unix_now() + 60);
    let mut ws = play_with(&cg, ip("127.0.0.1"), "x", json!({"authToken": token}), None);
    assert_eq!(outcome(&mut ws), Outcome::Closed);
}

/// The code between `marker` and the next fence in docs/SECURITY.md.
fn documented_snippet(marker: &str, fence: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SECURITY.md"))
        .unwrap();
    doc.split(marker)
        .nth(1)
        .and_then(|rest| rest.split(fence).nth(1))
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("the {fence} snippet in docs/SECURITY.md"))
        .to_string()
}

/// Runs a backend's minting snippet (`program -r|-e script secret stream`) and plays with its
/// token, over signaling and WHEP.
fn a_documented_token_plays(program: &str, flag: &str, script: &str) {
    let cg = start();
    let out = std::process::Command::new(program)
        .args([flag, script, SECRET, &cg.demo_url])
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (a test dependency, scripts/test.sh): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let grant = key()
        .verify(&token, unix_now())
        .expect("camgate-core accepts it");
    assert_eq!(grant.stream, cg.demo_url);
    assert_eq!(
        ws_play(&cg, &cg.demo_url, json!({"custom": {"token": token}}), None),
        Outcome::Answered
    );
    // And the same token through WHEP.
    let auth = format!("Bearer {token}");
    let path = format!("/whep/{}", percent_encode_segment(&cg.demo_url));
    let r = cg.request_with(
        "POST",
        &path,
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &auth),
        ],
        Some(&recvonly_offer(true)),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// The Node snippet in docs/SECURITY.md, run by node as a backend would: its token plays.
#[test]
fn a_token_minted_by_the_documented_node_snippet_plays() {
    let snippet = documented_snippet("<!-- viewer-token-node -->", "```js");
    let script = format!(
        "{snippet}\nprocess.stdout.write(mintViewerToken(process.argv[1], process.argv[2], 600));"
    );
    a_documented_token_plays("node", "-e", &script);
}

/// The PHP snippet in docs/SECURITY.md, run by php-cli: its token plays too.
#[test]
fn a_token_minted_by_the_documented_php_snippet_plays() {
    let snippet = documented_snippet("<!-- viewer-token-php -->", "```php");
    let script = format!("{snippet}\necho mint_viewer_token($argv[1], $argv[2], 600);");
    a_documented_token_plays("php", "-r", &script);
}

/// Wrong viewer tokens from one address feed the guessing throttle: after 20 the address is
/// refused whatever it sends, while a viewer at another address keeps playing with its token.
#[test]
fn wrong_viewer_tokens_are_throttled_per_address() {
    let cg = start();
    let demo = cg.demo_url.clone();
    let valid = key().mint(&demo, unix_now() + 600);
    let (attacker, viewer) = (ip("127.0.0.1"), ip("127.0.0.2"));
    // One session, many guesses (one play each).
    let stream = common::connect_from(attacker, cg.ws);
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", cg.ws), stream).unwrap();
    let connection = json!({"message": "connection", "data": [{"appKey": "defaultApp"}]});
    ws.send(tungstenite::Message::text(connection.to_string()))
        .unwrap();
    let mut reasons = std::collections::BTreeMap::new();
    for i in 0..30 {
        let guess = ViewerTokenKey::new(format!("guessed secret {i}").as_bytes())
            .mint(&demo, unix_now() + 600);
        let play = json!({"message": "playStream", "data": [{"mediaSessionId": format!("m{i}"),
            "name": demo, "sdp": "v=0", "custom": {"token": guess}}]});
        ws.send(tungstenite::Message::text(play.to_string()))
            .unwrap();
        let Outcome::Failed(info) = outcome(&mut ws) else {
            panic!("a guess was not refused")
        };
        *reasons.entry(info).or_insert(0) += 1;
    }
    let expected = [
        (
            "Too many failed authentications: try again later".to_owned(),
            10,
        ),
        ("Unauthorized: bad token signature".to_owned(), 20),
    ];
    assert_eq!(reasons, expected.into_iter().collect());
    // The blocked address is refused even with the valid token; the other plays.
    let mut blocked = play_with(&cg, attacker, &demo, json!({"authToken": valid}), None);
    assert_eq!(outcome(&mut blocked), Outcome::Closed);
    let mut ok = play_with(&cg, viewer, &demo, json!({"authToken": valid}), None);
    assert_eq!(outcome(&mut ok), Outcome::Answered);
}
