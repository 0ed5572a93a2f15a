// Issue 17, item 7: origin and edge. camgate A (the origin) pulls the GStreamer camera as its named
// stream `cam` and serves it over RTSP; camgate B (the edge, its own ports) pulls
// rtsp://127.0.0.1:8554/cam from A as its named stream `door`, and Chromium plays `door` from B
// while another page plays `cam` from A. The camera serves ONE session in all.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { waitForFrames } from './lib/browser.mjs';
import { config, urlHost } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { Child, makeLogDir, waitForPort } from './lib/procs.mjs';
import { openPlayer, openPlayerAt, waitForStatus } from './lib/player.mjs';

const port = config.cameraPort + 70;
const dir = makeLogDir('camgate-chain-config-');
const configA = path.join(dir, 'a.toml');
fs.writeFileSync(configA, `[streams.cam]\nuri = "rtsp://${urlHost()}:${port}/cam"\n`);
process.env.CAMGATE_EXTRA_ARGS = `${process.env.CAMGATE_EXTRA_ARGS || ''} --config ${configA}`;

const env = useEnvironment({ cameras: [{ name: 'camera', port, extra: ['--log-sessions'] }] });

const B = { http: config.httpPort + 100, ws: config.wsPort + 100, webrtc: config.webrtcPort + 100 };

test('camgate B pulls a stream from camgate A over RTSP and Chromium plays it from B; the camera sees one session',
  { timeout: 120000 }, async () => {
    const configB = path.join(dir, 'b.toml');
    fs.writeFileSync(configB, `[streams.door]\nuri = "rtsp://${urlHost()}:${config.demoPort}/cam"\n`);
    const edge = new Child('camgate-b', config.camgateBin, [
      '--config', configB, '--bind', config.host, '--announce-ip', config.host, '--no-tls',
      '--http-port', String(B.http), '--ws-port', String(B.ws), '--webrtc-port', String(B.webrtc),
      '--rtsp-server', 'off', '--no-demo', '--log', 'info',
    ], env.logDir);
    const pages = [];
    try {
      await waitForPort(B.http, { child: edge });
      await waitForPort(B.ws, { child: edge });
      const fromB = await openPlayerAt(env.browser,
        `http://${urlHost()}:${B.http}/?url=door&ws=${encodeURIComponent(`ws://${urlHost()}:${B.ws}`)}`);
      const fromA = await openPlayer(env.browser, 'cam');
      pages.push(fromB, fromA);
      await env.run(pages, async () => {
        await fromB.click('#start');
        await waitForStatus(fromB, 'PLAYING');
        await fromA.click('#start');
        await waitForStatus(fromA, 'PLAYING');
        const b = await waitForFrames(fromB, { which: 'camgate', minFrames: 60 });
        const a = await waitForFrames(fromA, { which: 'camgate', minFrames: 60 });
        console.log(`# edge page: ${JSON.stringify(b.video)}; origin page: ${JSON.stringify(a.video)}`);
        // B's camera is A: A served one RTSP player, and the camera one session.
        assert.match(env.camgate.stdout, /rtsp player playing/);
        assert.match(edge.stdout, /camera playing/);
        const sessions = env.camera.stdout.split('\n').filter((l) => l.startsWith('SESSION '));
        assert.equal(sessions.length, 1, `one camera session:\n${env.camera.stdout}`);
      });
    } catch (err) {
      console.error(`--- camgate-b ---\n${edge.tail(60)}`);
      throw err;
    } finally {
      for (const page of pages) await page.context().close();
      await edge.stop();
    }
  });
