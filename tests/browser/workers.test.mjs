// camgate with two workers (event loops): the second camera is pulled by worker 1, while every
// signaling session lives on worker 0, so its viewer's playStream, statuses and stopStream
// cross between the workers. Both cameras must play, and the APIs must list both.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { waitForFrames } from './lib/browser.mjs';
import { cameraUrl, demoCameraUrl, pageUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

process.env.CAMGATE_EXTRA_ARGS = `${process.env.CAMGATE_EXTRA_ARGS || ''} --workers 2`;
const env = useEnvironment();

// Stream ids carry their worker in bits 40 and up.
const workerOf = (id) => Math.floor(id / 2 ** 40);

test('two cameras on two workers play side by side', { timeout: 60000 }, async () => {
  const demo = await openPlayer(env.browser, demoCameraUrl());
  const gst = await openPlayer(env.browser, cameraUrl());
  await env.run([demo, gst], async () => {
    // The first camera goes to the worker with no camera and the least hops (worker 0), the
    // second to the worker with the fewest cameras (worker 1).
    await demo.click('#start');
    await waitForStatus(demo, 'PLAYING');
    await gst.click('#start');
    await waitForStatus(gst, 'PLAYING');
    for (const [name, page] of [['demo', demo], ['gst', gst]]) {
      const stats = await waitForFrames(page, { which: 'camgate', minFrames: 10 });
      console.log(`# ${name}: ${JSON.stringify(stats.video)}`);
    }

    const list = await (await fetch(pageUrl('api/streams'))).json();
    console.log(`# /api/streams: ${JSON.stringify(list)}`);
    const byUri = Object.fromEntries(list.map((s) => [s.uri, s]));
    assert.equal(workerOf(byUri[demoCameraUrl()].id), 0);
    assert.equal(workerOf(byUri[cameraUrl()].id), 1, 'the second camera is on worker 1');
    assert.equal(byUri[cameraUrl()].status, 'PLAYING');
    assert.equal(byUri[cameraUrl()].viewers, 1);

    const metrics = await (await fetch(pageUrl('metrics'))).text();
    const out = Number(/^camgate_viewer_packets_out_total (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.ok(out > 0, 'metrics add up both workers');

    // Stop on worker 0's session ends worker 1's viewer with STOPPED, and the demo keeps playing.
    const before = (await waitForFrames(demo, { which: 'camgate' })).video.framesDecoded;
    await gst.click('#stop');
    await waitForStatus(gst, 'STOPPED', 10000);
    await demo.waitForTimeout(700);
    const after = (await waitForFrames(demo, { which: 'camgate' })).video.framesDecoded;
    assert.ok(after >= before + 10, `demo stalled: ${before} -> ${after}`);
    // And the camera on worker 1 plays again for a new start.
    await gst.click('#start');
    await waitForStatus(gst, 'PLAYING');
    await waitForFrames(gst, { which: 'camgate', minFrames: 3 });
    await demo.click('#stop');
    await gst.click('#stop');
    await waitForStatus(gst, 'STOPPED', 10000);
  });
  for (const page of [demo, gst]) await page.context().close();
});
