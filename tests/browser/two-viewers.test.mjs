// Two viewers of one camera URL (two pages, two signaling sessions) both decode frames; camgate
// should serve both from one RTSP connection.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { waitForFrames } from './lib/browser.mjs';
import { cameraUrl, pageUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const env = useEnvironment();

test('two pages play the same camera at once', { timeout: 60000 }, async () => {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    pages.push(await openPlayer(env.browser, cameraUrl()));
  }
  await env.run(pages, async () => {
    for (const page of pages) await page.click('#start');
    for (const [i, page] of pages.entries()) {
      await waitForStatus(page, 'PLAYING');
      const stats = await waitForFrames(page, { which: 'camgate', minFrames: 10 });
      assert.equal(stats.video.frameWidth, 640);
      assert.equal(stats.video.frameHeight, 360);
      console.log(`# viewer ${i}: ${JSON.stringify(stats.video)}`);
    }

    // camgate's stream list (GET /api/streams): one entry for the URL, with two viewers.
    const res = await fetch(pageUrl('api/streams'));
    assert.equal(res.status, 200);
    const list = await res.json();
    console.log(`# /api/streams: ${JSON.stringify(list)}`);
    const mine = list.filter((s) => s.uri === cameraUrl());
    assert.equal(mine.length, 1, `one shared camera connection: ${JSON.stringify(list)}`);
    assert.equal(mine[0].viewers, 2, JSON.stringify(mine[0]));

    // Viewer 0 leaves and comes back three times (Stop must end in STOPPED, never FAILED, even
    // though the browser closes its peer connection at once); viewer 1 keeps playing meanwhile.
    for (let round = 0; round < 3; round++) {
      const before = (await waitForFrames(pages[1], { which: 'camgate' })).video.framesDecoded;
      await pages[0].click('#stop');
      await waitForStatus(pages[0], 'STOPPED', 10000);
      await pages[1].waitForTimeout(700);
      const after = (await waitForFrames(pages[1], { which: 'camgate' })).video.framesDecoded;
      assert.ok(after >= before + 10, `round ${round}: viewer 1 stalled after viewer 0 left: ${before} -> ${after}`);
      await pages[0].click('#start');
      await waitForStatus(pages[0], 'PLAYING');
      await waitForFrames(pages[0], { which: 'camgate', minFrames: 3 });
      // Joining a camera that is already running: the first frame should come quickly.
      await pages[0].waitForFunction(() => window.camgate.firstFrameMs !== null, null, { timeout: 5000 });
      const firstFrameMs = await pages[0].evaluate(() => window.camgate.firstFrameMs);
      console.log(`# round ${round}: viewer 0 rejoined, first frame after ${firstFrameMs} ms`);
      assert.ok(firstFrameMs !== null && firstFrameMs < 3000, `first frame after ${firstFrameMs} ms`);
    }
    await pages[0].click('#stop');
    await waitForStatus(pages[0], 'STOPPED', 10000);
    await pages[1].click('#stop');
    await waitForStatus(pages[1], 'STOPPED', 10000);
  });
  for (const page of pages) await page.context().close();
});
