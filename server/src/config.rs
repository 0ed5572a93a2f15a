//! camgate's settings: built-in defaults, overridden by an optional TOML file, overridden by
//! command-line flags. With neither, camgate serves the player page and the demo camera.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use camgate_io::camera_tls::{CameraTls, CertPin, RtspsVerify};
use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP and WebSocket listeners bind to.
    pub bind: IpAddr,
    /// WebSocket signaling port (Flashphoner Web SDK: ws://host:8080).
    pub ws_port: u16,
    /// HTTP port: player page and APIs.
    pub http_port: u16,
    /// Secure WebSocket signaling port (wss://host:8443).
    pub wss_port: u16,
    /// HTTPS port: player page and APIs inside TLS.
    pub https_port: u16,
    /// Serve HTTPS and WSS at all.
    pub tls: bool,
    /// PEM certificate chain for HTTPS/WSS. Unset: a self-signed certificate made at start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Bearer token required by the REST/WHEP/metrics APIs and as the SDK's `authToken`.
    /// Unset: no access control.
    pub auth_token: Option<String>,
    /// Secret (at least 32 characters) that signs viewer tokens: each lets its bearer play one
    /// stream (or the streams under a prefix) until it expires, and nothing else. Needs
    /// `auth_token` (the admin's). Format in docs/SECURITY.md. Unset: no viewer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_token_secret: Option<String>,
    /// Camera hosts viewers may ask for: host names, IP addresses or CIDR blocks.
    /// Empty: any host.
    pub allowed_hosts: Vec<String>,
    /// Camera hosts never connected to for a client, whatever `allowed_hosts` says (e.g.
    /// link-local and cloud metadata addresses). Checked on the address connected to.
    pub denied_hosts: Vec<String>,
    /// Origins whose pages may call the APIs and open signaling sessions; `["*"]`: any.
    /// camgate's own pages (same host) always may.
    pub cors_origins: Vec<String>,
    /// Largest WebSocket signaling message (bytes).
    pub max_ws_message: usize,
    /// Largest HTTP request body (bytes), e.g. a WHEP offer.
    pub max_http_body: usize,
    /// Cameras pulled at once; past it a play gets FAILED "Too many streams", REST 503.
    pub max_streams: usize,
    /// Viewers in all; past it a play gets FAILED "Too many viewers".
    pub max_viewers: usize,
    /// Viewers of one stream; past it a play gets FAILED "Too many viewers of this stream".
    pub max_viewers_per_stream: usize,
    /// Bytes queued for one RTSP player above which it skips to the next keyframe; still behind
    /// 10 s later, it is dropped.
    pub rtsp_player_queue_bytes: usize,
    /// UDP port shared by every WebRTC viewer (of the first worker; worker i uses this + i).
    pub webrtc_port: u16,
    /// ICE over TCP (RFC 6544): browsers that cannot use UDP reach a TCP listener per worker
    /// (passive TCP candidates in every answer, below UDP in priority).
    pub ice_tcp: bool,
    /// TCP port of the first worker's ICE-TCP listener (worker i uses this + i). Unset: the
    /// same number as `webrtc_port`.
    pub ice_tcp_port: Option<u16>,
    /// Event loops (worker threads); 0: one per CPU core.
    pub workers: usize,
    /// How many more viewers a camera's worker may serve than the least-loaded worker before
    /// new viewers of that camera are served by the least-loaded worker (from a mirror).
    pub viewer_spread_margin: usize,
    /// Send a frame's packets to one viewer as one UDP GSO message (plain datagrams if false).
    pub udp_gso: bool,
    /// Addresses announced to browsers as ICE host candidates. Empty: every address of this
    /// machine (IPv4), loopback included.
    pub announce_ips: Vec<IpAddr>,
    /// STUN servers ("stun:host:port") camgate asks for the public address of its media
    /// port(s), from that port: answers then carry it as a server-reflexive candidate and
    /// viewers run full ICE, so camgate's own checks open the NAT toward the browser. For a
    /// NAT that forwards only the web port.
    pub stun_servers: Vec<String>,
    /// STUN/TURN servers handed to browsers: in the player page and as WHEP `Link` headers.
    pub ice_servers: Vec<crate::ice::IceServerConfig>,
    /// Local address camera connections are made from (e.g. a VPN interface's). Unset: the OS picks.
    pub rtsp_client_address: Option<IpAddr>,
    /// How cameras send RTP: "auto" (UDP, falling back to TCP on 461 or silence), "tcp", "udp".
    pub rtsp_transport: TransportSetting,
    /// How `rtsps://` camera certificates are checked: "pinned-or-system" (a stream's
    /// `tls_fingerprint` if it has one, else the system's roots), "system", or "none".
    pub rtsps_verify: RtspsVerifySetting,
    /// Follow a camera's 3xx redirect (at most 3 in a row).
    pub rtsp_follow_redirects: bool,
    /// Send cnonce/nc/qop in Digest answers; false for cameras that reject them (RFC 2069 style).
    pub rtsp_digest_cnonce: bool,
    /// RTP over UDP: packets a reorder buffer holds at most, and how long it waits for a gap.
    pub rtsp_reorder_depth: usize,
    pub rtsp_reorder_window_ms: u64,
    /// A track that can't play (SETUP refused, undecodable audio) fails the whole stream
    /// instead of being left out.
    pub fail_on_track_error: bool,
    /// Local UDP ports for cameras' RTP/RTCP (pairs: even RTP, odd RTCP).
    pub rtsp_udp_port_min: u16,
    pub rtsp_udp_port_max: u16,
    /// Seconds to wait for a camera's TCP connection.
    pub rtsp_connect_timeout_secs: u64,
    /// Seconds to wait for each RTSP response.
    pub rtsp_response_timeout_secs: u64,
    /// Seconds without any data from a playing camera before it counts as dead.
    pub rtsp_no_data_timeout_secs: u64,
    /// Seconds a camera connection stays open after its last viewer left.
    pub stream_linger_secs: u64,
    /// Seconds a viewer's WebRTC connection (ICE and DTLS) may take to come up before it gets
    /// FAILED with what was tried (no check from the browser, or no DTLS).
    pub ice_timeout_secs: u64,
    /// Largest RTP payload sent to browsers (bytes); bigger NAL units are re-fragmented.
    pub max_rtp_payload: usize,
    /// Serve the built-in demo camera: the RTSP server's stream `demo`, which browsers play as
    /// `rtsp://127.0.0.1:PORT/demo` (needs `rtsp_server`).
    pub demo: bool,
    /// Where the RTSP server serves the named streams and the demo camera to RTSP players
    /// (`rtsp://ADDR/NAME`); "off" in the file (None): off. Without RTSP users a stream is
    /// served to loopback players only.
    #[serde(with = "addr_or_off")]
    pub rtsp_server: Option<SocketAddr>,
    /// Seconds an RTSP player's session lives without a request or receiver report (TCP data,
    /// or RTCP to the server's UDP ports); announced in `Session: …;timeout=`.
    pub rtsp_session_timeout_secs: u64,
    /// The RTSP server's RTP port for UDP players (even; RTCP on the next port), so a firewall
    /// can pass them; unset: a pair chosen at start (and logged).
    pub rtsp_server_udp_port: Option<u16>,
    /// Log filter, e.g. "info" or "camgate=debug,str0m=warn".
    pub log: String,
    /// Colour log lines (ANSI) when writing to a terminal.
    pub log_color: bool,
    /// Named streams: browsers play NAME and never see the camera URL with its credentials.
    pub streams: BTreeMap<String, NamedStream>,
}

/// A camera published under a name (`[streams.NAME]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedStream {
    /// The camera URL, credentials included.
    pub uri: String,
    /// Connect at start and stay connected without viewers (like REST startup).
    #[serde(default)]
    pub pull_at_start: bool,
    /// `rtsps://` only: the SHA-256 fingerprint of the camera's certificate
    /// ("sha256:" and 64 hex digits), trusted whoever signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
    /// Who may play it from camgate's RTSP server (`rtsp_server`), with Basic or Digest. Without
    /// any, only players on this host may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rtsp_users: Vec<RtspUser>,
}

/// A user of the RTSP server for one named stream.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtspUser {
    pub user: String,
    pub password: String,
}

/// Never prints the password.
impl std::fmt::Debug for RtspUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspUser")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ws_port: 8080,
            http_port: 8081,
            wss_port: 8443,
            https_port: 8444,
            tls: true,
            tls_cert: None,
            tls_key: None,
            auth_token: None,
            viewer_token_secret: None,
            allowed_hosts: Vec::new(),
            denied_hosts: Vec::new(),
            cors_origins: vec!["*".into()],
            max_ws_message: 256 * 1024,
            max_http_body: 64 * 1024,
            max_streams: 256,
            max_viewers: 2000,
            max_viewers_per_stream: 500,
            rtsp_player_queue_bytes: camgate_core::rtsp::server::MediaOutConfig::default()
                .max_queued,
            webrtc_port: 20000,
            ice_tcp: true,
            ice_tcp_port: None,
            workers: 0,
            viewer_spread_margin: 4,
            udp_gso: true,
            announce_ips: Vec::new(),
            stun_servers: Vec::new(),
            ice_servers: Vec::new(),
            rtsp_client_address: None,
            rtsp_transport: TransportSetting::Auto,
            rtsps_verify: RtspsVerifySetting::PinnedOrSystem,
            rtsp_follow_redirects: true,
            rtsp_digest_cnonce: true,
            rtsp_reorder_depth: 64,
            rtsp_reorder_window_ms: 100,
            fail_on_track_error: false,
            rtsp_udp_port_min: 30000,
            rtsp_udp_port_max: 39999,
            rtsp_connect_timeout_secs: 10,
            rtsp_response_timeout_secs: 10,
            rtsp_no_data_timeout_secs: 10,
            stream_linger_secs: 5,
            ice_timeout_secs: 10,
            max_rtp_payload: 1200,
            demo: true,
            rtsp_server: Some(DEFAULT_RTSP_SERVER),
            rtsp_session_timeout_secs: 60,
            rtsp_server_udp_port: None,
            log: "info,str0m=warn,dimpl=warn".into(),
            log_color: true,
            streams: BTreeMap::new(),
        }
    }
}

/// `rtsp_transport`: how cameras are asked to send RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TransportSetting {
    /// UDP first; TCP-interleaved when the camera refuses UDP (461) or no packet arrives in 3 s.
    Auto,
    Tcp,
    Udp,
}

/// `rtsps_verify`: how `rtsps://` camera certificates are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RtspsVerifySetting {
    /// Roots from the system store and the URL's host name; a pin must match as well.
    System,
    /// A stream's pin if it has one (self-signed cameras), else as `system`.
    PinnedOrSystem,
    /// Any certificate for streams without a pin (no protection against interception).
    None,
}

/// Command line: every flag overrides the config file.
#[derive(Debug, Parser)]
#[command(
    name = "camgate",
    version,
    about = "RTSP to WebRTC gateway: play IP cameras in the browser"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (defaults + file + flags) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    #[arg(long)]
    pub bind: Option<IpAddr>,
    #[arg(long)]
    pub ws_port: Option<u16>,
    #[arg(long)]
    pub http_port: Option<u16>,
    #[arg(long)]
    pub webrtc_port: Option<u16>,
    /// Don't offer ICE over TCP (UDP candidates only).
    #[arg(long)]
    pub no_ice_tcp: bool,
    /// TCP port of the ICE-TCP listener (default: the WebRTC UDP port).
    #[arg(long)]
    pub ice_tcp_port: Option<u16>,
    /// Event loops (worker threads); 0: one per CPU core.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Viewers a camera's worker may serve above the least-loaded worker before new viewers of
    /// it go there (from a mirror); 0: spread as evenly as possible.
    #[arg(long)]
    pub viewer_spread_margin: Option<usize>,
    /// Send plain datagrams instead of UDP GSO messages.
    #[arg(long)]
    pub no_udp_gso: bool,
    #[arg(long)]
    pub wss_port: Option<u16>,
    #[arg(long)]
    pub https_port: Option<u16>,
    /// Don't serve HTTPS and WSS.
    #[arg(long)]
    pub no_tls: bool,
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Bearer token for the APIs and signaling (prefer the config file: flags show in `ps`).
    #[arg(long)]
    pub auth_token: Option<String>,
    /// Secret that signs viewer tokens (prefer the config file: flags show in `ps`).
    #[arg(long)]
    pub viewer_token_secret: Option<String>,
    /// Camera host viewers may ask for (repeat for several; host, IP or CIDR).
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// Camera host never connected to for a client (repeat; host, IP or CIDR).
    #[arg(long = "denied-host")]
    pub denied_hosts: Vec<String>,
    /// Origin whose pages may call the APIs and signaling (repeat; default any).
    #[arg(long = "cors-origin")]
    pub cors_origins: Vec<String>,
    /// Address announced to browsers (repeat for several).
    #[arg(long = "announce-ip")]
    pub announce_ips: Vec<IpAddr>,
    /// STUN server for camgate's own public address, "stun:host:port" (repeat for several).
    #[arg(long = "stun-server")]
    pub stun_servers: Vec<String>,
    #[arg(long)]
    pub rtsp_client_address: Option<IpAddr>,
    /// auto, tcp or udp.
    #[arg(long)]
    pub rtsp_transport: Option<TransportSetting>,
    /// system, pinned-or-system or none.
    #[arg(long)]
    pub rtsps_verify: Option<RtspsVerifySetting>,
    #[arg(long)]
    pub stream_linger_secs: Option<u64>,
    #[arg(long)]
    pub ice_timeout_secs: Option<u64>,
    /// Don't start the built-in demo camera.
    #[arg(long)]
    pub no_demo: bool,
    /// Serve the named streams and the demo camera to RTSP players on ADDR:PORT
    /// (default 0.0.0.0:8554), or "off".
    #[arg(long, value_parser = parse_addr_or_off)]
    pub rtsp_server: Option<AddrOrOff>,
    #[arg(long)]
    pub log: Option<String>,
}

impl Config {
    pub fn load(cli: &Cli) -> Result<Config, String> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let mut table: toml::Table =
                    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                // Older configs moved the demo's own server; the demo is now the RTSP server's
                // stream `demo`, so the setting is ignored rather than refusing to start.
                if table.remove("demo_bind").is_some() {
                    eprintln!(
                        "warning: {}: demo_bind is no longer used; the demo camera is the RTSP \
                         server's stream \"demo\" (move it with rtsp_server)",
                        path.display()
                    );
                }
                table
                    .try_into()
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(v) = cli.bind {
            config.bind = v;
        }
        if let Some(v) = cli.ws_port {
            config.ws_port = v;
        }
        if let Some(v) = cli.http_port {
            config.http_port = v;
        }
        if let Some(v) = cli.webrtc_port {
            config.webrtc_port = v;
        }
        if cli.no_ice_tcp {
            config.ice_tcp = false;
        }
        if cli.ice_tcp_port.is_some() {
            config.ice_tcp_port = cli.ice_tcp_port;
        }
        if let Some(v) = cli.workers {
            config.workers = v;
        }
        if let Some(v) = cli.viewer_spread_margin {
            config.viewer_spread_margin = v;
        }
        if cli.no_udp_gso {
            config.udp_gso = false;
        }
        if let Some(v) = cli.wss_port {
            config.wss_port = v;
        }
        if let Some(v) = cli.https_port {
            config.https_port = v;
        }
        if cli.no_tls {
            config.tls = false;
        }
        if cli.tls_cert.is_some() {
            config.tls_cert = cli.tls_cert.clone();
        }
        if cli.tls_key.is_some() {
            config.tls_key = cli.tls_key.clone();
        }
        if cli.auth_token.is_some() {
            config.auth_token = cli.auth_token.clone();
        }
        if cli.viewer_token_secret.is_some() {
            config.viewer_token_secret = cli.viewer_token_secret.clone();
        }
        if !cli.allowed_hosts.is_empty() {
            config.allowed_hosts = cli.allowed_hosts.clone();
        }
        if !cli.denied_hosts.is_empty() {
            config.denied_hosts = cli.denied_hosts.clone();
        }
        if !cli.cors_origins.is_empty() {
            config.cors_origins = cli.cors_origins.clone();
        }
        if !cli.announce_ips.is_empty() {
            config.announce_ips = cli.announce_ips.clone();
        }
        if !cli.stun_servers.is_empty() {
            config.stun_servers = cli.stun_servers.clone();
        }
        if let Some(t) = cli.rtsp_transport {
            config.rtsp_transport = t;
        }
        if let Some(v) = cli.rtsps_verify {
            config.rtsps_verify = v;
        }
        if cli.rtsp_client_address.is_some() {
            config.rtsp_client_address = cli.rtsp_client_address;
        }
        if let Some(v) = cli.stream_linger_secs {
            config.stream_linger_secs = v;
        }
        if let Some(v) = cli.ice_timeout_secs {
            config.ice_timeout_secs = v;
        }
        if cli.no_demo {
            config.demo = false;
        }
        if let Some(AddrOrOff(v)) = cli.rtsp_server {
            config.rtsp_server = v;
        }
        if let Some(v) = &cli.log {
            config.log = v.clone();
        }
        config.check()?;
        Ok(config)
    }

    /// `allowed_hosts` and `denied_hosts` as rules (entries were checked at load).
    pub fn host_rules(&self) -> crate::access::HostRules {
        let parse = |list: &[String]| {
            list.iter()
                .filter_map(|e| crate::access::HostRule::parse(e).ok())
                .collect()
        };
        crate::access::HostRules {
            allow: parse(&self.allowed_hosts),
            deny: parse(&self.denied_hosts),
        }
    }

    /// Refuses settings that would only fail later, far from their cause.
    fn check(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls_cert and tls_key go together".into());
        }
        if let Some(secret) = &self.viewer_token_secret {
            if secret.len() < 32 {
                return Err(
                    "viewer_token_secret: at least 32 characters (e.g. `openssl rand -hex 32`)"
                        .into(),
                );
            }
            // Without an admin token anyone could mint viewer tokens and use REST.
            if self.auth_token.as_deref().is_none_or(str::is_empty) {
                return Err("viewer_token_secret needs auth_token (the admin token)".into());
            }
        }
        if let Some(port) = self.rtsp_server_udp_port {
            if port % 2 != 0 || port == 0 {
                return Err(format!(
                    "rtsp_server_udp_port = {port}: an even port (RTP; RTCP takes the next one)"
                ));
            }
        }
        for entry in &self.allowed_hosts {
            crate::access::HostRule::parse(entry).map_err(|e| format!("allowed_hosts: {e}"))?;
        }
        for entry in &self.denied_hosts {
            crate::access::HostRule::parse(entry).map_err(|e| format!("denied_hosts: {e}"))?;
        }
        for (name, s) in &self.streams {
            if name.is_empty() || name.contains("://") || name.contains('/') {
                return Err(format!(
                    "stream name {name:?}: a name has no \"://\" and no \"/\""
                ));
            }
            camgate_core::rtsp::RtspUrl::parse(&s.uri)
                .map_err(|e| format!("stream {name:?}: {e}"))?;
        }
        self.camera_pins()?;
        Ok(())
    }

    /// The named streams' `tls_fingerprint`s by camera (host, port): a certificate belongs to
    /// the server, so two streams of one camera can't pin different ones.
    fn camera_pins(&self) -> Result<HashMap<(String, u16), CertPin>, String> {
        let mut pins: HashMap<(String, u16), (CertPin, &str)> = HashMap::new();
        for (name, s) in &self.streams {
            let Some(fingerprint) = &s.tls_fingerprint else {
                continue;
            };
            let url = camgate_core::rtsp::RtspUrl::parse(&s.uri)
                .map_err(|e| format!("stream {name:?}: {e}"))?;
            if !url.is_tls() {
                return Err(format!(
                    "stream {name:?}: tls_fingerprint needs an rtsps:// uri"
                ));
            }
            let pin = CertPin::parse(fingerprint)
                .map_err(|e| format!("stream {name:?}: tls_fingerprint {e}"))?;
            let key = (url.host().to_ascii_lowercase(), url.port());
            match pins.get(&key) {
                Some((other, other_name)) if *other != pin => {
                    return Err(format!(
                        "streams {other_name:?} and {name:?} pin different certificates \
                         for the same camera {}:{}",
                        key.0, key.1
                    ));
                }
                _ => {
                    pins.insert(key, (pin, name));
                }
            }
        }
        Ok(pins.into_iter().map(|(k, (pin, _))| (k, pin)).collect())
    }

    /// Certificate checks for `rtsps://` cameras (reads the system's root certificates).
    pub fn camera_tls(&self) -> Result<CameraTls, String> {
        let verify = match self.rtsps_verify {
            RtspsVerifySetting::System => RtspsVerify::System,
            RtspsVerifySetting::PinnedOrSystem => RtspsVerify::PinnedOrSystem,
            RtspsVerifySetting::None => RtspsVerify::None,
        };
        Ok(CameraTls::new(verify, self.camera_pins()?))
    }

    /// The effective settings as TOML. Unset options are printed commented out, so the output
    /// lists every setting and still parses back to the same configuration.
    pub fn to_toml(&self) -> String {
        let mut text = toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot print config: {e}\n"));
        let mut unset = Vec::new();
        if self.tls_cert.is_none() {
            unset.push("# tls_cert = \"/etc/camgate/cert.pem\"   # unset: self-signed");
        }
        if self.tls_key.is_none() {
            unset.push("# tls_key = \"/etc/camgate/key.pem\"");
        }
        if self.auth_token.is_none() {
            unset.push("# auth_token = \"...\"   # unset: no access control");
        }
        if self.viewer_token_secret.is_none() {
            unset.push(
                "# viewer_token_secret = \"...\"   # unset: no viewer tokens (needs auth_token)",
            );
        }
        if self.rtsp_server_udp_port.is_none() {
            unset.push("# rtsp_server_udp_port = 8000   # unset: the RTSP server's UDP pair is chosen at start");
        }
        if self.rtsp_client_address.is_none() {
            unset.push("# rtsp_client_address = \"10.8.0.2\"   # unset: the OS picks");
        }
        if self.streams.is_empty() {
            unset.push("# [streams.NAME]\n# uri = \"rtsp://user:pass@camera/stream\"\n# pull_at_start = false\n# tls_fingerprint = \"sha256:...\"   # rtsps:// only: the camera certificate's SHA-256");
        }
        if self.streams.is_empty() {
            // An empty `[streams]` says nothing; the commented example below says more.
            text = text.replace("\n[streams]\n", "\n");
        }
        // Keys must precede the first [table], so the comments go right before it.
        let at = text.find("\n[").map(|i| i + 1).unwrap_or(text.len());
        let comments: String = unset.iter().map(|l| format!("{l}\n")).collect();
        text.insert_str(at, &comments);
        format!("{}{text}", self.access_summary())
    }

    /// Who may do what, in comment lines: the first thing `--print-config` says.
    fn access_summary(&self) -> String {
        let token = match (&self.auth_token, &self.viewer_token_secret) {
            (Some(_), Some(_)) => "REST, /metrics and token minting need auth_token (admin); playing (WHEP, signaling) needs auth_token or a viewer token for that stream (viewer_token_secret)",
            (Some(_), None) => "REST, /metrics, WHEP and signaling need auth_token (no viewer tokens)",
            (None, _) => "OPEN: no auth_token, anyone who reaches the web ports may use REST, /metrics, WHEP and signaling",
        };
        let hosts = match (self.allowed_hosts.len(), self.denied_hosts.len()) {
            (0, 0) => "viewers may make camgate connect to ANY camera host (allowed_hosts is empty)".to_owned(),
            (0, d) => format!("viewers' camera hosts: any but {d} denied_hosts entries"),
            (a, d) => format!("viewers' camera hosts: {a} allowed_hosts entries, {d} denied_hosts entries, checked on every connection"),
        };
        format!("# access: {token};\n# {hosts}. See docs/CONFIG.md before exposing camgate.\n")
    }

    pub fn rtsp(&self) -> camgate_core::rtsp::RtspConfig {
        camgate_core::rtsp::RtspConfig {
            connect_timeout: Duration::from_secs(self.rtsp_connect_timeout_secs),
            response_timeout: Duration::from_secs(self.rtsp_response_timeout_secs),
            no_data_timeout: Duration::from_secs(self.rtsp_no_data_timeout_secs),
            transport: match self.rtsp_transport {
                TransportSetting::Auto => camgate_core::rtsp::RtspTransport::Auto,
                TransportSetting::Tcp => camgate_core::rtsp::RtspTransport::Tcp,
                TransportSetting::Udp => camgate_core::rtsp::RtspTransport::Udp,
            },
            follow_redirects: self.rtsp_follow_redirects,
            digest_cnonce: self.rtsp_digest_cnonce,
            reorder_depth: self.rtsp_reorder_depth.clamp(1, 4096),
            reorder_window: Duration::from_millis(self.rtsp_reorder_window_ms.min(2000)),
            fail_on_track_error: self.fail_on_track_error,
            ..Default::default()
        }
    }

    /// How many event loops run: `workers`, or one per core when it is 0 (at most 64).
    pub fn worker_count(&self) -> usize {
        let n = match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        n.clamp(1, MAX_WORKERS)
    }

    /// The WebRTC sockets to bind and the address each is announced as.
    /// With announced addresses, one socket on the bind address serves them all.
    pub fn webrtc_sockets(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.webrtc_sockets_of(0)
    }

    /// The WebRTC sockets of worker `worker`: on port `webrtc_port + worker` (0 stays 0:
    /// any free port).
    pub fn webrtc_sockets_of(&self, worker: usize) -> Vec<(SocketAddr, SocketAddr)> {
        self.sockets_on(self.webrtc_port, worker)
    }

    /// The ICE-TCP listeners of worker `worker` (none when `ice_tcp` is off): the same
    /// addresses as its UDP sockets, on `ice_tcp_port` (default `webrtc_port`) + `worker`.
    pub fn ice_tcp_sockets_of(&self, worker: usize) -> Vec<(SocketAddr, SocketAddr)> {
        if !self.ice_tcp {
            return Vec::new();
        }
        self.sockets_on(self.ice_tcp_port.unwrap_or(self.webrtc_port), worker)
    }

    fn sockets_on(&self, first_port: u16, worker: usize) -> Vec<(SocketAddr, SocketAddr)> {
        let port = match first_port {
            0 => 0,
            p => p.saturating_add(worker as u16),
        };
        if !self.announce_ips.is_empty() {
            return self
                .announce_ips
                .iter()
                .map(|ip| {
                    // `bind` of the other family (127.0.0.1 with an announced ::1) does not
                    // apply: that address is bound itself.
                    let local = if self.bind.is_unspecified()
                        || self.bind == *ip
                        || self.bind.is_ipv4() != ip.is_ipv4()
                    {
                        *ip
                    } else {
                        self.bind
                    };
                    (SocketAddr::new(local, port), SocketAddr::new(*ip, port))
                })
                .collect();
        }
        let mut ips: Vec<IpAddr> = if self.bind.is_unspecified() {
            // `bind = "::"`: IPv6 addresses too (link-local ones need a scope browsers don't
            // share, so not those); 0.0.0.0: IPv4 only.
            let ipv6 = self.bind.is_ipv6();
            if_addrs::get_if_addrs()
                .map(|list| {
                    list.into_iter()
                        .map(|i| i.ip())
                        .filter(|ip| match ip {
                            IpAddr::V4(_) => true,
                            IpAddr::V6(v6) => ipv6 && !v6.is_unicast_link_local(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            vec![self.bind]
        };
        if ips.is_empty() {
            ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        ips.sort();
        ips.dedup();
        ips.into_iter()
            .map(|ip| (SocketAddr::new(ip, port), SocketAddr::new(ip, port)))
            .collect()
    }
}

/// Where the RTSP server listens unless told otherwise: every interface, since players on other
/// hosts are what it is for; a stream without `rtsp_users` is still served to loopback only.
pub const DEFAULT_RTSP_SERVER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8554);

/// An address, or "off" (`--rtsp-server off`).
#[derive(Debug, Clone, Copy)]
pub struct AddrOrOff(pub Option<SocketAddr>);

/// "ADDR:PORT" or "off".
pub fn parse_addr_or_off(text: &str) -> Result<AddrOrOff, String> {
    match text {
        "off" => Ok(AddrOrOff(None)),
        _ => text
            .parse()
            .map(|a| AddrOrOff(Some(a)))
            .map_err(|e| format!("{text:?}: {e} (ADDR:PORT, or \"off\")")),
    }
}

/// `rtsp_server` in TOML: "ADDR:PORT" or "off".
mod addr_or_off {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.collect_str(a),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_addr_or_off(&text)
            .map(|a| a.0)
            .map_err(serde::de::Error::custom)
    }
}

/// Most event loops camgate runs, whatever `workers` says.
pub const MAX_WORKERS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = Config::default().to_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.ws_port, 8080);
        assert_eq!(back.http_port, 8081);
        assert!(back.demo);
        assert_eq!(back.rtsp_server, Some(DEFAULT_RTSP_SERVER));
        let off = Config {
            rtsp_server: None,
            ..Config::default()
        };
        let back: Config = toml::from_str(&off.to_toml()).unwrap();
        assert_eq!(back.rtsp_server, None, "\"off\" reads back");
        assert!(toml::from_str::<Config>("rtsp_server = \"nonsense\"").is_err());
    }

    #[test]
    fn print_config_says_first_whether_access_is_open() {
        let open = Config::default().to_toml();
        assert!(open.starts_with("# access: OPEN: no auth_token"), "{open}");
        assert!(open.contains("connect to ANY camera host"));
        let closed = Config {
            auth_token: Some("t".into()),
            allowed_hosts: vec!["192.0.2.0/24".into()],
            ..Config::default()
        }
        .to_toml();
        assert!(closed.starts_with("# access: REST, /metrics, WHEP and signaling need auth_token (no viewer tokens);\n# viewers' camera hosts: 1 allowed_hosts entries, 0 denied_hosts"), "{closed}");
        let viewers = Config {
            auth_token: Some("t".into()),
            viewer_token_secret: Some("s".repeat(32)),
            ..Config::default()
        }
        .to_toml();
        assert!(viewers.starts_with("# access: REST, /metrics and token minting need auth_token (admin); playing (WHEP, signaling) needs auth_token or a viewer token"), "{viewers}");
        let back: Config = toml::from_str(&viewers).unwrap();
        assert_eq!(back.viewer_token_secret, Some("s".repeat(32)));
    }

    #[test]
    fn viewer_token_secret_needs_an_admin_token_and_length() {
        let config = |token: Option<&str>, secret: &str| Config {
            auth_token: token.map(str::to_owned),
            viewer_token_secret: Some(secret.to_owned()),
            ..Config::default()
        };
        let long = "x".repeat(32);
        assert!(config(Some("admin"), &long).check().is_ok());
        assert!(config(None, &long)
            .check()
            .unwrap_err()
            .contains("needs auth_token"));
        assert!(config(Some(""), &long).check().is_err());
        assert!(config(Some("admin"), "short")
            .check()
            .unwrap_err()
            .contains("32"));
    }

    #[test]
    fn tls_fingerprints_are_checked_at_start() {
        let pin = format!("sha256:{}", "ab".repeat(32));
        let other = format!("sha256:{}", "cd".repeat(32));
        let config = |streams: &[(&str, &str, Option<&str>)]| {
            let mut text = String::from("rtsps_verify = \"system\"\n");
            for (name, uri, fp) in streams {
                text += &format!("[streams.{name}]\nuri = \"{uri}\"\n");
                if let Some(fp) = fp {
                    text += &format!("tls_fingerprint = \"{fp}\"\n");
                }
            }
            let c: Config = toml::from_str(&text).unwrap();
            assert_eq!(c.rtsps_verify, RtspsVerifySetting::System);
            c.check()
        };
        let ok = config(&[
            ("a", "rtsps://CAM.lan/1", Some(&pin)),
            ("b", "rtsps://cam.lan:322/2", Some(&pin)),
            ("c", "rtsps://cam.lan:7441/1", Some(&other)),
        ]);
        assert_eq!(ok, Ok(()));
        let same_camera = config(&[
            ("a", "rtsps://cam.lan/1", Some(&pin)),
            ("b", "rtsps://cam.lan:322/2", Some(&other)),
        ]);
        assert!(same_camera
            .unwrap_err()
            .contains("pin different certificates"));
        let plain = config(&[("a", "rtsp://cam.lan/1", Some(&pin))]);
        assert!(plain.unwrap_err().contains("needs an rtsps:// uri"));
        let bad = config(&[("a", "rtsps://cam.lan/1", Some("sha256:abc"))]);
        assert!(bad.unwrap_err().contains("not a SHA-256 fingerprint"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("no_such_setting = 1").is_err());
        let c: Config = toml::from_str("ws_port = 9000").unwrap();
        assert_eq!(c.ws_port, 9000);
        assert_eq!(c.http_port, 8081);
    }

    #[test]
    fn an_old_config_with_demo_bind_still_loads() {
        let path =
            std::env::temp_dir().join(format!("camgate-demo-bind-{}.toml", std::process::id()));
        std::fs::write(&path, "demo_bind = \"127.0.0.1:8554\"\nws_port = 9000\n").unwrap();
        let cli = Cli::parse_from(["camgate", "--config", path.to_str().unwrap()]);
        let loaded = Config::load(&cli);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.unwrap().ws_port, 9000);
    }

    #[test]
    fn ipv6_addresses_get_their_own_socket() {
        let c = Config {
            bind: "127.0.0.1".parse().unwrap(),
            announce_ips: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(
            c.webrtc_sockets(),
            vec![
                (
                    "127.0.0.1:20000".parse().unwrap(),
                    "127.0.0.1:20000".parse().unwrap()
                ),
                (
                    "[::1]:20000".parse().unwrap(),
                    "[::1]:20000".parse().unwrap()
                )
            ]
        );
        // Dual stack: every address of the machine, ::1 among them; no link-local ones.
        let dual = Config {
            bind: "::".parse().unwrap(),
            ..Default::default()
        };
        let ips: Vec<IpAddr> = dual.webrtc_sockets().iter().map(|s| s.1.ip()).collect();
        let machine: Vec<IpAddr> = (if_addrs::get_if_addrs().unwrap().iter())
            .map(|i| i.ip())
            .collect();
        if machine.contains(&"::1".parse().unwrap()) {
            assert!(ips.contains(&"::1".parse().unwrap()), "{ips:?}");
        }
        assert!(ips.contains(&"127.0.0.1".parse().unwrap()), "{ips:?}");
        assert!(!ips.iter().any(|ip| match ip {
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
            IpAddr::V4(_) => false,
        }));
        // IPv4 only by default.
        let v4 = Config::default().webrtc_sockets();
        assert!(v4.iter().all(|s| s.1.is_ipv4()), "{v4:?}");
    }

    #[test]
    fn announced_ips_bind_the_chosen_address() {
        let c = Config {
            bind: "127.0.0.1".parse().unwrap(),
            announce_ips: vec!["127.0.0.1".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(
            c.webrtc_sockets(),
            vec![(
                "127.0.0.1:20000".parse().unwrap(),
                "127.0.0.1:20000".parse().unwrap()
            )]
        );
    }
}
