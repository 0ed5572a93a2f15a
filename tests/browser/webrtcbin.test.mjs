// Issue 15: a real non-browser WebRTC receiver. GStreamer's webrtcbin (tests/webrtc_peer.py) plays a
// camera through camgate's WHEP endpoint and through the Flashphoner WebSocket protocol, with its
// DEFAULT DTLS certificate (RSA in GStreamer 1.22: camgate's DTLS must accept it), and decodes the
// video with libavcodec. webrtcbin's offer goes unchanged: with max-bundle its audio line is
// `m=audio 0` + a=bundle-only (browsers never send that), and Opus must still arrive. H.265 runs
// the same peer against an x265 camera (it would skip, saying so, if camgate refused H.265).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cameraUrl, config, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { Child } from './lib/procs.mjs';

const H265_PORT = 8556;
const env = useEnvironment({
  cameras: [{ name: 'camera', extra: ['--audio', 'opus'] }, { name: 'h265', port: H265_PORT, video: 'h265' }],
  // No browser in this file: the peer is webrtcbin.
  launch: async () => ({ browser: null, close: async () => {} }),
  logPrefix: 'camgate-webrtcbin-',
});

const PEER = `${config.rtspServerScript.replace(/rtsp_server\.py$/, 'webrtc_peer.py')}`;
const FRAMES = 30;

// Runs the peer to its end; returns its RESULT object and exit code.
let runs = 0;
async function runPeer(args) {
  const peer = new Child(`peer-${++runs}`, config.python, [PEER, '--frames', String(FRAMES), '--timeout', '20', ...args], env.logDir);
  const code = await Promise.race([
    peer.exited,
    new Promise((resolve) => setTimeout(() => resolve('timeout'), 40000)),
  ]);
  if (code === 'timeout') await peer.stop();
  const line = peer.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `peer printed no RESULT (exit ${code})\n${peer.tail(60)}`);
  return { code, result: JSON.parse(line.slice('RESULT '.length)), peer };
}

const whepUrl = (camera) => `http://${config.host}:${config.httpPort}/whep/${encodeURIComponent(camera)}`;

// The DTLS handshakes camgate logged, with the client's key type (server/src/dtls.rs).
function dtlsPeerKeys() {
  return [...env.camgate.tail(100000).matchAll(/DTLS established \(OpenSSL\).*peer_key="?([\w-]+)/g)].map((m) => m[1]);
}

for (const signaling of ['whep', 'ws']) {
  test(`webrtcbin (RSA DTLS certificate) decodes H.264 over ${signaling}`, { timeout: 60000 }, async () => {
    await env.run([], async () => {
      const before = dtlsPeerKeys().length;
      const how = signaling === 'whep' ? ['--whep', whepUrl(cameraUrl())] : ['--ws', wsUrl(), '--stream', cameraUrl()];
      const { code, result, peer } = await runPeer([...how, '--video', 'h264']);
      console.log(`# webrtcbin ${signaling} h264: ${JSON.stringify(result)}`);
      assert.equal(result.connection, 'connected', `DTLS did not complete\n${peer.tail(30)}`);
      assert.equal(code, 0, peer.tail(30));
      assert.ok(result.frames >= FRAMES);
      assert.equal(result.codec, 'H264');
      assert.equal(result.width, 640);
      assert.equal(result.height, 360);
      // The bundle-only audio line was accepted: Opus from the camera decoded.
      assert.ok(result.audio_buffers > 0, 'no Opus decoded');
      // The client's certificate really was webrtcbin's default RSA one.
      const keys = dtlsPeerKeys().slice(before);
      assert.ok(keys.length >= 1 && keys.every((k) => k.startsWith('RSA')), `client keys ${keys}`);
      if (signaling === 'whep') assert.equal(result.delete_status, 200);
    });
  });
}

for (const signaling of ['whep', 'ws']) {
  test(`webrtcbin decodes H.265 over ${signaling}`, { timeout: 60000 }, async (t) => {
    await env.run([], async () => {
      const camera = `rtsp://${config.host}:${H265_PORT}/cam`;
      const how = signaling === 'whep' ? ['--whep', whepUrl(camera)] : ['--ws', wsUrl(), '--stream', camera];
      const { code, result, peer } = await runPeer([...how, '--video', 'h265']);
      console.log(`# webrtcbin ${signaling} h265: ${JSON.stringify(result)}`);
      if (code === 2) {
        t.skip(`camgate refuses H.265 (${result.refused}): enable once H.265 support lands`);
        return;
      }
      assert.equal(code, 0, peer.tail(30));
      assert.equal(result.codec, 'H265');
      assert.ok(result.frames >= FRAMES);
      assert.equal(result.width, 640);
      assert.equal(result.height, 360);
    });
  });
}
