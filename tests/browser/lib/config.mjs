// Everything the browser tests need to know about the processes they start, in one place.
// Environment overrides: CAMGATE_BIN, CAMGATE_EXTRA_ARGS (space-separated), CHROMIUM,
// CAMGATE_{HTTP,WS,WEBRTC,DEMO}_PORT, CAMERA_PORT.

import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BROWSER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(BROWSER_DIR, '..', '..');

const port = (name, fallback) => Number(process.env[name] || fallback);

export const config = {
  // Where camgate listens and what it announces; a test may set '::1' (URLs bracket it).
  host: '127.0.0.1',
  // camgate's --bind when not `host` (e.g. '::' for dual stack).
  bind: null,
  // camgate's --announce-ip when not `host` ('': none, every address of the namespace).
  announce: null,
  httpPort: port('CAMGATE_HTTP_PORT', 8081),
  // The player page connects to ws://<page host>:8080, so keep 8080 unless you also pass ?ws=.
  wsPort: port('CAMGATE_WS_PORT', 8080),
  webrtcPort: port('CAMGATE_WEBRTC_PORT', 20000),
  demoPort: port('CAMGATE_DEMO_PORT', 8554),
  cameraPort: port('CAMERA_PORT', 8555),
  // TLS listeners (self-signed certificate unless --tls-cert): https = the HTTP port's content.
  httpsPort: port('CAMGATE_HTTPS_PORT', 8444),
  wssPort: port('CAMGATE_WSS_PORT', 8443),
  camgateBin: process.env.CAMGATE_BIN || path.join(REPO_ROOT, 'target', 'release', 'camgate'),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  python: '/usr/bin/python3', // Debian's: it has python3-gi; a pyenv python on PATH does not
  rtspServerScript: path.join(REPO_ROOT, 'tests', 'rtsp_server.py'),
};

// The host as it goes in a URL or before a port: IPv6 addresses in brackets.
export const urlHost = (host = config.host) => (host.includes(':') ? `[${host}]` : host);
export const pageUrl = (query = '') => `http://${urlHost()}:${config.httpPort}/${query}`;
export const wsUrl = () => `ws://${urlHost()}:${config.wsPort}`;
export const demoCameraUrl = () => `rtsp://${urlHost()}:${config.demoPort}/demo`;
export const httpsPageUrl = (query = '') => `https://${urlHost()}:${config.httpsPort}/${query}`;
export const wssUrl = () => `wss://${urlHost()}:${config.wssPort}`;
export const cameraUrl = (mount = '/cam') => `rtsp://${urlHost()}:${config.cameraPort}${mount}`;

// camgate's command line: the ONE place to adjust when its flags change.
export function camgateArgs() {
  const extra = (process.env.CAMGATE_EXTRA_ARGS || '').split(/\s+/).filter(Boolean);
  return [
    '--bind', config.bind || config.host,
    '--http-port', String(config.httpPort),
    '--ws-port', String(config.wsPort),
    '--https-port', String(config.httpsPort),
    '--wss-port', String(config.wssPort),
    '--webrtc-port', String(config.webrtcPort),
    ...((config.announce ?? config.host) ? ['--announce-ip', config.announce ?? config.host] : []),
    '--rtsp-server', `${urlHost()}:${config.demoPort}`, // the demo camera is its stream "demo"
    '--log', 'info,camgate=debug,camgate_core=debug,camgate_io=debug,str0m=warn',
    ...extra,
  ];
}

// The test camera's command line (tests/rtsp_server.py).
export function cameraArgs({ port = config.cameraPort, mount = '/cam', video = 'h264', address = config.host, extra = [] } = {}) {
  return [config.rtspServerScript, '--address', address, '--port', String(port), '--path', mount, '--video', video, ...extra];
}

// Chromium flags from docs/shared browser-testing notes (headless, loopback ICE, fake media).
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-dev-shm-usage',
];
