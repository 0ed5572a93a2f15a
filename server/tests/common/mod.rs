//! Starts the real `camgate` binary on loopback with ephemeral ports and reads the addresses it
//! logs, so tests talk to it over real sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Camgate {
    child: Child,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub demo_url: String,
    pub log: mpsc::Receiver<String>,
}

impl Camgate {
    pub fn start(extra: &[&str]) -> Camgate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_camgate"))
            .args([
                "--bind",
                "127.0.0.1",
                "--http-port",
                "0",
                "--ws-port",
                "0",
                "--webrtc-port",
                "0",
                "--announce-ip",
                "127.0.0.1",
                "--demo-bind",
                "127.0.0.1:0",
                "--log",
                "info",
            ])
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("camgate starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut http, mut ws, mut demo_url) = (None, None, None);
        while http.is_none() || ws.is_none() || demo_url.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("camgate logs its addresses");
            let plain = strip_ansi(&line);
            if let Some(rest) = plain.split("player page on http://").nth(1) {
                http = rest
                    .trim_end_matches('/')
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok());
            } else if let Some(rest) = plain
                .split("signaling (Flashphoner WebSocket) on ws://")
                .nth(1)
            {
                ws = rest.trim().parse().ok();
            } else if let Some(rest) = plain.split("demo camera at ").nth(1) {
                demo_url = Some(rest.trim().to_owned());
            }
        }
        Camgate {
            child,
            http: http.unwrap(),
            ws: ws.unwrap(),
            demo_url: demo_url.unwrap(),
            log: rx,
        }
    }

    /// One HTTP/1.1 request; returns (status, body).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(self.http).expect("connect to camgate");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.http,
            body.len()
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Log lines so far (drained).
    pub fn logs(&self) -> Vec<String> {
        self.log.try_iter().map(|l| strip_ansi(&l)).collect()
    }
}

impl Drop for Camgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
