// Another RTSP server already on the demo camera's port (MediaMTX, go2rtc and many NVRs default
// to 8554): camgate keeps serving without the demo, and its player page pre-fills no demo URL.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';

import { config, demoCameraUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer } from './lib/player.mjs';

// Taken before useEnvironment's before() starts camgate: a top-level await, because a before()
// hook registered first here still lost the race to camgate.
const squatter = net.createServer((socket) => socket.destroy());
await new Promise((resolve, reject) => {
  squatter.once('error', reject);
  squatter.listen(config.demoPort, config.host, resolve);
});
after(() => new Promise((resolve) => squatter.close(resolve)));

const env = useEnvironment({ cameras: [] });

test('demo port taken: camgate serves, warns once, and the page pre-fills no demo URL', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser);
  await env.run([page], async () => {
    assert.equal(await page.inputValue('#url'), '', `not ${demoCameraUrl()}: no demo runs`);
    assert.equal(await page.getAttribute('#url', 'placeholder'), 'rtsp://user:password@camera/stream');
    const streams = await page.evaluate(async () => {
      const r = await fetch('/api/streams');
      return { status: r.status, body: await r.json() };
    });
    assert.deepEqual(streams, { status: 200, body: [] });
    assert.equal(env.camgate.exitCode, null, 'camgate still runs');
    const warnings = env.camgate.stdout.split('\n').filter((l) => /demo/.test(l));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], new RegExp(` WARN .*port ${config.demoPort} .*is taken.*--rtsp-server`));
  });
  await page.context().close();
});
