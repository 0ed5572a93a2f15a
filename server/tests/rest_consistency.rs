//! Read-your-writes for the REST API with two workers: once `startup` or `terminate` has
//! answered, the very next `find_all` shows its effect, wherever the camera is pulled. The
//! cameras are GStreamer's RTSP server (`tests/rtsp_server.py`), one of them behind Digest
//! auth with `@`, `:` and `/` in the password.

mod common;

use std::time::{Duration, Instant};

use common::{json, Camgate, GstCamera};

/// A camera with a media of its own per connection: a shared one still shutting down after
/// the last round's teardown answers the next round 503.
fn camera(extra: &[&str]) -> GstCamera {
    GstCamera::start(&[&["--video", "h264", "--not-shared"][..], extra].concat())
}

/// The URIs `find_all` lists (none on 404).
fn listed(cg: &Camgate) -> Vec<(String, String)> {
    let (status, body) = cg.request("GET", "/rest-api/rtsp/find_all", None);
    match status {
        404 => Vec::new(),
        200 => json(&body)
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| {
                let field = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                (field("uri"), field("status"))
            })
            .collect(),
        _ => panic!("find_all: {status} {body}"),
    }
}

/// The worker that logged "connecting to camera" for `masked` last (stream ids carry it).
fn worker_of(log: &[String], masked: &str) -> Option<u64> {
    log.iter()
        .rev()
        .filter(|l| l.contains("connecting to camera") && l.contains(masked))
        .find_map(|l| {
            let id = l.split("stream=").nth(1)?.split_whitespace().next()?;
            id.parse::<u64>().ok().map(|id| id >> 40)
        })
}

/// `rounds` of startup → find_all → terminate → find_all, each call right after the last;
/// every other round first waits for PLAYING. Returns a description of each call whose
/// answer contradicted the one before it.
fn rounds(
    cg: &Camgate,
    log: &mut Vec<String>,
    uri: &str,
    masked: &str,
    others: &[String],
    rounds: usize,
) -> Vec<String> {
    let body = |u: &str| format!(r#"{{"uri":"{u}"}}"#);
    let mut wrong = Vec::new();
    for round in 0..rounds {
        let (status, answer) = cg.request("POST", "/rest-api/rtsp/startup", Some(&body(uri)));
        assert_eq!(status, 200, "round {round}: startup: {answer}");
        assert_eq!(json(&answer)["uri"], masked, "round {round}: {answer}");
        let list = listed(cg);
        if !list.iter().any(|(u, _)| u == masked) {
            wrong.push(format!(
                "round {round}: startup answered, find_all: {list:?}"
            ));
        }
        if round % 2 == 1 {
            let deadline = Instant::now() + Duration::from_secs(15);
            while !listed(cg)
                .iter()
                .any(|(u, s)| u == masked && s == "PLAYING")
            {
                if Instant::now() > deadline {
                    log.extend(cg.logs());
                    panic!(
                        "{masked} round {round}: never PLAYING: {:?}\n{}",
                        listed(cg),
                        log.join("\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Terminate by the URI as sent, or as listed (masked), in turn.
        let target = if round % 4 < 2 { uri } else { masked };
        let (status, answer) = cg.request("POST", "/rest-api/rtsp/terminate", Some(&body(target)));
        assert_eq!(status, 200, "round {round}: terminate: {answer}");
        let list = listed(cg);
        let left: Vec<&String> = list.iter().map(|(u, _)| u).collect();
        if left != others.iter().collect::<Vec<_>>() {
            wrong.push(format!(
                "round {round}: terminate answered, find_all: {list:?}"
            ));
        }
        log.extend(cg.logs());
    }
    wrong
}

#[test]
fn rest_calls_see_the_effect_of_the_last_one_across_workers() {
    let plain = camera(&[]);
    let password = "p@ss:w/rd";
    let locked = camera(&[
        "--user",
        "admin",
        "--password",
        password,
        "--auth",
        "digest",
    ]);
    let with_creds = locked
        .url
        .replace("rtsp://", "rtsp://admin:p%40ss%3Aw%2Frd@");
    let masked_creds = locked.url.replace("rtsp://", "rtsp://admin:***@");

    let cg = Camgate::start(&["--workers", "2"]);
    let mut log = Vec::new();
    let mut wrong = Vec::new();
    for (uri, masked) in [
        (plain.url.as_str(), plain.url.as_str()),
        (with_creds.as_str(), masked_creds.as_str()),
    ] {
        // Alone, a camera goes to worker 0, which holds every HTTP connection.
        let found = rounds(&cg, &mut log, uri, masked, &[], 10);
        assert_eq!(worker_of(&log, masked), Some(0), "{masked}");
        wrong.extend(
            found
                .into_iter()
                .map(|w| format!("{masked} on worker 0: {w}")),
        );
    }

    // With the demo camera pulled by worker 0, the next camera goes to worker 1.
    let demo = cg.demo_url.clone();
    let start = format!(r#"{{"uri":"{demo}"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&start)).0,
        200
    );
    for (uri, masked) in [
        (plain.url.as_str(), plain.url.as_str()),
        (with_creds.as_str(), masked_creds.as_str()),
    ] {
        let found = rounds(&cg, &mut log, uri, masked, std::slice::from_ref(&demo), 10);
        assert_eq!(worker_of(&log, masked), Some(1), "{masked}");
        wrong.extend(
            found
                .into_iter()
                .map(|w| format!("{masked} on worker 1: {w}")),
        );
    }
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/terminate", Some(&start))
            .0,
        200
    );
    let list = listed(&cg);
    if !list.is_empty() {
        wrong.push(format!("the demo terminated, find_all: {list:?}"));
    }

    log.extend(cg.logs());
    let all = log.join("\n");
    assert!(
        !all.contains(password) && !all.contains("p%40ss"),
        "a password was logged"
    );
    assert!(
        all.contains("camera playing"),
        "the cameras were really played"
    );
    assert!(
        wrong.is_empty(),
        "{} of 81 calls contradicted the one before:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
