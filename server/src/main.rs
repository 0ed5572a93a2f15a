//! camgate: plays RTSP cameras in the browser over WebRTC.
//!
//! This binary wires the pieces: configuration, the built-in demo camera, the mio event loop
//! (`camgate-io`) driving the sans-IO gateway (`camgate-core`), and the web side (`web`).

mod config;
mod demo;
mod rest;
mod web;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use camgate_core::hub::{Gateway, GatewayConfig};
use camgate_io::{EventLoop, EventLoopConfig, ListenerKind};
use clap::Parser;

use crate::config::{Cli, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("camgate: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config) -> Result<(), String> {
    let demo = if config.demo {
        let source = demo::DemoSource::start(config.demo_bind, demo::DEFAULT_PATH)
            .map_err(|e| format!("demo camera on {}: {e}", config.demo_bind))?;
        tracing::info!("demo camera at {}", source.url());
        Some(source)
    } else {
        None
    };
    let default_url = demo.as_ref().map(|d| d.url()).unwrap_or_default();

    let loop_config = EventLoopConfig {
        listeners: vec![
            (
                ListenerKind::WebSocket,
                SocketAddr::new(config.bind, config.ws_port),
            ),
            (
                ListenerKind::Http,
                SocketAddr::new(config.bind, config.http_port),
            ),
        ],
        udp: config.webrtc_sockets(),
        rtsp_client_address: config.rtsp_client_address,
    };
    let mut event_loop = EventLoop::new(&loop_config).map_err(|e| e.to_string())?;
    let mut candidates = Vec::new();
    for (kind, addr) in event_loop.local_addrs() {
        match kind {
            Some(ListenerKind::WebSocket) => {
                tracing::info!("signaling (Flashphoner WebSocket) on ws://{addr}")
            }
            Some(ListenerKind::Http) => tracing::info!("player page on http://{addr}/"),
            None => {
                tracing::info!("WebRTC media on udp {addr}");
                candidates.push(addr);
            }
        }
    }
    let mut gateway = Gateway::new(GatewayConfig {
        candidates,
        rtsp: config.rtsp(),
        stream_linger: Duration::from_secs(config.stream_linger_secs),
        max_payload: config.max_rtp_payload,
        ..Default::default()
    });
    let mut web = web::Web::new(default_url);
    event_loop
        .run(&mut gateway, &mut web, &mut |_| true)
        .map_err(|e| format!("event loop: {e}"))?;
    drop(demo);
    Ok(())
}
