// Issue 5, the flow of the seed's manual (Flashphoner WCS REST): startup a camera over REST,
// find_all lists it, a browser plays it on camgate's player page, terminate over REST, and the
// browser's stream goes FAILED with "Stopped by rest /terminate".

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { api, streamEntry } from './lib/api.mjs';
import { waitForFrames } from './lib/browser.mjs';
import { cameraUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, statusText, waitForStatus } from './lib/player.mjs';

const env = useEnvironment();

test('REST startup → find_all → browser plays → REST terminate → FAILED "Stopped by rest /terminate"', { timeout: 60000 }, async () => {
  const uri = cameraUrl();
  const page = await openPlayer(env.browser, uri);
  await env.run([page], async () => {
    // Nothing pulled yet.
    const none = await api('POST', '/rest-api/rtsp/find_all');
    assert.equal(none.status, 404, `find_all before startup: ${none.status} ${none.text}`);

    const startup = await api('POST', '/rest-api/rtsp/startup', { uri });
    assert.equal(startup.status, 200, `startup: ${startup.status} ${startup.text}`);
    assert.equal(startup.json?.uri, uri);
    assert.equal(startup.json?.status, 'PENDING');
    const again = await api('POST', '/rest-api/rtsp/startup', { uri });
    assert.equal(again.status, 409, `second startup: ${again.status} ${again.text}`);

    // find_all lists it; it is pulled without viewers (PENDING, then PLAYING once the camera plays).
    const deadline = Date.now() + 10000;
    let listed;
    for (;;) {
      const all = await api('GET', '/rest-api/rtsp/find_all');
      assert.equal(all.status, 200, `find_all: ${all.status} ${all.text}`);
      listed = all.json.find((s) => s.uri === uri);
      assert.ok(listed, `find_all does not list ${uri}: ${all.text}`);
      if (listed.status === 'PLAYING') break;
      assert.ok(Date.now() < deadline, `still ${listed.status} after 10 s`);
      await page.waitForTimeout(100);
    }
    const find = await api('POST', '/rest-api/rtsp/find', { uri });
    assert.equal(find.status, 200, `find: ${find.status} ${find.text}`);
    assert.deepEqual(find.json.map((s) => s.uri), [uri]);
    const pinned = await streamEntry(uri);
    assert.equal(pinned.pinned, true, JSON.stringify(pinned));
    assert.equal(pinned.viewers, 0, JSON.stringify(pinned));

    // The browser plays the pulled camera: it is already running, so the first frame is quick.
    await page.click('#start');
    await waitForStatus(page, 'PLAYING');
    const stats = await waitForFrames(page, { which: 'camgate', minFrames: 10 });
    assert.equal(stats.video.frameWidth, 640);
    const firstFrameMs = await page.evaluate(() => window.camgate.firstFrameMs);
    const playing = await streamEntry(uri);
    assert.equal(playing.viewers, 1, JSON.stringify(playing));
    console.log(`# pulled camera: first frame after ${firstFrameMs} ms; ${JSON.stringify(stats.video)}; stream ${JSON.stringify(playing)}`);

    const terminate = await api('POST', '/rest-api/rtsp/terminate', { uri });
    assert.equal(terminate.status, 200, `terminate: ${terminate.status} ${terminate.text}`);
    const status = await waitForStatus(page, 'FAILED', 10000);
    assert.equal(status.info, 'Stopped by rest /terminate');
    assert.match(await statusText(page), /FAILED: Stopped by rest \/terminate/);
    assert.equal(await page.isEnabled('#start'), true);

    // Gone from find_all; terminating again is 404.
    const after = await api('POST', '/rest-api/rtsp/find_all');
    assert.ok(after.status === 404 || !after.json.some((s) => s.uri === uri), `find_all after terminate: ${after.status} ${after.text}`);
    const twice = await api('POST', '/rest-api/rtsp/terminate', { uri });
    assert.equal(twice.status, 404, `second terminate: ${twice.status} ${twice.text}`);
    console.log(`# after terminate: find_all ${after.status} ${after.text}; terminate again ${twice.status}`);
  });
  await page.context().close();
});
