// Camera restart (issue 4): the gst camera is SIGKILLed mid-stream and restarted on the same port
// ~2 s later. camgate reconnects with backoff while the viewer stays connected: /api/streams says
// RECONNECTING meanwhile, and the page resumes on the camera's next keyframe with no new signaling
// (no second playStream, status stays PLAYING, same RTCPeerConnection).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { videoStats, waitForFrames } from './lib/browser.mjs';
import { streamEntry } from './lib/api.mjs';
import { config } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { startCamera } from './lib/procs.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const port = config.cameraPort + 40;
const camUrl = `rtsp://${config.host}:${port}/cam`;

const env = useEnvironment({ cameras: [{ name: 'camera', port }] });

const frames = async (page) => (await videoStats(page, 'camgate'))?.video?.framesDecoded ?? -1;

// The page's signaling frames, parsed: [{dir, message, data}].
const signaling = (page) => page.evaluate(() => window.camgate.log.map((f) => {
  try { return { dir: f.dir, ...JSON.parse(f.frame) }; } catch { return { dir: f.dir, message: '?' }; }
}));

test('the camera is killed and restarted on the same port: the viewer resumes without new signaling',
  { timeout: 90000 }, async () => {
    const page = await openPlayer(env.browser, camUrl);
    // Polls /api/streams every 200 ms into `seen` until `stop` is set.
    const poll = { seen: [], stop: false };
    const poller = (async () => {
      while (!poll.stop) {
        const e = await streamEntry(camUrl).catch((err) => ({ status: `error ${err.message}` }));
        const last = poll.seen.at(-1);
        const status = e ? e.status : 'absent';
        if (!last || last.status !== status) poll.seen.push({ t: Date.now(), status, info: e?.info });
        await sleep(200);
      }
    })();
    try {
      await env.run([page], async () => {
        await page.click('#start');
        await waitForStatus(page, 'PLAYING');
        await waitForFrames(page, { which: 'camgate', minFrames: 30 });
        const pcBefore = await page.evaluate(() => { window.__pcMark = window.camgate.pc; return true; });
        assert.ok(pcBefore);
        const sigBefore = (await signaling(page)).length;
        const playStreamsBefore = (await signaling(page)).filter((f) => f.dir === 'out' && f.message === 'playStream').length;
        assert.equal(playStreamsBefore, 1);

        // Kill the camera mid-stream.
        const old = env.cameras.camera;
        const tKill = Date.now();
        old.proc.kill('SIGKILL');
        await old.exited;
        await sleep(2000);
        const framesDown = await frames(page);

        // Restart it on the same port.
        const camera = await startCamera(env.logDir, { name: 'camera-restarted', port });
        env.cameras['camera-restarted'] = camera;
        const tRestart = Date.now();
        const framesAtRestart = await frames(page);

        // First decoded frame after the restart, then frames must keep rising.
        let tFirst = null;
        const statusDuring = new Set();
        const deadline = tRestart + 30000;
        for (;;) {
          const n = await frames(page);
          statusDuring.add(await page.evaluate(() => window.camgate.status.stream));
          if (n > framesAtRestart && tFirst === null) tFirst = Date.now();
          if (tFirst !== null && n >= framesAtRestart + 30) break;
          if (Date.now() > deadline) {
            assert.fail(`framesDecoded stuck at ${n} (was ${framesAtRestart} at the restart) for 30 s; `
              + `/api/streams: ${JSON.stringify(poll.seen)}`);
          }
          await sleep(50);
        }
        const after = await videoStats(page, 'camgate');
        poll.stop = true;
        await poller;

        const log = fs.readFileSync(env.camgate.logFile, 'utf8').split('\n');
        const camLines = log.filter((l) => l.includes(`:${port}/`)
          && /camera lost|reconnecting|rtsp playing|camera playing/.test(l));
        console.log(`# killed at 0 ms; restarted (READY) at ${tRestart - tKill} ms; first new frame at ${tFirst - tKill} ms `
          + `= ${tFirst - tRestart} ms after the restart`);
        console.log(`# frames: ${framesAtRestart} at restart (${framesDown} 2 s after the kill) → ${after.video.framesDecoded}; ${JSON.stringify(after.video)}`);
        console.log(`# /api/streams statuses: ${poll.seen.map((s) => `${s.t - tKill} ms ${s.status}${s.info ? ` "${s.info}"` : ''}`).join(' → ')}`);
        console.log(`# camgate log:\n${camLines.map((l) => `#   ${l}`).join('\n')}`);

        assert.ok(poll.seen.some((s) => s.status === 'RECONNECTING'), `never RECONNECTING: ${JSON.stringify(poll.seen)}`);
        assert.equal(poll.seen.at(-1).status, 'PLAYING');
        assert.deepEqual([...statusDuring], ['PLAYING'], 'the page left PLAYING');
        const sig = await signaling(page);
        const newFrames = sig.slice(sigBefore);
        assert.ok(!newFrames.some((f) => f.dir === 'out' && /playStream|stopStream/.test(f.message)),
          `new signaling from the page: ${JSON.stringify(newFrames.map((f) => `${f.dir} ${f.message}`))}`);
        console.log(`# signaling frames during the outage: ${JSON.stringify(newFrames.map((f) => `${f.dir} ${f.message} ${f.data?.[0]?.status ?? ''}`))}`);
        assert.ok(await page.evaluate(() => window.camgate.pc === window.__pcMark), 'a new RTCPeerConnection');
        assert.equal(after.connectionState, 'connected');
        assert.equal(after.video.frameWidth, 640);
        assert.ok(log.some((l) => /reconnecting to camera/.test(l)), 'no reconnect in the log');
      });
    } finally {
      poll.stop = true;
      await poller;
      await page.context().close();
    }
  });
