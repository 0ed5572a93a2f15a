// Issue 17, items 3 and 6, with real clients: 3 RTSP players (2 ffmpeg, 1 GStreamer rtspsrc, all
// TCP-interleaved) and 3 Chromium pages play one GStreamer camera through camgate's RTSP server
// and WebRTC; the camera serves ONE session. A player that sends PLAY and then never reads (a raw
// socket with a 4 KiB receive buffer) is dropped ("rtsp player too slow") while the others keep
// their frame rate. Then the camera is killed and restarted: the RTSP players keep their session
// (same processes, same connection) and their frames resume, and the camera again serves one.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { videoStats, waitForFrames } from './lib/browser.mjs';
import { config, urlHost } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { Child, makeLogDir, startCamera } from './lib/procs.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const port = config.cameraPort + 60;
const extra = ['--log-sessions'];
const configFile = path.join(makeLogDir('camgate-fanout-config-'), 'camgate.toml');
// A small queue per RTSP player, so the stalled one is dropped within seconds.
fs.writeFileSync(configFile, `rtsp_player_queue_bytes = 262144\n\n[streams.cam]\nuri = "rtsp://${urlHost()}:${port}/cam"\n`);
process.env.CAMGATE_EXTRA_ARGS = `${process.env.CAMGATE_EXTRA_ARGS || ''} --config ${configFile}`;

const env = useEnvironment({ cameras: [{ name: 'camera', port, extra }] });
const rtspUrl = `rtsp://${urlHost()}:${config.demoPort}/cam`;

const sessions = (camera) => camera.stdout.split('\n').filter((l) => l.startsWith('SESSION ')).length;

// ffmpeg decoding the stream; its progress lines ("frame=N") count decoded frames.
function ffmpeg(name) {
  const child = new Child(name, 'ffmpeg', ['-nostdin', '-loglevel', 'warning', '-rtsp_transport', 'tcp',
    '-i', rtspUrl, '-an', '-f', 'null', '-', '-progress', 'pipe:1', '-nostats'], env.logDir);
  child.frames = () => Number([...child.stdout.matchAll(/^frame=(\d+)$/gm)].at(-1)?.[1] ?? 0);
  return child;
}

// GStreamer's rtspsrc over TCP; fpsdisplaysink -v reports "rendered: N".
function rtspsrc(name) {
  const child = new Child(name, 'gst-launch-1.0', ['-v', 'rtspsrc', `location=${rtspUrl}`, 'protocols=tcp',
    'latency=200', '!', 'rtph264depay', '!', 'h264parse', '!', 'avdec_h264', '!', 'fpsdisplaysink',
    'video-sink=fakesink', 'text-overlay=false', 'sync=false'], env.logDir);
  child.frames = () => Number([...child.stdout.matchAll(/rendered: (\d+)/g)].at(-1)?.[1] ?? 0);
  return child;
}

// A player that stops reading: DESCRIBE, SETUP, PLAY, then never reads again. It prints PLAYING,
// and after `stallSecs` reads what is left: DROPPED if camgate closed the connection.
const STALLER = `
import socket, sys, time
host, port, path, stall = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((host.strip("[]"), port))
url = f"rtsp://{host}:{port}/{path}"
buf = b""
def ask(req):
    global buf
    s.sendall(req.encode())
    while b"\\r\\n\\r\\n" not in buf:
        buf += s.recv(4096)
    head, _, rest = buf.partition(b"\\r\\n\\r\\n")
    n = next((int(l.split(b":")[1]) for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")), 0)
    while len(rest) < n:
        rest += s.recv(4096)
    buf = rest[n:]
    return head.decode()
ask(f"DESCRIBE {url} RTSP/1.0\\r\\nCSeq: 1\\r\\nAccept: application/sdp\\r\\n\\r\\n")
head = ask(f"SETUP {url}/trackID=0 RTSP/1.0\\r\\nCSeq: 2\\r\\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\\r\\n\\r\\n")
session = next(l.split(":", 1)[1].split(";")[0].strip() for l in head.split("\\r\\n") if l.lower().startswith("session"))
s.sendall(f"PLAY {url} RTSP/1.0\\r\\nCSeq: 3\\r\\nSession: {session}\\r\\n\\r\\n".encode())
print("PLAYING", flush=True)
time.sleep(stall)
s.settimeout(5)
try:
    while s.recv(1 << 20):
        pass
    print("DROPPED", flush=True)
except ConnectionResetError:
    print("DROPPED", flush=True)
except socket.timeout:
    print("STILL OPEN", flush=True)
`;

const browserFrames = async (page) => (await videoStats(page, 'camgate'))?.video?.framesDecoded ?? 0;

// Frames per second of every client over `ms`.
async function rates(clients, pages, ms) {
  const before = [...clients.map((c) => c.frames()), ...(await Promise.all(pages.map(browserFrames)))];
  await sleep(ms);
  const after = [...clients.map((c) => c.frames()), ...(await Promise.all(pages.map(browserFrames)))];
  return after.map((n, i) => ((n - before[i]) * 1000) / ms);
}

test('3 RTSP players and 3 browsers share one camera session; a player that stops reading is dropped; players survive a camera restart',
  { timeout: 240000 }, async () => {
    const pages = [];
    const clients = [];
    try {
      for (let i = 0; i < 3; i++) pages.push(await openPlayer(env.browser, 'cam'));
      await env.run(pages, async () => {
        for (const page of pages) {
          await page.click('#start');
          await waitForStatus(page, 'PLAYING');
        }
        clients.push(ffmpeg('ffmpeg-1'), ffmpeg('ffmpeg-2'), rtspsrc('rtspsrc'));
        const deadline = Date.now() + 20000;
        while (clients.some((c) => c.frames() < 30)) {
          assert.ok(Date.now() < deadline, `players decode: ${clients.map((c) => `${c.name} ${c.frames()}`)}`);
          await sleep(250);
        }
        for (const page of pages) await waitForFrames(page, { which: 'camgate', minFrames: 30 });
        assert.equal(sessions(env.camera), 1, `one camera session:\n${env.camera.stdout}`);

        const steady = await rates(clients, pages, 4000);
        console.log(`# fps, 3 RTSP players then 3 browsers: ${steady.map((r) => r.toFixed(1))}`);
        for (const r of steady) assert.ok(r >= 20, `fps ${steady}`);

        const staller = new Child('staller', config.python,
          ['-c', STALLER, urlHost(), String(config.demoPort), 'cam', '60'], env.logDir);
        clients.push(staller);
        staller.frames = () => 0;
        await staller.waitForLine(/^PLAYING$/m);
        const t0 = Date.now();
        const during = [];
        while (!/rtsp player too slow: dropped/.test(env.camgate.stdout)) {
          assert.ok(Date.now() - t0 < 55000, 'the stalled player is dropped within 55 s');
          during.push(await rates(clients.slice(0, 3), pages, 2000));
        }
        const tDropped = Date.now() - t0;
        const worst = during.flat().length ? Math.min(...during.flat()) : NaN;
        console.log(`# stalled player dropped after ${tDropped} ms; worst fps of the others meanwhile: ${worst.toFixed(1)}`);
        for (const window of during) for (const r of window) assert.ok(r >= 15, `fps while stalled: ${JSON.stringify(during)}`);
        const afterDrop = await rates(clients.slice(0, 3), pages, 3000);
        for (const r of afterDrop) assert.ok(r >= 20, `fps after the drop: ${afterDrop}`);
        assert.equal(sessions(env.camera), 1, 'still one camera session');

        // Camera restart: same port, a new process.
        const old = env.camera;
        old.proc.kill('SIGKILL');
        await old.exited;
        await sleep(1500);
        const atRestart = clients.slice(0, 3).map((c) => c.frames());
        const camera = await startCamera(env.logDir, { name: 'camera-restarted', port, extra });
        env.cameras['camera-restarted'] = camera;
        const resumeBy = Date.now() + 30000;
        while (clients.slice(0, 3).some((c, i) => c.frames() < atRestart[i] + 60)) {
          assert.ok(Date.now() < resumeBy, `players resume after the camera restart: ${atRestart} -> ${clients.map((c) => c.frames())}`);
          for (const c of clients.slice(0, 3)) assert.equal(c.exitCode, null, `${c.name} still runs:\n${c.tail()}`);
          await sleep(250);
        }
        const resumed = await rates(clients.slice(0, 3), pages, 3000);
        console.log(`# fps after the camera restart: ${resumed.map((r) => r.toFixed(1))}`);
        for (const r of resumed) assert.ok(r >= 20, `fps after the restart: ${resumed}`);
        assert.equal(sessions(camera), 1, `one session on the restarted camera:\n${camera.stdout}`);
        await staller.exited;
        assert.match(staller.stdout, /DROPPED/);
      });
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
      for (const page of pages) await page.context().close();
    }
  });
