//! camgate: plays RTSP cameras in the browser over WebRTC.
//!
//! This binary wires the pieces: configuration, the built-in demo camera, the mio event loop
//! (`camgate-io`) driving the sans-IO gateway (`camgate-core`), and the web side (`web`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camgate_core::gateway::{DemoConfig, Gateway, GatewayConfig};
use camgate_core::rtsp::auth::Credentials;
use camgate_io::{EventLoop, EventLoopConfig, ListenerKind, NoWeb, WorkerLink};
use clap::Parser;

use camgate::config::{self, Cli, Config};
use camgate::{access, demo, tls, web};

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
        .with_ansi(config.log_color && std::io::stdout().is_terminal())
        .init();
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The event loop of worker 0, which holds the RTSP server; if the RTSP server's port is
/// taken by another program (MediaMTX, go2rtc and many NVRs default to 8554), a warning and
/// the loop without it: the RTSP server and the demo are conveniences that must not stop
/// camgate.
fn first_loop(loop_config: EventLoopConfig) -> Result<EventLoop, String> {
    let e = match EventLoop::new(&loop_config) {
        Ok(l) => return Ok(l),
        Err(e) => e,
    };
    let Some(addr) = loop_config.rtsp_server else {
        return Err(e.to_string());
    };
    if e.kind() != std::io::ErrorKind::AddrInUse {
        return Err(e.to_string());
    }
    // Another listener's port would still be taken without the RTSP server: then fail.
    let without = EventLoop::new(&EventLoopConfig {
        rtsp_server: None,
        ..loop_config
    })
    .map_err(|_| e.to_string())?;
    tracing::warn!(
        "RTSP server and demo camera off: port {} on {} (or their UDP pair) is taken by another \
         program ({e}); camgate runs without them. Move them with --rtsp-server ADDR:PORT \
         (rtsp_server in the config file, and rtsp_server_udp_port), or turn them off with \
         --rtsp-server off",
        addr.port(),
        addr.ip()
    );
    Ok(without)
}

fn run(config: &Config) -> Result<(), String> {
    let mut listeners = vec![
        (
            ListenerKind::WebSocket,
            SocketAddr::new(config.bind, config.ws_port),
        ),
        (
            ListenerKind::Http,
            SocketAddr::new(config.bind, config.http_port),
        ),
    ];
    let tls = if config.tls {
        let ips: Vec<_> = config
            .announce_ips
            .iter()
            .copied()
            .chain([config.bind])
            .collect();
        let tls = tls::load(config.tls_cert.as_deref(), config.tls_key.as_deref(), &ips)?;
        if tls.self_signed {
            tracing::info!(
                "TLS: self-signed certificate, SHA-256 fingerprint {}",
                tls.fingerprint
            );
        } else {
            tracing::info!(
                "TLS: certificate {}, SHA-256 fingerprint {}",
                config
                    .tls_cert
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display(),
                tls.fingerprint
            );
        }
        listeners.push((
            ListenerKind::WssTls,
            SocketAddr::new(config.bind, config.wss_port),
        ));
        listeners.push((
            ListenerKind::HttpsTls,
            SocketAddr::new(config.bind, config.https_port),
        ));
        Some(tls.config)
    } else {
        None
    };

    let camera_tls = Arc::new(config.camera_tls()?);
    if config.rtsps_verify == config::RtspsVerifySetting::None {
        tracing::warn!(
            "rtsps_verify = \"none\": rtsps:// cameras without a tls_fingerprint are not \
             authenticated; anyone on the path can read or replace their video"
        );
    } else if !camera_tls.has_system_roots() {
        tracing::info!(
            "no root certificates in the system store: rtsps:// cameras need a tls_fingerprint"
        );
    }
    let workers = config.worker_count();
    let mut loops = Vec::with_capacity(workers);
    for worker in 0..workers {
        // The first worker holds the web listeners (signaling is light); every worker has
        // its own WebRTC socket, so media never crosses threads.
        let loop_config = EventLoopConfig {
            listeners: if worker == 0 {
                listeners.clone()
            } else {
                Vec::new()
            },
            udp: config.webrtc_sockets_of(worker),
            ice_tcp: config.ice_tcp_sockets_of(worker),
            rtsp_client_address: config.rtsp_client_address,
            rtsp_udp_ports: (config.rtsp_udp_port_min, config.rtsp_udp_port_max),
            udp_gso: config.udp_gso,
            camera_tls: camera_tls.clone(),
            rtsp_server: if worker == 0 {
                config.rtsp_server
            } else {
                None
            },
            rtsp_server_udp_port: config.rtsp_server_udp_port,
        };
        loops.push(if worker == 0 {
            first_loop(loop_config)?
        } else {
            EventLoop::new(&loop_config).map_err(|e| e.to_string())?
        });
    }
    let demo = match loops[0].rtsp_server_addr() {
        Some(_) if config.demo && config.streams.contains_key(demo::NAME) => {
            tracing::info!("demo camera off: the named stream \"demo\" takes its name");
            None
        }
        Some(addr) if config.demo => {
            let clip = demo::shipped_clip()?;
            let url = demo::url(addr);
            tracing::info!("demo camera at {url}");
            Some(DemoConfig { url, clip })
        }
        _ => None,
    };
    let default_url = demo.as_ref().map(|d| d.url.clone()).unwrap_or_default();
    let mut candidates = Vec::new();
    for (worker, event_loop) in loops.iter().enumerate() {
        let mut mine = Vec::new();
        if let Some(addr) = event_loop.rtsp_server_addr() {
            tracing::info!("RTSP server for players on rtsp://{addr}/NAME");
        }
        for (kind, addr) in event_loop.local_addrs() {
            match kind {
                Some(ListenerKind::WebSocket) => {
                    tracing::info!("signaling (Flashphoner WebSocket) on ws://{addr}")
                }
                Some(ListenerKind::Http) => tracing::info!("player page on http://{addr}/"),
                Some(ListenerKind::WssTls) => {
                    tracing::info!("signaling (Flashphoner WebSocket) on wss://{addr}")
                }
                Some(ListenerKind::HttpsTls) => tracing::info!("player page on https://{addr}/"),
                None => {
                    tracing::info!(worker, "WebRTC media on udp {addr}");
                    mine.push(addr);
                }
            }
        }
        let tcp = event_loop.ice_tcp_addrs();
        for addr in &tcp {
            tracing::info!(worker, "WebRTC media on tcp {addr} (ICE-TCP)");
        }
        candidates.push((mine, tcp));
    }
    tracing::info!(
        workers,
        "{workers} event loop(s); each camera is pulled by one of them"
    );
    let placements = (workers > 1).then(|| camgate_io::workers::placements(workers));
    let links = WorkerLink::link_all(loops.iter().map(|l| l.waker()).collect());
    // DTLS through OpenSSL for every viewer (str0m's default refuses RSA client certificates):
    // installed before any Rtc is built. One certificate for every viewer on every worker;
    // core makes no keys itself.
    let crypto = camgate::dtls::crypto_provider();
    let dtls_cert = crypto.dtls_provider.generate_certificate();
    crypto.install_process_default();
    let stun_servers = camgate::ice::resolve_stun_servers(&config.stun_servers)?;
    if !stun_servers.is_empty() {
        tracing::info!(
            "full ICE with STUN servers {}: asking for the media ports' public addresses",
            config.stun_servers.join(", ")
        );
    }
    let first_loop_rtsp_udp = loops.first().and_then(|l| l.rtsp_server_udp_ports());
    if let Some((rtp, rtcp)) = first_loop_rtsp_udp {
        tracing::info!("RTSP server's UDP ports for players: RTP {rtp}, RTCP {rtcp}");
    }
    let rtsp_server = |worker: usize| camgate_core::rtsp::server::ServerConfig {
        session_timeout: Duration::from_secs(config.rtsp_session_timeout_secs.max(1)),
        udp_server_ports: if worker == 0 {
            first_loop_rtsp_udp
        } else {
            None
        },
        ..Default::default()
    };
    let gateway_config = |worker: usize, (candidates, tcp_candidates)| GatewayConfig {
        rtsp_server: rtsp_server(worker),
        candidates,
        tcp_candidates,
        rtsp: config.rtsp(),
        stream_linger: Duration::from_secs(config.stream_linger_secs),
        // At least a second: a browser needs a few round trips to connect.
        ice_timeout: Duration::from_secs(config.ice_timeout_secs.max(1)),
        max_payload: config.max_rtp_payload,
        max_streams: config.max_streams,
        max_viewers: config.max_viewers,
        max_viewers_per_stream: config.max_viewers_per_stream,
        player_queue: camgate_core::rtsp::server::MediaOutConfig {
            max_queued: config.rtsp_player_queue_bytes,
            ..Default::default()
        },
        placement: placements.as_ref().map(|p| p[worker].clone()),
        viewer_spread_margin: config.viewer_spread_margin,
        // Core draws no OS randomness: each worker's gateway is seeded from it here.
        seed: ring::rand::generate(&ring::rand::SystemRandom::new())
            .map_or(0, |r| u64::from_ne_bytes(r.expose())),
        dtls_cert: dtls_cert.clone(),
        stun_servers: stun_servers.clone(),
        host_rules: config.host_rules(),
        named_streams: config
            .streams
            .iter()
            .map(|(name, s)| (name.clone(), s.uri.clone()))
            .chain(demo.iter().map(|d| (demo::NAME.to_owned(), d.url.clone())))
            .collect(),
        demo: demo.clone(),
        rtsp_users: config
            .streams
            .iter()
            .flat_map(|(name, s)| {
                s.rtsp_users.iter().map(|u| {
                    let c = Credentials::new(u.user.clone(), u.password.clone());
                    (name.clone(), c)
                })
            })
            .collect(),
        ..Default::default()
    };
    let mut threads = Vec::new();
    let mut first = None;
    for (((worker, mut event_loop), link), candidates) in
        loops.into_iter().enumerate().zip(links).zip(candidates)
    {
        if workers > 1 {
            event_loop.set_link(link);
        }
        let gateway_config = gateway_config(worker, candidates);
        if worker == 0 {
            first = Some((event_loop, gateway_config));
            continue;
        }
        let thread = std::thread::Builder::new()
            .name(format!("camgate-worker-{worker}"))
            .spawn(move || {
                let mut gateway = Gateway::new(gateway_config);
                if let Err(e) = event_loop.run(&mut gateway, &mut NoWeb, &mut |_| true) {
                    // A worker's streams can't move elsewhere: stop rather than serve half.
                    tracing::error!(worker, "event loop: {e}");
                    std::process::exit(1);
                }
            })
            .map_err(|e| format!("cannot start worker {worker}: {e}"))?;
        threads.push(thread);
    }
    let (mut event_loop, gateway_config) = first.expect("at least one worker");
    let mut gateway = Gateway::new(gateway_config);
    let access = access::Access::new(config);
    if access.viewer_tokens() {
        tracing::info!(
            "access control: APIs need the auth_token; playing needs it or a viewer token"
        );
    } else if access.token.is_some() {
        tracing::info!("access control: APIs and signaling need the auth_token");
    }
    if !config.allowed_hosts.is_empty() {
        tracing::info!(hosts = ?config.allowed_hosts, "cameras restricted to allowed_hosts");
    }
    for name in config.streams.keys() {
        tracing::info!(stream = %name, "named stream configured");
    }
    for (name, uri) in access.pulled_at_start() {
        match gateway.startup(uri, Instant::now()) {
            Ok(_) => tracing::info!(stream = %name, "named stream pulled at start"),
            Err(e) => tracing::warn!(stream = %name, "cannot pull at start: {e:?}"),
        }
    }
    let mut web = web::Web::new(web::WebSettings {
        default_url,
        max_ws_message: config.max_ws_message,
        max_http_body: config.max_http_body,
        access,
        tls,
        ice_servers: config.ice_servers.clone(),
    });
    event_loop
        .run(&mut gateway, &mut web, &mut |_| true)
        .map_err(|e| format!("event loop: {e}"))?;
    Ok(())
}
