//! The WCS-compatible REST API over real HTTP, against the real binary and its demo camera.

mod common;

use std::time::{Duration, Instant};

use common::{json, Camgate};

#[test]
fn startup_find_all_terminate_with_every_status_code() {
    let cg = Camgate::start(&[]);
    let uri = cg.demo_url.clone();

    // Nothing pulled yet.
    assert_eq!(cg.request("GET", "/rest-api/rtsp/find_all", None).0, 404);
    assert_eq!(cg.request("POST", "/rest-api/rtsp/find_all", None).0, 404);

    // Malformed requests: 400 with a JSON error.
    let (status, body) = cg.request("POST", "/rest-api/rtsp/startup", None);
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"].as_str().unwrap().contains("uri"),
        "{body}"
    );
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some("{not json"))
            .0,
        400
    );
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(r#"{"url":"x"}"#))
            .0,
        400
    );
    let (status, body) = cg.request(
        "POST",
        "/rest-api/rtsp/startup",
        Some(r#"{"uri":"rtsp://bad host/x"}"#),
    );
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .starts_with("Bad URI"),
        "{body}"
    );

    // Start, then the same URI again: 409.
    let start = format!(r#"{{"uri":"{uri}"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&start)).0,
        200
    );
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&start)).0,
        409
    );

    // find_all reports it, and it reaches PLAYING with no viewer at all.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = cg.request("GET", "/rest-api/rtsp/find_all", None);
        assert_eq!(status, 200, "{body}");
        let list = json(&body);
        assert_eq!(list[0]["uri"], uri.as_str());
        if list[0]["status"] == "PLAYING" {
            // The codecs in use are part of the REST status.
            assert_eq!(list[0]["info"], "video H264 42c01e", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never PLAYING: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A pulled stream stays up without viewers (the linger is 5 s by default).
    std::thread::sleep(Duration::from_millis(200));

    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/terminate", Some(&start))
            .0,
        200
    );
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/terminate", Some(&start))
            .0,
        404
    );
    assert_eq!(cg.request("GET", "/rest-api/rtsp/find_all", None).0, 404);
    assert_eq!(cg.request("GET", "/rest-api/rtsp/terminate", None).0, 405);
    assert_eq!(cg.request("POST", "/rest-api/nope", Some("{}")).0, 404);
}

#[test]
fn passwords_are_masked_in_rest_answers() {
    let cg = Camgate::start(&[]);
    // A camera that accepts the connection and never answers: the stream stays PENDING (listed)
    // for as long as the test looks at it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || silent.accept().map(|(conn, _)| conn));
    let start = format!(r#"{{"uri":"rtsp://admin:hunter2@127.0.0.1:{port}/cam"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&start)).0,
        200
    );
    let (status, body) = cg.request("GET", "/rest-api/rtsp/find_all", None);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("hunter2"), "{body}");
    assert!(body.contains("admin:***@"), "{body}");
    // The camera connection is made (so it has been logged) before the log is read.
    let _conn = held
        .join()
        .unwrap()
        .expect("camgate connects to the camera");
    std::thread::sleep(Duration::from_millis(300));
    let logs = cg.logs().join("\n");
    assert!(
        logs.contains(&format!("admin:***@127.0.0.1:{port}")),
        "the stream is not in the log at all, so the check below would prove nothing:\n{logs}"
    );
    assert!(!logs.contains("hunter2"), "{logs}");
}

#[test]
fn player_page_is_served_with_the_demo_url() {
    let cg = Camgate::start(&[]);
    let (status, body) = cg.request("GET", "/", None);
    assert_eq!(status, 200);
    assert!(
        body.contains(&cg.demo_url),
        "the page is pre-filled with the demo camera"
    );
    assert_eq!(cg.request("GET", "/camgate.js", None).0, 200);
    assert_eq!(cg.request("GET", "/nope", None).0, 404);
}
