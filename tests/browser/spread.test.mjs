// camgate with two workers and viewer_spread_margin 0: the viewers of ONE camera are spread over
// both workers. The camera's worker pulls it (one RTSP connection) and serves the first viewer;
// the second is served by the other worker from a mirror of the camera's packets, on that
// worker's own UDP port (webrtc_port + 1). Both must play the real GStreamer camera.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { waitForFrames } from './lib/browser.mjs';
import { cameraUrl, config, pageUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

process.env.CAMGATE_EXTRA_ARGS =
  `${process.env.CAMGATE_EXTRA_ARGS || ''} --workers 2 --viewer-spread-margin 0`;
const env = useEnvironment();

// The camgate UDP port of the page's selected ICE candidate pair: which worker serves it.
async function servingPort(page) {
  return page.evaluate(async () => {
    const report = await window.camgate.pc.getStats();
    let pairId = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && report.get(pairId);
    const remote = pair && report.get(pair.remoteCandidateId);
    return remote ? remote.port : null;
  });
}

const metric = (text, name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);

test('two viewers of one camera are served by two workers', { timeout: 60000 }, async () => {
  const first = await openPlayer(env.browser, cameraUrl());
  const second = await openPlayer(env.browser, cameraUrl());
  await env.run([first, second], async () => {
    await first.click('#start');
    await waitForStatus(first, 'PLAYING');
    await waitForFrames(first, { which: 'camgate', minFrames: 5 });
    // The camera is running: the mirror gets its GOP, so the second viewer starts at once too.
    await second.click('#start');
    await waitForStatus(second, 'PLAYING');
    const ports = [];
    for (const [name, page] of [['first', first], ['second', second]]) {
      const stats = await waitForFrames(page, { which: 'camgate', minFrames: 10 });
      ports.push(await servingPort(page));
      console.log(`# ${name}: port ${ports.at(-1)} ${JSON.stringify(stats.video)}`);
    }
    assert.deepEqual(
      [...ports].sort(),
      [config.webrtcPort, config.webrtcPort + 1],
      `served by both workers: ${ports}`,
    );

    const list = await (await fetch(pageUrl('api/streams'))).json();
    console.log(`# /api/streams: ${JSON.stringify(list)}`);
    assert.equal(list.length, 1, 'one stream, mirrors are not listed');
    assert.equal(list[0].viewers, 2, "the mirror's viewer counts for the camera");
    const metrics = await (await fetch(pageUrl('metrics'))).text();
    assert.equal(metric(metrics, 'camgate_rtsp_connects_total'), 1, 'one RTSP connection');

    // The first viewer (on the camera's worker) stops; the mirrored one plays on.
    await first.click('#stop');
    await waitForStatus(first, 'STOPPED', 10000);
    const before = (await waitForFrames(second, { which: 'camgate' })).video.framesDecoded;
    await second.waitForTimeout(1000);
    const after = (await waitForFrames(second, { which: 'camgate' })).video.framesDecoded;
    assert.ok(after >= before + 10, `mirrored viewer stalled: ${before} -> ${after}`);
    await second.click('#stop');
    await waitForStatus(second, 'STOPPED', 10000);
  });
  for (const page of [first, second]) await page.context().close();
});
