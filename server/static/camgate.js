// camgate player: a small client for camgate's signaling (the Flashphoner Web SDK wire protocol).
//
// One WebSocket session (ws://<page host>:8080, wss://...:8443 on https) carries JSON frames
// {"message": NAME, "data": [...]}. Playing a camera: send `playStream` with a recvonly offer,
// apply the answer from `setRemoteSDP`, follow `notifyStreamStatusEvent`; `stopStream` ends it.
// The server sends its candidates in the answer, and nothing is trickled: the offer waits for the
// browser's own candidates (at most GATHER_MS), which a server running full ICE (with
// stun_servers) checks to open its NAT toward the browser. The STUN/TURN servers camgate hands
// out (ice_servers, TURN credentials minted for this page) come in the page's data-ice-servers.
//
// Access: ?token=... (a viewer token for the stream, or the admin token) goes to the server as the
// session's authToken. It comes from the page's own URL only, never from the served HTML.
//
// window.camgate exposes the state for tests and for the console:
//   camgate.pc, camgate.status.{session, stream, info}, camgate.start(url), camgate.stop(),
//   camgate.firstFrameMs (ms from Start to the first decoded frame), camgate.log (signaling frames).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DEMO_URL = 'rtsp://127.0.0.1:8554/demo';
const TOKEN = params.get('token') || undefined;

const ui = {
  form: $('controls'),
  url: $('url'),
  start: $('start'),
  stop: $('stop'),
  status: $('status'),
  session: $('session-status'),
  stream: $('stream-status'),
  streamInfo: $('stream-info'),
  firstFrame: $('first-frame'),
  video: $('video'),
};

// Signaling URL: ?ws=... overrides the default (same host as the page, port 8080 / 8443).
function signalingUrl() {
  const override = params.get('ws');
  if (override) return override;
  const secure = location.protocol === 'https:';
  const host = location.hostname || '127.0.0.1'; // IPv6 hostnames already carry their brackets
  return `${secure ? 'wss' : 'ws'}://${host}:${secure ? 8443 : 8080}`;
}

// The RTCIceServer list camgate put in the page; none when served without camgate.
function iceServers() {
  const raw = document.getElementById('player').dataset.iceServers || '[]';
  try {
    return raw.includes('{{') ? [] : JSON.parse(raw);
  } catch {
    return [];
  }
}

// Longest the offer waits for the browser's candidates (a TURN allocation takes a round trip).
const GATHER_MS = 2000;

function gatheringDone(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function defaultStreamUrl() {
  const fromQuery = params.get('url');
  if (fromQuery) return fromQuery;
  const fromServer = document.getElementById('player').dataset.defaultUrl || '';
  // Served without camgate's substitution (file:// or a plain static server): guess the demo
  // camera. From camgate, empty means no demo runs (--no-demo, or its port was taken): no guess.
  return fromServer.includes('{{') ? DEMO_URL : fromServer;
}

const state = {
  ws: null,
  session: 'NEW', // NEW, CONNECTING, ESTABLISHED, DISCONNECTED, FAILED
  sessionReady: null, // Promise resolved on getUserData
  stream: null, // {id, name, pc, status, info, startedAt}
  lastStatus: 'NEW',
  lastInfo: '',
  firstFrameMs: null,
  log: [],
};

function render() {
  const stream = state.stream;
  const status = stream ? stream.status : state.lastStatus;
  const info = stream ? stream.info : state.lastInfo;
  ui.session.textContent = `Session: ${state.session}`;
  const failed = status === 'FAILED';
  ui.stream.textContent = `Stream: ${status}${failed && info ? `: ${info}` : ''}`;
  // While playing, the server's info says which codecs play (and warns, e.g. about B-frames).
  ui.streamInfo.textContent = !failed && status === 'PLAYING' ? info : '';
  ui.firstFrame.textContent = state.firstFrameMs != null && status === 'PLAYING'
    ? `first frame after ${state.firstFrameMs} ms` : '';
  ui.status.dataset.session = state.session;
  ui.status.dataset.stream = status;
  const active = Boolean(stream);
  ui.start.disabled = active;
  ui.stop.disabled = !active || status === 'STOPPING';
  ui.url.disabled = active;
}

function send(message, data) {
  const frame = JSON.stringify({ message, data });
  state.log.push({ dir: 'out', frame: TOKEN ? frame.split(TOKEN).join('***') : frame }); // no token in the log
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(frame);
}

function openSession() {
  if (state.sessionReady && (state.session === 'CONNECTING' || state.session === 'ESTABLISHED')) {
    return state.sessionReady;
  }
  state.session = 'CONNECTING';
  render();
  state.sessionReady = new Promise((resolve, reject) => {
    const ws = new WebSocket(signalingUrl());
    state.ws = ws;
    ws.onopen = () => {
      send('connection', [{
        appKey: 'defaultApp',
        authToken: TOKEN,
        mediaProviders: ['WebRTC'],
        clientVersion: '2.0',
        clientOSVersion: navigator.userAgent,
        clientBrowserVersion: navigator.userAgent,
        clientInfo: { client: 'camgate-player' },
      }]);
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      state.log.push({ dir: 'in', frame: event.data });
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn('camgate: bad frame', event.data);
        return;
      }
      const data = Array.isArray(msg.data) ? msg.data : [];
      switch (msg.message) {
        case 'getUserData':
          state.session = 'ESTABLISHED';
          render();
          resolve();
          break;
        case 'ping':
          send('pong', [null]);
          break;
        case 'setRemoteSDP':
          onAnswer(data[0], data[1]);
          break;
        case 'notifyStreamStatusEvent':
          if (data[0]) onStreamStatus(data[0]);
          break;
        default:
          break; // connection quality, stream events...: not needed to play
      }
    };
    ws.onerror = () => console.warn('camgate: signaling error', ws.url);
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      const wasEstablished = state.session === 'ESTABLISHED';
      state.session = wasEstablished ? 'DISCONNECTED' : 'FAILED';
      state.ws = null;
      state.sessionReady = null;
      reject(new Error(`signaling connection to ${ws.url} failed`));
      if (state.stream) {
        const stopping = state.stream.status === 'STOPPING';
        finishStream(stopping ? 'STOPPED' : 'FAILED',
          stopping ? '' : `Signaling connection closed${event.code ? ` (${event.code})` : ''}`);
      }
      render();
    };
  });
  state.sessionReady.catch(() => {}); // handled by start()
  return state.sessionReady;
}

async function start(url = ui.url.value.trim()) {
  if (state.stream) await stop();
  ui.url.value = url;
  const stream = {
    id: crypto.randomUUID(),
    name: url,
    pc: null,
    status: 'PENDING',
    info: '',
    startedAt: performance.now(),
  };
  state.stream = stream;
  state.firstFrameMs = null;
  render();
  try {
    await openSession();
    if (state.stream !== stream) return;
    const pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      iceServers: iceServers(),
    });
    stream.pc = pc;
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const media = new MediaStream();
    pc.ontrack = (event) => {
      media.addTrack(event.track);
      if (ui.video.srcObject !== media) ui.video.srcObject = media;
      ui.video.play().catch(() => {}); // ignore interruptions (a new stream replaced this one)
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && state.stream === stream && stream.status !== 'STOPPING') {
        finishStream('FAILED', 'WebRTC connection failed');
        send('stopStream', [streamDescriptor(stream)]);
      }
    };
    watchFirstFrame(stream);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gatheringDone(pc);
    if (state.stream !== stream) return;
    send('playStream', [{
      ...streamDescriptor(stream),
      sdp: pc.localDescription.sdp,
      mediaProvider: 'WebRTC',
      record: false,
      width: 0,
      height: 0,
      bitrate: 0,
      minBitrate: 0,
      maxBitrate: 0,
      quality: 0,
    }]);
  } catch (err) {
    if (state.stream === stream) finishStream('FAILED', err.message || String(err));
  }
}

function streamDescriptor(stream) {
  return {
    mediaSessionId: stream.id,
    name: stream.name,
    published: false,
    hasVideo: true,
    hasAudio: true,
    status: stream.status,
  };
}

async function onAnswer(id, sdp) {
  const stream = state.stream;
  if (!stream || stream.id !== id || !stream.pc || typeof sdp !== 'string') return;
  try {
    await stream.pc.setRemoteDescription({ type: 'answer', sdp });
  } catch (err) {
    console.warn('camgate: answer rejected', err);
    if (state.stream === stream) {
      send('stopStream', [streamDescriptor(stream)]);
      finishStream('FAILED', `Answer rejected: ${err.message}`);
    }
  }
}

function onStreamStatus(event) {
  const stream = state.stream;
  if (!stream || event.mediaSessionId !== stream.id || typeof event.status !== 'string') return;
  const info = typeof event.info === 'string' ? event.info : '';
  if (event.status === 'FAILED' || event.status === 'STOPPED') {
    finishStream(event.status, info);
  } else if (stream.status !== 'STOPPING') {
    stream.status = event.status;
    stream.info = info;
  }
  render();
}

function finishStream(status, info) {
  const stream = state.stream;
  if (!stream) return;
  if (stream.pc) stream.pc.close();
  state.stream = null;
  state.lastStatus = status;
  state.lastInfo = info || '';
  ui.video.srcObject = null;
  render();
}

// Stop: tell the server, close the peer connection at once; STOPPED arrives from the server.
async function stop() {
  const stream = state.stream;
  if (!stream) return;
  const wasPending = !stream.pc;
  stream.status = 'STOPPING';
  send('stopStream', [{ ...streamDescriptor(stream), status: 'PLAYING' }]);
  if (stream.pc) {
    stream.pc.close();
    stream.pc = null;
  }
  ui.video.srcObject = null;
  if (wasPending || !state.ws) {
    finishStream('STOPPED', '');
    return;
  }
  render();
  // The server confirms with STOPPED; don't leave the page stuck if it never does.
  setTimeout(() => {
    if (state.stream === stream) finishStream('STOPPED', 'not confirmed by the server');
  }, 5000);
}

function watchFirstFrame(stream) {
  const video = ui.video;
  const done = () => {
    if (state.stream === stream && state.firstFrameMs == null) {
      state.firstFrameMs = Math.round(performance.now() - stream.startedAt);
      render();
    }
  };
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    video.requestVideoFrameCallback(done);
  } else {
    video.addEventListener('loadeddata', done, { once: true });
  }
}

ui.url.value = defaultStreamUrl();
ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  // Pressing Start is a user gesture, so the browser lets the page play sound from here on.
  ui.video.muted = false;
  if (ui.url.value.trim() !== '') start();
});
ui.stop.addEventListener('click', () => stop());
window.addEventListener('pagehide', () => {
  if (state.stream) send('stopStream', [streamDescriptor(state.stream)]);
});
render();

window.camgate = {
  start,
  stop,
  get pc() { return state.stream ? state.stream.pc : null; },
  get mediaSessionId() { return state.stream ? state.stream.id : null; },
  get status() {
    const s = state.stream;
    return { session: state.session, stream: s ? s.status : state.lastStatus, info: s ? s.info : state.lastInfo };
  },
  get firstFrameMs() { return state.firstFrameMs; },
  get ws() { return state.ws; },
  log: state.log,
  signalingUrl,
};
