//! Clients that misbehave on the web ports must not hold the server: a slow client is closed,
//! a flood of idle connections does not stop others from being served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Camgate;

#[test]
fn a_client_that_never_finishes_its_request_is_closed() {
    let cg = Camgate::start(&[]);
    let mut slow = TcpStream::connect(cg.http).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // and never the blank line
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes the connection without an answer");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
}

#[test]
fn a_flood_of_idle_connections_does_not_stop_the_api() {
    let cg = Camgate::start(&[]);
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(cg.http).ok())
        .collect();
    assert!(idle.len() >= 250);
    let started = Instant::now();
    let (status, _) = cg.request("GET", "/api/streams", None);
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    drop(idle);
}
